"""Backend.AI's keypair request signing (HMAC-SHA256): one implementation for every side.

The manager checks signatures (``manager/base.py``), the Python client and the server
extension's keypair mode sign requests with :func:`headers`; a test or a script does the same.

String to sign: ``METHOD\\n<path with query>\\n<date>\\nhost:<host>\\ncontent-type:<type>\\n
x-backendai-version:<version>\\n<sha256 hex of the empty string>`` (bodies are not hashed);
key: ``HMAC(HMAC(secret, YYYYMMDD), host)``. Requests dated more than 15 minutes from the
server's clock are refused, and a signature is accepted once (replays are refused).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

from . import errors

API_VERSION = "v8.20240915"
MAX_SKEW = dt.timedelta(minutes=15)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_AUTH = re.compile(r"^BackendAI\s+signMethod=HMAC-SHA256,\s*credential=([A-Za-z0-9]+):([0-9a-fA-F]+)$")


class SignatureError(errors.Unauthorized, ValueError):
    """A signature that does not hold (401); the message says why (never the secret)."""


def string_to_sign(method: str, path_with_query: str, date: str, host: str, content_type: str, version: str) -> str:
    return "\n".join(
        [
            method.upper(),
            path_with_query,
            date,
            f"host:{host}",
            f"content-type:{content_type.lower()}",
            f"x-backendai-version:{version}",
            EMPTY_SHA256,
        ]
    )


def signing_key(secret_key: str, date: dt.datetime, host: str) -> bytes:
    k1 = hmac.new(secret_key.encode(), date.strftime("%Y%m%d").encode(), hashlib.sha256).digest()
    return hmac.new(k1, host.encode(), hashlib.sha256).digest()


def sign(
    secret_key: str, method: str, path_with_query: str, date: dt.datetime, host: str, content_type: str, version: str
) -> str:
    text = string_to_sign(method, path_with_query, date.isoformat(), host, content_type, version)
    return hmac.new(signing_key(secret_key, date, host), text.encode(), hashlib.sha256).hexdigest()


def parse_authorization(value: str) -> tuple[str, str]:
    """``BackendAI signMethod=HMAC-SHA256, credential=AK:sig`` → (access key, signature)."""
    match = _AUTH.match((value or "").strip())
    if not match:
        raise SignatureError("the Authorization header is not 'BackendAI signMethod=HMAC-SHA256, credential=AK:SIG'")
    return match.group(1), match.group(2).lower()


def parse_date(value: str) -> dt.datetime:
    try:
        date = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise SignatureError(f"the request date {value!r} is not an ISO 8601 time") from None
    if date.tzinfo is None:
        date = date.replace(tzinfo=dt.timezone.utc)
    return date


def check(
    *,
    secret_key: str,
    signature: str,
    method: str,
    path_with_query: str,
    date_header: str,
    host: str,
    content_type: str,
    version: str,
    now: dt.datetime,
) -> None:
    """Raise :class:`SignatureError` unless the signature matches and the date is fresh."""
    date = parse_date(date_header)
    if abs(now - date) > MAX_SKEW:
        raise SignatureError("the request date is more than 15 minutes from the server's clock")
    text = string_to_sign(method, path_with_query, date_header, host, content_type, version)
    expected = hmac.new(signing_key(secret_key, date, host), text.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise SignatureError("the signature does not match the request")


def headers(
    access_key: str,
    secret_key: str,
    method: str,
    path_with_query: str,
    host: str,
    *,
    content_type: str = "application/json",
    version: str = API_VERSION,
    date: dt.datetime | None = None,
) -> dict[str, str]:
    """The headers a client sends for a signed request."""
    date = date or dt.datetime.now(dt.timezone.utc)
    signature = sign(secret_key, method, path_with_query, date, host, content_type, version)
    return {
        "Authorization": f"BackendAI signMethod=HMAC-SHA256, credential={access_key}:{signature}",
        "Date": date.isoformat(),
        "X-BackendAI-Version": version,
        "Content-Type": content_type,
    }
