"""Pacing: every request leaves at a send slot taken from a schedule kept in the ledger, so that every process
using the ledger keeps to one rate together; slowed down when the platform answers 429.

The schedule has `limit` evenly spaced slots per `window_ms`, a window a little longer than the platform's
second. Slots are taken in groups of `group` consecutive slots (a divisor of `limit`), and a group's requests
leave together at its first slot: any window of the schedule's length then holds at most `limit` requests, as
with single slots, but a process wakes up once per group instead of once per request, which is most of its
CPU at 50 requests a second (docs/benchmarks.md, benchmark 2). The bound needs consecutive groups of one
size: a group of another size than the last starts a whole window later (`Ledger.pace_slot`). After a 429
the scope goes back to single slots for a while (`SINGLE_AFTER_429_S`), in case the platform minds even
small bursts.

Each process holds at most one future group at a time (`turn`), and a group that cannot leave within
`LATE_SEND_S` of its slot (a busy process) takes new slots, all of it together: so every request leaves
within LATE_SEND_S of its slot, and the rest of the window's margin is left for network jitter."""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trendio_cli.ledger import CallSpec, QuotaExhausted, SlotRequest

if TYPE_CHECKING:
    from trendio_cli.ledger import Ledger

WINDOW_MARGIN_MS = 25  # the window is this much longer than a second: 2.5% of throughput, for jitter
LATE_SEND_S = 0.010  # a request may leave this long after its slot; later, its group takes new slots
MAX_GROUP = 10  # requests sent together at most (10 at 50/s: a group every 205 ms)
GATHER_S = 0.005  # a group opened on an idle schedule leaves this much later, for the waiting requests to join
SINGLE_AFTER_429_S = 600.0  # after a 429 the scope's groups are single slots for this long
MIN_FACTOR = 0.02  # never below 2% of the configured rate (1 request/s at 50/s)
RECOVER_EVERY_S = 5.0  # after this long without a 429 the pace goes up again...
RECOVER_STEP = 1.25  # ...by a quarter


