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
from trendio_cli.api.answers import ApiAnswer, classify_exception, classify_response
from trendio_cli.api.credentials import Credentials, check_base_url
from trendio_cli.api.http11 import Http11Pool, HttpxPool, Timeouts, open_pool
from trendio_cli.api.signing import sign


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
        return self.endpoint.name == "create_collaboration"


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
    contact_email: str | None,
    free_sample: bool,
    sample_approval_exempt: bool = False,
    version: str = "202405",
) -> dict[str, Any]:
    if len(creator_ids) > ep.MAX_CREATORS_PER_CREATE:
        raise ValueError(f"at most {ep.MAX_CREATORS_PER_CREATE} creators per create request")
    if len(products) > ep.MAX_PRODUCTS_PER_CREATE:
        raise ValueError(f"at most {ep.MAX_PRODUCTS_PER_CREATE} products per create request")
    creator_field = "creator_user_open_ids" if version >= "202508" else "creator_user_ids"
    body: dict[str, Any] = {
        "name": name,
        "message": message,
        "end_time": str(end_time),
        "products": [{"id": pid, "target_commission_rate": rate} for pid, rate in products],
        creator_field: list(creator_ids),
        "free_sample_rule": {
            "has_free_sample": bool(free_sample),
            "is_sample_approval_exempt": bool(sample_approval_exempt),
        },
    }
    if contact_email:
        body["seller_contact_info"] = {"email": contact_email}
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
        create_version: str = "202405",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.credentials = credentials
        self.create_endpoint = ep.CREATE_VERSIONS[create_version]
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
        query = {**prepared.query, "app_key": creds.app_key, "timestamp": str(ts), "shop_cipher": creds.shop_cipher}
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

    def prepare_check_conflicts(self, creator_ids: Iterable[str], product_ids: Iterable[str]) -> PreparedRequest:
        body = {"creator_open_id_list": list(creator_ids), "product_id_list": list(product_ids)}
        return self.prepare(ep.CHECK_CONFLICTS, body=body)

    def prepare_search_collaborations(
        self, *, page_size: int = 100, page_token: str | None = None, filters: dict[str, Any] | None = None
    ) -> PreparedRequest:
        if page_size not in ep.COLLABORATION_PAGE_SIZES:
            raise ValueError(f"page_size must be one of {ep.COLLABORATION_PAGE_SIZES}")
        query = {"page_size": str(page_size)}
        if page_token:
            query["page_token"] = page_token
        return self.prepare(ep.SEARCH_COLLABORATIONS, body=filters or {}, query=query)

    def prepare_get_collaboration(self, collaboration_id: str) -> PreparedRequest:
        return self.prepare(ep.GET_COLLABORATION, id=collaboration_id)

    def prepare_search_creators(
        self, *, page_size: int = 20, page_token: str | None = None, filters: dict[str, Any] | None = None
    ) -> PreparedRequest:
        if page_size not in ep.CREATOR_PAGE_SIZES:
            raise ValueError(f"page_size must be one of {ep.CREATOR_PAGE_SIZES}")
        query = {"page_size": str(page_size)}
        if page_token:
            query["page_token"] = page_token
        return self.prepare(ep.SEARCH_CREATORS, body=filters or {}, query=query)

    def prepare_get_creator(self, creator_user_id: str) -> PreparedRequest:
        return self.prepare(ep.GET_CREATOR, creator_user_id=creator_user_id)
