"""sync over real HTTP: statuses move, the cost is what it says, lifecycle flags leave creators out and
let them back after the cooldown."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from helpers import json_out, run_cli, write_campaign
from trendio_cli.ledger import Ledger, iso, parse_iso
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings


def env_for(sb: SandboxServer, ledger: Path) -> dict[str, str]:
    return {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)}


@contextlib.contextmanager
def invited(tmp_path: Path, ledger: Path, creators: int = 10,
            limits: dict[str, Any] | None = None) -> Iterator[tuple[SandboxServer, dict[str, str]]]:
    """A sandbox and the environment to reach it, once `creators` are invited to 3 products (by default in
    creates of 10)."""
    campaign = write_campaign(tmp_path, creators, limits={"creators_per_request": 10} if limits is None else limits)
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        yield sb, env


def states(ledger: Path) -> dict[str, int]:
    with Ledger.open(ledger, readonly=True) as led:
        return led.invitation_states("testbrand")


def detail_truth(sb: SandboxServer, collaboration_ids: set[str]) -> dict[tuple[str, str], tuple[int, int]]:
    """(collaboration, creator) -> (showcase, content) product counts, as the sandbox's detail says them."""
    import asyncio

    from trendio_cli.api.client import ApiClient
    from trendio_cli.api.credentials import credentials_for

    async def read():
        out = {}
        # the refreshed token, from the token store the runs wrote (the first one has expired by now)
        async with ApiClient(sb.url, credentials_for(None, {}, allow_sandbox_defaults=True)) as c:
            for cid in collaboration_ids:
                answer = await c.send(c.prepare_get_collaboration(cid))
                for cr in answer.data["target_collaboration"]["creators"]:
                    out[(cid, cr["creator_open_id"])] = (cr["showcase_product_count"], cr["content_product_count"])
        return out

    return asyncio.run(read())


def test_sync_moves_invitations_to_showcased_and_content_and_costs_what_it_says(tmp_path: Path):
    campaign = write_campaign(tmp_path, 300)
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        before = sb.stats()["requests"]
        first = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        # nothing happened yet: one search page, no detail, no order read needed beyond the first
        assert first["changed"] == {} and first["pages"] == {"VALID": 1} and first["details"] == 0
        httpx.post(f"{sb.url}/_sandbox/advance", json={"days": 20}).raise_for_status()
        second = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        stats = sb.stats()
        # 20 simulated days: the 7-day access token expired on the way and was refreshed once (the auth host's
        # request is the platform's, not the shop's quota)
        assert second["token_refreshes"] == 1 == stats["refreshes"]
        assert stats["requests"] - before == first["requests"] + second["requests"] + 1
        assert second["requests"] == sum(second["pages"].values()) + second["details"] + second["order_pages"] + 1
        got = states(ledger)
        assert got.get("showcased", 0) > 0 and got.get("content", 0) > 0 and "accepted" not in got
        assert second["changed"]["showcased"] == got["showcased"] + got["content"]
        # what the platform's detail says, creator by creator
        conn = sqlite3.connect(ledger)
        ids = {c for c, in conn.execute("SELECT DISTINCT collaboration_id FROM invitations")}
        truth = detail_truth(sb, ids)
        # the counts say how many of a creator's products, and exactly that many of their invitations moved
        partly = 0
        for collab, creator, pairs, up, with_content in conn.execute(
                "SELECT collaboration_id, creator_id, COUNT(*), SUM(state IN ('showcased', 'content')), "
                "SUM(state = 'content') FROM invitations GROUP BY 1, 2"):
            showcase, content = truth[(collab, creator)]
            assert (up, with_content) == (min(max(showcase, content), pairs), min(content, pairs)), (collab, creator)
            partly += 0 < up < pairs
        assert partly > 0  # the sandbox's creators take up some products of a collaboration, not always all
        # a second sync right after: the search pages, nothing else
        third = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        assert third["changed"] == {} and third["details"] == 0 and third["order_pages"] == 0
        assert third["requests"] == sum(third["pages"].values()) == 1


