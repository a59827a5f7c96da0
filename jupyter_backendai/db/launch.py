"""Launch rules that the hub's spawner and the manager share, so that both answer alike.

The spawn form, the spawner's admission, the manager's ``check-presets``, ``launch-options``
and queue, its login and token identities and the folder rules all ask this module (and the
pure rules of :mod:`..core.launch` under it):

* :func:`main_keypair`: the keypair that counts for a user (their oldest active one), whichever
  keypair signed a request: every launch goes through the hub's spawner, which uses it;
* :func:`allowed_scaling_groups`, :func:`allowed_images`, :func:`resolve_project`: what a
  launch may use (:func:`launcher` gives the manager's handlers the user, keypair and project);
* :func:`plan_launch`: a request checked against those, as a :class:`LaunchPlan` that the
  spawner admits; :func:`presets_per_choice`: what the spawn form offers per choice;
* :func:`queue_position`: a pending session's place in its resource group's queue.
* :func:`lock_admission` makes admission and the limit checks one serialized step per domain:
  a session's limits (its keypair's policy, its group's and its domain's caps) count what the
  sessions of one domain hold, so two launches in one domain must not both read "room for one
  more" and both go ahead.
* :func:`check_presets_for` is the one answer to "which presets fit": Backend.AI's
  ``check-presets`` document from the keypair policy, the group and domain caps and the
  resource groups' free amounts. The manager's ``POST /resource/check-presets`` (what the lab's
  start dialog reads) and the hub's spawn form both call it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DB

from ..core import launch as rules
from ..core.policy import Cap
from ..core.presets import Preset, ScalingGroupUsage, check_presets
from ..core.slots import ResourceSlots, SlotError
from . import admin
from . import models as m
from . import sessions as store

__all__ = [
    "KEYPAIR_ORDER",
    "LaunchPlan",
    "Refused",
    "allowed_images",
    "allowed_scaling_groups",
    "check_presets_for",
    "check_scaling_group",
    "launcher",
    "lock_admission",
    "main_keypair",
    "plan_launch",
    "presets_per_choice",
    "queue_position",
    "resolve_project",
]

#: SQL order of a user's keypairs for the main one (:func:`..core.launch.keypair_rank`).
KEYPAIR_ORDER = (m.KeyPair.created_at, m.KeyPair.access_key)


class Refused(admin.AdminError):
    """A launch the rules do not allow, with the reason (HTTP 400; the manager's look-ups say 403)."""


# --- who launches --------------------------------------------------------------------------


def main_keypair(db: DB, user: m.User) -> m.KeyPair | None:
    """The user's main keypair (:func:`..core.launch.main_keypair`), None when none is active."""
    return db.scalar(
        select(m.KeyPair)
        .where(m.KeyPair.user_id == user.id, m.KeyPair.is_active.is_(True))
        .order_by(*KEYPAIR_ORDER)
        .limit(1)
    )


def login_keypair(db: DB, user: m.User) -> m.KeyPair | None:
    """The keypair a login acts with: an active user's main keypair; None when the user is not
    active or has no active keypair (the hub and the manager then refuse the login)."""
    return main_keypair(db, user) if user.is_active else None


def launcher(db: DB, user_id: Any, group_name: str | None = None) -> tuple[m.User, m.KeyPair, m.Group | None]:
    """The user, the keypair their launches count against (the main one) and the project of a launch.

    Whichever keypair signed a request to the manager, a launch goes through the hub's spawner
    and counts against the main keypair: what the manager offers is worked out for that one.
    """
    user = db.get(m.User, user_id)
    keypair = main_keypair(db, user) if user is not None else None
    if keypair is None:
        raise Refused("this account has no active keypair; ask an administrator for one")
    return user, keypair, resolve_project(user, group_name)


def resolve_project(user: m.User, name: str | None) -> m.Group | None:
    """The user's project named ``name``, else the one a launch without a name goes to."""
    if name:
        group = next((g for g in user.groups if g.name == name), None)
        if group is None:
            raise Refused(f"you are not a member of the project {name!r}")
        if not group.is_active:
            raise Refused(f"the project {name!r} is inactive; ask an administrator")
        return group
    return rules.default_project(g for g in user.groups if g.is_active)


# --- what a launch may use -----------------------------------------------------------------


def allowed_scaling_groups(
    db: DB, user: m.User, keypair: m.KeyPair, group: m.Group | None, default: str = rules.DEFAULT
) -> list[str]:
    """The active resource groups open to the user's domain, the project or the keypair, ``default`` first."""
    names = []
    for sg in db.scalars(select(m.ScalingGroup).where(m.ScalingGroup.is_active.is_(True))):
        if (
            any(d.name == user.domain_name for d in sg.domains)
            or (group is not None and any(g.id == group.id for g in sg.groups))
            or any(k.access_key == keypair.access_key for k in sg.keypairs)
        ):
            names.append(sg.name)
    return rules.order_scaling_groups(names, default)


def check_scaling_group(name: str, allowed: Sequence[str]) -> None:
    if name not in allowed:
        raise Refused(
            f"you may not use the resource group {name!r}"
            + (f" (allowed: {', '.join(allowed)})" if allowed else " (no resource group is open to you)")
        )


def allowed_images(db: DB, user: m.User, group: m.Group | None) -> list[m.Image]:
    """Installed images from the ``local`` registry or a registry the domain or project allows."""
    domain = db.get(m.Domain, user.domain_name)
    registries = set(domain.allowed_docker_registries or []) | set(
        (group.allowed_docker_registries or []) if group is not None else []
    )
    rows = db.scalars(select(m.Image).where(m.Image.installed.is_(True)).order_by(m.Image.name, m.Image.tag))
    return [i for i in rows if rules.image_allowed(i.registry_host, registries)]


# --- a launch ------------------------------------------------------------------------------


class LaunchRequest(Protocol):
    """What :func:`plan_launch` reads of a request (the spawner's ``SessionRequest``)."""

    image: str
    group: str
    scaling_group: str
    preset: str
    slots: Mapping[str, str]
    shmem: str
    folders: Sequence[str]


@dataclass
class LaunchPlan:
    """A request checked against the rules: who launches what, where, with which folders.

    The limits (policy and caps) are checked afterwards, under the admission lock.
    """

    user: m.User
    keypair: m.KeyPair
    group: m.Group | None
    scaling_group: str
    image: m.Image
    slots: ResourceSlots
    shmem: int | None
    folders: list[Any]  # folder accesses (db.folders.FolderAccess) to mount


def plan_launch(
    db: DB,
    user: m.User,
    request: LaunchRequest,
    *,
    default_scaling_group: str = rules.DEFAULT,
    check_image: Callable[[m.Image, str], None] | None = None,
) -> LaunchPlan:
    """Check ``request`` of ``user`` against the launch rules; :class:`Refused` (or a folder error) says why not.

    ``check_image(image, scaling_group)`` may refuse an image the backend cannot run there; it
    is asked right after the image is chosen.
    """
    from . import folders as folder_db  # the folder rules import this module's main_keypair

    keypair = main_keypair(db, user)
    if keypair is None:
        raise Refused("this account has no active keypair; ask an administrator for one")
    if not user.domain.is_active:
        raise Refused(f"the domain {user.domain_name!r} is inactive; ask an administrator")
    group = resolve_project(user, request.group)
    allowed = allowed_scaling_groups(db, user, keypair, group, default_scaling_group)
    sg_name = request.scaling_group or (allowed[0] if allowed else default_scaling_group)
    check_scaling_group(sg_name, allowed)
    images = allowed_images(db, user, group)
    if not images:
        raise Refused("no image is installed for you to use; ask an administrator")
    if request.image:
        image = next((i for i in images if i.reference == request.image), None)
        if image is None:
            raise Refused(f"unknown image {request.image!r} (available: {', '.join(i.reference for i in images)})")
    else:
        image = images[0]
    if check_image is not None:
        check_image(image, sg_name)
    try:
        if request.preset:
            preset = db.get(m.ResourcePreset, request.preset)
            if preset is None:
                raise Refused(f"unknown resource preset {request.preset!r}")
            slots = ResourceSlots({**preset.resource_slots, **ResourceSlots.parse(request.slots)})
            shmem = request.shmem or (str(preset.shared_memory) if preset.shared_memory else "")
        else:
            slots = ResourceSlots.parse(request.slots)
            shmem = request.shmem
        shm = int(ResourceSlots(shmem=shmem)["shmem"]) if shmem else None
    except SlotError as e:
        raise Refused(str(e)) from None
    chosen, _automount = folder_db.mountable(db, user, list(request.folders))
    return LaunchPlan(user, keypair, group, sg_name, image, slots, shm, chosen)


def presets_per_choice(
    db: DB, user: m.User, keypair: m.KeyPair, default_scaling_group: str = rules.DEFAULT
) -> list[tuple[m.Group | None, str, dict[str, Any]]]:
    """check-presets' answer for every (project, resource group) a launch of the user may choose.

    Projects by name (``None`` for a user in none), each with its open resource groups in
    :func:`allowed_scaling_groups`' order: what the spawn form offers per choice.
    """
    out = []
    for group in sorted((g for g in user.groups if g.is_active), key=lambda g: g.name) or [None]:
        open_sgroups = allowed_scaling_groups(db, user, keypair, group, default_scaling_group)
        for sg in open_sgroups:
            out.append((group, sg, check_presets_for(db, keypair, group, open_sgroups, sg)))
    return out


def queue_position(db: DB, session: m.Session) -> tuple[int, int] | None:
    """A PENDING session's 1-based place among its resource group's pending sessions, and their count.

    Oldest first, as the scheduler queues them (None once the session has left the queue).
    """
    if session.status != m.SessionStatus.PENDING:
        return None
    waiting = (m.Session.scaling_group == session.scaling_group, m.Session.status == m.SessionStatus.PENDING)
    earlier = or_(
        m.Session.created_at < session.created_at,
        (m.Session.created_at == session.created_at) & (m.Session.id < session.id),
    )
    position = int(db.scalar(select(func.count(m.Session.id)).where(*waiting, earlier))) + 1
    return position, int(db.scalar(select(func.count(m.Session.id)).where(*waiting)))


def lock_admission(db: DB, domain_name: str) -> None:
    """Hold the domain's admission lock until ``db``'s transaction ends (commit or rollback).

    On PostgreSQL (and other servers) a row lock on the domain (``SELECT ... FOR UPDATE``):
    admissions in other domains go on in parallel. SQLite has no row locks: the transaction
    becomes a write transaction at once (``BEGIN IMMEDIATE``), which serializes every
    admission on the database; they are short. Call it before reading what the domain's
    sessions hold; the domain's row is read again under the lock, so its caps are current.
    """
    if db.get_bind().dialect.name == "sqlite":
        connection = db.connection()
        # pysqlite opens a transaction only before a write; reads so far ran outside one.
        if not connection.connection.dbapi_connection.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        db.execute(select(m.Domain).where(m.Domain.name == domain_name).execution_options(populate_existing=True))
        return
    db.execute(
        select(m.Domain).where(m.Domain.name == domain_name).with_for_update().execution_options(populate_existing=True)
    )


def check_presets_for(
    db: DB,
    keypair: m.KeyPair,
    group: m.Group | None,
    scaling_groups: list[str],
    scaling_group: str | None = None,
) -> dict[str, Any]:
    """Backend.AI's check-presets answer for ``keypair`` launching in ``group``.

    ``scaling_groups`` are the resource groups open to the launch; ``scaling_group`` narrows
    the answer to one of them (a :class:`ValueError` when it is not among them). Presets bound
    to a resource group are listed only where that group is in view. A preset is
    ``allocatable`` when it fits the keypair's policy, the group's and the domain's caps
    (minus what their sessions hold or await) and the free amounts of a resource group.
    """
    user = keypair.user
    usage = {
        name: ScalingGroupUsage(
            using=store.reserved(db, access_key=keypair.access_key, scaling_group=name),
            remaining=store.resource_group_state(db, name).free,
        )
        for name in scaling_groups
    }
    visible = {scaling_group} if scaling_group else set(scaling_groups)
    rows = db.scalars(
        select(m.ResourcePreset)
        .where(or_(m.ResourcePreset.scaling_group_name.is_(None), m.ResourcePreset.scaling_group_name.in_(visible)))
        .order_by(m.ResourcePreset.name)
    ).all()
    domain = db.get(m.Domain, user.domain_name)
    return check_presets(
        [Preset(p.name, p.resource_slots, p.shared_memory) for p in rows],
        policy=store.policy_of(keypair.policy),
        keypair_using=store.reserved(db, access_key=keypair.access_key),
        group=Cap("group", group.name, group.total_resource_slots) if group is not None else None,
        group_using=store.reserved(db, group_id=group.id) if group is not None else None,
        domain=Cap("domain", domain.name, domain.total_resource_slots),
        domain_using=store.reserved(db, domain_name=domain.name),
        scaling_groups=usage,
        scaling_group=scaling_group,
    )
