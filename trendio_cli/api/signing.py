"""Request signing (HMAC-SHA256) exactly as tiktok-shop-api.md documents it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

EXCLUDED_FROM_SIGN = frozenset({"sign", "access_token"})


def string_to_sign(app_secret: str, path: str, query: Mapping[str, str], body: bytes = b"") -> bytes:
    """The wrapped string: secret + path + sorted key/value pairs + body + secret."""
    params = "".join(f"{k}{query[k]}" for k in sorted(query) if k not in EXCLUDED_FROM_SIGN)
    return app_secret.encode() + path.encode() + params.encode() + body + app_secret.encode()


def sign(app_secret: str, path: str, query: Mapping[str, str], body: bytes = b"") -> str:
    """Lowercase hex HMAC-SHA256 of `string_to_sign`, keyed with the app secret."""
    message = string_to_sign(app_secret, path, query, body)
    return hmac.new(app_secret.encode(), message, hashlib.sha256).hexdigest()
