"""Learned matching: each candidate's chance of accepting, learned from the ledger's own answers, shrunk
toward a prior where data is thin, times the expected value of a collaboration. Small and explainable:
every factor's rate, its evidence and its pull on the estimate can be shown (`plan --explain`)."""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from trendio_cli.campaign import Tier
from trendio_cli.creators import Creator

PRIOR_RATE = 0.25  # before any answer: one creator in four accepts
PRIOR_STRENGTH = 20.0  # answers a factor value needs before its own rate counts as much as the prior
OWN_HISTORY_STRENGTH = 3.0  # a creator's own answers count quickly
FACTOR_WEIGHT = 0.7  # factors overlap (big creators sell more): damp their sum


def follower_band(followers: int | None) -> str:
    f = max(1, followers or 0)
    low = 10 ** int(math.log10(f))
    return f"{low:,}+"


def gmv_band(gmv: float | None) -> str:
    g = gmv or 0.0
    if g < 10:
        return "<10"
    low = 10 ** int(math.log10(g))
    return f"{low:,}+"


ENGAGEMENT_EDGES = (0.02, 0.04, 0.06, 0.10)
RECENCY_EDGES = (7, 30, 90)  # days since the creator was last active


def _band(value: float | None, edges: tuple[float, ...], show: Any) -> str:
    """The band `value` falls in, named by its edges: "<a", "a-b", ..., "z+"."""
    if value is None:
        return "unknown"
    i = bisect_right(edges, value)
    if i == 0:
        return f"<{show(edges[0])}"
    if i == len(edges):
        return f"{show(edges[-1])}+"
    return f"{show(edges[i - 1])}-{show(edges[i])}"


def engagement_band(rate: float | None) -> str:
    return _band(rate, ENGAGEMENT_EDGES, lambda e: f"{e:.0%}")


def recency_band(days: int | None) -> str:
    return _band(days, RECENCY_EDGES, lambda e: f"{e}d")


def _band_index(value: float | None, edges: tuple[float, ...]) -> int:
    return -1 if value is None else bisect_right(edges, value)


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@dataclass(frozen=True)
class Answer:
    """One creator's answer to one collaboration (accepted, or not: declined or expired)."""

    creator_id: str
    tier: str
    category: str
    followers: int | None
    gmv_30d: float | None
    engagement_rate: float | None
    inactive_days: int | None  # days between the creator's last activity and the invitation
    accepted: bool


FACTORS = ("tier", "category", "followers", "gmv", "engagement", "recency")


def factor_values(tier: str, category: str, followers: int | None, gmv: float | None,
                  engagement: float | None, inactive: int | None) -> dict[str, str]:
    return {"tier": tier or "-", "category": (category or "-").lower(), "followers": follower_band(followers),
            "gmv": gmv_band(gmv), "engagement": engagement_band(engagement), "recency": recency_band(inactive)}


