"""Admission: pyrate-limiter's GCRA over the ledger (evenly spaced slots shared by every process, holds after
429s, a clock gone back), one transaction per request (fencing, quota, claim, slot), late requests take new
slots instead of bursting, a stop ends every wait, and what the sandbox sees."""

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
    HOLD_CAP_S,
    LATE_S,
    MAX_AHEAD_S,
    WINDOW_MARGIN_MS,
    Admission,
    NotSent,
    RateRule,
    _TooEarly,
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


def take(adm: Admission, ahead: float | None = MAX_AHEAD_S) -> float:
    """A slot alone, as a reservation takes it (in its own transaction here)."""
    return adm.ledger.take_slot(lambda conn: adm._slot(conn, SCOPE, ahead=ahead))


def test_the_rule_is_pyrate_limiters_rate_with_a_burst_of_one():
    rule = RateRule.for_rate(50)
    assert (rule.limit, rule.window_ms) == (50, 1000 + WINDOW_MARGIN_MS)
    assert rule.spacing_s == pytest.approx(0.0205) and rule.per_second == pytest.approx(48.78, abs=0.01)
    rate = rule.rate()
    assert (rate.limit, rate.interval, rate.burst) == (50, 1_025_000, 1)  # microseconds
    assert rule.rate(0.5).interval == 2_050_000
    assert RateRule.for_rate(0.5).window_ms == 2000 + WINDOW_MARGIN_MS
    assert rule.schedule(3, start=10.0) == [10.0, pytest.approx(10.0205), pytest.approx(10.041)]


