"""Every kind of fault, one at a time, over real HTTP: the right handling, and no pair lost or duplicated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from helpers import json_out, run_cli, write_campaign
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import FAULT_FORMS, SandboxSettings


def sent(ledger: Path) -> set[tuple[str, str]]:
    return set(sqlite3.connect(ledger).execute("SELECT creator_id, product_id FROM invitations WHERE state = 'sent'"))


def run_until_done(campaign: Path, env: dict[str, str], attempts: int = 5) -> list[dict]:
    results = []
    for _ in range(attempts):
        proc = run_cli("execute", campaign, "--yes", "--json", env=env)
        assert proc.returncode in (0, 3), proc.stderr[-1500:]
        results.append(json_out(proc))
        if proc.returncode == 0:
            return results
    return results


def check_exact(sb: SandboxServer, ledger: Path, expected_pairs: int) -> None:
    stats = sb.stats()
    platform = {(p["creator_id"], p["product_id"]) for p in sb.invited_pairs()}
    assert stats["pairs_sent_more_than_once"] == 0 and stats["duplicate_attempts"] == 0
    assert platform == sent(ledger)
    assert len(platform) == expected_pairs
    conn = sqlite3.connect(ledger)
    assert conn.execute("SELECT COUNT(*) FROM invitations WHERE state IN ('pending', 'planned')").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM api_calls").fetchone()[0] >= stats["requests"]


@pytest.mark.parametrize("form", FAULT_FORMS)
def test_each_fault_form_is_retried_without_loss_or_duplicate(tmp_path: Path, form: str):
    campaign = write_campaign(tmp_path, 100, limits={"creators_per_request": 5},
                              products=[{"id": "1", "commission": "10%"}, {"id": "2", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    settings = SandboxSettings(ineligible_permille=0, fault_rate=0.3, fault_forms=[form], seed=11)
    with SandboxServer(settings) as sb:
        env = {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)}
        results = run_until_done(campaign, env)
        assert sb.stats()["faults"] > 0
        assert sum(r["counts"]["retries"] for r in results) > 0
        check_exact(sb, ledger, 200)


@pytest.mark.slow
def test_timeouts_are_reconciled_not_resent_blindly(tmp_path: Path):
    campaign = write_campaign(tmp_path, 40, limits={"creators_per_request": 10})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0, latency_ms=1500)) as sb:
        env = {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger), "TRENDIO_HTTP_TIMEOUT": "0.5"}
        first = json_out(run_cli("execute", campaign, "--yes", "--json", env=env))
        # every answer is too slow: the creates happened, the conflicts checks find them, nothing is resent
        assert first["counts"]["sent"] + first["counts"]["uncertain"] + first["counts"]["unsent"] == 120
        sb.configure(latency_ms=0)
        run_until_done(campaign, {**env, "TRENDIO_HTTP_TIMEOUT": "30"})
        check_exact(sb, ledger, 120)


@pytest.mark.parametrize("retry_after", [True, False])
def test_429s_with_and_without_retry_after_slow_down_and_lose_nothing(tmp_path: Path, retry_after: bool):
    campaign = write_campaign(tmp_path, 60, limits={"creators_per_request": 1},
                              products=[{"id": "1", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    # the platform allows far less than the campaign's 50/s: the client must be told, and listen
    settings = SandboxSettings(ineligible_permille=0, rate_limit=10, retry_after=retry_after)
    with SandboxServer(settings) as sb:
        env = {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)}
        result = run_until_done(campaign, env)[-1]
        stats = sb.stats()
        assert stats["http_429"] > 0 and result["pace"]["penalties"] > 0
        # hammering at 50/s against 10/s would draw ~80% 429s; slowing down keeps them well under that
        assert stats["http_429"] < stats["requests"] * 0.6
        check_exact(sb, ledger, 60)


def test_a_clock_skewed_past_the_timestamp_window_stops_the_run_clearly(tmp_path: Path):
    campaign = write_campaign(tmp_path, 20)
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0, clock_skew_s=600)) as sb:
        proc = run_cli("execute", campaign, "--yes", "--json", env={"TRENDIO_BASE_URL": sb.url,
                                                                    "TRENDIO_LEDGER": str(ledger)})
        assert proc.returncode == 5
        doc = json_out(proc)
        assert "36009004" in doc["errors"][0]["message"] and "clock" in doc["errors"][0]["hint"]
        assert sent(ledger) == set() and sb.stats()["invited_pairs"] == 0
        conn = sqlite3.connect(ledger)
        assert conn.execute("SELECT COUNT(*) FROM invitations").fetchone()[0] == 0  # released, nothing pending
