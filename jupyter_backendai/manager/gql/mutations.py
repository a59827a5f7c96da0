"""The Mutation fields: ``m_<field>`` resolves ``<field>``, with the REST API's checks and Backend.AI's ``{ok, msg}``.

Writes go through :mod:`...db.admin`, as the REST endpoints' do, with their rules of who may
touch what: superadmins change domains, keypair resource policies and resource (scaling)
groups; a domain's admins change its users, keypairs and groups (projects). Input the database
layer refuses (a bad value, an unknown name, a conflict) is ``ok: false`` with its message, as
Backend.AI answers; a caller who may not do it at all gets a GraphQL error (the REST API's 403).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import select

from ...db import admin
from ...db import models as m
from ..admin.common import check_user_reach
from .context import Ctx, Refused, as_uuid
from .items import domain_item, group_item, keypair_item, policy_item, scaling_group_item, user_item
from .queries import sgroups_of_domain, sgroups_of_group


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


# --- shapes Backend.AI's client sends: JSON strings, {host: permissions} ----------------------------


def _json(value: Any, what: str) -> Any:
    """A JSONString input: the client sends JSON text; a plain GraphQL request may send the value itself."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value) if value.strip() else None
    except ValueError as e:
        raise admin.AdminError(f"{what} is not valid JSON: {e}") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    value = _json(value, what)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise admin.AdminError(f"{what} must be a JSON object, not {value!r}")
    return value


def _hosts(value: Any) -> list[str]:
    """Folder hosts as Backend.AI gives them: ``{host: [permissions]}`` or a list of hosts.

    Every listed host allows every folder operation here (the permissions are not kept).
    """
    value = _json(value, "allowed_vfolder_hosts")
    if value is None:
        return []
    if isinstance(value, dict):
        for host, perms in value.items():
            if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
                raise admin.AdminError(f"the permissions of host {host!r} must be a list of names, not {perms!r}")
        return list(value)
    if isinstance(value, list):
        return value
    raise admin.AdminError(f"allowed_vfolder_hosts must be {{host: [permissions]}} or a list of hosts, not {value!r}")


def _org_fields(props: Mapping[str, Any]) -> dict[str, Any]:
    """A domain's or group's input as :func:`...db.admin.update_domain` takes it (None: not given)."""
    if props.get("integration_id"):
        raise admin.AdminError("integration ids (external user directories) are not supported here")
    fields: dict[str, Any] = {
        "description": props.get("description"),
        "is_active": props.get("is_active"),
        "allowed_docker_registries": props.get("allowed_docker_registries"),
    }
    if props.get("total_resource_slots") is not None:
        fields["total_resource_slots"] = _object(props["total_resource_slots"], "total_resource_slots")
    if props.get("allowed_vfolder_hosts") is not None:
        fields["allowed_vfolder_hosts"] = _hosts(props["allowed_vfolder_hosts"])
    return fields


