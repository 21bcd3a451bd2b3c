"""Admission: whether a request may leave, and when. The one place that decides it, for every process that
uses the ledger.

A request is admitted right before its first byte is written (its connection is ready), in one ledger
transaction that checks the run still holds its brand's lock (fencing), checks and records its rate scope's
state, reserves the call against the brand's daily quota and claims its pairs pending (write-ahead). Refused
for any of these, it changes nothing and does not leave; admitted, it leaves at once. What never left (a
connection that could not be opened, a stop) was never counted.

The rate is two of pyrate-limiter's algorithms, each in a bucket whose state lives in the ledger's
`rate_state` (SQLite or PostgreSQL), read and written in that transaction:

- The limit: SlidingWindowLog, the library's exact one ("at most N in any window of its length", counted on
  a log of what left), over the scope's recent departures, through `LedgerLogBucket`. Whatever happened to
  a process before (a busy machine, a pause, a slow connect), a request leaves only if fewer than N left in
  the last window, so lateness never turns into more than N in a window. A second rate of the log keeps any
  two requests `CATCH_UP_SPACING` of a slot apart: catching up is never a burst.
- The spacing: GCRA (Generic Cell Rate Algorithm: a leaky bucket kept as one theoretical arrival time) with a
  burst of 1, through pyrate-limiter's `StateBucket` and `LedgerStateStore`: evenly spaced slots, a window / N
  apart, one request each. A process holds up to `CATCH_UP` slots ahead (taken with its requests' admissions,
  in turn with the other processes'), and a request leaves at its process's next slot. A request that could
  not leave on time leaves late, without moving the slots after it, and those catch up: a stall of up to
  `CATCH_UP` slots costs no throughput.

Both windows are `WINDOW_MARGIN_MS` longer than the platform's second (2.5% of the throughput): the margin is
what the delay between a request's admission and its arrival at the platform may vary by (this machine
between the commit and the first byte, the network, the platform's own stamping) with no second above the
limit.

In a process, one request at a time waits for its moment (`depart`), and at most `LANES` hold a connection
while they queue for it (`lane`): the others wait without one. A wait longer than `HOLD_CONNECTION_S` (a
hold after a 429) is waited out without the connection (`Later`).

After a 429 every process on the ledger waits out Retry-After (capped at `HOLD_CAP_S`; without one, a
doubling backoff) before the scope's next request leaves, and this process halves its own pace, recovering
by a quarter every `RECOVER_EVERY_S` without another 429 (AIMD)."""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyrate_limiter import GCRA, AbstractBucket, Rate, RateItem, SlidingWindowLog, StateBucket, StateStore, WallClock

from trendio_cli.ledger import CallSpec

if TYPE_CHECKING:
    from trendio_cli.ledger import Ledger

WINDOW_MARGIN_MS = 25  # the rule's window is this much longer than a second: 50 per 1,025 ms at 50/s
CATCH_UP = 16  # slots a process holds ahead: a stall of up to this many slots is caught up without loss
CATCH_UP_SPACING = 0.5  # catching up, two requests are never closer than this share of a slot
LATE_S = 0.010  # a request that leaves later than this after its slot counts as late (a figure, not a rule)
LANES = 4  # requests of a process holding a connection while they queue to leave
HOLD_CONNECTION_S = 1.0  # a longer wait is waited out without a connection
HOLD_CAP_S = 60.0  # the longest hold after a 429, whatever its Retry-After says
MAX_WAIT_S = 300.0  # no single wait of admission is longer than this
MIN_FACTOR = 0.02  # never below 2% of the configured rate (1 request/s at 50/s)
RECOVER_EVERY_S = 5.0  # after this long without a 429 the pace goes up again...
RECOVER_STEP = 1.25  # ...by a quarter
SCOPES = ("brand", "shop", "api", "app")
TICKS_PER_S = 1_000_000  # the time unit given to pyrate-limiter (its GCRA state is then in nanoseconds)


class NotSent(Exception):
    """The run stopped (a signal, a failure) while this request waited to leave: it did not leave."""


class Later(Exception):
    """The request must wait `wait` seconds before it may leave (a hold): too long to keep its connection."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"may leave in {wait:.3f} s")
        self.wait = wait


class _Wait(Exception):
    """Inside the admitting transaction: the scope has no room now (nothing of the transaction is kept)."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"no room for {wait:.6f} s")
        self.wait = wait


