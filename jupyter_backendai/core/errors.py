"""The error hierarchy of every layer: each refusal carries the HTTP status it is answered with.

A layer raises the kind of refusal it means (:class:`BadRequest`, :class:`NotFound`, ...) or its
own subclass of one (``storage.NotFound``, ``db.admin.Conflict``, ``SlotError``), with a reason in
words for the person who asked. The manager answers any :class:`Error` with its ``status`` and
that reason in Backend.AI's error shape, so that no handler maps exception types to statuses and
a new error needs no new branch there; the CLI, the spawn form and the GraphQL endpoint show the
same reason.

Here in ``core`` because the pure rules (slots, folder names, request signing) raise them too,
and ``core`` imports nothing above it; :mod:`jupyter_backendai.errors` is the same module under
the name a reader looks for first.

A server-side failure (5xx) keeps its reason in the log and answers without details, unless its
class says the reason is meant for the caller (:attr:`Error.for_caller`): a failure's message may
name what nobody outside needs to know.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "Conflict",
    "Error",
    "Forbidden",
    "NotFound",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
]


class Error(Exception):
    """Base of every error that becomes an HTTP answer: ``status`` and ``reason``.

    ``status`` is a class attribute (each kind below sets its own); one instance may give
    another with ``status=`` when the same condition is answered differently (a full folder
    is 413, a full disk 507).
    """

    status: int = 500

    def __init__(self, reason: str = "", *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status

    @property
    def for_caller(self) -> bool:
        """Whether the answer carries the reason: yes for refusals (4xx), no for failures (5xx)."""
        return self.status < 500


class BadRequest(Error):
    """The input breaks a rule; the reason names the rule (400)."""

    status = 400


class Unauthorized(Error):
    """Who is asking cannot be established: no, a wrong or an expired credential (401)."""

    status = 401


class Forbidden(Error):
    """Who is asking may not do this (403)."""

    status = 403


class NotFound(Error):
    """What the request names does not exist, or is not visible to who is asking (404)."""

    status = 404


class Conflict(Error):
    """The request clashes with the current state: a name taken, something still in use (409)."""

    status = 409


class TooLarge(Error):
    """The request is over a size or capacity limit; the reason has the numbers (413)."""

    status = 413


class Unavailable(Error):
    """A service the request needs is down or not configured; trying later may work (503)."""

    status = 503

    @property
    def for_caller(self) -> bool:
        return True
