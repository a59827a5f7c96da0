"""Backend.AI's ``/folders`` API (F24–F32): folders, their files, invitations and sharing.

Paths and answers follow Backend.AI's manager so that its client and SDK work unchanged; the
rules (names, hosts, who may do what) live in :mod:`jupyter_backendai.db.folders` and the file
operations (no ``..``, no symbolic link followed) in :mod:`jupyter_backendai.storage`. This
module only maps one to the other, and checks the permission each endpoint needs:

* ``ro`` to read (list, usage, download),
* ``rw`` to write (mkdir, upload, rename or move a file): a read-only share must not change
  anything,
* ``wd`` to delete files, and ownership (or administration of the group) with ``wd`` to
  rename or delete the folder itself.

``{name}`` in a path is a folder name or its id (hex or dashed UUID); tornado hands us the
URL-decoded text, so names in any script work. Backend.AI's client sends a JSON body even on
GET and DELETE; query arguments are accepted too (:meth:`APIHandler.param`).

A folder's directory is made when the folder is created here, and lazily (like the spawner
does) when a folder created elsewhere (the CLI, the db layer) is first used for files.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import json
import logging
import stat as stat_module
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from .. import storage
from ..db import admin, launch
from ..db import folders as folder_db
from ..db import models as m
from ..db.types import utcnow
from ..storage import errors as storage_errors
from ..storage.clone import copy_folder
from . import api_transfer, transfer_tokens
from .base import APIError, APIHandler

log = logging.getLogger(__name__)

#: Where the transfer endpoints live, relative to the service's base URL (see ``api_transfer``).
TUS_PATH = "/folders/_/tus/upload"
DOWNLOAD_PATH = "/folders/_/download"


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


# --- helpers that run inside a transaction ----------------------------------------------------


def _owner_limit(db: DB, user_id, cache: dict | None = None) -> int | None:
    """The owner's policy's folder size limit (cached per owner while one listing is built)."""
    if cache is not None and user_id in cache:
        return cache[user_id]
    owner = db.get(m.User, user_id)
    keypair = launch.main_keypair(db, owner) if owner is not None else None
    limit = keypair.policy.max_vfolder_size if keypair is not None and keypair.policy.max_vfolder_size else None
    if cache is not None:
        cache[user_id] = limit
    return limit


def _capacity(db: DB, folder: m.VFolder, cache: dict | None = None) -> int | None:
    """The folder's capacity in bytes: its own quota and its owner's policy limit, whichever is lower.

    Group folders have no owner policy, so only their own quota limits them. None is unlimited.
    """
    limits = [folder.quota] if folder.quota else []
    if folder.ownership_type == m.FolderOwnership.USER and folder.user_id is not None:
        limit = _owner_limit(db, folder.user_id, cache)
        if limit:
            limits.append(limit)
    return min(limits) if limits else None


def _view(db: DB, access: folder_db.FolderAccess, cache: dict | None = None) -> dict[str, Any]:
    """One folder (an ORM row) as Backend.AI's ``GET /folders`` shows it."""
    f = access.folder
    owner = db.get(m.User, f.user_id) if f.user_id is not None else None
    group = db.get(m.Group, f.group_id) if f.group_id is not None else None
    return _folder_json(
        f, access.permission, access.via, _capacity(db, f, cache), owner.email if owner is not None else None,
        group.name if group is not None else None,
    )  # fmt: skip


_COLUMNS = tuple(c.key for c in m.VFolder.__table__.columns)