def _given(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _purge_refused(ctx: Ctx, what: str) -> dict[str, Any]:
    ctx.failed = True
    return {"ok": False, "msg": f"{what} are never deleted here, only deactivated (is_active false)"}


# --- keypair resource policies: superadmins ---------------------------------------------------------


def _policy_fields(props: Mapping[str, Any]) -> dict[str, Any]:
    """A policy's input as :func:`...db.admin.create_policy` takes it.

    Slots without a cap are unlimited here (``default_for_unspecified: UNLIMITED``). SFTP
    sessions do not exist here, so their limit has nothing to limit and is not kept.
    """
    default = props.get("default_for_unspecified")
    if default is not None and str(default).upper() != "UNLIMITED":
        raise admin.AdminError(
            f"default_for_unspecified {default!r} is not supported: a slot without a cap is unlimited here "
            "(UNLIMITED); cap each slot in total_resource_slots"
        )
    fields = {k: props.get(k) for k in admin.POLICY_FIELDS}
    if props.get("total_resource_slots") is not None:
        fields["total_resource_slots"] = _object(props["total_resource_slots"], "total_resource_slots")
    if props.get("allowed_vfolder_hosts") is not None:
        fields["allowed_vfolder_hosts"] = _hosts(props["allowed_vfolder_hosts"])
    return _given(fields)


def m_create_keypair_resource_policy(ctx: Ctx, name: str, props: dict[str, Any]):
    ctx.require_superadmin()
    return _outcome(
        ctx, lambda: {"resource_policy": policy_item(admin.create_policy(ctx.db, name, **_policy_fields(props)))}
    )


def m_modify_keypair_resource_policy(ctx: Ctx, name: str, props: dict[str, Any]):
    ctx.require_superadmin()
    return _outcome(ctx, lambda: (admin.update_policy(ctx.db, name, **_policy_fields(props)), {})[1])


def m_delete_keypair_resource_policy(ctx: Ctx, name: str):
    ctx.require_superadmin()
    return _outcome(ctx, lambda: (admin.delete_policy(ctx.db, name), {})[1])


# --- domains: superadmins -------------------------------------------------------------------------


def _domain_result(ctx: Ctx, domain: m.Domain) -> dict[str, Any]:
    return {"domain": domain_item(domain, sgroups_of_domain(ctx.db, domain.name))}


def m_create_domain(ctx: Ctx, name: str, props: dict[str, Any]):
    ctx.require_superadmin()
    return _outcome(ctx, lambda: _domain_result(ctx, admin.create_domain(ctx.db, name, **_given(_org_fields(props)))))


def m_modify_domain(ctx: Ctx, name: str, props: dict[str, Any]):
    ctx.require_superadmin()

    def run() -> dict[str, Any]:
        if props.get("name") not in (None, name):
            raise admin.AdminError("renaming a domain is not supported; create one with the new name")
        return _domain_result(ctx, admin.update_domain(ctx.db, name, **_org_fields(props)))

    return _outcome(ctx, run)


def m_delete_domain(ctx: Ctx, name: str):
    """Deactivates, as Backend.AI's ``delete_domain`` does: its users launch nothing until it is active again."""
    ctx.require_superadmin()
    return _outcome(ctx, lambda: (admin.update_domain(ctx.db, name, is_active=False), {})[1])


def m_purge_domain(ctx: Ctx, name: str):
    ctx.require_superadmin()
    admin.get_domain(ctx.db, name)
    return _purge_refused(ctx, "domains")


# --- groups (projects): the admins of their domain ----------------------------------------------------


def _reach_group(ctx: Ctx, gid: Any) -> m.Group:
    """The group with id ``gid``, if the caller administers its domain."""
    ctx.require_admin()
    group = ctx.db.get(m.Group, as_uuid(gid, "group id"))
    if group is None:
        raise admin.NotFound(f"no group with id {str(gid)!r}")
    if not ctx.me.may_administer(group.domain_name):
        raise Refused(f"you administer domain {ctx.me.domain!r}; group {group.name!r} is in {group.domain_name!r}")
    return group


def _group_result(ctx: Ctx, group: m.Group) -> dict[str, Any]:
    return {"group": group_item(group, sgroups_of_group(ctx.db, group))}


def m_create_group(ctx: Ctx, name: str, props: dict[str, Any]):
    ctx.require_admin()
    domain = props["domain_name"]
    if not ctx.me.may_administer(domain):
        raise Refused(f"you administer domain {ctx.me.domain!r}, not {domain!r}")
    return _outcome(
        ctx,
        lambda: _group_result(ctx, admin.create_group(ctx.db, name, domain=domain, **_given(_org_fields(props)))),
    )


def _members(ctx: Ctx, group: m.Group, mode: str | None, ids: list[str] | None) -> None:
    """``user_update_mode`` add or remove ``user_uuids``, each a user the caller may act on."""
    if ids is None and mode is None:
        return
    if mode not in ("add", "remove"):
        raise admin.AdminError(f"user_update_mode must be 'add' or 'remove', not {mode!r}")
    for uid in ids or []:
        user = ctx.db.get(m.User, as_uuid(uid, "user id"))
        if user is None:
            raise admin.NotFound(f"no user with id {uid!r}")
        check_user_reach(ctx.me, user)
        if mode == "add":
            admin.add_user_to_group(ctx.db, group, user)
        else:
            admin.remove_user_from_group(ctx.db, group, user)


def m_modify_group(ctx: Ctx, gid: Any, props: dict[str, Any]):
    def run() -> dict[str, Any]:
        group = _reach_group(ctx, gid)
        if props.get("name") not in (None, group.name):
            raise admin.AdminError("renaming a group is not supported; create one with the new name")
        if props.get("domain_name") not in (None, group.domain_name):
            raise admin.AdminError("moving a group to another domain is not supported")
        _members(ctx, group, props.get("user_update_mode"), props.get("user_uuids"))
        admin.update_group(ctx.db, group.name, group.domain_name, **_org_fields(props))
        return _group_result(ctx, group)

    return _outcome(ctx, run)


def m_delete_group(ctx: Ctx, gid: Any):
    """Deactivates, as Backend.AI's ``delete_group`` does: no launch in it, its folders are not mounted."""

    def run() -> dict[str, Any]:
        group = _reach_group(ctx, gid)
        admin.update_group(ctx.db, group.name, group.domain_name, is_active=False)
        return {}

    return _outcome(ctx, run)


def m_purge_group(ctx: Ctx, gid: Any):
    _reach_group(ctx, gid)
    return _purge_refused(ctx, "groups")


# --- scaling (resource) groups: superadmins ---------------------------------------------------------

#: Backend.AI's scheduler_opts keys and what they set here (see db.admin.create_scaling_group).
_SCHEDULER_OPTS = {
    "pending_timeout": "pending_timeout",
    "agent_selection": "agent_selection",
    "agent_selection_strategy": "agent_selection",
    "fifo_max_skips": "fifo_max_skips",
}


def _sgroup_fields(props: Mapping[str, Any], current: m.ScalingGroup | None = None) -> dict[str, Any]:
    """A resource group's input as :func:`...db.admin.create_scaling_group` takes it; what does not apply here is refused."""
    if props.get("is_public") is False:
        raise admin.AdminError(
            "private resource groups are not supported here: a resource group is open to the domains, "
            "groups and keypairs associated with it"
        )
    if props.get("use_host_network"):
        raise admin.AdminError("host networking for sessions is not supported here")
    if props.get("wsproxy_addr") or props.get("wsproxy_api_token"):
        raise admin.AdminError("there is no app proxy (wsproxy) here: session apps are served through the hub")
    if _object(props.get("driver_opts"), "driver_opts"):
        raise admin.AdminError("driver options are not used here; give none")
    driver = props.get("driver")
    if current is not None and driver not in (None, current.driver):
        raise admin.AdminError(f"the driver of a resource group cannot be changed (it is {current.driver!r})")
    fields: dict[str, Any] = {
        "description": props.get("description"),
        "is_active": props.get("is_active"),
        "scheduler": props.get("scheduler"),
    }
    if current is None:
        fields["driver"] = driver
    opts = _object(props.get("scheduler_opts"), "scheduler_opts")
    config = opts.pop("config", None) or {}
    if not isinstance(config, dict):
        raise admin.AdminError(f"scheduler_opts.config must be an object, not {config!r}")
    if "num_retries_to_skip" in config:  # Backend.AI's FIFO option: how often the head may be passed over
        opts.setdefault("fifo_max_skips", config.pop("num_retries_to_skip"))
    unknown = sorted(set(opts) - set(_SCHEDULER_OPTS)) + [f"config.{k}" for k in sorted(config)]
    if unknown:
        raise admin.AdminError(
            f"unknown scheduler option(s) {', '.join(unknown)}; expected some of {', '.join(_SCHEDULER_OPTS)}"
            " and config.num_retries_to_skip"
        )
    for key, value in opts.items():
        fields[_SCHEDULER_OPTS[key]] = value
    return _given(fields)


def m_create_scaling_group(ctx: Ctx, name: str, props: dict[str, Any]):
    ctx.require_superadmin()

    def run() -> dict[str, Any]:
        sgroup = admin.create_scaling_group(ctx.db, name, **_sgroup_fields(props))
        return {"scaling_group": scaling_group_item(sgroup)}

    return _outcome(ctx, run)


def m_modify_scaling_group(ctx: Ctx, name: str, props: dict[str, Any]):
    ctx.require_superadmin()

    def run() -> dict[str, Any]:
        fields = _sgroup_fields(props, admin.get_scaling_group(ctx.db, name))
        admin.update_scaling_group(ctx.db, name, **fields)
        return {}

    return _outcome(ctx, run)


def m_delete_scaling_group(ctx: Ctx, name: str):
    ctx.require_superadmin()
    return _outcome(ctx, lambda: (admin.delete_scaling_group(ctx.db, name), {})[1])


def _allow(ctx: Ctx, scaling_group: str, *, revoke: bool, targets: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    ctx.require_superadmin()
    return _outcome(ctx, lambda: (admin.allow_scaling_group(ctx.db, scaling_group, revoke=revoke, **targets()), {})[1])


def _group_of(ctx: Ctx, gid: Any) -> m.Group:
    group = ctx.db.get(m.Group, as_uuid(gid, "user_group"))
    if group is None:
        raise admin.NotFound(f"no group with id {str(gid)!r}")
    return group


def _group_pairs(ctx: Ctx, gid: Any) -> dict[str, Any]:
    group = _group_of(ctx, gid)
    return {"groups": [(group.name, group.domain_name)]}


def m_associate_scaling_group_with_domain(ctx: Ctx, scaling_group: str, domain: str):
    return _allow(ctx, scaling_group, revoke=False, targets=lambda: {"domains": [domain]})


def m_disassociate_scaling_group_with_domain(ctx: Ctx, scaling_group: str, domain: str):
    return _allow(ctx, scaling_group, revoke=True, targets=lambda: {"domains": [domain]})


def m_associate_scaling_group_with_user_group(ctx: Ctx, scaling_group: str, user_group: Any):
    return _allow(ctx, scaling_group, revoke=False, targets=lambda: _group_pairs(ctx, user_group))


def m_disassociate_scaling_group_with_user_group(ctx: Ctx, scaling_group: str, user_group: Any):
    return _allow(ctx, scaling_group, revoke=True, targets=lambda: _group_pairs(ctx, user_group))


def m_associate_scaling_group_with_keypair(ctx: Ctx, scaling_group: str, access_key: str):
    return _allow(ctx, scaling_group, revoke=False, targets=lambda: {"keypairs": [access_key]})


def m_disassociate_scaling_group_with_keypair(ctx: Ctx, scaling_group: str, access_key: str):
    return _allow(ctx, scaling_group, revoke=True, targets=lambda: {"keypairs": [access_key]})


def m_disassociate_all_scaling_groups_with_domain(ctx: Ctx, domain: str):
    ctx.require_superadmin()

    def run() -> dict[str, Any]:
        admin.get_domain(ctx.db, domain)
        for sgroup in ctx.db.scalars(select(m.ScalingGroup).where(m.ScalingGroup.domains.any(m.Domain.name == domain))):
            admin.allow_scaling_group(ctx.db, sgroup.name, revoke=True, domains=[domain])
        return {}

    return _outcome(ctx, run)


def m_disassociate_all_scaling_groups_with_group(ctx: Ctx, user_group: Any):
    ctx.require_superadmin()

    def run() -> dict[str, Any]:
        group = _group_of(ctx, user_group)
        for sgroup in ctx.db.scalars(select(m.ScalingGroup).where(m.ScalingGroup.groups.any(m.Group.id == group.id))):
            admin.allow_scaling_group(ctx.db, sgroup.name, revoke=True, groups=[(group.name, group.domain_name)])
        return {}

    return _outcome(ctx, run)
