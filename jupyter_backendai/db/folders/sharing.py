"""Sharing: invitations to user folders, the owner's shares, members' permissions on group folders.

* Dot-folders (automount, F30) cannot be shared by invitation. Backend.AI's exception (a group
  ``.local`` holding one sub-folder per user) is *not* supported: it needs per-user
  sub-directories in the storage layer.
* A folder stays shared when its owner is deactivated (users are never deleted, F37): the data
  the others work with does not disappear with the account.
* Invitations go to existing, active users only (of any domain, as in Backend.AI).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm import Session as DB

from .. import admin
from .. import models as m
from .access import Forbidden, accessible_folders, get_accessible, is_admin_of, managed_folder, pick_access
from .names import Perm, as_id, parse_permission


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


def _permission_rows(db: DB, folder: m.VFolder, addresses: list[str], missing: str) -> list[m.VFolderPermission]:
    """Each address's own permission row on the folder, all looked up before anything changes:
    one address without a row is NotFound ("folder 'x' <missing> 'address'") and nothing changes."""
    rows = []
    for email in addresses:
        user = _user_by_email(db, email, folder)
        row = db.get(m.VFolderPermission, (folder.id, user.id))
        if row is None:
            raise admin.NotFound(f"folder {folder.name!r} {missing} {email!r}")
        rows.append(row)
    return rows


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
    f = _owned_user_folder(db, inviter, folder, "invite others to it")
    if f.is_automount:
        raise admin.AdminError(f"folder {f.name!r} cannot be shared: dot-folders (automount) are personal")
    perm = parse_permission(permission)
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


def _pending(db: DB, who: InstrumentedAttribute[str], email: str) -> list[m.VFolderInvitation]:
    """Pending invitations whose ``who`` (inviter or invitee column) is ``email``, oldest first."""
    return list(
        db.scalars(
            select(m.VFolderInvitation)
            .where(who == email, m.VFolderInvitation.state == m.InvitationState.PENDING)
            .order_by(m.VFolderInvitation.created_at, m.VFolderInvitation.id)
        )
    )


def list_invitations(db: DB, user: m.User) -> list[m.VFolderInvitation]:
    """Pending invitations to the user, oldest first."""
    return _pending(db, m.VFolderInvitation.invitee, user.email)


def sent_invitations(db: DB, user: m.User) -> list[m.VFolderInvitation]:
    """Pending invitations the user sent (so that they can cancel them), oldest first."""
    return _pending(db, m.VFolderInvitation.inviter, user.email)


def _invitation(db: DB, user: m.User, invitation_id: uuid.UUID | str) -> tuple[m.VFolderInvitation, m.VFolder]:
    """The invitation, if the user sent or received it (others get NotFound: no existence leak)."""
    inv_id = as_id(invitation_id)
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
    access = pick_access(accessible_folders(db, user), folder, ("shared", "owner", "group"))
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
    perm = parse_permission(permission) if permission is not None else None
    addresses = _emails(emails, f, "change the share of")
    rows = _permission_rows(db, f, addresses, "is not shared with")
    for row in rows:
        if perm is None:
            db.delete(row)
        else:
            row.permission = perm
    db.flush()
    return addresses


# --- per-user permissions on group folders --------------------------------------------------


def _managed_group_folder(
    db: DB, admin_user: m.User, folder: m.VFolder | uuid.UUID | str, action: str
) -> tuple[m.VFolder, m.Group]:
    f, _ = managed_folder(db, admin_user, folder)
    if f.ownership_type != m.FolderOwnership.GROUP:
        raise admin.AdminError(f"folder {f.name!r} is not a group folder: its owner invites users to it")
    group = db.get(m.Group, f.group_id)
    if not is_admin_of(admin_user, group):
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
    perm = parse_permission(permission)
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
    addresses = _emails(emails, f, "unshare")
    rows = _permission_rows(db, f, addresses, "has no permission of its own for")
    for row in rows:
        db.delete(row)
    db.flush()
    return addresses
