"""Folders (vfolders) in the database: names, storage hosts, ownership, sharing and what a session mounts.

Only the rows live here (F24–F32): the storage layer creates and removes the directories and
the HTTP layer maps these functions to Backend.AI's ``/folders`` API. Every function takes an
open SQLAlchemy session first, checks its input, and raises an :class:`~.admin.AdminError`
(400), :class:`~.admin.NotFound` (404), :class:`~.admin.Conflict` (409) or :class:`Forbidden`
(403) whose one-line message names the folder and the rule; the caller commits.

Decisions, where Backend.AI leaves room or where this project differs:

* Names: 1–64 characters after Unicode NFC normalisation; letters and digits of any script
  (users of the Korean console name folders in Korean; the directory on disk is named by the
  folder's id, so the name never reaches a file system), ``-``, ``_`` and ``.``; combining marks
  after another character (so that Devanagari or decomposed accents work). No white space, no
  ``/``, no other punctuation or symbols, no control or invisible format characters, not ``.`` or
  ``..``, not starting with ``-`` (it would read as an option to command-line tools). Names a
  session needs for itself (:data:`RESERVED_NAMES`, shell rc/profile files) are refused because
  the folder is mounted at ``/home/work/<name>``. ``.ssh`` stays allowed (F31).
* Storage hosts: a user may use the union of the hosts allowed by their keypair's resource
  policy, their domain and, for a group folder, the group (and the group's domain), as in
  Backend.AI. An empty union allows nothing.
* The keypair whose policy counts is the user's oldest active keypair (their main one): these
  functions run outside any signed request, so there is no "current" keypair.
* Dot-folders (automount, F30) cannot be group folders, cannot be shared by invitation and a
  shared folder cannot be renamed to one. Backend.AI's exception (a group ``.local`` holding
  one sub-folder per user) is *not* supported: it needs per-user sub-directories in the
  storage layer.
* Names are unique per owner only (the database enforces it). A user may therefore see two
  folders of one name (their own and a shared one, say); look-ups by name prefer their own,
  then a group's, then a shared one, and every folder is also reachable by its id.
* Group folders are visible to and mountable by members of *active* groups only. Admins of the
  group's domain (and superadmins) may manage (rename, delete, share) a group folder without
  being a member, but not mount it.
* Per-user permissions on a group folder (``vfolder_permissions``) override the folder's
  ``permission`` column for that member, and grant nothing to a non-member.
* A folder stays shared when its owner is deactivated (users are never deleted, F37): the data
  the others work with does not disappear with the account.
* Invitations go to existing, active users only (of any domain, as in Backend.AI).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from sqlalchemy import Dialect, and_, bindparam, func, or_, select, type_coerce, update
from sqlalchemy.orm import Session as DB
from sqlalchemy.types import NullType

from . import admin
from . import models as m
from .types import utcnow

Perm = Literal["ro", "rw", "wd"]
Via = Literal["owner", "group", "shared"]

MAX_NAME_LENGTH = 64
#: What a session puts at ``/home/work/<name>`` itself; a folder mounted there would hide it.
RESERVED_NAMES = frozenset({"id_container", ".jupyter", ".terminfo", ".tmux.conf"})
_RESERVED_PATTERNS = (re.compile(r"^\.[a-z0-9]+rc$"), re.compile(r"^\.[a-z0-9]+_profile$"))
USAGE_MODES = ("general", "data", "model")
MOUNT_ROOT = "/home/work"

_RANK = {"ro": 0, "rw": 1, "wd": 2}
#: Which folder a name means when several accessible folders carry it.
_PRECEDENCE: dict[str, int] = {"owner": 0, "group": 1, "shared": 2}
_ADMIN_ROLES = (m.UserRole.ADMIN, m.UserRole.SUPERADMIN)


class Forbidden(admin.AdminError):
    """The user may see the folder (or invitation) but not do this with it (HTTP 403)."""

    status = 403


@dataclass(frozen=True)
class FolderAccess:
    """One folder as one user sees it: what they may do with it and why they can see it."""

    folder: m.VFolder
    permission: Perm
    via: Via
    is_automount: bool

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def mount_path(self) -> str:
        return f"{MOUNT_ROOT}/{self.folder.name}"


# --- names, hosts, small helpers ------------------------------------------------------------


def check_folder_name(name: str) -> str:
    """Return the name in NFC form, or raise AdminError naming the rule it breaks.

    NFC first, so that a name typed with decomposed accents is the same folder as the composed
    one, and the length limit counts what a person sees.
    """
    if not isinstance(name, str):
        raise admin.AdminError(f"a folder name must be text, not {name!r}")
    if name and (name[0].isspace() or name[-1].isspace()):
        raise admin.AdminError(f"folder name {name!r} starts or ends with a space")
    if any(c.isspace() for c in name):
        raise admin.AdminError(f"folder name {name!r} contains a space: use '-' or '_' instead")
    name = unicodedata.normalize("NFC", name)
    if not name:
        raise admin.AdminError("a folder name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise admin.AdminError(f"folder name {name!r} has {len(name)} characters; the limit is {MAX_NAME_LENGTH}")
    if name in (".", ".."):
        raise admin.AdminError(f"{name!r} cannot be a folder name")
    if "/" in name or "\\" in name:
        raise admin.AdminError(f"folder name {name!r} contains a slash: folders cannot be nested")
    if name.startswith("-"):
        raise admin.AdminError(f"folder name {name!r} starts with '-'")
    for i, c in enumerate(name):
        category = unicodedata.category(c)
        if c in "-_." or category[0] in "LN" or (category[0] == "M" and i > 0):
            continue
        raise admin.AdminError(
            f"folder name {name!r} contains {c!r}: use letters, digits, '-', '_' or '.' (a leading '.' for automount)"
        )
    if name in RESERVED_NAMES or any(p.match(name) for p in _RESERVED_PATTERNS):
        raise admin.AdminError(f"folder name {name!r} is reserved: sessions use {MOUNT_ROOT}/{name} themselves")
    return name


def _perm(value: str | m.FolderPermission) -> m.FolderPermission:
    if isinstance(value, m.FolderPermission):
        return value
    try:
        return m.FolderPermission(value)
    except ValueError:
        raise admin.AdminError(f"invalid folder permission {value!r}: choose one of ro, rw, wd") from None


def _emails(emails: Iterable[str] | str, folder: m.VFolder, what: str) -> list[str]:
    if isinstance(emails, str):
        emails = [emails]
    out = list(dict.fromkeys(admin.check_email(e) for e in emails))
    if not out:
        raise admin.AdminError(f"name at least one e-mail address to {what} folder {folder.name!r}")
    return out


def _user_by_email(db: DB, email: str, folder: m.VFolder) -> m.User:
    user = db.scalar(select(m.User).where(m.User.email == email))
    if user is None:
        raise admin.NotFound(f"no user with e-mail {email!r} (folder {folder.name!r})")
    return user


def main_keypair(db: DB, user: m.User) -> m.KeyPair | None:
    """The user's oldest active keypair: the one whose resource policy governs their folders."""
    return db.scalar(
        select(m.KeyPair)
        .where(m.KeyPair.user_id == user.id, m.KeyPair.is_active.is_(True))
        .order_by(m.KeyPair.created_at, m.KeyPair.access_key)
        .limit(1)
    )


