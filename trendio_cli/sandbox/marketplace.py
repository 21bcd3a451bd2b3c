"""The sandbox's creators: who they are (Creator Open IDs and legacy numeric ids), what the marketplace shows
of them, and the hidden propensities that decide what they do with an invitation. All deterministic.

A creator is an index (0, 1, 2, ...). Its Creator Open ID and its legacy numeric id both encode the index, so
the sandbox can read back any id it ever handed out, however large the index. The open ids depend on a
namespace (the platform's ids are per app), not on the seed: a creators file written with one seed names the
same creators in a sandbox started with another. The seed decides the attributes and the hidden behaviour.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import random
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

CATEGORIES = ("beauty", "fashion", "home", "fitness", "food", "tech", "pets", "baby")
# Sandbox-made top-level category ids, shaped like the platform's numeric ones.
CATEGORY_IDS = {
    "beauty": "601450", "fashion": "601152", "home": "600001", "fitness": "603014",
    "food": "700437", "tech": "601739", "pets": "602118", "baby": "601755",
}
LEGACY_ID_BASE = 6_900_000_000_000_000_000
LEGACY_ID_SPAN = 10**17
DEFAULT_NAMESPACE = "trendio-sandbox"
AGE_RANGES = ("AGE_RANGE_18_24", "AGE_RANGE_25_34", "AGE_RANGE_35_44", "AGE_RANGE_45_54", "AGE_RANGE_55_AND_ABOVE")
# Follower counts at which creator levels 2..7 begin (level 1 below the first).
LEVEL_FLOORS = (1_000, 5_000, 10_000, 50_000, 100_000, 1_000_000)
CREATOR_LEVELS = tuple(range(1, len(LEVEL_FLOORS) + 2))
REFERENCE_PRICE = 25.0  # USD: the average product price the order rates are scaled to
REFERENCE_COMMISSION = 1500  # the commission at which `propensity` is the chance of a showcase
# What a creator does with an invitation (drawn in activity.py): a showcase after a delay, maybe content after
# another, then orders at `order_rate` a day (a small share of it while only showcased).
SHOWCASE_MIN_DELAY_DAYS = 0.1
CONTENT_MIN_DELAY_DAYS = 0.3
CONTENT_MEAN_DELAY_DAYS = 2.5
SHOWCASE_ORDER_SHARE = 0.12
QUANTITIES = ((1, 0.80), (2, 0.15), (3, 0.05))
MEAN_QUANTITY = sum(q * p for q, p in QUANTITIES)

_OPEN_ID_HEAD = bytes.fromhex("b8009a7d")  # every id starts "uACafQ", as the platform's examples do
_WORDS_A = ("glow", "daily", "tiny", "cozy", "urban", "sunny", "wild", "pure", "happy", "bold", "misty", "lucky")
_WORDS_B = ("mia", "kitchen", "looks", "fit", "nest", "finds", "paws", "style", "tech", "bites", "home", "vibes")
_FIRST = ("Mia", "Leo", "Ava", "Noah", "Zoe", "Kai", "Ivy", "Eli", "Luna", "Max", "Nia", "Sam")


def _digest(*parts: object, size: int = 8) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=size).digest()


def unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (the seed among them)."""
    return int.from_bytes(_digest(*parts), "big") / 2**64


def open_id(index: int, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The Creator Open ID of creator `index`: 54 characters of base64url, like the platform's."""
    raw_index = index.to_bytes(8, "big")
    tag = _digest("tag", namespace, index, size=28)
    mask = _digest("mask", namespace, tag)
    body = bytes(a ^ b for a, b in zip(raw_index, mask))
    return base64.urlsafe_b64encode(_OPEN_ID_HEAD + body + tag).rstrip(b"=").decode()


def index_of_open_id(value: str, namespace: str = DEFAULT_NAMESPACE) -> int | None:
    """The index an open id of this namespace encodes, or None for anything else."""
    if not isinstance(value, str) or len(value) != 54:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "==")
    except (ValueError, TypeError):
        return None
    if len(raw) != 40 or raw[:4] != _OPEN_ID_HEAD:
        return None
    tag = raw[12:]
    mask = _digest("mask", namespace, tag)
    index = int.from_bytes(bytes(a ^ b for a, b in zip(raw[4:12], mask)), "big")
    return index if _digest("tag", namespace, index, size=28) == tag else None


