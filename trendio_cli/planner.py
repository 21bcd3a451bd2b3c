"""The planner: a pure function from (campaign, creators, ledger state, time) to a `Plan` of create requests.

It decides who gets invited today, in which batch, at what cost in requests, and says when the rest can go."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from trendio_cli.api.endpoints import (
    MAX_CREATORS_PER_CREATE,
    MAX_CREATORS_PER_ELIGIBILITY_CHECK,
    MAX_PRODUCTS_PER_CREATE,
)
from trendio_cli.campaign import WEEKDAYS, Campaign, Tier
from trendio_cli.creators import Creator, bulk
from trendio_cli.errors import BadInput
from trendio_cli.ledger import Ledger, iso, parse_iso
from trendio_cli.matching import LEARN_FROM_ROWS, Outcome, OutcomeModel, Scorer
from trendio_cli.quota import OutreachWeek, QuotaDay, local_day_bounds

PLAN_FORMAT = 1
READS_PER_RECONCILIATION = 2


@dataclass
class Batch:
    """One create-collaboration request: every creator gets every product."""

    key: str
    tier: str  # the tier whose message and commissions the request carries (the same for every member)
    creator_ids: list[str]
    product_ids: list[str]
    handles: list[str] = field(default_factory=list)
    creator_tiers: list[str] = field(default_factory=list)  # each creator's own tier, for caps and reports
    user_ids: list[str] = field(default_factory=list)  # legacy plain ids, parallel to creator_ids (`api: legacy-ids`)

    def tier_of(self, index: int) -> str:
        return self.creator_tiers[index] if self.creator_tiers else self.tier

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(c, p) for c in self.creator_ids for p in self.product_ids]


@dataclass
class LedgerState:
    """What the planner reads from the ledger, gathered in one place (so the planner stays pure)."""

    invited: dict[str, tuple[str, ...]]  # creator -> products already in the ledger (any campaign)
    flagged: dict[str, str]  # creator -> flag in force
    claimed_today: dict[str, int]  # tier -> invitations of this campaign claimed today
    requests_used: int  # on the brand's current quota day
    outreach_used: int  # this outreach week
    fingerprint: str
    outreach_used_today: int = 0  # of the week's, today (the campaign's day): earlier runs' part of today's share
    pending: int = 0  # pairs left pending by a dead run (reconciled before sending)
    pending_requests: int = 0  # the create requests those pairs were claimed by (each read back by its name)
    checked: set[str] = field(default_factory=set)  # creators whose reach the platform reported this week
    model: OutcomeModel = field(default_factory=OutcomeModel)  # learned from the brand's outcomes
    plain_ids: set[str] = field(default_factory=set)  # creators an earlier version named by their plain id
    platform_outreach: tuple[str, dict[str, Any]] | None = None  # (read at, the outreach quota endpoint's data)
    outreach_to_read: bool = True  # the run reads the outreach figures before its creates (not yet done)

    @classmethod
    @bulk  # (the invited pairs of a big ledger: a million tuples)
    def read(cls, ledger: Ledger, campaign: Campaign, creators: Sequence[Creator], now: datetime) -> LedgerState:
        """What planning `creators` for the campaign needs from the ledger, as of `now`."""
        brand = campaign.brand
        since, until = local_day_bounds(now, campaign.schedule.timezone)
        week = OutreachWeek.at(now, campaign.limits)
        pending = ledger.pending(brand)
        return cls(
            invited=ledger.invited_pairs(brand),
            flagged=ledger.flagged_creators(brand, iso(now.timestamp())),
            claimed_today=ledger.claimed_since(brand, campaign.campaign, since, until),
            requests_used=ledger.calls_used(brand, QuotaDay.at(now, campaign.limits.quota_timezone).day),
            outreach_used=ledger.outreach_used(brand, week.since_iso),
            outreach_used_today=ledger.outreach_used(brand, max(since, week.since_iso)),
            fingerprint=ledger.fingerprint(brand),
            pending=len(pending),
            pending_requests=len({(p.campaign, p.batch_key) for p in pending}),
            checked=ledger.checked_since(brand, week.since_iso),
            model=OutcomeModel.fit((Outcome(*row) for row in ledger.outcomes(brand, now.timestamp(), LEARN_FROM_ROWS)),
                                   window_days=campaign.lifecycle.answer_within_days),
            # (a scan of the brand's rows, needed only to match creators by the legacy id their file gives)
            plain_ids=ledger.plain_ids(brand) if any(c.creator_user_id for c in creators) else set(),
            platform_outreach=outreach_snapshot(ledger, brand),
        )


@dataclass
class Plan:
    plan_id: str
    created_at: str
    date: str
    brand: str
    campaign: str
    campaign_file: str
    fingerprint: str
    batches: list[Batch]
    tiers: dict[str, dict[str, int]]  # tier -> {"creators": n, "pairs": n}
    skipped: dict[str, int]  # reason -> candidates
    requests: dict[str, int]
    quota: dict[str, Any]
    outreach: dict[str, Any]
    outlook: list[dict[str, Any]]
    notes: list[str]
    campaign_spec: dict[str, Any]

    @property
    def pairs(self) -> int:
        return sum(len(b.creator_ids) * len(b.product_ids) for b in self.batches)

    def summary(self) -> dict[str, Any]:
        """Everything but the batches: what `plan --json` prints."""
        return {
            "plan_id": self.plan_id, "created_at": self.created_at, "date": self.date, "brand": self.brand,
            "campaign": self.campaign, "campaign_file": self.campaign_file, "fingerprint": self.fingerprint,
            "pairs": self.pairs, "creators": sum(len(b.creator_ids) for b in self.batches),
            "tiers": self.tiers, "skipped": self.skipped, "requests": self.requests, "quota": self.quota,
            "outreach": self.outreach, "outlook": self.outlook, "notes": self.notes,
        }

    def to_file(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, **self.summary(), "campaign_spec": self.campaign_spec,
                "batches": [asdict(b) for b in self.batches]}

    def save(self, path: Path) -> None:
        from trendio_cli.output import write_private

        write_private(path, json.dumps(self.to_file(), indent=1) + "\n")  # 0600: it names the creators

    @classmethod
    def load(cls, path: Path) -> Plan:
        """A saved plan, checked as untrusted input (structure, types, ranges, agreement with its campaign);
        ProblemsFound names the file and the field of every problem."""
        from trendio_cli.plan_file import read_plan

        doc, _ = read_plan(path, PLAN_FORMAT, {f.name for f in fields(Batch)})
        try:
            batches = [Batch(**b) for b in doc["batches"]]
        except TypeError as exc:  # a field this version's batches require
            raise BadInput(f"{path}:1:1: batches: {exc}") from None
        return cls(
            plan_id=doc["plan_id"], created_at=doc["created_at"], date=doc["date"], brand=doc["brand"],
            campaign=doc["campaign"], campaign_file=doc["campaign_file"], fingerprint=doc["fingerprint"],
            batches=batches, tiers=doc["tiers"], skipped=doc["skipped"], requests=doc["requests"],
            quota=doc["quota"], outreach=doc["outreach"], outlook=doc["outlook"], notes=doc["notes"],
            campaign_spec=doc["campaign_spec"],
        )

    def campaign_model(self) -> Campaign:
        return Campaign.model_validate(self.campaign_spec)


# --- ranking ---------------------------------------------------------------------------------------
def scorer_for(campaign: Campaign, state: LedgerState, today: date) -> Scorer:
    """The one place a plan's ranking comes from (campaign `ranking:`: learned, followers or random)."""
    return Scorer(campaign.ranking, state.model, seed=campaign.campaign, today=today)


