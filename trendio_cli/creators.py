"""Creators files (CSV or JSONL): one row per creator, bad rows named by line, repeated ids merged."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from trendio_cli.campaign import read_text
from trendio_cli.problems import Problem

KNOWN = ("creator_id", "creator_user_id", "handle", "followers", "gmv_30d", "category", "engagement_rate",
         "last_active")
ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
INF = float("inf")


@dataclass(slots=True)
class Creator:
    creator_id: str
    handle: str = ""
    followers: int | None = None
    gmv_30d: float | None = None
    category: str = ""
    engagement_rate: float | None = None
    last_active: date | None = None
    extra: dict[str, Any] | None = None  # unknown columns, kept as they are
    line: int = 0
    creator_user_id: str | None = None  # the legacy plain id, for shops that still create with it

    def attributes(self) -> dict[str, Any]:
        return {
            "handle": self.handle, "followers": self.followers, "gmv_30d": self.gmv_30d,
            "category": self.category, "engagement_rate": self.engagement_rate,
            "last_active": self.last_active.isoformat() if self.last_active else None,
        }


@dataclass
class CreatorsFile:
    path: Path
    creators: list[Creator]
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    else:
        text = str(value).strip().replace("_", "")
        n = int(float(text)) if re.fullmatch(r"\d+(\.0+)?|\d+(\.\d+)?[eE]\d+", text) else int(text)
    if n < 0:
        raise ValueError
    return n


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    f = float(str(value).strip())
    if f != f or f < 0 or f == float("inf"):
        raise ValueError
    return f


def _rate(value: Any) -> float:
    text = str(value).strip()
    f = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0 <= f <= 1:
        raise ValueError
    return f


PARSERS = {
    "followers": (_int, "followers must be a whole number >= 0"),
    "gmv_30d": (_float, "gmv_30d must be a number >= 0"),
    "engagement_rate": (_rate, "engagement_rate must be between 0 and 1 (or 0%..100%)"),
    "last_active": (lambda v: v if isinstance(v, date) else date.fromisoformat(str(v).strip()),
                    "last_active must be a date like 2026-03-01"),
}


def _row_to_creator(row: dict[str, Any], line: int, file: str, problems: list[Problem],
                    columns: dict[str, int]) -> Creator | None:
    raw_id = row.get("creator_id")
    cid = "" if raw_id is None else str(raw_id).strip()
    if not cid:
        problems.append(Problem(file, line, columns.get("creator_id", 1), "creator_id is missing"))
        return None
    if not (cid.isdigit() or ID_RE.match(cid)):
        problems.append(Problem(file, line, columns.get("creator_id", 1), f"creator_id {cid!r} is not a valid id"))
        return None
    creator = Creator(creator_id=cid, line=line)
    ok = True
    for key, value in row.items():
        if key == "creator_id" or key is None:
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key in PARSERS:
            parse, msg = PARSERS[key]
            try:
                setattr(creator, key, parse(value))
            except (ValueError, TypeError, OverflowError):
                problems.append(Problem(file, line, columns.get(key, 1), f"{msg} (got {value!r})"))
                ok = False
        elif key == "creator_user_id":
            creator.creator_user_id = str(value).strip()
        elif key in ("handle", "category"):
            setattr(creator, key, sys.intern(str(value).strip()))
        else:
            if creator.extra is None:
                creator.extra = {}
            creator.extra[key] = value
    return creator if ok else None


class _PlainCsv:
    """A csv.reader stand-in for text without quotes: same rows, same `line_num`."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.line_num = 0

    def __iter__(self) -> _PlainCsv:
        return self

    def __next__(self) -> list[str]:
        if self.line_num >= len(self.lines):
            raise StopIteration
        line = self.lines[self.line_num]
        self.line_num += 1
        if line.endswith("\r"):
            line = line[:-1]
        return line.split(",") if line else []


