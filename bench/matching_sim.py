"""Learned matching on the sandbox, over simulated weeks: the same campaign run once per ranking (learned,
followers-only, random, and two oracles that know the sandbox's hidden truth), each against a fresh sandbox with
the same seed. Every simulated day: a creators file as exported that day, `execute` (plan and send), then the
sandbox's clock moves a day and `sync` reads what creators did. After the last day, daily syncs go on for
`--settle-days` so that the last invitations can be answered and sell. Then, per ranking: showcases and GMV per
1,000 invitations and per 1,000 API requests (every request the campaign made: creates, checks, syncs), per day of
invitation, and the sandbox's own expectation for the creators each ranking invited.

    python bench/matching_sim.py [--days 28] [--creators 20000] [--daily-target 300] [--seed 7]

Goals (issue 14), checked on the sandbox's expectation for the invited creators (the draws of a few thousand
invitations move the realized figures by several percent, and GMV by far more: a handful of big sellers decide
it), realized figures printed beside them:
  - learned >= 0.85 of the oracle in showcases and in GMV per 1,000 invitations;
  - learned >= random in showcases on every single day (cold start included), and in GMV to date every day.
The script exits 1 when a goal is missed.

The oracle ranks by the sandbox's true chance of a showcase times the true value of one, in the form the learned
score uses (1 + chance of content + log10(1 + GMV over four weeks)). The attributes oracle ranks by the chance the
sandbox derives from a creator's attributes before its individual draw (times the same true value): about the
best any ranking by the creators file can do.

Time: `execute(now=...)` plans as of the simulated day and `sync(now=...)` reads as of it, and the sandbox's clock
is moved with /_sandbox/advance; the ledger writes the real time when it claims an invitation, so this script
stamps each day's invitations with the simulated time they were sent (what the ledger would hold had the run
happened that day). The executor counts requests against the real quota day, which all the simulated days
share: each simulated day starts the brand's count afresh, as the turn of a quota day would. Each ranking gets
its own token store (TRENDIO_HOME): access tokens expire after 7 simulated days and the client refreshes them on
its own.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402

import trendio_cli.planner as planner  # noqa: E402
from trendio_cli.commands.discover import creator_row  # noqa: E402
from trendio_cli.commands.execute import execute  # noqa: E402
from trendio_cli.commands.sync import sync  # noqa: E402
from trendio_cli.ledger import iso  # noqa: E402
from trendio_cli.sandbox.marketplace import Marketplace, search_view  # noqa: E402
from trendio_cli.sandbox.server import SandboxServer  # noqa: E402
from trendio_cli.sandbox.state import SandboxSettings  # noqa: E402

BRAND = "simbrand"
PRODUCT = "1"
COMMISSION = 1500  # 15%
HORIZON_DAYS = 28.0  # the oracles value a showcase by its GMV over four weeks, as the learned score does
RANKINGS = ("learned", "followers", "random", "oracle", "attributes")
CAMPAIGN = """\
campaign: sim-{ranking}
brand: {brand}
ranking: {ranking}
products: [{{id: "{product}", commission: 15%}}]
message: "Hi! {{brand}} would love to send you our new serum."
end_date: 2099-12-31
contact_email: partners@simbrand.example
creators: {{file: creators.csv}}
tiers:
  - {{name: macro, min_followers: 100000}}
  - {{name: mid, min_followers: 10000}}
  - {{name: micro, min_followers: 0}}
schedule: {{timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], daily_target: {target}}}
lifecycle: {{inactive_after_days: 3650}}
limits: {{weekly_outreach: 1000000}}
"""


class CreatorsFile:
    """The creators file an operator would hold on a given day: the export's columns (last activity as of that
    day) and the marketplace's, as `trendio creators discover` writes them (units sold, video views)."""

    HEADER = ("creator_id", "creator_user_id", "handle", "followers", "gmv_30d", "category", "engagement_rate",
              "last_active", "units_sold", "avg_video_views")

    def __init__(self, market: Marketplace, count: int) -> None:
        self.rows = []
        for i in range(count):
            c = market.creator(i)
            shown = creator_row(search_view(c, "US", "USD")) or {}
            self.rows.append((c.open_id, c.user_id, c.username, c.followers, f"{c.gmv_30d:.2f}", c.category,
                              c.engagement_rate, c.inactive_days, shown.get("units_sold", ""),
                              shown.get("avg_video_views", "")))

    def write(self, path: Path, today: date) -> None:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(self.HEADER)
            for *head, inactive, units, views in self.rows:
                w.writerow([*head, (today - timedelta(days=inactive)).isoformat(), units, views])


