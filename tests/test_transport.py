"""The client's transport over real loopback sockets (httpx), against a scripted server that answers byte by
byte: every framing of an answer, every way a connection can fail, keep-alive reuse, TLS and proxies, and what
a hostile server tries: a trickle, `100 Continue` forever, compression bombs, one huge chunk. Every answer
comes back classified, within one deadline, and never larger than its bound."""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import ssl
import subprocess
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx
import pytest

from trendio_cli.api.answers import Outcome
from trendio_cli.api.client import ApiClient, Timeouts
from trendio_cli.api.credentials import Credentials

CREDS = Credentials("key-1", "secret-xyz-123", "token-abc-456", "cipher-1")
OK = b'{"code":0,"message":"Success","request_id":"r1","data":{"target_collaboration":{"id":"9"}}}'

Script = Callable[[bytes, asyncio.StreamWriter, int], Awaitable[None]]


class ScriptedServer:
    """A loopback server that reads each request whole and lets `script(request, writer, n)` answer it
    (n counts requests on that connection). It records requests, arrival times and connections."""

    def __init__(self, script: Script, ssl_context: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.ssl_context = ssl_context
        self.connections = 0
        self.closed_by_client = 0
        self.requests: list[bytes] = []
        self.arrivals: list[float] = []
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
                self.arrivals.append(time.time())
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                await self.script(request, writer, n)
                n += 1
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client += 1
            return
        finally:
            writer.close()


def answer(body: bytes = OK, status: str = "200 OK", headers: str = "") -> Script:
    async def script(request: bytes, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body)
        await writer.drain()
    return script


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))  # a hang detector: no test waits on a timing


def check(client: ApiClient):
    return client.prepare_check_conflicts(["11"], ["1"])


def create(client: ApiClient):
    return client.prepare_create(name="c", message="m", end_time=2_000_000_000, products=[("1", 1500)],
                                 creator_ids=["11"], contact_email="partners@example.com", free_sample=False)


def exchange(script: Script, times: int = 1, *, mutating: bool = False, **client_options):
    """Serve `script`, send `times` requests through one client: the server and the answers."""
    async def go():
        async with ScriptedServer(script) as server:
            async with ApiClient(server.url, CREDS, **client_options) as client:
                prepared = create(client) if mutating else check(client)
                return server, [await client.send(prepared) for _ in range(times)]

    return run(go())


def test_a_plain_answer_over_a_kept_alive_connection():
    server, (first, second) = exchange(answer(), times=2, mutating=True)
    assert first.ok and first.collaboration_id() == "9" and second.ok
    assert first.sent_at is not None and abs(first.sent_at - time.time()) < 60
    assert server.connections == 1  # the second request reused the first connection
    request = server.requests[0]
    assert request.startswith(b"POST /affiliate_seller/202508/target_collaborations?app_key=key-1&timestamp=")
    assert b"\r\nx-tts-access-token: token-abc-456\r\n" in request and b"\r\nHost: 127.0.0.1:" in request
    assert b"\r\naccept-encoding: gzip, deflate\r\n" in request and b"\r\nuser-agent: trendio/" in request
    assert request.endswith(b'"is_sample_approval_exempt":false}}')


def test_a_chunked_answer_in_single_bytes_with_extensions_and_trailers():
    payload = b"4;ext=1\r\n" + OK[:4] + b"\r\n" + f"{len(OK) - 4:x}".encode() + b"\r\n" + OK[4:] + \
        b"\r\n0\r\nX-Trailer: yes\r\n\r\n"

    async def script(request, writer, n):
        for byte in b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + payload:
            writer.write(bytes([byte]))
            await writer.drain()

    server, answers = exchange(script, times=2)
    assert [a.ok for a in answers] == [True, True] and server.connections == 1


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress), ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
    ("gzip", lambda b: gzip.compress(b[:10]) + gzip.compress(b[10:])),  # two members
])
def test_compressed_answers_are_decoded(encoding, encode):
    _, (result,) = exchange(answer(encode(OK), headers=f"Content-Encoding: {encoding}\r\n"))
    assert result.ok and result.request_id == "r1"


def bomb(encoding: str, size: int) -> bytes:
    zeros = b"0" * size
    return gzip.compress(zeros, 9) if encoding == "gzip" else zlib.compress(zeros, 9)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compression_bomb_stops_at_the_bound_and_the_connection_is_dropped(encoding):
    """200 MB of zeros in ~200 kB: decoded a bounded piece at a time, refused past 1 MB, never held whole."""
    body = bomb(encoding, 200 * 1024 * 1024)
    server, (result, again) = exchange(answer(body, headers=f"Content-Encoding: {encoding}\r\n"), times=2,
                                       mutating=True, max_answer_bytes=1024 * 1024)
    assert result.outcome is Outcome.TRANSIENT and "larger than 1048576 bytes" in result.message
    assert result.maybe_applied is True  # it was sent: a create may have happened
    assert server.connections == 2  # the first connection was dropped, not reused


