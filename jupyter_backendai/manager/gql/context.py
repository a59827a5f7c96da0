"""What every resolver shares: the request's context, refusals, and the guard around each field."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError
from sqlalchemy.orm import Session as DB

from ...core import errors
from ...db import models as m
from ..base import Identity

log = logging.getLogger("jupyter_backendai.manager")


class Refused(GraphQLError):
    """A refusal with the REST API's words and status (kept in ``extensions``)."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message, extensions={"status": status})


def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Refusals of the shared layers become GraphQL errors with their reason; a bug is not shown."""

    @functools.wraps(fn)
    def wrapper(info, **kwargs):
        try:
            return fn(info.context, **kwargs)
        except GraphQLError:
            raise
        except errors.Error as e:
            raise Refused(str(e), e.status) from None
        except Exception:
            log.exception("GraphQL field %s failed", info.field_name)
            raise GraphQLError("internal error; the server log has the details") from None

    return wrapper


def lazy(fn: Callable[[], Any]) -> Callable[..., Any]:
    """A field computed only when a query asks for it (graphql-core calls callables)."""
    return guard(lambda ctx, **kwargs: fn())


@dataclass
class Ctx:
    db: DB
    me: Identity
    store: Any
    failed: bool = False
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> m.User:
        if "user" not in self._cache:
            self._cache["user"] = self.db.get(m.User, self.me.user_id)
        return self._cache["user"]

    def require_admin(self) -> None:
        if not self.me.is_admin:
            raise Refused("this needs an administrator")

    def require_superadmin(self) -> None:
        if not self.me.is_superadmin:
            raise Refused("this needs a superadmin")

    def domain_scope(self, requested: str | None) -> str | None:
        """The domain an admin listing covers: a superadmin's choice (None = all), else the admin's own."""
        self.require_admin()
        if self.me.is_superadmin:
            return requested or None
        if requested and requested != self.me.domain:
            raise Refused(f"you administer domain {self.me.domain!r}, not {requested!r}")
        return self.me.domain

    def may_see_domain(self, domain: str) -> bool:
        return self.me.is_superadmin or domain == self.me.domain


def as_uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise Refused(f"{what} {value!r} is not a UUID", 400) from None