def allowed_hosts(db: DB, user: m.User, group: m.Group | None = None) -> set[str]:
    """Storage hosts the user may create a folder on: policy ∪ domain (∪ group for group folders).

    The domain is the group's for a group folder (a superadmin may create one in another
    domain), the user's otherwise. A user without an active keypair gets only the domain's
    (and group's) hosts.
    """
    hosts: set[str] = set()
    keypair = main_keypair(db, user)
    if keypair is not None:
        hosts.update(keypair.policy.allowed_vfolder_hosts or [])
    domain = db.get(m.Domain, group.domain_name if group is not None else user.domain_name)
    if domain is not None:
        hosts.update(domain.allowed_vfolder_hosts or [])
    if group is not None:
        hosts.update(group.allowed_vfolder_hosts or [])
    return hosts


def _is_admin_of(user: m.User, group: m.Group) -> bool:
    return user.role == m.UserRole.SUPERADMIN or (
        user.role == m.UserRole.ADMIN and user.domain_name == group.domain_name
    )


def _owner_taken(db: DB, folder_name: str, *, user_id: uuid.UUID | None, group_id: uuid.UUID | None) -> bool:
    query = select(m.VFolder.id).where(m.VFolder.name == folder_name)
    query = (
        query.where(m.VFolder.group_id == group_id)
        if group_id is not None
        else query.where(m.VFolder.user_id == user_id, m.VFolder.ownership_type == m.FolderOwnership.USER)
    )
    return db.scalar(query.limit(1)) is not None


def _is_shared(db: DB, folder: m.VFolder) -> bool:
    """Whether someone besides the owner has (or is invited to) this user folder."""
    shared = db.scalar(
        select(func.count()).select_from(m.VFolderPermission).where(m.VFolderPermission.vfolder_id == folder.id)
    )
    pending = db.scalar(
        select(func.count())
        .select_from(m.VFolderInvitation)
        .where(m.VFolderInvitation.vfolder_id == folder.id, m.VFolderInvitation.state == m.InvitationState.PENDING)
    )
    return bool(shared or pending)


# --- creating -------------------------------------------------------------------------------


def create_folder(
    db: DB,
    user: m.User,
    name: str,
    *,
    host: str = "local",
    group: m.Group | None = None,
    permission: str = "wd",
    usage_mode: str = "general",
    quota: int | None = None,
    cloneable: bool = False,
) -> m.VFolder:
    """Create the row of a user folder, or (admins only, F25) of a group folder.

    ``permission`` is what members get on a group folder; the owner of a user folder always has
    ``wd``, so there it is only stored. The caller creates the directory (named by the id).
    """
    name = check_folder_name(name)
    perm = _perm(permission)
    if usage_mode not in USAGE_MODES:
        raise admin.AdminError(
            f"invalid usage mode {usage_mode!r} for folder {name!r}: choose one of general, data, model"
        )
    if quota is not None and (isinstance(quota, bool) or not isinstance(quota, int) or quota <= 0):
        raise admin.AdminError(f"the quota of folder {name!r} must be a positive number of bytes, not {quota!r}")
    if not isinstance(host, str) or not host.strip():
        raise admin.AdminError(f"name a storage host for folder {name!r}")
    host = host.strip()
    keypair = main_keypair(db, user)
    policy = keypair.policy if keypair is not None else None
    if group is not None:
        if user.role not in _ADMIN_ROLES:
            raise Forbidden(f"cannot create group folder {name!r}: only admins create group folders")
        if not _is_admin_of(user, group):
            raise Forbidden(
                f"cannot create group folder {name!r}: group {group.name!r} is in domain {group.domain_name!r},"
                f" you administer {user.domain_name!r}"
            )
        if not group.is_active:
            raise admin.AdminError(f"cannot create group folder {name!r}: group {group.name!r} is inactive")
        if name.startswith("."):
            raise admin.AdminError(f"group folder {name!r} cannot start with '.': dot-folders (automount) are personal")
    hosts = allowed_hosts(db, user, group)
    if host not in hosts:
        allowed = ", ".join(sorted(hosts)) or "none"
        raise Forbidden(f"cannot create folder {name!r} on storage host {host!r}: not allowed (allowed: {allowed})")
    if policy is not None and policy.max_vfolder_size and quota is not None and quota > policy.max_vfolder_size:
        raise admin.AdminError(
            f"the quota of folder {name!r} ({quota} bytes) exceeds policy {policy.name!r}'s folder capacity"
            f" ({policy.max_vfolder_size} bytes)"
        )
    if group is None:
        if keypair is None:
            raise Forbidden(f"cannot create folder {name!r}: user {user.email!r} has no active keypair")
        if policy is not None and policy.max_vfolder_count:
            owned = db.scalar(
                select(func.count())
                .select_from(m.VFolder)
                .where(m.VFolder.ownership_type == m.FolderOwnership.USER, m.VFolder.user_id == user.id)
            )
            if owned >= policy.max_vfolder_count:
                raise admin.Conflict(
                    f"cannot create folder {name!r}: you own {owned} folder(s), the most policy {policy.name!r} allows"
                )
        if _owner_taken(db, name, user_id=user.id, group_id=None):
            raise admin.Conflict(f"you already have a folder named {name!r}")
        folder = m.VFolder(name=name, ownership_type=m.FolderOwnership.USER, user_id=user.id)
    else:
        if _owner_taken(db, name, user_id=None, group_id=group.id):
            raise admin.Conflict(f"group {group.name!r} already has a folder named {name!r}")
        folder = m.VFolder(name=name, ownership_type=m.FolderOwnership.GROUP, group_id=group.id)
    folder.host = host
    folder.creator = user.email
    folder.permission = perm
    folder.usage_mode = usage_mode
    folder.quota = quota
    folder.cloneable = bool(cloneable)
    db.add(folder)
    db.flush()
    return folder


