"""The ``/folders`` API against a live manager: owners, other users, admins, shares and path escapes."""

from __future__ import annotations

import io
import os
import resource
import time
import urllib.parse
import uuid
import zipfile
from pathlib import Path

import pytest
import requests

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.storage.safepath import MAX_DEPTH, OpenFolder, rmtree_at
from testing.manager import Manager, create_folder, folder_directory
from testing.sessions import ProductDB


def q(name: str) -> str:
    """A folder name or file path as it goes into a URL path."""
    return urllib.parse.quote(name, safe="")


def names(manager, who: str) -> list[str]:
    r = manager.call("GET", "/folders", who, json_body={})
    assert r.status_code == 200, r.text
    return [f["name"] for f in r.json()]


def title(r: requests.Response) -> str:
    return r.json()["title"]


@pytest.fixture
def team(manager):
    """Group ``team`` with alice as its only member."""

    def setup(db):
        group = admin.create_group(db, "team")
        admin.add_user_to_group(db, group, admin.get_user(db, "alice"))
        return str(group.id)

    return manager.pdb.setup(setup)


# --- creating, listing, looking up ---------------------------------------------------------------


def test_create_list_and_look_up(manager):
    view = create_folder(manager, "alice", "data", usage_mode="model", cloneable=True)
    assert view["name"] == "data" and view["host"] == "local" and view["usage_mode"] == "model"
    assert view["permission"] == "wd" and view["is_owner"] is True and view["ownership_type"] == "user"
    assert view["type"] == "user" and view["cloneable"] is True and view["automount"] is False
    assert view["status"] == "ready" and view["created_at"] and view["max_size"] is None
    assert folder_directory(manager, view["id"]).is_dir()
    assert create_folder(manager, "alice", ".local")["automount"] is True

    assert names(manager, "alice") == [".local", "data"]
    assert names(manager, "bob") == []
    assert names(manager, "admin") == []  # admins do not see users' folders as theirs

    # Query arguments work as well as the JSON body Backend.AI's client sends on GET.
    by_query = manager.call("GET", "/folders/_/id", "alice", params={"name": "data"})
    by_body = manager.call("GET", "/folders/_/id", "alice", json_body={"name": "data"})
    assert by_query.json()["id"] == by_body.json()["id"] == view["id"]
    assert manager.call("GET", "/folders/_/id", "bob", params={"name": "data"}).status_code == 404

    hosts = manager.call("GET", "/folders/_/hosts", "alice", json_body={}).json()
    assert hosts == {"default": "local", "allowed": ["local"]}

    one = manager.call("GET", f"/folders/{view['id']}", "alice")
    assert one.status_code == 200 and one.json()["name"] == "data"


def test_create_refusals(manager, team):
    create_folder(manager, "alice", "data")
    dup = manager.call("POST", "/folders", "alice", json_body={"name": "data"})
    assert dup.status_code == 409 and "already have a folder named 'data'" in title(dup)
    bad = manager.call("POST", "/folders", "alice", json_body={"name": "my data"})
    assert bad.status_code == 400 and "contains a space" in title(bad)
    missing = manager.call("POST", "/folders", "alice", json_body={})
    assert missing.status_code == 400 and title(missing) == "'name' is required"
    wrong_type = manager.call("POST", "/folders", "alice", json_body={"name": ["x"]})
    assert wrong_type.status_code == 400 and title(wrong_type) == "'name' must be a str"
    garbage = manager.call("POST", "/folders", "alice", data=b"{not json")
    assert garbage.status_code == 400 and title(garbage) == "the request body is not valid JSON"
    host = manager.call("POST", "/folders", "alice", json_body={"name": "x", "host": "nfs"})
    assert host.status_code == 403 and "not allowed (allowed: local)" in title(host)
    mode = manager.call("POST", "/folders", "alice", json_body={"name": "x", "usage_mode": "weird"})
    assert mode.status_code == 400 and "invalid usage mode" in title(mode)
    group = manager.call("POST", "/folders", "alice", json_body={"name": "g", "group": "team"})
    assert group.status_code == 403 and "only admins create group folders" in title(group)
    nogroup = manager.call("POST", "/folders", "admin", json_body={"name": "g", "group": "nope"})
    assert nogroup.status_code == 404
    assert names(manager, "alice") == ["data"]


def test_non_ascii_folder_names_in_urls(manager):
    view = create_folder(manager, "alice", "데이터")
    assert manager.call("GET", f"/folders/{q('데이터')}/files", "alice").status_code == 200
    renamed = manager.call("POST", f"/folders/{q('데이터')}/rename", "alice", json_body={"new_name": "Ünïcödé"})
    assert renamed.status_code == 201 and renamed.json()["name"] == "Ünïcödé" and renamed.json()["id"] == view["id"]
    assert names(manager, "alice") == ["Ünïcödé"]


# --- group folders -----------------------------------------------------------------------------


