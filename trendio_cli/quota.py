"""Quota days and outreach weeks: where their boundaries fall, in their configured time zones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from trendio_cli.campaign import WEEKDAYS, Limits
from trendio_cli.ledger import iso


@dataclass(frozen=True)
class QuotaDay:
    """The brand's request-quota day containing `now` (default boundary: midnight UTC)."""

    day: str  # YYYY-MM-DD in the quota time zone
    starts_at: datetime
    resets_at: datetime

    @classmethod
    def at(cls, now: datetime, tz: str = "UTC") -> QuotaDay:
        local = now.astimezone(ZoneInfo(tz))
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        # re-localise across DST changes
        end = datetime(end.year, end.month, end.day, tzinfo=ZoneInfo(tz))
        return cls(local.date().isoformat(), start.astimezone(timezone.utc), end.astimezone(timezone.utc))


@dataclass(frozen=True)
class OutreachWeek:
    """The outreach week containing `now` (default: from Sunday 12:00 GMT-8 to the next)."""

    starts_at: datetime
    resets_at: datetime

    @property
    def since_iso(self) -> str:
        return iso(self.starts_at.timestamp())

    @classmethod
    def at(cls, now: datetime, limits: Limits) -> OutreachWeek:
        tz = ZoneInfo(limits.outreach_timezone)
        local = now.astimezone(tz)
        reset_dow = WEEKDAYS.index(limits.outreach_reset_day)
        days_back = (local.weekday() - reset_dow) % 7
        start = (local - timedelta(days=days_back)).replace(
            hour=limits.outreach_reset_hour, minute=0, second=0, microsecond=0)
        if start > local:
            start -= timedelta(days=7)
        return cls(start.astimezone(timezone.utc), (start + timedelta(days=7)).astimezone(timezone.utc))


def latest_limits(specs: dict[str, dict[str, Any]]) -> tuple[str | None, Limits]:
    """The limits a brand's quotas run under, from its campaigns as the ledger keeps them (most recently
    executed first, as `Ledger.campaign_specs` gives them): the latest campaign's, with its name; the platform
    rules, and no name, when that campaign recorded none or there is no campaign."""
    for name, spec in specs.items():
        if spec.get("limits"):
            return name, Limits.model_validate(spec["limits"])
        break
    return None, Limits()


def local_day_bounds(now: datetime, tz: str) -> tuple[str, str]:
    """UTC ISO bounds of the calendar day containing `now` in `tz` (for daily targets)."""
    local = now.astimezone(ZoneInfo(tz))
    start = datetime(local.year, local.month, local.day, tzinfo=ZoneInfo(tz))
    nxt = start + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=ZoneInfo(tz))
    return iso(start.timestamp()), iso(end.timestamp())
