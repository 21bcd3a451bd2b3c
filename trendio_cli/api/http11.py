"""The HTTP connection pools the client sends through.

`Http11Pool` speaks HTTP/1.1 straight over asyncio (keep-alive, TLS, timeouts): at 50 requests a second
httpx's general-purpose layers cost more CPU than everything else `execute` does per request together
(docs/benchmarks.md, benchmark 2). `HttpxPool` sends through httpx instead, for proxies and for tests that
mock the transport. Both raise httpx's exception types, so every failure is classified in one place
(`answers.classify_exception`)."""

from __future__ import annotations

import asyncio
import http.cookiejar
import os
import ssl
import time
import urllib.request
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from trendio_cli import __version__
from trendio_cli.api.credentials import is_loopback_url

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
KEEPALIVE_EXPIRY_S = 4.0  # under the usual 5 s idle timeout of servers, so a reused connection is rarely closing
USER_AGENT = f"trendio/{__version__}"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header's values joined with ", "
    body: bytes  # decoded (gzip and deflate undone)
    sent_at: float | None = None  # wall-clock time the request was handed to the socket


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0  # the longest silence from the server while an answer is awaited
    pool: float = 60.0  # the longest wait for a free connection when all are busy


def proxied(url: str) -> bool:
    """Whether the environment routes `url` through a proxy (HTTPS_PROXY, ALL_PROXY, NO_PROXY, ...); never
    a loopback address (the sandbox)."""
    parts = urlsplit(url)
    if is_loopback_url(url):
        return False
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(parts.hostname or "", proxies)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as the bytes arrive."""

    def __init__(self, pool: Http11Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = time.monotonic()
        self._buf = bytearray()
        self._waiter: asyncio.Future[RawResponse] | None = None
        self._head_only = False
        self._last_rx = 0.0
        self._status = 0
        self._headers: dict[str, str] | None = None
        self._length: int | None = None  # -1: chunked; None: until the server closes
        self._chunks: list[bytes] = []
        self._chunk_pos = 0

    # --- asyncio callbacks --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self._drop()  # bytes nobody asked for: the connection can no longer be trusted
            return
        self._buf += data
        self._last_rx = time.monotonic()
        try:
            self._parse(eof=False)
        except httpx.HTTPError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            try:
                self._parse(eof=True)
            except httpx.HTTPError as exc:
                self._fail(exc)
            if not self._waiter.done():
                self._fail(httpx.RemoteProtocolError("the server closed the connection before answering in full"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._fail(httpx.ReadError(f"connection lost: {exc}") if exc else
                       httpx.RemoteProtocolError("the server closed the connection before answering in full"))
        self.pool._forget(self)

    # --- one exchange -------------------------------------------------------------------------
    def usable(self, now: float) -> bool:
        return (not self.closed and self.reusable and self.transport is not None
                and not self.transport.is_closing() and now - self.idle_since < KEEPALIVE_EXPIRY_S)

    async def exchange(self, request: bytes, head_only: bool) -> RawResponse:
        assert self.transport is not None
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        self._head_only = head_only
        self._status, self._headers, self._length = 0, None, None
        self._chunks, self._chunk_pos = [], 0
        self._last_rx = time.monotonic()
        self.transport.write(request)
        sent_at = time.time()
        self.pool._watch()
        try:
            response = await waiter
        except BaseException:
            self._drop()  # cancelled or failed half-way: the answer may still come, on a connection nobody reads
            raise
        finally:
            self._waiter = None
        response.sent_at = sent_at
        return response

    def awaiting(self) -> bool:
        return self._waiter is not None and not self._waiter.done()

    def check_silence(self, now: float, read_timeout: float) -> None:
        if self.awaiting() and now - self._last_rx >= read_timeout:
            self._fail(httpx.ReadTimeout(f"no answer for {read_timeout:g} s"))
            self._drop()

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _drop(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    # --- parsing ------------------------------------------------------------------------------
    def _parse(self, eof: bool) -> None:
        buf = self._buf
        while self._headers is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise httpx.RemoteProtocolError("response headers larger than 64 KiB")
                return
            self._read_head(bytes(buf[:end]))
            del buf[:end + 4]
        if self._length is None:  # delimited by the server closing the connection
            if eof:
                self._finish(bytes(buf))
                buf.clear()
            elif len(buf) > MAX_BODY_BYTES:
                raise httpx.RemoteProtocolError("response body larger than 64 MiB")
            return
        if self._length >= 0:
            if len(buf) >= self._length:
                body = bytes(buf[:self._length])
                del buf[:self._length]
                self._finish(body)
            return
        self._parse_chunks(eof)

    def _read_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise httpx.RemoteProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise httpx.RemoteProtocolError(f"malformed response header: {line[:80]!r}")
            name = name.lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if 100 <= status < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        self._status, self._headers = status, headers
        connection = headers.get("connection", "").lower()
        if "close" in connection or (parts[0] == "HTTP/1.0" and "keep-alive" not in connection):
            self.reusable = False
        if self._head_only or status in (204, 304):
            self._length = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._length = -1
        elif "content-length" in headers:
            values = {v.strip() for v in headers["content-length"].split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise httpx.RemoteProtocolError(f"bad Content-Length: {headers['content-length'][:40]!r}")
            self._length = int(values.pop())
            if self._length > MAX_BODY_BYTES:
                raise httpx.RemoteProtocolError("response body larger than 64 MiB")
        else:
            self._length = None
            self.reusable = False

    def _parse_chunks(self, eof: bool) -> None:
        buf = self._buf
        while True:
            line_end = buf.find(b"\r\n", self._chunk_pos)
            if line_end < 0:
                break
            size_text = bytes(buf[self._chunk_pos:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpx.RemoteProtocolError(f"bad chunk size: {size_text[:20]!r}") from None
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", line_end) if buf[line_end + 2:line_end + 4] != b"\r\n" \
                    else line_end
                if trailer_end < 0:
                    break
                del buf[:trailer_end + 4]
                self._finish(b"".join(self._chunks))
                return
            data_end = line_end + 2 + size
            if len(buf) < data_end + 2:
                break
            if buf[data_end:data_end + 2] != b"\r\n":
                raise httpx.RemoteProtocolError("chunk not followed by CRLF")
            self._chunks.append(bytes(buf[line_end + 2:data_end]))
            self._chunk_pos = data_end + 2
        if self._chunk_pos > 65536:  # keep the buffer short: drop what was already taken
            del buf[:self._chunk_pos]
            self._chunk_pos = 0
        if sum(map(len, self._chunks)) > MAX_BODY_BYTES:
            raise httpx.RemoteProtocolError("response body larger than 64 MiB")

    def _finish(self, body: bytes) -> None:
        headers = self._headers or {}
        encoding = headers.get("content-encoding", "").strip().lower()
        if body and encoding in ("gzip", "x-gzip", "deflate"):
            try:
                body = zlib.decompress(body, 47) if encoding != "deflate" else _inflate(body)
            except zlib.error as exc:
                raise httpx.DecodingError(f"cannot decode a {encoding} body: {exc}") from None
        if self._buf:
            self.reusable = False  # bytes past the answer: nothing was pipelined, so the stream is off
        assert self._waiter is not None
        self._waiter.set_result(RawResponse(self._status, headers, body))


def _inflate(body: bytes) -> bytes:
    try:
        return zlib.decompress(body)
    except zlib.error:
        return zlib.decompress(body, -15)  # raw deflate, as some servers send it


class Http11Pool:
    """Keep-alive connections to one origin. `request()` sends one request and returns its answer, on a
    connection of the pool or on one `lease()` set aside for it beforehand."""

    def __init__(self, base_url: str, *, timeouts: Timeouts = Timeouts(), max_connections: int = 100,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base_url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        default_port = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if self.port == default_port else f"{host}:{self.port}"
        self.prefix = parts.path.rstrip("/")  # a base URL may sit below a path (a gateway's, say)
        self.timeouts = timeouts
        self.max_connections = max_connections
        self._ssl = (ssl_context or httpx.create_ssl_context()) if self.tls else None
        if self._ssl is not None:
            self._ssl.set_alpn_protocols(["http/1.1"])
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._opening = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._watchdog: asyncio.TimerHandle | None = None

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes | None,
                      lease: _Connection | None = None) -> RawResponse:
        """`target` is the path (below the base URL's) and query. Raises httpx.TransportError subclasses on failure."""
        head = [f"{method} {self.prefix}{target} HTTP/1.1\r\nHost: {self.authority}\r\nUser-Agent: {USER_AGENT}\r\n"
                "Accept: */*\r\nAccept-Encoding: gzip, deflate\r\n"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise httpx.LocalProtocolError(f"header {name!r} holds a line break")
            head.append(f"{name}: {value}\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body or b'')}\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1") + (body or b"")
        if lease is not None and not lease.usable(time.monotonic()):
            self._release(lease)  # closed while it waited: the request takes another connection
            lease = None
        conn = lease or await self._connection()
        try:
            return await conn.exchange(data, method == "HEAD")
        finally:
            self._release(conn)

    def take_idle(self) -> _Connection | None:
        """An open connection set aside for one request, if one is idle: pass it to `request()`, or hand it
        back with `give_back()`."""
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now):
                return conn
            conn._drop()
        return None

    async def lease(self) -> _Connection:
        """As `take_idle`, opening a connection if none is idle (waiting for one at the pool's limit)."""
        return await self._connection()

    def give_back(self, lease: _Connection) -> None:
        self._release(lease)

    async def aclose(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for conn in list(self._open):
            conn._drop()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports close

    # --- the pool -----------------------------------------------------------------------------
    async def _connection(self) -> _Connection:
        deadline = time.monotonic() + self.timeouts.pool
        while True:
            if self._closed:
                raise httpx.ConnectError("the connection pool is closed")
            conn = self.take_idle()
            if conn is not None:
                return conn
            now = time.monotonic()
            if len(self._open) + self._opening < self.max_connections:
                return await self._connect()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.0, deadline - now))
            except asyncio.TimeoutError:
                raise httpx.PoolTimeout(f"no free connection within {self.timeouts.pool:g} s") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        self._opening += 1
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                lambda: _Connection(self), self.host, self.port, ssl=self._ssl,
                server_hostname=self.host if self._ssl is not None else None), self.timeouts.connect)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"could not connect to {self.authority} within "
                                       f"{self.timeouts.connect:g} s") from None
        except OSError as exc:  # refused, unreachable, name not found, TLS handshake or certificate refused
            raise httpx.ConnectError(f"could not connect to {self.authority}: {exc}") from None
        finally:
            self._opening -= 1
            self._wake()
        self._open.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        if conn.reusable and not conn.closed and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn._drop()
            self._open.discard(conn)
        self._wake()

    def _watch(self) -> None:
        """Read timeouts: one timer for the pool, not one per request (at 50 requests a second, timers that
        are armed and cancelled for every request crowd the event loop's heap). A silent server is noticed
        within a quarter of the timeout (at most a second) after it."""
        if self._watchdog is None and not self._closed:
            self._watchdog = asyncio.get_running_loop().call_later(self._watch_every, self._check_silences)

    @property
    def _watch_every(self) -> float:
        return min(1.0, self.timeouts.read / 4)

    def _check_silences(self) -> None:
        self._watchdog = None
        now = time.monotonic()
        busy = [conn for conn in self._open if conn.awaiting()]
        for conn in busy:
            conn.check_silence(now, self.timeouts.read)
        if any(conn.awaiting() for conn in busy):
            self._watch()

    def _forget(self, conn: _Connection) -> None:
        self._open.discard(conn)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class _NoCookies(http.cookiejar.CookieJar):
    """The API does not use cookies; reading Set-Cookie on every answer is a measurable cost at 50 req/s."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None


class HttpxPool:
    """The same interface over httpx: honours proxy settings, and takes a mock transport in tests."""

    def __init__(self, base_url: str, *, timeouts: Timeouts = Timeouts(), max_connections: int = 100,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=timeouts.connect, read=timeouts.read, write=10.0, pool=timeouts.pool),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport, headers={"user-agent": USER_AGENT}, cookies=_NoCookies())

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes | None,
                      lease: None = None) -> RawResponse:
        sent_at: list[float] = []

        async def trace(event: str, info: dict[str, Any]) -> None:
            if event.endswith("send_request_body.complete"):
                sent_at.append(time.time())

        response = await self._client.request(method, self.base_url + target, headers=headers, content=body,
                                              extensions={"trace": trace})
        return RawResponse(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                           response.content, sent_at[0] if sent_at else None)

    async def aclose(self) -> None:
        await self._client.aclose()


def open_pool(base_url: str, *, timeouts: Timeouts, max_connections: int,
              transport: httpx.AsyncBaseTransport | None = None) -> Http11Pool | HttpxPool:
    """The lean pool for direct connections; httpx when a proxy applies, a transport is given, or
    TRENDIO_HTTP_CLIENT=httpx asks for it."""
    if transport is not None or proxied(base_url) or os.environ.get("TRENDIO_HTTP_CLIENT", "").lower() == "httpx":
        return HttpxPool(base_url, timeouts=timeouts, max_connections=max_connections, transport=transport)
    return Http11Pool(base_url, timeouts=timeouts, max_connections=max_connections)