def test_group_folders(manager, team):
    view = create_folder(manager, "admin", "shared-data", group="team", permission="ro")
    assert view["ownership_type"] == "group" and view["group"] == team and view["group_name"] == "team"
    assert names(manager, "alice") == ["shared-data"]
    listed = manager.call("GET", "/folders", "alice").json()[0]
    assert listed["permission"] == "ro" and listed["is_owner"] is False
    assert create_folder(manager, "admin", "by-id", group=team)["group"] == team

    # bob is not in the group: neither the name nor the id reaches the folder.
    for ref in ("shared-data", view["id"]):
        assert manager.call("GET", f"/folders/{ref}/files", "bob").status_code == 404
        assert manager.call("POST", f"/folders/{ref}/rename", "bob", json_body={"new_name": "x"}).status_code == 404
        assert manager.call("DELETE", f"/folders/{ref}", "bob").status_code == 404
    # alice (ro member) cannot write, nor rename or delete it.
    assert manager.call("POST", "/folders/shared-data/mkdir", "alice", json_body={"path": "d"}).status_code == 403
    assert manager.call("DELETE", "/folders/shared-data", "alice").status_code == 403

    # The admin shares it rw with alice (a member), not with bob (not a member).
    share = manager.call("POST", "/folders/shared-data/share", "admin",
                         json_body={"permission": "rw", "emails": ["alice@example.com"]})  # fmt: skip
    assert share.status_code == 201 and share.json() == {"shared_emails": ["alice@example.com"]}
    not_member = manager.call("POST", "/folders/shared-data/share", "admin",
                              json_body={"permission": "rw", "emails": ["bob@example.com"]})  # fmt: skip
    assert not_member.status_code == 400 and "not a member of group 'team'" in title(not_member)
    assert manager.call("POST", "/folders/shared-data/share", "alice",
                        json_body={"permission": "wd", "emails": ["alice@example.com"]}).status_code == 403  # fmt: skip
    assert manager.call("POST", "/folders/shared-data/mkdir", "alice", json_body={"path": "d"}).status_code == 201
    unshare = manager.call(
        "DELETE", "/folders/shared-data/unshare", "admin", json_body={"emails": ["alice@example.com"]}
    )
    assert unshare.status_code == 200 and unshare.json() == {"unshared_emails": ["alice@example.com"]}
    assert manager.call("POST", "/folders/shared-data/mkdir", "alice", json_body={"path": "e"}).status_code == 403

    # The admin manages (renames, deletes) but, not being a member, cannot read the files.
    assert manager.call("GET", "/folders/shared-data/files", "admin").status_code == 404
    renamed = manager.call("POST", f"/folders/{view['id']}/rename", "admin", json_body={"new_name": "archive"})
    assert renamed.status_code == 201 and renamed.json()["name"] == "archive"
    assert manager.call("DELETE", f"/folders/{view['id']}", "admin").status_code == 204
    assert not folder_directory(manager, view["id"]).exists()
    assert names(manager, "alice") == ["by-id"]

    dot = manager.call("POST", "/folders", "admin", json_body={"name": ".local", "group": "team"})
    assert dot.status_code == 400 and "dot-folders" in title(dot)


# --- files -------------------------------------------------------------------------------------


def test_file_operations(manager):
    view = create_folder(manager, "alice", "work")
    root = folder_directory(manager, view["id"])
    mk = manager.call("POST", "/folders/work/mkdir", "alice", json_body={"path": "a b/ü/ç", "parents": True})
    assert mk.status_code == 201 and mk.json() == {"results": ["a b/ü/ç"]}
    again = manager.call("POST", "/folders/work/mkdir", "alice", json_body={"path": "a b"})
    assert again.status_code == 409
    ok = manager.call("POST", "/folders/work/mkdir", "alice", json_body={"path": ["a b", "x"], "exist_ok": True})
    assert ok.status_code == 201 and ok.json()["results"] == ["a b", "x"]
    (root / "a b" / "note 한글.txt").write_text("hello")

    listing = manager.call("GET", "/folders/work/files", "alice", params={"path": "a b"})
    assert listing.status_code == 200, listing.text
    items = {i["name"]: i for i in listing.json()["items"]}
    assert (
        items["ü"]["type"] == "dir" and items["note 한글.txt"]["type"] == "file" and items["note 한글.txt"]["size"] == 5
    )
    top = manager.call("GET", "/folders/work/files", "alice", json_body={"path": ""}).json()
    assert [i["name"] for i in top["items"]] == ["a b", "x"]

    rn = manager.call("POST", "/folders/work/rename-file", "alice",
                      json_body={"target_path": "a b/note 한글.txt", "new_name": "renamed é.txt"})  # fmt: skip
    assert rn.status_code == 200 and rn.json() == {"path": "a b/renamed é.txt"}
    mv = manager.call("POST", "/folders/work/move-file", "alice", json_body={"src": "a b/renamed é.txt", "dst": "x"})
    assert mv.status_code == 200 and mv.json() == {"path": "x/renamed é.txt"}
    mv2 = manager.call("POST", "/folders/work/move-file", "alice",
                       json_body={"src": "x/renamed é.txt", "dst": "a b/ü/final.txt"})  # fmt: skip
    assert mv2.status_code == 200 and mv2.json() == {"path": "a b/ü/final.txt"}
    assert (root / "a b" / "ü" / "final.txt").read_text() == "hello"
    into_self = manager.call("POST", "/folders/work/move-file", "alice", json_body={"src": "a b", "dst": "a b/ü"})
    assert into_self.status_code == 409

    usage = manager.call("GET", "/folders/work/usage", "alice").json()
    assert usage["used_bytes"] == 5 and usage["file_count"] == 1 and usage["quota"] is None
    by_id = manager.call("GET", "/folders/_/usage", "alice", params={"id": view["id"]}).json()
    assert by_id["used_bytes"] == 5
    # The listing shows the size last measured (it never walks the directories itself).
    listed = next(f for f in manager.call("GET", "/folders", "alice").json() if f["name"] == "work")
    assert listed["cur_size"] == 5 and listed["file_count"] == 1 and listed["usage_at"]

    dir_no_rec = manager.call("DELETE", "/folders/work/delete-files", "alice", json_body={"files": ["a b"]})
    assert dir_no_rec.status_code == 409 and "needs recursive" in title(dir_no_rec)
    one_bad = manager.call("POST", "/folders/work/delete-files", "alice",
                           json_body={"files": ["x", "missing"], "recursive": True})  # fmt: skip
    assert one_bad.status_code == 404 and (root / "x").is_dir()  # nothing deleted
    gone = manager.call(
        "DELETE", "/folders/work/delete-files", "alice", json_body={"files": ["a b", "x"], "recursive": True}
    )
    assert gone.status_code == 200 and sorted(os.listdir(root)) == []
    not_list = manager.call("POST", "/folders/work/delete-files", "alice", json_body={"files": {"a": 1}})
    assert not_list.status_code == 400


