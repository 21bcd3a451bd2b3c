"""Learned matching: each candidate's chance of taking an invitation up (adding the products to their showcase),
times what a showcase is worth (the content and the sales that follow), both learned from the ledger's own
outcomes and pulled toward a prior where data is thin. Small and explainable: every factor's prior, its evidence
and its pull on the estimate can be shown (`plan --explain`), and the score is their product.

The chance is a sum of log-odds, one term per factor value (tier, category, follower band, 30-day GMV band,
engagement, recency, units sold, video views), fitted jointly so that overlapping factors (big accounts also sell
more and get more views) are not counted twice, each term pulled toward its prior with the weight of
PRIOR_STRENGTH outcomes; the bands of an ordered factor also share a trend (so much per band up), which a few
outcomes suffice to learn. Content after a showcase is learned the same way, on showcases. A showcase's sales
are learned from orders as shares of the creator's own 30-day GMV, with content and without.

Silence is an answer, gradually: an invitation not taken up counts as part of a "no" that grows with its age (as
the brand's showcases so far came: 1 - exp(-age / mean delay)), and as a whole "no" once the answer window has
passed or the collaboration has ended. Before any outcome is known (a brand's first days) the prior does the
ranking: what the marketplace data says about creators who answer (engaged, recently active, already selling,
not the biggest accounts), with a little exploration so that the first outcomes teach the model about more than
one kind of creator."""

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
PRIOR_STRENGTH = 20.0  # outcomes a factor value needs before its own evidence counts as much as its prior
OWN_HISTORY_STRENGTH = 3.0  # a creator's own outcomes count quickly
PRIOR_CONTENT_RATE = 0.35  # before any showcase: one showcase in three is followed by content
PRIOR_DELAY_DAYS = 2.0  # mean days from invitation to showcase, before the brand's own showcases say
PRIOR_CONTENT_DELAY_DAYS = 3.0  # mean days from showcase to content, likewise
DELAY_STRENGTH = 10.0  # showcases before the brand's own mean delay counts as much as the prior's
# What a showcase sells in its first VALUE_HORIZON_DAYS, as a share of the creator's own 30-day GMV: little while
# the products only sit in the showcase, more once content features them.
PRIOR_SHOWCASE_SHARE = 0.01
PRIOR_CONTENT_SHARE = 0.10
GMV_FLOOR = 10.0  # a creator without recorded sales may still sell: their 30-day GMV counts from this
VALUE_STRENGTH = 10.0  # showcases (at full exposure) before the brand's own shares count as much as the priors
VALUE_HORIZON_DAYS = 28.0  # the value of a showcase: what it sells in its first four weeks
EXPLORATION = 0.35  # log-scale spread of the exploration jitter with no outcomes; it fades as outcomes come
LEARN_FROM_ROWS = 20_000  # the brand's latest invitations (creator x product) the model learns from
SWEEPS = 12  # rounds of the joint fit (each factor in turn); it stops earlier once nothing moves


