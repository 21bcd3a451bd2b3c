"""What creators do after an invitation, over simulated time: a showcase (or nothing: there is no decline),
maybe content, then affiliate orders whose status and refunds change later.

Everything one invitation will ever do is drawn when it is created (a few hashes), so counts at any moment are
a comparison of times. Orders are the one unbounded stream: a heap holds each showcased invitation's next order
time and `OrderBook.catch_up(now)` draws only the orders due since the last call, in time order.
"""

from __future__ import annotations

import heapq
import itertools
import math
from bisect import bisect_left
from dataclasses import dataclass, field

from trendio_cli.sandbox.marketplace import (
    QUANTITIES,
    SHOWCASE_ORDER_SHARE,
    Creator,
    unit,
)

DAY = 86_400.0
CANCEL_SHARE = 0.05  # orders cancelled before delivery
REFUND_SHARE = 0.08  # delivered orders refunded later (in full or in part)
SETTLE_DAYS = 7.0  # an order is COMPLETED this long after delivery (the return window)
ORDER_ID_BASE = 576_000_000_000_000_000


def _exp(u: float, mean: float) -> float:
    return -math.log(max(1e-12, 1 - u)) * mean


@dataclass(slots=True)
class Invitation:
    """One creator in one collaboration, with everything it will do (times in simulated Unix seconds)."""

    collaboration_id: str
    creator: Creator
    invited_at: float
    end_time: float
    showcase_at: float | None = None
    showcase_products: tuple[str, ...] = ()
    content_at: float | None = None
    content_products: tuple[str, ...] = ()
    content_type: str = "VIDEO"

    def showcase_count(self, now: float) -> int:
        return len(self.showcase_products) if self.showcase_at is not None and self.showcase_at <= now else 0

    def content_count(self, now: float) -> int:
        return len(self.content_products) if self.content_at is not None and self.content_at <= now else 0


def plan_invitation(seed: int, creator: Creator, collaboration_id: str, products: list[tuple[str, int]],
                    invited_at: float, end_time: float) -> Invitation:
    """Draw what `creator` will do with this collaboration (products are (id, commission rate) pairs)."""
    inv = Invitation(collaboration_id, creator, invited_at, end_time)
    key = (seed, collaboration_id, creator.index)
    rate = sum(r for _, r in products) / max(1, len(products))
    if unit(*key, "showcase") >= creator.showcase_chance(int(rate)):
        return inv
    (a_s, m_s), (a_c, m_c) = creator.delay_model()
    showcase_at = invited_at + (a_s + _exp(unit(*key, "showcase delay"), m_s)) * DAY
    if showcase_at >= end_time:
        return inv
    ids = [p for p, _ in products]
    first = ids[int(unit(*key, "first product") * len(ids))]
    chosen = tuple(p for j, p in enumerate(ids) if p == first or unit(*key, "adds", j) < 0.7)
    inv.showcase_at, inv.showcase_products = showcase_at, chosen
    if unit(*key, "content") >= creator.content_propensity:
        return inv
    content_at = showcase_at + (a_c + _exp(unit(*key, "content delay"), m_c)) * DAY
    if content_at >= end_time:
        return inv
    lead = chosen[int(unit(*key, "lead product") * len(chosen))]
    inv.content_at = content_at
    inv.content_products = tuple(p for j, p in enumerate(chosen) if p == lead or unit(*key, "features", j) < 0.6)
    inv.content_type = "LIVE" if unit(*key, "live") < 1 - creator.video_share else "VIDEO"
    return inv


@dataclass(slots=True)
class OrderLine:
    """One SKU of an order."""

    product_id: str
    price: float
    quantity: int
    commission_rate: int
    content_type: str
    content_id: str


@dataclass(slots=True)
class Order:
    id: str
    shop: str
    collaboration_id: str
    creator: Creator
    create_time: float
    lines: list[OrderLine]
    cancel_at: float | None = None
    delivery_time: float | None = None
    settle_at: float | None = None
    refund_at: float | None = None
    refund_quantity: int = 0  # of the first line

    def status(self, now: float) -> str:
        if self.cancel_at is not None:
            return "CANCELLED" if now >= self.cancel_at else "PROCESSING"
        full_refund = self.refund_quantity and self.refund_quantity >= self.lines[0].quantity and len(self.lines) == 1
        if full_refund and self.refund_at is not None and now >= self.refund_at:
            return "DEDUCTED"
        if self.settle_at is not None and now >= self.settle_at:
            return "COMPLETED"
        return "PROCESSING"

    def refunded(self, now: float) -> int:
        return self.refund_quantity if self.refund_at is not None and now >= self.refund_at else 0

    def gmv(self, now: float) -> float:
        """What the buyer finally paid (refunds and cancellations deducted)."""
        if self.cancel_at is not None and now >= self.cancel_at:
            return 0.0
        refunded = self.refunded(now)
        return sum(line.price * (line.quantity - (refunded if i == 0 else 0)) for i, line in enumerate(self.lines))


