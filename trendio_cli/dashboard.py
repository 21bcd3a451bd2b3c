"""The terminal dashboards: Rich renderables built from `views` snapshots (ops: API usage, health, runs;
merchant: campaign performance)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

SPARK = "▁▂▃▄▅▆▇█"
SHORT = {"create_collaboration": "create", "check_conflicts": "check", "search_collaborations": "search",
         "get_collaboration": "get", "search_creators": "creators", "get_creator": "creator"}


def sparkline(values: list[float], top: float | None = None) -> str:
    if not values:
        return ""
    top = top or max(values) or 1
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1)))] for v in values)


def _table(*columns: str) -> Table:
    t = Table(header_style="bold", expand=False, pad_edge=False)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    return t


def ops_view(snap: dict[str, Any]) -> Group:
    usage = _table("brand", "used today", "left", "by endpoint", "errors", "pending", "lock")
    for b in snap["brands"]:
        lock = b["lock"]
        usage.add_row(b["brand"], f"{b['used']:,} / {b['limit']:,}", f"{b['left']:,}",
                      " ".join(f"{SHORT.get(k, k)} {v}" for k, v in sorted(b["by_endpoint"].items())) or "-",
                      str(b["errors"]), str(b["pending"]),
                      f"run {lock['run_id']} pid {lock['pid']}@{lock['host']}" if lock else "-")
    rate = [r["requests_per_second"] for r in snap["rate"]]
    rate_line = Text(f"requests/s, last minutes (10 s buckets): {sparkline(rate, 50)}  "
                     f"peak {snap['peak_requests_per_second']:.1f}/s of 50")
    errors = _table("error class", "count")
    for k, v in sorted(snap["errors_by_class"].items(), key=lambda kv: -kv[1]):
        errors.add_row(k, str(v))
    codes = _table("code", "count")
    for k, v in sorted(snap["errors_by_code"].items(), key=lambda kv: -kv[1])[:8]:
        codes.add_row(k, str(v))
    runs = _table("run", "campaign", "command", "started", "status", "exit", "sent", "req")
    for r in snap["runs"]:
        c = r.get("counts") or {}
        runs.add_row(str(r["id"]), f"{r['brand']}/{r['campaign'] or '-'}", r["command"] or "",
                     (r["started_at"] or "")[11:19], r["status"] or "",
                     "" if r["exit_code"] is None else str(r["exit_code"]),
                     str(c.get("sent", "")), str(c.get("requests", "")))
    health = Text(f"retries today {snap['retries_today']}; quota day {snap['quota_day']} "
                  f"resets {snap['resets_at'][:16]}")
    return Group(
        Panel(Group(usage if snap["brands"] else Text("no API calls yet"), rate_line), title="API usage"),
        Panel(Group(health, errors if snap["errors_by_class"] else Text("no errors today"),
                    codes if snap["errors_by_code"] else Text("")), title="Health"),
        Panel(runs if snap["runs"] else Text("no runs yet"), title="Runs"),
    )


def merchant_view(snap: dict[str, Any]) -> Panel:
    t = _table("campaign", "tier", "invited", "showcased", "content", "waiting", "showcase rate", "inv/day",
               "req/inv", "errors")
    for r in snap["rows"]:
        t.add_row(f"{r['brand']}/{r['campaign']}" if r["tier"] == "all" else "", r["tier"], f"{r['invited']:,}",
                  f"{r['showcased']:,}", f"{r['content']:,}", f"{r['waiting']:,}",
                  "-" if r["showcase_rate"] is None else f"{r['showcase_rate']:.1%}",
                  f"{r['invitations_per_day']:.0f}" if "invitations_per_day" in r else "",
                  "-" if r.get("requests_per_invitation") is None else f"{r['requests_per_invitation']:.3f}",
                  f"{r['error_rate']:.2%}")
    return Panel(t if snap["rows"] else Text("no invitations yet"), title="Campaign performance")
