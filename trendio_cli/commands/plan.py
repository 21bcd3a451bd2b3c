"""`trendio plan`: who gets invited today, in which requests, at what cost; changes nothing."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from trendio_cli.campaign import creators_path
from trendio_cli.errors import BadInput
from trendio_cli.inputs import load_campaign_inputs
from trendio_cli.ledger import Ledger
from trendio_cli.matching import explain
from trendio_cli.planner import LedgerState, Plan, make_plan, scorer_for


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
        state = LedgerState.read(ledger, inputs.campaign, inputs.creators, now)
    plan = make_plan(inputs.campaign, inputs.creators, state, now, campaign_file=str(path))
    return plan, [str(w) for w in inputs.warnings]


def explain_creator(path: Path, ledger_path: str, creator_id: str, on: date | None = None) -> dict[str, Any]:
    """Why a creator ranks where it does: the learned factors, the estimate, the value and the rank."""
    inputs = load_campaign_inputs(path)
    campaign = inputs.campaign
    now = plan_time(campaign.schedule.timezone, on)
    with Ledger.open(ledger_path, readonly=True) as ledger:
        state = LedgerState.read(ledger, campaign, inputs.creators, now)
    creator = next((c for c in inputs.creators if c.creator_id == creator_id), None)
    if creator is None:
        raise BadInput(f"creator {creator_id} is not in {creators_path(campaign, path)}")
    tier = campaign.tier_for(creator.followers)
    if tier is None:
        raise BadInput(f"creator {creator_id} matches no tier ({creator.followers or 0} followers)")
    plan = make_plan(campaign, inputs.creators, state, now, campaign_file=str(path))
    today = now.astimezone(ZoneInfo(campaign.schedule.timezone)).date()
    score = scorer_for(campaign, state, today)
    mine = score(creator, tier)
    ranked = [c for c in inputs.creators if campaign.tier_for(c.followers) is not None]
    rank = 1 + sum(1 for c in ranked if score(c, campaign.tier_for(c.followers)) > mine)  # type: ignore[arg-type]
    result: dict[str, Any] = {
        "ranking": campaign.ranking, "rank": rank, "of": len(ranked), "score": mine,
        "planned_today": any(creator_id in b.creator_ids for b in plan.batches),
        "flag": state.flagged.get(creator_id),
        "already_invited": sorted(state.invited.get(creator_id, ())),
    }
    if campaign.ranking == "learned":
        result.update(explain(state.model, creator, tier, today, seed=campaign.campaign))
        result["score"] = mine
    return result
