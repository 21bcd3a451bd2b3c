"""Learned matching: the estimate follows the ledger's outcomes, counts silence as the part of a "no" it is,
does not count overlapping factors twice, learns what a showcase sells (with content and without), starts from a
prior rather than from account size, and `plan --explain` shows exactly the score the planner ranks by."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from helpers import json_out, ledger_with_outcomes, run_cli, write_campaign
from trendio_cli.campaign import Tier
from trendio_cli.creators import Creator
from trendio_cli.ledger import Ledger
from trendio_cli.matching import (
    OWN_HISTORY_STRENGTH,
    PRIOR_RATE,
    Outcome,
    OutcomeModel,
    Scorer,
    creator_key,
    explain,
    silence_weight,
)

TODAY = date(2026, 11, 25)
MID = Tier(name="mid", min_followers=0)
OLD = 30.0  # days: past any answer window


def outcome(cid: str, showcased: bool, *, category: str = "home", followers: int = 20_000, gmv_30d: float = 100.0,
            engagement: float = 0.05, inactive: int = 3, extra: dict | None = None, age: float = OLD,
            content: bool = False, gmv: float = 0.0, ended: bool = False) -> Outcome:
    return Outcome(cid, "mid", category, followers, gmv_30d, engagement, inactive, extra, age, showcased,
                   1.0 if showcased else None, content, 1.0 if content else None, ended, gmv, 0.15 * gmv)


def outcomes(category: str, yes: int, no: int, **kw) -> list[Outcome]:
    return [outcome(f"{category}{i}", i < yes, category=category, **kw) for i in range(yes + no)]


def creator(cid: str = "c", **kw) -> Creator:
    attrs = {"category": "home", "followers": 20_000, "gmv_30d": 100.0, "engagement_rate": 0.05,
             "last_active": date(2026, 11, 22), **kw}
    return Creator(cid, **attrs)


def chance(model: OutcomeModel, c: Creator) -> float:
    return model.chance(creator_key(c, "mid", TODAY), c.creator_id)


def test_the_estimate_follows_the_outcomes_and_shrinks_where_data_is_thin():
    model = OutcomeModel.fit(outcomes("beauty", 80, 20) + outcomes("tech", 10, 90))
    beauty, tech, pets = (creator(category=c) for c in ("beauty", "tech", "pets"))
    pb, pt, pp = (chance(model, c) for c in (beauty, tech, pets))
    assert pb > pp > pt
    assert 0.65 < pb < 0.85 and 0.07 < pt < 0.2  # close to what was seen (80%, 10%), pulled a little inward
    pulls = {f["factor"]: f["pull"] for f in model.factors(creator_key(pets, "mid", TODAY))}
    assert pulls["category"] == 0  # no pets outcomes and no prior: the category pulls nothing
    thin = OutcomeModel.fit(outcomes("beauty", 1, 0) + outcomes("tech", 10, 90))
    assert chance(thin, beauty) < 0.5  # one showcase does not make a sure thing


def test_overlapping_factors_are_not_counted_twice():
    # units sold and video views say the same as the GMV band here: together they must not make a rate that
    # nobody saw (a sum of each factor's own lift would push 60% toward 90%)
    sellers = [outcome(f"s{i}", i % 10 < 6, gmv_30d=5_000.0, extra={"units_sold": 500, "avg_video_views": 50_000})
               for i in range(1000)]
    quiet = [outcome(f"q{i}", i % 10 < 1, gmv_30d=5.0, extra={"units_sold": 1, "avg_video_views": 500})
             for i in range(1000)]
    model = OutcomeModel.fit(sellers + quiet)
    seller = creator(gmv_30d=5_000.0, extra={"units_sold": 500, "avg_video_views": 50_000})
    assert abs(chance(model, seller) - 0.6) < 0.04
    assert abs(chance(model, creator(gmv_30d=5.0, extra={"units_sold": 1, "avg_video_views": 500})) - 0.1) < 0.03


def test_silence_counts_more_as_it_lasts_and_fully_past_the_window_or_the_end():
    assert silence_weight(0.0, 2.0, 14) == 0.0
    assert 0.3 < silence_weight(1.0, 2.0, 14) < silence_weight(4.0, 2.0, 14) < 1.0
    assert silence_weight(14.0, 2.0, 14) == 1.0
    fresh = OutcomeModel.fit([outcome(f"f{i}", False, age=0.2) for i in range(200)])
    old = OutcomeModel.fit([outcome(f"o{i}", False, age=OLD) for i in range(200)])
    ended = OutcomeModel.fit([outcome(f"e{i}", False, age=0.2, ended=True) for i in range(200)])
    assert fresh.answers == pytest.approx(200 * silence_weight(0.2, 2.0, 14))  # a tenth of a "no" each
    assert old.answers == ended.answers == 200
    assert old.base < 0.01 and ended.base < 0.01  # two hundred silences past their window: the base rate falls
    assert fresh.base > 3 * old.base


def test_the_mean_delay_comes_from_the_brands_own_showcases():
    slow = [Outcome(f"s{i}", "mid", "home", 20_000, 100.0, 0.05, 3, None, OLD, True, 6.0) for i in range(100)]
    model = OutcomeModel.fit(slow)
    assert 5.0 < model.mean_delay < 6.0  # 100 showcases after 6 days, the prior's 2 days weigh 10
    # with slow creators, a silence of two days says less than the prior's delay would have it say
    assert silence_weight(2.0, model.mean_delay, 14) < silence_weight(2.0, 2.0, 14)


def test_a_creators_own_outcomes_count_quickly():
    history = outcomes("beauty", 50, 50) + [outcome("me", False, category="beauty")] * 3
    model = OutcomeModel.fit(history)
    me, other = creator("me", category="beauty"), creator("you", category="beauty")
    # three "no"s weigh as much as the whole estimate (OWN_HISTORY_STRENGTH = 3): it halves
    assert OWN_HISTORY_STRENGTH == 3
    assert abs(chance(model, me) - chance(model, other) / 2) < 1e-9


def test_what_a_showcase_sells_is_learned_with_content_and_without():
    rows = ([outcome(f"c{i}", True, gmv_30d=1_000.0, content=True, gmv=150.0) for i in range(40)]
            + [outcome(f"p{i}", True, gmv_30d=1_000.0, gmv=10.0) for i in range(40)])
    model = OutcomeModel.fit(rows)
    assert 0.1 < model.content_share < 0.16 and 0.005 < model.showcase_share < 0.02
    # a creator twice as likely to post content is expected to sell about twice as much
    low, high = model.expected_gmv(1_000.0, 0.25), model.expected_gmv(1_000.0, 0.5)
    assert 1.6 < high / low < 2.2
    assert model.value(0.5, 1_000.0) > model.value(0.25, 1_000.0) > model.value(0.25, 10.0)
    # each 30-day GMV band's own sales correct the shares: here the 10,000+ band sells 3x the 1,000+ band's share
    by_band = ([outcome(f"m{i}", True, gmv_30d=1_000.0, gmv=10.0) for i in range(400)]
               + [outcome(f"x{i}", True, gmv_30d=20_000.0, gmv=600.0) for i in range(20)])
    model = OutcomeModel.fit(by_band)
    assert model.band_factor[4][0] > 1.2 and model.band_factor[3][0] < 0.7
    per_unit = [model.expected_gmv(g, 0.0) / (g + 10) for g in (1_000.0, 20_000.0)]
    assert 2.0 < per_unit[1] / per_unit[0] < 3.2


def test_young_showcases_are_not_taken_for_poor_sellers():
    def sold(age: float) -> OutcomeModel:  # 200 showcases that each sold 20 so far, shown a day after invitation
        return OutcomeModel.fit([Outcome(f"y{i}", "mid", "home", 20_000, 1_000.0, 0.05, 3, None, age, True, 1.0,
                                         False, None, False, 20.0, 3.0) for i in range(200)])
    young, old = sold(3.0), sold(OLD)
    assert young.showcase_share > 4 * old.showcase_share  # the same sales in two days, not in four weeks


def test_content_is_learned_by_factor_on_showcases():
    engaged = [outcome(f"e{i}", True, engagement=0.12, content=i % 10 < 8) for i in range(200)]
    flat = [outcome(f"f{i}", True, engagement=0.015, content=i % 10 < 1) for i in range(200)]
    model = OutcomeModel.fit(engaged + flat)
    k_engaged = creator_key(creator(engagement_rate=0.12), "mid", TODAY)
    k_flat = creator_key(creator(engagement_rate=0.015), "mid", TODAY)
    assert model.content.chance(k_engaged) > 0.7 > 0.2 > model.content.chance(k_flat)


def test_with_no_outcomes_the_prior_ranks_engaged_recent_creators_above_big_idle_ones():
    model = OutcomeModel.fit([])
    assert abs(model.base - PRIOR_RATE) < 1e-9
    engaged = creator("e", followers=8_000, gmv_30d=50.0, engagement_rate=0.08, last_active=date(2026, 11, 23))
    idle_star = creator("s", followers=3_000_000, gmv_30d=50_000.0, engagement_rate=0.01,
                        last_active=date(2026, 7, 1))
    assert chance(model, engaged) > 3 * chance(model, idle_star)
    score = Scorer("learned", model, "seed", TODAY)
    assert score(engaged, MID) > score(idle_star, MID)


def test_exploration_fades_as_outcomes_come():
    assert OutcomeModel.fit([]).exploration() > 4 * OutcomeModel.fit(outcomes("home", 500, 2000)).exploration()


def test_scorer_rankings():
    model = OutcomeModel.fit(outcomes("beauty", 80, 20) + outcomes("tech", 10, 90))
    small = creator("s", category="beauty", followers=2_000, gmv_30d=10.0)
    big = creator("b", category="tech", followers=2_000_000, gmv_30d=10.0)
    learned = Scorer("learned", model, "seed", TODAY)
    assert learned(small, MID) > learned(big, MID)
    p, value, nudge = learned.parts(small, MID)
    assert learned(small, MID) == p * value * nudge
    followers = Scorer("followers", model, "seed", TODAY)
    assert followers(big, MID) > followers(small, MID)
    rnd = Scorer("random", model, "seed", TODAY)
    assert rnd(small, MID) == Scorer("random", model, "seed", TODAY)(small, MID)


def test_explain_has_every_term_of_the_score():
    model = OutcomeModel.fit(outcomes("beauty", 30, 30, gmv=80.0, content=True))
    c = creator("z", category="beauty", extra={"units_sold": "55", "avg_video_views": "1200"})
    r = explain(model, c, MID, TODAY, seed="camp")
    assert r["score"] == pytest.approx(Scorer("learned", model, "camp", TODAY)(c, MID))
    base = math.log(r["base_rate"] / (1 - r["base_rate"]))
    logit = base + sum(f["pull"] for f in r["factors"])
    assert r["p_showcase"] == pytest.approx(1 / (1 + math.exp(-logit)), abs=2e-3)
    assert r["showcase_value"] == pytest.approx(1 + r["p_content"] + math.log10(1 + r["expected_gmv"]), abs=2e-3)
    assert {f["factor"]: f["value"] for f in r["factors"]}["units_sold"] == "10-100"


def test_the_ledger_gives_every_invitations_outcome_with_its_times_and_sales(tmp_path: Path):
    path = tmp_path / "l.db"
    now = ledger_with_outcomes(path)
    with Ledger.open(path, readonly=True) as led:
        rows = {r[0]: Outcome(*r) for r in led.outcomes("b", now, 100)}
        assert set(rows) == {"a", "s", "t", "x", "o"}  # one per creator and collaboration, not per product
        a, s, t, x = rows["a"], rows["s"], rows["t"], rows["x"]
        assert (a.category, a.followers, a.inactive_days, a.extra) == ("beauty", 5000, 3, {"units_sold": "55"})
        assert a.age_days == pytest.approx(2.0) and not a.showcased and not a.ended
        assert s.showcased and s.showcase_days == pytest.approx(1.0) and s.content
        assert s.content_days == pytest.approx(2.0) and (s.gmv, s.commission) == (50.0, 7.5)
        assert t.showcased and t.showcase_days == pytest.approx(0.5) and not t.content and t.gmv == 0
        assert x.ended and not x.showcased
        latest = {r[0] for r in led.outcomes("b", now, 6)}  # the newest six rows: three invitations
        assert latest == {"a", "s", "t"}
        assert led.outcomes("nobody", now, 100) == []


def test_explain_shows_the_score_the_plan_ranks_by(tmp_path: Path):
    campaign = write_campaign(tmp_path, 200, schedule={"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri",
                                                                                   "sat", "sun"], "daily_target": 30})
    ledger = tmp_path / "l.db"
    with Ledger.open(ledger) as led:  # a history to learn from: beauty creators took it up, the rest did not
        run = led.start_run(brand="testbrand", campaign="old", command="test")
        rows = [(str(9000 + i), "1", "mid", f"k{i}") for i in range(40)]
        led.insert_planned("testbrand", "old", run, rows)
        led.upsert_creators("testbrand", [{"creator_id": str(9000 + i), "category": "beauty" if i < 20 else "tech",
                                           "followers": 20_000} for i in range(40)])
    conn = sqlite3.connect(ledger)
    conn.execute("UPDATE invitations SET state = CASE WHEN CAST(creator_id AS INT) < 9020 THEN 'showcased' "
                 "ELSE 'expired' END, collaboration_id = 'c' || creator_id, "
                 "claimed_at = '2026-11-01T00:00:00.000000Z'")
    conn.commit()
    env = {"TRENDIO_LEDGER": str(ledger)}
    plan = json_out(run_cli("plan", campaign, "--out", tmp_path / "p.json", "--json", env=env, check=0))["plan"]
    chosen = [c for b in json.loads((tmp_path / "p.json").read_text())["batches"] for c in b["creator_ids"]]
    assert plan["creators"] == 10 == len(chosen)
    top = json_out(run_cli("plan", campaign, "--explain", chosen[0], "--json", env=env, check=0))["explain"]
    assert top["planned_today"] and top["answers_learned_from"] == 40 and top["showcases_learned_from"] == 20
    assert abs(top["score"] - top["p_showcase"] * top["showcase_value"] * top["exploration"]) < 1e-3
    creators_csv = (tmp_path / "creators.csv").read_text().splitlines()[1:]
    outsider = next(line.split(",")[0] for line in creators_csv if line.split(",")[0] not in chosen)
    other = json_out(run_cli("plan", campaign, "--explain", outsider, "--json", env=env, check=0))["explain"]
    assert not other["planned_today"] and other["score"] <= top["score"] and other["rank"] > top["rank"]
    assert {f["factor"] for f in top["factors"]} >= {"tier", "category", "followers", "gmv", "engagement", "recency",
                                                   "units_sold", "video_views"}
    shown = run_cli("plan", campaign, "--explain", chosen[0], env=env, check=0).stdout
    assert "chance of a showcase" in shown and "expected GMV" in shown and "content" in shown
