"""Campaign files: the pydantic model of the YAML format, and a loader that names the file, line and column
of every problem (syntax, type, unknown key with a "did you mean", duplicate key), in the product's words."""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import re
import stat
import string
import types
import typing
import zoneinfo
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
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

# The platform's bounds for `target_commission_rate` (create-target-collaboration spec: 1000..8000,
# hundredths of a percent).
MIN_COMMISSION = 1000  # 10%
MAX_COMMISSION = 8000  # 80%
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MESSAGE_FIELDS = {"handle", "product_count", "brand", "campaign", "tier"}
PER_CREATOR_FIELDS = {"handle"}
# The platform documents no length for `message`; this bounds what one create carries.
MAX_MESSAGE = 2000
MAX_FOLLOWERS = 10**12  # far above any account, far below SQLite's 2**63
MAX_GMV = 10**12
MAX_SLUG = 64
MAX_PRODUCT_ID = 64
MAX_EMAIL = 254
MAX_PATH = 4096
MAX_FILE_BYTES = 5 * 1024 * 1024
# What each kind of input may weigh: checked before reading (a device or a pipe could be endless).
MAX_BYTES = {"campaign file": MAX_FILE_BYTES, "creators file": 512 * 1024 * 1024, "plan file": 256 * 1024 * 1024}
# `api_version` was the campaign key before `api` (the create endpoint each `api` means: endpoints.CREATE_BY_API)
OLD_API_VERSIONS = {"202405": "legacy-ids", "202508": "open-ids"}
# new sellers get a one-time pack of 1,000; the rest are this project's defaults (not published)
OUTREACH_BY_SELLER_TIER = {"new": 1_000, "tier1": 2_000, "tier2": 5_000, "tier3": 10_000}


class LocatedError(ValueError):
    """A model-level rule broken by one field: the problem is shown at that field's line, not the model's."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


# --- field parsers -----------------------------------------------------------------------------------
def shown(value: Any, limit: int = 60) -> str:
    """A value quoted for a message, shortened when long (the file holds the rest)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    text = repr(value) if isinstance(value, str) else repr(str(value))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


COMMISSION_FORMS = "write a percentage like 15%, a fraction like 0.15 or hundredths of a percent like 1500"