def test_other_users_cannot_touch_a_folder(manager):
    view = create_folder(manager, "alice", "private")
    (folder_directory(manager, view["id"]) / "secret.txt").write_text("s")
    calls = [
        ("GET", "files", None),
        ("GET", "usage", None),
        ("POST", "mkdir", {"path": "d"}),
        ("POST", "rename", {"new_name": "mine"}),
        ("POST", "rename-file", {"target_path": "secret.txt", "new_name": "x"}),
        ("POST", "move-file", {"src": "secret.txt", "dst": "y"}),
        ("DELETE", "delete-files", {"files": ["secret.txt"]}),
        ("POST", "request-upload", {"path": "f", "size": 1}),
        ("POST", "request-download", {"path": "secret.txt"}),
        ("POST", "invite", {"perm": "rw", "user_ids": ["bob@example.com"]}),
        ("POST", "leave", None),
    ]
    for who in ("bob", "admin"):
        for ref in ("private", view["id"], view["id"].replace("-", "")):
            for method, action, body in calls:
                r = manager.call(method, f"/folders/{ref}/{action}", who, json_body=body)
                assert r.status_code == 404, (who, ref, action, r.text)
            assert manager.call("DELETE", f"/folders/{ref}", who).status_code == 404
        assert manager.call("GET", "/folders/_/usage", who, params={"id": view["id"]}).status_code == 404
    assert (folder_directory(manager, view["id"]) / "secret.txt").read_text() == "s"
    assert names(manager, "alice") == ["private"]
    assert manager.call("POST", "/folders/private/leave", "alice").status_code == 400  # owners delete instead


def test_rename_and_delete_folder(manager):
    view = create_folder(manager, "alice", "old")
    missing = manager.call("POST", "/folders/old/rename", "alice", json_body={})
    assert missing.status_code == 400 and title(missing) == "'new_name' is required"
    assert manager.call("POST", "/folders/old/rename", "alice", json_body={"new_name": "a/b"}).status_code == 400
    assert manager.call("POST", "/folders/old/rename", "alice", json_body={"new_name": "new"}).status_code == 201
    assert names(manager, "alice") == ["new"]
    (folder_directory(manager, view["id"]) / "f").write_text("x")
    assert manager.call("DELETE", "/folders", "alice", json_body={"id": view["id"]}).status_code == 204
    assert names(manager, "alice") == [] and not folder_directory(manager, view["id"]).exists()
    assert manager.call("DELETE", "/folders/new", "alice").status_code == 404


# --- invitations and read-only shares ------------------------------------------------------------


def test_invitations_and_read_only_share(manager):
    view = create_folder(manager, "alice", "proj")
    root = folder_directory(manager, view["id"])
    (root / "readme.txt").write_text("read me")
    bad = manager.call("POST", "/folders/proj/invite", "alice", json_body={"perm": "ro"})
    assert bad.status_code == 400 and title(bad) == "'user_ids' is required"
    nobody = manager.call("POST", "/folders/proj/invite", "alice", json_body={"perm": "ro", "user_ids": ["x@y.org"]})
    assert nobody.status_code == 404
    inv = manager.call(
        "POST", "/folders/proj/invite", "alice", json_body={"perm": "ro", "user_ids": ["bob@example.com"]}
    )
    assert inv.status_code == 201 and inv.json() == {"invited_ids": ["bob@example.com"]}
    twice = manager.call("POST", "/folders/proj/invite", "alice", json_body={"perm": "ro", "emails": ["bob"]})
    assert twice.status_code == 409

    listed = manager.call("GET", "/folders/invitations/list", "bob").json()["invitations"]
    assert [(i["inviter"], i["perm"], i["vfolder_name"]) for i in listed] == [("alice@example.com", "ro", "proj")]
    inv_id = listed[0]["id"]
    assert manager.call("GET", "/folders/invitations/list", "admin").json() == {"invitations": []}
    sent = manager.call("GET", "/folders/invitations/list-sent", "alice").json()["invitations"]
    assert [i["id"] for i in sent] == [inv_id]

    # Someone else cannot accept or reject bob's invitation, nor can the inviter accept it.
    assert manager.call("POST", "/folders/invitations/accept", "admin", json_body={"inv_id": inv_id}).status_code == 404
    assert (
        manager.call("DELETE", "/folders/invitations/delete", "admin", json_body={"inv_id": inv_id}).status_code == 404
    )
    assert manager.call("POST", "/folders/invitations/accept", "alice", json_body={"inv_id": inv_id}).status_code == 403
    assert manager.call("POST", "/folders/invitations/accept", "bob", json_body={}).status_code == 400
    assert manager.call("POST", "/folders/invitations/accept", "bob", json_body={"inv_id": "nope"}).status_code == 404
    accepted = manager.call("POST", "/folders/invitations/accept", "bob", json_body={"inv_id": inv_id})
    assert accepted.status_code == 200 and accepted.json() == {"id": view["id"], "permission": "ro"}
    assert manager.call("POST", "/folders/invitations/accept", "bob", json_body={"inv_id": inv_id}).status_code == 400

    shared = manager.call("GET", "/folders", "bob").json()
    assert [(f["name"], f["permission"], f["is_owner"], f["user_email"]) for f in shared] == [
        ("proj", "ro", False, "alice@example.com")
    ]
    # Reading works; nothing that writes does.
    assert manager.call("GET", "/folders/proj/files", "bob").status_code == 200
    assert (
        manager.call("POST", "/folders/proj/request-download", "bob", json_body={"path": "readme.txt"}).status_code
        == 200
    )
    writes = [
        ("POST", "mkdir", {"path": "d"}),
        ("POST", "rename-file", {"target_path": "readme.txt", "new_name": "x"}),
        ("POST", "move-file", {"src": "readme.txt", "dst": "y"}),
        ("DELETE", "delete-files", {"files": ["readme.txt"]}),
        ("POST", "request-upload", {"path": "f", "size": 1}),
        ("POST", "rename", {"new_name": "mine"}),
        ("POST", "invite", {"perm": "rw", "user_ids": ["admin@example.com"]}),
    ]
    for method, action, body in writes:
        r = manager.call(method, f"/folders/proj/{action}", "bob", json_body=body)
        assert r.status_code == 403, (action, r.text)
    assert manager.call("DELETE", "/folders/proj", "bob").status_code == 403
    assert sorted(os.listdir(root)) == ["readme.txt"] and names(manager, "alice") == ["proj"]

    left = manager.call("POST", "/folders/proj/leave", "bob")
    assert left.status_code == 200 and left.json()["id"] == view["id"]
    assert names(manager, "bob") == []

    # An invitation can be rejected by the invitee or cancelled by the inviter.
    manager.call("POST", "/folders/proj/invite", "alice", json_body={"perm": "rw", "user_ids": ["bob@example.com"]})
    inv_id = manager.call("GET", "/folders/invitations/list", "bob").json()["invitations"][0]["id"]
    rejected = manager.call("POST", "/folders/invitations/delete", "bob", json_body={"inv_id": inv_id})
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    manager.call("POST", "/folders/proj/invite", "alice", json_body={"perm": "rw", "user_ids": ["bob@example.com"]})
    inv_id = manager.call("GET", "/folders/invitations/list", "bob").json()["invitations"][0]["id"]
    canceled = manager.call("DELETE", "/folders/invitations/delete", "alice", json_body={"inv_id": inv_id})
    assert canceled.status_code == 200 and canceled.json()["state"] == "canceled"


