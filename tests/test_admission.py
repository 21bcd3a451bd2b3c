"""Admission: pyrate-limiter's GCRA and sliding window log over the ledger (evenly spaced requests shared by
every process, lateness caught up without a burst and never past the limit, holds after 429s, a clock gone
back), one transaction per request right before it leaves (fencing, rate, quota, claim), a stop ends every
wait, and what the sandbox sees."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trendio_cli.admission as admission_module
import trendio_cli.ledger as ledger_module
from helpers import json_out, run_cli, write_campaign
from trendio_cli.admission import (
    CATCH_UP_SPACING,
    HOLD_CAP_S,
    HOLD_CONNECTION_S,
    WINDOW_MARGIN_MS,
    Admission,
    Later,
    NotSent,
    RateRule,
    _Wait,
    scope_key,
)
from trendio_cli.ledger import CallSpec, ClaimRefused, Ledger, LockLost, QuotaExhausted
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings

SCOPE = "shop:test"


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = types.SimpleNamespace(time=lambda: self.now, monotonic=lambda: self.now, sleep=time.sleep,
                                     strftime=time.strftime, gmtime=time.gmtime)
        monkeypatch.setattr(ledger_module, "time", fake)
        monkeypatch.setattr(admission_module, "time", fake)


def window_counts(sends: list[float], width: float = 1.0) -> int:
    """The most sends in any half-open window [t, t + width) (the platform's second)."""
    sends = sorted(sends)
    most, j = 0, 0
    for i, t in enumerate(sends):
        while sends[j] <= t - width:
            j += 1
        most = max(most, i - j + 1)
    return most


def admission(ledger: Ledger, rate: float = 50) -> Admission:
    return Admission(RateRule.for_rate(rate), ledger, app_key="key", shop_cipher="cipher")


def attempt(adm: Admission) -> float | None:
    """One try to leave now, as `depart` makes it (its own reservation): None if it left, else how long to
    wait before the next try."""
    ticket = admission_module.Ticket(CallSpec("b", "d", "e", 10**9, None), SCOPE)
    try:
        left = adm.attempt(ticket)
    except _Wait as refused:
        assert refused.wait > 0
        return refused.wait
    if left is None:  # it took slots, none due yet
        now = admission_module.time.time()  # (the fake clock)
        assert adm._next[SCOPE] > now
        return adm._next[SCOPE] - now
    return None


def run_together(processes: list[Admission], clock: FakeClock, n: int) -> list[float]:
    """Processes that always have a request ready, running side by side (the one whose turn comes first
    goes): the moments `n` requests left."""
    left = []
    while len(left) < n:
        adm = min(processes, key=lambda p: p._next.get(SCOPE, 0.0))
        clock.now = max(clock.now, adm._next.get(SCOPE, 0.0))
        wait = attempt(adm)
        if wait is None:
            left.append(clock.now)
        else:
            adm._next[SCOPE] = clock.now + wait
    return left


def send_when_allowed(adm: Admission, clock: FakeClock) -> float:
    """A process with a request ready: it tries at its next slot, waits as long as a refusal says, and
    tries again; the moment it left."""
    clock.now = max(clock.now, adm._next.get(SCOPE, 0.0))
    while (wait := attempt(adm)) is not None:
        clock.now += wait
    return clock.now


def test_the_rule_is_pyrate_limiters_rates_for_both_algorithms():
    rule = RateRule.for_rate(50)
    assert (rule.limit, rule.window_ms) == (50, 1000 + WINDOW_MARGIN_MS)
    assert rule.spacing_s == pytest.approx(0.0205) and rule.per_second == pytest.approx(48.78, abs=0.01)
    rate = rule.rate()
    assert (rate.limit, rate.interval, rate.burst) == (50, 1_025_050, 1)  # microseconds, and 1 more per slot
    assert rule.rate(0.5).interval == 2_050_050
    assert [(r.limit, r.interval) for r in rule.log_rates()] == [(1, 10_250), (50, 1_025_000)]
    assert [(r.limit, r.interval) for r in RateRule.for_rate(0.5).log_rates()] == [(1, 2_025_000)]
    assert rule.schedule(3, start=10.0) == [10.0, pytest.approx(10.0205), pytest.approx(10.041)]


step = st.tuples(
    st.integers(0, 2),  # which process
    st.one_of(st.just(0.0), st.floats(0, 0.01), st.floats(0, 0.3), st.floats(0.9, 1.1)),  # time before it tries
    st.sampled_from([1, 1, 2, 5, 60]),  # requests ready then (a backlog after a stall)
    st.sampled_from(["go", "go", "go", "slow", "slow45", "hold"]),
    st.floats(0, 1),  # how much later they arrive at the platform, as a share of the margin
)


@settings(max_examples=120)
@given(st.lists(step, min_size=3, max_size=40))
def test_no_second_ever_holds_more_than_the_limit(steps):
    """Three processes, late by any amount, send backlogs as fast as admission lets them (each refusal says how
    long to wait), some slowed after 429s, some with another rule (45/s), with holds; what leaves, arriving
    up to the whole margin later (a backlog together), never makes more than 50 in a second, and no two
    requests leave closer than CATCH_UP_SPACING of a slot."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        clock = FakeClock()
        clock.install(mp)
        ledgers = [Ledger.open(Path(tmp) / "l.db") for _ in range(3)]
        admissions, slower = [admission(led) for led in ledgers], [admission(led, 45) for led in ledgers]
        arrivals: list[float] = []
        departures: list[float] = []
        for who, dt, backlog, action, share in steps:
            clock.now += dt
            if action == "hold":
                ledgers[who].hold_rate_scope(SCOPE, clock.now + share)
                continue
            adm = slower[who] if action == "slow45" else admissions[who]
            adm.factor = 0.5 if action == "slow" else 1.0
            for _ in range(backlog):
                departures.append(send_when_allowed(adm, clock))
                arrivals.append(departures[-1] + share * WINDOW_MARGIN_MS / 1000)
        for led in ledgers:
            led.close()
    assert window_counts(arrivals) <= 50
    assert all(b - a >= 0.0205 * CATCH_UP_SPACING - 1e-6 for a, b in zip(departures, departures[1:]))


def test_on_time_requests_are_evenly_spaced_and_fill_the_window_exactly(monkeypatch, tmp_path):
    """Two processes, each with requests ready all the time (the one whose slot comes first goes): 20.5 ms
    apart, 50 in every 1.025 s, never 50 in a second."""
    clock = FakeClock()
    clock.install(monkeypatch)
    processes = [admission(Ledger.open(tmp_path / "l.db")) for _ in range(2)]
    left = run_together(processes, clock, 300)
    assert {round(y - x, 5) for x, y in zip(left, left[1:])} == {0.0205}  # (and a microsecond)
    assert window_counts(left) == 49 and window_counts(left, 1.0249) == 50  # (floats near 1.8e9)
    assert {p.late for p in processes} == {0}


def test_a_late_process_catches_up_without_losing_its_slots(monkeypatch, tmp_path):
    """A process stalls for three slots once a second: the late request leaves late, the next ones catch up
    (at twice the pace at most), and over ten seconds it sends as many as a punctual one."""
    clock = FakeClock()
    clock.install(monkeypatch)
    punctual, stalled = (admission(Ledger.open(tmp_path / f"{n}.db")) for n in ("a", "b"))
    counts = {}
    for adm, stall in ((punctual, 0.0), (stalled, 3 * 0.0205)):
        clock.now = start = 1_800_000_000.0
        left = []
        while clock.now < start + 10:
            if stall and len(left) % 49 == 25:
                clock.now = max(clock.now, adm._next[SCOPE]) + stall  # a busy machine: woken late
            left.append(send_when_allowed(adm, clock))
        counts[stall] = len(left)
        assert window_counts(left) <= 50
    assert counts[0.0] == pytest.approx(10 * 48.78, abs=3) and counts[3 * 0.0205] >= counts[0.0] - 2


def test_a_429_holds_every_process_for_a_capped_retry_after_and_halves_the_pace(monkeypatch, tmp_path):
    clock = FakeClock()
    clock.install(monkeypatch)
    a, b = admission(Ledger.open(tmp_path / "l.db")), admission(Ledger.open(tmp_path / "l.db"))
    ticket = admission_module.Ticket(CallSpec("b", "d", "e", 9, None), SCOPE)
    send_when_allowed(a, clock)
    b.penalize(ticket, 2.0)  # b got a 429 with Retry-After: 2
    b.penalize(ticket, 2.0)  # the in-flight ones' 429s come together: the pace is cut once a second
    start = clock.now
    assert send_when_allowed(a, clock) >= start + 2.0 and b.factor == 0.5 and a.factor == 1.0
    clock.now += 1.5
    start = clock.now
    b.penalize(ticket, 99_999_999)  # a hostile Retry-After waits no longer than the cap
    assert b.factor == 0.25
    assert send_when_allowed(a, clock) == pytest.approx(start + HOLD_CAP_S, abs=0.001)
    for expected in (1.0, 2.0, 4.0):  # without Retry-After: a doubling backoff
        start = clock.now
        b.penalize(ticket, None)
        assert send_when_allowed(a, clock) == pytest.approx(start + expected, abs=0.001)
    clock.now += 60
    b.factor = 0.5
    send_when_allowed(b, clock)
    assert b.factor == 0.625  # 5 s and more without a 429: up by a quarter


def test_a_state_written_under_a_clock_that_went_back_is_not_waited_for(monkeypatch, tmp_path):
    clock = FakeClock()
    clock.install(monkeypatch)
    adm = admission(Ledger.open(tmp_path / "l.db"))
    with adm.ledger.transaction() as conn:
        adm.ledger.rate_state(conn, SCOPE)  # (makes the scope's row)
        adm.ledger.set_rate_state(conn, SCOPE, int((clock.now + 3 * 86_400) * 1e9))  # written days "ahead"
    assert attempt(adm) is None  # starts again from now


def test_scopes_count_per_shop_by_default_per_endpoint_or_per_app(tmp_path):
    shop = scope_key("brand", "app-key-1", "cipher-a")
    assert scope_key("shop", "app-key-1", "cipher-a") == shop == scope_key("brand", "app-key-1", "cipher-a", "x")
    assert scope_key("brand", "app-key-1", "cipher-b") != shop  # another shop of the same app
    assert scope_key("api", "app-key-1", "cipher-a", "create") != scope_key("api", "app-key-1", "cipher-a", "search")
    assert scope_key("app", "app-key-1", "cipher-a") == scope_key("app", "app-key-1", "cipher-b")
    assert all("app-key-1" not in k and "cipher" not in k for k in (shop, scope_key("app", "app-key-1", "c")))


def spec(creator: str, limit: int = 1000) -> CallSpec:
    return CallSpec("b", "2026-11-25", "create_collaboration", limit, None, f"k{creator}", 1, None, [(creator, "p")])


def test_one_transaction_admits_a_request_and_a_refusal_changes_nothing(monkeypatch, tmp_path):
    clock = FakeClock()
    clock.install(monkeypatch)

    def admit(adm: Admission, creator: str, limit: int = 1000) -> int | None:
        return adm.attempt(adm.ticket(spec(creator, limit)))

    def state(ledger: Ledger) -> tuple:
        return (ledger.conn.execute("SELECT tat_ns FROM rate_state").fetchall(),
                len((ledger.conn.execute("SELECT departures FROM rate_state").fetchone()[0] or "").split(",")),
                ledger.calls_used("b", "2026-11-25"), ledger.invitation_states("b"))

    with Ledger.open(tmp_path / "l.db") as ledger:
        run = ledger.start_run(brand="b", campaign="c", command="test")
        ledger.insert_planned("b", "c", run, [(c, "p", "t", f"k{c}") for c in "1234"])
        adm = admission(ledger)
        scope = adm.ticket(spec("1")).scope
        assert admit(adm, "1", limit=2) is not None
        assert state(ledger)[1:] == (1, 1, {"pending": 1, "planned": 3})  # one departure, one call, one claim
        before = state(ledger)
        assert admit(adm, "2", limit=2) is None and state(ledger) == before  # its slot is not due yet
        clock.now = adm._next[scope]
        queue = list(adm._slots[scope])
        with pytest.raises(ClaimRefused):  # pending already: a second claim would send it twice
            admit(adm, "1")
        assert state(ledger) == before and adm._slots[scope] == queue  # the slot is still this process's...
        other = admission(Ledger.open(tmp_path / "l.db"))
        assert admit(other, "3") is None  # ...and another process's slots come after this one's
        other.ledger.close()
        assert admit(adm, "2", limit=2) is not None
        before = state(ledger)
        clock.now = adm._next[scope]
        with pytest.raises(QuotaExhausted):
            admit(adm, "3", limit=2)
        assert state(ledger) == before and before[2] == 2 == ledger.calls_count("b")


def test_depart_waits_its_turn_and_a_stop_a_hold_or_a_lost_lock_keep_the_request_in(tmp_path):
    async def go(ledger: Ledger) -> None:
        adm = admission(ledger, rate=2)  # a request every half second
        first = adm.ticket(CallSpec("b", "d", "e", 10, None))
        await adm.depart(first)
        assert first.call_id is not None
        second = adm.ticket(CallSpec("b", "d", "e", 10, None))
        waiting = asyncio.create_task(adm.depart(second))  # half a second to wait: it waits
        await asyncio.sleep(0.05)
        assert not waiting.done()
        adm.waits.stop()
        with pytest.raises(NotSent):
            await asyncio.wait_for(waiting, 5)  # (a hang detector, not a timing target)
        assert second.call_id is None and not await adm.waits.sleep(10)
        held = admission(ledger, rate=1000)
        ledger.hold_rate_scope(first.scope, time.time() + 30)  # a 429 elsewhere
        with pytest.raises(Later) as later:
            await held.depart(held.ticket(CallSpec("b", "d", "e", 10, None)))
        assert later.value.wait > HOLD_CONNECTION_S
        other = Ledger.open(ledger.path)
        other.conn.execute("UPDATE run_locks SET epoch = epoch + 1")  # taken over meanwhile
        other.conn.execute("UPDATE rate_state SET hold_until = 0")
        other.close()
        fresh = admission(ledger, rate=1000)
        with pytest.raises(LockLost):
            await fresh.depart(fresh.ticket(CallSpec("b", "d", "e", 10, None)))
        assert ledger.calls_count("b") == 1

    with Ledger.open(tmp_path / "l.db") as ledger:
        run = ledger.start_run(brand="b", campaign="c", command="test")
        ledger.acquire_brand_lock("b", run)
        asyncio.run(go(ledger))


def test_requests_arrive_at_the_sandbox_one_by_one_under_the_limit(tmp_path):
    """Seen from the server: 150 single requests, never more than 50 in a second, no 429, no burst of them
    arriving together the way groups did."""
    campaign = write_campaign(tmp_path, 150, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    log = tmp_path / "requests.jsonl"
    with SandboxServer(SandboxSettings(latency_ms=50, ineligible_permille=0), log_path=str(log)) as sb:
        result = json_out(run_cli("execute", campaign, "--yes", "--json",
                                  env={"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(tmp_path / "l.db")}))
        stats = sb.stats()
    assert result["counts"]["sent"] == 150 and result["pace"]["scope"] == "brand"
    assert stats["http_429"] == 0 and stats["max_requests_in_window"] <= 50
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == stats["requests"]  # (with the outreach quota's read and the eligibility checks)
    assert sum(x["endpoint"] == "create_collaboration" for x in lines) == 150
    assert "group" not in json.dumps(result["pace"])
