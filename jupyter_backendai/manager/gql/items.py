"""Rows as Backend.AI's GraphQL objects: resource slots and nested objects as JSON strings, as its client's formatters expect.

Fields that cost a query of their own (usage samples, sizes, SSH keys) are callables that
graphql-core calls only when a document asks for them (:func:`.context.lazy`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from ...core import launch as launch_rules
from ...core.slots import ResourceSlots
from ...db import admin, views
from ...db import models as m
from ...db import sessions as session_db
from .context import Ctx, guard, lazy


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def to_json(value: Any) -> str:
    return json.dumps(value, default=str)


def slots_json(value: ResourceSlots | None) -> str:
    return to_json(value.to_json() if value else {})


def user_item(u: m.User) -> dict[str, Any]:
    main = getattr(launch_rules.main_keypair(u.keypairs), "access_key", None)
    return {
        "id": str(u.id),
        "uuid": str(u.id),
        "username": u.username,
        "email": u.email,
        "need_password_change": u.need_password_change,
        "full_name": u.full_name,
        "description": u.description,
        "is_active": u.is_active,
        "status": u.status.value,
        "status_info": None,
        "created_at": iso(u.created_at),
        "modified_at": iso(u.modified_at),
        "domain_name": u.domain_name,
        "role": u.role.value,
        "resource_policy": None,
        "allowed_client_ip": None,
        "totp_activated": False,
        "sudo_session_enabled": False,
        "main_access_key": main,
        "groups": [{"id": str(g.id), "name": g.name} for g in sorted(u.groups, key=lambda g: g.name)],
    }


def keypair_item(ctx: Ctx, k: m.KeyPair) -> dict[str, Any]:
    user = k.user
    db = ctx.db

    def ssh_public_key() -> str | None:
        row = db.get(m.SSHKeyPair, user.id)
        return row.public_key if row is not None else None

    return {
        "user_id": user.email,
        "user": str(user.id),
        "user_info": {
            "email": user.email,
            "full_name": user.full_name,
            "username": user.username,
            "role": user.role.value,
            "domain_name": user.domain_name,
        },
        "projects": sorted(g.name for g in user.groups),
        "access_key": k.access_key,
        # As the REST API: a secret is shown to its owner only (admins saw it once, at creation).
        "secret_key": k.secret_key if user.id == ctx.me.user_id else None,
        "is_active": k.is_active,
        "is_admin": k.is_admin,
        "resource_policy": k.resource_policy,
        "created_at": iso(k.created_at),
        "modified_at": iso(k.modified_at),
        "last_used": iso(k.last_used),
        "rate_limit": k.rate_limit,
        "num_queries": k.num_queries,
        "concurrency_used": lazy(lambda: sum(session_db.session_counts(db, k.access_key))),
        "concurrency_limit": k.policy.max_concurrent_sessions if k.policy else None,
        "domain_name": user.domain_name,
        "ssh_public_key": lazy(ssh_public_key),
        "ssh_private_key": None,
        "dotfiles": None,
        "bootstrap_script": "",
    }


def policy_item(p: m.KeyPairResourcePolicy) -> dict[str, Any]:
    view = views.policy_view(p)
    view["total_resource_slots"] = to_json(view["total_resource_slots"])
    view["default_for_unspecified"] = "UNLIMITED"
    return view


def _org_item(view: dict[str, Any], org: m.Domain | m.Group, sgroups: list[str]) -> dict[str, Any]:
    """A domain's or group's REST view in the GraphQL shape, with its resource groups."""
    view.update(
        total_resource_slots=to_json(view["total_resource_slots"]),
        modified_at=iso(org.modified_at),
        integration_id=None,
        scaling_groups=sgroups,
    )
    return view


def domain_item(d: m.Domain, sgroups: list[str]) -> dict[str, Any]:
    return _org_item(views.domain_view(d), d, sgroups)


def group_item(g: m.Group, sgroups: list[str]) -> dict[str, Any]:
    view = views.group_view(g)
    view.pop("members")
    return _org_item(view, g, sgroups)


def image_item(i: m.Image, installed_agents: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": str(i.id),
        "name": i.name,
        "humanized_name": i.reference,
        "tag": i.tag,
        "registry": i.registry_host,
        "architecture": i.architecture,
        "digest": i.digest,
        # Sizes are not recorded by the rescan; Backend.AI's client formats this field as a number.
        "size_bytes": 0,
        "aliases": [],
        "labels": [{"key": k, "value": str(v)} for k, v in sorted((i.labels or {}).items())],
        "resource_limits": [{"key": k, "min": str(v), "max": None} for k, v in (i.min_slots or {}).items()],
        "supported_accelerators": sorted({k.split(".", 1)[0] for k in (i.min_slots or {}) if k.startswith("cuda.")}),
        "installed": i.installed,
        "installed_agents": installed_agents or [],
        "hash": i.digest,
    }


def preset_item(p: m.ResourcePreset) -> dict[str, Any]:
    return {
        "name": p.name,
        "resource_slots": slots_json(p.resource_slots),
        "shared_memory": p.shared_memory,
        "scaling_group_name": p.scaling_group_name,
    }


def scaling_group_item(s: m.ScalingGroup) -> dict[str, Any]:
    return {
        "name": s.name,
        "description": s.description,
        "is_active": s.is_active,
        "is_public": True,
        "created_at": iso(s.created_at),
        "wsproxy_addr": None,
        "wsproxy_api_token": None,
        "driver": s.driver,
        "driver_opts": to_json(s.driver_opts or {}),
        "scheduler": s.scheduler.value,
        "scheduler_opts": to_json(s.scheduler_opts or {}),
        "use_host_network": False,
    }


def _latest_samples(db: DB, session_ids: list[uuid.UUID]) -> dict[uuid.UUID, m.SessionUsage]:
    if not session_ids:
        return {}
    latest = (
        select(func.max(m.SessionUsage.id))
        .where(m.SessionUsage.session_id.in_(session_ids))
        .group_by(m.SessionUsage.session_id)
    )
    return {u.session_id: u for u in db.scalars(select(m.SessionUsage).where(m.SessionUsage.id.in_(latest)))}


def _stat(sample: m.SessionUsage | None) -> str | None:
    if sample is None:
        return None
    return to_json(
        {
            "at": iso(sample.at),
            "cpu_util": sample.cpu_percent,
            "cpu_used": sample.cpu_seconds,
            "mem": sample.mem_bytes,
            "io_read": sample.io_read_bytes,
            "io_write": sample.io_write_bytes,
            "gpu_util": sample.gpu_percent,
            # Backend.AI's names for the same readings of the CUDA devices.
            "cuda_util": sample.gpu_percent,
            "cuda_mem": sample.gpu_mem_bytes,
        }
    )


def container_item(s: m.Session, status_changed: str | None, sample: m.SessionUsage | None) -> dict[str, Any]:
    """A session is one container here: its ``main`` kernel, with the session's own id."""
    registry = admin.parse_image_ref(s.image)[0] if s.image else None
    ports = sorted({p for sp in (s.service_ports or []) for p in sp.get("ports", [])})
    return {
        "id": str(s.id),
        "idx": 0,
        "role": "main",
        "hostname": "main1",
        "cluster_role": "main",
        "cluster_idx": 1,
        "cluster_hostname": "main1",
        "session_id": str(s.id),
        "image": s.image,
        "registry": registry,
        "status": s.status.value,
        "status_changed": status_changed,
        "status_info": s.status_info,
        "status_data": to_json({}),
        "agent": s.agent_id,
        "agent_addr": None,
        "container_id": s.container_id,
        "resource_opts": to_json(s.resource_opts or {}),
        "occupied_slots": slots_json(s.occupied_slots),
        "live_stat": _stat(sample),
        "last_stat": _stat(sample),
        "preopen_ports": ports,
        "created_at": iso(s.created_at),
        "terminated_at": iso(s.terminated_at),
    }


