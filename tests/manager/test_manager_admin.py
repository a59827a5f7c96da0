"""The administration API against a live manager: who may do what, validation, and a real registry rescan.

Roles in these tests: ``admin`` (superadmin, domain ``default``), ``carol`` (domain admin of
``lab``), ``dave`` (user in ``lab``), ``alice`` and ``bob`` (users in ``default``).

The rescan test runs Debian's ``docker-registry`` (Docker Distribution) on a free loopback
port and pushes a tiny image to it with the local Docker engine. Without the engine or the
package it is skipped, unless ``BACKENDAI_TEST_REQUIRE_DOCKER=1`` turns that into a failure.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.db import sessions as session_db
from testing.hub import free_port
from testing.manager import PASSWORD, Manager
from testing.registry import running_registry


@pytest.fixture
def lab(manager: Manager) -> Manager:
    """The manager with a second domain ``lab``: its admin ``carol`` and its user ``dave``."""

    def setup(db):
        admin.create_domain(db, "lab")
        admin.create_group(db, "research", domain="lab")
        admin.create_user(db, "carol@example.com", PASSWORD, role="admin", domain="lab", groups=["research"])
        admin.create_user(db, "dave@example.com", PASSWORD, domain="lab")

    manager.pdb.setup(setup)
    return manager


def ok(response: requests.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json()


def refused(response: requests.Response, status: int, words: str) -> None:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert words in response.json()["title"], response.json()


def add_session(manager: Manager, username: str, *, image: str = "lab/tiny:1", agent: str | None = None) -> str:
    """A RUNNING session row of the user's keypair (what the spawners would have written)."""

    def setup(db):
        user = admin.get_user(db, username)
        keypair = next(k for k in user.keypairs if k.is_active)
        row = m.Session(
            name=f"s-{uuid.uuid4().hex[:6]}",
            user_id=user.id,
            access_key=keypair.access_key,
            domain_name=user.domain_name,
            scaling_group=admin.DEFAULT,
            agent_id=agent,
            image=image,
            requested_slots=ResourceSlots.parse({"cpu": 1, "mem": "1g"}),
            occupied_slots=ResourceSlots.parse({"cpu": 1, "mem": "1g"}),
        )
        db.add(row)
        db.flush()
        session_db.set_status(db, row, m.SessionStatus.RUNNING, "test")
        return keypair.access_key

    return manager.pdb.setup(setup)


# --- users --------------------------------------------------------------------------------------------


def test_plain_users_are_refused_everywhere(lab):
    for method, path in [
        ("GET", "/admin/users"),
        ("POST", "/admin/users"),
        ("GET", "/admin/users/bob@example.com"),
        ("GET", "/admin/keypairs"),
        ("GET", "/admin/policies"),
        ("GET", "/admin/images"),
        ("POST", "/admin/images/rescan"),
        ("GET", "/admin/registries"),
        ("GET", "/admin/presets"),
        ("GET", "/admin/agents"),
        ("GET", "/admin/scaling-groups"),
        ("GET", "/admin/domains"),
        ("GET", "/admin/groups"),
        ("GET", "/admin/settings"),
        ("POST", "/admin/maintenance/recalculate-usage"),
    ]:
        refused(lab.call(method, path, "alice", json_body={}), 403, "this needs an administrator")
    assert lab.call("GET", "/admin/users").status_code == 401  # unsigned


