"""Turn every answer the API can give (JSON envelope, bare HTTP error, broken body, transport failure)
into one `ApiAnswer` that says what the executor must do."""

from __future__ import annotations

import email.utils
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import httpx


class Outcome(str, Enum):
    """What the executor must do with an answer (the reference's error table, tiktok-shop-api.md)."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # back off, honour Retry-After, re-sign; never a failed invite
    DAILY_QUOTA = "daily_quota"  # no more calls for this brand until the quota day rolls over
    TRANSIENT = "transient"  # retry with backoff; a create may or may not have happened
    DUPLICATE = "duplicate"  # creator already invited to this product; never retry
    INELIGIBLE = "ineligible"  # creator cannot be invited (nothing was created for any creator in the request)
    OUTREACH_QUOTA = "outreach_quota"  # weekly outreach spent: stop inviting for this shop
    TOKEN_EXPIRED = "token_expired"  # refresh the access token once, then go on
    AUTH = "auth"  # credentials / signature / timestamp / scope / IP allow list: stop the brand
    PRODUCT = "product"  # a product is not the shop's: stop the campaign (its configuration is wrong)
    SENSITIVE = "sensitive"  # sensitive words in the message: stop the campaign
    INVALID = "invalid"  # invalid params (a bad end_time, a missing field): stop the campaign
    UNSUPPORTED = "unsupported"  # invalid path, method, body format or version: a bug, or a version withdrawn
    NO_ACCESS = "no_access"  # this collaboration cannot be read (not the shop's, or expired)
    UNKNOWN = "unknown"  # undocumented code: keep code and message; a streak of them stops the brand


CODE_OUTCOMES: dict[int, Outcome] = {
    0: Outcome.OK,
    36009002: Outcome.RATE_LIMITED,
    36009003: Outcome.TRANSIENT,
    36009007: Outcome.TRANSIENT,
    45101004: Outcome.DAILY_QUOTA,
    105002: Outcome.TOKEN_EXPIRED,
    36009004: Outcome.AUTH,
    101000: Outcome.AUTH,
    105005: Outcome.AUTH,
    106001: Outcome.AUTH,
    106013: Outcome.AUTH,
    36009033: Outcome.AUTH,
    36009009: Outcome.UNSUPPORTED,
    36009010: Outcome.UNSUPPORTED,
    36009014: Outcome.UNSUPPORTED,
    36009022: Outcome.UNSUPPORTED,
    16024022: Outcome.DUPLICATE,
    16024019: Outcome.OUTREACH_QUOTA,
    16024004: Outcome.INELIGIBLE,
    16024006: Outcome.INELIGIBLE,
    16024016: Outcome.INELIGIBLE,
    16024018: Outcome.INELIGIBLE,
    16024020: Outcome.INELIGIBLE,
    16024021: Outcome.INELIGIBLE,
    50001702: Outcome.INELIGIBLE,
    16024008: Outcome.PRODUCT,
    50001703: Outcome.SENSITIVE,
    98001004: Outcome.INVALID,
    50001700: Outcome.NO_ACCESS,
    50001701: Outcome.NO_ACCESS,
}

HINTS: dict[int, str] = {
    105002: "the access token has expired and could not be refreshed: run `trendio auth refresh`, or set a new "
            "TRENDIO_ACCESS_TOKEN and TRENDIO_REFRESH_TOKEN",
    101000: "the access token is invalid or not this shop's: re-authorize the shop, set TRENDIO_ACCESS_TOKEN, and "
            "check TRENDIO_SHOP_CIPHER with `trendio auth shops`",
    105005: "the app or the token lacks a scope: grant \"Manage Seller Affiliate Collaboration\", \"Read Seller "
            "Affiliate Collaboration\" and \"Read Creator Marketplace\" to the app, then re-authorize the shop",
    106001: "the signature was refused: check TRENDIO_APP_SECRET (and the machine's clock)",
    106013: "the shop cipher is missing: set TRENDIO_SHOP_CIPHER (`trendio auth shops` lists them)",
    36009033: "this machine's IP address is not in the app's IP allow list (Partner Center > App & Service)",
    36009004: "check the app key, secret, token and shop cipher, and that this machine's clock is right",
    36009009: "the platform does not know this path: the API version may have been withdrawn; upgrade trendio",
    36009010: "the platform refused the HTTP method: upgrade trendio",
    36009014: "the platform does not offer this API version: upgrade trendio",
    36009022: "the platform refused the request's body format: upgrade trendio",
    16024008: "a product is not this shop's: check the campaign's products (and the shop cipher)",
    50001703: "the message contains words the platform refuses: reword the campaign's message",
    98001004: "the platform refused a field of the request: check the campaign (end_date, products, contact_email)",
    16024019: "inviting resumes when the outreach week refreshes (Sunday 12:00 UTC-8 by default)",
}

@dataclass
class ApiAnswer:
    outcome: Outcome
    http_status: int | None = None
    code: int | None = None
    message: str = ""
    request_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    retry_after: float | None = None
    # True when the call may have changed state on the platform although we did not get a clean answer:
    # a create must then be reconciled before it is sent again.
    maybe_applied: bool = False
    latency_ms: float = 0.0
    sent_at: float | None = None  # wall-clock time the request finished leaving this machine, if it did
    overloaded: bool = False  # HTTP 503: the platform protects itself; slow down as after a 429

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def retryable(self) -> bool:
        return self.outcome in (Outcome.RATE_LIMITED, Outcome.TRANSIENT)

    @property
    def hint(self) -> str | None:
        return HINTS.get(self.code or 0)

    def describe(self) -> str:
        parts = [self.outcome.value]
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.http_status is not None and self.http_status != 200:
            parts.append(f"HTTP {self.http_status}")
        if self.message:
            parts.append(self.message)
        return ": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]

    # --- create-collaboration specifics -------------------------------------------------------
    def collaboration_id(self) -> str | None:
        tc = self.data.get("target_collaboration") if isinstance(self.data, dict) else None
        if isinstance(tc, dict) and tc.get("id") is not None:
            return str(tc["id"])
        return None

    def conflicts(self) -> list[tuple[str, str]]:
        """(creator, product) pairs the platform refused as already invited, in any of the documented forms."""
        pairs: list[tuple[str, str]] = []
        if not isinstance(self.data, dict):
            return pairs
        for key in ("target_collaboration_conflicts", "conflict_items", "conflicts"):
            items = self.data.get(key)
            if not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                creator = _first(item, "creator_user_id", "creator_open_id", "creator_user_open_id", "creator_id")
                product = _first(item, "product_id", "id")
                if creator is not None and product is not None:
                    pairs.append((str(creator), str(product)))
        return pairs

    def named_ids(self, candidates: set[str]) -> set[str]:
        """Which of `candidates` the answer mentions anywhere: in its data, in any shape (lists of ids, objects
        with ids, comma-separated text), or in its message. The platform does not document the shape."""
        found: set[str] = set()
        _walk_strings([self.data, self.message], candidates, found)
        return found


_ID_SEPARATORS = re.compile(r"[^A-Za-z0-9_-]+")


def _first(item: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if item.get(k) not in (None, ""):
            return item[k]
    return None


def _walk_strings(value: Any, candidates: set[str], found: set[str]) -> None:
    stack = [value]  # iterative: an answer's depth is bounded (MAX_DEPTH), but no recursion is needed at all
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            s = str(value) if not isinstance(value, int) or abs(value) < 10**30 else ""
            if s in candidates:
                found.add(s)
            elif isinstance(value, str):
                found.update(t for t in _ID_SEPARATORS.split(s) if t in candidates)


MAX_RETRY_AFTER_S = 3600.0  # a longer Retry-After is read as this (the waits cap it further)
MAX_DEPTH = 64  # an answer nested deeper is not this API's: one unknown answer (the API's are under 10)
MAX_CODE = 2**53  # a `code` beyond this is not a code (and would overflow SQLite's integers)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After in seconds, from delta-seconds or an HTTP date, within [0, MAX_RETRY_AFTER_S]."""
    if not value:
        return None
    value = value.strip()[:100]
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return min(max(0.0, seconds), MAX_RETRY_AFTER_S) if seconds == seconds else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    try:
        return min(max(0.0, when.timestamp() - (time.time() if now is None else now)), MAX_RETRY_AFTER_S)
    except (OverflowError, ValueError, OSError):
        return None


