"""Creators files (CSV or JSONL): one row per creator, bad rows named by line, repeated ids merged.

Every value is range-checked here, before anything reaches the planner or the ledger."""

from __future__ import annotations

import csv
import functools
import gc
import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from operator import methodcaller
from pathlib import Path
from typing import Any, TypeVar

from trendio_cli.campaign import MAX_FOLLOWERS, MAX_GMV, read_text, shown
from trendio_cli.problems import Problem

KNOWN = ("creator_id", "handle", "followers", "gmv_30d", "category", "engagement_rate", "last_active",
         "creator_user_id")
# A Creator Open ID (e.g. uACafQAAAABmUU2qon4R0vUYvUVS3QC6CICP2m5A2-wd77j8R9G0yg) or a plain numeric id:
# ASCII letters, digits, '-' and '_' only, never cut.
MAX_ID = 256
ID_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID}}}")
MAX_USER_ID = 64  # the legacy plain id: digits
MAX_TEXT = 256  # a handle or a category
MAX_JSON_DEPTH = 20  # for values of extra JSONL keys, kept as they are
ID_RULE = f"a creator id is 1 to {MAX_ID} ASCII letters, digits, '-' or '_' (a Creator Open ID)"
# A file that can be read but holds no creator yet: nothing to plan, but where `creators discover` starts.
EMPTY_FILE = "the file is empty: it needs a header row with creator_id"
NO_CREATORS = "no creators in the file"


def valid_creator_id(value: Any) -> bool:
    """True for an id as the platform writes it (the same rule for creators files and plan files)."""
    return type(value) is str and value.isascii() and (value.isdigit() and len(value) <= MAX_ID
                                                       or ID_RE.fullmatch(value) is not None)


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
    creator_user_id: str | None = None  # the legacy plain numeric id, for `api: legacy-ids`

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

    @property
    def holds_no_creators(self) -> bool:
        """Empty, or a header alone, and nothing else wrong with it."""
        return not self.creators and all(p.message in (EMPTY_FILE, NO_CREATORS) for p in self.errors)


def _number_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError
    text = str(value).strip()
    if len(text) > 40 or not text.isascii():  # bounded before float() or int() sees it
        raise ValueError
    return text


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        if not value.is_integer():  # also refuses inf and nan
            raise ValueError
        n = int(value)
    else:
        text = _number_text(value).replace("_", "")
        if text.isdigit():
            n = int(text)
        elif re.fullmatch(r"[0-9]+\.0+|[0-9]+(\.[0-9]+)?[eE]\+?[0-9]{1,2}", text):
            f = float(text)  # 20000.0, 1.5e4: whole numbers written as floats
            if not f.is_integer():
                raise ValueError
            n = int(f)
        else:
            raise ValueError
    if not 0 <= n <= MAX_FOLLOWERS:
        raise ValueError
    return n


def _float(value: Any) -> float:
    f = float(_number_text(value))
    if not 0 <= f <= MAX_GMV:  # also refuses nan and inf
        raise ValueError
    return f


def _rate(value: Any) -> float:
    text = _number_text(value)
    f = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0 <= f <= 1:
        raise ValueError
    return f


def _date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or len(value.strip()) > 32:
        raise ValueError
    return date.fromisoformat(value.strip())


def _user_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError
    text = str(value).strip()
    if not (0 < len(text) <= MAX_USER_ID and text.isascii() and text.isdigit()):
        raise ValueError
    return text


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    text = value.strip()
    if len(text) > MAX_TEXT or not text.isprintable():
        raise ValueError
    return sys.intern(text) if len(text) <= 32 else text


PARSERS = {
    "followers": (_int, f"followers must be a whole number from 0 to {MAX_FOLLOWERS:,}"),
    "gmv_30d": (_float, f"gmv_30d must be a number from 0 to {MAX_GMV:,}"),
    "engagement_rate": (_rate, "engagement_rate must be between 0 and 1 (or 0%..100%)"),
    "last_active": (_date, "last_active must be a date like 2026-03-01"),
    "creator_user_id": (_user_id, f"creator_user_id (the legacy numeric id) must be 1 to {MAX_USER_ID} "
                                  f"of the digits 0-9"),
    "handle": (_text, f"handle must be at most {MAX_TEXT} printable characters"),
    "category": (_text, f"category must be at most {MAX_TEXT} printable characters"),
}


def _json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def _row_to_creator(row: dict[str, Any], line: int, file: str, problems: list[Problem],
                    columns: dict[str, int]) -> Creator | None:
    raw_id = row.get("creator_id")
    cid = raw_id.strip() if isinstance(raw_id, str) else raw_id
    if cid is None or cid == "":
        problems.append(Problem(file, line, columns.get("creator_id", 1), "creator_id is missing"))
        return None
    if type(cid) is int and cid >= 0:  # a JSONL number: the digits are the id
        cid = str(cid)
    if not valid_creator_id(cid):
        problems.append(Problem(file, line, columns.get("creator_id", 1),
                                f"creator_id {shown(cid)} is not a valid id: {ID_RULE}"))
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
                problems.append(Problem(file, line, columns.get(key, 1), f"{msg} (got {shown(value)})"))
                ok = False
        else:
            if isinstance(value, (dict, list)) and not _json_depth_ok(value):
                problems.append(Problem(file, line, columns.get(key, 1),
                                        f"{key} is nested more than {MAX_JSON_DEPTH} levels deep"))
                ok = False
                continue
            if creator.extra is None:
                creator.extra = {}
            creator.extra[key] = value
    return creator if ok else None


