"""Pacing: a pyrate-limiter bucket shared by every process using the same ledger (a SQLite bucket in its own
file beside the ledger, behind a file lock), slowed down when the platform answers 429."""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

from pyrate_limiter import Limiter, Rate, SQLiteBucket

# Requests leave a few milliseconds after their permit; a window slightly longer than a second keeps any
# one-second window the platform sees at or under the limit despite that jitter (about 2% of throughput).
WINDOW_MARGIN_MS = 20


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

    def schedule(self, n: int, start: float = 0.0) -> list[float]:
        """Send times of `n` requests on a simulated clock (dry-run): the sliding-window log's behaviour."""
        times: list[float] = []
        for i in range(n):
            t = start if i < self.limit else max(start, times[i - self.limit] + self.window_ms / 1000)
            times.append(t)
        return times


def bucket_path(ledger_path: str) -> Path:
    return Path(ledger_path + ".ratelimit.sqlite") if ledger_path != ":memory:" else Path(":memory:")


def scope_key(scope: str, brand: str, app_key: str) -> str:
    if scope == "brand":
        return f"brand:{brand}"
    return "app:" + hashlib.sha256(app_key.encode()).hexdigest()[:12]  # the app key itself stays out of files


class Pacer:
    """`await pacer.acquire()` before every request; `pacer.penalize(seconds)` after a 429."""

    def __init__(self, rule: PaceRule, ledger_path: str, key: str) -> None:
        self.rule = rule
        table = "rate_" + hashlib.sha256(key.encode()).hexdigest()[:16]
        path = bucket_path(ledger_path)
        if str(path) == ":memory:":
            bucket = SQLiteBucket.init_from_file([Rate(rule.limit, rule.window_ms)], table=table)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            bucket = SQLiteBucket.init_from_file(
                [Rate(rule.limit, rule.window_ms)], table=table, db_path=str(path), use_file_lock=True)
        self.limiter = Limiter(bucket, buffer_ms=2)
        self.key = key
        self._paused_until = 0.0
        self._slow_until = 0.0
        self._last = 0.0
        self.penalties = 0

    async def acquire(self) -> None:
        while True:
            wait = self._paused_until - time.monotonic()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        if time.monotonic() < self._slow_until:
            # after a 429, space requests at 80% of the rate for a while on top of the shared bucket
            gap = 1 / (self.rule.per_second * 0.8)
            wait = self._last + gap - time.monotonic()
            self._last = max(time.monotonic(), self._last + gap)
            if wait > 0:
                await asyncio.sleep(wait)
        await self.limiter.try_acquire_async(self.key)
        self._last = max(self._last, time.monotonic())

    def penalize(self, retry_after: float | None) -> None:
        self.penalties += 1
        pause = retry_after if retry_after is not None else 1.0
        now = time.monotonic()
        self._paused_until = max(self._paused_until, now + min(pause, 60.0))
        self._slow_until = now + 30.0

    def close(self) -> None:
        self.limiter.close()
