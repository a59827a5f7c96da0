"""What every folder endpoint shares: the base handler, a folder's capacity and its JSON, name look-ups.

Helpers taking ``db`` run inside the request's transaction (:meth:`APIHandler.run_db`).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ... import storage
from ...db import admin, launch
from ...db import folders as folder_db
from ...db import models as m
from ..base import APIError, APIHandler

#: Where the transfer endpoints live, relative to the service's base URL (see ``api_transfer``).
TUS_PATH = "/folders/_/tus/upload"
DOWNLOAD_PATH = "/folders/_/download"
#: One folder's path in the routes: ``{name}`` is its name or id, as the handlers take it.
FOLDER_PATH = r"/folders/(?P<name>[^/]+)"


@dataclass(frozen=True)
class FolderRef:
    """What a file endpoint needs of a folder, read inside the transaction (rows detach after it)."""

    id: uuid.UUID
    host: str
    name: str
    permission: str
    via: str
    capacity: int | None
    cloneable: bool = False


def owner_limit(db: DB, user_id, cache: dict | None = None) -> int | None:
    """The owner's policy's folder size limit (cached per owner while one listing is built)."""
    if cache is not None and user_id in cache:
        return cache[user_id]
    owner = db.get(m.User, user_id)
    keypair = launch.main_keypair(db, owner) if owner is not None else None
    limit = keypair.policy.max_vfolder_size if keypair is not None and keypair.policy.max_vfolder_size else None
    if cache is not None:
        cache[user_id] = limit
    return limit


def folder_capacity(db: DB, folder: m.VFolder, cache: dict | None = None) -> int | None:
    """The folder's capacity in bytes: its own quota and its owner's policy limit, whichever is lower.

    Group folders have no owner policy, so only their own quota limits them. None is unlimited.
    """
    limits = [folder.quota] if folder.quota else []
    if folder.ownership_type == m.FolderOwnership.USER and folder.user_id is not None:
        limit = owner_limit(db, folder.user_id, cache)
        if limit:
            limits.append(limit)
    return min(limits) if limits else None


def folder_view(db: DB, access: folder_db.FolderAccess, cache: dict | None = None) -> dict[str, Any]:
    """One folder (an ORM row) as Backend.AI's ``GET /folders`` shows it."""
    f = access.folder
    owner = db.get(m.User, f.user_id) if f.user_id is not None else None
    group = db.get(m.Group, f.group_id) if f.group_id is not None else None
    return folder_json(
        f, access.permission, access.via, folder_capacity(db, f, cache), owner.email if owner is not None else None,
        group.name if group is not None else None,
    )  # fmt: skip


_COLUMNS = tuple(c.key for c in m.VFolder.__table__.columns)


def folder_json(
    f: Any, permission: str, via: str, capacity: int | None, owner_email: str | None, group_name: str | None
) -> dict[str, Any]:
    """The JSON of a folder: ``f`` is a :class:`~..db.models.VFolder` or its columns in a dict.

    Ids in hex, as Backend.AI does. ``cur_size`` (Backend.AI's name) is the size last measured
    (``usage_at``: when; None: not yet): a listing never walks directories, ``GET
    /folders/{name}/usage`` measures.
    """
    d = f if isinstance(f, dict) else {key: getattr(f, key) for key in _COLUMNS}
    name, kind, user_id, group_id = d["name"], d["ownership_type"].value, d["user_id"], d["group_id"]
    created, used, at = d["created_at"], d["last_used"], d["usage_at"]
    return {
        "id": d["id"].hex,
        "name": name,
        "host": d["host"],
        "usage_mode": d["usage_mode"],
        "permission": permission,
        "max_size": capacity,
        "quota": d["quota"],
        "cur_size": d["used_bytes"],
        # Measured over its capacity: where the storage does not enforce capacities (or a session
        # got round it), uploads are refused until the folder shrinks.
        "over_capacity": bool(capacity and d["used_bytes"] is not None and d["used_bytes"] > capacity),
        "file_count": d["file_count"],
        "usage_at": at.isoformat() if at else None,
        "created_at": created.isoformat() if created else None,
        "last_used": used.isoformat() if used else None,
        "is_owner": via == "owner",
        "ownership_type": kind,
        "type": kind,
        "via": via,
        "user": str(user_id) if user_id else None,
        "user_email": owner_email,
        "group": str(group_id) if group_id else None,
        "group_name": group_name,
        "creator": d["creator"],
        "cloneable": d["cloneable"],
        "status": "ready",
        "automount": name.startswith("."),
        "mount_path": f"{folder_db.MOUNT_ROOT}/{name}",
    }