def classify_response(
    status: int, headers: Mapping[str, str], body: bytes, *, mutating: bool
) -> ApiAnswer:
    """Classify an HTTP response. The JSON envelope's `code` wins over the HTTP status. Whatever the answer
    holds, it comes back as one answer: an HTTP status outside 100-599, an envelope nested deeper than
    MAX_DEPTH or a `code` that is no code is one unknown answer (every number range-checked before SQLite)."""
    retry_after = parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))
    if not isinstance(status, int) or not 100 <= status <= 599:
        return ApiAnswer(outcome=Outcome.UNKNOWN, message=f"an HTTP status out of range ({str(status)[:20]})")
    envelope: Any = None
    if body.strip():
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            envelope = None
        except RecursionError:
            return _unreadable(status, f"an answer nested too deeply to read (beyond {MAX_DEPTH} levels)")
        if _deeper_than(envelope, MAX_DEPTH):
            return _unreadable(status, f"an answer nested too deeply to read (beyond {MAX_DEPTH} levels)")
    if isinstance(envelope, dict) and isinstance(envelope.get("code"), (int, str)) \
            and not isinstance(envelope.get("code"), bool):
        try:
            code: int | None = int(str(envelope["code"])[:40])
        except ValueError:
            code = None
        if code is not None and not -MAX_CODE <= code <= MAX_CODE:
            return _unreadable(status, f"an answer whose code is not a code ({str(envelope['code'])[:40]})")
        if code is not None:
            data = envelope.get("data")
            outcome = CODE_OUTCOMES.get(code, Outcome.UNKNOWN)
            if status >= 400 and (outcome is Outcome.OK or (outcome is Outcome.UNKNOWN and status in (429, 503))):
                # a documented code says more than the status; success or an unknown code with an error
                # status says less (429 and 503 are rate limiting and overload, envelope or not)
                outcome = _status_outcome(status)
            return ApiAnswer(
                outcome=outcome,
                http_status=status,
                code=code,
                message=_text(envelope.get("message")),
                request_id=_text(envelope.get("request_id"), 200) or None,
                data=data if isinstance(data, dict) else {},
                retry_after=retry_after,
                # internal error / timeout: the platform may have done the work before failing
                maybe_applied=mutating and outcome is Outcome.TRANSIENT,
                overloaded=status == 503,
            )
    # No usable envelope: an HTML error page, an empty or truncated body, a proxy's answer.
    outcome = _status_outcome(status)
    snippet = body[:120].decode("utf-8", "replace").strip().replace("\n", " ")
    return ApiAnswer(
        outcome=outcome,
        http_status=status,
        message=f"HTTP {status} without a JSON envelope" + (f": {snippet}" if snippet else " (empty body)"),
        retry_after=retry_after,
        maybe_applied=mutating and outcome is Outcome.TRANSIENT,
        overloaded=status == 503,
    )