def test_orders_are_recorded_once_and_refunds_update_them(tmp_path: Path):
    ledger = tmp_path / "l.db"
    with invited(tmp_path, ledger, 400, limits={}) as (sb, env):
        httpx.post(f"{sb.url}/_sandbox/advance", json={"days": 10}).raise_for_status()
        first = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        assert first["orders_new"] > 0 and first["gmv_new"] > 0
        conn = sqlite3.connect(ledger)
        n = conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
        assert n == first["orders_new"]
        assert conn.execute("SELECT COUNT(*) FROM (SELECT order_id, sku FROM orders GROUP BY 1, 2)").fetchone()[0] == n
        ours = {c for c, in conn.execute("SELECT DISTINCT collaboration_id FROM invitations")}
        assert {c for c, in conn.execute("SELECT DISTINCT collaboration_id FROM orders")} <= ours
        # the platform's times (Unix seconds, today about 1.8e9) are kept: an order's day, a collaboration's span
        assert conn.execute("SELECT COUNT(*) FROM orders WHERE created_at IS NULL").fetchone()[0] == 0
        first_order, last_order = conn.execute("SELECT MIN(created_at), MAX(created_at) FROM orders").fetchone()
        sent_at = conn.execute("SELECT MIN(sent_at) FROM invitations").fetchone()[0]
        assert sent_at[:10] <= first_order[:10] <= last_order[:10], (sent_at, first_order, last_order)
        spans = conn.execute("SELECT start_time, end_time FROM collaborations").fetchall()
        assert spans and all(start and end and 1.7e9 < start < end for start, end in spans), spans
        again = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        assert again["orders_new"] == 0 and again["order_pages"] == 0  # nothing changed, read recently
        # a month later: more orders, and some of the old ones refunded or cancelled, updated in place
        httpx.post(f"{sb.url}/_sandbox/advance", json={"days": 30}).raise_for_status()
        later = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        assert later["orders_new"] > 0 and later["orders_updated"] > 0
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == n + later["orders_new"]
        refunded = conn.execute("SELECT COUNT(*) FROM orders WHERE refunded > 0 OR status = 'CANCELLED'").fetchone()
        assert refunded[0] > 0
        total = conn.execute("SELECT SUM(gmv) FROM orders WHERE creator_id IS NOT NULL").fetchone()[0]
        assert total > 0  # orders are tied to the creators by their username


def test_sync_spends_only_the_reserve(tmp_path: Path):
    campaign = write_campaign(tmp_path, 60, limits={"reserve_requests": 1, "daily_requests": 100})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        ok = json_out(run_cli("sync", "--campaign", campaign, "--json", env=env))
        assert ok["brands"][0]["requests"] == 1  # the reserve's one request
        spent = run_cli("sync", "--campaign", campaign, "--json", env=env)
        assert spent.returncode == 4 and json_out(spent)["brands"][0]["requests"] == 0


def test_ended_collaborations_expire_without_asking(tmp_path: Path):
    campaign = write_campaign(tmp_path, 20)
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        sent = states(ledger)["sent"]
        conn = sqlite3.connect(ledger)
        conn.execute("UPDATE invitations SET expires_at = '2020-01-01T00:00:00.000000Z'")
        conn.commit()
        result = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        assert result["changed"] == {"expired": sent} and sent > 40 and result["details"] == 0
        assert states(ledger) == {"expired": sent}


def test_a_collaboration_seen_ended_is_read_once_and_then_left_alone(tmp_path: Path):
    from datetime import date, timedelta

    campaign = write_campaign(tmp_path, 30, end_date=(date.today() + timedelta(days=10)).isoformat())
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        conn = sqlite3.connect(ledger)
        cid = conn.execute("SELECT collaboration_id FROM invitations LIMIT 1").fetchone()[0]
        httpx.post(f"{sb.url}/_sandbox/advance", json={"days": 12}).raise_for_status()  # past its end there
        ended = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        assert ended["collaborations_ended"] == 1 and ended["details"] == 1
        assert ended["pages"] == {"VALID": 1, "CANCELING": 1, "COMPLETED": 1}
        assert conn.execute("SELECT COUNT(*) FROM invitations WHERE state = 'sent'").fetchone()[0] == 0
        assert conn.execute("SELECT final FROM collaborations WHERE id = ?", (cid,)).fetchone()[0] == 1
        after = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        assert after["requests"] == 0 and after["collaborations_watched"] == 0


def test_one_silent_invitation_flags_a_creator_unresponsive(tmp_path: Path):
    campaign = write_campaign(tmp_path, 30, lifecycle={"answer_within_days": 3, "cooldown_days": 10})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        conn = sqlite3.connect(ledger)
        conn.execute("UPDATE invitations SET claimed_at = '2026-01-01T00:00:00.000000Z'")  # invited long ago, once
        conn.commit()
        # no --campaign: the campaign's own lifecycle (3 days) applies, not the default (14)
        result = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        silent = {c for c, in conn.execute("SELECT DISTINCT creator_id FROM invitations WHERE state = 'sent'")}
        assert result["flagged_unresponsive"] == len(silent) > 20
        flagged = {c for c, in conn.execute("SELECT creator_id FROM creators WHERE flag = 'unresponsive'")}
        assert flagged == silent


