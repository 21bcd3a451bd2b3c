"""The documented API, over real HTTP against the sandbox: what each create answer means (conflicts create
nothing, ineligible creators named or found), every stopping code stopping at once, unknown answers, 429 and
503 in every form, tokens refreshed once mid-run and by two processes at once, a lost create read back by
its name, the 2026 endpoints used where they answer and skipped where they do not, and legacy plain ids."""

from __future__ import annotations

import csv
import json
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from helpers import json_out, run_cli, write_campaign
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings

BIG_WEEK = {"weekly_outreach": 1_000_000}  # the sandbox's own outreach quota out of the way


def settings(**kw):
    return SandboxSettings(**{"ineligible_permille": 0, **BIG_WEEK, **kw})


def env_for(sb, ledger, **more):
    return {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger), **more}


def execute(campaign, sb, ledger, *args, check=None, **env):
    proc = run_cli("execute", campaign, "--yes", "--json", *args, env=env_for(sb, ledger, **env), timeout=300)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:])
    return json_out(proc), proc


def states(ledger) -> dict[str, int]:
    conn = sqlite3.connect(ledger)
    try:
        return dict(conn.execute("SELECT state, COUNT(*) FROM invitations GROUP BY state").fetchall())
    finally:
        conn.close()


def rows(ledger, sql, *args):
    conn = sqlite3.connect(ledger)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def creators_of(campaign: Path) -> list[dict[str, str]]:
    with open(campaign.parent / "creators.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# --- conflicts ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("conflict_code, conflict_id", [(0, "phantom"), (16024022, "none"), (0, "none")])
def test_a_conflicts_answer_created_nothing_the_rest_is_sent_again_and_sent_once(tmp_path, conflict_code,
                                                                                   conflict_id):
    campaign = write_campaign(tmp_path, 40, limits={"creators_per_request": 20})
    # another ledger (a lost one, another tool) invited some of them already: one create of 5 creators
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "creators.csv").write_text((tmp_path / "creators.csv").read_text())
    first = write_campaign(tmp_path / "other", 0, limits={"creators_per_request": 5})
    with SandboxServer(settings(conflict_code=conflict_code, conflict_id=conflict_id)) as sb:
        execute(first, sb, tmp_path / "lost.db", "--max-requests", "3", check=4)
        already = {(p["creator_id"], p["product_id"]) for p in sb.invited_pairs()}
        assert 0 < len(already) < 120
        result, _ = execute(campaign, sb, tmp_path / "l.db", check=0)
        stats = sb.stats()
        pairs = {(p["creator_id"], p["product_id"]) for p in sb.invited_pairs()}
    counts = result["counts"]
    assert counts["conflict"] == len(already)
    assert counts["sent"] == 120 - len(already) == len(pairs) - len(already)
    assert counts["resent"] >= 1  # the rest went again, in requests of their own, in the same run
    sent = {(c, p) for c, p in rows(tmp_path / "l.db", "SELECT creator_id, product_id FROM invitations "
                                                       "WHERE state = 'sent'")}
    conflicts = {(c, p) for c, p in rows(tmp_path / "l.db", "SELECT creator_id, product_id FROM invitations "
                                                            "WHERE state = 'conflict'")}
    assert conflicts == already and not sent & already and sent == pairs - already  # nothing recorded as sent
    assert stats["pairs_sent_more_than_once"] == len(already)  # only the unavoidable first discovery


# --- ineligible creators ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["named", "unnamed"])
def test_ineligible_creators_are_dropped_when_named_and_found_by_splitting_when_not(tmp_path, mode):
    campaign = write_campaign(tmp_path, 50)
    people = creators_of(campaign)
    bad = {people[3]["creator_id"]: 16024021, people[17]["creator_id"]: 16024016, people[40]["creator_id"]: 50001702}
    with SandboxServer(settings(ineligible_mode=mode, ineligible_creators=bad, disabled_endpoints=[
            "check_eligibility"])) as sb:
        result, _ = execute(campaign, sb, tmp_path / "l.db", check=0)
    counts = result["counts"]
    assert counts["ineligible"] == 2 * 3 and counts["sent"] == 47 * 3 and counts["failed"] == 0
    flags = dict(rows(tmp_path / "l.db", "SELECT creator_id, flag FROM creators WHERE flag IS NOT NULL"))
    # above the follower count the shop may reach this week (16024021): left out until the week ends, its pairs
    # not recorded as anything; the others for good
    week_ends = rows(tmp_path / "l.db", "SELECT flagged_until FROM creators WHERE flag = 'unreachable'")
    assert flags == {people[3]["creator_id"]: "unreachable", people[17]["creator_id"]: "ineligible",
                     people[40]["creator_id"]: "ineligible"}, flags
    assert week_ends[0][0] and counts["unsent"] == 3 and counts["unreachable"] == 1
    assert rows(tmp_path / "l.db", "SELECT COUNT(*) FROM invitations WHERE creator_id = ?", people[3]["creator_id"]) \
        == [(0,)]
    if mode == "named":
        assert counts["split_requests"] == 0
    else:  # halving (50001702's products first: it may be a product's doing), within the batch's budget
        assert 0 < counts["split_requests"] <= 2 * 50