def test_users_by_role(lab):
    # Superadmin: every domain; inactive users hidden by default (F37).
    emails = {u["email"] for u in ok(lab.call("GET", "/admin/users", "admin"))["users"]}
    assert {"admin@example.com", "alice@example.com", "carol@example.com", "dave@example.com"} <= emails
    only_lab = ok(lab.call("GET", "/admin/users?domain=lab", "admin"))["users"]
    assert {u["email"] for u in only_lab} == {"carol@example.com", "dave@example.com"}

    # Domain admin: their domain only.
    mine = ok(lab.call("GET", "/admin/users", "carol"))["users"]
    assert {u["email"] for u in mine} == {"carol@example.com", "dave@example.com"}
    refused(lab.call("GET", "/admin/users?domain=default", "carol"), 403, "you administer domain 'lab'")
    refused(lab.call("GET", "/admin/users/alice@example.com", "carol"), 403, "is in 'default'")
    assert ok(lab.call("GET", "/admin/users/dave@example.com", "carol"))["domain_name"] == "lab"
    refused(lab.call("PATCH", "/admin/users/alice", "carol", json_body={"full_name": "x"}), 403, "you administer")
    refused(lab.call("DELETE", "/admin/users/alice", "carol"), 403, "you administer")

    # Create: the new user and its keypair, whose secret is shown once and works.
    body = {"email": "erin@example.com", "password": "Erin-pw-123", "domain": "lab", "groups": ["research"],
            "full_name": "Erin", "need_password_change": True}  # fmt: skip
    created = ok(lab.call("POST", "/admin/users", "carol", json_body=body), 201)
    assert created["user"]["username"] == "erin" and created["user"]["groups"] == ["research"]
    assert created["user"]["need_password_change"] is True and created["user"]["domain_name"] == "lab"
    keys = (created["keypair"]["access_key"], created["keypair"]["secret_key"])
    assert ok(lab.call("GET", "/auth/whoami", keys))["email"] == "erin@example.com"
    detail = ok(lab.call("GET", "/admin/users/erin", "carol"))
    assert [k["access_key"] for k in detail["keypairs"]] == [keys[0]] and "secret_key" not in detail["keypairs"][0]

    # What a domain admin may not create.
    refused(lab.call("POST", "/admin/users", "carol", json_body={**body, "email": "f@example.com", "domain": "default"}),
            403, "you administer domain 'lab', not 'default'")  # fmt: skip
    refused(lab.call("POST", "/admin/users", "carol", json_body={**body, "email": "g@example.com", "role": "superadmin"}),
            403, "only a superadmin may create a superadmin")  # fmt: skip
    refused(lab.call("PATCH", "/admin/users/dave", "carol", json_body={"role": "superadmin"}), 403, "superadmin")

    # Validation comes from the admin layer, with its status.
    refused(lab.call("POST", "/admin/users", "admin", json_body={"email": "h@example.com", "password": "short"}),
            400, "at least 8 characters")  # fmt: skip
    refused(lab.call("POST", "/admin/users", "admin", json_body={"email": "not-an-address", "password": "Good-pw-123"}),
            400, "invalid e-mail address")  # fmt: skip
    refused(lab.call("POST", "/admin/users", "admin", json_body={**body, "domain": "lab"}), 409, "already exists")
    refused(lab.call("POST", "/admin/users", "admin", json_body={**body, "email": "i@example.com", "groups": ["nope"]}),
            404, "no group named 'nope'")  # fmt: skip
    refused(lab.call("POST", "/admin/users", "admin", json_body={"email": "j@example.com", "password": 12345678}),
            400, "'password' must be a string")  # fmt: skip
    refused(lab.call("POST", "/admin/users", "admin", json_body={"email": "k@example.com", "password": "x", "age": 3}),
            400, "unknown field(s): age")  # fmt: skip
    refused(lab.call("PATCH", "/admin/users/erin", "admin", json_body={"role": "king"}), 400, "invalid role 'king'")
    refused(lab.call("GET", "/admin/users/nobody@example.com", "admin"), 404, "no user")

    # Update, then deactivate: never deleted, hidden from the default list, locked out.
    changed = ok(lab.call("PATCH", "/admin/users/erin@example.com", "carol",
                          json_body={"username": "erin2", "description": "PhD", "need_password_change": False}))  # fmt: skip
    assert changed["username"] == "erin2" and changed["description"] == "PhD"
    assert ok(lab.call("DELETE", "/admin/users/erin2", "carol"))["status"] == "inactive"
    assert "erin@example.com" not in {u["email"] for u in ok(lab.call("GET", "/admin/users", "carol"))["users"]}
    inactive = ok(lab.call("GET", "/admin/users?status=inactive", "carol"))["users"]
    assert [u["email"] for u in inactive] == ["erin@example.com"]
    assert lab.call("GET", "/auth/whoami", keys).status_code == 401
    assert ok(lab.call("PATCH", "/admin/users/erin2", "carol", json_body={"status": "active"}))["is_active"]
    refused(lab.call("GET", "/admin/users?status=gone", "admin"), 400, "'status' must be")

    # Nobody locks themselves out; the superadmin account is out of a domain admin's reach.
    refused(lab.call("DELETE", "/admin/users/carol", "carol"), 409, "cannot deactivate yourself")
    refused(lab.call("PATCH", "/admin/users/carol", "carol", json_body={"role": "user"}), 409, "own role")

    def promote(db):  # a domain admin of default, to check the superadmin in the same domain
        admin.create_user(db, "dora@example.com", PASSWORD, role="admin")

    lab.pdb.setup(promote)
    refused(lab.call("PATCH", "/admin/users/admin", "dora", json_body={"password": "Taken-over-1"}),
            403, "only a superadmin may change the superadmin account")  # fmt: skip
    assert ok(lab.call("PATCH", "/admin/users/alice", "dora", json_body={"full_name": "Alice A."}))["full_name"]


