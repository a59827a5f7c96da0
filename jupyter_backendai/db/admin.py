"""Validated administrative operations on the database.

One place for what an operator (the CLI, the bootstrap file, later the manager's admin API)
may create, change and list. Every function takes an open SQLAlchemy session, checks its
input, and raises an :class:`AdminError` whose one-line message says what is wrong; the
caller commits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from ..core.passwords import WeakPasswordError, check_password
from ..core.slots import ResourceSlots, SlotError
from . import models as m
from .credentials import hash_password, is_access_key, is_secret_key, new_access_key, new_secret_key

DEFAULT = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# No '@': a login with '@' names an e-mail address, so a user name like someone else's address
# must not exist (it would shadow them). Users of other authenticators named by their e-mail
# address are the one exception: create_user(..., username_is_email=True).
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._+-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FOLDER_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class AdminError(ValueError):
    """Bad input for an administrative operation (HTTP 400)."""

    status = 400


class NotFound(AdminError):
    status = 404


class Conflict(AdminError):
    status = 409


# --- validation helpers ---------------------------------------------------------------------


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise AdminError(
            f"invalid {kind} name {name!r}: use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_email(email: str) -> str:
    email = (email or "").strip()
    if not _EMAIL.match(email) or len(email) > 254:
        raise AdminError(f"invalid e-mail address {email!r}")
    return email.lower()


def username_from_email(email: str) -> str:
    local = re.sub(r"[^a-z0-9._-]", "-", email.split("@", 1)[0].lower()).strip("-._") or "user"
    return local[:64]


def check_username(username: str) -> str:
    username = (username or "").strip().lower()
    if not _USERNAME.match(username):
        raise AdminError(
            f"invalid user name {username!r}: use up to 64 lower-case letters, digits, '.', '_', '+' or '-' "
            "(no '@': a name with '@' would read as an e-mail address at login)"
        )
    return username


def find_login_user(db: DB, login: str) -> m.User | None:
    """The account a login names: input with '@' is an e-mail address, any other a user name.

    Never one for the other, so that no user name can stand in for someone's address.
    """
    key = (login or "").strip().lower()
    if not key:
        return None
    column = m.User.email if "@" in key else m.User.username
    return db.scalar(select(m.User).where(column == key))


def login_throttle_key(db: DB, login: str) -> str:
    """The login throttle's key: one per account however it is named, else one per name given."""
    user = find_login_user(db, login)
    return f"account:{user.id}" if user is not None else f"account-name:{(login or '').strip().lower()[:254]}"


def parse_slots(values: Mapping[str, Any] | None) -> ResourceSlots:
    try:
        return ResourceSlots.parse({k: v for k, v in (values or {}).items() if v is not None})
    except SlotError as e:
        raise AdminError(str(e)) from None


