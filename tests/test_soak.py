"""Soak tests with real subprocesses: killed at random moments, raced against each other, stopped by
signals. The ledger's promises must hold every time."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import json_out, run_cli, shop_credentials, shop_env, write_campaign
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings


def start(campaign: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trendio_cli", "execute", str(campaign), "--yes", "--json"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_twenty_kills_over_two_thousand_pairs_lose_and_duplicate_nothing(tmp_path: Path):
    campaign = write_campaign(tmp_path, 1000, limits={"creators_per_request": 4},
                              products=[{"id": "11", "commission": "10%"}, {"id": "12", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    rng = random.Random(2026)
    # (the shop's weekly outreach out of the way: the day's share of it would otherwise end the day's work)
    settings = SandboxSettings(latency_ms=100, jitter_ms=80, lost_rate=0.2, fault_rate=0.05, ineligible_permille=0,
                               weekly_outreach=1_000_000)
    with SandboxServer(settings) as sb:
        env = {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)}
        kills = runs = 0
        while runs < 80:
            runs += 1
            proc = start(campaign, env)
            if kills < 22:
                time.sleep(rng.uniform(0.6, 2.5))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
            out, err = proc.communicate(timeout=300)
            assert proc.returncode in (0, 3, -signal.SIGKILL), err[-1500:]
            if proc.returncode == 0 and json.loads(out)["counts"]["requests"] == 0:
                break
        assert kills >= 20, kills
        stats = sb.stats()
        platform = {(p["creator_id"], p["product_id"]) for p in sb.invited_pairs()}
    conn = sqlite3.connect(ledger)
    in_ledger = set(conn.execute("SELECT creator_id, product_id FROM invitations WHERE state = 'sent'"))
    assert stats["lost_responses"] > 10
    assert stats["pairs_sent_more_than_once"] == 0 and stats["duplicate_attempts"] == 0
    assert platform == in_ledger and len(platform) == 2000
    assert conn.execute("SELECT COUNT(*) FROM invitations WHERE state IN ('pending', 'planned')").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM api_calls").fetchone()[0] >= stats["requests"]
    # a run killed before it wrote its row leaves none (it had not touched the ledger either)
    assert runs - kills <= conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] <= runs


def test_sigterm_stops_gracefully_with_a_summary(tmp_path: Path):
    campaign = write_campaign(tmp_path, 200, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(latency_ms=200, ineligible_permille=0)) as sb:
        proc = start(campaign, {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)})
        deadline = time.monotonic() + 60  # mid-run: once the sandbox has seen some creates
        while sb.stats()["by_endpoint"].get("create_collaboration", 0) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err[-1500:]
        result = json.loads(out)
        assert result["stop_reason"] == "interrupted" and 0 < result["counts"]["sent"] < 200
        platform = {(p["creator_id"], p["product_id"]) for p in sb.invited_pairs()}
    conn = sqlite3.connect(ledger)
    assert platform == set(conn.execute("SELECT creator_id, product_id FROM invitations WHERE state = 'sent'"))
    assert conn.execute("SELECT status, exit_code FROM runs").fetchall() == [("interrupted", 130)]


def test_three_processes_on_one_ledger(tmp_path: Path):
    """alpha and beta run side by side under one app-wide limit; a second alpha is refused; alpha's
    daily quota is never overrun, by the two of them together or by the platform's count."""
    creds = shop_credentials(("alpha", "beta"))
    env = {"TRENDIO_LEDGER": str(tmp_path / "l.db"), **shop_env(("alpha", "beta"))}
    alpha = write_campaign(tmp_path / "alpha", 150, brand="alpha", products=[{"id": "5", "commission": "10%"}],
                           limits={"creators_per_request": 1, "daily_requests": 100, "reserve_requests": 0,
                                   "rate_scope": "app"})
    beta = write_campaign(tmp_path / "beta", 150, start=5000, brand="beta", products=[{"id": "5", "commission": "10%"}],
                          limits={"creators_per_request": 1, "rate_scope": "app"})
    with SandboxServer(SandboxSettings(latency_ms=80, ineligible_permille=0), credentials=creds) as sb:
        env["TRENDIO_BASE_URL"] = sb.url
        first, second = start(alpha, env), start(beta, env)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                held = sqlite3.connect(tmp_path / "l.db").execute(
                    "SELECT COUNT(*) FROM run_locks WHERE brand = 'alpha'").fetchone()[0]
            except sqlite3.OperationalError:  # the first process is still creating the ledger
                held = 0
            if held:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        third = run_cli("execute", alpha, "--yes", "--json", env=env)
        outs = [p.communicate(timeout=120) for p in (first, second)]
        stats = sb.stats()
    assert third.returncode == 5 and "held by run" in json_out(third)["errors"][0]["message"]
    assert first.returncode == 4, outs[0][1][-1000:]  # alpha stopped by its quota, work left
    assert second.returncode == 0, (outs[1][0][-1500:], outs[1][1][-1000:])
    assert stats["http_429"] == 0 and stats["max_requests_in_window"] <= 50
    alpha_used = [n for k, n in stats["quota_used"].items() if k.startswith("cipher-alpha")]
    assert alpha_used == [100]
    conn = sqlite3.connect(tmp_path / "l.db")
    assert conn.execute("SELECT used FROM quota_usage WHERE brand = 'alpha'").fetchone()[0] == 100
    assert conn.execute("SELECT COUNT(*) FROM invitations WHERE brand = 'beta' AND state = 'sent'").fetchone()[0] == 150