def test_one_huge_chunk_is_cut_off_at_the_bound():
    async def script(request, writer, n):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (300 * 1024 * 1024))
        try:
            for _ in range(300 * 16):  # 300 MB in 64 kB writes, unless the client hangs up
                writer.write(b"x" * 65536)
                await writer.drain()
        except ConnectionError:
            return

    server, (result,) = exchange(script, max_answer_bytes=2 * 1024 * 1024)
    assert result.outcome is Outcome.TRANSIENT and "larger than" in result.message
    assert server.closed_by_client == 1 or server.connections == 1


def test_interim_answers_are_skipped_and_an_empty_status_has_no_body():
    async def script(request, writer, n):
        if n == 0:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        else:
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    _, (first, second) = exchange(script, times=2)
    assert (first.http_status, second.http_status) == (200, 204)
    assert first.outcome is Outcome.TRANSIENT and "without a JSON envelope" in second.message


@pytest.mark.parametrize("reply", [
    b"SMTP ready\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nX: " + b"a" * 200_000,
    b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + OK[:20],  # then closes
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 99999 Absurd\r\nContent-Length: 2\r\n\r\n{}",
    b"",  # read the request, closed without a word
])
def test_broken_answers_are_transient_and_a_create_may_have_happened(reply):
    async def script(request, writer, n):
        writer.write(reply)
        await writer.drain()
        writer.close()

    _, (result,) = exchange(script, mutating=True)
    assert result.outcome is Outcome.TRANSIENT and result.maybe_applied is True and result.sent_at is not None


def test_a_silent_server_times_out():
    async def silent(request, writer, n):
        await asyncio.sleep(30)

    _, (result,) = exchange(silent, mutating=True, timeouts=Timeouts(read=0.3, total=5))
    assert result.outcome is Outcome.TRANSIENT and result.maybe_applied is True
    assert "ReadTimeout" in result.message


def trickle(head: bytes, each: bytes) -> Script:
    async def script(request, writer, n):
        writer.write(head)
        try:
            while True:  # a byte (or an interim answer) every 50 ms, forever: each one resets a read timeout
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.write(each)
        except ConnectionError:
            return
    return script