def check_non_negative(label: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AdminError(f"{label} must be a whole number of 0 or more, not {value!r}")
    return value


def check_hosts(hosts: Iterable[str] | None) -> list[str]:
    if isinstance(hosts, str):  # a plain string would be read as a list of letters
        raise AdminError(f"storage hosts must be a list of host names, not the string {hosts!r}")
    out = []
    for host in hosts or []:
        if not isinstance(host, str):
            raise AdminError(f"invalid storage host name {host!r}")
        host = host.strip()
        if not host:
            continue
        if not _FOLDER_HOST.match(host):
            raise AdminError(f"invalid storage host name {host!r}")
        out.append(host)
    return sorted(set(out))


def parse_enum(cls, label: str, value):
    """``value`` as a member of the enum ``cls``; an unknown value is an AdminError naming the choices."""
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(e.value for e in cls)
        raise AdminError(f"invalid {label} {value!r}: choose one of {allowed}") from None


# --- look-ups -------------------------------------------------------------------------------


def get_domain(db: DB, name: str) -> m.Domain:
    domain = db.get(m.Domain, name)
    if domain is None:
        raise NotFound(f"no domain named {name!r}")
    return domain


def get_group(db: DB, name: str, domain: str = DEFAULT) -> m.Group:
    group = db.scalar(select(m.Group).where(m.Group.name == name, m.Group.domain_name == domain))
    if group is None:
        raise NotFound(f"no group named {name!r} in domain {domain!r}")
    return group


def get_user(db: DB, email_or_name: str) -> m.User:
    key = (email_or_name or "").strip().lower()
    # An e-mail address wins over a user name that happens to look like one.
    user = db.scalar(select(m.User).where(m.User.email == key)) or db.scalar(
        select(m.User).where(m.User.username == key)
    )
    if user is None:
        raise NotFound(f"no user with e-mail or name {email_or_name!r}")
    return user


def get_policy(db: DB, name: str) -> m.KeyPairResourcePolicy:
    policy = db.get(m.KeyPairResourcePolicy, name)
    if policy is None:
        raise NotFound(f"no keypair resource policy named {name!r}")
    return policy


def get_keypair(db: DB, access_key: str) -> m.KeyPair:
    keypair = db.get(m.KeyPair, access_key)
    if keypair is None:
        raise NotFound(f"no keypair with access key {access_key!r}")
    return keypair


def get_preset(db: DB, name: str) -> m.ResourcePreset:
    preset = db.get(m.ResourcePreset, name)
    if preset is None:
        raise NotFound(f"no resource preset named {name!r}")
    return preset


def get_scaling_group(db: DB, name: str) -> m.ScalingGroup:
    sgroup = db.get(m.ScalingGroup, name)
    if sgroup is None:
        raise NotFound(f"no resource group named {name!r}")
    return sgroup


def get_registry(db: DB, hostname: str) -> m.ContainerRegistry:
    registry = db.scalar(select(m.ContainerRegistry).where(m.ContainerRegistry.hostname == hostname))
    if registry is None:
        raise NotFound(f"no registry named {hostname!r}")
    return registry


def parse_image_ref(ref: str) -> tuple[str, str, str]:
    """``[registry/]name[:tag]`` → (registry, name, tag); the registry is ``local`` when absent."""
    ref = (ref or "").strip()
    if not ref or any(c.isspace() for c in ref):
        raise AdminError(f"invalid image reference {ref!r}")
    registry = "local"
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, ref = first, rest
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    if not name or not tag:
        raise AdminError(f"invalid image reference {ref!r}")
    return registry, name, tag


def get_image(db: DB, ref: str, architecture: str | None = None) -> m.Image:
    registry, name, tag = parse_image_ref(ref)
    query = select(m.Image).where(m.Image.registry_host == registry, m.Image.name == name, m.Image.tag == tag)
    if architecture:
        query = query.where(m.Image.architecture == architecture)
    images = db.scalars(query).all()
    if not images:
        raise NotFound(f"no image {ref!r}")
    if len(images) > 1:
        raise AdminError(f"image {ref!r} exists for several architectures; name one")
    return images[0]


# --- defaults -------------------------------------------------------------------------------


def ensure_defaults(db: DB) -> list[str]:
    """Create the ``default`` domain, group, policy and resource group when missing.

    Returns what was created, so that a second run reports nothing.
    """
    created = []
    if db.get(m.Domain, DEFAULT) is None:
        db.add(m.Domain(name=DEFAULT, description="The default domain"))
        created.append("domain default")
        db.flush()
    if db.scalar(select(m.Group).where(m.Group.name == DEFAULT, m.Group.domain_name == DEFAULT)) is None:
        db.add(m.Group(name=DEFAULT, domain_name=DEFAULT, description="The default project"))
        created.append("group default")
    if db.get(m.KeyPairResourcePolicy, DEFAULT) is None:
        db.add(
            m.KeyPairResourcePolicy(
                name=DEFAULT, max_concurrent_sessions=0, max_containers_per_session=1, allowed_vfolder_hosts=["local"]
            )
        )
        created.append("policy default")
    if db.get(m.ScalingGroup, DEFAULT) is None:
        sgroup = m.ScalingGroup(name=DEFAULT, description="The default resource group")
        sgroup.domains.append(db.get(m.Domain, DEFAULT))
        db.add(sgroup)
        created.append("scaling-group default")
    db.flush()
    return created


# --- domains and groups ---------------------------------------------------------------------


def create_domain(
    db: DB,
    name: str,
    *,
    description: str = "",
    total_resource_slots: Mapping[str, Any] | None = None,
    allowed_vfolder_hosts: Iterable[str] | None = None,
    allowed_docker_registries: Iterable[str] | None = None,
) -> m.Domain:
    check_name("domain", name)
    if db.get(m.Domain, name) is not None:
        raise Conflict(f"domain {name!r} already exists")
    domain = m.Domain(
        name=name,
        description=description,
        total_resource_slots=parse_slots(total_resource_slots),
        allowed_vfolder_hosts=check_hosts(allowed_vfolder_hosts),
        allowed_docker_registries=sorted(set(allowed_docker_registries or [])),
    )
    db.add(domain)
    db.flush()
    return domain


def create_group(
    db: DB,
    name: str,
    *,
    domain: str = DEFAULT,
    description: str = "",
    total_resource_slots: Mapping[str, Any] | None = None,
    allowed_vfolder_hosts: Iterable[str] | None = None,
    allowed_docker_registries: Iterable[str] | None = None,
) -> m.Group:
    check_name("group", name)
    get_domain(db, domain)
    if db.scalar(select(m.Group).where(m.Group.name == name, m.Group.domain_name == domain)) is not None:
        raise Conflict(f"group {name!r} already exists in domain {domain!r}")
    group = m.Group(
        name=name,
        domain_name=domain,
        description=description,
        total_resource_slots=parse_slots(total_resource_slots),
        allowed_vfolder_hosts=check_hosts(allowed_vfolder_hosts),
        allowed_docker_registries=sorted(set(allowed_docker_registries or [])),
    )
    db.add(group)
    db.flush()
    return group


ORG_FIELDS = ("description", "total_resource_slots", "allowed_vfolder_hosts", "allowed_docker_registries")


def merge_caps(current: Mapping[str, Any] | None, given: Mapping[str, Any] | None) -> ResourceSlots:
    """A domain's or group's caps after a change: the slots given replace theirs, the others stay;
    ``unlimited`` lifts a slot's cap (a slot without a cap is unlimited)."""
    merged = {**(current or {}), **parse_slots(given)}
    return ResourceSlots({k: v for k, v in merged.items() if not v.is_infinite()})


def _update_org(org: m.Domain | m.Group, fields: Mapping[str, Any]) -> None:
    unknown = sorted(set(fields) - set(ORG_FIELDS))
    if unknown:
        raise AdminError(f"unknown field(s) {', '.join(unknown)}; expected some of {', '.join(ORG_FIELDS)}")
    for key, value in fields.items():
        if value is None:
            continue
        if key == "description":
            if not isinstance(value, str):
                raise AdminError(f"description must be text, not {value!r}")
            org.description = value
        elif key == "total_resource_slots":
            if not isinstance(value, Mapping):
                raise AdminError(f"total_resource_slots must be a mapping of slot name to amount, not {value!r}")
            org.total_resource_slots = merge_caps(org.total_resource_slots, value)
        elif key == "allowed_vfolder_hosts":
            org.allowed_vfolder_hosts = check_hosts(value)
        else:
            if isinstance(value, str) or not all(isinstance(r, str) for r in value):
                raise AdminError(f"allowed_docker_registries must be a list of registry names, not {value!r}")
            org.allowed_docker_registries = sorted({r.strip() for r in value if r.strip()})


def update_domain(db: DB, name: str, **fields: Any) -> m.Domain:
    """Change a domain: its caps (merged, see :func:`merge_caps`), description, hosts, registries.

    A cap lowered below what the domain's sessions hold ends none of them; new launches are
    refused until those sessions hold less (admission counts what is held and awaited).
    """
    domain = get_domain(db, name)
    _update_org(domain, fields)
    db.flush()
    return domain


def update_group(db: DB, name: str, domain: str = DEFAULT, **fields: Any) -> m.Group:
    """Change a group (project) of a domain, as :func:`update_domain` does."""
    group = get_group(db, name, domain)
    _update_org(group, fields)
    db.flush()
    return group


def add_user_to_group(db: DB, group: m.Group, user: m.User) -> bool:
    """Add a membership; False when it already existed."""
    if user.domain_name != group.domain_name:
        raise AdminError(
            f"user {user.email!r} is in domain {user.domain_name!r}, group {group.name!r} in {group.domain_name!r}"
        )
    if user in group.users:
        return False
    group.users.append(user)
    db.flush()
    return True


def remove_user_from_group(db: DB, group: m.Group, user: m.User) -> bool:
    if user not in group.users:
        return False
    group.users.remove(user)
    db.flush()
    return True


# --- policies -------------------------------------------------------------------------------

POLICY_FIELDS = (
    "max_concurrent_sessions",
    "max_containers_per_session",
    "idle_timeout",
    "max_session_lifetime",
    "max_pending_session_count",
    "max_vfolder_count",
    "max_vfolder_size",
)


def _apply_policy_fields(policy: m.KeyPairResourcePolicy, fields: Mapping[str, Any]) -> None:
    for key, value in fields.items():
        if key == "total_resource_slots":
            if value is not None:
                policy.total_resource_slots = ResourceSlots(
                    {**(policy.total_resource_slots or {}), **parse_slots(value)}
                )
        elif key == "allowed_vfolder_hosts":
            if value is not None:
                policy.allowed_vfolder_hosts = check_hosts(value)
        elif key in POLICY_FIELDS:
            if value is not None:
                setattr(policy, key, check_non_negative(key.replace("_", " "), value))
        else:
            raise AdminError(f"unknown policy field {key!r}")
    if policy.max_containers_per_session is not None and policy.max_containers_per_session < 1:
        raise AdminError("max containers per session must be at least 1")


def create_policy(db: DB, name: str, **fields: Any) -> m.KeyPairResourcePolicy:
    check_name("policy", name)
    if db.get(m.KeyPairResourcePolicy, name) is not None:
        raise Conflict(f"keypair resource policy {name!r} already exists")
    policy = m.KeyPairResourcePolicy(
        name=name,
        total_resource_slots=ResourceSlots(),
        max_concurrent_sessions=0,
        max_containers_per_session=1,
        idle_timeout=0,
        max_session_lifetime=0,
        max_vfolder_count=0,
        max_vfolder_size=0,
        allowed_vfolder_hosts=["local"],
    )
    _apply_policy_fields(policy, fields)
    db.add(policy)
    db.flush()
    return policy


def update_policy(db: DB, name: str, **fields: Any) -> m.KeyPairResourcePolicy:
    policy = get_policy(db, name)
    _apply_policy_fields(policy, fields)
    db.flush()
    return policy


def delete_policy(db: DB, name: str) -> None:
    policy = get_policy(db, name)
    users = db.scalar(select(func.count()).select_from(m.KeyPair).where(m.KeyPair.resource_policy == name))
    if users:
        raise Conflict(f"keypair resource policy {name!r} is used by {users} keypair(s); assign them another first")
    db.delete(policy)
    db.flush()


# --- users and keypairs ---------------------------------------------------------------------


def create_user(
    db: DB,
    email: str,
    password: str | None,
    *,
    username: str | None = None,
    role: str = "user",
    domain: str = DEFAULT,
    groups: Iterable[str] = (),
    policy: str = DEFAULT,
    full_name: str = "",
    description: str = "",
    need_password_change: bool = False,
    status: str = "active",
    username_is_email: bool = False,
) -> tuple[m.User, m.KeyPair]:
    """Create a user and its first keypair (F35); the keypair's secret is on the returned object.

    ``username_is_email``: the user name is the e-mail address itself (hub users of other
    authenticators that name them so); harmless, as a login with '@' finds that same account.
    """
    email = check_email(email)
    if username_is_email:
        if (username or "").strip().lower() != email:
            raise AdminError(f"the user name {username!r} must be the e-mail address {email!r} itself")
        username = email
    else:
        username = check_username(username or username_from_email(email))
    role_ = parse_enum(m.UserRole, "role", role)
    status_ = parse_enum(m.UserStatus, "status", status)
    if password is not None:
        try:
            check_password(password)
        except WeakPasswordError as e:
            raise AdminError(str(e)) from None
    get_domain(db, domain)
    get_policy(db, policy)
    if db.scalar(select(m.User).where(m.User.email == email)) is not None:
        raise Conflict(f"a user with e-mail {email!r} already exists")
    if db.scalar(select(m.User).where(m.User.username == username)) is not None:
        raise Conflict(f"the user name {username!r} is taken")
    group_rows = [get_group(db, g, domain) for g in groups]
    user = m.User(
        email=email,
        username=username,
        password=hash_password(password) if password is not None else None,
        role=role_,
        status=status_,
        domain_name=domain,
        full_name=full_name,
        description=description,
        need_password_change=need_password_change,
    )
    db.add(user)
    db.flush()
    for group in group_rows:
        add_user_to_group(db, group, user)
    keypair = create_keypair(db, user, policy=policy, is_admin=role_ in (m.UserRole.SUPERADMIN, m.UserRole.ADMIN))
    return user, keypair


def update_user(
    db: DB,
    user: m.User,
    *,
    password: str | None = None,
    username: str | None = None,
    role: str | None = None,
    full_name: str | None = None,
    description: str | None = None,
    need_password_change: bool | None = None,
    status: str | None = None,
) -> m.User:
    if password is not None:
        try:
            check_password(password)
        except WeakPasswordError as e:
            raise AdminError(str(e)) from None
        user.password = hash_password(password)
    if username is not None:
        username = check_username(username)
        other = db.scalar(select(m.User).where(m.User.username == username))
        if other is not None and other.id != user.id:
            raise Conflict(f"the user name {username!r} is taken")
        user.username = username
    if role is not None:
        user.role = parse_enum(m.UserRole, "role", role)
        for keypair in user.keypairs:  # as create_user does: admins' keypairs are admin keypairs
            keypair.is_admin = user.role in (m.UserRole.SUPERADMIN, m.UserRole.ADMIN)
    if status is not None:
        user.status = parse_enum(m.UserStatus, "status", status)
    if full_name is not None:
        user.full_name = full_name
    if description is not None:
        user.description = description
    if need_password_change is not None:
        user.need_password_change = need_password_change
    db.flush()
    return user


def deactivate_user(db: DB, user: m.User) -> m.User:
    """Users are never deleted (F37): they become inactive and cannot log in."""
    user.status = m.UserStatus.INACTIVE
    db.flush()
    return user


def create_keypair(
    db: DB,
    user: m.User,
    *,
    policy: str = DEFAULT,
    is_admin: bool = False,
    rate_limit: int = 1000,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> m.KeyPair:
    get_policy(db, policy)
    check_non_negative("rate limit", rate_limit)
    if access_key is not None and not is_access_key(access_key):
        raise AdminError("an access key is 20 characters: 'AK' and upper-case letters or digits (like AKIA...)")
    if secret_key is not None and not is_secret_key(secret_key):
        raise AdminError("a secret key is 40 characters: letters, digits, '-' or '_'")
    access_key = access_key or new_access_key()
    if db.get(m.KeyPair, access_key) is not None:
        raise Conflict(f"access key {access_key!r} already exists")
    keypair = m.KeyPair(
        access_key=access_key,
        secret_key=secret_key or new_secret_key(),
        user_id=user.id,
        is_active=True,
        is_admin=is_admin,
        resource_policy=policy,
        rate_limit=rate_limit,
        num_queries=0,
    )
    db.add(keypair)
    db.flush()
    return keypair


def update_keypair(
    db: DB,
    keypair: m.KeyPair,
    *,
    policy: str | None = None,
    rate_limit: int | None = None,
    is_admin: bool | None = None,
    is_active: bool | None = None,
) -> m.KeyPair:
    if policy is not None:
        get_policy(db, policy)
        keypair.resource_policy = policy
    if rate_limit is not None:
        keypair.rate_limit = check_non_negative("rate limit", rate_limit)
    if is_admin is not None:
        keypair.is_admin = is_admin
    if is_active is not None:
        keypair.is_active = is_active
    db.flush()
    return keypair


def delete_keypair(db: DB, keypair: m.KeyPair) -> None:
    """Only a keypair that never ran a session can be deleted (F38); the others are deactivated."""
    used = db.scalar(select(func.count()).select_from(m.Session).where(m.Session.access_key == keypair.access_key))
    if used:
        raise Conflict(
            f"keypair {keypair.access_key} ran {used} session(s) and cannot be deleted; deactivate it instead"
        )
    db.delete(keypair)
    db.flush()


# --- presets, images, registries ------------------------------------------------------------


def _check_shmem(value: Any) -> int | None:
    if value is None:
        return None
    return int(parse_slots({"shmem": value})["shmem"])


def create_preset(
    db: DB,
    name: str,
    resource_slots: Mapping[str, Any],
    *,
    shared_memory: Any = None,
    scaling_group: str | None = None,
) -> m.ResourcePreset:
    check_name("preset", name)
    if db.get(m.ResourcePreset, name) is not None:
        raise Conflict(f"resource preset {name!r} already exists")
    slots = parse_slots(resource_slots)
    if not slots:
        raise AdminError(f"preset {name!r} needs at least one resource (for example --cpu 1 --mem 1g)")
    if any(v.is_infinite() for v in slots.values()):
        raise AdminError(f"preset {name!r} cannot ask for unlimited resources")
    if scaling_group is not None:
        get_scaling_group(db, scaling_group)
    preset = m.ResourcePreset(
        name=name, resource_slots=slots, shared_memory=_check_shmem(shared_memory), scaling_group_name=scaling_group
    )
    db.add(preset)
    db.flush()
    return preset


def update_preset(
    db: DB,
    name: str,
    *,
    resource_slots: Mapping[str, Any] | None = None,
    shared_memory: Any = None,
    scaling_group: str | None = None,
) -> m.ResourcePreset:
    preset = get_preset(db, name)
    if resource_slots:
        slots = parse_slots(resource_slots)
        if any(v.is_infinite() for v in slots.values()):
            raise AdminError(f"preset {name!r} cannot ask for unlimited resources")
        preset.resource_slots = ResourceSlots({**preset.resource_slots, **slots})
    if shared_memory is not None:
        preset.shared_memory = _check_shmem(shared_memory)
    if scaling_group is not None:
        preset.scaling_group_name = get_scaling_group(db, scaling_group).name if scaling_group else None
    db.flush()
    return preset


def delete_preset(db: DB, name: str) -> None:
    db.delete(get_preset(db, name))
    db.flush()


MIN_LABEL = "ai.backend.resource.min."
SERVICE_PORTS_LABEL = "ai.backend.service-ports"


def parse_service_ports(label: str) -> list[dict[str, Any]]:
    """``jupyter:http:8080,tensorboard:http:6006`` → Backend.AI's servicePorts entries."""
    ports = []
    for item in filter(None, (p.strip() for p in (label or "").split(","))):
        parts = item.split(":")
        if len(parts) != 3 or parts[1] not in ("tcp", "http", "pty", "preopen") or not parts[2].isdigit():
            raise AdminError(f"invalid service port {item!r}: expected name:protocol:port, like jupyter:http:8080")
        ports.append({"name": parts[0], "protocol": parts[1], "ports": [int(parts[2])]})
    return ports


def upsert_image(
    db: DB,
    ref: str,
    *,
    labels: Mapping[str, str] | None = None,
    architecture: str = "x86_64",
    digest: str | None = None,
    installed: bool | None = None,
) -> tuple[m.Image, bool]:
    """Add or refresh an image from its labels; returns (image, created)."""
    registry, name, tag = parse_image_ref(ref)
    labels = dict(labels or {})
    min_slots = parse_slots({k[len(MIN_LABEL) :]: v for k, v in labels.items() if k.startswith(MIN_LABEL)})
    ports = parse_service_ports(labels.get(SERVICE_PORTS_LABEL, ""))
    image = db.scalar(
        select(m.Image).where(
            m.Image.registry_host == registry,
            m.Image.name == name,
            m.Image.tag == tag,
            m.Image.architecture == architecture,
        )
    )
    created = image is None
    if created:
        image = m.Image(registry_host=registry, name=name, tag=tag, architecture=architecture)
        db.add(image)
    image.labels = labels
    image.min_slots = min_slots
    image.service_ports = ports
    if digest is not None:
        image.digest = digest
    if installed is not None:
        image.installed = installed
    db.flush()
    return image, created


def set_image_min(db: DB, image: m.Image, min_slots: Mapping[str, Any]) -> m.Image:
    slots = parse_slots(min_slots)
    if any(v.is_infinite() for v in slots.values()):
        raise AdminError("an image's minimum cannot be unlimited")
    image.min_slots = ResourceSlots({**image.min_slots, **slots})
    db.flush()
    return image


def add_registry(
    db: DB,
    hostname: str,
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    project: str | None = None,
) -> m.ContainerRegistry:
    if not hostname or not re.match(r"^[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]+)?$", hostname):
        raise AdminError(f"invalid registry host name {hostname!r}")
    if not re.match(r"^https?://[^\s/]+", url or ""):
        raise AdminError(f"invalid registry URL {url!r}: give the scheme too, like https://{hostname}")
    if db.scalar(select(m.ContainerRegistry).where(m.ContainerRegistry.hostname == hostname)) is not None:
        raise Conflict(f"registry {hostname!r} already exists")
    registry = m.ContainerRegistry(
        hostname=hostname, url=url.rstrip("/"), username=username, password=password, project=project
    )
    db.add(registry)
    db.flush()
    return registry


def remove_registry(db: DB, hostname: str) -> None:
    db.delete(get_registry(db, hostname))
    db.flush()


# --- resource groups ------------------------------------------------------------------------

AGENT_SELECTIONS = ("concentrated", "dispersed")


def _scheduler_opts(opts: Mapping[str, Any], *, agent_selection: str | None, fifo_max_skips: int | None) -> dict:
    out = dict(opts)
    if agent_selection is not None:
        if agent_selection not in AGENT_SELECTIONS:
            raise AdminError(
                f"invalid agent selection {agent_selection!r}: choose one of {', '.join(AGENT_SELECTIONS)}"
            )
        out["agent_selection"] = agent_selection
    if fifo_max_skips is not None:
        out["fifo_max_skips"] = check_non_negative("fifo max skips", fifo_max_skips)
    return out


def create_scaling_group(
    db: DB,
    name: str,
    *,
    description: str = "",
    scheduler: str = "fifo",
    pending_timeout: int = 0,
    agent_selection: str | None = None,
    fifo_max_skips: int | None = None,
    driver: str = "docker",
    is_active: bool = True,
) -> m.ScalingGroup:
    check_name("resource group", name)
    if db.get(m.ScalingGroup, name) is not None:
        raise Conflict(f"resource group {name!r} already exists")
    sgroup = m.ScalingGroup(
        name=name,
        description=description,
        scheduler=parse_enum(m.SchedulerName, "scheduler", scheduler),
        pending_timeout=check_non_negative("pending timeout", pending_timeout),
        scheduler_opts=_scheduler_opts(
            {}, agent_selection=agent_selection or "concentrated", fifo_max_skips=fifo_max_skips
        ),
        driver=driver,
        is_active=is_active,
    )
    db.add(sgroup)
    db.flush()
    return sgroup


def update_scaling_group(
    db: DB,
    name: str,
    *,
    description: str | None = None,
    scheduler: str | None = None,
    pending_timeout: int | None = None,
    agent_selection: str | None = None,
    fifo_max_skips: int | None = None,
    is_active: bool | None = None,
) -> m.ScalingGroup:
    sgroup = get_scaling_group(db, name)
    if description is not None:
        sgroup.description = description
    if scheduler is not None:
        sgroup.scheduler = parse_enum(m.SchedulerName, "scheduler", scheduler)
    if pending_timeout is not None:
        sgroup.pending_timeout = check_non_negative("pending timeout", pending_timeout)
    if is_active is not None:
        sgroup.is_active = is_active
    sgroup.scheduler_opts = _scheduler_opts(
        sgroup.scheduler_opts or {}, agent_selection=agent_selection, fifo_max_skips=fifo_max_skips
    )
    db.flush()
    return sgroup


def allow_scaling_group(
    db: DB,
    name: str,
    *,
    domains: Iterable[str] = (),
    groups: Iterable[tuple[str, str]] = (),
    keypairs: Iterable[str] = (),
    revoke: bool = False,
) -> m.ScalingGroup:
    """Give (or with ``revoke`` take back) domains, groups (name, domain) and keypairs access."""
    sgroup = get_scaling_group(db, name)
    targets = [
        (sgroup.domains, [get_domain(db, d) for d in domains]),
        (sgroup.groups, [get_group(db, g, d) for g, d in groups]),
        (sgroup.keypairs, [get_keypair(db, k) for k in keypairs]),
    ]
    for current, rows in targets:
        for row in rows:
            if revoke and row in current:
                current.remove(row)
            elif not revoke and row not in current:
                current.append(row)
    db.flush()
    return sgroup