def targeting_reason(campaign: Campaign, c: Creator, today: date) -> str | None:
    t = campaign.targeting
    if t is None:
        return None
    if t.min_followers is not None and (c.followers or 0) < t.min_followers:
        return "targeting: too few followers"
    if t.max_followers is not None and (c.followers or 0) > t.max_followers:
        return "targeting: too many followers"
    if not t.wants_category(c.category):
        return "targeting: category"
    if t.min_gmv_30d is not None and (c.gmv_30d or 0) < t.min_gmv_30d:
        return "targeting: 30-day GMV"
    if t.min_engagement_rate is not None and (c.engagement_rate or 0) < t.min_engagement_rate:
        return "targeting: engagement rate"
    # an unknown last activity (the marketplace does not give one) is not known to be inactive
    if t.active_within_days is not None and c.last_active is not None and (
        (today - c.last_active).days > t.active_within_days
    ):
        return "targeting: inactive"
    return None


# --- request building (shared by dry-run and execute) -------------------------------------------------
def end_time(campaign: Campaign) -> int:
    return _end_of_day(campaign.end_date, campaign.schedule.timezone)


@functools.lru_cache(maxsize=64)
def _end_of_day(day: date, tz_name: str) -> int:  # once per campaign, not once per request
    end = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=ZoneInfo(tz_name))
    return int(end.timestamp())


