"""Benchmark (issue 16): an older ledger gains its foreign keys and views. SQLite cannot add a foreign key
with ALTER, so the migration rebuilds `invitations` and `plans` (sqlite-utils' transform); on a ledger of a
million invitations it must stay short, and keep every row and index.

    python bench/migrate_links.py [--invitations 1000000]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlite_utils  # noqa: E402
from common import run_measured, save, trendio  # noqa: E402

from trendio_cli import ledger as ledger_module  # noqa: E402

MIGRATION = "m006_links_and_views"


def older_ledger(path: Path, invitations: int) -> None:
    """A ledger at the schema before the migration, filled as a year of runs would fill it."""
    db = sqlite_utils.Database(sqlite3.connect(path))
    db.conn.execute("PRAGMA journal_mode = WAL")
    db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    for name, fn in ledger_module.MIGRATIONS:
        if name == MIGRATION:
            break
        fn(db)
        db["_migrations"].insert({"name": name, "applied_at": "2026-01-01T00:00:00.000000Z"})
    runs = max(1, invitations // 5000)
    db.conn.executemany("INSERT INTO runs (id, brand, campaign, command, started_at, status) VALUES "
                        "(?, 'bigbrand', 'big', 'execute', '2026-01-01T00:00:00.000000Z', 'success')",
                        [(r,) for r in range(1, runs + 1)])
    states = ("sent", "accepted", "declined", "expired", "conflict")
    db.conn.executemany(
        "INSERT INTO invitations (brand, creator_id, product_id, campaign, tier, state, run_id, batch_key, "
        "collaboration_id, claimed_at, sent_at) VALUES ('bigbrand', ?, ?, 'big', ?, ?, ?, ?, ?, ?, ?)",
        ((str(7_000_000_000_000_000_000 + k // 3), str(1_729_384_756 + k % 3), ("macro", "mid", "micro")[k % 3],
          states[k % 5], 1 + k // 5000, f"k{k // 150}", f"c{k // 150}",
          f"2026-{1 + k * 12 // invitations:02d}-10T10:00:00.000000Z",
          f"2026-{1 + k * 12 // invitations:02d}-10T10:00:01.000000Z") for k in range(invitations)))
    db.conn.executemany("INSERT INTO plans (id, brand, campaign, pairs, applied_run_id) VALUES (?, 'bigbrand', "
                        "'big', 150, ?)", [(f"plan{r}", r) for r in range(1, runs + 1)])
    db.conn.commit()
    db.conn.close()


def indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--invitations", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "old.db"
        started = time.perf_counter()
        older_ledger(path, args.invitations)
        print(f"filled {args.invitations:,} invitations in {time.perf_counter() - started:.1f} s", flush=True)
        before = indexes(path)
        size_mb = path.stat().st_size / 1e6
        # the first command after an upgrade migrates: here a view, `trendio status` (a whole process)
        m = run_measured(trendio("status", "--json"), env={"TRENDIO_LEDGER": str(path)})
        if m["returncode"] != 0:
            print(m["stderr"][-1500:], file=sys.stderr)
            return 1
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT COUNT(*) FROM invitations").fetchone()[0]
            viewed = conn.execute("SELECT COUNT(*) FROM invitation_details").fetchone()[0]
            linked = {fk[2] for fk in conn.execute("PRAGMA foreign_key_list(invitations)")}
        kept = before <= indexes(path)
        again = run_measured(trendio("status", "--json"), env={"TRENDIO_LEDGER": str(path)})
    ok = rows == viewed == args.invitations and kept and linked == {"runs"} and m["wall_s"] < 60
    print(f"migrated a {size_mb:.0f} MB ledger in {m['wall_s']:.1f} s (whole process; {m['cpu_s']:.1f} s CPU, "
          f"peak {m['peak_rss_mb']:.0f} MB); next status {again['wall_s']:.2f} s; "
          f"rows kept: {rows == args.invitations}; indexes kept: {kept}")
    save("migrate_links", {"invitations": args.invitations, "ledger_mb": round(size_mb), "migrate_wall_s": m["wall_s"],
                           "migrate_cpu_s": m["cpu_s"], "peak_rss_mb": m["peak_rss_mb"],
                           "next_status_s": again["wall_s"], "rows_kept": rows == args.invitations,
                           "indexes_kept": kept, "targets_met": ok})
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
