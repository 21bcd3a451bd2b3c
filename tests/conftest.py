from __future__ import annotations

import gc
import os

import pytest

from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    """No test sees the developer's credentials or ledger; state lives in tmp_path."""
    for key in list(os.environ):
        if key.startswith("TRENDIO_") or key == "NO_COLOR":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TRENDIO_LEDGER", str(tmp_path / "trendio.db"))
    monkeypatch.setenv("COLUMNS", "120")


@pytest.fixture
def sandbox():
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        yield sb



def pytest_collection_finish(session):
    """The in-process sandbox stamps each request's arrival, and it shares this process: a collection of the
    whole test-session heap (every test module, hypothesis and the rest) paused it for up to 80 ms, long
    enough to stamp part of a group of requests a window late and count 429s the client did not cause. The
    platform is another system, so the heap collected by then is frozen out of later collections (measured:
    no pause over 12 ms during the sandbox tests, from 80)."""
    gc.collect()
    gc.freeze()
