"""Admission: whether a request may leave, and when. The one place that decides it, for every process that
uses the ledger.

A request is admitted in one ledger transaction that checks the run still holds its brand's lock (fencing),
reserves the call against the brand's daily quota, claims its pairs pending (write-ahead) and takes its send
slot. Refused for any of these, it changes nothing.

The rate algorithm is pyrate-limiter's GCRA (Generic Cell Rate Algorithm: a leaky bucket kept as one
"theoretical arrival time" per rate scope) with a burst of 1, through its `StateBucket`, and a `StateStore`
of ours (`LedgerStateStore`) that keeps the state in the ledger (`rate_state`, on SQLite and PostgreSQL)
and is read and written inside the admitting transaction. With a burst of 1 every admitted request moves
the scope's arrival time on by one emission interval (the rule's window / its limit): requests are evenly
spaced, one per slot, and any N+1 of them span at least N intervals, so that no window of the rule's length
ever holds more than N (exact, unlike a windowed log, which lets the whole limit leave at once). A request
takes the scope's next free slot, at most `MAX_AHEAD_S` ahead (further ahead it waits and asks again).

The window is `WINDOW_MARGIN_MS` longer than the platform's second (2.5% of the throughput): the margin is
what the delay between a slot and the request's arrival at the platform may vary by (this machine's
scheduling, the network, the platform's own stamping) with no second above the limit. So a request must
leave within `LATE_S` of its slot: it waits for its slot,
and right before its first byte is written (`leave`, its connection ready) it checks its run still holds the
lock and the scope is not held; late (a busy machine, a paused process, a connection that had to be opened)
it takes a new slot instead of leaving, so that lateness never turns into a burst.

After a 429 every process on the ledger waits out Retry-After (capped at `HOLD_CAP_S`; without one, a
doubling backoff) before the scope's next slot, and this process halves its own pace, recovering by a
quarter every `RECOVER_EVERY_S` without another 429 (AIMD)."""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyrate_limiter import GCRA, Rate, RateItem, StateBucket, StateStore, WallClock

from trendio_cli.ledger import CallSpec, LockLost

if TYPE_CHECKING:
    from trendio_cli.ledger import Ledger

WINDOW_MARGIN_MS = 25  # the rule's window is this much longer than a second: 50 per 1,025 ms at 50/s
LATE_S = 0.010  # a request leaves at most this long after its slot; later, it takes a new slot
LEAD_S = 0.0  # a request takes its connection (an idle one, usually) this long before its slot
MAX_AHEAD_S = 2.0  # a slot is never taken further ahead than this (a process cannot hoard the scope)
HOLD_CAP_S = 60.0  # the longest hold after a 429, whatever its Retry-After says
MAX_WAIT_S = 300.0  # no single wait of admission is longer than this
MIN_FACTOR = 0.02  # never below 2% of the configured rate (1 request/s at 50/s)
RECOVER_EVERY_S = 5.0  # after this long without a 429 the pace goes up again...
RECOVER_STEP = 1.25  # ...by a quarter
SCOPES = ("brand", "shop", "api", "app")
TICKS_PER_S = 1_000_000  # the time unit given to pyrate-limiter (its GCRA state is then in nanoseconds)


class NotSent(Exception):
    """The run stopped (a signal, a failure) while this request waited for its slot: it did not leave."""


@dataclass(frozen=True)
class RateRule:
    """At most `limit` requests in any `window_ms`, evenly spaced: pyrate-limiter's Rate with a burst of 1."""

    limit: int
    window_ms: int

    @classmethod
    def for_rate(cls, requests_per_second: float) -> RateRule:
        if requests_per_second >= 1:
            limit = int(math.floor(requests_per_second))
            return cls(limit, int(math.ceil(1000 * limit / requests_per_second)) + WINDOW_MARGIN_MS)
        return cls(1, int(math.ceil(1000 / requests_per_second)) + WINDOW_MARGIN_MS)

    @property
    def per_second(self) -> float:
        return self.limit * 1000 / self.window_ms

    @property
    def spacing_s(self) -> float:
        """The time between two slots."""
        return self.window_ms / self.limit / 1000

    def rate(self, factor: float = 1.0) -> Rate:
        """The rule for pyrate-limiter, in microseconds (`TICKS_PER_S`): whole milliseconds would round every
        slot up to the next one (21 ms apart instead of 20.5 at 50/s, 2.4% of the throughput)."""
        return Rate(self.limit, max(1, int(round(self.window_ms * 1000 / factor))), burst=1)

    def schedule(self, n: int, start: float = 0.0) -> list[float]:
        """Send times of `n` requests on a simulated clock (dry-run): one per slot."""
        return [start + i * self.spacing_s for i in range(n)]