def commissions(campaign: Campaign, tier_name: str, product_ids: Sequence[str]) -> list[tuple[str, int]]:
    tier = next((t for t in campaign.tiers if t.name == tier_name), None)
    by_id = {p.id: p.commission for p in campaign.products}
    return [(pid, tier.commission if tier and tier.commission else by_id[pid]) for pid in product_ids]


def render_message(campaign: Campaign, tier_name: str, product_count: int, handle: str | None = None) -> str:
    tier = next((t for t in campaign.tiers if t.name == tier_name), None)
    return campaign.message_for(tier).format(
        handle=handle or "there", product_count=product_count, brand=campaign.brand, campaign=campaign.campaign,
        tier=tier_name,
    )


# The platform does not publish a limit for a collaboration's name (unverified); names stay this short.
COLLABORATION_NAME_MAX = 50


def collaboration_name(campaign: str, key: str) -> str:
    """The unique name of one create request: the campaign, cut to fit, then the request's key whole (a
    reconciliation finds the request's collaboration by this name)."""
    room = max(0, COLLABORATION_NAME_MAX - len(key) - 1)
    return f"{campaign[:room]}-{key}" if room else key[-COLLABORATION_NAME_MAX:]


def create_fields(campaign: Campaign, batch: Batch) -> dict[str, Any]:
    """The fields of the create request for a batch, exactly as execute sends them."""
    handle = batch.handles[0] if len(batch.creator_ids) == 1 and batch.handles else None
    return {
        "name": collaboration_name(campaign.campaign, batch.key),
        "message": render_message(campaign, batch.tier, len(batch.product_ids), handle),
        "end_time": end_time(campaign),
        "products": commissions(campaign, batch.tier, batch.product_ids),
        "creator_ids": batch.user_ids if campaign.uses_legacy_ids else batch.creator_ids,
        "contact_email": campaign.contact_email or "",
        "free_sample": campaign.free_sample,
        "sample_approval_exempt": campaign.sample_approval_exempt,
    }


# --- planning ----------------------------------------------------------------------------------------
def _pack(campaign: Campaign, selected: Iterable[tuple[Creator, Tier, tuple[str, ...]]],
          plan_id: str) -> list[Batch]:
    """Group creators whose requests would be identical (message, commissions, products), then fill requests
    to the API's maximum: up to 50 creators (1 if the message names the creator) x up to 100 products."""
    groups: dict[tuple[Any, ...], list[tuple[Creator, Tier]]] = {}
    for creator, tier, products in selected:
        personal = campaign.personal(tier)
        message = campaign.message_for(tier)
        rates = tuple(commissions(campaign, tier.name, products))
        # the tier name only splits groups when the request differs by tier
        tier_key = tier.name if ("{tier}" in message or tier.commission or tier.message) else ""
        key = (tier_key, message, rates, personal)
        groups.setdefault(key, []).append((creator, tier))
    batches: list[Batch] = []
    per_request = campaign.limits.creators_per_request
    for (_, _, rates, personal), members in groups.items():
        products = [pid for pid, _ in rates]
        size = 1 if personal else min(per_request, MAX_CREATORS_PER_CREATE)
        for i in range(0, len(members), size):
            chunk = members[i : i + size]
            for j in range(0, len(products), MAX_PRODUCTS_PER_CREATE):
                batches.append(Batch(
                    key=f"{plan_id}-{len(batches):05d}",
                    tier=chunk[0][1].name,
                    creator_ids=[c.creator_id for c, _ in chunk],
                    product_ids=products[j : j + MAX_PRODUCTS_PER_CREATE],
                    handles=[c.handle for c, _ in chunk] if personal else [],
                    creator_tiers=[t.name for _, t in chunk],
                    user_ids=[c.creator_user_id or "" for c, _ in chunk] if campaign.uses_legacy_ids else [],
                ))
    return batches


def check_not_ended(campaign: Campaign, now: datetime) -> None:
    """A campaign past its end_date cannot run (the API refuses an end_time in the past)."""
    if campaign.end_date < campaign_day(campaign, now):
        raise BadInput(f"campaign {campaign.campaign} ended on {campaign.end_date} (end_date is in the past)",
                       hint="set a later end_date in the campaign file")


