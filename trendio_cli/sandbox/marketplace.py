"""A deterministic, seeded creator marketplace with a hidden propensity to accept invitations."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

CATEGORIES = ("beauty", "fashion", "home", "fitness", "food", "tech", "pets", "baby")
ID_BASE = 6_900_000_000_000_000_000


@dataclass(frozen=True)
class MarketCreator:
    creator_id: str
    handle: str
    followers: int
    gmv_30d: float
    category: str
    engagement_rate: float
    last_active: date
    propensity: float  # hidden: chance of accepting an invitation

    def public(self) -> dict[str, object]:
        return {
            "creator_user_id": self.creator_id,
            "username": self.handle,
            "follower_count": self.followers,
            "gmv_30d": {"amount": f"{self.gmv_30d:.2f}", "currency": "USD"},
            "category": self.category,
            "engagement_rate": self.engagement_rate,
            "last_active_date": self.last_active.isoformat(),
        }


def creator_id(index: int) -> str:
    return str(ID_BASE + index)


def _unit(seed: int, *parts: object) -> float:
    """A deterministic number in [0, 1) from the seed and the parts."""
    h = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def make_creator(seed: int, cid: str, today: date) -> MarketCreator:
    """Attributes of any creator id, deterministic in (seed, id), so unknown ids behave consistently too."""
    rng = random.Random(f"{seed}:{cid}")
    followers = int(min(5e7, math.exp(rng.gauss(9.5, 1.8))))
    category = CATEGORIES[rng.randrange(len(CATEGORIES))]
    engagement = round(min(0.3, max(0.002, rng.lognormvariate(math.log(0.04), 0.6))), 4)
    gmv = round(max(0.0, rng.lognormvariate(math.log(max(followers, 10) * 0.05), 1.2)), 2)
    inactive_days = int(rng.expovariate(1 / 20))
    last_active = today - timedelta(days=inactive_days)
    # Smaller, engaged, recently active creators in a matching category answer more; big ones rarely do.
    logit = (
        -0.8
        + 18 * (engagement - 0.04)
        - 0.35 * (math.log10(max(followers, 10)) - 4)
        - 0.04 * inactive_days
        + (0.6 if category in ("beauty", "fashion") else 0.0)
        + rng.gauss(0, 0.8)
    )
    propensity = 1 / (1 + math.exp(-logit))
    handle = f"creator_{cid[-6:]}"
    return MarketCreator(cid, handle, followers, gmv, category, engagement, last_active, round(propensity, 4))


class Marketplace:
    def __init__(self, seed: int = 7, size: int = 5000, today: date | None = None) -> None:
        self.seed = seed
        self.today = today or date(2026, 1, 1)
        self._cache: dict[str, MarketCreator] = {}
        self.ids = [creator_id(i) for i in range(size)]

    def get(self, cid: str) -> MarketCreator:
        c = self._cache.get(cid)
        if c is None:
            c = self._cache[cid] = make_creator(self.seed, cid, self.today)
        return c

    def is_ineligible(self, cid: str, permille: int) -> bool:
        return _unit(self.seed, "ineligible", cid) * 1000 < permille

    def answer(self, cid: str, collaboration_id: str) -> tuple[str, float]:
        """The creator's eventual answer to one collaboration and after how many days it comes."""
        p = self.get(cid).propensity
        u = _unit(self.seed, "answer", cid, collaboration_id)
        delay = 0.2 + 6 * _unit(self.seed, "delay", cid, collaboration_id)
        if u < p:
            return "ACCEPTED", delay
        if u < p + (1 - p) * 0.35:
            return "DECLINED", delay
        return "NO_RESPONSE", delay

    def search(self, filters: dict[str, object]) -> list[MarketCreator]:
        out = []
        keyword = str(filters.get("keyword") or "").lower()
        min_f = int(filters.get("min_followers") or filters.get("follower_count_min") or 0)
        max_f = int(filters.get("max_followers") or filters.get("follower_count_max") or 10**12)
        min_gmv = float(filters.get("min_gmv") or filters.get("gmv_min") or 0)
        category = filters.get("category")
        for cid in self.ids:
            c = self.get(cid)
            if keyword and keyword not in c.handle and keyword != c.category:
                continue
            if not (min_f <= c.followers <= max_f) or c.gmv_30d < min_gmv:
                continue
            if category and c.category != category:
                continue
            out.append(c)
        return out


def write_creators_file(path: str, count: int, *, seed: int = 7, start: int = 0, fmt: str = "csv",
                        today: date | None = None) -> None:
    """A creators file of marketplace creators (what an operator would export from creator search)."""
    import csv
    import json

    market = Marketplace(seed=seed, size=0, today=today or date.today())
    rows = []
    for i in range(start, start + count):
        c = market.get(creator_id(i))
        rows.append({
            "creator_id": c.creator_id, "handle": c.handle, "followers": c.followers,
            "gmv_30d": f"{c.gmv_30d:.2f}", "category": c.category, "engagement_rate": c.engagement_rate,
            "last_active": c.last_active.isoformat(),
        })
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if fmt == "jsonl":
            for r in rows:
                fh.write(json.dumps(r) + "\n")
        else:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["creator_id"])
            writer.writeheader()
            writer.writerows(rows)