def _folder_json(
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


class _ListedJSON:
    """The JSON text of listed folders, kept per exact row and access (least recently used out).

    A row that did not change since the last listing (same columns, same permission, owner
    and limits: the whole key) has the same JSON; only new or changed rows are converted and
    encoded. There is nothing to invalidate: a change makes a different key. About 1.5 kB an
    entry: 20,000 entries (twenty users with a thousand folders each) hold some 30 MB.
    """

    def __init__(self, size: int = 20_000):
        self.size = size
        # key → (JSON text, usage_at, id, host): what the size refresh needs, without decoding again
        self._texts: OrderedDict[tuple, tuple[str, dt.datetime | None, uuid.UUID, str]] = OrderedDict()
        self._lock = threading.Lock()

    def texts(
        self,
        entries: list[folder_db.ListedFolder],
        decode: folder_db.RawFolderDecoder,
        stale_before: dt.datetime | None = None,
        stale_max: int = 0,
    ) -> tuple[list[str], list[tuple[uuid.UUID, str]]]:
        """The entries' JSON, and up to ``stale_max`` (id, host) measured before ``stale_before``, stalest first."""
        out = []
        stale: list[tuple[dt.datetime, int, uuid.UUID, str]] = []
        oldest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        with self._lock:
            texts = self._texts
            for e in entries:
                key = (e.raw, e.permission, e.via, e.owner_email, e.group_name, e.owner_limit)
                kept = texts.get(key)
                if kept is None:
                    f = decode(e.raw)
                    view = _folder_json(f, e.permission, e.via, e.capacity, e.owner_email, e.group_name)
                    kept = texts[key] = (json.dumps(view), f["usage_at"], f["id"], f["host"])
                else:
                    texts.move_to_end(key)
                out.append(kept[0])
                if stale_before is not None and (kept[1] is None or kept[1] < stale_before):
                    stale.append((kept[1] or oldest, len(stale), kept[2], kept[3]))
            while len(texts) > self.size:
                texts.popitem(last=False)
        return out, [(fid, host) for _, _, fid, host in heapq.nsmallest(stale_max, stale)]


class _UsageRefresh:
    """Measures folders' sizes in the background: a batch at a time, at most one batch a second.

    A listing hands over the stalest folders it showed; while a batch runs or within a second
    of the last one, further listings add nothing (they will hand the still-stale ones over
    again). So a user who keeps listing a thousand folders costs the walks of eight of them
    and one small write a second, whatever the listing rate. A folder without a directory
    yet holds nothing; one on a host this store does not serve is left alone.
    """

    BATCH = 8
    INTERVAL = 1.0

    def __init__(self) -> None:
        self._busy = False
        self._last = -self.INTERVAL
        self._lock = threading.Lock()

    def start(self, manager: Any, folders: list[tuple[uuid.UUID, str]]) -> asyncio.Future | None:
        now = time.monotonic()
        with self._lock:
            if self._busy or not folders or now - self._last < self.INTERVAL:
                return None
            self._busy, self._last = True, now
        return asyncio.get_running_loop().run_in_executor(None, self._run, manager, folders)

    def _run(self, manager: Any, folders: list[tuple[uuid.UUID, str]]) -> None:
        try:
            measured = []
            for folder_id, host in folders:
                at = utcnow()
                try:
                    measured.append((folder_id, *storage.usage(manager.store.path(host, folder_id)), at))
                except storage.NotFound:
                    measured.append((folder_id, 0, 0, at))
                except storage.StorageError:
                    continue
            with manager.db_factory() as db:
                for folder_id, used, count, at in measured:
                    folder_db.record_usage(db, folder_id, used, count, at)
                db.commit()
        except Exception:  # noqa: BLE001 - a background measurement must not take anything down
            log.warning("measuring folder sizes failed", exc_info=True)
        finally:
            with self._lock:
                self._busy = False


_REFRESH = _UsageRefresh()
_LISTED = _ListedJSON()
_DECODERS: dict[str, folder_db.RawFolderDecoder] = {}


def _decoder(db: DB) -> folder_db.RawFolderDecoder:
    dialect = db.get_bind().dialect
    decoder = _DECODERS.get(dialect.name)
    if decoder is None:
        decoder = _DECODERS[dialect.name] = folder_db.RawFolderDecoder(dialect)
    return decoder


def _in_group(folder: dict[str, Any], group_name: str | None, wanted: str) -> bool:
    """``?group=``: the folders of that group (by id or name), and every user folder."""
    return folder["group_id"] is None or wanted in (str(folder["group_id"]), group_name)


def _invitation_view(db: DB, inv: m.VFolderInvitation) -> dict[str, Any]:
    folder = db.get(m.VFolder, inv.vfolder_id)
    return {
        "id": str(inv.id),
        "inviter": inv.inviter,
        "invitee": inv.invitee,
        "perm": inv.permission.value,
        "state": inv.state.value,
        "created_at": inv.created_at.isoformat() if inv.created_at else None,
        "modified_at": inv.modified_at.isoformat() if inv.modified_at else None,
        "vfolder_id": inv.vfolder_id.hex,
        "vfolder_name": folder.name if folder is not None else None,
    }


def _find_group(db: DB, user: m.User, ref: str) -> m.Group:
    """A group by id, or by name in the user's domain; NotFound (no existence leak) otherwise."""
    try:
        group = db.get(m.Group, uuid.UUID(str(ref)))
    except ValueError:
        group = db.scalar(select(m.Group).where(m.Group.name == str(ref), m.Group.domain_name == user.domain_name))
    if group is None or not (user.role == m.UserRole.SUPERADMIN or group.domain_name == user.domain_name):
        raise admin.NotFound(f"no group {str(ref)!r}")
    return group


def _emails_of(db: DB, refs: list[Any]) -> list[str]:
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


def _listed(refs: Any) -> list[Any]:
    """Users named one by one or in a list; anything else is refused by :func:`_emails_of`."""
    return refs if isinstance(refs, list) else [refs]


# --- handlers ---------------------------------------------------------------------------------


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
            return FolderRef(f.id, f.host, f.name, access.permission, access.via, _capacity(db, f), f.cloneable)

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


class FoldersHandler(FolderHandler):
    """``GET /folders`` (list), ``POST /folders`` (create), ``DELETE /folders`` {id} (delete)."""

    async def get(self) -> None:
        data = self.json_body()
        group_filter = self.param(data, "group_id", "group", kind=str)

        ttl = self.manager.folder_usage_ttl
        stale_before = utcnow() - dt.timedelta(seconds=ttl) if ttl > 0 else None

        def listing(db: DB) -> tuple[str, list[tuple[uuid.UUID, str]]]:
            entries = folder_db.folder_listing(db, self.me(db))
            decode = _decoder(db)
            if group_filter:
                entries = [e for e in entries if _in_group(decode(e.raw), e.group_name, group_filter)]
            texts, stale = _LISTED.texts(entries, decode, stale_before, _UsageRefresh.BATCH)
            return "[" + ",".join(texts) + "]", stale

        body, stale = await self.run_db(listing)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(body)
        # After the answer: sizes are measured off the request's path and shown by later listings.
        _REFRESH.start(self.manager, stale)

    async def post(self) -> None:
        data = self.json_body()
        name = self.need(data, "name", kind=str)
        host = self.param(data, "host", "folder_host", default="local", kind=str)
        group_ref = self.param(data, "group", "group_id")
        if group_ref is not None and not isinstance(group_ref, str):
            raise APIError(400, "'group' must be a group name or id")
        usage_mode = self.param(data, "usage_mode", default="general", kind=str)
        permission = self.param(data, "permission", default="rw", kind=str)
        cloneable = self.param(data, "cloneable", default=False, kind=bool)
        # Backend.AI's client sends 0 for "no quota of its own"; so does None.
        quota = self.param(data, "quota", default=None, kind=int) or None
        if group_ref and not self.identity.is_admin:
            raise APIError(403, f"cannot create group folder {name!r}: only admins create group folders")

        def create(db: DB) -> dict[str, Any]:
            user = self.me(db)
            group = _find_group(db, user, group_ref) if group_ref else None
            folder = folder_db.create_folder(
                db,
                user,
                name,
                host=host,
                group=group,
                permission=permission,
                usage_mode=usage_mode,
                quota=quota,
                cloneable=cloneable,
            )
            # In the transaction: if the directory cannot be made, the row is not kept either.
            self.store.create(folder.host, folder.id, capacity=_capacity(db, folder))
            perm = "wd" if group is None else folder.permission.value
            access = folder_db.FolderAccess(folder, perm, "owner" if group is None else "group", folder.is_automount)
            return _view(db, access)

        self.send(await self.run_db(create), 201)

    async def delete(self) -> None:
        data = self.json_body()
        ref = self.need(data, "id", "vfolder_id", "name", kind=str)
        await delete_folder(self, ref)
        self.set_status(204)
        self.finish()


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


class FolderHostsHandler(FolderHandler):
    """``GET /folders/_/hosts`` → {default, allowed}: hosts the caller may create folders on here."""

    async def get(self) -> None:
        data = self.json_body()
        group_ref = self.param(data, "group", "group_id", kind=str)

        def hosts(db: DB) -> dict[str, Any]:
            user = self.me(db)
            group = _find_group(db, user, group_ref) if group_ref else None
            # Only hosts this store serves: a host allowed by policy but not configured cannot be used.
            allowed = sorted(folder_db.allowed_hosts(db, user, group) & set(self.store.hosts))
            default = "local" if "local" in allowed else (allowed[0] if allowed else None)
            return {"default": default, "allowed": allowed}

        self.send(await self.run_db(hosts))


class FolderIdHandler(FolderHandler):
    """``GET /folders/_/id?name=`` → {id}: the id of the folder the name means to the caller."""

    async def get(self) -> None:
        ref = self.need(self.json_body(), "name", kind=str)
        folder = await self.folder(ref, "ro")
        self.send({"id": folder.id.hex, "name": folder.name})


class FolderUsageHandler(FolderHandler):
    """``GET /folders/_/usage?id=`` and ``GET /folders/{name}/usage`` → bytes, files and capacity.

    Where the storage enforces capacities (``storage.quota``) the numbers are the quota's: no
    walk of the folder (``usage_source`` ``quota``; btrfs counts no files, so the last measured
    count is given). Elsewhere the folder is walked (``measured``).
    """

    async def get(self, name: str | None = None) -> None:
        if name is None:
            name = self.need(self.json_body(), "id", "vfolder_id", "name", kind=str)
        folder = await self.folder(name, "ro")
        directory = await self.directory(folder)
        at = utcnow()
        counted = await asyncio.to_thread(self.store.quota_usage, folder.host, folder.id)
        if counted is not None:
            used, count = counted
            source = "quota"
            if count is None:
                count = await self.run_db(_stored_file_count, folder.id)
        else:
            used, count = await asyncio.to_thread(storage.usage, directory)
            source = "measured"
        await self.run_db(folder_db.record_usage, folder.id, used, count, at)  # what listings show as cur_size
        limits = self.store.quota(folder.host)
        self.send(
            {
                "id": folder.id.hex,
                "name": folder.name,
                "used_bytes": used,
                "file_count": count,
                "quota": folder.capacity,
                "max_size": folder.capacity,
                "over_capacity": bool(folder.capacity and used > folder.capacity),
                "usage_source": source,
                "capacity_enforced": counted is not None,
                "storage_quota": limits.kind,
            }
        )


def _stored_file_count(db: DB, folder_id: uuid.UUID) -> int:
    return db.scalar(select(m.VFolder.file_count).where(m.VFolder.id == folder_id)) or 0


class FolderQuotaHandler(FolderHandler):
    """Backend.AI's ``GET /folders/_/quota`` {folder_host, id} → {used_bytes, limit_bytes} and
    ``POST /folders/_/quota`` {folder_host, id, input: {size_bytes}} → {size_bytes}.

    Reading needs ``ro``; changing is for who may rename the folder (its owner, admins of a
    group folder's domain), up to the owner's policy's folder capacity (400 past it). The
    answer's ``size_bytes`` is the folder's own quota (0: none); its capacity (``max_size``
    elsewhere) is that or the policy's, the lower. The new capacity is set on the storage
    right away where it enforces capacities, so that sessions running now are held to it.
    """

    async def get(self) -> None:
        folder = await self.folder(self.need(self.json_body(), "id", "vfolder_id", kind=str), "ro")
        await self.directory(folder)
        counted = await asyncio.to_thread(self.store.quota_usage, folder.host, folder.id)
        if counted is None:
            used = await self.run_db(_stored_used_bytes, folder.id)
        else:
            used = counted[0]
        self.send(
            {
                "used_bytes": used,
                "limit_bytes": folder.capacity or 0,
                "enforced": counted is not None,
                "storage_quota": self.store.quota(folder.host).kind,
            }
        )

    async def post(self) -> None:
        data = self.json_body()
        ref = self.need(data, "id", "vfolder_id", kind=str)
        given = data.get("input")
        size = given.get("size_bytes") if isinstance(given, dict) else data.get("size_bytes")
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise APIError(400, "'input.size_bytes' (bytes, 0 for none) is required")

        def change(db: DB) -> tuple[FolderRef, int | None]:
            folder = folder_db.set_folder_quota(db, self.me(db), ref, size)
            capacity = _capacity(db, folder)
            return FolderRef(folder.id, folder.host, folder.name, "wd", "owner", capacity), folder.quota

        folder, quota = await self.run_db(change)
        await self.directory(folder)
        await asyncio.to_thread(self.store.set_capacity, folder.host, folder.id, folder.capacity)
        self.send({"size_bytes": quota or 0, "max_size": folder.capacity})


def _stored_used_bytes(db: DB, folder_id: uuid.UUID) -> int:
    return db.scalar(select(m.VFolder.used_bytes).where(m.VFolder.id == folder_id)) or 0


class FolderItemHandler(FolderHandler):
    """``GET /folders/{name}`` (one folder's view) and ``DELETE /folders/{name}``."""

    async def get(self, name: str) -> None:
        def view(db: DB) -> dict[str, Any]:
            return _view(db, folder_db.get_accessible(db, self.me(db), name))

        self.send(await self.run_db(view))

    async def delete(self, name: str) -> None:
        await delete_folder(self, name)
        self.set_status(204)
        self.finish()


class RenameFolderHandler(FolderHandler):
    """``POST /folders/{name}/rename`` {new_name}: owners (or admins of a group folder's domain) with wd."""

    async def post(self, name: str) -> None:
        new_name = self.need(self.json_body(), "new_name", kind=str)

        def rename(db: DB) -> dict[str, Any]:
            user = self.me(db)
            folder = folder_db.rename_folder(db, user, name, new_name)
            try:
                access = folder_db.get_accessible(db, user, folder.id)
            except admin.NotFound:  # an admin managing a group folder they are not a member of
                access = folder_db.FolderAccess(folder, "wd", "group", folder.is_automount)
            return _view(db, access)

        self.send(await self.run_db(rename), 201)


class CloneHandler(FolderHandler):
    """``POST /folders/{name}/clone`` {target_name, target_host, usage_mode, permission, cloneable} (ro).

    A new user folder of the caller with a copy of the files (links copied as links, never
    followed; see :mod:`jupyter_backendai.storage.clone`). Owners clone their folders; others
    only folders marked ``cloneable``. The new folder counts like a created one (name rules,
    host, the policy's folder count: 409) and must hold the copy within the policy's folder
    capacity (413 with the numbers, checked before and during the copy). Unlike Backend.AI,
    which answers at once and copies in a background task, the answer comes when the copy is
    done; the new folder is listed from the start, and removed again if the copy fails.
    """

    async def post(self, name: str) -> None:
        data = self.json_body()
        target_name = self.need(data, "target_name", kind=str)
        target_host = self.param(data, "target_host", "folder_host", kind=str) or None
        usage_mode = self.param(data, "usage_mode", default="general", kind=str) or "general"
        permission = self.param(data, "permission", "perm", default="rw", kind=str) or "rw"
        cloneable = self.param(data, "cloneable", default=False, kind=bool)
        source = await self.folder(name, "ro")
        if source.via != "owner" and not source.cloneable:
            raise APIError(403, f"folder {source.name!r} is not cloneable: only its owner can clone it")
        source_dir = await self.directory(source)
        measured_at = utcnow()
        used, count = await asyncio.to_thread(storage.usage, source_dir)

        def create(db: DB) -> tuple[uuid.UUID, str, int | None]:
            user = self.me(db)
            folder_db.record_usage(db, source.id, used, count, measured_at)
            keypair = launch.main_keypair(db, user)
            capacity = keypair.policy.max_vfolder_size or None if keypair is not None else None
            if capacity is not None and used > capacity:
                raise APIError(
                    413,
                    f"folder {source.name!r} holds {storage_errors.human_size(used)}, more than a folder of yours"
                    f" may hold ({storage_errors.human_size(capacity)})",
                    used_bytes=used, max_size=capacity,
                )  # fmt: skip
            folder = folder_db.create_folder(
                db, user, target_name, host=target_host or source.host, permission=permission,
                usage_mode=usage_mode, cloneable=cloneable,
            )  # fmt: skip
            # In the transaction, as for a created folder.
            self.store.create(folder.host, folder.id, capacity=capacity)
            return folder.id, folder.host, capacity

        new_id, host, capacity = await self.run_db(create)
        try:
            copied = await asyncio.to_thread(copy_folder, source_dir, self.store.path(host, new_id), max_bytes=capacity)
        except BaseException:
            await self.run_db(_drop_folder_row, new_id)
            await asyncio.to_thread(self.store.delete, host, new_id)
            raise

        def answer(db: DB) -> dict[str, Any]:
            # What the copy wrote is the folder: a listing's measurement taken meanwhile is older.
            folder_db.record_usage(db, new_id, copied.bytes, copied.files)
            folder = db.get(m.VFolder, new_id)
            view = _view(db, folder_db.FolderAccess(folder, "wd", "owner", folder.is_automount))
            view["skipped_entries"] = copied.skipped
            return view

        self.send(await self.run_db(answer), 201)


def _drop_folder_row(db: DB, folder_id: uuid.UUID) -> None:
    """Undo a clone whose copy failed (the row was committed before the copy began)."""
    folder = db.get(m.VFolder, folder_id)
    if folder is not None:
        db.delete(folder)


class MkdirHandler(FolderHandler):
    """``POST /folders/{name}/mkdir`` {path (one or a list), parents, exist_ok} → {results}."""

    async def post(self, name: str) -> None:
        data = self.json_body()
        paths = self.need(data, "path")
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise APIError(400, "'path' must be a path or a list of paths")
        parents = self.param(data, "parents", default=False, kind=bool)
        exist_ok = self.param(data, "exist_ok", default=False, kind=bool)
        folder = await self.folder(name, "rw")
        directory = await self.directory(folder)

        def make() -> list[str]:
            made = []
            for path in paths:
                try:
                    made.append(storage.mkdir(directory, path, parents=parents))
                except storage.AlreadyExists:
                    st = storage.stat(directory, path)
                    if not exist_ok or st.type != "dir":
                        raise
                    made.append(storage.normalize_relpath(path))
            return made

        self.send({"results": await asyncio.to_thread(make)}, 201)


def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return dt.datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return 0.0


class FilesHandler(FolderHandler):
    """``GET /folders/{name}/files?path=`` → {path, items}: a directory listing (links shown as links)."""

    async def get(self, name: str) -> None:
        path = self.param(self.json_body(), "path", default="", kind=str)
        folder = await self.folder(name, "ro")
        directory = await self.directory(folder)
        entries = await asyncio.to_thread(storage.list_dir, directory, path)
        items = [{**e.as_dict(), "modified": e.mtime} for e in entries]
        # Backend.AI's own shape too: "files" is a JSON string of {filename, size, mtime (epoch), mode}.
        legacy = [
            {
                "filename": e.name,
                "size": e.size,
                "mtime": _epoch(e.mtime),
                "mode": stat_module.filemode(e.mode) if isinstance(e.mode, int) else str(e.mode),
                "type": e.type,
            }
            for e in entries
        ]
        self.send({"path": storage.normalize_relpath(path), "items": items, "files": json.dumps(legacy)})


class RenameFileHandler(FolderHandler):
    """``POST /folders/{name}/rename-file`` {target_path, new_name} (rw): rename within its directory."""

    async def post(self, name: str) -> None:
        data = self.json_body()
        target = self.need(data, "target_path", "path", kind=str)
        new_name = self.need(data, "new_name", kind=str)
        folder = await self.folder(name, "rw")
        directory = await self.directory(folder)
        path = await asyncio.to_thread(storage.rename, directory, target, new_name)
        self.send({"path": path})


class MoveFileHandler(FolderHandler):
    """``POST /folders/{name}/move-file`` {src, dst} (rw).

    As Backend.AI (``shutil.move``): into ``dst`` when it is a directory, else to the path
    ``dst`` (its directory must exist and the name be free). Never over an existing entry.
    """

    async def post(self, name: str) -> None:
        data = self.json_body()
        src = self.need(data, "src", kind=str)
        dst = self.param(data, "dst", default="", kind=str)
        folder = await self.folder(name, "rw")
        directory = await self.directory(folder)
        self.send({"path": await asyncio.to_thread(_move, directory, src, dst)})


def _move(directory: str, src: str, dst: str) -> str:
    src_parts = storage.split_relpath(src)
    dst_parts = storage.split_relpath(dst)
    if not src_parts:
        raise storage.UnsafePath("the folder root cannot be moved")
    try:
        is_dir = storage.stat(directory, dst).type == "dir"
    except storage.NotFound:
        is_dir = False
    if is_dir:
        return storage.move(directory, src, dst)
    parent, new_name = dst_parts[:-1], dst_parts[-1]
    if parent == src_parts[:-1]:
        return storage.rename(directory, src, new_name)
    if new_name == src_parts[-1]:
        return storage.move(directory, src, "/".join(parent))
    # Rename where it is, then move; undo the rename if the move is refused.
    if storage.stat(directory, "/".join(parent)).type != "dir":
        raise storage.Conflict(f"{'/'.join(parent)!r} is not a directory")
    renamed = storage.rename(directory, src, new_name)
    try:
        return storage.move(directory, renamed, "/".join(parent))
    except storage.StorageError:
        storage.rename(directory, renamed, src_parts[-1])
        raise


class DeleteFilesHandler(FolderHandler):
    """``DELETE /folders/{name}/delete-files`` (or POST) {files: [...], recursive} (wd).

    All paths are checked before anything is removed (the store does that), so one bad path
    deletes nothing.
    """

    async def delete(self, name: str) -> None:
        data = self.json_body()
        files = self.need(data, "files", "file", "path")
        files = [files] if isinstance(files, str) else files
        if not isinstance(files, list) or not all(isinstance(p, str) for p in files):
            raise APIError(400, "'files' must be a list of paths")
        recursive = self.param(data, "recursive", default=False, kind=bool)
        folder = await self.folder(name, "wd")
        directory = await self.directory(folder)
        await asyncio.to_thread(storage.delete, directory, files, recursive)
        await self.run_db(folder_db.mark_usage_stale, folder.id)
        self.send({"deleted": [storage.normalize_relpath(p) for p in files]})

    post = delete


class RequestUploadHandler(FolderHandler):
    """``POST /folders/{name}/request-upload`` {path, size} → {token, url} for the tus endpoint (rw).

    The upload session is made now, so that an unsafe target or a size over the folder's
    capacity is refused before any byte is sent (413 with the numbers).
    """

    async def post(self, name: str) -> None:
        data = self.json_body()
        path = self.need(data, "path", kind=str)
        size = self.param(data, "size", default=None, kind=int)
        if size is None or size < 0:
            raise APIError(400, "'size' (bytes, zero or more) is required")
        limit = self.manager.max_upload_size
        if size > limit:
            raise APIError(
                413, f"an upload of {size} bytes is larger than the largest single upload, {limit} bytes", size=size,
                max_upload_size=limit,
            )  # fmt: skip
        folder = await self.folder(name, "rw")
        await self.directory(folder)
        relpath = storage.normalize_relpath(path)
        try:
            upload_id = await asyncio.to_thread(
                self.store.begin_upload, folder.host, folder.id, relpath, size, quota=folder.capacity,
                expire_after=self.manager.transfer_token_lifetime,
            )  # fmt: skip
        except storage.QuotaExceeded as e:
            raise APIError(
                413,
                str(e),
                size=size,
                used_bytes=e.used,
                replaced_bytes=e.replaced,
                quota=e.quota,
                reserved_bytes=e.reserved,
            ) from None
        claims = {
            "op": "upload",
            "upload": upload_id,
            "folder": str(folder.id),
            "host": folder.host,
            "path": relpath,
            "size": size,
            "quota": folder.capacity,
            "user": self.identity.username,
            "uid": str(self.identity.user_id),
        }
        token = transfer_tokens.issue(self.manager.transfer_secret, claims, ttl=self.manager.transfer_token_lifetime)
        self.send({"token": token, "url": self.service_url(f"{TUS_PATH}?token={token}"), "path": relpath})


class RequestDownloadHandler(FolderHandler):
    """``POST /folders/{name}/request-download`` {path, archive, paths} → {token, url} (ro).

    A regular file; with ``archive`` (a directory) or ``paths`` (entries) a streamed ZIP, see
    ``api_transfer.request_archive``.
    """

    async def post(self, name: str) -> None:
        data = self.json_body()
        if self.param(data, "archive", default=False, kind=bool) or "paths" in data:
            await api_transfer.request_archive(self, name, data)
            return
        path = self.need(data, "path", kind=str)
        folder = await self.folder(name, "ro")
        directory = await self.directory(folder)
        entry = await asyncio.to_thread(storage.stat, directory, path)
        if entry.type == "symlink":
            raise APIError(400, f"{path!r} is a symbolic link; symbolic links are not followed")
        if entry.type != "file":
            raise APIError(400, f"{path!r} is a {entry.type}, not a file; only files can be downloaded")
        relpath = storage.normalize_relpath(path)
        claims = {
            "op": "download",
            "folder": str(folder.id),
            "host": folder.host,
            "path": relpath,
            "size": entry.size,
            "user": self.identity.username,
            "uid": str(self.identity.user_id),
        }
        token = transfer_tokens.issue(self.manager.transfer_secret, claims, ttl=self.manager.transfer_token_lifetime)
        self.send({"token": token, "url": self.service_url(f"{DOWNLOAD_PATH}?token={token}"), "path": relpath})


class InviteHandler(FolderHandler):
    """``POST /folders/{name}/invite`` {perm, user_ids|emails} → {invited_ids}: the owner invites users."""

    async def post(self, name: str) -> None:
        data = self.json_body()
        refs = self.need(data, "user_ids", "emails", "user_emails")
        refs = [refs] if isinstance(refs, str) else refs
        if not isinstance(refs, list):
            raise APIError(400, "'user_ids' must be a list of e-mail addresses")
        perm = self.param(data, "perm", "permission", default="rw", kind=str)

        def invite(db: DB) -> list[str]:
            made = folder_db.invite(db, self.me(db), name, _emails_of(db, refs), perm)
            return [inv.invitee for inv in made]

        self.send({"invited_ids": await self.run_db(invite)}, 201)


class InvitationsListHandler(FolderHandler):
    """``GET /folders/invitations/list`` (to me) and ``/folders/invitations/list-sent`` (by me), pending."""

    def initialize(self, sent: bool = False) -> None:
        self.sent = sent

    async def get(self) -> None:
        def listing(db: DB) -> list[dict[str, Any]]:
            fn = folder_db.sent_invitations if self.sent else folder_db.list_invitations
            return [_invitation_view(db, inv) for inv in fn(db, self.me(db))]

        self.send({"invitations": await self.run_db(listing)})


class InvitationAcceptHandler(FolderHandler):
    """``POST /folders/invitations/accept`` {inv_id}: only the invitee."""

    async def post(self) -> None:
        inv_id = self.need(self.json_body(), "inv_id", "id", kind=str)

        def accept(db: DB) -> dict[str, Any]:
            row = folder_db.accept_invitation(db, self.me(db), inv_id)
            return {"id": row.vfolder_id.hex, "permission": row.permission.value}

        self.send(await self.run_db(accept))


class InvitationDeleteHandler(FolderHandler):
    """``DELETE|POST /folders/invitations/delete`` {inv_id}: the invitee rejects, the inviter cancels."""

    async def delete(self) -> None:
        inv_id = self.need(self.json_body(), "inv_id", "id", kind=str)

        def reject(db: DB) -> dict[str, Any]:
            inv = folder_db.reject_invitation(db, self.me(db), inv_id)
            return {"id": str(inv.id), "state": inv.state.value}

        self.send(await self.run_db(reject))

    post = delete


class ShareHandler(FolderHandler):
    """``POST /folders/{name}/share`` {permission, emails}: change who may do what with a folder.

    On a group folder, admins give members a permission of their own (Backend.AI's meaning).
    On a user folder, its owner changes the permission of users who accepted an invitation
    (a downgrade to ``ro`` ends their upload URLs at once).
    """

    async def post(self, name: str) -> None:
        data = self.json_body()
        emails = self.need(data, "emails", "user_emails")
        permission = self.need(data, "permission", "perm", kind=str)

        def share(db: DB) -> list[str]:
            me = self.me(db)
            if not folder_db.is_group_folder(db, me, name):
                return sorted(folder_db.change_shares(db, me, name, _emails_of(db, _listed(emails)), permission))
            rows = folder_db.share_group_folder(db, me, name, emails, permission)
            return sorted(db.get(m.User, r.user_id).email for r in rows)

        self.send({"shared_emails": await self.run_db(share)}, 201)


class UnshareHandler(FolderHandler):
    """``DELETE|POST /folders/{name}/unshare`` {emails}: take back what ``share`` or an invitation gave.

    Group folder members fall back to the folder's permission; users a user folder was shared
    with lose it (and their outstanding transfer URLs for it stop working).
    """

    async def delete(self, name: str) -> None:
        emails = self.need(self.json_body(), "emails", "user_emails")

        def unshare(db: DB) -> list[str]:
            me = self.me(db)
            if not folder_db.is_group_folder(db, me, name):
                return folder_db.change_shares(db, me, name, _emails_of(db, _listed(emails)), None)
            return folder_db.unshare_group_folder(db, me, name, emails)

        self.send({"unshared_emails": await self.run_db(unshare)})

    post = delete


def _share_view(share: folder_db.Share) -> dict[str, Any]:
    return {
        "vfolder_id": share.folder.id.hex,
        "vfolder_name": share.folder.name,
        "status": "ready",
        "owner": str(share.folder.user_id),
        "type": "user",
        "shared_to": {"uuid": str(share.user.id), "email": share.user.email},
        "perm": share.permission,
    }


class SharedFoldersHandler(FolderHandler):
    """Backend.AI's ``/folders/_/shared``: the owner lists and changes who their folders are shared with.

    ``GET`` {vfolder_id} (optional) → {shared: [{vfolder_id, vfolder_name, owner, shared_to:
    {uuid, email}, perm}]}; ``POST`` {vfolder, user, perm} changes one user's permission, and
    ``perm: null`` revokes it.
    """

    async def get(self) -> None:
        folder = self.param(self.json_body(), "vfolder_id", "vfolder", kind=str) or None

        def listing(db: DB) -> list[dict[str, Any]]:
            return [_share_view(s) for s in folder_db.folder_shares(db, self.me(db), folder)]

        self.send({"shared": await self.run_db(listing)})

    async def post(self) -> None:
        data = self.json_body()
        folder = self.need(data, "vfolder", "vfolder_id", kind=str)
        user = self.need(data, "user", "email", kind=str)
        if "perm" not in data and "permission" not in data:
            raise APIError(400, "'perm' is required: ro, rw or wd, or null to revoke the share")
        perm = self.param(data, "perm", "permission", kind=str)

        def change(db: DB) -> dict[str, Any]:
            (email,) = folder_db.change_shares(db, self.me(db), folder, _emails_of(db, [user]), perm)
            done = f"revoked the share of {email}" if perm is None else f"changed the share of {email} to {perm}"
            return {"msg": done}

        self.send(await self.run_db(change))


class LeaveHandler(FolderHandler):
    """``POST /folders/{name}/leave``: stop using a folder shared with me."""

    async def post(self, name: str) -> None:
        def leave(db: DB) -> dict[str, Any]:
            folder = folder_db.leave_folder(db, self.me(db), name)
            return {"id": folder.id.hex, "name": folder.name}

        self.send(await self.run_db(leave))


_NAME = r"(?P<name>[^/]+)"

handlers = [
    (r"/folders/?", FoldersHandler),
    (r"/folders/_/hosts", FolderHostsHandler),
    (r"/folders/_/id", FolderIdHandler),
    (r"/folders/_/usage", FolderUsageHandler),
    (r"/folders/_/quota", FolderQuotaHandler),
    (r"/folders/_/shared", SharedFoldersHandler),
    (r"/folders/invitations/list", InvitationsListHandler),
    (r"/folders/invitations/list-sent", InvitationsListHandler, {"sent": True}),
    (r"/folders/invitations/accept", InvitationAcceptHandler),
    (r"/folders/invitations/delete", InvitationDeleteHandler),
    (rf"/folders/{_NAME}/usage", FolderUsageHandler),
    (rf"/folders/{_NAME}/rename", RenameFolderHandler),
    (rf"/folders/{_NAME}/mkdir", MkdirHandler),
    (rf"/folders/{_NAME}/files", FilesHandler),
    (rf"/folders/{_NAME}/rename-file", RenameFileHandler),
    (rf"/folders/{_NAME}/move-file", MoveFileHandler),
    (rf"/folders/{_NAME}/delete-files", DeleteFilesHandler),
    (rf"/folders/{_NAME}/request-upload", RequestUploadHandler),
    (rf"/folders/{_NAME}/request-download", RequestDownloadHandler),
    (rf"/folders/{_NAME}/invite", InviteHandler),
    (rf"/folders/{_NAME}/share", ShareHandler),
    (rf"/folders/{_NAME}/unshare", UnshareHandler),
    (rf"/folders/{_NAME}/leave", LeaveHandler),
    (rf"/folders/{_NAME}/clone", CloneHandler),
    (rf"/folders/{_NAME}/?", FolderItemHandler),
]
