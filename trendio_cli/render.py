"""Human views of command results: Rich tables on stdout, progress on stderr. `--json` bypasses all of this."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from trendio_cli.executor import Counts
from trendio_cli.output import stderr, stdout
from trendio_cli.planner import Plan


def _table(title: str, *columns: str) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    return t


def plan_view(plan: dict[str, Any], console: Console = stdout) -> None:
    console.print(f"[bold]Plan {plan['plan_id']}[/] for [bold]{plan['brand']}/{plan['campaign']}[/] "
                  f"on {plan['date']}: {plan['pairs']} invitations to {plan['creators']} creators "
                  f"in {plan['requests']['creates']} requests")
    tiers = _table("By tier", "tier", "creators", "invitations")
    for name, t in plan["tiers"].items():
        tiers.add_row(name, str(t["creators"]), str(t["pairs"]))
    if plan["tiers"]:
        console.print(tiers)
    q = plan["quota"]
    cost = _table("Requests", "", "count")
    cost.add_row("create requests", str(plan["requests"]["creates"]))
    cost.add_row("conflict checks (reconciliation)", str(plan["requests"]["conflict_checks"]))
    cost.add_row("kept in reserve (syncs)", str(plan["requests"]["reserve"]))
    cost.add_row(f"quota {q['day']}: used before", f"{q['used']} / {q['limit']}")
    cost.add_row("quota: used after", f"{q['after']} / {q['limit']}")
    o = plan["outreach"]
    cost.add_row("outreach this week: before -> after", f"{o['used']} -> {o['after']} / {o['limit']}")
    console.print(cost)
    if plan["skipped"]:
        skipped = _table("Candidates left out", "reason", "creators")
        for reason, n in sorted(plan["skipped"].items(), key=lambda kv: -kv[1]):
            skipped.add_row(reason, str(n))
        console.print(skipped)
    if plan["outlook"]:
        days = _table("When the rest can go", "day", "invitations")
        for d in plan["outlook"]:
            days.add_row(d["date"] or d.get("note", "later"), str(d["pairs"]))
        console.print(days)
    ahead = plan["outreach"].get("week_ahead") or []
    if ahead:
        console.print("outreach left this week, spread over its active days: "
                      + ", ".join(f"{d['date'][5:]} {d['outreach']}" for d in ahead))
    for note in plan["notes"]:
        console.print(f"note: {note}")


def explain_view(r: dict[str, Any], console: Console = stdout) -> None:
    console.print(f"[bold]Creator {escape(r.get('creator_id', ''))}[/]: rank {r['rank']} of {r['of']} by "
                  f"{r['ranking']} ranking (score {r['score']:.4f}); planned today: "
                  f"{'yes' if r['planned_today'] else 'no'}" + (f"; flag {escape(r['flag'])}" if r.get("flag") else ""))
    if "factors" in r:
        silence = r["silence"]
        t = _table(f"Learned from {r['answers_learned_from']:,.0f} outcomes ({r['showcases_learned_from']:,} "
                   "showcases; "
                   f"silence counts as 1 - exp(-days / {silence['mean_days_to_showcase']:.1f}) of a no, all of one "
                   f"after {silence['answer_window_days']:g} days); base rate {r['base_rate']:.1%}",
                   "factor", "value", "prior", "showcased / outcomes", "rate", "pull (log-odds)", "content / showcases",
                   "content pull")
        for f in r["factors"]:
            t.add_row(f["factor"], escape(str(f["value"])), f"{f['prior']:+.2f}",
                      f"{f['showcased']:g} / {f['answers']:g}", "" if f["rate"] is None else f"{f['rate']:.1%}",
                      f"{f['pull']:+.3f}",
                      f"{f['content']:g} / {f['content_of']:g}", f"{f['content_pull']:+.3f}")
        console.print(t)
        own = r.get("own_outcomes")
        if own:
            console.print(f"own outcomes: {own['showcased']:g} showcased of {own['answers']:g}, blended in with "
                          "the weight of 3")
        sales = r["sales"]
        console.print(f"sales of a showcase in its first {sales['horizon_days']:g} days: "
                      f"{sales['showcase_share']:.1%} of the creator's 30-day GMV (+{sales['floor']:g}) "
                      "without content, "
                      f"{sales['content_share']:.1%} with it, x {sales['gmv_band_factor']:.2f} for this GMV band "
                      f"({sales['gmv_band_showcases']} showcases): expected GMV {r['expected_gmv']:,.2f} "
                      f"(commission {r['expected_commission']:,.2f})")
        console.print(f"chance of a showcase {r['p_showcase']:.1%} x value of a showcase {r['showcase_value']:.2f} "
                      f"(1 + chance of content {r['p_content']:.1%} + log10(1 + expected GMV)) x exploration "
                      f"{r['exploration']:.2f} = score {r['score']:.4f}")


def dry_run_view(result: dict[str, Any], console: Console = stdout) -> None:
    plan_view(result["plan"], console)
    pace = result["pace"]
    console.print(
        f"[bold]Dry run[/]: {result['requests_total']} requests for {result['pairs']} invitations, paced at "
        f"{pace['limit']} per {pace['window_ms']} ms in groups of {pace['group']} "
        f"({pace['requests_per_second']}/s, scope {pace['scope']}): "
        f"about {result['estimated_duration_s']:.1f} s plus network time. Signed with {result['signed_with']}. "
        f"Nothing was sent; the ledger was not written."
    )


def execute_view(result: dict[str, Any], console: Console = stdout) -> None:
    c = result["counts"]
    t = _table(f"Run {result['run_id']}: {result['brand']}/{result['campaign']} -> {result['status']}", "", "count")
    for key in ("sent", "conflict", "ineligible", "failed", "unsent", "uncertain", "reconciled_sent",
                "requests", "creates", "conflict_checks", "retries", "rate_limited"):
        if c.get(key) or key in ("sent", "requests"):
            t.add_row(key.replace("_", " "), str(c[key]))
    t.add_row("duration", f"{result['duration_s']:.1f} s")
    t.add_row("requests/s", f"{result['requests_per_second']:.1f}")
    q = result["quota"]
    t.add_row(f"quota {q['day']}", f"{q['used']} used, {q['left']} left (resets {q['resets_at']})")
    console.print(t)
    for e in result["errors"][:10]:
        if "stop" in e:
            console.print(f"stopped: {e['message']}" + (f" ({e['hint']})" if e.get("hint") else ""))
        else:
            console.print(f"error: {e.get('outcome')} code={e.get('code')} {e.get('message')}: {e.get('note')} "
                          f"({e.get('pairs')} pairs)")


def sync_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = _table("Sync", "brand", "watched", "requests", "showcased", "content", "expired", "orders new",
               "GMV new", "unresponsive")
    for b in result["brands"]:
        ch = b["changed"]
        t.add_row(b["brand"], str(b["collaborations_watched"]), str(b["requests"]),
                  *(str(ch.get(k, 0)) for k in ("showcased", "content", "expired")), str(b["orders_new"]),
                  f"{b['gmv_new']:,.2f}", str(b["flagged_unresponsive"]))
    console.print(t if result["brands"] else "no brand in the ledger")
    for b in result["brands"]:
        for e in b["errors"]:
            console.print(f"{b['brand']}: stopped: {e.get('message')}", markup=False)


def creators_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = _table(f"Creators of {result['brand']}", "creator", "handle", "invited", "waiting", "showcased",
               "content", "expired", "flag", "last invited")
    for r in result["creators"]:
        flag = r.get("flag") or ""
        if flag and r.get("flagged_until"):
            flag += f" until {r['flagged_until'][:10]}"
        t.add_row(r["creator_id"], r.get("handle") or "", str(r["invitations"]), str(r["waiting"] or 0),
                  str(r["showcased"] or 0), str(r["content"] or 0), str(r["expired"] or 0), flag,
                  (r["last_invited"] or "")[:10])
    console.print(t if result["creators"] else "no creators")
    for cid, rows in (result.get("history") or {}).items():
        h = _table(f"History of {cid}", "campaign", "product", "state", "collaboration", "sent", "answered")
        for r in rows:
            h.add_row(r["campaign"] or "", r["product_id"], r["state"], r["collaboration_id"] or "",
                      (r["sent_at"] or "")[:16], (r["answered_at"] or "")[:16])
        console.print(h)


def execute_many_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = _table("Run over every campaign", "brand", "status", "exit", "campaigns", "sent", "requests", "note")
    for b in result["brands"]:
        t.add_row(b["brand"], b["status"], str(b["exit_code"]),
                  ", ".join(r["campaign"] for r in b["campaigns"]) or "-",
                  str(sum(r["counts"]["sent"] for r in b["campaigns"])),
                  str(sum(r["counts"]["requests"] for r in b["campaigns"])), b.get("note", ""))
    console.print(t)
    for b in result["brands"]:
        for r in b["campaigns"]:
            for e in r["errors"][:3]:
                console.print(f"{b['brand']}/{r['campaign']}: {e.get('message')}")


def status_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = _table(f"Ledger {result['ledger']}", "brand", "invited", "answered", "in flight", "not sent",
               "req today")
    for b in result["brands"]:
        inv = b["invitations"]
        invited = sum(inv.get(k, 0) for k in ("sent", "showcased", "content", "expired"))
        answered = f"{inv.get('showcased', 0) + inv.get('content', 0)} showcased, {inv.get('content', 0)} content"
        not_sent = ", ".join(f"{inv[k]} {k}" for k in ("conflict", "ineligible", "failed") if inv.get(k)) or "0"
        t.add_row(b["brand"], str(invited), answered, str(b["pending"]), not_sent, str(b["requests_today"]))
    console.print(t if result["brands"] else "the ledger is empty")
    for lock in result["locks"]:
        console.print(f"lock: {lock['brand']} held by run {lock['run_id']} (pid {lock['pid']} on {lock['host']})")
    if result["last_runs"]:
        runs_view({"runs": result["last_runs"]}, console)


def runs_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = _table("Runs", "run", "campaign", "started (UTC)", "status", "exit", "sent", "req")
    for r in result["runs"]:
        counts = r.get("counts") or {}
        t.add_row(str(r["id"]), f"{r['brand']}/{r['campaign'] or '-'}", (r["started_at"] or "")[:16].replace("T", " "),
                  r["status"] or "", "" if r["exit_code"] is None else str(r["exit_code"]),
                  str(counts.get("sent", "")), str(counts.get("requests", "")))
    console.print(t if result["runs"] else "no runs yet")


def quota_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = _table("Quota", "brand", "requests used", "left", "resets", "outreach used", "left", "resets")
    for b in result["brands"]:
        r, o = b["requests"], b["outreach"]
        t.add_row(b["brand"], f"{r['used']} / {r['limit']}", str(r["left"]), r["resets_at"][:16],
                  f"{o['used']} / {o['limit']}", str(o["left"]), o["resets_at"][:16])
    console.print(t if result["brands"] else "no brand has used the API yet")


class ExecuteProgress:
    """A Rich progress bar on stderr: pairs, requests, requests/s, quota left, ETA. Redrawn at most ten times
    a second (an update per request would cost more CPU than the request itself); off, it costs nothing."""

    REDRAW_EVERY_S = 0.1

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=stderr, transient=False, disable=not enabled,
        )
        self.task = None
        self.started = time.monotonic()
        self._drawn = 0.0
        self._latest: tuple[Counts, Plan | None] | None = None

    def __enter__(self) -> ExecuteProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._latest is not None:
            self._draw(*self._latest)  # the final counts, whenever the last redraw was
        self.progress.__exit__(*exc)

    def update(self, counts: Counts, plan: Plan | None) -> None:
        if not self.enabled:
            return
        self._latest = (counts, plan)
        now = time.monotonic()
        if now - self._drawn >= self.REDRAW_EVERY_S:
            self._drawn = now
            self._draw(counts, plan)

    def _draw(self, counts: Counts, plan: Plan | None) -> None:
        total = counts.pairs_planned or (plan.pairs if plan else 0)
        done = counts.sent + counts.conflict + counts.ineligible + counts.failed + counts.unsent
        if self.task is None:
            self.task = self.progress.add_task("inviting", total=max(total, 1), detail="")
        rate = counts.requests / max(1e-6, time.monotonic() - self.started)
        quota_left = ""
        if plan is not None:
            left = plan.quota["limit"] - plan.quota["used"] - counts.requests
            quota_left = f" quota left {left}"
        self.progress.update(self.task, total=max(total, 1), completed=done,
                             detail=f"{done}/{total} pairs {counts.requests} req {rate:.1f} req/s{quota_left}")


def shops_view(r: dict[str, Any], console: Console = stdout) -> None:
    """One block per shop, so that a long cipher is never cut, whatever the width."""
    if not r["shops"]:
        console.print("The credentials reach no shop: authorize the app in the shop's Seller Center.")
        return
    console.print(f"{len(r['shops'])} shop(s) reached by these credentials ({escape(r['credentials'])}):")
    for s in r["shops"]:
        console.print(f"\n[bold]{escape(s['name'] or s['id'])}[/]  {escape(s['region'])}  {escape(s['seller_type'])}"
                      f"  code {escape(s['code'])}")
        console.print(f"  cipher {escape(s['cipher'])}", soft_wrap=True)
    if r.get("current_cipher_listed") is False:
        console.print("\nnote: the shop cipher set in the environment is not one of these")


def refresh_view(r: dict[str, Any], console: Console = stdout) -> None:
    console.print(f"access token refreshed for {escape(r['brand'] or 'the default credentials')}: it expires "
                  f"{r.get('access_token_expires_at') or 'at a time the platform did not say'}; the refresh token "
                  f"{r.get('refresh_token_expires_at') or 'at a time the platform did not say'}.")
    console.print(f"the new pair is kept in {escape(r['store'])}", soft_wrap=True)


class DiscoverProgress:
    """A progress bar on stderr for a long marketplace search: creators found against the limit."""

    def __init__(self, enabled: bool = True) -> None:
        self.progress = Progress(TextColumn("discovering"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                 TimeElapsedColumn(), console=stderr, disable=not enabled, transient=True)
        self.task: Any = None

    def __enter__(self) -> DiscoverProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def update(self, found: int, limit: int) -> None:
        if self.task is None:
            self.task = self.progress.add_task("discover", total=limit)
        self.progress.update(self.task, completed=min(found, limit))


def discover_view(r: dict[str, Any], console: Console = stdout) -> None:
    console.print(f"{r['added']} creator(s) added to {escape(r['file'])} ({r['already_in_file']} already in it), "
                  f"from {r['pages']} page(s) of the marketplace in {r['requests']} request(s)", soft_wrap=True)
    if r.get("stop_reason"):
        console.print(f"stopped: {escape(str(r['stop_reason']))}")
