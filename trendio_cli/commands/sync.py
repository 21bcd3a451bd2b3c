"""`trendio sync`: what creators did with the invitations, as the platform reports it, back into the ledger.

The collaboration search gives counts only (invited, showcase, content); the per-creator picture is in each
collaboration's detail, and money in the affiliate orders. So, per brand: page through the watched
collaborations by status (VALID for the live ones; COMPLETED for those no longer live, once), read the detail
only of collaborations whose counts changed since the last sync, move invitations to showcased or content
(or expired once a collaboration has ended), then read the affiliate orders since the last read. A second
sync right after a first costs the search pages and nothing else. Requests come from the reserve only.
Creators who leave an invitation unanswered are flagged unresponsive, by each campaign's own lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from trendio_cli.admission import Admission, RateRule
from trendio_cli.api.client import ApiClient, base_url_source
from trendio_cli.api.credentials import check_base_url, credentials_for, is_loopback_url
from trendio_cli.api.endpoints import DEFAULT_BASE_URL, MAX_ORDER_PAGE_SIZE
from trendio_cli.campaign import Lifecycle, Limits
from trendio_cli.executor import ExecuteOptions, Executor, collaborations_in
from trendio_cli.inputs import load_campaign_inputs
from trendio_cli.ledger import EXPIRED, Ledger, iso, parse_iso
from trendio_cli.quota import latest_limits

MAX_PAGES = 200  # per status and brand: 20,000 collaborations
COUNTS = ("invited", "showcased", "content", "products")
# Orders are read again over this many days back, so that status changes and refunds are caught; and when no
# collaboration changed, at most this often.
ORDERS_LOOKBACK_DAYS = 30
ORDERS_EVERY_HOURS = 6.0
MIN_ORDER_WINDOW_S = 3600  # the narrowest time slice an order read is cut into


def sync(ledger_path: str, base_url: str | None, *, brand: str | None = None,
         campaign: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Every brand of the ledger (or one), each under its campaigns' own limits and lifecycle rules (as last
    executed; a campaign file given with `--campaign` wins)."""
    spec = None
    campaign_id = campaign
    if campaign and Path(campaign).is_file():
        spec = load_campaign_inputs(Path(campaign)).campaign
        campaign_id, brand = spec.campaign, spec.brand
    url = check_base_url(base_url or DEFAULT_BASE_URL)
    with Ledger.open(ledger_path, readonly=True, migrate=True) as view:
        brands = [brand] if brand else view.brands()
    results = []
    for b in brands:
        rules = {spec.campaign: {"limits": spec.limits.model_dump(), "lifecycle": spec.lifecycle.model_dump()}} \
            if spec else None
        results.append(asyncio.run(_sync_brand(b, campaign_id, ledger_path, url, rules, now,
                                               url_source=base_url_source(base_url))))
    worst = max((r["exit_code"] for r in results), default=0)
    return {"exit_code": worst, "brands": results}


def _rules(ledger: Ledger, brand: str, campaign_id: str | None,
           given: dict[str, dict[str, Any]] | None) -> tuple[Limits, dict[str, Lifecycle]]:
    """The limits to sync under (the most recently executed campaign's) and each campaign's lifecycle."""
    specs = given or ledger.campaign_specs(brand)
    if campaign_id:
        specs = {k: v for k, v in specs.items() if k == campaign_id} or {campaign_id: {}}
    _, limits = latest_limits(specs)
    return limits, {name: Lifecycle.model_validate(spec.get("lifecycle") or {}) for name, spec in specs.items()}