# --- keypairs -------------------------------------------------------------------------------------------


def test_keypairs(lab):
    dave_key = lab.keys("dave")[0]
    listed = ok(lab.call("GET", "/admin/keypairs", "carol"))["keypairs"]
    assert {k["user_id"] for k in listed} == {"carol@example.com", "dave@example.com"}
    assert all("secret_key" not in k for k in listed)
    assert {k["user_id"] for k in ok(lab.call("GET", "/admin/keypairs?user=alice", "admin"))["keypairs"]} == {
        "alice@example.com"
    }
    refused(lab.call("GET", "/admin/keypairs?user=alice", "carol"), 403, "you administer")
    refused(lab.call("GET", "/admin/keypairs?active=maybe", "admin"), 400, "'active' must be")
    refused(lab.call("GET", f"/admin/keypairs/{lab.keys('alice')[0]}", "carol"), 403, "you administer")

    # Add with an explicit key pair (F38), then update and deactivate it.
    access, secret = "AKIATESTTESTTEST0001", "s" * 40
    made = ok(lab.call("POST", "/admin/keypairs", "carol", json_body={
        "user": "dave", "rate_limit": 50, "access_key": access, "secret_key": secret}), 201)  # fmt: skip
    assert made["secret_key"] == secret and made["rate_limit"] == 50 and made["user_id"] == "dave@example.com"
    assert ok(lab.call("GET", "/auth/whoami", (access, secret)))["username"] == "dave"
    refused(lab.call("POST", "/admin/keypairs", "carol", json_body={"user": "dave", "access_key": "bad"}),
            400, "an access key is 20 characters")  # fmt: skip
    refused(lab.call("POST", "/admin/keypairs", "carol", json_body={"user": "dave", "access_key": access}),
            409, "already exists")  # fmt: skip
    refused(lab.call("POST", "/admin/keypairs", "carol", json_body={"user": "alice"}), 403, "you administer")
    refused(lab.call("POST", "/admin/keypairs", "carol", json_body={"user": "dave", "policy": "gold"}),
            404, "no keypair resource policy named 'gold'")  # fmt: skip
    refused(lab.call("PATCH", f"/admin/keypairs/{access}", "carol", json_body={"rate_limit": -1}),
            400, "rate limit must be a whole number")  # fmt: skip
    patched = ok(
        lab.call("PATCH", f"/admin/keypairs/{access}", "carol", json_body={"rate_limit": 7, "is_active": False})
    )
    assert patched["rate_limit"] == 7 and patched["is_active"] is False
    assert lab.call("GET", "/auth/whoami", (access, secret)).status_code == 401
    inactive = ok(lab.call("GET", "/admin/keypairs?active=false", "carol"))["keypairs"]
    assert [k["access_key"] for k in inactive] == [access]
    refused(lab.call("PATCH", f"/admin/keypairs/{lab.keys('carol')[0]}", "carol", json_body={"is_active": False}),
            409, "signed with that keypair")  # fmt: skip

    # Delete: only a keypair that never ran a session.
    assert ok(lab.call("DELETE", f"/admin/keypairs/{access}", "carol")) == {"deleted": access}
    refused(lab.call("GET", f"/admin/keypairs/{access}", "carol"), 404, "no keypair")
    add_session(lab, "dave")
    refused(lab.call("DELETE", f"/admin/keypairs/{dave_key}", "carol"), 409, "ran 1 session(s) and cannot be deleted")


# --- policies, presets, registries, domains, groups ---------------------------------------------------------


