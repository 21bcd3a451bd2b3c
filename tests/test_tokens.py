"""The token store and the refresh (over httpx.MockTransport here; over real HTTP against the sandbox, with
two processes at once, in test_api_semantics.py): which token wins, atomic 0600 writes, rotation, no secret
in any message; brands given one seller's tokens sharing its rotated pair (over HTTP against the sandbox),
and stores written per shop still read."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat

import httpx
import pytest

from trendio_cli.api import tokens
from trendio_cli.api.credentials import credentials_for
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings

ENV = {"TRENDIO_APP_KEY": "app-1", "TRENDIO_APP_SECRET": "secret-9f8e7d", "TRENDIO_ACCESS_TOKEN": "env-access-1",
       "TRENDIO_REFRESH_TOKEN": "env-refresh-1", "TRENDIO_SHOP_CIPHER": "cipher-1"}


def refreshing_host(calls, *, code=0, expire=1_900_000_000):
    """An auth host that rotates: each refresh token works once and yields the next pair."""
    def handler(request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        calls.append(q)
        assert request.url.path == "/api/v2/token/refresh" and q["grant_type"] == "refresh_token"
        n = len(calls)
        return httpx.Response(200, json={"code": code, "message": "success" if code == 0 else "refresh token invalid",
                                         "request_id": "r", "data": {
                                             "access_token": f"access-{n + 1}", "refresh_token": f"refresh-{n + 1}",
                                             "access_token_expire_in": expire, "refresh_token_expire_in": expire}})
    return httpx.MockTransport(handler)


def test_a_refreshed_pair_is_stored_0600_and_wins_over_the_environment_token_it_came_from(tmp_path):
    store = tokens.TokenStore(tmp_path / "home")
    creds = credentials_for(None, ENV)
    calls: list = []
    new = asyncio.run(tokens.refresh(creds, creds.access_token, auth_url="https://auth.example", store=store,
                                     transport=refreshing_host(calls)))
    assert (new.access_token, new.refresh_token) == ("access-2", "refresh-2")
    assert calls[0]["refresh_token"] == "env-refresh-1" and calls[0]["app_secret"] == "secret-9f8e7d"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    text = store.path.read_text()
    assert "env-access-1" not in text and "secret-9f8e7d" not in text  # the env token is kept as a digest only
    # a later process with the same environment uses the refreshed pair
    assert store.effective(credentials_for(None, ENV), "https://auth.example").access_token == "access-2"
    # a new token put in the environment is obeyed: the stored pair descends from the old one
    fresh_env = {**ENV, "TRENDIO_ACCESS_TOKEN": "env-access-NEW"}
    assert store.effective(credentials_for(None, fresh_env), "https://auth.example").access_token == "env-access-NEW"
    # a second refresh continues the chain with the rotated refresh token, not the environment's used one
    again = asyncio.run(tokens.refresh(new, new.access_token, auth_url="https://auth.example", store=store,
                                       transport=refreshing_host(calls)))
    assert calls[1]["refresh_token"] == "refresh-2" and again.access_token == "access-3"
    assert store.effective(credentials_for(None, ENV), "https://auth.example").refresh_token == "refresh-3"
    # a token is the platform's that issued it: another auth host (another sandbox) does not see it
    assert store.effective(credentials_for(None, ENV), "http://127.0.0.1:9").access_token == "env-access-1"


def test_a_process_that_meets_an_already_refreshed_token_uses_it_without_a_second_refresh(tmp_path):
    store = tokens.TokenStore(tmp_path / "home")
    creds = credentials_for(None, ENV)
    calls: list = []
    asyncio.run(tokens.refresh(creds, creds.access_token, auth_url="https://a.example", store=store,
                               transport=refreshing_host(calls)))
    # another process still held the environment's token when it met 105002
    other = asyncio.run(tokens.refresh(creds, "env-access-1", auth_url="https://a.example", store=store,
                                       transport=refreshing_host(calls)))
    assert len(calls) == 1 and other.access_token == "access-2"


def test_a_refused_refresh_names_no_secret_and_keeps_the_store(tmp_path):
    store = tokens.TokenStore(tmp_path / "home")
    creds = credentials_for(None, ENV)
    with pytest.raises(tokens.RefreshFailed) as info:
        asyncio.run(tokens.refresh(creds, creds.access_token, auth_url="https://a.example", store=store,
                                   transport=refreshing_host([], code=105003)))
    text = f"{info.value.message} {info.value.hint}"
    assert "105003" in text
    for secret in ("secret-9f8e7d", "env-refresh-1", "env-access-1"):
        assert secret not in text
    assert not store.path.exists()

    def unreachable(request):
        raise httpx.ConnectError("connection refused to " + str(request.url))  # the URL holds the secret

    with pytest.raises(tokens.RefreshFailed) as info:
        asyncio.run(tokens.refresh(creds, creds.access_token, auth_url="https://a.example", store=store,
                                   transport=httpx.MockTransport(unreachable)))
    assert "secret-9f8e7d" not in info.value.message and "did not answer" in info.value.message


def test_without_a_refresh_token_the_refresh_says_what_to_set(tmp_path):
    env = {k: v for k, v in ENV.items() if k != "TRENDIO_REFRESH_TOKEN"}
    creds = credentials_for(None, env)
    with pytest.raises(tokens.RefreshFailed, match="no refresh token") as info:
        asyncio.run(tokens.refresh(creds, creds.access_token, auth_url="https://a.example",
                                   store=tokens.TokenStore(tmp_path / "h")))
    assert "TRENDIO_REFRESH_TOKEN" in (info.value.hint or "")


def test_a_damaged_store_is_a_clear_error(tmp_path):
    store = tokens.TokenStore(tmp_path / "home")
    store.home.mkdir(parents=True)
    store.path.write_text("{not json")
    with pytest.raises(Exception, match="damaged"):
        store.effective(credentials_for(None, ENV), "https://auth.example")


def test_trendio_home_moves_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("TRENDIO_HOME", str(tmp_path / "elsewhere"))
    assert tokens.TokenStore().path == tmp_path / "elsewhere" / "tokens.json"
    store = tokens.TokenStore()
    creds = credentials_for(None, ENV)
    store.put(creds, "https://a.example", tokens.TokenPair("a", "r", brand="b"))
    [entry] = json.loads(store.path.read_text())["shops"].values()
    assert entry["brand"] == "b"


# --- one seller's tokens for several shops -------------------------------------------------------------------
SHARED = {"TRENDIO_APP_KEY": "app-1", "TRENDIO_APP_SECRET": "secret-9f8e7d", "TRENDIO_ACCESS_TOKEN": "seller-access",
          "TRENDIO_REFRESH_TOKEN": "seller-refresh", "TRENDIO_GLOWLAB_SHOP_CIPHER": "cipher-us",
          "TRENDIO_SUNDAY_SHOP_CIPHER": "cipher-mx"}


def test_brands_given_one_sellers_tokens_keep_working_after_either_refreshes_over_http(tmp_path):
    from helpers import json_out, run_cli

    creds = [credentials_for(brand, SHARED) for brand in ("glowlab", "sunday")]
    env = {**SHARED, "TRENDIO_HOME": str(tmp_path / "home"), "TRENDIO_LEDGER": str(tmp_path / "l.db")}
    with SandboxServer(SandboxSettings(ineligible_permille=0), credentials=creds) as sb:
        env["TRENDIO_BASE_URL"] = sb.url
        httpx.post(f"{sb.url}/_sandbox/expire_tokens", timeout=10).raise_for_status()

        def search(brand: str) -> dict:
            proc = run_cli("creators", "discover", "--brand", brand, "--out", tmp_path / f"{brand}.csv", "--limit",
                           "1", "--json", env=env, check=0)
            shown = proc.stdout + proc.stderr
            assert all(secret not in shown for secret in ("seller-refresh", "secret-9f8e7d", "TTP_"))
            return json_out(proc)

        first, second, again = search("glowlab"), search("sunday"), search("glowlab")
        stats = sb.stats()
    assert first["added"] == second["added"] == again["added"] == 1
    # glowlab refreshed the seller's pair; sunday used it, never the environment's spent refresh token
    assert stats["refreshes"] == 1 and stats["refresh_failures"] == 0
    stored = json.loads((tmp_path / "home" / "tokens.json").read_text())["shops"]
    assert len(stored) == 1 and "seller-refresh" not in json.dumps(stored)


def test_brands_given_different_tokens_keep_their_own_pairs(tmp_path):
    store = tokens.TokenStore(tmp_path / "home")
    own = {**SHARED, "TRENDIO_SUNDAY_ACCESS_TOKEN": "sunday-access", "TRENDIO_SUNDAY_REFRESH_TOKEN": "sunday-refresh"}
    glowlab, sunday = credentials_for("glowlab", own), credentials_for("sunday", own)
    asyncio.run(tokens.refresh(glowlab, glowlab.access_token, auth_url="https://a.example", store=store,
                               transport=refreshing_host([])))
    assert store.effective(glowlab, "https://a.example").access_token == "access-2"
    assert store.effective(sunday, "https://a.example").access_token == "sunday-access"


def test_a_store_written_per_shop_is_still_read_and_then_shared_by_the_sellers_shops(tmp_path):
    store = tokens.TokenStore(tmp_path / "home")
    store.home.mkdir(parents=True)
    auth = "https://a.example"
    per_shop = hashlib.sha256(f"app-1\0cipher-us\0{auth}".encode()).hexdigest()[:24]  # the old key
    pair = {"access_token": "stored-access", "refresh_token": "stored-refresh", "access_expires_at": 1_900_000_000,
            "refresh_expires_at": 1_900_000_000, "refreshed_at": 1_700_000_000.0,
            "env_fingerprint": tokens.fingerprint("seller-access"), "brand": "glowlab"}
    store.path.write_text(json.dumps({"format": 1, "shops": {per_shop: pair}}))
    glowlab, sunday = credentials_for("glowlab", SHARED), credentials_for("sunday", SHARED)
    before = store.path.read_bytes()
    # a client that only signs (dry-run) reads it where it is and writes nothing
    assert store.effective(glowlab, auth, adopt=False).access_token == "stored-access"
    assert store.path.read_bytes() == before
    assert store.effective(glowlab, auth).access_token == "stored-access"  # still logged in
    assert store.effective(sunday, auth).access_token == "stored-access"  # and the seller's other shop too
    calls: list = []
    asyncio.run(tokens.refresh(store.effective(sunday, auth), "stored-access", auth_url=auth, store=store,
                               transport=refreshing_host(calls)))
    assert calls[0]["refresh_token"] == "stored-refresh"  # the stored one, not the environment's spent one
    assert store.effective(glowlab, auth).refresh_token == "refresh-2"
    [key] = json.loads(store.path.read_text())["shops"]
    assert key != per_shop  # moved to the authorization's key: one pair, no stale per-shop copy
