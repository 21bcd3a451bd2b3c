"""Human views of command results: Rich tables on stdout, progress on stderr. `--json` bypasses all of this.

Nothing is cut: a table that does not fit the terminal (80 columns in CI logs and pipes) drops its least
useful columns, then shows one record per block, instead of shortening an id, a date or a header. Every
value is printed as text, never as markup (`output.text`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from trendio_cli.output import clean, stderr, stdout, text, when
from trendio_cli.views import requests_per_second

if TYPE_CHECKING:  # (types only: every command imports this module, and most never plan nor execute)
    from trendio_cli.executor import Counts
    from trendio_cli.planner import Plan

# States and statuses in colour (where colour is on): done green, waiting yellow, lost red.
STATE_STYLES = {
    "success": "green", "sent": "green", "showcased": "bold green", "content": "bold green", "ok": "green",
    "partial": "yellow", "pending": "yellow", "running": "cyan", "waiting": "yellow", "planned": "dim",
    "conflict": "magenta", "ineligible": "magenta", "expired": "dim", "skipped": "dim",
    "failed": "red", "error": "bold red", "refused": "bold red", "auth": "bold red",
    "interrupted": "bold yellow", "daily_quota": "yellow", "outreach_quota": "yellow", "max_requests": "yellow",
    "page_token_repeated": "yellow", "empty_pages": "yellow",
    "blocked": "red", "unresponsive": "yellow", "inactive": "dim",
}


def state(value: Any) -> Text:
    """A state or status, coloured by what it means."""
    name = clean(value)
    return Text(name, style=STATE_STYLES.get(name.split(" ")[0], ""))


# --- tables that fit -------------------------------------------------------------------------------
@dataclass
class Rows:
    """A table's content, laid out by `fit` for the width at hand.

    `drop`: column indexes that may go, in this order, when the table is too wide (the first column, the
    record's name, always stays); `left`: columns aligned left (default: the first); `named`: a record's
    name is shown with its column's (`run 12`) when the table is laid out as blocks."""

    title: str
    columns: Sequence[str]
    rows: list[list[Any]] = field(default_factory=list)
    drop: Sequence[int] = ()
    left: Sequence[int] = (0,)
    named: bool = False

    def add(self, *cells: Any) -> None:
        self.rows.append([c if isinstance(c, Text) else text(c) for c in cells])


def _natural_width(columns: Sequence[str], rows: list[list[Any]], keep: list[int]) -> int:
    widths = [max([cell_len(columns[i])] + [cell_len(r[i].plain) for r in rows]) for i in keep]
    return sum(widths) + 3 * len(keep) + 1  # "│ a │ b │": padding and borders


def _table(rows: Rows, keep: list[int]) -> Table:
    t = Table(title=text(rows.title) if rows.title else None, title_justify="left", title_style="bold",
              header_style="bold")
    for i in keep:
        t.add_column(rows.columns[i], justify="left" if i in rows.left else "right", no_wrap=True,
                     overflow="fold")
    for r in rows.rows:
        t.add_row(*(r[i] for i in keep))
    return t


def _blocks(rows: Rows, width: int) -> Group:
    """One record per block: its name (the first column) in bold on a line, then `column: value` pairs packed
    into indented lines of `width` (a pair is never split; empty values are left out)."""
    lines: list[Text] = []
    if rows.title:
        lines.append(text(rows.title, "bold"))
    for r in rows.rows:
        head = Text.assemble(f"{rows.columns[0]} " if rows.named else "", r[0].copy())
        head.stylize("bold")
        lines.append(head)
        indent = " " * (len(head.plain) - len(head.plain.lstrip()) + 2)
        current = Text(indent)
        for name, cell in zip(rows.columns[1:], r[1:]):
            if not cell.plain:
                continue
            label = f"{name}: " if name else ""
            if len(indent) + cell_len(label) + cell_len(cell.plain) > width:
                # too long for a line with its label: the label, then the value whole on the next line
                if current.plain.strip():
                    lines.append(current)
                lines.append(Text.assemble(indent, (label.rstrip(), "dim")))
                lines.append(Text.assemble(indent + "  ", cell.copy()))
                current = Text(indent)
                continue
            pair = Text.assemble((label, "dim"), cell.copy())
            if current.plain.strip() and cell_len(current.plain) + 2 + cell_len(pair.plain) > width:
                lines.append(current)
                current = Text(indent)
            if current.plain.strip():
                current.append("  ")
            current.append_text(pair)
        if current.plain.strip():
            lines.append(current)
    return Group(*lines)


def fit(rows: Rows, width: int) -> RenderableType:
    """The table if it fits `width`, with fewer columns if that is enough, else one block per record."""
    keep = list(range(len(rows.columns)))
    for i in [None, *rows.drop]:
        if i is not None:
            keep.remove(i)
        if _natural_width(rows.columns, rows.rows, keep) <= width:
            return _table(rows, keep)
    return _blocks(rows, width)


def show(rows: Rows, console: Console = stdout, empty: str | None = None) -> None:
    if not rows.rows and empty is not None:
        console.print(text(empty))
        return
    # soft_wrap: a block line longer than the terminal is left whole for the terminal to wrap, never cut
    console.print(fit(rows, console.width), soft_wrap=True)


def line(console: Console, *parts: Any) -> None:
    """A sentence of text and values (str: our words; Text: styled; anything else: a value) on one line."""
    out = Text()
    for p in parts:
        if isinstance(p, Text):
            out.append_text(p)
        else:
            out.append(p if isinstance(p, str) else clean(p))
    console.print(out)


# --- views -----------------------------------------------------------------------------------------
def plan_view(plan: dict[str, Any], console: Console = stdout) -> None:
    line(console, Text(f"Plan {clean(plan['plan_id'])}", "bold"), " for ",
         text(f"{plan['brand']}/{plan['campaign']}", "bold"),
         f" on {clean(plan['date'])}: {plan['pairs']} invitations to {plan['creators']} creators "
         f"in {plan['requests']['creates']} requests")
    tiers = Rows("By tier", ("tier", "creators", "invitations"))
    for name, t in plan["tiers"].items():
        tiers.add(name, t["creators"], t["pairs"])
    if plan["tiers"]:
        show(tiers, console)
    q = plan["quota"]
    cost = Rows("Requests", ("", "count"))
    cost.add("create requests", plan["requests"]["creates"])
    cost.add("reading back an interrupted run's creates", plan["requests"]["conflict_checks"])
    cost.add("eligibility checks and outreach figures", plan["requests"].get("eligibility_checks", 0))
    cost.add("kept in reserve (syncs)", plan["requests"]["reserve"])
    cost.add(f"quota {q['day']}: used before", f"{q['used']} / {q['limit']}")
    cost.add("quota: used after", f"{q['after']} / {q['limit']}")
    o = plan["outreach"]
    cost.add("outreach this week: before -> after",
             f"{o['used']} -> {o['after']} / {'unlimited' if o['limit'] is None else o['limit']}")
    show(cost, console)
    platform = o.get("platform")
    if platform:
        outreach_bands(platform, console)
    if plan["pairs"]:
        console.print(Text("The request count leaves out what only the platform's answers tell: retries, "
                           "pairs it already has (conflicts), requests split around ineligible creators, and "
                           "replacements for creators the eligibility check leaves out. The eligibility checks "
                           "and outreach figures are asked only where the platform offers them.", style="dim"))
    if plan["skipped"]:
        skipped = Rows("Candidates left out", ("reason", "creators"))
        for reason, n in sorted(plan["skipped"].items(), key=lambda kv: -kv[1]):
            skipped.add(reason, n)
        show(skipped, console)
    if plan["outlook"]:
        days = Rows("When the rest can go", ("day", "invitations"))
        for d in plan["outlook"]:
            days.add(d["date"] or d.get("note", "later"), d["pairs"])
        show(days, console)
    ahead = plan["outreach"].get("week_ahead") or []
    if ahead:
        line(console, "outreach left this week, spread over its active days: ",
             ", ".join(f"{clean(d['date'][5:])} {d['outreach']}" for d in ahead))
    for note in plan["notes"]:
        line(console, "note: ", clean(note))


def outreach_bands(platform: dict[str, Any], console: Console = stdout) -> None:
    """The platform's own outreach figures (as last read): the shop's total and, per band of creator levels,
    bonus (spent first) and period quota."""
    if platform["unlimited"]:
        line(console, "outreach quota (the platform's figures, read ", when(platform["read_at"]), "): unlimited")
        return
    line(console, "outreach quota (the platform's figures, read ", when(platform["read_at"]), "): ",
         f"{platform['used']} used of {platform['total']}, {platform['used_since_read']} since, "
         f"{platform['left']} left" if platform["total"] is not None else "no total given")
    if platform["bands"]:
        bands = Rows("Outreach by creator level", ("levels", "bonus used / quota", "period used / quota", "left"),
                     left=(0,))
        for b in platform["bands"]:
            bands.add(", ".join(b["creator_levels"]) or "all", f"{b['bonus_used']} / {b['bonus']}",
                      f"{b['period_used']} / {b['period']}", b["left"])
        show(bands, console)


def explain_view(r: dict[str, Any], console: Console = stdout) -> None:
    line(console, text(f"Creator {r.get('creator_id', '')}", "bold"),
         f": rank {r['rank']} of {r['of']} by {clean(r['ranking'])} ranking (score {r['score']:.4f}); "
         f"planned today: {'yes' if r['planned_today'] else 'no'}",
         f"; flag {clean(r['flag'])}" if r.get("flag") else "")
    if "factors" in r:
        silence = r["silence"]
        t = Rows(f"Learned from {r['answers_learned_from']:,.0f} outcomes ({r['showcases_learned_from']:,} showcases; "
                 f"silence counts as 1 - exp(-days / {silence['mean_days_to_showcase']:.1f}) of a no, all of one "
                 f"after {silence['answer_window_days']:g} days); base rate {r['base_rate']:.1%}",
                 ("factor", "value", "prior", "showcased / outcomes", "rate", "pull (log-odds)",
                  "content / showcases", "content pull"), left=(0, 1))
        for f in r["factors"]:
            t.add(f["factor"], f["value"], f"{f['prior']:+.2f}", f"{f['showcased']:g} / {f['answers']:g}",
                  "" if f["rate"] is None else f"{f['rate']:.1%}", f"{f['pull']:+.3f}",
                  f"{f['content']:g} / {f['content_of']:g}", f"{f['content_pull']:+.3f}")
        show(t, console)
        own = r.get("own_outcomes")
        if own:
            console.print(f"own outcomes: {own['showcased']:g} showcased of {own['answers']:g}, blended in with "
                          "the weight of 3", markup=False)
        sales = r["sales"]
        console.print(f"sales of a showcase in its first {sales['horizon_days']:g} days: "
                      f"{sales['showcase_share']:.1%} of the creator's 30-day GMV (+{sales['floor']:g}) without "
                      f"content, {sales['content_share']:.1%} with it, x {sales['gmv_band_factor']:.2f} for this "
                      f"GMV band ({sales['gmv_band_showcases']} showcases): expected GMV {r['expected_gmv']:,.2f} "
                      f"(commission {r['expected_commission']:,.2f})", markup=False)
        console.print(f"chance of a showcase {r['p_showcase']:.1%} x value of a showcase {r['showcase_value']:.2f} "
                      f"(1 + chance of content {r['p_content']:.1%} + log10(1 + expected GMV)) x exploration "
                      f"{r['exploration']:.2f} = score {r['score']:.4f}", markup=False)


def dry_run_view(result: dict[str, Any], console: Console = stdout) -> None:
    plan_view(result["plan"], console)
    pace = result["pace"]
    line(console, Text("Dry run", "bold"),
         f": {result['requests_total']} requests for {result['pairs']} invitations, paced at "
         f"{pace['limit']} per {pace['window_ms']} ms, evenly spaced "
         f"({pace['requests_per_second']}/s, scope {clean(pace['scope'])}): "
         f"about {result['estimated_duration_s']:.1f} s plus network time. Signed with ",
         clean(result["signed_with"]), ". Nothing was sent; the ledger was not written.")


def nothing_to_send(left_out: dict[str, int]) -> str:
    """Why a plan holds no invitation, from its left-out reasons (most common first)."""
    reasons = sorted(left_out.items(), key=lambda kv: -kv[1])[:4]
    return "nothing to send" + (": " + ", ".join(f"{n} {clean(r)}" for r, n in reasons) if reasons else "")


def execute_view(result: dict[str, Any], console: Console = stdout) -> None:
    c = result["counts"]
    ended = result.get("stop_reason") or result["status"]  # "interrupted", as the run's row says
    t = Rows(f"Run {result['run_id']}: {result['brand']}/{result['campaign']} -> {ended}", ("", "count"))
    for key in ("sent", "conflict", "ineligible", "failed", "unsent", "uncertain", "reconciled_sent",
                "requests", "creates", "conflict_checks", "eligibility_checks", "retries", "rate_limited"):
        if c.get(key) or key in ("sent", "requests"):
            t.add(key.replace("_", " "), Text(str(c[key]), style=STATE_STYLES.get(key, "")))
    t.add("duration", f"{result['duration_s']:.1f} s")
    rate = result.get("rate") or {}
    t.add("requests/s", f"{result['requests_per_second']:.1f}"
          + (f" (at most {rate['peak_in_one_second']} in one second)" if rate.get("peak_in_one_second") else ""))
    q = result["quota"]
    t.add(f"quota {q['day']}", f"{q['used']} used, {q['left']} left")
    t.add("quota resets", when(q["resets_at"]))
    show(t, console)
    if not c.get("pairs_planned") and result.get("left_out") is not None and not result["errors"]:
        line(console, nothing_to_send(result["left_out"]))
    for e in result["errors"][:10]:
        if "stop" in e:
            line(console, state(e["stop"]), ": ", clean(e["message"]),
                 f" ({clean(e['hint'])})" if e.get("hint") else "")
        else:
            line(console, Text("error", "red"), f": {clean(e.get('outcome'))} code={clean(e.get('code'))} ",
                 clean(e.get("message")), ": ", clean(e.get("note")), f" ({e.get('pairs')} pairs)")


def sync_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = Rows("Sync", ("brand", "watched", "requests", "showcased", "content", "expired", "orders new", "GMV new",
                      "unresponsive"), drop=(1, 7))
    for b in result["brands"]:
        ch = b["changed"]
        t.add(b["brand"], b["collaborations_watched"], b["requests"],
              *(ch.get(k, 0) for k in ("showcased", "content", "expired")), b["orders_new"], f"{b['gmv_new']:,.2f}",
              b["flagged_unresponsive"])
    show(t, console, empty="no brand in the ledger")
    for b in result["brands"]:
        if b.get("orders_cut_off"):
            line(console, clean(b["brand"]), Text(": more orders than one sync reads", "yellow"),
                 f" ({b['order_pages']} pages); what was read is kept and the next sync goes on from there")
        if b.get("orders_skipped"):
            line(console, clean(b["brand"]), Text(": an hour with more orders than one sync reads", "yellow"),
                 "; the rest of that hour was left unread so that later orders are not held up")
        for e in b["errors"]:
            line(console, clean(b["brand"]), ": stopped: ", clean(e.get("message")))


def creators_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = Rows(f"Creators of {result['brand']}", ("creator", "handle", "invited", "waiting", "showcased",
                                                "content", "expired", "flag", "last invited"), left=(0, 1, 7),
             drop=(6, 8))
    for r in result["creators"]:
        flag = clean(r.get("flag") or "")
        if flag and r.get("flagged_until"):
            flag += f" until {clean(r['flagged_until'][:10])}"
        t.add(r["creator_id"], r.get("handle") or "", r["invitations"], r["waiting"] or 0, r["showcased"] or 0,
              r["content"] or 0, r["expired"] or 0, state(flag), (r["last_invited"] or "")[:10])
    show(t, console, empty="no creators")
    for cid in result.get("unknown") or ():
        what = result.get("flag")
        line(console, text(cid, "bold"), ": not in the ledger yet; ",
             f"the {'block' if what == 'blocked' else 'flag'} is recorded for the future: it holds once the creator "
             f"appears in a creators file" if what else "it had no flag to remove")
    for cid, rows in (result.get("history") or {}).items():
        h = Rows(f"History of {cid}", ("campaign", "product", "state", "collaboration", "sent (UTC)",
                                       "answered (UTC)"), left=(0, 1, 2, 3), drop=(5, 3))
        for r in rows:
            h.add(r["campaign"] or "", r["product_id"], state(r["state"]), r["collaboration_id"] or "",
                  (r["sent_at"] or "")[:16].replace("T", " "), (r["answered_at"] or "")[:16].replace("T", " "))
        show(h, console)


def execute_many_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = Rows("Run over every campaign", ("brand", "status", "exit", "campaigns", "sent", "conflict",
                                         "ineligible", "failed", "requests", "note"),
             left=(0, 1, 3, 9), drop=(2, 9))
    for b in result["brands"]:
        runs = b["campaigns"]

        def total(key: str, runs: list[dict[str, Any]] = runs) -> int:
            return sum(r["counts"].get(key, 0) for r in runs)

        t.add(b["brand"], state(b["status"]), b["exit_code"], ", ".join(r["campaign"] for r in runs) or "-",
              total("sent"), Text(str(total("conflict")), style="bold magenta" if total("conflict") else ""),
              total("ineligible"), Text(str(total("failed")), style="red" if total("failed") else ""),
              total("requests"), b.get("note", ""))
    show(t, console)
    for b in result["brands"]:
        if b.get("note"):
            line(console, clean(b["brand"]), ": ", clean(b["note"]))
        for r in b["campaigns"]:
            for e in r["errors"][:3]:
                line(console, clean(f"{b['brand']}/{r['campaign']}"), ": ", clean(e.get("message")))


def status_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = Rows(f"Ledger {result['ledger']}", ("brand", "invited", "showcased", "content", "in flight", "not sent",
                                            "req today"), left=(0, 5))
    for b in result["brands"]:
        inv = b["invitations"]
        invited = sum(inv.get(k, 0) for k in ("sent", "showcased", "content", "expired"))
        not_sent = ", ".join(f"{inv[k]} {k}" for k in ("conflict", "ineligible", "failed") if inv.get(k)) or "0"
        t.add(b["brand"], invited, inv.get("showcased", 0) + inv.get("content", 0), inv.get("content", 0),
              Text(str(b["pending"]), style="yellow" if b["pending"] else ""), not_sent, b["requests_today"])
    show(t, console, empty=f"the ledger {result['ledger']} holds no brand yet")
    for lock in result["locks"]:
        line(console, "lock: ", clean(lock["brand"]), f" held by run {lock['run_id']} (pid {lock['pid']} on ",
             clean(lock["host"]), ")")
    if result["last_runs"]:
        runs_view({"runs": result["last_runs"]}, console)


def runs_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = Rows("Runs", ("run", "campaign", "started (UTC)", "by", "status", "exit", "sent", "req"),
             left=(0, 1, 3, 4), drop=(3, 5, 7), named=True)
    for r in result["runs"]:
        counts = r.get("counts") or {}
        t.add(r["id"], f"{r['brand']}/{r['campaign'] or '-'}", (r["started_at"] or "")[:16].replace("T", " "),
              r.get("user") or "", state(r["status"] or ""), "" if r["exit_code"] is None else r["exit_code"],
              counts.get("sent", ""), counts.get("requests", ""))
    show(t, console, empty="no runs yet")


def quota_view(result: dict[str, Any], console: Console = stdout) -> None:
    t = Rows("Quota", ("brand", "requests used", "left", "resets", "outreach used", "left", "resets"),
             left=(0, 3, 6))
    for b in result["brands"]:
        r, o = b["requests"], b["outreach"]
        t.add(b["brand"], f"{r['used']} / {r['limit']}", r["left"], when(r["resets_at"]),
              f"{o['used']} / {o['limit']}", o["left"], when(o["resets_at"]))
    show(t, console, empty="no brand has used the API yet")
    for b in result["brands"]:
        if b["limits_of"]:
            line(console, text(b["brand"], "bold"), ": limits of campaign ", text(b["limits_of"]))
        else:
            line(console, text(b["brand"], "bold"), ": the platform's default limits (none recorded with a campaign)")
        if b["outreach"].get("platform"):
            line(console, text(b["brand"], "bold"), ":")
            outreach_bands(b["outreach"]["platform"], console)


class ExecuteProgress:
    """A Rich progress bar on stderr: pairs done, requests, requests/s, quota left, time. Redrawn at most ten
    times a second (an update per request would cost more CPU than the request itself); off, it costs nothing.

    Done means answered (sent, conflict, ineligible, failed): pairs a stopped run leaves unsent are not done,
    so a bar after Ctrl-C shows how far the run got."""

    REDRAW_EVERY_S = 0.1

    def __init__(self, enabled: bool = True, console: Console = stderr) -> None:
        self.enabled = enabled
        narrow = console.width < 100
        self.narrow = narrow
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=10 if narrow else 30),
            TaskProgressColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
            console=console, transient=False, disable=not enabled,
        )
        self.task = None
        self._first_request: float | None = None
        self._drawn = 0.0
        self._latest: tuple[Counts, Plan | None] | None = None
        self._running = False

    def __enter__(self) -> ExecuteProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Draw the final counts (whenever the last redraw was) and leave the bar as it ended."""
        if self._running:
            if self._latest is not None:
                self._draw(*self._latest, final=True)
            self.progress.stop()
            self._running = False

    def update(self, counts: Counts, plan: Plan | None) -> None:
        if not self.enabled:
            return
        if not self._running:  # shown from the first update: nothing on screen before anything happens
            self._running = True
            self.progress.start()
        self._latest = (counts, plan)
        now = time.monotonic()
        if counts.requests and self._first_request is None:
            self._first_request = now
        if now - self._drawn >= self.REDRAW_EVERY_S:
            self._drawn = now
            self._draw(counts, plan)

    def _draw(self, counts: Counts, plan: Plan | None, final: bool = False) -> None:
        total = counts.pairs_planned or (plan.pairs if plan else 0)
        done = counts.sent + counts.conflict + counts.ineligible + counts.failed
        if self.task is None:
            self.task = self.progress.add_task("inviting", total=max(total, 1), detail="")
        rate = requests_per_second(counts.requests, time.monotonic() - (self._first_request or time.monotonic()))
        quota_left = ""
        if plan is not None:
            left = plan.quota["limit"] - plan.quota["used"] - counts.requests
            quota_left = f", quota left {left}" if not self.narrow else ""
        unsent = f", {counts.unsent} unsent" if final and counts.unsent else ""
        self.progress.update(self.task, total=max(total, 1), completed=done,
                             detail=f"{done}/{total} pairs, {counts.requests} req, {rate:.1f}/s{quota_left}{unsent}")


def shops_view(r: dict[str, Any], console: Console = stdout) -> None:
    """One block per shop, so that a long cipher is never cut, whatever the width."""
    if not r["shops"]:
        line(console, "The credentials reach no shop: authorize the app in the shop's Seller Center.")
        return
    line(console, f"{len(r['shops'])} shop(s) reached by these credentials (", clean(r["credentials"]), "):")
    rows = Rows("", ("shop", "region", "seller type", "code", "cipher"), left=(0, 1, 2, 3, 4))
    for s in r["shops"]:
        rows.add(s["name"] or s["id"], s["region"], s["seller_type"], s["code"], s["cipher"])
    show(rows, console)
    if r.get("current_cipher_listed") is False:
        line(console, "note: the shop cipher set in the environment is not one of these")


def refresh_view(r: dict[str, Any], console: Console = stdout) -> None:
    line(console, "access token refreshed for ", clean(r["brand"] or "the default credentials"), ": it now expires ",
         clean(r.get("access_token_expires_at") or "when the platform did not say"), ", the refresh token ",
         clean(r.get("refresh_token_expires_at") or "when the platform did not say"))
    line(console, "the new pair is kept in ", clean(r["store"]))


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
    line(console, f"{r['added']} creator(s) added to ", clean(r["file"]), f" ({r['already_in_file']} already in it), "
         f"from {r['pages']} page(s) of the marketplace in {r['requests']} request(s)")
    if r.get("stop_reason"):
        line(console, "stopped: ", clean(r["stop_reason"]))

