"""Pacing: the send schedule in the ledger (groups of slots, one size per window, holds after 429s), the
Pacer's groups (one transaction per group, late groups move together), and groups seen from the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trendio_cli.ledger as ledger_module
from helpers import json_out, run_cli, write_campaign
from trendio_cli.ledger import CallSpec, Ledger, QuotaExhausted, SlotRequest
from trendio_cli.pacing import LATE_SEND_S, Pacer, PaceRule
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings


def test_rules_take_groups_that_divide_the_limit():
    rule = PaceRule.for_rate(50)
    assert (rule.limit, rule.window_ms, rule.group) == (50, 1025, 10)
    assert rule.spacing_s == pytest.approx(0.0205) and rule.per_second == pytest.approx(48.78, abs=0.01)
    assert [PaceRule.for_rate(r).group for r in (45, 7, 11, 12, 1, 0.5)] == [9, 7, 1, 6, 1, 1]
    times = rule.schedule(25, start=100.0)
    assert times[:10] == [100.0] * 10 and times[10:20] == [pytest.approx(100.205)] * 10
    assert times[20:] == [pytest.approx(100.41)] * 5


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = types.SimpleNamespace(time=lambda: self.now, monotonic=time.monotonic, sleep=time.sleep,
                                     strftime=time.strftime, gmtime=time.gmtime)
        monkeypatch.setattr(ledger_module, "time", fake)


def window_counts(sends: list[float], width: float = 1.0) -> int:
    """The most sends in any half-open window [t, t + width) (the platform's second)."""
    sends = sorted(sends)
    most, j = 0, 0
    for i, t in enumerate(sends):
        while sends[j] <= t - width:
            j += 1
        most = max(most, i - j + 1)
    return most


step = st.tuples(
    st.integers(0, 2),  # which process
    st.one_of(st.just(0.0), st.floats(0, 0.02), st.floats(0, 0.5)),  # time passing before it asks
    st.sampled_from(["claim", "claim", "claim", "claim", "claim45", "slow", "hold"]),
    st.floats(0, 1),  # how late its requests leave, as a share of LATE_SEND_S (and of a hold's length)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=20, max_size=200))
def test_no_window_ever_holds_more_than_the_limit(steps):
    """Three processes take groups from one scope's schedule at random moments, some with another rule (45/s,
    groups of 9), some slowed after 429s, with holds that switch the scope to single slots; each sends up to
    its group's size late by up to LATE_SEND_S. No second ever holds more than 50 requests."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        clock = FakeClock()
        clock.install(mp)
        path = Path(tmp) / "l.db"
        ledgers = [Ledger.open(path) for _ in range(3)]
        r50, r45 = PaceRule.for_rate(50), PaceRule.for_rate(45)
        sends: list[float] = []
        for who, dt, action, share in steps:
            clock.now += dt
            ledger = ledgers[who]
            if action == "hold":
                ledger.pace_hold("app:x", clock.now + share, single_until=clock.now + 3 * share)
                continue
            rule = r45 if action == "claim45" else r50
            spacing = rule.spacing_s * (2 if action == "slow" else 1)
            send_at, size = ledger.pace_slot(SlotRequest("app:x", spacing, rule.group, rule.window_ms / 1000))
            assert send_at >= clock.now - 1e-9 and size in (1, rule.group)
            sends += [send_at + share * LATE_SEND_S] * (size if share > 0.2 else 1)  # full, mostly
        for ledger in ledgers:
            ledger.close()
    assert window_counts(sends) <= 50


def test_groups_of_one_size_fill_the_window_exactly(monkeypatch, tmp_path):
    """At full pace, one process: exactly 50 requests in every 1.025 s, never 51 in a second."""
    clock = FakeClock()
    clock.install(monkeypatch)
    rule = PaceRule.for_rate(50)
    request = SlotRequest("brand:b", rule.spacing_s, rule.group, rule.window_ms / 1000)
    sends = []
    with Ledger.open(tmp_path / "l.db") as ledger:
        for _ in range(100):
            send_at, size = ledger.pace_slot(request)
            sends += [send_at + LATE_SEND_S * 0.99] * size
            clock.now = max(clock.now, send_at)  # the next group is taken when this one leaves
    assert window_counts(sends) == 50
    assert (sends[-1] - sends[0]) == pytest.approx(99 * 10 * rule.spacing_s, abs=0.02)


def test_a_429_holds_the_scope_then_single_slots_then_groups_each_a_window_apart(monkeypatch, tmp_path):
    clock = FakeClock()
    clock.install(monkeypatch)
    rule = PaceRule.for_rate(50)
    request = SlotRequest("app:x", rule.spacing_s, rule.group, rule.window_ms / 1000)
    a, b = Ledger.open(tmp_path / "l.db"), Ledger.open(tmp_path / "l.db")  # two processes
    first, size = a.pace_slot(request)
    assert (first, size) == (clock.now, 10)
    b.pace_hold("app:x", clock.now + 0.3, single_until=clock.now + 600)  # b got a 429
    single, size = a.pace_slot(request)
    assert size == 1
    assert single >= first + 10 * rule.spacing_s + rule.window_ms / 1000  # a window after the last group
    after, size = b.pace_slot(request)
    assert size == 1 and after == pytest.approx(single + rule.spacing_s)
    clock.now += 601  # single slots are over: groups again, a window after the last single
    back, size = a.pace_slot(request)
    assert size == 10 and back >= after + rule.spacing_s + rule.window_ms / 1000 - 1e-9
    a.close()
    b.close()


def test_a_schedule_written_under_a_clock_that_went_back_is_not_waited_for(monkeypatch, tmp_path):
    clock = FakeClock()
    clock.install(monkeypatch)
    rule = PaceRule.for_rate(50)
    request = SlotRequest("brand:b", rule.spacing_s, rule.group, rule.window_ms / 1000)
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.pace_slot(request)
        ledger.pace_hold("brand:b", clock.now + 3600)  # written an hour "ahead"
        send_at, size = ledger.pace_slot(request)
        assert (send_at, size) == (clock.now, 10)
        clock.now += 30
        ledger.pace_hold("brand:b", clock.now + 60)  # a long Retry-After is waited for
        assert ledger.pace_slot(request)[0] == clock.now + 60


def spec(i: int, limit: int = 1000) -> CallSpec:
    return CallSpec("b", "2026-11-25", "create_collaboration", limit, None, f"k{i}", 1, None, [(f"c{i}", "p")])


def test_reserve_calls_writes_a_group_at_once_and_a_refused_call_changes_nothing(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        run = ledger.start_run(brand="b", campaign="c", command="test")
        ledger.insert_planned("b", "c", run, [(f"c{i}", "p", "t", f"k{i}") for i in range(5)])
        calls, slots = ledger.reserve_calls([spec(i, limit=3) for i in range(5)],
                                            pace=SlotRequest("brand:b", 0.0205, 10, 1.025))
        assert [isinstance(c, int) for c in calls] == [True, True, True, False, False]
        assert isinstance(calls[3], QuotaExhausted) and calls[3].used == 3
        assert slots is not None and slots[1] == 10
        assert ledger.calls_used("b", "2026-11-25") == 3 == ledger.calls_count("b")
        assert ledger.invitation_states("b") == {"pending": 3, "planned": 2}
        with pytest.raises(QuotaExhausted):  # one call refused alone: nothing of it, not even its slots
            ledger.reserve_call(brand="b", quota_day="2026-11-25", endpoint="e", limit=3, run_id=None,
                                pace=SlotRequest("brand:other", 0.0205, 10, 1.025))
        assert ledger.conn.execute("SELECT COUNT(*) FROM pace WHERE scope = 'brand:other'").fetchone()[0] == 0


def test_deferred_outcomes_ride_with_the_next_transaction_or_the_close(tmp_path):
    path = tmp_path / "l.db"
    writer, reader = Ledger.open(path), Ledger.open(path, readonly=True)
    run = writer.start_run(brand="b", campaign="c", command="test")
    writer.insert_planned("b", "c", run, [("1", "p", "t", "k"), ("2", "p", "t", "k")])
    call = writer.reserve_call(brand="b", quota_day="d", endpoint="e", limit=9, run_id=run, batch_key="k",
                               claim=[("1", "p"), ("2", "p")]).call_id
    writer.record_call(call, outcome="ok", http_status=200, code=0, latency_ms=3.0, request_id="r", defer=True)
    writer.mark("b", [("1", "p")], "sent", collaboration_id="9", defer=True)
    assert reader.invitation_states("b") == {"pending": 2}  # not written yet
    writer.heartbeat("b", run)  # any transaction takes them along
    assert reader.invitation_states("b") == {"sent": 1, "pending": 1}
    assert reader.conn.execute("SELECT outcome FROM api_calls").fetchall() == [("ok",)]
    writer.mark("b", [("2", "p")], "sent", collaboration_id="9", defer=True)
    writer.close()
    assert reader.invitation_states("b") == {"sent": 2}
    reader.close()


def test_a_process_killed_before_its_deferred_outcome_leaves_the_pairs_pending(tmp_path):
    """What deferring costs: the outcome of the last request is lost with the process, never the write-ahead
    claim; the pairs stay pending, and the next run reconciles them (as after any crash mid-request)."""
    path = tmp_path / "l.db"
    script = f"""
import os, signal
from trendio_cli.ledger import Ledger
ledger = Ledger.open({str(path)!r})
run = ledger.start_run(brand="b", campaign="c", command="test")
ledger.insert_planned("b", "c", run, [("1", "p", "t", "k")])
ledger.reserve_call(brand="b", quota_day="d", endpoint="e", limit=9, run_id=run, batch_key="k", claim=[("1", "p")])
ledger.mark("b", [("1", "p")], "sent", collaboration_id="9", defer=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    with Ledger.open(path, readonly=True) as ledger:
        assert [p.creator_id for p in ledger.pending("b")] == ["1"]
        assert ledger.calls_used("b", "d") == 1


def test_a_late_group_moves_together_to_new_slots(tmp_path):
    async def go():
        with Ledger.open(tmp_path / "l.db") as ledger:
            pacer = Pacer(PaceRule.for_rate(50), ledger, "brand:b")
            seats = []
            for i in range(3):  # nothing was scheduled: they share a group that leaves 5 ms after the first came
                async with pacer.turn():
                    seats.append(pacer.join(spec(i)))
            due = seats[0].group.send_at
            time.sleep(due - time.time() + 0.03)  # a busy process: the group's slot passes before it can leave
            results = await asyncio.gather(*(pacer.wait(s) for s in seats))
            left = time.time()
            return pacer, due, results, left, ledger.calls_count("b")

    pacer, due, results, left, calls = asyncio.run(go())
    send_times = {send_at for _, send_at in results}
    assert len(send_times) == 1 and pacer.late == 1  # moved once, all together
    moved = send_times.pop()
    assert moved >= due + 10 * PaceRule.for_rate(50).spacing_s - 1e-6  # after the 10 slots it had taken
    assert left >= moved and left - moved < 0.1
    assert sorted(call for call, _ in results) == [1, 2, 3] and calls == 3


def test_a_full_group_is_written_in_one_transaction_with_the_next_groups_slots(tmp_path):
    commits = []

    async def go():
        with Ledger.open(tmp_path / "l.db") as ledger:
            real = ledger.reserve_calls
            ledger.reserve_calls = lambda specs, pace=None: commits.append((len(specs), pace)) or real(specs, pace)
            pacer = Pacer(PaceRule.for_rate(50), ledger, "brand:b")
            seats = []
            for i in range(20):
                async with pacer.turn():
                    seats.append(pacer.join(spec(i)))
            results = await asyncio.gather(*(pacer.wait(s) for s in seats))
            return results

    results = asyncio.run(go())
    # Nothing was scheduled: the first request opens a group (its reservation and the group's slots in one
    # transaction) that leaves 5 ms later; 9 more fill it, written in one transaction with the next group's
    # slots; the next 10 fill that one, written when it is full, with the slots of the one after.
    assert [(n, pace is not None) for n, pace in commits] == [(1, True), (9, True), (10, True)]
    times = sorted({send_at for _, send_at in results})
    assert len(times) == 2 and times[1] - times[0] == pytest.approx(10 * PaceRule.for_rate(50).spacing_s, abs=1e-3)
    assert sorted(call for call, _ in results) == list(range(1, 21))


def test_requests_arrive_at_the_sandbox_in_groups_under_the_limit(tmp_path):
    """Seen from the server: arrivals come in bursts of at most 10, a group period (205 ms) apart, never more
    than 50 in a second, no 429."""
    campaign = write_campaign(tmp_path, 120, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    log = tmp_path / "requests.jsonl"
    with SandboxServer(SandboxSettings(latency_ms=50, ineligible_permille=0), log_path=str(log)) as sb:
        result = json_out(run_cli("execute", campaign, "--yes", "--json",
                                  env={"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(tmp_path / "l.db")}))
        stats = sb.stats()
    assert result["counts"]["sent"] == 120 and stats["http_429"] == 0 and stats["max_requests_in_window"] <= 50
    arrivals = sorted(json.loads(line)["t"] for line in log.read_text().splitlines())
    bursts: list[list[float]] = []
    for t in arrivals:
        if bursts and t - bursts[-1][0] < 0.05:
            bursts[-1].append(t)
        else:
            bursts.append([t])
    assert max(len(b) for b in bursts) <= 10 and len(bursts) <= 14  # 12 groups, and a first one split at most
    starts = [b[0] for b in bursts if len(b) == 10]
    assert len(starts) >= 10
    assert min(b - a for a, b in zip(starts, starts[1:])) >= 0.2


SLOW_CONNECTS = """
import asyncio.base_events, sys
real = asyncio.base_events.BaseEventLoop.create_connection

async def slow_connect(self, *args, **kwargs):
    await asyncio.sleep(0.4)  # a TLS handshake with a far-away API
    return await real(self, *args, **kwargs)

asyncio.base_events.BaseEventLoop.create_connection = slow_connect
sys.argv[0] = "trendio"
from trendio_cli.cli import main
main()
"""


def test_slow_connects_do_not_stall_the_other_requests(tmp_path):
    """Against a far-away API a new connection takes a TLS handshake: a request's connection is opened while
    its group waits, never while the others wait their turn. With 400 ms connects, 150 requests take about
    their paced time (3.1 s) plus a connect or two (4.0 s here); opening connections in turn took 7.6 s.
    (`execute` runs in its own process, with its connects slowed down, as the sandbox's clock must not share
    this process's interpreter with it.)"""
    campaign = write_campaign(tmp_path, 150, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    with SandboxServer(SandboxSettings(latency_ms=300, ineligible_permille=0)) as sb:
        env = {**os.environ, "TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(tmp_path / "l.db")}
        proc = subprocess.run([sys.executable, "-c", SLOW_CONNECTS, "execute", str(campaign), "--yes", "--json"],
                              env=env, capture_output=True, text=True, timeout=120)
        stats = sb.stats()
    result = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert result["counts"]["sent"] == 150 and stats["http_429"] == 0 and stats["max_requests_in_window"] <= 50
    assert result["duration_s"] < 6.5, result["duration_s"]