@dataclass
class AcceptanceModel:
    base: float = PRIOR_RATE
    answers: int = 0
    counts: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (factor, value) -> (yes, n)
    own: dict[str, tuple[int, int]] = field(default_factory=dict)  # creator -> (yes, n)

    @classmethod
    def fit(cls, answers: Iterable[Answer]) -> AcceptanceModel:
        counts: dict[tuple[str, str], list[int]] = {}
        own: dict[str, list[int]] = {}
        yes = n = 0
        for a in answers:
            n += 1
            yes += a.accepted
            for f, v in factor_values(a.tier, a.category, a.followers, a.gmv_30d, a.engagement_rate,
                                      a.inactive_days).items():
                c = counts.setdefault((f, v), [0, 0])
                c[0] += a.accepted
                c[1] += 1
            o = own.setdefault(a.creator_id, [0, 0])
            o[0] += a.accepted
            o[1] += 1
        base = (yes + PRIOR_RATE * PRIOR_STRENGTH) / (n + PRIOR_STRENGTH)
        return cls(base=base, answers=n, counts={k: (v[0], v[1]) for k, v in counts.items()},
                   own={k: (v[0], v[1]) for k, v in own.items()})

    def factors(self, creator: Creator, tier: Tier | str, today: date | None = None) -> list[dict[str, Any]]:
        """Each factor: its value, the rate seen for it (shrunk toward the base) and its pull in log-odds."""
        tier_name = tier if isinstance(tier, str) else tier.name
        out = []
        inactive = inactive_days(creator, today) if today else None
        for f, v in factor_values(tier_name, creator.category, creator.followers, creator.gmv_30d,
                                  creator.engagement_rate, inactive).items():
            yes, n = self.counts.get((f, v), (0, 0))
            rate = (yes + self.base * PRIOR_STRENGTH) / (n + PRIOR_STRENGTH)
            out.append({"factor": f, "value": v, "accepted": yes, "answers": n, "rate": rate,
                        "pull": FACTOR_WEIGHT * (_logit(rate) - _logit(self.base))})
        return out

    def probability(self, creator: Creator, tier: Tier | str,
                    today: date | None = None) -> tuple[float, list[dict[str, Any]]]:
        factors = self.factors(creator, tier, today)
        p = _sigmoid(_logit(self.base) + sum(f["pull"] for f in factors))
        yes, n = self.own.get(creator.creator_id, (0, 0))
        if n:
            p = (yes + p * OWN_HISTORY_STRENGTH) / (n + OWN_HISTORY_STRENGTH)
            factors.append({"factor": "own answers", "value": f"{yes} of {n}", "accepted": yes, "answers": n,
                            "rate": yes / n, "pull": None})
        return p, factors


def collaboration_value(creator: Creator) -> float:
    """What one accepted collaboration is worth, relatively: grows with the creator's sales, slowly."""
    return 1.0 + math.log10(1.0 + (creator.gmv_30d or 0.0))


def followers_score(creator: Creator) -> float:
    return float(creator.followers or 0)


def random_score(creator: Creator, seed: str) -> float:
    return random.Random(f"{seed}:{creator.creator_id}").random()


def explain(model: AcceptanceModel, creator: Creator, tier: Tier, today: date) -> dict[str, Any]:
    p, factors = model.probability(creator, tier, today)
    value = collaboration_value(creator)
    return {"creator_id": creator.creator_id, "tier": tier.name, "base_rate": round(model.base, 4),
            "answers_learned_from": model.answers, "factors": [
                {**f, "rate": round(f["rate"], 4), "pull": None if f["pull"] is None else round(f["pull"], 4)}
                for f in factors],
            "p_accept": round(p, 4), "collaboration_value": round(value, 4), "score": round(p * value, 6)}


def inactive_days(creator: Creator, today: date) -> int | None:
    return (today - creator.last_active).days if creator.last_active else None


class Scorer:
    """The ranking a plan uses, fast enough for a million candidates: the learned estimate is cached per
    combination of factor values, and only a creator's own answers are looked up one by one."""

    def __init__(self, ranking: str, model: AcceptanceModel, seed: str, today: date) -> None:
        self.ranking = ranking
        self.model = model
        self.seed = seed
        self.today = today
        self._cache: dict[tuple[str, str, int, int, int, int], float] = {}

    def __call__(self, creator: Creator, tier: Tier) -> float:
        if self.ranking == "followers":
            return followers_score(creator)
        if self.ranking == "random":
            return random_score(creator, self.seed)
        followers = creator.followers or 0
        gmv = creator.gmv_30d or 0.0
        inactive = (self.today - creator.last_active).days if creator.last_active else None
        key = (tier.name, creator.category, int(math.log10(followers)) if followers >= 1 else 0,
               int(math.log10(gmv)) if gmv >= 10 else -1, _band_index(creator.engagement_rate, ENGAGEMENT_EDGES),
               _band_index(inactive, RECENCY_EDGES))
        p = self._cache.get(key)
        if p is None:
            p = self._cache[key] = self.model.probability(
                Creator(creator_id="", category=creator.category, followers=followers, gmv_30d=gmv,
                        engagement_rate=creator.engagement_rate, last_active=creator.last_active),
                tier, self.today)[0]
        own = self.model.own.get(creator.creator_id)
        if own:
            p = (own[0] + p * OWN_HISTORY_STRENGTH) / (own[1] + OWN_HISTORY_STRENGTH)
        return p * (1.0 + math.log10(1.0 + gmv))
