"""The token store: access and refresh tokens obtained by refreshing, kept between runs, and the refresh itself.

Access tokens last 7 days and the refresh token rotates at every refresh (tiktok-shop-api.md, Authorization),
so a refreshed pair must outlive the process that got it. It lives in one JSON file, mode 0600, in the user's
config directory (`TRENDIO_HOME` moves it), never in the ledger. Writes are atomic (a temporary file renamed
over the old one), the new pair is on disk before its access token is used, and a lock file serializes
refreshes, so that two processes refreshing one authorization at once end with one valid pair.

A pair is kept per seller authorization, not per shop: one authorization reaches every shop of its seller
(each its own shop cipher), so brands given the same tokens share one stored pair, and whichever refreshes
first refreshes it for all (each refreshing on its own would send a refresh token another had already used).

Which token wins: the environment's, unless the store holds a pair refreshed from that very environment token
(a newer one). A user who puts a new token in the environment is obeyed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from trendio_cli.api.credentials import Credentials, check_base_url
from trendio_cli.api.endpoints import DEFAULT_AUTH_URL, TOKEN_REFRESH_PATH
from trendio_cli.errors import ConfigError, Refused

STORE_NAME = "tokens.json"
STORE_FORMAT = 1
REFRESH_TIMEOUT_S = 30.0
MAX_ANSWER_BYTES = 1 << 20
LOCK_WAIT_S = 60.0


class RefreshFailed(Refused):
    """The token could not be refreshed: the brand stops (exit 5)."""


def trendio_home() -> Path:
    """Where trendio keeps its own files: `TRENDIO_HOME`, else the platform's user config directory."""
    explicit = os.environ.get("TRENDIO_HOME")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "trendio"