# --- factors ------------------------------------------------------------------------------------------------
def marketplace_number(value: Any) -> float | None:
    """A count or an amount as the marketplace (or a creators file) writes it, a number or numeric text; None
    when it is absent, null, empty, negative or not a number (the open top bands' maximum is "" or -1)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f >= 0 else None


def _labels(edges: tuple[float, ...], show: Any) -> tuple[str, ...]:
    """Band names for numeric edges: "<a", "a-b", ..., "z+"."""
    inner = [f"{show(a)}-{show(b)}" for a, b in zip(edges, edges[1:])]
    return (f"<{show(edges[0])}", *inner, f"{show(edges[-1])}+")


FOLLOWER_EDGES = (10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)  # powers of ten
FOLLOWER_LABELS = tuple(f"{10 ** i:,}+" for i in range(len(FOLLOWER_EDGES) + 1))  # "1+", "10+", ...
GMV_EDGES = (10, 100, 1_000, 10_000, 100_000, 1_000_000)
GMV_LABELS = ("<10", *(f"{e:,}+" for e in GMV_EDGES))
ENGAGEMENT_EDGES = (0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.10, 0.15)
ENGAGEMENT_LABELS = _labels(ENGAGEMENT_EDGES, lambda e: f"{e:.0%}")
RECENCY_EDGES = (3, 7, 14, 30, 60, 90)  # days since the creator was last active, when invited
RECENCY_LABELS = _labels(RECENCY_EDGES, lambda e: f"{e}d")
UNITS_EDGES = (10, 100, 1_000)  # units sold in 30 days (marketplace)
UNITS_LABELS = _labels(UNITS_EDGES, lambda e: f"{e:,}")
VIEWS_EDGES = (1_000, 10_000, 100_000)  # average views of e-commerce videos (marketplace)
VIEWS_LABELS = _labels(VIEWS_EDGES, lambda e: f"{e:,}")
UNKNOWN = "unknown"

FACTORS = ("tier", "category", "followers", "gmv", "engagement", "recency", "units_sold", "video_views")

# What is known before any outcome (the prior's pull, in log-odds, per factor value). Engaged and recently active
# creators answer more, the biggest accounts less; sales say a creator works with brands. Nothing is assumed
# about tiers, categories or video views: those the brand's own outcomes decide.
PRIOR_PULLS: dict[str, dict[str, float]] = {
    "engagement": dict(zip(ENGAGEMENT_LABELS, (-0.8, -0.5, -0.25, -0.1, 0.1, 0.3, 0.45, 0.6, 0.8))),
    "recency": dict(zip(RECENCY_LABELS, (0.4, 0.3, 0.1, -0.2, -0.6, -1.0, -1.4))),
    "followers": dict(zip(FOLLOWER_LABELS, (0.2, 0.2, 0.2, 0.2, 0.1, -0.2, -0.5, -0.8))),
    "units_sold": dict(zip(UNITS_LABELS, (-0.2, 0.1, 0.2, 0.2))),
}


def _label(labels: tuple[str, ...], i: int) -> str:
    return UNKNOWN if i < 0 else labels[i]


def marketplace_numbers(extra: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """(units sold in 30 days, average e-commerce video views) from a creator's extra attributes."""
    extra = extra or {}
    units = marketplace_number(extra.get("units_sold") or extra.get("units_sold_30d"))
    views = marketplace_number(extra.get("avg_video_views") or extra.get("avg_ec_video_view_count"))
    return units, views


def factor_key(tier: str, category: str | None, followers: int | None, gmv: float | None,
               engagement: float | None, inactive: int | None, extra: dict[str, Any] | None) -> tuple[Any, ...]:
    """The creator's value of each factor, compactly (band indices, -1 for unknown): what the model's terms are
    indexed by. (Called once per candidate: the bands are inlined.)"""
    units, views = marketplace_numbers(extra) if extra else (None, None)
    return (tier or "-", category.lower() if category else "-", bisect_right(FOLLOWER_EDGES, followers or 0),
            bisect_right(GMV_EDGES, gmv or 0.0),
            -1 if engagement is None else bisect_right(ENGAGEMENT_EDGES, engagement),
            -1 if inactive is None else bisect_right(RECENCY_EDGES, inactive),
            -1 if units is None else bisect_right(UNITS_EDGES, units),
            -1 if views is None else bisect_right(VIEWS_EDGES, views))


def factor_labels(key: tuple[Any, ...]) -> tuple[str, ...]:
    """The factor values of a key, as people read them ("10,000+", "4%-6%", "<3d", ...)."""
    tier, category, fol, gmv, eng, rec, units, views = key
    return (tier, category, FOLLOWER_LABELS[fol], GMV_LABELS[gmv], _label(ENGAGEMENT_LABELS, eng),
            _label(RECENCY_LABELS, rec), _label(UNITS_LABELS, units), _label(VIEWS_LABELS, views))


