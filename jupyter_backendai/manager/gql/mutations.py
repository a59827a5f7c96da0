"""The Mutation fields: ``m_<field>`` resolves ``<field>``, with the REST API's checks and Backend.AI's ``{ok, msg}``.

Writes go through :mod:`...db.admin`, as the REST endpoints' do. Input the database layer
refuses is ``ok: false`` with its message; a refusal (403, 404, 409) stays a GraphQL error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ...db import admin
from ...db import models as m
from ..admin.common import check_user_reach
from .context import Ctx, Refused, as_uuid
from .items import keypair_item, user_item


def _outcome(ctx: Ctx, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Input the database layer refuses is ``ok: false`` with its message; refusals stay errors.

    A refused mutation marks the request failed, so that nothing it half-did is committed.
    """
    try:
        return {"ok": True, "msg": "success", **fn()}
    except admin.AdminError as e:
        ctx.failed = True
        if getattr(e, "status", 400) == 403:
            raise
        return {"ok": False, "msg": str(e)}


def _unsupported(props: Mapping[str, Any]) -> None:
    if props.get("totp_activated"):
        raise admin.AdminError("two-factor authentication (TOTP) is not supported here")
    if props.get("allowed_client_ip"):
        raise admin.AdminError("per-user client IP restrictions are not supported here")
    if props.get("sudo_session_enabled"):
        raise admin.AdminError("sudo in sessions is not supported here")


def _group_names(ctx: Ctx, ids: Iterable[str] | None, domain: str) -> list[str]:
    names = []
    for gid in ids or []:
        group = ctx.db.get(m.Group, as_uuid(gid, "group id"))
        if group is None or group.domain_name != domain:
            raise admin.AdminError(f"no group with id {gid!r} in domain {domain!r}")
        names.append(group.name)
    return names


def m_create_user(ctx: Ctx, email: str, props: dict[str, Any]):
    ctx.require_admin()
    domain = props.get("domain_name") or (ctx.me.domain if not ctx.me.is_superadmin else admin.DEFAULT)
    if not ctx.me.may_administer(domain):
        raise Refused(f"you administer domain {ctx.me.domain!r}, not {domain!r}")
    role = props.get("role") or "user"
    if role == m.UserRole.SUPERADMIN.value and not ctx.me.is_superadmin:
        raise Refused("only a superadmin may create a superadmin")

    def run() -> dict[str, Any]:
        _unsupported(props)
        status = props.get("status") or ("inactive" if props.get("is_active") is False else "active")
        user, _keypair = admin.create_user(
            ctx.db,
            email,
            props["password"],
            username=props.get("username") or None,
            role=role,
            domain=domain,
            groups=_group_names(ctx, props.get("group_ids"), domain),
            policy=props.get("resource_policy") or admin.DEFAULT,
            full_name=props.get("full_name") or "",
            description=props.get("description") or "",
            need_password_change=bool(props.get("need_password_change")),
            status=status,
        )
        return {"user": user_item(user)}

    return _outcome(ctx, run)


def m_modify_user(ctx: Ctx, email: str, props: dict[str, Any]):
    ctx.require_admin()
    user = admin.get_user(ctx.db, email)
    check_user_reach(ctx.me, user)
    if props.get("role") == m.UserRole.SUPERADMIN.value and not ctx.me.is_superadmin:
        raise Refused("only a superadmin may make a user superadmin")
    status = props.get("status")
    if status is None and props.get("is_active") is not None:
        status = "active" if props["is_active"] else "inactive"
    if user.id == ctx.me.user_id and (
        (status or "active") != "active" or (props.get("role") or user.role.value) != user.role.value
    ):
        raise Refused("you cannot deactivate yourself or change your own role; ask another admin", 409)

    def run() -> dict[str, Any]:
        _unsupported(props)
        if props.get("domain_name") and props["domain_name"] != user.domain_name:
            raise admin.AdminError("moving a user to another domain is not supported; create the user there")
        if props.get("main_access_key"):
            keypair = admin.get_keypair(ctx.db, props["main_access_key"])
            if keypair.user_id != user.id:
                raise admin.AdminError(f"keypair {keypair.access_key} is not {user.email}'s")
        if props.get("group_ids") is not None:
            wanted = {ctx.db.get(m.Group, as_uuid(g, "group id")) for g in props["group_ids"]}
            _group_names(ctx, props["group_ids"], user.domain_name)  # all exist, in the user's domain
            for group in list(user.groups):
                if group not in wanted:
                    admin.remove_user_from_group(ctx.db, group, user)
            for group in wanted:
                admin.add_user_to_group(ctx.db, group, user)
        admin.update_user(
            ctx.db,
            user,
            password=props.get("password") or None,
            username=props.get("username") or None,
            role=props.get("role") or None,
            full_name=props.get("full_name"),
            description=props.get("description"),
            need_password_change=props.get("need_password_change"),
            status=status,
        )
        return {"user": user_item(user)}

    return _outcome(ctx, run)


def m_delete_user(ctx: Ctx, email: str):
    ctx.require_admin()
    user = admin.get_user(ctx.db, email)
    check_user_reach(ctx.me, user)
    if user.id == ctx.me.user_id:
        raise Refused("you cannot deactivate yourself; ask another admin", 409)
    return _outcome(ctx, lambda: (admin.deactivate_user(ctx.db, user), {})[1])


def m_purge_user(ctx: Ctx, email: str, props: dict[str, Any]):
    ctx.require_admin()
    check_user_reach(ctx.me, admin.get_user(ctx.db, email))
    ctx.failed = True
    return {"ok": False, "msg": "users are never deleted here, only deactivated (delete_user)"}


def m_create_keypair(ctx: Ctx, user_id: str, props: dict[str, Any]):
    ctx.require_admin()
    user = admin.get_user(ctx.db, user_id)
    check_user_reach(ctx.me, user)

    def run() -> dict[str, Any]:
        keypair = admin.create_keypair(
            ctx.db,
            user,
            policy=props["resource_policy"],
            is_admin=bool(props.get("is_admin")),
            rate_limit=props["rate_limit"],
        )
        if props.get("is_active") is False:
            keypair.is_active = False
        item = keypair_item(ctx, keypair)
        item["secret_key"] = keypair.secret_key  # shown this once, as POST /admin/keypairs does
        return {"keypair": item}

    return _outcome(ctx, run)


def m_modify_keypair(ctx: Ctx, access_key: str, props: dict[str, Any]):
    ctx.require_admin()
    keypair = admin.get_keypair(ctx.db, access_key)
    check_user_reach(ctx.me, keypair.user)
    if props.get("is_active") is False and access_key == ctx.me.access_key:
        raise Refused("this request is signed with that keypair; deactivate it from another one", 409)

    def run() -> dict[str, Any]:
        admin.update_keypair(
            ctx.db,
            keypair,
            policy=props.get("resource_policy"),
            rate_limit=props.get("rate_limit"),
            is_admin=props.get("is_admin"),
            is_active=props.get("is_active"),
        )
        return {}

    return _outcome(ctx, run)


def m_delete_keypair(ctx: Ctx, access_key: str):
    ctx.require_admin()
    keypair = admin.get_keypair(ctx.db, access_key)
    check_user_reach(ctx.me, keypair.user)
    if access_key == ctx.me.access_key:
        raise Refused("this request is signed with that keypair; delete it from another one", 409)
    return _outcome(ctx, lambda: (admin.delete_keypair(ctx.db, keypair), {})[1])
