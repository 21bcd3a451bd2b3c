"""Hostile answers and servers, end to end: whatever an answer holds it is one answer (range-checked before the
ledger), no wait outlasts its cap or a signal, a server that cannot be reached stops the brand with one line
and costs no quota, and a failing worker stops the run once and cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from helpers import json_out, run_cli, write_campaign
from trendio_cli.api.answers import Outcome, classify_response, parse_retry_after
from trendio_cli.api.client import ApiClient
from trendio_cli.api.credentials import Credentials
from trendio_cli.ledger import Ledger
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings

CREDS = Credentials("key-1", "secret-xyz-123", "token-abc-456", "cipher-1")


def through_the_client(response: httpx.Response):
    async def go():
        async with ApiClient("https://api.example", CREDS,
                             transport=httpx.MockTransport(lambda request: response)) as client:
            return await client.send(client.prepare_check_conflicts(["11"], ["1"]))

    return asyncio.run(go())


@pytest.mark.parametrize("response, says", [
    (httpx.Response(200, content=b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),  # RecursionError
    (httpx.Response(200, content=b'{"code": 0, "data": ' + b'{"a": ' * 200 + b"1" + b"}" * 201), "nested too deeply"),
    (httpx.Response(200, content=b'{"code": 123456789012345678901234567890, "message": "x"}'), "not a code"),
    (httpx.Response(200, content=b'{"code": "-123456789012345678901234567890"}'), "not a code"),
    (httpx.Response(99999, content=b'{"code": 0}'), "out of range"),
    (httpx.Response(42, content=b'{"code": 0}'), "out of range"),
])
def test_an_answer_no_api_gives_is_one_unknown_answer_that_the_ledger_can_record(response, says, tmp_path):
    answer = through_the_client(response)
    assert answer.outcome is Outcome.UNKNOWN and says in answer.message and not answer.retryable
    with Ledger.open(tmp_path / "l.db") as ledger:  # every number of it fits SQLite
        call = ledger.reserve_call(brand="b", quota_day="d", endpoint="e", limit=9, run_id=None).call_id
        ledger.record_call(call, outcome=answer.outcome.value, http_status=answer.http_status, code=answer.code,
                           latency_ms=answer.latency_ms, request_id=answer.request_id, message=answer.message)
        assert ledger.calls_by("b", "d") == {"e": {"unknown": 1}}


def test_odd_fields_of_an_envelope_are_read_as_text_or_left_out():
    body = json.dumps({"code": True, "message": {"a": [1] * 10}, "request_id": ["x"]}).encode()
    assert classify_response(200, {}, body, mutating=False).code is None  # a boolean is no code
    odd = classify_response(200, {}, json.dumps({"code": 0, "message": ["x"], "request_id": 7 * 10**40}).encode(),
                            mutating=False)
    assert odd.ok and odd.message == "" and odd.request_id is None


@pytest.mark.parametrize("value, seconds", [
    ("99999999", 3600.0), ("1e400", 3600.0), ("-5", 0.0), ("nan", None), ("Fri, 31 Dec 9999 23:59:59 GMT", 3600.0),
    ("2", 2.0),
])
def test_retry_after_is_range_checked(value, seconds):
    assert parse_retry_after(value) == seconds


class _Hostile(BaseHTTPRequestHandler):
    status = 429

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b'{"code": 36009002, "message": "slow down"}' if self.status == 429 else b""
        self.send_response(self.status)
        self.send_header("Retry-After", "99999999")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[429, 503])
def hostile_server(request):
    handler = type("Handler", (_Hostile,), {"status": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_retry_after_of_three_years_is_capped_and_sigterm_ends_the_wait(tmp_path: Path, hostile_server: str):
    campaign = write_campaign(tmp_path, 20, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    proc = subprocess.Popen([sys.executable, "-m", "trendio_cli", "execute", str(campaign), "--yes", "--json"],
                            env={**os.environ, "TRENDIO_BASE_URL": hostile_server, "TRENDIO_LEDGER": str(ledger)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # until it is waiting out the platform's answer
        try:
            with sqlite3.connect(ledger) as conn:
                if conn.execute("SELECT COUNT(*) FROM api_calls WHERE outcome != 'reserved'").fetchone()[0]:
                    break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)  # (a hang detector: it ran on until SIGKILL before)
    assert proc.returncode == 130, err[-1500:]
    result = json.loads(out)
    assert result["stop_reason"] == "interrupted" and result["counts"]["sent"] == 0
    with sqlite3.connect(ledger) as conn:
        # a 503 may hide a create: its pairs stay pending for the next run to reconcile; nothing else moved
        assert conn.execute("SELECT COUNT(*) FROM invitations WHERE state NOT IN ('planned', 'pending')"
                            ).fetchone()[0] == 0
        assert conn.execute("SELECT status, exit_code FROM runs").fetchall() == [("interrupted", 130)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["env", "flag"])
def test_a_server_that_cannot_be_reached_is_one_line_and_costs_no_quota(tmp_path: Path, how: str):
    campaign = write_campaign(tmp_path, 30, limits={"creators_per_request": 1})
    ledger = tmp_path / "l.db"
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    args = ["execute", campaign, "--yes"] + (["--base-url", url] if how == "flag" else [])
    proc = run_cli(*args, env={"TRENDIO_LEDGER": str(ledger), **({"TRENDIO_BASE_URL": url} if how == "env" else {})})
    assert proc.returncode == 1, proc.stderr[-1500:]
    source = "TRENDIO_BASE_URL" if how == "env" else "--base-url"
    said = " ".join((proc.stdout + proc.stderr).split())  # (a narrow terminal wraps it)
    assert said.count("cannot reach") == 1, proc.stdout + proc.stderr
    assert f"unreachable: cannot reach the API at {url} (from {source}): Connection refused (is the sandbox running? " \
           in said
    assert "error: transient" not in proc.stdout + proc.stderr
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("SELECT COALESCE(SUM(used), 0) FROM quota_usage").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM api_calls").fetchone()[0] == 0  # nothing left: nothing counted
        assert conn.execute("SELECT COUNT(*) FROM invitations").fetchone()[0] == 0  # nothing pending, nothing lost


def test_a_connection_refused_in_the_middle_of_a_run_is_not_counted(tmp_path: Path):
    """The sandbox goes away mid-run: what never left is given back, and the next run sends the rest."""
    campaign = write_campaign(tmp_path, 200, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    port = free_port()
    with SandboxServer(SandboxSettings(latency_ms=20, ineligible_permille=0), port=port) as sb:
        env = {**os.environ, "TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)}
        proc = subprocess.Popen([sys.executable, "-m", "trendio_cli", "execute", str(campaign), "--yes", "--json"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while sb.stats()["requests"] < 30:
            time.sleep(0.05)
        seen_first = sb.stats()
    out, err = proc.communicate(timeout=120)
    result = json.loads(out)
    assert proc.returncode == 1 and result["stop_reason"] == "unreachable", err[-1500:]
    with sqlite3.connect(ledger) as conn:
        used = conn.execute("SELECT SUM(used) FROM quota_usage").fetchone()[0]
        sent_by_ledger = conn.execute("SELECT COUNT(*) FROM api_calls WHERE outcome != 'reserved'").fetchone()[0]
    assert used == sent_by_ledger == result["counts"]["requests"]  # exactly what left
    assert used >= seen_first["requests"]
    with SandboxServer(SandboxSettings(latency_ms=0, ineligible_permille=0), port=port) as sb:
        again = json_out(run_cli("execute", campaign, "--yes", "--json",
                                 env={"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)}))
    assert again["status"] == "success"
    with sqlite3.connect(ledger) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM invitations GROUP BY state"))
    assert states == {"sent": 200}


FAILING_WORKER = """
import sys
from trendio_cli import ledger as ledger_module
real, calls = ledger_module.Ledger.mark, [0]

