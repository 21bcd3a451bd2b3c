"""`trendio execute`: send the invitations of a campaign (planned now) or of a saved plan, resumably."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trendio_cli.admission import Admission, RateRule
from trendio_cli.api.client import ApiClient, base_url_source
from trendio_cli.api.credentials import check_base_url, credentials_for, is_loopback_url
from trendio_cli.api.endpoints import CREATE_BY_API, DEFAULT_BASE_URL
from trendio_cli.campaign import Campaign
from trendio_cli.creators import Creator
from trendio_cli.errors import EXIT_QUOTA, EXIT_REFUSED, BadInput, ProblemsFound, Refused
from trendio_cli.executor import EXIT_INTERRUPTED, Counts, ExecuteOptions, Executor, Stop
from trendio_cli.inputs import is_plan_file, load_campaign_inputs, load_plan
from trendio_cli.ledger import Ledger, LockLost, iso
from trendio_cli.output import STATUS_BY_EXIT, shown_url
from trendio_cli.planner import (
    LedgerState,
    Plan,
    campaign_day,
    check_not_ended,
    end_time,
    make_plan,
    without_creators,
)
from trendio_cli.quota import OutreachWeek, QuotaDay
from trendio_cli.views import send_rate


def preview(source: Path, ledger_path: str) -> Plan:
    """The plan as it stands before the run (for the confirmation prompt); reads only."""
    if is_plan_file(source):
        return load_plan(source)
    inputs = load_campaign_inputs(source)
    now = datetime.now(timezone.utc)
    with Ledger.open(ledger_path, readonly=True, migrate=True) as ledger:
        state = LedgerState.read(ledger, inputs.campaign, inputs.creators, now)
    return make_plan(inputs.campaign, inputs.creators, state, now, campaign_file=str(source))


def execute(
    source: Path,
    *,
    ledger_path: str,
    base_url: str | None,
    options: ExecuteOptions | None = None,
    on_progress: Callable[[Counts, Plan | None], None] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`now` plans as of another moment (simulations against the sandbox); the API still gets real time."""
    options = options or ExecuteOptions()
    # Everything that can be wrong with the input is found before the ledger is touched.
    saved_plan: Plan | None = None
    creators: list[Creator] = []
    if is_plan_file(source):
        saved_plan = load_plan(source)
        campaign = saved_plan.campaign_model()
        creators = plan_creators(saved_plan)
    else:
        inputs = load_campaign_inputs(source)
        campaign, creators = inputs.campaign, inputs.creators
    check_not_ended(campaign, now or datetime.now(timezone.utc))
    url = check_base_url(base_url or DEFAULT_BASE_URL)
    creds = credentials_for(campaign.brand, allow_sandbox_defaults=is_loopback_url(url))
    return asyncio.run(_execute(source, campaign, creators, saved_plan, ledger_path, url, creds, options,
                                on_progress, now, url_source=base_url_source(base_url)))


