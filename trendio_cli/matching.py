"""Learned matching: each candidate's chance of taking an invitation up (adding the products to their
showcase), learned from the ledger's own outcomes and shrunk toward a prior where data is thin, times the
value that follows (the GMV of the creator's orders, learned the same way). Small and explainable: every
factor's prior, its evidence and its pull on the estimate can be shown (`plan --explain`).

Silence is an answer: an invitation not taken up once its answer window has passed counts as a "no".
Before any outcome is known (a brand's first days) the prior does the ranking: what the marketplace data
says about creators who answer (engaged, recently active, not the biggest accounts), with a little
exploration so that the first outcomes teach the model about more than one kind of creator."""

from __future__ import annotations

import math
import random
import zlib
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from trendio_cli.campaign import Tier
from trendio_cli.creators import Creator

PRIOR_RATE = 0.20  # before any outcome: one creator in five takes an invitation up
PRIOR_STRENGTH = 20.0  # outcomes a factor value needs before its own rate counts as much as the prior
OWN_HISTORY_STRENGTH = 3.0  # a creator's own outcomes count quickly
FACTOR_WEIGHT = 0.7  # factors overlap (big creators sell more): damp their sum
VALUE_STRENGTH = 10.0  # showcases a band needs before its own GMV counts as much as the prior's
EXPLORATION = 0.35  # log-scale spread of the exploration jitter with no outcomes; it fades as outcomes come


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
UNITS_EDGES = (10, 100, 1000)  # units sold in 30 days (marketplace)
VIEWS_EDGES = (1_000, 10_000, 100_000)  # average views of e-commerce videos (marketplace)


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


def units_band(units: float | None) -> str:
    return _band(units, UNITS_EDGES, lambda e: f"{e:,}")


def views_band(views: float | None) -> str:
    return _band(views, VIEWS_EDGES, lambda e: f"{e:,}")


