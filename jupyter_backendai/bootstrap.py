"""Load a whole installation from one YAML file, idempotently.

Each section lists things by name; what is missing is created, what differs is updated, what
matches is left alone, so running a file twice changes nothing the second time. Users are
created with their password but an existing user's password is never reset (they may have
changed it since). See ``binder/bootstrap.yaml`` and the README for an example.

```yaml
domains:        [{name, description, total_resource_slots, allowed_vfolder_hosts}]
groups:         [{name, domain, description, total_resource_slots, allowed_vfolder_hosts}]
policies:       [{name, total_resource_slots, max_concurrent_sessions, ...}]
scaling_groups: [{name, description, scheduler, pending_timeout, agent_selection,
                  fifo_max_skips, allow: {domains: [...], groups: [DOMAIN/GROUP], keypairs: [...]}}]
presets:        [{name, resource_slots, shared_memory, scaling_group}]
registries:     [{hostname, url, username, password, project}]
images:         [{reference, labels, installed, min_slots}]
users:          [{email, password, username, role, domain, groups, policy, full_name,
                  need_password_change}]
```
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from .core.slots import ResourceSlots
from .db import admin
from .db import models as m


class BootstrapError(ValueError):
    """The file cannot be read or describes something invalid; the message says where."""


SECTIONS: dict[str, set[str]] = {
    "domains": {"name", "description", "total_resource_slots", "allowed_vfolder_hosts", "allowed_docker_registries"},
    "groups": {
        "name",
        "domain",
        "description",
        "total_resource_slots",
        "allowed_vfolder_hosts",
        "allowed_docker_registries",
        "members",
    },
    "policies": {"name", "total_resource_slots", *admin.POLICY_FIELDS, "allowed_vfolder_hosts"},
    "scaling_groups": {
        "name",
        "description",
        "scheduler",
        "pending_timeout",
        "agent_selection",
        "fifo_max_skips",
        "is_active",
        "allow",
    },
    "presets": {"name", "resource_slots", "shared_memory", "scaling_group"},
    "registries": {"hostname", "url", "username", "password", "project"},
    "images": {"reference", "labels", "installed", "min_slots", "architecture"},
    "users": {
        "email",
        "password",
        "username",
        "role",
        "domain",
        "groups",
        "policy",
        "full_name",
        "need_password_change",
        "description",
    },
}
# Order matters: later sections refer to earlier ones.
ORDER = ("domains", "groups", "policies", "scaling_groups", "presets", "registries", "images", "users")


def load_file(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise BootstrapError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BootstrapError(f"{path} is not valid YAML{where}") from None
    return validate(data or {}, str(path))


def validate(data: Any, source: str = "bootstrap") -> dict[str, list[dict[str, Any]]]:
    if not isinstance(data, Mapping):
        raise BootstrapError(f"{source}: the top level must be a mapping of sections ({', '.join(ORDER)})")
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise BootstrapError(
            f"{source}: unknown section(s) {', '.join(sorted(map(str, unknown)))}; known: {', '.join(ORDER)}"
        )
    out: dict[str, list[dict[str, Any]]] = {}
    for section, entries in data.items():
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise BootstrapError(f"{source}: section {section!r} must be a list")
        key = (
            "email"
            if section == "users"
            else "hostname"
            if section == "registries"
            else "reference"
            if section == "images"
            else "name"
        )
        for i, entry in enumerate(entries):
            where = f"{source}: {section}[{i}]"
            if not isinstance(entry, Mapping):
                raise BootstrapError(f"{where} must be a mapping")
            if key not in entry:
                raise BootstrapError(f"{where} needs {key!r}")
            extra = set(entry) - SECTIONS[section]
            if extra:
                raise BootstrapError(f"{where} ({entry[key]}): unknown field(s) {', '.join(sorted(extra))}")
        out[section] = [dict(e) for e in entries]
    return out


def apply(db: DB, spec: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    """Make the database match ``spec``; returns one line per change ("created policy student")."""
    report = [f"created {what}" for what in admin.ensure_defaults(db)]
    for section in ORDER:
        for entry in spec.get(section, []):
            try:
                change = APPLY[section](db, dict(entry))
            except admin.AdminError as e:
                label = entry.get("name") or entry.get("email") or entry.get("hostname") or entry.get("reference")
                raise BootstrapError(f"{section} {label}: {e}") from None
            if change:
                report.append(change)
    return report


def _slots(value: Any) -> ResourceSlots:
    return admin.parse_slots(value or {})


def _update(obj: Any, wanted: Mapping[str, Any]) -> list[str]:
    """Set the attributes that differ; returns their names."""
    changed = []
    for attr, value in wanted.items():
        if value is not None and getattr(obj, attr) != value:
            setattr(obj, attr, value)
            changed.append(attr)
    return changed


def _result(kind: str, name: str, created: bool, changed: list[str]) -> str | None:
    if created:
        return f"created {kind} {name}"
    if changed:
        return f"updated {kind} {name}: {', '.join(changed)}"
    return None


def _org_fields(e: dict) -> dict[str, Any]:
    """A domain's or group's entry as columns; None for a field the file leaves out (kept as is)."""
    return {
        "description": e.get("description"),
        "total_resource_slots": _slots(e.get("total_resource_slots")) if "total_resource_slots" in e else None,
        "allowed_vfolder_hosts": admin.check_hosts(e["allowed_vfolder_hosts"])
        if "allowed_vfolder_hosts" in e
        else None,
        "allowed_docker_registries": sorted(set(e["allowed_docker_registries"]))
        if "allowed_docker_registries" in e
        else None,
    }


def _domain(db: DB, e: dict) -> str | None:
    name = e.pop("name")
    fields = _org_fields(e)
    domain = db.get(m.Domain, name)
    if domain is None:
        admin.create_domain(db, name, **{k: v for k, v in fields.items() if v is not None})
        return _result("domain", name, True, [])
    changed = _update(domain, fields)
    db.flush()
    return _result("domain", name, False, changed)


def _group(db: DB, e: dict) -> str | None:
    name, domain_name = e.pop("name"), e.pop("domain", admin.DEFAULT)
    members = e.pop("members", None) or []
    fields = _org_fields(e)
    group = db.scalar(select(m.Group).where(m.Group.name == name, m.Group.domain_name == domain_name))
    created = group is None
    changed: list[str] = []
    if created:
        group = admin.create_group(db, name, domain=domain_name, **{k: v for k, v in fields.items() if v is not None})
    else:
        changed = _update(group, fields)
    for who in members:
        if admin.add_user_to_group(db, group, admin.get_user(db, who)):
            changed.append(f"+{who}")
    db.flush()
    return _result("group", f"{domain_name}/{name}", created, changed)


def _policy(db: DB, e: dict) -> str | None:
    name = e.pop("name")
    policy = db.get(m.KeyPairResourcePolicy, name)
    if policy is None:
        admin.create_policy(db, name, **e)
        return _result("policy", name, True, [])
    before = {f: getattr(policy, f) for f in (*admin.POLICY_FIELDS, "allowed_vfolder_hosts")}
    before_slots = policy.total_resource_slots
    if "total_resource_slots" in e:
        # The file states the whole limit: slots it leaves out become unlimited again.
        policy.total_resource_slots = _slots(e.pop("total_resource_slots"))
    admin.update_policy(db, name, **e)
    changed = [f for f, v in before.items() if getattr(policy, f) != v]
    if policy.total_resource_slots != before_slots:
        changed.insert(0, "total_resource_slots")
    return _result("policy", name, False, changed)


def _scaling_group(db: DB, e: dict) -> str | None:
    name = e.pop("name")
    allow = e.pop("allow", None) or {}
    if not isinstance(allow, Mapping) or set(allow) - {"domains", "groups", "keypairs"}:
        raise admin.AdminError("'allow' takes domains, groups (DOMAIN/GROUP) and keypairs")
    sgroup = db.get(m.ScalingGroup, name)
    created = sgroup is None
    changed: list[str] = []
    if created:
        sgroup = admin.create_scaling_group(db, name, **e)
    else:

        def settings():
            return (
                sgroup.description,
                sgroup.scheduler,
                sgroup.pending_timeout,
                dict(sgroup.scheduler_opts),
                sgroup.is_active,
            )

        before = settings()
        admin.update_scaling_group(db, name, **e)
        if settings() != before:
            changed.append("settings")
    groups = [tuple(reversed(g.split("/", 1))) if "/" in g else (g, admin.DEFAULT) for g in allow.get("groups", [])]
    counts = (len(sgroup.domains), len(sgroup.groups), len(sgroup.keypairs))
    admin.allow_scaling_group(
        db, name, domains=allow.get("domains", []), groups=groups, keypairs=allow.get("keypairs", [])
    )
    if (len(sgroup.domains), len(sgroup.groups), len(sgroup.keypairs)) != counts:
        changed.append("access")
    return _result("resource group", name, created, changed)


def _preset(db: DB, e: dict) -> str | None:
    name = e["name"]
    preset = db.get(m.ResourcePreset, name)
    slots = _slots(e.get("resource_slots"))
    if preset is None:
        admin.create_preset(db, name, slots, shared_memory=e.get("shared_memory"), scaling_group=e.get("scaling_group"))
        return _result("preset", name, True, [])
    before = (preset.resource_slots, preset.shared_memory, preset.scaling_group_name)
    preset.resource_slots = slots  # the file states the whole preset
    admin.update_preset(db, name, shared_memory=e.get("shared_memory"), scaling_group=e.get("scaling_group"))
    after = (preset.resource_slots, preset.shared_memory, preset.scaling_group_name)
    return _result("preset", name, False, ["settings"] if after != before else [])


def _registry(db: DB, e: dict) -> str | None:
    hostname = e.pop("hostname")
    registry = db.scalar(select(m.ContainerRegistry).where(m.ContainerRegistry.hostname == hostname))
    if registry is None:
        admin.add_registry(db, hostname, e.pop("url", ""), **e)
        return _result("registry", hostname, True, [])
    changed = _update(registry, {k: e.get(k) for k in ("url", "username", "password", "project")})
    db.flush()
    return _result("registry", registry.hostname, False, changed)


def _image(db: DB, e: dict) -> str | None:
    ref = e["reference"]
    labels = e.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise admin.AdminError("labels must be a mapping")
    existing = None
    try:
        existing = admin.get_image(db, ref, e.get("architecture"))
    except admin.NotFound:
        pass
    before = None if existing is None else (dict(existing.labels), existing.min_slots, existing.installed)
    image, created = admin.upsert_image(
        db,
        ref,
        labels={str(k): str(v) for k, v in labels.items()},
        architecture=e.get("architecture") or "x86_64",
        installed=e.get("installed"),
    )
    if e.get("min_slots"):
        admin.set_image_min(db, image, e["min_slots"])
    after = (dict(image.labels), image.min_slots, image.installed)
    return _result("image", image.reference, created, ["settings"] if before is not None and after != before else [])


def _user(db: DB, e: dict) -> str | None:
    email = admin.check_email(e.pop("email"))
    user = db.scalar(select(m.User).where(m.User.email == email))
    groups = e.pop("groups", None) or []
    if user is None:
        password = e.pop("password", None)
        if password is None:
            raise admin.AdminError("a new user needs a password")
        admin.create_user(db, email, str(password), groups=groups, **e)
        return _result("user", email, True, [])
    changed = _update(
        user,
        {
            "role": m.UserRole(e["role"]) if "role" in e else None,
            "full_name": e.get("full_name"),
            "description": e.get("description"),
        },
    )
    for name in groups:
        if admin.add_user_to_group(db, admin.get_group(db, name, user.domain_name), user):
            changed.append(f"+group {name}")
    db.flush()
    return _result("user", email, False, changed)


APPLY = {
    "domains": _domain,
    "groups": _group,
    "policies": _policy,
    "scaling_groups": _scaling_group,
    "presets": _preset,
    "registries": _registry,
    "images": _image,
    "users": _user,
}
