"""Who sees a folder, with which permission, and who may manage it.

* Storage hosts: a user may use the union of the hosts allowed by their keypair's resource
  policy, their domain and, for a group folder, the group (and the group's domain), as in
  Backend.AI. An empty union allows nothing.
* The keypair whose policy counts is the user's main keypair (``db/launch.py``), as for their
  sessions: these functions run outside any signed request, so there is no "current" keypair.
* A user may see two folders of one name (their own and a shared one, say); look-ups by name
  prefer their own, then a group's, then a shared one.
* Group folders are visible to and mountable by members of *active* groups only. Admins of the
  group's domain (and superadmins) may manage (rename, delete, share) a group folder without
  being a member, but not mount it.
* Per-user permissions on a group folder (``vfolder_permissions``) override the folder's
  ``permission`` column for that member, and grant nothing to a non-member.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ...core import errors
from .. import admin
from .. import models as m
from ..launch import main_keypair
from .names import MOUNT_ROOT, RANK, Perm, as_id, folder_label

Via = Literal["owner", "group", "shared"]
#: Which folder a name means when several accessible folders carry it.
PRECEDENCE: dict[str, int] = {"owner": 0, "group": 1, "shared": 2}
ADMIN_ROLES = (m.UserRole.ADMIN, m.UserRole.SUPERADMIN)


class Forbidden(admin.AdminError, errors.Forbidden):
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


def is_admin_of(user: m.User, group: m.Group) -> bool:
    return user.role == m.UserRole.SUPERADMIN or (
        user.role == m.UserRole.ADMIN and user.domain_name == group.domain_name
    )


def member_group_ids(user: m.User, *, active_only: bool = True):
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
            m.VFolder.ownership_type == m.FolderOwnership.GROUP, m.VFolder.group_id.in_(member_group_ids(user))
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
    out.sort(key=lambda a: (a.folder.name, PRECEDENCE[a.via], str(a.folder.id)))
    return out


def pick_access(
    entries: Sequence[FolderAccess], ref: m.VFolder | uuid.UUID | str, order: Sequence[str]
) -> FolderAccess:
    """The entry ``ref`` means: an id first, then a name, preferring vias in ``order``."""
    folder_id = as_id(ref)
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
    raise admin.NotFound(f"no folder {folder_label(ref)!r} that you can access")


def get_accessible(db: DB, user: m.User, name_or_id: m.VFolder | uuid.UUID | str) -> FolderAccess:
    """One folder the user can see, by id (a UUID or its string) or by name (own, then group, then shared)."""
    return pick_access(accessible_folders(db, user), name_or_id, ("owner", "group", "shared"))


def require(access: FolderAccess, needed: Perm) -> FolderAccess:
    """Raise Forbidden unless the access grants at least ``needed`` (ro < rw < wd)."""
    if needed not in RANK:
        raise admin.AdminError(f"invalid folder permission {needed!r}: choose one of ro, rw, wd")
    if RANK[access.permission] < RANK[needed]:
        raise Forbidden(f"you need {needed} permission on folder {access.folder.name!r}; you have {access.permission}")
    return access


# --- who may manage a folder ---------------------------------------------------------------


def managed_folder(db: DB, user: m.User, ref: m.VFolder | uuid.UUID | str) -> tuple[m.VFolder, FolderAccess | None]:
    """A folder the user can see, or (for admins) a group folder of a group they administer.

    Admins manage their domain's group folders without being members; the access is None then.
    """
    try:
        access = get_accessible(db, user, ref)
        return access.folder, access
    except admin.NotFound:
        if user.role not in ADMIN_ROLES:
            raise
    folder_id = as_id(ref)
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
    raise admin.NotFound(f"no folder {folder_label(ref)!r} that you can access")


def check_manage(db: DB, user: m.User, folder: m.VFolder, access: FolderAccess | None, action: str) -> None:
    """Owners manage their folders, admins of the group's domain its group folders; with wd."""
    if access is not None:
        require(access, "wd")
        if access.via == "shared":
            raise Forbidden(f"only the owner of folder {folder.name!r} can {action} it; you can leave it instead")
    if folder.ownership_type == m.FolderOwnership.GROUP:
        group = db.get(m.Group, folder.group_id)
        if not is_admin_of(user, group):
            raise Forbidden(
                f"only admins of domain {group.domain_name!r} can {action} folder {folder.name!r} of group {group.name!r}"
            )


def is_group_folder(db: DB, user: m.User, folder: m.VFolder | uuid.UUID | str) -> bool:
    """Whether ``folder`` means a group folder to this user (one they can see or administer)."""
    f, _ = managed_folder(db, user, folder)
    return f.ownership_type == m.FolderOwnership.GROUP


def can_use(db: DB, user_ref: uuid.UUID | str, folder_id: uuid.UUID | str, needed: Perm) -> str | None:
    """Why the user (an id, else a user name) may no longer do what a transfer URL allows, or ``None``.

    Transfer URLs are issued for a while (an hour by default); a share revoked or lowered to
    ``ro`` meanwhile, a deactivated account or a deleted folder must end them at once, so every
    request made with one asks again.
    """
    user_id = as_id(user_ref)
    if user_id is not None:
        user = db.get(m.User, user_id)
    else:
        user = db.scalar(select(m.User).where(m.User.username == str(user_ref)))
    if user is None or not user.is_active:
        return "the account this URL was issued to is no longer active"
    try:
        access = get_accessible(db, user, as_id(folder_id) or uuid.UUID(int=0))
    except admin.NotFound:
        return "the folder no longer exists or is no longer shared with the account this URL was issued to"
    if RANK[access.permission] < RANK[needed]:
        return (
            f"the account this URL was issued to now has only {access.permission} permission on folder {access.name!r}"
        )
    return None
