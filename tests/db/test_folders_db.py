"""The database side of folders (F24–F32, F40), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

from jupyter_backendai.db import admin, folders
from jupyter_backendai.db import models as m
from jupyter_backendai.db.folders import FolderAccess, Forbidden

PW = "S3cret!pw"


def _user(db, email: str, *, role: str = "user", policy: str = "folders", domain: str = "default", groups=()):
    if db.get(m.KeyPairResourcePolicy, policy) is None:
        admin.create_policy(db, policy)  # allows the "local" host
    return admin.create_user(db, email, PW, role=role, policy=policy, domain=domain, groups=groups)[0]


def _raises(exc: type[Exception], message: str):
    """pytest.raises matching the whole message, not a part of it."""
    return pytest.raises(exc, match="^" + re.escape(message) + "$")


def _names(accesses: list[FolderAccess]) -> list[tuple[str, str, str]]:
    return [(a.folder.name, a.via, a.permission) for a in accesses]


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["data", ".local", ".ssh", ".linuxbrew", "my_data-1.v2", "a" * 64, "데이터", "Ünïcödé", "_x", "1"]
)
def test_valid_folder_names(name):
    assert folders.check_folder_name(name) == name


def test_names_are_normalised_to_nfc():
    decomposed = "cafe\u0301"
    assert folders.check_folder_name(decomposed) == "caf\u00e9"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "a folder name cannot be empty"),
        (" data", "folder name ' data' starts or ends with a space"),
        ("data ", "folder name 'data ' starts or ends with a space"),
        ("my data", "folder name 'my data' contains a space: use '-' or '_' instead"),
        ("my\u3000data", "folder name 'my\\u3000data' contains a space: use '-' or '_' instead"),
        ("a" * 65, f"folder name {'a' * 65!r} has 65 characters; the limit is 64"),
        (".", "'.' cannot be a folder name"),
        ("..", "'..' cannot be a folder name"),
        ("a/b", "folder name 'a/b' contains a slash: folders cannot be nested"),
        ("a\\b", "folder name 'a\\\\b' contains a slash: folders cannot be nested"),
        ("-rf", "folder name '-rf' starts with '-'"),
        (
            "x!y",
            "folder name 'x!y' contains '!': use letters, digits, '-', '_' or '.' (a leading '.' for automount)",
        ),
        (
            "a\u200bb",
            "folder name 'a\\u200bb' contains '\\u200b': use letters, digits, '-', '_' or '.'"
            " (a leading '.' for automount)",
        ),
        (
            "\u0301a",
            "folder name '\u0301a' contains '\u0301': use letters, digits, '-', '_' or '.' (a leading '.' for automount)",
        ),
        (".bashrc", "folder name '.bashrc' is reserved: sessions use /home/work/.bashrc themselves"),
        ("id_container", "folder name 'id_container' is reserved: sessions use /home/work/id_container themselves"),
        (None, "a folder name must be text, not None"),
    ],
)
def test_invalid_folder_names(name, message):
    with _raises(admin.AdminError, message):
        folders.check_folder_name(name)


# --- hosts and creation ---------------------------------------------------------------------


def test_allowed_hosts_are_the_union_of_policy_domain_and_group(db):
    admin.create_domain(db, "lab", allowed_vfolder_hosts=["domain-nfs"])
    admin.create_policy(db, "p", allowed_vfolder_hosts=["policy-ceph"])
    group = admin.create_group(db, "proj", domain="lab", allowed_vfolder_hosts=["group-ssd"])
    user = _user(db, "ann@example.com", policy="p", domain="lab")
    assert folders.allowed_hosts(db, user) == {"policy-ceph", "domain-nfs"}
    assert folders.allowed_hosts(db, user, group) == {"policy-ceph", "domain-nfs", "group-ssd"}
    # A deactivated keypair no longer contributes its policy's hosts.
    admin.update_keypair(db, user.keypairs[0], is_active=False)
    assert folders.allowed_hosts(db, user) == {"domain-nfs"}


def test_create_user_folder(db):
    user = _user(db, "ann@example.com")
    folder = folders.create_folder(db, user, "data", quota=10 * 2**30, cloneable=True, usage_mode="model")
    db.commit()
    db.expire_all()
    assert folder.ownership_type == m.FolderOwnership.USER and folder.user_id == user.id and folder.group_id is None
    assert (folder.host, folder.creator, folder.quota, folder.cloneable) == (
        "local",
        "ann@example.com",
        10 * 2**30,
        True,
    )
    assert folder.usage_mode == "model"
    with _raises(admin.Conflict, "you already have a folder named 'data'"):
        folders.create_folder(db, user, "data")
    # Another user may use the name.
    other = _user(db, "bob@example.com")
    assert folders.create_folder(db, other, "data").user_id == other.id
    with _raises(admin.AdminError, "invalid folder permission 'rwx': choose one of ro, rw, wd"):
        folders.create_folder(db, user, "x", permission="rwx")
    with _raises(admin.AdminError, "invalid usage mode 'misc' for folder 'x': choose one of general, data, model"):
        folders.create_folder(db, user, "x", usage_mode="misc")
    with _raises(admin.AdminError, "the quota of folder 'x' must be a positive number of bytes, not -1"):
        folders.create_folder(db, user, "x", quota=-1)
    with _raises(admin.AdminError, "folder name 'my data' contains a space: use '-' or '_' instead"):
        folders.create_folder(db, user, "my data")


def test_unicode_names_are_stored_and_found(db):
    user = _user(db, "ann@example.com")
    folders.create_folder(db, user, "cafe\u0301")
    db.commit()
    assert folders.get_accessible(db, user, "caf\u00e9").folder.name == "caf\u00e9"
    assert folders.get_accessible(db, user, "cafe\u0301").folder.name == "caf\u00e9"
    folders.create_folder(db, user, "데이터")
    db.commit()
    assert [a.folder.name for a in folders.accessible_folders(db, user)] == sorted(["caf\u00e9", "데이터"])


def test_host_not_allowed(db):
    user = _user(db, "ann@example.com")
    with _raises(Forbidden, "cannot create folder 'data' on storage host 'nfs': not allowed (allowed: local)"):
        folders.create_folder(db, user, "data", host="nfs")
    # The default policy allows the local host; a policy that allows none forbids every folder.
    plain = admin.create_user(db, "plain@example.com", PW)[0]
    assert folders.create_folder(db, plain, "data").host == "local"
    admin.create_policy(db, "nohost", allowed_vfolder_hosts=[])
    admin.update_keypair(db, plain.keypairs[0], policy="nohost")
    with _raises(Forbidden, "cannot create folder 'more' on storage host 'local': not allowed (allowed: none)"):
        folders.create_folder(db, plain, "more")
    admin.update_policy(db, "folders", allowed_vfolder_hosts=["local", "nfs"])
    assert folders.create_folder(db, user, "data", host="nfs").host == "nfs"


def test_policy_limits_the_number_of_own_folders(db):
    admin.create_policy(db, "two", max_vfolder_count=2, max_vfolder_size=1000)
    user = _user(db, "ann@example.com", role="admin", policy="two", groups=["default"])
    folders.create_folder(db, user, "a")
    folders.create_folder(db, user, ".local")
    with _raises(admin.Conflict, "cannot create folder 'c': you own 2 folder(s), the most policy 'two' allows"):
        folders.create_folder(db, user, "c")
    # Group folders are not the user's own and do not count.
    group = admin.get_group(db, "default")
    folders.create_folder(db, user, "shared-data", group=group)
    folders.delete_folder(db, user, "a")
    assert folders.create_folder(db, user, "c").name == "c"
    with _raises(
        admin.AdminError, "the quota of folder 'd' (2000 bytes) exceeds policy 'two''s folder capacity (1000 bytes)"
    ):
        folders.create_folder(db, user, "d", quota=2000)
    # 0 is unlimited.
    admin.update_policy(db, "two", max_vfolder_count=0)
    for i in range(3):
        folders.create_folder(db, user, f"more{i}")


def test_group_folder_rules(db):
    admin.create_domain(db, "lab", allowed_vfolder_hosts=["local"])
    group = admin.get_group(db, "default")
    inactive = admin.create_group(db, "old")
    inactive.is_active = False
    lab_group = admin.create_group(db, "proj", domain="lab")
    user = _user(db, "ann@example.com", groups=["default"])
    dadmin = _user(db, "boss@example.com", role="admin")
    root = _user(db, "root@example.com", role="superadmin")
    with _raises(Forbidden, "cannot create group folder 'g': only admins create group folders"):
        folders.create_folder(db, user, "g", group=group)
    with _raises(
        Forbidden, "cannot create group folder 'g': group 'proj' is in domain 'lab', you administer 'default'"
    ):
        folders.create_folder(db, dadmin, "g", group=lab_group)
    with _raises(admin.AdminError, "cannot create group folder 'g': group 'old' is inactive"):
        folders.create_folder(db, dadmin, "g", group=inactive)
    with _raises(admin.AdminError, "group folder '.local' cannot start with '.': dot-folders (automount) are personal"):
        folders.create_folder(db, dadmin, ".local", group=group)
    folder = folders.create_folder(db, dadmin, "g", group=group, permission="ro")
    assert (folder.ownership_type, folder.group_id, folder.user_id) == (m.FolderOwnership.GROUP, group.id, None)
    assert folder.permission == m.FolderPermission.READ_ONLY and folder.creator == "boss@example.com"
    with _raises(admin.Conflict, "group 'default' already has a folder named 'g'"):
        folders.create_folder(db, dadmin, "g", group=group)
    # The admin's own folder may share the name of a group folder.
    folders.create_folder(db, dadmin, "g")
    # A superadmin may create group folders in any domain.
    assert folders.create_folder(db, root, "g", group=lab_group).group_id == lab_group.id


# --- visibility -----------------------------------------------------------------------------


def test_group_folder_is_visible_to_members_only(db):
    group = admin.create_group(db, "proj")
    member = _user(db, "mem@example.com", groups=["proj"])
    outsider = _user(db, "out@example.com", groups=["default"])
    dadmin = _user(db, "boss@example.com", role="admin")
    folder = folders.create_folder(db, dadmin, "team", group=group, permission="rw")
    db.commit()
    assert _names(folders.accessible_folders(db, member)) == [("team", "group", "rw")]
    assert folders.accessible_folders(db, outsider) == []
    # The admin who made it is not a member: they manage it but do not see (or mount) it.
    assert folders.accessible_folders(db, dadmin) == []
    with _raises(admin.NotFound, "no folder 'team' that you can access"):
        folders.get_accessible(db, outsider, "team")
    with _raises(admin.NotFound, f"no folder '{folder.id}' that you can access"):
        folders.get_accessible(db, outsider, str(folder.id))
    with _raises(Forbidden, "cannot mount folder 'team': only members of group 'proj' can"):
        folders.mountable(db, dadmin, ["team"])
    with _raises(admin.NotFound, "cannot mount folder 'team': no such folder that you can access"):
        folders.mountable(db, outsider, ["team"])
    # Leaving the group, or the group becoming inactive, hides it.
    group.is_active = False
    db.flush()
    assert folders.accessible_folders(db, member) == []
    with _raises(Forbidden, "cannot mount folder 'team': its group 'proj' is inactive"):
        folders.mountable(db, member, ["team"])
    group.is_active = True
    admin.remove_user_from_group(db, group, member)
    assert folders.accessible_folders(db, member) == []


def test_accessible_folders_sorting_and_precedence(db):
    group = admin.get_group(db, "default")
    ann = _user(db, "ann@example.com", groups=["default"])
    bob = _user(db, "bob@example.com", groups=["default"])
    dadmin = _user(db, "boss@example.com", role="admin")
    folders.create_folder(db, ann, "data")
    folders.create_folder(db, ann, "zeta")
    bobs = folders.create_folder(db, bob, "data")
    folders.create_folder(db, bob, "notes")
    group_data = folders.create_folder(db, dadmin, "data", group=group, permission="ro")
    folders.create_folder(db, dadmin, "notes", group=group, permission="rw")
    for name in ("data", "notes"):
        (inv,) = folders.invite(db, bob, name, ["ann@example.com"], "rw")
        folders.accept_invitation(db, ann, inv.id)
    db.commit()
    assert _names(folders.accessible_folders(db, ann)) == [
        ("data", "owner", "wd"),
        ("data", "group", "ro"),
        ("data", "shared", "rw"),
        ("notes", "group", "rw"),
        ("notes", "shared", "rw"),
        ("zeta", "owner", "wd"),
    ]
    assert folders.get_accessible(db, ann, "data").via == "owner"
    assert folders.get_accessible(db, ann, "notes").via == "group"
    assert folders.get_accessible(db, ann, str(bobs.id)).via == "shared"
    assert folders.get_accessible(db, ann, bobs.id).folder.id == bobs.id
    assert folders.get_accessible(db, ann, group_data.id).via == "group"
    # Two group folders of one name (two groups) cannot be told apart by name.
    other = admin.create_group(db, "other")
    admin.add_user_to_group(db, other, ann)
    folders.create_folder(db, dadmin, "zeta", group=other)
    folders.create_folder(db, dadmin, "notes", group=other)
    assert folders.get_accessible(db, ann, "zeta").via == "owner"
    with _raises(admin.AdminError, "folder name 'notes' is ambiguous: 2 group folders have it; use its id"):
        folders.get_accessible(db, ann, "notes")


def test_require():
    folder = m.VFolder(name="x")
    access = FolderAccess(folder, "ro", "shared", False)
    assert folders.require(access, "ro") is access
    with _raises(Forbidden, "you need rw permission on folder 'x'; you have ro"):
        folders.require(access, "rw")
    with _raises(Forbidden, "you need wd permission on folder 'x'; you have rw"):
        folders.require(FolderAccess(folder, "rw", "group", False), "wd")
    assert folders.require(FolderAccess(folder, "wd", "owner", False), "rw").permission == "wd"
    assert Forbidden("x").status == 403 and isinstance(Forbidden("x"), admin.AdminError)
    with pytest.raises(Exception, match="cannot assign"):
        access.permission = "wd"  # frozen


# --- rename and delete ----------------------------------------------------------------------


def test_rename_folder(db):
    group = admin.get_group(db, "default")
    ann = _user(db, "ann@example.com", groups=["default"])
    bob = _user(db, "bob@example.com", groups=["default"])
    dadmin = _user(db, "boss@example.com", role="admin")
    data = folders.create_folder(db, ann, "data")
    folders.create_folder(db, ann, "other")
    assert folders.rename_folder(db, ann, "data", "data2").name == "data2"
    assert folders.rename_folder(db, ann, data.id, "data2") is data  # no change
    with _raises(admin.Conflict, "cannot rename folder 'data2': you already have a folder named 'other'"):
        folders.rename_folder(db, ann, "data2", "other")
    with _raises(admin.AdminError, "folder name 'a b' contains a space: use '-' or '_' instead"):
        folders.rename_folder(db, ann, "data2", "a b")
    # A shared user, even with wd, cannot rename the owner's folder.
    (inv,) = folders.invite(db, ann, "data2", "bob@example.com", "wd")
    with _raises(
        admin.AdminError, "folder 'data2' is shared and cannot be renamed to '.data': dot-folders are not shared"
    ):
        folders.rename_folder(db, ann, "data2", ".data")
    folders.accept_invitation(db, bob, inv.id)
    with _raises(Forbidden, "only the owner of folder 'data2' can rename it; you can leave it instead"):
        folders.rename_folder(db, bob, "data2", "mine")
    # Group folders: members with wd are not enough; admins of the domain may, members or not.
    team = folders.create_folder(db, dadmin, "team", group=group)
    folders.create_folder(db, dadmin, "team2", group=group)
    with _raises(Forbidden, "only admins of domain 'default' can rename folder 'team' of group 'default'"):
        folders.rename_folder(db, ann, "team", "t")
    with _raises(admin.Conflict, "cannot rename folder 'team': group 'default' already has a folder named 'team2'"):
        folders.rename_folder(db, dadmin, "team", "team2")
    with _raises(
        admin.AdminError, "group folder 'team' cannot be renamed to '.team': dot-folders (automount) are personal"
    ):
        folders.rename_folder(db, dadmin, "team", ".team")
    assert folders.rename_folder(db, dadmin, team.id, "t").name == "t"
    with _raises(admin.NotFound, "no folder 'nope' that you can access"):
        folders.rename_folder(db, ann, "nope", "x")


def test_delete_folder(db):
    group = admin.get_group(db, "default")
    ann = _user(db, "ann@example.com", groups=["default"])
    bob = _user(db, "bob@example.com", groups=["default"])
    carl = _user(db, "carl@example.com")
    dadmin = _user(db, "boss@example.com", role="admin")
    data = folders.create_folder(db, ann, "data", host="local")
    data_id = data.id
    (inv,) = folders.invite(db, ann, "data", ["bob@example.com"], "wd")
    folders.accept_invitation(db, bob, inv.id)
    folders.invite(db, ann, "data", ["carl@example.com"], "ro")
    with _raises(Forbidden, "only the owner of folder 'data' can delete it; you can leave it instead"):
        folders.delete_folder(db, bob, "data")
    with _raises(admin.NotFound, "no folder 'data' that you can access"):
        folders.delete_folder(db, carl, "data")  # invited, not yet accepted
    deleted = folders.delete_folder(db, ann, "data")
    db.commit()
    # The caller removes the directory after the commit: the row's values are still readable.
    assert (deleted.id, deleted.name, deleted.host, deleted.user_id) == (data_id, "data", "local", ann.id)
    assert db.get(m.VFolder, data_id) is None
    for table in (m.VFolderPermission, m.VFolderInvitation):
        assert db.scalar(select(func.count()).select_from(table)) == 0
    assert folders.accessible_folders(db, bob) == []
    # Group folders: a member with wd cannot delete; an admin of the domain can.
    folders.create_folder(db, dadmin, "team", group=group, permission="wd")
    with _raises(Forbidden, "only admins of domain 'default' can delete folder 'team' of group 'default'"):
        folders.delete_folder(db, ann, "team")
    folders.create_folder(db, dadmin, "ro-team", group=group, permission="ro")
    with _raises(Forbidden, "you need wd permission on folder 'ro-team'; you have ro"):
        folders.delete_folder(db, ann, "ro-team")
    assert folders.delete_folder(db, dadmin, "team").name == "team"
    assert [a.folder.name for a in folders.accessible_folders(db, ann)] == ["ro-team"]


def _live_session(db, user: m.User, name: str, status: m.SessionStatus, mounts: list[dict]) -> m.Session:
    keypair = next(k for k in user.keypairs if k.is_active)
    session = m.Session(
        name=name, server_name=name, user_id=user.id, access_key=keypair.access_key, domain_name=user.domain_name,
        scaling_group="default", image="python:3", status=status, mounts=mounts,
    )  # fmt: skip
    db.add(session)
    db.flush()
    return session


def test_a_folder_mounted_in_a_live_session_cannot_be_deleted(db):
    group = admin.get_group(db, "default")
    ann = _user(db, "ann@example.com", groups=["default"])
    bob = _user(db, "bob@example.com", groups=["default"])
    boss = _user(db, "boss@example.com", role="admin")
    data = folders.create_folder(db, ann, "data")
    (inv,) = folders.invite(db, ann, "data", ["bob@example.com"], "rw")
    folders.accept_invitation(db, bob, inv.id)
    mount = [{"folder": "data", "id": str(data.id), "permission": "wd"}]
    _live_session(db, ann, "first", m.SessionStatus.PENDING, mount)
    with _raises(
        admin.Conflict,
        "folder 'data' is mounted in your live session 'first' (PENDING): terminate them before deleting it",
    ):
        folders.delete_folder(db, ann, "data")
    bobs = _live_session(db, bob, "bobs", m.SessionStatus.RUNNING, [{"folder": "data", "id": str(data.id)}])
    _live_session(db, ann, "second", m.SessionStatus.TERMINATING, mount)
    with _raises(
        admin.Conflict,
        "folder 'data' is mounted in your live sessions 'first' (PENDING), 'second' (TERMINATING)"
        " and 1 live session of bob: terminate them before deleting it",
    ):
        folders.delete_folder(db, ann, data.id)
    # Finished sessions, other folders of the same name and other users' sessions of that name do not count.
    for session in db.scalars(select(m.Session)):
        session.status = m.SessionStatus.TERMINATED
    other = folders.create_folder(db, bob, "notes")
    _live_session(db, bob, "notes-user", m.SessionStatus.RUNNING, [{"folder": "notes", "id": str(other.id)}])
    _live_session(db, ann, "elsewhere", m.SessionStatus.RUNNING, [{"folder": "data", "id": str(uuid.uuid4())}])
    assert folders.delete_folder(db, ann, "data").id == data.id
    assert bobs.status == m.SessionStatus.TERMINATED
    # A session row without ids (recorded by name) and an automounted dot-folder of the owner.
    legacy = folders.create_folder(db, ann, "legacy")
    _live_session(db, ann, "old-style", m.SessionStatus.RUNNING, [{"folder": "legacy"}])
    with _raises(admin.Conflict, "folder 'legacy' is mounted in your live session 'old-style' (RUNNING): "
                                 "terminate them before deleting it"):  # fmt: skip
        folders.delete_folder(db, ann, legacy.id)
    dot = folders.create_folder(db, ann, ".local")
    with pytest.raises(admin.Conflict, match="'.local' is mounted in your live sessions 'elsewhere' .RUNNING., "):
        folders.delete_folder(db, ann, dot.id)
    # A group folder: the admin deleting it sees whose sessions mount it.
    team = folders.create_folder(db, boss, "team", group=group, permission="rw")
    _live_session(db, bob, "team-work", m.SessionStatus.SCHEDULED, [{"folder": "team", "id": str(team.id)}])
    with _raises(
        admin.Conflict, "folder 'team' is mounted in 1 live session of bob: terminate them before deleting it"
    ):
        folders.delete_folder(db, boss, "team")
    assert folders.live_sessions_mounting(db, team)[0].name == "team-work"


def test_a_measured_size_is_kept_unless_an_older_one_comes_late(db):
    import datetime as dt

    ann = _user(db, "ann@example.com")
    data = folders.create_folder(db, ann, "data")
    t0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    folders.record_usage(db, data.id, 100, 2, t0)
    folders.record_usage(db, data.id, 50, 1, t0 - dt.timedelta(seconds=1))  # a slow walk that began earlier
    db.commit()
    db.refresh(data)
    assert (data.used_bytes, data.file_count, data.usage_at) == (100, 2, t0)
    folders.record_usage(db, data.id, 300, 3)  # now
    folders.record_usage(db, uuid.uuid4(), 1, 1)  # a folder deleted meanwhile: nothing happens
    db.commit()
    db.refresh(data)
    assert (data.used_bytes, data.file_count) == (300, 3) and data.usage_at > t0


# --- invitations ----------------------------------------------------------------------------


def test_invitation_flow(db):
    ann = _user(db, "ann@example.com")
    bob = _user(db, "bob@example.com")
    folder = folders.create_folder(db, ann, "paper")
    db.commit()
    (inv,) = folders.invite(db, ann, "paper", ["Bob@Example.com"], "ro")
    db.commit()
    assert (inv.inviter, inv.invitee, inv.state) == ("ann@example.com", "bob@example.com", m.InvitationState.PENDING)
    assert folders.list_invitations(db, bob) == [inv]
    assert folders.list_invitations(db, ann) == []
    assert folders.sent_invitations(db, ann) == [inv]
    assert folders.accessible_folders(db, bob) == []  # not before accepting
    row = folders.accept_invitation(db, bob, str(inv.id))
    db.commit()
    assert (row.vfolder_id, row.user_id, row.permission) == (folder.id, bob.id, m.FolderPermission.READ_ONLY)
    assert inv.state == m.InvitationState.ACCEPTED
    assert folders.list_invitations(db, bob) == []
    access = folders.get_accessible(db, bob, "paper")
    assert (access.folder.id, access.permission, access.via, access.is_automount) == (folder.id, "ro", "shared", False)
    assert folders.require(access, "ro") is access
    with _raises(Forbidden, "you need rw permission on folder 'paper'; you have ro"):
        folders.require(access, "rw")
    chosen, automount = folders.mountable(db, bob, ["paper"])
    assert [a.folder.id for a in chosen] == [folder.id] and automount == []
    # The owner still owns it; the owner cannot leave it.
    assert _names(folders.accessible_folders(db, ann)) == [("paper", "owner", "wd")]
    with _raises(admin.AdminError, "you own folder 'paper' and cannot leave it; delete it instead"):
        folders.leave_folder(db, ann, "paper")
    assert folders.leave_folder(db, bob, "paper").id == folder.id
    db.commit()
    assert folders.accessible_folders(db, bob) == []
    with _raises(admin.NotFound, "no folder 'paper' that you can access"):
        folders.leave_folder(db, bob, "paper")
    # Invited again after leaving: a new invitation is possible.
    (again,) = folders.invite(db, ann, folder, "bob@example.com", "rw")
    folders.accept_invitation(db, bob, again.id)
    assert folders.get_accessible(db, bob, "paper").permission == "rw"


def test_invitation_rules(db):
    group = admin.get_group(db, "default")
    ann = _user(db, "ann@example.com")
    bob = _user(db, "bob@example.com")
    carl = _user(db, "carl@example.com")
    _user(db, "gone@example.com", groups=[])
    admin.deactivate_user(db, admin.get_user(db, "gone@example.com"))
    dadmin = _user(db, "boss@example.com", role="admin", groups=["default"])
    folders.create_folder(db, ann, "paper")
    folders.create_folder(db, ann, ".local")
    folders.create_folder(db, dadmin, "team", group=group)
    with _raises(admin.AdminError, "you cannot invite yourself to folder 'paper'"):
        folders.invite(db, ann, "paper", ["ann@example.com"], "ro")
    with _raises(admin.NotFound, "no user with e-mail 'nobody@example.com' (folder 'paper')"):
        folders.invite(db, ann, "paper", ["bob@example.com", "nobody@example.com"], "ro")
    assert folders.list_invitations(db, bob) == []  # nothing invited when one address is wrong
    with _raises(admin.AdminError, "user 'gone@example.com' is not active and cannot be invited to folder 'paper'"):
        folders.invite(db, ann, "paper", ["gone@example.com"], "ro")
    with _raises(admin.AdminError, "invalid e-mail address 'bob'"):
        folders.invite(db, ann, "paper", ["bob"], "ro")
    with _raises(admin.AdminError, "name at least one e-mail address to invite to folder 'paper'"):
        folders.invite(db, ann, "paper", [], "ro")
    with _raises(admin.AdminError, "invalid folder permission 'owner': choose one of ro, rw, wd"):
        folders.invite(db, ann, "paper", ["bob@example.com"], "owner")
    with _raises(admin.AdminError, "folder '.local' cannot be shared: dot-folders (automount) are personal"):
        folders.invite(db, ann, ".local", ["bob@example.com"], "ro")
    with _raises(admin.AdminError, "folder 'team' is a group folder: admins share it with members instead"):
        folders.invite(db, dadmin, "team", ["bob@example.com"], "ro")
    with _raises(admin.NotFound, "no folder 'paper' that you can access"):
        folders.invite(db, bob, "paper", ["carl@example.com"], "ro")
    to_bob, to_carl = folders.invite(db, ann, "paper", ["bob@example.com", "carl@example.com"], "rw")
    with _raises(admin.Conflict, "'bob@example.com' already has a pending invitation to folder 'paper'"):
        folders.invite(db, ann, "paper", ["bob@example.com"], "ro")
    # Only the invitee accepts; strangers do not even see the invitation.
    with _raises(Forbidden, "only 'bob@example.com' can accept the invitation to folder 'paper'"):
        folders.accept_invitation(db, ann, to_bob.id)
    with _raises(admin.NotFound, f"no invitation '{to_bob.id}'"):
        folders.accept_invitation(db, carl, to_bob.id)
    with _raises(admin.NotFound, "no invitation 'not-an-id'"):
        folders.reject_invitation(db, bob, "not-an-id")
    with _raises(admin.NotFound, f"no invitation '{to_bob.id}'"):
        folders.reject_invitation(db, carl, to_bob.id)
    folders.accept_invitation(db, bob, to_bob.id)
    with _raises(admin.AdminError, "the invitation to folder 'paper' is already accepted"):
        folders.accept_invitation(db, bob, to_bob.id)
    with _raises(admin.Conflict, "folder 'paper' is already shared with 'bob@example.com'"):
        folders.invite(db, ann, "paper", ["bob@example.com"], "ro")
    # A shared user, even with rw, cannot invite others to it.
    with _raises(Forbidden, "only the owner of folder 'paper' can invite others to it"):
        folders.invite(db, bob, "paper", ["carl@example.com"], "ro")
    # The inviter cancels, the invitee rejects.
    assert folders.reject_invitation(db, ann, to_carl.id).state == m.InvitationState.CANCELED
    with _raises(admin.AdminError, "the invitation to folder 'paper' is already canceled"):
        folders.accept_invitation(db, carl, to_carl.id)
    (again,) = folders.invite(db, ann, "paper", ["carl@example.com"], "ro")
    assert folders.reject_invitation(db, carl, again.id).state == m.InvitationState.REJECTED
    assert folders.accessible_folders(db, carl) == []
    assert folders.list_invitations(db, carl) == []


def test_group_folders_cannot_be_left(db):
    group = admin.get_group(db, "default")
    ann = _user(db, "ann@example.com", groups=["default"])
    dadmin = _user(db, "boss@example.com", role="admin")
    folders.create_folder(db, dadmin, "team", group=group)
    with _raises(admin.AdminError, "folder 'team' belongs to group 'default'; it goes when you leave the group"):
        folders.leave_folder(db, ann, "team")


# --- per-user permissions on group folders --------------------------------------------------


def test_per_user_share_overrides_the_group_folder_permission(db):
    group = admin.create_group(db, "proj")
    ann = _user(db, "ann@example.com", groups=["proj"])
    bob = _user(db, "bob@example.com", groups=["proj"])
    _user(db, "out@example.com", groups=["default"])
    dadmin = _user(db, "boss@example.com", role="admin")
    admin.create_domain(db, "lab")
    other_admin = _user(db, "lab-boss@example.com", role="admin", domain="lab")
    root = _user(db, "root@example.com", role="superadmin", domain="lab")
    folder = folders.create_folder(db, dadmin, "team", group=group, permission="ro")
    own = folders.create_folder(db, ann, "mine")
    (row,) = folders.share_group_folder(db, dadmin, "team", ["ann@example.com"], "rw")
    db.commit()
    assert (row.vfolder_id, row.user_id, row.permission) == (folder.id, ann.id, m.FolderPermission.READ_WRITE)
    assert folders.get_accessible(db, ann, "team").permission == "rw"
    assert folders.get_accessible(db, bob, "team").permission == "ro"
    # The override is a permission on the group folder, not a share: ann sees it once, via the group.
    assert _names(folders.accessible_folders(db, ann)) == [("mine", "owner", "wd"), ("team", "group", "rw")]
    # Sharing again changes the permission (it may also lower it).
    folders.share_group_folder(db, root, folder.id, "ann@example.com", "ro")
    assert folders.get_accessible(db, ann, "team").permission == "ro"
    folders.share_group_folder(db, dadmin, "team", "ann@example.com", "wd")
    with _raises(admin.AdminError, "user 'out@example.com' is not a member of group 'proj' of folder 'team'"):
        folders.share_group_folder(db, dadmin, "team", ["out@example.com"], "rw")
    with _raises(Forbidden, "only admins of domain 'default' can share group folder 'team'"):
        folders.share_group_folder(db, ann, "team", ["bob@example.com"], "wd")
    with _raises(admin.NotFound, "no folder 'team' that you can access"):
        folders.share_group_folder(db, other_admin, "team", ["bob@example.com"], "wd")
    boss_own = folders.create_folder(db, dadmin, "boss-own")
    with _raises(admin.AdminError, "folder 'boss-own' is not a group folder: its owner invites users to it"):
        folders.share_group_folder(db, dadmin, boss_own.id, ["bob@example.com"], "rw")
    # Admins manage group folders, not other users' folders.
    with _raises(admin.NotFound, f"no folder '{own.id}' that you can access"):
        folders.share_group_folder(db, dadmin, own.id, ["bob@example.com"], "rw")
    # An override grants nothing to someone who left the group.
    admin.remove_user_from_group(db, group, ann)
    assert _names(folders.accessible_folders(db, ann)) == [("mine", "owner", "wd")]
    admin.add_user_to_group(db, group, ann)
    assert folders.get_accessible(db, ann, "team").permission == "wd"
    assert folders.unshare_group_folder(db, dadmin, "team", ["ann@example.com"]) == ["ann@example.com"]
    assert folders.get_accessible(db, ann, "team").permission == "ro"
    with _raises(admin.NotFound, "folder 'team' has no permission of its own for 'ann@example.com'"):
        folders.unshare_group_folder(db, dadmin, "team", ["ann@example.com"])
    with _raises(Forbidden, "only admins of domain 'default' can unshare group folder 'team'"):
        folders.unshare_group_folder(db, bob, "team", ["ann@example.com"])


# --- mounting -------------------------------------------------------------------------------


def test_mountable_and_automount(db):
    group = admin.create_group(db, "proj")
    other_group = admin.create_group(db, "other")
    ann = _user(db, "ann@example.com", groups=["proj", "other"])
    bob = _user(db, "bob@example.com")
    dadmin = _user(db, "boss@example.com", role="admin")
    local = folders.create_folder(db, ann, ".local")
    folders.create_folder(db, ann, ".ssh")
    data = folders.create_folder(db, ann, "data")
    folders.create_folder(db, bob, ".local")  # bob's: never ann's automount
    team = folders.create_folder(db, dadmin, "team", group=group)
    folders.create_folder(db, dadmin, "elsewhere", group=other_group)
    bobs = folders.create_folder(db, bob, "data")
    (inv,) = folders.invite(db, bob, bobs.id, "ann@example.com", "ro")
    folders.accept_invitation(db, ann, inv.id)
    db.commit()

    chosen, automount = folders.mountable(db, ann, ["data", str(team.id), "data"])
    assert [(a.folder.id, a.via) for a in chosen] == [(data.id, "owner"), (team.id, "group")]
    assert [(a.folder.name, a.folder.user_id) for a in automount] == [(".local", ann.id), (".ssh", ann.id)]
    assert all(a.is_automount for a in automount)
    assert automount[0].mount_path == "/home/work/.local"
    # Nothing chosen: the dot-folders are still mounted (F30).
    assert [a.folder.id for a in folders.mountable(db, ann, [])[1]] == [local.id, automount[1].folder.id]
    # A dot-folder chosen explicitly is not mounted twice.
    chosen, automount = folders.mountable(db, ann, [".local"])
    assert [a.folder.name for a in chosen] == [".local"] and [a.folder.name for a in automount] == [".ssh"]
    with _raises(admin.NotFound, "cannot mount folder 'nope': no such folder that you can access"):
        folders.mountable(db, ann, ["data", "nope"])
    with _raises(admin.AdminError, "cannot mount two folders named 'data': both would be /home/work/data"):
        folders.mountable(db, ann, ["data", bobs.id])
    # In a session of one group, another group's folders cannot be mounted.
    assert [a.folder.name for a in folders.mountable(db, ann, ["team"], group=group)[0]] == ["team"]
    with _raises(Forbidden, "cannot mount folder 'elsewhere' of group 'other' in a session of group 'proj'"):
        folders.mountable(db, ann, ["elsewhere"], group=group)
    # Bob mounts his own .local, not ann's.
    assert [a.folder.user_id for a in folders.mountable(db, bob, [])[1]] == [bob.id]


def test_unknown_uuid_is_not_found(db):
    ann = _user(db, "ann@example.com")
    missing = uuid.uuid4()
    with _raises(admin.NotFound, f"no folder '{missing}' that you can access"):
        folders.get_accessible(db, ann, missing)
    with _raises(admin.NotFound, f"no folder '{missing}' that you can access"):
        folders.delete_folder(db, ann, str(missing))
