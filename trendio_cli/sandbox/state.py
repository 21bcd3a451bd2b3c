"""The sandbox's platform: every rule and answer of the documented TikTok Shop affiliate-seller API, as state.

Built from the official reference (the 202508 specs, the developer guides; the 2026 endpoints from the platform's
generated client), not from trendio's client. Pure Python and synchronous: the HTTP layer (`app.py`) calls
`SandboxState.handle` between awaits, so nothing here needs a lock.

Endpoints (all answer the envelope `{code, message, request_id, data}`; `code` 0 is success)
  POST /affiliate_seller/202508/target_collaborations          create_collaboration (creator_user_open_ids)
  POST /affiliate_seller/202405/target_collaborations          create_collaboration, legacy (creator_user_ids)
  POST /affiliate_seller/202508/target_collaborations/search   search_collaborations (counts only)
  GET  /affiliate_seller/202508/target_collaborations/{id}     get_collaboration (products[], creators[])
  POST /affiliate_seller/202410/orders/search                  search_orders (affiliate orders and their SKUs)
  POST /affiliate_seller/202508/marketplace_creators/search    search_creators (page_size 12|20, search_key)
  GET  /affiliate_seller/202508/marketplace_creators/{id}      get_creator (performance, by Creator Open ID)
  GET  /authorization/202309/shops                             get_shops (signed, without shop_cipher)
  POST /affiliate_seller/202605/target_collaborations/conflicts/check   check_conflicts (2026)
  GET  /affiliate_seller/202607/creator_outreach/quota                  outreach_quota (2026)
  POST /affiliate_seller/202610/creator_outreach/eligibility/check      check_eligibility (2026)
  GET  /api/v2/token/refresh                                   refresh_token (the auth host; not signed)
Any other path answers 36009009 (HTTP `path_error_http_status`), a known path with another method 36009010.

The gate, in order: route -> the shop's daily quota (every call counts, refused ones too: 45101004) -> the
rate limit (429, 36009002) -> overload (HTTP 503) -> app_key -> IP allow list (36009033) -> timestamp window
(36009004) -> sign (36009004 missing, 106001 wrong) -> x-tts-access-token (36009004) -> shop_cipher (106013
missing, 101000 not the token's, 36009004 where none is expected) -> token expiry (105002) -> scope (105005)
-> a scripted answer, if one is queued -> a random transient fault -> the body (36009022) -> the endpoint.

Create semantics: every required field is checked (98001004, naming the field); 16024008 a product that is not
the shop's; 50001702 an unavailable product or an unknown creator; 50001703 sensitive words; the ineligible
family (16024020/21/16/06/18/04, 50001702) creates nothing and names the creators or not; a conflicting pair
(the same creator and product, by either route, ever) creates NOTHING and lists `target_collaboration_conflicts`
with code 0 or 16024022; 16024019 when the week's outreach quota (per shop, per creator-level band, bonus first;
the week turns Sundays 12:00 UTC-8; connected creators are free) cannot cover the new creators.

Over simulated time (`/_sandbox/advance`) creators never decline: some add products to their showcase, some of
those post content, and affiliate orders follow, some cancelled or refunded later (`activity.py`).

Settings (`SandboxSettings`, each explained where it is defined), set at start (`trendio sandbox --help`,
`--set NAME=JSON`) or live (POST /_sandbox/settings):
  rate      rate_limit, rate_window_s, rate_scope (api|shop|app), retry_after, rate_limit_envelope,
            overload_rate, overload_envelope
  quota     daily_quota, daily_quota_http_status, quota_timezone
  outreach  weekly_outreach, weekly_outreach_by_shop, outreach_bands, outreach_unlimited, gmv_tier,
            max_follower_count
  tokens    token_lifetime_s, token_expires_after, refresh_token_lifetime_s, refresh_grace_s, revoke_on_refresh,
            auth_http_status, granted_scopes, ip_allowlist, reject_unexpected_cipher
  paths     disabled_endpoints, disabled_answer (path|version), path_error_http_status
  create    min_commission, max_commission, max_name_length, products, unavailable_products, sensitive_words,
            ineligible_permille, ineligible_codes, ineligible_creators, ineligible_mode (named|unnamed),
            ineligible_named_shape, ineligible_name_scope, unknown_creators, conflict_code (0|16024022),
            conflict_id, legacy_conflict_ids
  faults    latency_ms, jitter_ms, fault_rate, fault_forms, lost_rate, clock_skew_s, timestamp_past_s,
            timestamp_future_s
  answers   seed, marketplace_size, open_id_namespace, orders_sort, outreach_quota_nested, region, currency,
            shop_info

Admin routes (neither signed nor counted)
  GET  /_sandbox/stats                   counters (see `snapshot`), the settings, the simulated clock
  GET  /_sandbox/pairs                   every invited (shop, creator, product) with its collaboration
  GET  /_sandbox/settings, POST /_sandbox/settings {name: value, ...}
  POST /_sandbox/advance {"days": n, "seconds": s}   move the simulated clock forward
  POST /_sandbox/reset                   forget everything but the settings (tokens back to the initial ones)
  POST /_sandbox/script {"endpoint": "create_collaboration[/202405]", "answers": [{...}, ...]}
       the next calls to that endpoint get these answers in order, after the signature and rate checks.
       An answer: code, http_status (200), message, data, headers, body (raw text instead of an envelope),
       envelope (false: an empty body), lost (cut the connection), apply (do the real work first; fields left
       out then come from the real answer), delay_ms. GET lists what is queued, DELETE clears it.
  POST /_sandbox/expire_tokens           every access token issued so far is expired from now on
  GET  /_sandbox/creators/{id}           a creator's hidden truth (propensities, expected GMV, level, eligibility)
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import itertools
import json
import math
import random
import re
import time
from bisect import bisect_right, insort
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from trendio_cli.api.credentials import Credentials
from trendio_cli.api.signing import sign
from trendio_cli.sandbox.activity import DAY, Invitation, Order, OrderBook, plan_invitation
from trendio_cli.sandbox.marketplace import (
    CREATOR_LEVELS,
    DEFAULT_NAMESPACE,
    BadFilter,
    Creator,
    Marketplace,
    filters_fingerprint,
    index_of_legacy_id,
    performance_view,
    search_view,
    unit,
)
from trendio_cli.sandbox.tokens import AccessToken, Authorizations, RefreshRefused

OUTREACH_TZ = ZoneInfo("Etc/GMT+8")  # "12:00 GMT-8" on Sundays
# The forms a transient fault takes: coded errors, proxy pages, an empty body, a JSON body cut short with
# honest framing, and a connection reset before any answer.
FAULT_FORMS = ("internal_error", "internal_timeout", "bad_gateway_html", "unavailable_empty", "truncated_json",
               "connection_reset")
INELIGIBLE_CODES = (16024020, 16024021, 16024016, 16024006, 16024018, 16024004, 50001702)
SCOPES = {
    "write": "seller.affiliate_collaboration.write",
    "read": "seller.affiliate_collaboration.read",
    "market": "seller.creator_marketplace.read",
    "shops": "seller.authorization.info",
}
# What the platform says with each code (the gist of the reference's messages).
MESSAGES = {
    0: "Success",
    16024004: "test account and non test account can not cross invite",
    16024006: "The seller cannot invite their official creator.",
    16024008: "There are products that do not belong to this merchant.",
    16024016: "The invitation failed because the creator is already linked with a shop account.",
    16024018: "The creator has been blocked by the seller.",
    16024019: "in sufficient quota to create invitation",
    16024020: "remove excluded creators to create invitation",
    16024021: "invitation contains creator exceed follower limit",
    16024022: "This invitation has exist creator and product, please check conflict pair.",
    16901008: "The creator doesn't have e-commerce permissions or has been deactivated.",
    36004001: "rt has expired",
    36004005: "can not find related auth record",
    36009002: "Too many requests. You've made too many requests in a short period of time.",
    36009003: "Internal error. Please try again.",
    36009004: "Invalid credentials.",
    36009007: "Request timeout. The request to the endpoint timed out.",
    36009009: "Invalid path. The specified path does not match any available endpoint.",
    36009010: "Invalid method. The HTTP method used is not supported by this endpoint.",
    36009014: "Invalid version. The API version in the path is not available.",
    36009022: "Invalid request format. The request body format must be application/json.",
    36009033: "Access denied. Your IP address is not in the IP allow list configured for this app.",
    45101004: "The query quota has been reached (10000 request per day). Please try again tomorrow.",
    50001700: "seller cannot access this target collaboration",
    50001702: "Your invitation target contains an unavailable creator or product. Remove it and try again.",
    50001703: "The request parameters contain sensitive words.",
    98001004: "invalid params",
    101000: "Invalid query or header: the x-tts-access-token does not belong to the shop_cipher's shop.",
    105002: "Expired credentials. The access token has expired, please refresh it.",
    105005: "Access denied. The access token does not hold the scope this endpoint needs.",
    106001: "Invalid credentials. The sign query parameter is invalid.",
    106013: "Missing identifier. The shop_cipher query parameter is required to identify the target shop.",
}

# The fields a scripted answer may have (POST /_sandbox/script), with their types.
SCRIPT_FIELDS: dict[str, Any] = {
    "code": int, "http_status": int, "message": str, "data": dict, "headers": dict, "body": str,
    "envelope": bool, "lost": bool, "apply": bool, "delay_ms": (int, float),
}

CHOICES: dict[str, tuple[Any, ...]] = {
    "rate_scope": ("api", "shop", "app"),
    "ineligible_mode": ("named", "unnamed"),
    "ineligible_named_shape": ("invalid_open_id_list", "creator_ids", "message"),
    "ineligible_name_scope": ("code", "all"),
    "unknown_creators": ("refuse", "accept"),
    "conflict_code": (0, 16024022),
    "conflict_id": ("phantom", "none"),
    "legacy_conflict_ids": ("user_id", "open_id", "both"),
    "disabled_answer": ("path", "version"),
    "orders_sort": ("desc", "asc"),
}


@dataclass
class SandboxSettings:
    """Knobs of the sandbox; every one can be changed at start (`trendio sandbox --help`) or live (admin API)."""

    # --- rate limit, overload, daily quota ---
    rate_limit: int = 50  # requests per rate window, per scope
    rate_window_s: float = 1.0
    rate_scope: str = "api"  # "api" (per app, shop and versioned API: the docs), "shop" (per app and shop), "app"
    retry_after: bool = True  # send Retry-After with 429s
    rate_limit_envelope: bool = True  # 429s carry the JSON envelope (36009002); false: an empty body
    overload_rate: float = 0.0  # share of requests answered HTTP 503 (after the rate limit)
    overload_envelope: bool = False  # 503s carry an envelope (code 36009003); false: an empty body
    daily_quota: int = 10_000  # requests per shop per quota day, refused ones too
    daily_quota_http_status: int = 200  # HTTP status of the 45101004 answer
    quota_timezone: str = "UTC"  # where the quota day turns
    # --- weekly outreach (invitations to creators not yet connected) ---
    weekly_outreach: int = 5_000  # creators per shop per outreach week (one band of all creator levels)
    weekly_outreach_by_shop: dict[str, int] = field(default_factory=dict)  # shop cipher -> its own size
    outreach_bands: list[dict[str, Any]] = field(default_factory=list)  # [{"creator_levels": [..], "period": n,
    #   "bonus": m}, ...] replaces the single band (bonus is spent first); a level in no band has no quota
    outreach_unlimited: bool = False
    gmv_tier: str = "L2"  # the shop's GMV tier, as the outreach quota endpoint reports it
    max_follower_count: int = 100_000_000  # the largest creator the shop may reach (16024021 above it)
    # --- tokens ---
    token_lifetime_s: float = 7 * 86_400  # access tokens expire this long (simulated) after issue; 0: never
    token_expires_after: int = 0  # ... or after this many requests each (0: never)
    refresh_token_lifetime_s: float = 365 * 86_400
    refresh_grace_s: float = 0.0  # a used refresh token, within this many seconds, gets the same new pair again
    revoke_on_refresh: bool = False  # a refresh also ends the old access token at once
    auth_http_status: int = 200  # HTTP status of credential refusals (36009004, 106001, 101000, 105002, ...)
    granted_scopes: list[str] = field(default_factory=lambda: list(SCOPES.values()))  # 105005 without
    ip_allowlist: list[str] = field(default_factory=list)  # client addresses allowed (36009033); empty: any
    reject_unexpected_cipher: bool = True  # shop_cipher on GET /authorization/202309/shops answers 36009004
    # --- endpoints switched off (the 2026 ones, to test fallbacks; any name or name/version) ---
    disabled_endpoints: list[str] = field(default_factory=list)
    disabled_answer: str = "path"  # "path": 36009009, "version": 36009014
    path_error_http_status: int = 404  # HTTP status of 36009009/36009014/36009010 answers
    # --- create ---
    min_commission: int = 1_000  # target_commission_rate bounds, hundredths of a percent
    max_commission: int = 8_000
    max_name_length: int = 100  # unverified: the reference gives no limit
    products: list[str] = field(default_factory=list)  # the shop's product ids (16024008 otherwise); empty: any
    unavailable_products: list[str] = field(default_factory=list)  # 50001702
    sensitive_words: list[str] = field(default_factory=lambda: ["guaranteed income", "free money", "get rich quick"])
    ineligible_permille: int = 0  # creators (by a hash of their index) the platform refuses
    ineligible_codes: list[int] = field(default_factory=lambda: list(INELIGIBLE_CODES))  # the reasons drawn
    ineligible_creators: dict[str, int] = field(default_factory=dict)  # open id or legacy id -> code, explicit
    ineligible_mode: str = "named"  # "named": the answer says which creators; "unnamed": it does not
    ineligible_named_shape: str = "invalid_open_id_list"  # data.invalid_open_id_list (the 2026 client's name),
    #   "creator_ids": data.creator_user_open_ids / creator_user_ids, "message": the ids in the message only
    ineligible_name_scope: str = "code"  # name the creators with the answered code, or "all" ineligible ones
    unknown_creators: str = "refuse"  # ids the sandbox never issued: "refuse" (50001702) or "accept"
    conflict_code: int = 0  # code of an answer listing target_collaboration_conflicts: 0 (the spec's example)
    conflict_id: str = "phantom"  # "phantom": such an answer also carries an id that was never created; "none"
    legacy_conflict_ids: str = "user_id"  # how the 202405 route names creators in conflicts
    # --- faults ---
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fault_rate: float = 0.0  # share of requests answered with a transient fault
    fault_forms: list[str] = field(default_factory=lambda: list(FAULT_FORMS))  # which forms faults take
    lost_rate: float = 0.0  # share of creates applied but whose answer is cut off
    clock_skew_s: float = 0.0  # the platform's clock runs this far ahead of this machine's (timestamp checks)
    timestamp_past_s: int = 300
    timestamp_future_s: int = 30
    # --- marketplace and answers ---
    seed: int = 7
    marketplace_size: int = 5_000  # creators marketplace search ranges over (any issued id is a creator)
    open_id_namespace: str = DEFAULT_NAMESPACE  # the app's Creator Open ID namespace
    orders_sort: str = "desc"  # orders search: newest first, or oldest first
    outreach_quota_nested: bool = True  # quota answer as data.data{...} (the generated client's model)
    region: str = "US"
    currency: str = "USD"
    shop_info: dict[str, dict[str, str]] = field(default_factory=dict)  # cipher -> {name, region, seller_type}

    def update(self, changes: dict[str, Any]) -> None:
        """Apply changes, all or none: an unknown name is a KeyError, a bad value a ValueError."""
        known = {f.name for f in fields(self)}
        staged: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                raise KeyError(key)
            staged[key] = _coerce(key, getattr(self, key), value)
        for key, value in staged.items():
            setattr(self, key, value)


def _coerce(name: str, current: Any, value: Any) -> Any:
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
    elif isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ValueError(f"{name} must be an integer")
        value = int(value)
    elif isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a number")
        value = float(value)
    elif isinstance(current, (list, dict, str)) and not isinstance(value, type(current)):
        raise ValueError(f"{name} must be a {type(current).__name__}")
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"{name} must be one of {', '.join(map(str, CHOICES[name]))}")
    if name == "fault_forms" and any(f not in FAULT_FORMS for f in value):
        raise ValueError(f"fault_forms must be among {', '.join(FAULT_FORMS)}")
    if name == "outreach_bands":
        for band in value:
            if not isinstance(band, dict) or not isinstance(band.get("creator_levels"), list) \
                    or not isinstance(band.get("period", 0), int) or not isinstance(band.get("bonus", 0), int):
                raise ValueError("outreach_bands: each band is {creator_levels: [int], period: int, bonus: int}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0 and name != "clock_skew_s":
        raise ValueError(f"{name} must not be negative")
    return value


@dataclass
class Reply:
    status: int
    code: int
    message: str = ""
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # a body that is no envelope (HTML error page, empty)
    lost: bool = False  # cut the connection instead of answering
    delay_ms: float = 0.0  # extra time before answering (scripted)


def reply(code: int, detail: str = "", data: dict[str, Any] | None = None, status: int = 200) -> Reply:
    message = MESSAGES.get(code, "")
    if detail:
        message = f"{message} {detail}".strip() if code != 0 else detail
    return Reply(status, code, message, data)


def invalid(detail: str) -> Reply:
    return reply(98001004, f"({detail})")


_request_ids = itertools.count()


def envelope(code: int, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    tail = hashlib.blake2b(f"{stamp}{next(_request_ids)}".encode(), digest_size=10).hexdigest().upper()
    return {"code": code, "message": message, "request_id": stamp + tail, "data": data if data is not None else {}}


class MaxWindow:
    """The largest number of events seen in any window of `width` seconds (sliding, exact), events added in
    any order (requests are stamped on arrival but counted once their body is read, not always in order)."""

    def __init__(self, width: float) -> None:
        self.width = width
        self.events: list[float] = []
        self.max = 0

    def add(self, t: float) -> None:
        events = self.events
        bisect.insort(events, t)
        newest = events[-1]
        del events[:bisect.bisect_right(events, newest - 5 * self.width)]  # (bodies are not read seconds late)
        # the windows (e - width, e] that hold t: those ending at t or at a later event within a width of it
        for end in events[bisect.bisect_left(events, t):bisect.bisect_right(events, t + self.width)]:
            inside = bisect.bisect_right(events, end) - bisect.bisect_right(events, end - self.width)
            self.max = max(self.max, inside)


# --- the endpoint table -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    name: str
    version: str
    method: str
    template: str
    scope: str | None  # the OAuth scope key the endpoint needs
    shop_scoped: bool = True
    mutating: bool = False  # a lost answer or a late fault may hide work already done
    auth_host: bool = False  # the token refresh: not signed, not rate-limited, not counted

    @property
    def key(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")


ENDPOINTS = (
    Endpoint("create_collaboration", "202508", "POST", "/affiliate_seller/202508/target_collaborations",
             SCOPES["write"], mutating=True),
    Endpoint("create_collaboration", "202405", "POST", "/affiliate_seller/202405/target_collaborations",
             SCOPES["write"], mutating=True),
    Endpoint("search_collaborations", "202508", "POST", "/affiliate_seller/202508/target_collaborations/search",
             SCOPES["read"]),
    Endpoint("get_collaboration", "202508", "GET", "/affiliate_seller/202508/target_collaborations/{id}",
             SCOPES["read"]),
    Endpoint("search_orders", "202410", "POST", "/affiliate_seller/202410/orders/search", SCOPES["read"]),
    Endpoint("search_creators", "202508", "POST", "/affiliate_seller/202508/marketplace_creators/search",
             SCOPES["market"]),
    Endpoint("get_creator", "202508", "GET", "/affiliate_seller/202508/marketplace_creators/{creator_user_id}",
             SCOPES["market"]),
    Endpoint("get_shops", "202309", "GET", "/authorization/202309/shops", SCOPES["shops"], shop_scoped=False),
    Endpoint("check_conflicts", "202605", "POST", "/affiliate_seller/202605/target_collaborations/conflicts/check",
             SCOPES["read"]),
    Endpoint("outreach_quota", "202607", "GET", "/affiliate_seller/202607/creator_outreach/quota", SCOPES["write"]),
    Endpoint("check_eligibility", "202610", "POST", "/affiliate_seller/202610/creator_outreach/eligibility/check",
             SCOPES["write"]),
    Endpoint("refresh_token", "v2", "GET", "/api/v2/token/refresh", None, shop_scoped=False, auth_host=True),
)
_PATTERNS = [(e, e.pattern) for e in ENDPOINTS]


# --- collaborations -------------------------------------------------------------------------------------------
@dataclass
class Collaboration:
    id: str
    seq: int
    shop: str
    version: str
    name: str
    message: str
    start_time: float
    end_time: float
    products: list[dict[str, Any]]  # {"id", "rate", "ads_rate"}
    email: str
    free_sample: dict[str, bool]
    invitations: list[Invitation]
    showcase_times: list[float] = field(default_factory=list)  # when each creator showcased, sorted
    content_times: list[float] = field(default_factory=list)

    def status(self, now: float) -> str:
        if now >= self.end_time:
            return "COMPLETED"
        return "ONGOING" if self.end_time - now > 7 * DAY else "EXPIRING"


@dataclass
class OutreachWeek:
    reached: set[int] = field(default_factory=set)  # creator indexes counted this week
    use: dict[int, list[int]] = field(default_factory=dict)  # band -> [period used, bonus used]


@dataclass
class Call:
    """One request as the gate and the endpoint see it."""

    endpoint: Endpoint
    params: dict[str, str]
    path: str  # as received: what the client signed
    query: dict[str, str]
    body: dict[str, Any]
    shop: str | None = None
    token: AccessToken | None = None


def _b64(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def _unb64(token: str) -> dict[str, Any] | None:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _amount(value: float, currency: str) -> dict[str, str]:
    return {"amount": f"{value:.2f}", "currency": currency}


class SandboxState:
    def __init__(self, settings: SandboxSettings, credentials: list[Credentials], log_path: str | None = None):
        self.settings = settings
        self.credentials = list(credentials)
        self.known_ciphers = {c.shop_cipher for c in self.credentials}
        self.apps: dict[str, str] = {}  # app_key -> app_secret
        for c in self.credentials:
            self.apps.setdefault(c.app_key, c.app_secret)
        self.log_path = log_path
        self._log = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
        self.reset()

    # --- lifecycle -----------------------------------------------------------------------------------------
    def reset(self) -> None:
        s = self.settings
        self.rng = random.Random(s.seed)
        self.market = Marketplace(seed=s.seed, size=s.marketplace_size, namespace=s.open_id_namespace)
        self.orders = OrderBook(s.seed)
        self.clock_offset = 0.0
        self.windows: dict[str, list[float]] = defaultdict(list)
        self.max_received: dict[str, MaxWindow] = defaultdict(lambda: MaxWindow(s.rate_window_s))
        self.max_admitted: dict[str, MaxWindow] = defaultdict(lambda: MaxWindow(s.rate_window_s))
        self.max_by_level: dict[str, dict[str, MaxWindow]] = {
            level: defaultdict(lambda: MaxWindow(s.rate_window_s)) for level in CHOICES["rate_scope"]}
        self.quota_used: Counter[tuple[str, str]] = Counter()
        self.outreach: dict[tuple[str, str], OutreachWeek] = defaultdict(OutreachWeek)
        self.connected: dict[tuple[str, int], float] = {}  # (shop, creator) -> first showcase time
        self.pairs: dict[tuple[str, int, str], str] = {}  # (shop, creator index, product) -> collaboration id
        self.pair_attempts: Counter[tuple[str, int, str]] = Counter()
        self.pair_creators: dict[int, Creator] = {}
        self.collaborations: dict[str, Collaboration] = {}
        self.by_shop: dict[str, list[Collaboration]] = defaultdict(list)
        self.by_creator: dict[tuple[str, int], list[Collaboration]] = defaultdict(list)
        self.by_product: dict[tuple[str, str], list[Collaboration]] = defaultdict(list)
        self.ids = itertools.count(7_300_000_000_000_000_001)
        self.last_seq = 0
        self._last_pairs = 0  # pairs the current request created (for the log and lost answers)
        self._arrived = 0.0  # when the current request arrived (for the log)
        self.scripts: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        self._search_cache: OrderedDict[str, list[str]] = OrderedDict()
        self._salts = itertools.count(self.rng.randrange(1 << 30))
        self.stats: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.by_endpoint_version: Counter[str] = Counter()
        self.by_code: Counter[str] = Counter()
        self.by_endpoint_code: dict[str, Counter[str]] = defaultdict(Counter)
        self.auth = Authorizations.issue(self.credentials, self.now())

    def close(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    # --- clocks --------------------------------------------------------------------------------------------
    def now(self) -> float:
        """Simulated platform time: real time plus whatever `advance` added (answers, quota day, week, tokens)."""
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the simulated clock only moves forward")
        self.clock_offset += seconds

    def quota_day(self, t: float) -> str:
        return datetime.fromtimestamp(t, ZoneInfo(self.settings.quota_timezone)).date().isoformat()

    @staticmethod
    def outreach_week_start(t: float) -> datetime:
        local = datetime.fromtimestamp(t, OUTREACH_TZ)
        days_since_sunday = (local.weekday() + 1) % 7
        start = (local - timedelta(days=days_since_sunday)).replace(hour=12, minute=0, second=0, microsecond=0)
        if start > local:
            start -= timedelta(days=7)
        return start

    @classmethod
    def outreach_week(cls, t: float) -> str:
        return cls.outreach_week_start(t).isoformat()

    def now_utc(self) -> datetime:
        return datetime.fromtimestamp(self.now(), timezone.utc)

    # --- the one entry point ----------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes,
               client: str = "127.0.0.1", arrived: float | None = None) -> tuple[str, Reply]:
        """Answer one API request. Returns the endpoint's name (for the log) and the reply.

        `arrived` is when the request reached the server (stamped before its body was read)."""
        real = time.time() if arrived is None else arrived
        self._arrived = real
        self.stats["requests"] += 1
        routed = self._route(method, path)
        if isinstance(routed, Reply):
            self.by_endpoint["unknown"] += 1
            self._record("unknown", "", None, routed)
            return "unknown", routed
        ep, params = routed
        self.by_endpoint[ep.name] += 1
        self.by_endpoint_version[ep.key] += 1
        call = Call(ep, params, path, query, {})
        if ep.auth_host:
            answer = self._scripted(ep, call, lambda: self._parse_and_run(call, body, headers))
            self._record(ep.name, ep.version, None, answer)
            return ep.name, answer
        answer = self._gate(call, headers, body, client, real)
        if answer is None:
            answer = self._scripted(ep, call, lambda: self._faulty(call, body, headers))
        pairs, self._last_pairs = self._last_pairs, 0
        self._record(ep.name, ep.version, call.shop, answer, pairs)
        return ep.name, answer

    def _route(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | Reply:
        s = self.settings
        wrong_method = False
        for ep, pattern in _PATTERNS:
            m = pattern.match(path)
            if m is None:
                continue
            if ep.method != method:
                wrong_method = True
                continue
            if ep.name in s.disabled_endpoints or ep.key in s.disabled_endpoints:
                code = 36009009 if s.disabled_answer == "path" else 36009014
                return reply(code, status=s.path_error_http_status)
            return ep, m.groupdict()
        if wrong_method:
            return reply(36009010, status=405)
        return reply(36009009, status=s.path_error_http_status)

    def _gate(self, call: Call, headers: dict[str, str], body: bytes, client: str, real: float) -> Reply | None:
        """Account for the call, then refuse it if the platform would; None lets it through."""
        s, ep, query = self.settings, call.endpoint, call.query
        app_key = query.get("app_key", "")
        token_value = headers.get("x-tts-access-token", "")
        token = self.auth.tokens.get(token_value)
        cipher = query.get("shop_cipher")
        # Which shop's day the call counts against: the cipher it names if it is a shop's, else its token's.
        if cipher is not None and token is not None and cipher in token.grant.ciphers:
            call.shop = cipher
        elif cipher is not None and cipher in self.known_ciphers:
            call.shop = cipher
        elif token is not None and ep.shop_scoped:
            call.shop = token.grant.ciphers[0]
        if call.shop is not None and ep.shop_scoped:
            day_key = (call.shop, self.quota_day(self.now()))
            self.quota_used[day_key] += 1
            if self.quota_used[day_key] > s.daily_quota:
                return reply(45101004, status=s.daily_quota_http_status)
        # The shops call names no shop: it is limited with the token's (the seller's) first one.
        rate_shop = call.shop or (token.grant.ciphers[0] if token is not None else "")
        limited = self._rate_limit(ep, app_key, rate_shop, real)
        if limited is not None:
            return limited
        if s.overload_rate and self.rng.random() < s.overload_rate:
            self.stats["overloaded"] += 1
            if s.overload_envelope:
                return reply(36009003, "Service unavailable: the platform is overloaded.", status=503)
            return Reply(503, 0, raw=b"")
        refusal = self._authenticate(call, headers, body, client, real, token)
        if refusal is not None:
            refusal.status = s.auth_http_status
        return refusal

    def _authenticate(self, call: Call, headers: dict[str, str], body: bytes, client: str, real: float,
                      token: AccessToken | None) -> Reply | None:
        """The credential checks, in the platform's order; None when the call may proceed."""
        s, ep, query = self.settings, call.endpoint, call.query
        app_key, cipher = query.get("app_key", ""), query.get("shop_cipher")
        secret = self.apps.get(app_key)
        if secret is None:
            return reply(36009004, "Invalid app_key query parameter.")
        if s.ip_allowlist and client not in s.ip_allowlist:
            return reply(36009033)
        try:
            ts = int(query.get("timestamp", ""))
        except ValueError:
            return reply(36009004, "The timestamp query parameter is missing or not a number.")
        platform_now = real + s.clock_skew_s
        if ts < platform_now - s.timestamp_past_s:
            return reply(36009004, "Invalid timestamp: earlier than 5 minutes before the current time.")
        if ts > platform_now + s.timestamp_future_s:
            return reply(36009004, "Invalid timestamp: more than 30 seconds beyond the current time.")
        given = query.get("sign")
        if not given:
            return reply(36009004, "Missing credentials: the request does not include a signature.")
        if given != sign(secret, call.path, query, body):
            return reply(106001)
        if token is None or token.grant.app_key != app_key:
            return reply(36009004, "Invalid credentials: the x-tts-access-token header is invalid.")
        if ep.shop_scoped:
            if not cipher:
                return reply(106013)
            if cipher not in token.grant.ciphers:
                return reply(101000)
        elif cipher is not None and s.reject_unexpected_cipher:
            return reply(36009004, "Unexpected identifier: the shop_cipher query parameter is not required.")
        token.uses += 1
        if self.auth.expired(token, self.now(), s.token_lifetime_s, s.token_expires_after):
            self.stats["token_expired"] += 1
            return reply(105002)
        if ep.scope and ep.scope not in s.granted_scopes:
            return reply(105005)
        call.token = token
        return None

    def _rate_limit(self, ep: Endpoint, app_key: str, shop: str, real: float) -> Reply | None:
        s = self.settings
        keys = {"app": app_key, "shop": f"{app_key}|{shop}", "api": f"{app_key}|{shop}|{ep.key}"}
        for level, key in keys.items():
            self.max_by_level[level][key].add(real)
        scope = keys[s.rate_scope]
        self.max_received[scope].add(real)
        # admitted arrivals in stamp order, whatever order their bodies were read in: the second before this one
        window = self.windows[scope]
        del window[:bisect.bisect_right(window, real - 5 * s.rate_window_s)]
        first = bisect.bisect_right(window, real - s.rate_window_s)
        if bisect.bisect_right(window, real) - first >= s.rate_limit:
            self.stats["rate_limited"] += 1
            retry = max(0.01, window[first] + s.rate_window_s - real)
            headers = {"Retry-After": str(max(1, math.ceil(retry)))} if s.retry_after else {}
            if s.rate_limit_envelope:
                limited = reply(36009002, status=429)
                limited.headers = headers
                return limited
            return Reply(429, 0, raw=b"", headers=headers)
        bisect.insort(window, real)
        self.max_admitted[scope].add(real)
        return None

    def _scripted(self, ep: Endpoint, call: Call, real: Callable[[], Reply]) -> Reply:
        queue = self.scripts.get(ep.key) or self.scripts.get(ep.name)
        if not queue:
            return real()
        script = queue.popleft()
        self.stats["scripted"] += 1
        base = real() if script.get("apply") else None
        status = int(script.get("http_status", base.status if base else 200))
        code = int(script.get("code", base.code if base else 0))
        message = str(script.get("message", base.message if base else MESSAGES.get(code, "")))
        data = script.get("data", base.data if base else {})
        out = Reply(status, code, message, data, dict(script.get("headers") or {}))
        if "body" in script:
            out.raw = str(script["body"]).encode()
        elif script.get("envelope") is False:
            out.raw = b""
        out.lost = bool(script.get("lost", False))
        out.delay_ms = float(script.get("delay_ms", 0))
        return out

    def _faulty(self, call: Call, body: bytes, headers: dict[str, str]) -> Reply:
        fault = self._transient_fault()
        # Half of the faults on a create strike after the work was done: "may or may not have been created".
        if fault is not None and not (call.endpoint.mutating and self.rng.random() < 0.5):
            return fault
        answer = self._parse_and_run(call, body, headers)
        if fault is not None:
            return fault
        if call.endpoint.mutating and self._last_pairs and self.rng.random() < self.settings.lost_rate:
            self.stats["lost_responses"] += 1
            answer.lost = True
        return answer

    def _transient_fault(self) -> Reply | None:
        """A random transient failure in one of the forms seen in the wild."""
        if not self.settings.fault_rate or self.rng.random() >= self.settings.fault_rate:
            return None
        self.stats["faults"] += 1
        forms = self.settings.fault_forms or list(FAULT_FORMS)
        form = forms[self.rng.randrange(len(forms))]
        if form == "internal_error":
            return reply(36009003)
        if form == "internal_timeout":
            return reply(36009007, status=500)
        if form == "bad_gateway_html":
            return Reply(502, 0, raw=b"<html><body><h1>502 Bad Gateway</h1></body></html>")
        if form == "truncated_json":
            return Reply(200, 0, raw=b'{"code": 0, "message": "Success", "data": {"target_collabor')
        if form == "connection_reset":
            return Reply(200, 0, "reset", lost=True)
        return Reply(503, 0, raw=b"")

    def _parse_and_run(self, call: Call, body: bytes, headers: dict[str, str]) -> Reply:
        ep = call.endpoint
        if ep.method == "POST":
            if "application/json" not in headers.get("content-type", "").lower():
                return reply(36009022)
            try:
                parsed = json.loads(body) if body.strip() else {}
            except ValueError:
                return reply(36009022, "The body is not valid JSON.")
            if not isinstance(parsed, dict):
                return reply(36009022, "The body is not a JSON object.")
            call.body = parsed
        handler: Callable[[Call], Reply] = getattr(self, f"_do_{ep.name}")
        return handler(call)

    # --- create ----------------------------------------------------------------------------------------------
    def _do_create_collaboration(self, call: Call) -> Reply:
        s = self.settings
        self.stats["creates"] += 1
        legacy = call.endpoint.version == "202405"
        id_field = "creator_user_ids" if legacy else "creator_user_open_ids"
        body = call.body
        problem = self._create_problem(body, id_field)
        if problem:
            self.stats["creates_created_nothing"] += 1
            return invalid(problem)
        assert call.shop is not None
        shop = call.shop
        products = [{"id": str(p["id"]), "rate": p["target_commission_rate"],
                     "ads_rate": p.get("shop_ads_commission_rate")} for p in body["products"]]
        product_ids = [p["id"] for p in products]
        refusal = self._product_refusal(product_ids) or self._words_refusal(body)
        if refusal is not None:
            self.stats["creates_created_nothing"] += 1
            return refusal
        sent: list[str] = body[id_field]
        creators: list[Creator] = []
        unknown: list[str] = []
        for cid in sent:
            c = self.market.by_user_id(cid) if legacy else self.market.by_open_id(cid)
            if c is None and s.unknown_creators == "accept":
                c = self.market.stranger(cid)
            if c is None:
                unknown.append(cid)
            else:
                creators.append(c)
        if unknown:
            self.stats["creates_created_nothing"] += 1
            self.stats["ineligible_refusals"] += 1
            return self._name_creators(50001702, unknown, id_field)
        ineligible = [(cid, code) for cid, c in zip(sent, creators) if (code := self.ineligibility(c, cid))]
        if ineligible:
            self.stats["creates_created_nothing"] += 1
            self.stats["ineligible_refusals"] += 1
            code = ineligible[0][1]
            named = [cid for cid, k in ineligible if k == code or s.ineligible_name_scope == "all"]
            return self._name_creators(code, named, id_field)
        conflicts = [(cid, c, p) for cid, c in zip(sent, creators) for p in product_ids
                     if (shop, c.index, p) in self.pairs]
        if conflicts:
            return self._conflict_answer(shop, conflicts, legacy)
        now = self.now()
        quota = self._take_outreach(shop, creators, now)
        if quota is not None:
            self.stats["creates_created_nothing"] += 1
            return quota
        collab = self._create(call, body, products, creators, now)
        return reply(0, data={"target_collaboration": {"id": collab.id}, "target_collaboration_conflicts": []})

    def _create_problem(self, body: dict[str, Any], id_field: str) -> str | None:
        """What is wrong with a create body, naming the field, as 98001004 says; None when it is well formed."""
        s = self.settings
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            return "name is required"
        if len(name) > s.max_name_length:
            return f"name is longer than {s.max_name_length} characters"
        if "message" in body and not isinstance(body["message"], str):
            return "message must be a string"
        end = body.get("end_time")
        if not isinstance(end, str) or not (end.isascii() and end.isdigit()) or len(end) > 10:
            return "end_time must be a string of Unix seconds"
        if int(end) <= self.now():
            return "end_time must be in the future"
        products = body.get("products")
        if not isinstance(products, list) or not 1 <= len(products) <= 100:
            return "products must hold 1 to 100 products"
        seen: set[str] = set()
        for i, p in enumerate(products):
            if not isinstance(p, dict):
                return f"products[{i}] must be an object"
            pid = p.get("id")
            if not isinstance(pid, str) or not pid:
                return f"products[{i}].id must be a non-empty string"
            if pid in seen:
                return f"products[{i}].id {pid} is listed twice"
            seen.add(pid)
            rate = p.get("target_commission_rate")
            if not _is_int(rate) or not s.min_commission <= rate <= s.max_commission:
                return f"products[{i}].target_commission_rate must be an integer from {s.min_commission} to " \
                       f"{s.max_commission}"
            ads = p.get("shop_ads_commission_rate")
            if ads is not None and (not _is_int(ads) or not 0 <= ads <= s.max_commission):
                return f"products[{i}].shop_ads_commission_rate must be an integer from 0 to {s.max_commission}"
        ids = body.get(id_field)
        if not isinstance(ids, list) or not 1 <= len(ids) <= 50:
            return f"{id_field} must hold 1 to 50 creators"
        if any(not isinstance(c, str) or not c for c in ids):
            return f"{id_field} must be non-empty strings"
        if len(set(ids)) != len(ids):
            return f"{id_field} lists a creator twice"
        contact = body.get("seller_contact_info")
        email = contact.get("email") if isinstance(contact, dict) else None
        if not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            return "seller_contact_info.email is required"
        rule = body.get("free_sample_rule")
        for flag in ("has_free_sample", "is_sample_approval_exempt"):
            if not isinstance(rule, dict) or not isinstance(rule.get(flag), bool):
                return f"free_sample_rule.{flag} must be true or false"
        return None

    def _product_refusal(self, product_ids: list[str]) -> Reply | None:
        s = self.settings
        for code, bad in ((16024008, [p for p in product_ids if s.products and p not in s.products]),
                          (50001702, [p for p in product_ids if p in s.unavailable_products])):
            if bad:
                answer = reply(code)
                if s.ineligible_mode == "named":
                    if s.ineligible_named_shape == "message":
                        answer.message += f" product_id: {', '.join(bad)}"
                    else:
                        answer.data = {"invalid_product_id_list": bad}
                return answer
        return None

    def _words_refusal(self, body: dict[str, Any]) -> Reply | None:
        text = f"{body.get('name', '')}\n{body.get('message', '')}".lower()
        if any(w and w.lower() in text for w in self.settings.sensitive_words):
            return reply(50001703)
        return None

    def ineligibility(self, c: Creator, sent_as: str = "") -> int:
        """The code a create naming this creator would be refused with (0: eligible)."""
        s = self.settings
        explicit = s.ineligible_creators.get(sent_as) or s.ineligible_creators.get(c.open_id) \
            or s.ineligible_creators.get(c.user_id)
        if explicit:
            return int(explicit)
        if c.followers > s.max_follower_count:
            return 16024021
        if s.ineligible_permille and s.ineligible_codes and \
                unit(s.seed, "ineligible", c.index) * 1000 < s.ineligible_permille:
            return int(s.ineligible_codes[int(unit(s.seed, "reason", c.index) * len(s.ineligible_codes))])
        return 0

    def _name_creators(self, code: int, ids: list[str], id_field: str) -> Reply:
        s = self.settings
        answer = reply(code)
        if s.ineligible_mode == "unnamed":
            return answer
        if s.ineligible_named_shape == "invalid_open_id_list":
            answer.data = {"invalid_open_id_list": ids}
        elif s.ineligible_named_shape == "creator_ids":
            answer.data = {id_field: ids}
        else:
            answer.message += f" creators: {', '.join(ids)}"
        return answer

    def _conflict_answer(self, shop: str, conflicts: list[tuple[str, Creator, str]], legacy: bool) -> Reply:
        s = self.settings
        self.stats["conflict_answers"] += 1
        self.stats["creates_created_nothing"] += 1
        self.stats["duplicate_attempts"] += len(conflicts)
        items = []
        for cid, c, p in conflicts:
            self.pair_attempts[(shop, c.index, p)] += 1
            item: dict[str, str] = {}
            if not legacy or s.legacy_conflict_ids in ("open_id", "both"):
                item["creator_user_open_id"] = c.open_id if legacy else cid
            if legacy and s.legacy_conflict_ids in ("user_id", "both"):
                item["creator_user_id"] = cid
            item["product_id"] = p
            items.append(item)
        data: dict[str, Any] = {"target_collaboration_conflicts": items}
        if s.conflict_id == "phantom":
            data["target_collaboration"] = {"id": str(next(self.ids))}  # never created: detail answers 50001700
        return reply(s.conflict_code, data=data)

    def _create(self, call: Call, body: dict[str, Any], products: list[dict[str, Any]], creators: list[Creator],
                now: float) -> Collaboration:
        s, shop = self.settings, call.shop
        assert shop is not None
        cid = str(next(self.ids))
        end = float(body["end_time"])
        pairs = [(p["id"], p["rate"]) for p in products]
        commission = {p["id"]: p["rate"] for p in products}
        prices = {p["id"]: self.product_price(p["id"]) for p in products}
        invitations = []
        self.last_seq += 1
        rule = body["free_sample_rule"]
        collab = Collaboration(cid, self.last_seq, shop, call.endpoint.version, body["name"],
                               body.get("message", ""), now, end, products, body["seller_contact_info"]["email"],
                               {k: rule[k] for k in ("has_free_sample", "is_sample_approval_exempt")}, invitations)
        for c in creators:
            inv = plan_invitation(s.seed, c, cid, pairs, now, end)
            invitations.append(inv)
            self.pair_creators[c.index] = c
            for p in products:
                self.pairs[(shop, c.index, p["id"])] = cid
                self.pair_attempts[(shop, c.index, p["id"])] += 1
            self.by_creator[(shop, c.index)].append(collab)
            if inv.showcase_at is not None:
                insort(collab.showcase_times, inv.showcase_at)
                first = self.connected.get((shop, c.index))
                if first is None or inv.showcase_at < first:
                    self.connected[(shop, c.index)] = inv.showcase_at
                self.orders.follow(shop, inv, commission, prices)
            if inv.content_at is not None:
                insort(collab.content_times, inv.content_at)
        for p in products:
            self.by_product[(shop, p["id"])].append(collab)
        self.collaborations[cid] = collab
        self.by_shop[shop].append(collab)
        self.stats["collaborations"] += 1
        self.stats["invited_pairs"] += len(creators) * len(products)
        self._last_pairs = len(creators) * len(products)
        return collab

    def product_price(self, product_id: str) -> float:
        """The product's selling price (USD), fixed by its id."""
        return round(5 + 55 * unit(self.settings.seed, "price", product_id), 2)

    # --- outreach --------------------------------------------------------------------------------------------
    def _bands(self, shop: str) -> list[dict[str, Any]]:
        s = self.settings
        if s.outreach_bands:
            return s.outreach_bands
        size = s.weekly_outreach_by_shop.get(shop, s.weekly_outreach)
        return [{"creator_levels": list(CREATOR_LEVELS), "period": size, "bonus": 0}]

    @staticmethod
    def _band_of(bands: list[dict[str, Any]], level: int) -> int | None:
        return next((i for i, b in enumerate(bands) if level in b["creator_levels"]), None)

    def is_connected(self, shop: str, index: int, now: float) -> bool:
        first = self.connected.get((shop, index))
        return first is not None and first <= now

    def _week(self, shop: str, now: float) -> OutreachWeek:
        return self.outreach[(shop, self.outreach_week(now))]

    def _band_left(self, shop: str, week: OutreachWeek, band: int) -> int:
        b = self._bands(shop)[band]
        used = week.use.get(band, [0, 0])
        return int(b.get("period", 0)) + int(b.get("bonus", 0)) - used[0] - used[1]

    def _take_outreach(self, shop: str, creators: list[Creator], now: float) -> Reply | None:
        """Spend the week's quota on the creators not yet connected nor counted; 16024019 when it cannot."""
        if self.settings.outreach_unlimited:
            return None
        week = self._week(shop, now)
        bands = self._bands(shop)
        need: Counter[int] = Counter()
        new = [c for c in creators if c.index not in week.reached and not self.is_connected(shop, c.index, now)]
        for c in new:
            band = self._band_of(bands, c.level)
            if band is None:
                return reply(16024019, f"(no outreach quota for creator level {c.level})")
            need[band] += 1
        for band, n in need.items():
            if n > self._band_left(shop, week, band):
                return reply(16024019)
        for band, n in need.items():
            used = week.use.setdefault(band, [0, 0])
            bonus_left = int(bands[band].get("bonus", 0)) - used[1]
            from_bonus = min(n, max(0, bonus_left))
            used[1] += from_bonus
            used[0] += n - from_bonus
        week.reached.update(c.index for c in new)
        return None

    # --- search and detail ------------------------------------------------------------------------------------
    def _do_search_collaborations(self, call: Call) -> Reply:
        q, body, shop, now = call.query, call.body, call.shop or "", self.now()
        page_size = q.get("page_size", "20")
        if page_size not in ("20", "50", "100"):
            return invalid("page_size must be 20, 50 or 100")
        status = body.get("collaboration_status")
        if status not in ("ONGOING", "EXPIRING", "VALID", "CANCELING", "COMPLETED"):
            return invalid("collaboration_status is required: ONGOING, EXPIRING, VALID, CANCELING or COMPLETED")
        accept = body.get("creator_accept_status", "ALL")
        if accept not in ("ACCEPT", "ALL", ""):
            return invalid("creator_accept_status must be ACCEPT or ALL")
        samples = body.get("free_sample_setting", "ALL")
        if samples not in ("WITH_FREE_SAMPLE", "ALL", ""):
            return invalid("free_sample_setting must be WITH_FREE_SAMPLE or ALL")
        creator_id = body.get("creator_user_open_id")
        if creator_id is not None and (not isinstance(creator_id, str) or not creator_id):
            return invalid("creator_user_open_id must be a string")
        param = body.get("search_param")
        keyword_type = keyword = None
        if param is not None:
            if not isinstance(param, dict):
                return invalid("search_param must be an object")
            keyword_type, keyword = param.get("keyword_type"), param.get("keyword")
            if keyword_type not in ("PRODUCT_ID", "PRODUCT_NAME", "TARGET_COLLABORATION_ID",
                                    "TARGET_COLLABORATION_NAME"):
                return invalid("search_param.keyword_type must be PRODUCT_ID, PRODUCT_NAME, TARGET_COLLABORATION_ID "
                               "or TARGET_COLLABORATION_NAME")
            if not isinstance(keyword, str) or not keyword:
                return invalid("search_param.keyword is required")
        fingerprint = hashlib.blake2b(json.dumps([shop, status, accept, samples, creator_id, keyword_type, keyword],
                                                 sort_keys=True).encode(), digest_size=8).hexdigest()
        token = q.get("page_token") or ""
        if token:
            state = _unb64(token)
            if state is None or state.get("f") != fingerprint or not _is_int(state.get("o")):
                return invalid("page_token does not belong to this search")
            offset, bound, nonce = state["o"], int(state.get("b", 0)), str(state.get("n", ""))
        else:
            offset, bound, nonce = 0, self.last_seq, f"{self.rng.getrandbits(48):012x}"
        found = self._search_cache.get(nonce)
        if found is None:
            found = self._find(shop, bound, now, status, accept, samples, creator_id, keyword_type, keyword)
            self._search_cache[nonce] = found
            while len(self._search_cache) > 64:
                self._search_cache.popitem(last=False)
        size = int(page_size)
        page = [self.collaborations[i] for i in found[offset:offset + size]]
        more = offset + size < len(found)
        return reply(0, data={
            "total_count": len(found),
            "next_page_token": _b64({"o": offset + size, "b": bound, "f": fingerprint, "n": nonce}) if more else "",
            "target_collaborations": [self._summary(c, now) for c in page],
        })

    def _find(self, shop: str, bound: int, now: float, status: str, accept: str, samples: str,
              creator_id: str | None, keyword_type: str | None, keyword: str | None) -> list[str]:
        if creator_id is not None:
            c = self.market.by_open_id(creator_id) or (
                self.market.stranger(creator_id) if self.settings.unknown_creators == "accept" else None)
            candidates = self.by_creator.get((shop, c.index), []) if c else []
        elif keyword_type == "PRODUCT_ID":
            candidates = self.by_product.get((shop, keyword or ""), [])
        elif keyword_type == "TARGET_COLLABORATION_ID":
            one = self.collaborations.get(keyword or "")
            candidates = [one] if one and one.shop == shop else []
        else:
            candidates = self.by_shop.get(shop, [])
        needle = (keyword or "").lower()
        out = []
        for c in reversed(candidates):  # newest first
            if c.seq > bound:
                continue
            st = c.status(now)
            if status == "VALID":
                if st == "COMPLETED":
                    continue
            elif status == "CANCELING" or st != status:
                continue
            if accept == "ACCEPT" and not (c.showcase_times and c.showcase_times[0] <= now):
                continue
            if samples == "WITH_FREE_SAMPLE" and not c.free_sample["has_free_sample"]:
                continue
            if keyword_type == "TARGET_COLLABORATION_NAME" and needle not in c.name.lower():
                continue
            if keyword_type == "PRODUCT_NAME" and not any(needle in self.product_title(p["id"]).lower()
                                                          for p in c.products):
                continue
            out.append(c.id)
        return out

    def _counts(self, c: Collaboration, now: float) -> dict[str, int]:
        return {
            "showcase_creator_count": bisect_right(c.showcase_times, now),
            "content_creator_count": bisect_right(c.content_times, now),
            "product_count": len(c.products),
        }

    def _summary(self, c: Collaboration, now: float) -> dict[str, Any]:
        """One result of collaboration search: counts, never creators (the API's spelling kept)."""
        return {
            "id": c.id, "name": c.name, "message": c.message,
            "start_time": int(c.start_time), "end_time": int(c.end_time), "update_time": int(c.start_time),
            "creator_inivited_count": len(c.invitations), **self._counts(c, now),
            "free_sample_rule": dict(c.free_sample), "type": "STANDARD",
        }

    def product_title(self, product_id: str) -> str:
        words = ("Glow Serum", "Silk Scarf", "Bamboo Brush", "Travel Mug", "Yoga Mat", "Pet Bowl", "Night Cream")
        return f"{words[int(unit(self.settings.seed, 'title', product_id) * len(words))]} {product_id[-4:]}"

    def _do_get_collaboration(self, call: Call) -> Reply:
        c = self.collaborations.get(call.params["id"])
        if c is None or c.shop != call.shop:
            return reply(50001700)
        now, s = self.now(), self.settings
        products = []
        for p in c.products:
            price = self.product_price(p["id"])
            earned = f"{price * p['rate'] / 10_000:.2f}"
            commission: dict[str, Any] = {
                "rate": p["rate"], "effective_time": str(int(c.start_time)), "currency": s.currency,
                "minimum_amount": earned, "maximum_amount": earned,
            }
            if p["ads_rate"] is not None:
                commission["shop_ads_commission_rate"] = p["ads_rate"]
            products.append({
                "id": p["id"], "main_image_url": f"https://p16-oec-va.ibyteimg.com/tos-maliva-i-o3syd03w52-us/"
                                                f"{hashlib.md5(p['id'].encode()).hexdigest()}~tplv-o3syd03w52-origin.webp",
                "title": self.product_title(p["id"]),
                "original_price": {"currency": s.currency, "minimum_amount": f"{price:.2f}",
                                   "maximum_amount": f"{price:.2f}"},
                "commission": commission, "status": "LIVE", "commission_effective_status": "EFFECTIVE_ALL",
                "collaboration_status": "NORMAL",
            })
        creators = [{
            "username": inv.creator.username, "nickname": inv.creator.nickname,
            "avatar": {"url": inv.creator.avatar_url()}, "selection_region": s.region,
            "showcase_product_count": inv.showcase_count(now), "content_product_count": inv.content_count(now),
            "collaboration_status": "NORMAL", "product_effective_status": "EFFECTIVE_ALL",
            "creator_open_id": inv.creator.open_id,
        } for inv in c.invitations]
        return reply(0, data={"target_collaboration": {
            "id": c.id, "name": c.name, "message": c.message, "seller_contact_info": {"email": c.email},
            "start_time": int(c.start_time), "end_time": int(c.end_time), "update_time": int(c.start_time),
            "creator_invited_count": len(c.invitations), **self._counts(c, now),
            "free_sample_rule": dict(c.free_sample), "products": products, "creators": creators, "type": "STANDARD",
        }})

    # --- orders ----------------------------------------------------------------------------------------------
    def _do_search_orders(self, call: Call) -> Reply:
        q, body, shop, now = call.query, call.body, call.shop or "", self.now()
        try:
            size = int(q.get("page_size", ""))
        except ValueError:
            return invalid("page_size is required: 1 to 100")
        if not 1 <= size <= 100:
            return invalid("page_size is required: 1 to 100")
        ge, lt, program = body.get("create_time_ge"), body.get("create_time_lt"), body.get("program_id")
        for name, v in (("create_time_ge", ge), ("create_time_lt", lt)):
            if v is not None and (not _is_int(v) or v < 0):
                return invalid(f"{name} must be a Unix timestamp")
        if program is not None and (not isinstance(program, str) or not program):
            return invalid("program_id must be a string")
        token = q.get("page_token") or ""
        if token:
            state = _unb64(token)
            if state is None or not _is_int(state.get("o")) or [state.get("ge"), state.get("p")] != [ge, program]:
                return invalid("page_token does not belong to this search")
            offset, lt_fixed = state["o"], state["lt"]
        else:
            offset, lt_fixed = 0, lt if lt is not None else int(now)
        self.orders.catch_up(now)
        found = self.orders.select(shop, program, float(ge or 0), float(lt_fixed))
        if self.settings.orders_sort == "desc":
            page = list(reversed(found[max(0, len(found) - offset - size):len(found) - offset]))
        else:
            page = found[offset:offset + size]
        more = offset + size < len(found)
        return reply(0, data={
            "orders": [self._order_view(o, now) for o in page],
            "next_page_token": _b64({"o": offset + size, "lt": lt_fixed, "ge": ge, "p": program}) if more else "",
            "total_count": len(found),
        })

    def _order_view(self, o: Order, now: float) -> dict[str, Any]:
        cur = self.settings.currency
        cancelled = o.cancel_at is not None and now >= o.cancel_at
        refunded = o.refunded(now)
        skus = []
        for i, line in enumerate(o.lines):
            back = refunded if i == 0 else 0
            base = line.price * line.quantity
            actual = 0.0 if cancelled else line.price * (line.quantity - back)
            sku: dict[str, Any] = {
                "target_collaboration_id": o.collaboration_id,
                "creator_username": o.creator.username,
                "price": _amount(line.price, cur),
                "quantity": line.quantity,
                "content_type": line.content_type,
                "product_id": line.product_id,
                "commission_model": "Fixed commission",
                "commission_rate": str(line.commission_rate),
                "estimated_commission_base": _amount(base, cur),
                "estimated_paid_commission": _amount(base * line.commission_rate / 10_000, cur),
                "actual_commission_base": _amount(actual, cur),
                "actual_paid_commission": _amount(actual * line.commission_rate / 10_000, cur),
                "refunded_quantity": back,
                "returned_quantity": 0,
            }
            if line.content_id:
                sku["content_id"] = line.content_id
            skus.append(sku)
        view: dict[str, Any] = {"id": o.id, "create_time": int(o.create_time), "status": o.status(now), "skus": skus}
        if o.delivery_time is not None and now >= o.delivery_time:
            view["delivery_time"] = int(o.delivery_time)
        return view

    # --- marketplace -----------------------------------------------------------------------------------------
    def _do_search_creators(self, call: Call) -> Reply:
        q, body, s = call.query, call.body, self.settings
        page_size = q.get("page_size")
        if page_size not in ("12", "20"):
            return invalid("page_size is required: 12 or 20")
        key = body.get("search_key")
        salt = self._salt_of(key, body) if isinstance(key, str) and key else None
        if salt is None:
            salt = next(self._salts) & 0xFFFFFFFF  # a new search: a new ranking (and a new search_key)
        try:
            ranked = self.market.ranking(body, salt)
        except BadFilter as exc:
            return invalid(str(exc))
        token = q.get("page_token") or ""
        offset = 0
        if token:
            try:
                text = base64.b64decode(token.encode(), validate=True).decode()
                offset = int(text.removeprefix("offset="))
            except (ValueError, UnicodeDecodeError):
                return invalid("page_token is not one this search returned")
        size = int(page_size)
        page = ranked[offset:offset + size]
        more = offset + size < len(ranked)
        return reply(0, data={
            "next_page_token": base64.b64encode(f"offset={offset + size}".encode()).decode() if more else "",
            "search_key": self._search_key(salt, body),
            "creators": [search_view(self.market.creator(i), s.region, s.currency) for i in page],
        })

    def _search_key(self, salt: int, body: dict[str, Any]) -> str:
        mac = hashlib.blake2b(f"{salt}:{filters_fingerprint(body)}".encode(), digest_size=28).digest()
        return base64.b64encode(salt.to_bytes(4, "big") + mac).decode()

    def _salt_of(self, key: str, body: dict[str, Any]) -> int | None:
        """The ranking a search_key names, if it was made for these filters."""
        try:
            raw = base64.b64decode(key.encode(), validate=True)
        except ValueError:
            return None
        if len(raw) != 32:
            return None
        salt = int.from_bytes(raw[:4], "big")
        return salt if self._search_key(salt, body) == key else None

    def _do_get_creator(self, call: Call) -> Reply:
        s = self.settings
        cid = call.params["creator_user_id"]
        c = self.market.by_open_id(cid)
        if c is None and s.unknown_creators == "accept" and index_of_legacy_id(cid) is None:
            c = self.market.stranger(cid)
        if c is None:
            if cid.isdigit():
                return invalid("creator_user_id must be a Creator Open ID")
            return reply(16901008)
        return reply(0, data={"creator": performance_view(c, s.region, s.currency)})

    # --- shops and tokens ------------------------------------------------------------------------------------
    def shop_view(self, cipher: str) -> dict[str, str]:
        info = self.settings.shop_info.get(cipher, {})
        digits = str(int.from_bytes(hashlib.blake2b(cipher.encode(), digest_size=8).digest(), "big"))[:19]
        return {
            "id": info.get("id", digits),
            "name": info.get("name", f"Sandbox shop {cipher}"),
            "region": info.get("region", self.settings.region),
            "seller_type": info.get("seller_type", "LOCAL"),
            "cipher": cipher,
            "code": info.get("code", "US" + hashlib.blake2b(cipher.encode(), digest_size=5).hexdigest().upper()),
        }

    def _do_get_shops(self, call: Call) -> Reply:
        assert call.token is not None
        return reply(0, data={"shops": [self.shop_view(c) for c in call.token.grant.ciphers]})

    def _do_refresh_token(self, call: Call) -> Reply:
        s, q = self.settings, call.query
        app_key, secret = q.get("app_key", ""), q.get("app_secret", "")
        rt, grant_type = q.get("refresh_token", ""), q.get("grant_type", "")
        if not app_key or not secret or not rt or not grant_type:
            answer = invalid("app_key, app_secret, refresh_token and grant_type are required")
        elif grant_type != "refresh_token":
            answer = invalid("grant_type must be refresh_token")
        elif self.apps.get(app_key) != secret:
            answer = reply(36009004, "Invalid app_key or app_secret.")
        else:
            grant = self.auth.grants.get(rt)
            shop = self.shop_view(grant.ciphers[0]) if grant else {"name": "", "region": s.region}
            describe = {
                "open_id": base64.urlsafe_b64encode(hashlib.blake2b(f"seller:{app_key}:{shop['name']}".encode(),
                                                                    digest_size=30).digest()).decode(),
                "seller_name": shop["name"], "seller_base_region": shop["region"], "user_type": 0,
                "granted_scopes": list(s.granted_scopes),
            }
            try:
                data = self.auth.refresh(app_key, rt, self.now(), self.rng, lifetime_s=s.token_lifetime_s,
                                         refresh_lifetime_s=s.refresh_token_lifetime_s, grace_s=s.refresh_grace_s,
                                         revoke_old=s.revoke_on_refresh, describe=describe)
            except RefreshRefused as exc:
                answer = reply(exc.code)
            else:
                self.stats["refreshes"] += 1
                return reply(0, "success", data=data)
        self.stats["refresh_failures"] += 1
        return answer

    def expire_tokens(self) -> int:
        return self.auth.expire_all()

    # --- the 2026 endpoints ----------------------------------------------------------------------------------
    def _do_check_conflicts(self, call: Call) -> Reply:
        body, shop = call.body, call.shop or ""
        creators, products = body.get("creator_open_id_list"), body.get("product_id_list")
        if not isinstance(creators, list) or not 1 <= len(creators) <= 100 or \
                any(not isinstance(c, str) or not c for c in creators):
            return invalid("creator_open_id_list must hold 1 to 100 Creator Open IDs")
        if not isinstance(products, list) or not 1 <= len(products) <= 100 or \
                any(not isinstance(p, str) or not p for p in products):
            return invalid("product_id_list must hold 1 to 100 product ids")
        items = []
        for cid in creators:
            c = self.market.by_open_id(cid)
            if c is None:
                continue
            for p in products:
                existing = self.pairs.get((shop, c.index, p))
                if existing:
                    items.append({"creator_open_id": cid, "product_id": p, "existing_collaboration_id": existing})
        return reply(0, data={"has_conflict": bool(items), "conflict_items": items})

    def _do_outreach_quota(self, call: Call) -> Reply:
        s, shop, now = self.settings, call.shop or "", self.now()
        week = self._week(shop, now)
        bands = self._bands(shop)
        start = self.outreach_week_start(now)
        details = []
        for i, b in enumerate(bands):
            used = week.use.get(i, [0, 0])
            details.append({"creator_levels": list(b["creator_levels"]), "quota_period_sum": int(b.get("period", 0)),
                            "quota_period_use": used[0], "quota_bonus_sum": int(b.get("bonus", 0)),
                            "quota_bonus_use": used[1]})
        total = sum(d["quota_period_sum"] + d["quota_bonus_sum"] for d in details)
        use = sum(d["quota_period_use"] + d["quota_bonus_use"] for d in details)
        week_ts = start.timestamp()
        connected_now = sum(1 for (sh, _), t in self.connected.items() if sh == shop and week_ts <= t <= now)
        paired = sum(1 for i in week.reached if (shop, i) in self.by_creator and len(self.by_creator[(shop, i)]) > 1)
        data = {
            "shop_id": self.shop_view(shop)["id"], "quota_type": "period quota", "gmv_tier": s.gmv_tier,
            "quota_sum": str(total), "quota_use": str(use), "unlimited": s.outreach_unlimited,
            "reached_max_follower_cnt": str(s.max_follower_count), "new_connect_count": str(connected_now),
            "pair_connect_count": str(paired),
            "start_time": str(int(week_ts)), "end_time": str(int((start + timedelta(days=7)).timestamp())),
            "gmv_level_rule": [{
                "reached_max_follower_cnt": str(s.max_follower_count), "gmv_tier": s.gmv_tier,
                "quota_details": [{k: d[k] for k in ("creator_levels", "quota_period_sum", "quota_bonus_sum")}
                                  for d in details],
            }],
            "quota_details": details,
            "bonus_exposure_post_percentile_threshold": "0.8",
        }
        return reply(0, data={"data": data} if s.outreach_quota_nested else data)

    def _do_check_eligibility(self, call: Call) -> Reply:
        s, shop, now = self.settings, call.shop or "", self.now()
        infos = call.body.get("creator_infos")
        if not isinstance(infos, list) or not 1 <= len(infos) <= 100:
            return invalid("creator_infos must hold 1 to 100 creators")
        ids = [i.get("creator_open_id") if isinstance(i, dict) else None for i in infos]
        if any(not isinstance(i, str) or not i for i in ids):
            return invalid("creator_infos[].creator_open_id is required")
        if len(set(ids)) != len(ids):
            return invalid("creator_infos lists a creator twice")
        creators = []
        for cid in ids:
            c = self.market.by_open_id(cid)
            if c is None and s.unknown_creators == "accept":
                c = self.market.stranger(cid)
            if c is None:
                return invalid(f"creator_open_id {cid} is not a Creator Open ID")
            creators.append(c)
        week, bands = self._week(shop, now), self._bands(shop)
        need: Counter[int] = Counter()
        results, short_levels = [], set()
        for c in creators:
            connected = self.is_connected(shop, c.index, now)
            free = connected or c.index in week.reached or s.outreach_unlimited
            band = self._band_of(bands, c.level)
            if not free and band is not None:
                need[band] += 1
            available = free or (band is not None and self._band_left(shop, week, band) > 0)
            if not available:
                short_levels.add(c.level)
            results.append({
                "creator_level": c.level,
                "creator_open_id": c.open_id,
                "is_blocked": self.ineligibility(c) == 16024018,
                "is_connected": connected,
                "is_creator_follower_count_threshold_met": c.followers <= s.max_follower_count
                and self.ineligibility(c) != 16024021,
                "is_creator_level_quota_available": available,
                "is_paired": bool(self.by_creator.get((shop, c.index))),
            })
        for band, n in need.items():
            if n > self._band_left(shop, week, band):
                short_levels.update(lv for lv in bands[band]["creator_levels"]
                                    if any(c.level == lv for c in creators))
        return reply(0, data={"creator_eligibility_results": results,
                              "ineligible_creator_levels": sorted(short_levels),
                              "is_batch_quota_consumable": not short_levels})

    # --- admin -----------------------------------------------------------------------------------------------
    def add_script(self, endpoint: str, answers: list[dict[str, Any]]) -> int:
        names = {e.name for e in ENDPOINTS} | {e.key for e in ENDPOINTS}
        if endpoint not in names:
            raise KeyError(endpoint)
        if not isinstance(answers, list) or any(not isinstance(a, dict) for a in answers):
            raise ValueError("answers must be a list of objects")
        for a in answers:
            unknown = set(a) - set(SCRIPT_FIELDS)
            if unknown:
                raise ValueError(f"unknown answer fields: {', '.join(sorted(unknown))}")
            for name, value in a.items():
                kind = SCRIPT_FIELDS[name]
                if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                    raise ValueError(f"{name} must be a {kind if isinstance(kind, type) else 'number'}")
            if not 100 <= a.get("http_status", 200) <= 599 or not 0 <= a.get("delay_ms", 0) <= 120_000:
                raise ValueError("http_status must be 100..599 and delay_ms 0..120000")
        self.scripts[endpoint].extend(answers)
        return len(self.scripts[endpoint])

    def truth(self, cid: str) -> dict[str, Any] | None:
        """A creator's hidden attributes, for tests and benchmarks."""
        c = self.market.resolve(cid)
        if c is None:
            return None
        return {
            "creator_open_id": c.open_id, "creator_user_id": c.user_id, "index": c.index, "username": c.username,
            "followers": c.followers, "level": c.level, "propensity": c.propensity,
            "attribute_propensity": c.attribute_propensity,
            "showcase_chance": c.showcase_chance(), "content_propensity": c.content_propensity,
            "order_rate": c.order_rate, "showcase_delay_days": c.showcase_delay_days,
            "expected_gmv_28d": round(c.expected_gmv(), 2), "ineligible_code": self.ineligibility(c),
        }

    # --- observation ------------------------------------------------------------------------------------------
    def _record(self, endpoint: str, version: str, shop: str | None, answer: Reply, pairs: int = 0) -> None:
        if answer.lost:
            key = "lost"
        elif answer.raw is not None:
            key = f"http{answer.status}"
        else:
            key = str(answer.code)
        self.by_code[key] += 1
        self.by_endpoint_code[endpoint][key] += 1
        if answer.status == 429:
            self.stats["http_429"] += 1
        elif answer.status == 503:
            self.stats["http_503"] += 1
        if self._log:
            self._log.write(json.dumps({
                "t": round(time.time(), 6),
                "arrived": round(self._arrived, 6),  # its headers' arrival: a body can follow much later
                "endpoint": endpoint,
                "version": version,
                "shop": shop,
                "http_status": answer.status,
                "code": answer.code if answer.raw is None else None,
                "lost": answer.lost,
                "pairs": pairs,
            }) + "\n")
            self._log.flush()

    def snapshot(self) -> dict[str, Any]:
        self.orders.catch_up(self.now())
        return {
            "requests": self.stats["requests"],
            "http_429": self.stats["http_429"],
            "rate_limited": self.stats["rate_limited"],
            "http_503": self.stats["http_503"],
            "overloaded": self.stats["overloaded"],
            "max_requests_in_window": max((w.max for w in self.max_received.values()), default=0),
            "max_admitted_in_window": max((w.max for w in self.max_admitted.values()), default=0),
            "max_window_by_scope": {k: w.max for k, w in self.max_received.items()},
            "max_window_by_level": {level: max((w.max for w in ws.values()), default=0)
                                    for level, ws in self.max_by_level.items()},
            "creates": self.stats["creates"],
            "creates_created_nothing": self.stats["creates_created_nothing"],
            "conflict_answers": self.stats["conflict_answers"],
            "collaborations": self.stats["collaborations"],
            "invited_pairs": self.stats["invited_pairs"],
            "duplicate_attempts": self.stats["duplicate_attempts"],
            "pairs_sent_more_than_once": sum(1 for n in self.pair_attempts.values() if n > 1),
            "lost_responses": self.stats["lost_responses"],
            "faults": self.stats["faults"],
            "scripted": self.stats["scripted"],
            "ineligible_refusals": self.stats["ineligible_refusals"],
            "token_expired": self.stats["token_expired"],
            "refreshes": self.stats["refreshes"],
            "refresh_failures": self.stats["refresh_failures"],
            "orders": self.orders.total,
            "quota_used": {f"{shop}/{day}": n for (shop, day), n in self.quota_used.items()},
            "outreach_used": {f"{shop}/{week}": len(w.reached) for (shop, week), w in self.outreach.items()},
            "by_endpoint": dict(self.by_endpoint),
            "by_endpoint_version": dict(self.by_endpoint_version),
            "by_code": dict(self.by_code),
            "by_endpoint_code": {name: dict(codes) for name, codes in self.by_endpoint_code.items()},
            "clock_offset_s": self.clock_offset,
            "now": self.now_utc().isoformat(),
            "settings": asdict(self.settings),
        }

    def invited_pairs(self) -> list[dict[str, str]]:
        return [
            {"shop": s, "creator_id": self.pair_creators[i].open_id, "creator_user_id": self.pair_creators[i].user_id,
             "product_id": p, "collaboration_id": cid}
            for (s, i, p), cid in self.pairs.items()
        ]