# --- what a user can see --------------------------------------------------------------------


def _member_group_ids(user: m.User, *, active_only: bool = True):
    query = (
        select(m.memberships.c.group_id)
        .join(m.Group, m.Group.id == m.memberships.c.group_id)
        .where(m.memberships.c.user_id == user.id)
    )
    return query.where(m.Group.is_active.is_(True)) if active_only else query


def accessible_folders(db: DB, user: m.User) -> list[FolderAccess]:
    """Every folder the user may mount: own (wd), their active groups' and those shared with them.

    Sorted by name, then owner before group before shared (the order a name look-up prefers),
    then by id so that the order is stable.
    """
    out: list[FolderAccess] = []
    own = db.scalars(
        select(m.VFolder).where(m.VFolder.ownership_type == m.FolderOwnership.USER, m.VFolder.user_id == user.id)
    )
    out.extend(FolderAccess(f, "wd", "owner", f.is_automount) for f in own)
    overrides = {
        vid: perm
        for vid, perm in db.execute(
            select(m.VFolderPermission.vfolder_id, m.VFolderPermission.permission).where(
                m.VFolderPermission.user_id == user.id
            )
        )
    }
    group_folders = db.scalars(
        select(m.VFolder).where(
            m.VFolder.ownership_type == m.FolderOwnership.GROUP, m.VFolder.group_id.in_(_member_group_ids(user))
        )
    )
    for f in group_folders:
        perm = overrides.get(f.id, f.permission)
        out.append(FolderAccess(f, perm.value, "group", f.is_automount))
    shared = db.execute(
        select(m.VFolder, m.VFolderPermission.permission)
        .join(m.VFolderPermission, m.VFolderPermission.vfolder_id == m.VFolder.id)
        .where(
            m.VFolderPermission.user_id == user.id,
            m.VFolder.ownership_type == m.FolderOwnership.USER,
            m.VFolder.user_id != user.id,
        )
    )
    out.extend(FolderAccess(f, perm.value, "shared", f.is_automount) for f, perm in shared)
    out.sort(key=lambda a: (a.folder.name, _PRECEDENCE[a.via], str(a.folder.id)))
    return out


_V = m.VFolder
_FOLDER_COLUMNS = tuple(_V.__table__.columns)
#: The same columns without result processing: values as the database driver returns them.
_RAW_COLUMNS = tuple(type_coerce(c, NullType()).label(c.key) for c in _FOLDER_COLUMNS)
_QUOTA = [c.key for c in _FOLDER_COLUMNS].index("quota")
_NAME = [c.key for c in _FOLDER_COLUMNS].index("name")
_ID = [c.key for c in _FOLDER_COLUMNS].index("id")


class ListedFolder(NamedTuple):
    """One line of a folder listing: the folder's columns as the driver returns them, and the access.

    ``raw`` is a tuple in :class:`~.models.VFolder` column order, not converted (no UUID,
    datetime or enum objects made): :class:`RawFolderDecoder` converts one when needed. A
    listing's caller can then reuse what it built for an unchanged row (the tuple is the key)
    instead of converting a thousand rows per request. ``owner_limit`` is the owner's policy's
    folder size limit (user folders).
    """

    raw: tuple
    permission: Perm
    via: Via
    owner_email: str | None
    group_name: str | None
    owner_limit: int | None = None

    @property
    def capacity(self) -> int | None:
        """Bytes the folder may hold: its quota and its owner's policy limit, whichever is lower."""
        limits = [v for v in (self.raw[_QUOTA], self.owner_limit) if v]
        return min(limits) if limits else None


class RawFolderDecoder:
    """Converts :attr:`ListedFolder.raw` into {column: value} as a query of the model would give it."""

    def __init__(self, dialect: Dialect):
        self.keys = tuple(c.key for c in _FOLDER_COLUMNS)
        self.processors = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in _FOLDER_COLUMNS)

    def __call__(self, raw: Sequence) -> dict[str, object]:
        return {
            k: (p(v) if p is not None and v is not None else v)
            for k, p, v in zip(self.keys, self.processors, raw, strict=True)
        }


# Built once: a listing runs them on every request, and building (and hashing) a statement of
# twenty columns costs as much as running it.
_MEMBER_PERM = m.VFolderPermission.permission.label("member_perm")
_OWN = select(*_RAW_COLUMNS).where(
    _V.ownership_type == m.FolderOwnership.USER, _V.user_id == bindparam("user_id", type_=_V.user_id.type)
)
_GROUPED = (
    select(*_RAW_COLUMNS, _V.permission.label("folder_perm"), _MEMBER_PERM, m.Group.name.label("group_name"))
    .join(m.Group, m.Group.id == _V.group_id)
    .join(m.memberships, m.memberships.c.group_id == m.Group.id)
    .outerjoin(
        m.VFolderPermission,
        and_(m.VFolderPermission.vfolder_id == _V.id, m.VFolderPermission.user_id == m.memberships.c.user_id),
    )
    .where(
        _V.ownership_type == m.FolderOwnership.GROUP,
        m.Group.is_active.is_(True),
        m.memberships.c.user_id == bindparam("user_id", type_=_V.user_id.type),
    )
)
_SHARED = (
    select(*_RAW_COLUMNS, _MEMBER_PERM, _V.user_id.label("owner_id"), m.User.email.label("owner_email"))
    .join(m.VFolderPermission, m.VFolderPermission.vfolder_id == _V.id)
    .join(m.User, m.User.id == _V.user_id)
    .where(
        m.VFolderPermission.user_id == bindparam("user_id", type_=_V.user_id.type),
        _V.ownership_type == m.FolderOwnership.USER,
        _V.user_id != m.VFolderPermission.user_id,
    )
)
_N = len(_RAW_COLUMNS)