class OracleScorer:
    """Ranks by the sandbox's hidden truth: the chance of a showcase (the true one, or the one the attributes
    give) times the true value of a showcase, in the learned score's form."""

    def __init__(self, market: Marketplace, price: float, attributes: bool) -> None:
        self.market, self.price, self.attributes = market, price, attributes

    def __call__(self, creator: Any, tier: Any) -> float:
        c = self.market.get(creator.creator_id)
        chance = c.showcase_chance(COMMISSION)
        gmv = c.expected_gmv(HORIZON_DAYS, self.price, COMMISSION) / max(chance, 1e-9)
        value = 1.0 + c.content_propensity + math.log10(1.0 + gmv)
        return (c.attribute_propensity if self.attributes else chance) * value


@contextlib.contextmanager
def ranked_by(scorer: OracleScorer | None) -> Iterator[None]:
    """Plans rank by `scorer` instead of the campaign's ranking (the oracles); everything else is the product."""
    if scorer is None:
        yield
        return
    original = planner.scorer_for
    planner.scorer_for = lambda campaign, state, today: scorer  # type: ignore[assignment]
    try:
        yield
    finally:
        planner.scorer_for = original


def sandbox_now(url: str) -> datetime:
    return datetime.fromisoformat(httpx.get(f"{url}/_sandbox/stats", timeout=30).json()["now"])


def advance(url: str, days: float) -> datetime:
    httpx.post(f"{url}/_sandbox/advance", json={"days": days}, timeout=30).raise_for_status()
    return sandbox_now(url)


