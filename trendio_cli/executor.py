"""The executor: the only place that sends invitations. Every request admitted first (admission.py: the run's
lock checked, quota reserved, pairs claimed pending and a send slot taken, in one ledger transaction), every
answer recorded per pair, and nothing sent twice: an uncertain create is reconciled with the platform before
anything is resent. A run that lost its brand's lock stops at once."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from trendio_cli.admission import Admission, Later, NotSent, Waits
from trendio_cli.api.answers import ApiAnswer, Outcome
from trendio_cli.api.client import ApiClient, PreparedRequest
from trendio_cli.api.endpoints import (
    GET_COLLABORATION,
    MAX_CREATORS_PER_CREATE,
    MAX_PRODUCTS_PER_CREATE,
    SEARCH_COLLABORATIONS,
)
from trendio_cli.campaign import Campaign, Limits
from trendio_cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, EXIT_QUOTA, EXIT_REFUSED, BadInput
from trendio_cli.ledger import (
    CONFLICT,
    FAILED,
    INELIGIBLE,
    SENT,
    CallSpec,
    ClaimRefused,
    Ledger,
    LockLost,
    QuotaExhausted,
    parse_iso,
)
from trendio_cli.planner import Batch, create_fields
from trendio_cli.quota import QuotaDay

Pair = tuple[str, str]
SYNC_ENDPOINTS = (SEARCH_COLLABORATIONS.name, GET_COLLABORATION.name)
EXIT_INTERRUPTED = 130
RETRY_AFTER_CAP_S = 60.0  # no Retry-After is waited longer than this
# stops that end every wait at once (nothing more leaves); after the others (a quota, --max-requests) the
# requests already under way may still reconcile what they sent
URGENT_STOPS = ("interrupted", "lock_lost", "error", "unreachable", "auth")


@dataclass
class ExecuteOptions:
    max_requests: int | None = None
    concurrency: int = 64  # enough in flight for 50 requests/s even at 500 ms latency
    max_attempts: int = 6  # per batch, for transient failures
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 20.0
    settle_s: float = 2.0  # before reconciling an uncertain create, let the platform finish it
    heartbeat_s: float = 5.0
    # requests in a row that never left (refused connection, DNS, connect timeout), over at least this long:
    # the API cannot be reached, and the brand stops with one line
    unreachable_after: int = 3
    unreachable_s: float = 2.0


@dataclass
class Stop:
    reason: str  # daily_quota | outreach_quota | max_requests | auth | interrupted | lock_lost | unreachable | error
    message: str
    exit_code: int
    hint: str | None = None


@dataclass
class Counts:
    batches: int = 0
    pairs_planned: int = 0
    sent: int = 0
    conflict: int = 0
    ineligible: int = 0
    failed: int = 0
    unsent: int = 0  # left for a later run (stopped, or retries exhausted with nothing created)
    uncertain: int = 0  # still pending: could not be reconciled now; the next run reconciles them
    reconciled_sent: int = 0
    reconciled_free: int = 0
    requests: int = 0
    creates: int = 0
    conflict_checks: int = 0
    retries: int = 0
    rate_limited: int = 0
    syncs: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Executor:
    """Sends for one brand: invitations (with a campaign), reconciliation and syncs (without one)."""

    ledger: Ledger
    campaign: Campaign | None
    client: ApiClient
    admission: Admission
    run_id: int
    options: ExecuteOptions = field(default_factory=ExecuteOptions)
    brand_key: str = ""
    limits: Limits | None = None
    on_progress: Callable[[Counts], None] | None = None
    counts: Counts = field(default_factory=Counts)
    errors: list[dict[str, Any]] = field(default_factory=list)
    stop: Stop | None = None
    started: float = field(default_factory=time.monotonic)
    _admitted: int = 0  # requests admitted (some not sent yet): what --max-requests counts
    _day: QuotaDay | None = None
    _unreached: tuple[int, float] = (0, 0.0)  # requests in a row that never left, since when

    def __post_init__(self) -> None:
        if self.campaign is not None:
            self.brand_key = self.brand_key or self.campaign.brand
            self.limits = self.limits or self.campaign.limits
        if not self.brand_key or self.limits is None:
            raise ValueError("an Executor needs a campaign, or a brand and limits")

    @property
    def brand(self) -> str:
        return self.brand_key

    # --- calls -------------------------------------------------------------------------------
    @property
    def waits(self) -> Waits:
        """The admission's waits (slots, backoffs, heartbeats): an urgent stop ends them all."""
        return self.admission.waits

    def halt(self, stop: Stop) -> None:
        """Stop the run: nothing more is admitted; an urgent stop (a signal, a lost lock, a failure) also ends
        every wait at once, so that nothing more leaves; what is in flight is finished and recorded."""
        if self.stop is None or (self.stop.reason == "interrupted" and stop.reason != "interrupted"):
            self.stop = stop
        if stop.reason in URGENT_STOPS:
            self.waits.stop()

    def request_stop(self) -> None:
        self.halt(Stop("interrupted", "stopped by a signal: in-flight requests were finished and recorded",
                       EXIT_INTERRUPTED))

    def lost(self, exc: LockLost) -> None:
        """The brand's lock is another run's now: stop at once, sending nothing more (exit 5)."""
        self.halt(Stop("lock_lost", exc.message, EXIT_REFUSED, hint=exc.hint))

    async def call(self, prepared: PreparedRequest, *, purpose: str, batch_key: str | None = None,
                   attempt: int = 1, claim: Sequence[Pair] = ()) -> ApiAnswer | None:
        """Send one request, admitted right before its first byte (admission.py: in one ledger transaction the
        lock checked, the rate scope's state checked and recorded, the call reserved against the quota and
        `claim`'s pairs claimed pending), and record its answer. None when it did not leave and must not
        (stopped, quota spent, lock lost): nothing of it was written. A request that never left for want of a
        connection comes back as a transient answer with `sent_at` None: it was not counted either.

        Purposes: "invite" may not touch the reserve; "sync" may spend only the reserve; "reconcile" may
        spend anything left in the day (it protects against duplicates)."""
        limits = self.limits
        assert limits is not None
        if self.stop is not None and (purpose in ("invite", "sync") or self.waits.stopped):
            return None
        if self.options.max_requests is not None and self._admitted >= self.options.max_requests:
            self.halt(Stop("max_requests", f"--max-requests {self.options.max_requests} reached", EXIT_QUOTA))
            return None
        day = self._quota_day()
        limit = limits.daily_requests - (limits.reserve_requests if purpose == "invite" else 0)
        share = (SYNC_ENDPOINTS, limits.reserve_requests) if purpose == "sync" else None
        ticket = self.admission.ticket(CallSpec(self.brand, day.day, prepared.endpoint.name, limit, self.run_id,
                                                batch_key, attempt, share, claim))
        self._admitted += 1  # (counted now: requests waiting to leave count against --max-requests too)
        try:
            while True:
                try:
                    async with self.admission.lane(ticket):
                        answer = await self.client.send(prepared, before_send=lambda: self.admission.depart(ticket))
                    break
                except Later as later:  # a hold: waited out without a connection
                    if not await self.waits.sleep(later.wait):
                        raise NotSent("stopped while the scope was held") from None
        except QuotaExhausted as exc:
            self._admitted -= 1
            what = {"invite": "for invitations", "sync": "of the reserve for syncs"}.get(purpose, "")
            self.halt(Stop("daily_quota", f"daily request quota reached ({exc.used} of {exc.limit} requests "
                           f"{what} on {day.day})".replace("  ", " "), EXIT_QUOTA,
                           hint=f"the quota day resets at {day.resets_at.isoformat()}"))
            return None
        except ClaimRefused as exc:
            self._admitted -= 1
            self.errors.append({"outcome": "not_sent", "note": f"not sent: {exc} (already claimed by another "
                                "request of this run, or answered)", "pairs": len(exc.pairs),
                                "creators": sorted({c for c, _ in exc.pairs})[:10]})
            return None
        except (NotSent, LockLost) as exc:
            self._admitted -= 1
            if isinstance(exc, LockLost):
                self.lost(exc)
            return None
        if ticket.call_id is None:  # it never left (no connection): the platform did not see it, nothing counted
            self._admitted -= 1
            self._not_reached(answer)
            return answer
        self._unreached = (0, 0.0)
        self.counts.requests += 1
        if prepared.mutating:
            self.counts.creates += 1
        elif purpose == "sync":
            self.counts.syncs += 1
        else:
            self.counts.conflict_checks += 1
        # written with the next transaction (the pairs' outcome, usually): the quota is already counted
        self.ledger.record_call(ticket.call_id, outcome=answer.outcome.value, http_status=answer.http_status,
                                code=answer.code, latency_ms=answer.latency_ms, request_id=answer.request_id,
                                message=answer.message, defer=True)
        if answer.outcome is Outcome.RATE_LIMITED:
            self.counts.rate_limited += 1
            try:
                self.admission.penalize(ticket, answer.retry_after)
            except LockLost as exc:
                self.lost(exc)
        elif answer.outcome is Outcome.DAILY_QUOTA:
            self.halt(Stop("daily_quota", f"the platform reports the daily request quota spent ({answer.code})",
                           EXIT_QUOTA, hint=f"the quota day resets at {day.resets_at.isoformat()}"))
        elif answer.outcome is Outcome.AUTH:
            self.halt(Stop("auth", f"credentials rejected: {answer.describe()}", EXIT_REFUSED, hint=answer.hint))
        self._progress()
        return answer

    def _not_reached(self, answer: ApiAnswer) -> None:
        """Requests in a row that never left: past `unreachable_after` of them over `unreachable_s`, the API
        cannot be reached at all, and the brand stops with one line that says where it looked."""
        count, since = self._unreached
        now = time.monotonic()
        count, since = count + 1, since if count else now
        self._unreached = (count, since)
        if count >= self.options.unreachable_after and now - since >= self.options.unreachable_s:
            client = self.client
            source = f" (from {client.base_url_source})" if client.base_url_source else ""
            loopback = any(host in client.base_url for host in ("://127.", "://localhost", "://[::1]"))
            hint = ("is the sandbox running? start it with `trendio sandbox`" if loopback else
                    "check the network, the proxy settings (HTTPS_PROXY, NO_PROXY) and the URL")
            message = answer.message or "no connection"
            # the operating system's reason when there is one ("Connection refused"), else the client's
            reason = message.rsplit(" (", 1)[1].rstrip(")") if message.endswith(")") else message.split(": ")[-1]
            self.halt(Stop("unreachable", f"cannot reach the API at {client.base_url}{source}: {reason}",
                           EXIT_FAILURE, hint=hint))

    def _quota_day(self) -> QuotaDay:
        """The current quota day (worked out again only once it has ended)."""
        day = self._day
        if day is None or time.time() >= day.resets_at.timestamp():
            assert self.limits is not None
            day = self._day = QuotaDay.at(datetime.now(timezone.utc), self.limits.quota_timezone)
        return day

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.counts)

    async def _backoff(self, attempt: int, retry_after: float | None = None) -> None:
        """Exponential, with jitter, capped; never shorter than a Retry-After (itself capped); a stop ends it."""
        delay = min(self.options.backoff_cap_s, self.options.backoff_base_s * 2 ** (attempt - 1))
        delay = random.uniform(delay / 2, delay)
        if retry_after is not None and retry_after == retry_after:
            delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
        await self.waits.sleep(delay)

    # --- reconciliation ----------------------------------------------------------------------
    async def read(self, prepared: PreparedRequest, *, purpose: str, batch_key: str | None = None,
                   record_failure: bool = False) -> ApiAnswer | None:
        """A call that changes nothing on the platform, retried with backoff on transient answers.
        The successful answer, or None when it cannot be had now (`record_failure` keeps why in errors)."""
        for attempt in range(1, self.options.max_attempts + 1):
            answer = await self.call(prepared, purpose=purpose, batch_key=batch_key, attempt=attempt)
            if answer is None or answer.ok:
                return answer
            if not answer.retryable or (self.stop is not None and purpose != "reconcile"):
                if record_failure:
                    self.errors.append({"outcome": answer.outcome.value, "code": answer.code,
                                        "message": answer.message})
                return None
            self.counts.retries += 1
            await self._backoff(attempt, answer.retry_after)
        return None

    async def find_existing(self, creators: Sequence[str], products: Sequence[str],
                            key: str | None) -> dict[Pair, str] | None:
        """Ask the platform which of these pairs already exist (conflicts check). None if it cannot tell now."""
        found: dict[Pair, str] = {}
        for i in range(0, len(creators), MAX_CREATORS_PER_CREATE):
            for j in range(0, len(products), MAX_PRODUCTS_PER_CREATE):
                cs, ps = creators[i:i + MAX_CREATORS_PER_CREATE], products[j:j + MAX_PRODUCTS_PER_CREATE]
                answer = await self.read(self.client.prepare_check_conflicts(cs, ps), purpose="reconcile",
                                         batch_key=key)
                if answer is None:
                    return None
                items = answer.data.get("conflict_items") or []
                by_pair = {(str(x.get("creator_open_id") or x.get("creator_user_id") or ""), str(x.get("product_id"))):
                           str(x.get("existing_collaboration_id") or "") for x in items if isinstance(x, dict)}
                for pair in answer.conflicts():
                    if pair[0] in cs and pair[1] in ps:
                        found[pair] = by_pair.get(pair, "")
        return found

    async def reconcile_pending(self) -> None:
        """Pairs a dead run left pending: ask the platform, mark the invited ones sent, free the rest."""
        pending = self.ledger.pending(self.brand)
        if not pending:
            return
        newest = max(parse_iso(p.claimed_at) for p in pending)
        wait = self.options.settle_s - (time.time() - newest)
        if wait > 0:
            await asyncio.sleep(wait)
        by_batch: dict[str, list[Pair]] = {}
        for p in pending:
            by_batch.setdefault(p.batch_key or "", []).append((p.creator_id, p.product_id))
        for key, pairs in by_batch.items():
            for creators, products in rectangles(pairs):
                found = await self.find_existing(creators, products, key)
                if found is None:
                    continue  # still pending; the next run tries again, and the planner leaves them out
                rect = [(c, p) for c in creators for p in products]
                hit = [pair for pair in rect if pair in found]
                for cid in {found[pair] for pair in hit}:
                    self.ledger.mark(self.brand, [pair for pair in hit if found[pair] == cid], SENT,
                                     collaboration_id=cid or None, message="reconciled after an interrupted run")
                free = [pair for pair in rect if pair not in found]
                self.ledger.unclaim(self.brand, free)
                self.counts.reconciled_sent += len(hit)
                self.counts.reconciled_free += len(free)

    # --- sending -----------------------------------------------------------------------------
    async def run(self, batches: Sequence[Batch]) -> None:
        """Send every batch, `concurrency` at a time. The first failure of a worker stops the run (nothing more
        leaves, the others finish what is in flight and record it) and is raised once, when they are done."""
        check_batches(batches)
        self.counts.batches = len(batches)
        self.counts.pairs_planned = sum(len(b.pairs) for b in batches)
        queue: asyncio.Queue[Batch] = asyncio.Queue()
        for b in batches:
            queue.put_nowait(b)

        async def worker() -> None:
            while True:
                try:
                    batch = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if self.stop is not None:
                    self.counts.unsent += len(batch.pairs)
                    continue
                try:
                    # the batch's pairs are claimed pending with its first request's reservation
                    await self.send(batch.tier, batch.creator_ids, batch.product_ids, batch.key, batch.handles,
                                    claim=True)
                except LockLost as exc:
                    self.lost(exc)
                self._progress()

        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(self.options.concurrency, len(batches))))]
        await self.supervise(workers)

    async def supervise(self, tasks: Sequence[asyncio.Task[Any]]) -> None:
        """Wait for every task; if one fails, halt the run, let the others wind down, and raise its error."""
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        failed = [t for t in done if not t.cancelled() and t.exception() is not None]
        if not failed:
            return
        error = failed[0].exception()
        self.halt(Stop("error", f"{type(error).__name__}: {error}", EXIT_FAILURE))
        await asyncio.gather(*tasks, return_exceptions=True)  # every other outcome retrieved: no stray traceback
        assert error is not None
        raise error

    def _release(self, pairs: Sequence[Pair]) -> None:
        """The platform did not act on these pairs: they go back to the plan, for this run or a later one."""
        self.ledger.unclaim(self.brand, pairs)
        self.counts.unsent += len(pairs)

    async def send(self, tier: str, creators: list[str], products: list[str], key: str,
                   handles: list[str] | None = None, claim: bool = False) -> None:
        """Invite creators x products; `claim`: the pairs are still planned, and the first request claims them."""
        attempt = 0
        while creators and products:
            pairs = [(c, p) for c in creators for p in products]
            batch = Batch(key, tier, creators, products, handles if handles and len(creators) == 1 else [])
            assert self.campaign is not None
            prepared = self.client.prepare_create(**create_fields(self.campaign, batch))
            answer = await self.call(prepared, purpose="invite", batch_key=key, attempt=attempt + 1,
                                     claim=pairs if claim else ())
            if answer is None:
                if claim:
                    self.counts.unsent += len(pairs)  # never claimed: still planned
                else:
                    self._release(pairs)
                return
            claim = False
            outcome = answer.outcome
            if outcome is Outcome.OK:
                # written with the next request's reservation (the pairs are pending until then: a crash in
                # between leaves them to reconciliation, as one during the request would)
                conflicts = set(answer.conflicts()) & set(pairs)
                if conflicts:
                    self.ledger.mark(self.brand, sorted(conflicts), CONFLICT, code=16024022,
                                     message="already invited (reported by the platform)", defer=True)
                sent = [p for p in pairs if p not in conflicts] if conflicts else pairs
                self.ledger.mark(self.brand, sent, SENT, collaboration_id=answer.collaboration_id(), defer=True)
                self.counts.sent += len(sent)
                self.counts.conflict += len(conflicts)
                return
            if outcome is Outcome.DUPLICATE:
                named = set(answer.conflicts()) & set(pairs)
                if not named:
                    if len(pairs) == 1:
                        named = set(pairs)
                    else:
                        existing = await self.find_existing(creators, products, key)
                        if existing is None:
                            self._release(pairs)
                            return
                        named = set(existing) & set(pairs)
                self.ledger.mark(self.brand, sorted(named), CONFLICT, code=answer.code, message=answer.message)
                self.counts.conflict += len(named)
                await self._send_rest([p for p in pairs if p not in named], tier, key, handles)
                return
            if outcome is Outcome.INELIGIBLE:
                named_creators = answer.named_ids(set(creators))
                if not named_creators and len(creators) > 1:
                    # The platform did not say who: split the batch until it does.
                    half = len(creators) // 2
                    await self.send(tier, creators[:half], products, key, handles)
                    await self.send(tier, creators[half:], products, key, handles)
                    return
                named_creators = named_creators or set(creators)
                bad = [(c, p) for c, p in pairs if c in named_creators]
                self.ledger.mark(self.brand, bad, INELIGIBLE, code=answer.code, message=answer.message)
                self.ledger.flag_creators(self.brand, sorted(named_creators), "ineligible",
                                          f"{answer.code}: {answer.message}")
                self.counts.ineligible += len(bad)
                creators = [c for c in creators if c not in named_creators]
                continue
            if outcome is Outcome.PRODUCT:
                named_products = answer.named_ids(set(products)) or (set(products) if len(products) == 1 else set())
                if not named_products:
                    half = len(products) // 2
                    await self.send(tier, creators, products[:half], key, handles)
                    await self.send(tier, creators, products[half:], key, handles)
                    return
                bad = [(c, p) for c, p in pairs if p in named_products]
                self._fail(bad, answer, "product not owned by the shop: fix the campaign's products")
                products = [p for p in products if p not in named_products]
                continue
            if outcome in (Outcome.OUTREACH_QUOTA,):
                self.halt(Stop("outreach_quota", "the weekly outreach quota is spent (16024019)", EXIT_QUOTA,
                               hint="inviting resumes when the outreach week refreshes "
                               "(Sunday 12:00 GMT-8 by default)"))
                self._release(pairs)
                return
            if outcome in (Outcome.DAILY_QUOTA, Outcome.AUTH):
                self._release(pairs)
                return
            if outcome is Outcome.RATE_LIMITED:
                self.counts.retries += 1
                continue  # the pacer now waits out Retry-After for every worker
            if outcome is Outcome.TRANSIENT:
                attempt += 1
                self.counts.retries += 1
                if answer.maybe_applied:
                    await asyncio.sleep(self.options.settle_s)
                    existing = await self.find_existing(creators, products, key)
                    if existing is None:
                        self.counts.uncertain += len(pairs)  # stays pending: reconciled by the next run
                        self._error(pairs, answer, "outcome unknown; left pending for reconciliation")
                        return
                    done = [p for p in pairs if p in existing]
                    for cid in {existing[p] for p in done}:
                        self.ledger.mark(self.brand, [p for p in done if existing[p] == cid], SENT,
                                         collaboration_id=cid or None, message="confirmed by a conflicts check")
                    self.counts.sent += len(done)
                    rest = [p for p in pairs if p not in existing]
                    if len(done):
                        await self._send_rest(rest, tier, key, handles)
                        return
                if attempt >= self.options.max_attempts:
                    self._error(pairs, answer, f"gave up after {attempt} attempts; left for a later run")
                    self._release(pairs)
                    return
                await self._backoff(attempt, answer.retry_after)
                continue
            # Unknown code: non-retryable; keep the code and message.
            self._fail(pairs, answer, "not retried: unknown answer")
            return

    async def _send_rest(self, rest: Iterable[Pair], tier: str, key: str, handles: list[str] | None) -> None:
        for creators, products in rectangles(list(rest)):
            await self.send(tier, creators, products, key, handles)

    def _fail(self, pairs: Sequence[Pair], answer: ApiAnswer, note: str) -> None:
        self.ledger.mark(self.brand, pairs, FAILED, code=answer.code, message=answer.message or answer.describe())
        self.counts.failed += len(pairs)
        self._error(pairs, answer, note)

    def _error(self, pairs: Sequence[Pair], answer: ApiAnswer, note: str) -> None:
        self.errors.append({
            "outcome": answer.outcome.value, "code": answer.code, "http_status": answer.http_status,
            "message": answer.message, "note": note, "pairs": len(pairs),
            "creators": sorted({c for c, _ in pairs})[:10],
        })

    # --- result ------------------------------------------------------------------------------
    def exit_code(self) -> int:
        if self.stop is not None:
            return self.stop.exit_code
        if self.counts.failed or self.counts.uncertain or (self.errors and self.counts.unsent):
            return EXIT_PARTIAL if self.counts.sent else EXIT_FAILURE
        return EXIT_OK

    async def heartbeat(self) -> None:
        """Beat the brand's lock every `heartbeat_s` until a stop ends the waits, and checkpoint the ledger
        (between requests: see `Ledger.checkpoint_later`); a lost lock stops the run."""
        while await self.waits.sleep(self.options.heartbeat_s):
            try:
                self.ledger.heartbeat(self.brand, self.run_id)
                self.ledger.checkpoint()
            except LockLost as exc:
                self.lost(exc)
                return
            except Exception as exc:  # noqa: BLE001 - the ledger failed: the run stops, and says why
                self.halt(Stop("error", f"the lock's heartbeat failed: {exc}", EXIT_FAILURE))
                return