def parse_commission(value: Any) -> int:
    """`15%`, `0.15` and `1500` (hundredths of a percent) all mean 15%; returns hundredths of a percent."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError(f"commission must be a number: {COMMISSION_FORMS}")
    text = str(value).strip()
    percent = text.endswith("%")
    # bounded before Decimal sees it: a long text or a huge exponent would make the arithmetic crawl
    number: Decimal | None = None
    if len(text) <= 32:
        try:
            number = Decimal(text[:-1].strip() if percent else text)
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite():
        raise ValueError(f"commission {shown(text)} is not a number: {COMMISSION_FORMS}")
    bounds = f"{MIN_COMMISSION / 100:g}%..{MAX_COMMISSION / 100:g}%"
    if not -8 <= number.adjusted() <= 8:
        raise ValueError(f"commission {shown(text)} is outside {bounds}")
    hundredths = number * 100 if percent else number * 10000 if 0 < number < 1 else number
    if hundredths != hundredths.to_integral_value():
        raise ValueError(f"commission {text} has more precision than 0.01%")
    result = int(hundredths)
    if not MIN_COMMISSION <= result <= MAX_COMMISSION:
        # `commission: 15` is 15 hundredths of a percent, almost certainly meant as 15%
        hint = f" (did you mean {text}%?)" if not percent and MIN_COMMISSION <= result * 100 <= MAX_COMMISSION \
            else ""
        meaning = "" if percent else f" = {result / 100:g}%"
        raise ValueError(f"commission {text}{meaning} is outside {bounds}{hint}")
    return result


def parse_weekday(value: Any) -> str:
    text = str(value).strip().lower()[:3] if isinstance(value, str) else ""
    if text not in WEEKDAYS or str(value).strip().lower() not in (text, _full_day(text)):
        raise ValueError(f"{shown(value)} is not a weekday: use {', '.join(WEEKDAYS)}")
    return text


def _full_day(short: str) -> str:
    return {"mon": "monday", "tue": "tuesday", "wed": "wednesday", "thu": "thursday", "fri": "friday",
            "sat": "saturday", "sun": "sunday"}[short]


@functools.lru_cache(maxsize=1)
def _time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())  # a scan of the tz database: only for a hint


def parse_timezone(value: Any) -> str:
    # ZoneInfo also opens folders and odd files of the tz database ("America", "zone.tab") and fails there
    # with errors of every kind: each of them means "not a time zone"
    if isinstance(value, str) and 0 < len(value) <= 64:
        try:
            zoneinfo.ZoneInfo(value)
            return value
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    hint = ""
    if isinstance(value, str) and len(value) <= 64:
        close = difflib.get_close_matches(value.replace(" ", "_"), _time_zones(), n=1, cutoff=0.85)
        if close:
            hint = f": did you mean {close[0]}?"
    raise ValueError(f"{shown(value)} is not a known time zone{hint or ' (e.g. UTC, America/Los_Angeles)'}")


def parse_product_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"product id {shown(value)} must be written with the digits 0-9 only (quote it)")
    text = str(value).strip()
    if not (0 < len(text) <= MAX_PRODUCT_ID and text.isascii() and text.isdigit()):
        raise ValueError(f"product id {shown(text)} must be 1 to {MAX_PRODUCT_ID} of the digits 0-9")
    return text


def parse_category(value: Any) -> Any:
    """A targeted category: a name, or the marketplace's category id (what `creators discover` writes), which
    YAML reads as a number when it is not quoted."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def check_slug(value: str) -> str:
    if not (len(value) <= MAX_SLUG and re.fullmatch(r"[a-z0-9][a-z0-9_-]*", value)):
        raise ValueError(f"{shown(value)} must be 1 to {MAX_SLUG} lowercase letters, digits, '-' or '_', "
                         f"starting with a letter or a digit")
    return value


EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f.]+")


def check_email(value: str) -> str:
    if not (len(value) <= MAX_EMAIL and EMAIL.fullmatch(value)):
        raise ValueError(f"{shown(value)} is not an email address like partners@brand.example")
    return value


def check_path_text(value: str) -> str:
    if len(value) > MAX_PATH or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"{shown(value)} is not a usable file name (control characters or too long)")
    return value