_CONTROL = bytes(0 if (b < 32 and b != 10) or b == 127 else 1 for b in range(256))


def _plain_fields(lines: list[str], text: str) -> bool:
    """True when no field of the file can be too long, hold a control character or another script's digits
    (which int() and float() read): all ASCII, no control character but line ends, no line longer than a
    field may be. One look at the whole text spares the fast path those checks on every field."""
    if not text.isascii() or max(map(len, lines), default=0) > min(MAX_TEXT, MAX_ID):
        return False
    return b"\0" not in text.encode("ascii").translate(_CONTROL)


def _csv_rows(text: str, file: str, problems: list[Problem]) -> Iterator[tuple[int, list[str]]]:
    """(line, row) of a CSV text, each row named by its first line (a quoted field may span lines); a syntax
    error is reported where the row begins and reading goes on with the next line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    prev = 0
    while True:
        try:
            for row in reader:
                yield prev + 1, row
                prev = reader.line_num
            return
        except csv.Error as exc:
            problems.append(_csv_problem(file, text, prev + 1, reader.line_num, str(exc)))
            prev = reader.line_num
            if "end of data" in str(exc):
                return


_MAX_GMV = float(MAX_GMV)  # compared with floats on the fast path


class _FastRow:
    """The common case of a CSV row (plain numbers, ISO dates) without per-field dispatch; returns None
    whenever anything is unusual, and the careful path (`_row_to_creator`) takes over and reports it."""

    def __init__(self, header: list[str], plain_fields: bool) -> None:
        pos = {h: i for i, h in enumerate(header)}
        self.i_id = pos["creator_id"]
        self.i_handle = pos.get("handle")
        self.i_followers = pos.get("followers")
        self.i_gmv = pos.get("gmv_30d")
        self.i_category = pos.get("category")
        self.i_rate = pos.get("engagement_rate")
        self.i_active = pos.get("last_active")
        self.i_user_id = pos.get("creator_user_id")
        self.extras = [(i, h) for i, h in enumerate(header) if h not in KNOWN and h]
        self.check_fields = not plain_fields
        self.numbers = [i for i in (self.i_id, self.i_followers, self.i_gmv, self.i_rate, self.i_user_id)
                        if i is not None]
        self.texts = [i for i in (self.i_handle, self.i_category) if i is not None]
        self.dates: dict[str, date] = {}

    def fields_ok(self, row: list[str]) -> bool:
        for i in self.numbers:
            if not row[i].isascii() or len(row[i]) > MAX_TEXT:
                return False
        for i in self.texts:
            if len(row[i]) > MAX_TEXT or not row[i].isprintable():
                return False
        return True

    def convert(self, row: list[str], line: int) -> Creator | None:
        if self.check_fields and not self.fields_ok(row):
            return None
        cid = row[self.i_id]
        if not cid.isdigit() and ID_RE.fullmatch(cid) is None:
            return None
        handle, category = "", ""
        followers = gmv = rate = active = user_id = None
        try:
            if self.i_handle is not None:
                handle = row[self.i_handle].strip()
            if self.i_followers is not None and row[self.i_followers]:
                followers = int(row[self.i_followers])
                if not 0 <= followers <= MAX_FOLLOWERS:
                    return None
            if self.i_gmv is not None and row[self.i_gmv]:
                gmv = float(row[self.i_gmv])
                if not 0 <= gmv <= _MAX_GMV:
                    return None
            if self.i_category is not None:
                category = sys.intern(row[self.i_category].strip())
            if self.i_rate is not None and row[self.i_rate]:
                rate = float(row[self.i_rate])
                if not 0 <= rate <= 1:
                    return None
            if self.i_active is not None and row[self.i_active]:
                text = row[self.i_active]
                active = self.dates.get(text)
                if active is None:  # (a file holds few distinct days: each is parsed once, and shared)
                    active = self.dates[text] = date.fromisoformat(text)
            if self.i_user_id is not None and row[self.i_user_id]:
                user_id = row[self.i_user_id]
                if not user_id.isdigit() or len(user_id) > MAX_USER_ID:
                    return None
        except ValueError:
            return None
        extra = {h: row[i] for i, h in self.extras if row[i].strip()} if self.extras else None
        return Creator(cid, handle, followers, gmv, category, rate, active, extra or None, line, user_id)


def _merge(into: Creator, other: Creator) -> None:
    for name in ("handle", "followers", "gmv_30d", "category", "engagement_rate", "last_active",
                 "creator_user_id"):
        value = getattr(other, name)
        if value not in (None, ""):
            setattr(into, name, value)
    if other.extra:
        into.extra = {**(into.extra or {}), **other.extra}


class _JsonColumns(dict[str, int]):
    """The column of a key in one JSONL line, looked up only when a problem needs it."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line

    def get(self, key: str, default: Any = 1) -> Any:
        at = self.line.find(json.dumps(key))
        return at + 1 if at >= 0 else default


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# strict JSON: NaN and Infinity (which Python's json reads by default) would reach the ledger
_JSON = json.JSONDecoder(parse_constant=_no_constants)