def check_batches(batches: Sequence[Batch]) -> None:
    """A plan that lists a pair twice (a batch twice, a creator twice in a batch) would send it twice: refused
    before anything is sent."""
    seen: dict[Pair, str] = {}
    for b in batches:
        for pair in b.pairs:
            if pair in seen:
                where = f"batch {b.key}" + (f" and batch {seen[pair]}" if seen[pair] != b.key else " (twice)")
                raise BadInput(f"the plan lists creator {pair[0]} with product {pair[1]} twice ({where}): "
                               "refused, nothing was sent", hint="make a new plan with `trendio plan --out`")
            seen[pair] = b.key


def rectangles(pairs: Sequence[Pair]) -> list[tuple[list[str], list[str]]]:
    """Regroup loose pairs into requests (creators x products) with no pair outside the set."""
    by_creator: dict[str, list[str]] = {}
    for c, p in pairs:
        by_creator.setdefault(c, []).append(p)
    groups: dict[tuple[str, ...], list[str]] = {}
    for c, ps in by_creator.items():
        groups.setdefault(tuple(sorted(set(ps))), []).append(c)
    out = []
    for products, creators in groups.items():
        for i in range(0, len(creators), MAX_CREATORS_PER_CREATE):
            for j in range(0, len(products), MAX_PRODUCTS_PER_CREATE):
                out.append((creators[i:i + MAX_CREATORS_PER_CREATE], list(products[j:j + MAX_PRODUCTS_PER_CREATE])))
    return out

