"""Short-lived transfer tokens (HS256 JWTs) naming the operation, folder, relative path and size."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from ..core import errors


class TransferTokenError(errors.Unauthorized, ValueError):
    """A token that is tampered with, expired, or for something else."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(secret: bytes, claims: dict[str, Any], *, ttl: float, now: float | None = None) -> str:
    now = time.time() if now is None else now
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps({**claims, "iat": int(now), "exp": int(now + ttl)}, separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
    return f"{header}.{body}.{signature}"


def verify(secret: bytes, token: str, *, op: str, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    try:
        header, body, signature = (token or "").split(".")
        expected = _b64(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature):
            raise TransferTokenError("the transfer token's signature does not match")
        if json.loads(_unb64(header)).get("alg") != "HS256":
            raise TransferTokenError("the transfer token uses an unknown algorithm")
        claims = json.loads(_unb64(body))
    except TransferTokenError:
        raise
    except (ValueError, TypeError, json.JSONDecodeError):
        raise TransferTokenError("the transfer token is malformed") from None
    if not isinstance(claims, dict) or claims.get("op") != op:
        raise TransferTokenError(f"the transfer token is not for {op}")
    try:
        expires = float(claims.get("exp", 0))
    except (TypeError, ValueError):
        raise TransferTokenError("the transfer token is malformed") from None
    if expires < now:
        raise TransferTokenError("the transfer token has expired")
    return claims
