"""Fencing: a run writes under its brand's lock only while its epoch is the lock's (checked in the same
transaction), a live holder on this host keeps its lock whatever its heartbeat, and outcomes move a pair only
along the state machine. Then the takeover itself, as real processes: a run paused with SIGSTOP while a run
on another host takes its brand over, resumed with SIGCONT."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import json_out, run_cli, write_campaign
from trendio_cli.errors import BadInput, Refused
from trendio_cli.executor import check_batches
from trendio_cli.ledger import ClaimRefused, Ledger, LockLost
from trendio_cli.planner import Batch
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings


def start_run(ledger: Ledger, brand: str = "b") -> int:
    run = ledger.start_run(brand=brand, campaign="c", command="execute")
    ledger.acquire_brand_lock(brand, run)
    return run


def test_every_acquisition_takes_a_new_epoch(tmp_path: Path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        first = start_run(ledger)
        ledger.release_brand_lock("b", first)
        second = start_run(ledger)
        assert ledger.fence is not None and ledger.fence.epoch == 2 and ledger.fence.run_id == second
        assert ledger.locks()[0]["epoch"] == 2
        assert start_run(ledger, "other") and ledger.fence.epoch == 1  # per brand


def test_a_run_that_lost_its_lock_can_write_nothing_under_it(tmp_path: Path, monkeypatch):
    path = tmp_path / "l.db"
    old = Ledger.open(path)
    run = start_run(old)
    old.insert_planned("b", "c", run, [("1", "p", "t", "k"), ("2", "p", "t", "k")])
    old.claim("b", run, "k", [("1", "p")])
    old.mark("b", [("1", "p")], "sent", collaboration_id="9", defer=True)  # waiting for the next transaction
    # another host takes the brand over: the old run's heartbeat is older than the staleness allowed there
    old.conn.execute("UPDATE run_locks SET heartbeat_at = '2020-01-01T00:00:00.000000Z'")
    monkeypatch.setenv("TRENDIO_HOST", "another-host")
    new = Ledger.open(path)
    taker = start_run(new)
    writes = {
        "claim": lambda: old.claim("b", run, "k", [("2", "p")]),
        "outcome": lambda: old.mark("b", [("1", "p")], "sent", collaboration_id="9"),
        "heartbeat": lambda: old.heartbeat("b", run),
        "planned rows": lambda: old.insert_planned("b", "c", run, [("3", "p", "t", "k")]),
        "clear planned": lambda: old.clear_planned("b"),
        "flags": lambda: old.flag_creators("b", ["1"], "ineligible", "x"),
        "creators": lambda: old.upsert_creators("b", [{"creator_id": "1"}]),
        "plan applied": lambda: old.record_plan_applied(plan_id="p1", brand="b", campaign="c", created_at="x",
                                                        fingerprint="f", pairs=1, run_id=run),
        "reservation": lambda: old.reserve_call(brand="b", quota_day="d", endpoint="e", limit=9, run_id=run),
        "unclaim": lambda: old.unclaim("b", [("1", "p")]),
        "a request about to leave": lambda: old.reserve_call(brand="b", quota_day="d", endpoint="e", limit=9,
                                                             run_id=run, gate=lambda conn: True),
    }
    for what, write in writes.items():
        with pytest.raises(LockLost, match=f"run {run} lost the lock of brand 'b': run {taker} "):
            write()
        assert new.invitation_states("b") == {"pending": 1, "planned": 1}, what
    assert new.calls_used("b", "d") == 0 and new.plan_applied("p1") is None
    old.finish_run(run, status="lock_lost", exit_code=5, counts={}, errors=[])  # its own row: written
    old.release_brand_lock("b", run)  # never the new holder's lock
    old.close()  # the deferred outcome was dropped with the lost lock
    assert [r["run_id"] for r in new.locks()] == [taker]
    assert new.invitation_states("b") == {"pending": 1, "planned": 1}
    assert new.runs()[-1]["status"] == "lock_lost"
    new.heartbeat("b", taker)  # the holder writes on
    new.close()


def test_a_live_holder_on_this_host_keeps_its_lock_whatever_its_heartbeat(tmp_path: Path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        start_run(ledger)  # held by this (live) process
        ledger.conn.execute("UPDATE run_locks SET heartbeat_at = '2020-01-01T00:00:00.000000Z'")
        with pytest.raises(Refused, match="held by run"):
            ledger.acquire_brand_lock("b", 99)


def test_a_dead_holder_or_a_reused_pid_on_this_host_is_taken_over(tmp_path: Path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        start_run(ledger)
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
        ledger.conn.execute("UPDATE run_locks SET pid = ?", (int(dead),))  # fresh heartbeat, process gone
        ledger.acquire_brand_lock("b", 2)
        # a live process that started after the lock was taken is not its holder (a pid reused after a reboot)
        later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            ledger.conn.execute("UPDATE run_locks SET pid = ?, acquired_at = '2020-01-01T00:00:00.000000Z'",
                                (later.pid,))
            if Path("/proc/self/stat").exists():
                assert ledger.acquire_brand_lock("b", 3) == 3
        finally:
            later.kill()
            later.wait()


def test_a_holder_on_another_host_keeps_its_lock_while_it_beats(tmp_path: Path, monkeypatch):
    path = tmp_path / "l.db"
    monkeypatch.setenv("TRENDIO_HOST", "host-a")
    holder = Ledger.open(path)
    start_run(holder)
    monkeypatch.setenv("TRENDIO_HOST", "host-b")
    with Ledger.open(path) as other:
        with pytest.raises(Refused, match="on host-a"):
            other.acquire_brand_lock("b", 50)  # a minute-old heartbeat from another host still holds
        monkeypatch.setenv("TRENDIO_LOCK_STALE_S", "120")
        holder.conn.execute("UPDATE run_locks SET heartbeat_at = ?",
                            (time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - 60)),))
        with pytest.raises(Refused):
            other.acquire_brand_lock("b", 50)
        monkeypatch.setenv("TRENDIO_LOCK_STALE_S", "30")
        assert other.acquire_brand_lock("b", 50) == 2
    holder.close()


def test_outcomes_move_a_pair_only_along_the_state_machine(tmp_path: Path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        run = start_run(ledger)
        ledger.insert_planned("b", "c", run, [(c, "p", "t", "k") for c in "1234"])
        assert ledger.claim("b", run, "k", [("1", "p"), ("2", "p"), ("3", "p")]) == 3
        assert ledger.claim("b", run, "k", [("1", "p")]) == 0  # pending already: claimed once only
        with pytest.raises(ClaimRefused, match="creator 1 x product p"):
            ledger.reserve_call(brand="b", quota_day="d", endpoint="e", limit=9, run_id=run, claim=[("1", "p")])
        assert ledger.calls_used("b", "d") == 0
        ledger.mark("b", [("1", "p")], "sent", collaboration_id="7")
        ledger.mark("b", [("1", "p")], "conflict", code=16024022)  # the pair this run invited stays sent
        ledger.mark("b", [("4", "p")], "failed")  # a planned pair was never sent: no outcome
        ledger.unclaim("b", [("1", "p"), ("2", "p")])  # only pending goes back to planned
        ledger.mark("b", [("3", "p")], "ineligible")
        ledger.unclaim("b", [("3", "p")])
        assert {c: ledger.invitation("b", c, "p")["state"] for c in "1234"} == {
            "1": "sent", "2": "planned", "3": "ineligible", "4": "planned"}
        assert ledger.invitation("b", "1", "p")["collaboration_id"] == "7"
        with pytest.raises(ValueError):
            ledger.mark("b", [("2", "p")], "planned")


def test_a_plan_listing_a_pair_twice_is_refused_before_anything_is_sent():
    one = Batch("k1", "t", ["1", "2"], ["p"], [])
    with pytest.raises(BadInput, match="creator 1 with product p twice"):
        check_batches([one, one])
    with pytest.raises(BadInput, match=r"batch k2 \(twice\)"):
        check_batches([Batch("k2", "t", ["1", "1"], ["p"], [])])
    check_batches([one, Batch("k3", "t", ["3"], ["p"], [])])


# --- the takeover, as real processes -------------------------------------------------------------
def start(campaign: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trendio_cli", "execute", str(campaign), "--yes", "--json"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_requests(sb: SandboxServer, at_least: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 60
    while sb.stats()["requests"] < at_least:
        assert proc.poll() is None and time.time() < deadline, "the run did not get going"
        time.sleep(0.05)


def pause_outside_a_transaction(proc: subprocess.Popen, ledger: Path) -> None:
    """SIGSTOP, at a moment the process holds no write transaction: a process paused inside one holds
    SQLite's write lock, and every other writer waits for it (then fails, "database is locked") until it
    resumes, commits, and is fenced out at its next transaction."""
    for _ in range(50):
        proc.send_signal(signal.SIGSTOP)
        probe = sqlite3.connect(ledger, timeout=0.2, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.1)
        finally:
            probe.close()
    pytest.fail("the run was always inside a transaction")


def test_a_paused_run_whose_brand_another_host_took_over_sends_nothing_more(tmp_path: Path):
    """Run A (host "host-a", faked with TRENDIO_HOST) is paused with SIGSTOP mid-campaign. Run B, on "host-b",
    finds A's heartbeat older than its staleness (TRENDIO_LOCK_STALE_S=1), takes the brand over, reconciles
    what A left pending and sends the rest. A is resumed: it notices at once that its lock is gone, sends
    nothing more and exits 5. The platform saw every pair once; no pair A invited is recorded as conflict."""
    campaign = write_campaign(tmp_path, 400, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    log = tmp_path / "requests.jsonl"
    with SandboxServer(SandboxSettings(latency_ms=100, ineligible_permille=0), log_path=str(log)) as sb:
        env = {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)}
        a = start(campaign, {**env, "TRENDIO_HOST": "host-a"})
        wait_for_requests(sb, 60, a)
        pause_outside_a_transaction(a, ledger)
        paused_at = time.time()
        try:
            time.sleep(1.5)  # A's last heartbeat is now more than 1 s old
            b = run_cli("execute", campaign, "--yes", "--json", timeout=180,
                        env={**env, "TRENDIO_HOST": "host-b", "TRENDIO_LOCK_STALE_S": "1"})
            at_takeover = sb.stats()["requests"]
            resumed_at = time.time()
        finally:
            a.send_signal(signal.SIGCONT)
        out, err = a.communicate(timeout=120)
        time.sleep(0.5)
        stats = sb.stats()
        platform = {(p["creator_id"], p["product_id"]) for p in sb.invited_pairs()}
    # A request whose headers had left when A was paused has its body read only once A resumes (httpcore
    # writes the two apart): in flight, not sent after the resume. Nothing of A's may *arrive* after it.
    arrivals = [json.loads(x) for x in log.read_text().splitlines()]
    in_flight = [x for x in arrivals if x["arrived"] < paused_at and x["t"] >= resumed_at]
    assert not [x for x in arrivals if x["arrived"] >= resumed_at]
    assert len(in_flight) <= 1
    assert b.returncode == 0, b.stderr[-1500:]
    assert a.returncode == 5, err[-1500:]
    result = json.loads(out)
    assert result["stop_reason"] == "lock_lost"
    assert "lost the lock of brand 'testbrand'" in result["errors"][0]["message"]
    assert stats["requests"] == at_takeover + len(in_flight)  # A sent nothing after it was resumed
    # (B reconciled a create in flight as not made and sent the pair again: the platform refused one of the two)
    assert stats["duplicate_attempts"] <= len(in_flight) and stats["pairs_sent_more_than_once"] <= len(in_flight)
    conn = sqlite3.connect(ledger)
    states = dict(conn.execute("SELECT state, COUNT(*) FROM invitations GROUP BY state").fetchall())
    assert states == {"sent": 400}
    assert platform == set(conn.execute("SELECT creator_id, product_id FROM invitations WHERE state = 'sent'"))
    assert dict(conn.execute("SELECT command, status FROM runs WHERE id = ?", (result["run_id"],)).fetchall()) == {
        "execute": "lock_lost"}
    assert json_out(b)["counts"]["reconciled_sent"] > 0  # what A had in flight when it was paused


def test_a_second_run_on_the_same_host_is_refused_while_the_paused_first_lives(tmp_path: Path):
    """Same host: a paused run keeps its brand, however old its heartbeat; resumed, it finishes the campaign."""
    campaign = write_campaign(tmp_path, 200, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(latency_ms=50, ineligible_permille=0)) as sb:
        env = {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)}
        a = start(campaign, env)
        wait_for_requests(sb, 30, a)
        pause_outside_a_transaction(a, ledger)
        try:
            with sqlite3.connect(ledger) as conn:  # as if it had slept for a day
                conn.execute("UPDATE run_locks SET heartbeat_at = '2020-01-01T00:00:00.000000Z'")
            b = run_cli("execute", campaign, "--yes", "--json", env={**env, "TRENDIO_LOCK_STALE_S": "1"})
        finally:
            a.send_signal(signal.SIGCONT)
        out, err = a.communicate(timeout=120)
        stats = sb.stats()
    assert b.returncode == 5 and "held by run" in json_out(b)["errors"][0]["message"]
    assert a.returncode == 0, err[-1500:]
    assert json.loads(out)["counts"]["sent"] == 200
    assert stats["duplicate_attempts"] == 0 and stats["invited_pairs"] == 200
