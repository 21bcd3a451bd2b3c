"""What the dashboards and the report show, computed from the ledger alone (so they can watch a run
in another terminal or on a schedule). Plain data: the CLI draws it, `--json` prints it."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from trendio_cli.ledger import Ledger, iso

if TYPE_CHECKING:
    from trendio_cli.campaign import Limits

TAKEN = ("showcased", "content")
INVITED = ("sent", "showcased", "content", "expired")
NOT_SENT = ("conflict", "ineligible", "failed")


def requests_per_second(requests: int, span_s: float) -> float:
    """Requests over the whole seconds a sending span touches. The platform's limit is per second, so a
    burst of a few requests is that many in one second, never a rate above the limit."""
    if requests <= 0:
        return 0.0
    return requests / (math.floor(max(0.0, span_s)) + 1)


def peak_in_one_second(send_times: Sequence[float]) -> int:
    """The most requests that left within any one second (sorted times): what the platform's limit counts."""
    peak, first = 0, 0
    for last, t in enumerate(send_times):
        while t - send_times[first] >= 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def send_rate(send_times: Sequence[float]) -> dict[str, Any]:
    """Requests per second over the sending span (first request out to last), and the busiest second."""
    span = send_times[-1] - send_times[0] if send_times else 0.0
    return {"requests": len(send_times), "sending_s": round(span, 3),
            "requests_per_second": round(requests_per_second(len(send_times), span), 2),
            "peak_in_one_second": peak_in_one_second(send_times)}


def ops_snapshot(ledger: Ledger, now: datetime | None = None, minutes: int = 10,
                 limits: Limits | None = None) -> dict[str, Any]:
    """API usage, health and runs: for operators, live."""
    # imported here, not with the module: the answers (httpx) and the campaign model (pydantic, YAML) are a
    # fifth of a second's start-up that the merchant dashboard and the report never use
    from trendio_cli.api.answers import Outcome
    from trendio_cli.campaign import Limits
    from trendio_cli.quota import QuotaDay, latest_limits

    error_outcomes = {o.value for o in Outcome} - {Outcome.OK.value}
    # answers that ask for the request again (what execute counts as retries)
    retry_outcomes = (Outcome.RATE_LIMITED.value, Outcome.TRANSIENT.value)
    now = now or datetime.now(timezone.utc)
    given = limits
    limits = limits or Limits()
    day = QuotaDay.at(now, limits.quota_timezone)
    since_day = iso(day.starts_at.timestamp())
    since_recent = iso((now - timedelta(minutes=minutes)).timestamp())
    per_brand: dict[str, dict[str, Any]] = defaultdict(lambda: {"by_endpoint": defaultdict(int), "errors": 0})
    errors_by_code: dict[str, int] = defaultdict(int)
    errors_by_class: dict[str, int] = defaultdict(int)
    retries = 0
    for brand, endpoint, outcome, code, n in ledger.calls_since(since_day):
        b = per_brand[brand]
        b["by_endpoint"][endpoint] += n
        if outcome in retry_outcomes:
            retries += n
        if outcome in error_outcomes:
            b["errors"] += n
            errors_by_class[outcome] += n
            errors_by_code[str(code) if code is not None else "no code"] += n
    brands = sorted(set(per_brand) | set(ledger.brands()))
    pending = ledger.pending_by_brand()
    locks = {row["brand"]: row for row in ledger.locks()}
    rows = []
    for brand in brands:
        # each brand's quota as `quota` shows it: the limits its latest campaign ran under, on its quota day
        own = given or latest_limits(ledger.campaign_specs(brand))[1]
        used = ledger.calls_used(brand, QuotaDay.at(now, own.quota_timezone).day)
        b = per_brand[brand]
        rows.append({"brand": brand, "used": used, "left": max(0, own.daily_requests - used),
                     "limit": own.daily_requests, "by_endpoint": dict(b["by_endpoint"]), "errors": b["errors"],
                     "pending": pending.get(brand, 0), "lock": locks.get(brand)})
    buckets = ledger.calls_per_bucket(since_recent)
    rate = [{"at": t + "0", "requests_per_second": round(n / 10, 2)} for t, n in buckets]
    # the busiest second, measured as execute measures its run's: from when each request left
    peak = peak_in_one_second(ledger.send_times(since_iso=since_recent))
    return {
        "at": now.isoformat(), "quota_day": day.day, "resets_at": day.resets_at.isoformat(), "brands": rows,
        "rate": rate, "peak_requests_per_second": float(peak), "rate_limit": limits.requests_per_second,
        "errors_by_code": dict(errors_by_code), "errors_by_class": dict(errors_by_class),
        "retries_today": retries, "runs": ledger.runs(limit=8),
    }