@bulk
def make_plan(
    campaign: Campaign,
    creators: Sequence[Creator],
    state: LedgerState,
    now: datetime,
    *,
    campaign_file: str = "",
    plan_id: str | None = None,
) -> Plan:
    plan_id = plan_id or secrets.token_hex(6)
    today = campaign_day(campaign, now)
    check_not_ended(campaign, now)
    active_days = set(campaign.schedule.days)
    active_today = WEEKDAYS[today.weekday()] in active_days
    product_ids = [p.id for p in campaign.products]
    tiers_by_name = {t.name: t for t in campaign.tiers}
    skipped: Counter[str] = Counter()
    candidates: list[tuple[Creator, Tier, tuple[str, ...]]] = []
    keys: list[float] = []
    invited, flagged = state.invited, state.flagged
    all_products = tuple(product_ids)
    tier_steps = [(t.min_followers, t) for t in campaign.tiers]
    targeted = campaign.targeting is not None
    inactive_days = campaign.lifecycle.inactive_after_days
    score = scorer_for(campaign, state, today)
    candidate_pairs, n_min = 0, len(product_ids)
    plain_ids = state.plain_ids
    week = OutreachWeek.at(now, campaign.limits)
    platform = platform_outreach(state.platform_outreach, now, week)
    # the largest creator the shop's GMV tier may reach this week: a create to one above it is refused (16024021)
    ceiling = platform["max_followers"] if platform is not None and platform["max_followers"] else None
    for c in creators:
        cid = c.creator_id
        legacy = c.creator_user_id if plain_ids and c.creator_user_id in plain_ids else None
        if flagged:
            flag = flagged.get(cid) or (flagged.get(legacy) if legacy else None)
            if flag is not None:
                skipped[f"flagged {flag}"] += 1
                continue
        if targeted:
            reason = targeting_reason(campaign, c, today)
            if reason:
                skipped[reason] += 1
                continue
        if c.last_active is not None and (today - c.last_active).days > inactive_days:
            skipped["inactive"] += 1
            continue
        followers = c.followers or 0
        tier = None
        for floor, candidate_tier in tier_steps:  # first match wins
            if followers >= floor:
                tier = candidate_tier
                break
        if tier is None:
            skipped["below every tier"] += 1
            continue
        if ceiling is not None and followers > ceiling:
            skipped["above the followers the shop may reach this week"] += 1
            continue
        done = invited.get(cid)
        if legacy:  # the same creator under the plain id an earlier version used
            done = (*(done or ()), *invited.get(legacy, ()))
        missing = all_products if not done else tuple(p for p in product_ids if p not in done)
        if not missing:
            skipped["already invited"] += 1
            continue
        candidates.append((c, tier, missing))
        keys.append(-score(c, tier))
        n = len(missing)
        candidate_pairs += n
        if n < n_min:
            n_min = n
    # best score first; ties keep the creators file's order. Sorting indices by a float key is the fast path.
    order = sorted(range(len(candidates)), key=keys.__getitem__)
    del keys
    n_min = 0 if not candidates else n_min

    limits = campaign.limits
    quota_day = QuotaDay.at(now, limits.quota_timezone)
    invite_budget = max(0, limits.daily_requests - limits.reserve_requests - state.requests_used)
    outreach_limit: int | None = limits.outreach_per_week
    outreach_left = max(0, limits.outreach_per_week - state.outreach_used)
    # The platform's own count, where it gives one, replaces the seller_tier guess; a `weekly_outreach` set
    # on purpose still caps it
    if platform is not None and platform["left"] is not None:
        outreach_left = min(outreach_left, platform["left"]) if limits.weekly_outreach else platform["left"]
        outreach_limit = limits.outreach_per_week if limits.weekly_outreach else platform["total"]
    elif platform is not None and platform["unlimited"] and not limits.weekly_outreach:
        outreach_limit, outreach_left = None, len(candidates)  # no more can be reached than there are
    # Spread the week's outreach over the active days left in it: not all spent by Monday, no day starved.
    week_days = active_days_left(campaign, today, week)
    if outreach_limit is None:
        outreach_today = outreach_left if active_today else 0
    elif week_days and active_today:
        # today's share of what was left when the day began, less what today's earlier runs took: a job run every
        # half hour spreads the week as one run a day would
        used_today = state.outreach_used_today
        outreach_today = max(0, math.ceil((outreach_left + used_today) / len(week_days)) - used_today)
    else:
        outreach_today = 0
    claimed_total = sum(state.claimed_today.values())
    target_left = max(0, campaign.schedule.daily_target - claimed_total) if active_today else 0
    tier_left = {
        t.name: (math.inf if t.daily_cap is None else max(0, t.daily_cap - state.claimed_today.get(t.name, 0)))
        for t in campaign.tiers
    }

    selected: list[tuple[Creator, Tier, tuple[str, ...]]] = []
    deferred: Counter[str] = Counter()
    for pos, index in enumerate(order):
        if not active_today:
            deferred["not an active day"] += len(order)
            break
        if target_left < n_min:  # nothing more fits today: every later candidate waits for the same reason
            deferred["daily target reached"] += len(order) - pos
            break
        c, tier, missing = candidates[index]
        n = len(missing)
        if n > target_left:
            deferred["daily target reached"] += 1
        elif n > tier_left[tier.name]:
            deferred[f"tier {tier.name} daily cap reached"] += 1
        elif c.creator_id not in invited and outreach_left < 1:
            deferred["weekly outreach spent"] += 1
        elif c.creator_id not in invited and outreach_today < 1:
            deferred["outreach: today's share of the week spent"] += 1
        else:
            selected.append((c, tier, missing))
            target_left -= n
            tier_left[tier.name] -= n
            if c.creator_id not in invited:
                outreach_left -= 1
                outreach_today -= 1
    batches = _pack(campaign, selected, plan_id)
    # reading a request back by its name: a search, then the detail of what it found (or a second search)
    reconciles = READS_PER_RECONCILIATION * state.pending_requests
    # Lowest-ranked batches wait: the planner never spends the reserve or beyond the day, and the reads that
    # come before the creates (reconciliation, who the plan reaches, the outreach figures) are paid from the
    # same requests
    for_creates = invite_budget - reconciles
    kept = min(len(batches), max(0, for_creates))
    unchecked = [sum(cid not in state.checked for cid in b.creator_ids) for b in batches[:kept]]
    to_screen = sum(unchecked)  # at most: a creator in two batches is checked once
    while kept and kept + _screening(to_screen, kept, state.outreach_to_read) > for_creates:
        kept -= 1
        to_screen -= unchecked[kept]
    if kept < len(batches):
        deferred["daily request quota"] += sum(len(b.creator_ids) for b in batches[kept:])
        batches = batches[:kept]

    chosen = {cid for b in batches for cid in b.creator_ids}
    tiers = _tiers(batches, campaign)
    new_creators = sum(1 for cid in chosen if cid not in invited)
    creates = len(batches)
    screening = _screening(len(chosen - state.checked), creates, state.outreach_to_read)
    notes: list[str] = []
    if any(campaign.personal(t) for t in campaign.tiers):
        notes.append("the message names the creator ({handle}): those invitations go out one creator per request; "
                     "drop {handle} to send up to 50 creators per request")
    if state.pending:
        notes.append(f"{state.pending} pair(s) left pending by an interrupted run will be reconciled first")
    if not active_today:
        notes.append(f"{WEEKDAYS[today.weekday()]} is not an active day of this campaign")
    remaining = ((candidates[i][1].name, len(candidates[i][2])) for i in order
                 if candidates[i][0].creator_id not in chosen)
    chosen_pairs = sum(len(b.creator_ids) * len(b.product_ids) for b in batches)
    outlook = _outlook(campaign, remaining, candidate_pairs - chosen_pairs, n_min, today, tiers_by_name)
    return Plan(
        plan_id=plan_id,
        created_at=iso(now.timestamp()),
        date=today.isoformat(),
        brand=campaign.brand,
        campaign=campaign.campaign,
        campaign_file=campaign_file,
        fingerprint=state.fingerprint,
        batches=batches,
        tiers=tiers,
        skipped={**dict(skipped), **{f"deferred: {k}": v for k, v in deferred.items()}},
        requests={"creates": creates, "conflict_checks": reconciles, "eligibility_checks": screening,
                  "reserve": limits.reserve_requests, "total": creates + reconciles + screening,
                  "not_counted": "creates sent again after conflicts, requests that isolate ineligible creators, "
                                 "retries, and replacements for creators the eligibility check leaves out"},
        quota={
            "day": quota_day.day, "limit": limits.daily_requests, "used": state.requests_used,
            "reserve": limits.reserve_requests, "after": state.requests_used + creates + reconciles + screening,
            "left_after": max(0, limits.daily_requests - state.requests_used - creates - reconciles - screening),
            "resets_at": quota_day.resets_at.isoformat(),
        },
        outreach={
            "limit": outreach_limit, "used": state.outreach_used, "new_creators": new_creators,
            "after": state.outreach_used + new_creators, "resets_at": week.resets_at.isoformat(),
            "week_ahead": [] if outreach_limit is None else _week_ahead(week_days, outreach_left + new_creators, today),
            "platform": platform,
        },
        outlook=outlook,
        notes=notes,
        campaign_spec=campaign.model_dump(mode="json"),
    )


