"""Pacing: a pyrate-limiter bucket shared by every process using the same ledger (a SQLite bucket in its own
file beside the ledger, behind a file lock), slowed down when the platform answers 429."""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrate_limiter import Limiter, Rate, SQLiteBucket, SQLiteQueries

# Requests reach the platform a little after their permit, and that delay varies. Two rules keep any
# one-second window the platform sees at or under the limit: permits are spread evenly (no burst of 50 at
# once, which would flood the event loop and the connection pool and make the delay vary by ~100 ms), and
# the window is slightly longer than a second, a margin for the jitter that remains (2.5% of throughput).
WINDOW_MARGIN_MS = 25
SPACING_SLACK_MS = 3  # the limiter's own wake-up buffer and sleep overshoot, taken off the spacing rule
# A request that left later than this after its permit (a cold first connection, a busy event loop) is
# also recorded in the bucket at the time it really left, so the log never under-counts a window.
LATE_SEND_S = 0.010
MIN_FACTOR = 0.02  # never below 2% of the configured rate (1 request/s at 50/s)
RECOVER_EVERY_S = 5.0  # after this long without a 429 the pace goes up again...
RECOVER_STEP = 1.25  # ...by a quarter


@dataclass(frozen=True)
class PaceRule:
    """`limit` requests per `window_ms`, as the limiter enforces it."""

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
    def spacing_ms(self) -> int:
        """The even spacing between permits: the window divided by the limit."""
        return max(1, int(self.window_ms / self.limit) - SPACING_SLACK_MS)

    def rates(self) -> list[Rate]:
        return [Rate(1, self.spacing_ms), Rate(self.limit, self.window_ms)]

    def schedule(self, n: int, start: float = 0.0) -> list[float]:
        """Send times of `n` requests on a simulated clock (dry-run): evenly spaced, and never more than
        `limit` in any window."""
        times: list[float] = []
        step = (self.spacing_ms + SPACING_SLACK_MS) / 1000
        for i in range(n):
            t = start if i == 0 else times[-1] + step
            if i >= self.limit:
                t = max(t, times[i - self.limit] + self.window_ms / 1000)
            times.append(t)
        return times


def bucket_path(ledger_path: str) -> Path:
    return Path(ledger_path + ".ratelimit.sqlite") if ledger_path != ":memory:" else Path(":memory:")


def scope_key(scope: str, brand: str, app_key: str) -> str:
    if scope == "brand":
        return f"brand:{brand}"
    return "app:" + hashlib.sha256(app_key.encode()).hexdigest()[:12]  # the app key itself stays out of files


class Pacer:
    """`await pacer.acquire()` before every request; `pacer.penalize(seconds)` after a 429.

    The shared bucket holds every process to the configured rate; a 429 means the platform's real limit is
    lower (or shared with someone else), so this process then also keeps its own slower, recovering pace."""

    def __init__(self, rule: PaceRule, ledger_path: str, key: str) -> None:
        self.rule = rule
        table = "rate_" + hashlib.sha256(key.encode()).hexdigest()[:16]
        self._pool = None
        if str(ledger_path).startswith(("postgresql://", "postgres://")):
            # a PostgreSQL ledger: the bucket lives on the same server, so runners on several machines pace together
            from psycopg_pool import ConnectionPool
            from pyrate_limiter import PostgresBucket

            self._pool = ConnectionPool(str(ledger_path), min_size=1, max_size=4, open=True)
            bucket: Any = PostgresBucket(self._pool, table, rule.rates())
            self.limiter = Limiter(bucket, buffer_ms=1)
            self.bucket = bucket
            self.key = key
            self._init_state()
            return
        path = bucket_path(ledger_path)
        if str(path) == ":memory:":
            bucket = SQLiteBucket.init_from_file(rule.rates(), table=table)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            bucket = SQLiteBucket.init_from_file(
                rule.rates(), table=table, db_path=str(path), use_file_lock=True)
        self.limiter = Limiter(bucket, buffer_ms=1)
        self.bucket = bucket
        self.key = key
        self._init_state()

    def _init_state(self) -> None:
        self.late_sends = 0
        self._paused_until = 0.0
        self._last = 0.0
        self._last_cut = -1e9
        self._last_change = 0.0
        self.factor = 1.0  # share of the configured rate this process uses; cut by 429s, restored slowly
        self.penalties = 0

    async def acquire(self) -> float:
        """Wait for a permit; returns the wall-clock time it was granted."""
        while True:
            wait = self._paused_until - time.monotonic()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        now = time.monotonic()
        if self.factor < 1.0 and now - self._last_change >= RECOVER_EVERY_S:
            self.factor = min(1.0, self.factor * RECOVER_STEP)  # additive-ish increase while the platform is calm
            self._last_change = now
        if self.factor < 1.0:
            # below the configured rate, on top of the shared bucket: this process's own even spacing
            gap = 1 / (self.rule.per_second * self.factor)
            slot = max(now, self._last + gap)
            self._last = slot
            if slot > now:
                await asyncio.sleep(slot - now)
        await self.limiter.try_acquire_async(self.key)
        self._last = max(self._last, time.monotonic())
        return time.time()

    def record_send(self, permit_at: float, sent_at: float | None) -> None:
        """Count a late request a second time, at the moment it really left."""
        if sent_at is None or sent_at - permit_at <= LATE_SEND_S:
            return
        self.late_sends += 1
        bucket = self.bucket
        if self._pool is not None:
            with self._pool.connection() as conn:
                conn.execute(f"INSERT INTO ratelimit___{bucket.table} (name, weight, item_timestamp) "
                             "VALUES (%s, 1, TO_TIMESTAMP(%s))", (self.key, sent_at))
            return
        with bucket.lock:
            bucket.conn.execute(SQLiteQueries.PUT_ITEM.format(table=bucket.table), (self.key, int(sent_at * 1000)))
            bucket.conn.commit()

    def penalize(self, retry_after: float | None) -> None:
        """A 429: everyone waits out Retry-After (1 s without one), and the pace halves. The 429s of requests
        already in flight arrive together, so they cut the pace once per second at most."""
        self.penalties += 1
        now = time.monotonic()
        pause = retry_after if retry_after is not None else 1.0
        self._paused_until = max(self._paused_until, now + min(pause, 60.0))
        if now - self._last_cut >= 1.0:
            self.factor = max(MIN_FACTOR, self.factor * 0.5)
            self._last_cut = self._last_change = now

    def close(self) -> None:
        self.limiter.close()
        if self._pool is not None:
            self._pool.close()
