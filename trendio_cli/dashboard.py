"""The terminal dashboards: Rich renderables built from `views` snapshots (ops: API usage, health, runs;
merchant: campaign performance). Laid out for the width at hand like every table (`render.fit`)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.text import Text

from trendio_cli.output import clean, when
from trendio_cli.render import Rows, fit, state

SPARK = "▁▂▃▄▅▆▇█"
SHORT = {"create_collaboration": "create", "check_conflicts": "check", "search_collaborations": "search",
         "get_collaboration": "get", "search_creators": "creators", "get_creator": "creator"}
PANEL_EDGES = 4  # a panel's borders and padding


def sparkline(values: list[float], top: float | None = None) -> str:
    if not values:
        return ""
    top = top or max(values) or 1
    return "".join(SPARK[max(0, min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1))))] for v in values)


def ops_view(snap: dict[str, Any], width: int = 120) -> Group:
    inner = max(20, width - PANEL_EDGES)
    usage = Rows("", ("brand", "used today", "left", "by endpoint", "errors", "pending", "lock"),
                 left=(0, 3, 6), drop=(3,))
    for b in snap["brands"]:
        lock = b["lock"]
        usage.add(b["brand"], f"{b['used']:,} / {b['limit']:,}", f"{b['left']:,}",
                  " ".join(f"{SHORT.get(k, k)} {v}" for k, v in sorted(b["by_endpoint"].items())) or "-",
                  Text(str(b["errors"]), style="red" if b["errors"] else ""), b["pending"],
                  f"run {lock['run_id']} pid {lock['pid']}@{lock['host']}" if lock else "-")
    limit = snap.get("rate_limit") or 50
    rate = [r["requests_per_second"] for r in snap["rate"]]
    rate_line = Text(f"requests/s, last minutes (10 s buckets): {sparkline(rate, limit)}  "
                     f"peak {snap['peak_requests_per_second']:.0f} in one second, of {limit:g}")
    errors = Rows("", ("error class", "count"))
    for k, v in sorted(snap["errors_by_class"].items(), key=lambda kv: -kv[1]):
        errors.add(state(k), v)
    codes = Rows("", ("code", "count"))
    for k, v in sorted(snap["errors_by_code"].items(), key=lambda kv: -kv[1])[:8]:
        codes.add(k, v)
    runs = Rows("", ("run", "campaign", "command", "started (UTC)", "status", "exit", "sent", "req"),
                left=(0, 1, 2, 4), drop=(2, 5, 7), named=True)
    for r in snap["runs"]:
        c = r.get("counts") or {}
        runs.add(r["id"], f"{r['brand']}/{r['campaign'] or '-'}", r["command"] or "",
                 (r["started_at"] or "")[:19].replace("T", " "), state(r["status"] or ""),
                 "" if r["exit_code"] is None else r["exit_code"], c.get("sent", ""), c.get("requests", ""))
    health = Text(f"retries today {snap['retries_today']} (answers asking for another try: 429 or transient); "
                  f"quota day {clean(snap['quota_day'])} resets {when(snap['resets_at'])}")
    return Group(
        Panel(Group(fit(usage, inner) if snap["brands"] else Text("no API calls yet"), rate_line),
              title="API usage"),
        Panel(Group(health, fit(errors, inner) if snap["errors_by_class"] else Text("no errors today"),
                    fit(codes, inner) if snap["errors_by_code"] else Text("")), title="Health"),
        Panel(fit(runs, inner) if snap["runs"] else Text("no runs yet"), title="Runs"),
    )


def merchant_view(snap: dict[str, Any], width: int = 120) -> Group:
    """What the client pays for: the funnel per campaign and tier, then the top creators and products by GMV."""
    inner = max(20, width - PANEL_EDGES)
    # one row per campaign (all its tiers), then one per tier, in the campaign's order
    t = Rows("", ("campaign / tier", "invited", "showcased", "content", "orders", "GMV", "commission",
                  "GMV/inv", "showcase rate", "waiting"), drop=(9, 7, 6))
    for r in snap["rows"]:
        t.add(f"{r['brand']}/{r['campaign']}" if r["tier"] == "all" else f"  {r['tier']}", f"{r['invited']:,}",
              f"{r['showcased']:,}", f"{r['content']:,}", f"{r['orders']:,}", f"{r['gmv']:,.2f}",
              f"{(r['commission_actual'] or r['commission_estimated']):,.2f}",
              "-" if r["gmv_per_invitation"] is None else f"{r['gmv_per_invitation']:,.2f}",
              "-" if r["showcase_rate"] is None else f"{r['showcase_rate']:.1%}", f"{r['waiting']:,}")
    panels = [Panel(fit(t, inner) if snap["rows"] else Text("no invitations yet"), title="Campaign performance")]
    for key, title, name in (("top_creators", "Top creators by GMV", "creator"),
                             ("top_products", "Top products by GMV", "product")):
        if snap.get(key):
            top = Rows("", (name, "orders", "GMV", "commission"), left=(0,))
            for x in snap[key]:
                label = f"{x['name']} ({x['id']})" if x.get("name") and x.get("id") else x.get("name") or x["id"]
                top.add(label or "-", f"{x['orders']:,}", f"{x['gmv']:,.2f}",
                        f"{(x['commission_actual'] or x['commission_estimated']):,.2f}")
            panels.append(Panel(fit(top, inner), title=title))
    return Group(*panels)
