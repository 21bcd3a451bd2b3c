"""`trendio dry-run`: every request built, batched and signed exactly as `execute` would, paced on a
simulated clock; nothing is sent and nothing is written."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trendio_cli.admission import RateRule
from trendio_cli.api.client import ApiClient
from trendio_cli.api.credentials import check_base_url, credentials_for, is_loopback_url
from trendio_cli.api.endpoints import CREATE_BY_API, DEFAULT_BASE_URL
from trendio_cli.commands.execute import check_saved_plan
from trendio_cli.commands.plan import plan_campaign
from trendio_cli.errors import ConfigError
from trendio_cli.inputs import is_plan_file, load_plan
from trendio_cli.ledger import Ledger
from trendio_cli.output import shown_url
from trendio_cli.planner import create_fields


def dry_run(source: Path, ledger_path: str, base_url: str | None, *, include_requests: bool) -> dict[str, Any]:
    if is_plan_file(source):
        plan = load_plan(source)
        warnings: list[str] = []
        with Ledger.open(ledger_path, readonly=True) as ledger:  # (a missing one reads as empty)
            check_saved_plan(ledger, plan, plan.campaign_model(), datetime.now(timezone.utc))  # as execute would
    else:
        plan, warnings = plan_campaign(source, ledger_path)
    campaign = plan.campaign_model()
    url = check_base_url(base_url or DEFAULT_BASE_URL)
    try:
        creds = credentials_for(campaign.brand, allow_sandbox_defaults=is_loopback_url(url))
        signed_with = creds.source
    except ConfigError:
        creds = credentials_for(None, {}, allow_sandbox_defaults=True)
        signed_with = "placeholder (no credentials set: execute would stop here)"
    client = ApiClient(url, creds, create_endpoint=CREATE_BY_API[campaign.api], writes_tokens=False)
    rule = RateRule.for_rate(campaign.limits.requests_per_second)
    start = datetime.now(timezone.utc).timestamp()
    times = rule.schedule(plan.requests["total"])
    requests = []
    # Reconciliation checks (if a dead run left pending pairs) go first, as in execute.
    for i, batch in enumerate(plan.batches):
        prepared = client.prepare_create(**create_fields(campaign, batch))
        t = times[plan.requests["conflict_checks"] + i]
        signed = client.sign(prepared, timestamp=int(start + t))
        if include_requests:
            requests.append({"at_s": round(t, 3), "batch": batch.key, "tier": batch.tier,
                             "pairs": len(batch.pairs), **signed.redacted(creds)})
    duration = times[-1] if times else 0.0
    result: dict[str, Any] = {
        "plan": plan.summary(),
        "requests_total": plan.requests["total"],
        "pairs": plan.pairs,
        "pace": {"limit": rule.limit, "window_ms": rule.window_ms,
                 "requests_per_second": round(rule.per_second, 2), "scope": campaign.limits.rate_scope},
        "estimated_duration_s": round(duration, 2),
        "quota_after": plan.quota,
        "base_url": shown_url(url),
        "signed_with": signed_with,
        "warnings": warnings,
    }
    if include_requests:
        result["requests"] = requests
    return result
