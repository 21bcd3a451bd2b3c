"""sync over real HTTP: statuses move, the cost is what it says, lifecycle flags leave creators out and
let them back after the cooldown."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from helpers import json_out, run_cli, write_campaign
from trendio_cli.ledger import Ledger
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings


def env_for(sb: SandboxServer, ledger: Path) -> dict[str, str]:
    return {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)}


def states(ledger: Path) -> dict[str, int]:
    with Ledger.open(ledger, readonly=True) as led:
        return led.invitation_states("testbrand")


def test_sync_moves_states_and_costs_what_it_says(tmp_path: Path):
    campaign = write_campaign(tmp_path, 300)
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        before = sb.stats()["requests"]
        first = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        assert first["changed"] == {} and first["requests"] == first["pages"] == 1  # nobody answered yet
        httpx.post(f"{sb.url}/_sandbox/advance", json={"days": 8}).raise_for_status()
        second = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        stats = sb.stats()
        assert stats["requests"] - before == first["requests"] + second["requests"]
        assert stats["by_endpoint"]["search_collaborations"] == first["requests"] + second["requests"]
        got = states(ledger)
        assert got.get("accepted", 0) > 0 and got.get("declined", 0) > 0
        assert second["changed"]["accepted"] == got["accepted"]
        # what the sandbox says, creator by creator
        truth = {}
        for collab in sb.state.collaborations.values():
            for c in sb.state.collaboration_view(collab)["creators"]:
                truth[c["creator_user_id"]] = c["accept_status"].lower()
        conn = sqlite3.connect(ledger)
        for creator, state in conn.execute("SELECT DISTINCT creator_id, state FROM invitations"):
            assert (truth[creator] if truth[creator] != "pending" else "sent") == state
        # nothing left to learn: no more answers change, and it pages no further than needed
        third = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        assert third["changed"] == {}


def test_sync_spends_only_the_reserve(tmp_path: Path):
    campaign = write_campaign(tmp_path, 60, limits={"reserve_requests": 1, "daily_requests": 100})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        ok = json_out(run_cli("sync", "--campaign", campaign, "--json", env=env, check=0))
        assert ok["brands"][0]["requests"] == 1
        spent = run_cli("sync", "--campaign", campaign, "--json", env=env)
        assert spent.returncode == 4 and json_out(spent)["brands"][0]["requests"] == 0


def test_ended_collaborations_expire_without_a_request(tmp_path: Path):
    campaign = write_campaign(tmp_path, 20)
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        sent = states(ledger)["sent"]
        conn = sqlite3.connect(ledger)
        conn.execute("UPDATE invitations SET expires_at = '2020-01-01T00:00:00.000000Z'")
        conn.commit()
        result = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        assert result["requests"] == 0 and result["changed"] == {"expired": sent} and sent > 40
        assert states(ledger) == {"expired": sent}


def test_unresponsive_creators_are_left_out_then_come_back_after_the_cooldown(tmp_path: Path):
    campaign = write_campaign(tmp_path, 30, lifecycle={"unresponsive_after": 1, "answer_within_days": 3,
                                                        "cooldown_days": 10})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        conn = sqlite3.connect(ledger)
        conn.execute("UPDATE invitations SET claimed_at = '2026-01-01T00:00:00.000000Z'")  # sent long ago
        conn.commit()
        result = json_out(run_cli("sync", "--campaign", campaign, "--json", env=env, check=0))["brands"][0]
        invited = len({c for c, in conn.execute("SELECT DISTINCT creator_id FROM invitations")})
        assert result["flagged_unresponsive"] == invited > 20
        # a second product for the same creators: the plan leaves the unresponsive ones out
        text = campaign.read_text().replace("products:", "products:\n- id: '99'\n  commission: 10%", 1)
        campaign.write_text(text)
        plan = json_out(run_cli("plan", campaign, "--json", env=env, check=0))["plan"]
        assert plan["pairs"] == 0 and plan["skipped"]["flagged unresponsive"] == invited
        conn.execute("UPDATE creators SET flagged_until = '2026-01-02T00:00:00.000000Z'")  # cooldown over
        conn.commit()
        plan = json_out(run_cli("plan", campaign, "--json", env=env, check=0))["plan"]
        assert plan["pairs"] == invited
        # and the old unanswered invitations do not flag them again at once
        again = json_out(run_cli("sync", "--campaign", campaign, "--json", env=env, check=0))["brands"][0]
        assert again["flagged_unresponsive"] == 0


def test_ineligible_creators_never_come_back(tmp_path: Path):
    campaign = write_campaign(tmp_path, 100)
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=100)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        n_bad = len({c for c, in sqlite3.connect(ledger).execute(
            "SELECT creator_id FROM creators WHERE flag = 'ineligible'")})
        assert n_bad > 0
        text = campaign.read_text().replace("products:", "products:\n- id: '99'\n  commission: 10%", 1)
        campaign.write_text(text)
        plan = json_out(run_cli("plan", campaign, "--json", "--date", "2030-01-01", env=env, check=0))["plan"]
        assert plan["skipped"]["flagged ineligible"] == n_bad


def test_inactive_creators_are_left_out(tmp_path: Path):
    campaign = write_campaign(tmp_path, 5, lifecycle={"inactive_after_days": 30})
    (tmp_path / "creators.csv").write_text("creator_id,followers,last_active\n1,100,2020-01-01\n2,100,2099-01-01\n")
    plan = json_out(run_cli("plan", campaign, "--json", env={"TRENDIO_LEDGER": str(tmp_path / "l.db")}, check=0))
    assert plan["plan"]["skipped"] == {"inactive": 1} and plan["plan"]["creators"] == 1
