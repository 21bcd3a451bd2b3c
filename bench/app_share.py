"""Benchmark 7: brands sharing an app-wide limit. Three `trendio execute` processes, one per brand (three shops
on one app key, `rate_scope: app`), started together on one ledger against the sandbox counting per app
(its own process, with its request log). Figures: the most requests the sandbox saw in any one second from
the three together (target <= 50), HTTP 429s (target 0), their combined rate over the span in which all
three were sending / 50, and each brand's quota in the ledger against what the sandbox counted (exact).

    python bench/app_share.py [--requests 600] [--latency-ms 200] [--hogs 0] [--runs 1] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save, trendio  # noqa: E402
from pacing import Sandbox, hogs, ledger_location, write_campaign  # noqa: E402

from trendio_cli.ledger import Ledger  # noqa: E402

BRANDS = ("alpha", "beta", "gamma")


def shop_env() -> dict[str, str]:
    """One app (the sandbox's default key and secret), a shop (token, cipher) per brand: for the sandbox, which
    accepts them, and for the runs."""
    env = {"TRENDIO_APP_KEY": "sandbox-app-key", "TRENDIO_APP_SECRET": "sandbox-app-secret"}
    for b in BRANDS:
        env[f"TRENDIO_{b.upper()}_APP_KEY"] = "sandbox-app-key"  # (how the sandbox finds a brand's shop)
        env[f"TRENDIO_{b.upper()}_ACCESS_TOKEN"] = f"token-{b}"
        env[f"TRENDIO_{b.upper()}_SHOP_CIPHER"] = f"cipher-{b}"
    return env


def brand_quota(ledger: str) -> dict[str, int]:
    if ledger.startswith("postgres"):
        import psycopg

        with psycopg.connect(ledger) as conn:
            return dict(conn.execute("SELECT brand, SUM(used) FROM quota_usage GROUP BY brand").fetchall())
    with sqlite3.connect(ledger) as conn:
        return dict(conn.execute("SELECT brand, SUM(used) FROM quota_usage GROUP BY brand").fetchall())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=600, help="per brand")
    ap.add_argument("--latency-ms", type=int, default=200)
    ap.add_argument("--hogs", type=int, default=0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--pg-url")
    args = ap.parse_args()
    rows = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp, hogs(args.hogs):
        d = Path(tmp)
        campaigns = [write_campaign(d / b, args.requests, brand=b, scope="app", start=7_000_000 + i * 100_000)
                     for i, b in enumerate(BRANDS)]
        for run in range(args.runs):
            log = d / f"sandbox-{run}.jsonl"
            sb = Sandbox(args.latency_ms, log, env=shop_env(), rate_scope="app")
            try:
                with ledger_location(d, f"l{run}", args.pg_url) as ledger:
                    env = {**os.environ, **shop_env(), "TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": ledger}
                    Ledger.open(ledger).close()  # made once, before three processes race to make it
                    procs = [subprocess.Popen(trendio("execute", str(c), "--yes", "--json"), env=env,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                             for c in campaigns]
                    outs = [p.communicate(timeout=900) for p in procs]
                    quota = brand_quota(ledger)
                stats = sb.stats()
            finally:
                sb.stop()
            if any(p.returncode != 0 for p in procs):
                print([(p.returncode, o[0][-600:], o[1][-600:]) for p, o in zip(procs, outs)], file=sys.stderr)
                return 1
            entries = [json.loads(line) for line in log.read_text().splitlines()]
            by_shop: dict[str, list[float]] = {}
            for e in entries:
                by_shop.setdefault(e["shop"], []).append(e["t"])
            start = max(min(ts) for ts in by_shop.values())  # all three sending
            end = min(max(ts) for ts in by_shop.values())
            together = sorted(t for e in entries if start <= (t := e["t"]) <= end)
            rate = (len(together) - 1) / (end - start) if end > start else 0.0
            counted = {k.split("/")[0]: n for k, n in stats["quota_used"].items()}
            exact = all(quota.get(b) == counted.get(f"cipher-{b}") for b in BRANDS)
            row = {"run": run + 1, "requests": stats["requests"], "max_in_any_second": stats["max_requests_in_window"],
                   "http_429": stats["http_429"], "rps_together": round(rate, 2), "ratio": round(rate / 50, 3),
                   "quota_exact": exact, "late": [json.loads(o[0])["pace"]["late"] for o in outs]}
            rows.append(row)
            ok &= row["max_in_any_second"] <= 50 and row["http_429"] == 0 and exact
            print(f"run {run + 1}: {row['requests']} requests, most in any second {row['max_in_any_second']}, "
                  f"429s {row['http_429']}, together {row['rps_together']} req/s (ratio {row['ratio']}), quota exact "
                  f"{exact}", flush=True)
            time.sleep(1)
    save("app-share-pg" if args.pg_url else "app-share", {"hogs": args.hogs, "latency_ms": args.latency_ms,
                                                          "rows": rows, "targets_met": ok})
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