def folder_listing(db: DB, user: m.User) -> list[ListedFolder]:
    """What :func:`accessible_folders` finds, for a listing: four queries, whatever the count.

    Own, group and shared folders (with the owner's e-mail address and the group's name
    joined in), then the folder size limits of the owners' policies. Neither ORM objects nor
    converted values: for a thousand folders those cost more than all the queries, and
    looking up owners and groups one by one would cost a query per folder.
    """
    conn = db.connection()
    who = {"user_id": user.id}
    own = conn.execute(_OWN, who).all()
    grouped = conn.execute(_GROUPED, who).all()
    shared = conn.execute(_SHARED, who).all()
    limits = _owner_limits(db, {user.id} | {r.owner_id for r in shared})
    mine = limits.get(user.id)
    out = [ListedFolder(r, "wd", "owner", user.email, None, mine) for r in own]
    out += [ListedFolder(r[:_N], (r.member_perm or r.folder_perm).value, "group", None, r.group_name) for r in grouped]
    out += [
        ListedFolder(r[:_N], r.member_perm.value, "shared", r.owner_email, None, limits.get(r.owner_id)) for r in shared
    ]
    out.sort(key=_listing_order)
    return out


def _listing_order(e: ListedFolder) -> tuple[str, int, str]:
    return e.raw[_NAME], _PRECEDENCE[e.via], str(e.raw[_ID]).replace("-", "")


def capacity_of(db: DB, folder: m.VFolder) -> int | None:
    """Bytes the folder may hold: its own quota and (user folders) its owner's policy's folder
    capacity, whichever is lower; None is unlimited."""
    limits = [folder.quota] if folder.quota else []
    if folder.ownership_type == m.FolderOwnership.USER and folder.user_id is not None:
        owner = db.get(m.User, folder.user_id)
        keypair = main_keypair(db, owner) if owner is not None else None
        if keypair is not None and keypair.policy.max_vfolder_size:
            limits.append(keypair.policy.max_vfolder_size)
    return min(limits) if limits else None


def record_usage(db: DB, folder_id: uuid.UUID, used_bytes: int, file_count: int, at: dt.datetime | None = None) -> None:
    """Keep a size measured at ``at`` (when the walk began; default now) for listings.

    A measurement older than the one kept is dropped, so that a slow walk finishing late does
    not hide a newer one; a folder deleted meanwhile is skipped.
    """
    at = at or utcnow()
    db.execute(
        update(m.VFolder)
        .where(m.VFolder.id == folder_id, or_(m.VFolder.usage_at.is_(None), m.VFolder.usage_at <= at))
        .values(used_bytes=used_bytes, file_count=file_count, usage_at=at)
    )


def mark_usage_stale(db: DB, folder_id: uuid.UUID | str) -> None:
    """Files were written or removed: the kept size is measured again after the next listing.

    Cheaper than walking the folder on every upload; a listing hands the stalest folders
    (those never measured first) to the background refresh.
    """
    folder_id = folder_id if isinstance(folder_id, uuid.UUID) else uuid.UUID(str(folder_id))
    db.execute(update(m.VFolder).where(m.VFolder.id == folder_id).values(usage_at=None))


def _owner_limits(db: DB, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, int | None]:
    """Each user's main keypair's (see :func:`main_keypair`) policy folder size limit, in one query."""
    rows = db.execute(
        select(m.KeyPair.user_id, m.KeyPairResourcePolicy.max_vfolder_size)
        .join(m.KeyPairResourcePolicy, m.KeyPairResourcePolicy.name == m.KeyPair.resource_policy)
        .where(m.KeyPair.user_id.in_(list(user_ids)), m.KeyPair.is_active.is_(True))
        .order_by(m.KeyPair.user_id, m.KeyPair.created_at, m.KeyPair.access_key)
    )
    out: dict[uuid.UUID, int | None] = {}
    for user_id, limit in rows:
        out.setdefault(user_id, limit or None)
    return out


def _as_id(ref: m.VFolder | uuid.UUID | str) -> uuid.UUID | None:
    if isinstance(ref, m.VFolder):
        return ref.id
    if isinstance(ref, uuid.UUID):
        return ref
    try:
        return uuid.UUID(ref)
    except (TypeError, ValueError, AttributeError):
        return None


def _label(ref: m.VFolder | uuid.UUID | str) -> str:
    return ref.name if isinstance(ref, m.VFolder) else str(ref)


def _pick(entries: Sequence[FolderAccess], ref: m.VFolder | uuid.UUID | str, order: Sequence[str]) -> FolderAccess:
    """The entry ``ref`` means: an id first, then a name, preferring vias in ``order``."""
    folder_id = _as_id(ref)
    if folder_id is not None:
        for entry in entries:
            if entry.folder.id == folder_id:
                return entry
    if isinstance(ref, str):
        name = unicodedata.normalize("NFC", ref)
        matches = [e for e in entries if e.folder.name == name]
        if matches:
            best = min(order.index(e.via) for e in matches)
            matches = [e for e in matches if order.index(e.via) == best]
            if len(matches) > 1:
                raise admin.AdminError(
                    f"folder name {name!r} is ambiguous: {len(matches)} {matches[0].via} folders have it; use its id"
                )
            return matches[0]
    raise admin.NotFound(f"no folder {_label(ref)!r} that you can access")