def _share_with_bob(manager, folder: str, perm: str) -> None:
    inv = manager.call("POST", f"/folders/{folder}/invite", "alice", json_body={"perm": perm, "emails": ["bob"]})
    assert inv.status_code == 201, inv.text
    inv_id = manager.call("GET", "/folders/invitations/list", "bob").json()["invitations"][0]["id"]
    accepted = manager.call("POST", "/folders/invitations/accept", "bob", json_body={"inv_id": inv_id})
    assert accepted.status_code == 200, accepted.text


def test_owner_downgrades_and_revokes_a_share_and_its_transfer_urls_end(manager):
    view = create_folder(manager, "alice", "proj")
    (folder_directory(manager, view["id"]) / "readme.txt").write_text("read me")
    _share_with_bob(manager, "proj", "rw")
    bob_id = manager.pdb.setup(lambda db: str(admin.get_user(db, "bob").id))

    listed = manager.call("GET", "/folders/_/shared", "alice").json()["shared"]
    assert [(s["vfolder_name"], s["shared_to"]["email"], s["perm"]) for s in listed] == [
        ("proj", "bob@example.com", "rw")
    ]
    assert listed[0]["shared_to"]["uuid"] == bob_id and listed[0]["vfolder_id"] == view["id"]
    assert manager.call("GET", "/folders/_/shared", "bob").json() == {"shared": []}

    def bob_urls() -> tuple[str, str, str]:
        up = manager.call("POST", "/folders/proj/request-upload", "bob", json_body={"path": "new.txt", "size": 3})
        down = manager.call("POST", "/folders/proj/request-download", "bob", json_body={"path": "readme.txt"})
        zipped = manager.call("POST", "/folders/proj/request-download", "bob", json_body={"archive": True})
        assert up.status_code == down.status_code == zipped.status_code == 200, (up.text, down.text, zipped.text)
        return up.json()["url"], down.json()["url"], zipped.json()["url"]

    upload, download, archive = bob_urls()

    # rw writes but does not delete, nor rename over an existing entry (Backend.AI's rw).
    rm = manager.call("DELETE", "/folders/proj/delete-files", "bob", json_body={"files": ["readme.txt"]})
    assert rm.status_code == 403 and "you need wd permission" in title(rm)
    made = manager.call("POST", "/folders/proj/mkdir", "bob", json_body={"path": "notes"})
    assert made.status_code == 201, made.text
    over = manager.call("POST", "/folders/proj/rename-file", "bob",
                        json_body={"target_path": "notes", "new_name": "readme.txt"})  # fmt: skip
    assert over.status_code == 409 and (folder_directory(manager, view["id"]) / "readme.txt").read_text() == "read me"

    # Nobody but the owner changes or revokes a share: not bob, not another user, not an admin.
    for who in ("bob", "admin"):
        r = manager.call("POST", "/folders/proj/unshare", who, json_body={"emails": ["bob@example.com"]})
        assert r.status_code in (403, 404), r.text
        r = manager.call(
            "POST", "/folders/_/shared", who, json_body={"vfolder": view["id"], "user": bob_id, "perm": None}
        )
        assert r.status_code in (403, 404), r.text
    r = manager.call(
        "POST", "/folders/proj/share", "bob", json_body={"permission": "wd", "emails": ["bob@example.com"]}
    )
    assert r.status_code == 403 and "only the owner of folder 'proj'" in title(r)
    assert manager.call("GET", "/folders", "bob").json()[0]["permission"] == "rw"

    # Refusals name the reason.
    not_shared = manager.call("POST", "/folders/proj/share", "alice",
                              json_body={"permission": "ro", "emails": ["admin@example.com"]})  # fmt: skip
    assert not_shared.status_code == 404 and "not shared with 'admin@example.com'" in title(not_shared)
    bad_perm = manager.call("POST", "/folders/proj/share", "alice", json_body={"permission": "all", "emails": ["bob"]})
    assert bad_perm.status_code == 400 and "invalid folder permission" in title(bad_perm)
    no_perm = manager.call("POST", "/folders/_/shared", "alice", json_body={"vfolder": view["id"], "user": bob_id})
    assert no_perm.status_code == 400 and "'perm' is required" in title(no_perm)

    # Down to ro: bob's upload URL stops working at once, his downloads go on.
    down = manager.call("POST", "/folders/proj/share", "alice", json_body={"permission": "ro", "emails": ["bob"]})
    assert down.status_code == 201 and down.json() == {"shared_emails": ["bob@example.com"]}
    patch = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    r = requests.patch(upload, data=b"abc", headers=patch, timeout=10)
    assert r.status_code == 403 and "now has only ro permission on folder 'proj'" in title(r)
    assert requests.head(upload, headers={"Tus-Resumable": "1.0.0"}, timeout=10).status_code == 403
    assert not (folder_directory(manager, view["id"]) / "new.txt").exists()
    assert requests.get(download, timeout=10).content == b"read me"
    assert manager.call("POST", "/folders/proj/request-upload", "bob",
                        json_body={"path": "x", "size": 1}).status_code == 403  # fmt: skip

    # Back to rw by Backend.AI's own endpoint, then revoked by it: every URL bob holds ends.
    r = manager.call(
        "POST", "/folders/_/shared", "alice", json_body={"vfolder": view["id"], "user": bob_id, "perm": "rw"}
    )
    assert r.status_code == 200, r.text
    upload, download, archive = bob_urls()
    r = manager.call(
        "POST", "/folders/_/shared", "alice", json_body={"vfolder": view["id"], "user": bob_id, "perm": None}
    )
    assert r.status_code == 200 and r.json() == {"msg": "revoked the share of bob@example.com"}
    for url in (download, archive):
        r = requests.get(url, timeout=10)
        assert r.status_code == 403 and "no longer shared with the account" in title(r), r.text
    assert requests.patch(upload, data=b"abc", headers=patch, timeout=10).status_code == 403
    assert names(manager, "bob") == []
    assert manager.call("GET", "/folders/_/shared", "alice").json() == {"shared": []}

    # Shared again, then taken back with unshare; alice's own URLs are untouched throughout.
    _share_with_bob(manager, "proj", "ro")
    mine = manager.call("POST", "/folders/proj/request-download", "alice", json_body={"path": "readme.txt"}).json()
    download = manager.call("POST", "/folders/proj/request-download", "bob", json_body={"path": "readme.txt"}).json()
    gone = manager.call("DELETE", "/folders/proj/unshare", "alice", json_body={"emails": ["bob@example.com"]})
    assert gone.status_code == 200 and gone.json() == {"unshared_emails": ["bob@example.com"]}
    assert requests.get(download["url"], timeout=10).status_code == 403
    assert requests.get(mine["url"], timeout=10).content == b"read me"
    again = manager.call("DELETE", "/folders/proj/unshare", "alice", json_body={"emails": ["bob@example.com"]})
    assert again.status_code == 404