@pytest.mark.parametrize("mode", ["named", "unnamed"])
def test_an_unavailable_product_is_not_blamed_on_the_creators(tmp_path, mode):
    campaign = write_campaign(tmp_path, 30, limits={"creators_per_request": 10})
    with SandboxServer(settings(unavailable_products=["1729384758"], ineligible_mode=mode)) as sb:
        result, _ = execute(campaign, sb, tmp_path / "l.db")
        flagged = rows(tmp_path / "l.db", "SELECT COUNT(*) FROM creators WHERE flag = 'ineligible'")[0][0]
        # its pairs are not recorded as anything: they stay invitable
        held = rows(tmp_path / "l.db", "SELECT COUNT(*) FROM invitations WHERE product_id = '1729384758' "
                                       "AND state != 'planned'")[0][0]
        # "remove the unavailable product and try again": once it is available, a later run sends its pairs
        sb.configure(unavailable_products=[])
        later, _ = execute(campaign, sb, tmp_path / "l.db", check=0)
    # named or found by halving the products: the other products go, its pairs wait, and no creator is blamed
    assert result["exit_code"] == 3 and result["counts"]["sent"] == 30 * 2
    assert result["counts"]["failed"] == 0 and result["counts"]["unsent"] == 30 and held == 0 and flagged == 0
    assert "1729384758" in json.dumps(result["errors"])
    assert later["counts"]["sent"] == 30 and states(tmp_path / "l.db") == {"sent": 90}


# --- answers that stop -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("code, exit_code, says", [
    (16024008, 2, "not the shop's"), (50001703, 2, "message"), (98001004, 2, "end_time"),
    (36009004, 5, "credentials"), (101000, 5, "credentials"), (105005, 5, "credentials"),
    (106001, 5, "credentials"), (106013, 5, "credentials"), (36009033, 5, "credentials"),
])
def test_each_stopping_code_stops_after_one_create(tmp_path, code, exit_code, says):
    # one request a second: the first answer is in long before the next create could leave
    campaign = write_campaign(tmp_path, 300, limits={"creators_per_request": 10, "requests_per_second": 1})
    with SandboxServer(settings()) as sb:
        sb.script("create_collaboration", [{"code": code, "message": "invalid params: end_time" if code == 98001004
                                            else ""}])
        result, proc = execute(campaign, sb, tmp_path / "l.db", check=exit_code)
        creates = sb.stats()["by_endpoint"].get("create_collaboration", 0)
    assert creates == 1
    assert result["counts"]["sent"] == 0 and result["counts"]["failed"] == 0
    assert says in json.dumps(result["errors"])
    assert states(tmp_path / "l.db").get("pending", 0) == 0  # nothing left claimed


def test_a_streak_of_undocumented_answers_stops_the_brand(tmp_path):
    campaign = write_campaign(tmp_path, 200, limits={"creators_per_request": 10, "requests_per_second": 1})
    with SandboxServer(settings()) as sb:
        sb.script("create_collaboration", [{"code": 77777777, "message": "something new"}] * 20)
        result, _ = execute(campaign, sb, tmp_path / "l.db", check=1)
        creates = sb.stats()["by_endpoint"].get("create_collaboration", 0)
    # the third in a row stops the brand (a create already in flight then still gets its answer)
    assert 3 <= creates <= 4 and result["stop_reason"] == "unknown_answers"
    assert result["counts"]["failed"] == 30 * creates  # each refused batch (10 creators x 3), its code kept
    assert rows(tmp_path / "l.db", "SELECT DISTINCT code FROM invitations WHERE state = 'failed'") == [(77777777,)]