def scope_key(scope: str, app_key: str, shop_cipher: str, endpoint: str = "") -> str:
    """The rate scope a request counts against, as the platform counts (per app and shop): the shop, every
    endpoint together (the default, "brand" or "shop"); the shop per endpoint ("api", the platform's documented
    rule); or the whole app, every shop together ("app", several brands on one app key). Brands that share
    credentials (the sandbox's defaults) are one shop. Keys are digests: no credential reaches the ledger."""
    if scope == "app":
        return "app:" + _digest(app_key)
    shop = "shop:" + _digest(f"{app_key}\x1f{shop_cipher}")
    return f"{shop}:{endpoint}" if scope == "api" else shop


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class LedgerStateStore(StateStore):
    """pyrate-limiter's state store over the ledger: one scope's GCRA state (its theoretical arrival time, an
    integer in thousandths of the time unit: nanoseconds here), read and written in the ledger transaction that
    admits a request (`bind`). A state further ahead than the horizon was written under a clock that has since
    gone back, and starts again from now."""

    is_async = False
    default_clock = WallClock()  # the state is shared by processes, even by machines: wall-clock time

    def __init__(self, ledger: Ledger, scope: str, horizon_ns: int) -> None:
        self.ledger = ledger
        self.scope = scope
        self.horizon_ns = horizon_ns
        self._conn: Any = None
        self._tat = 0

    def bind(self, conn: Any) -> None:
        """Read (and lock) the scope's state in the transaction `conn` is in; `check` then works on it."""
        self._conn = conn
        self._tat, _ = self.ledger.rate_state(conn, self.scope)

    def check(self, algorithm: Any, rates: list[Rate], now: int, weight: int) -> Any:
        if self._conn is None:
            raise RuntimeError("internal: the ledger state store is used outside a ledger transaction")
        tat = self._tat if self._tat <= now * 1000 + self.horizon_ns else 0
        (new_tat,), decision = algorithm.step(rates, (tat,), now, weight)
        if decision.allowed:
            self._tat = new_tat
            self.ledger.set_rate_state(self._conn, self.scope, new_tat)
        return decision

    def read(self, algorithm: Any, rates: list[Rate]) -> tuple[float, ...]:
        return (self._tat,)

    def reset(self) -> None:
        self._tat = 0


class Waits:
    """Sleeps that a stop ends at once (a signal, a lost lock, a failure): `await waits.sleep(s)` is False
    when it was cut short or the stop came before."""

    def __init__(self) -> None:
        self.stopped = False
        self._sleeping: set[asyncio.Future[None]] = set()

    async def sleep(self, delay: float) -> bool:
        if self.stopped:
            return False
        if not delay > 0:  # (NaN too)
            return True
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(min(delay, MAX_WAIT_S), _wake, woken)
        self._sleeping.add(woken)
        try:
            await woken
        finally:
            timer.cancel()
            self._sleeping.discard(woken)
        return not self.stopped

    def stop(self) -> None:
        self.stopped = True
        for woken in list(self._sleeping):
            _wake(woken)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class Ticket:
    """An admitted request: its call's row (quota counted), its scope and its send slot (wall-clock time)."""

    call_id: int
    scope: str
    slot: float
    claim: Sequence[tuple[str, str]] = ()


