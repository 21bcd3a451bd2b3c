"""The ledger on real SQLite files: schema, uniqueness, quota reservation across processes, locks."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import reserve_in_parallel
from trendio_cli.errors import LedgerError, LedgerNotFound, Refused
from trendio_cli.ledger import SCHEMA_VERSION, Ledger, QuotaExhausted


def test_new_ledger_is_private_wal_and_migrated(tmp_path: Path):
    with pytest.raises(LedgerNotFound):  # a new ledger only in a folder that exists: a typo is no new tree
        Ledger.open(tmp_path / "sub" / "l.db")
    assert not (tmp_path / "sub").exists()
    path = tmp_path / "l.db"
    with Ledger.open(path) as ledger:
        assert ledger.created
        assert ledger.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {r[0] for r in ledger.conn.execute("SELECT name FROM _migrations")}
        assert len(names) == SCHEMA_VERSION
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"invitations", "api_calls", "runs", "creators", "plans", "quota_usage", "run_locks"} <= tables


def test_an_invitation_key_is_unique_whatever_the_campaign(tmp_path: Path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        run = ledger.start_run(brand="b", campaign="c1", command="test")
        assert ledger.insert_planned("b", "c1", run, [("cr1", "p1", "t", "k1")]) == 1
        assert ledger.insert_planned("b", "c2", run, [("cr1", "p1", "t", "k2")]) == 0
        with pytest.raises(sqlite3.IntegrityError):
            ledger.conn.execute("INSERT INTO invitations (brand, creator_id, product_id, state) "
                                "VALUES ('b', 'cr1', 'p1', 'sent')")
        assert ledger.insert_planned("other", "c1", run, [("cr1", "p1", "t", "k3")]) == 1


def test_state_machine_write_ahead_then_outcome(tmp_path: Path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        run = ledger.start_run(brand="b", campaign="c", command="test")
        ledger.insert_planned("b", "c", run, [("1", "p", "t", "k"), ("2", "p", "t", "k")])
        assert ledger.invited_pairs("b") == {}  # planned rows are not invitations
        ledger.claim("b", run, "k", [("1", "p"), ("2", "p")])
        assert [p.creator_id for p in ledger.pending("b")] == ["1", "2"]
        ledger.mark("b", [("1", "p")], "sent", collaboration_id="77")
        ledger.unclaim("b", [("2", "p")])
        assert ledger.invitation_states("b") == {"sent": 1, "planned": 1}
        assert ledger.invitation("b", "1", "p")["collaboration_id"] == "77"
        assert ledger.invited_pairs("b") == {"1": ("p",)}
        assert ledger.clear_planned("b") == 1


def test_quota_reservation_refuses_past_the_limit(tmp_path: Path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        for _ in range(3):
            ledger.reserve_call(brand="b", quota_day="2026-01-01", endpoint="e", limit=3, run_id=None)
        with pytest.raises(QuotaExhausted):
            ledger.reserve_call(brand="b", quota_day="2026-01-01", endpoint="e", limit=3, run_id=None)
        ledger.reserve_call(brand="b", quota_day="2026-01-02", endpoint="e", limit=3, run_id=None)
        assert ledger.calls_used("b", "2026-01-01") == 3 and ledger.calls_count("b") == 4





def test_four_processes_reserving_at_full_speed_never_overspend(tmp_path: Path):
    path = tmp_path / "l.db"
    Ledger.open(path).close()
    assert sum(reserve_in_parallel(path, 600)) == 600
    with Ledger.open(path) as ledger:
        assert ledger.calls_used("b", "d") == 600 == ledger.calls_count("b", "d")


def test_brand_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path: Path):
    path = tmp_path / "l.db"
    with Ledger.open(path) as ledger:
        ledger.acquire_brand_lock("b", 1)
        with pytest.raises(Refused, match="held by run 1"):
            ledger.acquire_brand_lock("b", 2)
        ledger.acquire_brand_lock("other", 2)
        # a holder whose process is gone
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
        ledger.conn.execute("UPDATE run_locks SET pid = ? WHERE brand = 'b'", (int(dead),))
        ledger.acquire_brand_lock("b", 3)
        assert {r["brand"]: r["run_id"] for r in ledger.locks()} == {"b": 3, "other": 2}
        ledger.release_brand_lock("b", 3)
        assert [r["brand"] for r in ledger.locks()] == ["other"]


def test_readonly_open_never_writes_and_reads_a_missing_file_as_empty(tmp_path: Path):
    missing = tmp_path / "none.db"
    with Ledger.open(missing, readonly=True) as ledger:
        assert ledger.invitation_states() == {}
    assert not missing.exists()
    path = tmp_path / "l.db"
    with Ledger.open(path) as ledger:
        ledger.start_run(brand="b", campaign="c", command="x")
    before = path.read_bytes()
    with Ledger.open(path, readonly=True) as ledger:
        assert len(ledger.runs()) == 1
        with pytest.raises((sqlite3.OperationalError, LedgerError)):
            ledger.start_run(brand="b", campaign="c", command="x")
    assert path.read_bytes() == before


def test_unusable_ledgers_give_one_clear_error(tmp_path: Path):
    garbage = tmp_path / "g.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="cannot open the ledger"):
        Ledger.open(garbage)
    with pytest.raises(LedgerError, match="directory"):
        Ledger.open(tmp_path)
    newer = tmp_path / "n.db"
    with Ledger.open(newer) as ledger:
        ledger.conn.execute("INSERT INTO _migrations VALUES ('m999_future', 'x')")
    with pytest.raises(LedgerError, match="newer"):
        Ledger.open(newer)


def test_fingerprint_moves_with_invitations_and_flags(tmp_path: Path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        f0 = ledger.fingerprint("b")
        run = ledger.start_run(brand="b", campaign="c", command="x")
        ledger.insert_planned("b", "c", run, [("1", "p", "t", "k")])
        assert ledger.fingerprint("b") == f0  # planned rows are not state a plan depends on
        ledger.claim("b", run, "k", [("1", "p")])
        f1 = ledger.fingerprint("b")
        assert f1 != f0
        ledger.flag_creators("b", ["9"], "ineligible", "16024021")
        assert ledger.fingerprint("b") != f1
        assert ledger.fingerprint("other") == Ledger.open(tmp_path / "x.db").fingerprint("other")


def test_ledger_file_opens_with_plain_sqlite3(tmp_path: Path):
    path = tmp_path / "l.db"
    with Ledger.open(path) as ledger:
        ledger.reserve_call(brand="b", quota_day="d", endpoint="create_collaboration", limit=5, run_id=None)
    out = subprocess.run(["sqlite3", str(path), "SELECT endpoint FROM api_calls"], capture_output=True, text=True)
    if out.returncode == 0:  # the sqlite3 shell is optional on a machine
        assert out.stdout.strip() == "create_collaboration"
    assert sqlite3.connect(path).execute("SELECT used FROM quota_usage").fetchone()[0] == 1
    assert os.path.exists(path)


def test_an_older_ledger_is_migrated_and_keeps_its_data(tmp_path: Path):
    import sqlite_utils

    from trendio_cli.ledger import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    db = sqlite_utils.Database(conn)
    db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    name, first = MIGRATIONS[0]
    first(db)
    conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
    conn.execute("INSERT INTO invitations (brand, creator_id, product_id, state, claimed_at) "
                 "VALUES ('b', 'c1', 'p1', 'sent', '2026-01-01T00:00:00.000000Z')")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="older"):
        Ledger.open(path, readonly=True)  # plan and dry-run never write, so they refuse
    with Ledger.open(path, readonly=True, migrate=True) as ledger:  # views bring it up to date
        assert ledger._schema_version() == SCHEMA_VERSION
        assert ledger.invited_pairs("b") == {"c1": ("p1",)}
        assert "expires_at" in {c[1] for c in ledger.conn.execute("PRAGMA table_info(invitations)")}


def test_hand_flags_show_in_the_creators_summary(tmp_path: Path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.flag_creators("b", ["x"], "blocked", "by hand")
        ledger.flag_creators("b", ["y"], "unresponsive", "old", "2020-01-01T00:00:00.000000Z")
        rows = {r["creator_id"]: r["flag"] for r in ledger.creators_summary("b")}
        assert rows == {"x": "blocked", "y": None}
        assert ledger.flagged_creators("b", "2026-01-01T00:00:00.000000Z") == {"x": "blocked"}
        ledger.unflag_creators("b", ["x"])
        assert ledger.flagged_creators("b", "2026-01-01T00:00:00.000000Z") == {}


def test_a_full_disk_keeps_nothing_of_the_failed_write(tmp_path: Path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        run = ledger.start_run(brand="b", campaign="c", command="x")
        pages = ledger.conn.execute("PRAGMA page_count").fetchone()[0]
        ledger.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(LedgerError, match="full") as info:
            ledger.insert_planned("b", "c", run, [(str(i), "p" * 200, "t", "k") for i in range(5000)])
        assert "disk space" in info.value.hint
        assert ledger.conn.execute("SELECT COUNT(*) FROM invitations").fetchone()[0] == 0
        ledger.conn.execute("PRAGMA max_page_count = 1000000")
        assert ledger.insert_planned("b", "c", run, [("1", "p", "t", "k")]) == 1  # and it works again


def test_a_read_only_ledger_is_a_clear_error(tmp_path: Path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.conn.execute("PRAGMA query_only = 1")
        with pytest.raises(LedgerError, match="readonly|read-only|cannot write"):
            ledger.start_run(brand="b", campaign="c", command="x")


def test_a_locked_ledger_and_a_damaged_one_give_one_line_each(tmp_path: Path):
    path = tmp_path / "l.db"
    Ledger.open(path).close()
    (tmp_path / "c.yaml").write_text("x")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        env = {**os.environ, "TRENDIO_LEDGER": str(path), "TRENDIO_LEDGER_BUSY_TIMEOUT_MS": "300"}
        proc = subprocess.run([sys.executable, "-m", "trendio_cli", "creators", "block", "1", "--brand", "b"],
                              capture_output=True, text=True, env=env, timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 1 and "database is locked" in proc.stderr and "busy timeout" in proc.stderr
    assert "Traceback" not in proc.stderr
    with Ledger.open(path) as ledger:
        for i in range(200):
            ledger.flag_creators("b", [f"c{i}"], "blocked", "x" * 300)
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(path.read_bytes()[: 4096 * 3] + b"\x00garbage" * 1000)
    proc = subprocess.run([sys.executable, "-m", "trendio_cli", "status"], capture_output=True, text=True,
                          env={**os.environ, "TRENDIO_LEDGER": str(damaged)}, timeout=60)
    assert proc.returncode == 1 and "ledger" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_export_then_import_loses_nothing(tmp_path: Path):
    src = tmp_path / "a.db"
    with Ledger.open(src) as ledger:
        run = ledger.start_run(brand="b", campaign="c", command="x")
        ledger.insert_planned("b", "c", run, [("1", "p", "t", "k"), ("2", "p", "t", "k")])
        ledger.claim("b", run, "k", [("1", "p")])
        ledger.mark("b", [("1", "p")], "sent", collaboration_id="9")
        ledger.reserve_call(brand="b", quota_day="d", endpoint="e", limit=9, run_id=run)
        ledger.flag_creators("b", ["3"], "blocked", "hand")
    env = {**os.environ, "TRENDIO_LEDGER": str(src)}
    out = subprocess.run([sys.executable, "-m", "trendio_cli", "ledger", "export"], capture_output=True, text=True,
                         env=env, check=True).stdout
    (tmp_path / "x.jsonl").write_text(out)
    dst = tmp_path / "b.db"
    imp = subprocess.run([sys.executable, "-m", "trendio_cli", "ledger", "import", str(tmp_path / "x.jsonl"),
                          "--ledger", str(dst)], capture_output=True, text=True, env=env)
    assert imp.returncode == 0, imp.stderr
    again = subprocess.run([sys.executable, "-m", "trendio_cli", "ledger", "export", "--ledger", str(dst)],
                           capture_output=True, text=True, env=env, check=True).stdout
    assert again == out and out.count("\n") == 7  # the header and six rows
    twice = subprocess.run([sys.executable, "-m", "trendio_cli", "ledger", "import", str(tmp_path / "x.jsonl"),
                            "--ledger", str(dst)], capture_output=True, text=True, env=env)
    assert twice.returncode == 2 and "not empty" in twice.stderr
    (tmp_path / "bad.jsonl").write_text(out.replace('"table": "invitations"', '"table": "nope"', 1))
    bad = subprocess.run([sys.executable, "-m", "trendio_cli", "ledger", "import", str(tmp_path / "bad.jsonl"),
                          "--ledger", str(tmp_path / "c.db")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "unknown table" in bad.stderr
    with Ledger.open(tmp_path / "c.db") as ledger:
        assert ledger.is_empty()  # all or nothing


def test_a_detail_moves_as_many_invitations_as_its_counts_say_sold_products_first(tmp_path):
    """The detail counts a creator's products in showcase and with content, not which: exactly that many of
    their invitations move up, a product with an order first, and a later, smaller count moves none back."""
    with Ledger.open(tmp_path / "l.db") as led:
        run = led.start_run(brand="b", campaign="c", command="test")
        led.insert_planned("b", "c", run, [("cr", p, "mid", "k1") for p in ("1", "2", "3", "4")])
        with led.transaction() as c:
            c.execute("UPDATE invitations SET state = 'sent', collaboration_id = 'col' WHERE brand = 'b'")
        led.upsert_orders("b", [{"order_id": "o1", "sku": "s", "collaboration_id": "col", "creator_id": "cr",
                                 "creator_username": "cr", "product_id": "3", "status": "COMPLETED", "quantity": 1,
                                 "refunded": 0, "returned": 0, "currency": "USD", "gmv": 9.0, "actual_base": 9.0,
                                 "estimated_commission": 1.0, "actual_commission": 1.0, "content_type": "VIDEO",
                                 "created_at": "2026-11-23T00:00:00.000000Z"}])

        def states():
            with led.transaction() as c:
                return dict(c.execute("SELECT product_id, state FROM invitations ORDER BY product_id").fetchall())

        assert led.apply_detail("b", "col", [("cr", 2, 1)], "2026-11-24T00:00:00.000000Z") == {
            "showcased": 2, "content": 1}
        assert states() == {"1": "showcased", "2": "sent", "3": "content", "4": "sent"}
        assert led.apply_detail("b", "col", [("cr", 1, 0)], "2026-11-25T00:00:00.000000Z") == {}
        assert states() == {"1": "showcased", "2": "sent", "3": "content", "4": "sent"}
        assert led.apply_detail("b", "col", [("cr", 9, 3)], "2026-11-26T00:00:00.000000Z") == {
            "showcased": 2, "content": 2}
        assert states() == {"1": "content", "2": "content", "3": "content", "4": "showcased"}