def expand_sources(sources: list[Path]) -> list[Path]:
    """Files as given; a folder stands for every campaign file (*.yaml, *.yml) below it."""
    out: list[Path] = []
    for src in sources:
        if src.is_dir():
            found = sorted(p for p in src.rglob("*") if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
            if not found:
                raise BadInput(f"{src}: no campaign files (*.yaml) in this folder")
            out.extend(found)
        else:
            out.append(src)
    return out


def execute_many(
    sources: list[Path],
    *,
    ledger_path: str,
    base_url: str | None,
    options: ExecuteOptions | None = None,
    on_progress: Callable[[Counts, Plan | None], None] | None = None,
) -> dict[str, Any]:
    """Every campaign of every brand in one run. Brands run side by side and share the app's rate limit
    (each with an equal share of the workers); inside a brand, campaigns go by `priority`, highest first.
    A brand held by another run is skipped; a brand stopped by a quota or refused credentials stops alone.
    The exit code is the worst of the brands'."""
    options = options or ExecuteOptions()
    paths = expand_sources(sources)
    loaded = []
    problems: list[str] = []
    for path in paths:  # every input is checked before the ledger is touched
        try:
            if is_plan_file(path):
                plan = load_plan(path)
                loaded.append((path, plan.campaign_model(), plan_creators(plan), plan))
            else:
                inputs = load_campaign_inputs(path)
                loaded.append((path, inputs.campaign, inputs.creators, None))
        except ProblemsFound as exc:
            problems.extend(exc.problems)
    if problems:
        raise ProblemsFound(problems)
    keys = [(c.brand, c.campaign) for _, c, _, _ in loaded]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise BadInput(f"campaign {dup[1]} of brand {dup[0]} is given twice")
    now = datetime.now(timezone.utc)
    for _, campaign, _, _ in loaded:
        check_not_ended(campaign, now)
    url = check_base_url(base_url or DEFAULT_BASE_URL)
    by_brand: dict[str, list[Any]] = {}
    for item in loaded:
        by_brand.setdefault(item[1].brand, []).append(item)
    creds = {b: credentials_for(b, allow_sandbox_defaults=is_loopback_url(url)) for b in by_brand}
    share = max(4, options.concurrency // max(1, len(by_brand)))
    brand_options = ExecuteOptions(**{**options.__dict__, "concurrency": share})
    return asyncio.run(_execute_brands(by_brand, creds, ledger_path, url, brand_options, on_progress,
                                       url_source=base_url_source(base_url)))


async def _execute_brands(by_brand: dict[str, list[Any]], creds: dict[str, Any], ledger_path: str, url: str,
                          options: ExecuteOptions, on_progress: Any, *, url_source: str = "") -> dict[str, Any]:
    running: list[Executor] = []
    loop = asyncio.get_running_loop()
    _on_signals(loop, lambda: [e.request_stop() for e in running])

    async def one_brand(brand: str, items: list[Any]) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        outcome = {"brand": brand, "exit_code": 0, "status": "success", "campaigns": results}
        for path, campaign, creators, saved in sorted(items, key=lambda it: -it[1].priority):
            try:
                result = await _execute(path, campaign, creators, saved, ledger_path, url, creds[brand], options,
                                        on_progress, None, running, url_source=url_source)
            except Refused as exc:
                if "is held by run" in exc.message and not isinstance(exc, LockLost):
                    outcome.update(status="skipped", note=exc.message)  # another run has it: not an error
                else:
                    outcome.update(status="refused", exit_code=exc.exit_code, note=exc.message)
                return outcome
            results.append(result)
            outcome["exit_code"] = max(outcome["exit_code"], result["exit_code"])
            if result["exit_code"] in (EXIT_QUOTA, EXIT_REFUSED, EXIT_INTERRUPTED):
                break  # this brand is done for now; the others go on
        code = int(outcome["exit_code"])
        outcome["status"] = "interrupted" if code == EXIT_INTERRUPTED else STATUS_BY_EXIT.get(code, "error")
        return outcome

    brands = await asyncio.gather(*(one_brand(b, items) for b, items in sorted(by_brand.items())))
    _off_signals(loop)
    worst = max((b["exit_code"] for b in brands), default=0)
    return {"exit_code": worst, "brands": brands,
            "counts": {k: sum(r["counts"][k] for b in brands for r in b["campaigns"])
                       for k in ("sent", "conflict", "ineligible", "failed", "unsent", "requests")}}


async def _execute(source, campaign: Campaign, creators, saved_plan, ledger_path, url, creds, options,
                   on_progress, plan_now, running: list[Executor] | None = None, *,
                   url_source: str = "") -> dict[str, Any]:
    """One campaign, one run. With `running`, the caller handles signals for every executor it lists.
    `url_source`: where the base URL came from (for messages)."""
    started = time.monotonic()
    ledger = Ledger.open(ledger_path)
    brand = campaign.brand
    new_ledger = ledger.created
    known_before = any(s != "planned" for s in ledger.invitation_states(brand))
    run_id = ledger.start_run(brand=brand, campaign=campaign.campaign, command="execute",
                              plan_id=saved_plan.plan_id if saved_plan else None)
    plan: Plan | None = None
    executor: Executor | None = None
    try:
        ledger.acquire_brand_lock(brand, run_id)
    except Refused as exc:
        ledger.finish_run(run_id, status="refused", exit_code=exc.exit_code, counts={},
                          errors=[{"message": exc.message}])
        ledger.close()
        raise
    admission = Admission(RateRule.for_rate(campaign.limits.requests_per_second), ledger, app_key=creds.app_key,
                          shop_cipher=creds.shop_cipher, scope=campaign.limits.rate_scope)
    loop = asyncio.get_running_loop()
    heartbeat: asyncio.Task[None] | None = None
    try:
        if saved_plan is not None:
            check_saved_plan(ledger, saved_plan, campaign, plan_now or datetime.now(timezone.utc))
        async with ApiClient(url, creds, max_connections=options.concurrency + 8,
                             create_endpoint=CREATE_BY_API[campaign.api], base_url_source=url_source) as client:
            executor = Executor(ledger, campaign, client, admission, run_id, options,
                                on_progress=(lambda c: on_progress(c, plan)) if on_progress else None)
            if running is None:
                _on_signals(loop, executor.request_stop)
            else:
                running.append(executor)
            heartbeat = asyncio.create_task(executor.heartbeat())
            ledger.clear_planned(brand)
            adopt_open_ids(ledger, brand, creators)
            await executor.reconcile_pending()
            ledger.clear_planned(brand)
            now = plan_now or datetime.now(timezone.utc)
            if saved_plan is not None:
                plan = saved_plan
                ledger.record_plan_applied(plan_id=plan.plan_id, brand=brand, campaign=campaign.campaign,
                                           created_at=plan.created_at, fingerprint=plan.fingerprint,
                                           pairs=plan.pairs, run_id=run_id)
                unreachable = await _screen(executor, campaign, plan, now)
                if unreachable:
                    plan = without_creators(plan, set(unreachable))
            else:
                plan = await _reachable_plan(executor, ledger, campaign, creators, now, source)
            if executor.stop is None and plan.batches:
                ledger.insert_planned(brand, campaign.campaign, run_id,
                                      ((c, p, b.tier_of(i), b.key) for b in plan.batches
                                       for i, c in enumerate(b.creator_ids) for p in b.product_ids),
                                      expires_at=iso(end_time(campaign)))
                _remember_creators(ledger, brand, creators, {c for b in plan.batches for c in b.creator_ids})
                ledger.remember_campaign(brand, campaign.campaign, {"limits": campaign.limits.model_dump(mode="json"),
                                                                    "lifecycle": campaign.lifecycle.model_dump()})
                await executor.run(plan.batches)
            if executor.stop is None and plan is not None:
                _stop_for_deferred_work(executor, plan)
    except BaseException as exc:
        # the run's row says how it ended, whatever ended it; then the lock and the planned rows go
        refused = isinstance(exc, Refused)
        ledger.finish_run(run_id, status=("lock_lost" if isinstance(exc, LockLost) else "refused") if refused
                          else "error",
                          exit_code=exc.exit_code if refused else 1,
                          counts=executor.counts.as_dict() if executor else {},
                          errors=[{"message": exc.message if refused else f"{type(exc).__name__}: {exc}"}])
        await _cleanup(ledger, brand, run_id, heartbeat, loop if running is None else None)
        raise
    assert executor is not None
    exit_code = executor.exit_code()
    stop = executor.stop
    errors = list(executor.errors)
    if stop is not None:
        errors.insert(0, {"stop": stop.reason, "message": stop.message, "hint": stop.hint})
    counts = executor.counts.as_dict()
    duration = time.monotonic() - started
    status = STATUS_BY_EXIT.get(exit_code, "error")
    ledger.finish_run(run_id, status=stop.reason if stop else status, exit_code=exit_code, counts=counts,
                      errors=errors)
    quota_day = QuotaDay.at(datetime.now(timezone.utc), campaign.limits.quota_timezone)
    used = ledger.calls_used(brand, quota_day.day)
    rate = send_rate(ledger.send_times(run_id=run_id))  # over the sending span, as the ops dashboard
    shown_ledger = ledger.path
    await _cleanup(ledger, brand, run_id, heartbeat, loop if running is None else None)
    return {
        "run_id": run_id,
        "brand": brand,
        "campaign": campaign.campaign,
        "plan_id": plan.plan_id if plan else None,
        "exit_code": exit_code,
        "status": status,
        "stop_reason": stop.reason if stop else None,
        "counts": counts,
        "duration_s": round(duration, 3),
        "requests_per_second": rate["requests_per_second"],
        "rate": rate,
        "ledger": shown_ledger,
        "new_ledger": new_ledger,
        "base_url": shown_url(url),
        "left_out": dict(plan.skipped) if plan is not None else {},
        "warnings": _conflict_warnings(counts, brand, shown_ledger, known_before),
        "quota": {"day": quota_day.day, "used": used, "limit": campaign.limits.daily_requests,
                  "left": max(0, campaign.limits.daily_requests - used),
                  "resets_at": quota_day.resets_at.isoformat()},
        "pace": {"requests_per_second": round(admission.rule.per_second, 2), "penalties": admission.penalties,
                 "late": admission.late, "scope": campaign.limits.rate_scope},
        "errors": errors,
    }


SCREEN_ROUNDS = 3  # plan, check who it reaches, plan again without the unreachable: at most this many times


async def _reachable_plan(executor: Executor, ledger: Ledger, campaign: Campaign, creators: list[Creator],
                          now: datetime, source: Path) -> Plan:
    """The plan, under the platform's own outreach figures and with the creators the platform says an invitation
    cannot reach left out (where it offers the outreach endpoints): those are flagged, so planning again puts
    the next best in their place."""
    def replan(outreach_read: bool = True) -> Plan:  # on the ledger as it now is (figures read, creators flagged)
        state = LedgerState.read(ledger, campaign, creators, now)
        state.outreach_to_read = not outreach_read
        return make_plan(campaign, creators, state, now, campaign_file=str(source))

    plan = replan(outreach_read=False)
    if not plan.batches:
        return plan  # nothing to send: nothing to ask either (a scheduled run with no work is free)
    if await executor.outreach_quota() is not None:  # the platform's own outreach figures, where it gives them
        plan = replan()
    for _ in range(SCREEN_ROUNDS):
        unreachable = await _screen(executor, campaign, plan, now)
        if not unreachable:
            return plan
        plan = replan()
    # what the last round still finds unreachable is left out rather than checked again
    unreachable = await _screen(executor, campaign, plan, now)
    return without_creators(plan, set(unreachable)) if unreachable else plan


async def _screen(executor: Executor, campaign: Campaign, plan: Plan, now: datetime) -> dict[str, str] | None:
    if executor.stop is not None or not plan.batches:
        return None
    week = OutreachWeek.at(now, campaign.limits)
    return await executor.screen([c for b in plan.batches for c in b.creator_ids], week.since_iso,
                                 iso(week.resets_at.timestamp()))


def check_saved_plan(ledger: Ledger, plan: Plan, campaign: Campaign, now: datetime) -> None:
    """A saved plan is applied once, to the ledger as it was made against, on the day it was made for;
    Refused (exit 5) otherwise."""
    again = "make a new plan with `trendio plan --out`"
    applied = ledger.plan_applied(plan.plan_id)
    if applied is not None:
        raise Refused(f"plan {plan.plan_id} was already applied by run {applied}", hint=again)
    if ledger.fingerprint(campaign.brand) != plan.fingerprint:
        raise Refused(f"plan {plan.plan_id} is stale: the ledger changed since it was made ({plan.created_at})",
                      hint=again)
    today = campaign_day(campaign, now).isoformat()
    if plan.date != today:
        # its daily target, tier caps and quotas are counted for that day, not this one
        raise Refused(f"plan {plan.plan_id} was made for {plan.date}, and today is {today} (the campaign's time "
                      f"zone, {campaign.schedule.timezone})", hint=f"{again}, or run it on its day")


def adopt_open_ids(ledger: Ledger, brand: str, creators: list[Creator]) -> int:
    """A ledger of a version before open ids names creators by their plain id: where the creators file gives
    both, the old rows move to the open id (so a creator is never invited twice across the change)."""
    plain = ledger.plain_ids(brand)
    if not plain:
        return 0
    return ledger.adopt_open_ids(brand, {c.creator_user_id: c.creator_id for c in creators
                                         if c.creator_user_id in plain and c.creator_user_id != c.creator_id})


def _conflict_warnings(counts: dict[str, int], brand: str, ledger: str, known_before: bool) -> list[str]:
    """Most pairs answered as conflicts: the platform has invitations this ledger does not know of. On a ledger
    that held nothing of the brand, that usually means the real ledger is elsewhere."""
    answered = sum(counts.get(k, 0) for k in ("sent", "conflict", "ineligible", "failed"))
    conflicts = counts.get("conflict", 0)
    if not conflicts or conflicts * 2 <= answered:
        return []
    head = f"{conflicts} of {answered} invitations came back as conflicts: the platform already has them"
    if not known_before:
        return [f"{head}, but the ledger {ledger} held nothing of brand {brand} before this run. Is the real "
                f"ledger elsewhere? (--ledger or TRENDIO_LEDGER name it)"]
    return [f"{head}, and the ledger {ledger} did not know: is another ledger or tool inviting for brand {brand}?"]


def _stop_for_deferred_work(executor: Executor, plan: Plan) -> None:
    """A plan cut short by the day's requests or the week's outreach ends the run as stopped by a quota."""
    if plan.skipped.get("deferred: daily request quota"):
        executor.halt(Stop("daily_quota", f"the day's requests for invitations are spent "
                           f"({plan.skipped['deferred: daily request quota']} creators wait)", EXIT_QUOTA,
                           hint=f"the quota day resets at {plan.quota['resets_at']}"))
    elif plan.skipped.get("deferred: weekly outreach spent"):
        executor.halt(Stop("outreach_quota", f"the week's outreach is spent "
                           f"({plan.skipped['deferred: weekly outreach spent']} creators wait)", EXIT_QUOTA,
                           hint=f"the outreach week resets at {plan.outreach['resets_at']}"))


def plan_creators(plan: Plan) -> list[Creator]:
    """The attributes of a saved plan's creators, from the creators file its campaign names, so that the
    saved-plan flow teaches matching as much as the direct one. Empty when the file is gone."""
    campaign_file = Path(plan.campaign_file) if plan.campaign_file else None
    if campaign_file is None or not campaign_file.is_file():
        return []
    try:
        creators = load_campaign_inputs(campaign_file).creators
    except BadInput:  # a plan outlives its creators file: the run goes on, learning less
        return []
    planned = {c for b in plan.batches for c in b.creator_ids}
    return [c for c in creators if c.creator_id in planned]


def _remember_creators(ledger: Ledger, brand: str, creators: list[Creator], chosen: set[str]) -> None:
    """Keep the latest attributes of the creators this run invites (the ledger's creators table)."""
    ledger.upsert_creators(brand, (
        {"creator_id": c.creator_id, "creator_user_id": c.creator_user_id, **c.attributes(), "extra": c.extra}
        for c in creators if c.creator_id in chosen
    ))


def _on_signals(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)


def _off_signals(loop: asyncio.AbstractEventLoop) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(sig)


async def _cleanup(ledger: Ledger, brand: str, run_id: int, heartbeat, loop) -> None:
    if heartbeat is not None:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    if loop is not None:
        _off_signals(loop)
    try:
        with contextlib.suppress(LockLost):  # a lost lock's planned rows are its new holder's
            ledger.clear_planned(brand)
        ledger.release_brand_lock(brand, run_id)
    finally:
        ledger.close()