def test_policies_presets_registries(lab):
    # Policies: admins read, only superadmins write.
    assert "default" in {p["name"] for p in ok(lab.call("GET", "/admin/policies", "carol"))["policies"]}
    gold = {"name": "gold", "total_resource_slots": {"cpu": 8, "mem": "16g"}, "max_concurrent_sessions": 3}
    refused(lab.call("POST", "/admin/policies", "carol", json_body=gold), 403, "this needs a superadmin")
    made = ok(lab.call("POST", "/admin/policies", "admin", json_body=gold), 201)
    assert made["max_concurrent_sessions"] == 3 and made["total_resource_slots"]["cpu"] == "8"
    refused(lab.call("POST", "/admin/policies", "admin", json_body=gold), 409, "already exists")
    refused(lab.call("POST", "/admin/policies", "admin", json_body={"name": "x", "max_concurrent_sessions": -1}),
            400, "max concurrent sessions must be a whole number")  # fmt: skip
    refused(lab.call("POST", "/admin/policies", "admin", json_body={"name": "x", "colour": "red"}), 400, "colour")
    refused(lab.call("POST", "/admin/policies", "admin", json_body={"name": "x", "allowed_vfolder_hosts": "local"}),
            400, "'allowed_vfolder_hosts' must be a list")  # fmt: skip
    refused(lab.call("POST", "/admin/policies", "admin", json_body={"name": "bad name!"}), 400, "invalid policy name")
    assert (
        ok(lab.call("PATCH", "/admin/policies/gold", "admin", json_body={"idle_timeout": 600}))["idle_timeout"] == 600
    )
    refused(lab.call("PATCH", "/admin/policies/gold", "carol", json_body={"idle_timeout": 1}), 403, "superadmin")
    ok(lab.call("PATCH", f"/admin/keypairs/{lab.keys('dave')[0]}", "carol", json_body={"policy": "gold"}))
    refused(lab.call("DELETE", "/admin/policies/gold", "admin"), 409, "is used by 1 keypair(s)")
    ok(lab.call("PATCH", f"/admin/keypairs/{lab.keys('dave')[0]}", "admin", json_body={"policy": "default"}))
    assert ok(lab.call("DELETE", "/admin/policies/gold", "admin")) == {"deleted": "gold"}
    refused(lab.call("GET", "/admin/policies/gold", "admin"), 404, "no keypair resource policy")

    # Presets.
    small = {"name": "small", "resource_slots": {"cpu": 1, "mem": "1g"}, "shared_memory": "64m"}
    refused(lab.call("POST", "/admin/presets", "carol", json_body=small), 403, "superadmin")
    assert ok(lab.call("POST", "/admin/presets", "admin", json_body=small), 201)["resource_slots"]["cpu"] == "1"
    refused(lab.call("POST", "/admin/presets", "admin", json_body={"name": "empty", "resource_slots": {}}),
            400, "needs at least one resource")  # fmt: skip
    refused(lab.call("POST", "/admin/presets", "admin", json_body={"name": "inf", "resource_slots": {"cpu": "Infinity"}}),
            400, "cannot ask for unlimited")  # fmt: skip
    patched = ok(lab.call("PATCH", "/admin/presets/small", "admin", json_body={"resource_slots": {"cpu": 2}}))
    assert patched["resource_slots"]["cpu"] == "2" and patched["resource_slots"]["mem"] == str(1024**3)
    assert [p["name"] for p in ok(lab.call("GET", "/admin/presets", "carol"))["presets"]] == ["small"]
    assert ok(lab.call("DELETE", "/admin/presets/small", "admin")) == {"deleted": "small"}
    refused(lab.call("DELETE", "/admin/presets/small", "admin"), 404, "no resource preset")

    # Registries: passwords never come back.
    reg = {
        "hostname": "registry.example.com",
        "url": "https://registry.example.com",
        "username": "u",
        "password": "Pw-9x7q",
    }
    refused(lab.call("POST", "/admin/registries", "carol", json_body=reg), 403, "superadmin")
    view = ok(lab.call("POST", "/admin/registries", "admin", json_body=reg), 201)
    assert view["has_password"] is True and "password" not in view
    listed = ok(lab.call("GET", "/admin/registries", "carol"))["registries"]
    assert listed == [view] and "Pw-9x7q" not in lab.call("GET", "/admin/registries", "admin").text
    refused(lab.call("POST", "/admin/registries", "admin", json_body={**reg, "hostname": "r2.example.com", "url": "ftp://x"}),
            400, "invalid registry URL")  # fmt: skip
    refused(lab.call("POST", "/admin/registries", "admin", json_body=reg), 409, "already exists")
    refused(lab.call("DELETE", "/admin/registries/registry.example.com", "carol"), 403, "superadmin")
    ok(lab.call("DELETE", "/admin/registries/registry.example.com", "admin"))
    refused(lab.call("DELETE", "/admin/registries/registry.example.com", "admin"), 404, "no registry")


