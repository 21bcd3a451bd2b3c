"""Campaign files: the pydantic model of the YAML format, and a loader that names the file, line and column
of every problem (syntax, type, unknown key with a "did you mean", duplicate key)."""

from __future__ import annotations

import difflib
import re
import string
import types
import typing
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from trendio_cli.errors import ProblemsFound
from trendio_cli.problems import Problem, errors_only

MIN_COMMISSION = 100  # 1%, in hundredths of a percent
MAX_COMMISSION = 8000  # 80%
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MESSAGE_FIELDS = {"handle", "product_count", "brand", "campaign", "tier"}
PER_CREATOR_FIELDS = {"handle"}
SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_FILE_BYTES = 5 * 1024 * 1024
# new sellers get a one-time pack of 1,000; the rest are this project's defaults (not published)
OUTREACH_BY_SELLER_TIER = {"new": 1_000, "tier1": 2_000, "tier2": 5_000, "tier3": 10_000}


# --- field parsers -----------------------------------------------------------------------------------
def parse_commission(value: Any) -> int:
    """`15%`, `0.15` and `1500` (hundredths of a percent) all mean 15%; returns hundredths of a percent."""
    if isinstance(value, bool) or value is None:
        raise ValueError("commission must be a percentage like 15%, a fraction like 0.15 or hundredths like 1500")
    text = str(value).strip()
    try:
        if text.endswith("%"):
            hundredths = Decimal(text[:-1].strip()) * 100
        else:
            number = Decimal(text)
            hundredths = number * 10000 if 0 < number < 1 else number
    except InvalidOperation:
        raise ValueError(f"commission {text!r} is not a number: write 15%, 0.15 or 1500") from None
    if hundredths != hundredths.to_integral_value():
        raise ValueError(f"commission {text!r} has more precision than 0.01%")
    result = int(hundredths)
    if not MIN_COMMISSION <= result <= MAX_COMMISSION:
        hint = f" (did you mean {text}%?)" if not text.endswith("%") and 1 <= result < MIN_COMMISSION else ""
        raise ValueError(
            f"commission {text} = {result / 100:g}% is outside "
            f"{MIN_COMMISSION / 100:g}%..{MAX_COMMISSION / 100:g}%{hint}"
        )
    return result


def parse_weekday(value: Any) -> str:
    text = str(value).strip().lower()[:3]
    if text not in WEEKDAYS or str(value).strip().lower() not in (text, _full_day(text)):
        raise ValueError(f"{value!r} is not a weekday: use {', '.join(WEEKDAYS)}")
    return text


def _full_day(short: str) -> str:
    return {"mon": "monday", "tue": "tuesday", "wed": "wednesday", "thu": "thursday", "fri": "friday",
            "sat": "saturday", "sun": "sunday"}[short]


def parse_timezone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a known time zone (e.g. UTC, America/Los_Angeles)") from None
    return str(value)


