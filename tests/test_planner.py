"""The planner is a pure function: exclusions, tiers, caps, targets, quotas, packing."""

from __future__ import annotations

from datetime import date, datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import campaign_dict
from trendio_cli.campaign import Campaign
from trendio_cli.creators import Creator
from trendio_cli.planner import LedgerState, Plan, create_fields, make_plan

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)  # a Wednesday


def campaign(**overrides) -> Campaign:
    return Campaign.model_validate(campaign_dict(**overrides))


def creators(n: int, followers: int = 5000, start: int = 0) -> list[Creator]:
    return [Creator(creator_id=str(1000 + start + i), handle=f"h{i}", followers=followers,
                    engagement_rate=0.01 + (i % 50) / 1000, gmv_30d=float(i), last_active=date(2026, 11, 20))
            for i in range(n)]


def state(**kw) -> LedgerState:
    base = dict(invited={}, flagged={}, claimed_today={}, requests_used=0, outreach_used=0, fingerprint="f")
    base.update(kw)
    return LedgerState(**base)


def pairs_of(plan) -> set[tuple[str, str]]:
    return {p for b in plan.batches for p in b.pairs}


def test_packs_fifty_creators_with_every_product_per_request():
    plan = make_plan(campaign(), creators(120), state(), NOW)
    assert [len(b.creator_ids) for b in plan.batches] == [50, 50, 20]
    assert all(len(b.product_ids) == 3 for b in plan.batches)
    assert plan.pairs == 360 and plan.requests["creates"] == 3


def test_more_than_a_hundred_products_split_by_hundred():
    products = [{"id": str(1_000_000 + i), "commission": "10%"} for i in range(150)]
    plan = make_plan(campaign(products=products), creators(10), state(), NOW)
    assert sorted(len(b.product_ids) for b in plan.batches) == [50, 100]
    assert plan.pairs == 1500


def test_a_message_naming_the_creator_goes_one_creator_per_request():
    c = campaign(message="Hi {handle}, {product_count} products for you")
    plan = make_plan(c, creators(3), state(), NOW)
    assert [len(b.creator_ids) for b in plan.batches] == [1, 1, 1]
    fields = create_fields(c, plan.batches[0])
    assert fields["message"].startswith("Hi h") and "3 products" in fields["message"]
    assert any("{handle}" in n for n in plan.notes)


def test_excludes_ledger_pairs_flagged_creators_and_unmatched_rows():
    cs = creators(10) + [Creator(creator_id="tiny", followers=5)]
    c = campaign(tiers=[{"name": "micro", "min_followers": 1000}])
    invited = {"1000": {"1729384756", "1729384757", "1729384758"}, "1001": {"1729384756"}}
    plan = make_plan(c, cs, state(invited=invited, flagged={"1002": "ineligible", "1003": "unresponsive"}), NOW)
    got = pairs_of(plan)
    assert not any(cid in ("1000", "1002", "1003", "tiny") for cid, _ in got)
    assert ("1001", "1729384756") not in got and ("1001", "1729384757") in got
    assert plan.skipped == {"already invited": 1, "flagged ineligible": 1, "flagged unresponsive": 1,
                            "below every tier": 1}


def test_tiers_first_match_with_caps_and_tier_commission():
    c = campaign(tiers=[{"name": "macro", "min_followers": 100000, "daily_cap": 6, "commission": "20%"},
                        {"name": "micro", "min_followers": 0, "daily_cap": 9}])
    cs = creators(5, followers=200_000) + creators(5, followers=100, start=100)
    plan = make_plan(c, cs, state(), NOW)
    assert plan.tiers == {"macro": {"creators": 2, "pairs": 6}, "micro": {"creators": 3, "pairs": 9}}
    macro = next(b for b in plan.batches if b.tier == "macro")
    assert {rate for _, rate in create_fields(c, macro)["products"]} == {2000}
    assert plan.skipped["deferred: tier macro daily cap reached"] == 3


def test_daily_target_counts_what_was_already_claimed_today():
    c = campaign(schedule={"timezone": "UTC", "days": ["wed"], "daily_target": 30})
    assert make_plan(c, creators(50), state(), NOW).pairs == 30
    assert make_plan(c, creators(50), state(claimed_today={"micro": 21}), NOW).pairs == 9
    assert make_plan(c, creators(50), state(claimed_today={"micro": 30}), NOW).pairs == 0


