"""What every admin endpoint shares: the admin-only base handler and the checks of request bodies and arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from ...db import models as m
from ..base import APIError, APIHandler, Identity

_KINDS: dict[type, str] = {str: "string", bool: "boolean", int: "whole number", list: "list", dict: "object"}


def pick(
    data: Mapping[str, Any], spec: Mapping[str, type | tuple[type, ...]], *, mixed_lists: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The fields of ``spec`` that the body carries, each of the expected JSON type.

    Only JSON types are checked here (so that a number where a password belongs, or a number
    in a list of host names, is a 400 and not a traceback); what the values mean is
    :mod:`...db.admin`'s business. Lists hold strings unless named in ``mixed_lists``.
    """
    out: dict[str, Any] = {}
    for name, kinds in spec.items():
        if data.get(name) is None:
            continue
        value = data[name]
        kinds_ = kinds if isinstance(kinds, tuple) else (kinds,)
        if not any(isinstance(value, k) and not (k is int and isinstance(value, bool)) for k in kinds_):
            raise APIError(400, f"{name!r} must be a {' or '.join(_KINDS.get(k, k.__name__) for k in kinds_)}")
        if isinstance(value, list) and name not in mixed_lists and not all(isinstance(v, str) for v in value):
            raise APIError(400, f"{name!r} must be a list of strings")
        out[name] = value
    return out


def reject_unknown(data: Mapping[str, Any], allowed: set[str]) -> None:
    """Refuse fields we do not know: a typo silently ignored would look like a change that happened."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise APIError(400, f"unknown field(s): {', '.join(unknown)}; expected some of {', '.join(sorted(allowed))}")


def bool_arg(value: str | None, name: str, *, allow_all: bool = False) -> bool | None:
    if value is None or (allow_all and value == "all"):
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    choices = "true, false" + (" or all" if allow_all else "")
    raise APIError(400, f"{name!r} must be {choices}, not {value!r}")


def check_user_reach(ident: Identity, user: m.User) -> None:
    """A domain admin acts on their own domain's users only, and never on a superadmin account."""
    if not ident.may_administer(user.domain_name):
        raise APIError(403, f"you administer domain {ident.domain!r}; user {user.email!r} is in {user.domain_name!r}")
    if user.role == m.UserRole.SUPERADMIN and not ident.is_superadmin:
        raise APIError(403, f"only a superadmin may change the superadmin account {user.email!r}")


def count_rows(db: DB, model: Any, *where: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


class AdminHandler(APIHandler):
    """Every admin endpoint: nobody below a domain admin gets past ``prepare``."""

    async def prepare(self):
        await super().prepare()
        self.require_admin()

    @property
    def me(self) -> Identity:
        assert self.identity is not None
        return self.identity

    def domain_scope(self, requested: str | None) -> str | None:
        """The domain a listing may cover: a superadmin's choice (None = all), else the admin's own."""
        if self.me.is_superadmin:
            return requested or None
        if requested and requested != self.me.domain:
            raise APIError(403, f"you administer domain {self.me.domain!r}, not {requested!r}")
        return self.me.domain


#: The fields of a domain or a group (project) that a POST or PATCH may carry.
ORG_FIELDS = {
    "description": str,
    "total_resource_slots": dict,
    "allowed_vfolder_hosts": list,
    "allowed_docker_registries": list,
}