def outreach_snapshot(ledger: Ledger, brand: str) -> tuple[str, dict[str, Any]] | None:
    """The platform's outreach figures as last read, with the creators first contacted since that read."""
    snapshot = ledger.outreach_quota(brand)
    if snapshot is None:
        return None
    read_at, data = snapshot
    return read_at, {**data, "_since_read": ledger.outreach_used(brand, read_at)}


def _tiers(batches: Sequence[Batch], campaign: Campaign) -> dict[str, dict[str, int]]:
    """Creators and pairs per tier, in the campaign's order of tiers."""
    tiers: dict[str, dict[str, int]] = {}
    for b in batches:
        for i in range(len(b.creator_ids)):
            t = tiers.setdefault(b.tier_of(i), {"creators": 0, "pairs": 0})
            t["creators"] += 1
            t["pairs"] += len(b.product_ids)
    names = [t.name for t in campaign.tiers]
    return dict(sorted(tiers.items(), key=lambda kv: names.index(kv[0]) if kv[0] in names else len(names)))


def without_creators(plan: Plan, creator_ids: set[str]) -> Plan:
    """The plan less these creators (the platform says an invitation cannot reach them); emptied batches go."""
    batches: list[Batch] = []
    removed = 0
    for b in plan.batches:
        keep = [i for i, c in enumerate(b.creator_ids) if c not in creator_ids]
        removed += len(b.creator_ids) - len(keep)
        if len(keep) == len(b.creator_ids):
            batches.append(b)
        elif keep:
            batches.append(Batch(b.key, b.tier, _pick(b.creator_ids, keep), b.product_ids, _pick(b.handles, keep),
                                 _pick(b.creator_tiers, keep), _pick(b.user_ids, keep)))
    if not removed:
        return plan
    skipped = dict(plan.skipped)
    skipped["unreachable (eligibility check)"] = skipped.get("unreachable (eligibility check)", 0) + removed
    requests = {**plan.requests, "creates": len(batches)}
    requests["total"] = requests["creates"] + requests.get("conflict_checks", 0)
    return dataclasses.replace(plan, batches=batches, tiers=_tiers(batches, plan.campaign_model()), skipped=skipped,
                               requests=requests)


