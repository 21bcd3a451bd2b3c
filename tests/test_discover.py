"""trendio creators discover over real HTTP against the sandbox's marketplace: pages with the first answer's
search_key, writes a creators file validate accepts, extends it without duplicates, stays within its request
budget and outside the reserve; and the saved-plan flow keeps creator attributes in the ledger too."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

from helpers import json_out, run_cli, write_campaign
from trendio_cli.creators import load_creators
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings


def env_for(sb, ledger):
    return {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)}


def test_discover_writes_a_valid_creators_file_within_its_budget_and_extends_it_without_duplicates(tmp_path: Path):
    out = tmp_path / "found.csv"
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0, marketplace_size=2000)) as sb:
        env = env_for(sb, ledger)
        first = json_out(run_cli("creators", "discover", "--brand", "glowlab", "--out", out, "--min-followers",
                                 "5000", "--limit", "50", "--max-requests", "2", "--json", env=env, check=0))
        assert first["requests"] == 2 and first["pages"] == 2 and first["added"] == 40  # 2 pages of 20
        file = load_creators(out)
        assert not file.errors and len(file.creators) == 40
        assert all(c.followers >= 5000 and len(c.creator_id) > 30 for c in file.creators)
        again = json_out(run_cli("creators", "discover", "--brand", "glowlab", "--out", out, "--min-followers",
                                 "5000", "--limit", "30", "--json", env=env, check=0))
        searches = sb.stats()["by_endpoint"]["search_creators"]
    rows = list(csv.DictReader(out.open()))
    ids = [r["creator_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 40 + again["added"] and again["added"] == 30
    assert searches == first["requests"] + again["requests"]  # nothing more than it reports
    conn = sqlite3.connect(ledger)
    assert conn.execute("SELECT COUNT(*) FROM api_calls WHERE endpoint = 'search_creators'").fetchone()[0] == searches


def test_discover_pages_with_the_first_answers_search_key(tmp_path: Path):
    out = tmp_path / "found.jsonl"
    with SandboxServer(SandboxSettings(ineligible_permille=0, marketplace_size=500),
                       log_path=str(tmp_path / "log.jsonl")) as sb:
        doc = json_out(run_cli("creators", "discover", "--brand", "b", "--out", out, "--keyword", "a",
                               "--limit", "36", "--page-size", "12", "--json", env=env_for(sb, tmp_path / "l.db"),
                               check=0))
    assert doc["pages"] == 3 and doc["added"] == 36
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len({x["creator_id"] for x in lines}) == 36  # later pages were the same ranking, not a new one


def test_discover_never_spends_the_reserve(tmp_path: Path):
    campaign = write_campaign(tmp_path, 10, limits={"daily_requests": 20, "reserve_requests": 18})
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        proc = run_cli("creators", "discover", "--campaign", campaign, "--out", tmp_path / "more.csv", "--limit",
                       "500", "--json", env=env_for(sb, tmp_path / "l.db"))
    doc = json_out(proc)
    assert proc.returncode == 4 and doc["requests"] == 2  # 20 a day, 18 kept for syncs
    assert doc["stop_reason"] == "daily_quota"


def test_the_saved_plan_flow_keeps_creator_attributes_in_the_ledger(tmp_path: Path):
    campaign = write_campaign(tmp_path, 30)
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0, weekly_outreach=1_000_000)) as sb:
        env = env_for(sb, ledger)
        run_cli("plan", campaign, "--out", tmp_path / "plan.json", env=env, check=0)
        run_cli("execute", tmp_path / "plan.json", "--yes", env=env, check=0)
    conn = sqlite3.connect(ledger)
    rows = conn.execute("SELECT followers, gmv_30d, category, engagement_rate, last_active, creator_user_id "
                        "FROM creators").fetchall()
    assert len(rows) == 30 and all(r[0] is not None and r[2] and r[4] and r[5] for r in rows)