def get_accessible(db: DB, user: m.User, name_or_id: m.VFolder | uuid.UUID | str) -> FolderAccess:
    """One folder the user can see, by id (a UUID or its string) or by name (own, then group, then shared)."""
    return _pick(accessible_folders(db, user), name_or_id, ("owner", "group", "shared"))


def require(access: FolderAccess, needed: Perm) -> FolderAccess:
    """Raise Forbidden unless the access grants at least ``needed`` (ro < rw < wd)."""
    if needed not in _RANK:
        raise admin.AdminError(f"invalid folder permission {needed!r}: choose one of ro, rw, wd")
    if _RANK[access.permission] < _RANK[needed]:
        raise Forbidden(f"you need {needed} permission on folder {access.folder.name!r}; you have {access.permission}")
    return access


# --- managing: rename, delete ---------------------------------------------------------------


def _managed(db: DB, user: m.User, ref: m.VFolder | uuid.UUID | str) -> tuple[m.VFolder, FolderAccess | None]:
    """A folder the user can see, or (for admins) a group folder of a group they administer.

    Admins manage their domain's group folders without being members; the access is None then.
    """
    try:
        access = get_accessible(db, user, ref)
        return access.folder, access
    except admin.NotFound:
        if user.role not in _ADMIN_ROLES:
            raise
    folder_id = _as_id(ref)
    query = select(m.VFolder).join(m.Group, m.Group.id == m.VFolder.group_id)
    query = query.where(m.VFolder.ownership_type == m.FolderOwnership.GROUP)
    if user.role != m.UserRole.SUPERADMIN:
        query = query.where(m.Group.domain_name == user.domain_name)
    if folder_id is not None:
        found = db.scalars(query.where(m.VFolder.id == folder_id)).all()
        if found:
            return found[0], None
    if isinstance(ref, str):
        found = db.scalars(query.where(m.VFolder.name == unicodedata.normalize("NFC", ref))).all()
        if len(found) > 1:
            raise admin.AdminError(f"folder name {ref!r} is ambiguous: {len(found)} group folders have it; use its id")
        if found:
            return found[0], None
    raise admin.NotFound(f"no folder {_label(ref)!r} that you can access")


def _check_manage(db: DB, user: m.User, folder: m.VFolder, access: FolderAccess | None, action: str) -> None:
    """Owners manage their folders, admins of the group's domain its group folders; with wd."""
    if access is not None:
        require(access, "wd")
        if access.via == "shared":
            raise Forbidden(f"only the owner of folder {folder.name!r} can {action} it; you can leave it instead")
    if folder.ownership_type == m.FolderOwnership.GROUP:
        group = db.get(m.Group, folder.group_id)
        if not _is_admin_of(user, group):
            raise Forbidden(
                f"only admins of domain {group.domain_name!r} can {action} folder {folder.name!r} of group {group.name!r}"
            )


def rename_folder(db: DB, user: m.User, folder_name_or_id: m.VFolder | uuid.UUID | str, new_name: str) -> m.VFolder:
    """Rename a folder (F27); the mount path of sessions started afterwards changes with it."""
    folder, access = _managed(db, user, folder_name_or_id)
    _check_manage(db, user, folder, access, "rename")
    new_name = check_folder_name(new_name)
    if new_name == folder.name:
        return folder
    if new_name.startswith("."):
        if folder.ownership_type == m.FolderOwnership.GROUP:
            raise admin.AdminError(
                f"group folder {folder.name!r} cannot be renamed to {new_name!r}: dot-folders (automount) are personal"
            )
        if _is_shared(db, folder):
            raise admin.AdminError(
                f"folder {folder.name!r} is shared and cannot be renamed to {new_name!r}: dot-folders are not shared"
            )
    if _owner_taken(db, new_name, user_id=folder.user_id, group_id=folder.group_id):
        owner = "you already have" if folder.user_id == user.id else "its owner already has"
        if folder.ownership_type == m.FolderOwnership.GROUP:
            owner = f"group {db.get(m.Group, folder.group_id).name!r} already has"
        raise admin.Conflict(f"cannot rename folder {folder.name!r}: {owner} a folder named {new_name!r}")
    folder.name = new_name
    db.flush()
    return folder


def set_folder_quota(
    db: DB, user: m.User, folder_name_or_id: m.VFolder | uuid.UUID | str, quota: int | None
) -> m.VFolder:
    """Change a folder's own quota (bytes; None or 0: none, only the owner's policy's capacity holds).

    Who may rename the folder may do this. A user folder's quota cannot exceed its owner's
    policy's folder capacity (as at creation). The caller sets the new capacity on the storage.
    """
    folder, access = _managed(db, user, folder_name_or_id)
    _check_manage(db, user, folder, access, "change the quota of")
    if quota is not None and (isinstance(quota, bool) or not isinstance(quota, int) or quota < 0):
        raise admin.AdminError(f"the quota of folder {folder.name!r} must be a number of bytes, not {quota!r}")
    quota = quota or None
    if quota is not None and folder.ownership_type == m.FolderOwnership.USER:
        owner = db.get(m.User, folder.user_id)
        keypair = main_keypair(db, owner) if owner is not None else None
        policy = keypair.policy if keypair is not None else None
        if policy is not None and policy.max_vfolder_size and quota > policy.max_vfolder_size:
            raise admin.AdminError(
                f"the quota of folder {folder.name!r} ({quota} bytes) exceeds policy {policy.name!r}'s folder capacity"
                f" ({policy.max_vfolder_size} bytes)"
            )
    folder.quota = quota
    db.flush()
    return folder


#: A session in these statuses has (or is about to have) its folders mounted.
LIVE_STATUSES = tuple(s for s in m.SessionStatus if s not in m.FINISHED_SESSION_STATUSES)


@dataclass(frozen=True)
class MountingSession:
    name: str
    status: str
    user_id: uuid.UUID
    username: str


