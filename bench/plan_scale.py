"""Benchmark 4: `trendio plan` over 10k, 100k and 1M candidate creators against a ledger holding as many
invitations. Targets: growth close to linear; 1M in <= 10 s and <= 1 GB.

    python bench/plan_scale.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import run_measured, save, trendio, write_creators_csv  # noqa: E402

from trendio_cli.ledger import Ledger  # noqa: E402

CAMPAIGN = """\
campaign: bench
brand: benchbrand
products:
  - {id: "1", commission: 15%}
  - {id: "2", commission: 15%}
  - {id: "3", commission: 15%}
message: "Hi! {brand} would love to send you {product_count} products."
end_date: 2099-12-31
contact_email: partners@bench.example
creators: {file: creators.csv}
tiers:
  - {name: macro, min_followers: 100000, daily_cap: 600}
  - {name: mid, min_followers: 10000, daily_cap: 3000}
  - {name: micro, min_followers: 0}
schedule: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], daily_target: 9000}
"""


def fill_ledger(path: Path, invitations: int) -> None:
    """`invitations` rows: a third of them for creators of the candidate file, the rest for others."""
    Ledger.open(path).close()
    conn = sqlite3.connect(path)
    rows = []
    for k in range(invitations):
        creator = k // 3 if k % 2 == 0 else 10**9 + k // 3
        rows.append(("benchbrand", str(7_000_000_000_000_000_000 + creator), str(k % 3 + 1), "old", "sent",
                     "2026-01-01T00:00:00.000000Z"))
    conn.executemany("INSERT OR IGNORE INTO invitations (brand, creator_id, product_id, campaign, state, claimed_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            d = Path(tmp) / str(n)
            d.mkdir()
            (d / "campaign.yaml").write_text(CAMPAIGN)
            write_creators_csv(d / "creators.csv", n)
            fill_ledger(d / "l.db", n)
            m = run_measured(trendio("plan", str(d / "campaign.yaml"), "--ledger", str(d / "l.db"), "--json"))
            if m["returncode"] != 0:
                print(m["stderr"], file=sys.stderr)
                return 1
            results.append({"candidates": n, "ledger_invitations": n, "wall_s": m["wall_s"], "cpu_s": m["cpu_s"],
                            "peak_rss_mb": m["peak_rss_mb"]})
            print(f"{n:>9} candidates, {n:>9} ledger rows: {m['wall_s']:6.2f} s wall, "
                  f"{m['peak_rss_mb']:7.1f} MB peak", flush=True)
    ok = True
    if len(results) >= 2:
        a, b = results[-2], results[-1]
        growth = (b["wall_s"] / a["wall_s"]) / (b["candidates"] / a["candidates"])
        print(f"growth from {a['candidates']} to {b['candidates']}: {growth:.2f} of linear")
        ok &= growth < 1.3
    big = next((r for r in results if r["candidates"] == 1_000_000), None)
    if big:
        ok &= big["wall_s"] <= 10 and big["peak_rss_mb"] <= 1024
    save("plan_scale", {"results": results, "targets_met": ok})
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