def session_item(ctx: Ctx, s: m.Session, user: m.User, group_name: str | None) -> dict[str, Any]:
    db = ctx.db

    def status_changed() -> str | None:
        at = db.scalar(select(func.max(m.SessionStatusChange.at)).where(m.SessionStatusChange.session_id == s.id))
        return iso(at or s.created_at)

    def containers() -> list[dict[str, Any]]:
        return [container_item(s, status_changed(), _latest_samples(db, [s.id]).get(s.id))]

    try:
        registry = admin.parse_image_ref(s.image)[0]
    except admin.AdminError:
        registry = None
    finished = s.status in m.FINISHED_SESSION_STATUSES
    return {
        "id": str(s.id),
        "session_id": str(s.id),
        "main_kernel_id": str(s.id),
        "tag": None,
        "name": s.name,
        "type": s.session_type.upper(),
        "image": s.image,
        "registry": registry,
        "cluster_template": None,
        "cluster_mode": "single-node",
        "cluster_size": 1,
        "domain_name": s.domain_name,
        "group_id": str(s.group_id) if s.group_id else None,
        "group_name": group_name,
        "user_id": str(user.id),
        "user_email": user.email,
        "access_key": s.access_key,
        "created_user_email": user.email,
        "created_user_id": str(user.id),
        "status": s.status.value,
        "status_info": s.status_info,
        "status_data": to_json({}),
        "status_changed": lazy(status_changed),
        "created_at": iso(s.created_at),
        "terminated_at": iso(s.terminated_at),
        "starts_at": None,
        "scheduled_at": iso(s.scheduled_at),
        "startup_command": None,
        "result": ("FAILURE" if s.status == m.SessionStatus.ERROR else "SUCCESS") if finished else "UNDEFINED",
        "resource_opts": to_json(s.resource_opts or {}),
        "scaling_group": s.scaling_group,
        "service_ports": to_json(s.service_ports or []),
        "mounts": [mount.get("folder") for mount in (s.mounts or []) if isinstance(mount, dict)],
        "occupying_slots": slots_json(s.occupied_slots or s.requested_slots),
        "occupied_slots": slots_json(s.occupied_slots),
        "requested_slots": slots_json(s.requested_slots),
        "agent_ids": [s.agent_id] if s.agent_id else [],
        "containers": lazy(containers),
        "dependencies": [],
        "abusing_reports": [],
        "idle_checks": to_json({}),
    }