def test_domains_groups_and_members(lab):
    assert [d["name"] for d in ok(lab.call("GET", "/admin/domains", "carol"))["domains"]] == ["lab"]
    assert {"default", "lab"} <= {d["name"] for d in ok(lab.call("GET", "/admin/domains", "admin"))["domains"]}
    refused(lab.call("POST", "/admin/domains", "carol", json_body={"name": "other"}), 403, "superadmin")
    made = ok(lab.call("POST", "/admin/domains", "admin", json_body={
        "name": "other", "total_resource_slots": {"cpu": 4}, "allowed_vfolder_hosts": ["local"]}), 201)  # fmt: skip
    assert made["total_resource_slots"] == {"cpu": "4"} and made["allowed_vfolder_hosts"] == ["local"]
    refused(lab.call("POST", "/admin/domains", "admin", json_body={"name": "other"}), 409, "already exists")
    refused(lab.call("POST", "/admin/domains", "admin", json_body={"name": "x", "allowed_vfolder_hosts": [1]}),
            400, "must be a list of strings")  # fmt: skip

    assert [g["name"] for g in ok(lab.call("GET", "/admin/groups", "carol"))["groups"]] == ["research"]
    refused(lab.call("GET", "/admin/groups?domain=default", "carol"), 403, "you administer")
    group = ok(lab.call("POST", "/admin/groups", "carol", json_body={"name": "teaching"}), 201)
    assert group["domain_name"] == "lab" and group["members"] == []
    refused(
        lab.call("POST", "/admin/groups", "carol", json_body={"name": "t2", "domain": "default"}), 403, "not 'default'"
    )
    refused(lab.call("POST", "/admin/groups", "carol", json_body={"name": "teaching"}), 409, "already exists")

    members = ok(lab.call("POST", "/admin/groups/teaching/members", "carol", json_body={"add": ["dave", "carol"]}))
    assert members["group"]["members"] == ["carol@example.com", "dave@example.com"]
    assert members["added"] == ["dave@example.com", "carol@example.com"]
    again = ok(lab.call("POST", "/admin/groups/teaching/members", "carol",
                        json_body={"add": ["dave"], "remove": ["carol"]}))  # fmt: skip
    assert again["added"] == [] and again["removed"] == ["carol@example.com"]
    refused(
        lab.call("POST", "/admin/groups/teaching/members", "carol", json_body={"add": ["alice"]}), 403, "you administer"
    )
    refused(lab.call("POST", "/admin/groups/teaching/members", "admin", json_body={"domain": "lab", "add": ["alice"]}),
            400, "is in domain 'default', group 'teaching' in 'lab'")  # fmt: skip
    refused(
        lab.call("POST", "/admin/groups/nope/members", "carol", json_body={"add": []}), 404, "no group named 'nope'"
    )


def test_domain_and_group_caps_are_editable(lab):
    # A superadmin changes a domain's caps: the slots named change, the others stay.
    lab_domain = ok(lab.call("PATCH", "/admin/domains/lab", "admin", json_body={"total_resource_slots": {"cpu": 8}}))
    assert lab_domain["total_resource_slots"] == {"cpu": "8"}
    both = ok(lab.call("PATCH", "/admin/domains/lab", "admin", json_body={"total_resource_slots": {"mem": "16g"}}))
    assert both["total_resource_slots"] == {"cpu": "8", "mem": str(16 * 1024**3)}
    lifted = ok(lab.call("PATCH", "/admin/domains/lab", "admin", json_body={
        "total_resource_slots": {"cpu": "unlimited"}, "description": "Labs"}))  # fmt: skip
    assert lifted["total_resource_slots"] == {"mem": str(16 * 1024**3)} and lifted["description"] == "Labs"
    assert ok(lab.call("GET", "/admin/domains/lab", "carol")) == lifted
    # The domain's admin reads it but may not raise the cap that binds them; nobody reaches other domains.
    refused(lab.call("PATCH", "/admin/domains/lab", "carol", json_body={"total_resource_slots": {"cpu": 99}}),
            403, "superadmin")  # fmt: skip
    refused(lab.call("GET", "/admin/domains/default", "carol"), 403, "you administer")
    refused(lab.call("PATCH", "/admin/domains/lab", "dave", json_body={"description": "x"}), 403, "administrator")
    for body, words in [
        ({"total_resource_slots": {"cpu": -1}}, "cpu: -1 is negative"),
        ({"total_resource_slots": {"mem": "lots"}}, "mem: 'lots' is not a size"),
        ({"total_resource_slots": {"cpu": True}}, "is not an amount"),
        ({"total_resource_slots": 4}, "'total_resource_slots' must be a object"),
        ({"total_slots": {"cpu": 1}}, "unknown field(s): total_slots"),
    ]:
        refused(lab.call("PATCH", "/admin/domains/lab", "admin", json_body=body), 400, words)
    refused(lab.call("PATCH", "/admin/domains/nowhere", "admin", json_body={"description": "x"}), 404, "no domain")

    # A domain's admin changes its groups' caps; a superadmin names the domain.
    group = ok(lab.call("PATCH", "/admin/groups/research", "carol", json_body={"total_resource_slots": {"cpu": 2}}))
    assert group["total_resource_slots"] == {"cpu": "2"} and group["domain_name"] == "lab"
    assert ok(lab.call("GET", "/admin/groups/research?domain=lab", "admin")) == group
    again = ok(lab.call("PATCH", "/admin/groups/research", "admin", json_body={
        "domain": "lab", "total_resource_slots": {"cpu": "unlimited", "cuda.shares": "0.5"}}))  # fmt: skip
    assert again["total_resource_slots"] == {"cuda.shares": "0.5"}
    refused(lab.call("PATCH", "/admin/groups/default", "carol", json_body={"domain": "default", "description": "x"}),
            403, "not 'default'")  # fmt: skip
    refused(lab.call("PATCH", "/admin/groups/research", "carol", json_body={"total_resource_slots": {"cpu": "x"}}),
            400, "cpu: 'x' is not a number")  # fmt: skip
    refused(lab.call("PATCH", "/admin/groups/nope", "carol", json_body={"description": "x"}), 404, "no group named")
    with lab.pdb() as db:
        stored = admin.get_group(db, "research", "lab").total_resource_slots
    assert stored == ResourceSlots.parse({"cuda.shares": "0.5"})


