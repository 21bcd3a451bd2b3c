from __future__ import annotations

import os

import pytest
from hypothesis import settings

from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings

# CI runners are busy: a property's examples are judged on what they find, never on how long one took;
# a failure prints the blob that replays it (`@reproduce_failure`)
settings.register_profile("trendio", deadline=None, print_blob=True)
settings.load_profile("trendio")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    """No test sees the developer's credentials, ledger or token store; state lives in tmp_path."""
    for key in list(os.environ):
        if key.startswith("TRENDIO_") or key == "NO_COLOR":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TRENDIO_LEDGER", str(tmp_path / "trendio.db"))
    monkeypatch.setenv("TRENDIO_HOME", str(tmp_path / "home"))  # the token store, never the developer's
    monkeypatch.setenv("COLUMNS", "120")


@pytest.fixture
def sandbox():
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        yield sb