# What is known before any outcome (the prior's pull, in log-odds, per factor value): engaged and recently
# active creators answer more, the biggest accounts less; sales and views say a creator works with brands.
PRIOR_PULLS: dict[str, dict[str, float]] = {
    "engagement": {"<2%": -0.6, "2%-4%": -0.2, "4%-6%": 0.2, "6%-10%": 0.5, "10%+": 0.8},
    "recency": {"<7d": 0.4, "7d-30d": 0.0, "30d-90d": -0.6, "90d+": -1.2},
    "followers": {"1+": 0.2, "10+": 0.2, "100+": 0.2, "1,000+": 0.2, "10,000+": 0.1, "100,000+": -0.3,
                  "1,000,000+": -0.6, "10,000,000+": -0.8},
    "units_sold": {"<10": -0.2, "10-100": 0.1, "100-1,000": 0.2, "1,000+": 0.2},
    "video_views": {"<1,000": -0.1, "1,000-10,000": 0.1, "10,000-100,000": 0.1, "100,000+": -0.1},
}


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _number(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f >= 0 else None


@dataclass(frozen=True)
class Answer:
    """What one creator did with one invitation (a collaboration): took it up (showcase) or not, posted
    content, and the GMV of the orders it brought; with the creator's attributes when invited."""

    creator_id: str
    tier: str
    category: str
    followers: int | None
    gmv_30d: float | None
    engagement_rate: float | None
    inactive_days: int | None  # days between the creator's last activity and the invitation
    showcased: bool
    content: bool = False
    gmv: float = 0.0
    extra: dict[str, Any] | None = None  # marketplace attributes: units sold, video views


FACTORS = ("tier", "category", "followers", "gmv", "engagement", "recency", "units_sold", "video_views")


def marketplace_numbers(extra: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """(units sold in 30 days, average e-commerce video views) from a creator's extra attributes."""
    extra = extra or {}
    units = _number(extra.get("units_sold") or extra.get("units_sold_30d"))
    views = _number(extra.get("avg_video_views") or extra.get("avg_ec_video_view_count"))
    return units, views


def factor_values(tier: str, category: str, followers: int | None, gmv: float | None, engagement: float | None,
                  inactive: int | None, extra: dict[str, Any] | None = None) -> dict[str, str]:
    units, views = marketplace_numbers(extra)
    return {"tier": tier or "-", "category": (category or "-").lower(), "followers": follower_band(followers),
            "gmv": gmv_band(gmv), "engagement": engagement_band(engagement), "recency": recency_band(inactive),
            "units_sold": units_band(units), "video_views": views_band(views)}


@dataclass
class OutcomeModel:
    base: float = PRIOR_RATE
    answers: int = 0
    counts: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (factor, value) -> (yes, n)
    own: dict[str, tuple[int, int]] = field(default_factory=dict)  # creator -> (yes, n)
    showcases: int = 0
    mean_gmv: float = 0.0  # GMV per showcase, over all of the brand's showcases
    gmv_by_band: dict[str, tuple[float, int]] = field(default_factory=dict)  # 30-day GMV band -> (GMV, showcases)

    @classmethod
    def fit(cls, answers: Iterable[Answer]) -> OutcomeModel:
        counts: dict[tuple[str, str], list[int]] = {}
        own: dict[str, list[int]] = {}
        by_band: dict[str, list[float]] = {}
        yes = n = 0
        gmv_total = 0.0
        for a in answers:
            n += 1
            yes += a.showcased
            for f, v in factor_values(a.tier, a.category, a.followers, a.gmv_30d, a.engagement_rate,
                                      a.inactive_days, a.extra).items():
                c = counts.setdefault((f, v), [0, 0])
                c[0] += a.showcased
                c[1] += 1
            o = own.setdefault(a.creator_id, [0, 0])
            o[0] += a.showcased
            o[1] += 1
            if a.showcased:
                gmv_total += a.gmv
                band = by_band.setdefault(gmv_band(a.gmv_30d), [0.0, 0])
                band[0] += a.gmv
                band[1] += 1
        base = (yes + PRIOR_RATE * PRIOR_STRENGTH) / (n + PRIOR_STRENGTH)
        return cls(base=base, answers=n, counts={k: (v[0], v[1]) for k, v in counts.items()},
                   own={k: (v[0], v[1]) for k, v in own.items()}, showcases=yes,
                   mean_gmv=gmv_total / yes if yes else 0.0,
                   gmv_by_band={k: (v[0], int(v[1])) for k, v in by_band.items()})

    def factors(self, creator: Creator, tier: Tier | str, today: date | None = None) -> list[dict[str, Any]]:
        """Each factor: its value, its prior pull, the rate seen for it (shrunk toward the prior) and its pull."""
        tier_name = tier if isinstance(tier, str) else tier.name
        out = []
        inactive = inactive_days(creator, today) if today else None
        base_logit = _logit(self.base)
        for f, v in factor_values(tier_name, creator.category, creator.followers, creator.gmv_30d,
                                  creator.engagement_rate, inactive, creator.extra).items():
            yes, n = self.counts.get((f, v), (0, 0))
            prior = PRIOR_PULLS.get(f, {}).get(v, 0.0)
            prior_rate = _sigmoid(base_logit + prior)
            rate = (yes + prior_rate * PRIOR_STRENGTH) / (n + PRIOR_STRENGTH)
            pull = FACTOR_WEIGHT * (prior if n == 0 else _logit(rate) - base_logit)  # (exact with no evidence)
            out.append({"factor": f, "value": v, "showcased": yes, "answers": n, "prior": prior, "rate": rate,
                        "pull": pull})
        return out

    def probability(self, creator: Creator, tier: Tier | str,
                    today: date | None = None) -> tuple[float, list[dict[str, Any]]]:
        factors = self.factors(creator, tier, today)
        p = _sigmoid(_logit(self.base) + sum(f["pull"] for f in factors))
        yes, n = self.own.get(creator.creator_id, (0, 0))
        if n:
            p = (yes + p * OWN_HISTORY_STRENGTH) / (n + OWN_HISTORY_STRENGTH)
            factors.append({"factor": "own outcomes", "value": f"{yes} of {n}", "showcased": yes, "answers": n,
                            "prior": None, "rate": yes / n, "pull": None})
        return p, factors

    def expected_gmv(self, gmv_30d: float | None) -> float:
        """GMV a showcase by such a creator brings: the brand's own figure for creators of this 30-day GMV band,
        shrunk toward the brand's mean (or, before any order, toward a share of the creator's own 30-day GMV)."""
        prior = self.mean_gmv if self.showcases else 0.02 * (gmv_30d or 0.0)
        total, n = self.gmv_by_band.get(gmv_band(gmv_30d), (0.0, 0))
        return (total + prior * VALUE_STRENGTH) / (n + VALUE_STRENGTH)

    def value(self, creator: Creator) -> float:
        """What one showcase is worth, relatively: grows with the GMV it brings, slowly."""
        return 1.0 + math.log10(1.0 + self.expected_gmv(creator.gmv_30d))

    def exploration(self) -> float:
        """The spread of the exploration jitter: wide with no outcomes, gone after a few hundred."""
        return EXPLORATION * PRIOR_STRENGTH / (PRIOR_STRENGTH + self.answers / 10)


def followers_score(creator: Creator) -> float:
    return float(creator.followers or 0)


def random_score(creator: Creator, seed: str) -> float:
    return random.Random(f"{seed}:{creator.creator_id}").random()


def jitter(creator_id: str, seed: str, spread: float) -> float:
    """A deterministic multiplicative nudge per creator and day (exploration): exp(spread x z), z a logistic
    draw scaled to a standard deviation of 1 (from a CRC of the ids: cheap for a million candidates)."""
    if spread <= 0:
        return 1.0
    u = (zlib.crc32(f"{seed}:{creator_id}".encode()) + 0.5) / 2**32
    return math.exp(spread * 0.5513 * math.log(u / (1 - u)))


def explain(model: OutcomeModel, creator: Creator, tier: Tier, today: date, seed: str = "") -> dict[str, Any]:
    p, factors = model.probability(creator, tier, today)
    value = model.value(creator)
    nudge = jitter(creator.creator_id, f"{seed}:{today.isoformat()}", model.exploration())
    return {"creator_id": creator.creator_id, "tier": tier.name, "base_rate": round(model.base, 4),
            "answers_learned_from": model.answers, "factors": [
                {**f, "rate": round(f["rate"], 4), "pull": None if f["pull"] is None else round(f["pull"], 4)}
                for f in factors],
            "p_showcase": round(p, 4), "expected_gmv": round(model.expected_gmv(creator.gmv_30d), 2),
            "showcase_value": round(value, 4), "exploration": round(nudge, 4),
            "score": round(p * value * nudge, 6)}


def inactive_days(creator: Creator, today: date) -> int | None:
    return (today - creator.last_active).days if creator.last_active else None


class Scorer:
    """The ranking a plan uses, fast enough for a million candidates: the learned estimate is cached per
    combination of factor values, and only a creator's own outcomes and exploration nudge go one by one."""

    def __init__(self, ranking: str, model: OutcomeModel, seed: str, today: date) -> None:
        self.ranking = ranking
        self.model = model
        self.seed = seed
        self.today = today
        self.spread = model.exploration()
        self._day_seed = f"{seed}:{today.isoformat()}"
        self._cache: dict[tuple[Any, ...], float] = {}

    def __call__(self, creator: Creator, tier: Tier) -> float:
        if self.ranking == "followers":
            return followers_score(creator)
        if self.ranking == "random":
            return random_score(creator, self.seed)
        followers = creator.followers or 0
        gmv = creator.gmv_30d or 0.0
        inactive = (self.today - creator.last_active).days if creator.last_active else None
        units, views = marketplace_numbers(creator.extra) if creator.extra else (None, None)
        key = (tier.name, creator.category, int(math.log10(followers)) if followers >= 1 else 0,
               int(math.log10(gmv)) if gmv >= 10 else -1, _band_index(creator.engagement_rate, ENGAGEMENT_EDGES),
               _band_index(inactive, RECENCY_EDGES), _band_index(units, UNITS_EDGES), _band_index(views, VIEWS_EDGES))
        score = self._cache.get(key)
        if score is None:
            probe = Creator(creator_id="", category=creator.category, followers=followers, gmv_30d=gmv,
                            engagement_rate=creator.engagement_rate, last_active=creator.last_active,
                            extra=creator.extra)
            p = self.model.probability(probe, tier, self.today)[0]
            score = self._cache[key] = p
        p = score
        own = self.model.own.get(creator.creator_id)
        if own:
            p = (own[0] + p * OWN_HISTORY_STRENGTH) / (own[1] + OWN_HISTORY_STRENGTH)
        return p * self.model.value(creator) * jitter(creator.creator_id, self._day_seed, self.spread)


def _band_index(value: float | None, edges: tuple[float, ...]) -> int:
    return -1 if value is None else bisect_right(edges, value)