# --- images, agents, resource groups, settings -------------------------------------------------------------


def test_images_and_cleanup(lab):
    def setup(db):
        admin.upsert_image(db, "lab/old:1", labels={"ai.backend.resource.min.cpu": "1"})
        admin.upsert_image(db, "lab/used:1")
        admin.upsert_image(db, "lab/inst:1", installed=True)

    lab.pdb.setup(setup)
    add_session(lab, "dave", image="lab/used:1")
    refs = {i["reference"] for i in ok(lab.call("GET", "/admin/images", "carol"))["images"]}
    assert refs == {"lab/old:1", "lab/used:1", "lab/inst:1"}
    installed = ok(lab.call("GET", "/admin/images?installed=true", "carol"))["images"]
    assert [i["reference"] for i in installed] == ["lab/inst:1"]
    assert ok(lab.call("GET", "/admin/images/lab/old:1", "carol"))["resource_limits"] == {"cpu": "1"}

    refused(
        lab.call("PATCH", "/admin/images/lab/old:1", "carol", json_body={"min_slots": {"cpu": 2}}), 403, "superadmin"
    )
    raised = ok(lab.call("PATCH", "/admin/images/lab/old:1", "admin", json_body={"min_slots": {"mem": "512m"}}))
    assert raised["resource_limits"] == {"cpu": "1", "mem": str(512 * 1024**2)}
    refused(lab.call("PATCH", "/admin/images/lab/old:1", "admin", json_body={"min_slots": {"cpu": "Infinity"}}),
            400, "cannot be unlimited")  # fmt: skip
    refused(lab.call("PATCH", "/admin/images/lab/old:1", "admin", json_body={"min_slots": {"cpu": "lots"}}), 400, "cpu")
    refused(
        lab.call("PATCH", "/admin/images/lab/none:1", "admin", json_body={"min_slots": {"cpu": 1}}), 404, "no image"
    )

    refused(lab.call("POST", "/admin/images/cleanup", "carol"), 403, "superadmin")
    dry = ok(lab.call("POST", "/admin/images/cleanup", "admin", json_body={"dry_run": True}))
    assert dry == {"removed": ["lab/old:1 (x86_64)"], "kept_in_use": ["lab/used:1"], "dry_run": True}
    assert len(ok(lab.call("GET", "/admin/images", "admin"))["images"]) == 3
    done = ok(lab.call("POST", "/admin/images/cleanup", "admin"))
    assert done["removed"] == ["lab/old:1 (x86_64)"] and not done["dry_run"]
    refs = {i["reference"] for i in ok(lab.call("GET", "/admin/images", "admin"))["images"]}
    assert refs == {"lab/used:1", "lab/inst:1"}

    # A rescan with no registries is an empty report, not an error.
    empty = ok(lab.call("POST", "/admin/images/rescan", "admin"))
    assert empty["added"] == empty["updated"] == 0 and empty["errors"] == []
    refused(lab.call("POST", "/admin/images/rescan", "carol"), 403, "superadmin")


def test_rescan_reports_unreachable_registries(lab):
    port = free_port()  # nothing listens there
    ok(lab.call("POST", "/admin/registries", "admin", json_body={"hostname": f"127.0.0.1:{port}",
                                                                  "url": f"http://127.0.0.1:{port}"}), 201)  # fmt: skip
    report = ok(lab.call("POST", "/admin/images/rescan", "admin"))
    assert report["added"] == 0 and len(report["errors"]) == 1
    assert report["errors"][0].startswith(f"127.0.0.1:{port}: cannot list repositories")


