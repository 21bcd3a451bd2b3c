"""The ledger: the one source of truth (invitations, API calls and quota, runs, creators, plans, run locks).

All SQL lives here, behind `Ledger`'s methods; nothing SQLite-specific leaks into its interface, so that a
PostgreSQL ledger can implement the same methods. Times are UTC ISO-8601 text, readable with `sqlite3`."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trendio_cli.errors import LedgerError, LedgerNotFound, Refused

if TYPE_CHECKING:
    import sqlite_utils

# Invitation states (product.md): planned -> pending -> sent | conflict | failed | ineligible; then, from sync,
# showcased (the creator added the products to their showcase: the platform's "accept") -> content (posted
# content), or expired (the collaboration ended first). The platform has no decline.
PLANNED, PENDING, SENT, CONFLICT, FAILED, INELIGIBLE = "planned", "pending", "sent", "conflict", "failed", "ineligible"
SHOWCASED, CONTENT, EXPIRED = "showcased", "content", "expired"
INVITED_STATES = (PENDING, SENT, SHOWCASED, CONTENT, EXPIRED)  # the creator got (or may have got) the invitation
INVITED_SQL = "('pending', 'sent', 'showcased', 'content', 'expired')"
TAKEN_SQL = "('showcased', 'content')"  # the creator took the invitation up
FINAL_STATES = (SENT, CONFLICT, FAILED, INELIGIBLE, SHOWCASED, CONTENT, EXPIRED)


def _lock_stale_after_s() -> float:
    """How long a holder on another host may go without a heartbeat before its lock is taken over
    (TRENDIO_LOCK_STALE_S, default 10 minutes). A holder on this host keeps its lock while its process lives,
    whatever its heartbeat says; a paused holder that lost its lock notices at its next write (fencing)."""
    text = os.environ.get("TRENDIO_LOCK_STALE_S", "").strip()
    try:
        value = float(text) if text else 600.0
    except ValueError:
        return 600.0
    return min(max(value, 1.0), 7 * 86_400.0) if value == value else 600.0


def this_host() -> str:
    """The name a run lock records for this machine: the host name (TRENDIO_HOST replaces it, for tests that
    play two machines on one, and for machines whose names collide)."""
    return os.environ.get("TRENDIO_HOST", "").strip()[:200] or socket.gethostname()


def _host_id() -> str:
    """This host as run locks compare it: its name and its PID namespace, so that two containers that share a
    host name but not their process ids are two hosts (a pid is only meaningful inside its namespace)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{this_host()}|{namespace}"

# A send slot is never further ahead than this (a Retry-After hold is at most 60 s): a schedule further out
# was written under a clock that has since gone back, and starts again from now.
PACE_HORIZON_S = 120.0
BUSY_TIMEOUT_MS = int(os.environ.get("TRENDIO_LEDGER_BUSY_TIMEOUT_MS", "30000").strip() or 30000) \
    if os.environ.get("TRENDIO_LEDGER_BUSY_TIMEOUT_MS", "30000").strip().isdigit() else 30_000
_LEDGER_HINTS = {
    "database is locked": "another process held the ledger's write lock for longer than the busy timeout "
                          "(TRENDIO_LEDGER_BUSY_TIMEOUT_MS, default 30000); try again",
    "database or disk is full": "free some disk space; nothing of the failed write was kept",
    "attempt to write a readonly database": "the ledger file or its folder is read-only",
}


def utcnow() -> str:
    """Now, as the ledger writes times: `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    global _formatted_second
    now = time.time()
    second, text = _formatted_second
    if second != int(now):  # several writes a request: format the date and time once a second
        second = int(now)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _formatted_second = (second, text)
    return f"{text}.{int((now - second) * 1_000_000):06d}Z"


_formatted_second: tuple[int, str] = (-1, "")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class QuotaExhausted(Exception):
    """Raised by `reserve_call` when the brand's quota day has no request left under the given limit."""

    def __init__(self, used: int, limit: int) -> None:
        super().__init__(f"{used} of {limit} requests used")
        self.used = used
        self.limit = limit


@dataclass(frozen=True)
class CallSpec:
    """One API call to count against a brand's quota day (see `Ledger.reserve_call`)."""

    brand: str
    quota_day: str
    endpoint: str
    limit: int
    run_id: int | None
    batch_key: str | None = None
    attempt: int = 1
    share: tuple[Sequence[str], int] | None = None
    claim: Sequence[tuple[str, str]] = ()
    # pairs this run already holds pending that this request sends again under its own key (what is left of a
    # request after conflicts or ineligible creators): read back by this request's name if the run dies
    rekey: Sequence[tuple[str, str]] = ()


