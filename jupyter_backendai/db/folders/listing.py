"""Folder listings built without ORM objects, each folder's capacity, and the kept usage."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import Dialect, and_, bindparam, or_, select, type_coerce, update
from sqlalchemy.orm import Session as DB
from sqlalchemy.types import NullType

from .. import models as m
from ..launch import KEYPAIR_ORDER, main_keypair
from ..types import utcnow
from .access import PRECEDENCE, Via
from .names import Perm

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
    return e.raw[_NAME], PRECEDENCE[e.via], str(e.raw[_ID]).replace("-", "")


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
        .order_by(m.KeyPair.user_id, *KEYPAIR_ORDER)
    )
    out: dict[uuid.UUID, int | None] = {}
    for user_id, limit in rows:
        out.setdefault(user_id, limit or None)
    return out
