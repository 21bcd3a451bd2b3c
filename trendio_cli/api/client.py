"""The signed API client: one connection pool per run (`http11`), a fresh timestamp and signature per attempt."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from trendio_cli.api import endpoints as ep
from trendio_cli.api import tokens
from trendio_cli.api.answers import ApiAnswer, classify_exception, classify_response
from trendio_cli.api.credentials import Credentials, check_base_url
from trendio_cli.api.http11 import Http11Pool, HttpxPool, Timeouts, open_pool
from trendio_cli.api.signing import sign
from trendio_cli.api.tokens import TokenStore, auth_url_for


def _read_timeout() -> float:
    try:
        return max(0.1, float(os.environ.get("TRENDIO_HTTP_TIMEOUT", "30")))
    except ValueError:
        return 30.0


# An answer slower than the read timeout counts as a transient failure whose outcome is unknown.
DEFAULT_TIMEOUTS = Timeouts(connect=5.0, read=_read_timeout(), pool=60.0)
REDACTED = "***"


@dataclass(frozen=True)
class PreparedRequest:
    """A request before signing: what `dry-run` shows and what `execute` sends."""

    endpoint: ep.Endpoint
    path: str
    query: dict[str, str] = field(default_factory=dict)  # extra query beyond the signed auth parameters
    body: bytes | None = None

    @property
    def mutating(self) -> bool:
        return self.endpoint.mutating


@dataclass(frozen=True)
class SignedRequest:
    method: str
    url: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes | None

    def redacted(self, credentials: Credentials) -> dict[str, Any]:
        """A JSON-able view with the access token and app key hidden (the secret never appears at all)."""
        query = dict(self.query)
        query["app_key"] = _mask(query.get("app_key", ""))
        headers = {k: (REDACTED if k.lower() == "x-tts-access-token" else v) for k, v in self.headers.items()}
        body: Any = None
        if self.body:
            body = json.loads(self.body)
        return {"method": self.method, "url": self.url, "query": query, "headers": headers, "body": body}


def _mask(value: str) -> str:
    return value[:3] + REDACTED if len(value) > 6 else REDACTED


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def query_string(query: dict[str, str]) -> str:
    """`k=v&...`, percent-encoded where needed (the signed values are mostly hex, digits and plain keys, which
    need none: checking is much cheaper than urlencode's quoting of every character)."""
    return "&".join(f"{_quoted(k)}={_quoted(v)}" for k, v in query.items())


def _quoted(text: str) -> str:
    return text if _UNRESERVED.issuperset(text) else quote(text, safe="")


def encode_body(body: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def create_collaboration_body(
    *,
    name: str,
    message: str,
    end_time: int,
    products: Sequence[tuple[str, int]],
    creator_ids: Sequence[str],
    contact_email: str,
    free_sample: bool,
    sample_approval_exempt: bool = False,
    shop_ads_commission: int | None = None,
    version: str = ep.CREATE_COLLABORATION.version,
) -> dict[str, Any]:
    """The create body as the reference requires it: name, end_time (a string of Unix seconds), products with
    their commission, the creators (open ids on 202508, plain ids on the legacy 202405), the seller's contact
    email and both free-sample booleans, always; the message when there is one."""
    if not 1 <= len(creator_ids) <= ep.MAX_CREATORS_PER_CREATE:
        raise ValueError(f"1..{ep.MAX_CREATORS_PER_CREATE} creators per create request")
    if not 1 <= len(products) <= ep.MAX_PRODUCTS_PER_CREATE:
        raise ValueError(f"1..{ep.MAX_PRODUCTS_PER_CREATE} products per create request")
    if not contact_email:
        raise ValueError("the platform requires the seller's contact email")
    items: list[dict[str, Any]] = []
    for pid, rate in products:
        item: dict[str, Any] = {"id": pid, "target_commission_rate": rate}
        if shop_ads_commission is not None:
            item["shop_ads_commission_rate"] = shop_ads_commission
        items.append(item)
    body: dict[str, Any] = {"name": name}
    if message:
        body["message"] = message
    body.update({
        "end_time": str(end_time),
        "products": items,
        ep.CREATOR_IDS_FIELD[version]: list(creator_ids),
        "seller_contact_info": {"email": contact_email},
        "free_sample_rule": {
            "has_free_sample": bool(free_sample),
            "is_sample_approval_exempt": bool(sample_approval_exempt),
        },
    })
    return body


class ApiClient:
    """Builds, signs and sends requests; every answer comes back classified, never as an exception."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        create_endpoint: ep.Endpoint = ep.CREATE_COLLABORATION,
        clock: Callable[[], float] = time.time,
        auth_url: str | None = None,
        token_store: TokenStore | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.create_endpoint = create_endpoint
        self.auth_url = auth_url or auth_url_for(self.base_url)
        self.token_store = token_store or TokenStore()
        self.env_credentials = credentials
        # a pair refreshed earlier from the environment's token wins over it (tokens.py)
        self.credentials = self.token_store.effective(credentials, self.auth_url) if credentials.shop_cipher \
            else credentials
        self.token_generation = 0  # grows at every token change: who met the old token knows it has changed
        self.clock = clock
        self._timeouts = timeouts
        self._max_connections = max_connections
        self._transport = transport
        self._pool: Http11Pool | HttpxPool | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> ApiClient:
        self._pool = open_pool(self.base_url, timeouts=self._timeouts, max_connections=self._max_connections,
                               transport=self._transport)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def connection(self) -> asyncio.Future[Any]:
        """A connection set aside for the next `send`, so that the request leaves on its slot rather than after
        a connect: done at once when the pool has one idle, otherwise done once it is open (None if it cannot
        be opened: the request then meets that failure itself). `release()` it if it is not used."""
        loop = asyncio.get_running_loop()
        idle = None  # through httpx: it picks (or opens) the connection when it sends
        if isinstance(self._pool, Http11Pool):
            idle = self._pool.take_idle()
            if idle is None:
                return loop.create_task(self._open_connection())
        ready = loop.create_future()
        ready.set_result(idle)
        return ready

    async def _open_connection(self) -> Any:
        assert isinstance(self._pool, Http11Pool)
        try:
            return await self._pool.lease()
        except httpx.HTTPError:
            return None

    def release(self, connection: asyncio.Future[Any]) -> None:
        """Hand an unused connection back to the pool (when it is open, if it is still being opened)."""
        def give_back(ready: asyncio.Future[Any]) -> None:
            if not ready.cancelled() and ready.exception() is None and ready.result() is not None \
                    and isinstance(self._pool, Http11Pool):
                self._pool.give_back(ready.result())

        if connection.done():
            give_back(connection)
        else:
            connection.add_done_callback(give_back)

    async def refresh_access_token(self, brand: str = "") -> None:
        """Swap in a refreshed access token (`tokens.refresh`: stored before it is used). RefreshFailed if not."""
        failed = self.credentials.access_token
        self.credentials = await tokens.refresh(self.credentials, failed, auth_url=self.auth_url, brand=brand,
                                                store=self.token_store, transport=self._transport)
        self.token_generation += 1

    def forget_stored_tokens(self) -> bool:
        """The stored pair was refused: back to the environment's own tokens (True if there was one to drop)."""
        if not self.credentials.stored:
            return False
        self.token_store.forget(self.env_credentials, self.auth_url)
        self.credentials = self.env_credentials
        self.token_generation += 1
        return True

    # --- building ----------------------------------------------------------------------------
    def prepare(
        self,
        endpoint: ep.Endpoint,
        *,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
        **path_params: str,
    ) -> PreparedRequest:
        return PreparedRequest(
            endpoint=endpoint,
            path=endpoint.render(**path_params),
            query=dict(query or {}),
            body=encode_body(body) if body is not None else (b"{}" if endpoint.method == "POST" else None),
        )

    def sign(self, prepared: PreparedRequest, timestamp: int | None = None) -> SignedRequest:
        """Sign with a fresh timestamp (or the one given, for tests and the simulated clock of dry-run)."""
        creds = self.credentials
        ts = int(self.clock()) if timestamp is None else timestamp
        query = {**prepared.query, "app_key": creds.app_key, "timestamp": str(ts)}
        if prepared.endpoint.shop_scoped:
            query["shop_cipher"] = creds.shop_cipher
        query["sign"] = sign(creds.app_secret, prepared.path, query, prepared.body or b"")
        headers = {"x-tts-access-token": creds.access_token, "content-type": "application/json"}
        return SignedRequest(prepared.endpoint.method, self.base_url + prepared.path, query, headers, prepared.body)

    # --- sending -----------------------------------------------------------------------------
    async def send(self, prepared: PreparedRequest, connection: Any = None) -> ApiAnswer:
        """One attempt: sign now, send (on `connection`, from `connection()`, if given), classify. Retries are
        the caller's (they need the ledger)."""
        if self._pool is None:
            raise RuntimeError("ApiClient used outside `async with`")
        signed = self.sign(prepared)
        started = time.perf_counter()
        try:
            raw = await self._pool.request(signed.method, prepared.path + "?" + query_string(signed.query),
                                           signed.headers, signed.body, connection)
            answer = classify_response(raw.status, raw.headers, raw.body, mutating=prepared.mutating)
            answer.sent_at = raw.sent_at
        except httpx.HTTPError as exc:
            answer = classify_exception(exc, mutating=prepared.mutating)
        answer.latency_ms = (time.perf_counter() - started) * 1000
        return answer

    # --- endpoint helpers --------------------------------------------------------------------
    def prepare_create(self, **fields: Any) -> PreparedRequest:
        body = create_collaboration_body(version=self.create_endpoint.version, **fields)
        return self.prepare(self.create_endpoint, body=body)

    def prepare_search_collaborations(
        self, *, status: str = "VALID", page_size: int = 100, page_token: str | None = None,
        name: str | None = None, product_id: str | None = None, creator_open_id: str | None = None,
        accept_status: str | None = None,
    ) -> PreparedRequest:
        """One page of the shop's collaborations in a status (`collaboration_status` is required), by name or
        product when given. Each result carries counts only; `prepare_get_collaboration` has the creators."""
        if page_size not in ep.COLLABORATION_PAGE_SIZES:
            raise ValueError(f"page_size must be one of {ep.COLLABORATION_PAGE_SIZES}")
        if status not in ep.COLLABORATION_STATUSES:
            raise ValueError(f"collaboration_status must be one of {ep.COLLABORATION_STATUSES}")
        body: dict[str, Any] = {"collaboration_status": status}
        if name is not None or product_id is not None:
            body["search_param"] = ({"keyword_type": "TARGET_COLLABORATION_NAME", "keyword": name} if name is not None
                                    else {"keyword_type": "PRODUCT_ID", "keyword": product_id})
        if creator_open_id:
            body["creator_user_open_id"] = creator_open_id
        if accept_status:
            body["creator_accept_status"] = accept_status
        return self.prepare(ep.SEARCH_COLLABORATIONS, body=body, query=_page(page_size, page_token))

    def prepare_get_collaboration(self, collaboration_id: str) -> PreparedRequest:
        return self.prepare(ep.GET_COLLABORATION, id=quote(collaboration_id, safe=""))

    def prepare_search_orders(
        self, *, create_time_ge: int | None = None, create_time_lt: int | None = None,
        collaboration_id: str | None = None, page_size: int = ep.MAX_ORDER_PAGE_SIZE, page_token: str | None = None,
    ) -> PreparedRequest:
        if not 1 <= page_size <= ep.MAX_ORDER_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{ep.MAX_ORDER_PAGE_SIZE}")
        body: dict[str, Any] = {}
        if create_time_ge is not None:
            body["create_time_ge"] = int(create_time_ge)
        if create_time_lt is not None:
            body["create_time_lt"] = int(create_time_lt)
        if collaboration_id:
            body["program_id"] = collaboration_id
        return self.prepare(ep.SEARCH_ORDERS, body=body, query=_page(page_size, page_token))

    def prepare_search_creators(
        self, *, page_size: int = 20, page_token: str | None = None, filters: dict[str, Any] | None = None,
    ) -> PreparedRequest:
        """A page of the creator marketplace; `filters` may carry the first answer's `search_key`."""
        if page_size not in ep.CREATOR_PAGE_SIZES:
            raise ValueError(f"page_size must be one of {ep.CREATOR_PAGE_SIZES}")
        return self.prepare(ep.SEARCH_CREATORS, body=filters or {}, query=_page(page_size, page_token))

    def prepare_get_creator(self, creator_open_id: str) -> PreparedRequest:
        return self.prepare(ep.GET_CREATOR, creator_open_id=quote(creator_open_id, safe=""))

    def prepare_authorized_shops(self) -> PreparedRequest:
        return self.prepare(ep.AUTHORIZED_SHOPS)

    def prepare_check_conflicts(self, creator_ids: Iterable[str], product_ids: Iterable[str]) -> PreparedRequest:
        body = {"creator_open_id_list": list(creator_ids), "product_id_list": list(product_ids)}
        return self.prepare(ep.CHECK_CONFLICTS, body=body)

    def prepare_outreach_quota(self) -> PreparedRequest:
        return self.prepare(ep.OUTREACH_QUOTA)

    def prepare_check_eligibility(self, creator_open_ids: Sequence[str]) -> PreparedRequest:
        ids = list(dict.fromkeys(creator_open_ids))
        if not 1 <= len(ids) <= ep.MAX_CREATORS_PER_ELIGIBILITY_CHECK:
            raise ValueError(f"1..{ep.MAX_CREATORS_PER_ELIGIBILITY_CHECK} unique creators per eligibility check")
        return self.prepare(ep.CHECK_ELIGIBILITY, body={"creator_infos": [{"creator_open_id": c} for c in ids]})


def _page(page_size: int, page_token: str | None) -> dict[str, str]:
    query = {"page_size": str(page_size)}
    if page_token:
        query["page_token"] = page_token
    return query