def test_agents_scaling_groups_settings(lab):
    def setup(db):
        session_db.register_agent(db, "agent-1", scaling_group="default",
                                  capacity=ResourceSlots.parse({"cpu": 8, "mem": "16g"}), addr="127.0.0.1:6001")  # fmt: skip
        lost = session_db.register_agent(
            db, "agent-2", scaling_group="default", capacity=ResourceSlots.parse({"cpu": 4})
        )
        lost.status = m.AgentStatus.LOST

    lab.pdb.setup(setup)
    add_session(lab, "alice", agent="agent-1")
    refused(lab.call("GET", "/admin/agents", "carol"), 403, "superadmin")
    alive = ok(lab.call("GET", "/admin/agents", "admin"))["agents"]
    assert [a["id"] for a in alive] == ["agent-1"]
    assert alive[0]["available_slots"]["cpu"] == "8" and alive[0]["occupied_slots"]["cpu"] == "1"
    assert alive[0]["status"] == "ALIVE" and alive[0]["schedulable"] is True
    assert [a["id"] for a in ok(lab.call("GET", "/admin/agents?status=lost", "admin"))["agents"]] == ["agent-2"]
    assert len(ok(lab.call("GET", "/admin/agents?status=all", "admin"))["agents"]) == 2
    refused(lab.call("GET", "/admin/agents?status=dead", "admin"), 400, "'status' must be")
    assert (
        ok(lab.call("PATCH", "/admin/agents/agent-1", "admin", json_body={"schedulable": False}))["schedulable"]
        is False
    )
    refused(lab.call("PATCH", "/admin/agents/agent-1", "admin", json_body={"schedulable": "no"}), 400, "boolean")
    refused(lab.call("PATCH", "/admin/agents/agent-9", "admin", json_body={"schedulable": True}), 404, "no agent")

    # Resource groups: a domain admin sees those open to their domain.
    assert ok(lab.call("GET", "/admin/scaling-groups", "carol"))["scaling_groups"] == []
    refused(lab.call("POST", "/admin/scaling-groups", "carol", json_body={"name": "gpu"}), 403, "superadmin")
    gpu = ok(lab.call("POST", "/admin/scaling-groups", "admin", json_body={"name": "gpu", "scheduler": "drf"}), 201)
    assert gpu["scheduler"] == "drf" and gpu["scheduler_opts"]["agent_selection"] == "concentrated"
    refused(lab.call("POST", "/admin/scaling-groups", "admin", json_body={"name": "x", "scheduler": "random"}),
            400, "invalid scheduler 'random'")  # fmt: skip
    patched = ok(lab.call("PATCH", "/admin/scaling-groups/gpu", "admin",
                          json_body={"agent_selection": "dispersed", "pending_timeout": 30}))  # fmt: skip
    assert patched["scheduler_opts"]["agent_selection"] == "dispersed" and patched["pending_timeout"] == 30
    refused(lab.call("PATCH", "/admin/scaling-groups/gpu", "admin", json_body={"agent_selection": "random"}),
            400, "invalid agent selection")  # fmt: skip
    carol_key = lab.keys("carol")[0]
    allowed = ok(lab.call("POST", "/admin/scaling-groups/gpu/allow", "admin",
                          json_body={"domains": ["lab"], "groups": ["lab/research"], "keypairs": [carol_key]}))  # fmt: skip
    assert allowed["allowed_domains"] == ["lab"] and allowed["allowed_groups"] == ["lab/research"]
    assert allowed["allowed_keypairs"] == [carol_key]
    assert [s["name"] for s in ok(lab.call("GET", "/admin/scaling-groups", "carol"))["scaling_groups"]] == ["gpu"]
    assert ok(lab.call("GET", "/admin/scaling-groups/gpu", "carol"))["name"] == "gpu"
    refused(lab.call("GET", "/admin/scaling-groups/default", "carol"), 403, "not open to your domain")
    revoked = ok(lab.call("POST", "/admin/scaling-groups/gpu/allow", "admin",
                          json_body={"groups": [{"name": "research", "domain": "lab"}], "revoke": True}))  # fmt: skip
    assert revoked["allowed_groups"] == [] and revoked["allowed_domains"] == ["lab"]
    refused(lab.call("POST", "/admin/scaling-groups/gpu/allow", "admin", json_body={"domains": ["nope"]}),
            404, "no domain named 'nope'")  # fmt: skip
    refused(
        lab.call("POST", "/admin/scaling-groups/gpu/allow", "carol", json_body={"domains": ["lab"]}), 403, "superadmin"
    )

    # Settings (F46): read-only, no secrets.
    refused(lab.call("GET", "/admin/settings", "carol"), 403, "superadmin")
    settings = ok(lab.call("GET", "/admin/settings", "admin"))
    assert settings["database"]["dialect"] == "sqlite" and settings["storage"]["hosts"] == ["local"]
    assert settings["counts"]["users"] == 5 and settings["counts"]["active_sessions"] == 1
    assert settings["counts"]["agents"] == 2 and settings["counts"]["alive_agents"] == 1
    assert settings["limits"]["rate_limit_window_seconds"] == 900
    assert "test-transfer-secret" not in str(settings)
    assert lab.call("POST", "/admin/settings", "admin").status_code == 405

    # Maintenance (F47): the resources module's recalculation; this manager runs without a hub.
    recalc = lab.call("POST", "/admin/maintenance/recalculate-usage", "admin")
    assert recalc.status_code == 503 and "without a hub" in recalc.json()["title"], recalc.text
    refused(lab.call("POST", "/admin/maintenance/recalculate-usage", "carol"), 403, "superadmin")


