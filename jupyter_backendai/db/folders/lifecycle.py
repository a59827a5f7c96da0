"""Creating, renaming, re-quoting and deleting folders.

* Dot-folders (automount, F30) cannot be group folders, and a shared folder cannot be renamed
  to one.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from .. import admin
from .. import models as m
from ..launch import main_keypair
from .access import ADMIN_ROLES, Forbidden, allowed_hosts, check_manage, is_admin_of, managed_folder
from .mounting import MountingSession, live_sessions_mounting
from .names import USAGE_MODES, check_folder_name, parse_permission

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
    perm = parse_permission(permission)
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
        if user.role not in ADMIN_ROLES:
            raise Forbidden(f"cannot create group folder {name!r}: only admins create group folders")
        if not is_admin_of(user, group):
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


# --- managing: rename, re-quote, delete --------------------------------------------------------


def rename_folder(db: DB, user: m.User, folder_name_or_id: m.VFolder | uuid.UUID | str, new_name: str) -> m.VFolder:
    """Rename a folder (F27); the mount path of sessions started afterwards changes with it."""
    folder, access = managed_folder(db, user, folder_name_or_id)
    check_manage(db, user, folder, access, "rename")
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
    folder, access = managed_folder(db, user, folder_name_or_id)
    check_manage(db, user, folder, access, "change the quota of")
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
    folder, access = managed_folder(db, user, name_or_id)
    check_manage(db, user, folder, access, "delete")
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