def live_sessions_mounting(db: DB, folder: m.VFolder) -> list[MountingSession]:
    """The live sessions (PENDING to TERMINATING) that mount ``folder``, oldest first.

    A session's chosen folders are in its ``mounts`` (by id; rows written before ids were
    recorded, by name). Automounted dot-folders are not recorded: any live session of the
    owner counts, as a session still queued mounts them when it starts.
    """
    if folder.ownership_type == m.FolderOwnership.GROUP:
        users = list(db.scalars(select(m.memberships.c.user_id).where(m.memberships.c.group_id == folder.group_id)))
    else:
        shared = select(m.VFolderPermission.user_id).where(m.VFolderPermission.vfolder_id == folder.id)
        users = [folder.user_id, *db.scalars(shared)]
    rows = db.execute(
        select(m.Session.name, m.Session.status, m.Session.user_id, m.Session.mounts, m.User.username)
        .join(m.User, m.User.id == m.Session.user_id)
        .where(m.Session.status.in_(LIVE_STATUSES), m.Session.user_id.in_(users))
        .order_by(m.Session.created_at, m.Session.id)
    )
    fid = str(folder.id)
    out = []
    for name, status, user_id, mounts, username in rows:
        automount = folder.is_automount and user_id == folder.user_id
        chosen = any(
            (mount.get("id") == fid) if mount.get("id") else mount.get("folder") == folder.name
            for mount in mounts or []
            if isinstance(mount, dict)
        )
        if automount or chosen:
            out.append(MountingSession(name, status.value, user_id, username))
    return out


def _describe_sessions(sessions: list[MountingSession], user: m.User) -> str:
    """The caller's sessions by name; other users' by whose they are (their names are theirs)."""
    own = [f"{s.name!r} ({s.status})" for s in sessions if s.user_id == user.id]
    others = sorted({s.username for s in sessions if s.user_id != user.id})
    parts = []
    if own:
        parts.append(("your live session " if len(own) == 1 else "your live sessions ") + ", ".join(own))
    if others:
        count = len(sessions) - len(own)
        parts.append(f"{count} live session{'s' if count > 1 else ''} of {', '.join(others)}")
    return " and ".join(parts)


def delete_folder(db: DB, user: m.User, name_or_id: m.VFolder | uuid.UUID | str) -> m.VFolder:
    """Delete a folder's row (F28) and, through the foreign keys, its shares and invitations.

    Refused (Conflict, 409) while a live session mounts it: its container would go on writing
    into a directory that is being removed, and the user would lose what it writes.

    Returns the deleted row, its columns still readable (id, host, name...), so that the caller
    can remove the directory after committing.
    """
    folder, access = _managed(db, user, name_or_id)
    _check_manage(db, user, folder, access, "delete")
    mounted = live_sessions_mounting(db, folder)
    if mounted:
        raise admin.Conflict(
            f"folder {folder.name!r} is mounted in {_describe_sessions(mounted, user)}: terminate them before"
            " deleting it"
        )
    # Load every column now: the caller reads them after the row is gone.
    for column in m.VFolder.__table__.columns:
        getattr(folder, column.key)
    db.delete(folder)
    db.flush()
    return folder


# --- invitations (F32) ----------------------------------------------------------------------


def invite(
    db: DB,
    inviter: m.User,
    folder: m.VFolder | uuid.UUID | str,
    emails: Iterable[str] | str,
    permission: str = "ro",
) -> list[m.VFolderInvitation]:
    """Invite existing, active users to one of the inviter's own user folders.

    All addresses are checked before any invitation is made, so that a typo invites nobody.
    """
    access = get_accessible(db, inviter, folder)
    f = access.folder
    if f.ownership_type == m.FolderOwnership.GROUP:
        raise admin.AdminError(f"folder {f.name!r} is a group folder: admins share it with members instead")
    if access.via != "owner":
        raise Forbidden(f"only the owner of folder {f.name!r} can invite others to it")
    if f.is_automount:
        raise admin.AdminError(f"folder {f.name!r} cannot be shared: dot-folders (automount) are personal")
    perm = _perm(permission)
    invitees = []
    for email in _emails(emails, f, "invite to"):
        if email == inviter.email:
            raise admin.AdminError(f"you cannot invite yourself to folder {f.name!r}")
        invitee = _user_by_email(db, email, f)
        if not invitee.is_active:
            raise admin.AdminError(f"user {email!r} is not active and cannot be invited to folder {f.name!r}")
        if db.get(m.VFolderPermission, (f.id, invitee.id)) is not None:
            raise admin.Conflict(f"folder {f.name!r} is already shared with {email!r}")
        pending = db.scalar(
            select(m.VFolderInvitation.id).where(
                m.VFolderInvitation.vfolder_id == f.id,
                m.VFolderInvitation.invitee == email,
                m.VFolderInvitation.state == m.InvitationState.PENDING,
            )
        )
        if pending is not None:
            raise admin.Conflict(f"{email!r} already has a pending invitation to folder {f.name!r}")
        invitees.append(email)
    invitations = [
        m.VFolderInvitation(vfolder_id=f.id, inviter=inviter.email, invitee=email, permission=perm)
        for email in invitees
    ]
    db.add_all(invitations)
    db.flush()
    return invitations


def list_invitations(db: DB, user: m.User) -> list[m.VFolderInvitation]:
    """Pending invitations to the user, oldest first."""
    return list(
        db.scalars(
            select(m.VFolderInvitation)
            .where(m.VFolderInvitation.invitee == user.email, m.VFolderInvitation.state == m.InvitationState.PENDING)
            .order_by(m.VFolderInvitation.created_at, m.VFolderInvitation.id)
        )
    )


def sent_invitations(db: DB, user: m.User) -> list[m.VFolderInvitation]:
    """Pending invitations the user sent (so that they can cancel them), oldest first."""
    return list(
        db.scalars(
            select(m.VFolderInvitation)
            .where(m.VFolderInvitation.inviter == user.email, m.VFolderInvitation.state == m.InvitationState.PENDING)
            .order_by(m.VFolderInvitation.created_at, m.VFolderInvitation.id)
        )
    )


