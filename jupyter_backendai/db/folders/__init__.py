"""Folders (vfolders) in the database: names, storage hosts, ownership, sharing and what a session mounts.

Only the rows live here (F24–F32): the storage layer creates and removes the directories and
the HTTP layer maps these functions to Backend.AI's ``/folders`` API. Every function takes an
open SQLAlchemy session first, checks its input, and raises an :class:`~..admin.AdminError`
(400), :class:`~..admin.NotFound` (404), :class:`~..admin.Conflict` (409) or :class:`Forbidden`
(403) whose one-line message names the folder and the rule; the caller commits.

One module per concern, each stating the decisions it makes where Backend.AI leaves room or
where this project differs: :mod:`.names` (names, permissions, mount root), :mod:`.access` (who
sees and manages a folder, storage hosts), :mod:`.listing` (listings, capacity, kept usage),
:mod:`.lifecycle` (create, rename, quota, delete), :mod:`.sharing` (invitations, shares,
members' permissions on group folders) and :mod:`.mounting` (what a session mounts). Their
public names are all importable from here.
"""

from .access import (
    FolderAccess,
    Forbidden,
    Via,
    accessible_folders,
    allowed_hosts,
    can_use,
    get_accessible,
    is_group_folder,
    require,
)
from .lifecycle import create_folder, delete_folder, rename_folder, set_folder_quota
from .listing import ListedFolder, RawFolderDecoder, capacity_of, folder_listing, mark_usage_stale, record_usage
from .mounting import LIVE_STATUSES, MountingSession, live_sessions_mounting, mountable
from .names import MAX_NAME_LENGTH, MOUNT_ROOT, RESERVED_NAMES, USAGE_MODES, Perm, check_folder_name
from .sharing import (
    Share,
    accept_invitation,
    change_shares,
    folder_shares,
    invite,
    leave_folder,
    list_invitations,
    reject_invitation,
    sent_invitations,
    share_group_folder,
    unshare_group_folder,
)

__all__ = [
    "LIVE_STATUSES",
    "MAX_NAME_LENGTH",
    "MOUNT_ROOT",
    "RESERVED_NAMES",
    "USAGE_MODES",
    "Forbidden",
    "FolderAccess",
    "ListedFolder",
    "MountingSession",
    "Perm",
    "RawFolderDecoder",
    "Share",
    "Via",
    "accept_invitation",
    "accessible_folders",
    "allowed_hosts",
    "can_use",
    "capacity_of",
    "change_shares",
    "check_folder_name",
    "create_folder",
    "delete_folder",
    "folder_listing",
    "folder_shares",
    "get_accessible",
    "invite",
    "is_group_folder",
    "leave_folder",
    "list_invitations",
    "live_sessions_mounting",
    "mark_usage_stale",
    "mountable",
    "record_usage",
    "reject_invitation",
    "rename_folder",
    "require",
    "sent_invitations",
    "set_folder_quota",
    "share_group_folder",
    "unshare_group_folder",
]
