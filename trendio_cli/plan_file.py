"""Saved plan files (`trendio plan --out`): what one must hold before anything is sent from it.

A plan file can be edited or crafted by hand, so it is read as untrusted input: strict JSON, every field's
type and range, and its agreement with the campaign it carries (brand, tiers, products, sizes). Problems
name the plan file and the field (`plan.json:1:1: batches[3].creator_ids[1]: ...`); all are reported at once."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from trendio_cli.api.endpoints import MAX_CREATORS_PER_CREATE, MAX_PRODUCTS_PER_CREATE
from trendio_cli.campaign import (
    MAX_MESSAGE,
    MAX_PATH,
    MAX_SLUG,
    Campaign,
    check_path_text,
    error_text,
    key_text,
    parse_product_id,
    read_text,
    shown,
)
from trendio_cli.creators import ID_RULE, MAX_TEXT, valid_creator_id
from trendio_cli.errors import ProblemsFound

MAX_DEPTH = 32  # a plan file trendio writes is 5 levels deep
MAX_COUNT = 10**9
MAX_BATCHES = 10_000  # the platform's daily request quota
KEY_CHARS = "ASCII letters, digits, '-' or '_'"


def _creator_id(value: str) -> str:
    if not valid_creator_id(value):
        raise ValueError(f"{shown(value)} is not a creator id: {ID_RULE}")
    return value


def _product_id(value: str) -> str:
    return parse_product_id(value)


def _user_id(value: str) -> str:
    if not (0 < len(value) <= 64 and value.isascii() and value.isdigit()):
        raise ValueError(f"{shown(value)} must be a plain creator id: 1 to 64 ASCII digits")
    return value


def _key(value: str) -> str:
    if not (0 < len(value) <= 128 and value.isascii() and value.replace("-", "").replace("_", "").isalnum()):
        raise ValueError(f"{shown(value)} must be 1 to 128 {KEY_CHARS}")
    return value


def _iso_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{shown(value)} is not a date like 2026-12-31") from None
    return value


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError(f"{shown(value)} holds control characters")
    return value


Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_SLUG)]
Text = Annotated[str, Field(max_length=10_000)]


class _Model(BaseModel):
    # strict: a string is not a list of one-letter creators, a float is not an id, true is not 1
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False, frozen=True)


class BatchDoc(_Model):
    key: Annotated[str, AfterValidator(_key)]
    tier: Name
    creator_ids: list[Annotated[str, AfterValidator(_creator_id)]] = Field(min_length=1,
                                                                          max_length=MAX_CREATORS_PER_CREATE)
    product_ids: list[Annotated[str, AfterValidator(_product_id)]] = Field(min_length=1,
                                                                          max_length=MAX_PRODUCTS_PER_CREATE)
    handles: list[Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_printable)]] = Field(
        default_factory=list, max_length=MAX_CREATORS_PER_CREATE)
    creator_tiers: list[Name] = Field(default_factory=list, max_length=MAX_CREATORS_PER_CREATE)
    # the plain ids of a legacy-ids campaign's creators, parallel to creator_ids
    user_ids: list[Annotated[str, AfterValidator(_user_id)]] = Field(default_factory=list,
                                                                    max_length=MAX_CREATORS_PER_CREATE)

    @model_validator(mode="after")
    def _consistent(self) -> BatchDoc:
        n = len(self.creator_ids)
        twice = next((c for i, c in enumerate(self.creator_ids) if c in self.creator_ids[:i]), None)
        if twice is not None:
            raise ValueError(f"creator {twice} is listed twice in this batch")
        twice = next((p for i, p in enumerate(self.product_ids) if p in self.product_ids[:i]), None)
        if twice is not None:
            raise ValueError(f"product {twice} is listed twice in this batch")
        for name in ("handles", "creator_tiers", "user_ids"):
            if len(getattr(self, name)) not in (0, n):
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} creators")
        return self


class RequestsDoc(_Model):
    creates: Count
    conflict_checks: Count
    eligibility_checks: Count = 0  # plans made before the 2026 endpoints have none
    reserve: Count
    total: Count


class QuotaDoc(_Model):
    day: Annotated[str, AfterValidator(_iso_date)]
    limit: Count
    used: Count
    after: Count
    resets_at: Text


class WeekDayDoc(_Model):
    date: Annotated[str, AfterValidator(_iso_date)]
    outreach: Count


class OutreachDoc(_Model):
    limit: Count | None  # None: the platform reports the shop's outreach unlimited
    used: Count
    after: Count
    resets_at: Text
    week_ahead: list[WeekDayDoc] = Field(default_factory=list, max_length=14)


class OutlookDoc(_Model):
    date: Annotated[str, AfterValidator(_iso_date)] | None
    pairs: Count
    note: Text | None = None


class TierCountDoc(_Model):
    creators: Count
    pairs: Count


class PlanDoc(_Model):
    format: int
    plan_id: Annotated[str, AfterValidator(_key)]
    created_at: Text
    date: Annotated[str, AfterValidator(_iso_date)]
    brand: Name
    campaign: Name
    campaign_file: Annotated[str, Field(max_length=MAX_PATH), AfterValidator(check_path_text)]
    fingerprint: Text
    batches: list[BatchDoc] = Field(max_length=MAX_BATCHES)
    tiers: dict[Name, TierCountDoc]
    skipped: dict[Text, Count]
    requests: RequestsDoc
    quota: QuotaDoc
    outreach: OutreachDoc
    outlook: list[OutlookDoc] = Field(max_length=100)
    notes: list[Text] = Field(max_length=100)
    campaign_spec: dict[str, Any]


def where(loc: tuple[Any, ...]) -> str:
    """`batches[3].creator_ids[1]` for pydantic's ('batches', 3, 'creator_ids', 1)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{key_text(part)}" if out else key_text(part))
    return out


