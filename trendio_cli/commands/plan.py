"""`trendio plan`: who gets invited today, in which requests, at what cost; changes nothing."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from trendio_cli.inputs import load_campaign_inputs
from trendio_cli.ledger import Ledger
from trendio_cli.planner import LedgerState, Plan, make_plan


def plan_time(campaign_tz: str, on: date | None) -> datetime:
    """Now, or the given date at the current local time of day in the campaign's time zone."""
    now = datetime.now(timezone.utc)
    if on is None:
        return now
    tz = ZoneInfo(campaign_tz)
    local = now.astimezone(tz)
    return datetime.combine(on, time(local.hour, local.minute, local.second), tz).astimezone(timezone.utc)


def plan_campaign(path: Path, ledger_path: str, on: date | None = None) -> tuple[Plan, list[str]]:
    inputs = load_campaign_inputs(path)
    now = plan_time(inputs.campaign.schedule.timezone, on)
    with Ledger.open(ledger_path, readonly=True) as ledger:
        state = LedgerState.read(ledger, inputs.campaign, now)
    plan = make_plan(inputs.campaign, inputs.creators, state, now, campaign_file=str(path))
    return plan, [str(w) for w in inputs.warnings]
