"""``/folders`` and ``/folders/{name}``: list, create, look up, rename, clone and delete folders."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from sqlalchemy.orm import Session as DB

from ... import storage
from ...db import admin, launch
from ...db import folders as folder_db
from ...db import models as m
from ...db.types import utcnow
from ...storage import errors as storage_errors
from ...storage.clone import copy_folder
from ..base import APIError
from .common import FOLDER_PATH, FolderHandler, delete_folder, find_group, folder_capacity, folder_view
from .listing import LISTED, REFRESH, UsageRefresh, decoder, in_group


class FoldersHandler(FolderHandler):
    """``GET /folders`` (list), ``POST /folders`` (create), ``DELETE /folders`` {id} (delete)."""

    async def get(self) -> None:
        data = self.json_body()
        group_filter = self.param(data, "group_id", "group", kind=str)

        ttl = self.manager.folder_usage_ttl
        stale_before = utcnow() - dt.timedelta(seconds=ttl) if ttl > 0 else None

        def listing(db: DB) -> tuple[str, list[tuple[uuid.UUID, str]]]:
            entries = folder_db.folder_listing(db, self.me(db))
            decode = decoder(db)
            if group_filter:
                entries = [e for e in entries if in_group(decode(e.raw), e.group_name, group_filter)]
            texts, stale = LISTED.texts(entries, decode, stale_before, UsageRefresh.BATCH)
            return "[" + ",".join(texts) + "]", stale

        body, stale = await self.run_db(listing)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(body)
        # After the answer: sizes are measured off the request's path and shown by later listings.
        REFRESH.start(self.manager, stale)

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
            group = find_group(db, user, group_ref) if group_ref else None
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
            self.store.create(folder.host, folder.id, capacity=folder_capacity(db, folder))
            perm = "wd" if group is None else folder.permission.value
            access = folder_db.FolderAccess(folder, perm, "owner" if group is None else "group", folder.is_automount)
            return folder_view(db, access)

        self.send(await self.run_db(create), 201)

    async def delete(self) -> None:
        data = self.json_body()
        ref = self.need(data, "id", "vfolder_id", "name", kind=str)
        await delete_folder(self, ref)
        self.set_status(204)
        self.finish()


class FolderHostsHandler(FolderHandler):
    """``GET /folders/_/hosts`` → {default, allowed}: hosts the caller may create folders on here."""

    async def get(self) -> None:
        data = self.json_body()
        group_ref = self.param(data, "group", "group_id", kind=str)

        def hosts(db: DB) -> dict[str, Any]:
            user = self.me(db)
            group = find_group(db, user, group_ref) if group_ref else None
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


class FolderItemHandler(FolderHandler):
    """``GET /folders/{name}`` (one folder's view) and ``DELETE /folders/{name}``."""

    async def get(self, name: str) -> None:
        def view(db: DB) -> dict[str, Any]:
            return folder_view(db, folder_db.get_accessible(db, self.me(db), name))

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
            return folder_view(db, access)

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
            view = folder_view(db, folder_db.FolderAccess(folder, "wd", "owner", folder.is_automount))
            view["skipped_entries"] = copied.skipped
            return view

        self.send(await self.run_db(answer), 201)


def _drop_folder_row(db: DB, folder_id: uuid.UUID) -> None:
    """Undo a clone whose copy failed (the row was committed before the copy began)."""
    folder = db.get(m.VFolder, folder_id)
    if folder is not None:
        db.delete(folder)


handlers = [
    (r"/folders/?", FoldersHandler),
    (r"/folders/_/hosts", FolderHostsHandler),
    (r"/folders/_/id", FolderIdHandler),
    (rf"{FOLDER_PATH}/rename", RenameFolderHandler),
    (rf"{FOLDER_PATH}/clone", CloneHandler),
    (rf"{FOLDER_PATH}/?", FolderItemHandler),
]