def _json_lines(text: str) -> list[str]:
    """JSONL lines: split at \\n only (U+2028 or U+0085 inside a string are text, not line breaks)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _open_quote_column(line: str) -> int:
    """The column where the quoted field left open at the end of this line begins."""
    opened, inside, i = 0, False, 0
    at_field_start = True
    while i < len(line):
        ch = line[i]
        if inside:
            if ch == '"':
                if i + 1 < len(line) and line[i + 1] == '"':
                    i += 1
                else:
                    inside = False
        elif ch == '"' and at_field_start:
            inside, opened = True, i
        at_field_start = ch == "," and not inside
        i += 1
    return opened + 1


def _csv_problem(file: str, text: str, start: int, end: int, error: str) -> Problem:
    """A CSV syntax error, named where a person would look: the line where the quoted field opened."""
    if "end of data" in error or end > start:
        first_line = text.split("\n", start)[start - 1]
        where = "the end of the file" if "end of data" in error else f"line {end}"
        return Problem(file, start, _open_quote_column(first_line),
                       f"a quoted field opens here and runs on to {where}: is a closing quote missing?")
    if "expected after" in error:
        error = "a closing quote must be followed by a comma or the end of the line"
    return Problem(file, end, 1, f"CSV error: {error}")


F = TypeVar("F", bound=Callable[..., Any])


def bulk(fn: F) -> F:
    """Run `fn` with Python's cycle collector paused: for work that builds a million objects and no cycle
    (reading a creators file, planning over it). Each full collection walks every object built so far; at a
    million creators they took a third of `plan`'s time."""
    @functools.wraps(fn)
    def paused(*args: Any, **kwargs: Any) -> Any:
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()
    return paused  # type: ignore[return-value]


@bulk
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
        for n, line in enumerate(_json_lines(text), 1):
            if not line.strip():
                continue
            try:
                obj = _JSON.decode(line)
            except RecursionError:
                problems.append(Problem(file, n, 1, "not a JSON object: nested too deeply"))
                continue
            except ValueError as exc:
                problems.append(Problem(file, n, getattr(exc, "colno", 1),
                                        f"not a JSON object: {getattr(exc, 'msg', None) or exc.args[0]}"))
                continue
            if not isinstance(obj, dict):
                problems.append(Problem(file, n, 1, "each line must be a JSON object"))
                continue
            add(_row_to_creator(obj, n, file, problems, _JsonColumns(line)))
    else:
        rows: Iterator[tuple[int, list[str]]]
        plain = '"' not in text
        if plain:
            # No quoting anywhere: plain splitting is exactly what the csv module would do, and much faster.
            lines = text.replace("\r\n", "\n").split("\n") if "\r" in text else text.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            rows = enumerate(map(methodcaller("split", ","), lines), 1)
        else:
            rows = _csv_rows(text, file, problems)
        first = next(rows, None)
        if first is None:
            return [], problems or [Problem(file, 1, 1, EMPTY_FILE)]
        if first[0] != 1:
            return [], problems  # the header itself could not be read
        header = [h.strip() for h in first[1]]
        if "creator_id" not in header:
            return [], [Problem(file, 1, 1, f"no creator_id column (found: {', '.join(header) or 'nothing'})")]
        dupes = {h for h in header if header.count(h) > 1}
        if dupes:
            return [], [Problem(file, 1, 1, f"column(s) {', '.join(sorted(dupes))} appear twice in the header")]
        columns = {h: i + 1 for i, h in enumerate(header)}
        width = len(header)
        fast = _FastRow(header, plain and _plain_fields(lines, text))
        for line, row in rows:
            if len(row) != width:
                if all(not c.strip() for c in row):
                    continue
                problems.append(Problem(file, line, 1, f"{len(row)} fields, the header has {width}"))
                continue
            creator = fast.convert(row, line)
            if creator is None:  # something needs a closer look: the careful path names the problem
                if all(not c.strip() for c in row):
                    continue
                creator = _row_to_creator(dict(zip(header, row)), line, file, problems, columns)
            add(creator)
    if not creators and not [p for p in problems if p.severity == "error"]:
        problems.append(Problem(file, 1, 1, NO_CREATORS))
    return list(creators.values()), problems


def load_creators(path: Path) -> CreatorsFile:
    fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv"
    text = read_text(path, "creators file")
    creators, problems = parse_creators(text, str(path), fmt)
    return CreatorsFile(path, creators, problems)