def _pick(values: list[str], keep: list[int]) -> list[str]:
    return [values[i] for i in keep] if values else []


def platform_outreach(snapshot: tuple[str, dict[str, Any]] | None, now: datetime,
                      week: OutreachWeek) -> dict[str, Any] | None:
    """The outreach quota endpoint's figures as last read, if they are of the week containing `now` (by
    their own span, or else by when they were read): the shop's total, used and left (None when unlimited),
    and each band of creator levels, bonus first."""
    if snapshot is None:
        return None
    read_at, data = snapshot

    def number(value: Any) -> int | None:
        try:
            n = int(str(value).strip())
        except (TypeError, ValueError):
            return None
        return n if 0 <= n < 10**12 else None

    start, end = number(data.get("start_time")), number(data.get("end_time"))
    if start is not None and end is not None and not start <= now.timestamp() < end:
        return None  # another week's figures
    if start is None or end is None:
        try:
            read = parse_iso(read_at)
        except ValueError:
            read = 0.0
        if read < week.starts_at.timestamp():
            return None  # no span, and read before this week began (or when unknown): another week's
    unlimited = data.get("unlimited") is True
    total, used = number(data.get("quota_sum")), number(data.get("quota_use"))
    bands = []
    for d in data.get("quota_details") or []:
        if isinstance(d, dict):
            levels = [str(x) for x in d.get("creator_levels") or [] if isinstance(x, (int, str))]
            bonus, bonus_used = number(d.get("quota_bonus_sum")) or 0, number(d.get("quota_bonus_use")) or 0
            period, period_used = number(d.get("quota_period_sum")) or 0, number(d.get("quota_period_use")) or 0
            left = max(0, bonus - bonus_used) + max(0, period - period_used)
            bands.append({"creator_levels": levels, "bonus": bonus, "bonus_used": bonus_used, "period": period,
                          "period_used": period_used, "left": left})
    since = number(data.get("_since_read")) or 0  # ours since the read, which the figures do not include yet
    return {"read_at": read_at, "unlimited": unlimited, "total": total, "used": used, "used_since_read": since,
            "left": None if unlimited or total is None or used is None else max(0, total - used - since),
            "max_followers": number(data.get("reached_max_follower_cnt")), "bands": bands}