# --- escapes -------------------------------------------------------------------------------------


def test_paths_and_links_cannot_leave_the_folder(manager, tmp_path):
    view = create_folder(manager, "alice", "jail")
    root = folder_directory(manager, view["id"])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("keep me")
    os.symlink(outside, root / "link-dir")
    os.symlink(outside / "victim.txt", root / "link-file")
    (root / "d").mkdir()

    listing = manager.call("GET", "/folders/jail/files", "alice").json()["items"]
    assert {i["name"]: i["type"] for i in listing} == {"d": "dir", "link-dir": "symlink", "link-file": "symlink"}
    attempts = [
        ("GET", "files", {"path": "link-dir"}),
        ("GET", "files", {"path": "../../.."}),
        ("GET", "files", {"path": "/etc"}),
        ("POST", "request-download", {"path": "link-file"}),
        ("POST", "request-download", {"path": "link-dir/victim.txt"}),
        ("POST", "request-download", {"path": "../../../../etc/passwd"}),
        ("POST", "request-upload", {"path": "link-dir/new.txt", "size": 3}),
        ("POST", "request-upload", {"path": "link-file", "size": 3}),
        ("POST", "request-upload", {"path": "/tmp/x", "size": 3}),
        ("POST", "mkdir", {"path": "link-dir/sub"}),
        ("POST", "mkdir", {"path": "../escape"}),
        ("DELETE", "delete-files", {"files": ["link-dir/victim.txt"]}),
        ("DELETE", "delete-files", {"files": ["d/../../x"], "recursive": True}),
        ("POST", "move-file", {"src": "link-dir/victim.txt", "dst": "d"}),
        ("POST", "move-file", {"src": "d", "dst": "link-dir"}),
        ("POST", "move-file", {"src": "d", "dst": "../d"}),
        ("POST", "rename-file", {"target_path": "d", "new_name": "../up"}),
        ("POST", "rename-file", {"target_path": "link-dir/victim.txt", "new_name": "x"}),
    ]
    for method, action, body in attempts:
        r = manager.call(method, f"/folders/jail/{action}", "alice", json_body=body)
        assert r.status_code in (400, 403, 409), (action, body, r.status_code, r.text)
        assert r.json()["title"] and str(root) not in r.text  # a reason, and no host path
    # Deleting the link removes the link, not what it points at.
    assert manager.call("DELETE", "/folders/jail/delete-files", "alice",
                        json_body={"files": ["link-dir", "link-file"], "recursive": True}).status_code == 200  # fmt: skip
    assert sorted(os.listdir(root)) == ["d"]
    assert (outside / "victim.txt").read_text() == "keep me" and os.listdir(outside) == ["victim.txt"]