class Admission:
    """For one run (one brand) in one process. Per request:

        ticket = await admission.admit(call_spec)      # QuotaExhausted, ClaimRefused, LockLost, NotSent
        await admission.approach(ticket)               # until LEAD_S before its slot (NotSent if stopped)
        <send, awaiting admission.leave(ticket) right before the first byte>
        admission.release(ticket, ...)                  # only if it never left: its quota back

    and `penalize(ticket, retry_after)` after a 429."""

    def __init__(self, rule: RateRule, ledger: Ledger, *, app_key: str, shop_cipher: str, scope: str = "brand",
                 waits: Waits | None = None) -> None:
        if scope not in SCOPES:
            raise ValueError(f"rate scope must be one of {', '.join(SCOPES)}")
        self.rule = rule
        self.ledger = ledger
        self.app_key = app_key
        self.shop_cipher = shop_cipher
        self.scope = scope
        self.waits = waits or Waits()
        self.factor = 1.0  # share of the configured rate this process uses; cut by 429s, restored slowly
        self.penalties = 0
        self.late = 0  # requests that could not leave on time and took a new slot
        self._buckets: dict[str, tuple[StateBucket, LedgerStateStore]] = {}
        self._rate = rule.rate()
        self._rate_factor = 1.0
        self._last_cut = -1e9
        self._last_change = 0.0
        self._recent_429s: list[float] = []
        self._horizon_ns = int((HOLD_CAP_S + MAX_AHEAD_S + 60.0 + 2 * rule.window_ms / 1000 / MIN_FACTOR) * 1e9)

    # --- admitting --------------------------------------------------------------------------
    async def admit(self, spec: CallSpec) -> Ticket:
        """Reserve the call and take its slot, in one ledger transaction (waiting first while the scope's next
        slot is more than MAX_AHEAD_S away)."""
        scope = scope_key(self.scope, self.app_key, self.shop_cipher, spec.endpoint)
        while True:
            if self.waits.stopped:
                raise NotSent("stopped before it was admitted")
            try:
                reservation = self.ledger.reserve_call(
                    brand=spec.brand, quota_day=spec.quota_day, endpoint=spec.endpoint, limit=spec.limit,
                    run_id=spec.run_id, batch_key=spec.batch_key, attempt=spec.attempt, share=spec.share,
                    claim=spec.claim, slot=lambda conn: self._slot(conn, scope, ahead=MAX_AHEAD_S))
            except _TooEarly as early:
                if not await self.waits.sleep(early.wait):
                    raise NotSent("stopped before it was admitted") from None
                continue
            assert reservation.slot is not None
            return Ticket(reservation.call_id, scope, reservation.slot, spec.claim)

    async def approach(self, ticket: Ticket) -> None:
        """Wait until LEAD_S before the slot, holding no connection; then the request takes one and waits out
        the rest in `leave` (a connection that has to be opened first makes it late: it takes a new slot
        there, with its connection open)."""
        if not await self.waits.sleep(ticket.slot - LEAD_S - time.time()):
            raise NotSent("stopped before its slot")

    async def leave(self, ticket: Ticket) -> None:
        """Called right before the request's first byte is written (its connection is ready): wait for the
        slot, then check that the run still holds its lock (LockLost) and the scope is not held; a request
        later than LATE_S takes a new slot and waits again. Returns when it must leave now."""
        while True:
            if not await self.waits.sleep(ticket.slot - time.time()):
                raise NotSent("stopped before its slot")
            if self.ledger.before_send(ticket.scope) <= ticket.slot and time.time() - ticket.slot <= LATE_S:
                return
            self.late += 1
            ticket.slot = self.ledger.take_slot(lambda conn: self._slot(conn, ticket.scope))

    def release(self, ticket: Ticket, message: str, *, unclaim: bool) -> None:
        """The request never left: the platform did not count it, so its quota goes back (and, with
        `unclaim`, the pairs it claimed go back to planned). Nothing is written once the lock is lost."""
        try:
            self.ledger.release_call(ticket.call_id, unclaim=ticket.claim if unclaim else (), message=message)
        except LockLost:
            pass  # the run's reservations stay counted: the conservative side

    def _slot(self, conn: Any, scope: str, ahead: float | None = None) -> float:
        """In the admitting transaction: the scope's next free slot, taken with pyrate-limiter's GCRA (a
        refusal says when the next slot is free; the bucket is then put again at that time)."""
        bucket, store = self._bucket(scope)
        store.bind(conn)
        now = int(time.time() * TICKS_PER_S)
        item = RateItem(scope, now)
        if not bucket.put(item):
            wait = bucket.waiting(item)
            if ahead is not None and wait > ahead * TICKS_PER_S:
                raise _TooEarly((wait - ahead * TICKS_PER_S) / TICKS_PER_S)
            item = RateItem(scope, now + wait)
            if not bucket.put(item):
                raise RuntimeError("internal: the rate state refused the slot it had offered")
        return item.timestamp / TICKS_PER_S

    def _bucket(self, scope: str) -> tuple[StateBucket, LedgerStateStore]:
        self._recover()
        entry = self._buckets.get(scope)
        if entry is None:
            store = LedgerStateStore(self.ledger, scope, self._horizon_ns)
            entry = self._buckets[scope] = (StateBucket([self._rate], GCRA(), store, WallClock()), store)
        if self._rate_factor != self.factor:
            self._rate, self._rate_factor = self.rule.rate(self.factor), self.factor
        if entry[0].rates[0] is not self._rate:
            entry[0].rates = [self._rate]
        return entry

    # --- after a 429 ------------------------------------------------------------------------
    def penalize(self, ticket: Ticket, retry_after: float | None) -> None:
        """A 429: every process waits out Retry-After (capped; without one, 1 s doubling with each 429 of the
        last minute, up to the cap) before the scope's next slot, and this one's pace halves. The 429s of
        requests already in flight arrive together, so they cut the pace once per second at most."""
        self.penalties += 1
        now = time.monotonic()
        self._recent_429s = [t for t in self._recent_429s if now - t < 60.0] + [now]
        if retry_after is not None and retry_after == retry_after:
            pause = min(max(0.0, retry_after), HOLD_CAP_S)
        else:
            pause = min(HOLD_CAP_S, 2.0 ** (len(self._recent_429s) - 1))
        self.ledger.hold_rate_scope(ticket.scope, time.time() + pause)
        if now - self._last_cut >= 1.0:
            self.factor = max(MIN_FACTOR, self.factor * 0.5)
            self._last_cut = self._last_change = now

    def _recover(self) -> None:
        now = time.monotonic()
        if self.factor < 1.0 and now - self._last_change >= RECOVER_EVERY_S:
            self.factor = min(1.0, self.factor * RECOVER_STEP)  # up again while the platform is calm
            self._last_change = now


class _TooEarly(Exception):
    """The scope's next free slot is further ahead than a request may hold one: try again in `wait` s."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"next slot in {wait:.3f} s")
        self.wait = wait