@dataclass(frozen=True)
class PaceRule:
    """At most `limit` requests in any `window_ms`: evenly spaced slots, taken `group` at a time."""

    limit: int
    window_ms: int

    @classmethod
    def for_rate(cls, requests_per_second: float) -> PaceRule:
        if requests_per_second >= 1:
            limit = int(math.floor(requests_per_second))
            window = 1000 * limit / requests_per_second
            return cls(limit, int(math.ceil(window)) + WINDOW_MARGIN_MS)
        return cls(1, int(math.ceil(1000 / requests_per_second)) + WINDOW_MARGIN_MS)

    @property
    def per_second(self) -> float:
        return self.limit * 1000 / self.window_ms

    @property
    def spacing_s(self) -> float:
        """The time between two slots: `limit` of them fill the window exactly."""
        return self.window_ms / self.limit / 1000

    @property
    def group(self) -> int:
        """The largest divisor of `limit` up to MAX_GROUP: `limit / group` groups fill the window exactly."""
        return max(g for g in range(1, MAX_GROUP + 1) if self.limit % g == 0)

    def schedule(self, n: int, start: float = 0.0) -> list[float]:
        """Send times of `n` requests on a simulated clock (dry-run): a group of requests per group of slots."""
        group = self.group
        return [start + (i // group) * group * self.spacing_s for i in range(n)]


def scope_key(scope: str, brand: str, app_key: str) -> str:
    if scope == "brand":
        return f"brand:{brand}"
    return "app:" + hashlib.sha256(app_key.encode()).hexdigest()[:12]  # the app key itself stays out of files


@dataclass
class _Group:
    send_at: float
    seats: int  # requests that may still join it
    unwritten: list[tuple[CallSpec, _Seat]] = field(default_factory=list)
    written: bool = False  # its requests' reservations are in the ledger (or failed: `error`)
    error: BaseException | None = None


@dataclass
class _Seat:
    group: _Group
    call: int | QuotaExhausted | None = None  # the reservation: the call's id, or why it was refused


class Pacer:
    """For one process and one rate scope. Per request:

        async with pacer.turn():
            seat = pacer.join(call_spec)
        call_id, send_at = await pacer.wait(seat)   # QuotaExhausted: refused, nothing written for it
        <send at once>; pacer.record_send(send_at, sent_at)

    A group's requests are reserved in the ledger (quota, write-ahead claim) in one transaction, taken when
    the group is full (with the next group's slots) or, if it never fills, when it is due: one commit per
    group. A request that opens a group with no slots taken for it (the first, or after a pause) is reserved
    at once, with the group's slots.

    A 429 (`penalize`) holds the shared schedule for Retry-After, so every process waits it out, turns the
    scope's groups into single slots for SINGLE_AFTER_429_S, and halves this process's pace, which then
    recovers by a quarter every 5 s without another 429."""

    def __init__(self, rule: PaceRule, ledger: Ledger, key: str) -> None:
        self.rule = rule
        self.ledger = ledger
        self.key = key
        self.factor = 1.0  # share of the configured rate this process uses; cut by 429s, restored slowly
        self.penalties = 0
        self.late = 0  # groups that could not leave on time and took new slots
        self._group: _Group | None = None
        self._next: tuple[float, int] | None = None  # slots the last full group took for the next one
        self._turn = asyncio.Lock()
        self._last_cut = -1e9
        self._last_change = 0.0

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """One request of this process at a time joins a group; when the group is full, the next one waits
        for it to leave before it joins the next (one group ahead at most)."""
        async with self._turn:
            group = self._group
            if group is not None and group.seats == 0:
                delay = group.send_at - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            yield

    def join(self, spec: CallSpec) -> _Seat:
        """Take a seat in the open group, or open one (in the turn)."""
        group = self._group
        now = time.time()
        if group is None or group.seats == 0 or group.send_at <= now or group.written:
            slot, self._next = self._next, None
            if slot is None or slot[0] <= now:
                (call,), taken = self.ledger.reserve_calls([spec], pace=self._slots(lead=GATHER_S))
                assert taken is not None
                self._group = _Group(taken[0], taken[1] - 1)
                return _Seat(self._group, call)
            group = self._group = _Group(slot[0], slot[1])
        seat = _Seat(group)
        group.unwritten.append((spec, seat))
        group.seats -= 1
        if group.seats == 0:
            self._write(group)  # full: written now, well before it is due
        return seat

    async def wait(self, seat: _Seat, ready: Awaitable[Any] | None = None) -> tuple[int, float]:
        """Sleep until the seat's group is due (the first of a group that never filled to wake writes it), and
        until `ready` (the request's connection) is. Returns the call's id and its send time; raises
        QuotaExhausted if the call was refused. A group that cannot leave within LATE_SEND_S of its slot (a busy
        process, a slow connect) takes new slots, all of it that has not left yet."""
        group = seat.group
        while True:
            send_at = group.send_at
            delay = send_at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if not group.written:
                self._write(group)
            if group.error is not None:
                raise group.error
            if isinstance(seat.call, QuotaExhausted):
                raise seat.call
            assert seat.call is not None
            if ready is not None:
                await ready
                ready = None
                if group.send_at != send_at:
                    continue  # moved while this one was connecting
            if time.time() - group.send_at <= LATE_SEND_S:
                return seat.call, group.send_at
            if group.send_at == send_at:  # the first of the group to see it moves the group
                self.late += 1
                group.send_at = self.ledger.pace_slot(self._slots())[0]

    def _write(self, group: _Group) -> None:
        full = group.seats == 0  # more requests are waiting: take the next group's slots now
        try:
            if group.unwritten or full:
                calls, taken = self.ledger.reserve_calls([spec for spec, _ in group.unwritten],
                                                         pace=self._slots() if full else None)
                for (_, seat), call in zip(group.unwritten, calls):
                    seat.call = call
                self._next = taken
        except Exception as exc:  # a ledger error: every request of the group fails with it
            group.error = exc
        finally:
            group.unwritten = []
            group.written = True

    def record_send(self, send_at: float, sent_at: float | None) -> None:
        """A request that left late anyway (a transport that connects on its own, through a proxy) counts
        twice: the schedule moves on by one more group."""
        if sent_at is not None and sent_at - send_at > LATE_SEND_S:
            self.late += 1
            self.ledger.pace_slot(self._slots())

    def penalize(self, retry_after: float | None) -> None:
        """A 429: every process waits out Retry-After (1 s without one) and sends singly for a while, and this
        one's pace halves. The 429s of requests already in flight arrive together, so they cut the pace once
        per second at most."""
        self.penalties += 1
        now = time.monotonic()
        pause = min(retry_after if retry_after is not None else 1.0, 60.0)
        self.ledger.pace_hold(self.key, time.time() + pause, single_until=time.time() + SINGLE_AFTER_429_S)
        self._next = None  # taken before the hold
        if now - self._last_cut >= 1.0:
            self.factor = max(MIN_FACTOR, self.factor * 0.5)
            self._last_cut = self._last_change = now

    def _slots(self, lead: float = 0.0) -> SlotRequest:
        now = time.monotonic()
        if self.factor < 1.0 and now - self._last_change >= RECOVER_EVERY_S:
            self.factor = min(1.0, self.factor * RECOVER_STEP)  # additive-ish increase while the platform is calm
            self._last_change = now
        return SlotRequest(self.key, self.rule.spacing_s / self.factor, self.rule.group, self.rule.window_ms / 1000,
                           lead)