def test_unresponsive_creators_are_left_out_then_come_back_after_the_cooldown(tmp_path: Path):
    campaign = write_campaign(tmp_path, 30, lifecycle={"answer_within_days": 3, "cooldown_days": 10})
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        conn = sqlite3.connect(ledger)
        conn.execute("UPDATE invitations SET claimed_at = '2026-01-01T00:00:00.000000Z'")  # sent long ago
        conn.commit()
        result = json_out(run_cli("sync", "--campaign", campaign, "--json", env=env, check=0))["brands"][0]
        invited = len({c for c, in conn.execute("SELECT DISTINCT creator_id FROM invitations")})
        assert result["flagged_unresponsive"] == invited > 20
        # a second product for the same creators: the plan leaves the unresponsive ones out
        text = campaign.read_text().replace("products:", "products:\n- id: '99'\n  commission: 10%", 1)
        campaign.write_text(text)
        plan = json_out(run_cli("plan", campaign, "--json", env=env, check=0))["plan"]
        assert plan["pairs"] == 0 and plan["skipped"]["flagged unresponsive"] == invited
        conn.execute("UPDATE creators SET flagged_until = '2026-01-02T00:00:00.000000Z'")  # cooldown over
        conn.commit()
        plan = json_out(run_cli("plan", campaign, "--json", env=env, check=0))["plan"]
        assert plan["pairs"] == invited
        # and the old unanswered invitations do not flag them again at once
        again = json_out(run_cli("sync", "--campaign", campaign, "--json", env=env, check=0))["brands"][0]
        assert again["flagged_unresponsive"] == 0


def test_ineligible_creators_never_come_back(tmp_path: Path):
    campaign = write_campaign(tmp_path, 100)
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=100)) as sb:
        env = env_for(sb, ledger)
        run_cli("execute", campaign, "--yes", env=env, check=0)
        n_bad = len({c for c, in sqlite3.connect(ledger).execute(
            "SELECT creator_id FROM creators WHERE flag = 'ineligible'")})
        assert n_bad > 0
        text = campaign.read_text().replace("products:", "products:\n- id: '99'\n  commission: 10%", 1)
        campaign.write_text(text)
        plan = json_out(run_cli("plan", campaign, "--json", "--date", "2030-01-01", env=env, check=0))["plan"]
        assert plan["skipped"]["flagged ineligible"] == n_bad


def test_inactive_creators_are_left_out(tmp_path: Path):
    campaign = write_campaign(tmp_path, 5, lifecycle={"inactive_after_days": 30})
    (tmp_path / "creators.csv").write_text("creator_id,followers,last_active\n1,100,2020-01-01\n2,100,2099-01-01\n")
    plan = json_out(run_cli("plan", campaign, "--json", env={"TRENDIO_LEDGER": str(tmp_path / "l.db")}, check=0))
    assert plan["plan"]["skipped"] == {"inactive": 1} and plan["plan"]["creators"] == 1


def test_platform_times_are_read_in_seconds_or_milliseconds():
    from trendio_cli.commands.sync import _unix_time

    assert _unix_time(1790000000) == _unix_time("1790000000") == _unix_time(1790000000123) == 1790000000
    assert [_unix_time(v) for v in (None, "", "soon", 0, -5, 10**30, float("inf"))] == [None] * 7


def test_a_collaboration_being_cancelled_is_found_without_reading_the_shops_history(tmp_path: Path):
    ledger = tmp_path / "l.db"
    with invited(tmp_path, ledger) as (sb, env):
        (cid,) = {c for c, in sqlite3.connect(ledger).execute("SELECT DISTINCT collaboration_id FROM invitations")}
        # the seller has removed it: no longer VALID, listed as CANCELING until it ends
        sb.script("search_collaborations", [
            {"data": {"target_collaborations": [], "next_page_token": ""}},
            {"data": {"target_collaborations": [{"id": cid, "name": "x", "showcase_creator_count": 0,
                                                 "content_creator_count": 0, "product_count": 3}]}}])
        result = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
    assert result["pages"] == {"VALID": 1, "CANCELING": 1}, result
    status = sqlite3.connect(ledger).execute("SELECT status FROM collaborations WHERE id = ?", (cid,)).fetchone()
    assert status == ("CANCELING",) and states(ledger) == {"sent": 30}


def test_more_orders_than_one_sync_reads_keep_the_cursor_and_say_so(tmp_path: Path):
    from trendio_cli.commands.sync import MAX_PAGES

    ledger = tmp_path / "l.db"
    with invited(tmp_path, ledger) as (sb, env):
        sb.script("search_orders", [{"data": {"orders": [], "next_page_token": "more"}}] * MAX_PAGES)
        cut = run_cli("sync", env={**env, "COLUMNS": "200"}, check=0)
        with Ledger.open(ledger, readonly=True) as led:
            assert led.sync_value("testbrand", "orders_read_at") is None  # the cursor did not move
            assert led.sync_value("testbrand", "orders_span_s")  # no total to go by: narrower slices next time
        again = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
    assert f"testbrand: more orders than one sync reads ({MAX_PAGES} pages)" in " ".join(cut.stdout.split())
    # so the next sync reads the window again, in slices (the sandbox's own answers, complete this time)
    assert again["orders_cut_off"] is False and again["order_pages"] >= 1
    with Ledger.open(ledger, readonly=True) as led:
        assert led.sync_value("testbrand", "orders_read_at") and not led.sync_value("testbrand", "orders_span_s")