def agent_item(ctx: Ctx, a: m.Agent, occupied: ResourceSlots) -> dict[str, Any]:
    db = ctx.db

    def running() -> list[m.Session]:
        return list(
            db.scalars(select(m.Session).where(m.Session.agent_id == a.id, m.Session.status.in_(session_db.HOLDING)))
        )

    def samples() -> list[m.SessionUsage]:
        return list(_latest_samples(db, [s.id for s in running()]).values())

    def containers(status: str | None = None) -> list[dict[str, Any]]:
        rows = running()
        if status:
            rows = [s for s in rows if s.status.value in {x.strip() for x in status.split(",")}]
        latest = _latest_samples(db, [s.id for s in rows])
        return [container_item(s, None, latest.get(s.id)) for s in rows]

    return {
        "id": a.id,
        "status": a.status.value,
        "status_changed": iso(a.status_changed),
        "region": a.region,
        "architecture": None,  # not recorded for agents
        "scaling_group": a.scaling_group,
        "schedulable": a.schedulable,
        "available_slots": slots_json(a.available_slots),
        "occupied_slots": slots_json(occupied),
        "addr": a.addr,
        "first_contact": iso(a.first_contact),
        "lost_at": iso(a.lost_at),
        "live_stat": None,
        "version": a.version,
        "compute_plugins": to_json({}),
        "hardware_metadata": to_json({"devices": list(a.devices or [])}),
        "local_config": to_json({}),
        # What the agent's sessions reported last (usage samples), not a host probe.
        "cpu_cur_pct": lazy(lambda: round(sum(s.cpu_percent or 0.0 for s in samples()), 2)),
        "mem_cur_bytes": lazy(lambda: float(sum(s.mem_bytes or 0 for s in samples()))),
        "compute_containers": guard(lambda _ctx, status=None: containers(status)),
    }


def folder_item(ctx: Ctx, f: m.VFolder, permission: str, owner: m.User | None, group: m.Group | None) -> dict:
    store = ctx.store

    def usage() -> tuple[int, int]:
        if "usage" not in cache:
            path = store.path(f.host, f.id) if f.host in store.hosts else None
            cache["usage"] = folder_usage(path) if path is not None and path.is_dir() else (0, 0)
        return cache["usage"]

    cache: dict[str, tuple[int, int]] = {}
    return {
        "id": str(f.id),
        "host": f.host,
        "quota_scope_id": f"user:{f.user_id}" if f.user_id else f"project:{f.group_id}",
        "name": f.name,
        "user": str(f.user_id) if f.user_id else None,
        "user_email": owner.email if owner is not None else None,
        "group": str(f.group_id) if f.group_id else None,
        "group_name": group.name if group is not None else None,
        "creator": f.creator,
        "domain_name": owner.domain_name if owner is not None else (group.domain_name if group is not None else None),
        "unmanaged_path": None,
        "usage_mode": f.usage_mode,
        "permission": permission,
        "ownership_type": f.ownership_type.value,
        "max_files": 0,
        "max_size": f.quota,
        "created_at": iso(f.created_at),
        "last_used": iso(f.last_used),
        "num_files": lazy(lambda: usage()[1]),
        "cur_size": lazy(lambda: usage()[0]),
        "cloneable": f.cloneable,
        "status": "ready",
    }


def folder_usage(path) -> tuple[int, int]:
    from ...storage import files

    return files.usage(path)
