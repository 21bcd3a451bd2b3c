"""Benchmark 5: the ledger. Recording outcomes at >= 20,000 pairs/s, and four processes reserving quota at
full speed on one ledger with no "database is locked" failure (and no overspend).

    python bench/ledger_bench.py [--pairs 300000] [--reservations 5000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save  # noqa: E402

from trendio_cli.ledger import SENT, Ledger  # noqa: E402

RESERVER = textwrap.dedent("""
    import sys, time
    from trendio_cli.ledger import Ledger, QuotaExhausted
    ledger = Ledger.open(sys.argv[1])
    got, errors = 0, 0
    started = time.perf_counter()
    while True:
        try:
            call = ledger.reserve_call(brand="b", quota_day="d", endpoint="e", limit=int(sys.argv[2]),
                                       run_id=None).call_id
            ledger.record_call(call, outcome="ok", http_status=200, code=0, latency_ms=1.0, request_id=None)
            got += 1
        except QuotaExhausted:
            break
        except Exception as exc:  # a "database is locked" would land here
            errors += 1
            print("ERROR", exc, file=sys.stderr)
    print(got, errors, round(time.perf_counter() - started, 3))
""")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=300_000)
    ap.add_argument("--reservations", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.db"
        with Ledger.open(path) as ledger:
            run = ledger.start_run(brand="b", campaign="c", command="bench")
            batches = []
            for k in range(0, args.pairs, 150):  # 50 creators x 3 products, as a full create request
                pairs = [(str(7_000_000 + (k + i) // 3), str((k + i) % 3)) for i in range(min(150, args.pairs - k))]
                batches.append((f"k{k}", pairs))
            ledger.insert_planned("b", "c", run, ((c, p, "t", key) for key, pairs in batches for c, p in pairs))
            started = time.perf_counter()
            for key, pairs in batches:
                ledger.claim("b", run, key, pairs)
            claim_s = time.perf_counter() - started
            started = time.perf_counter()
            for key, pairs in batches:
                ledger.mark("b", pairs, SENT, collaboration_id=key)
            mark_s = time.perf_counter() - started
            assert ledger.invitation_states("b") == {"sent": args.pairs}
        record_rate = args.pairs / mark_s
        claim_rate = args.pairs / claim_s
        print(f"recording outcomes: {args.pairs} pairs in {mark_s:.2f} s = {record_rate:,.0f} pairs/s "
              f"(write-ahead claims: {claim_rate:,.0f} pairs/s)")

        path2 = Path(tmp) / "q.db"
        Ledger.open(path2).close()
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", RESERVER, str(path2), str(args.reservations)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outs = [p.communicate() for p in procs]
        wall = time.perf_counter() - started
        got = [int(o.split()[0]) for o, _ in outs]
        errors = sum(int(o.split()[1]) for o, _ in outs)
        with Ledger.open(path2) as ledger:
            used = ledger.calls_used("b", "d")
        print(f"4 processes reserving: {sum(got)} reservations (split {got}) in {wall:.2f} s = "
              f"{sum(got) / wall:,.0f}/s, {errors} errors, ledger count {used} (limit {args.reservations})")
    ok = record_rate >= 20_000 and errors == 0 and sum(got) == used == args.reservations
    save("ledger", {"pairs": args.pairs, "record_pairs_per_s": round(record_rate),
                    "claim_pairs_per_s": round(claim_rate),
                    "reservations": sum(got), "reservations_per_s": round(sum(got) / wall), "split": got,
                    "errors": errors, "ledger_count": used, "targets_met": ok})
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
