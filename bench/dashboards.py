"""Benchmark (issue 6): the dashboards and the report on a big ledger. A million invitations (about a quarter of
them showcased, one in eleven followed by content and an order) and a day of API calls: `dashboard ops`, `dashboard
merchant` and `report` each draw in under two seconds.

    python bench/dashboards.py [--invitations 1000000]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import run_measured, save, trendio  # noqa: E402

from trendio_cli.ledger import Ledger  # noqa: E402

STATES = ["sent"] * 5 + ["showcased"] * 2 + ["content", "expired", "expired", "conflict"]


def fill(path: Path, invitations: int, calls: int) -> None:
    Ledger.open(path).close()
    rng = random.Random(3)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO runs (id, brand, campaign, command, started_at, status) "
                 "VALUES (1, 'bigbrand', 'big', 'execute', '2026-11-01T00:00:00.000000Z', 'success')")
    rows, orders = [], []
    for k in range(invitations):
        state = rng.choice(STATES)
        day = 1 + k * 28 // invitations
        claimed = f"2026-11-{day:02d}T10:00:00.000000Z"
        showcased = f"2026-11-{min(28, day + 2):02d}T10:00:00.000000Z" if state in ("showcased", "content") else None
        content = f"2026-11-{min(28, day + 4):02d}T10:00:00.000000Z" if state == "content" else None
        tier = ["macro", "mid", "micro"][k % 3]
        creator, collaboration = str(7_000_000_000 + k // 3), f"c{k // 150}"
        rows.append(("bigbrand", creator, str(k % 3), f"camp{k % 4}", tier, state, collaboration, claimed, showcased,
                     content))
        if content:  # a sale after each piece of content
            orders.append(("bigbrand", f"o{k}", "s1", collaboration, creator, f"h{k // 3}", str(k % 3), "COMPLETED",
                           1, "USD", round(rng.uniform(5, 80), 2), round(rng.uniform(0.5, 8), 2), content))
    conn.executemany("INSERT INTO invitations (brand, creator_id, product_id, campaign, tier, state, collaboration_id, "
                     "claimed_at, showcased_at, content_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.executemany("INSERT INTO orders (brand, order_id, sku, collaboration_id, creator_id, creator_username, "
                     "product_id, status, quantity, currency, gmv, estimated_commission, created_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", orders)
    conn.executemany("INSERT INTO api_calls (brand, quota_day, endpoint, run_id, reserved_at, outcome, code, attempt) "
                     "VALUES ('bigbrand', '2026-11-25', ?, 1, ?, ?, ?, 1)",
                     [("create_collaboration",
                       f"2026-11-25T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.000000Z",
                       "ok" if i % 50 else "transient", 0 if i % 50 else 36009003) for i in range(calls)])
    conn.execute("INSERT INTO quota_usage VALUES ('bigbrand', '2026-11-25', ?)", (calls,))
    conn.commit()
    conn.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--invitations", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=10_000)
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "big.db"
        fill(ledger, args.invitations, args.calls)
        env = {"TRENDIO_LEDGER": str(ledger), "COLUMNS": "160"}
        for name, cmd in (("dashboard ops", trendio("dashboard", "ops")),
                          ("dashboard merchant", trendio("dashboard", "merchant")),
                          ("report", trendio("report", "camp1", "--brand", "bigbrand", "--html",
                                             str(Path(tmp) / "r.html")))):
            m = run_measured(cmd, env=env)
            if m["returncode"] != 0:
                print(m["stderr"][-1500:], file=sys.stderr)
                return 1
            results[name] = m["wall_s"]
            print(f"{name:<20} {m['wall_s']:6.2f} s (whole process, start-up included)", flush=True)
    ok = all(v < 2.0 for v in results.values())
    save("dashboards", {"invitations": args.invitations, "api_calls": args.calls, "wall_s": results, "targets_met": ok})
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
