"""The merchant report: one self-contained HTML file (inline CSS and SVG charts, no network at view time)."""

from __future__ import annotations

import html
import json
from typing import Any

COLORS = {"invited": "#4e79a7", "showcased": "#59a14f", "content": "#edc948", "orders": "#b07aa1",
          "waiting": "#bab0ac", "expired": "#f28e2b", "gmv": "#59a14f", "commission": "#e15759"}


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def bar_chart(title: str, labels: list[str], series: dict[str, list[float]], *, width: int = 720,
              height: int = 260, limit: float | None = None, chart_id: str = "") -> str:
    """Grouped vertical bars, one group per label; an optional horizontal limit line."""
    pad_l, pad_b, pad_t = 48, 40, 28
    inner_w, inner_h = width - pad_l - 12, height - pad_b - pad_t
    top = max([v for vals in series.values() for v in vals] + [limit or 0, 1])
    n, k = max(1, len(labels)), max(1, len(series))
    group_w = inner_w / n
    bar_w = min(40.0, max(1.0, group_w * 0.8 / k))
    parts = [f'<svg class="chart" id="{_esc(chart_id)}" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{_esc(title)}">',
             f'<text x="{pad_l}" y="18" class="title">{_esc(title)}</text>']
    for i in range(5):
        y = pad_t + inner_h - inner_h * i / 4
        parts.append(f'<line x1="{pad_l}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{pad_l - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{top * i / 4:,.0f}</text>')
    for gi, label in enumerate(labels):
        for si, (name, vals) in enumerate(series.items()):
            v = vals[gi]
            h = inner_h * v / top
            x = pad_l + gi * group_w + (group_w - k * bar_w) / 2 + si * bar_w
            color = COLORS.get(name, "#76b7b2")
            parts.append(_bar(x, pad_t + inner_h - h, bar_w, h, color, f"{label} {name}: {v:,.0f}"))
        if n <= 16 or gi % max(1, n // 12) == 0:  # a label every few days on a long period
            parts.append(f'<text x="{pad_l + gi * group_w + group_w / 2:.1f}" y="{height - pad_b + 16}" class="axis" '
                         f'text-anchor="middle">{_esc(label[5:] if len(label) == 10 else label)}</text>')
    if limit:
        y = pad_t + inner_h - inner_h * limit / top
        parts.append(f'<line x1="{pad_l}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" class="limit"/>'
                     f'<text x="{width - 14}" y="{y - 4:.1f}" class="axis" text-anchor="end">limit {limit:,.0f}</text>')
    parts.append(_legend(list(series), pad_l, height - 14))
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(title: str, rows: list[tuple[str, dict[str, float]]], *, width: int = 720, chart_id: str = "") -> str:
    """Stacked horizontal bars, one per row."""
    row_h, pad_l, pad_t = 26, 130, 30
    height = pad_t + row_h * max(1, len(rows)) + 24
    top = max([sum(v.values()) for _, v in rows] + [1])
    inner_w = width - pad_l - 60
    parts = [f'<svg class="chart" id="{_esc(chart_id)}" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{_esc(title)}">',
             f'<text x="8" y="18" class="title">{_esc(title)}</text>']
    names: list[str] = []
    for i, (label, values) in enumerate(rows):
        y = pad_t + i * row_h
        parts.append(f'<text x="{pad_l - 8}" y="{y + 16}" class="axis" text-anchor="end">{_esc(label)}</text>')
        x = float(pad_l)
        for name, v in values.items():
            if name not in names:
                names.append(name)
            w = inner_w * v / top
            parts.append(_bar(x, y + 3, w, row_h - 8, COLORS.get(name, "#76b7b2"), f"{label} {name}: {v:,.0f}"))
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 16}" class="axis">{sum(values.values()):,.0f}</text>')
    parts.append(_legend(names, pad_l, height - 14))
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 32px; color: #222; }
h1 { margin-bottom: 4px; } .sub { color: #666; margin-top: 0; }
.kpis { display: flex; gap: 16px; flex-wrap: wrap; margin: 24px 0; }
.kpi { border: 1px solid #ddd; border-radius: 8px; padding: 12px 16px; min-width: 120px; }
.kpi b { display: block; font-size: 24px; } .kpi span { color: #666; font-size: 13px; }
.chart { display: block; margin: 16px 0 32px; max-width: 100%; height: auto; }
.title { font-size: 14px; font-weight: 600; fill: #222; } .axis { font-size: 11px; fill: #555; }
.grid { stroke: #eee; } .limit { stroke: #e15759; stroke-dasharray: 4 3; }
table { border-collapse: collapse; margin: 16px 0; }
td, th { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: right; }
td:first-child, th:first-child { text-align: left; }
"""

# A tiny self-check a browser test (or a curious reader) can read: how many charts drew, and any script error.
SELF_CHECK = """
window.addEventListener('error', function (e) { document.body.dataset.jsErrors = (e.message || 'error'); });
window.addEventListener('load', function () {
  var drawn = 0;
  document.querySelectorAll('svg.chart').forEach(function (s) {
    var b = s.getBoundingClientRect();
    if (b.width > 0 && b.height > 0 && s.querySelectorAll('rect').length) drawn++;
  });
  document.body.dataset.chartsRendered = String(drawn);
});
"""


def _script_json(data: Any) -> str:
    """JSON for a script block: a browser does not decode entities there, so `<`, `>` and `&` are escaped the
    JSON way, and no name can close the block."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _legend(names: list[str], x: float, y: float) -> str:
    parts = []
    for name in names:
        color = COLORS.get(name, "#76b7b2")
        parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 14}" y="{y + 9}" class="axis">{_esc(name)}</text>')
        x += 90
    return "".join(parts)


def _bar(x: float, y: float, w: float, h: float, color: str, tip: str) -> str:
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" fill="{color}">'
            f'<title>{_esc(tip)}</title></rect>')


def render_report(data: dict[str, Any]) -> str:
    """What a client pays for: invitations -> showcases -> content -> orders, GMV and commission, per tier and
    per day (every day of the period, activity or not), and the creators and products that sold."""
    days = data["days"]
    labels = [d["date"] for d in days]
    totals = data["totals"] or {"invited": 0, "showcased": 0, "content": 0, "orders": 0, "gmv": 0.0,
                                "commission_estimated": 0.0, "commission_actual": 0.0, "waiting": 0,
                                "showcase_rate": None, "gmv_per_invitation": None}
    commission = totals["commission_actual"] or totals["commission_estimated"]
    period = data.get("period")
    kpis = [("invitations", f"{totals['invited']:,}"), ("showcased", f"{totals['showcased']:,}"),
            ("showcase rate", _rate(totals.get("showcase_rate"))), ("posted content", f"{totals['content']:,}"),
            ("orders", f"{totals['orders']:,}"), ("GMV", f"{totals['gmv']:,.2f}"),
            ("commission", f"{commission:,.2f}"),
            ("GMV per invitation", "-" if totals.get("gmv_per_invitation") is None
             else f"{totals['gmv_per_invitation']:,.2f}")]
    charts = [
        bar_chart("Invitations, showcases and content per day", labels,
                  {k: [d.get(k, 0) for d in days] for k in ("invited", "showcased", "content")}, chart_id="per-day"),
        bar_chart("GMV and commission per day", labels,
                  {k: [d.get(k, 0) for d in days] for k in ("gmv", "commission")}, chart_id="gmv-per-day"),
        hbar_chart("Funnel", [("invited", {"invited": totals["invited"]}),
                              ("showcased", {"showcased": totals["showcased"]}),
                              ("content", {"content": totals["content"]}),
                              ("orders", {"orders": totals["orders"]})], chart_id="funnel"),
        hbar_chart("Results by tier", [(t["tier"], {"showcased": t["showcased"] - t["content"],
                                                     "content": t["content"], "waiting": t["waiting"],
                                                     "expired": t["expired"]})
                                       for t in data["tiers"]], chart_id="tiers"),
    ]
    tier_rows = "".join(
        f"<tr><td>{_esc(t['tier'])}</td><td>{t['invited']:,}</td><td>{t['showcased']:,}</td>"
        f"<td>{t['content']:,}</td><td>{t['orders']:,}</td><td>{t['gmv']:,.2f}</td>"
        f"<td>{(t['commission_actual'] or t['commission_estimated']):,.2f}</td>"
        f"<td>{_rate(t['showcase_rate'])}</td></tr>" for t in data["tiers"])

    def sellers(rows: list[dict[str, Any]], what: str) -> str:
        if not rows:
            return f"<p class=\"sub\">No {what} sold anything yet.</p>"
        body = "".join(f"<tr><td>{_esc(r['name'] or r['id'] or '-')}</td><td>{r['orders']:,}</td>"
                       f"<td>{r['gmv']:,.2f}</td><td>{(r['commission_actual'] or r['commission_estimated']):,.2f}"
                       f"</td></tr>" for r in rows)
        return (f"<table><tr><th>{_esc(what)}</th><th>orders</th><th>GMV</th><th>commission</th></tr>"
                f"{body}</table>")

    title = " / ".join(x for x in (data.get("brand"), data.get("campaign")) if x) or "all campaigns"
    covered = (f"Period covered: {_esc(period['from'])} to {_esc(period['to'])} ({period['days']} days)."
               if period else "No activity yet.")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trendio report: {_esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body><h1>Campaign report: {_esc(title)}</h1>
<p class="sub">Generated {_esc(data['generated_at'][:16].replace('T', ' '))} UTC by trendio from its ledger.
{covered} {totals['showcased']:,} of {totals['invited']:,} invitations taken up (showcased) so far.</p>
<div class="kpis">{''.join(f'<div class="kpi"><b>{_esc(v)}</b><span>{_esc(k)}</span></div>' for k, v in kpis)}</div>
{''.join(charts)}
<h2>By tier</h2>
<table><tr><th>tier</th><th>invited</th><th>showcased</th><th>content</th><th>orders</th><th>GMV</th>
<th>commission</th><th>showcase rate</th></tr>
{tier_rows}</table>
<h2>Top creators by GMV</h2>
{sellers(data.get("top_creators") or [], "creator")}
<h2>Top products by GMV</h2>
{sellers(data.get("top_products") or [], "product")}
<script type="application/json" id="data">{_script_json(data)}</script>
<script>{SELF_CHECK}</script>
</body></html>
"""