class _FastRow:
    """The common case of a CSV row (plain numbers, ISO dates) without per-field dispatch; returns None
    whenever anything is unusual, and the careful path (`_row_to_creator`) takes over and reports it."""

    def __init__(self, header: list[str]) -> None:
        pos = {h: i for i, h in enumerate(header)}
        self.i_id = pos["creator_id"]
        self.i_handle = pos.get("handle")
        self.i_followers = pos.get("followers")
        self.i_gmv = pos.get("gmv_30d")
        self.i_category = pos.get("category")
        self.i_rate = pos.get("engagement_rate")
        self.i_active = pos.get("last_active")
        self.i_user = pos.get("creator_user_id")
        self.extras = [(i, h) for i, h in enumerate(header) if h not in KNOWN and h]

    def convert(self, row: list[str], line: int) -> Creator | None:
        cid = row[self.i_id].strip()
        if not cid or not (cid.isdigit() or ID_RE.match(cid)):
            return None
        handle, category = "", ""
        followers = gmv = rate = active = None
        try:
            if self.i_handle is not None:
                handle = row[self.i_handle].strip()
            if self.i_followers is not None and row[self.i_followers]:
                followers = int(row[self.i_followers])
                if followers < 0:
                    return None
            if self.i_gmv is not None and row[self.i_gmv]:
                gmv = float(row[self.i_gmv])
                if not 0 <= gmv < INF:
                    return None
            if self.i_category is not None:
                category = sys.intern(row[self.i_category].strip())
            if self.i_rate is not None and row[self.i_rate]:
                rate = float(row[self.i_rate])
                if not 0 <= rate <= 1:
                    return None
            if self.i_active is not None and row[self.i_active]:
                active = date.fromisoformat(row[self.i_active])
        except ValueError:
            return None
        extra = {h: row[i] for i, h in self.extras if row[i].strip()} if self.extras else None
        user_id = row[self.i_user].strip() or None if self.i_user is not None else None
        return Creator(cid, handle, followers, gmv, category, rate, active, extra or None, line, user_id)


def _merge(into: Creator, other: Creator) -> None:
    for name in ("handle", "followers", "gmv_30d", "category", "engagement_rate", "last_active", "creator_user_id"):
        value = getattr(other, name)
        if value not in (None, ""):
            setattr(into, name, value)
    if other.extra:
        into.extra = {**(into.extra or {}), **other.extra}


def parse_creators(text: str, file: str, fmt: str) -> tuple[list[Creator], list[Problem]]:
    problems: list[Problem] = []
    creators: dict[str, Creator] = {}

    def add(creator: Creator | None) -> None:
        if creator is None:
            return
        first = creators.get(creator.creator_id)
        if first is None:
            creators[creator.creator_id] = creator
        else:
            problems.append(Problem(file, creator.line, 1,
                                    f"creator {creator.creator_id} repeated (first on line {first.line}); rows merged",
                                    "warning"))
            _merge(first, creator)

    if fmt == "jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                problems.append(Problem(file, n, getattr(exc, "colno", 1), f"not a JSON object: {exc.args[0]}"))
                continue
            if not isinstance(obj, dict):
                problems.append(Problem(file, n, 1, "each line must be a JSON object"))
                continue
            add(_row_to_creator(obj, n, file, problems, {}))
    else:
        if '"' not in text:
            # No quoting anywhere: plain splitting is exactly what the csv module would do, and much faster.
            reader = _PlainCsv(text)
        else:
            reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader)
        except StopIteration:
            return [], [Problem(file, 1, 1, "the file is empty: it needs a header row with creator_id")]
        except csv.Error as exc:
            return [], [Problem(file, 1, 1, f"CSV error: {exc}")]
        header = [h.strip() for h in header]
        if "creator_id" not in header:
            return [], [Problem(file, 1, 1, f"no creator_id column (found: {', '.join(header) or 'nothing'})")]
        dupes = {h for h in header if header.count(h) > 1}
        if dupes:
            return [], [Problem(file, 1, 1, f"column(s) {', '.join(sorted(dupes))} appear twice in the header")]
        columns = {h: i + 1 for i, h in enumerate(header)}
        width = len(header)
        fast = _FastRow(header)
        try:
            for row in reader:
                line = reader.line_num
                if len(row) != width:
                    if not row or all(not c.strip() for c in row):
                        continue
                    problems.append(Problem(file, line, 1, f"{len(row)} fields, the header has {width}"))
                    continue
                creator = fast.convert(row, line)
                if creator is None:  # something needs a closer look: the careful path names the problem
                    if all(not c.strip() for c in row):
                        continue
                    creator = _row_to_creator(dict(zip(header, row)), line, file, problems, columns)
                add(creator)
        except csv.Error as exc:
            problems.append(Problem(file, reader.line_num, 1, f"CSV error: {exc}"))
    if not creators and not [p for p in problems if p.severity == "error"]:
        problems.append(Problem(file, 1, 1, "no creators in the file"))
    return list(creators.values()), problems


def load_creators(path: Path) -> CreatorsFile:
    fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv"
    text = read_text(path, "creators file")
    creators, problems = parse_creators(text, str(path), fmt)
    return CreatorsFile(path, creators, problems)