def check_text(value: str) -> str:
    """Free text (a message) may break lines; other control characters would reach creators as garbage."""
    bad = next((ch for ch in value if (ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127), None)
    if bad is not None:
        raise ValueError(f"contains the control character U+{ord(bad):04X}, which a message cannot carry")
    return value


Commission = Annotated[int, BeforeValidator(parse_commission)]
Weekday = Annotated[str, BeforeValidator(parse_weekday)]
TimeZone = Annotated[str, BeforeValidator(parse_timezone)]
ProductId = Annotated[str, BeforeValidator(parse_product_id)]
Category = Annotated[str, BeforeValidator(parse_category), Field(max_length=256)]
Slug = Annotated[str, AfterValidator(check_slug)]
Email = Annotated[str, AfterValidator(check_email)]
MessageText = Annotated[str, AfterValidator(check_text)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Product(Strict):
    id: ProductId
    commission: Commission


class Tier(Strict):
    name: Slug
    min_followers: int = Field(ge=0, le=MAX_FOLLOWERS)
    daily_cap: int | None = Field(default=None, ge=0, le=1_000_000)
    commission: Commission | None = None  # overrides each product's commission for this tier
    message: MessageText | None = Field(default=None, min_length=1, max_length=MAX_MESSAGE)  # overrides the campaign's

    @field_validator("message")
    @classmethod
    def _known_placeholders(cls, message: str | None) -> str | None:
        if message is not None:
            check_placeholders(message)
        return message


class Schedule(Strict):
    timezone: TimeZone = "UTC"
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1, max_length=7)
    daily_target: int = Field(ge=1, le=1_000_000)

    @field_validator("days")
    @classmethod
    def _unique_days(cls, days: list[str]) -> list[str]:
        if len(set(days)) != len(days):
            raise ValueError("days are repeated")
        return days


class Limits(Strict):
    # below 0.1/s a run would wait minutes between requests, holding the brand's lock all along
    requests_per_second: float = Field(default=50, ge=0.1, le=50)
    # what the rate counts together: the brand's shop, all endpoints (the default; "shop" says the same); the
    # shop per endpoint ("api", the platform's documented rule); or every brand on the app key ("app", when
    # several brands share one app and the platform is taken to count per app)
    rate_scope: Literal["brand", "shop", "api", "app"] = "brand"
    daily_requests: int = Field(default=10_000, ge=1, le=10_000)
    reserve_requests: int = Field(default=500, ge=0, le=10_000)
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
            raise LocatedError(
                ("reserve_requests",),
                f"{self.reserve_requests} must be below daily_requests ({self.daily_requests})"
            )
        return self


class Targeting(Strict):
    min_followers: int | None = Field(default=None, ge=0, le=MAX_FOLLOWERS)
    max_followers: int | None = Field(default=None, ge=0, le=MAX_FOLLOWERS)
    categories: list[Category] | None = Field(default=None, min_length=1, max_length=10_000)
    min_gmv_30d: float | None = Field(default=None, ge=0, le=MAX_GMV)
    min_engagement_rate: float | None = Field(default=None, ge=0, le=1)
    active_within_days: int | None = Field(default=None, ge=1, le=3650)

    @functools.cached_property
    def _categories(self) -> frozenset[str] | None:
        return None if self.categories is None else frozenset(x.lower() for x in self.categories)

    def wants_category(self, category: str | None) -> bool:
        """Whether a creator of this category (the creators file's `category`) is targeted: the same text as
        one of `categories`, case aside. Names and the marketplace's ids are both text, never mapped."""
        return self._categories is None or (category or "").lower() in self._categories


GMV_RANGES = ("GMV_RANGE_0_100", "GMV_RANGE_100_1000", "GMV_RANGE_1000_10000", "GMV_RANGE_10000_AND_ABOVE")
UNITS_SOLD_RANGES = ("UNITS_SOLD_RANGE_0_10", "UNITS_SOLD_RANGE_10_100", "UNITS_SOLD_RANGE_100_1000",
                     "UNITS_SOLD_RANGE_1000_AND_ABOVE")


class Discover(Strict):
    """What `trendio creators discover` searches the creator marketplace for (the marketplace's own filters)."""

    keyword: str | None = Field(default=None, min_length=1, max_length=100)
    min_followers: int | None = Field(default=None, ge=0, le=10**10)
    max_followers: int | None = Field(default=None, ge=0, le=10**10)
    gmv_ranges: list[Literal[GMV_RANGES]] | None = Field(default=None, min_length=1)  # type: ignore[valid-type]
    units_sold_ranges: list[Literal[UNITS_SOLD_RANGES]] | None = Field(  # type: ignore[valid-type]
        default=None, min_length=1)
    limit: int = Field(default=1000, ge=1, le=100_000)  # creators to write at most


class Lifecycle(Strict):
    """When creators are left out of plans for a while (unresponsive, inactive)."""

    unresponsive_after: int = Field(default=1, ge=1, le=100)  # invitations not taken up (one is evidence)...
    answer_within_days: int = Field(default=14, ge=1, le=365)  # ...for this long
    inactive_after_days: int = Field(default=60, ge=1, le=3650)  # no activity (creators file) for this long
    cooldown_days: int = Field(default=60, ge=1, le=3650)  # how long an unresponsive creator is left out


class CreatorsSource(Strict):
    file: Annotated[str, AfterValidator(check_path_text)] = Field(min_length=1)


class Campaign(Strict):
    campaign: Slug
    brand: Slug
    products: list[Product] = Field(min_length=1, max_length=1000)
    message: MessageText = Field(min_length=1, max_length=MAX_MESSAGE)
    end_date: date
    contact_email: Email  # the platform requires seller_contact_info.email on every create
    free_sample: bool = False
    sample_approval_exempt: bool = False
    creators: CreatorsSource
    tiers: list[Tier] = Field(min_length=1, max_length=100)
    schedule: Schedule
    limits: Limits = Field(default_factory=Limits)
    targeting: Targeting | None = None
    discover: Discover | None = None
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    ranking: Literal["learned", "followers", "random"] = "learned"
    # open-ids: the 202508 create, creators named by Creator Open ID; legacy-ids: the 202405 create with
    # the plain numeric ids (the creators file's creator_user_id), for shops that still use them
    api: Literal["open-ids", "legacy-ids"] = "open-ids"

    @model_validator(mode="before")
    @classmethod
    def _old_api_version(cls, data: Any) -> Any:
        """Campaigns (and plans) written before `api` said `api_version: "202405"` or `"202508"`."""
        if isinstance(data, dict) and "api_version" in data:
            data = dict(data)
            old = str(data.pop("api_version"))
            if old not in OLD_API_VERSIONS:
                raise ValueError(f"api_version {shown(old)} is not 202405 or 202508 (write api: open-ids or "
                                 f"api: legacy-ids instead)")
            if data.setdefault("api", OLD_API_VERSIONS[old]) != OLD_API_VERSIONS[old]:
                raise ValueError(f"api_version {old} contradicts api: {data['api']} (keep only api)")
        return data

    @field_validator("message")
    @classmethod
    def _known_placeholders(cls, message: str) -> str:
        check_placeholders(message)
        return message

    @field_validator("products")
    @classmethod
    def _unique_products(cls, products: list[Product]) -> list[Product]:
        first: dict[str, int] = {}
        for i, p in enumerate(products):
            if p.id in first:
                raise LocatedError(("products", i, "id"),
                                   f"product {p.id} is listed twice (first as products.{first[p.id]})")
            first[p.id] = i
        return products

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, tiers: list[Tier]) -> list[Tier]:
        first: dict[str, int] = {}
        for i, t in enumerate(tiers):
            if t.name in first:
                raise LocatedError(("tiers", i, "name"), f"tier {t.name!r} is listed twice: tier names must be unique")
            first[t.name] = i
        for i, t in enumerate(tiers):
            shadow = next((e for e in tiers[:i] if e.min_followers <= t.min_followers), None)
            if shadow is not None:
                raise LocatedError(
                    ("tiers", i, "min_followers"),
                    f"tier {t.name!r} can never match: tier {shadow.name!r} before it already takes every creator "
                    f"with {shadow.min_followers}+ followers (first match wins: list the largest min_followers first)"
                )
        return tiers

    @model_validator(mode="after")
    def _messages_fit(self) -> Campaign:
        for i, tier in ((None, None), *enumerate(self.tiers)):
            if tier is not None and not tier.message:
                continue
            length = self.message_length(tier, len("there"))
            if length > MAX_MESSAGE:
                raise LocatedError(("message",) if tier is None else ("tiers", i, "message"),
                                   f"{length} characters once its placeholders are filled in: at most {MAX_MESSAGE}")
        return self

    # --- derived -----------------------------------------------------------------------------
    @property
    def key(self) -> str:
        return f"{self.brand}/{self.campaign}"

    @property
    def uses_legacy_ids(self) -> bool:
        """Creates name creators by their plain numeric ids (the 202405 create) instead of open ids."""
        return self.api == "legacy-ids"

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

    def message_length(self, tier: Tier | None, handle_length: int) -> int:
        """The longest a tier's message can be once rendered, for a handle of this length."""
        return len(self.message_for(tier).format(
            handle="x" * handle_length, product_count=min(len(self.products), 100), brand=self.brand,
            campaign=self.campaign, tier="x" * max(len(t.name) for t in self.tiers),
        ))