# --- deeply nested trees -------------------------------------------------------------------------


def plant_deep_tree(top: Path, depth: int) -> None:
    """``d/d/…/d`` ``depth`` levels below ``top`` with a file at the bottom, as a session's ``mkdir -p`` would.

    Made level by level relative to the previous one (two descriptors at a time): the whole path
    is far longer than the kernel accepts in one call.
    """
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        bottom = os.open("bottom.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(bottom, b"deep")
        os.close(bottom)
    finally:
        os.close(fd)


@pytest.fixture
def few_fds_manager(tmp_path):
    """A manager whose process may open 1024 descriptors (a common default), users alice and bob."""
    pdb = ProductDB(tmp_path)
    pdb.user("alice@example.com")
    pdb.user("bob@example.com")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))  # the child inherits it
    try:
        service = Manager(tmp_path, pdb)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    yield service
    service.stop()
    pdb.close()


def test_a_5000_deep_tree_leaves_the_manager_answering(few_fds_manager):
    manager = few_fds_manager
    view = create_folder(manager, "alice", "deep", cloneable=True)
    create_folder(manager, "bob", "mine")
    root = folder_directory(manager, view["id"])
    (root / "top.txt").write_text("top")
    plant_deep_tree(root, 5000)
    try:
        _check_deep_tree(manager, root)
    finally:
        if root.exists():  # pytest's clean-up (shutil.rmtree) recurses once per level
            with OpenFolder(root.parent) as parent:
                rmtree_at(parent.fd, root.name, (root.name,))


def _check_deep_tree(manager, root: Path) -> None:

    def bob_lists() -> None:
        r = manager.call("GET", "/folders/mine/files", "bob")
        assert r.status_code == 200, r.text

    # The folder's size counts every level (nothing held open per level).
    usage = manager.call("GET", "/folders/deep/usage", "alice")
    assert usage.status_code == 200, usage.text
    assert (usage.json()["used_bytes"], usage.json()["file_count"]) == (7, 2)
    bob_lists()

    # Listing a path thousands of levels down walks it with two descriptors.
    listed = manager.call("GET", "/folders/deep/files", "alice", params={"path": "/".join(["d"] * 5000)})
    assert listed.status_code == 200, listed.text
    assert [f["name"] for f in listed.json()["items"]] == ["bottom.txt"]
    bob_lists()

    # The archive goes MAX_DEPTH levels down and leaves the rest out.
    ticket = manager.call("POST", "/folders/deep/request-download", "alice", json_body={"archive": True})
    assert ticket.status_code == 200, ticket.text
    body = requests.get(ticket.json()["url"], timeout=120)
    assert body.status_code == 200
    names_in = zipfile.ZipFile(io.BytesIO(body.content)).namelist()
    assert "top.txt" in names_in and not any(n.endswith("bottom.txt") for n in names_in)
    assert max(n.rstrip("/").count("/") + 1 for n in names_in) == MAX_DEPTH
    bob_lists()

    # A clone would be partial: it is refused with the reason, and no folder is left behind.
    clone = manager.call("POST", "/folders/deep/clone", "alice", json_body={"target_name": "copy"})
    assert clone.status_code == 400, clone.text
    assert f"nested more than {MAX_DEPTH} directories deep" in title(clone)
    assert names(manager, "alice") == ["deep"]
    bob_lists()

    # Deleting the folder removes the whole tree.
    assert manager.call("DELETE", "/folders/deep", "alice").status_code == 204
    assert not root.exists()
    bob_lists()
    assert "Traceback" not in manager.log_text()


# --- the listing's fast path ---------------------------------------------------------------------


def test_listing_rows_give_the_same_json_as_the_folder_views(db):
    """``GET /folders`` reads unconverted rows and reuses JSON per row: it must say what ``folder_view`` says."""
    import datetime as dt
    import json

    from jupyter_backendai.db import folders as folder_db
    from jupyter_backendai.manager.folders import common, listing

    admin.create_policy(db, "capped", max_vfolder_size=10**9)
    group = admin.create_group(db, "proj")
    ann = admin.create_user(db, "ann@example.com", "S3cret!pw", policy="capped", groups=["proj"])[0]
    bob = admin.create_user(db, "bob@example.com", "S3cret!pw", groups=["proj"])[0]
    boss = admin.create_user(db, "boss@example.com", "S3cret!pw", role="admin")[0]
    data = folder_db.create_folder(db, ann, "data", quota=10**6, usage_mode="model", cloneable=True)
    data.used_bytes, data.file_count, data.usage_at = 1234, 5, dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    folder_db.create_folder(db, ann, ".local")
    folder_db.create_folder(db, bob, "data")
    folder_db.create_folder(db, bob, "notes")
    folder_db.create_folder(db, boss, "data", group=group, permission="ro")
    folder_db.create_folder(db, boss, "team", group=group, permission="rw")
    folder_db.share_group_folder(db, boss, "team", ["ann@example.com"], "wd")
    for name in ("data", "notes"):
        (inv,) = folder_db.invite(db, bob, name, ["ann@example.com"], "ro")
        folder_db.accept_invitation(db, ann, inv.id)
    db.commit()

    def listed(user, group_filter=None) -> list:
        entries = folder_db.folder_listing(db, user)
        decode = listing.decoder(db)
        if group_filter:
            entries = [e for e in entries if listing.in_group(decode(e.raw), e.group_name, group_filter)]
        return json.loads("[" + ",".join(listing.LISTED.texts(entries, decode)[0]) + "]")

    for user in (ann, bob, boss):
        expected = [common.folder_view(db, a) for a in folder_db.accessible_folders(db, user)]
        assert listed(user) == expected
        assert listed(user) == expected  # the second time from the kept JSON
    ann_view = {(f["name"], f["via"]): f for f in listed(ann)}
    assert len(ann_view) == 6
    assert ann_view["data", "owner"]["max_size"] == 10**6 and ann_view["data", "owner"]["cur_size"] == 1234
    assert ann_view["data", "owner"]["usage_at"] == "2026-01-02T03:04:05+00:00"
    assert ann_view["notes", "shared"]["permission"] == "ro" and ann_view["notes", "shared"]["user_email"] == bob.email
    assert ann_view["team", "group"]["permission"] == "wd" and ann_view["team", "group"]["group_name"] == "proj"
    # A change is a different row: never the old JSON.
    db.get(m.VFolder, data.id).used_bytes = 99
    db.commit()
    assert {(f["name"], f["via"]): f for f in listed(ann)}["data", "owner"]["cur_size"] == 99
    assert [f["name"] for f in listed(ann, "proj")] == [".local", "data", "data", "data", "notes", "team"]
    assert [f["name"] for f in listed(ann, str(uuid.uuid4()))] == [".local", "data", "data", "notes"]