async def _sync_brand(brand: str, campaign_id: str | None, ledger_path: str, url: str,
                      given: dict[str, dict[str, Any]] | None, at: datetime | None, *,
                      url_source: str = "") -> dict[str, Any]:
    creds = credentials_for(brand, allow_sandbox_defaults=is_loopback_url(url))
    ledger = Ledger.open(ledger_path)
    now = at or datetime.now(timezone.utc)
    limits, lifecycles = _rules(ledger, brand, campaign_id, given)
    run_id = ledger.start_run(brand=brand, campaign=campaign_id, command="sync")
    admission = Admission(RateRule.for_rate(limits.requests_per_second), ledger, app_key=creds.app_key,
                          shop_cipher=creds.shop_cipher, scope=limits.rate_scope)
    try:
        changed: dict[str, int] = {}
        expired = ledger.expire_past(brand, iso(now.timestamp()))
        if expired:
            changed[EXPIRED] = expired
        async with ApiClient(url, creds, base_url_source=url_source) as client:
            ex = Executor(ledger, None, client, admission, run_id, ExecuteOptions(), brand_key=brand, limits=limits)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):  # a signal ends any wait at once
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, ex.request_stop)
            follow = Follow(ex, client, ledger, brand, now)
            await follow.collaborations(ledger.watched_collaborations(brand, campaign_id))
            await follow.orders()
        for state, n in follow.changed.items():
            changed[state] = changed.get(state, 0) + n
        flagged = _flag_unresponsive(ledger, brand, lifecycles, now, campaign_id)
        stop = ex.stop
        exit_code = stop.exit_code if stop else (1 if ex.errors and not follow.pages else 0)
        counts = {"requests": ex.counts.requests, "pages": follow.pages, "details": follow.details,
                  "order_pages": follow.order_pages, "orders_cut_off": follow.orders_cut_off,
                  "orders_skipped": follow.orders_skipped, "changed": changed,
                  "collaborations_watched": follow.watched, "collaborations_ended": follow.ended,
                  "orders_new": follow.orders_new, "orders_updated": follow.orders_updated,
                  "gmv_new": round(follow.gmv_new, 2), "flagged_unresponsive": len(flagged),
                  "token_refreshes": ex.counts.token_refreshes}
        errors = list(ex.errors)
        if stop:
            errors.insert(0, {"stop": stop.reason, "message": stop.message, "hint": stop.hint})
        ledger.finish_run(run_id, status=stop.reason if stop else "success", exit_code=exit_code, counts=counts,
                          errors=errors)
        return {"brand": brand, "run_id": run_id, "exit_code": exit_code, **counts, "flagged": flagged[:50],
                "errors": errors}
    finally:
        ledger.close()


