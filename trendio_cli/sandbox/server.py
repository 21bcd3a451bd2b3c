"""Run the sandbox: in the foreground for `trendio sandbox`, or in a background thread on a free port
for tests and `trendio demo`, with a clean stop."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from typing import Any

import httpx
import uvicorn

from trendio_cli.api.credentials import Credentials, sandbox_accepted_credentials
from trendio_cli.sandbox.app import create_app
from trendio_cli.sandbox.state import SandboxSettings, SandboxState


def _config(state: SandboxState, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(state), host=host, port=port, log_level=log_level, access_log=False,
        lifespan="off", timeout_keep_alive=30, backlog=2048,
    )


def serve_forever(
    settings: SandboxSettings, *, host: str = "127.0.0.1", port: int = 8787,
    credentials: list[Credentials] | None = None, log_path: str | None = None, log_level: str = "warning",
) -> None:
    state = SandboxState(settings, credentials or sandbox_accepted_credentials(), log_path)
    try:
        uvicorn.Server(_config(state, host, port, log_level)).run()
    finally:
        state.close()


class SandboxServer:
    """`with SandboxServer() as sb:` starts on 127.0.0.1 and a free port; `sb.url`, `sb.stats()`, `sb.state`."""

    def __init__(
        self, settings: SandboxSettings | None = None, *, credentials: list[Credentials] | None = None,
        log_path: str | None = None, port: int = 0,
    ) -> None:
        self.settings = settings or SandboxSettings()
        self.state = SandboxState(self.settings, credentials or sandbox_accepted_credentials(), log_path)
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> SandboxServer:
        # The sandbox stamps each request's arrival to enforce 50/s, in the process that hosts it (a test
        # session, the demo). A collection of that process's whole heap paused it for 20-80 ms in the test
        # suite, long enough to stamp part of a burst a window late and count 429s no client caused: the heap
        # as it is now is frozen out of later collections (the platform is another system).
        gc.collect()
        gc.freeze()
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
        # answer (head, then body) waited out the client's delayed ACK, 40 ms on loopback.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", self._port))
        port = sock.getsockname()[1]
        self._server = uvicorn.Server(_config(self.state, "127.0.0.1", port, "error"))
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

        def run() -> None:
            assert self._server is not None
            asyncio.run(self._server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=run, name="trendio-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.state.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Admin helpers over real HTTP, the way any client of the sandbox sees it.
    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_sandbox/stats", timeout=10).json()

    def configure(self, **changes: Any) -> dict[str, Any]:
        r = httpx.post(f"{self.url}/_sandbox/settings", json=changes, timeout=10)
        r.raise_for_status()
        return r.json()

    def invited_pairs(self) -> list[dict[str, str]]:
        return httpx.get(f"{self.url}/_sandbox/pairs", timeout=10).json()["pairs"]

    def advance(self, days: float = 0, seconds: float = 0) -> dict[str, Any]:
        r = httpx.post(f"{self.url}/_sandbox/advance", json={"days": days, "seconds": seconds}, timeout=10)
        r.raise_for_status()
        return r.json()

    def script(self, endpoint: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
        """Queue answers for the next calls to an endpoint (see state.py, `/_sandbox/script`)."""
        r = httpx.post(f"{self.url}/_sandbox/script", json={"endpoint": endpoint, "answers": answers}, timeout=10)
        r.raise_for_status()
        return r.json()
