"""The sandbox over real HTTP: the platform's rules, and the client's reading of each answer."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from trendio_cli.api.answers import Outcome
from trendio_cli.api.client import ApiClient
from trendio_cli.api.credentials import Credentials, credentials_for
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings

CREDS = credentials_for(None, {}, allow_sandbox_defaults=True)
FUTURE = int(time.time()) + 30 * 86400


def create(client, creators, products=(("1729384756", 1500),)):
    return client.prepare_create(
        name="t", message="hello", end_time=FUTURE, products=list(products), creator_ids=list(creators),
        contact_email="p@x.example", free_sample=True,
    )


async def send(url, prepared_fn, creds=CREDS, **kw):
    async with ApiClient(url, creds, **kw) as client:
        return await client.send(prepared_fn(client))


def test_a_burst_above_fifty_a_second_gets_429s(sandbox):
    async def burst():
        async with ApiClient(sandbox.url, CREDS) as client:
            prepared = client.prepare_check_conflicts(["1"], ["2"])
            return await asyncio.gather(*(client.send(prepared) for _ in range(80)))

    answers = asyncio.run(burst())
    limited = [a for a in answers if a.outcome is Outcome.RATE_LIMITED]
    assert len([a for a in answers if a.ok]) <= 50
    assert len(limited) >= 30
    assert all(a.http_status == 429 and a.code == 36009002 and a.retry_after for a in limited)
    stats = sandbox.stats()
    assert stats["http_429"] == len(limited)
    assert stats["max_admitted_in_window"] <= 50
    assert stats["max_requests_in_window"] == 80


def test_bad_signature_is_refused_and_classified_as_auth(sandbox):
    wrong = Credentials(CREDS.app_key, "not-the-secret", CREDS.access_token, CREDS.shop_cipher)
    answer = asyncio.run(send(sandbox.url, lambda c: create(c, ["1"]), creds=wrong))
    assert (answer.outcome, answer.code) == (Outcome.AUTH, 106001)
    assert sandbox.stats()["invited_pairs"] == 0


def test_stale_timestamp_is_refused_with_36009004(sandbox):
    answer = asyncio.run(send(sandbox.url, lambda c: create(c, ["1"]), clock=lambda: time.time() - 600))
    assert (answer.outcome, answer.code) == (Outcome.AUTH, 36009004)
    assert "timestamp" in answer.message
    future = asyncio.run(send(sandbox.url, lambda c: create(c, ["1"]), clock=lambda: time.time() + 120))
    assert future.code == 36009004


def test_unknown_token_and_app_key(sandbox):
    bad_token = Credentials(CREDS.app_key, CREDS.app_secret, "nope", CREDS.shop_cipher)
    assert asyncio.run(send(sandbox.url, lambda c: create(c, ["1"]), creds=bad_token)).code == 101000
    bad_key = Credentials("nope", CREDS.app_secret, CREDS.access_token, CREDS.shop_cipher)
    assert asyncio.run(send(sandbox.url, lambda c: create(c, ["1"]), creds=bad_key)).outcome is Outcome.AUTH


def test_an_oversized_batch_is_refused_and_invites_nobody(sandbox):
    def oversized(client):
        prepared = create(client, ["1"])
        import json
        body = json.loads(prepared.body)
        body["creator_user_ids"] = [str(i) for i in range(51)]
        return client.prepare(client.create_endpoint, body=body)

    answer = asyncio.run(send(sandbox.url, oversized))
    assert answer.outcome is Outcome.UNKNOWN and answer.code == 36009001
    assert "at most 50" in answer.message
    assert sandbox.stats()["invited_pairs"] == 0


def test_a_duplicate_pair_is_a_conflict_and_an_all_duplicate_create_is_16024022(sandbox):
    first = asyncio.run(send(sandbox.url, lambda c: create(c, ["1", "2"])))
    assert first.ok and first.conflicts() == [] and first.collaboration_id()
    second = asyncio.run(send(sandbox.url, lambda c: create(c, ["2", "3"])))
    assert second.ok
    assert second.conflicts() == [("2", "1729384756")]
    third = asyncio.run(send(sandbox.url, lambda c: create(c, ["1", "3"])))
    assert (third.outcome, third.code) == (Outcome.DUPLICATE, 16024022)
    assert sorted(third.conflicts()) == [("1", "1729384756"), ("3", "1729384756")]
    stats = sandbox.stats()
    assert stats["invited_pairs"] == 3
    assert stats["duplicate_attempts"] == 3
    check = asyncio.run(send(sandbox.url, lambda c: c.prepare_check_conflicts(["1", "9"], ["1729384756"])))
    assert check.ok and check.conflicts() == [("1", "1729384756")]


def test_commission_bounds_and_ineligible_creators():
    with SandboxServer(SandboxSettings(ineligible_permille=1000)) as sb:
        answer = asyncio.run(send(sb.url, lambda c: create(c, ["1", "2"])))
        assert answer.outcome is Outcome.INELIGIBLE and answer.named_ids({"1", "2"}) == {"1", "2"}
        sb.configure(ineligible_mode="unnamed")
        unnamed = asyncio.run(send(sb.url, lambda c: create(c, ["1"])))
        assert unnamed.outcome is Outcome.INELIGIBLE and unnamed.named_ids({"1"}) == set()
        sb.configure(ineligible_permille=0)
        low = asyncio.run(send(sb.url, lambda c: create(c, ["1"], products=[("5", 10)])))
        assert low.outcome is Outcome.UNKNOWN and "commission" in low.message


def test_daily_quota_counts_refused_calls_and_then_stops_with_45101004():
    with SandboxServer(SandboxSettings(daily_quota=5)) as sb:
        wrong = Credentials(CREDS.app_key, "bad", CREDS.access_token, CREDS.shop_cipher)
        for _ in range(3):
            asyncio.run(send(sb.url, lambda c: create(c, ["1"]), creds=wrong))
        answers = [asyncio.run(send(sb.url, lambda c: c.prepare_check_conflicts(["1"], ["2"]))) for _ in range(3)]
        assert [a.outcome for a in answers] == [Outcome.OK, Outcome.OK, Outcome.DAILY_QUOTA]
        assert answers[-1].code == 45101004


def test_weekly_outreach_cap_gives_16024019():
    with SandboxServer(SandboxSettings(weekly_outreach=3)) as sb:
        assert asyncio.run(send(sb.url, lambda c: create(c, ["1", "2"]))).ok
        # a creator already connected does not count again
        assert asyncio.run(send(sb.url, lambda c: create(c, ["2"], products=[("77", 1000)]))).ok
        over = asyncio.run(send(sb.url, lambda c: create(c, ["3", "4"])))
        assert (over.outcome, over.code) == (Outcome.OUTREACH_QUOTA, 16024019)
        assert sb.stats()["invited_pairs"] == 3


def test_transient_faults_come_in_every_form_and_are_all_transient():
    with SandboxServer(SandboxSettings(fault_rate=1.0, seed=3)) as sb:
        answers = [asyncio.run(send(sb.url, lambda c: c.prepare_check_conflicts(["1"], ["2"]))) for _ in range(24)]
    assert {a.outcome for a in answers} == {Outcome.TRANSIENT}
    forms = {(a.http_status, a.code) for a in answers}
    assert {(200, 36009003), (500, 36009007), (502, None), (503, None)} <= forms


def test_a_lost_response_created_the_invitation_but_the_client_only_sees_a_transport_error():
    with SandboxServer(SandboxSettings(lost_rate=1.0)) as sb:
        answer = asyncio.run(send(sb.url, lambda c: create(c, ["1"])))
        assert answer.outcome is Outcome.TRANSIENT and answer.maybe_applied
        assert sb.stats()["invited_pairs"] == 1 and sb.stats()["lost_responses"] == 1
        check = asyncio.run(send(sb.url, lambda c: c.prepare_check_conflicts(["1"], ["1729384756"])))
        assert check.conflicts() == [("1", "1729384756")]


def test_expired_token_mid_run():
    with SandboxServer(SandboxSettings(token_expires_after=2)) as sb:
        codes = [asyncio.run(send(sb.url, lambda c: c.prepare_check_conflicts(["1"], ["2"]))).code for _ in range(3)]
    assert codes == [0, 0, 105002]


def test_creators_answer_over_simulated_time_visible_through_search(sandbox):
    creators = [str(6_900_000_000_000_000_000 + i) for i in range(40)]
    assert asyncio.run(send(sandbox.url, lambda c: create(c, creators))).ok

    def statuses():
        page = asyncio.run(send(sandbox.url, lambda c: c.prepare_search_collaborations(page_size=20)))
        assert page.ok
        return [cr["accept_status"] for col in page.data["target_collaborations"] for cr in col["creators"]]

    assert set(statuses()) == {"PENDING"}
    httpx.post(f"{sandbox.url}/_sandbox/advance", json={"days": 8}).raise_for_status()
    later = statuses()
    assert set(later) - {"PENDING"}, "after eight simulated days some creators have answered"
    assert len(later) == 40


def test_marketplace_is_seeded_and_paginated(sandbox):
    first = asyncio.run(send(sandbox.url, lambda c: c.prepare_search_creators(page_size=12)))
    again = asyncio.run(send(sandbox.url, lambda c: c.prepare_search_creators(page_size=12)))
    assert first.ok and len(first.data["creators"]) == 12
    assert first.data["creators"] == again.data["creators"]
    assert first.data["next_page_token"] == "12"
    one = first.data["creators"][0]
    got = asyncio.run(send(sandbox.url, lambda c: c.prepare_get_creator(one["creator_user_id"])))
    assert got.data["creator"] == one
    assert "propensity" not in one


def test_request_log_is_jsonl(tmp_path):
    log = tmp_path / "requests.jsonl"
    with SandboxServer(log_path=str(log)) as sb:
        asyncio.run(send(sb.url, lambda c: c.prepare_check_conflicts(["1"], ["2"])))
    import json
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines[0]["endpoint"] == "check_conflicts" and lines[0]["code"] == 0


@pytest.mark.parametrize("page_size", [10, 200])
def test_search_page_size_is_checked_by_the_client(page_size):
    client = ApiClient("http://127.0.0.1:1", CREDS)
    with pytest.raises(ValueError):
        client.prepare_search_collaborations(page_size=page_size)


def test_the_rate_window_counts_arrivals_in_stamp_order_whatever_order_they_are_read_in():
    """Requests are stamped on arrival and counted once their body is read, not always in order (on a busy
    machine, up to tens of ms apart): neither the 429s nor the most-in-a-second figure may count one twice
    or keep one that left the window."""
    import random

    from trendio_cli.api.credentials import sandbox_accepted_credentials
    from trendio_cli.sandbox.state import MaxWindow, SandboxState

    rng = random.Random(5)
    stamps = [i * 0.0205 for i in range(200)]  # 50 in any 1.025 s: never 51 in a second
    read_order = sorted(stamps, key=lambda t: t + rng.uniform(0, 0.05))
    state = SandboxState(SandboxSettings(ineligible_permille=0), sandbox_accepted_credentials())
    creds = sandbox_accepted_credentials()[0]
    for t in read_order:
        shop, refusal = state.admit("search_collaborations", "/x", {"app_key": creds.app_key}, creds.access_token,
                                    b"{}", arrived=t)
        assert refusal is None or refusal.code != 36009002, t
    assert state.snapshot()["max_requests_in_window"] == 49
    window = MaxWindow(1.0)
    for t in sorted(stamps[:60], key=lambda t: -t):  # all of them backwards
        window.add(t)
    assert window.max == 49
