"""JSON-ready views of the rows, in Backend.AI's field names (CLI ``--json``, the manager API)."""

from __future__ import annotations

from typing import Any

from . import models as m


def _ts(value) -> str | None:
    return value.isoformat() if value is not None else None


def _org_view(o: m.Domain | m.Group) -> dict[str, Any]:
    """What a domain and a group (project) have alike: caps, storage hosts, registries."""
    return {
        "description": o.description,
        "is_active": o.is_active,
        "total_resource_slots": o.total_resource_slots.to_json(),
        "allowed_vfolder_hosts": list(o.allowed_vfolder_hosts),
        "allowed_docker_registries": list(o.allowed_docker_registries),
    }


def domain_view(d: m.Domain) -> dict[str, Any]:
    return {
        "name": d.name,
        **_org_view(d),
        "created_at": _ts(d.created_at),
    }


def group_view(g: m.Group) -> dict[str, Any]:
    return {
        "id": str(g.id),
        "name": g.name,
        "domain_name": g.domain_name,
        **_org_view(g),
        "members": sorted(u.email for u in g.users),
        "created_at": _ts(g.created_at),
    }


def user_view(u: m.User) -> dict[str, Any]:
    return {
        "uuid": str(u.id),
        "email": u.email,
        "username": u.username,
        "full_name": u.full_name,
        "description": u.description,
        "status": u.status.value,
        "is_active": u.is_active,
        "need_password_change": u.need_password_change,
        "role": u.role.value,
        "domain_name": u.domain_name,
        "groups": sorted(g.name for g in u.groups),
        "created_at": _ts(u.created_at),
    }


def keypair_view(k: m.KeyPair, *, with_secret: bool = False) -> dict[str, Any]:
    view = {
        "access_key": k.access_key,
        "user_id": k.user.email,
        "is_active": k.is_active,
        "is_admin": k.is_admin,
        "resource_policy": k.resource_policy,
        "rate_limit": k.rate_limit,
        "num_queries": k.num_queries,
        "last_used": _ts(k.last_used),
        "created_at": _ts(k.created_at),
    }
    if with_secret:
        view["secret_key"] = k.secret_key
    return view


def policy_view(p: m.KeyPairResourcePolicy) -> dict[str, Any]:
    return {
        "name": p.name,
        "total_resource_slots": p.total_resource_slots.to_json(),
        "max_concurrent_sessions": p.max_concurrent_sessions,
        "max_containers_per_session": p.max_containers_per_session,
        "idle_timeout": p.idle_timeout,
        "max_session_lifetime": p.max_session_lifetime,
        "max_pending_session_count": p.max_pending_session_count,
        "allowed_vfolder_hosts": list(p.allowed_vfolder_hosts),
        "max_vfolder_count": p.max_vfolder_count,
        "max_vfolder_size": p.max_vfolder_size,
        "created_at": _ts(p.created_at),
    }


def preset_view(p: m.ResourcePreset) -> dict[str, Any]:
    return {
        "name": p.name,
        "resource_slots": p.resource_slots.to_json(),
        "shared_memory": str(p.shared_memory) if p.shared_memory is not None else None,
        "scaling_group_name": p.scaling_group_name,
    }


def image_view(i: m.Image) -> dict[str, Any]:
    return {
        "id": str(i.id),
        "reference": i.reference,
        "registry": i.registry_host,
        "name": i.name,
        "tag": i.tag,
        "architecture": i.architecture,
        "digest": i.digest,
        "labels": dict(i.labels),
        "resource_limits": i.min_slots.to_json(),
        "service_ports": list(i.service_ports),
        "installed": i.installed,
    }


def registry_view(r: m.ContainerRegistry) -> dict[str, Any]:
    # The password is never shown; only whether one is set.
    return {
        "hostname": r.hostname,
        "url": r.url,
        "type": r.type,
        "project": r.project,
        "username": r.username,
        "has_password": bool(r.password),
    }


def scaling_group_view(s: m.ScalingGroup) -> dict[str, Any]:
    return {
        "name": s.name,
        "description": s.description,
        "is_active": s.is_active,
        "driver": s.driver,
        "scheduler": s.scheduler.value,
        "scheduler_opts": dict(s.scheduler_opts),
        "pending_timeout": s.pending_timeout,
        "allowed_domains": sorted(d.name for d in s.domains),
        "allowed_groups": sorted(f"{g.domain_name}/{g.name}" for g in s.groups),
        "allowed_keypairs": sorted(k.access_key for k in s.keypairs),
    }