def test_a_window_with_more_orders_than_one_sync_reads_is_read_in_halves_and_nothing_is_missed(tmp_path: Path):
    ledger = tmp_path / "l.db"
    with invited(tmp_path, ledger, 60, limits={}) as (sb, env):
        httpx.post(f"{sb.url}/_sandbox/advance", json={"days": 10}).raise_for_status()
        _claimed(ledger, timedelta(days=10))  # ten days ago by this machine's clock too: a long window
        # three first pages that say a million orders: the window is halved three times, oldest half first
        huge = {"data": {"orders": [], "next_page_token": "more", "total_count": 1_000_000}}
        sb.script("search_orders", [huge] * 3)
        split = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
        assert split["orders_cut_off"] is False and split["orders_new"] > 0, split
        assert split["order_pages"] == 3 + 4  # the three answers, then one page for each of the four slices
        # read again from the brand's first invitation in one window: nothing the slices missed
        with sqlite3.connect(ledger) as conn:
            conn.execute("DELETE FROM sync_state")
        whole = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
    assert whole["orders_new"] == 0 and whole["order_pages"] == 1


def _claimed(ledger: Path, ago: timedelta) -> datetime:
    """Make the brand's invitations look claimed `ago` before now: the orders' window starts there."""
    at = (datetime.now(timezone.utc) - ago).replace(microsecond=0)
    with sqlite3.connect(ledger) as conn:
        conn.execute("UPDATE invitations SET claimed_at = ?", (iso(at.timestamp()),))
    return at


def _sync_value(ledger: Path, name: str):
    with Ledger.open(ledger, readonly=True) as led:
        return led.sync_value("testbrand", name)


def test_an_order_read_that_fails_midway_keeps_what_it_read_and_where_it_got_to(tmp_path: Path):
    ledger = tmp_path / "l.db"
    with invited(tmp_path, ledger) as (sb, env):
        start = _claimed(ledger, timedelta(days=10))
        huge = {"data": {"orders": [], "next_page_token": "more", "total_count": 1_000_000}}
        older_half = {"data": {"orders": [], "next_page_token": "", "total_count": 0}}
        sb.script("search_orders", [huge, older_half, {"code": 98001004, "message": "invalid params"}])
        run_cli("sync", "--json", env=env, check=None)
        read_to = _sync_value(ledger, "orders_read_to")
        # the older half was read: the next sync starts from its end, not from the beginning again
        assert read_to and parse_iso(read_to) > start.timestamp() + 4 * 86400, read_to
        again = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
    assert again["orders_cut_off"] is False and _sync_value(ledger, "orders_read_at")


def test_an_hour_with_more_orders_than_a_sync_reads_is_said_and_does_not_hold_up_the_rest(tmp_path: Path):
    from trendio_cli.commands.sync import MAX_PAGES

    ledger = tmp_path / "l.db"
    with invited(tmp_path, ledger) as (sb, env):
        start = _claimed(ledger, timedelta(hours=3))
        with Ledger.open(ledger) as led:  # an earlier sync already narrowed the slices to an hour
            led.set_sync_value("testbrand", "orders_span_s", "3600")
            led.set_sync_value("testbrand", "orders_read_to", iso(start.timestamp()))
        sb.script("search_orders", [{"data": {"orders": [], "next_page_token": "more"}}] * MAX_PAGES)
        dense = run_cli("sync", env={**env, "COLUMNS": "200"}, check=0)
        assert "an hour with more orders than one sync reads" in " ".join(dense.stdout.split())
        assert parse_iso(_sync_value(ledger, "orders_read_to")) == start.timestamp() + 3600
        later = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
    assert later["orders_cut_off"] is False and _sync_value(ledger, "orders_read_at")


def test_a_cursor_ahead_of_this_machines_clock_is_no_crash(tmp_path: Path):
    ledger = tmp_path / "l.db"
    with invited(tmp_path, ledger) as (sb, env):
        ahead = iso((datetime.now(timezone.utc) + timedelta(minutes=10)).timestamp())
        with Ledger.open(ledger) as led:  # written by a machine whose clock runs ahead (a shared ledger)
            led.set_sync_value("testbrand", "orders_span_s", "3600")
            led.set_sync_value("testbrand", "orders_read_to", ahead)
        result = json_out(run_cli("sync", "--json", env=env, check=0))["brands"][0]
    assert result["exit_code"] == 0 and result["order_pages"] == 1 and _sync_value(ledger, "orders_read_at")