@dataclass(frozen=True)
class RateRule:
    """At most `limit` requests in any `window_ms`, evenly spaced: pyrate-limiter's Rates for both algorithms."""

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
        """The spacing for GCRA, in microseconds (`TICKS_PER_S`: whole milliseconds would round every slot up
        to the next one, 21 ms apart instead of 20.5 at 50/s), slowed by `factor` after 429s; a burst of 1:
        slots one spacing apart. A microsecond longer per slot than the log's window: N + 1 slots then span
        a little more than the window, and the log (which counts its window's start in) never refuses a
        request that leaves on its slot."""
        return Rate(self.limit, max(1, int(round(self.window_ms * 1000 / factor))) + self.limit, burst=1)

    def log_rates(self) -> list[Rate]:
        """The departure log's rates: the rule, and (with more than one request per window) never two requests
        closer than CATCH_UP_SPACING of a slot: late requests catch up at twice the pace at most, never in a
        burst."""
        window = self.window_ms * 1000
        spacing = [Rate(1, int(window / self.limit * CATCH_UP_SPACING))] if self.limit > 1 else []
        return [*spacing, Rate(self.limit, window)]

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
    integer in thousandths of the time unit: nanoseconds here), as the admitting transaction read it (`bind`),
    written back in the same transaction (`Admission._gate`). A state further ahead than the horizon was
    written under a clock that has since gone back, and starts again from now."""

    is_async = False
    default_clock = WallClock()  # the state is shared by processes, even by machines: wall-clock time

    def __init__(self, horizon_ns: int) -> None:
        self.horizon_ns = horizon_ns
        self.tat_ns = 0

    def bind(self, tat_ns: int) -> None:
        self.tat_ns = tat_ns

    def check(self, algorithm: Any, rates: list[Rate], now: int, weight: int) -> Any:
        tat = self.tat_ns if self.tat_ns <= now * 1000 + self.horizon_ns else 0
        (new_tat,), decision = algorithm.step(rates, (tat,), now, weight)
        if decision.allowed:
            self.tat_ns = new_tat
        return decision

    def read(self, algorithm: Any, rates: list[Rate]) -> tuple[float, ...]:
        return (self.tat_ns,)

    def reset(self) -> None:
        self.tat_ns = 0


class LedgerLogBucket(AbstractBucket):
    """pyrate-limiter's bucket for its SlidingWindowLog over one scope's departures in the ledger (the
    `departures` of `rate_state`, oldest first), as the admitting transaction read them (`bind`), written back
    in the same transaction. Entries older than every window are forgotten as new ones come."""

    is_async = False

    def __init__(self, rates: list[Rate]) -> None:
        self.rates = rates  # (the setter sorts and validates them)
        self._algorithm = SlidingWindowLog()
        self.entries: list[int] = []

    def bind(self, entries: list[int]) -> None:
        self.entries = entries

    def put(self, item: RateItem) -> bool:
        algorithm, entries = self._algorithm, self.entries
        counts = [len(entries) - bisect.bisect_left(entries, algorithm.window_start(rate, item.timestamp))
                  for rate in self.rates]
        decision = algorithm.decide(self.rates, counts, item.weight, item.timestamp,
                                    lambda offset: self._entry(offset))
        if decision.allowed:
            bound = algorithm.leak_bound(self.rates, item.timestamp)
            self.entries = [t for t in entries[bisect.bisect_left(entries, bound):]]
            bisect.insort(self.entries, item.timestamp)
        return self._record(item, decision)

    def _entry(self, offset: int) -> int | None:
        return self.entries[-1 - offset] if offset < len(self.entries) else None

    def leak(self, current_timestamp: int | None = None) -> int:
        return 0  # done with every entry added

    def flush(self) -> None:
        self.failing_rate = None
        self.entries = []

    def count(self) -> int:
        return len(self.entries)

    def peek(self, index: int) -> RateItem | None:
        t = self._entry(index)
        return None if t is None else RateItem("departure", t)


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
    """A request on its way: what to reserve, its scope, and once admitted its call's row."""

    spec: CallSpec
    scope: str
    call_id: int | None = None  # set when it is admitted (it leaves at once): its quota is counted
    late: bool = False
    _lane: bool = False