def parse_product_id(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError("product id must be digits")
    text = str(value).strip()
    if not re.fullmatch(r"\d{1,30}", text):
        raise ValueError(f"product id {text!r} must be digits")
    return text


Commission = Annotated[int, BeforeValidator(parse_commission)]
Weekday = Annotated[str, BeforeValidator(parse_weekday)]
TimeZone = Annotated[str, BeforeValidator(parse_timezone)]
ProductId = Annotated[str, BeforeValidator(parse_product_id)]
Slug = Annotated[str, Field(pattern=SLUG)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Product(Strict):
    id: ProductId
    commission: Commission


class Tier(Strict):
    name: Slug
    min_followers: int = Field(ge=0)
    daily_cap: int | None = Field(default=None, ge=0, le=1_000_000)
    commission: Commission | None = None  # overrides each product's commission for this tier
    message: str | None = None  # overrides the campaign message for this tier


class Schedule(Strict):
    timezone: TimeZone = "UTC"
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    daily_target: int = Field(ge=1, le=1_000_000)

    @field_validator("days")
    @classmethod
    def _unique_days(cls, days: list[str]) -> list[str]:
        if len(set(days)) != len(days):
            raise ValueError("days are repeated")
        return days


class Limits(Strict):
    requests_per_second: float = Field(default=50, ge=0.01, le=50)
    # what the rate counts together: the brand's shop, all endpoints (the default; "shop" says the same); the
    # shop per endpoint ("api", the platform's documented rule); or every brand on the app key ("app", when
    # several brands share one app and the platform is taken to count per app)
    rate_scope: Literal["brand", "shop", "api", "app"] = "brand"
    daily_requests: int = Field(default=10_000, ge=1, le=10_000)
    reserve_requests: int = Field(default=500, ge=0)
    quota_timezone: TimeZone = "UTC"
    # The weekly outreach quota follows the seller's tier (last-30-day GMV); the platform does not publish
    # the sizes, so these are defaults and an explicit `weekly_outreach` wins.
    seller_tier: Literal["new", "tier1", "tier2", "tier3"] = "tier2"
    weekly_outreach: int = Field(default=0, ge=0, le=1_000_000)  # 0: from seller_tier
    outreach_timezone: TimeZone = "Etc/GMT+8"  # "Sunday 12:00 GMT-8"
    outreach_reset_day: Weekday = "sun"
    outreach_reset_hour: int = Field(default=12, ge=0, le=23)
    creators_per_request: int = Field(default=50, ge=1, le=50)

    @property
    def outreach_per_week(self) -> int:
        return self.weekly_outreach or OUTREACH_BY_SELLER_TIER[self.seller_tier]

    @model_validator(mode="after")
    def _reserve_below_daily(self) -> Limits:
        if self.reserve_requests >= self.daily_requests:
            raise ValueError(
                f"reserve_requests ({self.reserve_requests}) must be below daily_requests ({self.daily_requests})"
            )
        return self


class Targeting(Strict):
    min_followers: int | None = Field(default=None, ge=0)
    max_followers: int | None = Field(default=None, ge=0)
    categories: list[str] | None = Field(default=None, min_length=1)
    min_gmv_30d: float | None = Field(default=None, ge=0)
    min_engagement_rate: float | None = Field(default=None, ge=0, le=1)
    active_within_days: int | None = Field(default=None, ge=1)


class Lifecycle(Strict):
    """When creators are left out of plans for a while (unresponsive, inactive)."""

    unresponsive_after: int = Field(default=2, ge=1, le=100)  # invitations left unanswered...
    answer_within_days: int = Field(default=14, ge=1, le=365)  # ...for this long
    inactive_after_days: int = Field(default=60, ge=1, le=3650)  # no activity (creators file) for this long
    cooldown_days: int = Field(default=60, ge=1, le=3650)  # how long an unresponsive creator is left out


class CreatorsSource(Strict):
    file: str = Field(min_length=1)


class Campaign(Strict):
    campaign: Slug
    brand: Slug
    products: list[Product] = Field(min_length=1, max_length=1000)
    message: str = Field(min_length=1, max_length=2000)
    end_date: date
    contact_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    free_sample: bool = False
    sample_approval_exempt: bool = False
    creators: CreatorsSource
    tiers: list[Tier] = Field(min_length=1)
    schedule: Schedule
    limits: Limits = Field(default_factory=Limits)
    targeting: Targeting | None = None
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    priority: int = 0
    ranking: Literal["learned", "followers", "random"] = "learned"
    api_version: Literal["202405", "202508"] = "202405"

    @field_validator("message")
    @classmethod
    def _known_placeholders(cls, message: str) -> str:
        check_placeholders(message)
        return message

    @field_validator("products")
    @classmethod
    def _unique_products(cls, products: list[Product]) -> list[Product]:
        seen: set[str] = set()
        for p in products:
            if p.id in seen:
                raise ValueError(f"product {p.id} is listed twice")
            seen.add(p.id)
        return products

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, tiers: list[Tier]) -> list[Tier]:
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be unique")
        for t in tiers:
            if t.message is not None:
                check_placeholders(t.message)
        for i, t in enumerate(tiers):
            shadow = next((e for e in tiers[:i] if e.min_followers <= t.min_followers), None)
            if shadow is not None:
                raise ValueError(
                    f"tier {t.name!r} can never match: tier {shadow.name!r} before it already takes every creator "
                    f"with {shadow.min_followers}+ followers (first match wins: list the largest min_followers first)"
                )
        return tiers

    # --- derived -----------------------------------------------------------------------------
    @property
    def key(self) -> str:
        return f"{self.brand}/{self.campaign}"

    def tier_for(self, followers: int | None) -> Tier | None:
        f = followers or 0
        for t in self.tiers:
            if f >= t.min_followers:
                return t
        return None

    def message_for(self, tier: Tier | None) -> str:
        return (tier.message if tier and tier.message else None) or self.message

    def personal(self, tier: Tier | None) -> bool:
        """A message naming the creator must go out one creator per request."""
        return bool(placeholders(self.message_for(tier)) & PER_CREATOR_FIELDS)


def placeholders(message: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(message) if name is not None}


def check_placeholders(message: str) -> None:
    try:
        names = placeholders(message)
    except ValueError as exc:
        raise ValueError(f"message template is malformed ({exc}); write {{{{ and }}}} for literal braces") from None
    unknown = names - MESSAGE_FIELDS
    if unknown:
        raise ValueError(
            f"message uses unknown placeholder(s) {', '.join(sorted('{' + u + '}' for u in unknown))}; "
            f"known: {', '.join(sorted('{' + k + '}' for k in MESSAGE_FIELDS))}"
        )


# --- YAML with positions -----------------------------------------------------------------------------
Path_ = tuple[str | int, ...]


class _Positions:
    def __init__(self) -> None:
        self.value: dict[Path_, tuple[int, int]] = {}
        self.key: dict[Path_, tuple[int, int]] = {}

    def at(self, loc: Path_, prefer_key: bool = False) -> tuple[int, int]:
        for n in range(len(loc), -1, -1):
            prefix = tuple(loc[:n])
            if prefer_key and prefix in self.key:
                return self.key[prefix]
            if prefix in self.value:
                return self.value[prefix]
            if prefix in self.key:
                return self.key[prefix]
        return (1, 1)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


MAX_NODES = 200_000  # a campaign has a few hundred; aliases can multiply nodes exponentially ("billion laughs")
MAX_DEPTH = 50


class _TooComplex(Exception):
    pass


def _to_python(
    node: yaml.Node, path: Path_, pos: _Positions, problems: list[Problem], file: str, ctor: yaml.SafeLoader,
    budget: list[int] | None = None,
) -> Any:
    budget = budget if budget is not None else [MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0 or len(path) > MAX_DEPTH:
        raise _TooComplex(_mark(node))
    pos.value[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = ctor.construct_object(key_node, deep=True) if isinstance(key_node, yaml.ScalarNode) else [key_node]
            if isinstance(key, (list, dict)):
                problems.append(Problem(file, *_mark(key_node), "a key must be a plain name"))
                continue
            key = str(key)
            if key in first_seen:
                problems.append(Problem(
                    file, *_mark(key_node), f"duplicate key {key!r} (first on line {first_seen[key]})"
                ))
                continue
            first_seen[key] = _mark(key_node)[0]
            pos.key[(*path, key)] = _mark(key_node)
            out[key] = _to_python(value_node, (*path, key), pos, problems, file, ctor, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, (*path, i), pos, problems, file, ctor, budget) for i, v in enumerate(node.value)]
    try:
        return ctor.construct_object(node, deep=True)
    except (ValueError, OverflowError):
        # e.g. 2099-13-45 looks like a date to YAML but is none: keep the text, the model says what is wrong
        return node.value


def read_text(path: Path, what: str) -> str:
    """Read an input file as UTF-8 (a BOM is fine), or say clearly why it cannot be read."""
    from trendio_cli.errors import BadInput

    if not path.exists():
        raise BadInput(f"{path}: no such {what}")
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not a {what}")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES and what == "campaign file":
            raise BadInput(f"{path}: {size} bytes is too large for a campaign file (at most {MAX_FILE_BYTES})")
        raw = path.read_bytes()
    except PermissionError:
        raise BadInput(f"{path}: permission denied") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ProblemsFound([f"{path}:{line}:{col}: not UTF-8 text (byte 0x{raw[exc.start]:02x})"]) from None


def parse_yaml_with_positions(text: str, file: str) -> tuple[Any, _Positions, list[Problem]]:
    problems: list[Problem] = []
    pos = _Positions()
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, pos, [Problem(file, 1, 1, "the file is empty")]
        data = _to_python(node, (), pos, problems, file, loader)
    except _TooComplex as exc:
        line, col = exc.args[0]
        return None, pos, [Problem(file, line, col, f"the document is too large or too deeply nested "
                                                    f"(more than {MAX_NODES} values or {MAX_DEPTH} levels, "
                                                    f"counting what aliases repeat)")]
    except RecursionError:
        return None, pos, [Problem(file, 1, 1, "the document is nested too deeply")]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or "YAML syntax error"
        if "\\t" in what or "\t" in what:
            what += " (YAML does not allow tabs for indentation)"
        return None, pos, [Problem(file, line, col, f"YAML syntax error: {what}")]
    except yaml.YAMLError as exc:
        return None, pos, [Problem(file, 1, 1, f"YAML error: {exc}")]
    finally:
        loader.dispose()
    return data, pos, problems


def _unwrap_model(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap_model(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
        return None
    if origin is list:
        return _unwrap_model(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _model_at(loc: Path_) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Campaign
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _unwrap_model(model.model_fields[part].annotation)
    return model


def _message_for(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    field = ".".join(str(p) for p in loc) or "campaign"
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        key = str(loc[-1])
        msg = f"unknown key {key!r}"
        if parent is not None:
            close = difflib.get_close_matches(key, list(parent.model_fields), n=1, cutoff=0.6)
            if close:
                msg += f": did you mean {close[0]!r}?"
            else:
                msg += f" (allowed: {', '.join(parent.model_fields)})"
        return msg
    if kind == "missing":
        return f"missing required field {field!r}"
    text = error["msg"]
    text = text.removeprefix("Value error, ")
    return f"{field}: {text}"


def _clean_loc(loc: tuple[Any, ...]) -> Path_:
    # pydantic adds validator names (e.g. "function-before[...]") to locations of Annotated fields
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p and "]" in p)))


def parse_campaign(text: str, file: str) -> tuple[Campaign | None, list[Problem]]:
    data, pos, problems = parse_yaml_with_positions(text, file)
    if data is None and problems:
        return None, problems
    if not isinstance(data, dict):
        return None, [*problems, Problem(file, 1, 1, "a campaign file must be a YAML mapping of fields")]
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _clean_loc(tuple(err["loc"]))
            err = {**err, "loc": loc}
            line, col = pos.at(loc, prefer_key=err["type"] in ("extra_forbidden",))
            problems.append(Problem(file, line, col, _message_for(err)))
        return None, sorted(problems, key=lambda p: (p.line, p.col))
    return (campaign if not errors_only(problems) else None), problems


def load_campaign(path: Path) -> Campaign:
    """Load and validate a campaign file; any problem raises ProblemsFound with every problem listed."""
    campaign, problems = parse_campaign(read_text(path, "campaign file"), str(path))
    if campaign is None or errors_only(problems):
        raise ProblemsFound([str(p) for p in problems])
    return campaign


def creators_path(campaign: Campaign, campaign_file: Path) -> Path:
    return (campaign_file.parent / campaign.creators.file).resolve()


def find_line(text: str, key: str) -> tuple[int, int]:
    """Position of a top-level key in the file text, for problems found after parsing."""
    for i, line in enumerate(text.splitlines(), 1):
        if re.match(rf"^{re.escape(key)}\s*:", line):
            return i, 1
    return 1, 1
