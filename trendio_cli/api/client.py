"""The signed API client: every request through one `httpx.AsyncClient` per run (HTTP/1.1, a keep-alive pool
sized to the run's concurrency, explicit timeouts, proxies and certificates from the environment as httpx
reads them), a fresh timestamp and signature per attempt, one deadline per request, and a bound on the
decoded size of every answer."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from trendio_cli import __version__
from trendio_cli.api import endpoints as ep
from trendio_cli.api import tokens
from trendio_cli.api.answers import ApiAnswer, Outcome, classify_exception, classify_response
from trendio_cli.api.credentials import Credentials, check_base_url, is_loopback_url
from trendio_cli.api.signing import sign
from trendio_cli.api.tokens import TokenStore, auth_url_for


def _read_timeout() -> float:
    try:
        value = float(os.environ.get("TRENDIO_HTTP_TIMEOUT", "30"))
    except ValueError:
        return 30.0
    return min(max(0.1, value), 600.0) if value == value else 30.0


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0  # the longest silence from the server while an answer is awaited
    write: float = 10.0
    pool: float = 60.0  # the longest wait for a free connection when all are busy
    total: float = 30.0  # from the request's first byte to its answer's last: a trickling server cannot hold it


# An answer slower than TRENDIO_HTTP_TIMEOUT counts as a transient failure whose outcome is unknown.
DEFAULT_TIMEOUTS = Timeouts(read=_read_timeout(), total=_read_timeout())
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # decoded; this API's answers are a few kB (a page of 100 collaborations)
KEEPALIVE_EXPIRY_S = 4.0  # under the usual 5 s idle timeout of servers, so a reused connection is rarely closing
USER_AGENT = f"trendio/{__version__}"
_DEFAULT_HEADERS = {"user-agent": USER_AGENT, "accept-encoding": "gzip, deflate"}  # decoded here, bounded
REDACTED = "***"


def base_url_source(given: str | None) -> str:
    """Where a base URL came from, for messages: --base-url, TRENDIO_BASE_URL, or the default."""
    if not given:
        return "the default"
    return "TRENDIO_BASE_URL" if os.environ.get("TRENDIO_BASE_URL", "").rstrip("/") == given.rstrip("/") \
        else "--base-url"


class AnswerTooLarge(httpx.DecodingError):
    """An answer decoded past MAX_ANSWER_BYTES (a compression bomb, a runaway body): the connection is dropped."""


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


class _NoCookies(http.cookiejar.CookieJar):
    """The API does not use cookies: none is kept or sent."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None


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
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        base_url_source: str = "",
        writes_tokens: bool = True,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.base_url_source = base_url_source  # for messages: where the URL came from
        self.create_endpoint = create_endpoint
        self.auth_url = auth_url or auth_url_for(self.base_url)
        self.token_store = token_store or TokenStore()
        self.env_credentials = credentials
        # a pair refreshed earlier from the environment's token wins over it (tokens.py)
        # (`writes_tokens=False`: a client that only signs, such as dry-run's, leaves the store as it is)
        self.credentials = self.token_store.effective(credentials, self.auth_url, adopt=writes_tokens) \
            if credentials.shop_cipher else credentials
        self.token_generation = 0  # grows at every token change: who met the old token knows it has changed
        self.clock = clock
        self.timeouts = timeouts
        self.max_answer_bytes = max_answer_bytes
        self._max_connections = max_connections
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._timeout_extension: dict[str, float] = {}

    # --- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> ApiClient:
        t = self.timeouts
        timeout = httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)
        self._timeout_extension = timeout.as_dict()
        self._http = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=self._max_connections,
                                max_keepalive_connections=self._max_connections,
                                keepalive_expiry=KEEPALIVE_EXPIRY_S),
            transport=self._transport,
            # proxies (HTTPS_PROXY, NO_PROXY...) and certificates (SSL_CERT_FILE) as httpx reads them from
            # the environment; the sandbox on a loopback address is never proxied
            trust_env=True,
            mounts={f"all://{urlsplit(self.base_url).netloc}": None} if is_loopback_url(self.base_url) else None,
            headers=_DEFAULT_HEADERS,
            cookies=_NoCookies(),
            follow_redirects=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

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
    async def send(self, prepared: PreparedRequest, *,
                   before_send: Callable[[], Awaitable[None]] | None = None) -> ApiAnswer:
        """One attempt: sign now, send, classify. Retries are the caller's (they need the ledger).

        `before_send` is awaited right before the request's first byte is written, once its connection is
        ready (admission waits for the request's slot there); whatever it raises comes out of `send` as it is,
        and the request has not left. From then on one deadline (`Timeouts.total`) holds for the whole
        exchange. The answer's `sent_at` is when the request left; None when it never did (refused connection,
        DNS failure, connect timeout...): the platform did not see it."""
        if self._http is None:
            raise RuntimeError("ApiClient used outside `async with`")
        signed = self.sign(prepared)
        exchange = _Exchange(before_send, self.timeouts.total)
        started = time.perf_counter()
        try:
            answer = await exchange.run(self._http, self._transport is not None, signed, prepared,
                                        self.max_answer_bytes, self._timeout_extension)
        except _DeadlinePassed:
            answer = ApiAnswer(outcome=Outcome.TRANSIENT, maybe_applied=prepared.mutating,
                               message=f"no complete answer within {self.timeouts.total:g} s")
        except httpx.HTTPError as exc:
            answer = classify_exception(exc, mutating=prepared.mutating)
        answer.sent_at = exchange.sent_at
        if exchange.sent_at is None:
            answer.maybe_applied = False  # it never left: the platform cannot have acted on it
        # from its departure (the wait for its slot is not the platform's latency): the views take the answer's time
        # less its latency as the moment it left, to count requests per second as the platform does
        answer.latency_ms = ((time.time() - exchange.sent_at) if exchange.sent_at is not None
                             else time.perf_counter() - started) * 1000
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