# --- clone ---------------------------------------------------------------------------------------


def _policy(manager, username: str, **fields) -> None:
    """Give the user's keypair a policy of its own with ``fields`` (folder count, capacity)."""

    def setup(db):
        name = f"p-{username}"
        if db.get(m.KeyPairResourcePolicy, name) is None:
            admin.create_policy(db, name, allowed_vfolder_hosts=["local"])
        admin.update_policy(db, name, **fields)
        keypair = next(k for k in admin.get_user(db, username).keypairs if k.is_active)
        admin.update_keypair(db, keypair, policy=name)

    manager.pdb.setup(setup)


def test_clone_copies_the_files_and_only_copies_links(manager, tmp_path):
    src = create_folder(manager, "alice", "src")
    root = folder_directory(manager, src["id"])
    (root / "a b").mkdir()
    (root / "a b" / "ü.txt").write_text("unicode")
    (root / "top.bin").write_bytes(os.urandom(100_000))
    (root / "script.sh").write_text("#!/bin/sh\n")
    (root / "script.sh").chmod(0o750)
    (root / "empty").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    os.symlink(outside, root / "link-dir")
    os.symlink(outside / "secret.txt", root / "link-file")
    os.mkfifo(root / "pipe")

    r = manager.call("POST", "/folders/src/clone", "alice", json_body={"target_name": "copy", "usage_mode": "data"})
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["name"] == "copy" and view["usage_mode"] == "data" and view["is_owner"] is True
    assert view["id"] != src["id"] and view["cur_size"] == 100_000 + 7 + 10 and view["skipped_entries"] == 1
    copy = folder_directory(manager, view["id"])
    assert (copy / "a b" / "ü.txt").read_text() == "unicode" and (copy / "empty").is_dir()
    assert (copy / "top.bin").read_bytes() == (root / "top.bin").read_bytes()
    assert (copy / "script.sh").stat().st_mode & 0o777 == 0o750
    # Links are copied as links (their text), never followed: nothing from outside came in.
    assert os.readlink(copy / "link-dir") == str(outside) and os.readlink(copy / "link-file") == str(
        outside / "secret.txt"
    )
    assert (copy / "link-dir").is_symlink() and not (copy / "pipe").exists()
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert "not yours" not in "".join(p.read_text() for p in copy.rglob("*.txt") if not p.is_symlink())
    listed = {f["name"]: f for f in manager.call("GET", "/folders", "alice").json()}
    assert listed["copy"]["cur_size"] == view["cur_size"] and listed["src"]["cur_size"] == view["cur_size"]
    # The source is untouched; the clone is a folder of its own.
    assert manager.call("DELETE", "/folders/copy", "alice").status_code == 204
    assert (root / "top.bin").exists() and not copy.exists()