class Admission:
    """For one run (one brand) in one process. Per request:

        ticket = admission.ticket(call_spec)
        async with admission.lane(ticket):
            <send, awaiting admission.depart(ticket) right before the first byte>
            # depart raises QuotaExhausted, ClaimRefused, LockLost, NotSent or Later (wait, then try again)

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
        self.late = 0  # requests that left later than LATE_S after the moment they could have
        self._pacers: dict[str, tuple[StateBucket, LedgerStateStore]] = {}
        self._logs: dict[str, LedgerLogBucket] = {}
        self._next: dict[str, float] = {}  # per scope, when this process's next request may try to leave
        self._slots: dict[str, list[float]] = {}  # per scope, the slots this process took and has not used
        self._rate = rule.rate()
        self._rate_factor = 1.0
        self._lanes: asyncio.Semaphore | None = None
        self._turn: asyncio.Lock | None = None
        self._last_cut = -1e9
        self._last_change = 0.0
        self._recent_429s: list[float] = []
        self._horizon_ns = int((HOLD_CAP_S + 60.0 + 2 * CATCH_UP * rule.window_ms / 1000 / MIN_FACTOR) * 1e9)
        ledger.checkpoint_later()  # no 10-20 ms checkpoint between a request's admission and its first byte

    def ticket(self, spec: CallSpec) -> Ticket:
        return Ticket(spec, scope_key(self.scope, self.app_key, self.shop_cipher, spec.endpoint))

    @asynccontextmanager
    async def lane(self, ticket: Ticket) -> AsyncIterator[None]:
        """One of LANES places for a request that takes its connection before its turn to leave; freed as
        soon as it leaves (or fails)."""
        if self._lanes is None:
            self._lanes = asyncio.Semaphore(LANES)
        await self._lanes.acquire()
        ticket._lane = True
        try:
            yield
        finally:
            self._free_lane(ticket)

    def _free_lane(self, ticket: Ticket) -> None:
        if ticket._lane and self._lanes is not None:
            ticket._lane = False
            self._lanes.release()

    async def depart(self, ticket: Ticket) -> None:
        """Called right before the request's first byte is written: wait for this process's next slot of the
        scope (one request of the process at a time), then admit it in one ledger transaction (lock, rate,
        quota, claim). Returns when it must leave now; raises when it must not (QuotaExhausted, ClaimRefused,
        LockLost, NotSent) or not yet (Later)."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            while True:
                target = max(self._next.get(ticket.scope, 0.0), time.time())
                if target - time.time() > HOLD_CONNECTION_S:
                    raise Later(target - time.time())
                if not await self.waits.sleep(target - time.time()):
                    raise NotSent("stopped before it could leave")
                try:
                    call_id = self.attempt(ticket)
                except _Wait:
                    continue
                if call_id is not None:
                    ticket.call_id = call_id
                    self._free_lane(ticket)
                    return

    def attempt(self, ticket: Ticket) -> int | None:
        """One try to leave now, in one ledger transaction: the call's id (admitted: it leaves at once), None
        (it took slots, none due yet), or _Wait (no room now: nothing kept). This process's slots and its
        next try change only with what the transaction kept."""
        scope = ticket.scope
        plan: dict[str, Any] = {}
        try:
            reservation = self.ledger.reserve_call(
                brand=ticket.spec.brand, quota_day=ticket.spec.quota_day, endpoint=ticket.spec.endpoint,
                limit=ticket.spec.limit, run_id=ticket.spec.run_id, batch_key=ticket.spec.batch_key,
                attempt=ticket.spec.attempt, share=ticket.spec.share, claim=ticket.spec.claim,
                gate=lambda conn: self._gate(conn, scope, plan), depart=lambda conn: self._depart(conn, scope, plan))
        except _Wait as refused:
            if plan.get("void"):
                self._slots[scope] = []  # slots inside a hold (or from a clock gone back) are void
            self._next[scope] = time.time() + refused.wait
            raise
        self._slots[scope], self._next[scope] = plan["queue"], plan["next"]
        if reservation is None:
            return None
        if plan["late"]:
            self.late += 1
            ticket.late = True
        return reservation.call_id

    def _gate(self, conn: Any, scope: str, plan: dict[str, Any]) -> bool:
        """In the admitting transaction, first: whether the request may leave now. It needs the scope not held
        and a slot of this process's that is due (its queue of up to CATCH_UP slots, taken from the scope's
        GCRA schedule, evenly spaced). False: it only took slots, none due yet. _Wait: no room now, nothing
        kept. `plan` gets the process's queue and next try as they are if the transaction is kept."""
        now = time.time()
        tat, hold_until, departures = self.ledger.rate_state(conn, scope)
        queue = list(self._slots.get(scope, ()))
        if hold_until > now:
            plan["void"] = True
            raise _Wait(hold_until - now)
        if queue and queue[-1] > now + self._horizon_ns / 1e9:
            queue = []  # taken under a clock that has since gone back
        pacer, store = self._pacer(scope)
        store.bind(tat)
        if not queue:
            queue = self._take_slots(pacer, scope, now, CATCH_UP)
        due = queue[0]
        if due > now + 0.001:  # (a timer may fire a hair early; the log keeps the limit either way)
            if store.tat_ns != tat:
                self.ledger.set_rate_state(conn, scope, store.tat_ns)
            plan.update(queue=queue, next=due)
            return False
        queue.pop(0)
        queue.extend(self._take_slots(pacer, scope, now, CATCH_UP - len(queue)))
        plan.update(queue=queue, due=due, pacer=store, departures=departures)
        return True

    def _depart(self, conn: Any, scope: str, plan: dict[str, Any]) -> None:
        """In the admitting transaction, last (after the quota and the claim, right before the commit, so that
        the moment it records is as close to the first byte as can be): room in the scope's departure log (the
        exact limit), and the departure recorded with the scope's state. _Wait: nothing is kept."""
        now = time.time()
        log = self._log(scope)
        log.bind(plan["departures"])
        item = RateItem(scope, int(now * TICKS_PER_S))
        if not log.put(item):
            raise _Wait(max(log.waiting(item), 1) / TICKS_PER_S)
        self.ledger.set_rate_state(conn, scope, plan["pacer"].tat_ns, log.entries)
        # the next request of the process: at its slot, and never closer to this one than the log allows
        queue = plan["queue"]
        plan.update(next=max(queue[0], now + self.rule.spacing_s * CATCH_UP_SPACING), late=now - plan["due"] > LATE_S)

    def _take_slots(self, pacer: StateBucket, scope: str, now: float, n: int) -> list[float]:
        """The scope's next `n` free slots, from pyrate-limiter's GCRA with a burst of 1: a refusal says when
        the next slot is free, and the bucket is then put again at that time (the state moves on by one
        spacing each)."""
        slots = []
        ticks = int(now * TICKS_PER_S)
        for _ in range(max(0, n)):
            item = RateItem(scope, ticks)
            if not pacer.put(item):
                item = RateItem(scope, ticks + pacer.waiting(item))
                if not pacer.put(item):
                    raise RuntimeError("internal: the rate state refused the slot it had offered")
            slots.append(item.timestamp / TICKS_PER_S)
        return slots

    def _pacer(self, scope: str) -> tuple[StateBucket, LedgerStateStore]:
        self._recover()
        entry = self._pacers.get(scope)
        if entry is None:
            store = LedgerStateStore(self._horizon_ns)
            entry = self._pacers[scope] = (StateBucket([self._rate], GCRA(), store, WallClock()), store)
        if self._rate_factor != self.factor:
            self._rate, self._rate_factor = self.rule.rate(self.factor), self.factor
        if entry[0].rates[0] is not self._rate:
            entry[0].rates = [self._rate]
        return entry

    def _log(self, scope: str) -> LedgerLogBucket:
        bucket = self._logs.get(scope)
        if bucket is None:
            bucket = self._logs[scope] = LedgerLogBucket(self.rule.log_rates())
        return bucket

    # --- after a 429 ------------------------------------------------------------------------
    def penalize(self, ticket: Ticket, retry_after: float | None) -> None:
        """A 429: every process waits out Retry-After (capped; without one, 1 s doubling with each 429 of the
        last minute, up to the cap) before the scope's next request leaves, and this one's pace halves. The
        429s of requests already in flight arrive together, so they cut the pace once per second at most."""
        self.penalties += 1
        now = time.monotonic()
        self._recent_429s = [t for t in self._recent_429s if now - t < 60.0] + [now]
        if retry_after is not None and retry_after == retry_after:
            pause = min(max(0.0, retry_after), HOLD_CAP_S)
        else:
            pause = min(HOLD_CAP_S, 2.0 ** (len(self._recent_429s) - 1))
        until = time.time() + pause
        self.ledger.hold_rate_scope(ticket.scope, until)
        self._next[ticket.scope] = max(self._next.get(ticket.scope, 0.0), until)
        if now - self._last_cut >= 1.0:
            self.factor = max(MIN_FACTOR, self.factor * 0.5)
            self._last_cut = self._last_change = now

    def _recover(self) -> None:
        now = time.monotonic()
        if self.factor < 1.0 and now - self._last_change >= RECOVER_EVERY_S:
            self.factor = min(1.0, self.factor * RECOVER_STEP)  # up again while the platform is calm
            self._last_change = now
