"""Learned matching: the estimate follows the ledger's outcomes, shrinks where data is thin, starts from a
prior rather than from account size, and `plan --explain` shows exactly the score the planner ranks by."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

from helpers import json_out, run_cli, write_campaign
from trendio_cli.campaign import Tier
from trendio_cli.creators import Creator
from trendio_cli.matching import Answer, OutcomeModel, Scorer

TODAY = date(2026, 11, 25)
MID = Tier(name="mid", min_followers=0)


def answers(category: str, yes: int, no: int) -> list[Answer]:
    return [Answer(f"{category}{i}", "mid", category, 20_000, 100.0, 0.05, 3, i < yes) for i in range(yes + no)]


def test_the_estimate_follows_the_answers_and_shrinks_where_data_is_thin():
    model = OutcomeModel.fit(answers("beauty", 80, 20) + answers("tech", 10, 90))
    beauty = Creator("b", category="beauty", followers=20_000, gmv_30d=100.0, engagement_rate=0.05,
                     last_active=date(2026, 11, 22))
    tech = Creator("t", category="tech", followers=20_000, gmv_30d=100.0, engagement_rate=0.05,
                   last_active=date(2026, 11, 22))
    pets = Creator("p", category="pets", followers=20_000, gmv_30d=100.0, engagement_rate=0.05,
                   last_active=date(2026, 11, 22))
    pb, pt, pp = (model.probability(c, MID, TODAY)[0] for c in (beauty, tech, pets))
    assert pb > pp > pt
    pulls = {f["factor"]: f["pull"] for f in model.probability(pets, MID, TODAY)[1]}
    assert pulls["category"] == 0  # no pets answers: the category pulls nothing
    thin = OutcomeModel.fit(answers("beauty", 1, 0) + answers("tech", 10, 90))
    assert thin.probability(beauty, MID, TODAY)[0] < 0.5  # one answer does not make a sure thing


def test_a_creators_own_answers_count_quickly():
    history = answers("beauty", 50, 50) + [Answer("me", "mid", "beauty", 20_000, 100.0, 0.05, 3, False)] * 3
    model = OutcomeModel.fit(history)
    me = Creator("me", category="beauty", followers=20_000, gmv_30d=100.0, engagement_rate=0.05)
    other = Creator("you", category="beauty", followers=20_000, gmv_30d=100.0, engagement_rate=0.05)
    # three "no"s weigh as much as the whole prior estimate (OWN_HISTORY_STRENGTH = 3): it halves
    assert abs(model.probability(me, MID, TODAY)[0] - model.probability(other, MID, TODAY)[0] / 2) < 1e-9


def test_scorer_rankings():
    model = OutcomeModel.fit(answers("beauty", 80, 20) + answers("tech", 10, 90))
    small = Creator("s", category="beauty", followers=2_000, gmv_30d=10.0, engagement_rate=0.05)
    big = Creator("b", category="tech", followers=2_000_000, gmv_30d=10.0, engagement_rate=0.05)
    learned = Scorer("learned", model, "seed", TODAY)
    assert learned(small, MID) > learned(big, MID)
    followers = Scorer("followers", model, "seed", TODAY)
    assert followers(big, MID) > followers(small, MID)
    rnd = Scorer("random", model, "seed", TODAY)
    assert rnd(small, MID) == Scorer("random", model, "seed", TODAY)(small, MID)


def test_explain_shows_the_score_the_plan_ranks_by(tmp_path: Path):
    campaign = write_campaign(tmp_path, 200, schedule={"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri",
                                                                                   "sat", "sun"], "daily_target": 30})
    ledger = tmp_path / "l.db"
    from trendio_cli.ledger import Ledger

    with Ledger.open(ledger) as led:  # a history to learn from: beauty creators said yes, the rest no
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
    import json

    chosen = [c for b in json.loads((tmp_path / "p.json").read_text())["batches"] for c in b["creator_ids"]]
    assert plan["creators"] == 10 == len(chosen)
    top = json_out(run_cli("plan", campaign, "--explain", chosen[0], "--json", env=env, check=0))["explain"]
    assert top["planned_today"] and top["answers_learned_from"] == 40
    assert abs(top["score"] - top["p_showcase"] * top["showcase_value"] * top["exploration"]) < 1e-3
    creators_csv = (tmp_path / "creators.csv").read_text().splitlines()[1:]
    outsider = next(line.split(",")[0] for line in creators_csv if line.split(",")[0] not in chosen)
    other = json_out(run_cli("plan", campaign, "--explain", outsider, "--json", env=env, check=0))["explain"]
    assert not other["planned_today"] and other["score"] <= top["score"] and other["rank"] > top["rank"]
    assert {f["factor"] for f in top["factors"]} >= {"tier", "category", "followers", "gmv", "engagement", "recency",
                                                   "units_sold", "video_views"}


def test_with_no_outcomes_the_prior_ranks_engaged_recent_creators_above_big_idle_ones():
    model = OutcomeModel.fit([])
    engaged = Creator("e", category="home", followers=8_000, gmv_30d=50.0, engagement_rate=0.08,
                      last_active=date(2026, 11, 23))
    idle_star = Creator("s", category="home", followers=3_000_000, gmv_30d=50_000.0, engagement_rate=0.01,
                        last_active=date(2026, 7, 1))
    assert model.probability(engaged, MID, TODAY)[0] > 2 * model.probability(idle_star, MID, TODAY)[0]
    score = Scorer("learned", model, "seed", TODAY)
    assert score(engaged, MID) > score(idle_star, MID)


def test_silence_counts_and_gmv_is_the_value_of_a_showcase():
    rich = [Answer(f"r{i}", "mid", "home", 20_000, 20_000.0, 0.05, 3, True, False, 900.0) for i in range(30)]
    poor = [Answer(f"p{i}", "mid", "home", 20_000, 5.0, 0.05, 3, True, False, 0.0) for i in range(30)]
    model = OutcomeModel.fit(rich + poor)
    seller = Creator("x", category="home", followers=20_000, gmv_30d=25_000.0, engagement_rate=0.05)
    quiet = Creator("y", category="home", followers=20_000, gmv_30d=6.0, engagement_rate=0.05)
    assert model.expected_gmv(seller.gmv_30d) > 5 * model.expected_gmv(quiet.gmv_30d)  # shrunk, still apart
    assert model.value(seller) > model.value(quiet)
    silent = OutcomeModel.fit([Answer(f"s{i}", "mid", "home", 20_000, 5.0, 0.05, 3, False) for i in range(100)])
    assert silent.base < 0.05  # a hundred invitations nobody took up: the base rate falls
