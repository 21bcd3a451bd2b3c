"""Credentials per brand from the environment; never printed, logged or stored."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from trendio_cli.errors import ConfigError

FIELDS = ("APP_KEY", "APP_SECRET", "ACCESS_TOKEN", "SHOP_CIPHER")
OPTIONAL_FIELDS = ("REFRESH_TOKEN",)  # only needed to refresh an expired access token

# Documented defaults the sandbox accepts when the variables are unset (README, "Sandbox").
SANDBOX_DEFAULTS = {
    "APP_KEY": "sandbox-app-key",
    "APP_SECRET": "sandbox-app-secret",
    "ACCESS_TOKEN": "sandbox-access-token",
    "SHOP_CIPHER": "sandbox-shop-cipher",
    "REFRESH_TOKEN": "sandbox-refresh-token",
}


def brand_env_prefix(brand: str) -> str:
    """`glow-lab` -> `TRENDIO_GLOW_LAB_`."""
    return "TRENDIO_" + re.sub(r"[^A-Z0-9]", "_", brand.upper()) + "_"


@dataclass(frozen=True)
class Credentials:
    app_key: str
    app_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    shop_cipher: str
    source: str = "environment"
    refresh_token: str = field(default="", repr=False)
    env_access_token: str = field(default="", repr=False)  # the environment's token, which a stored pair replaces
    env_refresh_token: str = field(default="", repr=False)  # the environment's (the authorization the store knows)
    stored: bool = False  # the tokens are a refreshed pair from the token store, not the environment's

    def __repr__(self) -> str:  # secrets never reach a traceback or a log line
        return f"Credentials(app_key={self.app_key!r}, shop_cipher={self.shop_cipher!r}, source={self.source!r})"

    __str__ = __repr__

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.app_secret, self.access_token, self.refresh_token, self.env_access_token,
                                 self.env_refresh_token) if s)


def credentials_for(
    brand: str | None,
    environ: Mapping[str, str] | None = None,
    *,
    allow_sandbox_defaults: bool = False,
    need_shop: bool = True,
) -> Credentials:
    """Brand-specific variables win over the generic ones, field by field. (A token refreshed from the
    environment's token, kept in the token store, then wins over it: `ApiClient` applies it.)

    With `allow_sandbox_defaults` (a loopback base URL), unset fields take the sandbox's documented defaults.
    `need_shop=False`: the shop cipher may be missing (the authorized-shops list is how one finds it).
    """
    env = os.environ if environ is None else environ
    prefix = brand_env_prefix(brand) if brand else None
    values: dict[str, str] = {}
    missing: list[str] = []
    used_defaults = False
    for name in FIELDS + OPTIONAL_FIELDS:
        value = env.get(f"{prefix}{name}") if prefix else None
        if not value:
            value = env.get(f"TRENDIO_{name}")
        if not value and allow_sandbox_defaults:
            value = SANDBOX_DEFAULTS[name]
            used_defaults = True
        if value:
            values[name] = value
        elif name in FIELDS and (need_shop or name != "SHOP_CIPHER"):
            missing.append(name)
    if missing:
        names = ", ".join(f"TRENDIO_{m}" for m in missing)
        brand_hint = f" (or {prefix}<NAME> for brand {brand!r})" if prefix else ""
        raise ConfigError(
            f"missing credentials: set {names}{brand_hint}",
            hint="credentials come from the environment only, never from campaign files",
        )
    return Credentials(
        app_key=values["APP_KEY"],
        app_secret=values["APP_SECRET"],
        access_token=values["ACCESS_TOKEN"],
        shop_cipher=values.get("SHOP_CIPHER", ""),
        source="sandbox defaults" if used_defaults else "environment",
        refresh_token=values.get("REFRESH_TOKEN", ""),
        env_access_token=values["ACCESS_TOKEN"],
        env_refresh_token=values.get("REFRESH_TOKEN", ""),
    )


def sandbox_accepted_credentials(environ: Mapping[str, str] | None = None) -> list[Credentials]:
    """Every credential set found in the environment (generic and per brand), for `trendio sandbox`.

    The sandbox defaults are always accepted too, so `trendio demo` and tests need no setup.
    """
    env = os.environ if environ is None else environ
    found: list[Credentials] = [credentials_for(None, {}, allow_sandbox_defaults=True)]
    prefixes = {""}
    for key in env:
        m = re.fullmatch(r"TRENDIO_([A-Z0-9_]+?)_APP_KEY", key)
        if m:
            prefixes.add(m.group(1))
    for p in sorted(prefixes):
        fields = {}
        for name in FIELDS + OPTIONAL_FIELDS:
            fields[name] = env.get(f"TRENDIO_{p}_{name}" if p else f"TRENDIO_{name}") or env.get(
                f"TRENDIO_{name}"
            )
        if all(fields[name] for name in FIELDS):
            found.append(Credentials(fields["APP_KEY"], fields["APP_SECRET"], fields["ACCESS_TOKEN"],
                                     fields["SHOP_CIPHER"], refresh_token=fields["REFRESH_TOKEN"] or ""))
    return found


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """Plain http:// is refused except for loopback addresses (the sandbox)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback_url(url):
        raise ConfigError(
            f"refusing plain http:// to {parts.hostname}: only loopback addresses (the sandbox) may use http",
            hint="use https:// for the real API",
        )
    return url.rstrip("/")
