"""`trendio quota`: requests used and left today, outreach used and left this week, and when each resets."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from trendio_cli.campaign import Limits
from trendio_cli.ledger import Ledger
from trendio_cli.planner import outreach_snapshot, platform_outreach
from trendio_cli.quota import OutreachWeek, QuotaDay


def quota_view(ledger_path: str, brand: str | None = None, limits: Limits | None = None) -> dict[str, Any]:
    limits = limits or Limits()
    now = datetime.now(timezone.utc)
    day = QuotaDay.at(now, limits.quota_timezone)
    week = OutreachWeek.at(now, limits)
    with Ledger.open(ledger_path, readonly=True, migrate=True, must_exist=True) as ledger:
        brands = [brand] if brand else ledger.brands()
        rows = []
        for b in brands:
            used = ledger.calls_used(b, day.day)
            outreach = ledger.outreach_used(b, week.since_iso)
            rows.append({
                "brand": b,
                "requests": {"day": day.day, "used": used, "limit": limits.daily_requests,
                             "reserve": limits.reserve_requests, "left": max(0, limits.daily_requests - used),
                             "left_for_invitations": max(0, limits.daily_requests - limits.reserve_requests - used),
                             "resets_at": in_zone(day.resets_at, limits.quota_timezone),
                             "by_endpoint": ledger.calls_by(b, day.day)},
                "outreach": {"week_start": week.starts_at.isoformat(), "used": outreach,
                             "limit": limits.outreach_per_week,
                             "left": max(0, limits.outreach_per_week - outreach),
                             "resets_at": in_zone(week.resets_at, limits.outreach_timezone),
                             # the platform's own figures, as the last run read them (where it offers them)
                             "platform": platform_outreach(outreach_snapshot(ledger, b), now)},
            })
    return {"brands": rows}


def in_zone(moment: datetime, tz: str) -> str:
    """A reset time in the zone its rule is set in (ISO-8601 with the offset): where it is a round hour."""
    return moment.astimezone(ZoneInfo(tz)).isoformat()
