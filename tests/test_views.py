"""quota, status, runs, the dashboards and the HTML report: right numbers, empty ledgers, a real browser."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess

import httpx
import pytest

from helpers import json_out, run_cli, write_campaign
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A campaign executed against the sandbox, some answers synced back."""
    tmp = tmp_path_factory.mktemp("ran")
    campaign = write_campaign(tmp, 400, limits={"creators_per_request": 25})
    ledger = tmp / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=20)) as sb:
        # (module-wide: the per-test TRENDIO_HOME of conftest is not set up yet)
        env = {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger), "TRENDIO_HOME": str(tmp / "home")}
        run_cli("execute", campaign, "--yes", env=env, check=0)
        httpx.post(f"{sb.url}/_sandbox/advance", json={"days": 8}).raise_for_status()
        run_cli("sync", env=env, check=0)
        stats = sb.stats()
    return campaign, ledger, stats


def test_ops_dashboard_numbers_match_the_platforms(ran):
    campaign, ledger, stats = ran
    doc = json_out(run_cli("dashboard", "ops", "--json", env={"TRENDIO_LEDGER": str(ledger)}, check=0))
    brand = doc["brands"][0]
    shop_requests = stats["requests"] - stats["refreshes"]  # the auth host's token refresh is not the shop's
    assert brand["brand"] == "testbrand" and brand["used"] == shop_requests
    assert sum(brand["by_endpoint"].values()) == shop_requests
    assert brand["by_endpoint"]["create_collaboration"] == stats["by_endpoint"]["create_collaboration"]
    ineligible_codes = ("16024020", "16024021", "16024016", "16024006", "16024018", "16024004", "50001702")
    assert doc["errors_by_class"].get("ineligible", 0) == sum(stats["by_code"].get(c, 0) for c in ineligible_codes)
    assert [r["command"] for r in doc["runs"]] == ["sync", "execute"]
    text = run_cli("dashboard", "ops", env={"TRENDIO_LEDGER": str(ledger), "COLUMNS": "160"}, check=0).stdout
    assert "API usage" in text and "testbrand" in text and "Runs" in text


def test_merchant_dashboard_shows_what_the_client_pays_for(ran):
    campaign, ledger, stats = ran
    doc = json_out(run_cli("dashboard", "merchant", "--json", env={"TRENDIO_LEDGER": str(ledger)}, check=0))
    rows = {r["tier"]: r for r in doc["rows"]}
    total = rows.pop("all")
    assert total["invited"] == stats["invited_pairs"]
    assert sum(r["invited"] for r in rows.values()) == total["invited"]
    assert total["showcased"] + total["waiting"] + total["expired"] == total["invited"]
    assert total["showcased"] >= total["content"] and total["showcased"] > 0
    assert total["showcase_rate"] == round(total["showcased"] / total["invited"], 4)
    conn = sqlite3.connect(ledger)
    orders, gmv = conn.execute("SELECT COUNT(DISTINCT order_id), SUM(gmv) FROM orders "
                               "WHERE status != 'CANCELLED'").fetchone()
    assert total["orders"] == orders > 0 and total["gmv"] == round(gmv, 2)
    assert total["gmv_per_invitation"] == round(gmv / total["invited"], 2)
    assert sum(r["orders"] for r in rows.values()) <= total["orders"]  # (a sale by an unknown username has no tier)
    top = doc["top_creators"]
    assert top and [t["gmv"] for t in top] == sorted((t["gmv"] for t in top), reverse=True)
    assert doc["top_products"][0]["gmv"] <= total["gmv"]
    assert "requests_per_invitation" not in total and "error_rate" not in total  # API usage is the ops view's
    text = run_cli("dashboard", "merchant", env={"TRENDIO_LEDGER": str(ledger), "COLUMNS": "160"}, check=0).stdout
    assert "Top creators by GMV" in text and "Top products by GMV" in text and "GMV" in text


def test_report_is_one_self_contained_file(ran, tmp_path):
    campaign, ledger, _ = ran
    out = tmp_path / "report.html"
    run_cli("report", campaign, "--html", out, env={"TRENDIO_LEDGER": str(ledger)}, check=0)
    page = out.read_text()
    assert page.count('<svg class="chart"') == 4
    assert "Top creators by GMV" in page and "Period covered" in page
    import json as _json

    data = _json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page).group(1))
    days = [d["date"] for d in data["days"]]
    assert days[0] == data["period"]["from"] and days[-1] == data["period"]["to"]
    from datetime import date, timedelta

    assert days == [(date.fromisoformat(days[0]) + timedelta(days=i)).isoformat() for i in range(len(days))]
    assert not re.search(r'(src|href)="https?://', page)  # nothing fetched at view time
    assert "test-campaign" in page


def test_the_reports_days_run_on_a_real_date_axis_with_quiet_days_at_zero(tmp_path):
    from trendio_cli import views
    from trendio_cli.ledger import Ledger

    with Ledger.open(tmp_path / "l.db") as led:
        run = led.start_run(brand="b", campaign="c", command="test")
        led.insert_planned("b", "c", run, [("a", "1", "mid", "k1"), ("z", "1", "mid", "k2")])
    conn = sqlite3.connect(tmp_path / "l.db")
    conn.execute("UPDATE invitations SET state = 'sent', collaboration_id = 'col', claimed_at = CASE creator_id "
                 "WHEN 'a' THEN '2026-11-01T10:00:00.000000Z' ELSE '2026-11-05T10:00:00.000000Z' END")
    conn.commit()
    with Ledger.open(tmp_path / "l.db", readonly=True) as led:
        data = views.report_data(led, "b", "c")
    assert data["period"] == {"from": "2026-11-01", "to": "2026-11-05", "days": 5}
    assert [d["invited"] for d in data["days"]] == [1, 0, 0, 0, 1]


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="no chromium here (CI installs it)")
def test_report_renders_in_a_real_browser_without_console_errors(ran, tmp_path):
    campaign, ledger, _ = ran
    out = tmp_path / "report.html"
    run_cli("report", campaign, "--html", out, env={"TRENDIO_LEDGER": str(ledger)}, check=0)
    assert CHROMIUM, "chromium is needed for this test (.ci/run installs it)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=3000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-charts-rendered="4"' in dom.stdout, dom.stdout[:500]
    assert "data-js-errors" not in dom.stdout
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line]
    assert console_errors == []
    shot = tmp_path / "report.png"  # kept in tmp, out of git
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1000,1400", out.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