def _unreadable(status: int, message: str) -> ApiAnswer:
    return ApiAnswer(outcome=Outcome.UNKNOWN, http_status=status, message=message)


def _text(value: Any, limit: int = 500) -> str:
    """A text field of the envelope as text (a number as its digits; anything else is not text)."""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)[:limit] if not isinstance(value, int) or abs(value) < 10**30 else ""
    return ""


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return False


def _status_outcome(status: int) -> Outcome:
    if status == 429:
        return Outcome.RATE_LIMITED
    if status in (401, 403):
        return Outcome.AUTH
    if status in (404, 405):
        return Outcome.UNSUPPORTED  # no such path or method here (a version withdrawn, a 2026 endpoint absent)
    # 503 (overloaded: "a non-platform-controlled protective measure") is transient, and a create answered so
    # may have been done: it is reconciled before anything is resent. Any other status without a readable
    # envelope, a 200 with a broken body included, is treated as a transient failure: retry (after reconciling
    # a create) rather than crash or give up.
    return Outcome.TRANSIENT


def classify_exception(exc: Exception, *, mutating: bool) -> ApiAnswer:
    """Transport failures are transient; whether the request reached the platform decides `maybe_applied`."""
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                                  httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.ProxyError))
    return ApiAnswer(
        outcome=Outcome.TRANSIENT,
        message=_describe(exc),
        maybe_applied=mutating and not never_sent,
    )


def _describe(exc: BaseException) -> str:
    """The exception and, when its own text says little, the cause beneath it (the OS's refused connection)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    seen = 0
    while cause is not None and seen < 5:
        for err in (cause, *getattr(cause, "exceptions", ())):  # several addresses tried: the first one's reason
            if isinstance(err, OSError) and (err.errno or err.strerror):
                reason = err.strerror or ""
                if reason.startswith("Connect call failed") and err.errno:  # (asyncio's text: the address)
                    reason = os.strerror(err.errno)
                return (f"{text} ({reason})" if reason and reason not in text else text)[:500]
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return text[:500]