def placeholders(message: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(message) if name is not None}


def check_placeholders(message: str) -> None:
    """Only plain `{name}` placeholders of the known names: a format spec or a conversion (`{handle:d}`,
    `{tier!r}`, `{handle:>9999}`) would fail or balloon when the message is rendered for each creator."""
    known = ", ".join(sorted("{" + k + "}" for k in MESSAGE_FIELDS))
    try:
        parts = list(string.Formatter().parse(message))
    except ValueError:
        raise ValueError("a '{' or '}' is not part of a placeholder; "
                         "write {{ and }} for literal braces") from None
    unknown: list[str] = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if name not in MESSAGE_FIELDS:
            unknown.append(written)
        elif spec or conversion:
            raise ValueError(f"placeholder {shown(written)} has a format or a conversion: write "
                             f"placeholders plainly, like {{{name}}}")
    if unknown:
        raise ValueError(f"unknown placeholder(s) {', '.join(shown(u) for u in sorted(set(unknown)))}; "
                         f"known: {known}, written plainly")


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


def read_bytes(path: Path, what: str) -> bytes:
    """An input file's bytes, bounded: only a regular file, and no larger than its kind may be. A device
    (`/dev/zero`), a pipe or a socket is refused before anything is read (it could be endless, or block)."""
    from trendio_cli.errors import BadInput

    limit = MAX_BYTES.get(what, MAX_FILE_BYTES)
    with contextlib.suppress(OSError, ValueError):  # the type first: a socket cannot even be opened
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise BadInput(f"{path}: not a regular file (a device, a pipe or a socket): give a {what}")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it changes nothing for a regular file
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise BadInput(f"{path}: no such {what}") from None
    except PermissionError:
        raise BadInput(f"{path}: permission denied") from None
    except ValueError:  # a NUL in the name
        raise BadInput(f"{path!r}: a file name cannot contain a NUL character") from None
    except OSError as exc:
        if Path(path).is_dir():
            raise BadInput(f"{path}: is a directory, not a {what}") from None
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise BadInput(f"{path}: is a directory, not a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise BadInput(f"{path}: not a regular file (a device, a pipe or a socket): give a {what}")
        if info.st_size > limit:
            raise BadInput(f"{path}: {info.st_size} bytes is too large for a {what} (at most {limit})")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(raw) > limit:  # it grew while we read it
        raise BadInput(f"{path}: too large for a {what} (at most {limit} bytes)")
    return raw


def read_text(path: Path, what: str) -> str:
    """Read an input file as UTF-8 (a BOM is fine), or say clearly why it cannot be read."""
    raw = read_bytes(path, what)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ProblemsFound([f"{path}:{line}:{col}: not UTF-8 text (byte 0x{raw[exc.start]:02x})"]) from None


def _text_position(text: str, index: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def parse_yaml_with_positions(text: str, file: str) -> tuple[Any, _Positions, list[Problem]]:
    problems: list[Problem] = []
    pos = _Positions()
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # checks every character first: a NUL or another control character
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
    except yaml.reader.ReaderError as exc:
        line, col = _text_position(text, exc.position)
        name = "a NUL character" if exc.character == 0 else f"the character U+{exc.character:04X}"
        return None, pos, [Problem(file, line, col, f"{name} is not allowed in a YAML file")]
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
        if loader is not None:
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


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def key_text(key: Any) -> str:
    """A key as it sits in a field path: bare when it is a plain name, quoted when it could break a line."""
    text = str(key)
    return text if _PLAIN_KEY.fullmatch(text) else shown(text)


def field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(key_text(p) for p in loc)


def _ctx(error: dict[str, Any], key: str) -> Any:
    return (error.get("ctx") or {}).get(key)


def _items(n: Any) -> str:
    return f"{n} item{'' if n == 1 else 's'}"


# pydantic's error types, said in the product's words (its own texts talk about "Input" and regexes)
_PLAIN: dict[str, Any] = {
    "int_type": "must be a whole number", "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number", "int_parsing_size": "is far too large",
    "float_type": "must be a number", "float_parsing": "must be a number",
    "finite_number": "must be a finite number", "bool_type": "must be true or false",
    "bool_parsing": "must be true or false", "string_type": "must be text",
    "string_unicode": "must be text", "list_type": "must be a list", "tuple_type": "must be a list",
    "dict_type": "must be a mapping of keys to values", "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "date_type": "must be a date like 2026-12-31", "date_parsing": "must be a date like 2026-12-31",
    "date_from_datetime_parsing": "must be a date like 2026-12-31",
    "date_from_datetime_inexact": "must be a date like 2026-12-31 (without a time)",
    "date_future": "must be a date in the future", "date_past": "must be a date in the past",
    "greater_than_equal": lambda e: f"must be at least {_ctx(e, 'ge')}",
    "greater_than": lambda e: f"must be more than {_ctx(e, 'gt')}",
    "less_than_equal": lambda e: f"must be at most {_ctx(e, 'le')}",
    "less_than": lambda e: f"must be less than {_ctx(e, 'lt')}",
    "string_too_short": lambda e: "must not be empty" if _ctx(e, "min_length") == 1
    else f"must be at least {_ctx(e, 'min_length')} characters",
    "string_too_long": lambda e: f"must be at most {_ctx(e, 'max_length')} characters",
    "too_short": lambda e: "must not be empty" if _ctx(e, "min_length") == 1
    else f"must list at least {_items(_ctx(e, 'min_length'))}",
    "too_long": lambda e: f"must list at most {_items(_ctx(e, 'max_length'))}",
    "literal_error": lambda e: f"must be {_ctx(e, 'expected')}",
    "enum": lambda e: f"must be {_ctx(e, 'expected')}",
    "string_pattern_mismatch": "is not written in an allowed form",
}
_SHOW_INPUT = {"int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "finite_number",
               "bool_type", "bool_parsing", "string_type", "date_type", "date_parsing", "date_from_datetime_parsing",
               "date_from_datetime_inexact", "literal_error", "enum", "greater_than_equal", "greater_than",
               "less_than_equal", "less_than", "list_type", "dict_type", "model_type"}


def error_text(error: dict[str, Any], field: str) -> str:
    """One pydantic error as `field: what is wrong`, without pydantic's wording."""
    kind = error["type"]
    if kind in ("value_error", "assertion_error"):
        cause = _ctx(error, "error")
        text = str(cause) if cause is not None else str(error["msg"]).removeprefix("Value error, ")
        return f"{field}: {text}" if field else text
    if kind == "missing":
        return f"missing required field {field!r}"
    plain = _PLAIN.get(kind, "is not allowed here")
    text = plain(error) if callable(plain) else plain
    if kind in _SHOW_INPUT and not isinstance(error.get("input"), (dict, list)):
        text += f" (got {shown(error.get('input'))})"
    return f"{field or 'the document'}: {text}"


def _message_for(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        key = str(loc[-1])
        msg = f"unknown key {shown(key)}"
        if parent is not None:
            close = difflib.get_close_matches(key, list(parent.model_fields), n=1, cutoff=0.6)
            if close:
                msg += f": did you mean {close[0]!r}?"
            else:
                msg += f" (allowed: {', '.join(parent.model_fields)})"
        return msg
    return error_text(error, field_name(loc))


def _relocated(loc: Path_, inner: Path_) -> Path_:
    """A LocatedError's field, below the model that raised it: `limits` + `reserve_requests`, or `tiers` +
    (`tiers`, 2, `name`) from a validator of the `tiers` field itself."""
    if loc and inner and inner[0] == loc[-1]:
        return (*loc[:-1], *inner)
    return (*loc, *inner)


def _clean_loc(loc: tuple[Any, ...]) -> Path_:
    # pydantic adds validator names (e.g. "function-before[...]") to locations of Annotated fields
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p and "]" in p)))