def test_clone_refusals(manager):
    create_folder(manager, "alice", "private")
    shared = create_folder(manager, "alice", "shared")
    create_folder(manager, "alice", "open", cloneable=True)
    for name in ("shared", "open"):
        inv = manager.call("POST", f"/folders/{name}/invite", "alice", json_body={"perm": "ro", "user_ids": ["bob"]})
        assert inv.status_code == 201, inv.text
    for inv in manager.call("GET", "/folders/invitations/list", "bob").json()["invitations"]:
        assert manager.call("POST", "/folders/invitations/accept", "bob", json_body={"inv_id": inv["id"]}).ok
    (folder_directory(manager, shared["id"]) / "f.txt").write_text("x" * 1000)

    # Without access: not found (no existence leak); read-only and not cloneable: refused.
    none = manager.call("POST", "/folders/private/clone", "bob", json_body={"target_name": "mine"})
    assert none.status_code == 404
    ro = manager.call("POST", "/folders/shared/clone", "bob", json_body={"target_name": "mine"})
    assert ro.status_code == 403 and title(ro) == "folder 'shared' is not cloneable: only its owner can clone it"
    ok = manager.call("POST", "/folders/open/clone", "bob", json_body={"target_name": "mine", "permission": "ro"})
    assert ok.status_code == 201 and ok.json()["is_owner"] is True and ok.json()["user_email"] == "bob@example.com"
    assert [f["name"] for f in manager.call("GET", "/folders", "bob").json() if f["is_owner"]] == ["mine"]

    # Name rules and conflicts, as for a created folder.
    taken = manager.call("POST", "/folders/shared/clone", "alice", json_body={"target_name": "private"})
    assert taken.status_code == 409 and title(taken) == "you already have a folder named 'private'"
    missing = manager.call("POST", "/folders/shared/clone", "alice", json_body={})
    assert missing.status_code == 400 and title(missing) == "'target_name' is required"
    bad = manager.call("POST", "/folders/shared/clone", "alice", json_body={"target_name": "a/b"})
    assert bad.status_code == 400
    host = manager.call("POST", "/folders/shared/clone", "alice", json_body={"target_name": "x", "target_host": "nfs"})
    assert host.status_code == 403 and "not allowed" in title(host)

    # The policy's capacity: the copy must fit in a new folder; nothing is left behind.
    before = sorted(f["name"] for f in manager.call("GET", "/folders", "alice").json())
    host_dir = folder_directory(manager, shared["id"]).parent.parent
    folder_dirs = sorted(p.name for p in host_dir.glob("*/*"))
    _policy(manager, "alice", max_vfolder_size=500)
    big = manager.call("POST", "/folders/shared/clone", "alice", json_body={"target_name": "big"})
    assert big.status_code == 413, big.text
    assert title(big) == "folder 'shared' holds 1000 B, more than a folder of yours may hold (500 B)"
    assert big.json()["used_bytes"] == 1000 and big.json()["max_size"] == 500
    assert sorted(f["name"] for f in manager.call("GET", "/folders", "alice").json()) == before
    assert sorted(p.name for p in host_dir.glob("*/*")) == folder_dirs
    # Measured within the capacity, copied past it (a hard link is measured once, copied twice):
    # the copy stops and the new folder is undone.
    linked = create_folder(manager, "alice", "linked")
    (folder_directory(manager, linked["id"]) / "a").write_bytes(b"a" * 400)
    os.link(folder_directory(manager, linked["id"]) / "a", folder_directory(manager, linked["id"]) / "b")
    grown = manager.call("POST", "/folders/linked/clone", "alice", json_body={"target_name": "grown"})
    assert grown.status_code == 413 and "over the new folder's capacity of 500 B" in title(grown)
    assert "grown" not in [f["name"] for f in manager.call("GET", "/folders", "alice").json()]
    assert manager.call("DELETE", "/folders/linked", "alice").status_code == 204
    assert sorted(p.name for p in host_dir.glob("*/*")) == folder_dirs
    # The policy's folder count.
    _policy(manager, "alice", max_vfolder_size=0, max_vfolder_count=3)
    many = manager.call("POST", "/folders/shared/clone", "alice", json_body={"target_name": "fourth"})
    assert many.status_code == 409 and "you own 3 folder(s), the most policy 'p-alice' allows" in title(many)
    _policy(manager, "alice", max_vfolder_count=4)
    fits = manager.call("POST", "/folders/shared/clone", "alice", json_body={"target_name": "fourth"})
    assert fits.status_code == 201 and fits.json()["cur_size"] == 1000


def test_clone_stops_when_the_copy_outgrows_the_capacity(manager, tmp_path):
    """The source grows between the measure and the copy: the copy stops at the capacity and is undone."""
    from jupyter_backendai.storage.clone import CopyTooLarge, copy_folder

    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    dst.mkdir()
    (src / "d" / "one").write_bytes(b"1" * 300)
    (src / "two").write_bytes(b"2" * 300)
    with pytest.raises(CopyTooLarge, match="over the new folder's capacity of 500 B"):
        copy_folder(src, dst, max_bytes=500)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    done = copy_folder(src, fresh, max_bytes=600)
    assert (done.bytes, done.files, done.skipped) == (600, 2, 0)


# --- deleting a mounted folder -------------------------------------------------------------------


def test_a_folder_mounted_in_a_live_session_is_not_deleted(manager):
    from testing.manager import add_session

    view = create_folder(manager, "alice", "busy")
    (folder_directory(manager, view["id"]) / "keep.txt").write_text("keep")

    def start(db):
        session = add_session(db, "alice", "worker", m.SessionStatus.RUNNING, {"cpu": 1})
        session.mounts = [{"folder": "busy", "id": str(uuid.UUID(view["id"])), "permission": "wd"}]
        return session.id

    session_id = manager.pdb.setup(start)
    for method, path, body in (("DELETE", "/folders/busy", None), ("DELETE", "/folders", {"id": view["id"]})):
        r = manager.call(method, path, "alice", json_body=body)
        assert r.status_code == 409, r.text
        assert (
            title(r)
            == "folder 'busy' is mounted in your live session 'worker' (RUNNING): terminate them before deleting it"
        )
    assert (folder_directory(manager, view["id"]) / "keep.txt").read_text() == "keep"

    def stop(db):
        db.get(m.Session, session_id).status = m.SessionStatus.TERMINATED

    manager.pdb.setup(stop)
    assert manager.call("DELETE", "/folders/busy", "alice").status_code == 204
    assert not folder_directory(manager, view["id"]).exists()


def test_listings_have_sizes_measured_in_the_background(manager):
    """A folder written by a session (here: directly) gets its size measured after a listing shows it."""
    view = create_folder(manager, "alice", "written")
    root = folder_directory(manager, view["id"])
    (root / "sub").mkdir()
    (root / "sub" / "a.bin").write_bytes(b"a" * 3000)
    (root / "b.txt").write_text("bb")

    def shown() -> dict:
        return next(f for f in manager.call("GET", "/folders", "alice").json() if f["name"] == "written")

    first = shown()
    assert first["cur_size"] is None and first["usage_at"] is None  # never measured when first listed
    deadline = time.monotonic() + 15
    while (later := shown())["cur_size"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (later["cur_size"], later["file_count"]) == (3002, 2) and later["usage_at"]
    # Fresh for the TTL (300 s by default): a change is not measured again at once; /usage does measure.
    (root / "c.txt").write_text("c")
    time.sleep(0.5)
    assert shown()["cur_size"] == 3002
    assert manager.call("GET", "/folders/written/usage", "alice").json()["used_bytes"] == 3003
    assert shown()["cur_size"] == 3003
