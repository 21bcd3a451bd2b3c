"""The executor: the only place that sends invitations. Every request admitted first (admission.py: the run's
lock checked, quota reserved, pairs claimed pending and a send slot taken, in one ledger transaction), every
answer recorded per pair, and nothing sent twice: an uncertain create is reconciled with the platform before
anything is resent. A run that lost its brand's lock stops at once."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from trendio_cli.admission import Admission, Later, NotSent, Waits
from trendio_cli.api.answers import HINTS, ApiAnswer, Outcome
from trendio_cli.api.client import ApiClient, PreparedRequest
from trendio_cli.api.endpoints import (
    CHECK_CONFLICTS,
    CHECK_ELIGIBILITY,
    GET_COLLABORATION,
    MAX_CREATORS_PER_CREATE,
    MAX_CREATORS_PER_ELIGIBILITY_CHECK,
    MAX_PRODUCTS_PER_CREATE,
    OUTREACH_QUOTA,
    SEARCH_COLLABORATIONS,
    SEARCH_ORDERS,
    Endpoint,
)
from trendio_cli.api.tokens import RefreshFailed
from trendio_cli.campaign import Campaign, Limits
from trendio_cli.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, EXIT_QUOTA, EXIT_REFUSED, BadInput
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
    iso,
    parse_iso,
)
from trendio_cli.planner import Batch, collaboration_name, create_fields
from trendio_cli.quota import OutreachWeek, QuotaDay

Pair = tuple[str, str]
SYNC_ENDPOINTS = (SEARCH_COLLABORATIONS.name, GET_COLLABORATION.name, SEARCH_ORDERS.name)
EXIT_INTERRUPTED = 130
# refusals that depend on the shop's weekly standing (16024021: above the follower count its GMV tier may
# reach) or on the seller's own choice (16024018: blocked, which the seller can undo), not on the creator
FOR_THE_WEEK = frozenset({16024021, 16024018})
MAX_NAME_SEARCH_PAGES = 5  # of 100: a name is unique, so more than one page means the match is loose
# Answers that mean the campaign itself is wrong: it stops at the first one (exit 2), naming what.
STOPS_CAMPAIGN = (Outcome.PRODUCT, Outcome.SENSITIVE, Outcome.INVALID)
RETRY_AFTER_CAP_S = 60.0  # no Retry-After is waited longer than this
# stops that end every wait at once (nothing more leaves); after the others (a quota, --max-requests) the
# requests already under way may still reconcile what they sent
URGENT_STOPS = ("interrupted", "lock_lost", "error", "unreachable", "auth", "campaign_refused", "unsupported",
                "unknown_answers", "outreach_quota")


@dataclass
class ExecuteOptions:
    max_requests: int | None = None
    concurrency: int = 64  # enough in flight for 50 requests/s even at 500 ms latency
    max_attempts: int = 6  # per batch, for transient failures
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 20.0
    settle_s: float = 2.0  # before reconciling an uncertain create, let the platform finish it
    heartbeat_s: float = 5.0
    # per batch, to find creators refused without being named; None: twice the batch's creators, which always
    # isolates every one of them (a complete halving of n creators takes at most 2n - 2 requests)
    max_split_requests: int | None = None
    unknown_streak: int = 3  # undocumented answers in a row that stop the brand
    # requests in a row that never left (refused connection, DNS, connect timeout), over at least this long:
    # the API cannot be reached, and the brand stops with one line
    unreachable_after: int = 3
    unreachable_s: float = 2.0


@dataclass
class Stop:
    # daily_quota | outreach_quota | max_requests | auth | campaign_refused | unsupported | unknown_answers |
    # interrupted | lock_lost | unreachable | error
    reason: str
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
    resent: int = 0  # create requests that sent a batch's rest again (after conflicts or ineligible creators)
    split_requests: int = 0  # create requests spent finding creators refused without being named
    conflict_checks: int = 0  # reads that reconcile (name searches, details, conflicts checks)
    eligibility_checks: int = 0  # reads before inviting (who can be reached, the outreach figures), as plan counts
    unreachable: int = 0  # creators left out until the outreach week ends (the eligibility check, 16024021/18)
    token_refreshes: int = 0
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
    # 2026 endpoints the platform answered (True) or does not know (False) this run; absent: not asked yet
    capabilities: dict[str, bool] = field(default_factory=dict)
    _open_by_user: dict[str, str] = field(default_factory=dict)  # a legacy create's plain ids -> open ids
    _unknown_streak: int = 0
    unavailable_products: set[str] = field(default_factory=set)  # 50001702 for every creator: left out this run
    _refresh_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

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
                   attempt: int = 1, claim: Sequence[Pair] = (), rekey: Sequence[Pair] = ()) -> ApiAnswer | None:
        """One request, as the reference's error table says to treat its answer (tiktok-shop-api.md): an
        expired token is refreshed once per run and the request sent again; configuration and credential
        errors stop the brand after this one request; an unknown path or version stops the run, except on a
        2026 endpoint being probed (then it is simply not used again this run); a streak of undocumented
        answers stops the brand. None when nothing was sent (see `_send_one`)."""
        endpoint = prepared.endpoint
        if endpoint.probe and not self.offers(endpoint):
            return None
        generation = self.client.token_generation
        answer = await self._send_one(prepared, purpose=purpose, batch_key=batch_key, attempt=attempt, claim=claim,
                                      rekey=rekey)
        if answer is None:
            return None
        outcome = answer.outcome
        if outcome is Outcome.TOKEN_EXPIRED:
            # (the first attempt claimed or re-keyed the pairs: the second sends them as they are)
            if await self._refresh_token(generation):
                return await self.call(prepared, purpose=purpose, batch_key=batch_key, attempt=attempt + 1)
            return answer
        if outcome is Outcome.AUTH and answer.code in (36009004, 101000) and self._use_environment_tokens():
            # a refreshed pair from the token store that the platform no longer takes: once, the environment's
            return await self.call(prepared, purpose=purpose, batch_key=batch_key, attempt=attempt + 1)
        if endpoint.probe and (outcome in (Outcome.OK, Outcome.UNSUPPORTED) or _not_offered(answer)):
            self.capabilities[endpoint.name] = outcome is Outcome.OK
        elif outcome is Outcome.UNSUPPORTED:
            self.halt(Stop("unsupported", f"the platform refused {endpoint.method} {endpoint.path}: "
                           f"{answer.describe()}", EXIT_FAILURE, hint=answer.hint))
        if outcome is Outcome.UNKNOWN:
            self._unknown_streak += 1
            if self._unknown_streak >= self.options.unknown_streak:
                self.halt(Stop("unknown_answers", f"{self._unknown_streak} answers in a row that the reference "
                               f"does not document, the last {answer.describe()}", EXIT_FAILURE,
                               hint="the platform may have changed; the codes and messages are in `trendio runs "
                                    "--json` and the ledger's api_calls table"))
        elif outcome is not Outcome.TRANSIENT and outcome is not Outcome.RATE_LIMITED:
            self._unknown_streak = 0
        return answer

    def _use_environment_tokens(self) -> bool:
        if self.client.forget_stored_tokens():
            if self.stop is not None and self.stop.reason == "auth":
                self.stop = None  # the refusal was the stored pair's, not the environment's
            return True
        return False

    async def _refresh_token(self, generation: int) -> bool:
        """Refresh the access token after a 105002, once per run (and once for all workers: those that met
        the expired token while another refreshed it just use the new one). False: the brand stops."""
        async with self._refresh_lock:
            if self.client.token_generation != generation:
                return True  # another worker refreshed it meanwhile
            if self.counts.token_refreshes >= 1:
                self.halt(Stop("auth", "the access token expired (105002) again after it was refreshed in this "
                               "run", EXIT_REFUSED, hint=HINTS[105002]))
                return False
            try:
                await self.client.refresh_access_token(brand=self.brand)
            except RefreshFailed as exc:
                self.halt(Stop("auth", f"the access token expired and could not be refreshed: {exc.message}",
                               EXIT_REFUSED, hint=exc.hint))
                return False
            self.counts.token_refreshes += 1
            return True

    async def _send_one(self, prepared: PreparedRequest, *, purpose: str, batch_key: str | None = None,
                        attempt: int = 1, claim: Sequence[Pair] = (), rekey: Sequence[Pair] = ()
                        ) -> ApiAnswer | None:
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
                                                batch_key, attempt, share, claim, rekey))
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
        elif purpose == "reconcile":
            self.counts.conflict_checks += 1
        elif prepared.endpoint in (CHECK_ELIGIBILITY, OUTREACH_QUOTA):  # the reads before inviting
            self.counts.eligibility_checks += 1
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
        elif answer.outcome is Outcome.AUTH and not (prepared.endpoint.probe and _not_offered(answer)):
            self.halt(Stop("auth", f"credentials rejected after one request: {answer.describe()}", EXIT_REFUSED,
                           hint=answer.hint))
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

    async def pause(self, seconds: float) -> None:
        """A wait of the run's own (letting the platform settle): an urgent stop ends it at once."""
        await self.waits.sleep(seconds)

    async def _backoff(self, attempt: int, retry_after: float | None = None) -> None:
        """Exponential, with jitter, capped; never shorter than a Retry-After (itself capped); a stop ends it."""
        delay = min(self.options.backoff_cap_s, self.options.backoff_base_s * 2 ** (attempt - 1))
        delay = random.uniform(delay / 2, delay)
        if retry_after is not None and retry_after == retry_after:
            delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
        await self.waits.sleep(delay)

    # --- reconciliation ----------------------------------------------------------------------
    async def read(self, prepared: PreparedRequest, *, purpose: str, batch_key: str | None = None,
                   record_failure: bool = False, accept: tuple[Outcome, ...] = ()) -> ApiAnswer | None:
        """A call that changes nothing on the platform, retried with backoff on transient answers.
        The successful answer (or one whose outcome is in `accept`: an answer, not a failure, to this caller),
        or None when it cannot be had now (`record_failure` keeps why in errors)."""
        for attempt in range(1, self.options.max_attempts + 1):
            answer = await self.call(prepared, purpose=purpose, batch_key=batch_key, attempt=attempt)
            if answer is None or answer.ok or answer.outcome in accept:
                return answer
            if not answer.retryable or (self.stop is not None and purpose != "reconcile"):
                if record_failure:
                    self.errors.append({"outcome": answer.outcome.value, "code": answer.code,
                                        "message": answer.message})
                return None
            self.counts.retries += 1
            await self._backoff(attempt, answer.retry_after)
        return None

    # --- what the platform offers -------------------------------------------------------------
    def offers(self, endpoint: Endpoint) -> bool:
        """False once the platform has answered that it does not know a (2026) endpoint this run."""
        return self.capabilities.get(endpoint.name) is not False

    # --- reading back what a create did (reconciliation) --------------------------------------
    async def created_by(self, key: str, campaign_id: str, creators: Sequence[str],
                         products: Sequence[str]) -> dict[Pair, str] | None:
        """What one create request created, read back by the official route: the shop's collaborations are
        searched by the request's unique name, and each one found is read (the detail is the only place that
        lists its creators and products). The pairs of (creators x products) it created, with their
        collaboration; empty if it created nothing; None if the platform cannot tell now."""
        name = collaboration_name(campaign_id, key)
        ids: list[str] = []
        for status in ("VALID", "COMPLETED"):  # a collaboration that has ended since is COMPLETED
            # the name match is documented as fuzzy (KEY.1 also finds KEY.10, KEY.11, ...); where it finds more
            # than can be read, the request's first creator, who is in whatever it created, narrows it down
            for creator in (None, *creators[:1]):
                named = await self._named(name, status, creator, key)
                if named is None:
                    return None
                ids, complete = named
                if ids or complete:
                    break
            else:
                return None  # more matches than the pages read: not seeing the name is no proof of nothing
            if ids:
                break
        found: dict[Pair, str] = {}
        for cid in dict.fromkeys(ids):
            pairs = await self.collaboration_pairs(cid, key)
            if pairs is None:
                return None
            found.update({pair: cid for pair in pairs if pair[0] in creators and pair[1] in products})
        return found

    async def _named(self, name: str, status: str, creator: str | None,
                     key: str) -> tuple[list[str], bool] | None:
        """The ids of the collaborations in a status with exactly this name (of one creator, when given), and
        whether every match was read; None if the platform cannot tell now."""
        ids: list[str] = []
        token: str | None = None
        for _ in range(MAX_NAME_SEARCH_PAGES):
            answer = await self.read(self.client.prepare_search_collaborations(
                status=status, name=name, creator_open_id=creator, page_size=100, page_token=token),
                purpose="reconcile", batch_key=key)
            if answer is None:
                return None
            ids += [str(c["id"]) for c in collaborations_in(answer.data)
                    if str(c.get("name", "")) == name and c.get("id") not in (None, "")]
            token = answer.data.get("next_page_token") or None
            if not token:
                return ids, True
        return ids, False

    async def collaboration_pairs(self, collaboration_id: str, key: str | None = None) -> set[Pair] | None:
        """The (creator open id, product) pairs of one collaboration, from its detail; None if unreadable."""
        answer = await self.read(self.client.prepare_get_collaboration(collaboration_id), purpose="reconcile",
                                 batch_key=key, accept=(Outcome.NO_ACCESS,))
        if answer is None:
            return None
        if answer.outcome is Outcome.NO_ACCESS:
            # 50001700: the shop has no such collaboration, so it holds nothing of ours; 50001701 (expired)
            # may still hold what it held: that cannot be told from here
            return set() if answer.code == 50001700 else None
        detail = answer.data.get("target_collaboration")
        detail = detail if isinstance(detail, dict) else answer.data
        creators = [self._open_id(str(c)) for c in _ids_in(detail.get("creators"),
                                                            "creator_open_id", "creator_user_open_id",
                                                            "creator_user_id")]
        products = _ids_in(detail.get("products"), "id", "product_id")
        return {(c, p) for c in creators for p in products}

    async def existing_pairs(self, creators: Sequence[str], products: Sequence[str],
                             key: str | None) -> dict[Pair, str] | None:
        """Which of these pairs exist on the platform already, by the 2026 conflicts check; None if the
        platform does not offer it or cannot tell now."""
        found: dict[Pair, str] = {}
        for i in range(0, len(creators), MAX_CREATORS_PER_CREATE):
            for j in range(0, len(products), MAX_PRODUCTS_PER_CREATE):
                if not self.offers(CHECK_CONFLICTS):
                    return None
                cs, ps = creators[i:i + MAX_CREATORS_PER_CREATE], products[j:j + MAX_PRODUCTS_PER_CREATE]
                answer = await self.read(self.client.prepare_check_conflicts(cs, ps), purpose="reconcile",
                                         batch_key=key)
                if answer is None:
                    return None
                items = answer.data.get("conflict_items") or []
                for x in items if isinstance(items, list) else []:
                    if isinstance(x, dict):
                        pair = (str(x.get("creator_open_id") or x.get("creator_user_open_id") or ""),
                                str(x.get("product_id") or ""))
                        if pair[0] in cs and pair[1] in ps:
                            found[pair] = str(x.get("existing_collaboration_id") or "")
        return found

    async def reconcile_pending(self) -> None:
        """Pairs a dead run left pending: read back what each of its create requests did (by the request's
        name), mark the invited pairs sent, and free the rest for sending again. Pairs the platform cannot
        account for now stay pending (the planner leaves them out; the next run asks again)."""
        pending = self.ledger.pending(self.brand)
        if not pending:
            return
        newest = max(parse_iso(p.claimed_at) for p in pending)
        wait = self.options.settle_s - (time.time() - newest)
        if wait > 0:
            await self.pause(wait)
        by_request: dict[tuple[str, str], list[Pair]] = {}
        for p in pending:
            by_request.setdefault((p.campaign or "", p.batch_key or ""), []).append((p.creator_id, p.product_id))
        for (campaign_id, key), pairs in by_request.items():
            creators = sorted({c for c, _ in pairs})
            products = sorted({p for _, p in pairs})
            found = await self.created_by(key, campaign_id, creators, products) if key else {}
            if found is not None and len(found) < len(pairs) and self.offers(CHECK_CONFLICTS):
                # a second opinion where the name finds less than everything (a request of an older version,
                # whose name was not unique): the pairs the platform has, whichever collaboration holds them
                more = await self.existing_pairs(creators, products, key)
                if more is not None:
                    found = {**more, **found}
            if found is None:
                self.counts.uncertain += len(pairs)
                continue
            hit = [pair for pair in pairs if pair in found]
            for cid in {found[pair] for pair in hit}:
                self.ledger.mark(self.brand, [pair for pair in hit if found[pair] == cid], SENT,
                                 collaboration_id=cid or None, message="reconciled after an interrupted run")
            free = [pair for pair in pairs if pair not in found]
            self.ledger.unclaim(self.brand, free)
            self.counts.reconciled_sent += len(hit)
            self.counts.reconciled_free += len(free)

    # --- who can be reached (2026 eligibility check) -------------------------------------------
    async def screen(self, creator_ids: Sequence[str], since_iso: str, until_iso: str) -> dict[str, str] | None:
        """Ask the platform which of these creators an invitation can reach (100 a request), for those not
        checked since `since`; the unreachable are flagged with the reason until `until` (the outreach week's
        end). Returns creator -> reason; None when the platform does not offer the check (then the create
        answers tell, as before it existed)."""
        if not self.offers(CHECK_ELIGIBILITY):
            return None
        checked = self.ledger.checked_since(self.brand, since_iso)
        todo = [c for c in dict.fromkeys(creator_ids) if c not in checked]
        unreachable: dict[str, str] = {}
        for i in range(0, len(todo), MAX_CREATORS_PER_ELIGIBILITY_CHECK):
            chunk = todo[i:i + MAX_CREATORS_PER_ELIGIBILITY_CHECK]
            answer = await self.read(self.client.prepare_check_eligibility(chunk), purpose="invite")
            if answer is None:
                break  # the rest go unchecked: the create answers will tell
            results = answer.data.get("creator_eligibility_results") or []
            seen: set[str] = set()
            for r in results if isinstance(results, list) else []:
                cid = str(r.get("creator_open_id") or "") if isinstance(r, dict) else ""
                if cid in chunk:
                    seen.add(cid)
                    reason = unreachable_reason(r)
                    if reason:
                        unreachable[cid] = reason
            self.ledger.record_checks(self.brand, seen, iso(time.time()))
        by_reason: dict[str, list[str]] = {}
        for cid, reason in unreachable.items():
            by_reason.setdefault(reason, []).append(cid)
        for reason, ids in by_reason.items():
            self.ledger.flag_creators(self.brand, ids, "unreachable", reason, until_iso)
        self.counts.unreachable += len(unreachable)
        return unreachable if self.offers(CHECK_ELIGIBILITY) or unreachable else None

    async def outreach_quota(self) -> dict[str, Any] | None:
        """The platform's own figures for the shop's weekly outreach (2026), kept in the ledger; None when it
        does not offer them."""
        if not self.offers(OUTREACH_QUOTA):
            return None
        answer = await self.read(self.client.prepare_outreach_quota(), purpose="invite")
        if answer is None:
            return None
        data = answer.data.get("data") if isinstance(answer.data.get("data"), dict) else answer.data
        self.ledger.save_outreach_quota(self.brand, data)
        return data

    # --- sending -----------------------------------------------------------------------------
    async def run(self, batches: Sequence[Batch]) -> None:
        """Send every batch, `concurrency` at a time. The first failure of a worker stops the run (nothing more
        leaves, the others finish what is in flight and record it) and is raised once, when they are done."""
        check_batches(batches)
        self.counts.batches = len(batches)
        self.counts.pairs_planned = sum(len(b.pairs) for b in batches)
        for b in batches:
            self._open_by_user.update(zip(b.user_ids, b.creator_ids))
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
                    await self.send_batch(batch)
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

    async def send_batch(self, batch: Batch) -> None:
        """One planned batch. Its first request claims the pairs (write-ahead); what the platform answers may
        turn it into further requests, each with a name of its own (the conflicts left out, ineligible creators
        isolated), until every pair has an outcome or the run stops."""
        budget = self.options.max_split_requests
        work = _BatchWork(batch, 2 * len(batch.creator_ids) if budget is None else budget)
        queue: deque[_Request] = deque([_Request(batch.key, list(batch.creator_ids), list(batch.product_ids),
                                                 fresh=True)])
        while queue:
            request = queue.popleft()
            if self.stop is not None:
                self._release(request.pairs)
                continue
            await self._create(work, request, queue)

    async def _create(self, work: _BatchWork, request: _Request, queue: deque[_Request]) -> None:
        """One create request, retried while the answer is transient; follow-up requests go on `queue`."""
        assert self.campaign is not None
        attempt = 0
        held = False  # the request's pairs are pending under its key (an attempt left)
        dropped = [p for p in request.products if p in self.unavailable_products]
        if dropped:  # found unavailable earlier in this run: not offered again in it, left for a later run
            # (a follow-up's pairs were claimed by the batch's first request)
            self._release([pair for pair in request.pairs if pair[1] in dropped])
            request.products = [p for p in request.products if p not in dropped]
            if not request.products:
                return
        while True:
            pairs = request.pairs
            prepared = self.client.prepare_create(**create_fields(self.campaign, work.batch(request)))
            # a request's first attempt claims its pairs (the batch's first request) or takes them over under its
            # own key (a follow-up): a reconciliation then finds what it did by its name
            answer = await self.call(prepared, purpose="invite", batch_key=request.key, attempt=attempt + 1,
                                     claim=pairs if not held and request.fresh else (),
                                     rekey=pairs if not held and not request.fresh else ())
            if answer is None:
                self._release(request.pairs)
                return
            held = answer.sent_at is not None or held  # it left: its pairs are pending under its key now
            outcome = answer.outcome
            listed = self._listed_conflicts(answer, set(pairs))
            if outcome is Outcome.OK and not answer.conflicts():
                self.ledger.mark(self.brand, pairs, SENT, collaboration_id=answer.collaboration_id(), defer=True)
                self.counts.sent += len(pairs)
                work.sent_products.update(request.products)
                return
            if listed:
                await self._after_conflicts(work, request, queue, answer, listed)
                return
            if outcome in (Outcome.OK, Outcome.DUPLICATE):
                await self._find_duplicates(work, request, queue, answer)
                return
            if outcome is Outcome.INELIGIBLE:
                self._after_ineligible(work, request, queue, answer)
                return
            if outcome in STOPS_CAMPAIGN:
                self._stop_campaign(answer, request)
                self._release(request.pairs)
                return
            if outcome is Outcome.OUTREACH_QUOTA:
                self.halt(Stop("outreach_quota", f"the weekly outreach quota is spent ({answer.code})", EXIT_QUOTA,
                               hint=answer.hint))
                self._release(request.pairs)
                return
            if outcome in (Outcome.DAILY_QUOTA, Outcome.AUTH, Outcome.TOKEN_EXPIRED, Outcome.UNSUPPORTED):
                self._release(request.pairs)  # `call` has stopped the brand or the run
                return
            if outcome is Outcome.RATE_LIMITED:
                self.counts.retries += 1
                continue  # admission now holds every worker for Retry-After
            if outcome is Outcome.TRANSIENT:
                attempt += 1
                self.counts.retries += 1
                if answer.maybe_applied:
                    await self.pause(self.options.settle_s)  # let the platform finish what it may be doing
                    created = await self.created_by(request.key, self.campaign.campaign, request.creators,
                                                    request.products)
                    if created is None:
                        self.counts.uncertain += len(pairs)  # stays pending: the next run reconciles it
                        self._error(pairs, answer, "outcome unknown; left pending for reconciliation")
                        return
                    if created:
                        self._mark_created(created, "confirmed by reading the collaboration back")
                        work.sent_products.update(p for _, p in created)
                        self.counts.resent += self._follow_up(work, queue, [p for p in pairs if p not in created],
                                                              request.tier)
                        return
                    # nothing was created: the same request (and name) is sent again
                if attempt >= self.options.max_attempts:
                    self._error(pairs, answer, f"gave up after {attempt} attempts; left for a later run")
                    self._release(request.pairs)
                    return
                await self._backoff(attempt, answer.retry_after)
                continue
            self._fail(pairs, answer, "not retried: an answer the reference does not document")
            return

    def _listed_conflicts(self, answer: ApiAnswer, pairs: set[Pair]) -> set[Pair]:
        """The request's pairs the answer lists as conflicts (plain ids of a legacy create mapped back)."""
        return {(self._open_id(c), p) for c, p in answer.conflicts()} & pairs

    async def _after_conflicts(self, work: _BatchWork, request: _Request, queue: deque[_Request],
                               answer: ApiAnswer, listed: set[Pair]) -> None:
        """A create answered with a conflicts list created nothing, for any creator in it (official affiliate
        integration guide). The listed pairs are conflicts; the rest go again in a request without them."""
        created: dict[Pair, str] = {}
        cid = answer.collaboration_id()
        if cid:  # a variant the reference does not describe: an id beside the list. What does it hold?
            held = await self.collaboration_pairs(cid, request.key)
            if held is None:
                self.counts.uncertain += len(request.pairs)
                self._error(request.pairs, answer, "conflicts listed beside a collaboration id that could not be "
                                                   "read; left pending for reconciliation")
                return
            created = {pair: cid for pair in request.pairs if pair in held}
            self._mark_created(created, "created beside a conflicts list")
        conflicts = sorted(listed - set(created))
        self.ledger.mark(self.brand, conflicts, CONFLICT, code=answer.code or 16024022,
                         message="already invited (listed by the platform as a conflict)", defer=True)
        self.counts.conflict += len(conflicts)
        rest = [p for p in request.pairs if p not in listed and p not in created]
        self.counts.resent += self._follow_up(work, queue, rest, request.tier)

    async def _find_duplicates(self, work: _BatchWork, request: _Request, queue: deque[_Request],
                               answer: ApiAnswer) -> None:
        """A duplicate answer that does not say which pairs: the conflicts check tells where the platform
        offers it; otherwise one pair is its own answer, and a larger request is split to find them."""
        pairs = request.pairs
        if len(pairs) == 1:
            self.ledger.mark(self.brand, pairs, CONFLICT, code=answer.code, message=answer.message, defer=True)
            self.counts.conflict += 1
            return
        existing = await self.existing_pairs(request.creators, request.products, request.key)
        if existing:
            named = sorted(set(existing) & set(pairs))
            self.ledger.mark(self.brand, named, CONFLICT, code=answer.code, message=answer.message, defer=True)
            self.counts.conflict += len(named)
            self.counts.resent += self._follow_up(work, queue, [p for p in pairs if p not in existing],
                                                  request.tier)
            return
        self._split(work, request, queue, answer)

    def _after_ineligible(self, work: _BatchWork, request: _Request, queue: deque[_Request],
                          answer: ApiAnswer) -> None:
        """Nothing was created. Creators the answer names are ineligible (flagged, never planned again; for
        FOR_THE_WEEK codes, left out until the outreach week ends) and the rest go again; when it names none,
        the request is split until each refusal has one creator.
        50001702 ("an unavailable creator or product") may be a product's doing: a product it names, or one
        that a split finds refused with every creator alone, is left out for the rest of the run."""
        unavailable = answer.code == 50001702
        products = answer.named_ids(set(request.products)) if unavailable else set()
        if products:
            self._drop_products(work, request, queue, products, answer)
            return
        users = {u: c for u, c in work.user_of.items() if c in request.creators}
        named = {self._open_id(x) for x in answer.named_ids(set(request.creators) | set(users))}
        named &= set(request.creators)
        if not named and unavailable and len(request.products) > 1:
            self._split(work, request, queue, answer, products_first=True)  # a product is likelier than all
            return
        if not named and len(request.creators) == 1:
            product = request.products[0]
            if unavailable and product not in work.sent_products:
                # one creator, one product, and that product has gone out with nobody yet: cannot tell which
                work.lone_refusals[product] = work.lone_refusals.get(product, 0) + 1
                if work.lone_refusals[product] >= 3:
                    self._drop_products(work, request, queue, {product}, answer)
                else:  # neither is blamed: the pair waits for a later run
                    self._release(request.pairs)
                    self._error(request.pairs, answer, "refused as unavailable: the creator or the product; "
                                                       "left for a later run")
                return
            named = set(request.creators)
        if not named:
            self._split(work, request, queue, answer)
            return
        bad = [(c, p) for c, p in request.pairs if c in named]
        reason = f"{answer.code}: {answer.message}"
        if answer.code in FOR_THE_WEEK:
            # the shop's own standing, not the creator's: left out until the outreach week ends, as the
            # eligibility check's answer would have, and their pairs wait for then
            week = OutreachWeek.at(datetime.now(timezone.utc), self.campaign.limits)
            self._release(bad)
            self.ledger.flag_creators(self.brand, sorted(named), "unreachable", reason, iso(week.resets_at.timestamp()))
            self.counts.unreachable += len(named)
        else:
            self.ledger.mark(self.brand, bad, INELIGIBLE, code=answer.code, message=answer.message, defer=True)
            self.ledger.flag_creators(self.brand, sorted(named), "ineligible", reason)
            self.counts.ineligible += len(bad)
        self.counts.resent += self._follow_up(work, queue, [p for p in request.pairs if p[0] not in named],
                                              request.tier)

    def _drop_products(self, work: _BatchWork, request: _Request, queue: deque[_Request], products: set[str],
                       answer: ApiAnswer) -> None:
        """Products the platform will not take now (50001702, "remove it and try again"): left out for the rest of
        the run, their pairs back to the plan for a later run (a product may be available again)."""
        self.unavailable_products |= products
        gone = [p for p in request.pairs if p[1] in products]
        self._release(gone)
        self._error(gone, answer, f"product(s) {', '.join(sorted(products))} unavailable on the platform: left out "
                                  f"for the rest of the run, their pairs for a later one")
        self.counts.resent += self._follow_up(work, queue, [p for p in request.pairs if p[1] not in products],
                                              request.tier)

    def _split(self, work: _BatchWork, request: _Request, queue: deque[_Request], answer: ApiAnswer,
               products_first: bool = False) -> None:
        """Halve the request (creators first, or products first) to find the pairs an answer refused without
        naming them; the requests this spends are bounded per batch (`max_split_requests`) and counted."""
        creators, products = request.creators, request.products
        by_products = len(creators) == 1 or (products_first and len(products) > 1)
        halves = ([(creators, products[:len(products) // 2]), (creators, products[len(products) // 2:])]
                  if by_products else
                  [(creators[:len(creators) // 2], products), (creators[len(creators) // 2:], products)])
        if work.splits_left < len(halves):
            self._error(request.pairs, answer, "the platform refused without naming whom, and this batch's split "
                                               "requests are spent; left for a later run")
            self._release(request.pairs)
            return
        work.splits_left -= len(halves)
        self.counts.split_requests += len(halves)
        for cs, ps in halves:
            queue.appendleft(_Request(work.next_key(), cs, ps, request.tier))

    def _follow_up(self, work: _BatchWork, queue: deque[_Request], rest: Sequence[Pair], tier: str) -> int:
        """Queue the requests that send `rest` (already claimed) again, each with its own name; how many."""
        shapes = rectangles(list(rest))
        for creators, products in shapes:
            queue.append(_Request(work.next_key(), creators, products, tier))
        return len(shapes)

    def _mark_created(self, created: dict[Pair, str], note: str) -> None:
        for cid in set(created.values()):
            done = [pair for pair, c in created.items() if c == cid]
            self.ledger.mark(self.brand, done, SENT, collaboration_id=cid or None, message=note, defer=True)
            self.counts.sent += len(done)

    def _stop_campaign(self, answer: ApiAnswer, request: _Request, why: str | None = None) -> None:
        """The campaign itself is wrong (a product not the shop's, words the platform refuses, a field it
        refuses): one line that names what, and the campaign stops at this first occurrence."""
        assert self.campaign is not None
        products = sorted(answer.named_ids(set(request.products)))
        if why is None and answer.outcome is Outcome.PRODUCT:
            why = ("product(s) " + ", ".join(products) if products else "a product of the campaign") + \
                  " not the shop's"
        elif why is None and answer.outcome is Outcome.SENSITIVE:
            tier = next((t for t in self.campaign.tiers if t.name == request.tier), None)
            where = f"tier {tier.name}'s message" if tier is not None and tier.message else "the campaign's message"
            why = f"{where} contains words the platform refuses: {self.campaign.message_for(tier)[:80]!r}"
        elif why is None:
            why = f"the platform refused a field of the request: {answer.message or 'invalid params'}"
        self.halt(Stop("campaign_refused", f"campaign {self.campaign.campaign}: {why} ({answer.code})",
                       EXIT_BAD_INPUT, hint=answer.hint))

    def _release(self, pairs: Sequence[Pair]) -> None:
        """The platform did not act on these pairs: they go back to the plan, for this run or a later one
        (pending ones, that is: a request reserved but never sent claimed them too)."""
        self.ledger.unclaim(self.brand, pairs)
        self.counts.unsent += len(pairs)

    def _open_id(self, creator: str) -> str:
        return self._open_by_user.get(creator, creator)

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



@dataclass
class _Request:
    """One create request of a batch: its key (hence its collaboration name) and what it invites."""

    key: str
    creators: list[str]
    products: list[str]
    tier: str = ""
    fresh: bool = False  # the batch's first request: its pairs are still planned (a follow-up's are pending)

    @property
    def pairs(self) -> list[Pair]:
        return [(c, p) for c in self.creators for p in self.products]


class _BatchWork:
    """What one batch's requests share: its request keys, its split budget, its creators' handles and ids."""

    def __init__(self, batch: Batch, split_budget: int) -> None:
        self.source = batch
        self.splits_left = split_budget
        self.lone_refusals: dict[str, int] = {}  # product -> one-creator requests of it refused as unavailable
        self.sent_products: set[str] = set()  # products of this batch the platform took with some creator
        self._next = 0
        self.handle_of = dict(zip(batch.creator_ids, batch.handles)) if batch.handles else {}
        self.user_of = dict(zip(batch.user_ids, batch.creator_ids)) if batch.user_ids else {}
        self._user_by_open = dict(zip(batch.creator_ids, batch.user_ids)) if batch.user_ids else {}

    def next_key(self) -> str:
        self._next += 1
        return f"{self.source.key}.{self._next}"

    def batch(self, request: _Request) -> Batch:
        """The request as a batch of its own, for `create_fields` (personal messages only go one by one)."""
        b = self.source
        handles = [self.handle_of[request.creators[0]]] if len(request.creators) == 1 and self.handle_of else []
        users = [self._user_by_open[c] for c in request.creators] if self._user_by_open else []
        return Batch(request.key, request.tier or b.tier, request.creators, request.products, handles, [], users)


def _not_offered(answer: ApiAnswer) -> bool:
    """For a 2026 endpoint being probed, a refusal that means it is not ours to use (yet), not that the
    credentials are wrong: 105005 (the app lacks its scope), or 36009004 that names the version (the common
    error table's "Invalid API version")."""
    if answer.outcome is not Outcome.AUTH:
        return False
    return answer.code == 105005 or (answer.code == 36009004 and "version" in (answer.message or "").lower())


def collaborations_in(data: dict[str, Any]) -> list[dict[str, Any]]:
    items = data.get("target_collaborations") or data.get("collaborations") or []
    return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []


def _ids_in(items: Any, *keys: str) -> list[str]:
    """The ids of a list of objects (the first of `keys` each has), or of a plain list of ids."""
    out: list[str] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            value = next((item[k] for k in keys if item.get(k) not in (None, "")), None)
        else:
            value = item
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            out.append(str(value))
    return out


def unreachable_reason(result: dict[str, Any]) -> str | None:
    """Why the eligibility check says an invitation cannot reach a creator; None when it can. A creator
    already connected (or paired) with the shop costs no outreach and can always be reached."""
    if result.get("is_blocked") is True:
        return "eligibility: a block stands between the shop and the creator"
    if result.get("is_connected") is True or result.get("is_paired") is True:
        return None
    if result.get("is_creator_follower_count_threshold_met") is False:
        return "eligibility: outside the follower count the shop may reach out to"
    if result.get("is_creator_level_quota_available") is False:
        level = result.get("creator_level")
        return f"eligibility: no outreach quota left this week for creator level {level}"
    return None
