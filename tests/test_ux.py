"""Trendio as a new operator meets it (issue 16): nothing silent, nothing cut off, numbers that agree,
errors for scripts and people, a ledger that people can browse. The CLI runs as a real process, at 80 and
200 columns where the layout matters."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import pwd
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpers import REPO, json_out, run_cli, write_campaign
from trendio_cli.ledger import Ledger
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings

WIDTHS = ("80", "200")
ESC = "\x1b"


def open_id(n: int) -> str:
    """A Creator Open ID as the platform hands them out: 54 characters of the URL-safe alphabet."""
    return base64.urlsafe_b64encode(hashlib.sha256(f"creator-{n}".encode()).digest() * 2).decode()[:54]


def write_open_id_creators(path: Path, count: int) -> list[str]:
    ids = [open_id(i) for i in range(count)]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["creator_id", "handle", "followers", "gmv_30d", "category", "engagement_rate", "last_active"])
        for i, cid in enumerate(ids):
            w.writerow([cid, f"creator_{i:03d}", 5000 + i * 3000, 100.0, "beauty", 0.05, "2099-01-01"])
    return ids


def env_for(sb: SandboxServer, ledger: Path, **extra: str) -> dict[str, str]:
    return {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger), **extra}


def lines_fit(output: str, width: int) -> bool:
    return all(len(line) <= width for line in output.splitlines())


# --- a wrong or missing ledger is never silent --------------------------------------------------------
VIEWS = (("status",), ("quota",), ("runs",), ("dashboard", "ops"), ("dashboard", "merchant"),
         ("report", "some-campaign", "--html", "{tmp}/r.html"), ("ledger", "export", "--out", "{tmp}/x.jsonl"),
         ("creators", "list", "--brand", "b"))


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: " ".join(v[:2]))
def test_a_view_of_a_missing_ledger_exits_2_naming_the_location_and_its_source(tmp_path, view):
    args = [a.replace("{tmp}", str(tmp_path)) for a in view]
    missing = tmp_path / "nowhere.db"
    by_env = run_cli(*args, env={"TRENDIO_LEDGER": str(missing)})
    assert by_env.returncode == 2, (by_env.stdout, by_env.stderr)
    assert str(missing) in by_env.stderr and "TRENDIO_LEDGER" in by_env.stderr
    by_flag = run_cli(*args, "--ledger", str(tmp_path / "other.db"))
    assert by_flag.returncode == 2 and "other.db" in by_flag.stderr and "--ledger" in by_flag.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no ledger made, no empty export or report


def test_every_view_works_on_an_empty_ledger(tmp_path):
    env = {"TRENDIO_LEDGER": str(tmp_path / "empty.db")}
    Ledger.open(tmp_path / "empty.db").close()
    for args in (("status",), ("runs",), ("quota",), ("dashboard", "ops"), ("dashboard", "merchant"),
                 ("creators", "list", "--brand", "x")):
        assert run_cli(*args, env=env).returncode == 0, args
        assert json_out(run_cli(*args, "--json", env=env, check=0))["status"] == "success"
    assert run_cli("report", "nothing", "--html", tmp_path / "r.html", env=env).returncode == 0
    assert "<svg" in (tmp_path / "r.html").read_text()


def test_execute_makes_a_ledger_only_in_a_folder_that_exists_and_says_so(tmp_path, sandbox):
    campaign = write_campaign(tmp_path / "c", 20)
    nowhere = tmp_path / "no" / "such" / "folder" / "l.db"
    proc = run_cli("execute", campaign, "--yes", env=env_for(sandbox, nowhere))
    assert proc.returncode == 2 and str(nowhere) in proc.stderr and "TRENDIO_LEDGER" in proc.stderr
    assert not (tmp_path / "no").exists()
    assert sandbox.stats()["requests"] == 0
    ledger = tmp_path / "fresh.db"
    proc = run_cli("execute", campaign, "--yes", env=env_for(sandbox, ledger), check=0)
    assert f"new ledger at {ledger}" in proc.stderr
    assert ledger.stat().st_mode & 0o777 == 0o600
    again = run_cli("execute", campaign, "--yes", env=env_for(sandbox, ledger), check=0)
    assert "new ledger" not in again.stderr


def test_sync_never_makes_a_ledger_silently(tmp_path, sandbox):
    missing = tmp_path / "gone.db"
    proc = run_cli("sync", env=env_for(sandbox, missing))
    assert proc.returncode == 2 and str(missing) in proc.stderr and not missing.exists()
    proc = run_cli("sync", "--brand", "b", env=env_for(sandbox, missing), check=0)
    assert f"new ledger at {missing}" in proc.stderr
    proc = run_cli("sync", "--brand", "b", env=env_for(sandbox, tmp_path / "nope" / "l.db"))
    assert proc.returncode == 2 and not (tmp_path / "nope").exists()


def test_a_ledger_file_is_0600_whoever_makes_it(tmp_path, sandbox):
    campaign = write_campaign(tmp_path / "c", 10)
    touched = tmp_path / "touched.db"
    touched.touch(mode=0o644)
    os.chmod(touched, 0o644)  # an empty file someone made: the ledger made in it is private all the same
    run_cli("execute", campaign, "--yes", env=env_for(sandbox, touched), check=0)
    run_cli("init", tmp_path / "p", check=0)
    exported = tmp_path / "export.jsonl"
    run_cli("ledger", "export", "--out", exported, env={"TRENDIO_LEDGER": str(touched)}, check=0)
    run_cli("ledger", "import", exported, "--ledger", tmp_path / "imported.db", check=0)
    for path in (touched, tmp_path / "p" / "trendio.db", tmp_path / "imported.db", exported):
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_most_pairs_coming_back_as_conflicts_is_said_loudly(tmp_path, sandbox):
    campaign = write_campaign(tmp_path / "c", 60)
    run_cli("execute", campaign, "--yes", env=env_for(sandbox, tmp_path / "real.db"), check=0)
    # the same campaign from a ledger that knows nothing of it: the platform answers conflicts
    lost = tmp_path / "lost.db"
    proc = run_cli("execute", campaign, "--yes", "--json", env=env_for(sandbox, lost))
    doc = json_out(proc)
    assert doc["counts"]["conflict"] > doc["counts"]["sent"]
    assert doc["warnings"] and "real ledger elsewhere" in doc["warnings"][0]
    assert "warning:" in proc.stderr and "conflicts" in proc.stderr and str(lost) in proc.stderr
    # the many-campaign summary shows conflicts, ineligible and failed per brand
    other = tmp_path / "many" / "b.yaml"
    write_campaign(tmp_path / "many", 30, name="b.yaml", brand="otherbrand", creators_file="b.csv")
    write_campaign(tmp_path / "many", 60, name="a.yaml")
    assert other.exists()
    many = run_cli("execute", tmp_path / "many", "--yes", env=env_for(sandbox, tmp_path / "third.db",
                                                                       COLUMNS="200"))
    header = next(line for line in many.stdout.splitlines() if "brand" in line and "status" in line)
    for column in ("conflict", "ineligible", "failed", "sent"):
        assert column in header
    row = next(line for line in many.stdout.splitlines() if "testbrand" in line)
    assert re.search(r"│ +180 │", row)  # the 180 conflicts (60 creators x 3 products) are on its row
    assert "real ledger elsewhere" in many.stderr


def test_execute_says_where_it_sends_and_which_ledger_before_asking(tmp_path, sandbox):
    campaign = write_campaign(tmp_path / "c", 20)
    ledger = tmp_path / "l.db"
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "trendio_cli", "execute", str(campaign)], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **env_for(sandbox, ledger)})
    os.close(slave)
    seen = b""
    deadline = time.time() + 60
    while b"Send " not in seen and time.time() < deadline:  # the prompt (stderr) names what it would send
        seen += os.read(proc.stderr.fileno(), 4096)
    before_prompt = seen.decode().split("Send ", 1)[0]
    assert "sandbox" in before_prompt and sandbox.url in before_prompt
    assert str(ledger) in before_prompt and "TRENDIO_LEDGER" in before_prompt
    os.write(master, b"n\n")
    proc.communicate(timeout=60)
    os.close(master)
    assert proc.returncode == 0 and sandbox.stats()["requests"] == 0
    sent = run_cli("execute", campaign, "--yes", env=env_for(sandbox, ledger), check=0)
    assert "sending to the sandbox" in sent.stderr
    real = run_cli("execute", campaign, "--yes", env={"TRENDIO_LEDGER": str(ledger)})
    assert "open-api.tiktokglobalshop.com" in real.stderr  # (then refused: no credentials)


def test_execute_with_nothing_to_send_says_so_and_exits_0_without_a_prompt(tmp_path, sandbox):
    campaign = write_campaign(tmp_path / "c", 20)
    env = env_for(sandbox, tmp_path / "l.db")
    run_cli("execute", campaign, "--yes", env=env, check=0)
    proc = run_cli("execute", campaign, env=env)  # no terminal, no --yes: nothing to confirm
    assert proc.returncode == 0, proc.stderr
    assert "nothing to send" in proc.stderr and "already invited" in proc.stderr
    assert "--yes" not in proc.stderr


# --- nothing cut off ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def open_id_ledger(tmp_path_factory):
    """A campaign of creators with long Creator Open IDs, executed, synced a week later."""
    tmp = tmp_path_factory.mktemp("openids")
    write_open_id_creators(tmp / "creators.csv", 12)
    campaign = write_campaign(tmp, 0, campaign="an-unusually-long-campaign-name-for-a-spring-launch",
                              brand="glowlab-cosmetics-europe")
    ledger = tmp / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        run_cli("execute", campaign, "--yes", env=env_for(sb, ledger), check=0)
        httpx.post(f"{sb.url}/_sandbox/advance", json={"days": 8}).raise_for_status()
        run_cli("sync", env=env_for(sb, ledger), check=0)
    return campaign, ledger


@pytest.mark.parametrize("width", WIDTHS)
def test_no_table_cuts_an_id_a_date_or_a_header(open_id_ledger, width):
    campaign, ledger = open_id_ledger
    env = {"TRENDIO_LEDGER": str(ledger), "COLUMNS": width}
    ids = [row["creator_id"] for row in csv.DictReader((campaign.parent / "creators.csv").open())]
    listed = run_cli("creators", "list", env=env, check=0).stdout
    for cid in ids:
        assert cid in listed
    shown = run_cli("creators", "show", ids[0], env=env, check=0).stdout
    assert ids[0] in shown and "1729384756" in shown
    outputs = {"creators list": listed, "creators show": shown}
    for args in (("status",), ("runs",), ("quota",), ("dashboard", "ops"), ("dashboard", "merchant"),
                 ("plan", campaign)):
        outputs[" ".join(map(str, args))] = run_cli(*args, env=env, check=0).stdout
    for name, out in outputs.items():
        assert "…" not in out and "..." not in out, (name, out)
        assert lines_fit(out, int(width)), (name, out)
    assert "an-unusually-long-campaign-name-for-a-spring-launch" in outputs["runs"]
    assert "glowlab-cosmetics-europe" in outputs["status"]
    merchant = outputs["dashboard merchant"]
    for header in ("invited", "showcased", "content", "waiting", "showcase rate"):
        assert header in merchant
    started = json_out(run_cli("runs", "--json", env=env, check=0))["runs"][-1]["started_at"]
    assert started[:16].replace("T", " ") in outputs["runs"]


@pytest.mark.parametrize("width", WIDTHS)
def test_reset_times_carry_their_time_zone(open_id_ledger, width):
    _, ledger = open_id_ledger
    env = {"TRENDIO_LEDGER": str(ledger), "COLUMNS": width}
    quota = run_cli("quota", env=env, check=0).stdout
    doc = json_out(run_cli("quota", "--json", env=env, check=0))["brands"][0]
    assert doc["requests"]["resets_at"].endswith("+00:00")
    assert doc["outreach"]["resets_at"].endswith("-08:00")  # Sunday 12:00 in the outreach rule's zone
    assert re.search(r"\d{4}-\d\d-\d\d 00:00 UTC\b", quota)
    assert re.search(r"\d{4}-\d\d-\d\d 12:00 UTC-08:00", quota)
    ops = run_cli("dashboard", "ops", env=env, check=0).stdout
    assert re.search(r"resets \d{4}-\d\d-\d\d 00:00 UTC", ops)


@pytest.mark.parametrize("width", ("40", "80", "200"))
def test_validate_prints_one_problem_per_line_at_any_width(tmp_path, width):
    folder = tmp_path / "a-folder-with-a-rather-long-name-as-ci-checkouts-have" / "campaigns"
    campaign = write_campaign(folder, 5, contact_email="not an address", end_date="someday",
                              message="x" * 3, schedule={"timezone": "Mars/Olympus", "days": ["funday"],
                                                         "daily_target": -1})
    proc = run_cli("validate", campaign, env={"COLUMNS": width})
    assert proc.returncode == 2
    doc = json_out(run_cli("validate", campaign, "--json", env={"COLUMNS": width}))
    problems = [p for f in doc["files"] for p in f["problems"]]  # errors and warnings
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(doc["errors"]) >= 3
    assert len(lines) == len(problems)  # one line each, nothing wrapped
    for line in lines:
        assert re.match(rf"{re.escape(str(campaign))}:\d+:\d+: ", line), line


# --- numbers that agree -----------------------------------------------------------------------------
def test_requests_per_second_is_measured_over_the_sending_span_and_never_above_the_limit(tmp_path, sandbox):
    small = write_campaign(tmp_path / "small", 60)  # two creates, the outreach figures, one eligibility check
    doc = json_out(run_cli("execute", small, "--yes", "--json", env=env_for(sandbox, tmp_path / "a.db"), check=0))
    assert doc["counts"]["requests"] == 4 and doc["counts"]["creates"] == 2
    assert 0 < doc["requests_per_second"] <= 50
    assert doc["rate"]["peak_in_one_second"] <= 4


def test_quota_counts_against_the_limits_the_brand_ran_under_and_names_their_campaign(tmp_path, sandbox):
    limits = {"daily_requests": 503, "reserve_requests": 500, "weekly_outreach": 3000}
    campaign = write_campaign(tmp_path, 20, campaign="spring-small", limits=limits)
    ledger = tmp_path / "l.db"
    run_cli("execute", campaign, "--yes", env=env_for(sandbox, ledger))
    env = {"TRENDIO_LEDGER": str(ledger)}
    brand = json_out(run_cli("quota", "--json", env=env, check=0))["brands"][0]
    planned = json_out(run_cli("plan", campaign, "--json", env=env, check=0))["plan"]["quota"]
    assert brand["limits_of"] == "spring-small"
    assert brand["requests"]["limit"] == planned["limit"] == 503
    assert brand["requests"]["used"] == planned["used"] > 0
    assert brand["requests"]["reserve"] == 500 and brand["outreach"]["limit"] == 3000
    shown = run_cli("quota", env=env, check=0).stdout
    assert f"{brand['requests']['used']} / 503" in shown and "/ 3000" in shown
    assert "limits of campaign spring-small" in shown
    # the ops dashboard counts each brand against the same limits
    ops = json_out(run_cli("dashboard", "ops", "--json", env=env, check=0))
    row = next(b for b in ops["brands"] if b["brand"] == brand["brand"])
    assert row["limit"] == 503 and row["used"] == brand["requests"]["used"]
    # a brand that never recorded a campaign is counted against the platform's defaults, and says so
    with Ledger.open(str(ledger)) as led:
        led.start_run(brand="other", campaign=None, command="sync")
    other = json_out(run_cli("quota", "--brand", "other", "--json", env=env, check=0))["brands"][0]
    assert other["limits_of"] is None and other["requests"]["limit"] == 10_000
    assert "platform's default limits" in run_cli("quota", "--brand", "other", env=env, check=0).stdout


def test_the_ops_dashboard_agrees_with_execute_on_peak_rate_and_retries(tmp_path):
    campaign = write_campaign(tmp_path, 300, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    settings = SandboxSettings(ineligible_permille=0, fault_rate=0.08, seed=3)
    with SandboxServer(settings) as sb:
        run = json_out(run_cli("execute", campaign, "--yes", "--json", env=env_for(sb, ledger)))
    assert run["counts"]["retries"] > 0  # faults were answered and retried
    ops = json_out(run_cli("dashboard", "ops", "--json", env={"TRENDIO_LEDGER": str(ledger)}, check=0))
    assert ops["retries_today"] == run["counts"]["retries"]
    assert ops["peak_requests_per_second"] == run["rate"]["peak_in_one_second"]
    assert run["rate"]["peak_in_one_second"] <= 50 and run["requests_per_second"] <= 50
    text = run_cli("dashboard", "ops", env={"TRENDIO_LEDGER": str(ledger), "COLUMNS": "200"}, check=0).stdout
    assert f"peak {run['rate']['peak_in_one_second']} in one second" in text
    assert f"retries today {run['counts']['retries']}" in text


def test_after_ctrl_c_the_progress_bar_shows_what_was_done_and_every_view_says_interrupted(tmp_path):
    campaign = write_campaign(tmp_path, 300, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(latency_ms=300, ineligible_permille=0)) as sb:
        env = {**os.environ, **env_for(sb, ledger), "COLUMNS": "80"}
        proc = subprocess.Popen([sys.executable, "-m", "trendio_cli", "execute", str(campaign), "--yes"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while sb.stats()["requests"] < 20 and time.time() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    bar = [line for line in err.splitlines() if "pairs" in line][-1]
    done, total = map(int, re.search(r"(\d+)/(\d+) pairs", bar).groups())
    assert 0 < done < total == 300
    assert "100%" not in bar and f"{round(100 * done / total)}%" in bar.replace(" ", "")
    assert "…" not in bar and len(bar) <= 80
    assert "-> interrupted" in out
    runs = run_cli("runs", "--json", env={"TRENDIO_LEDGER": str(ledger)}, check=0)
    assert json_out(runs)["runs"][0]["status"] == "interrupted"


def test_the_demo_says_what_it_injected(tmp_path):
    keep = tmp_path / "demo"
    proc = run_cli("demo", "--keep", keep, env={"COLUMNS": "200"}, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with sqlite3.connect(keep / "trendio.db") as conn:
        transient = conn.execute("SELECT COUNT(*) FROM api_calls WHERE outcome = 'transient'").fetchone()[0]
    done = proc.stdout.split("done", 1)[1]
    injected = re.search(r"injected (\d+) transient faults? and cut off (\d+) answers?", done)
    if transient:
        assert injected and int(injected[1]) + int(injected[2]) == transient, done
    else:
        assert injected is None and "None of its faults" in done, done
    assert "despite 0" not in proc.stdout
    # the busiest second is said for the shop (what execute's own figure counts) and for the limit's scope
    seen = re.search(r"saw (\d+) requests .*?at most (\d+) in any one second, (\d+) to one API, where its "
                     r"limit of 50 counts", " ".join(done.split()))
    assert seen, done
    requests, shop, api = map(int, seen.groups())
    assert api <= shop <= requests, done


# --- errors for scripts and people ------------------------------------------------------------------
@pytest.mark.parametrize("args", [("execute", "--json"), ("plan", "--no-such-option", "x", "--json"),
                                  ("status", "--limit", "x", "--json"), ("no-such-command", "--json"),
                                  ("runs", "--limit", "zero", "--json"), ("creators", "show", "--json")])
def test_json_is_honoured_for_usage_errors_too(args):
    proc = run_cli(*args)
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)  # one document, nothing else on stdout
    assert doc["status"] == "error" and doc["exit_code"] == 2 and doc["errors"][0]["message"]
    assert "Traceback" not in proc.stderr


def test_sandbox_with_a_bad_or_busy_port_exits_2_with_one_line():
    for port in ("99999", "0", "-5"):
        proc = run_cli("sandbox", "--port", port, timeout=30)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "port" in proc.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_cli("sandbox", "--port", port, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and str(port) in proc.stderr


def test_creators_show_of_an_unknown_id_exits_2_and_block_records_it_for_the_future(tmp_path, sandbox):
    campaign = write_campaign(tmp_path, 10)
    env = env_for(sandbox, tmp_path / "l.db")
    run_cli("execute", campaign, "--yes", env=env, check=0)
    unknown = open_id(999)
    proc = run_cli("creators", "show", unknown, env=env)
    assert proc.returncode == 2 and unknown in proc.stderr
    block = run_cli("creators", "block", unknown, env=env, check=0)
    assert "not in the ledger yet" in block.stdout and "recorded for the future" in block.stdout
    another = open_id(998)
    assert json_out(run_cli("creators", "block", another, "--json", env=env, check=0))["unknown"] == [another]
    shown = json_out(run_cli("creators", "show", unknown, "--json", env=env, check=0))
    assert shown["creators"][0]["flag"] == "blocked"


def test_colour_where_it_helps_and_no_colour_with_no_color(tmp_path, sandbox):
    campaign = write_campaign(tmp_path, 10)
    env = {**env_for(sandbox, tmp_path / "l.db"), "FORCE_COLOR": "1", "COLUMNS": "120"}
    run_cli("execute", campaign, "--yes", env=env, check=0)
    runs = run_cli("runs", env=env, check=0).stdout
    assert re.search(r"\x1b\[[0-9;]*32m[^\x1b]*success", runs)  # success in green
    error = run_cli("status", "--ledger", tmp_path / "missing.db", env=env).stderr
    assert re.search(r"\x1b\[[0-9;]*31m[^\x1b]*error", error)  # errors in red
    plain = {**env, "NO_COLOR": "1"}
    for out in (run_cli("runs", env=plain, check=0).stdout,
                run_cli("status", "--ledger", tmp_path / "missing.db", env=plain).stderr):
        assert not re.search(r"\x1b\[[0-9;]*3[0-7]m", out)


def test_tier_rows_in_the_campaigns_order(tmp_path, sandbox):
    tiers = [{"name": "gold", "min_followers": 100000}, {"name": "silver", "min_followers": 10000},
             {"name": "bronze", "min_followers": 0}]
    campaign = write_campaign(tmp_path, 200, tiers=tiers)
    env = env_for(sandbox, tmp_path / "l.db")
    plan = json_out(run_cli("plan", campaign, "--json", env=env, check=0))["plan"]
    assert list(plan["tiers"]) == ["gold", "silver", "bronze"]
    run_cli("execute", campaign, "--yes", env=env, check=0)
    merchant = json_out(run_cli("dashboard", "merchant", "--json", env=env, check=0))
    assert [r["tier"] for r in merchant["rows"]] == ["all", "gold", "silver", "bronze"]
    text = run_cli("dashboard", "merchant", env={**env, "COLUMNS": "200"}, check=0).stdout
    assert text.index("gold") < text.index("silver") < text.index("bronze")
    run_cli("report", campaign, "--html", tmp_path / "r.html", env=env, check=0)
    page = (tmp_path / "r.html").read_text()
    assert page.index("<td>gold</td>") < page.index("<td>silver</td>") < page.index("<td>bronze</td>")


def test_runs_records_the_os_user_when_user_is_unset(tmp_path, sandbox):
    campaign = write_campaign(tmp_path, 10)
    env = {k: v for k, v in os.environ.items() if k not in ("USER", "LOGNAME", "USERNAME", "LNAME")}
    env.update(env_for(sandbox, tmp_path / "l.db"))
    # a new session: no controlling terminal, so no login name either (as under cron)
    proc = subprocess.run([sys.executable, "-m", "trendio_cli", "execute", str(campaign), "--yes"], env=env,
                          capture_output=True, text=True, timeout=120, start_new_session=True)
    assert proc.returncode == 0, proc.stderr
    run = json_out(run_cli("runs", "--json", env={"TRENDIO_LEDGER": str(tmp_path / "l.db")}, check=0))["runs"][0]
    assert run["user"] == pwd.getpwuid(os.getuid()).pw_name


# --- the ledger for people who browse it -----------------------------------------------------------
def test_the_ledger_links_invitations_and_plans_to_runs_and_has_views_people_look_up(tmp_path, sandbox):
    campaign = write_campaign(tmp_path / "a", 60)
    ledger = tmp_path / "l.db"
    env = env_for(sandbox, ledger)
    run_cli("execute", campaign, "--yes", env=env, check=0)
    planned = write_campaign(tmp_path / "b", 10, start=500, campaign="planned-one")
    run_cli("plan", planned, "--out", tmp_path / "plan.json", env=env, check=0)
    run_cli("execute", tmp_path / "plan.json", "--yes", env=env, check=0)
    conn = sqlite3.connect(ledger)
    links = {(t, fk[3], fk[2], fk[4]) for t in ("invitations", "plans")
             for fk in conn.execute(f"PRAGMA foreign_key_list({t})")}
    assert ("invitations", "run_id", "runs", "id") in links and ("plans", "applied_run_id", "runs", "id") in links
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    rows = conn.execute("SELECT creator_id, handle, tier, state, run_command FROM invitation_details "
                        "WHERE campaign = 'test-campaign'").fetchall()
    assert len(rows) == 180 and all(r[1] and r[2] and r[4] == "execute" for r in rows)
    per_day = conn.execute("SELECT brand, requests, creates, errors FROM requests_per_day").fetchall()
    # three creates; the campaign's run also read the outreach figures and both checked eligibility once
    assert per_day == [("testbrand", 3 + 2 + 1, 3, 0)]
    indexes = {r[1] for r in conn.execute("SELECT * FROM sqlite_master WHERE type = 'index' AND "
                                          "tbl_name = 'invitations'")}
    assert "idx_invitations_brand_creator_id_product_id" in indexes and len(indexes) >= 6


def test_an_older_ledger_gains_the_links_and_keeps_its_rows_and_indexes(tmp_path):
    from trendio_cli import ledger as ledger_module

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    import sqlite_utils

    old = sqlite_utils.Database(db)
    old["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    for name, fn in ledger_module.MIGRATIONS:
        if name == "m006_links_and_views":
            break
        fn(old)
        old["_migrations"].insert({"name": name, "applied_at": "then"})
    old["runs"].insert({"id": 1, "brand": "b", "command": "execute"})
    old["invitations"].insert_all({"brand": "b", "creator_id": str(i), "product_id": "p", "state": "sent",
                                   "run_id": 1} for i in range(500))
    db.commit()
    indexes_before = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
    proc = run_cli("status", "--json", env={"TRENDIO_LEDGER": str(path)}, check=0)
    assert json_out(proc)["brands"][0]["invitations"] == {"sent": 500}
    db = sqlite3.connect(path)
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")} >= indexes_before
    assert db.execute("SELECT COUNT(*) FROM invitation_details").fetchone()[0] == 500


# --- the README's day ------------------------------------------------------------------------------
def readme_day() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("## A day with trendio", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_readmes_day_works_as_written_with_one_ledger(tmp_path, width, sandbox):
    env = {k: v for k, v in os.environ.items() if k != "TRENDIO_LEDGER"}
    env.update({"TRENDIO_BASE_URL": sandbox.url, "COLUMNS": width})
    cwd = tmp_path
    for line in readme_day():
        for command in line.split("&&"):
            args = shlex.split(command)
            if args[0] == "cd":
                cwd = cwd / args[1]
                continue
            assert args[0] == "trendio"
            args = [a for a in args[1:] if a != "--watch"] + (["--yes"] if args[1] == "execute" else [])
            proc = subprocess.run([sys.executable, "-m", "trendio_cli", *args], cwd=cwd, env=env,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, (command, proc.stdout[-1500:], proc.stderr[-1500:])
            for out in (proc.stdout, proc.stderr):
                assert "…" not in out, (command, out)
            assert lines_fit(proc.stdout, int(width)), (command, proc.stdout)
    ledgers = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.db"))
    assert ledgers == ["my-campaign/trendio.db"]
    assert (tmp_path / "my-campaign" / "report.html").exists()