@dataclass
class ParsedCampaign:
    """What a campaign file's text gave: the model (None if it has errors), every problem, and the raw
    data with its positions (so later checks can name a line even when the model could not be built)."""

    file: str
    campaign: Campaign | None
    problems: list[Problem]
    data: Any
    positions: _Positions
    failed: frozenset[str] = frozenset()  # the top-level fields an error names ("": the campaign as a whole)

    def at(self, *loc: str | int) -> tuple[int, int]:
        return self.positions.at(tuple(loc))

    def draft(self, reads: Collection[str]) -> Campaign | None:
        """The campaign as far as it parsed, for a check that reads only the fields in `reads`: the campaign
        itself when it parsed; else, when each of `reads` did, the file's fields that parsed completed with the
        starter campaign's (which the check does not read); else None. So a check runs on its own fields
        whatever else is wrong, and every problem is reported at once."""
        if self.campaign is not None:
            return self.campaign
        if not isinstance(self.data, dict) or "" in self.failed or self.failed & set(reads):
            return None
        parsed = {k: v for k, v in self.data.items() if k not in self.failed}
        # a field the check reads and the file leaves out takes the model's default, never the starter's
        filler = {k: v for k, v in _starter_campaign().items() if k not in reads}
        try:
            return Campaign.model_validate({**filler, **parsed})
        except ValidationError:  # the fields that parsed do not go together with the starter's
            return None