@dataclass(order=True, slots=True)
class _Due:
    at: float
    seq: int
    stream: _Stream = field(compare=False)


@dataclass(slots=True)
class _Stream:
    """The orders of one showcased invitation: a Poisson process, faster once content is up."""

    shop: str
    invitation: Invitation
    commission: dict[str, int]
    prices: dict[str, float]
    count: int = 0


class OrderBook:
    """Every affiliate order drawn so far, indexed by shop and by collaboration in creation-time order."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self.by_shop: dict[str, list[Order]] = {}
        self.by_collaboration: dict[str, list[Order]] = {}
        self._times: dict[int, list[float]] = {}  # id(list of orders) -> their creation times, for bisecting
        self.total = 0

    def follow(self, shop: str, inv: Invitation, commission: dict[str, int], prices: dict[str, float]) -> None:
        """Start drawing orders for a showcased invitation (from its showcase on)."""
        if inv.showcase_at is None:
            return
        stream = _Stream(shop, inv, commission, prices)
        first = self._next_time(stream, inv.showcase_at)
        if first is not None:
            heapq.heappush(self._heap, _Due(first, next(self._seq), stream))

    def _next_time(self, s: _Stream, after: float) -> float | None:
        inv = s.invitation
        c = inv.creator
        e = _exp(unit(self.seed, "gap", inv.collaboration_id, c.index, s.count), 1.0)  # in units of rate x time
        slow = SHOWCASE_ORDER_SHARE * c.order_rate / DAY
        fast = c.order_rate / DAY
        t = after
        if inv.content_at is None or t >= inv.content_at:
            t += e / (fast if inv.content_at is not None else slow)
        elif t + e / slow < inv.content_at:
            t += e / slow
        else:
            t = inv.content_at + (e - (inv.content_at - t) * slow) / fast
        return t if t < inv.end_time else None

    def catch_up(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0].at <= now:
            due = heapq.heappop(heap)
            self._draw(due.stream, due.at)
            due.stream.count += 1
            nxt = self._next_time(due.stream, due.at)
            if nxt is not None:
                due.at, due.seq = nxt, next(self._seq)
                heapq.heappush(heap, due)

    def _draw(self, s: _Stream, at: float) -> None:
        inv = s.invitation
        key = (self.seed, "order", inv.collaboration_id, inv.creator.index, s.count)
        live = inv.content_at is not None and at >= inv.content_at
        featured = inv.content_products if live else inv.showcase_products
        content_type = inv.content_type if live else "SHOP"

        def line(j: int) -> OrderLine:
            pid = featured[int(unit(*key, "product", j) * len(featured))]
            quantity = _draw_quantity(unit(*key, "quantity", j))
            content_id = "" if content_type == "SHOP" else str(7_490_000_000_000_000_000 + int(
                unit(self.seed, "content", inv.collaboration_id, inv.creator.index, pid) * 10**15))
            return OrderLine(pid, s.prices[pid], quantity, s.commission[pid], content_type, content_id)

        lines = [line(0)]
        if len(featured) > 1 and unit(*key, "second line") < 0.15:
            second = line(1)
            if second.product_id != lines[0].product_id:
                lines.append(second)
        order = Order(str(ORDER_ID_BASE + next(self._ids)), s.shop, inv.collaboration_id, inv.creator, at, lines)
        if unit(*key, "cancel") < CANCEL_SHARE:
            order.cancel_at = at + (0.05 + 0.9 * unit(*key, "cancel at")) * DAY
        else:
            order.delivery_time = at + (1.5 + 3.5 * unit(*key, "delivery")) * DAY
            order.settle_at = order.delivery_time + SETTLE_DAYS * DAY
            if unit(*key, "refund") < REFUND_SHARE:
                order.refund_at = order.delivery_time + (0.5 + 11.5 * unit(*key, "refund at")) * DAY
                first = lines[0].quantity
                order.refund_quantity = first if unit(*key, "refund all") < 0.7 else max(1, first - 1)
        for orders in (self.by_shop.setdefault(s.shop, []),
                       self.by_collaboration.setdefault(inv.collaboration_id, [])):
            orders.append(order)
            self._times.setdefault(id(orders), []).append(at)
        self.total += 1

    def select(self, shop: str, collaboration_id: str | None, ge: float, lt: float) -> list[Order]:
        """Orders created in [ge, lt), oldest first (call `catch_up` first)."""
        orders = self.by_collaboration.get(collaboration_id, []) if collaboration_id else self.by_shop.get(shop, [])
        if not orders or orders[0].shop != shop:
            return []
        times = self._times[id(orders)]
        return orders[bisect_left(times, ge):bisect_left(times, lt)]


def _draw_quantity(u: float) -> int:
    total = 0.0
    for quantity, p in QUANTITIES:
        total += p
        if u < total:
            return quantity
    return QUANTITIES[-1][0]