def campaign_day(campaign: Campaign, now: datetime) -> date:
    """The day `now` falls on in the campaign's schedule time zone: what daily targets and caps count."""
    return now.astimezone(ZoneInfo(campaign.schedule.timezone)).date()


def _screening(to_check: int, creates: int, outreach: bool) -> int:
    """The reads before a plan's creates, where the platform offers them: who it reaches (100 creators a
    request) and, unless already read this run, the outreach figures (one)."""
    return math.ceil(to_check / MAX_CREATORS_PER_ELIGIBILITY_CHECK) + outreach if creates else 0


def active_days_left(campaign: Campaign, today: date, week: OutreachWeek) -> list[date]:
    """The campaign's active days from today until the outreach week resets."""
    tz = ZoneInfo(campaign.schedule.timezone)
    last = (week.resets_at - timedelta(seconds=1)).astimezone(tz).date()
    days, d = [], today
    while d <= last:
        if WEEKDAYS[d.weekday()] in campaign.schedule.days:
            days.append(d)
        d += timedelta(days=1)
    return days


def _week_ahead(days: list[date], outreach_left: int, today: date) -> list[dict[str, Any]]:
    """Each active day left in the outreach week with its share of what is left (even split)."""
    out, left = [], outreach_left
    for i, d in enumerate(days):
        share = math.ceil(left / (len(days) - i)) if left > 0 else 0
        out.append({"date": d.isoformat(), "outreach": share})
        left -= share
    return out


class _Day:
    """One projected day: what is left of the target and of each tier's cap."""

    def __init__(self, target: int, tiers: dict[str, Tier], smallest: int) -> None:
        self.left = target
        self.caps = {n: (math.inf if t.daily_cap is None else t.daily_cap) for n, t in tiers.items()}
        self.smallest = smallest
        self.passed: list[tuple[str, int]] = []
        self.pairs = 0

    def take(self, tier_name: str, n: int) -> bool:
        """Fit one creator into the day; True once nothing more can fit."""
        if n <= self.left and n <= self.caps[tier_name]:
            self.left -= n
            self.caps[tier_name] -= n
            self.pairs += n
        else:
            self.passed.append((tier_name, n))
        return self.left < self.smallest or all(c < self.smallest for c in self.caps.values())


def _outlook(campaign: Campaign, remaining: Iterator[tuple[str, int]], remaining_pairs: int, smallest: int,
             today: date, tiers: dict[str, Tier]) -> list[dict[str, Any]]:
    """When the rest can go: a projection of the next active days under the daily target and tier caps
    (ignoring answers not yet known), up to 14 days or the campaign's end. `remaining` comes best first."""
    days: list[dict[str, Any]] = []
    carry: list[tuple[str, int]] = []  # passed over on an earlier day because a tier cap was reached
    projected = 0
    d = today
    while (carry or remaining_pairs > projected) and len(days) < 14:
        d += timedelta(days=1)
        if d > campaign.end_date:
            break
        if WEEKDAYS[d.weekday()] not in campaign.schedule.days:
            continue
        day = _Day(campaign.schedule.daily_target, tiers, smallest)
        full = False
        for i, (tier_name, n) in enumerate(carry):
            full = day.take(tier_name, n)
            if full:
                day.passed.extend(carry[i + 1:])
                break
        if not full:
            for tier_name, n in remaining:
                if day.take(tier_name, n):
                    break
        passed, pairs = day.passed, day.pairs
        carry = passed
        if pairs == 0:
            break
        projected += pairs
        days.append({"date": d.isoformat(), "pairs": pairs})
    if remaining_pairs > projected:
        days.append({"date": None, "pairs": remaining_pairs - projected, "note": "after the projection window"})
    return days


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