@functools.cache
def _starter_campaign() -> dict[str, Any]:
    """The fields of the starter campaign `trendio init` writes: a whole, valid campaign."""
    from importlib import resources

    return yaml.safe_load((resources.files("trendio_cli") / "data" / "starter" / "campaign.yaml").read_text())


def _old_api_version(data: dict[str, Any], pos: _Positions, file: str) -> list[Problem]:
    """`api_version` became `api`: the old values still work, with a warning naming the new spelling."""
    if "api_version" not in data:
        return []
    old = str(data["api_version"])
    line, col = pos.at(("api_version",), prefer_key=True)
    mapped = OLD_API_VERSIONS.get(old)
    if mapped is None:
        del data["api_version"]
        return [Problem(file, line, col, f"api_version {shown(old)} is not 202405 or 202508; it is replaced by "
                                         f"api: open-ids (202508) or api: legacy-ids (202405)")]
    if data.get("api", mapped) != mapped:
        del data["api_version"]
        return [Problem(file, line, col, f"api_version {old} contradicts api: {shown(data['api'])}; "
                                         f"keep only api")]
    del data["api_version"]
    data["api"] = mapped
    return [Problem(file, line, col, f"api_version {old} is now written api: {mapped}", "warning")]


def parse_campaign_text(text: str, file: str) -> ParsedCampaign:
    data, pos, problems = parse_yaml_with_positions(text, file)
    if data is None and problems:
        return ParsedCampaign(file, None, problems, None, pos)
    if not isinstance(data, dict):
        problems.append(Problem(file, 1, 1, "a campaign file must be a YAML mapping of fields"))
        return ParsedCampaign(file, None, problems, data, pos)
    problems.extend(_old_api_version(data, pos, file))
    failed: set[str] = set()
    try:
        campaign: Campaign | None = Campaign.model_validate(data)
    except ValidationError as exc:
        campaign = None
        for err in exc.errors():
            loc = _clean_loc(tuple(err["loc"]))
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, LocatedError):
                loc = _relocated(loc, cause.loc)
            err = {**err, "loc": loc}
            failed.add(str(loc[0]) if loc else "")
            line, col = pos.at(loc, prefer_key=err["type"] in ("extra_forbidden", "missing"))
            problems.append(Problem(file, line, col, _message_for(err)))
    problems.sort(key=lambda p: (p.line, p.col))
    return ParsedCampaign(file, campaign if not errors_only(problems) else None, problems, data, pos,
                          frozenset(failed))


def parse_campaign(text: str, file: str) -> tuple[Campaign | None, list[Problem]]:
    parsed = parse_campaign_text(text, file)
    return parsed.campaign, parsed.problems


def load_campaign(path: Path) -> Campaign:
    """Load and validate a campaign file; any problem raises ProblemsFound with every problem listed."""
    campaign, problems = parse_campaign(read_text(path, "campaign file"), str(path))
    if campaign is None or errors_only(problems):
        raise ProblemsFound([str(p) for p in problems])
    return campaign


def creators_path(campaign: Campaign, campaign_file: Path) -> Path:
    return (campaign_file.parent / campaign.creators.file).resolve()