def legacy_id(index: int) -> str:
    """The plain numeric creator id the 202405 create takes (`creator_user_ids`)."""
    return str(LEGACY_ID_BASE + index)


def index_of_legacy_id(value: str) -> int | None:
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    index = int(value) - LEGACY_ID_BASE
    return index if 0 <= index < LEGACY_ID_SPAN else None


def creator_level(followers: int) -> int:
    level = 1
    for floor in LEVEL_FLOORS:
        if followers >= floor:
            level += 1
    return level


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@dataclass(frozen=True, slots=True)
class Creator:
    """One creator: what the marketplace shows, and (below the line) what only the sandbox knows."""

    index: int
    open_id: str
    user_id: str  # the legacy numeric id
    username: str
    nickname: str
    followers: int
    gmv_30d: float
    video_share: float  # part of the GMV from videos (the rest from LIVE)
    units_sold: int
    category: str
    extra_categories: tuple[str, ...]
    engagement_rate: float
    inactive_days: int
    avg_video_views: int
    avg_live_uv: int
    shares_precise_data: bool
    age_ranges: tuple[str, ...]
    major_gender: str
    major_gender_pct: int  # hundredths of a percent
    brand_collaborations: int
    # --- hidden ---
    propensity: float  # chance of adding an invitation's products to the showcase (at 15% commission)
    content_propensity: float  # chance of posting content once showcased
    order_rate: float  # affiliate orders per day while content is live
    showcase_delay_days: float  # mean delay before a showcase
    # the propensity the attributes alone give, before the creator's individual draw (read only: what the best
    # ranking by a creators file's attributes can reach, for benchmarks)
    attribute_propensity: float = 0.0

    @property
    def level(self) -> int:
        return creator_level(self.followers)

    @property
    def categories(self) -> tuple[str, ...]:
        return (self.category, *self.extra_categories)

    def last_active(self, today: date) -> date:
        return today - timedelta(days=self.inactive_days)

    def avatar_url(self) -> str:
        h = _digest("avatar", self.index, size=16).hex()
        return f"https://p16-sign-va.tiktokcdn.com/tos-maliva-avt-0068/{h}~c5_720x720.webp"

    def showcase_chance(self, commission_rate: int = REFERENCE_COMMISSION) -> float:
        """The chance of a showcase for an invitation at this commission (hundredths of a percent)."""
        p = min(max(self.propensity, 1e-6), 1 - 1e-6)
        return _sigmoid(math.log(p / (1 - p)) + 1.5 * (commission_rate - REFERENCE_COMMISSION) / 10_000)

    def delay_model(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """(minimum, mean of the exponential part) of the delay to a showcase, then from it to content (days)."""
        return (SHOWCASE_MIN_DELAY_DAYS, self.showcase_delay_days), (CONTENT_MIN_DELAY_DAYS, CONTENT_MEAN_DELAY_DAYS)

    def expected_gmv(self, days: float = 28.0, price: float = REFERENCE_PRICE,
                     commission_rate: int = REFERENCE_COMMISSION) -> float:
        """Expected GMV (USD) from one invitation over `days`, by the same model the sandbox draws orders from
        (cancellations, refunds and second order lines left out): the oracle a matching benchmark ranks by.
        The sandbox prices a product by its id: pass `SandboxState.product_price(product_id)`."""
        if days <= 0:
            return 0.0
        (a_s, m_s), (a_c, m_c) = self.delay_model()
        showcase_time = _expected_time_after(days - a_s, m_s)
        content_time = _expected_time_after_two(days - a_s - a_c, m_s, m_c)
        rate_s = SHOWCASE_ORDER_SHARE * self.order_rate
        orders = rate_s * showcase_time + self.content_propensity * (self.order_rate - rate_s) * content_time
        return self.showcase_chance(commission_rate) * orders * price * MEAN_QUANTITY


def _expected_time_after(span: float, mean: float) -> float:
    """E[max(0, span - X)] for X exponential with this mean."""
    if span <= 0:
        return 0.0
    return span - mean * (1 - math.exp(-span / mean))


def _expected_time_after_two(span: float, m1: float, m2: float) -> float:
    """E[max(0, span - X - Y)] for independent exponentials X, Y with these means."""
    if span <= 0:
        return 0.0
    if abs(m1 - m2) < 1e-6:
        m2 = m1 * 1.0001
    return span - (m1 * m1 * (1 - math.exp(-span / m1)) - m2 * m2 * (1 - math.exp(-span / m2))) / (m1 - m2)


def make_creator(seed: int, index: int, namespace: str = DEFAULT_NAMESPACE, *, given_id: str | None = None) -> Creator:
    """Creator `index`, deterministic in (seed, index). `given_id` names a creator the sandbox did not issue
    (accepted when `unknown_creators` is "accept")."""
    rng = random.Random(f"{seed}:{index}")
    followers = int(min(5e7, max(50, math.exp(rng.gauss(9.5, 1.8)))))
    category = CATEGORIES[rng.randrange(len(CATEGORIES))]
    extra = tuple(c for c in CATEGORIES if c != category and rng.random() < 0.12)[:2]
    engagement = round(min(0.3, max(0.002, rng.lognormvariate(math.log(0.04), 0.6))), 4)
    gmv = round(max(0.0, rng.lognormvariate(math.log(max(followers, 10) * 0.05), 1.2)), 2)
    inactive_days = int(rng.expovariate(1 / 20))
    video_share = round(rng.uniform(0.4, 1.0), 2)
    units = int(gmv / max(3.0, rng.uniform(8, 40)))
    avg_views = int(followers * rng.uniform(0.02, 0.4))
    live_uv = int(followers * rng.uniform(0.0, 0.05))
    precise = rng.random() < 0.6
    ages = tuple(sorted(rng.sample(AGE_RANGES, 3), key=AGE_RANGES.index))
    gender = "FEMALE" if rng.random() < (0.75 if category in ("beauty", "fashion", "baby") else 0.45) else "MALE"
    gender_pct = rng.randint(5_100, 9_200)
    brands = int(rng.expovariate(1 / 12))
    # Smaller, engaged, recently active creators who already sell answer more; big accounts rarely do.
    attribute_logit = (
        -0.9
        + 16 * (engagement - 0.04)
        - 0.35 * (math.log10(max(followers, 10)) - 4)
        - 0.045 * inactive_days
        + (0.6 if category in ("beauty", "fashion") else 0.0)
        + 0.3 * math.log10((gmv + 10) / (0.05 * followers + 10))
    )
    logit = attribute_logit + rng.gauss(0, 0.7)
    content_logit = -0.3 + 18 * (engagement - 0.04) - 0.03 * inactive_days + rng.gauss(0, 0.5)
    order_rate = min(20.0, max(0.02, gmv / 30 / REFERENCE_PRICE * 0.25) * rng.lognormvariate(0, 0.6))
    delay = min(10.0, 0.6 + 0.06 * inactive_days) * rng.uniform(0.6, 1.4)
    word_a = _WORDS_A[rng.randrange(len(_WORDS_A))]
    word_b = _WORDS_B[rng.randrange(len(_WORDS_B))]
    username = f"{word_a}{word_b}_{_base36(abs(index))}"
    nickname = f"{_FIRST[rng.randrange(len(_FIRST))]} {word_a.capitalize()}"
    return Creator(
        index=index, open_id=given_id or open_id(index, namespace),
        user_id=given_id if given_id else legacy_id(index), username=username, nickname=nickname,
        followers=followers, gmv_30d=gmv, video_share=video_share, units_sold=units, category=category,
        extra_categories=extra, engagement_rate=engagement, inactive_days=inactive_days, avg_video_views=avg_views,
        avg_live_uv=live_uv, shares_precise_data=precise, age_ranges=ages, major_gender=gender,
        major_gender_pct=gender_pct, brand_collaborations=brands,
        propensity=round(_sigmoid(logit), 4), content_propensity=round(_sigmoid(content_logit), 4),
        order_rate=round(order_rate, 4), showcase_delay_days=round(delay, 3),
        attribute_propensity=round(_sigmoid(attribute_logit), 4),
    )


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


# --- the marketplace's answers, shaped as the 202508 specs say ---------------------------------------------
def _money(amount: float, currency: str) -> dict[str, str]:
    return {"currency": currency, "amount": f"{amount:.2f}"}


GMV_RANGES = {  # enum -> [lo, hi] in USD (the spec's ranges are inclusive at both ends)
    "GMV_RANGE_0_100": (0, 100), "GMV_RANGE_100_1000": (100, 1_000), "GMV_RANGE_1000_10000": (1_000, 10_000),
    "GMV_RANGE_10000_AND_ABOVE": (10_000, math.inf),
}
UNITS_SOLD_RANGES = {
    "UNITS_SOLD_RANGE_0_10": (0, 10), "UNITS_SOLD_RANGE_10_100": (10, 100), "UNITS_SOLD_RANGE_100_1000": (100, 1_000),
    "UNITS_SOLD_RANGE_1000_AND_ABOVE": (1_000, math.inf),
    "UNITS_SOLD_RANGE_OVER_1000": (1_000, math.inf),  # the spelling of the spec's request example
}


def _bucket(value: float, ranges: dict[str, tuple[float, float]]) -> tuple[float, float]:
    for lo, hi in ranges.values():
        if lo <= value < hi:
            return lo, hi
    return 0, 0


def _range_view(value: float, ranges: dict[str, tuple[float, float]], currency: str | None) -> dict[str, Any]:
    lo, hi = _bucket(value, ranges)
    money = currency is not None
    top = f"{'$' if money else ''}{int(lo)}+" if hi == math.inf else f"{'$' if money else ''}{int(lo)}-" \
        f"{'$' if money else ''}{int(hi)}"
    if money:
        return {"currency": currency, "minimum_amount": f"{lo:.2f}",
                "maximum_amount": "" if hi == math.inf else f"{hi:.2f}", "formatted_range": top}
    return {"minimum_amount": int(lo), "maximum_amount": -1 if hi == math.inf else int(hi), "formatted_range": top}


def _gender_share(c: Creator, gender: str) -> int:
    return c.major_gender_pct if c.major_gender == gender else 10_000 - c.major_gender_pct


def search_view(c: Creator, region: str, currency: str) -> dict[str, Any]:
    """One entry of `creators[]` in marketplace search."""
    view: dict[str, Any] = {
        "username": c.username,
        "nickname": c.nickname,
        "avatar": {"url": c.avatar_url()},
        "selection_region": region,
        "category_ids": [CATEGORY_IDS[x] for x in c.categories],
        "avg_ec_live_uv": c.avg_live_uv,
        "avg_ec_video_view_count": c.avg_video_views,
        "follower_count": c.followers,
        "units_sold_range": _range_view(c.units_sold, UNITS_SOLD_RANGES, None),
        "top_follower_demographics": {
            "age_ranges": list(c.age_ranges),
            "major_gender": {"gender": c.major_gender, "percentage": c.major_gender_pct},
        },
        "creator_open_id": c.open_id,
    }
    if c.shares_precise_data:
        view["gmv"] = _money(c.gmv_30d, currency)
        view["video_gmv"] = _money(c.gmv_30d * c.video_share, currency)
        view["live_gmv"] = _money(c.gmv_30d * (1 - c.video_share), currency)
    else:
        view["gmv_range"] = _range_view(c.gmv_30d, GMV_RANGES, currency)
    return view


def performance_view(c: Creator, region: str, currency: str) -> dict[str, Any]:
    """`data.creator` of the creator performance endpoint."""
    rng = random.Random(f"perf:{c.index}")
    video_count = max(1, int(rng.expovariate(1 / 30)))
    live_count = int(rng.expovariate(1 / 6))
    shares = [round(rng.uniform(0.5, 0.9), 4)] if c.extra_categories else [1.0]
    if c.extra_categories:
        rest = 1 - shares[0]
        shares += [round(rest / len(c.extra_categories), 4)] * len(c.extra_categories)
    view: dict[str, Any] = {
        "username": c.username,
        "nickname": c.nickname,
        "avatar": {"url": c.avatar_url()},
        "selection_region": region,
        "bio_description": f"{c.category.capitalize()} finds and honest reviews",
        "follower_count": c.followers,
        "profile_tt_uri": f"aweme://user/profile/{c.user_id}",
        "category_ids": [CATEGORY_IDS[x] for x in c.categories],
        "top_collaborated_brand_ids": [str(8_300_000 + rng.randrange(100_000))
                                       for _ in range(min(10, c.brand_collaborations))],
        "brand_collaboration_count": c.brand_collaborations,
        "units_sold_range": _range_view(c.units_sold, UNITS_SOLD_RANGES, None),
        "ec_live_engagement_rate": str(int(c.engagement_rate * 0.6 * 10_000)),
        "ec_video_engagement_rate": str(int(c.engagement_rate * 10_000)),
        "category_gmv_distribution": [{"category_id": CATEGORY_IDS[x], "value": f"{s:.4f}"}
                                      for x, s in zip(c.categories, shares)],
        "content_gmv_distribution": [{"content_type": "VIDEO", "value": f"{c.video_share:.4f}"},
                                     {"content_type": "LIVE", "value": f"{1 - c.video_share:.4f}"}],
        "product_original_price_range": {"currency": currency, "minimum_amount": "4.99", "maximum_amount": "89.00"},
        "promoted_product_num": int(rng.expovariate(1 / 40)),
        "ec_live_count": live_count,
        "ec_video_count": video_count,
        "avg_ec_video_play_count": c.avg_video_views,
        "avg_ec_live_view_count": c.avg_live_uv * 3,
        "avg_ec_live_like_count": int(c.avg_live_uv * c.engagement_rate * 5),
        "avg_ec_live_comment_count": int(c.avg_live_uv * c.engagement_rate),
        "avg_ec_live_share_count": int(c.avg_live_uv * c.engagement_rate * 0.3),
        "avg_ec_video_like_count": int(c.avg_video_views * c.engagement_rate),
        "avg_ec_video_comment_count": int(c.avg_video_views * c.engagement_rate * 0.1),
        "avg_ec_video_share_count": int(c.avg_video_views * c.engagement_rate * 0.05),
        "follower_gender": [{"key": key, "value": f"{_gender_share(c, gender) / 10_000:.4f}"}
                            for key, gender in (("Female", "FEMALE"), ("Male", "MALE"))],
        "follower_age": [{"key": a.removeprefix("AGE_RANGE_").replace("_AND_ABOVE", "+").replace("_", "-"),
                          "value": f"{v:.4f}"} for a, v in zip(c.age_ranges, (0.45, 0.35, 0.2))],
        "pps": f"{rng.uniform(3.0, 5.0):.1f}",
        "rating": f"{rng.uniform(3.0, 5.0):.1f}",
    }
    if c.shares_precise_data:
        gpm = c.gmv_30d / max(1, c.avg_video_views * video_count) * 1000
        view.update({
            "units_sold": c.units_sold,
            "gmv": _money(c.gmv_30d, currency),
            "video_gmv": _money(c.gmv_30d * c.video_share, currency),
            "live_gmv": _money(c.gmv_30d * (1 - c.video_share), currency),
            "gpm": _money(gpm, currency),
            "video_gpm": _money(gpm * c.video_share, currency),
            "live_gpm": _money(gpm * (1 - c.video_share), currency),
            "avg_commission_rate": 1_000 + int(rng.random() * 1_500),
        })
    else:
        view["gmv_range"] = _range_view(c.gmv_30d, GMV_RANGES, currency)
    return view


class BadFilter(ValueError):
    """A marketplace search filter the spec does not allow (answered 98001004)."""


def _filter(body: dict[str, Any]) -> Any:
    """A predicate on creators from a marketplace search body; BadFilter for a malformed one."""
    keyword = body.get("keyword")
    if keyword is not None and not isinstance(keyword, str):
        raise BadFilter("keyword must be a string")
    keyword = (keyword or "").lower()
    demo = body.get("follower_demographics") or {}
    if not isinstance(demo, dict):
        raise BadFilter("follower_demographics must be an object")
    count = demo.get("count_range") or {}
    if not isinstance(count, dict):
        raise BadFilter("follower_demographics.count_range must be an object")
    ge, le = count.get("count_ge"), count.get("count_le")
    for name, v in (("count_ge", ge), ("count_le", le)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise BadFilter(f"follower_demographics.count_range.{name} must be an integer")
    if ge is not None and ge < 0:
        raise BadFilter("follower_demographics.count_range.count_ge must be >= 0")
    lo = ge or 0
    hi = math.inf if le is None or le < 0 else le
    ages = demo.get("age_ranges") or []
    if not isinstance(ages, list) or any(a not in AGE_RANGES for a in ages):
        raise BadFilter(f"follower_demographics.age_ranges must be among {', '.join(AGE_RANGES)}")
    gender = demo.get("gender_distribution") or {}
    if not isinstance(gender, dict):
        raise BadFilter("follower_demographics.gender_distribution must be an object")
    want_gender = gender.get("gender")
    if want_gender is not None and want_gender not in ("MALE", "FEMALE"):
        raise BadFilter("follower_demographics.gender_distribution.gender must be MALE or FEMALE")
    pct = gender.get("percentage_ge") or 0
    if not isinstance(pct, int) or isinstance(pct, bool):
        raise BadFilter("follower_demographics.gender_distribution.percentage_ge must be an integer")

    def spans(field: str, table: dict[str, tuple[float, float]]) -> list[tuple[float, float]]:
        values = body.get(field) or []
        if not isinstance(values, list) or any(v not in table for v in values):
            raise BadFilter(f"{field} must be among {', '.join(table)}")
        return [table[v] for v in values]

    gmv_spans = spans("gmv_ranges", GMV_RANGES)
    unit_spans = spans("units_sold_ranges", UNITS_SOLD_RANGES)

    def keep(c: Creator) -> bool:
        if keyword and keyword not in c.username.lower() and keyword not in c.nickname.lower():
            return False
        if not lo <= c.followers <= hi:
            return False
        if ages and not set(ages) & set(c.age_ranges):
            return False
        if want_gender:
            if _gender_share(c, want_gender) < pct:
                return False
        if gmv_spans and not any(a <= c.gmv_30d <= b for a, b in gmv_spans):
            return False
        return not unit_spans or any(a <= c.units_sold <= b for a, b in unit_spans)

    return keep


def filters_fingerprint(body: dict[str, Any]) -> str:
    relevant = {k: body.get(k) for k in ("keyword", "follower_demographics", "gmv_ranges", "units_sold_ranges")}
    return hashlib.blake2b(json.dumps(relevant, sort_keys=True).encode(), digest_size=12).hexdigest()


class Marketplace:
    """The creators of one sandbox: lookup by any id, the hidden truth for tests, and marketplace search."""

    def __init__(self, seed: int = 7, size: int = 5_000, today: date | None = None,
                 namespace: str = DEFAULT_NAMESPACE) -> None:
        self.seed = seed
        self.size = size
        self.namespace = namespace
        self.today = today or date(2026, 1, 1)
        self._cache: dict[int, Creator] = {}
        self._unknown: dict[str, Creator] = {}
        self._rankings: OrderedDict[tuple[int, str], list[int]] = OrderedDict()

    # --- identity ------------------------------------------------------------------------------------
    def creator(self, index: int) -> Creator:
        c = self._cache.get(index)
        if c is None:
            c = self._cache[index] = make_creator(self.seed, index, self.namespace)
        return c

    def by_open_id(self, value: str) -> Creator | None:
        index = index_of_open_id(value, self.namespace)
        return None if index is None else self.creator(index)

    def by_user_id(self, value: str) -> Creator | None:
        index = index_of_legacy_id(value)
        return None if index is None else self.creator(index)

    def resolve(self, value: str) -> Creator | None:
        """A creator by open id or legacy id (tests and admin routes take either)."""
        return self.by_open_id(value) or self.by_user_id(value)

    def stranger(self, value: str) -> Creator:
        """A creator the sandbox never issued, accepted as is (its attributes from the id's hash)."""
        c = self._unknown.get(value)
        if c is None:
            index = -1 - int.from_bytes(_digest("stranger", value, size=7), "big")
            c = self._unknown[value] = make_creator(self.seed, index, self.namespace, given_id=value)
        return c

    # --- the hidden truth (tests, benchmarks, the oracle) ---------------------------------------------
    def get(self, cid: str) -> Creator:
        c = self.resolve(cid)
        if c is None:
            raise KeyError(cid)
        return c

    def propensity(self, cid: str, commission_rate: int = REFERENCE_COMMISSION) -> float:
        """The true chance that this creator adds an invitation's products to the showcase."""
        return self.get(cid).showcase_chance(commission_rate)

    def expected_gmv(self, cid: str, days: float = 28.0, price: float = REFERENCE_PRICE,
                     commission_rate: int = REFERENCE_COMMISSION) -> float:
        return self.get(cid).expected_gmv(days, price, commission_rate)

    def is_ineligible(self, cid: str, permille: int) -> bool:
        c = self.resolve(cid)
        index = c.index if c else cid
        return unit(self.seed, "ineligible", index) * 1000 < permille

    # --- search ----------------------------------------------------------------------------------------
    def ranking(self, body: dict[str, Any], salt: int) -> list[int]:
        """The creators matching the filters, ranked with this salt (one salt = one `search_key`)."""
        key = (salt, filters_fingerprint(body))
        found = self._rankings.get(key)
        if found is not None:
            self._rankings.move_to_end(key)
            return found
        keep = _filter(body)
        scored = []
        for i in range(self.size):
            c = self.creator(i)
            if keep(c):
                # relevance: reach and sales, shuffled by the salt so a new search ranks differently
                noise = -math.log(-math.log(max(1e-12, unit(self.seed, "rank", salt, i))))
                scored.append((0.4 * math.log10(c.followers + 10) + 0.3 * math.log10(c.gmv_30d + 10) + noise, i))
        scored.sort(reverse=True)
        found = [i for _, i in scored]
        self._rankings[key] = found
        while len(self._rankings) > 32:
            self._rankings.popitem(last=False)
        return found


def write_creators_file(path: str, count: int, *, seed: int = 7, start: int = 0, fmt: str = "csv",
                        today: date | None = None, namespace: str = DEFAULT_NAMESPACE) -> None:
    """A creators file of sandbox creators `start .. start+count-1`, as an operator would export from creator
    search: `creator_id` is the Creator Open ID, `creator_user_id` the legacy numeric id."""
    market = Marketplace(seed=seed, size=0, today=today or date.today(), namespace=namespace)
    rows = []
    for i in range(start, start + count):
        c = market.creator(i)
        rows.append({
            "creator_id": c.open_id, "creator_user_id": c.user_id, "handle": c.username, "followers": c.followers,
            "gmv_30d": f"{c.gmv_30d:.2f}", "category": c.category, "engagement_rate": c.engagement_rate,
            "last_active": c.last_active(market.today).isoformat(),
        })
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if fmt == "jsonl":
            for r in rows:
                fh.write(json.dumps(r) + "\n")
        else:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["creator_id"])
            writer.writeheader()
            writer.writerows(rows)
