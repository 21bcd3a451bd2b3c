"""The sandbox's shop authorizations: access tokens that expire, refresh tokens that rotate on use.

A grant is one shop authorization (an app, the shops it reaches, its current refresh token). Refreshing it
issues a new access token and a new refresh token; the old refresh token stops working (unless reused within
a grace period, when it gets the same new pair again), and the old access token lives on until it expires
(or ends at once, if revoked on refresh). Shop ciphers never change.
"""

from __future__ import annotations

import base64
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from trendio_cli.api.credentials import Credentials


@dataclass
class Grant:
    app_key: str
    ciphers: tuple[str, ...]
    refresh_token: str
    refresh_issued_at: float
    access_token: str = ""


@dataclass
class AccessToken:
    value: str
    grant: Grant
    issued_at: float
    uses: int = 0
    revoked: bool = False
    forced_expired: bool = False


@dataclass
class _UsedRefresh:
    grant: Grant
    used_at: float
    answer: dict[str, Any]


class RefreshRefused(Exception):
    """A refresh the platform refuses: 36004005 (unknown or used up) or 36004001 (expired)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Authorizations:
    """Every token the sandbox has issued, from the credentials it was started with onwards."""

    tokens: dict[str, AccessToken] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)  # current refresh token -> its grant
    _used: dict[str, _UsedRefresh] = field(default_factory=dict)

    @classmethod
    def issue(cls, credentials: list[Credentials], now: float) -> Authorizations:
        """One grant per (app, access token); a token used for several shop ciphers reaches them all."""
        auth = cls()
        ciphers: dict[tuple[str, str], list[str]] = defaultdict(list)
        for c in credentials:
            if c.shop_cipher not in ciphers[(c.app_key, c.access_token)]:
                ciphers[(c.app_key, c.access_token)].append(c.shop_cipher)
        for c in credentials:
            if c.access_token in auth.tokens:
                continue
            grant = Grant(c.app_key, tuple(ciphers[(c.app_key, c.access_token)]), c.refresh_token, now,
                          c.access_token)
            auth.tokens[c.access_token] = AccessToken(c.access_token, grant, now)
            if c.refresh_token:
                auth.grants.setdefault(c.refresh_token, grant)
        return auth

    def expired(self, token: AccessToken, now: float, lifetime_s: float, max_uses: int) -> bool:
        if token.revoked or token.forced_expired:
            return True
        if max_uses and token.uses > max_uses:
            return True
        return bool(lifetime_s) and now >= token.issued_at + lifetime_s

    def refresh(self, app_key: str, refresh_token: str, now: float, rng: random.Random, *, lifetime_s: float,
                refresh_lifetime_s: float, grace_s: float, revoke_old: bool,
                describe: dict[str, Any]) -> dict[str, Any]:
        """Rotate a grant's tokens; the answer's `data`. `describe` adds the seller's fields to it."""
        used = self._used.get(refresh_token)
        if used is not None and used.grant.app_key == app_key and _within_grace(now - used.used_at, grace_s):
            return dict(used.answer)
        grant = self.grants.get(refresh_token)
        if grant is None or grant.app_key != app_key:
            raise RefreshRefused(36004005)
        if now >= grant.refresh_issued_at + refresh_lifetime_s:
            raise RefreshRefused(36004001)
        old = self.tokens.get(grant.access_token)
        if old is not None and revoke_old:
            old.revoked = True
        access, refresh = _new_token(rng), _new_token(rng)
        del self.grants[refresh_token]
        grant.refresh_token, grant.refresh_issued_at, grant.access_token = refresh, now, access
        self.grants[refresh] = grant
        self.tokens[access] = AccessToken(access, grant, now)
        answer = {
            "access_token": access,
            "access_token_expire_in": int(now + (lifetime_s or 10 * 365 * 86_400)),
            "refresh_token": refresh,
            "refresh_token_expire_in": int(now + refresh_lifetime_s),
            **describe,
        }
        self._used[refresh_token] = _UsedRefresh(grant, now, answer)
        return dict(answer)

    def expire_all(self) -> int:
        for t in self.tokens.values():
            t.forced_expired = True
        return len(self.tokens)


def _within_grace(elapsed: float, grace_s: float) -> bool:
    return bool(grace_s) and elapsed <= grace_s


def _new_token(rng: random.Random) -> str:
    return "TTP_" + base64.urlsafe_b64encode(rng.randbytes(30)).decode().rstrip("=")
