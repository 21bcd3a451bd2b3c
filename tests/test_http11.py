"""The lean HTTP/1.1 pool over real loopback sockets, against a scripted server that answers byte by byte:
every framing of an answer, every way a connection can fail, keep-alive reuse, TLS, and which pool is used."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import ssl
import subprocess
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from trendio_cli.api.answers import Outcome
from trendio_cli.api.client import ApiClient
from trendio_cli.api.credentials import Credentials
from trendio_cli.api.http11 import Http11Pool, HttpxPool, Timeouts, open_pool, proxied

CREDS = Credentials("key-1", "secret-xyz-123", "token-abc-456", "cipher-1")
OK = b'{"code":0,"message":"Success","request_id":"r1","data":{"target_collaboration":{"id":"9"}}}'

Script = Callable[[bytes, asyncio.StreamWriter, int], Awaitable[None]]


class ScriptedServer:
    """A loopback server that reads each request whole and lets `script(request, writer, n)` answer it
    (n counts requests on that connection). It records requests and counts connections."""

    def __init__(self, script: Script, ssl_context: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = ""

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                await self.script(request, writer, n)
                n += 1
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


def answer(body: bytes = OK, status: str = "200 OK", headers: str = "") -> Script:
    async def script(request: bytes, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body)
        await writer.drain()
    return script


def run(coro):
    return asyncio.run(coro)


async def fetch(pool, target: str = "/x?a=1", method: str = "GET", body: bytes | None = None):
    return await pool.request(method, target, {"x-tts-access-token": "t"}, body)


def fetch_from(script: Script, times: int = 1):
    """Serve `script`, send `times` requests through one pool: the server and the answers."""
    async def go():
        async with ScriptedServer(script) as server:
            pool = Http11Pool(server.url)
            try:
                return server, [await fetch(pool) for _ in range(times)]
            finally:
                await pool.aclose()

    return run(go())


def test_a_plain_answer_and_keep_alive_reuse():
    async def go():
        async with ScriptedServer(answer()) as server:
            pool = Http11Pool(server.url)
            first = await fetch(pool, "/p?q=1", "POST", b'{"a":1}')
            second = await fetch(pool)
            await pool.aclose()
            return server, first, second

    server, first, second = run(go())
    assert (first.status, first.body) == (200, OK) and second.body == OK
    assert first.headers["content-length"] == str(len(OK))
    assert first.sent_at is not None and abs(first.sent_at - time.time()) < 10
    assert server.connections == 1  # the second request reused the first connection
    request = server.requests[0]
    assert request.startswith(b"POST /p?q=1 HTTP/1.1\r\n") and request.endswith(b'\r\n\r\n{"a":1}')
    assert b"\r\nx-tts-access-token: t\r\n" in request and b"\r\nContent-Length: 7\r\n" in request
    assert b"\r\nHost: 127.0.0.1:" in request


def test_a_chunked_answer_split_into_single_bytes_with_extensions_and_trailers():
    payload = b"4;ext=1\r\n" + OK[:4] + b"\r\n" + f"{len(OK) - 4:x}".encode() + b"\r\n" + OK[4:] + \
        b"\r\n0\r\nX-Trailer: yes\r\n\r\n"

    async def script(request, writer, n):
        for byte in b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + payload:
            writer.write(bytes([byte]))
            await writer.drain()

    server, responses = fetch_from(script, times=2)
    assert [r.body for r in responses] == [OK, OK]
    assert server.connections == 1


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress), ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
])
def test_compressed_answers_are_decoded(encoding, encode):
    server, (response,) = fetch_from(answer(encode(OK), headers=f"Content-Encoding: {encoding}\r\n"))
    assert response.body == OK
    assert b"Accept-Encoding: gzip, deflate" in server.requests[0]


def test_an_answer_delimited_by_the_server_closing_and_connection_close_are_not_reused():
    async def until_close(request, writer, n):
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + OK)
        await writer.drain()
        writer.close()

    async def go():
        async with ScriptedServer(until_close) as a, ScriptedServer(answer(headers="Connection: close\r\n")) as b:
            pools = [Http11Pool(a.url), Http11Pool(b.url)]
            bodies = [(await fetch(p)).body for p in pools for _ in range(2)]
            for p in pools:
                await p.aclose()
            return a, b, bodies

    a, b, bodies = run(go())
    assert bodies == [OK] * 4
    assert a.connections == 2 and b.connections == 2


def test_interim_answers_are_skipped_and_empty_statuses_have_no_body():
    async def script(request, writer, n):
        if n == 0:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        else:
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    _, (first, second) = fetch_from(script, times=2)
    assert (first.status, first.body) == (200, b"{}")
    assert (second.status, second.body) == (204, b"")


@pytest.mark.parametrize("reply, error", [
    (b"SMTP ready\r\n\r\n", httpx.RemoteProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", httpx.RemoteProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", httpx.RemoteProtocolError),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000, httpx.RemoteProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + OK[:20], httpx.RemoteProtocolError),  # then closes
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", httpx.DecodingError),
    (b"", httpx.RemoteProtocolError),  # read the request, closed without a word
])
def test_broken_answers_raise_httpx_errors(reply, error):
    async def script(request, writer, n):
        writer.write(reply)
        await writer.drain()
        if b"Content-Encoding" not in reply:
            writer.close()

    async def go():
        async with ScriptedServer(script) as server:
            pool = Http11Pool(server.url)
            try:
                with pytest.raises(error):
                    await fetch(pool)
            finally:
                await pool.aclose()

    run(go())


def test_a_silent_server_times_out_and_the_connection_is_dropped():
    async def silent(request, writer, n):
        await asyncio.sleep(5)

    async def go():
        async with ScriptedServer(silent) as server:
            pool = Http11Pool(server.url, timeouts=Timeouts(read=0.3))
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await fetch(pool)
            took = time.monotonic() - started
            open_after = len(pool._open)
            await pool.aclose()
            return took, open_after

    took, open_after = run(go())
    assert 0.3 <= took < 1.5  # noticed within a quarter of the timeout after it
    assert open_after == 0


def test_a_refused_connection_and_a_connect_timeout(monkeypatch):
    async def go():
        pool = Http11Pool("http://127.0.0.1:9")  # nothing listens on the discard port here
        with pytest.raises(httpx.ConnectError):
            await fetch(pool)
        await pool.aclose()

        async def never_connects(*args, **kwargs):
            await asyncio.sleep(60)

        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "create_connection", never_connects)
        slow = Http11Pool("http://127.0.0.1:9", timeouts=Timeouts(connect=0.2))
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout):
            await fetch(slow)
        assert time.monotonic() - started < 1
        assert slow._opening == 0 and not slow._open
        await slow.aclose()

    run(go())


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    async def go():
        async with ScriptedServer(answer()) as server:
            pool = Http11Pool(server.url)
            with pytest.raises(httpx.LocalProtocolError):
                await pool.request("GET", "/x", {"x-tts-access-token": "t\r\nX-Injected: 1"}, None)
            await pool.aclose()
            return server

    assert run(go()).requests == []


def test_a_base_url_below_a_path_keeps_its_prefix():
    async def go():
        async with ScriptedServer(answer()) as server:
            pool = Http11Pool(server.url + "/gateway/")
            await fetch(pool, "/affiliate_seller/x?a=1")
            await pool.aclose()
            return server

    assert run(go()).requests[0].startswith(b"GET /gateway/affiliate_seller/x?a=1 HTTP/1.1\r\n")


def test_a_leased_connection_is_used_and_a_closed_lease_is_replaced():
    async def go():
        async with ScriptedServer(answer()) as server:
            pool = Http11Pool(server.url)
            lease = await pool.lease()
            assert server.connections == 1 or await asyncio.sleep(0.05) is None
            response = await pool.request("GET", "/a", {}, None, lease)
            stale = await pool.lease()
            stale._drop()  # closed while it waited for its slot
            await asyncio.sleep(0.05)
            again = await pool.request("GET", "/b", {}, None, stale)
            await pool.aclose()
            return server, response, again

    server, response, again = run(go())
    assert response.body == OK and again.body == OK
    assert server.connections == 2


def test_the_client_over_the_pool_classifies_a_lost_answer_as_maybe_applied():
    """A create whose answer never comes may have happened; a read that fails the same way cannot matter."""
    async def hang_up(request, writer, n):
        writer.close()

    async def go():
        async with ScriptedServer(hang_up) as server:
            async with ApiClient(server.url, CREDS) as client:
                create = client.prepare_create(name="c", message="m", end_time=2_000_000_000,
                                               products=[("1", 1500)], creator_ids=["11"], contact_email=None,
                                               free_sample=False)
                return (await client.send(create),
                        await client.send(client.prepare_check_conflicts(["11"], ["1"])))

    create, check = run(go())
    assert create.outcome is Outcome.TRANSIENT and create.maybe_applied is True
    assert check.outcome is Outcome.TRANSIENT and check.maybe_applied is False


def test_the_client_sends_signed_queries_that_decode_to_the_signed_values():
    async def go():
        async with ScriptedServer(answer()) as server:
            async with ApiClient(server.url, CREDS) as client:
                prepared = client.prepare_search_collaborations(page_token="a+b/c=")
                answer_ = await client.send(prepared)
            return server, answer_

    server, result = run(go())
    assert result.ok
    target = server.requests[0].split(b" ")[1].decode()
    query = dict(httpx.URL("http://h" + target).params)
    assert query["page_token"] == "a+b/c=" and query["app_key"] == "key-1" and len(query["sign"]) == 64


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None and not os.environ.get("CI"),
                    reason="no openssl command here to make a certificate (CI installs it)")
def test_https_with_a_trusted_certificate_and_refused_with_an_unknown_one(tls_files, monkeypatch):
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def go():
        async with ScriptedServer(answer(), ssl_context=server_ctx) as server:
            untrusted = Http11Pool(server.url)
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await fetch(untrusted)
            await untrusted.aclose()
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # as httpx, the pool honours it
            trusted = Http11Pool(server.url)
            bodies = [(await fetch(trusted)).body, (await fetch(trusted)).body]
            await trusted.aclose()
            return server, bodies

    server, bodies = run(go())
    assert bodies == [OK, OK]
    assert server.connections == 1  # one kept-alive TLS connection (the refused handshake never got that far)


@pytest.mark.parametrize("env, url, expected", [
    ({}, "https://open-api.tiktokglobalshop.com", Http11Pool),
    ({"HTTPS_PROXY": "http://proxy.example:3128"}, "https://open-api.tiktokglobalshop.com", HttpxPool),
    ({"ALL_PROXY": "http://proxy.example:3128"}, "https://open-api.tiktokglobalshop.com", HttpxPool),
    ({"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "tiktokglobalshop.com"},
     "https://open-api.tiktokglobalshop.com", Http11Pool),
    ({"HTTP_PROXY": "http://proxy.example:3128"}, "http://127.0.0.1:8787", Http11Pool),  # the sandbox: never
    ({"TRENDIO_HTTP_CLIENT": "httpx"}, "https://open-api.tiktokglobalshop.com", HttpxPool),
])
def test_the_lean_pool_for_direct_connections_httpx_behind_a_proxy(env, url, expected, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert proxied(url) is (expected is HttpxPool and "TRENDIO_HTTP_CLIENT" not in env)

    async def go():
        pool = open_pool(url, timeouts=Timeouts(), max_connections=4)
        await pool.aclose()
        return pool

    assert isinstance(run(go()), expected)


def test_the_httpx_pool_gives_the_same_answers_over_the_sandbox(sandbox, monkeypatch):
    """The fallback over real HTTP: a create through httpx is signed, sent and classified like the lean one."""
    from trendio_cli.api.credentials import credentials_for

    monkeypatch.setenv("TRENDIO_HTTP_CLIENT", "httpx")
    creds = credentials_for("x", {}, allow_sandbox_defaults=True)

    async def go():
        async with ApiClient(sandbox.url, creds) as client:
            assert isinstance(client._pool, HttpxPool)
            prepared = client.prepare_create(name="c", message="m", end_time=2_000_000_000, products=[("1", 1500)],
                                             creator_ids=["7001"], contact_email=None, free_sample=False)
            return await client.send(prepared)

    result = run(go())
    assert result.ok and result.collaboration_id() and result.sent_at is not None
    assert json.loads(json.dumps(sandbox.invited_pairs()))[0]["creator_id"] == "7001"
