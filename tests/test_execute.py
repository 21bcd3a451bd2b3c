"""execute, plan and dry-run end to end: real subprocesses, a real ledger file, the sandbox over real HTTP."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpers import json_out, run_cli, shop_credentials, shop_env, write_campaign
from trendio_cli.api.credentials import Credentials
from trendio_cli.executor import FOR_THE_WEEK
from trendio_cli.ledger import Ledger
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings


def env_for(sb: SandboxServer, ledger: Path, **extra: str) -> dict[str, str]:
    return {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger), **extra}


def ledger_rows(ledger: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(ledger)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def sent_pairs(ledger: Path) -> set[tuple[str, str]]:
    return set(ledger_rows(ledger, "SELECT creator_id, product_id FROM invitations WHERE state = 'sent'"))


def sandbox_pairs(sb: SandboxServer) -> set[tuple[str, str]]:
    return {(p["creator_id"], p["product_id"]) for p in sb.invited_pairs()}


def test_five_thousand_creators_by_three_products_at_200ms(tmp_path: Path):
    campaign = write_campaign(tmp_path, 5000, limits={"creators_per_request": 20})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(latency_ms=200, ineligible_permille=0, weekly_outreach=1_000_000)) as sb:
        proc = run_cli("execute", campaign, "--yes", "--json", env=env_for(sb, ledger), check=0, timeout=300)
        result = json_out(proc)
        stats = sb.stats()
        assert result["status"] == "success" and result["counts"]["sent"] == 15_000
        assert stats["invited_pairs"] == 15_000
        assert stats["http_429"] == 0 and stats["duplicate_attempts"] == 0
        assert stats["max_requests_in_window"] <= 50
        day = next(iter(stats["quota_used"])).split("/")[1]
        # 250 creates, the outreach figures, and who of the 5,000 can be reached (100 a request)
        assert result["counts"]["creates"] == 250 and result["counts"]["eligibility_checks"] == 1 + 50
        assert result["counts"]["conflict_checks"] == 0  # nothing to read back
        with Ledger.open(ledger, readonly=True) as led:
            assert led.calls_used("testbrand", day) == stats["requests"] == 250 + 1 + 50
        assert sent_pairs(ledger) == sandbox_pairs(sb)
        # 250 requests at 50/s cannot take less than ~5 s; more than 4x that means the pacing is broken
        assert result["duration_s"] < 20

        again = json_out(run_cli("execute", campaign, "--yes", "--json", env=env_for(sb, ledger), check=0))
        assert again["counts"]["sent"] == 0 and again["counts"]["requests"] == 0
        assert sb.stats()["requests"] == 301


def test_killed_runs_with_lost_answers_never_duplicate_nor_lose_an_invitation(tmp_path: Path):
    campaign = write_campaign(tmp_path, 600, limits={"creators_per_request": 4},
                              products=[{"id": "11", "commission": "10%"}, {"id": "12", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    settings = SandboxSettings(latency_ms=120, jitter_ms=60, lost_rate=0.25, fault_rate=0.05, ineligible_permille=0)
    with SandboxServer(settings) as sb:
        env = {**os.environ, **env_for(sb, ledger)}
        kills = 0
        for attempt in range(40):
            proc = subprocess.Popen([sys.executable, "-m", "trendio_cli", "execute", str(campaign), "--yes", "--json"],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if attempt < 6:
                time.sleep(1.5 + 0.3 * attempt)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
            out, err = proc.communicate(timeout=300)
            if proc.returncode == 0 and json.loads(out)["counts"]["requests"] == 0:
                break
            assert proc.returncode in (0, 3, -signal.SIGKILL), (proc.returncode, err[-2000:])
        else:
            pytest.fail("execute never finished")
        assert kills >= 3
        stats = sb.stats()
        assert stats["lost_responses"] > 0
        assert stats["pairs_sent_more_than_once"] == 0 and stats["duplicate_attempts"] == 0
        assert sandbox_pairs(sb) == sent_pairs(ledger)
        assert len(sent_pairs(ledger)) == 1200
        assert ledger_rows(ledger, "SELECT COUNT(*) FROM invitations WHERE state = 'pending'") == [(0,)]
        with Ledger.open(ledger, readonly=True) as led:
            assert led.calls_count("testbrand") >= stats["requests"]


def test_two_brands_in_two_processes_share_the_app_rate_limit(tmp_path: Path):
    ledger = tmp_path / "l.db"
    paths = [write_campaign(tmp_path / b, 150, start=i * 1000, brand=b,
                            limits={"creators_per_request": 1, "rate_scope": "app"},
                            products=[{"id": "5", "commission": "10%"}]) for i, b in enumerate(("alpha", "beta"))]
    with SandboxServer(SandboxSettings(latency_ms=50, ineligible_permille=0),
                       credentials=shop_credentials(("alpha", "beta"))) as sb:
        env = {**os.environ, **env_for(sb, ledger), **shop_env(("alpha", "beta"))}
        procs = [subprocess.Popen([sys.executable, "-m", "trendio_cli", "execute", str(p), "--yes", "--json"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in paths]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
        stats = sb.stats()
        # per brand: 150 creates, the outreach figures and two eligibility checks
        assert stats["by_endpoint"]["create_collaboration"] == 300 and stats["requests"] == 306
        assert stats["invited_pairs"] == 300
        assert stats["http_429"] == 0
        assert stats["max_requests_in_window"] <= 50
        assert set(stats["quota_used"]) >= {k for k in stats["quota_used"] if k.startswith("cipher-")}
        assert len([k for k in stats["quota_used"] if k.startswith("cipher-")]) == 2


def test_a_second_run_for_a_busy_brand_is_refused_and_sigint_stops_gracefully(tmp_path: Path):
    ledger = tmp_path / "l.db"
    campaign = write_campaign(tmp_path, 300, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    with SandboxServer(SandboxSettings(latency_ms=300, ineligible_permille=0)) as sb:
        env = {**os.environ, **env_for(sb, ledger)}
        first = subprocess.Popen([sys.executable, "-m", "trendio_cli", "execute", str(campaign), "--yes", "--json"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if ledger.exists() and ledger_rows(ledger, "SELECT COUNT(*) FROM run_locks")[0][0]:
                    break
            except sqlite3.OperationalError:  # the first process is still creating the ledger
                pass
            time.sleep(0.1)
        second = run_cli("execute", campaign, "--yes", "--json", env=env_for(sb, ledger))
        assert second.returncode == 5, second.stderr
        assert "held by run" in json_out(second)["errors"][0]["message"]
        time.sleep(1.0)
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 130, err[-1500:]
        result = json.loads(out)
        assert result["stop_reason"] == "interrupted"
        assert 0 < result["counts"]["sent"] < 300
        assert ledger_rows(ledger, "SELECT COUNT(*) FROM invitations WHERE state = 'pending'") == [(0,)]
        assert ledger_rows(ledger, "SELECT COUNT(*) FROM run_locks") == [(0,)]
        assert sent_pairs(ledger) == sandbox_pairs(sb)
        # the rest goes in the next run
        rest = json_out(run_cli("execute", campaign, "--yes", "--json", env=env_for(sb, ledger), check=0))
        assert rest["counts"]["sent"] + result["counts"]["sent"] == 300


def test_a_bad_campaign_file_exits_2_with_its_location_and_leaves_the_ledger_alone(tmp_path: Path):
    ledger = tmp_path / "l.db"
    Ledger.open(ledger).close()
    before = ledger.read_bytes()
    campaign = write_campaign(tmp_path, 10)
    campaign.write_text(campaign.read_text().replace("daily_target: 1000000", "daily_target: lots"))
    for command in ("execute", "plan", "dry-run"):
        proc = run_cli(command, campaign, "--yes" if command == "execute" else "--json",
                       env={"TRENDIO_LEDGER": str(ledger), "TRENDIO_BASE_URL": "http://127.0.0.1:9"})
        assert proc.returncode == 2, (command, proc.stderr)
        assert f"{campaign}:" in proc.stderr and "daily_target" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert ledger.read_bytes() == before


def test_dry_run_opens_no_connection_and_writes_nothing(tmp_path: Path):
    campaign = write_campaign(tmp_path, 200)
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        run_cli("execute", campaign, "--yes", env={**env_for(sb, ledger)}, check=0)
    (tmp_path / "more.csv").write_text("creator_id,followers\n" + "".join(f"{9000 + i},5000\n" for i in range(120)))
    campaign.write_text(campaign.read_text().replace("file: creators.csv", "file: more.csv"))
    before = ledger.read_bytes()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    proc = run_cli("dry-run", campaign, "--json", env={"TRENDIO_LEDGER": str(ledger), "TRENDIO_BASE_URL": url},
                   check=0)
    result = json_out(proc)
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()
    assert ledger.read_bytes() == before
    # three creates; where the platform offers them, two eligibility checks and the outreach figures
    assert result["plan"]["requests"]["creates"] == 3 == len(result["requests"]) and result["pairs"] == 360
    assert result["requests_total"] == 6
    req = result["requests"][0]
    assert req["query"]["sign"] and req["headers"]["x-tts-access-token"] == "***"
    assert len(req["body"]["creator_user_open_ids"]) == 50
    assert "sandbox-app-secret" not in proc.stdout and "sandbox-access-token" not in proc.stdout


def test_saved_plans_are_applied_once_and_refused_when_stale(tmp_path: Path):
    campaign = write_campaign(tmp_path, 120, schedule={"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri",
                                                                                   "sat", "sun"], "daily_target": 150})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("plan", campaign, "--out", tmp_path / "p1.json", env=env, check=0)
        assert not ledger.exists()  # planning writes nothing
        assert run_cli("dry-run", tmp_path / "p1.json", env=env).returncode == 0 and not ledger.exists()
        first = json_out(run_cli("execute", tmp_path / "p1.json", "--yes", "--json", env=env, check=0))
        assert first["counts"]["sent"] == 150
        again = run_cli("execute", tmp_path / "p1.json", "--yes", "--json", env=env)
        assert again.returncode == 5 and "already applied" in json_out(again)["errors"][0]["message"]
        dry = run_cli("dry-run", tmp_path / "p1.json", env=env)  # says what execute would: refused
        assert dry.returncode == 5 and "already applied" in dry.stderr
        run_cli("plan", campaign, "--out", tmp_path / "p2.json", "--date", "2030-01-02", env=env, check=0)
        ledger_bytes = ledger.read_bytes()
        with Ledger.open(ledger) as led:
            led.flag_creators("testbrand", ["42"], "blocked", "by hand")
        stale = run_cli("execute", tmp_path / "p2.json", "--yes", env=env)
        assert stale.returncode == 5 and "stale" in stale.stderr
        assert ledger_bytes != ledger.read_bytes()
        # a plan for another day, on an unchanged ledger: its target and caps are that day's
        from datetime import datetime, timedelta, timezone

        tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
        run_cli("plan", campaign, "--out", tmp_path / "p3.json", "--date", tomorrow, env=env, check=0)
        other_day = run_cli("execute", tmp_path / "p3.json", "--yes", env=env)
        assert other_day.returncode == 5 and f"was made for {tomorrow}" in " ".join(other_day.stderr.split())
        assert run_cli("dry-run", tmp_path / "p3.json", env=env).returncode == 5
        assert sb.stats()["invited_pairs"] == 150


def test_daily_quota_stops_cleanly_with_exit_4_and_the_reset_time(tmp_path: Path):
    campaign = write_campaign(tmp_path, 40, limits={"daily_requests": 10, "reserve_requests": 2,
                                                    "creators_per_request": 1})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        proc = run_cli("execute", campaign, "--yes", "--json", env=env_for(sb, ledger))
        assert proc.returncode == 4
        result = json_out(proc)
        # 8 requests outside the reserve: the outreach figures, one eligibility check, six creates
        assert result["stop_reason"] == "daily_quota" and result["counts"]["creates"] == 6
        assert "resets at" in result["errors"][0]["hint"]
        assert sb.stats()["requests"] == 8
        assert ledger_rows(ledger, "SELECT COUNT(*) FROM invitations WHERE state IN ('pending', 'planned')") == [(0,)]


def test_the_platforms_own_quota_answer_stops_the_run(tmp_path: Path):
    campaign = write_campaign(tmp_path, 40, limits={"creators_per_request": 1})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0, daily_quota=5)) as sb:
        proc = run_cli("execute", campaign, "--yes", "--json", env=env_for(sb, ledger))
        result = json_out(proc)
        assert proc.returncode == 4 and result["stop_reason"] == "daily_quota"
        assert sent_pairs(ledger) == sandbox_pairs(sb) and len(sent_pairs(ledger)) > 0
        assert ledger_rows(ledger, "SELECT COUNT(*) FROM invitations WHERE state IN ('pending', 'planned')") == [(0,)]


def test_the_platforms_outreach_figures_keep_creates_within_the_weeks_quota(tmp_path: Path):
    campaign = write_campaign(tmp_path, 40, limits={"creators_per_request": 5})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0, weekly_outreach=12)) as sb:
        result = json_out(run_cli("execute", campaign, "--yes", "--json", env=env_for(sb, ledger), check=0))
        stats = sb.stats()
    assert 0 < result["counts"]["sent"] <= 36 and stats["by_code"].get("16024019", 0) == 0  # never refused


def test_outreach_exhausted_stops_inviting_with_exit_4(tmp_path: Path):
    campaign = write_campaign(tmp_path, 40, limits={"creators_per_request": 5})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0, weekly_outreach=12,
                                       disabled_endpoints=["outreach_quota", "check_eligibility"])) as sb:
        proc = run_cli("execute", campaign, "--yes", "--json", env=env_for(sb, ledger))
        assert proc.returncode == 4 and json_out(proc)["stop_reason"] == "outreach_quota"
        assert sent_pairs(ledger) == sandbox_pairs(sb) and len(sent_pairs(ledger)) == 30


@pytest.mark.parametrize("mode", ["named", "unnamed"])
def test_ineligible_creators_are_recorded_and_the_rest_sent(tmp_path: Path, mode: str):
    campaign = write_campaign(tmp_path, 200)
    ledger = tmp_path / "l.db"
    # the create path: without the eligibility check, refused creates are how the platform says it
    with SandboxServer(SandboxSettings(ineligible_permille=60, ineligible_mode=mode,
                                       disabled_endpoints=["check_eligibility"])) as sb:
        result = json_out(run_cli("execute", campaign, "--yes", "--json", env=env_for(sb, ledger), check=0))
        ineligible = {c for c, in ledger_rows(ledger, "SELECT DISTINCT creator_id FROM invitations "
                                                     "WHERE state = 'ineligible'")}
        with open(tmp_path / "creators.csv", newline="") as fh:
            everyone = {row["creator_id"] for row in csv.DictReader(fh)}
        codes = {c: httpx.get(f"{sb.url}/_sandbox/creators/{c}", timeout=10).json()["ineligible_code"]
                 for c in everyone}
        refused = {c for c, code in codes.items() if code}
        # the shop's weekly standing (follower limit) or the seller's block: left out for the week, not for good
        for_the_week = {c for c in refused if codes[c] in FOR_THE_WEEK}
        expected = refused - for_the_week
        assert ineligible == expected and expected
        assert result["counts"]["sent"] == 3 * (200 - len(refused))
        assert sent_pairs(ledger) == sandbox_pairs(sb)
        flags = dict(ledger_rows(ledger, "SELECT creator_id, flag FROM creators WHERE flag IS NOT NULL"))
        assert flags == {**{c: "ineligible" for c in expected}, **{c: "unreachable" for c in for_the_week}}


def test_rejected_credentials_stop_with_exit_5_and_lose_nothing(tmp_path: Path):
    campaign = write_campaign(tmp_path, 40, limits={"creators_per_request": 2})
    ledger = tmp_path / "l.db"
    # every token lasts 6 requests: the first is refreshed once by itself, the second's end stops the brand
    with SandboxServer(SandboxSettings(ineligible_permille=0, token_expires_after=6)) as sb:
        proc = run_cli("execute", campaign, "--yes", "--json", env=env_for(sb, ledger))
        assert proc.returncode == 5
        result = json_out(proc)
        assert result["stop_reason"] == "auth" and "105002" in result["errors"][0]["message"]
        assert "refresh" in result["errors"][0]["hint"] and result["counts"]["token_refreshes"] == 1
        assert sent_pairs(ledger) == sandbox_pairs(sb) and len(sent_pairs(ledger)) % 6 == 0 < len(sent_pairs(ledger))
        assert ledger_rows(ledger, "SELECT COUNT(*) FROM invitations WHERE state IN ('pending', 'planned')") == [(0,)]
        wrong = run_cli("execute", campaign, "--yes", env={**env_for(sb, ledger), "TRENDIO_APP_SECRET": "wrong"})
        assert wrong.returncode == 5 and "credentials rejected" in wrong.stdout + wrong.stderr


def test_secrets_never_reach_output_or_the_ledger(tmp_path: Path):
    secret, token = "s3cr3t-never-print-me", "t0ken-never-print-me"
    creds = Credentials("app-key-1", secret, token, "cipher-1")
    campaign = write_campaign(tmp_path, 60, limits={"creators_per_request": 10})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0, fault_rate=0.2, seed=5), credentials=[creds],
                       log_path=str(tmp_path / "requests.jsonl")) as sb:
        env = {**env_for(sb, ledger), "TRENDIO_APP_KEY": "app-key-1", "TRENDIO_APP_SECRET": secret,
               "TRENDIO_ACCESS_TOKEN": token, "TRENDIO_SHOP_CIPHER": "cipher-1"}
        outputs = [run_cli(*args, env=env) for args in (
            ("plan", campaign, "--json"), ("dry-run", campaign, "--json"), ("dry-run", campaign),
            ("execute", campaign, "--yes", "--json"), ("status", "--json"), ("runs",), ("quota", "--json"))]
        assert outputs[3].returncode == 0, outputs[3].stderr
        bad = run_cli("execute", campaign, "--yes", env={**env, "TRENDIO_DEBUG": "1", "TRENDIO_BASE_URL": "http://x.example"})
        outputs.append(bad)
    blobs = [o.stdout + o.stderr for o in outputs]
    blobs += [p.read_bytes().decode("latin-1") for p in tmp_path.iterdir() if p.is_file()]
    for blob in blobs:
        assert secret not in blob and token not in blob


def test_demo_runs_the_whole_flow(tmp_path: Path):
    proc = run_cli("demo", "--json", env={"HOME": str(tmp_path)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json_out(proc)
    assert doc["validate"]["errors"] == 0
    assert doc["execute"]["counts"]["sent"] > 1000
    assert doc["sandbox_stats"]["duplicate_attempts"] == 0 and doc["sandbox_stats"]["http_429"] == 0


def test_max_requests_caps_a_run(tmp_path: Path):
    campaign = write_campaign(tmp_path, 40, limits={"creators_per_request": 1})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        proc = run_cli("execute", campaign, "--yes", "--json", "--max-requests", "3", env=env_for(sb, ledger))
        result = json_out(proc)
        assert proc.returncode == 4 and result["stop_reason"] == "max_requests"
        # every request counts, the outreach figures and the eligibility check too
        assert sb.stats()["requests"] == 3 == result["counts"]["requests"]
        assert len(sent_pairs(ledger)) == 3 * result["counts"]["creates"] == 3
