"""Every campaign of every brand in one run: fair sharing, priorities, one brand's failure stays its own."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from helpers import json_out, run_cli, shop_credentials, shop_env, write_campaign
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings

BRANDS = ("alpha", "beta", "gamma")


def folder(tmp_path: Path) -> Path:
    root = tmp_path / "campaigns"
    write_campaign(root / "alpha-low", 60, start=0, brand="alpha", campaign="alpha-low", priority=1,
                   limits={"creators_per_request": 2, "rate_scope": "app"})
    write_campaign(root / "alpha-high", 60, start=1000, brand="alpha", campaign="alpha-high", priority=9,
                   limits={"creators_per_request": 2, "rate_scope": "app"})
    write_campaign(root / "beta", 60, start=2000, brand="beta", campaign="beta-one",
                   limits={"creators_per_request": 2, "rate_scope": "app"})
    write_campaign(root / "gamma", 60, start=3000, brand="gamma", campaign="gamma-one",
                   limits={"creators_per_request": 2, "rate_scope": "app"})
    return root


def test_one_run_schedules_every_campaign_of_every_brand(tmp_path: Path):
    root = folder(tmp_path)
    ledger = tmp_path / "l.db"
    settings = SandboxSettings(latency_ms=40, ineligible_permille=0)
    with SandboxServer(settings, credentials=shop_credentials(BRANDS)) as sb:
        env = {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger), **shop_env(BRANDS),
               "TRENDIO_GAMMA_ACCESS_TOKEN": "revoked-token"}
        proc = run_cli("execute", root, "--yes", "--json", env=env, timeout=300)
        doc = json_out(proc)
        stats = sb.stats()
    by_brand = {b["brand"]: b for b in doc["brands"]}
    assert proc.returncode == 5 == doc["exit_code"]  # the worst brand's: gamma's credentials were refused
    assert by_brand["gamma"]["exit_code"] == 5 and by_brand["gamma"]["campaigns"][0]["counts"]["sent"] == 0
    assert by_brand["alpha"]["exit_code"] == 0 and by_brand["beta"]["exit_code"] == 0
    assert [r["campaign"] for r in by_brand["alpha"]["campaigns"]] == ["alpha-high", "alpha-low"]  # priority
    assert all(r["counts"]["sent"] == 180 for b in ("alpha", "beta") for r in by_brand[b]["campaigns"])
    assert stats["http_429"] == 0 and stats["max_requests_in_window"] <= 50
    conn = sqlite3.connect(ledger)
    rows = dict(conn.execute("SELECT brand, COUNT(*) FROM invitations WHERE state = 'sent' GROUP BY brand"))
    assert rows == {"alpha": 360, "beta": 180}
    # alpha and beta ran side by side: their requests interleave instead of one brand waiting for the other
    calls = [b for b, in conn.execute("SELECT brand FROM api_calls WHERE brand IN ('alpha', 'beta') ORDER BY id")]
    first_beta = calls.index("beta")
    assert first_beta < len(calls) // 2


def test_a_scheduled_run_with_nothing_to_do_is_quick_and_free(tmp_path: Path):
    root = folder(tmp_path)
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0), credentials=shop_credentials(BRANDS)) as sb:
        env = {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger), **shop_env(BRANDS)}
        run_cli("execute", root, "--yes", env=env, check=0, timeout=300)
        before = sb.stats()["requests"]
        started = time.monotonic()
        again = run_cli("execute", root, "--yes", "--json", env=env, check=0)
        elapsed = time.monotonic() - started
        assert sb.stats()["requests"] == before
    assert json_out(again)["counts"]["requests"] == 0
    assert elapsed < 15


def test_overlapping_runs_skip_the_brands_another_run_holds(tmp_path: Path):
    root = folder(tmp_path)
    ledger = tmp_path / "l.db"
    from trendio_cli.ledger import Ledger

    with Ledger.open(ledger) as led:  # a live run (this test process) holds alpha
        run = led.start_run(brand="alpha", campaign="x", command="execute")
        led.acquire_brand_lock("alpha", run)
    with SandboxServer(SandboxSettings(ineligible_permille=0), credentials=shop_credentials(BRANDS)) as sb:
        env = {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger), **shop_env(BRANDS)}
        doc = json_out(run_cli("execute", root, "--yes", "--json", env=env, check=0, timeout=300))
    by_brand = {b["brand"]: b for b in doc["brands"]}
    assert by_brand["alpha"]["status"] == "skipped" and "held by run" in by_brand["alpha"]["note"]
    assert by_brand["beta"]["status"] == by_brand["gamma"]["status"] == "success"


def test_plan_and_dry_run_take_a_folder_too(tmp_path: Path):
    root = folder(tmp_path)
    env = {"TRENDIO_LEDGER": str(tmp_path / "l.db")}
    plans = json_out(run_cli("plan", root, "--json", env=env, check=0))["plans"]
    assert sorted(p["campaign"] for p in plans) == ["alpha-high", "alpha-low", "beta-one", "gamma-one"]
    runs = json_out(run_cli("dry-run", root, "--json", env=env, check=0))["runs"]
    assert sum(r["plan"]["requests"]["creates"] for r in runs) == 4 * 30
    # and, where the platform offers them, one eligibility check and the outreach figures for each
    assert sum(r["requests_total"] for r in runs) == 4 * 32
    bad = run_cli("plan", root, "--out", tmp_path / "p.json", env=env)
    assert bad.returncode == 2 and "single campaign file" in bad.stderr


def test_ctrl_c_stops_every_brand_even_after_one_has_finished(tmp_path: Path):
    import json
    import os
    import signal
    import subprocess
    import sys

    root = tmp_path / "campaigns"
    write_campaign(root / "quick", 2, start=0, brand="alpha", campaign="quick")
    write_campaign(root / "slow", 200, start=2000, brand="beta", campaign="slow",
                   limits={"creators_per_request": 1}, products=[{"id": "5", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(latency_ms=300, ineligible_permille=0),
                       credentials=shop_credentials(BRANDS)) as sb:
        env = {**os.environ, "TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger), **shop_env(BRANDS)}
        proc = subprocess.Popen([sys.executable, "-m", "trendio_cli", "execute", str(root), "--yes", "--json"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3.0)  # alpha's two creators are long done; beta is still sending
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        platform = {(p["creator_id"], p["product_id"]) for p in sb.invited_pairs()}
    assert proc.returncode == 130, err[-1500:]
    doc = json.loads(out)
    beta = next(b for b in doc["brands"] if b["brand"] == "beta")
    assert beta["campaigns"][0]["stop_reason"] == "interrupted"
    conn = sqlite3.connect(ledger)
    assert platform == set(conn.execute("SELECT creator_id, product_id FROM invitations WHERE state = 'sent'"))
    assert conn.execute("SELECT COUNT(*) FROM invitations WHERE state IN ('pending', 'planned')").fetchone()[0] == 0