def inactive_days(creator: Creator, today: date) -> int | None:
    return (today - creator.last_active).days if creator.last_active else None


def creator_key(creator: Creator, tier: str, today: date) -> tuple[Any, ...]:
    return factor_key(tier, creator.category, creator.followers, creator.gmv_30d, creator.engagement_rate,
                      inactive_days(creator, today), creator.extra)


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    if x < -30:
        return 1e-13
    return 1 / (1 + math.exp(-x))


# --- outcomes -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one invitation (one creator, one collaboration), as `Ledger.outcomes` reads it: the
    creator's attributes when invited, its age, whether and when it was taken up, whether content followed,
    and the GMV and commission of the orders it brought."""

    creator_id: str
    tier: str
    category: str
    followers: int | None
    gmv_30d: float | None
    engagement_rate: float | None
    inactive_days: int | None  # days between the creator's last activity and the invitation
    extra: dict[str, Any] | None  # marketplace attributes: units sold, video views
    age_days: float  # since the invitation
    showcased: bool
    showcase_days: float | None = None  # from the invitation to the showcase
    content: bool = False
    content_days: float | None = None  # from the showcase to content
    ended: bool = False  # the collaboration ended without a showcase
    gmv: float = 0.0
    commission: float = 0.0

    def key(self) -> tuple[Any, ...]:
        return factor_key(self.tier, self.category, self.followers, self.gmv_30d, self.engagement_rate,
                          self.inactive_days, self.extra)


def silence_weight(age_days: float, mean_delay: float, window_days: float) -> float:
    """How much of a "no" an unanswered invitation of this age is: the share of eventual answers that would have
    come by now if they come as the brand's have (exponential delays with this mean); all of one once the answer
    window has passed."""
    if age_days >= window_days:
        return 1.0
    return 1.0 - math.exp(-age_days / max(mean_delay, 0.05))


# --- the joint fit of additive log-odds ---------------------------------------------------------------------
NUMERIC = tuple(name not in ("tier", "category") for name in FACTORS)  # factors whose bands are ordered
TREND_STRENGTH = 2.0  # outcomes' worth of doubt about a trend (per band step): it is learned quickly
BASE_STRENGTH = 2.0  # ... about the brand's own rate: the base takes the level, the factors what differs


def _band(f: int, v: Any) -> bool:
    return NUMERIC[f] and isinstance(v, int) and v >= 0


@dataclass
class LogOdds:
    """An additive log-odds model over the factors: a base, plus per factor value a pull, which for ordered
    factors (bands of followers, GMV, engagement, ...) is a trend (so much per band up) plus the band's own."""

    base: float
    pulls: list[dict[Any, float]]  # per factor: value (band index or name) -> the band's own pull
    trends: list[float]  # per factor: pull per band step (0 for categories)
    centers: list[float]  # per factor: the band the trend pivots on (the outcomes' mean band)
    evidence: list[dict[Any, tuple[float, float]]]  # per factor: value -> (yes, outcomes), weighted
    priors: list[dict[Any, float]]
    outcomes: float = 0.0
    yes: float = 0.0
    _tables: list[dict[Any, float]] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def empty(cls, base_rate: float, priors: list[dict[Any, float]]) -> LogOdds:
        return cls(_logit(base_rate), [dict(p) for p in priors], [0.0] * len(priors), [0.0] * len(priors),
                   [{} for _ in priors], priors)

    def position(self, f: int, v: Any) -> float:
        """A band's position on its factor's trend, in band steps from the pivot (0 for categories and unknowns):
        a trend tilts the bands, it never moves the level (that is the base's)."""
        return v - self.centers[f] if _band(f, v) else 0.0

    @classmethod
    def fit(cls, groups: dict[tuple[Any, ...], list[float]], base_rate: float,
            priors: list[dict[Any, float]]) -> LogOdds:
        """Penalized logistic regression by blocks: the base, then each factor's trend and its values in turn,
        with an exact Newton step per block (a factor's values never overlap). Each value's own pull is pulled
        toward its prior with the weight of PRIOR_STRENGTH outcomes, each trend toward none with the weight of
        TREND_STRENGTH, the base toward `base_rate` with the weight of BASE_STRENGTH."""
        keys = list(groups)
        ys = [groups[k][0] for k in keys]
        ns = [groups[k][1] for k in keys]
        yes, n = sum(ys), sum(ns)
        rate = (yes + base_rate * PRIOR_STRENGTH) / (n + PRIOR_STRENGTH)
        model = cls.empty(rate, priors)
        model.outcomes, model.yes = n, yes
        if not keys:
            return model
        nf = len(priors)
        # each block is a column of small integers (which of its parameters a group has) and the parameters'
        # positions on it (1 for a value, the band's step for a trend), current values, priors and penalties
        lam = PRIOR_STRENGTH * rate * (1 - rate)
        blocks: list[tuple[bool, list[int], list[float], list[float], list[float], float]] = []
        names: list[tuple[int, bool, list[Any]]] = []
        blocks.append((False, [0] * len(keys), [1.0], [model.base], [_logit(base_rate)],
                       BASE_STRENGTH * rate * (1 - rate)))
        names.append((-1, False, [None]))
        for f in range(nf):
            values = sorted({k[f] for k in keys}, key=repr)
            index = {v: i for i, v in enumerate(values)}
            column = [index[k[f]] for k in keys]
            ev: list[list[float]] = [[0.0, 0.0] for _ in values]
            for j, y, m in zip(column, ys, ns):
                ev[j][0] += y
                ev[j][1] += m
            model.evidence[f] = {v: (e[0], e[1]) for v, e in zip(values, ev)}
            if NUMERIC[f]:
                known = [(v, e[1]) for v, e in zip(values, ev) if _band(f, v)]
                weight = sum(m for _, m in known)
                model.centers[f] = sum(v * m for v, m in known) / weight if weight else 0.0
                blocks.append((True, column, [model.position(f, v) for v in values], [0.0], [0.0],
                               TREND_STRENGTH * rate * (1 - rate)))
                names.append((f, True, [None]))
            blocks.append((False, column, [1.0] * len(values), [model.pulls[f].get(v, 0.0) for v in values],
                           [priors[f].get(v, 0.0) for v in values], lam))
            names.append((f, False, values))
        eta = [model.base + sum(model.pulls[f].get(k[f], 0.0) for f in range(nf)) for k in keys]
        exp = math.exp
        for _ in range(SWEEPS):
            moved = 0.0
            for trend, column, position, current, prior, penalty in blocks:
                size = len(position)
                grad = [0.0] * size
                hess = [0.0] * size
                for j, e, y, m in zip(column, eta, ys, ns):
                    p = 1.0 / (1.0 + exp(-e)) if e > -30 else 0.0
                    grad[j] += y - m * p
                    hess[j] += m * p * (1.0 - p)
                if trend:  # one parameter: the pull per band step
                    g = sum(gj * x for gj, x in zip(grad, position)) - penalty * current[0]
                    h = sum(hj * x * x for hj, x in zip(hess, position)) + penalty
                    d = g / h
                    current[0] += d
                    step = [d * x for x in position]
                    moved = max(moved, abs(d))
                else:
                    step = [(g - penalty * (c - q)) / (h + penalty)
                            for g, h, c, q in zip(grad, hess, current, prior)]
                    for j, d in enumerate(step):
                        current[j] += d
                    moved = max(moved, max(abs(d) for d in step))
                eta = [e + step[j] for e, j in zip(eta, column)]
            if moved < 0.005:
                break
        for (f, trend, values), (_, _, _, current, _, _) in zip(names, blocks):
            if f < 0:
                model.base = current[0]
            elif trend:
                model.trends[f] = current[0]
            else:
                model.pulls[f].update(zip(values, current))
        return model

    def term(self, f: int, v: Any) -> float:
        """The pull of factor `f`'s value `v`: its trend's, plus its own (its prior's where never fitted)."""
        return self.trends[f] * self.position(f, v) + self.pulls[f].get(v, self.priors[f].get(v, 0.0))

    def terms(self, key: tuple[Any, ...]) -> list[float]:
        return [self.term(f, v) for f, v in enumerate(key)]

    def chance(self, key: tuple[Any, ...]) -> float:
        tables = self._tables
        if not tables:  # once per fitted model: every value's pull, so that a candidate costs a lookup per factor
            tables.extend({} for _ in key)
        x = self.base
        for f, v in enumerate(key):
            t = tables[f].get(v)
            if t is None:
                t = tables[f][v] = self.term(f, v)
            x += t
        return _sigmoid(x)