def _invitation(db: DB, user: m.User, invitation_id: uuid.UUID | str) -> tuple[m.VFolderInvitation, m.VFolder]:
    """The invitation, if the user sent or received it (others get NotFound: no existence leak)."""
    inv_id = _as_id(invitation_id)
    inv = db.get(m.VFolderInvitation, inv_id) if inv_id is not None else None
    if inv is None or user.email not in (inv.inviter, inv.invitee):
        raise admin.NotFound(f"no invitation {str(invitation_id)!r}")
    folder = db.get(m.VFolder, inv.vfolder_id)
    if inv.state != m.InvitationState.PENDING:
        raise admin.AdminError(f"the invitation to folder {folder.name!r} is already {inv.state.value}")
    return inv, folder


def accept_invitation(db: DB, user: m.User, invitation_id: uuid.UUID | str) -> m.VFolderPermission:
    """The invitee accepts: the folder becomes shared with them at the invitation's permission."""
    inv, folder = _invitation(db, user, invitation_id)
    if inv.invitee != user.email:
        raise Forbidden(f"only {inv.invitee!r} can accept the invitation to folder {folder.name!r}")
    if folder.ownership_type != m.FolderOwnership.USER or folder.user_id == user.id:
        raise admin.AdminError(
            f"the invitation to folder {folder.name!r} cannot be accepted: it is not another's folder"
        )
    row = db.get(m.VFolderPermission, (folder.id, user.id))
    if row is None:
        row = m.VFolderPermission(vfolder_id=folder.id, user_id=user.id, permission=inv.permission)
        db.add(row)
    else:
        row.permission = inv.permission
    inv.state = m.InvitationState.ACCEPTED
    db.flush()
    return row


def reject_invitation(db: DB, user: m.User, invitation_id: uuid.UUID | str) -> m.VFolderInvitation:
    """The invitee rejects it (state ``rejected``) or the inviter takes it back (``canceled``)."""
    inv, _ = _invitation(db, user, invitation_id)
    inv.state = m.InvitationState.REJECTED if inv.invitee == user.email else m.InvitationState.CANCELED
    db.flush()
    return inv


def leave_folder(db: DB, user: m.User, folder: m.VFolder | uuid.UUID | str) -> m.VFolder:
    """Stop using a folder shared with the user; a name means a shared folder first here."""
    access = _pick(accessible_folders(db, user), folder, ("shared", "owner", "group"))
    f = access.folder
    if access.via == "owner":
        raise admin.AdminError(f"you own folder {f.name!r} and cannot leave it; delete it instead")
    if access.via == "group":
        group = db.get(m.Group, f.group_id)
        raise admin.AdminError(f"folder {f.name!r} belongs to group {group.name!r}; it goes when you leave the group")
    row = db.get(m.VFolderPermission, (f.id, user.id))
    db.delete(row)
    db.flush()
    return f


# --- the owner's view and control of their shares ---------------------------------------------


def _owned_user_folder(db: DB, owner: m.User, folder: m.VFolder | uuid.UUID | str, action: str) -> m.VFolder:
    access = get_accessible(db, owner, folder)
    f = access.folder
    if f.ownership_type == m.FolderOwnership.GROUP:
        raise admin.AdminError(f"folder {f.name!r} is a group folder: admins share it with members instead")
    if access.via != "owner":
        raise Forbidden(f"only the owner of folder {f.name!r} can {action}")
    return f


@dataclass(frozen=True)
class Share:
    """One user a user folder is shared with (an accepted invitation), as its owner sees it."""

    folder: m.VFolder
    user: m.User
    permission: Perm


def folder_shares(db: DB, owner: m.User, folder: m.VFolder | uuid.UUID | str | None = None) -> list[Share]:
    """Who the owner's user folders (or one of them) are shared with, by folder name then e-mail."""
    query = (
        select(m.VFolder, m.User, m.VFolderPermission.permission)
        .join(m.VFolderPermission, m.VFolderPermission.vfolder_id == m.VFolder.id)
        .join(m.User, m.User.id == m.VFolderPermission.user_id)
        .where(m.VFolder.ownership_type == m.FolderOwnership.USER, m.VFolder.user_id == owner.id)
        .order_by(m.VFolder.name, m.User.email)
    )
    if folder is not None:
        query = query.where(m.VFolder.id == _owned_user_folder(db, owner, folder, "list its shares").id)
    return [Share(f, u, perm.value) for f, u, perm in db.execute(query)]


def change_shares(
    db: DB,
    owner: m.User,
    folder: m.VFolder | uuid.UUID | str,
    emails: Iterable[str] | str,
    permission: str | None,
) -> list[str]:
    """The owner changes the permission of users their folder is shared with, or revokes it (``None``).

    Only users who accepted an invitation have a share to change; anyone else is refused (an
    invitation is how a share starts, so that nobody gets a folder they did not accept). All
    addresses are checked before anything changes. Returns the addresses, in the order given.
    """
    action = "revoke its shares" if permission is None else "change its shares"
    f = _owned_user_folder(db, owner, folder, action)
    perm = _perm(permission) if permission is not None else None
    addresses = _emails(emails, f, "change the share of")
    rows = []
    for email in addresses:
        user = _user_by_email(db, email, f)
        row = db.get(m.VFolderPermission, (f.id, user.id))
        if row is None:
            raise admin.NotFound(f"folder {f.name!r} is not shared with {email!r}")
        rows.append(row)
    for row in rows:
        if perm is None:
            db.delete(row)
        else:
            row.permission = perm
    db.flush()
    return addresses


def is_group_folder(db: DB, user: m.User, folder: m.VFolder | uuid.UUID | str) -> bool:
    """Whether ``folder`` means a group folder to this user (one they can see or administer)."""
    f, _ = _managed(db, user, folder)
    return f.ownership_type == m.FolderOwnership.GROUP