def mark(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] == 12:
        raise RuntimeError("the twelfth outcome fails")
    return real(self, *args, **kwargs)

ledger_module.Ledger.mark = mark
sys.argv[0] = "trendio"
from trendio_cli.cli import main
main()
"""


def test_a_failing_worker_stops_the_run_once_and_cleanly(tmp_path: Path):
    campaign = write_campaign(tmp_path, 200, limits={"creators_per_request": 1},
                              products=[{"id": "5", "commission": "10%"}])
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(latency_ms=100, ineligible_permille=0)) as sb:
        env = {**os.environ, "TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger), "PYTHONASYNCIODEBUG": ""}
        proc = subprocess.run([sys.executable, "-c", FAILING_WORKER, "execute", str(campaign), "--yes"], env=env,
                              capture_output=True, text=True, timeout=120)
        platform = {(p["creator_id"], p["product_id"]) for p in sb.invited_pairs()}
    assert proc.returncode == 1
    assert proc.stderr.count("the twelfth outcome fails") == 1, proc.stderr
    for noise in ("Traceback", "never retrieved", "Task was destroyed", "closed database", "Exception ignored"):
        assert noise not in proc.stderr, proc.stderr
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("SELECT status, exit_code FROM runs").fetchall() == [("error", 1)]
        assert conn.execute("SELECT COUNT(*) FROM run_locks").fetchone()[0] == 0
        in_ledger = set(conn.execute("SELECT creator_id, product_id FROM invitations WHERE state IN "
                                     "('sent', 'pending')"))
    assert platform <= in_ledger  # whatever left is sent or pending (reconciled next time), nothing unknown
    assert len(platform) < 200  # it stopped
