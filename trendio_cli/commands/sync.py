"""`trendio sync`: pull collaboration statuses back into the ledger, expire what has ended, and flag
creators who leave invitations unanswered. Spends only the brand's reserve of requests."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from trendio_cli.admission import Admission, RateRule
from trendio_cli.api.client import ApiClient, base_url_source
from trendio_cli.api.credentials import check_base_url, credentials_for, is_loopback_url
from trendio_cli.api.endpoints import DEFAULT_BASE_URL
from trendio_cli.campaign import Campaign, Lifecycle, Limits
from trendio_cli.executor import ExecuteOptions, Executor
from trendio_cli.inputs import load_campaign_inputs
from trendio_cli.ledger import ACCEPTED, DECLINED, EXPIRED, Ledger, iso

ANSWERS = {
    "accepted": ACCEPTED, "approved": ACCEPTED, "agreed": ACCEPTED,
    "declined": DECLINED, "rejected": DECLINED, "refused": DECLINED,
    "expired": EXPIRED, "cancelled": EXPIRED, "canceled": EXPIRED, "ended": EXPIRED, "invalid": EXPIRED,
}
MAX_PAGES = 200


def answers_in(collaboration: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(creator, state, answered_at) for each creator of a collaboration who has answered, in any naming."""
    out = []
    cid = str(collaboration.get("id") or "")
    for creator in collaboration.get("creators") or collaboration.get("creator_list") or []:
        if not isinstance(creator, dict):
            continue
        who = creator.get("creator_user_id") or creator.get("creator_open_id") or creator.get("creator_user_open_id")
        status = str(creator.get("accept_status") or creator.get("status") or "").lower()
        state = ANSWERS.get(status)
        if who and state and cid:
            when = creator.get("update_time") or creator.get("accept_time")
            try:
                at = iso(float(when)) if when else iso(time.time())
            except (TypeError, ValueError):
                at = iso(time.time())
            out.append((str(who), state, at))
    return out


def sync(ledger_path: str, base_url: str | None, *, brand: str | None = None,
         campaign: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    spec: Campaign | None = None
    campaign_id = campaign
    if campaign and Path(campaign).is_file():
        spec = load_campaign_inputs(Path(campaign)).campaign
        campaign_id, brand = spec.campaign, spec.brand
    limits = spec.limits if spec else Limits()
    lifecycle = spec.lifecycle if spec else Lifecycle()
    url = check_base_url(base_url or DEFAULT_BASE_URL)
    with Ledger.open(ledger_path, readonly=True, migrate=True) as view:
        brands = [brand] if brand else view.brands()
    results = [asyncio.run(_sync_brand(b, campaign_id, ledger_path, url, limits, lifecycle, now,
                                       url_source=base_url_source(base_url))) for b in brands]
    worst = max((r["exit_code"] for r in results), default=0)
    return {"exit_code": worst, "brands": results}


async def _sync_brand(brand: str, campaign_id: str | None, ledger_path: str, url: str, limits: Limits,
                      lifecycle: Lifecycle, at: datetime | None, *, url_source: str = "") -> dict[str, Any]:
    creds = credentials_for(brand, allow_sandbox_defaults=is_loopback_url(url))
    ledger = Ledger.open(ledger_path)
    now = at or datetime.now(timezone.utc)
    run_id = ledger.start_run(brand=brand, campaign=campaign_id, command="sync")
    admission = Admission(RateRule.for_rate(limits.requests_per_second), ledger, app_key=creds.app_key,
                          shop_cipher=creds.shop_cipher, scope=limits.rate_scope)
    changed: dict[str, int] = {}
    try:
        expired = ledger.expire_past(brand, iso(now.timestamp()))
        if expired:
            changed[EXPIRED] = expired
        open_ids = ledger.open_collaborations(brand, campaign_id)
        pages = 0
        async with ApiClient(url, creds, base_url_source=url_source) as client:
            ex = Executor(ledger, None, client, admission, run_id, ExecuteOptions(), brand_key=brand, limits=limits)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):  # a signal ends any wait at once
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, ex.request_stop)
            token: str | None = None
            seen: set[str] = set()
            while open_ids - seen and pages < MAX_PAGES:
                answer = await ex.read(client.prepare_search_collaborations(page_size=100, page_token=token),
                                       purpose="sync", record_failure=True)
                if answer is None:
                    break
                pages += 1
                found = []
                for collab in answer.data.get("target_collaborations") or answer.data.get("collaborations") or []:
                    cid = str(collab.get("id") or "")
                    if cid in open_ids:
                        seen.add(cid)
                        found.extend((cid, who, state, at) for who, state, at in answers_in(collab))
                for state, n in ledger.apply_answers(brand, found).items():
                    changed[state] = changed.get(state, 0) + n
                token = answer.data.get("next_page_token") or None
                if not token:
                    break
        flagged = _flag_unresponsive(ledger, brand, lifecycle, now)
        stop = ex.stop
        exit_code = stop.exit_code if stop else 0
        counts = {"requests": ex.counts.requests, "pages": pages, "changed": changed,
                  "open_collaborations": len(open_ids), "flagged_unresponsive": len(flagged)}
        errors = [{"stop": stop.reason, "message": stop.message, "hint": stop.hint}] if stop else []
        ledger.finish_run(run_id, status=stop.reason if stop else "success", exit_code=exit_code, counts=counts,
                          errors=errors)
        return {"brand": brand, "run_id": run_id, "exit_code": exit_code, **counts, "flagged": flagged[:50],
                "errors": errors}
    finally:
        ledger.close()


def _flag_unresponsive(ledger: Ledger, brand: str, lifecycle: Lifecycle, now: datetime) -> list[str]:
    since = iso((now - timedelta(days=lifecycle.answer_within_days)).timestamp())
    candidates = ledger.unresponsive_creators(brand, since, lifecycle.unresponsive_after)
    held = ledger.flagged_creators(brand, iso(now.timestamp()))
    fresh = [c for c in candidates if c not in held]  # never soften an ineligible or blocked flag
    if fresh:
        until = iso((now + timedelta(days=lifecycle.cooldown_days)).timestamp())
        ledger.flag_creators(brand, fresh, "unresponsive",
                             f"{lifecycle.unresponsive_after}+ invitations unanswered after "
                             f"{lifecycle.answer_within_days} days", until)
    return fresh
