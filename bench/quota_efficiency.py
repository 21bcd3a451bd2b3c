"""Benchmark 3: quota efficiency. API requests per invited creator-product pair over a simulated week
(plan, execute and sync every day; conflict checks and syncs included), against the sandbox with a few
transient faults and lost answers. Target <= 0.1 (the seed operator ended near 50 per collaboration).

    python bench/quota_efficiency.py [--days 7] [--creators 12000] [--daily-target 3000]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save  # noqa: E402

from trendio_cli.commands.execute import execute  # noqa: E402
from trendio_cli.commands.sync import sync  # noqa: E402
from trendio_cli.sandbox.marketplace import write_creators_file  # noqa: E402
from trendio_cli.sandbox.server import SandboxServer  # noqa: E402
from trendio_cli.sandbox.state import SandboxSettings  # noqa: E402

CAMPAIGN = """\
campaign: week
brand: weekbrand
products: [{{id: "1", commission: 15%}}, {{id: "2", commission: 12%}}, {{id: "3", commission: 10%}}]
message: "Hi! {{brand}} would love to send you {{product_count}} products."
end_date: 2099-12-31
contact_email: partners@bench.example
creators: {{file: creators.csv}}
tiers:
  - {{name: macro, min_followers: 100000, daily_cap: 300, commission: 20%}}
  - {{name: mid, min_followers: 10000}}
  - {{name: micro, min_followers: 0}}
schedule: {{timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], daily_target: {target}}}
lifecycle: {{inactive_after_days: 3650}}
limits: {{weekly_outreach: 1000000}}
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--creators", type=int, default=12_000)
    ap.add_argument("--daily-target", type=int, default=3000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "campaign.yaml").write_text(CAMPAIGN.format(target=args.daily_target))
        write_creators_file(str(d / "creators.csv"), args.creators)
        ledger = str(d / "l.db")
        start = datetime.now(timezone.utc)
        settings = SandboxSettings(ineligible_permille=10, fault_rate=0.02, lost_rate=0.01, latency_ms=50)
        with SandboxServer(settings) as sb:
            for day in range(args.days):
                now = start + timedelta(days=day)
                execute(d / "campaign.yaml", ledger_path=ledger, base_url=sb.url, now=now)
                httpx.post(f"{sb.url}/_sandbox/advance", json={"days": 1}).raise_for_status()
                sync(ledger, sb.url, now=now + timedelta(days=1))
            stats = sb.stats()
        conn = sqlite3.connect(ledger)
        by_endpoint = dict(conn.execute("SELECT endpoint, COUNT(*) FROM api_calls GROUP BY endpoint").fetchall())
        invited = conn.execute("SELECT COUNT(*) FROM invitations WHERE state IN "
                               "('sent', 'accepted', 'declined', 'expired')").fetchone()[0]
    requests = sum(by_endpoint.values())
    per_pair = requests / max(1, invited)
    ok = per_pair <= 0.1 and stats["duplicate_attempts"] == 0
    result = {"days": args.days, "invited_pairs": invited, "requests": requests, "by_endpoint": by_endpoint,
              "requests_per_pair": round(per_pair, 4), "sandbox_requests": stats["requests"],
              "duplicate_attempts": stats["duplicate_attempts"], "faults": stats["faults"],
              "lost_responses": stats["lost_responses"], "targets_met": ok}
    save("quota_efficiency", result)
    print(f"{args.days} days: {invited} pairs invited with {requests} requests {by_endpoint}: "
          f"{per_pair:.4f} requests per pair; {stats['faults']} faults, {stats['lost_responses']} lost answers, "
          f"{stats['duplicate_attempts']} duplicate attempts")
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