@pytest.mark.parametrize("answer", [
    {"http_status": 429, "envelope": False}, {"http_status": 429, "code": 36009002},
    {"http_status": 503, "envelope": False}, {"http_status": 503, "code": 36009003},
    {"http_status": 503, "body": "<html>Service Unavailable</html>"},
])
def test_429_and_503_with_and_without_an_envelope_are_retried_not_failed(tmp_path, answer):
    campaign = write_campaign(tmp_path, 40, limits={"creators_per_request": 10})
    with SandboxServer(settings()) as sb:
        sb.script("create_collaboration", [answer, answer])
        result, _ = execute(campaign, sb, tmp_path / "l.db", check=0)
        stats = sb.stats()
    assert result["counts"]["sent"] == 120 and result["counts"]["failed"] == 0
    assert stats["pairs_sent_more_than_once"] == 0 and stats["invited_pairs"] == 120


# --- tokens ------------------------------------------------------------------------------------------------------
def test_a_token_that_expires_mid_run_is_refreshed_once_and_the_run_completes(tmp_path):
    import os
    import time

    campaign = write_campaign(tmp_path, 200, limits={"creators_per_request": 10, "requests_per_second": 1})
    home = tmp_path / "home"
    with SandboxServer(settings()) as sb:
        env = {**os.environ, "TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(tmp_path / "l.db"),
               "TRENDIO_HOME": str(home)}
        proc = subprocess.Popen([sys.executable, "-m", "trendio_cli", "execute", str(campaign), "--yes", "--json"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while sb.stats()["by_endpoint"].get("create_collaboration", 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        httpx.post(f"{sb.url}/_sandbox/expire_tokens", timeout=10).raise_for_status()  # mid-run
        out, err = proc.communicate(timeout=300)
        stats = sb.stats()
    assert proc.returncode == 0, (out[-2000:], err[-2000:])
    result = json.loads(out)
    assert result["counts"]["sent"] == 600 and result["counts"]["token_refreshes"] == 1
    assert stats["refreshes"] == 1 and stats["pairs_sent_more_than_once"] == 0
    store = home / "tokens.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    stored = json.loads(store.read_text())["shops"]
    tokens = [v for pair in stored.values() for k, v in pair.items() if k.endswith("_token")]
    assert tokens and all(t not in out + err for t in tokens)
    assert all(t not in Path(tmp_path / "l.db").read_bytes().decode("latin-1") for t in tokens)


def test_two_processes_refreshing_at_once_end_with_one_valid_pair(tmp_path):
    home = tmp_path / "home"
    with SandboxServer(settings()) as sb:
        env = {**__import__("os").environ, "TRENDIO_BASE_URL": sb.url, "TRENDIO_HOME": str(home)}
        procs = [subprocess.Popen([sys.executable, "-m", "trendio_cli", "auth", "refresh", "--json"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        stats = sb.stats()
        # under the lock, neither ever sent a refresh token the other had already rotated away (the second
        # either used the first's new pair or, if it came after, refreshed that pair in turn)
        assert stats["refresh_failures"] == 0 and 1 <= stats["refreshes"] <= 2
        shops = run_cli("auth", "shops", "--json", env={"TRENDIO_BASE_URL": sb.url, "TRENDIO_HOME": str(home)},
                        check=0)
    assert json_out(shops)["shops"]  # the stored pair is the valid one


def test_auth_shops_lists_the_ciphers_without_needing_one(tmp_path):
    with SandboxServer(settings()) as sb:
        doc = json_out(run_cli("auth", "shops", "--json", env={"TRENDIO_BASE_URL": sb.url}, check=0))
    assert doc["shops"][0]["cipher"] == "sandbox-shop-cipher" and doc["current_cipher_listed"] is True


# --- uncertain creates -------------------------------------------------------------------------------------------
def test_lost_creates_are_read_back_by_name_and_never_sent_twice(tmp_path):
    campaign = write_campaign(tmp_path, 300, limits={"creators_per_request": 10})
    with SandboxServer(settings(lost_rate=0.3, seed=11)) as sb:
        result, _ = execute(campaign, sb, tmp_path / "l.db", check=0)
        stats = sb.stats()
        searched = stats["by_endpoint"].get("search_collaborations", 0)
    assert stats["lost_responses"] > 0 and searched >= stats["lost_responses"]
    assert stats["pairs_sent_more_than_once"] == 0 and stats["duplicate_attempts"] == 0
    assert result["counts"]["sent"] == stats["invited_pairs"] == 900
    names = rows(tmp_path / "l.db", "SELECT COUNT(DISTINCT collaboration_id) FROM invitations")[0][0]
    assert names == stats["collaborations"]


def test_a_name_search_with_more_matches_than_it_reads_is_narrowed_and_never_taken_for_nothing(tmp_path):
    """The name match is fuzzy: pages of other collaborations, none with the name, prove nothing. The search is
    narrowed to the request's first creator, finds the create, and nothing is sent twice or marked conflict."""
    campaign = write_campaign(tmp_path, 10, limits={"creators_per_request": 10})
    others = {"data": {"target_collaborations": [{"id": f"9{i}", "name": f"someone-else-{i}"} for i in range(100)],
                       "next_page_token": "more"}}
    with SandboxServer(settings()) as sb:
        sb.script("create_collaboration", [{"apply": True, "lost": True}])
        sb.script("search_collaborations", [others] * 5)
        result, _ = execute(campaign, sb, tmp_path / "l.db", check=0)
        stats = sb.stats()
    assert stats["scripted"] == 6 and stats["duplicate_attempts"] == 0 and stats["pairs_sent_more_than_once"] == 0
    assert result["counts"]["sent"] == 30 and result["counts"].get("conflict", 0) == 0, result["counts"]
    assert states(tmp_path / "l.db") == {"sent": 30}
    # five pages of others, then one narrowed to the first creator (the sandbox's VALID one holds the create)
    assert stats["by_endpoint"]["search_collaborations"] == 6 and stats["by_endpoint"]["create_collaboration"] == 1


# --- the 2026 endpoints ------------------------------------------------------------------------------------------
def test_the_eligibility_check_keeps_creates_off_unreachable_creators(tmp_path):
    campaign = write_campaign(tmp_path, 120)
    people = creators_of(campaign)
    bad = {people[i]["creator_id"]: 16024021 for i in (2, 30, 77)}
    with SandboxServer(settings(ineligible_creators=bad)) as sb:
        result, _ = execute(campaign, sb, tmp_path / "l.db", check=0)
        stats = sb.stats()
    counts = result["counts"]
    assert counts["unreachable"] == 3 and counts["ineligible"] == 0
    assert counts["eligibility_checks"] == 2 + 1 and counts["conflict_checks"] == 0  # two checks, the outreach figures
    assert stats["ineligible_refusals"] == 0  # no create was spent on them
    reasons = rows(tmp_path / "l.db", "SELECT flag_reason FROM creators WHERE flag = 'unreachable'")
    assert len(reasons) == 3 and all("eligibility" in r for (r,) in reasons)


def test_a_2026_endpoint_refused_as_an_invalid_version_is_not_used_and_the_run_goes_on(tmp_path):
    """36009004 is the common table's "Invalid API version" too: on an endpoint being probed that is "not
    offered here", not rejected credentials."""
    campaign = write_campaign(tmp_path, 120)
    version = {"code": 36009004, "message": "Invalid API version: the version query parameter is invalid."}
    with SandboxServer(settings()) as sb:
        sb.script("outreach_quota", [version])
        sb.script("check_eligibility", [version])
        result, _ = execute(campaign, sb, tmp_path / "l.db", check=0)
        by_endpoint = sb.stats()["by_endpoint"]
    assert result["exit_code"] == 0 and result["counts"]["sent"] == 360, result["counts"]
    assert by_endpoint["outreach_quota"] == 1 and by_endpoint["check_eligibility"] == 1


@pytest.mark.parametrize("answer", ["path", "version"])
def test_where_the_2026_endpoints_do_not_answer_each_is_asked_once_and_the_run_goes_on(tmp_path, answer):
    campaign = write_campaign(tmp_path, 120)
    with SandboxServer(settings(disabled_endpoints=["check_eligibility", "outreach_quota", "check_conflicts"],
                                disabled_answer=answer)) as sb:
        result, _ = execute(campaign, sb, tmp_path / "l.db", check=0)
        by_endpoint = sb.stats()["by_endpoint"]
    assert result["counts"]["sent"] == 360 and by_endpoint["create_collaboration"] == 3
    assert by_endpoint.get("unknown") == 2  # the eligibility check and the outreach figures, asked once each


def test_plan_and_quota_show_the_platforms_outreach_figures(tmp_path):
    campaign = write_campaign(tmp_path, 30)
    with SandboxServer(SandboxSettings(ineligible_permille=0, weekly_outreach=700)) as sb:
        execute(campaign, sb, tmp_path / "l.db", check=0)
    plan = json_out(run_cli("plan", campaign, "--json", env={"TRENDIO_LEDGER": str(tmp_path / "l.db")},
                            check=0))["plan"]
    platform = plan["outreach"]["platform"]  # as read before the run, with the run's 30 new creators since
    assert platform["total"] == 700 and platform["used"] + platform["used_since_read"] == 30
    assert platform["left"] == 670


# --- legacy plain ids --------------------------------------------------------------------------------------------
def test_legacy_ids_create_through_202405_and_the_ledger_keeps_open_ids(tmp_path):
    campaign = write_campaign(tmp_path, 20, api="legacy-ids")
    with SandboxServer(settings()) as sb:
        result, _ = execute(campaign, sb, tmp_path / "l.db", check=0)
        versions = sb.stats()["by_endpoint_version"]
        pairs = sb.invited_pairs()
    assert result["counts"]["sent"] == 60
    assert any("202405" in k for k in versions) and not any(k.endswith("202508") and "create" in k for k in versions)
    open_ids = {c["creator_id"] for c in creators_of(campaign)}
    assert {c for (c,) in rows(tmp_path / "l.db", "SELECT DISTINCT creator_id FROM invitations")} == open_ids
    assert {p["creator_id"] for p in pairs} == open_ids


def test_an_older_ledger_named_by_plain_ids_keeps_every_creator_from_a_second_invitation(tmp_path):
    campaign = write_campaign(tmp_path, 20)
    people = creators_of(campaign)
    ledger = tmp_path / "l.db"
    from trendio_cli.ledger import Ledger

    with Ledger.open(ledger) as led:  # what an earlier version wrote: plain ids, sent
        run = led.start_run(brand="testbrand", campaign="old", command="execute")
        led.insert_planned("testbrand", "old", run, [(people[i]["creator_user_id"], "1729384756", "mid", "k")
                                                     for i in range(5)])
    conn = sqlite3.connect(ledger)
    conn.execute("UPDATE invitations SET state = 'sent', claimed_at = '2026-11-01T00:00:00.000000Z'")
    conn.commit()
    conn.close()
    plan = json_out(run_cli("plan", campaign, "--json", env={"TRENDIO_LEDGER": str(ledger)}, check=0))["plan"]
    assert plan["pairs"] == 60 - 5  # the five plain-id pairs count for their open ids
    with SandboxServer(settings()) as sb:
        result, _ = execute(campaign, sb, ledger, check=0)
    assert result["counts"]["sent"] == 55
    moved = rows(ledger, "SELECT COUNT(*) FROM invitations WHERE creator_id GLOB '[0-9]*'")[0][0]
    assert moved == 0  # the old rows now carry the open ids


# --- the plan's estimate -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["spring-glow-2026", "fitfuel-protein"])
def test_plans_request_estimate_is_within_ten_percent_of_what_execute_sends(tmp_path, name):
    import shutil
    from datetime import date

    shutil.copytree(Path(__file__).resolve().parent.parent / "campaigns" / name, tmp_path / name)
    campaign = tmp_path / name / "campaign.yaml"
    ledger = tmp_path / "l.db"
    # planned as of the day execute runs (the bundled campaigns send on weekdays only)
    plan = json_out(run_cli("plan", campaign, "--json", "--date", date.today().isoformat(),
                            env={"TRENDIO_LEDGER": str(ledger)}, check=0))["plan"]
    with SandboxServer(SandboxSettings()) as sb:
        result, _ = execute(campaign, sb, ledger, check=0)
    estimate, sent = plan["requests"]["total"], result["counts"]["requests"]
    assert "conflicts" in plan["requests"]["not_counted"]  # it says what it leaves out
    assert abs(sent - estimate) <= 0.1 * max(estimate, 1), (plan["requests"], result["counts"])