class _DuplicateKey(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        keys = [k for k, _ in pairs]
        dup = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise _DuplicateKey(f"the key {shown(dup)} appears twice in one object")
    return out


def _bad_numbers(doc: Any) -> list[tuple[str, str]]:
    """Non-finite numbers (JSON's NaN, Infinity) anywhere, and nesting deeper than any plan's."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[Any, tuple[Any, ...]]] = [(doc, ())]
    while stack:
        item, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            return [(where(loc[:MAX_DEPTH]), f"nested more than {MAX_DEPTH} levels deep")]
        entries = item.items() if isinstance(item, dict) else enumerate(item)
        for key, value in entries:
            if isinstance(value, (dict, list)):
                stack.append((value, (*loc, key)))
            elif isinstance(value, float) and not math.isfinite(value):
                found.append((where((*loc, key)), f"{value} (NaN or Infinity) is not allowed in a plan file"))
    return found


def read_plan(path: Path, plan_format: int, batch_fields: set[str]) -> tuple[dict[str, Any], Campaign]:
    """The plan file's document, checked, with the campaign it carries; ProblemsFound lists every problem."""
    text = read_text(path, "plan file")

    def problem(field: str, message: str, line: int = 1, col: int = 1) -> str:
        return f"{path}:{line}:{col}: {field + ': ' if field else ''}{message}"

    try:
        doc = json.loads(text, object_pairs_hook=_pairs)
    except RecursionError:
        raise ProblemsFound([problem("", "not a plan file (the JSON is nested too deeply)")]) from None
    except _DuplicateKey as exc:
        raise ProblemsFound([problem("", f"not a plan file ({exc})")]) from None
    except ValueError as exc:
        raise ProblemsFound([problem("", f"not a plan file (invalid JSON: {exc.args[0]})",
                                     getattr(exc, "lineno", 1), getattr(exc, "colno", 1))]) from None
    if not isinstance(doc, dict) or doc.get("format") != plan_format:
        raise ProblemsFound([problem("", f"not a trendio plan file (format {plan_format} expected)")])
    problems = [problem(field, message) for field, message in _bad_numbers(doc)]
    if problems and "nested" in problems[0]:
        raise ProblemsFound(problems)
    try:
        plan = PlanDoc.model_validate(doc)
    except ValidationError as exc:
        for err in exc.errors():
            value = err.get("input")
            if isinstance(value, float) and not math.isfinite(value):
                continue  # already said above
            loc = tuple(err["loc"])
            problems.append(problem("", error_text(err, where(loc))) if err["type"] != "missing"
                            else problem(where(loc[:-1]), f"the field {loc[-1]!r} is missing"))
        raise ProblemsFound(problems) from None
    if problems:
        raise ProblemsFound(problems)
    for i, batch in enumerate(doc["batches"]):
        unknown = sorted(set(batch) - batch_fields)
        if unknown:
            problems.append(problem(f"batches[{i}]", f"unknown field(s) {', '.join(map(shown, unknown))}"))
    try:
        campaign = Campaign.model_validate(plan.campaign_spec)
    except ValidationError as exc:
        problems.extend(problem("", error_text(err, where(("campaign_spec", *err["loc"]))))
                        for err in exc.errors())
        raise ProblemsFound(problems) from None
    problems.extend(problem(field, message) for field, message in _against_campaign(plan, campaign))
    if problems:
        raise ProblemsFound(problems)
    return doc, campaign


def _against_campaign(plan: PlanDoc, campaign: Campaign) -> list[tuple[str, str]]:
    """What no plan made from this campaign can hold: another brand, unknown tiers or products, a pair twice,
    more requests than a day allows, a message longer than the platform takes."""
    out: list[tuple[str, str]] = []
    for name in ("brand", "campaign"):
        if getattr(plan, name) != getattr(campaign, name):
            out.append((name, f"{shown(getattr(plan, name))} does not match the plan's campaign "
                              f"(campaign_spec.{name} is {shown(getattr(campaign, name))})"))
    n = len(plan.batches)
    if n > campaign.limits.daily_requests:
        out.append(("batches", f"{n} batches is more requests than a day allows "
                               f"(limits.daily_requests is {campaign.limits.daily_requests})"))
    r = plan.requests
    if r.creates != n or r.total != r.creates + r.conflict_checks + r.eligibility_checks:
        out.append(("requests", f"creates {r.creates} and total {r.total} do not add up for {n} batch(es), "
                                f"{r.conflict_checks} conflict check(s) and {r.eligibility_checks} eligibility "
                                f"check(s)"))
    tiers = {t.name: t for t in campaign.tiers}
    products = {p.id for p in campaign.products}
    keys: dict[str, int] = {}
    seen: dict[str, int] = {}  # creator -> the first batch naming it
    shared: set[str] = set()
    for i, b in enumerate(plan.batches):
        at = f"batches[{i}]"
        if b.key in keys:
            out.append((f"{at}.key", f"batch {b.key} is listed twice (first as batches[{keys[b.key]}])"))
        keys.setdefault(b.key, i)
        if b.tier not in tiers:
            out.append((f"{at}.tier", f"{shown(b.tier)} is not a tier of the campaign "
                                      f"({', '.join(tiers)})"))
        for j, t in enumerate(b.creator_tiers):
            if t not in tiers:
                out.append((f"{at}.creator_tiers[{j}]", f"{shown(t)} is not a tier of the campaign"))
        for j, p in enumerate(b.product_ids):
            if p not in products:
                out.append((f"{at}.product_ids[{j}]", f"product {p} is not in the campaign"))
        if campaign.uses_legacy_ids and len(b.user_ids) != len(b.creator_ids):
            out.append((f"{at}.user_ids", "an api: legacy-ids plan names each creator by its creator_user_id too "
                                          "(make the plan again from the campaign)"))
        if b.tier in tiers:
            tier = tiers[b.tier]
            longest = max((len(h) for h in b.handles), default=0) if len(b.creator_ids) == 1 else 0
            length = campaign.message_length(tier, max(longest, len("there")))
            if length > MAX_MESSAGE:
                out.append((f"{at}.handles", f"the message would be {length} characters: at most {MAX_MESSAGE}"))
        for c in b.creator_ids:
            if c in seen:
                shared.add(c)
            else:
                seen[c] = i
    if shared:  # a creator in two batches is fine for other products (over 100), never for the same pair
        pairs: dict[tuple[str, str], int] = {}
        for i, b in enumerate(plan.batches):
            for c in b.creator_ids:
                if c not in shared:
                    continue
                for p in b.product_ids:
                    first = pairs.setdefault((c, p), i)
                    if first != i:
                        out.append((f"batches[{i}].creator_ids", f"creator {c} is invited to product {p} "
                                                                 f"already in batches[{first}]"))
    return out