def find_group(db: DB, user: m.User, ref: str) -> m.Group:
    """A group by id, or by name in the user's domain; NotFound (no existence leak) otherwise."""
    try:
        group = db.get(m.Group, uuid.UUID(str(ref)))
    except ValueError:
        group = db.scalar(select(m.Group).where(m.Group.name == str(ref), m.Group.domain_name == user.domain_name))
    if group is None or not (user.role == m.UserRole.SUPERADMIN or group.domain_name == user.domain_name):
        raise admin.NotFound(f"no group {str(ref)!r}")
    return group


def emails_of(db: DB, refs: list[Any]) -> list[str]:
    """E-mail addresses for invitees named by e-mail (Backend.AI's ``user_ids``), user id or user name."""
    out = []
    for ref in refs:
        if not isinstance(ref, str) or not ref.strip():
            raise admin.AdminError(f"invitees are named by e-mail address, user id or user name, not {ref!r}")
        ref = ref.strip()
        if "@" in ref:
            out.append(ref)
            continue
        try:
            user = db.get(m.User, uuid.UUID(ref))
        except ValueError:
            user = db.scalar(select(m.User).where(m.User.username == ref.lower()))
        if user is None:
            raise admin.NotFound(f"no user {ref!r}")
        out.append(user.email)
    return out


def as_list(refs: Any) -> list[Any]:
    """Users named one by one or in a list; anything else is refused by :func:`emails_of`."""
    return refs if isinstance(refs, list) else [refs]


class FolderHandler(APIHandler):
    """Shared plumbing: the caller's db user, a folder with a permission check, its directory."""

    def me(self, db: DB) -> m.User:
        user = db.get(m.User, self.identity.user_id)
        if user is None:  # pragma: no cover - authenticated users exist
            raise APIError(401, "your account no longer exists")
        return user

    def need(self, data: dict[str, Any], name: str, *aliases: str, kind: type | None = None) -> Any:
        """A required field (body or query); 400 naming it when missing or empty."""
        value = self.param(data, name, *aliases, kind=kind)
        if value is None or value == "" or value == []:
            raise APIError(400, f"{name!r} is required")
        return value

    async def folder(self, ref: str, needed: str) -> FolderRef:
        """The folder ``ref`` means to the caller, if they hold at least ``needed`` on it."""

        def look_up(db: DB) -> FolderRef:
            access = folder_db.require(folder_db.get_accessible(db, self.me(db), ref), needed)
            f = access.folder
            return FolderRef(f.id, f.host, f.name, access.permission, access.via, folder_capacity(db, f), f.cloneable)

        return await self.run_db(look_up)

    async def directory(self, ref: FolderRef) -> str:
        """The folder's directory, made first if the folder was created without one."""

        def ensure() -> str:
            if not self.store.exists(ref.host, ref.id):
                try:
                    self.store.create(ref.host, ref.id, capacity=ref.capacity)
                except storage.AlreadyExists:
                    pass  # made meanwhile by someone else
            return str(self.store.path(ref.host, ref.id))

        return await asyncio.to_thread(ensure)

    def service_url(self, path: str) -> str:
        """An absolute URL of this service (as the caller reached it) for transfer links."""
        prefix = "/" + self.manager.base_url.strip("/")
        prefix = "" if prefix == "/" else prefix
        return f"{self.request.protocol}://{self.request.host}{prefix}{path}"


async def delete_folder(handler: FolderHandler, ref: str) -> None:
    """Delete the row (the db checks ownership and ``wd``), then the directory.

    Rows first: a directory left behind by a failure is an orphan to clean up, whereas a row
    whose directory is gone would be a folder that lost its data.
    """

    def delete(db: DB) -> tuple[str, uuid.UUID]:
        deleted = folder_db.delete_folder(db, handler.me(db), ref)
        return deleted.host, deleted.id

    host, folder_id = await handler.run_db(delete)
    await asyncio.to_thread(handler.store.delete, host, folder_id)
