"""What a new session mounts, and which live sessions mount a folder."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from .. import admin
from .. import models as m
from .access import FolderAccess, Forbidden, accessible_folders, is_admin_of, member_group_ids, pick_access
from .names import as_id, folder_label

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


# --- mounting -------------------------------------------------------------------------------


def _not_mountable(db: DB, user: m.User, ref: m.VFolder | uuid.UUID | str) -> Forbidden | None:
    """Why a folder the user knows of cannot be mounted, when there is a better answer than 404."""
    folder_id = as_id(ref)
    query = (
        select(m.VFolder, m.Group)
        .join(m.Group, m.Group.id == m.VFolder.group_id)
        .where(m.VFolder.ownership_type == m.FolderOwnership.GROUP)
    )
    if folder_id is not None:
        query = query.where(m.VFolder.id == folder_id)
    else:
        query = query.where(m.VFolder.name == unicodedata.normalize("NFC", str(ref)))
    member_of = set(db.scalars(member_group_ids(user, active_only=False)))
    for f, group in db.execute(query):
        if group.id in member_of and not group.is_active:
            return Forbidden(f"cannot mount folder {f.name!r}: its group {group.name!r} is inactive")
        if group.id not in member_of and is_admin_of(user, group):
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
            access = pick_access(entries, ref, ("owner", "group", "shared"))
        except admin.NotFound:
            raise _not_mountable(db, user, ref) or admin.NotFound(
                f"cannot mount folder {folder_label(ref)!r}: no such folder that you can access"
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