def test_inactive_day_plans_nothing_and_says_when_the_rest_goes():
    c = campaign(schedule={"timezone": "UTC", "days": ["mon", "fri"], "daily_target": 30})
    plan = make_plan(c, creators(20), state(), NOW)
    assert plan.pairs == 0 and any("not an active day" in n for n in plan.notes)
    assert [d["date"] for d in plan.outlook] == ["2026-11-27", "2026-11-30"]
    assert sum(d["pairs"] for d in plan.outlook) == 60


def test_request_quota_and_reserve_are_never_spent():
    c = campaign(limits={"daily_requests": 10, "reserve_requests": 4}, tiers=[{"name": "all", "min_followers": 0}])
    plan = make_plan(c, creators(1000), state(requests_used=3), NOW)
    # 10 - 4 reserved - 3 used = 3: one create, and the two reads before it (who it reaches, outreach figures)
    assert plan.requests["creates"] == 1 and plan.requests["total"] == 3
    assert plan.skipped["deferred: daily request quota"] == 1000 - 50
    # creators checked this week need no eligibility read: two creates and the outreach figures
    checked = make_plan(c, creators(1000), state(requests_used=3, checked={str(1000 + i) for i in range(1000)}), NOW)
    assert checked.requests["creates"] == 2 and checked.requests["total"] == 3
    # an interrupted run's create to read back (two reads) leaves one request: not enough for a create and its reads
    assert make_plan(c, creators(1000), state(requests_used=3, pending=5, pending_requests=1), NOW).pairs == 0


def test_weekly_outreach_counts_only_new_creators():
    c = campaign(limits={"weekly_outreach": 10}, tiers=[{"name": "all", "min_followers": 0}])
    connected = {str(1000 + i): {"1729384756"} for i in range(5)}
    plan = make_plan(c, creators(30), state(outreach_used=7, invited=connected), NOW)
    chosen = {cid for b in plan.batches for cid in b.creator_ids}
    assert chosen >= set(connected)  # already connected: no outreach spent on them
    # 3 left this week, spread over Wed..Sun (the week resets Sunday 12:00 GMT-8): 1 today
    assert len(chosen - set(connected)) == 1
    ahead = plan.outreach["week_ahead"]
    assert [d["date"] for d in ahead] == ["2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29"]
    assert sum(d["outreach"] for d in ahead) == 3


def test_runs_later_in_the_day_share_the_days_outreach_rather_than_take_a_new_share_each():
    c = campaign(limits={"weekly_outreach": 10}, tiers=[{"name": "all", "min_followers": 0}])
    # Wednesday: 10 over Wed..Sun is 2 today; an earlier run took both
    taken = make_plan(c, creators(30), state(outreach_used=2, outreach_used_today=2), NOW)
    assert taken.pairs == 0 and taken.skipped == {"deferred: outreach: today's share of the week spent": 30}
    # one taken today: one more; none today but 2 earlier this week: 8 over 5 days, 2 today
    assert len({c for b in make_plan(c, creators(30), state(outreach_used=1, outreach_used_today=1), NOW).batches
                for c in b.creator_ids}) == 1
    assert len({c for b in make_plan(c, creators(30), state(outreach_used=2), NOW).batches
                for c in b.creator_ids}) == 2


def test_the_weeks_outreach_is_spread_over_its_active_days():
    c = campaign(limits={"weekly_outreach": 500}, tiers=[{"name": "all", "min_followers": 0}],
                 schedule={"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri"], "daily_target": 100_000})
    monday = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)
    plan = make_plan(c, creators(2000), state(), monday)
    assert plan.pairs == 3 * 100  # 500 over Mon..Fri
    friday = datetime(2026, 11, 27, 15, 0, tzinfo=timezone.utc)
    assert make_plan(c, creators(2000), state(outreach_used=100), friday).pairs == 3 * 400  # the rest, last day
    assert make_plan(c, creators(2000), state(outreach_used=500), friday).pairs == 0
    new_seller = campaign(limits={"seller_tier": "new", "weekly_outreach": 0})
    assert make_plan(new_seller, creators(10), state(), monday).outreach["limit"] == 1000