def _priors(pulls: dict[str, dict[str, float]]) -> list[dict[Any, float]]:
    """Prior pulls by factor, keyed as `factor_key` keys them (band indices for the numeric factors)."""
    label_sets: dict[str, tuple[str, ...]] = {"followers": FOLLOWER_LABELS, "gmv": GMV_LABELS,
                                              "engagement": ENGAGEMENT_LABELS, "recency": RECENCY_LABELS,
                                              "units_sold": UNITS_LABELS, "video_views": VIEWS_LABELS}
    out: list[dict[Any, float]] = []
    for name in FACTORS:
        given = pulls.get(name, {})
        labels = label_sets.get(name)
        if labels is None:
            out.append(dict(given))
        else:
            out.append({i: given[label] for i, label in enumerate(labels) if label in given})
    return out


SHOWCASE_PRIORS = _priors(PRIOR_PULLS)
CONTENT_PRIORS = _priors({})


# --- the model ----------------------------------------------------------------------------------------------
@dataclass
class OutcomeModel:
    """The chance of a showcase and the value of one, learned from a brand's outcomes."""

    showcase: LogOdds = field(default_factory=lambda: LogOdds.empty(PRIOR_RATE, SHOWCASE_PRIORS))
    content: LogOdds = field(default_factory=lambda: LogOdds.empty(PRIOR_CONTENT_RATE, CONTENT_PRIORS))
    own: dict[str, tuple[float, float]] = field(default_factory=dict)  # creator -> (showcased, outcomes)
    mean_delay: float = PRIOR_DELAY_DAYS
    mean_content_delay: float = PRIOR_CONTENT_DELAY_DAYS
    window_days: float = 14.0
    showcase_share: float = PRIOR_SHOWCASE_SHARE  # GMV / 30-day GMV of showcases without content, the brand's
    content_share: float = PRIOR_CONTENT_SHARE  # ... of showcases with content
    band_factor: dict[int, tuple[float, int]] = field(default_factory=dict)  # GMV band -> (correction, showcases)
    commission_rate: float = 0.0  # commission / GMV of the brand's orders
    showcases: int = 0
    gmv_total: float = 0.0

    @property
    def answers(self) -> float:
        """The outcomes learned from (silent invitations counted as the part of a "no" they are)."""
        return self.showcase.outcomes

    @property
    def base(self) -> float:
        return _sigmoid(self.showcase.base)

    @classmethod
    def fit(cls, outcomes: Iterable[Outcome], window_days: float = 14.0) -> OutcomeModel:
        rows = list(outcomes)
        taken = [o for o in rows if o.showcased]
        delays = [o.showcase_days for o in taken if o.showcase_days is not None]
        mean_delay = (sum(delays) + PRIOR_DELAY_DAYS * DELAY_STRENGTH) / (len(delays) + DELAY_STRENGTH)
        posted = [o.content_days for o in taken if o.content and o.content_days is not None]
        mean_content = (sum(posted) + PRIOR_CONTENT_DELAY_DAYS * DELAY_STRENGTH) / (len(posted) + DELAY_STRENGTH)
        groups: dict[tuple[Any, ...], list[float]] = {}
        content_groups: dict[tuple[Any, ...], list[float]] = {}
        own: dict[str, list[float]] = {}
        sold: list[tuple[int, bool, float, float, float]] = []  # (GMV band, content, scale, exposure, GMV)
        gmv_total = commission_total = 0.0
        for o in rows:
            key = o.key()
            if o.showcased:
                y, w = 1.0, 1.0
            elif o.ended:
                y, w = 0.0, 1.0
            else:
                y, w = 0.0, silence_weight(o.age_days, mean_delay, window_days)
            if w <= 0:
                continue
            g = groups.setdefault(key, [0.0, 0.0])
            g[0] += y
            g[1] += w
            mine = own.setdefault(o.creator_id, [0.0, 0.0])
            mine[0] += y
            mine[1] += w
            if not o.showcased:
                continue
            live = max(0.0, o.age_days - (o.showcase_days or 0.0))
            c = content_groups.setdefault(key, [0.0, 0.0])
            if o.content:
                c[0] += 1.0
                c[1] += 1.0
            else:
                c[1] += silence_weight(live, mean_content, window_days)
            scale = (o.gmv_30d or 0.0) + GMV_FLOOR
            sold.append((key[3], o.content, scale, scale * min(1.0, live / VALUE_HORIZON_DAYS), o.gmv))
            gmv_total += o.gmv
            commission_total += o.commission
        model = cls(showcase=LogOdds.fit(groups, PRIOR_RATE, SHOWCASE_PRIORS),
                    content=LogOdds.fit(content_groups, PRIOR_CONTENT_RATE, CONTENT_PRIORS),
                    own={k: (v[0], v[1]) for k, v in own.items()}, mean_delay=mean_delay,
                    mean_content_delay=mean_content, window_days=window_days, showcases=len(taken),
                    gmv_total=gmv_total, commission_rate=commission_total / gmv_total if gmv_total else 0.0)
        model._fit_sales(sold)
        return model

    def _fit_sales(self, sold: list[tuple[int, bool, float, float, float]]) -> None:
        """GMV per unit of exposure (the creator's 30-day GMV, times the share of VALUE_HORIZON_DAYS the
        showcase has been up), for showcases without content and with it, each shrunk toward its prior with the
        exposure of VALUE_STRENGTH typical showcases in full; then a correction per 30-day GMV band, shrunk
        toward 1 likewise."""
        if not sold:
            return
        weight = VALUE_STRENGTH * sum(x[2] for x in sold) / len(sold)
        for content, prior in ((False, PRIOR_SHOWCASE_SHARE), (True, PRIOR_CONTENT_SHARE)):
            gmv = sum(g for _, c, _, _, g in sold if c == content)
            exposure = sum(e for _, c, _, e, _ in sold if c == content)
            share = (gmv + prior * weight) / (exposure + weight)
            if content:
                self.content_share = share
            else:
                self.showcase_share = share
        bands: dict[int, list[float]] = {}
        for band, content, scale, exposure, gmv in sold:
            share = self.content_share if content else self.showcase_share
            b = bands.setdefault(band, [0.0, 0.0, 0.0, 0.0])
            b[0] += gmv
            b[1] += exposure * share
            b[2] += scale * share
            b[3] += 1
        for band, (gmv, predicted, full, n) in bands.items():
            pseudo = VALUE_STRENGTH * full / n
            self.band_factor[band] = ((gmv + pseudo) / (predicted + pseudo), int(n))

    # --- estimates --------------------------------------------------------------------------------------
    def chance(self, key: tuple[Any, ...], creator_id: str | None = None) -> float:
        """The chance of a showcase for a creator of these factor values (and, if known, these own outcomes)."""
        return self.with_own_outcomes(self.showcase.chance(key), creator_id)

    def with_own_outcomes(self, p: float, creator_id: str | None) -> float:
        """A chance with the creator's own outcomes blended in, with the weight of OWN_HISTORY_STRENGTH."""
        own = self.own.get(creator_id) if creator_id else None
        if own:
            p = (own[0] + p * OWN_HISTORY_STRENGTH) / (own[1] + OWN_HISTORY_STRENGTH)
        return p

    def expected_gmv(self, gmv_30d: float | None, content_rate: float) -> float:
        """GMV a showcase by such a creator brings in its first weeks: the shares of their own 30-day GMV (from
        GMV_FLOOR) the brand's showcases sold without content and with it, mixed by this creator's chance of
        content, and corrected by what showcases of creators of the same 30-day GMV band sold."""
        band = bisect_right(GMV_EDGES, gmv_30d or 0.0)
        return self.gmv_share(content_rate, band) * ((gmv_30d or 0.0) + GMV_FLOOR)

    def gmv_share(self, content_rate: float, gmv_band: int) -> float:
        """The part of a creator's 30-day GMV (plus GMV_FLOOR) a showcase is expected to sell (`expected_gmv`)."""
        factor = self.band_factor.get(gmv_band, (1.0, 0))[0]
        share = self.showcase_share + content_rate * (self.content_share - self.showcase_share)
        return max(0.0, share * factor)

    def value(self, content_rate: float, gmv_30d: float | None) -> float:
        return showcase_value(content_rate, self.expected_gmv(gmv_30d, content_rate))

    def exploration(self) -> float:
        """The spread of the exploration jitter: wide with no outcomes, nearly gone after a few thousand."""
        return EXPLORATION * PRIOR_STRENGTH / (PRIOR_STRENGTH + self.answers / 10)

    def factors(self, key: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Each factor: its value, prior pull, evidence (showcased / outcomes, silence weighted), the rate seen,
        the pull it has on the chance of a showcase, and its pull on the chance of content after one."""
        out = []
        s, c = self.showcase, self.content
        for f, (name, label, v) in enumerate(zip(FACTORS, factor_labels(key), key)):
            yes, n = s.evidence[f].get(v, (0.0, 0.0))
            cy, cn = c.evidence[f].get(v, (0.0, 0.0))
            out.append({"factor": name, "value": label, "prior": s.priors[f].get(v, 0.0),
                        "showcased": round(yes, 1), "answers": round(n, 1), "rate": yes / n if n else None,
                        "pull": s.terms(key)[f], "content": round(cy, 1), "content_of": round(cn, 1),
                        "content_pull": c.terms(key)[f]})
        return out


def showcase_value(content_rate: float, expected_gmv: float) -> float:
    """What one showcase is worth, relatively: itself (1), the content that may follow (its chance), and the
    sales, slowly (log10 of 1 + the GMV expected)."""
    return 1.0 + content_rate + math.log10(1.0 + expected_gmv)


def followers_score(creator: Creator) -> float:
    return float(creator.followers or 0)


def random_score(creator: Creator, seed: str) -> float:
    return random.Random(f"{seed}:{creator.creator_id}").random()


def _nudge(crc: int, power: float) -> float:
    """The exploration's multiplicative nudge: exp(spread x z), z a logistic draw scaled to a standard deviation
    of 1 (`power` = spread x 0.5513), drawn from a CRC of the day's seed and the creator's id (cheap for a
    million candidates, the same all day)."""
    u = (crc + 0.5) / 2**32
    return (u / (1 - u)) ** power  # exp(power x logit(u))


class Scorer:
    """The ranking a plan uses, fast enough for a million candidates: per combination of factor values, the
    learned chances and the share of the creator's GMV a showcase is expected to sell are cached; a creator's
    own outcomes, 30-day GMV and exploration nudge go one by one."""

    def __init__(self, ranking: str, model: OutcomeModel, seed: str, today: date) -> None:
        self.ranking = ranking
        self.model = model
        self.seed = seed
        self.today = today
        self.spread = model.exploration()
        self._day_seed = f"{seed}:{today.isoformat()}"
        self._day_crc = zlib.crc32(f"{self._day_seed}:".encode())  # the CRC runs on over each creator's id
        self._cache: dict[tuple[Any, ...], tuple[float, float, float]] = {}

    def _by_key(self, key: tuple[Any, ...]) -> tuple[float, float, float]:
        """(chance of a showcase, chance of content after one, the share of GMV a showcase sells)."""
        m = self.model
        content = m.content.chance(key)
        cached = self._cache[key] = (m.showcase.chance(key), content, m.gmv_share(content, key[3]))  # [3]: GMV band
        return cached

    def parts(self, creator: Creator, tier: Tier) -> tuple[float, float, float]:
        """(chance of a showcase, value of one, exploration nudge): the score is their product. The same
        arithmetic as OutcomeModel.chance and .value, with what depends on the factor values cached."""
        key = creator_key(creator, tier.name, self.today)
        p, content, per_gmv = self._cache.get(key) or self._by_key(key)
        if self.model.own:
            p = self.model.with_own_outcomes(p, creator.creator_id)
        value = showcase_value(content, per_gmv * ((creator.gmv_30d or 0.0) + GMV_FLOOR))
        nudge = _nudge(zlib.crc32(creator.creator_id.encode(), self._day_crc), self.spread * 0.5513) \
            if self.spread > 0 else 1.0
        return p, value, nudge

    def __call__(self, creator: Creator, tier: Tier) -> float:
        if self.ranking == "followers":
            return followers_score(creator)
        if self.ranking == "random":
            return random_score(creator, self.seed)
        p, value, nudge = self.parts(creator, tier)
        return p * value * nudge


def explain(model: OutcomeModel, creator: Creator, tier: Tier, today: date, seed: str = "") -> dict[str, Any]:
    """Every term of a creator's learned score, as `Scorer` computes it."""
    key = creator_key(creator, tier.name, today)
    p, value, nudge = Scorer("learned", model, seed, today).parts(creator, tier)
    content = model.content.chance(key)
    gmv = model.expected_gmv(creator.gmv_30d, content)
    factor, band_showcases = model.band_factor.get(bisect_right(GMV_EDGES, creator.gmv_30d or 0.0), (1.0, 0))
    factors = [{**f, "rate": None if f["rate"] is None else round(f["rate"], 4), "pull": round(f["pull"], 4),
                "content_pull": round(f["content_pull"], 4)} for f in model.factors(key)]
    own = model.own.get(creator.creator_id)
    return {
        "creator_id": creator.creator_id, "tier": tier.name, "base_rate": round(model.base, 4),
        "answers_learned_from": round(model.answers, 1), "showcases_learned_from": model.showcases,
        "silence": {"mean_days_to_showcase": round(model.mean_delay, 2), "answer_window_days": model.window_days},
        "factors": factors,
        "own_outcomes": None if not own else {"showcased": round(own[0], 1), "answers": round(own[1], 1)},
        "p_showcase": round(p, 4),
        "content_base_rate": round(_sigmoid(model.content.base), 4), "p_content": round(content, 4),
        "sales": {"showcase_share": round(model.showcase_share, 4), "content_share": round(model.content_share, 4),
                  "gmv_band_factor": round(factor, 4), "gmv_band_showcases": band_showcases,
                  "floor": GMV_FLOOR, "horizon_days": VALUE_HORIZON_DAYS},
        "expected_gmv": round(gmv, 2), "expected_commission": round(gmv * model.commission_rate, 2),
        "showcase_value": round(value, 4), "exploration": round(nudge, 4), "score": p * value * nudge,
    }
