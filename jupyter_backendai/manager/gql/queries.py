"""The Query fields: ``q_<field>`` resolves ``<field>`` of :file:`schema.graphql`.

Who sees what is the REST API's rule (:mod:`..admin`, :mod:`..folders`,
:mod:`..api_sessions`): a user sees their own account, keypairs, folders and sessions; a
domain admin their domain's; a superadmin everything. Agents and storage volumes are for
superadmins.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DB

from ...db import admin, launch
from ...db import folders as folder_db
from ...db import images as image_db
from ...db import models as m
from ...db import sessions as session_db
from ..admin.common import check_user_reach
from .context import Ctx, Refused, as_uuid, lazy
from .filter import page
from .items import (
    agent_item,
    domain_item,
    folder_item,
    group_item,
    image_item,
    keypair_item,
    policy_item,
    preset_item,
    scaling_group_item,
    session_item,
    to_json,
    user_item,
)


def _reach_user(ctx: Ctx, key: str) -> m.User:
    """A user by e-mail or name that the caller may read: themselves, or one they administer."""
    user = admin.get_user(ctx.db, key)
    if user.id == ctx.me.user_id:
        return user
    ctx.require_admin()
    check_user_reach(ctx.me, user)
    return user


def _scaling_group_names(sgroups: Iterable[m.ScalingGroup]) -> list[str]:
    return sorted(s.name for s in sgroups)


def sgroups_of_domain(db: DB, domain: str) -> list[str]:
    rows = db.scalars(select(m.ScalingGroup).where(m.ScalingGroup.domains.any(m.Domain.name == domain)))
    return _scaling_group_names(rows)


def sgroups_of_group(db: DB, group: m.Group) -> list[str]:
    rows = db.scalars(select(m.ScalingGroup).where(m.ScalingGroup.groups.any(m.Group.id == group.id)))
    return _scaling_group_names(rows)


# --- query fields: q_<field> resolves the Query field <field> ----------------------------------


def q_user(ctx: Ctx, email: str | None = None, domain_name: str | None = None):
    user = ctx.user if not email else _reach_user(ctx, email)
    if domain_name and user.domain_name != domain_name:
        return None
    return user_item(user)


def q_user_from_uuid(ctx: Ctx, user_id: str | None = None, domain_name: str | None = None):
    if not user_id:
        return q_user(ctx, None, domain_name)
    user = ctx.db.get(m.User, as_uuid(user_id, "user_id"))
    if user is None:
        raise Refused(f"no user with id {user_id!r}", 404)
    return q_user(ctx, user.email, domain_name)


def _users(ctx: Ctx, domain_name=None, group_id=None, is_active=None, status=None) -> list[dict[str, Any]]:
    scope = ctx.domain_scope(domain_name)
    query = select(m.User).order_by(m.User.created_at, m.User.email)
    if scope is not None:
        query = query.where(m.User.domain_name == scope)
    if status:
        query = query.where(m.User.status == admin.parse_enum(m.UserStatus, "status", status))
    if is_active is not None:
        query = query.where((m.User.status == m.UserStatus.ACTIVE) == is_active)
    if group_id is not None:
        query = query.where(m.User.groups.any(m.Group.id == as_uuid(group_id, "group_id")))
    return [user_item(u) for u in ctx.db.scalars(query)]


def q_users(ctx: Ctx, **kwargs):
    return _users(ctx, **kwargs)


def q_user_list(ctx: Ctx, limit: int, offset: int, filter=None, order=None, **kwargs):
    return page(_users(ctx, **kwargs), limit=limit, offset=offset, filter=filter, order=order)


def q_keypair(ctx: Ctx, domain_name: str | None = None, access_key: str | None = None):
    keypair = admin.get_keypair(ctx.db, access_key or ctx.me.access_key)
    if keypair.user_id != ctx.me.user_id:
        ctx.require_admin()
        check_user_reach(ctx.me, keypair.user)
    if domain_name and keypair.user.domain_name != domain_name:
        return None
    return keypair_item(ctx, keypair)


def _keypairs(ctx: Ctx, domain_name=None, email=None, is_active=None) -> list[dict[str, Any]]:
    scope = ctx.domain_scope(domain_name)
    query = select(m.KeyPair).join(m.User, m.User.id == m.KeyPair.user_id).order_by(m.User.email, m.KeyPair.created_at)
    if scope is not None:
        query = query.where(m.User.domain_name == scope)
    if is_active is not None:
        query = query.where(m.KeyPair.is_active.is_(is_active))
    if email:
        query = query.where(m.KeyPair.user_id == _reach_user(ctx, email).id)
    return [keypair_item(ctx, k) for k in ctx.db.scalars(query)]


def q_keypairs(ctx: Ctx, **kwargs):
    return _keypairs(ctx, **kwargs)


def q_keypair_list(ctx: Ctx, limit: int, offset: int, filter=None, order=None, **kwargs):
    return page(_keypairs(ctx, **kwargs), limit=limit, offset=offset, filter=filter, order=order)


def q_keypair_resource_policy(ctx: Ctx, name: str | None = None):
    if not name:  # the policy that limits the caller's sessions: their main keypair's
        keypair = launch.main_keypair(ctx.db, ctx.user) or ctx.db.get(m.KeyPair, ctx.me.access_key)
        return policy_item(keypair.policy)
    policy = admin.get_policy(ctx.db, name)
    if not ctx.me.is_admin and all(k.resource_policy != name for k in ctx.user.keypairs):
        raise Refused(f"none of your keypairs uses the policy {name!r}")
    return policy_item(policy)


def q_keypair_resource_policies(ctx: Ctx):
    ctx.require_admin()
    return [policy_item(p) for p in ctx.db.scalars(select(m.KeyPairResourcePolicy).order_by("name"))]


def q_domain(ctx: Ctx, name: str | None = None):
    name = name or ctx.me.domain
    if not ctx.may_see_domain(name):
        raise Refused(f"you are in domain {ctx.me.domain!r}, not {name!r}")
    return domain_item(admin.get_domain(ctx.db, name), sgroups_of_domain(ctx.db, name))


def q_domains(ctx: Ctx, is_active: bool | None = None):
    scope = ctx.domain_scope(None)
    query = select(m.Domain).order_by(m.Domain.name)
    if scope is not None:
        query = query.where(m.Domain.name == scope)
    if is_active is not None:
        query = query.where(m.Domain.is_active.is_(is_active))
    return [domain_item(d, sgroups_of_domain(ctx.db, d.name)) for d in ctx.db.scalars(query)]


def _visible_groups(ctx: Ctx, domain_name: str | None, is_active: bool | None, name: str | None = None):
    if ctx.me.is_admin:
        scope = ctx.domain_scope(domain_name)
        query = select(m.Group).order_by(m.Group.domain_name, m.Group.name)
        if scope is not None:
            query = query.where(m.Group.domain_name == scope)
        rows = list(ctx.db.scalars(query))
    else:  # a user sees the projects they belong to
        rows = sorted(ctx.user.groups, key=lambda g: (g.domain_name, g.name))
        rows = [g for g in rows if not domain_name or g.domain_name == domain_name]
    rows = [g for g in rows if (is_active is None or g.is_active == is_active) and (name is None or g.name == name)]
    return [group_item(g, sgroups_of_group(ctx.db, g)) for g in rows]


def q_group(ctx: Ctx, id: uuid.UUID, domain_name: str | None = None):
    group = ctx.db.get(m.Group, as_uuid(id, "id"))
    if group is None or (domain_name and group.domain_name != domain_name):
        raise Refused(f"no group with id {str(id)!r}", 404)
    if not ctx.me.may_administer(group.domain_name) and ctx.user not in group.users:
        raise Refused(f"you are not a member of the group {group.name!r}")
    return group_item(group, sgroups_of_group(ctx.db, group))


def q_groups(ctx: Ctx, domain_name: str | None = None, is_active: bool | None = None):
    return _visible_groups(ctx, domain_name, is_active)


def q_groups_by_name(ctx: Ctx, name: str, domain_name: str | None = None):
    return _visible_groups(ctx, domain_name, None, name)


def q_image(ctx: Ctx, reference: str, architecture: str | None = None):
    image = admin.get_image(ctx.db, reference, architecture)
    return image_item(image, _installed_agents(ctx, [image]).get(image_db.reference_of(image)))


def q_images(ctx: Ctx, is_installed: bool | None = None, is_operation: bool | None = None):
    if is_operation:
        return []  # no operation (system) images here
    query = select(m.Image).order_by(m.Image.registry_host, m.Image.name, m.Image.tag, m.Image.architecture)
    if is_installed is not None:
        query = query.where(m.Image.installed.is_(is_installed))
    images = list(ctx.db.scalars(query))
    agents = _installed_agents(ctx, images)
    return [image_item(i, agents.get(image_db.reference_of(i))) for i in images]


def _installed_agents(ctx: Ctx, images: list[m.Image]) -> dict[str, list[str]]:
    """Per image reference, the agents that have it: agents are shown to superadmins only."""
    if not ctx.me.is_superadmin or not images:
        return {}
    rows = image_db.installs_by_reference(ctx.db, [image_db.reference_of(i) for i in images])
    return {ref: image_db.agents_view(r)["installed_agents"] for ref, r in rows.items()}


def q_resource_preset(ctx: Ctx, name: str):
    return preset_item(admin.get_preset(ctx.db, name))


def q_resource_presets(ctx: Ctx):
    return [preset_item(p) for p in ctx.db.scalars(select(m.ResourcePreset).order_by(m.ResourcePreset.name))]


def _open_to_domain(sgroup: m.ScalingGroup, domain: str) -> bool:
    return any(d.name == domain for d in sgroup.domains)


def q_scaling_group(ctx: Ctx, name: str | None = None):
    ctx.require_admin()
    if not name:
        raise Refused("name the resource group", 400)
    sgroup = admin.get_scaling_group(ctx.db, name)
    if not ctx.me.is_superadmin and not _open_to_domain(sgroup, ctx.me.domain):
        raise Refused(f"resource group {name!r} is not open to your domain {ctx.me.domain!r}")
    return scaling_group_item(sgroup)


def _sgroup_rows(ctx: Ctx, is_active: bool | None, keep: Callable[[m.ScalingGroup], bool]) -> list[dict[str, Any]]:
    rows = ctx.db.scalars(select(m.ScalingGroup).order_by(m.ScalingGroup.name))
    return [scaling_group_item(s) for s in rows if (is_active is None or s.is_active == is_active) and keep(s)]


def q_scaling_groups(ctx: Ctx, name: str | None = None, is_active: bool | None = None):
    ctx.require_admin()
    me = ctx.me
    return _sgroup_rows(
        ctx,
        is_active,
        lambda s: (name is None or s.name == name) and (me.is_superadmin or _open_to_domain(s, me.domain)),
    )


def q_scaling_groups_for_domain(ctx: Ctx, domain: str, is_active: bool | None = None):
    if not ctx.me.may_administer(domain):
        raise Refused(f"you administer no domain {domain!r}" if ctx.me.is_admin else "this needs an administrator")
    return _sgroup_rows(ctx, is_active, lambda s: _open_to_domain(s, domain))


def q_scaling_groups_for_user_group(ctx: Ctx, user_group: str, is_active: bool | None = None):
    """The resource groups a member of the project may use: open to its domain, to it, or to their keypair."""
    group = ctx.db.get(m.Group, as_uuid(user_group, "user_group"))
    if group is None:
        raise Refused(f"no group with id {user_group!r}", 404)
    if not ctx.me.may_administer(group.domain_name) and ctx.user not in group.users:
        raise Refused(f"you are not a member of the group {group.name!r}")
    # A launch counts against the main keypair, whichever one signed this request (db/launch.py).
    key = getattr(launch.main_keypair(ctx.db, ctx.user), "access_key", ctx.me.access_key)
    return _sgroup_rows(
        ctx,
        is_active,
        lambda s: (
            _open_to_domain(s, group.domain_name)
            or any(g.id == group.id for g in s.groups)
            or any(k.access_key == key for k in s.keypairs)
        ),
    )


def q_scaling_groups_for_keypair(ctx: Ctx, access_key: str, is_active: bool | None = None):
    keypair = admin.get_keypair(ctx.db, access_key)
    if keypair.user_id != ctx.me.user_id:
        ctx.require_admin()
        check_user_reach(ctx.me, keypair.user)
    return _sgroup_rows(ctx, is_active, lambda s: any(k.access_key == access_key for k in s.keypairs))


AGENT_STATUSES = {s.value for s in m.AgentStatus}


def _agents(ctx: Ctx, scaling_group: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    ctx.require_superadmin()
    query = select(m.Agent).order_by(m.Agent.id)
    if status:
        wanted = {s.strip().upper() for s in status.split(",") if s.strip()}
        if not wanted <= AGENT_STATUSES:
            raise Refused(f"agent status is one of {', '.join(sorted(AGENT_STATUSES))}, not {status!r}", 400)
        query = query.where(m.Agent.status.in_([m.AgentStatus(s) for s in wanted]))
    if scaling_group:
        query = query.where(m.Agent.scaling_group == scaling_group)
    agents = list(ctx.db.scalars(query))
    held = session_db.held_by_agents(ctx.db, [a.id for a in agents])
    return [agent_item(ctx, a, held[a.id]) for a in agents]


def q_agent(ctx: Ctx, agent_id: str):
    ctx.require_superadmin()
    agent = ctx.db.get(m.Agent, agent_id)
    if agent is None:
        raise Refused(f"no agent {agent_id!r}", 404)
    return agent_item(ctx, agent, session_db.held_by_agents(ctx.db, [agent.id])[agent.id])


def q_agents(ctx: Ctx, **kwargs):
    return _agents(ctx, **kwargs)


def q_agent_list(ctx: Ctx, limit: int, offset: int, filter=None, order=None, **kwargs):
    return page(_agents(ctx, **kwargs), limit=limit, offset=offset, filter=filter, order=order)


SESSION_STATUSES = {s.value for s in m.SessionStatus}


def _session_scope(ctx: Ctx, query: Any) -> Any:
    if ctx.me.is_superadmin:
        return query
    if ctx.me.is_admin:
        return query.where(m.Session.domain_name == ctx.me.domain)
    return query.where(m.Session.user_id == ctx.me.user_id)


def q_compute_session(ctx: Ctx, id: uuid.UUID):
    query = _session_scope(
        ctx,
        select(m.Session, m.User, m.Group.name)
        .join(m.User, m.User.id == m.Session.user_id)
        .outerjoin(m.Group, m.Group.id == m.Session.group_id)
        .where(m.Session.id == as_uuid(id, "id")),
    )
    row = ctx.db.execute(query).first()
    if row is None:
        raise Refused(f"no session {str(id)!r} that you may see", 404)
    return session_item(ctx, *row)


def q_compute_session_list(
    ctx: Ctx,
    limit: int,
    offset: int,
    filter=None,
    order=None,
    domain_name=None,
    group_id=None,
    access_key=None,
    status=None,
):
    query = _session_scope(
        ctx,
        select(m.Session, m.User, m.Group.name)
        .join(m.User, m.User.id == m.Session.user_id)
        .outerjoin(m.Group, m.Group.id == m.Session.group_id),
    )
    if domain_name:
        if not ctx.may_see_domain(domain_name):
            raise Refused(f"you are in domain {ctx.me.domain!r}, not {domain_name!r}")
        query = query.where(m.Session.domain_name == domain_name)
    if group_id:
        query = query.where(m.Session.group_id == as_uuid(group_id, "group_id"))
    if access_key:
        query = query.where(m.Session.access_key == access_key)
    if status:
        wanted = {s.strip().upper() for s in status.split(",") if s.strip()}
        # Backend.AI's client also names statuses this project has no use for (RUNNING_DEGRADED).
        query = query.where(m.Session.status.in_([m.SessionStatus(s) for s in wanted & SESSION_STATUSES]))
    query = query.order_by(m.Session.created_at.desc(), m.Session.id)
    if filter or order:
        rows = [session_item(ctx, *r) for r in ctx.db.execute(query)]
        return page(rows, limit=limit, offset=offset, filter=filter, order=order)
    page([], limit=limit, offset=offset, filter=None, order=None)  # checks limit and offset
    total = ctx.db.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = ctx.db.execute(query.limit(limit).offset(offset)).all()
    return {"items": [session_item(ctx, *r) for r in rows], "total_count": int(total or 0)}


def _folder_rows(ctx: Ctx, domain_name=None, group_id=None, access_key=None) -> list[dict[str, Any]]:
    db = ctx.db
    group_uuid = as_uuid(group_id, "group_id") if group_id else None
    if ctx.me.is_admin:
        scope = ctx.domain_scope(domain_name)
        mine = {a.folder.id: a.permission for a in folder_db.accessible_folders(db, ctx.user)}
        query = (
            select(m.VFolder, m.User, m.Group)
            .outerjoin(m.User, m.User.id == m.VFolder.user_id)
            .outerjoin(m.Group, m.Group.id == m.VFolder.group_id)
            .order_by(m.VFolder.name, m.VFolder.id)
        )
        if scope is not None:
            query = query.where(or_(m.User.domain_name == scope, m.Group.domain_name == scope))
        triples = [(f, mine.get(f.id, f.permission.value), u, g) for f, u, g in db.execute(query)]
    else:
        if domain_name and domain_name != ctx.me.domain:
            raise Refused(f"you are in domain {ctx.me.domain!r}, not {domain_name!r}")
        triples = []
        for access in folder_db.accessible_folders(db, ctx.user):
            f = access.folder
            owner = db.get(m.User, f.user_id) if f.user_id else None
            group = db.get(m.Group, f.group_id) if f.group_id else None
            triples.append((f, access.permission, owner, group))
    if group_uuid is not None:
        triples = [t for t in triples if t[0].group_id == group_uuid]
    if access_key:
        keypair = admin.get_keypair(db, access_key)
        if keypair.user_id != ctx.me.user_id:
            ctx.require_admin()
            check_user_reach(ctx.me, keypair.user)
        triples = [t for t in triples if t[0].user_id == keypair.user_id]
    return [folder_item(ctx, f, perm, owner, group) for f, perm, owner, group in triples]


def q_vfolder_list(ctx: Ctx, limit: int, offset: int, filter=None, order=None, **kwargs):
    return page(_folder_rows(ctx, **kwargs), limit=limit, offset=offset, filter=filter, order=order)


def q_vfolder(ctx: Ctx, id: str | None = None):
    if not id:
        raise Refused("name the folder by its id", 400)
    wanted = as_uuid(id, "id")
    rows = [r for r in _folder_rows(ctx) if r["id"] == str(wanted)]
    if not rows:
        raise Refused(f"no folder {id!r} that you may see", 404)
    return rows[0]


def _volumes(ctx: Ctx) -> list[dict[str, Any]]:
    ctx.require_superadmin()
    out = []
    for host in ctx.store.hosts:
        path = ctx.store.root / host

        def usage(path=path) -> str:
            try:
                total, used, _free = shutil.disk_usage(path if path.exists() else ctx.store.root)
            except OSError:
                return to_json({})
            return to_json({"capacity_bytes": total, "used_bytes": used})

        out.append(
            {
                "id": host,
                "backend": "vfs",
                "fsprefix": "",
                "path": str(path),
                "capabilities": ["vfolder"],
                "hardware_metadata": to_json({}),
                "performance_metric": to_json({}),
                "usage": lazy(usage),
            }
        )
    return out


def q_storage_volume(ctx: Ctx, id: str | None = None):
    rows = [v for v in _volumes(ctx) if v["id"] == id]
    if not rows:
        raise Refused(f"no storage volume {id!r}", 404)
    return rows[0]


def q_storage_volume_list(ctx: Ctx, limit: int, offset: int, filter=None, order=None):
    return page(_volumes(ctx), limit=limit, offset=offset, filter=filter, order=order)