def test_the_platforms_outreach_figures_replace_the_seller_tier_guess_unless_set_on_purpose(tmp_path):
    from trendio_cli.quota import OutreachWeek

    monday = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)
    weekdays = {"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri"], "daily_target": 100_000}
    every = [{"name": "all", "min_followers": 0}]
    guessed = campaign(limits={"seller_tier": "new", "weekly_outreach": 0}, tiers=every, schedule=weekdays)
    chosen = campaign(limits={"seller_tier": "new", "weekly_outreach": 500}, tiers=every, schedule=weekdays)
    week = OutreachWeek.at(monday, guessed.limits)
    span = {"start_time": str(int(week.starts_at.timestamp())), "end_time": str(int(week.resets_at.timestamp()))}
    counted = state(platform_outreach=("2026-11-23T14:00:00Z", {"unlimited": False, "quota_sum": "10000",
                                                                  "quota_use": "0", **span}))
    unlimited = state(platform_outreach=("2026-11-23T14:00:00Z", {"unlimited": True, **span}))
    pool = creators(3000)
    assert make_plan(guessed, pool, state(), monday).pairs == 3 * 200  # the guess: 1,000 over Mon..Fri
    plan = make_plan(guessed, pool, counted, monday)
    assert plan.pairs == 3 * 2000 and plan.outreach["limit"] == 10_000  # the platform's 10,000 over Mon..Fri
    assert make_plan(chosen, pool, counted, monday).pairs == 3 * 100  # weekly_outreach set on purpose still caps
    free = make_plan(guessed, pool, unlimited, monday)
    assert free.pairs == 3 * 3000 and free.outreach["limit"] is None and free.outreach["week_ahead"] == []
    saved = tmp_path / "plan.json"  # and a plan saved so loads again
    free.save(saved)
    assert Plan.load(saved).outreach["limit"] is None
    # figures without their week's span count only if read this week
    last_week = state(platform_outreach=("2026-11-20T14:00:00.000000Z", {"unlimited": False, "quota_sum": "10000",
                                                                         "quota_use": "0"}))
    this_week = state(platform_outreach=("2026-11-23T14:00:00.000000Z", {"unlimited": False, "quota_sum": "10000",
                                                                         "quota_use": "0"}))
    assert make_plan(guessed, pool, last_week, monday).pairs == 3 * 200
    assert make_plan(guessed, pool, this_week, monday).pairs == 3 * 2000
    # the largest creator the shop may reach this week: those above it are left out, not refused one by one
    capped = state(platform_outreach=("2026-11-23T14:00:00Z", {"unlimited": True, "reached_max_follower_cnt": "4999",
                                                                 **span}))
    big_and_small = creators(10, followers=5000) + creators(10, followers=4000, start=10)
    plan = make_plan(guessed, big_and_small, capped, monday)
    assert plan.pairs == 3 * 10 and plan.skipped == {"above the followers the shop may reach this week": 10}


def test_ended_campaign_is_bad_input():
    import pytest

    from trendio_cli.errors import BadInput

    with pytest.raises(BadInput, match="ended"):
        make_plan(campaign(end_date="2026-01-01"), creators(1), state(), NOW)


@settings(max_examples=60)
@given(
    n=st.integers(0, 200),
    invited_idx=st.sets(st.integers(0, 199), max_size=60),
    target=st.integers(1, 400),
    cap=st.integers(0, 300),
    used=st.integers(0, 10_000),
    outreach_used=st.integers(0, 300),
)
def test_never_plans_a_ledger_pair_nor_exceeds_a_cap_or_quota(n, invited_idx, target, cap, used, outreach_used):
    c = campaign(
        tiers=[{"name": "big", "min_followers": 6000, "daily_cap": cap}, {"name": "small", "min_followers": 0}],
        schedule={"timezone": "UTC", "days": ["wed"], "daily_target": target},
        limits={"daily_requests": 10_000, "reserve_requests": 500, "weekly_outreach": 300},
    )
    cs = [Creator(creator_id=str(i), followers=1000 + 100 * i) for i in range(n)]
    invited = {str(i): {"1729384756"} for i in invited_idx if i < n}
    plan = make_plan(c, cs, state(invited=invited, requests_used=used, outreach_used=outreach_used), NOW)
    got = pairs_of(plan)
    assert not any(p in invited.get(cid, set()) for cid, p in got)
    assert plan.pairs <= target
    assert plan.tiers.get("big", {}).get("pairs", 0) <= cap
    assert plan.requests["creates"] <= max(0, 10_000 - 500 - used)
    new = {cid for cid, _ in got} - set(invited)
    assert len(new) <= max(0, 300 - outreach_used)
    assert all(len(b.creator_ids) <= 50 and len(b.product_ids) <= 100 for b in plan.batches)
    assert len(got) == plan.pairs  # no pair twice in one plan