@pytest.mark.parametrize("script", [
    trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", b"{"),
    trickle(b"", b"HTTP/1.1 100 Continue\r\n\r\n"),
    trickle(b"HTTP/1.1 200 OK\r\n", b"X-Slow: 1\r\n"),
], ids=["body", "100-continue", "headers"])
def test_a_trickling_server_cannot_hold_a_request_past_its_deadline(script):
    _, (result,) = exchange(script, mutating=True, timeouts=Timeouts(read=5, total=0.5))
    assert result.outcome is Outcome.TRANSIENT and result.maybe_applied is True
    assert result.message == "no complete answer within 0.5 s"


def test_a_refused_connection_never_left():
    async def go():
        async with ApiClient("http://127.0.0.1:9", CREDS) as client:  # nothing listens on the discard port
            return await client.send(create(client))

    result = run(go())
    assert result.outcome is Outcome.TRANSIENT and result.sent_at is None and result.maybe_applied is False
    assert "Connection refused" in result.message


def test_a_connect_timeout_never_left(monkeypatch):
    async def never_connects(*args, **kwargs):
        await anyio.sleep(60)

    monkeypatch.setattr(anyio, "connect_tcp", never_connects)

    async def go():
        async with ApiClient("http://127.0.0.1:9", CREDS, timeouts=Timeouts(connect=0.2)) as client:
            return await client.send(create(client))

    result = run(go())
    assert result.sent_at is None and result.maybe_applied is False and "ConnectTimeout" in result.message


def test_before_send_runs_once_the_connection_is_ready_and_before_the_first_byte():
    """Admission waits for the request's slot in `before_send`: the connection is already open then, the
    request reaches the server only after it returns, and the deadline starts only then."""
    seen = {}

    async def go():
        async with ScriptedServer(answer()) as server:
            async with ApiClient(server.url, CREDS, timeouts=Timeouts(total=0.3)) as client:
                async def before_send():
                    await asyncio.sleep(0.1)  # let the server see the connection, if it was opened
                    seen["connections"] = server.connections
                    seen["requests"] = len(server.requests)
                    await asyncio.sleep(0.5)  # longer than the deadline: it does not count
                    seen["left"] = time.time()

                result = await client.send(check(client), before_send=before_send)
            return server, result

    server, result = run(go())
    assert result.ok and seen["connections"] == 1 and seen["requests"] == 0
    assert server.arrivals[0] >= seen["left"] and result.sent_at >= seen["left"]


def test_what_before_send_raises_comes_out_and_nothing_is_sent():
    class Stopped(Exception):
        pass

    async def go():
        async with ScriptedServer(answer()) as server:
            async with ApiClient(server.url, CREDS) as client:
                async def before_send():
                    raise Stopped()

                with pytest.raises(Stopped):
                    await client.send(create(client), before_send=before_send)
                after = await client.send(create(client))
            return server, after

    server, after = run(go())
    assert after.ok and len(server.requests) == 1  # only the second one


def test_a_cancelled_send_is_cancelled_not_an_answer():
    """A cancellation from outside (the run shutting down) stays one: only the deadline's own is an answer."""
    async def go():
        async with ScriptedServer(trickle(b"", b"")) as server:
            async with ApiClient(server.url, CREDS, timeouts=Timeouts(total=30)) as client:
                task = asyncio.create_task(client.send(check(client)))
                await asyncio.sleep(0.3)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

    run(go())


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    async def go():
        async with ScriptedServer(answer()) as server:
            async with ApiClient(server.url, Credentials("k", "s", "t\r\nX-Injected: 1", "c")) as client:
                result = await client.send(create(client))
            return server, result

    server, result = run(go())
    assert server.requests == [] and result.outcome is Outcome.TRANSIENT and result.maybe_applied is False


def test_a_base_url_below_a_path_keeps_its_prefix():
    async def go():
        async with ScriptedServer(answer()) as server:
            async with ApiClient(server.url + "/gateway/", CREDS) as client:
                await client.send(check(client))
            return server

    assert run(go()).requests[0].startswith(b"POST /gateway/affiliate_seller/")


def test_a_lost_answer_may_have_applied_a_create_but_not_a_read():
    async def hang_up(request, writer, n):
        writer.close()

    async def go():
        async with ScriptedServer(hang_up) as server:
            async with ApiClient(server.url, CREDS) as client:
                return await client.send(create(client)), await client.send(check(client))

    made, read = run(go())
    assert made.outcome is Outcome.TRANSIENT and made.maybe_applied is True
    assert read.outcome is Outcome.TRANSIENT and read.maybe_applied is False


def test_signed_queries_decode_to_the_signed_values():
    async def go():
        async with ScriptedServer(answer()) as server:
            async with ApiClient(server.url, CREDS) as client:
                result = await client.send(client.prepare_search_collaborations(page_token="a+b/c="))
            return server, result

    server, result = run(go())
    assert result.ok
    query = dict(httpx.URL("http://h" + server.requests[0].split(b" ")[1].decode()).params)
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
            async with ApiClient(server.url, CREDS) as untrusted:
                refused = await untrusted.send(check(untrusted))
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # as httpx reads it from the environment
            async with ApiClient(server.url, CREDS) as trusted:
                answers = [await trusted.send(check(trusted)), await trusted.send(check(trusted))]
            return server, refused, answers

    server, refused, answers = run(go())
    assert refused.sent_at is None and "certificate" in refused.message.lower()
    assert all(a.ok for a in answers) and server.connections == 1  # kept alive (the refused handshake never got far)


def test_requests_go_through_the_environments_proxy_and_never_for_the_sandbox(monkeypatch):
    """HTTPS_PROXY is honoured (a CONNECT to the proxy, which refuses it here: the request never left); a
    loopback base URL (the sandbox) is never proxied."""
    async def refuse_tunnel(request, writer, n):
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def go():
        async with ScriptedServer(refuse_tunnel) as proxy, ScriptedServer(answer()) as sandbox:
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                         "all_proxy", "no_proxy"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            async with ApiClient("https://open-api.tiktokglobalshop.com", CREDS) as client:
                tunnelled = await client.send(create(client))
            async with ApiClient(sandbox.url, CREDS) as client:
                direct = await client.send(create(client))
            return proxy, sandbox, tunnelled, direct

    proxy, sandbox, tunnelled, direct = run(go())
    assert proxy.requests[0].startswith(b"CONNECT open-api.tiktokglobalshop.com:443 HTTP/1.1")
    assert tunnelled.sent_at is None and tunnelled.maybe_applied is False and "ProxyError" in tunnelled.message
    assert direct.ok and len(sandbox.requests) == 1 and len(proxy.requests) == 1