# --- a real registry -----------------------------------------------------------------------------------------


def _docker(*args: str, stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], input=stdin, capture_output=True, timeout=timeout)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr.decode(errors='replace')}"
    return result


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """Docker Distribution (Debian's ``docker-registry``) on 127.0.0.1:<free port>; yields host:port."""
    with running_registry(tmp_path / "registry-data") as address:
        yield address


@pytest.fixture
def pushed_image(registry: str, tmp_path: Path) -> Iterator[str]:
    """A one-file image with Backend.AI labels, built offline and pushed as ``<registry>/lab/tiny:1``.

    Its unlabeled base goes to ``<registry>/lab/plain:1``, which a rescan must pass over.
    """
    tag = uuid.uuid4().hex[:10]
    base, labeled, remote = f"jba-test-tiny-base:{tag}", f"jba-test-tiny:{tag}", f"{registry}/lab/tiny:1"
    plain = f"{registry}/lab/plain:1"
    root = tmp_path / "tiny-root"
    root.mkdir()
    (root / "hello.txt").write_text("hello\n")
    tarball = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True).stdout
    try:
        _docker("import", "-", base, stdin=tarball)
        dockerfile = (
            f"FROM {base}\nLABEL ai.backend.resource.min.cpu=1 ai.backend.resource.min.mem=256m "
            "ai.backend.service-ports=jupyter:http:8888\n"
        )
        _docker("build", "-q", "-t", labeled, "-", stdin=dockerfile.encode())
        _docker("tag", labeled, remote)
        _docker("push", remote)
        _docker("tag", base, plain)
        _docker("push", plain)
        yield remote
    finally:
        subprocess.run(["docker", "rmi", "-f", remote, plain, labeled, base], capture_output=True)


def test_rescan_a_real_registry(lab, registry, pushed_image):
    host = registry
    added = ok(
        lab.call("POST", "/admin/registries", "admin", json_body={"hostname": host, "url": f"http://{host}"}), 201
    )
    assert added["hostname"] == host

    report = ok(lab.call("POST", "/admin/images/rescan", "admin"))
    assert report["errors"] == [] and report["added"] == 1 and report["updated"] == 0, report
    assert report["images"] == [f"{pushed_image} (x86_64)"]
    # The unlabeled image next to it is not for the platform: reported, not offered.
    assert report["skipped"] == [f"{host}/lab/plain:1 (x86_64): no ai.backend.* label"]

    images = {i["reference"]: i for i in ok(lab.call("GET", "/admin/images", "admin"))["images"]}
    image = images[pushed_image]
    assert image["registry"] == host and image["name"] == "lab/tiny" and image["tag"] == "1"
    assert image["resource_limits"] == {"cpu": "1", "mem": str(256 * 1024**2)}
    assert image["service_ports"] == [{"name": "jupyter", "protocol": "http", "ports": [8888]}]
    assert image["digest"].startswith("sha256:") and image["installed"] is False
    assert image["labels"]["ai.backend.service-ports"] == "jupyter:http:8888"

    # A second scan updates in place; a scan of one named registry works too.
    again = ok(lab.call("POST", "/admin/images/rescan", "admin", json_body={"registry": host}))
    assert again["added"] == 0 and again["updated"] == 1 and again["registries"] == [host]
    refused(lab.call("POST", "/admin/images/rescan", "admin", json_body={"registry": "nope.example.com"}),
            404, "no registry named")  # fmt: skip