def simulate(ranking: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    d = tmp / ranking
    d.mkdir()
    os.environ["TRENDIO_HOME"] = str(d / "home")  # this sandbox's tokens only
    campaign = d / "campaign.yaml"
    campaign.write_text(CAMPAIGN.format(ranking="learned" if ranking in ("oracle", "attributes") else ranking,
                                        brand=BRAND, product=PRODUCT, target=args.daily_target))
    ledger = str(d / "l.db")
    # no outreach cap: the comparison is of rankings (this script stamps invitations with simulated times, which
    # the ledger's count of outreach since the last quota read, made in real time, would take as all new)
    settings = SandboxSettings(seed=args.seed, ineligible_permille=0, marketplace_size=args.creators,
                               outreach_unlimited=True)
    started = time.monotonic()
    with SandboxServer(settings) as sb:
        market = sb.state.market  # the hidden truth (read only)
        price = sb.state.product_price(PRODUCT)
        scorer = OracleScorer(market, price, ranking == "attributes") if ranking in ("oracle", "attributes") \
            else None
        creators = CreatorsFile(market, args.creators)
        sent_on: list[str] = []
        now = sandbox_now(sb.url)
        with ranked_by(scorer):
            for day in range(args.days):
                creators.write(d / "creators.csv", now.date())
                result = execute(campaign, ledger_path=ledger, base_url=sb.url, now=now)
                if result["exit_code"] not in (0,):
                    raise SystemExit(f"{ranking}: execute exited {result['exit_code']}: {result['errors'][:3]}")
                stamp(ledger, result["run_id"], now)
                sent_on.append(iso(now.timestamp()))
                now = advance(sb.url, 1)
                new_quota_day(ledger, day + 1)
                synced(ledger, sb.url, now, ranking)
            for day in range(args.days, args.days + args.settle_days):  # time to answer and sell, for the last
                now = advance(sb.url, 1)
                new_quota_day(ledger, day + 1)
                synced(ledger, sb.url, now, ranking)
        requests = sb.stats()["requests"]
        row = tally(ranking, ledger, market, price, sent_on, now, args.daily_target)
    row.update({"api_requests": requests, "seconds": round(time.monotonic() - started, 1)})
    for key in ("showcases", "gmv"):
        row[f"{key}_per_1000_requests"] = round(1000 * row[key] / max(1, requests), 1)
    return row


def synced(ledger: str, url: str, now: datetime, ranking: str) -> None:
    result = sync(ledger, url, now=now)
    if result["exit_code"] != 0:  # a sync that read nothing would leave the model, and the tally, without outcomes
        raise SystemExit(f"{ranking}: sync exited {result['exit_code']}: {result['brands'][0]['errors'][:3]}")


def new_quota_day(ledger: str, day: int) -> None:
    """A new simulated day is a new quota day: the requests counted so far move to a day of their own (the
    executor counts on the real day, which all the simulated days share)."""
    conn = sqlite3.connect(ledger)
    with conn:
        conn.execute("UPDATE api_calls SET quota_day = quota_day || ' (simulated day ' || ? || ')' WHERE brand = ? "
                     "AND quota_day NOT LIKE '%simulated%'", (day, BRAND))
        conn.execute("DELETE FROM quota_usage WHERE brand = ?", (BRAND,))
    conn.close()


def stamp(ledger: str, run_id: int, now: datetime) -> None:
    """The run's invitations as sent at the simulated `now` (the ledger wrote the real time)."""
    when = iso(now.timestamp())
    conn = sqlite3.connect(ledger)
    with conn:
        conn.execute("UPDATE invitations SET claimed_at = ?, sent_at = CASE WHEN sent_at IS NULL THEN NULL ELSE ? END "
                     "WHERE brand = ? AND run_id = ? AND claimed_at IS NOT NULL", (when, when, BRAND, run_id))
    conn.close()


def tally(ranking: str, ledger: str, market: Marketplace, price: float, sent_on: list[str], end: datetime,
          target: int) -> dict[str, Any]:
    """Per day of invitation: invitations, showcases, content, GMV of their orders, and the sandbox's expected
    showcases and GMV (from the invitation to the end of the run) for the creators invited."""
    conn = sqlite3.connect(ledger)
    invited = conn.execute(
        "SELECT creator_id, COALESCE(collaboration_id, batch_key), MIN(claimed_at), "
        "MAX(CASE WHEN state IN ('showcased', 'content') THEN 1 ELSE 0 END), "
        "MAX(CASE WHEN state = 'content' THEN 1 ELSE 0 END) FROM invitations WHERE brand = ? "
        "AND state IN ('sent', 'showcased', 'content', 'expired') GROUP BY 1, 2", (BRAND,)).fetchall()
    gmv = dict(((c, k), g) for c, k, g in conn.execute(
        "SELECT creator_id, collaboration_id, SUM(gmv) FROM orders WHERE brand = ? GROUP BY 1, 2", (BRAND,)))
    unattributed = conn.execute("SELECT COALESCE(SUM(gmv), 0) FROM orders WHERE brand = ? AND creator_id IS NULL",
                                (BRAND,)).fetchone()[0]
    conn.close()
    days = [{"invitations": 0, "showcases": 0, "content": 0, "gmv": 0.0, "expected_showcases": 0.0,
             "expected_gmv": 0.0} for _ in sent_on]
    index = {when: i for i, when in enumerate(sent_on)}
    for cid, collab, claimed, taken, content in invited:
        day = days[index[claimed]]
        c = market.get(cid)
        day["invitations"] += 1
        day["showcases"] += taken
        day["content"] += content
        day["gmv"] += gmv.get((cid, collab)) or 0.0
        day["expected_showcases"] += c.showcase_chance(COMMISSION)
        days_up = (end - datetime.fromisoformat(claimed.replace("Z", "+00:00"))).total_seconds() / 86400
        day["expected_gmv"] += c.expected_gmv(days_up, price, COMMISSION)
    n = sum(x["invitations"] for x in days)
    row: dict[str, Any] = {"ranking": ranking, "invitations": n, "unattributed_gmv": round(unattributed, 2)}
    for key in ("showcases", "content", "gmv", "expected_showcases", "expected_gmv"):
        total = sum(x[key] for x in days)
        row[key] = round(total, 2)
        row[f"{key}_per_1000_invitations"] = round(1000 * total / max(1, n), 1)
    row["days"] = [{k: round(v, 2) for k, v in x.items()} for x in days]
    if any(x["invitations"] != target for x in days):
        row["short_days"] = [i + 1 for i, x in enumerate(days) if x["invitations"] != target]
    return row


def per_1000(day: dict[str, Any], key: str) -> float:
    return 1000 * day[key] / max(1, day["invitations"])


def goals(rows: dict[str, dict[str, Any]]) -> list[tuple[str, bool, str]]:
    learned, oracle, rnd = rows["learned"], rows.get("oracle"), rows["random"]
    out = []
    if oracle:
        for key, name in (("expected_showcases", "showcases"), ("expected_gmv", "GMV")):
            ratio = learned[f"{key}_per_1000_invitations"] / max(1e-9, oracle[f"{key}_per_1000_invitations"])
            realized = learned[f"{name.lower()}_per_1000_invitations"] / max(
                1e-9, oracle[f"{name.lower()}_per_1000_invitations"])
            out.append((f"learned >= 0.85 of the oracle in {name} per 1,000 invitations", ratio >= 0.85,
                        f"{ratio:.3f} expected, {realized:.3f} realized"))
    worse = [i + 1 for i, (a, b) in enumerate(zip(learned["days"], rnd["days"]))
             if per_1000(a, "expected_showcases") < per_1000(b, "expected_showcases")]
    realized = [i + 1 for i, (a, b) in enumerate(zip(learned["days"], rnd["days"]))
                if per_1000(a, "showcases") < per_1000(b, "showcases")]
    out.append(("learned >= random in showcases every day", not worse,
                f"expected below random on days {worse or 'none'}; realized below on days {realized or 'none'}"))
    mine = list(accumulate(x["expected_gmv"] for x in learned["days"]))
    theirs = list(accumulate(x["expected_gmv"] for x in rnd["days"]))
    behind = [i + 1 for i, (a, b) in enumerate(zip(mine, theirs)) if a < b]
    daily = [i + 1 for i, (a, b) in enumerate(zip(learned["days"], rnd["days"]))
             if a["expected_gmv"] < b["expected_gmv"]]
    out.append(("learned >= random in GMV to date every day", not behind,
                f"to date behind on days {behind or 'none'}; that day's own below random on days {daily or 'none'}"))
    return out


def tables(rows: dict[str, dict[str, Any]], first_days: int) -> str:
    out = ["| ranking | invitations | showcases | content | GMV | API requests | showcases per 1,000 invitations "
           "| GMV per 1,000 invitations | showcases per 1,000 requests | GMV per 1,000 requests | expected "
           "showcases per 1,000 invitations | expected GMV per 1,000 invitations |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows.values():
        out.append(f"| {r['ranking']} | {r['invitations']:,} | {r['showcases']:,.0f} | {r['content']:,.0f} | "
                   f"{r['gmv']:,.0f} | {r['api_requests']:,} | {r['showcases_per_1000_invitations']:,.1f} | "
                   f"{r['gmv_per_1000_invitations']:,.0f} | {r['showcases_per_1000_requests']:,.0f} | "
                   f"{r['gmv_per_1000_requests']:,.0f} | {r['expected_showcases_per_1000_invitations']:,.1f} | "
                   f"{r['expected_gmv_per_1000_invitations']:,.0f} |")
    out.append("")
    n = min(first_days, len(next(iter(rows.values()))["days"]))
    out.append("Per day of invitation, per 1,000 invitations: showcases (expected), then GMV (expected)")
    out.append("")
    out.append("| ranking | " + " | ".join(f"day {i + 1}" for i in range(n)) + " |")
    out.append("|---|" + "---:|" * n)
    for r in rows.values():
        cells = [f"{per_1000(x, 'showcases'):.0f} ({per_1000(x, 'expected_showcases'):.0f})" for x in r["days"][:n]]
        out.append(f"| {r['ranking']} showcases | " + " | ".join(cells) + " |")
    for r in rows.values():
        cells = [f"{per_1000(x, 'gmv'):,.0f} ({per_1000(x, 'expected_gmv'):,.0f})" for x in r["days"][:n]]
        out.append(f"| {r['ranking']} GMV | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--creators", type=int, default=20_000)
    ap.add_argument("--daily-target", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--settle-days", type=int, default=14)
    ap.add_argument("--rankings", default=",".join(RANKINGS))
    ap.add_argument("--first-days", type=int, default=7, help="days shown one by one in the tables")
    ap.add_argument("--out", default="matching", help="bench/out/OUT.json")
    args = ap.parse_args()
    rankings = [r for r in args.rankings.split(",") if r]
    unknown = set(rankings) - set(RANKINGS)
    if unknown or not {"learned", "random"} <= set(rankings):
        ap.error(f"--rankings: learned and random, and any of {', '.join(RANKINGS)}")
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ranking in rankings:
            rows[ranking] = simulate(ranking, args, Path(tmp))
            r = rows[ranking]
            print(json.dumps({k: v for k, v in r.items() if k != "days"}), flush=True)
    checked = goals(rows)
    ok = all(met for _, met, _ in checked)
    save(args.out, {"args": vars(args), "rows": list(rows.values()), "goals": [
        {"goal": g, "met": met, "detail": detail} for g, met, detail in checked], "goals_met": ok})
    print(f"\n{machine()}\n")
    print(tables(rows, args.first_days))
    print()
    for goal, met, detail in checked:
        print(f"{'met   ' if met else 'MISSED'} {goal}: {detail}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
