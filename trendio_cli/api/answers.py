"""Turn every answer the API can give (JSON envelope, bare HTTP error, broken body, transport failure)
into one `ApiAnswer` that says what the executor must do."""

from __future__ import annotations

import email.utils
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import httpx


class Outcome(str, Enum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"  # back off, honour Retry-After, re-sign; never a failed invite
    DAILY_QUOTA = "daily_quota"  # no more calls for this brand until the quota day rolls over
    TRANSIENT = "transient"  # retry with backoff; a create may or may not have happened
    DUPLICATE = "duplicate"  # creator already invited to this product; never retry
    INELIGIBLE = "ineligible"  # creator cannot be invited
    OUTREACH_QUOTA = "outreach_quota"  # weekly outreach spent: stop inviting for this shop
    AUTH = "auth"  # credentials / signature / timestamp / scope: stop the run
    PRODUCT = "product"  # product not owned by the shop: configuration error for that product
    UNKNOWN = "unknown"  # undocumented code: non-retryable, keep code and message


CODE_OUTCOMES: dict[int, Outcome] = {
    0: Outcome.OK,
    36009002: Outcome.RATE_LIMITED,
    36009003: Outcome.TRANSIENT,
    36009007: Outcome.TRANSIENT,
    36009004: Outcome.AUTH,
    105002: Outcome.AUTH,
    101000: Outcome.AUTH,
    105005: Outcome.AUTH,
    106001: Outcome.AUTH,
    45101004: Outcome.DAILY_QUOTA,
    16024022: Outcome.DUPLICATE,
    16024019: Outcome.OUTREACH_QUOTA,
    16024021: Outcome.INELIGIBLE,
    16024020: Outcome.INELIGIBLE,
    16024006: Outcome.INELIGIBLE,
    16024016: Outcome.INELIGIBLE,
    16024008: Outcome.PRODUCT,
}

AUTH_HINTS: dict[int, str] = {
    105002: "the access token has expired: refresh it (Partner Center > Authorization) and set TRENDIO_ACCESS_TOKEN",
    101000: "the access token is invalid: re-authorize the shop and set TRENDIO_ACCESS_TOKEN",
    105005: "the token lacks a scope: grant the affiliate-seller scopes to the app and re-authorize the shop",
    106001: "the signature was refused: check TRENDIO_APP_SECRET",
    36009004: "check the app key, secret, token, shop cipher and that this machine's clock is right",
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

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def retryable(self) -> bool:
        return self.outcome in (Outcome.RATE_LIMITED, Outcome.TRANSIENT)

    @property
    def hint(self) -> str | None:
        return AUTH_HINTS.get(self.code or 0)

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
        """Which of `candidates` the answer's data mentions anywhere (error data naming creators or products)."""
        found: set[str] = set()
        _walk_strings(self.data, candidates, found)
        return found


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
            if outcome is Outcome.OK and status >= 400:
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
    # Any other status without a readable envelope, a 200 with a broken body included, is treated as a
    # transient failure: retry (after reconciling a create) rather than crash or give up.
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