class Follow:
    """One brand's incremental sync: collaborations (search counts, then details where they changed) and
    orders. Every request goes through the executor, from the reserve."""

    def __init__(self, ex: Executor, client: ApiClient, ledger: Ledger, brand: str, now: datetime) -> None:
        self.ex, self.client, self.ledger, self.brand, self.now = ex, client, ledger, brand, now
        self.changed: dict[str, int] = {}
        self.pages: dict[str, int] = {}
        self.details = self.order_pages = self.watched = self.ended = 0
        self.orders_new = self.orders_updated = 0
        self.gmv_new = 0.0
        self.any_change = False
        self.orders_cut_off = self.orders_skipped = False

    async def collaborations(self, watched: dict[str, dict[str, Any]]) -> None:
        self.watched = len(watched)
        seen: dict[str, tuple[str, dict[str, Any]]] = {}
        # live, then being cancelled by the seller (still live until it ends), then ended
        for status in ("VALID", "CANCELING", "COMPLETED"):
            if not set(watched) - set(seen):
                break
            token: str | None = None
            for _ in range(MAX_PAGES):
                answer = await self.ex.read(self.client.prepare_search_collaborations(
                    status=status, page_size=100, page_token=token), purpose="sync", record_failure=True)
                if answer is None:
                    return
                self.pages[status] = self.pages.get(status, 0) + 1
                for item in collaborations_in(answer.data):
                    cid = str(item.get("id") or "")
                    if cid in watched and cid not in seen:
                        seen[cid] = (status, item)
                token = answer.data.get("next_page_token") or None
                if not token or not set(watched) - set(seen):
                    break
        rows = []
        for cid, (status, item) in seen.items():
            counts = _counts(item)
            before = watched[cid]
            final = status == "COMPLETED"
            moved = any((before.get(k) or 0) != counts[k] for k in ("showcased", "content"))
            if moved or final:
                if not await self._detail(cid):
                    continue  # unread: its counts are not recorded, so the next sync reads it again
            if final:
                ended = iso(float(counts["end_time"])) if counts["end_time"] else iso(self.now.timestamp())
                n = self.ledger.expire_collaboration(self.brand, cid, ended)
                if n:
                    self.changed[EXPIRED] = self.changed.get(EXPIRED, 0) + n
                self.ended += 1
            if moved or final or not before:
                self.any_change = self.any_change or moved
                rows.append({"id": cid, "status": status, "final": final, **counts})
        if rows:
            self.ledger.record_collaborations(self.brand, rows)

    async def _detail(self, cid: str) -> bool:
        answer = await self.ex.read(self.client.prepare_get_collaboration(cid), purpose="sync", record_failure=True)
        if answer is None:
            return False
        self.details += 1
        detail = answer.data.get("target_collaboration")
        detail = detail if isinstance(detail, dict) else answer.data
        creators, handles = [], {}
        for c in detail.get("creators") or []:
            if not isinstance(c, dict):
                continue
            who = str(c.get("creator_open_id") or c.get("creator_user_open_id") or "")
            if not who:
                continue
            creators.append((who, _int(c.get("showcase_product_count")), _int(c.get("content_product_count"))))
            if c.get("username"):
                handles[who] = str(c["username"])[:200]
        when = iso(self.now.timestamp())
        for state, n in self.ledger.apply_detail(self.brand, cid, creators, when).items():
            self.changed[state] = self.changed.get(state, 0) + n
        if handles:
            self.ledger.set_handles(self.brand, handles)
        return True

    async def orders(self) -> None:
        """The shop's affiliate orders since the last read (and ORDERS_LOOKBACK_DAYS before it, for refunds and
        status changes), kept where they belong to this brand's collaborations; skipped when nothing changed
        and the last read is recent.

        At most MAX_PAGES a sync. A window the first page's `total_count` says is larger is read in halves
        (time slices, oldest first), so a read cut short still ends at a known time: the next sync carries on
        from there (`orders_read_to`) instead of reading the same first pages again or skipping what it missed."""
        ours = self.ledger.collaboration_ids(self.brand)
        if not ours:
            return
        last = self.ledger.sync_value(self.brand, "orders_read_at")
        behind = self.ledger.sync_value(self.brand, "orders_read_to") or None  # where a cut-short read stopped
        now_ts = self.now.timestamp()
        if last and not behind and not self.any_change and now_ts - parse_iso(last) < ORDERS_EVERY_HOURS * 3600:
            return
        # no order of ours predates the brand's first invitation
        since = parse_iso(self.ledger.first_claim(self.brand)) or now_ts
        if behind:
            since = max(since, parse_iso(behind))  # catch up first; the lookback comes once caught up
        elif last:
            since = max(since, parse_iso(last) - ORDERS_LOOKBACK_DAYS * 86400)
        since = min(since, now_ts)
        by_username = self.ledger.creators_by_username(self.brand)
        rows: list[dict[str, Any]] = []
        # Time slices [lo, hi); the last one has no upper bound: the platform's "now" is the end of what it
        # can have, whatever this machine's clock says. Where an earlier read was cut short without a total to
        # go by, in slices of the span it could not finish.
        span = int(self.ledger.sync_value(self.brand, "orders_span_s") or 0) or None
        end = int(now_ts)
        starts = (list(range(int(since), end, span)) if span else []) or [int(since)]
        windows: list[tuple[int, int | None]] = [(a, b) for a, b in zip(starts, [*starts[1:], None])]
        read_to, complete = starts[0], False
        pages_left = MAX_PAGES
        lo, hi = windows[0]
        token: str | None = None
        failed = skipped = False
        while windows and pages_left and not failed:
            lo, hi = windows.pop(0)
            token = None
            while pages_left:
                answer = await self.ex.read(self.client.prepare_search_orders(
                    create_time_ge=lo, create_time_lt=hi, page_token=token), purpose="sync", record_failure=True)
                if answer is None:
                    failed = True  # what is read is kept; the cursor moves to where the read is complete
                    break
                pages_left -= 1
                self.order_pages += 1
                for order in answer.data.get("orders") or []:
                    if isinstance(order, dict):
                        rows.extend(r for r in order_rows(order, by_username) if r["collaboration_id"] in ours)
                token = answer.data.get("next_page_token") or None
                if not token:
                    if hi is None:
                        complete = True
                    else:
                        read_to = hi
                    break
                pages = -(-_int(answer.data.get("total_count")) // MAX_ORDER_PAGE_SIZE)
                if pages > pages_left + 1 and (hi or end) - lo > MIN_ORDER_WINDOW_S:
                    mid = lo + ((hi or end) - lo) // 2  # more than this sync can read: halves, oldest first
                    windows[:0] = [(lo, mid), (mid, hi)]
                    break
            else:
                if hi is not None and (hi - lo) <= MIN_ORDER_WINDOW_S and lo == starts[0]:
                    # a slice as narrow as it gets that a whole sync cannot finish: it would stall every sync
                    # from here on, so the rest of it is left unread, and said
                    read_to, skipped = hi, True
        before = self.ledger.orders_gmv(self.brand)
        self.orders_new, self.orders_updated = self.ledger.upsert_orders(self.brand, rows)
        self.gmv_new = self.ledger.orders_gmv(self.brand) - before
        if complete:
            self.ledger.set_sync_value(self.brand, "orders_read_at", iso(now_ts))
            self.ledger.set_sync_value(self.brand, "orders_read_to", "")
            self.ledger.set_sync_value(self.brand, "orders_span_s", "")
            return
        # more orders than one sync reads (or a page that failed): what was read is kept, and the next sync
        # goes on from where the read is known complete; cut short inside a slice with no total to go by, in
        # narrower slices
        self.orders_cut_off = not failed
        self.orders_skipped = skipped
        if read_to > starts[0] or self.ledger.sync_value(self.brand, "orders_read_to"):
            self.ledger.set_sync_value(self.brand, "orders_read_to", iso(float(read_to)))
        if token and lo == read_to and not failed:
            self.ledger.set_sync_value(self.brand, "orders_span_s",
                                       str(max(MIN_ORDER_WINDOW_S, ((hi or end) - lo) // 2)))


def _int(value: Any) -> int:
    """A count (0 when absent or absurd)."""
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return n if 0 <= n < 10**9 else 0


def _unix_time(value: Any) -> int | None:
    """A Unix time in seconds as the platform documents them; one in milliseconds is read as such (the
    platform's spelling has varied between APIs). None when absent or outside 1970-2514."""
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if n > 10**11:
        n //= 1000
    return n if 0 < n < 2**34 else None


def _amount(value: Any) -> float:
    """A money object ({amount, currency}) or a plain number, as a float (0 when absent or absurd)."""
    if isinstance(value, dict):
        value = value.get("amount")
    try:
        f = float(value)
    except (TypeError, ValueError):
        return 0.0
    return f if 0 <= f < 1e12 else 0.0


def _counts(item: dict[str, Any]) -> dict[str, Any]:
    return {"name": str(item.get("name") or "")[:200],
            # the search spells it creator_inivited_count, the detail creator_invited_count
            "invited": _int(item.get("creator_inivited_count", item.get("creator_invited_count"))),
            "showcased": _int(item.get("showcase_creator_count")), "content": _int(item.get("content_creator_count")),
            "products": _int(item.get("product_count")), "start_time": _unix_time(item.get("start_time")),
            "end_time": _unix_time(item.get("end_time")), "update_time": _unix_time(item.get("update_time"))}


def order_rows(order: dict[str, Any], by_username: dict[str, str]) -> list[dict[str, Any]]:
    """One row per SKU of an order, as the ledger keeps them: GMV is price x quantity, commission estimated
    and actual (after refunds), the creator found by username."""
    oid = str(order.get("id") or order.get("order_id") or "")
    if not oid:
        return []
    created = _unix_time(order.get("create_time"))
    out = []
    for i, sku in enumerate(order.get("skus") or []):
        if not isinstance(sku, dict):
            continue
        product = str(sku.get("product_id") or "")
        key = str(sku.get("sku_id") or sku.get("id") or f"{product}:{i}")
        quantity = _int(sku.get("quantity"))
        price = sku.get("price")
        base = _amount(sku.get("estimated_commission_base")) or _amount(price) * quantity
        username = str(sku.get("creator_username") or "")
        out.append({
            "order_id": oid[:64], "sku": key[:128], "collaboration_id": str(sku.get("target_collaboration_id") or ""),
            "creator_id": by_username.get(username), "creator_username": username[:200], "product_id": product[:64],
            "status": str(order.get("status") or "")[:32], "quantity": quantity,
            "refunded": _int(sku.get("refunded_quantity")), "returned": _int(sku.get("returned_quantity")),
            "currency": str((price or {}).get("currency") or "")[:8] if isinstance(price, dict) else "",
            "gmv": round(base, 2), "actual_base": round(_amount(sku.get("actual_commission_base")), 2),
            "estimated_commission": round(_amount(sku.get("estimated_paid_commission")), 2),
            "actual_commission": round(_amount(sku.get("actual_paid_commission")), 2),
            "content_type": str(sku.get("content_type") or "")[:32],
            "created_at": iso(float(created)) if created else None,
        })
    return out


def _flag_unresponsive(ledger: Ledger, brand: str, lifecycles: dict[str, Lifecycle], now: datetime,
                       campaign_id: str | None) -> list[str]:
    """Each campaign's rule on its own invitations: a creator who took none of `unresponsive_after` of them
    up within `answer_within_days` is left out of plans for `cooldown_days`."""
    flagged: list[str] = []
    held = ledger.flagged_creators(brand, iso(now.timestamp()))
    for name, lifecycle in (lifecycles or {campaign_id or "": Lifecycle()}).items():
        since = iso((now - timedelta(days=lifecycle.answer_within_days)).timestamp())
        candidates = ledger.unresponsive_creators(brand, since, lifecycle.unresponsive_after, name or None)
        fresh = [c for c in candidates if c not in held and c not in flagged]  # never soften a stronger flag
        if fresh:
            until = iso((now + timedelta(days=lifecycle.cooldown_days)).timestamp())
            ledger.flag_creators(brand, fresh, "unresponsive",
                                 f"{lifecycle.unresponsive_after} invitation(s) not taken up within "
                                 f"{lifecycle.answer_within_days} days", until)
            flagged.extend(fresh)
    return flagged

