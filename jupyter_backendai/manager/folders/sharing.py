"""``/folders/invitations/``, ``/folders/_/shared`` and ``/folders/{name}/`` invite, share, unshare, leave."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session as DB

from ...db import folders as folder_db
from ...db import models as m
from ..base import APIError
from .common import FOLDER_PATH, FolderHandler, as_list, emails_of


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
            made = folder_db.invite(db, self.me(db), name, emails_of(db, refs), perm)
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
                return sorted(folder_db.change_shares(db, me, name, emails_of(db, as_list(emails)), permission))
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
                return folder_db.change_shares(db, me, name, emails_of(db, as_list(emails)), None)
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
            (email,) = folder_db.change_shares(db, self.me(db), folder, emails_of(db, [user]), perm)
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


handlers = [
    (r"/folders/_/shared", SharedFoldersHandler),
    (r"/folders/invitations/list", InvitationsListHandler),
    (r"/folders/invitations/list-sent", InvitationsListHandler, {"sent": True}),
    (r"/folders/invitations/accept", InvitationAcceptHandler),
    (r"/folders/invitations/delete", InvitationDeleteHandler),
    (rf"{FOLDER_PATH}/invite", InviteHandler),
    (rf"{FOLDER_PATH}/share", ShareHandler),
    (rf"{FOLDER_PATH}/unshare", UnshareHandler),
    (rf"{FOLDER_PATH}/leave", LeaveHandler),
]