class ClaimRefused(Exception):
    """Raised by `reserve_call` when a pair to claim is no longer planned (another batch of the same plan claimed
    it, or it was answered): the call is not reserved and must not be sent."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        super().__init__(f"{len(pairs)} pair(s) no longer planned, e.g. creator {pairs[0][0]} x product {pairs[0][1]}")
        self.pairs = list(pairs)


class LockLost(Refused):
    """This run no longer holds its brand's lock (another run took it over while this one was paused or
    silent): it must send and write nothing more under the lock."""


@dataclass(frozen=True)
class Fence:
    """The brand lock a run holds: its writes under the lock are valid only while `epoch` is current."""

    brand: str
    run_id: int
    epoch: int


@dataclass(frozen=True)
class Reservation:
    """A call counted against the quota: its row in api_calls."""

    call_id: int


@dataclass(frozen=True)
class PendingPair:
    creator_id: str
    product_id: str
    campaign: str
    batch_key: str
    claimed_at: str
    run_id: int | None


# --- migrations --------------------------------------------------------------------------------------
MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = []


def migration(fn: Callable[[sqlite_utils.Database], None]) -> Callable[[sqlite_utils.Database], None]:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    db["runs"].create({
        "id": int, "brand": str, "campaign": str, "command": str, "plan_id": str, "user": str, "host": str,
        "pid": int, "started_at": str, "ended_at": str, "status": str, "exit_code": int,
        "counts": str, "errors": str,
    }, pk="id")
    db["invitations"].create({
        "id": int, "brand": str, "creator_id": str, "product_id": str, "campaign": str, "tier": str,
        "state": str, "run_id": int, "batch_key": str, "collaboration_id": str, "code": int, "message": str,
        "created_at": str, "claimed_at": str, "sent_at": str, "answered_at": str, "updated_at": str,
    }, pk="id", not_null={"brand", "creator_id", "product_id", "state"})
    db["invitations"].create_index(["brand", "creator_id", "product_id"], unique=True)
    db["invitations"].create_index(["brand", "state"])
    db["invitations"].create_index(["brand", "campaign", "claimed_at"])
    db["api_calls"].create({
        "id": int, "brand": str, "quota_day": str, "endpoint": str, "run_id": int, "batch_key": str,
        "reserved_at": str, "finished_at": str, "http_status": int, "code": int, "outcome": str,
        "latency_ms": float, "request_id": str, "attempt": int, "message": str,
    }, pk="id", not_null={"brand", "quota_day", "endpoint"})
    db["api_calls"].create_index(["brand", "quota_day"])
    db["api_calls"].create_index(["reserved_at"])
    db["quota_usage"].create({"brand": str, "quota_day": str, "used": int}, pk=("brand", "quota_day"))
    db["creators"].create({
        "brand": str, "creator_id": str, "handle": str, "followers": int, "gmv_30d": float, "category": str,
        "engagement_rate": float, "last_active": str, "flag": str, "flag_reason": str, "flagged_until": str,
        "extra": str, "updated_at": str,
    }, pk=("brand", "creator_id"))
    db["plans"].create({
        "id": str, "brand": str, "campaign": str, "created_at": str, "fingerprint": str, "pairs": int,
        "applied_run_id": int, "applied_at": str,
    }, pk="id")
    db["run_locks"].create({
        "brand": str, "run_id": int, "pid": int, "host": str, "acquired_at": str, "heartbeat_at": str,
    }, pk="brand")


@migration
def m002_claimed_at_index(db: sqlite_utils.Database) -> None:
    # weekly outreach counts creators first contacted since a time: an index on (brand, claimed_at)
    db["invitations"].create_index(["brand", "claimed_at"])


@migration
def m003_invitation_expiry(db: sqlite_utils.Database) -> None:
    # when the collaboration ends: a sent invitation still unanswered then is expired, without asking
    db["invitations"].add_column("expires_at", str)
    db["invitations"].create_index(["brand", "collaboration_id"])


@migration
def m004_funnel_index(db: sqlite_utils.Database) -> None:
    # the merchant dashboard and the report count invitations by campaign, tier and state
    db["invitations"].create_index(["brand", "campaign", "tier", "state"])


@migration
def m005_pace(db: sqlite_utils.Database) -> None:
    # the send schedule shared by every process on the ledger, per rate scope: when the next slot is free,
    # the size of the last group taken, and until when groups are single slots (after a 429)
    db["pace"].create({"scope": str, "next_at": float, "size": int, "single_until": float}, pk="scope",
                      not_null={"next_at", "size", "single_until"}, defaults={"single_until": 0.0})


@migration
def m006_open_ids(db: sqlite_utils.Database) -> None:
    # creators are named by Creator Open IDs; the plain id is kept beside it for shops that still create with it,
    # with when the platform last said whether the creator can be reached (the 2026 eligibility check)
    db["creators"].add_column("creator_user_id", str)
    db["creators"].add_column("checked_at", str)
    db["creators"].create_index(["brand", "creator_user_id"])
    # the platform's own figures for the shop's weekly outreach quota, as last read
    db["outreach_quota"].create({"brand": str, "fetched_at": str, "data": str}, pk="brand")


@migration
def m007_outcomes(db: sqlite_utils.Database) -> None:
    # what creators do with invitations, as the platform reports it: showcase, then content; no decline.
    # Rows of the older model move over: accepted -> showcased, declined -> expired (never showcased).
    for statement in PG_MIGRATIONS["m007_outcomes"]:
        db.execute(statement)


# Views for people who browse the ledger (sqlite3, Datasette, psql): what they look up, joined. The same text
# on SQLite and PostgreSQL.
LEDGER_VIEWS = {
    "invitation_details": (
        "SELECT i.id, i.brand, i.campaign, i.tier, i.creator_id, c.handle, c.followers, i.product_id, i.state, "
        "i.collaboration_id, i.claimed_at, i.sent_at, i.showcased_at, i.content_at, i.answered_at, i.expires_at, "
        "i.code, i.message, i.run_id, "
        "r.command AS run_command, r.\"user\" AS run_user "
        "FROM invitations i LEFT JOIN creators c ON c.brand = i.brand AND c.creator_id = i.creator_id "
        "LEFT JOIN runs r ON r.id = i.run_id WHERE i.state != 'planned'"),
    "requests_per_day": (
        "SELECT brand, quota_day, COUNT(*) AS requests, "
        "SUM(CASE WHEN endpoint = 'create_collaboration' THEN 1 ELSE 0 END) AS creates, "
        "SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) AS ok, "
        "SUM(CASE WHEN outcome NOT IN ('ok', 'reserved') THEN 1 ELSE 0 END) AS errors, "
        "SUM(CASE WHEN outcome = 'rate_limited' THEN 1 ELSE 0 END) AS rate_limited, "
        "SUM(CASE WHEN outcome IN ('rate_limited', 'transient') THEN 1 ELSE 0 END) AS retries "
        "FROM api_calls GROUP BY brand, quota_day"),
}


@migration
def m008_links_and_views(db: sqlite_utils.Database) -> None:
    # Foreign keys so that browsers show the links (SQLite cannot add one with ALTER: transform rebuilds the
    # table and its indexes); declared, not enforced, as every SQLite ledger so far. Then the views.
    db["invitations"].transform(add_foreign_keys=[("run_id", "runs", "id")])
    db["plans"].transform(add_foreign_keys=[("applied_run_id", "runs", "id")])
    for name, select in LEDGER_VIEWS.items():
        db.execute(f"CREATE VIEW IF NOT EXISTS {name} AS {select}")


@migration
def m009_lock_epochs(db: sqlite_utils.Database) -> None:
    # fencing: every acquisition of a brand's lock takes the next epoch (counted in lock_epochs, which outlives
    # the lock rows), and a run writes under the lock only while its epoch is the lock's; host_id tells two
    # machines (or PID namespaces) apart where host names collide
    db["run_locks"].add_column("epoch", int)
    db["run_locks"].add_column("host_id", str)
    db["lock_epochs"].create({"brand": str, "epoch": int}, pk="brand", not_null={"epoch"})


@migration
def m010_rate_state(db: sqlite_utils.Database) -> None:
    # admission: per rate scope, the state of pyrate-limiter's GCRA that spaces the slots (its theoretical
    # arrival time, in integer nanoseconds), until when the scope is held after a 429, and the log of the
    # requests that left within the last window (microseconds, oldest first, comma-separated) for its sliding
    # window log. Replaces the group schedule in `pace`.
    db["rate_state"].create({"scope": str, "tat_ns": int, "hold_until": float, "departures": str,
                             "updated_at": str}, pk="scope", not_null={"tat_ns", "hold_until"},
                            defaults={"hold_until": 0.0})
    db["pace"].drop()


SCHEMA_VERSION = len(MIGRATIONS)

# The same migrations for a PostgreSQL ledger (same names, same tables and columns).
PG_MIGRATIONS: dict[str, list[str]] = {
    "m001_initial": [
        "CREATE TABLE runs (id BIGSERIAL PRIMARY KEY, brand TEXT, campaign TEXT, command TEXT, plan_id TEXT, "
        "\"user\" TEXT, host TEXT, pid INTEGER, started_at TEXT, ended_at TEXT, status TEXT, exit_code INTEGER, "
        "counts TEXT, errors TEXT)",
        "CREATE TABLE invitations (id BIGSERIAL PRIMARY KEY, brand TEXT NOT NULL, creator_id TEXT NOT NULL, "
        "product_id TEXT NOT NULL, campaign TEXT, tier TEXT, state TEXT NOT NULL, run_id BIGINT, batch_key TEXT, "
        "collaboration_id TEXT, code BIGINT, message TEXT, created_at TEXT, claimed_at TEXT, sent_at TEXT, "
        "answered_at TEXT, updated_at TEXT)",
        "CREATE UNIQUE INDEX idx_invitations_brand_creator_id_product_id "
        "ON invitations (brand, creator_id, product_id)",
        "CREATE INDEX idx_invitations_brand_state ON invitations (brand, state)",
        "CREATE INDEX idx_invitations_brand_campaign_claimed_at ON invitations (brand, campaign, claimed_at)",
        "CREATE TABLE api_calls (id BIGSERIAL PRIMARY KEY, brand TEXT NOT NULL, quota_day TEXT NOT NULL, "
        "endpoint TEXT NOT NULL, run_id BIGINT, batch_key TEXT, reserved_at TEXT, finished_at TEXT, "
        "http_status INTEGER, code BIGINT, outcome TEXT, latency_ms DOUBLE PRECISION, request_id TEXT, "
        "attempt INTEGER, message TEXT)",
        "CREATE INDEX idx_api_calls_brand_quota_day ON api_calls (brand, quota_day)",
        "CREATE INDEX idx_api_calls_reserved_at ON api_calls (reserved_at)",
        "CREATE TABLE quota_usage (brand TEXT, quota_day TEXT, used INTEGER, PRIMARY KEY (brand, quota_day))",
        "CREATE TABLE creators (brand TEXT, creator_id TEXT, handle TEXT, followers BIGINT, gmv_30d DOUBLE PRECISION, "
        "category TEXT, engagement_rate DOUBLE PRECISION, last_active TEXT, flag TEXT, flag_reason TEXT, "
        "flagged_until TEXT, extra TEXT, updated_at TEXT, PRIMARY KEY (brand, creator_id))",
        "CREATE TABLE plans (id TEXT PRIMARY KEY, brand TEXT, campaign TEXT, created_at TEXT, fingerprint TEXT, "
        "pairs INTEGER, applied_run_id BIGINT, applied_at TEXT)",
        "CREATE TABLE run_locks (brand TEXT PRIMARY KEY, run_id BIGINT, pid INTEGER, host TEXT, acquired_at TEXT, "
        "heartbeat_at TEXT)",
    ],
    "m002_claimed_at_index": ["CREATE INDEX idx_invitations_brand_claimed_at ON invitations (brand, claimed_at)"],
    "m003_invitation_expiry": [
        "ALTER TABLE invitations ADD COLUMN expires_at TEXT",
        "CREATE INDEX idx_invitations_brand_collaboration_id ON invitations (brand, collaboration_id)",
    ],
    "m004_funnel_index": [
        "CREATE INDEX idx_invitations_brand_campaign_tier_state ON invitations (brand, campaign, tier, state)"],
    "m005_pace": ["CREATE TABLE pace (scope TEXT PRIMARY KEY, next_at DOUBLE PRECISION NOT NULL, "
                  "size INTEGER NOT NULL, single_until DOUBLE PRECISION NOT NULL DEFAULT 0)"],
    "m006_open_ids": [
        "ALTER TABLE creators ADD COLUMN creator_user_id TEXT",
        "ALTER TABLE creators ADD COLUMN checked_at TEXT",
        "CREATE INDEX idx_creators_brand_creator_user_id ON creators (brand, creator_user_id)",
        "CREATE TABLE outreach_quota (brand TEXT PRIMARY KEY, fetched_at TEXT, data TEXT)",
    ],
    # plain SQL that SQLite and PostgreSQL both take
    "m007_outcomes": [
        "UPDATE invitations SET state = 'showcased' WHERE state = 'accepted'",
        "UPDATE invitations SET state = 'expired' WHERE state = 'declined'",
        "ALTER TABLE invitations ADD COLUMN showcased_at TEXT",
        "ALTER TABLE invitations ADD COLUMN content_at TEXT",
        "UPDATE invitations SET showcased_at = answered_at WHERE state = 'showcased'",
        # the shop's collaborations as the search last counted them; `final` once seen ended (COMPLETED)
        "CREATE TABLE collaborations (brand TEXT NOT NULL, id TEXT NOT NULL, name TEXT, status TEXT, "
        "invited INTEGER, showcased INTEGER, content INTEGER, products INTEGER, start_time INTEGER, "
        "end_time INTEGER, update_time INTEGER, seen_at TEXT, detail_at TEXT, final INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (brand, id))",
        # affiliate orders: one row per order and SKU, status and refunds updated in place
        "CREATE TABLE orders (brand TEXT NOT NULL, order_id TEXT NOT NULL, sku TEXT NOT NULL, "
        "collaboration_id TEXT, creator_id TEXT, creator_username TEXT, product_id TEXT, status TEXT, "
        "quantity INTEGER, refunded INTEGER, returned INTEGER, currency TEXT, gmv DOUBLE PRECISION, "
        "actual_base DOUBLE PRECISION, estimated_commission DOUBLE PRECISION, "
        "actual_commission DOUBLE PRECISION, content_type TEXT, created_at TEXT, updated_at TEXT, "
        "PRIMARY KEY (brand, order_id, sku))",
        "CREATE INDEX idx_orders_brand_collaboration_id ON orders (brand, collaboration_id)",
        "CREATE INDEX idx_orders_brand_creator_id ON orders (brand, creator_id)",
        # where each brand's incremental sync got to
        "CREATE TABLE sync_state (brand TEXT NOT NULL, name TEXT NOT NULL, value TEXT, PRIMARY KEY (brand, name))",
        # each campaign's limits and lifecycle as last executed, so that sync applies the campaign's own rules
        "CREATE TABLE campaigns (brand TEXT NOT NULL, campaign TEXT NOT NULL, spec TEXT, updated_at TEXT, "
        "PRIMARY KEY (brand, campaign))",
    ],
    # NOT VALID: rows written before are not checked (a ledger imported from SQLite never was); new ones are
    "m008_links_and_views": [
        "ALTER TABLE invitations ADD CONSTRAINT invitations_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs (id) "
        "NOT VALID",
        "ALTER TABLE plans ADD CONSTRAINT plans_applied_run_id_fkey FOREIGN KEY (applied_run_id) "
        "REFERENCES runs (id) NOT VALID",
        *(f"CREATE OR REPLACE VIEW {name} AS {select}" for name, select in LEDGER_VIEWS.items()),
    ],
    "m009_lock_epochs": [
        "ALTER TABLE run_locks ADD COLUMN epoch BIGINT",
        "ALTER TABLE run_locks ADD COLUMN host_id TEXT",
        "CREATE TABLE lock_epochs (brand TEXT PRIMARY KEY, epoch BIGINT NOT NULL)",
    ],
    "m010_rate_state": [
        "CREATE TABLE rate_state (scope TEXT PRIMARY KEY, tat_ns BIGINT NOT NULL, "
        "hold_until DOUBLE PRECISION NOT NULL DEFAULT 0, departures TEXT, updated_at TEXT)",
        "DROP TABLE pace",
    ],
}
assert list(PG_MIGRATIONS) == [name for name, _ in MIGRATIONS]


def is_postgres_url(path: str | os.PathLike[str]) -> bool:
    return str(path).startswith(("postgresql://", "postgres://"))


def shown_location(path: str | os.PathLike[str]) -> str:
    """A ledger location fit to print: a PostgreSQL URL loses its user and password."""
    text = str(path)
    return f"postgresql://…@{text.split('@')[-1]}" if is_postgres_url(text) else text


class _PgConnection:
    """A psycopg connection with the sqlite3 calls the ledger uses (`?` placeholders, execute, executemany)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.raw = psycopg.connect(url, autocommit=True)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.raw.execute(sql.replace("?", "%s"), tuple(args) if args else None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        cur = self.raw.cursor()
        cur.executemany(sql.replace("?", "%s"), list(rows))
        return cur

    def close(self) -> None:
        self.raw.close()


def _db_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.OperationalError, sqlite3.DatabaseError]
    try:
        import psycopg

        errors.append(psycopg.OperationalError)
        errors.append(psycopg.DatabaseError)
    except ImportError:
        pass
    return tuple(errors)


def _integrity_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.IntegrityError]
    try:
        import psycopg

        errors.append(psycopg.IntegrityError)
    except ImportError:
        pass
    return tuple(errors)


