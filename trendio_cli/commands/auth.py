"""`trendio auth shops` and `trendio auth refresh`: which shops the credentials reach, and a new token pair."""

from __future__ import annotations

import asyncio
from typing import Any

from trendio_cli.api import tokens
from trendio_cli.api.answers import Outcome
from trendio_cli.api.client import ApiClient
from trendio_cli.api.credentials import check_base_url, credentials_for, is_loopback_url
from trendio_cli.api.endpoints import DEFAULT_BASE_URL
from trendio_cli.errors import Refused, TrendioError


def list_shops(base_url: str | None, brand: str | None) -> dict[str, Any]:
    """GET /authorization/202309/shops: every shop the app and token reach, with the cipher each needs."""
    url = check_base_url(base_url or DEFAULT_BASE_URL)
    creds = credentials_for(brand, allow_sandbox_defaults=is_loopback_url(url), need_shop=False)

    async def ask() -> Any:
        async with ApiClient(url, creds) as client:
            answer = await client.send(client.prepare_authorized_shops())
            if answer.outcome is Outcome.TOKEN_EXPIRED and creds.shop_cipher:
                await client.refresh_access_token(brand=brand or "")
                answer = await client.send(client.prepare_authorized_shops())
            return answer

    answer = asyncio.run(ask())
    if not answer.ok:
        error = Refused if answer.outcome in (Outcome.AUTH, Outcome.TOKEN_EXPIRED) else TrendioError
        raise error(f"the platform did not list the shops: {answer.describe()}", hint=answer.hint)
    shops = []
    for shop in answer.data.get("shops") or []:
        if isinstance(shop, dict):
            shops.append({k: str(shop.get(k) or "") for k in ("name", "region", "seller_type", "code", "id",
                                                             "cipher")})
    return {"brand": brand, "base_url": url, "credentials": creds.source, "shops": shops,
            "current_cipher_listed": any(s["cipher"] == creds.shop_cipher for s in shops) if creds.shop_cipher
            else None}


def refresh_token(base_url: str | None, brand: str | None) -> dict[str, Any]:
    """Refresh the brand's access token now and keep the new pair in the token store."""
    url = check_base_url(base_url or DEFAULT_BASE_URL)
    store = tokens.TokenStore()
    auth_url = tokens.auth_url_for(url)
    creds = store.effective(credentials_for(brand, allow_sandbox_defaults=is_loopback_url(url)), auth_url)
    asyncio.run(tokens.refresh(creds, creds.access_token, auth_url=auth_url, brand=brand or "", store=store))
    pair = store.pair_for(creds, auth_url)
    return {"brand": brand, "auth_url": auth_url, "store": str(store.path),
            **(pair.summary() if pair else {})}
