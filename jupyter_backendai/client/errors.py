"""The one exception the client raises for an answer the manager refused."""

from __future__ import annotations

from typing import Any


class ManagerError(Exception):
    """An HTTP error from the manager (or a proxy in front of it).

    ``status`` is the HTTP status and ``title`` the service's JSON ``title`` (its reason, in
    words), so that callers can branch on the status and show the title to a person; ``body``
    keeps the whole JSON problem (extra fields such as ``used_bytes`` or ``quota``). Network
    failures are not wrapped: they stay ``requests`` exceptions, because they mean something
    different (retry later) from a refusal (do not retry).
    """

    def __init__(self, status: int, title: str, body: dict[str, Any] | None = None, *, method: str = "", url: str = ""):
        super().__init__(f"{status}: {title}")
        self.status = status
        self.title = title
        self.body = body or {}
        self.method = method
        self.url = url


class TransferError(ManagerError):
    """An upload or download that could not complete (retries exhausted, or sizes that disagree)."""
