"""The sandbox's platform state and rules: credentials, rate window, daily quota, outreach, pairs, collaborations.

Pure Python and synchronous; the HTTP layer (`app.py`) calls it between awaits, so it needs no locks."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from trendio_cli.api.credentials import Credentials
from trendio_cli.api.signing import sign
from trendio_cli.sandbox.marketplace import Marketplace

OUTREACH_TZ = ZoneInfo("Etc/GMT+8")  # "12:00 GMT-8" on Sundays
# The forms a transient fault takes: coded errors, proxy pages, an empty body, a JSON body cut short with
# honest framing, and a connection reset before any answer.
FAULT_FORMS = ("internal_error", "internal_timeout", "bad_gateway_html", "unavailable_empty", "truncated_json",
               "connection_reset")


@dataclass
class SandboxSettings:
    """Knobs of the sandbox; every one can be changed at start (`trendio sandbox --help`) or live (admin API)."""

    rate_limit: int = 50  # requests per rate window
    rate_window_s: float = 1.0
    rate_scope: str = "app"  # "app" (per app key) or "shop"
    daily_quota: int = 10_000  # requests per shop per quota day, rejected ones too
    quota_timezone: str = "UTC"
    weekly_outreach: int = 5_000  # new creators contacted per shop per outreach week
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fault_rate: float = 0.0  # share of requests answered with a transient fault
    lost_rate: float = 0.0  # share of creates applied but whose answer is cut off
    ineligible_permille: int = 0  # creators (by id hash) the platform refuses
    ineligible_mode: str = "named"  # "named": error data lists them; "unnamed": it does not
    token_expires_after: int = 0  # after this many requests the token is expired (0: never)
    fault_forms: list[str] = field(default_factory=lambda: list(FAULT_FORMS))  # which forms faults take
    retry_after: bool = True  # send Retry-After with 429s
    clock_skew_s: float = 0.0  # the platform's clock runs this far ahead of this machine's (timestamp checks)
    min_commission: int = 100  # hundredths of a percent
    max_commission: int = 8_000
    timestamp_past_s: int = 300
    timestamp_future_s: int = 30
    seed: int = 7
    marketplace_size: int = 5_000
    products: list[str] = field(default_factory=list)  # owned product ids; empty: any id is owned

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise KeyError(key)
            current = getattr(self, key)
            if isinstance(current, bool) or current is None:
                setattr(self, key, value)
            elif isinstance(current, (int, float)):
                setattr(self, key, type(current)(value))
            else:
                setattr(self, key, value)


@dataclass
class Reply:
    status: int
    code: int
    message: str = "Success"
    data: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # a non-JSON body (HTML error page, empty)
    lost: bool = False  # cut the connection instead of answering


def envelope(code: int, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "request_id": hashlib.blake2b(str(time.time_ns()).encode(), digest_size=10).hexdigest(),
        "data": data or {},
    }


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


class SandboxState:
    def __init__(self, settings: SandboxSettings, credentials: list[Credentials], log_path: str | None = None):
        self.settings = settings
        self.apps: dict[str, str] = {}  # app_key -> app_secret
        self.shops: dict[str, Credentials] = {}  # access token -> credentials
        for c in credentials:
            self.apps[c.app_key] = c.app_secret
            self.shops[c.access_token] = c
        self.log_path = log_path
        self._log = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
        self.reset()

    # --- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        s = self.settings
        self.rng = random.Random(s.seed)
        self.market = Marketplace(seed=s.seed, size=s.marketplace_size)
        self.clock_offset = 0.0
        self.windows: dict[str, list[float]] = defaultdict(list)
        self.max_received: dict[str, MaxWindow] = defaultdict(lambda: MaxWindow(s.rate_window_s))
        self.max_admitted: dict[str, MaxWindow] = defaultdict(lambda: MaxWindow(s.rate_window_s))
        self.quota_used: Counter[tuple[str, str]] = Counter()
        self.outreach: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.connected: dict[str, set[str]] = defaultdict(set)  # shop -> creators ever invited
        self.pairs: dict[tuple[str, str, str], str] = {}  # (shop, creator, product) -> collaboration id
        self.pair_attempts: Counter[tuple[str, str, str]] = Counter()
        self.collaborations: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(7_300_000_000_000_000_001)
        self.token_uses: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.by_code: Counter[str] = Counter()

    def close(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    # --- clocks ------------------------------------------------------------------------------
    def now(self) -> float:
        """Simulated platform time: real time plus whatever `advance` added (answers, quota day, week)."""
        return time.time() + self.clock_offset

    def quota_day(self, t: float) -> str:
        return datetime.fromtimestamp(t, ZoneInfo(self.settings.quota_timezone)).date().isoformat()

    @staticmethod
    def outreach_week(t: float) -> str:
        local = datetime.fromtimestamp(t, OUTREACH_TZ)
        days_since_sunday = (local.weekday() + 1) % 7
        start = (local - timedelta(days=days_since_sunday)).replace(hour=12, minute=0, second=0, microsecond=0)
        if start > local:
            start -= timedelta(days=7)
        return start.isoformat()

    # --- the gate every request passes --------------------------------------------------------
    def admit(
        self, endpoint: str, path: str, query: dict[str, str], token: str | None, body: bytes,
        arrived: float | None = None,
    ) -> tuple[Credentials | None, Reply | None]:
        """Identify, count, rate-limit and authenticate. Returns the shop, or the refusal to send.

        `arrived` is when the request reached the server (stamped before its body was read)."""
        real = time.time() if arrived is None else arrived
        s = self.settings
        self.stats["requests"] += 1
        self.by_endpoint[endpoint] += 1
        app_key = query.get("app_key", "")
        secret = self.apps.get(app_key)
        if secret is None:
            return None, Reply(200, 36009004, "Invalid credentials: unknown app_key")
        shop = self.shops.get(token or "")
        if shop is None:
            return None, Reply(401, 101000, "Invalid access token")
        # Every identified call counts against the shop's day, refused ones too.
        day_key = (shop.shop_cipher, self.quota_day(self.now()))
        self.quota_used[day_key] += 1
        scope = app_key if s.rate_scope == "app" else shop.shop_cipher
        self.max_received[scope].add(real)
        if self.quota_used[day_key] > s.daily_quota:
            return shop, Reply(429, 45101004, "Daily API request quota exceeded for this shop")
        # admitted arrivals in stamp order, whatever order their bodies were read in: the second before this one
        window = self.windows[scope]
        del window[:bisect.bisect_right(window, real - 5 * s.rate_window_s)]
        first = bisect.bisect_right(window, real - s.rate_window_s)
        if bisect.bisect_right(window, real) - first >= s.rate_limit:
            self.stats["rate_limited"] += 1
            retry = max(0.01, window[first] + s.rate_window_s - real)
            headers = {"Retry-After": str(max(1, round(retry + 0.49)))} if s.retry_after else {}
            return shop, Reply(429, 36009002, "Too many requests", headers=headers)
        bisect.insort(window, real)
        self.max_admitted[scope].add(real)
        try:
            ts = int(query.get("timestamp", ""))
        except ValueError:
            return shop, Reply(200, 36009004, "Invalid credentials: missing or malformed timestamp")
        platform_now = real + s.clock_skew_s
        if ts < platform_now - s.timestamp_past_s or ts > platform_now + s.timestamp_future_s:
            return shop, Reply(200, 36009004, "Invalid credentials: timestamp outside the allowed window")
        expected = sign(secret, path, query, body)
        if query.get("sign", "") != expected:
            return shop, Reply(200, 106001, "Invalid sign")
        if query.get("shop_cipher") != shop.shop_cipher or shop.app_key != app_key:
            return shop, Reply(200, 36009004, "Invalid credentials: shop_cipher does not match the token")
        self.token_uses[token or ""] += 1
        if s.token_expires_after and self.token_uses[token or ""] > s.token_expires_after:
            return shop, Reply(401, 105002, "Access token expired")
        return shop, None

    def transient_fault(self) -> Reply | None:
        """A random transient failure in one of the forms seen in the wild."""
        if not self.settings.fault_rate or self.rng.random() >= self.settings.fault_rate:
            return None
        self.stats["faults"] += 1
        forms = self.settings.fault_forms or list(FAULT_FORMS)
        form = forms[self.rng.randrange(len(forms))]
        if form == "internal_error":
            return Reply(200, 36009003, "Internal error")
        if form == "internal_timeout":
            return Reply(500, 36009007, "Internal timeout")
        if form == "bad_gateway_html":
            return Reply(502, 0, raw=b"<html><body><h1>502 Bad Gateway</h1></body></html>")
        if form == "truncated_json":
            return Reply(200, 0, raw=b'{"code": 0, "message": "Success", "data": {"target_collabor')
        if form == "connection_reset":
            return Reply(200, 0, "reset", lost=True)
        return Reply(503, 0, raw=b"")

    # --- endpoints ---------------------------------------------------------------------------
    def create_collaboration(self, shop: Credentials, body: dict[str, Any], version: str) -> Reply:
        s = self.settings
        self.stats["creates"] += 1
        creators = body.get("creator_user_open_ids" if version >= "202508" else "creator_user_ids")
        products = body.get("products")
        if not isinstance(creators, list) or not creators:
            return Reply(200, 36009001, "Invalid parameter: creator ids missing")
        if not isinstance(products, list) or not products:
            return Reply(200, 36009001, "Invalid parameter: products missing")
        if len(creators) > 50:
            return Reply(200, 36009001, f"Invalid parameter: {len(creators)} creators, at most 50 per request")
        if len(products) > 100:
            return Reply(200, 36009001, f"Invalid parameter: {len(products)} products, at most 100 per request")
        if not body.get("name") or not str(body.get("end_time", "")).isdigit():
            return Reply(200, 36009001, "Invalid parameter: name and end_time are required")
        if int(body["end_time"]) <= self.now():
            return Reply(200, 36009001, "Invalid parameter: end_time must be in the future")
        product_ids: list[str] = []
        for p in products:
            rate = p.get("target_commission_rate") if isinstance(p, dict) else None
            if not isinstance(rate, int) or not s.min_commission <= rate <= s.max_commission:
                return Reply(
                    200,
                    36009001,
                    f"Invalid parameter: target_commission_rate must be {s.min_commission}..{s.max_commission}",
                )
            product_ids.append(str(p.get("id")))
        if s.products:
            foreign = [p for p in product_ids if p not in s.products]
            if foreign:
                return Reply(200, 16024008, "Product does not belong to the shop", {"product_ids": foreign})
        creators = [str(c) for c in creators]
        bad = [c for c in creators if self.market.is_ineligible(c, s.ineligible_permille)]
        if bad:
            self.stats["ineligible_refusals"] += 1
            data = {"creator_user_ids": bad} if s.ineligible_mode == "named" else {}
            return Reply(200, 16024021, "Creator does not meet the follower requirement", data)
        shop_key = shop.shop_cipher
        conflicts = [
            {"creator_user_id": c, "product_id": p}
            for c in creators
            for p in product_ids
            if (shop_key, c, p) in self.pairs
        ]
        if len(conflicts) == len(creators) * len(product_ids):
            self._count_attempts(shop_key, creators, product_ids, len(conflicts))
            return Reply(
                200, 16024022, "Creator already invited to this product", {"target_collaboration_conflicts": conflicts}
            )
        week = (shop_key, self.outreach_week(self.now()))
        new_creators = {c for c in creators if c not in self.connected[shop_key]}
        if len(self.outreach[week] | new_creators) > s.weekly_outreach:
            return Reply(200, 16024019, "Outreach quota exhausted for this week")
        self._count_attempts(shop_key, creators, product_ids, len(conflicts))
        self.outreach[week] |= new_creators
        self.connected[shop_key] |= new_creators
        cid = str(next(self.ids))
        conflicted = {(x["creator_user_id"], x["product_id"]) for x in conflicts}
        invited = [(c, p) for c in creators for p in product_ids if (c, p) not in conflicted]
        for c, p in invited:
            self.pairs[(shop_key, c, p)] = cid
        self.stats["invited_pairs"] += len(invited)
        self.collaborations[cid] = {
            "id": cid,
            "shop": shop_key,
            "name": body["name"],
            "message": body.get("message", ""),
            "created_at": self.now(),
            "end_time": int(body["end_time"]),
            "products": [{"id": p, "target_commission_rate": r["target_commission_rate"]}
                         for p, r in zip(product_ids, products)],
            "creators": sorted({c for c, _ in invited}),
        }
        return Reply(200, 0, "Success", {
            "target_collaboration": {"id": cid},
            "target_collaboration_conflicts": conflicts,
        })

    def _count_attempts(self, shop_key: str, creators: list[str], products: list[str], conflicts: int) -> None:
        """Pairs that reached the point of being invited (or refused as duplicates)."""
        self.stats["duplicate_attempts"] += conflicts
        for c in creators:
            for p in products:
                self.pair_attempts[(shop_key, c, p)] += 1

    def check_conflicts(self, shop: Credentials, body: dict[str, Any]) -> Reply:
        creators = [str(c) for c in body.get("creator_open_id_list") or []]
        products = [str(p) for p in body.get("product_id_list") or []]
        if not creators or not products or len(creators) > 50 or len(products) > 100:
            return Reply(200, 36009001, "Invalid parameter: 1..50 creators and 1..100 products")
        items = [
            {"creator_open_id": c, "product_id": p, "existing_collaboration_id": self.pairs[(shop.shop_cipher, c, p)]}
            for c in creators
            for p in products
            if (shop.shop_cipher, c, p) in self.pairs
        ]
        return Reply(200, 0, "Success", {"has_conflict": bool(items), "conflict_items": items})

    def _creator_states(self, collab: dict[str, Any]) -> list[dict[str, Any]]:
        now = self.now()
        out = []
        for c in collab["creators"]:
            answer, delay_days = self.market.answer(c, collab["id"])
            answered_at = collab["created_at"] + delay_days * 86400
            if answer != "NO_RESPONSE" and now >= answered_at and answered_at <= collab["end_time"]:
                status, updated = answer, answered_at
            elif now >= collab["end_time"]:
                status, updated = "EXPIRED", collab["end_time"]
            else:
                status, updated = "PENDING", collab["created_at"]
            out.append({"creator_user_id": c, "accept_status": status, "update_time": int(updated)})
        return out

    def collaboration_view(self, collab: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": collab["id"],
            "name": collab["name"],
            "status": "ENDED" if self.now() >= collab["end_time"] else "ONGOING",
            "create_time": int(collab["created_at"]),
            "end_time": str(collab["end_time"]),
            "products": collab["products"],
            "creators": self._creator_states(collab),
        }

    def search_collaborations(self, shop: Credentials, query: dict[str, str], body: dict[str, Any]) -> Reply:
        try:
            page_size = int(query.get("page_size", "20"))
        except ValueError:
            page_size = 0
        if page_size not in (20, 50, 100):
            return Reply(200, 36009001, "Invalid parameter: page_size must be 20, 50 or 100")
        try:
            offset = int(query.get("page_token") or 0)
        except ValueError:
            return Reply(200, 36009001, "Invalid parameter: page_token")
        want_status = body.get("collaboration_status")
        want_accept = body.get("creator_accept_status")
        views = []
        for collab in self.collaborations.values():
            if collab["shop"] != shop.shop_cipher:
                continue
            view = self.collaboration_view(collab)
            if want_status and view["status"] != want_status:
                continue
            if want_accept and not any(c["accept_status"] == want_accept for c in view["creators"]):
                continue
            views.append(view)
        page = views[offset : offset + page_size]
        nxt = offset + page_size
        data = {
            "target_collaborations": page,
            "total_count": len(views),
            "next_page_token": str(nxt) if nxt < len(views) else "",
        }
        return Reply(200, 0, "Success", data)

    def get_collaboration(self, shop: Credentials, collaboration_id: str) -> Reply:
        collab = self.collaborations.get(collaboration_id)
        if collab is None or collab["shop"] != shop.shop_cipher:
            return Reply(200, 16024100, "Target collaboration not found")
        return Reply(200, 0, "Success", {"target_collaboration": self.collaboration_view(collab)})

    def search_creators(self, query: dict[str, str], body: dict[str, Any]) -> Reply:
        try:
            page_size = int(query.get("page_size", "12"))
            offset = int(query.get("page_token") or 0)
        except ValueError:
            return Reply(200, 36009001, "Invalid parameter: page_size or page_token")
        if page_size not in (12, 20):
            return Reply(200, 36009001, "Invalid parameter: page_size must be 12 or 20")
        found = self.market.search(body)
        page = found[offset : offset + page_size]
        nxt = offset + page_size
        return Reply(200, 0, "Success", {
            "creators": [c.public() for c in page],
            "total_count": len(found),
            "next_page_token": str(nxt) if nxt < len(found) else "",
        })

    def get_creator(self, creator_id: str) -> Reply:
        if not creator_id.isdigit():
            return Reply(200, 36009001, "Invalid parameter: creator_user_id")
        return Reply(200, 0, "Success", {"creator": self.market.get(creator_id).public()})

    # --- observation -------------------------------------------------------------------------
    def record(self, endpoint: str, shop: Credentials | None, reply: Reply, pairs: int = 0) -> None:
        key = "lost" if reply.lost else (str(reply.code) if reply.raw is None else f"http{reply.status}")
        self.by_code[key] += 1
        if reply.status == 429:
            self.stats["http_429"] += 1
        if self._log:
            self._log.write(json.dumps({
                "t": round(time.time(), 6),
                "endpoint": endpoint,
                "shop": shop.shop_cipher if shop else None,
                "http_status": reply.status,
                "code": reply.code if reply.raw is None else None,
                "lost": reply.lost,
                "pairs": pairs,
            }) + "\n")
            self._log.flush()

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.stats["requests"],
            "http_429": self.stats["http_429"],
            "rate_limited": self.stats["rate_limited"],
            "max_requests_in_window": max((w.max for w in self.max_received.values()), default=0),
            "max_admitted_in_window": max((w.max for w in self.max_admitted.values()), default=0),
            "max_window_by_scope": {k: w.max for k, w in self.max_received.items()},
            "creates": self.stats["creates"],
            "invited_pairs": self.stats["invited_pairs"],
            "duplicate_attempts": self.stats["duplicate_attempts"],
            "pairs_sent_more_than_once": sum(1 for n in self.pair_attempts.values() if n > 1),
            "lost_responses": self.stats["lost_responses"],
            "faults": self.stats["faults"],
            "ineligible_refusals": self.stats["ineligible_refusals"],
            "quota_used": {f"{shop}/{day}": n for (shop, day), n in self.quota_used.items()},
            "outreach_used": {f"{shop}/{week}": len(c) for (shop, week), c in self.outreach.items()},
            "by_endpoint": dict(self.by_endpoint),
            "by_code": dict(self.by_code),
            "clock_offset_s": self.clock_offset,
            "settings": asdict(self.settings),
        }

    def invited_pairs(self) -> list[dict[str, str]]:
        return [
            {"shop": s, "creator_id": c, "product_id": p, "collaboration_id": cid}
            for (s, c, p), cid in self.pairs.items()
        ]

    def now_utc(self) -> datetime:
        return datetime.fromtimestamp(self.now(), timezone.utc)