step = st.tuples(
    st.integers(0, 2),  # which process
    st.one_of(st.just(0.0), st.floats(0, 0.02), st.floats(0, 0.5)),  # time passing before it asks
    st.sampled_from(["slot", "slot", "slot", "many", "many", "slot45", "slow", "hold"]),
    st.floats(0, 1),  # how late its request arrives, as a share of the margin (and a hold's length)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=5, max_size=60))
def test_no_window_ever_holds_more_than_the_limit(steps):
    """Three processes take slots of one scope at random moments, one or many at a time (a process with many
    requests waiting), some with another rule (45/s), some slowed after 429s, with holds; each request arrives
    up to the whole margin late. No second ever holds more than 50 requests, and no slot is ever earlier than
    the moment it was taken."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        clock = FakeClock()
        clock.install(mp)
        ledgers = [Ledger.open(Path(tmp) / "l.db") for _ in range(3)]
        admissions = [admission(led) for led in ledgers]
        slower = [admission(led, 45) for led in ledgers]
        arrivals: list[float] = []
        for who, dt, action, share in steps:
            clock.now += dt
            if action == "hold":
                ledgers[who].hold_rate_scope(SCOPE, clock.now + share)
                continue
            adm = slower[who] if action == "slot45" else admissions[who]
            adm.factor = 0.5 if action == "slow" else 1.0
            for _ in range(60 if action == "many" else 1):
                try:
                    slot = take(adm)
                except _TooEarly:
                    break  # a real process waits and asks again
                assert clock.now - 1e-6 <= slot <= clock.now + MAX_AHEAD_S
                arrivals.append(slot + share * WINDOW_MARGIN_MS / 1000)
                share = (share * 7.31) % 1.0  # each request of a process its own lateness
        for led in ledgers:
            led.close()
    assert window_counts(arrivals) <= 50


def test_slots_are_evenly_spaced_and_fill_the_window_exactly(monkeypatch, tmp_path):
    """Two processes in turn, each request leaving at its slot: 20.5 ms apart, 50 in every 1.025 s, never 50
    in a second."""
    clock = FakeClock()
    clock.install(monkeypatch)
    a, b = admission(Ledger.open(tmp_path / "l.db")), admission(Ledger.open(tmp_path / "l.db"))
    slots = []
    for i in range(200):
        slots.append(take(a if i % 2 else b))
        clock.now = slots[-1]  # the next one is taken when this one leaves
    gaps = {round(y - x, 6) for x, y in zip(slots, slots[1:])}
    assert gaps == {0.0205}
    assert window_counts(slots) == 49 and window_counts(slots, 1.0249) == 50  # (floats near 1.8e9)


def test_a_slot_is_taken_at_most_max_ahead_and_the_rest_wait(monkeypatch, tmp_path):
    clock = FakeClock()
    clock.install(monkeypatch)
    adm = admission(Ledger.open(tmp_path / "l.db"))
    slots = []
    with pytest.raises(_TooEarly) as early:
        while True:
            slots.append(take(adm))
    assert len(slots) == int(MAX_AHEAD_S / 0.0205) + 1 and slots[-1] <= clock.now + MAX_AHEAD_S
    assert early.value.wait == pytest.approx(slots[-1] + 0.0205 - clock.now - MAX_AHEAD_S, abs=1e-5)


def test_a_429_holds_every_process_for_a_capped_retry_after_and_halves_the_pace(monkeypatch, tmp_path):
    clock = FakeClock()
    clock.install(monkeypatch)
    a, b = admission(Ledger.open(tmp_path / "l.db")), admission(Ledger.open(tmp_path / "l.db"))
    ticket = admission_module.Ticket(0, SCOPE, take(a))
    b.penalize(ticket, 2.0)  # b got a 429 with Retry-After: 2
    assert take(a) >= clock.now + 2.0 and b.factor == 0.5 and a.factor == 1.0
    b.penalize(ticket, 3.0)  # the in-flight ones' 429s come together: the pace is cut once a second
    assert b.factor == 0.5
    clock.now += 1.5
    b.penalize(ticket, 99_999_999)  # a hostile Retry-After waits no longer than the cap
    assert b.factor == 0.25
    assert take(a, ahead=None) == pytest.approx(clock.now + HOLD_CAP_S, abs=0.001)
    clock.now += HOLD_CAP_S + 1
    for expected in (1.0, 2.0, 4.0):  # without Retry-After: a doubling backoff
        b.penalize(ticket, None)
        assert take(a, ahead=None) == pytest.approx(clock.now + expected, abs=0.001)
        clock.now += expected + 1
    clock.now += 60
    b.factor = 0.5
    take(b)
    assert b.factor == 0.625  # 5 s and more without a 429: up by a quarter


def test_a_state_written_under_a_clock_that_went_back_is_not_waited_for(monkeypatch, tmp_path):
    clock = FakeClock()
    clock.install(monkeypatch)
    adm = admission(Ledger.open(tmp_path / "l.db"))
    adm.ledger.hold_rate_scope(SCOPE, clock.now + 3 * 86_400)  # written days "ahead"
    assert take(adm) == clock.now


def test_scopes_count_per_shop_by_default_per_endpoint_or_per_app(tmp_path):
    shop = scope_key("brand", "app-key-1", "cipher-a")
    assert scope_key("shop", "app-key-1", "cipher-a") == shop == scope_key("brand", "app-key-1", "cipher-a", "x")
    assert scope_key("brand", "app-key-1", "cipher-b") != shop  # another shop of the same app
    assert scope_key("api", "app-key-1", "cipher-a", "create") != scope_key("api", "app-key-1", "cipher-a", "search")
    assert scope_key("app", "app-key-1", "cipher-a") == scope_key("app", "app-key-1", "cipher-b")
    assert all("app-key-1" not in k and "cipher" not in k for k in (shop, scope_key("app", "app-key-1", "c")))


def spec(creator: str, limit: int = 1000) -> CallSpec:
    return CallSpec("b", "2026-11-25", "create_collaboration", limit, None, f"k{creator}", 1, None, [(creator, "p")])


def test_one_transaction_admits_a_request_and_a_refusal_changes_nothing(tmp_path):
    async def go(ledger: Ledger, adm: Admission) -> None:
        ticket = await adm.admit(spec("1", limit=2))
        assert ticket.slot > 0 and ledger.invitation_states("b") == {"pending": 1, "planned": 2}
        state = ledger.conn.execute("SELECT tat_ns FROM rate_state").fetchall()
        with pytest.raises(ClaimRefused):  # pending already: a second claim would send it twice
            await adm.admit(spec("1"))
        await adm.admit(spec("2", limit=2))
        state = ledger.conn.execute("SELECT tat_ns FROM rate_state").fetchall()
        with pytest.raises(QuotaExhausted):
            await adm.admit(spec("3", limit=2))
        assert ledger.conn.execute("SELECT tat_ns FROM rate_state").fetchall() == state  # no slot taken
        assert ledger.calls_used("b", "2026-11-25") == 2 == ledger.calls_count("b")
        assert ledger.invitation_states("b") == {"pending": 2, "planned": 1}
        adm.release(ticket, "connection refused", unclaim=True)  # it never left: quota and claim back
        assert ledger.calls_used("b", "2026-11-25") == 1 and ledger.invitation_states("b")["planned"] == 2
        assert ledger.calls_by("b", "2026-11-25")["create_collaboration"] == {"never_sent": 1, "reserved": 1}
        adm.release(ticket, "again", unclaim=True)  # once only
        assert ledger.calls_used("b", "2026-11-25") == 1

    with Ledger.open(tmp_path / "l.db") as ledger:
        run = ledger.start_run(brand="b", campaign="c", command="test")
        ledger.insert_planned("b", "c", run, [(c, "p", "t", f"k{c}") for c in "123"])
        asyncio.run(go(ledger, admission(ledger)))


def test_a_late_request_takes_a_new_slot_instead_of_leaving(tmp_path):
    async def go() -> tuple[float, float, Admission]:
        with Ledger.open(tmp_path / "l.db") as ledger:
            adm = admission(ledger)
            ticket = await adm.admit(CallSpec("b", "d", "e", 10, None))
            first = ticket.slot
            time.sleep(max(0.0, first - time.time()) + 3 * LATE_S)  # a busy process misses its slot
            await adm.leave(ticket)
            return first, ticket.slot, adm

    first, moved, adm = asyncio.run(go())
    assert adm.late >= 1 and moved > first + 3 * LATE_S


def test_a_stop_ends_every_wait_at_once_and_a_lost_lock_stops_the_request(tmp_path):
    async def go(ledger: Ledger) -> None:
        adm = admission(ledger, rate=1)  # a slot a second
        await adm.admit(CallSpec("b", "d", "e", 10, None))
        ticket = await adm.admit(CallSpec("b", "d", "e", 10, None))  # a second ahead
        waiting = asyncio.create_task(adm.leave(ticket))
        await asyncio.sleep(0.05)
        adm.waits.stop()
        with pytest.raises(NotSent):
            await asyncio.wait_for(waiting, 5)  # (a hang detector, not a timing target)
        assert not await adm.waits.sleep(10)
        with pytest.raises(NotSent):
            await adm.admit(CallSpec("b", "d", "e", 10, None))
        other = Ledger.open(ledger.path)
        other.conn.execute("UPDATE run_locks SET epoch = epoch + 1")  # taken over meanwhile
        other.close()
        fresh = admission(ledger, rate=1000)
        with pytest.raises(LockLost):
            await fresh.admit(CallSpec("b", "d", "e", 10, None))

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
    assert len(log.read_text().splitlines()) == 150 == stats["requests"]
    assert "group" not in json.dumps(result["pace"])