def merchant_snapshot(ledger: Ledger, brand: str | None = None, campaign: str | None = None,
                      tier_order: Sequence[str] = ()) -> dict[str, Any]:
    """What a client pays for, per campaign and tier: invitations, showcases, content, orders, GMV and
    commission. Tiers in the campaign's order: as `tier_order` gives it, else by their creators' followers
    (tiers match by followers, first match wins). API usage is the ops dashboard's."""
    table: dict[tuple[str, str, str], dict[str, Any]] = {}

    def row_of(key: tuple[str, str, str]) -> dict[str, Any]:
        return table.setdefault(key, {"tier": key[2].strip(), "states": defaultdict(int),
                                      "sales": [0, 0.0, 0.0, 0.0]})

    for b, c, tier, state, n in ledger.funnel(brand, campaign):
        # one row for the whole campaign ("all", sorted first) and one per tier
        for key in ((b, c, " all"), (b, c, tier or "-")):
            row_of(key)["states"][state] += n
    for b, c, tier, orders, gmv, estimated, actual in ledger.sales(brand, campaign):
        for key in ((b, c, " all"), (b, c, tier or "-")):
            sales = row_of(key)["sales"]
            for i, v in enumerate((orders, gmv, estimated, actual)):
                sales[i] += v
    active_days = ledger.active_days(brand, campaign)
    fewest = ledger.tier_followers([k for k in table if k[2] != " all"]) if not tier_order else {}

    def order(key: tuple[str, str, str]) -> tuple[Any, ...]:
        b, c, tier = key
        if tier == " all":
            return (b, c, 0)
        if tier in tier_order:
            return (b, c, 1, list(tier_order).index(tier))
        return (b, c, 1, len(tier_order), -fewest.get((b, c, tier), -1), tier)

    rows = []
    for (b, c, _), row in sorted(table.items(), key=lambda kv: order(kv[0])):
        st = row["states"]
        invited = sum(st.get(s, 0) for s in INVITED)
        taken = sum(st.get(s, 0) for s in TAKEN)
        orders, gmv, estimated, actual = row["sales"]
        out = {
            "brand": b, "campaign": c, "tier": row["tier"], "invited": invited, "showcased": taken,
            "content": st.get("content", 0), "expired": st.get("expired", 0), "waiting": st.get("sent", 0),
            "pending": st.get("pending", 0), "not_sent": {s: st[s] for s in NOT_SENT if st.get(s)},
            "showcase_rate": round(taken / invited, 4) if invited else None,
            "orders": int(orders), "gmv": round(gmv, 2), "commission_estimated": round(estimated, 2),
            "commission_actual": round(actual, 2),
            "gmv_per_invitation": round(gmv / invited, 2) if invited else None,
        }
        if row["tier"] == "all":
            active = active_days.get((b, c), 0)
            out["invitations_per_day"] = round(invited / active, 1) if active else 0.0
        rows.append(out)
    top = {by: [{"id": i, "name": name, "orders": o, "gmv": round(g, 2), "commission_estimated": round(e, 2),
                 "commission_actual": round(a, 2)} for i, name, o, g, e, a in ledger.top_sellers(by, brand, campaign)]
           for by in ("creator", "product")}
    return {"brand": brand, "campaign": campaign, "rows": rows, "top_creators": top["creator"],
            "top_products": top["product"]}


def report_data(ledger: Ledger, brand: str | None, campaign: str | None,
                tier_order: Sequence[str] = ()) -> dict[str, Any]:
    """Everything the merchant report draws: the funnel per tier, the top creators and products by GMV, and
    every day of the period covered on a real date axis (days without activity are there, at zero)."""
    series: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for d, what, n in ledger.by_day(brand, campaign):
        series[d][what] += n
    for d, orders, gmv, estimated, actual in ledger.sales_by_day(brand, campaign):
        series[d]["orders"] += orders
        series[d]["gmv"] += round(gmv, 2)
        series[d]["commission"] += round(actual or estimated, 2)
    merchant = merchant_snapshot(ledger, brand, campaign, tier_order)
    totals = next((r for r in merchant["rows"] if r["tier"] == "all"), None)
    days = []
    if series:
        first, last = min(series), max(series)
        day = date.fromisoformat(first)
        while day.isoformat() <= last:
            values = series.get(day.isoformat(), {})
            days.append({"date": day.isoformat(), **{k: values.get(k, 0) for k in DAY_SERIES}})
            day += timedelta(days=1)
    return {
        "brand": brand, "campaign": campaign, "generated_at": datetime.now(timezone.utc).isoformat(),
        "period": {"from": days[0]["date"], "to": days[-1]["date"], "days": len(days)} if days else None,
        "days": days, "tiers": [r for r in merchant["rows"] if r["tier"] != "all"], "totals": totals,
        "top_creators": merchant["top_creators"], "top_products": merchant["top_products"],
    }


DAY_SERIES = ("invited", "showcased", "content", "orders", "gmv", "commission")