def fingerprint(token: str) -> str:
    """What the store keeps of an environment token: enough to recognise it, nothing to use."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def authorization_key(creds: Credentials, auth_url: str) -> str:
    """Where a pair is kept: a token belongs to an app, a seller's authorization and the platform that issued it
    (a sandbox's are no good elsewhere). The authorization is known by the refresh token the environment gave
    (only a digest of it is kept), which stays the same while the pair it started rotates."""
    given = creds.env_refresh_token or creds.env_access_token or creds.access_token
    return hashlib.sha256(f"{creds.app_key}\0{fingerprint(given)}\0{auth_url}".encode()).hexdigest()[:24]


def _per_shop_key(creds: Credentials, auth_url: str) -> str:
    """Where stores written before pairs were kept per authorization kept one: per app, shop and platform."""
    return hashlib.sha256(f"{creds.app_key}\0{creds.shop_cipher}\0{auth_url}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class TokenPair:
    access_token: str = dataclasses.field(repr=False)
    refresh_token: str = dataclasses.field(repr=False)
    access_expires_at: int | None = None  # Unix time
    refresh_expires_at: int | None = None
    refreshed_at: float = 0.0
    env_fingerprint: str = ""  # the environment access token this pair descends from
    brand: str = ""  # for people reading `trendio auth` output; not part of the key

    def summary(self) -> dict[str, Any]:
        """What may be shown: when things expire, never the tokens."""
        def when(ts: float | None) -> str | None:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None
        return {"brand": self.brand, "refreshed_at": when(self.refreshed_at),
                "access_token_expires_at": when(self.access_expires_at),
                "refresh_token_expires_at": when(self.refresh_expires_at)}


class TokenStore:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or trendio_home()
        self.path = self.home / STORE_NAME

    # --- reading -----------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the token store: {exc.strerror or exc}") from None
        try:
            doc = json.loads(raw)
        except ValueError:
            raise ConfigError(f"{self.path}: the token store is damaged (not JSON)",
                              hint="move it aside and run `trendio auth refresh` with the environment's tokens"
                              ) from None
        shops = doc.get("shops") if isinstance(doc, dict) else None
        return shops if isinstance(shops, dict) else {}

    def get(self, key: str) -> TokenPair | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            return TokenPair(**{f.name: entry[f.name] for f in dataclasses.fields(TokenPair) if f.name in entry})
        except TypeError:
            return None

    def pair_for(self, creds: Credentials, auth_url: str) -> TokenPair | None:
        """The pair stored for the credentials' authorization (shared by every shop it reaches)."""
        return self.get(authorization_key(creds, auth_url))

    def effective(self, creds: Credentials, auth_url: str, *, adopt: bool = True) -> Credentials:
        """The credentials with the newest tokens: a stored pair refreshed from the environment's token wins.
        With `adopt=False` nothing is written: an older store's per-shop pair is read where it is."""
        if adopt:
            self._adopt_per_shop_pair(creds, auth_url)
        stored = self.pair_for(creds, auth_url)
        if stored is None and not adopt and creds.shop_cipher:
            stored = self.get(_per_shop_key(creds, auth_url))
        if stored is None or stored.env_fingerprint != fingerprint(creds.env_access_token or creds.access_token):
            return creds
        return dataclasses.replace(creds, access_token=stored.access_token, refresh_token=stored.refresh_token,
                                   source=f"{creds.source}, refreshed token from {self.path}", stored=True)

    def _adopt_per_shop_pair(self, creds: Credentials, auth_url: str) -> None:
        """A pair an older store kept for this shop alone moves to the authorization's key, where the seller's
        other shops find it too (theirs would be the environment's refresh token, which it used up)."""
        per_shop = _per_shop_key(creds, auth_url)
        if not creds.shop_cipher or self.get(per_shop) is None or self.pair_for(creds, auth_url) is not None:
            return
        with self.lock():
            legacy = self.get(per_shop)
            if legacy is not None and self.pair_for(creds, auth_url) is None:
                self.put(creds, auth_url, legacy)

    def forget(self, creds: Credentials, auth_url: str) -> None:
        """Drop a stored pair the platform no longer takes (a sandbox restarted, a shop re-authorized)."""
        keys = (authorization_key(creds, auth_url), _per_shop_key(creds, auth_url))
        with self.lock():
            shops = self._read()
            if any(key in shops for key in keys):
                for key in keys:
                    shops.pop(key, None)
                self._write(shops)

    # --- writing -----------------------------------------------------------------------------
    def put(self, creds: Credentials, auth_url: str, pair: TokenPair) -> None:
        """Keep the authorization's pair (under the store's lock); a per-shop copy of it, now stale, goes."""
        shops = self._read()
        shops.pop(_per_shop_key(creds, auth_url), None)
        shops[authorization_key(creds, auth_url)] = dataclasses.asdict(pair)
        self._write(shops)

    def _write(self, shops: dict[str, Any]) -> None:
        """Atomically: the old file stays whole until the new one, complete and synced, replaces it."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps({"format": STORE_FORMAT, "shops": shops}, indent=1).encode()
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.home)  # mkstemp makes it 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError, AttributeError):  # the rename itself survives a crash
            dirfd = os.open(self.home, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)

    @contextlib.contextmanager
    def lock(self, timeout: float = LOCK_WAIT_S) -> Iterator[None]:
        """One refresh at a time across processes (an advisory lock on a file beside the store)."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.home / (STORE_NAME + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            _lock_file(fd, timeout, self.path)
            yield
        finally:
            _unlock_file(fd)
            os.close(fd)


def _lock_file(fd: int, timeout: float, path: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RefreshFailed(f"another process has held the token store's lock ({path}.lock) for "
                                    f"{timeout:.0f} s") from None
            time.sleep(0.05)


def _unlock_file(fd: int) -> None:
    with contextlib.suppress(OSError):
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)


def auth_url_for(base_url: str, environ: dict[str, str] | None = None) -> str:
    """`TRENDIO_AUTH_URL`, else the real auth host; against a loopback base URL (the sandbox), the base URL
    itself, so that sandbox tokens are never sent to the real platform."""
    from trendio_cli.api.credentials import is_loopback_url

    env = os.environ if environ is None else environ
    explicit = env.get("TRENDIO_AUTH_URL")
    if explicit:
        return check_base_url(explicit)
    return check_base_url(base_url) if is_loopback_url(base_url) else DEFAULT_AUTH_URL


async def refresh(creds: Credentials, failed_access_token: str, *, auth_url: str, brand: str = "",
                  store: TokenStore | None = None, transport: httpx.AsyncBaseTransport | None = None) -> Credentials:
    """Refresh the authorization's access token once `failed_access_token` was refused as expired; returns credentials
    with the new pair, which is on disk before this returns. Under the store's lock: if another process has
    refreshed meanwhile, its pair is used and no second refresh is sent (the first rotated the refresh token)."""
    store = store or TokenStore()
    env_fp = fingerprint(creds.env_access_token or creds.access_token)
    async with _held(store):
        current = store.pair_for(creds, auth_url)
        if current is not None and current.env_fingerprint == env_fp and current.access_token != failed_access_token:
            return dataclasses.replace(creds, access_token=current.access_token, refresh_token=current.refresh_token,
                                       stored=True)
        refresh_token = (current.refresh_token if current is not None and current.env_fingerprint == env_fp
                         else creds.refresh_token)
        if not refresh_token:
            raise RefreshFailed("the access token has expired and there is no refresh token to renew it",
                                hint="set TRENDIO_REFRESH_TOKEN (or TRENDIO_<BRAND>_REFRESH_TOKEN) from the shop's "
                                     "authorization, or a new TRENDIO_ACCESS_TOKEN")
        data = await _ask_auth_host(auth_url, creds.app_key, creds.app_secret, refresh_token, transport)
        pair = TokenPair(access_token=data["access_token"], refresh_token=data["refresh_token"],
                         access_expires_at=data.get("access_token_expire_in"),
                         refresh_expires_at=data.get("refresh_token_expire_in"),
                         refreshed_at=time.time(), env_fingerprint=env_fp, brand=brand)
        store.put(creds, auth_url, pair)  # the rotated refresh token is saved before the new access token is used
    return dataclasses.replace(creds, access_token=pair.access_token, refresh_token=pair.refresh_token, stored=True)


@contextlib.asynccontextmanager
async def _held(store: TokenStore):  # type: ignore[no-untyped-def]
    lock = store.lock()
    await asyncio.to_thread(lock.__enter__)  # waiting for another process must not block the event loop
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


async def _ask_auth_host(auth_url: str, app_key: str, app_secret: str, refresh_token: str,
                         transport: httpx.AsyncBaseTransport | None) -> dict[str, Any]:
    """GET {auth}/api/v2/token/refresh. The query carries the app secret and the refresh token, so no error
    message here ever includes the URL or the answer's tokens."""
    query = {"app_key": app_key, "app_secret": app_secret, "refresh_token": refresh_token,
             "grant_type": "refresh_token"}
    where = f"the auth host {auth_url}"
    try:
        async with httpx.AsyncClient(transport=transport, timeout=REFRESH_TIMEOUT_S, trust_env=True) as http:
            async with http.stream("GET", auth_url + TOKEN_REFRESH_PATH, params=query) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise RefreshFailed(f"{where} sent an answer larger than {MAX_ANSWER_BYTES} bytes")
                status = response.status_code
    except httpx.HTTPError as exc:
        raise RefreshFailed(f"cannot refresh the access token: {where} did not answer ({type(exc).__name__})",
                            hint="check TRENDIO_AUTH_URL and the network") from None
    try:
        doc = json.loads(bytes(body))
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise RefreshFailed(f"cannot refresh the access token: {where} answered HTTP {status} without a JSON body")
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    code = doc.get("code")
    tokens_ok = all(isinstance(data.get(k), str) and data.get(k) for k in ("access_token", "refresh_token"))
    if code not in (0, "0") or not tokens_ok:
        message = str(doc.get("message") or "")[:200]
        for secret in (app_secret, refresh_token):
            message = message.replace(secret, "***")
        raise RefreshFailed(f"the token refresh was refused (code {code}{': ' + message if message else ''})",
                            hint="the refresh token may have expired or been used already: authorize the shop "
                                 "again and set TRENDIO_ACCESS_TOKEN and TRENDIO_REFRESH_TOKEN")
    out = {"access_token": data["access_token"], "refresh_token": data["refresh_token"]}
    for k in ("access_token_expire_in", "refresh_token_expire_in"):
        try:
            value = int(data.get(k))  # type: ignore[arg-type]
            out[k] = value if 0 < value < 2**40 else None
        except (TypeError, ValueError):
            out[k] = None
    return out