class _DeadlinePassed(Exception):
    pass


class _Exchange:
    """One request and its answer over httpx, with the hook before its first byte and one deadline after it."""

    def __init__(self, before_send: Callable[[], Awaitable[None]] | None, deadline_s: float) -> None:
        self.before_send = before_send
        self.deadline_s = deadline_s
        self.sent_at: float | None = None
        self._expired = False
        self._timer: asyncio.TimerHandle | None = None

    async def run(self, http: httpx.AsyncClient, custom_transport: bool, signed: SignedRequest,
                  prepared: PreparedRequest, limit: int, timeouts: dict[str, float]) -> ApiAnswer:
        # built directly (the client's merging of defaults costs twice as much): its headers and timeouts here
        request = httpx.Request(signed.method, signed.url + "?" + query_string(signed.query),
                                headers={**_DEFAULT_HEADERS, **signed.headers}, content=signed.body,
                                extensions={"timeout": timeouts})
        task = asyncio.current_task()
        try:
            if custom_transport:
                # a transport of the caller's (a mock in tests) has no connection phase: it "sends" at once
                await self._leave(task)
            else:
                request.extensions["trace"] = lambda event, info: self._trace(event, info, task)
            response = await http.send(request, stream=True)
            try:
                if self.sent_at is None:  # (a transport that reports no events)
                    self.sent_at = time.time()
                body = await _read_bounded(response, limit)
            finally:
                await response.aclose()
            return classify_response(response.status_code, response.headers, body, mutating=prepared.mutating)
        except asyncio.CancelledError:
            if not self._expired:
                raise
            if hasattr(task, "uncancel"):
                task.uncancel()  # the cancellation was this deadline's own
            raise _DeadlinePassed() from None
        finally:
            if self._timer is not None:
                self._timer.cancel()

    async def _trace(self, event: str, info: dict[str, Any], task: Any) -> None:
        # httpcore reports each step; the request's headers are about to be written (not a proxy's CONNECT)
        if event.endswith(".send_request_headers.started") and self.sent_at is None \
                and info["request"].method != b"CONNECT":
            await self._leave(task)

    async def _leave(self, task: Any) -> None:
        if self.before_send is not None:
            await self.before_send()
        self.sent_at = time.time()
        self._timer = asyncio.get_running_loop().call_later(self.deadline_s, self._expire, task)

    def _expire(self, task: Any) -> None:
        self._expired = True
        task.cancel()


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    """The body, decoded as it arrives (gzip, deflate or raw deflate, never more than `limit` bytes out of a
    chunk: a compression bomb stops at the bound); past the bound, AnswerTooLarge (the connection is then
    closed with the response, unread)."""
    if response.is_stream_consumed:  # a body already in memory (a mock transport's): only the bound applies
        if len(response.content) > limit:
            raise AnswerTooLarge(f"the answer is larger than {limit} bytes: dropped")
        return response.content
    encoding = response.headers.get("content-encoding", "").strip().lower()
    decoder = _Inflater(encoding, limit)
    async for chunk in response.aiter_raw():
        decoder.feed(chunk)
    return decoder.finish()


class _Inflater:
    def __init__(self, encoding: str, limit: int) -> None:
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise httpx.DecodingError(f"unsupported Content-Encoding {encoding!r}")
        self.encoding = encoding
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self._zlib: Any = None
        self._head = b""  # the first bytes of a deflate body, until its framing is known
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if self.encoding in ("", "identity"):
            self._keep(data)
            return
        if self._zlib is None:  # deflate: a zlib stream, or raw deflate as some servers send it
            self._head += data
            if len(self._head) < 2:
                return
            b0, b1 = self._head[0], self._head[1]
            wrapped = b0 & 0x0F == 8 and (b0 << 8 | b1) % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            data, self._head = self._head, b""
        self._inflate(data)

    def _inflate(self, data: bytes) -> None:
        try:
            while data:
                out = self._zlib.decompress(data, self.limit - self.size + 1)
                self._keep(out)
                data = self._zlib.unconsumed_tail
                if not data and self._zlib.eof and self._zlib.unused_data and self.encoding != "deflate":
                    data = self._zlib.unused_data  # another gzip member
                    self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        except zlib.error as exc:
            raise httpx.DecodingError(f"the answer's {self.encoding} body cannot be decoded: {exc}") from None

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise AnswerTooLarge(f"the answer is larger than {self.limit} bytes decoded: dropped")
        self.parts.append(data)

    def finish(self) -> bytes:
        if self._zlib is None and self._head:  # a deflate body of one byte
            self._inflate(b"")
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            self._inflate(self._head)
        if self._zlib is not None:
            try:
                self._keep(self._zlib.flush())
            except zlib.error as exc:
                raise httpx.DecodingError(f"the answer's {self.encoding} body cannot be decoded: {exc}") from None
        return b"".join(self.parts)