def can_use(db: DB, user_ref: uuid.UUID | str, folder_id: uuid.UUID | str, needed: Perm) -> str | None:
    """Why the user (an id, else a user name) may no longer do what a transfer URL allows, or ``None``.

    Transfer URLs are issued for a while (an hour by default); a share revoked or lowered to
    ``ro`` meanwhile, a deactivated account or a deleted folder must end them at once, so every
    request made with one asks again.
    """
    user_id = _as_id(user_ref)
    if user_id is not None:
        user = db.get(m.User, user_id)
    else:
        user = db.scalar(select(m.User).where(m.User.username == str(user_ref)))
    if user is None or not user.is_active:
        return "the account this URL was issued to is no longer active"
    try:
        access = get_accessible(db, user, _as_id(folder_id) or uuid.UUID(int=0))
    except admin.NotFound:
        return "the folder no longer exists or is no longer shared with the account this URL was issued to"
    if _RANK[access.permission] < _RANK[needed]:
        return (
            f"the account this URL was issued to now has only {access.permission} permission on folder {access.name!r}"
        )
    return None


# --- per-user permissions on group folders --------------------------------------------------


def _managed_group_folder(
    db: DB, admin_user: m.User, folder: m.VFolder | uuid.UUID | str, action: str
) -> tuple[m.VFolder, m.Group]:
    f, _ = _managed(db, admin_user, folder)
    if f.ownership_type != m.FolderOwnership.GROUP:
        raise admin.AdminError(f"folder {f.name!r} is not a group folder: its owner invites users to it")
    group = db.get(m.Group, f.group_id)
    if not _is_admin_of(admin_user, group):
        raise Forbidden(f"only admins of domain {group.domain_name!r} can {action} group folder {f.name!r}")
    return f, group


def share_group_folder(
    db: DB,
    admin_user: m.User,
    folder: m.VFolder | uuid.UUID | str,
    emails: Iterable[str] | str,
    permission: str,
) -> list[m.VFolderPermission]:
    """Give members of the folder's group their own permission on it, overriding the folder's."""
    f, group = _managed_group_folder(db, admin_user, folder, "share")
    perm = _perm(permission)
    members = {u.id for u in group.users}
    users = []
    for email in _emails(emails, f, "share"):
        user = _user_by_email(db, email, f)
        if user.id not in members:
            raise admin.AdminError(f"user {email!r} is not a member of group {group.name!r} of folder {f.name!r}")
        users.append(user)
    rows = []
    for user in users:
        row = db.get(m.VFolderPermission, (f.id, user.id))
        if row is None:
            row = m.VFolderPermission(vfolder_id=f.id, user_id=user.id, permission=perm)
            db.add(row)
        row.permission = perm
        rows.append(row)
    db.flush()
    return rows


def unshare_group_folder(
    db: DB, admin_user: m.User, folder: m.VFolder | uuid.UUID | str, emails: Iterable[str] | str
) -> list[str]:
    """Drop members' own permissions on a group folder (they fall back to the folder's)."""
    f, _ = _managed_group_folder(db, admin_user, folder, "unshare")
    rows = []
    addresses = _emails(emails, f, "unshare")
    for email in addresses:
        user = _user_by_email(db, email, f)
        row = db.get(m.VFolderPermission, (f.id, user.id))
        if row is None:
            raise admin.NotFound(f"folder {f.name!r} has no permission of its own for {email!r}")
        rows.append(row)
    for row in rows:
        db.delete(row)
    db.flush()
    return addresses


# --- mounting -------------------------------------------------------------------------------


def _not_mountable(db: DB, user: m.User, ref: m.VFolder | uuid.UUID | str) -> Forbidden | None:
    """Why a folder the user knows of cannot be mounted, when there is a better answer than 404."""
    folder_id = _as_id(ref)
    query = (
        select(m.VFolder, m.Group)
        .join(m.Group, m.Group.id == m.VFolder.group_id)
        .where(m.VFolder.ownership_type == m.FolderOwnership.GROUP)
    )
    if folder_id is not None:
        query = query.where(m.VFolder.id == folder_id)
    else:
        query = query.where(m.VFolder.name == unicodedata.normalize("NFC", str(ref)))
    member_of = set(db.scalars(_member_group_ids(user, active_only=False)))
    for f, group in db.execute(query):
        if group.id in member_of and not group.is_active:
            return Forbidden(f"cannot mount folder {f.name!r}: its group {group.name!r} is inactive")
        if group.id not in member_of and _is_admin_of(user, group):
            return Forbidden(f"cannot mount folder {f.name!r}: only members of group {group.name!r} can")
    return None


def mountable(
    db: DB,
    user: m.User,
    requested_names: Iterable[m.VFolder | uuid.UUID | str],
    *,
    group: m.Group | None = None,
) -> tuple[list[FolderAccess], list[FolderAccess]]:
    """What a new session mounts: the chosen folders, and every other accessible dot-folder (F30).

    Names or ids; a folder asked for twice is mounted once; two folders of one name cannot be
    mounted together (both would be ``/home/work/<name>``). A dot-folder that was chosen is not
    repeated in the automount list. With ``group`` (the session's group), group folders of other
    groups are refused, as Backend.AI does.
    """
    entries = accessible_folders(db, user)
    chosen: list[FolderAccess] = []
    for ref in requested_names:
        try:
            access = _pick(entries, ref, ("owner", "group", "shared"))
        except admin.NotFound:
            raise _not_mountable(db, user, ref) or admin.NotFound(
                f"cannot mount folder {_label(ref)!r}: no such folder that you can access"
            ) from None
        if any(c.folder.id == access.folder.id for c in chosen):
            continue
        if any(c.folder.name == access.folder.name for c in chosen):
            raise admin.AdminError(
                f"cannot mount two folders named {access.folder.name!r}: both would be {access.mount_path}"
            )
        f = access.folder
        if group is not None and f.ownership_type == m.FolderOwnership.GROUP and f.group_id != group.id:
            other = db.get(m.Group, f.group_id)
            raise Forbidden(
                f"cannot mount folder {f.name!r} of group {other.name!r} in a session of group {group.name!r}"
            )
        chosen.append(access)
    taken = {c.folder.name for c in chosen}
    automount: list[FolderAccess] = []
    for entry in entries:
        f = entry.folder
        if not entry.is_automount or f.name in taken:
            continue
        if group is not None and f.ownership_type == m.FolderOwnership.GROUP and f.group_id != group.id:
            continue
        taken.add(f.name)
        automount.append(entry)
    return chosen, automount