class Ledger:
    """Open with `Ledger.open(path)` (creates and migrates) or `Ledger.open(path, readonly=True)`
    (never writes; a missing file reads as an empty ledger)."""

    def __init__(self, conn: Any, path: str, readonly: bool) -> None:
        self.conn = conn
        self.pg = isinstance(conn, _PgConnection)
        self.path = path
        self.readonly = readonly
        self.created = False  # this open made a new ledger file
        # Writes that may wait for the next transaction (a call's and its pairs' outcome), so that a request
        # costs one commit: its reservation. Safe because the pairs were claimed pending before the request
        # left: if the process dies first, the next run reconciles them, as after any crash mid-request.
        self._deferred: list[tuple[str, list[Sequence[Any]]]] = []
        # The brand lock this ledger's run holds (`acquire_brand_lock`): every transaction but the run's own
        # bookkeeping checks it first, in the same transaction, and fails with LockLost once it is gone.
        self.fence: Fence | None = None

    # --- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False, migrate: bool = False,
             must_exist: bool = False) -> Ledger:
        """`migrate=True` with `readonly=True`: bring an older ledger up to date first (views do this;
        plan and dry-run never write, so they refuse an older ledger instead).

        A missing SQLite file: with `must_exist` (views, edits by hand) it is LedgerNotFound; read only, it
        reads as an empty ledger (plan, dry-run); to write, a new ledger is made, but only in a folder that
        exists (`created` says it was), so that a mistyped location is an error instead of a new tree.

        `path` may also be a PostgreSQL URL (`postgresql://user:password@host/db`): the same ledger on a
        server that several machines share."""
        if is_postgres_url(path):
            return cls._open_pg(str(path), readonly=readonly)
        if must_exist and not _has_ledger_file(Path(path)):
            raise LedgerNotFound(str(path), folder_missing=not Path(path).parent.is_dir())
        if readonly and migrate and Path(path).is_file():
            probe = cls._open(path, readonly=True, strict=False)
            older = probe._schema_version() < SCHEMA_VERSION
            probe.close()
            if older:
                cls._open(path, readonly=False).close()
        return cls._open(path, readonly=readonly)

    @classmethod
    def _open(cls, path: str | os.PathLike[str], *, readonly: bool = False, strict: bool = True) -> Ledger:
        p = Path(path)
        created = False
        try:
            if readonly:
                if not p.exists():
                    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                    ledger = cls(conn, str(p), readonly=True)
                    ledger._migrate()
                    return ledger
                if p.is_dir():
                    raise LedgerError(f"{p}: is a directory, not a ledger file")
                conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True,
                                       isolation_level=None, check_same_thread=False)
            else:
                if p.is_dir():
                    raise LedgerError(f"{p}: is a directory, not a ledger file")
                if str(p) != ":memory:" and not _has_ledger_file(p):
                    if not p.parent.is_dir():
                        raise LedgerNotFound(str(p), folder_missing=True)
                    # private from the first byte, whoever makes it (an empty file is a new ledger too)
                    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
                    os.chmod(p, 0o600)
                    created = True
                conn = sqlite3.connect(str(p), isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not readonly:
                _enable_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")
            ledger = cls(conn, str(p), readonly)
            ledger.created = created
            version = ledger._schema_version()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{p}: cannot open the ledger: {exc}",
                              hint="is it a trendio ledger? move a corrupt file aside and a new one is made"
                              ) from None
        except PermissionError:
            raise LedgerError(f"{p}: permission denied") from None
        if not strict:
            return ledger
        if version > SCHEMA_VERSION:
            raise LedgerError(f"{p}: the ledger has schema version {version}, newer than this trendio "
                              f"({SCHEMA_VERSION}): upgrade trendio")
        if version < SCHEMA_VERSION:
            if readonly:
                if version == 0 and not ledger._has_tables():
                    conn.close()
                    return cls._open(":memory:", readonly=False)
                raise LedgerError(f"{p}: the ledger has schema version {version}, older than this trendio "
                                  f"({SCHEMA_VERSION})",
                                  hint="run any writing command (e.g. `trendio execute`) to migrate it")
            ledger._migrate()
        return ledger

    @classmethod
    def _open_pg(cls, url: str, *, readonly: bool) -> Ledger:
        shown = shown_location(url)  # never the password, nor the user
        try:
            conn = _PgConnection(url)
        except ImportError:
            raise LedgerError("a PostgreSQL ledger needs psycopg: pip install 'psycopg[binary]' psycopg-pool") from None
        except _db_errors() as exc:
            # libpq's text may quote parts of the URL (an unparseable password, say): never any of them
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if re.search(r'database "[^"]*" does not exist', detail):
                raise LedgerNotFound(shown) from None  # the server is there, the ledger is not
            raise LedgerError(f"{shown}: cannot connect: {_without_userinfo(detail, url)}") from None
        # A server ledger is shared: views migrate it too (under an advisory lock), a new database included;
        # read only from then on.
        ledger = cls(conn, shown, readonly=False)
        version = ledger._schema_version()
        if version > SCHEMA_VERSION:
            conn.close()
            raise LedgerError(f"{ledger.path}: the ledger has schema version {version}, newer than this trendio")
        if version < SCHEMA_VERSION:
            ledger._migrate()
        ledger.readonly = readonly
        return ledger

    def close(self) -> None:
        try:
            if self._deferred:
                with self.transaction():
                    pass  # the deferred writes go in with it
        except LockLost:
            pass  # they were writes under a lock this run no longer holds: dropped
        finally:
            self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _has_tables(self) -> bool:
        if self.pg:
            return bool(self.conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = "
                                          "current_schema() LIMIT 1").fetchone())
        return bool(self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' LIMIT 1").fetchone())

    def _table_exists(self, name: str) -> bool:
        if self.pg:
            return bool(self.conn.execute("SELECT to_regclass(?)", (name,)).fetchone()[0])
        return bool(self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone())

    def _columns(self, table: str) -> set[str]:
        if self.pg:
            return {r[0] for r in self.conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", (table,))}
        return {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}

    def _schema_version(self) -> int:
        if not self._table_exists("_migrations"):
            return 0
        return int(self.conn.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0])

    def _migrate(self) -> None:
        # imported here: only a migration needs sqlite-utils, and most opens find the ledger up to date
        import sqlite_utils

        with self.transaction() as c:
            if self.pg:
                self._serialize(c, "migrations")
                c.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
            else:
                db = sqlite_utils.Database(self.conn)
                db["_migrations"].create({"name": str, "applied_at": str}, pk="name", if_not_exists=True)
            done = {r[0] for r in c.execute("SELECT name FROM _migrations")}
            for name, fn in MIGRATIONS:
                if name not in done:
                    if self.pg:
                        for statement in PG_MIGRATIONS[name]:
                            c.execute(statement)
                    else:
                        fn(db)
                    c.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, utcnow()))

    def _serialize(self, c: Any, key: str) -> None:
        """On PostgreSQL, what BEGIN IMMEDIATE gives SQLite: one transaction at a time for this key."""
        if self.pg:
            c.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"trendio:{key}",))

    @contextmanager
    def transaction(self, *, fenced: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: the write lock is taken up front, so check-then-write is atomic across processes.

        While this ledger's run holds a brand lock (`fence`), a `fenced` transaction first checks that the
        lock is still the run's, at the same epoch: otherwise it writes nothing, the deferred writes are
        dropped, and LockLost is raised. Only a run's own bookkeeping (its run row, releasing its lock) is
        written unfenced."""
        if self.readonly and self.path != ":memory:" and (self.pg or Path(self.path).exists()):
            raise LedgerError("internal: write attempted on a read-only ledger")
        try:
            self.conn.execute("BEGIN" if self.pg else "BEGIN IMMEDIATE")
        except _db_errors() as exc:
            raise LedgerError(f"{self.path}: cannot write the ledger: {exc}",
                              hint=_LEDGER_HINTS.get(str(exc))) from None
        try:
            if fenced and self.fence is not None:
                self._check_fence(self.conn, self.fence)
            for sql, rows in self._deferred:
                self.conn.executemany(sql, rows)
            yield self.conn
        except LockLost:
            self._rollback_quietly()
            self._deferred.clear()
            raise
        except _integrity_errors():
            self._rollback_quietly()
            raise
        except _db_errors() as exc:
            # disk full, I/O error, a lock held too long: nothing of the transaction is kept
            self._rollback_quietly()
            raise LedgerError(f"{self.path}: cannot write the ledger: {exc}",
                              hint=_LEDGER_HINTS.get(str(exc).split(" (")[0])) from None
        except BaseException:
            self._rollback_quietly()
            raise
        else:
            try:
                self.conn.execute("COMMIT")
                self._deferred.clear()
            except _db_errors() as exc:
                self._rollback_quietly()
                raise LedgerError(f"{self.path}: cannot write the ledger: {exc}",
                                  hint=_LEDGER_HINTS.get(str(exc))) from None

    def _rollback_quietly(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except _db_errors():
            pass  # SQLite may already have rolled back (e.g. after SQLITE_FULL)

    # --- runs --------------------------------------------------------------------------------
    def start_run(self, *, brand: str, campaign: str | None, command: str, plan_id: str | None = None) -> int:
        with self.transaction(fenced=False) as c:
            cur = c.execute(
                "INSERT INTO runs (brand, campaign, command, plan_id, \"user\", host, pid, started_at, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running') RETURNING id",
                (brand, campaign, command, plan_id, _user(), this_host(), os.getpid(), utcnow()),
            )
            return int(cur.fetchone()[0])

    def finish_run(self, run_id: int, *, status: str, exit_code: int, counts: dict[str, Any],
                   errors: Sequence[dict[str, Any]]) -> None:
        """The run's own row: written even after the run lost its brand's lock (it says so)."""
        with self.transaction(fenced=False) as c:
            c.execute(
                "UPDATE runs SET ended_at = ?, status = ?, exit_code = ?, counts = ?, errors = ? WHERE id = ?",
                (utcnow(), status, exit_code, json.dumps(counts), json.dumps(list(errors)[:200]), run_id),
            )

    def runs(self, limit: int = 20, brand: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM runs" + (" WHERE brand = ?" if brand else "") + " ORDER BY id DESC LIMIT ?"
        rows = self._dicts(sql, ((brand, limit) if brand else (limit,)))
        for r in rows:
            r["counts"] = json.loads(r["counts"]) if r.get("counts") else {}
            r["errors"] = json.loads(r["errors"]) if r.get("errors") else []
        return rows

    # --- run locks ---------------------------------------------------------------------------
    def acquire_brand_lock(self, brand: str, run_id: int) -> int:
        """One run per brand at a time. Returns the lock's epoch, one more than any before it for the brand, and
        fences this ledger's later writes with it (`transaction`).

        A holder on this host keeps the lock while its process lives (a paused or sleeping run included, however
        old its heartbeat); a holder on another host keeps it while it heart-beats (TRENDIO_LOCK_STALE_S). A
        dead holder's lock, or a silent one's from another host, is taken over: the old holder can then write
        nothing more under it, and stops at its next write or request."""
        host, host_id = this_host(), _host_id()
        now = time.time()
        with self.transaction(fenced=False) as c:
            self._serialize(c, f"run-lock:{brand}")
            row = c.execute("SELECT run_id, pid, host, heartbeat_at, host_id, acquired_at FROM run_locks "
                            "WHERE brand = ?", (brand,)).fetchone()
            if row is not None and row[0] != run_id:
                holder_run, pid, holder_host, beat, holder_id, acquired = row
                if holder_id == host_id:
                    alive = _pid_alive(pid) and not _pid_started_after(pid, parse_iso(acquired))
                else:
                    alive = now - parse_iso(beat) < _lock_stale_after_s()
                if alive:
                    raise Refused(
                        f"brand {brand!r} is held by run {holder_run} (pid {pid} on {holder_host}, "
                        f"last heartbeat {beat})",
                        hint="wait for it to finish, or stop it; a dead holder's lock is taken over automatically",
                    )
            epoch = int(c.execute(
                "INSERT INTO lock_epochs (brand, epoch) VALUES (?, 1) ON CONFLICT(brand) DO UPDATE SET "
                "epoch = lock_epochs.epoch + 1 RETURNING epoch", (brand,)).fetchone()[0])
            stamp = utcnow()
            c.execute(
                "INSERT INTO run_locks (brand, run_id, pid, host, acquired_at, heartbeat_at, epoch, host_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(brand) DO UPDATE SET run_id = excluded.run_id, "
                "pid = excluded.pid, host = excluded.host, acquired_at = excluded.acquired_at, "
                "heartbeat_at = excluded.heartbeat_at, epoch = excluded.epoch, host_id = excluded.host_id",
                (brand, run_id, os.getpid(), host, stamp, stamp, epoch, host_id),
            )
        self.fence = Fence(brand, run_id, epoch)
        return epoch

    def _check_fence(self, c: Any, fence: Fence, read_only: bool = False) -> None:
        if self.pg and not read_only:  # shared with the other writers of the brand, exclusive against a takeover
            c.execute("SELECT pg_advisory_xact_lock_shared(hashtext(?))", (f"trendio:run-lock:{fence.brand}",))
        row = c.execute("SELECT run_id, epoch, pid, host FROM run_locks WHERE brand = ?", (fence.brand,)).fetchone()
        if row is None or row[0] != fence.run_id or row[1] != fence.epoch:
            held = (f"run {row[0]} (pid {row[2]} on {row[3]}) holds it now" if row is not None
                    else "nobody holds it now")
            raise LockLost(f"run {fence.run_id} lost the lock of brand {fence.brand!r}: {held}; this run sends "
                           f"and writes nothing more", hint="another run took the brand over while this one was "
                           "paused or silent; its work is in the ledger, and the next run reconciles the rest")

    def heartbeat(self, brand: str, run_id: int) -> None:
        """Fenced like every write under the lock: raises LockLost once the lock is another run's."""
        with self.transaction() as c:
            c.execute("UPDATE run_locks SET heartbeat_at = ? WHERE brand = ? AND run_id = ?", (utcnow(), brand, run_id))

    def release_brand_lock(self, brand: str, run_id: int) -> None:
        """Drop the run's own lock (never another run's: a lost lock is left to its new holder)."""
        with self.transaction(fenced=False) as c:
            c.execute("DELETE FROM run_locks WHERE brand = ? AND run_id = ?", (brand, run_id))
        if self.fence is not None and (self.fence.brand, self.fence.run_id) == (brand, run_id):
            self.fence = None

    def locks(self) -> list[dict[str, Any]]:
        return self._dicts("SELECT brand, run_id, pid, host, acquired_at, heartbeat_at, epoch FROM run_locks "
                           "ORDER BY brand")

    # --- API calls and the daily quota --------------------------------------------------------
    def reserve_call(self, *, brand: str, quota_day: str, endpoint: str, limit: int, run_id: int | None,
                     batch_key: str | None = None, attempt: int = 1,
                     share: tuple[Sequence[str], int] | None = None, claim: Sequence[tuple[str, str]] = (),
                     gate: Callable[[Any], bool] | None = None,
                     depart: Callable[[Any], None] | None = None) -> Reservation | None:
        """Count one call against the brand's quota day before it is sent; refuse past `limit`, and, with
        `share=(endpoints, n)`, past n calls to those endpoints that day (a reserve kept for them).

        In the same transaction (with the fencing check of `transaction`), so that a request costs one commit
        before it leaves: `gate(c)` first checks its rate scope (admission.py; what it raises refuses the call
        and keeps nothing; False: not now, and only what the gate wrote is kept, None is returned), `claim`
        marks planned pairs pending (write-ahead, as `claim()`; ClaimRefused if one is not planned any more),
        and `depart(c)`, last before the commit, records its departure (what it raises refuses the call).
        Refused (QuotaExhausted, ClaimRefused, LockLost, the gate's), it changes nothing."""
        spec = CallSpec(brand, quota_day, endpoint, limit, run_id, batch_key, attempt, share, claim)
        with self.transaction() as c:
            if gate is not None and not gate(c):
                return None
            reservation = Reservation(self._reserve(c, spec, utcnow()))
            if depart is not None:
                depart(c)
            return reservation

    def _reserve(self, c: Any, spec: CallSpec, now: str) -> int:
        brand, quota_day = spec.brand, spec.quota_day
        if spec.share is not None:
            self._serialize(c, f"quota:{brand}:{quota_day}")
            endpoints, cap = spec.share
            marks = ",".join("?" * len(endpoints))
            spent = c.execute(f"SELECT COUNT(*) FROM api_calls WHERE brand = ? AND quota_day = ? "
                              f"AND endpoint IN ({marks})", (brand, quota_day, *endpoints)).fetchone()[0]
            if spent + 1 > cap:
                raise QuotaExhausted(spent, cap)
        # counted and checked in one statement (its row lock serializes the brand's day on PostgreSQL)
        count = "UPDATE quota_usage SET used = used + 1 WHERE brand = ? AND quota_day = ? AND used < ? RETURNING used"
        if c.execute(count, (brand, quota_day, spec.limit)).fetchone() is None:
            self._serialize(c, f"quota:{brand}:{quota_day}")  # the day's first call, or the limit reached
            row = c.execute("SELECT used FROM quota_usage WHERE brand = ? AND quota_day = ?",
                            (brand, quota_day)).fetchone()
            if row is None and spec.limit >= 1:
                c.execute("INSERT INTO quota_usage (brand, quota_day, used) VALUES (?, ?, 1)", (brand, quota_day))
            elif row is None or c.execute(count, (brand, quota_day, spec.limit)).fetchone() is None:
                raise QuotaExhausted(row[0] if row else 0, spec.limit)
        if spec.claim and self._claim(c, brand, spec.run_id, spec.batch_key or "", spec.claim, now) < len(spec.claim):
            raise ClaimRefused(self._not_planned(c, brand, spec.claim))
        if spec.rekey and c.executemany(
                "UPDATE invitations SET batch_key = ?, claimed_at = ?, updated_at = ? WHERE brand = ? "
                "AND creator_id = ? AND product_id = ? AND state = 'pending' AND run_id = ?",
                ((spec.batch_key or "", now, now, brand, cr, pr, spec.run_id) for cr, pr in spec.rekey)
        ).rowcount < len(spec.rekey):
            raise ClaimRefused(list(spec.rekey))  # no longer this run's pending pairs: answered, or taken over
        return int(c.execute(
            "INSERT INTO api_calls (brand, quota_day, endpoint, run_id, batch_key, reserved_at, attempt, outcome) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'reserved') RETURNING id",
            (brand, quota_day, spec.endpoint, spec.run_id, spec.batch_key, now, spec.attempt),
        ).fetchone()[0])

    def record_call(self, call_id: int, *, outcome: str, http_status: int | None, code: int | None,
                    latency_ms: float, request_id: str | None, message: str = "", defer: bool = False) -> None:
        """The answer to a reserved call (once: a call already answered is left alone). `defer`:
        written with the ledger's next transaction (or when it is closed) instead of in one of its own; the
        quota was counted at reservation either way."""
        self._write("UPDATE api_calls SET finished_at = ?, outcome = ?, http_status = ?, code = ?, latency_ms = ?, "
                    "request_id = ?, message = ? WHERE id = ? AND outcome = 'reserved'",
                    [(utcnow(), outcome, http_status, code, round(latency_ms, 2), request_id, message[:500],
                      call_id)], defer)

    def _write(self, sql: str, rows: list[Sequence[Any]], defer: bool) -> None:
        if defer:
            self._deferred.append((sql, rows))
            return
        with self.transaction() as c:
            c.executemany(sql, rows)

    # --- admission: the rate scopes' state (admission.py) ---------------------------------------
    def rate_state(self, c: Any, scope: str) -> tuple[int, float, list[int]]:
        """In a transaction: the scope's state, locked for this transaction's update: GCRA's theoretical arrival
        time (integer nanoseconds; 0 for a scope never used), until when the scope is held, and the departures
        of its last window (integer microseconds, oldest first)."""
        lock = " FOR UPDATE" if self.pg else ""  # (the row lock serializes the scope on PostgreSQL)
        row = c.execute(f"SELECT tat_ns, hold_until, departures FROM rate_state WHERE scope = ?{lock}",
                        (scope,)).fetchone()
        if row is None:
            c.execute("INSERT INTO rate_state (scope, tat_ns, hold_until) VALUES (?, 0, 0) ON CONFLICT(scope) "
                      "DO NOTHING", (scope,))
            row = c.execute(f"SELECT tat_ns, hold_until, departures FROM rate_state WHERE scope = ?{lock}",
                            (scope,)).fetchone()
        tat, hold, log = row
        return int(tat), float(hold), [int(t) for t in log.split(",")] if log else []

    def set_rate_state(self, c: Any, scope: str, tat_ns: int, departures: Sequence[int] | None = None) -> None:
        """In the transaction that read it: the scope's new state (`departures` None: unchanged)."""
        if departures is None:
            c.execute("UPDATE rate_state SET tat_ns = ?, updated_at = ? WHERE scope = ?",
                      (int(tat_ns), utcnow(), scope))
        else:
            c.execute("UPDATE rate_state SET tat_ns = ?, departures = ?, updated_at = ? WHERE scope = ?",
                      (int(tat_ns), ",".join(map(str, departures)), utcnow(), scope))

    def hold_rate_scope(self, scope: str, until: float) -> None:
        """No request of the scope leaves before `until` (the platform asked every process to wait)."""
        g = self._greatest
        with self.transaction() as c:
            c.execute(f"INSERT INTO rate_state (scope, tat_ns, hold_until, updated_at) VALUES (?, ?, ?, ?) "
                      f"ON CONFLICT(scope) DO UPDATE SET tat_ns = {g}(rate_state.tat_ns, excluded.tat_ns), "
                      f"hold_until = {g}(rate_state.hold_until, excluded.hold_until), updated_at = excluded.updated_at",
                      (scope, int(until * 1e9), until, utcnow()))

    def checkpoint_later(self) -> None:
        """SQLite: no WAL checkpoint at this connection's commits (one takes 10-20 ms now and then, with its
        fsync: right before a request's first byte, it would delay the request past its margin); the run
        checkpoints between requests instead (`checkpoint`, with its heartbeat) and when it closes."""
        if not self.pg and not self.readonly:
            self.conn.execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint(self) -> None:
        """Copy the WAL back into the ledger file as far as readers allow (SQLite; nothing on PostgreSQL)."""
        if not self.pg and not self.readonly:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    @property
    def _greatest(self) -> str:
        return "GREATEST" if self.pg else "MAX"

    def calls_used(self, brand: str, quota_day: str) -> int:
        row = self.conn.execute("SELECT used FROM quota_usage WHERE brand = ? AND quota_day = ?",
                                (brand, quota_day)).fetchone()
        return int(row[0]) if row else 0

    def calls_count(self, brand: str | None = None, quota_day: str | None = None) -> int:
        """Rows in api_calls (every reserved call), for cross-checks against the platform's own count."""
        sql, args = "SELECT COUNT(*) FROM api_calls WHERE 1=1", []
        if brand:
            sql, args = sql + " AND brand = ?", [*args, brand]
        if quota_day:
            sql, args = sql + " AND quota_day = ?", [*args, quota_day]
        return int(self.conn.execute(sql, args).fetchone()[0])

    def calls_by(self, brand: str, quota_day: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for endpoint, outcome, n in self.conn.execute(
            "SELECT endpoint, outcome, COUNT(*) FROM api_calls WHERE brand = ? AND quota_day = ? "
            "GROUP BY endpoint, outcome", (brand, quota_day)):
            out.setdefault(endpoint, {})[outcome] = n
        return out

    # --- invitations -------------------------------------------------------------------------
    def invited_pairs(self, brand: str) -> dict[str, tuple[str, ...]]:
        """Every (creator -> products) already in the ledger for the brand, any campaign, any state but planned."""
        out: dict[str, tuple[str, ...]] = {}
        for creator, products in self.conn.execute(
            f"SELECT creator_id, {'string_agg' if self.pg else 'group_concat'}(product_id, ?) FROM invitations "
            "WHERE brand = ? AND state != 'planned' GROUP BY creator_id", ("\x1f", brand)
        ):
            out[creator] = tuple(products.split("\x1f"))
        return out

    def clear_planned(self, brand: str) -> int:
        """Planned rows left by earlier runs were never sent; the brand's lock holder may drop them."""
        with self.transaction() as c:
            return c.execute("DELETE FROM invitations WHERE brand = ? AND state = 'planned'", (brand,)).rowcount

    def insert_planned(self, brand: str, campaign: str, run_id: int,
                       rows: Iterable[tuple[str, str, str, str]], expires_at: str | None = None) -> int:
        """rows: (creator_id, product_id, tier, batch_key). Pairs already in the ledger are skipped."""
        now = utcnow()
        with self.transaction() as c:
            cur = c.executemany(
                "INSERT INTO invitations (brand, creator_id, product_id, campaign, tier, state, run_id, batch_key, "
                "created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, 'planned', ?, ?, ?, ?, ?) "
                "ON CONFLICT(brand, creator_id, product_id) DO NOTHING",
                ((brand, cr, pr, campaign, tier, run_id, bk, now, now, expires_at) for cr, pr, tier, bk in rows),
            )
            return cur.rowcount

    def claim(self, brand: str, run_id: int, batch_key: str, pairs: Sequence[tuple[str, str]]) -> int:
        """Write-ahead: mark the batch's planned pairs pending before the request leaves; how many were."""
        with self.transaction() as c:
            return self._claim(c, brand, run_id, batch_key, pairs, utcnow())

    def _claim(self, c: Any, brand: str, run_id: int | None, batch_key: str, pairs: Sequence[tuple[str, str]],
               now: str) -> int:
        # only from planned: a pair claimed twice (a plan listing a batch twice) would be sent twice
        return c.executemany(
            "UPDATE invitations SET state = 'pending', run_id = ?, batch_key = ?, claimed_at = ?, updated_at = ? "
            "WHERE brand = ? AND creator_id = ? AND product_id = ? AND state = 'planned'",
            ((run_id, batch_key, now, now, brand, cr, pr) for cr, pr in pairs),
        ).rowcount

    def _not_planned(self, c: Any, brand: str, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        return [pair for pair in pairs if (c.execute(
            "SELECT state FROM invitations WHERE brand = ? AND creator_id = ? AND product_id = ?",
            (brand, *pair)).fetchone() or ("",))[0] != PLANNED] or list(pairs[:1])

    def mark(self, brand: str, pairs: Sequence[tuple[str, str]], state: str, *, collaboration_id: str | None = None,
             code: int | None = None, message: str | None = None, defer: bool = False) -> None:
        """Record the outcome of pending pairs (one transaction, however many pairs; with `defer`, written with
        the next transaction, as `record_call`). Only a pending pair moves (pending -> sent | conflict | failed |
        ineligible): a pair already answered keeps its answer, so an invited pair is never rewritten."""
        if state not in (SENT, CONFLICT, FAILED, INELIGIBLE):
            raise ValueError(f"internal: an outcome moves a pending pair to a final state, not to {state!r}")
        now = utcnow()
        sent_at = now if state == SENT else None
        self._write("UPDATE invitations SET state = ?, collaboration_id = COALESCE(?, collaboration_id), code = ?, "
                    "message = ?, sent_at = COALESCE(?, sent_at), updated_at = ? "
                    "WHERE brand = ? AND creator_id = ? AND product_id = ? AND state = 'pending'",
                    [(state, collaboration_id, code, message, sent_at, now, brand, cr, pr) for cr, pr in pairs], defer)

    def unclaim(self, brand: str, pairs: Sequence[tuple[str, str]]) -> None:
        """The platform certainly did not act on these pairs (refused before acting): back to planned (only from
        pending)."""
        with self.transaction() as c:
            self._unclaim(c, brand, pairs, utcnow())

    def _unclaim(self, c: Any, brand: str, pairs: Sequence[tuple[str, str]], now: str) -> None:
        c.executemany(
            "UPDATE invitations SET state = 'planned', claimed_at = NULL, updated_at = ? "
            "WHERE brand = ? AND creator_id = ? AND product_id = ? AND state = 'pending'",
            ((now, brand, cr, pr) for cr, pr in pairs),
        )

    def pending(self, brand: str) -> list[PendingPair]:
        return [PendingPair(*r) for r in self.conn.execute(
            "SELECT creator_id, product_id, campaign, batch_key, claimed_at, run_id FROM invitations "
            "WHERE brand = ? AND state = 'pending' ORDER BY batch_key, creator_id, product_id", (brand,))]

    def invitation_states(self, brand: str | None = None, campaign: str | None = None) -> dict[str, int]:
        sql, args = "SELECT state, COUNT(*) FROM invitations WHERE 1=1", []
        if brand:
            sql, args = sql + " AND brand = ?", [*args, brand]
        if campaign:
            sql, args = sql + " AND campaign = ?", [*args, campaign]
        return {s: n for s, n in self.conn.execute(sql + " GROUP BY state", args)}

    def invitation(self, brand: str, creator_id: str, product_id: str) -> dict[str, Any] | None:
        rows = self._dicts("SELECT * FROM invitations WHERE brand = ? AND creator_id = ? AND product_id = ?",
                           (brand, creator_id, product_id))
        return rows[0] if rows else None

    def invitations(self, brand: str, state: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM invitations WHERE brand = ?", [brand]
        if state:
            sql, args = sql + " AND state = ?", [*args, state]
        return self._dicts(sql + " ORDER BY id", args)

    def claimed_since(self, brand: str, campaign: str, since_iso: str, until_iso: str) -> dict[str, int]:
        """Invitations per tier claimed (sent or in flight) in [since, until), for daily targets and caps."""
        out: dict[str, int] = {}
        for tier, n in self.conn.execute(
            "SELECT tier, COUNT(*) FROM invitations WHERE brand = ? AND campaign = ? AND claimed_at >= ? "
            f"AND claimed_at < ? AND state IN {INVITED_SQL} GROUP BY tier",
            (brand, campaign, since_iso, until_iso),
        ):
            out[tier or ""] = n
        return out

    def outreach_used(self, brand: str, since_iso: str) -> int:
        """Creators first contacted by the brand since `since` (a creator already connected does not count)."""
        row = self.conn.execute(
            "SELECT COUNT(DISTINCT i.creator_id) FROM invitations i WHERE i.brand = ? AND i.claimed_at >= ? "
            f"AND i.state IN {INVITED_SQL} AND NOT EXISTS (SELECT 1 FROM invitations j WHERE j.brand = i.brand "
            f"AND j.creator_id = i.creator_id AND j.claimed_at < ? AND j.state IN {INVITED_SQL})",
            (brand, since_iso, since_iso)).fetchone()
        return int(row[0])

    # --- outcomes (sync) ----------------------------------------------------------------------
    def watched_collaborations(self, brand: str, campaign: str | None = None) -> dict[str, dict[str, Any]]:
        """The brand's collaborations that sync still follows (not yet seen ended), with the counts the search
        gave last time (empty for one never seen)."""
        sql = ("SELECT DISTINCT collaboration_id FROM invitations WHERE brand = ? AND collaboration_id IS NOT NULL "
               f"AND state IN {INVITED_SQL}")
        args: list[Any] = [brand]
        if campaign:
            sql, args = sql + " AND campaign = ?", [*args, campaign]
        ids = {r[0] for r in self.conn.execute(sql, args)}
        known = {r["id"]: r for r in self._dicts("SELECT * FROM collaborations WHERE brand = ?", (brand,))}
        return {cid: known.get(cid, {}) for cid in ids if not known.get(cid, {}).get("final")}

    def record_collaborations(self, brand: str, rows: Iterable[dict[str, Any]]) -> None:
        """The search's counts for collaborations (id, name, status, invited, showcased, content, products, start
        and end and update times); `final` marks one seen ended."""
        now = utcnow()
        cols = ("name", "status", "invited", "showcased", "content", "products", "start_time", "end_time",
                "update_time", "final")
        with self.transaction() as c:
            c.executemany(
                f"INSERT INTO collaborations (brand, id, {', '.join(cols)}, seen_at) VALUES "
                f"(?, ?, {', '.join('?' * len(cols))}, ?) ON CONFLICT(brand, id) DO UPDATE SET "
                + ", ".join(f"{k} = excluded.{k}" for k in (*cols, "seen_at")),
                ((brand, r["id"], *(r.get(k) for k in cols[:-1]), int(bool(r.get("final"))), now) for r in rows))

    def apply_detail(self, brand: str, collaboration_id: str, creators: Iterable[tuple[str, int, int]],
                     when_iso: str) -> dict[str, int]:
        """A collaboration's detail: (creator open id, products in their showcase, products with content), with
        the time the change was seen. The counts say how many of the creator's products, not which: that many of
        their invitations move up, those with an order first (a sale proves the product is promoted), then by
        product id, and none moves back. Returns the moves by new state."""
        changed: dict[str, int] = {}
        now = utcnow()
        where = "brand = ? AND collaboration_id = ? AND creator_id = ?"
        with self.transaction() as c:
            for creator, showcased, content in creators:
                if showcased <= 0 and content <= 0:
                    continue
                key = (brand, collaboration_id, creator)
                held = dict(c.execute(f"SELECT product_id, state FROM invitations WHERE {where} AND state IN "
                                      "('sent', 'expired', 'showcased', 'content')", key).fetchall())
                if not held:
                    continue
                sold = {p for (p,) in c.execute(f"SELECT DISTINCT product_id FROM orders WHERE {where}", key)}
                first = sorted(held, key=lambda p: (p not in sold, p))
                waiting = [p for p in first if held[p] in ("sent", "expired")]
                up_content = (min(content, len(held)) - sum(s == "content" for s in held.values()))
                to_content = [p for p in first if held[p] == "showcased"] + waiting
                to_content = to_content[:max(0, up_content)]
                up_showcase = min(max(showcased, content), len(held)) - sum(
                    s in ("showcased", "content") for s in held.values())
                to_showcase = [p for p in waiting if p in to_content]
                to_showcase += [p for p in waiting if p not in to_content][:max(0, up_showcase - len(to_showcase))]
                if to_showcase:
                    c.executemany(
                        "UPDATE invitations SET state = 'showcased', showcased_at = ?, answered_at = ?, updated_at = ? "
                        f"WHERE {where} AND product_id = ? AND state IN ('sent', 'expired')",
                        [(when_iso, when_iso, now, *key, p) for p in to_showcase])
                    changed[SHOWCASED] = changed.get(SHOWCASED, 0) + len(to_showcase)
                if to_content:
                    c.executemany(
                        "UPDATE invitations SET state = 'content', content_at = ?, updated_at = ? "
                        f"WHERE {where} AND product_id = ? AND state = 'showcased'",
                        [(when_iso, now, *key, p) for p in to_content])
                    changed[CONTENT] = changed.get(CONTENT, 0) + len(to_content)
            c.execute("UPDATE collaborations SET detail_at = ? WHERE brand = ? AND id = ?",
                      (now, brand, collaboration_id))
        return changed

    def expire_collaboration(self, brand: str, collaboration_id: str, ended_iso: str) -> int:
        """An ended collaboration: its invitations still only sent are expired."""
        with self.transaction() as c:
            return c.execute(
                "UPDATE invitations SET state = 'expired', answered_at = ?, updated_at = ? WHERE brand = ? "
                "AND collaboration_id = ? AND state = 'sent'",
                (ended_iso, utcnow(), brand, collaboration_id)).rowcount

    def expire_past(self, brand: str, now_iso: str) -> int:
        """Sent invitations whose collaboration has ended without a showcase are expired, without asking."""
        with self.transaction() as c:
            return c.execute(
                "UPDATE invitations SET state = 'expired', answered_at = expires_at, updated_at = ? "
                "WHERE brand = ? AND state = 'sent' AND expires_at IS NOT NULL AND expires_at < ?",
                (utcnow(), brand, now_iso)).rowcount

    def upsert_orders(self, brand: str, rows: Iterable[dict[str, Any]]) -> tuple[int, int]:
        """Affiliate orders, one row per order and SKU: new ones inserted, known ones updated in place when their
        status, refunds or commission changed. Returns (new, updated)."""
        cols = ("collaboration_id", "creator_id", "creator_username", "product_id", "status", "quantity", "refunded",
                "returned", "currency", "gmv", "actual_base", "estimated_commission", "actual_commission",
                "content_type", "created_at")
        new = updated = 0
        now = utcnow()
        with self.transaction() as c:
            for r in rows:
                old = c.execute(f"SELECT {', '.join(cols)} FROM orders WHERE brand = ? AND order_id = ? AND sku = ?",
                                (brand, r["order_id"], r["sku"])).fetchone()
                values = tuple(r.get(k) for k in cols)
                if old is None:
                    c.execute(f"INSERT INTO orders (brand, order_id, sku, {', '.join(cols)}, updated_at) VALUES "
                              f"(?, ?, ?, {', '.join('?' * len(cols))}, ?)", (brand, r["order_id"], r["sku"], *values,
                                                                          now))
                    new += 1
                elif tuple(old) != values:
                    c.execute(f"UPDATE orders SET {', '.join(f'{k} = ?' for k in cols)}, updated_at = ? "
                              "WHERE brand = ? AND order_id = ? AND sku = ?",
                              (*values, now, brand, r["order_id"], r["sku"]))
                    updated += 1
        return new, updated

    def collaboration_ids(self, brand: str) -> set[str]:
        return {r[0] for r in self.conn.execute(
            "SELECT DISTINCT collaboration_id FROM invitations WHERE brand = ? AND collaboration_id IS NOT NULL",
            (brand,))}

    def first_claim(self, brand: str) -> str | None:
        row = self.conn.execute("SELECT MIN(claimed_at) FROM invitations WHERE brand = ?", (brand,)).fetchone()
        return row[0] if row else None

    def orders_gmv(self, brand: str) -> float:
        return float(self.conn.execute("SELECT COALESCE(SUM(gmv), 0) FROM orders WHERE brand = ?",
                                       (brand,)).fetchone()[0])

    def creators_by_username(self, brand: str) -> dict[str, str]:
        """username -> creator open id, for orders (which name the creator by username only)."""
        return {h: cid for cid, h in self.conn.execute(
            "SELECT creator_id, handle FROM creators WHERE brand = ? AND handle IS NOT NULL AND handle != ''",
            (brand,))}

    def set_handles(self, brand: str, handles: dict[str, str]) -> None:
        """Usernames the platform reported for creators (a collaboration's detail)."""
        now = utcnow()
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO creators (brand, creator_id, handle, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(brand, creator_id) DO UPDATE SET handle = excluded.handle",
                ((brand, cid, h, now) for cid, h in handles.items() if h))

    def remember_campaign(self, brand: str, campaign: str, spec: dict[str, Any]) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO campaigns (brand, campaign, spec, updated_at) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT(brand, campaign) DO UPDATE SET spec = excluded.spec, "
                      "updated_at = excluded.updated_at",
                      (brand, campaign, json.dumps(spec), utcnow()))

    def campaign_specs(self, brand: str) -> dict[str, dict[str, Any]]:
        """campaign -> its limits and lifecycle as last executed, most recently executed first."""
        return {name: _extra(spec) for name, spec in self.conn.execute(
            "SELECT campaign, spec FROM campaigns WHERE brand = ? ORDER BY updated_at DESC", (brand,))}

    def sync_value(self, brand: str, name: str) -> str | None:
        row = self.conn.execute("SELECT value FROM sync_state WHERE brand = ? AND name = ?", (brand, name)).fetchone()
        return row[0] if row else None

    def set_sync_value(self, brand: str, name: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO sync_state (brand, name, value) VALUES (?, ?, ?) ON CONFLICT(brand, name) "
                      "DO UPDATE SET value = excluded.value", (brand, name, value))

    def outcomes(self, brand: str, now_ts: float, limit: int) -> list[tuple[Any, ...]]:
        """What became of the brand's latest invitations (at most `limit` rows of creator x product, newest
        first), one row per creator and collaboration, for matching to learn from. Each row: the creator's
        attributes (creator id, tier, category, followers, 30-day GMV, engagement rate, days between their last
        activity and the invitation, extra columns), the invitation's age in days at `now_ts`, whether it was
        taken up (showcased) and how many days that took, whether content followed and how many days after the
        showcase, whether the collaboration ended without a showcase, and the GMV and commission of its orders.
        An invitation still only sent is in it too, with its age: how much its silence says is matching's call."""
        rows = self.conn.execute(
            "SELECT g.creator_id, g.tier, c.category, c.followers, c.gmv_30d, c.engagement_rate, c.last_active, "
            "c.extra, g.claimed, g.taken, g.showcased, g.content, g.ended, g.collab FROM ("
            "  SELECT i.creator_id, COALESCE(i.collaboration_id, i.batch_key) AS collab, "
            "  MAX(COALESCE(i.tier, '')) AS tier, MIN(i.claimed_at) AS claimed, "
            f"  MAX(CASE WHEN i.state IN {TAKEN_SQL} THEN 1 ELSE 0 END) AS taken, "
            "  MIN(i.showcased_at) AS showcased, MIN(i.content_at) AS content, "
            "  MIN(CASE WHEN i.state = 'expired' THEN 1 ELSE 0 END) AS ended FROM ("
            "    SELECT creator_id, collaboration_id, batch_key, tier, state, claimed_at, showcased_at, content_at "
            "    FROM invitations WHERE brand = ? AND state IN ('sent', 'showcased', 'content', 'expired') "
            "    AND claimed_at IS NOT NULL ORDER BY claimed_at DESC LIMIT ?) i "
            "  GROUP BY i.creator_id, COALESCE(i.collaboration_id, i.batch_key)) g "
            "LEFT JOIN creators c ON c.brand = ? AND c.creator_id = g.creator_id",
            (brand, limit, brand)).fetchall()
        if not rows:
            return []
        since = min(r[8] for r in rows)
        money = {(cid, col): (g or 0.0, m or 0.0) for cid, col, g, m in self.conn.execute(
            "SELECT creator_id, collaboration_id, SUM(gmv), SUM(estimated_commission) FROM orders WHERE brand = ? "
            "AND creator_id IS NOT NULL AND created_at >= ? GROUP BY creator_id, collaboration_id", (brand, since))}
        out = []
        for cid, tier, cat, fol, gmv, eng, last, extra, claimed, taken, showcased, content, ended, collab in rows:
            try:
                at = _seconds(claimed)
                shown = _seconds(showcased) if showcased else None
                posted = _seconds(content) if content else None
            except ValueError:  # a time this ledger did not write (an import): the row teaches nothing
                continue
            sales, commission = money.get((cid, collab), (0.0, 0.0))
            out.append((cid, tier, cat or "", fol, gmv, eng, _days_between(last, claimed), _extra(extra),
                        max(0.0, (now_ts - at) / 86400), bool(taken),
                        None if shown is None else max(0.0, (shown - at) / 86400), posted is not None,
                        None if posted is None or shown is None else max(0.0, (posted - shown) / 86400),
                        bool(ended) and not taken, float(sales), float(commission)))
        return out

    def unresponsive_creators(self, brand: str, unanswered_since_iso: str, at_least: int,
                              campaign: str | None = None) -> list[str]:
        """Creators with `at_least` invitations (collaborations; of `campaign` if given) sent before
        `unanswered_since` and never taken up, counted since their last showcase and since their last
        unresponsive period ended."""
        rows = self.conn.execute(
            "SELECT i.creator_id FROM invitations i WHERE i.brand = ? AND i.state IN ('sent', 'expired') "
            "AND i.claimed_at < ? " + ("AND i.campaign = ? " if campaign else "") +
            "AND i.claimed_at > COALESCE((SELECT MAX(j.showcased_at) FROM invitations j WHERE j.brand = i.brand "
            f"  AND j.creator_id = i.creator_id AND j.state IN {TAKEN_SQL}), '') "
            "AND i.claimed_at > COALESCE((SELECT c.flagged_until FROM creators c WHERE c.brand = i.brand "
            "  AND c.creator_id = i.creator_id AND c.flag = 'unresponsive'), '') "
            "GROUP BY i.creator_id HAVING COUNT(DISTINCT COALESCE(i.collaboration_id, i.batch_key)) >= ?",
            (brand, unanswered_since_iso, *((campaign,) if campaign else ()), at_least)).fetchall()
        return [r[0] for r in rows]

    # --- creators ----------------------------------------------------------------------------
    def upsert_creators(self, brand: str, creators: Iterable[dict[str, Any]]) -> None:
        now = utcnow()
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO creators (brand, creator_id, creator_user_id, handle, followers, gmv_30d, category, "
                "engagement_rate, last_active, extra, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(brand, creator_id) DO UPDATE SET "
                "creator_user_id = COALESCE(excluded.creator_user_id, creators.creator_user_id), "
                "handle = excluded.handle, followers = excluded.followers, "
                "gmv_30d = excluded.gmv_30d, category = excluded.category, "
                "engagement_rate = excluded.engagement_rate, last_active = excluded.last_active, "
                "extra = excluded.extra, updated_at = excluded.updated_at",
                ((brand, d["creator_id"], d.get("creator_user_id"), d.get("handle"), d.get("followers"),
                  d.get("gmv_30d"), d.get("category"), d.get("engagement_rate"), d.get("last_active"),
                  json.dumps(d.get("extra") or {}), now)
                 for d in creators),
            )

    def flag_creators(self, brand: str, creator_ids: Iterable[str], flag: str, reason: str,
                      until_iso: str | None = None) -> None:
        now = utcnow()
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO creators (brand, creator_id, flag, flag_reason, flagged_until, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(brand, creator_id) DO UPDATE SET flag = excluded.flag, "
                "flag_reason = excluded.flag_reason, flagged_until = excluded.flagged_until, "
                "updated_at = excluded.updated_at",
                ((brand, cid, flag, reason, until_iso, now) for cid in creator_ids),
            )

    # --- creators by open id -------------------------------------------------------------------
    def plain_ids(self, brand: str) -> set[str]:
        """Creator ids of this brand's rows that are plain numeric ids: a ledger of a version before open ids."""
        digits = "creator_id ~ '^[0-9]+$'" if self.pg else "creator_id NOT GLOB '*[^0-9]*' AND creator_id != ''"
        return {r[0] for r in self.conn.execute(
            f"SELECT creator_id FROM invitations WHERE brand = ? AND {digits} "
            f"UNION SELECT creator_id FROM creators WHERE brand = ? AND {digits}", (brand, brand))}

    def adopt_open_ids(self, brand: str, open_by_plain: dict[str, str]) -> int:
        """Rows an earlier version keyed by a creator's plain id move to the creator's open id, so that the
        never-twice rule holds across the change. A product the open id already has a row for keeps both rows
        (the plain one as history). Returns the invitation rows moved."""
        if not open_by_plain:
            return 0
        moved = 0
        with self.transaction() as c:
            for plain, open_id in open_by_plain.items():
                moved += c.execute(
                    "UPDATE invitations SET creator_id = ? WHERE brand = ? AND creator_id = ? AND product_id NOT IN "
                    "(SELECT product_id FROM invitations WHERE brand = ? AND creator_id = ?)",
                    (open_id, brand, plain, brand, open_id)).rowcount
                if not c.execute("SELECT 1 FROM creators WHERE brand = ? AND creator_id = ?",
                                 (brand, open_id)).fetchone():
                    c.execute("UPDATE creators SET creator_id = ?, creator_user_id = ? WHERE brand = ? "
                              "AND creator_id = ?", (open_id, plain, brand, plain))
        return moved

    def checked_since(self, brand: str, since_iso: str) -> set[str]:
        """Creators whose reach the platform's eligibility check reported since a time."""
        return {r[0] for r in self.conn.execute(
            "SELECT creator_id FROM creators WHERE brand = ? AND checked_at >= ?", (brand, since_iso))}

    def record_checks(self, brand: str, creator_ids: Iterable[str], when_iso: str) -> None:
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO creators (brand, creator_id, checked_at, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(brand, creator_id) DO UPDATE SET checked_at = excluded.checked_at",
                ((brand, cid, when_iso, when_iso) for cid in creator_ids))

    def save_outreach_quota(self, brand: str, data: dict[str, Any]) -> None:
        """The platform's answer to the outreach quota endpoint, as last read (plan and quota show it)."""
        with self.transaction() as c:
            c.execute("INSERT INTO outreach_quota (brand, fetched_at, data) VALUES (?, ?, ?) ON CONFLICT(brand) "
                      "DO UPDATE SET fetched_at = excluded.fetched_at, data = excluded.data",
                      (brand, utcnow(), json.dumps(data)))

    def outreach_quota(self, brand: str) -> tuple[str, dict[str, Any]] | None:
        row = self.conn.execute("SELECT fetched_at, data FROM outreach_quota WHERE brand = ?", (brand,)).fetchone()
        if row is None:
            return None
        try:
            return row[0], json.loads(row[1])
        except ValueError:
            return None

    def flagged_creators(self, brand: str, now_iso: str) -> dict[str, str]:
        """creator -> flag, for flags still in force (no end, or an end in the future)."""
        return {cid: flag for cid, flag in self.conn.execute(
            "SELECT creator_id, flag FROM creators WHERE brand = ? AND flag IS NOT NULL "
            "AND (flagged_until IS NULL OR flagged_until > ?)", (brand, now_iso))}

    def creator_invitations(self, brand: str, creator_id: str) -> list[dict[str, Any]]:
        return self._dicts("SELECT * FROM invitations WHERE brand = ? AND creator_id = ? AND state != 'planned' "
                           "ORDER BY claimed_at, product_id", (brand, creator_id))

    def unflag_creators(self, brand: str, creator_ids: Iterable[str]) -> int:
        with self.transaction() as c:
            return c.executemany(
                "UPDATE creators SET flag = NULL, flag_reason = NULL, flagged_until = NULL, updated_at = ? "
                "WHERE brand = ? AND creator_id = ?", ((utcnow(), brand, cid) for cid in creator_ids)).rowcount

    def creators_summary(self, brand: str, *, flag: str | None = None, creator_ids: Sequence[str] | None = None,
                         limit: int = 100, now_iso: str | None = None) -> list[dict[str, Any]]:
        """Creators with their history (counts by state) and the flag in force, most recently invited first."""
        now_iso = now_iso or utcnow()
        where, args = ["i.brand = ?"], [now_iso, brand]
        if creator_ids:
            where.append(f"i.creator_id IN ({','.join('?' * len(creator_ids))})")
            args += list(creator_ids)
        sql = (
            "WITH hist AS (SELECT i.creator_id, "
            "COUNT(DISTINCT COALESCE(i.collaboration_id, i.batch_key)) AS invitations, "
            + ", ".join(f"COUNT(DISTINCT CASE WHEN i.state = '{st}' THEN i.collaboration_id END) AS {name}"
                        for st, name in (("sent", "waiting"), ("showcased", "showcased"), ("content", "content"),
                                         ("expired", "expired")))
            + ", SUM(CASE WHEN i.state IN ('conflict', 'ineligible', 'failed') THEN 1 ELSE 0 END) AS not_sent, "
            "MAX(i.claimed_at) AS last_invited "
            f"FROM invitations i WHERE {' AND '.join(where)} AND i.state != 'planned' GROUP BY i.creator_id) "
            "SELECT h.*, c.handle, c.followers, c.category, "
            "CASE WHEN c.flagged_until IS NULL OR c.flagged_until > ? THEN c.flag END AS flag, "
            "c.flag_reason, c.flagged_until FROM hist h LEFT JOIN creators c "
            "ON c.brand = ? AND c.creator_id = h.creator_id"
        )
        args = [args[1], *args[2:], args[0], brand]
        rows = self._dicts(sql, args)
        # creators flagged by hand before any invitation
        extra_where = "brand = ? AND flag IS NOT NULL"
        extra_args: list[Any] = [brand]
        if creator_ids:
            extra_where += f" AND creator_id IN ({','.join('?' * len(creator_ids))})"
            extra_args += list(creator_ids)
        known = {r["creator_id"] for r in rows}
        for r in self._dicts(f"SELECT creator_id, handle, followers, category, flag, flag_reason, flagged_until "
                             f"FROM creators WHERE {extra_where}", extra_args):
            if r["creator_id"] not in known:
                if r["flagged_until"] and r["flagged_until"] <= now_iso:
                    r["flag"] = None
                rows.append({**r, "invitations": 0, "waiting": 0, "showcased": 0, "content": 0, "expired": 0,
                             "not_sent": 0, "last_invited": None})
        if flag:
            rows = [r for r in rows if r["flag"] == flag]
        rows.sort(key=lambda r: r["last_invited"] or "", reverse=True)
        return rows[:limit]

    # --- plans -------------------------------------------------------------------------------
    def fingerprint(self, brand: str) -> str:
        """A digest of the brand's ledger state that a plan depends on; any invitation or flag change moves it."""
        h = hashlib.sha256(brand.encode())
        for row in self.conn.execute(
            "SELECT state, COUNT(*), MAX(updated_at), MAX(id) FROM invitations WHERE brand = ? "
            "AND state != 'planned' GROUP BY state ORDER BY state", (brand,)):
            h.update(repr(row).encode())
        for row in self.conn.execute(
            "SELECT COUNT(*), MAX(updated_at) FROM creators WHERE brand = ? AND flag IS NOT NULL", (brand,)):
            h.update(repr(row).encode())
        return h.hexdigest()[:32]

    def plan_applied(self, plan_id: str) -> int | None:
        row = self.conn.execute("SELECT applied_run_id FROM plans WHERE id = ?", (plan_id,)).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def record_plan_applied(self, *, plan_id: str, brand: str, campaign: str, created_at: str, fingerprint: str,
                            pairs: int, run_id: int) -> None:
        """Mark a saved plan as applied; a plan id can be applied only once."""
        with self.transaction() as c:
            self._serialize(c, f"plan:{plan_id}")
            row = c.execute("SELECT applied_run_id FROM plans WHERE id = ?", (plan_id,)).fetchone()
            if row and row[0] is not None:
                raise Refused(f"plan {plan_id} was already applied by run {row[0]}",
                              hint="make a new plan with `trendio plan`")
            c.execute(
                "INSERT INTO plans (id, brand, campaign, created_at, fingerprint, pairs, applied_run_id, applied_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "applied_run_id = excluded.applied_run_id, "
                "applied_at = excluded.applied_at",
                (plan_id, brand, campaign, created_at, fingerprint, pairs, run_id, utcnow()),
            )

    # --- aggregates for the dashboards and the report ------------------------------------------
    def calls_since(self, since_iso: str) -> list[tuple[str, str, str, int | None, int]]:
        """(brand, endpoint, outcome, code, count) of API calls since a time."""
        return self.conn.execute(
            "SELECT brand, endpoint, COALESCE(outcome, 'reserved'), code, COUNT(*) FROM api_calls "
            "WHERE reserved_at >= ? GROUP BY 1, 2, 3, 4", (since_iso,)).fetchall()

    def calls_per_bucket(self, since_iso: str, bucket_chars: int = 18) -> list[tuple[str, int]]:
        """Calls per time bucket since a time (`bucket_chars` of the ISO time: 18 = ten seconds)."""
        return self.conn.execute(
            "SELECT substr(reserved_at, 1, ?), COUNT(*) FROM api_calls WHERE reserved_at >= ? GROUP BY 1 ORDER BY 1",
            (bucket_chars, since_iso)).fetchall()

    def send_times(self, *, since_iso: str | None = None, run_id: int | None = None) -> list[float]:
        """When answered calls left (their answer's time less their latency), in epoch seconds, sorted:
        a run's, or every call since a time."""
        sql, args = "SELECT finished_at, latency_ms FROM api_calls WHERE finished_at IS NOT NULL", []
        if run_id is not None:
            sql, args = sql + " AND run_id = ?", [*args, run_id]
        if since_iso is not None:
            sql, args = sql + " AND reserved_at >= ?", [*args, since_iso]
        return sorted(parse_iso(at) - (latency or 0.0) / 1000 for at, latency in self.conn.execute(sql, args))

    def tier_followers(self, tiers: Iterable[tuple[str, str, str]],
                       sample: int = 25) -> dict[tuple[str, str, str], int]:
        """(brand, campaign, tier) -> the fewest followers among a few of its invited creators. Tiers match by
        `min_followers`, first match wins, so this orders a campaign's tiers as its file does; a sample read
        through the funnel index is enough, and costs nothing on a big ledger."""
        out = {}
        for b, c, t in tiers:
            row = self.conn.execute(
                "SELECT MIN(c.followers) FROM (SELECT creator_id FROM invitations WHERE brand = ? AND campaign = ? "
                "AND tier = ? LIMIT ?) AS i JOIN creators c ON c.brand = ? AND c.creator_id = i.creator_id",
                (b, c, t, sample, b)).fetchone()
            if row and row[0] is not None:
                out[(b, c, t)] = int(row[0])
        return out

    def quota_days(self, brand: str | None = None, limit: int = 31) -> list[tuple[str, str, int]]:
        sql = "SELECT brand, quota_day, used FROM quota_usage"
        args: list[Any] = []
        if brand:
            sql, args = sql + " WHERE brand = ?", [brand]
        return self.conn.execute(sql + " ORDER BY quota_day DESC LIMIT ?", [*args, limit]).fetchall()[::-1]

    def pending_by_brand(self) -> dict[str, int]:
        return dict(self.conn.execute(
            "SELECT brand, COUNT(*) FROM invitations WHERE state = 'pending' GROUP BY brand").fetchall())

    def funnel(self, brand: str | None = None, campaign: str | None = None) -> list[tuple[str, str, str, str, int]]:
        """(brand, campaign, tier, state, pairs) for every state but planned."""
        # grouped on the bare columns, in the order of the (brand, campaign, tier, state) index: a walk of the
        # index with no sort (ten times faster on a million rows than grouping on COALESCE() expressions)
        sql, args = "SELECT brand, campaign, tier, state, COUNT(*) FROM invitations WHERE 1=1", []
        if brand:
            sql, args = sql + " AND brand = ?", [*args, brand]
        if campaign:
            sql, args = sql + " AND campaign = ?", [*args, campaign]
        counts: Counter[tuple[str, str, str, str]] = Counter()
        for b, c, tier, state, n in self.conn.execute(sql + " GROUP BY brand, campaign, tier, state", args):
            if state != PLANNED:
                counts[(b, c or "", tier or "", state)] += n
        return [(*key, n) for key, n in counts.items()]

    def by_day(self, brand: str | None = None, campaign: str | None = None) -> list[tuple[str, str, int]]:
        """(day, what, pairs): invitations claimed, showcased and with content, per UTC day."""
        where, args = "1=1", []
        if brand:
            where, args = where + " AND brand = ?", [*args, brand]
        if campaign:
            where, args = where + " AND campaign = ?", [*args, campaign]
        # one pass over the rows (not one per kind of day): the groups are few, the rows many
        days: Counter[tuple[str, str]] = Counter()
        for claimed, showcased, content, state, n in self.conn.execute(
                "SELECT substr(claimed_at, 1, 10), substr(showcased_at, 1, 10), substr(content_at, 1, 10), state, "
                f"COUNT(*) FROM invitations WHERE {where} AND state IN {INVITED_SQL} GROUP BY 1, 2, 3, 4", args):
            if claimed:
                days[(claimed, "invited")] += n
            if showcased and state in (SHOWCASED, CONTENT):
                days[(showcased, "showcased")] += n
            if content and state == CONTENT:
                days[(content, "content")] += n
        return sorted((day, what, n) for (day, what), n in days.items())

    # orders, as a merchant reads them: a collaboration belongs to one campaign (its create request's); a sale to
    # the tier of the creator who made it, when the order names the creator (by username) and sync knew it.
    # (Both looked up through the (brand, collaboration_id) index: the cost follows the orders, not the
    # invitations, whose grouping would scan a million rows for a handful of sales; no MIN(), which SQLite would
    # answer by walking the campaign index. A collaboration is one create request: one campaign, and one tier per
    # creator.)
    _ORDER_TIER = ("(SELECT i.tier FROM invitations i WHERE i.brand = o.brand "
                   "AND i.collaboration_id = o.collaboration_id AND i.creator_id = o.creator_id LIMIT 1)")
    # the campaign once per collaboration, not once per order: a collaboration has many orders, and a campaign's
    # report reads every order's campaign to pick its own (a third of the time of the report on a big ledger)
    _COLLABORATION_CAMPAIGNS = (
        "LEFT JOIN (SELECT k.brand, k.collaboration_id, (SELECT i.campaign FROM invitations i WHERE i.brand = k.brand "
        "AND i.collaboration_id = k.collaboration_id LIMIT 1) AS campaign FROM orders k "
        "GROUP BY k.brand, k.collaboration_id) c ON c.brand = o.brand AND c.collaboration_id = o.collaboration_id")
    _SALES = ("COUNT(DISTINCT o.order_id), COALESCE(SUM(o.gmv), 0), COALESCE(SUM(o.estimated_commission), 0), "
              "COALESCE(SUM(o.actual_commission), 0)")

    def _orders(self, brand: str | None, campaign: str | None, *, by_campaign: bool = False
                ) -> tuple[str, list[Any]]:
        """`FROM ... WHERE ...` of the orders that count (not cancelled), as `o` with their tier; with their
        campaign too when the query groups by it or picks one (joined only then: the top sellers of every
        campaign need no campaign)."""
        campaigns = by_campaign or bool(campaign)
        sql = (f"FROM (SELECT o.*, {self._ORDER_TIER} AS tier{', c.campaign' if campaigns else ''} FROM orders o "
               f"{self._COLLABORATION_CAMPAIGNS if campaigns else ''} WHERE o.status != 'CANCELLED') o WHERE 1 = 1")
        args: list[Any] = []
        if brand:
            sql, args = sql + " AND o.brand = ?", [*args, brand]
        if campaign:
            sql, args = sql + " AND o.campaign = ?", [*args, campaign]
        return sql, args

    def sales(self, brand: str | None = None, campaign: str | None = None
              ) -> list[tuple[str, str, str, int, float, float, float]]:
        """(brand, campaign, tier, orders, GMV, estimated commission, actual commission); cancelled orders left
        out, refunds deducted in the actual commission."""
        orders, args = self._orders(brand, campaign, by_campaign=True)
        return self.conn.execute(
            f"SELECT o.brand, COALESCE(o.campaign, ''), COALESCE(o.tier, ''), {self._SALES} {orders} GROUP BY 1, 2, 3",
            args).fetchall()

    def sales_by_day(self, brand: str | None = None, campaign: str | None = None
                     ) -> list[tuple[str, int, float, float, float]]:
        """(UTC day the order was placed, orders, GMV, estimated and actual commission)."""
        orders, args = self._orders(brand, campaign)
        return self.conn.execute(
            f"SELECT substr(o.created_at, 1, 10), {self._SALES} {orders} AND o.created_at IS NOT NULL "
            "GROUP BY 1 ORDER BY 1", args).fetchall()

    def top_sellers(self, by: str, brand: str | None = None, campaign: str | None = None, n: int = 10
                    ) -> list[tuple[str, str, int, float, float, float]]:
        """The best `n` creators (`by="creator"`: open id, username) or products (`by="product"`: id, "") by GMV,
        each with orders, GMV, estimated and actual commission."""
        orders, args = self._orders(brand, campaign)
        key = ("COALESCE(o.creator_id, ''), MAX(o.creator_username)" if by == "creator"
               else "o.product_id, ''")
        group = "COALESCE(o.creator_id, ''), CASE WHEN o.creator_id IS NULL THEN o.creator_username END" \
            if by == "creator" else "o.product_id"
        return self.conn.execute(
            f"SELECT {key}, {self._SALES} {orders} GROUP BY {group} ORDER BY 4 DESC, 1 LIMIT ?",
            [*args, n]).fetchall()

    def active_days(self, brand: str | None = None, campaign: str | None = None) -> dict[tuple[str, str], int]:
        """Days on which each (brand, campaign) claimed invitations."""
        sql, args = "SELECT brand, campaign, COUNT(DISTINCT substr(claimed_at, 1, 10)) FROM invitations " \
                    "WHERE claimed_at IS NOT NULL", []
        if brand:
            sql, args = sql + " AND brand = ?", [*args, brand]
        if campaign:
            sql, args = sql + " AND campaign = ?", [*args, campaign]
        days: Counter[tuple[str, str]] = Counter()
        for b, c, n in self.conn.execute(sql + " GROUP BY brand, campaign", args):  # (bare columns: as `funnel`)
            days[(b, c or "")] += n  # (a campaign of NULL and one of '' are one: none is ever both)
        return dict(days)

    # --- moving a ledger ----------------------------------------------------------------------
    EXPORT_ORDER = {"runs": "id", "invitations": "id", "api_calls": "id", "quota_usage": "brand, quota_day",
                    "creators": "brand, creator_id", "plans": "id", "run_locks": "brand", "outreach_quota": "brand",
                    "collaborations": "brand, id", "orders": "brand, order_id, sku", "sync_state": "brand, name",
                    "campaigns": "brand, campaign"}
    EXPORTED_TABLES = tuple(EXPORT_ORDER)

    def export_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every row of every table, table by table, in primary-key order (for JSONL export)."""
        for table in self.EXPORTED_TABLES:
            cur = self.conn.execute(f"SELECT * FROM {table} ORDER BY {self.EXPORT_ORDER[table]}")
            names = [d[0] for d in cur.description]
            for row in cur:
                yield table, dict(zip(names, row))

    def is_empty(self) -> bool:
        return not any(self.conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in self.EXPORTED_TABLES)

    def import_rows(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, int]:
        """Insert exported rows as they are (ids kept), in one transaction: all or nothing."""
        counts: dict[str, int] = {}
        columns = {t: self._columns(t) for t in self.EXPORTED_TABLES}
        with self.transaction() as c:
            for table, row in rows:
                if table not in columns:
                    raise LedgerError(f"unknown table {table!r} in the import")
                unknown = set(row) - columns[table]
                if unknown:
                    raise LedgerError(f"unknown column(s) {', '.join(sorted(unknown))} of {table} in the import")
                names = list(row)
                c.execute(f"INSERT INTO {table} ({', '.join(f'{chr(34)}{n}{chr(34)}' for n in names)}) "
                          f"VALUES ({', '.join('?' * len(names))})",
                          [row[n] for n in names])
                counts[table] = counts.get(table, 0) + 1
            if self.pg:  # ids came with the rows: move the sequences past them
                for table in ("runs", "invitations", "api_calls"):
                    c.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")
        return counts

    # --- helpers -----------------------------------------------------------------------------
    def brands(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT brand FROM invitations UNION SELECT brand FROM quota_usage UNION SELECT brand FROM runs "
            "ORDER BY 1").fetchall()
        return [r[0] for r in rows if r[0]]

    def _dicts(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def _extra(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _seconds(text: str) -> float:
    """Seconds since the epoch of a ledger time (`YYYY-MM-DDTHH:MM:SS...`, UTC), to the second."""
    return datetime.fromisoformat(text[:19]).replace(tzinfo=timezone.utc).timestamp()


def _days_between(earlier: str | None, later: str | None) -> int | None:
    """Whole days from a date (or ISO time) to an ISO time; None if either is missing or unreadable."""
    if not earlier or not later:
        return None
    try:
        return (datetime.fromisoformat(later[:10]).date() - datetime.fromisoformat(earlier[:10]).date()).days
    except ValueError:
        return None


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch a new ledger to WAL. Two processes creating the same ledger at once may find it busy: the
    switch does not always wait on the busy timeout, so wait here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _user() -> str:
    """Who runs this: the login name, else the environment's, else the OS account's (cron and containers
    often set no USER)."""
    try:
        return os.getlogin()
    except OSError:
        pass
    try:
        return getpass.getuser()  # LOGNAME, USER, LNAME, USERNAME, then the password database
    except (OSError, KeyError, ImportError):
        return "unknown"


def _has_ledger_file(path: Path) -> bool:
    """A ledger is there: a file with something in it (SQLite takes an empty file for a new database)."""
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def _without_userinfo(message: str, url: str) -> str:
    from trendio_cli.output import redact, url_secrets

    return redact(message, url_secrets(url))


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_started_after(pid: int | None, when: float) -> bool:
    """Whether process `pid` started after `when` (then it is another process that reuses a dead holder's pid).
    False where it cannot be told (no /proc)."""
    try:
        with open(f"/proc/{int(pid or 0)}/stat", encoding="ascii", errors="replace") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    return started > when + 2.0  # btime and the tick count are whole seconds apart at worst


def parse_iso(text: str | None) -> float:
    if not text:
        return 0.0
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
