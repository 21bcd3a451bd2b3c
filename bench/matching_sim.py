"""Learned matching against the sandbox's hidden propensity to accept: several weeks of one campaign
(plan, execute, sync each day) with learned ranking, followers-only ranking and random order. Reports
acceptances per 1,000 invitations and per 1,000 API requests, and writes docs/matching.md's table.

    python bench/matching_sim.py [--days 28] [--creators 6000] [--daily-target 150] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
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
campaign: sim-{ranking}
brand: simbrand
ranking: {ranking}
products: [{{id: "1", commission: 15%}}]
message: "Hi! {{brand}} would love to send you our new serum."
end_date: 2099-12-31
contact_email: partners@bench.example
creators: {{file: creators.csv}}
tiers:
  - {{name: macro, min_followers: 100000}}
  - {{name: mid, min_followers: 10000}}
  - {{name: micro, min_followers: 0}}
schedule: {{timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], daily_target: {target}}}
lifecycle: {{inactive_after_days: 3650}}
limits: {{weekly_outreach: 1000000}}
"""


def simulate(ranking: str, days: int, creators: int, target: int, seed: int, tmp: Path) -> dict:
    d = tmp / ranking
    d.mkdir()
    (d / "campaign.yaml").write_text(CAMPAIGN.format(ranking=ranking, target=target))
    write_creators_file(str(d / "creators.csv"), creators, seed=seed)
    ledger = str(d / "l.db")
    start = datetime.now(timezone.utc)
    with SandboxServer(SandboxSettings(seed=seed, ineligible_permille=0, marketplace_size=creators)) as sb:
        for day in range(days):
            now = start + timedelta(days=day)
            execute(d / "campaign.yaml", ledger_path=ledger, base_url=sb.url, now=now)
            httpx.post(f"{sb.url}/_sandbox/advance", json={"days": 1}).raise_for_status()
            sync(ledger, sb.url, now=now + timedelta(days=1))
        # let the last invitations be answered, then count
        httpx.post(f"{sb.url}/_sandbox/advance", json={"days": 8}).raise_for_status()
        sync(ledger, sb.url, now=start + timedelta(days=days + 8))
        requests = sb.stats()["requests"]
    conn = sqlite3.connect(ledger)
    states = dict(conn.execute("SELECT state, COUNT(*) FROM invitations GROUP BY state").fetchall())
    invited = sum(states.get(s, 0) for s in ("sent", "accepted", "declined", "expired"))
    accepted = states.get("accepted", 0)
    return {"ranking": ranking, "invitations": invited, "accepted": accepted, "declined": states.get("declined", 0),
            "api_requests": requests, "accepted_per_1000_invitations": round(1000 * accepted / max(1, invited), 1),
            "accepted_per_1000_requests": round(1000 * accepted / max(1, requests), 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--creators", type=int, default=6000)
    ap.add_argument("--daily-target", type=int, default=150)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--write-doc", action="store_true", help="rewrite the table in docs/matching.md")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ranking in ("learned", "followers", "random"):
            row = simulate(ranking, args.days, args.creators, args.daily_target, args.seed, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    learned, followers, rnd = rows
    ok = learned["accepted_per_1000_invitations"] > max(followers["accepted_per_1000_invitations"],
                                                         rnd["accepted_per_1000_invitations"]) * 1.15
    save("matching", {"args": vars(args), "rows": rows, "learned_wins_clearly": ok})
    table = ["| ranking | invitations | accepted | accepted per 1,000 invitations | API requests | "
             "accepted per 1,000 requests |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        table.append(f"| {r['ranking']} | {r['invitations']} | {r['accepted']} | {r['accepted_per_1000_invitations']} "
                     f"| {r['api_requests']} | {r['accepted_per_1000_requests']} |")
    print("\n".join(table))
    print("learned ranking wins clearly" if ok else "LEARNED RANKING DOES NOT WIN CLEARLY")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
