"""`trendio quota`: requests used and left today, outreach used and left this week, and when each resets."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from trendio_cli.campaign import Limits
from trendio_cli.ledger import Ledger
from trendio_cli.planner import outreach_snapshot, platform_outreach
from trendio_cli.quota import OutreachWeek, QuotaDay, latest_limits


def quota_view(ledger_path: str, brand: str | None = None, limits: Limits | None = None,
               campaign: str | None = None) -> dict[str, Any]:
    """Each brand's quotas under `limits` (those of `campaign`, a file given with `--campaign`), or else under
    the limits of the brand's most recently executed campaign, as sync and execute count them."""
    now = datetime.now(timezone.utc)
    with Ledger.open(ledger_path, readonly=True, migrate=True, must_exist=True) as ledger:
        brands = [brand] if brand else ledger.brands()
        rows = []
        for b in brands:
            # whose limits these are: the file given, the brand's latest campaign, or (None) the platform rules
            source, rules = (campaign, limits) if limits else latest_limits(ledger.campaign_specs(b))
            day = QuotaDay.at(now, rules.quota_timezone)
            week = OutreachWeek.at(now, rules)
            used = ledger.calls_used(b, day.day)
            outreach = ledger.outreach_used(b, week.since_iso)
            rows.append({
                "brand": b, "limits_of": source,
                "requests": {"day": day.day, "used": used, "limit": rules.daily_requests,
                             "reserve": rules.reserve_requests, "left": max(0, rules.daily_requests - used),
                             "left_for_invitations": max(0, rules.daily_requests - rules.reserve_requests - used),
                             "resets_at": in_zone(day.resets_at, rules.quota_timezone),
                             "by_endpoint": ledger.calls_by(b, day.day)},
                "outreach": {"week_start": week.starts_at.isoformat(), "used": outreach,
                             "limit": rules.outreach_per_week,
                             "left": max(0, rules.outreach_per_week - outreach),
                             "resets_at": in_zone(week.resets_at, rules.outreach_timezone),
                             # the platform's own figures, as the last run read them (where it offers them)
                             "platform": platform_outreach(outreach_snapshot(ledger, b), now, week)},
            })
    return {"brands": rows}


def in_zone(moment: datetime, tz: str) -> str:
    """A reset time in the zone its rule is set in (ISO-8601 with the offset): where it is a round hour."""
    return moment.astimezone(ZoneInfo(tz)).isoformat()
