"""``/admin/gql`` against a live manager, driven by Backend.AI's own client (``backend.ai`` CLI).

Every listing and account command of the client that speaks GraphQL is run as a plain user, a
domain admin and a superadmin, and its printed output is checked for the real rows (and for
the absence of rows the caller may not see). Raw GraphQL requests check the error answers:
unknown fields, refusals and malformed bodies are reasons, never a 500.

Roles: ``admin`` (superadmin, domain ``default``), ``carol`` (domain admin of ``lab``),
``dave`` (user in ``lab``), ``alice`` and ``bob`` (users in ``default``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from jupyter_backendai.core.like import like_matcher
from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.manager.gql.filter import MAX_FILTER_LENGTH
from testing.client import bai, gql
from testing.manager import PASSWORD, Manager, running_session


def rows_of(out: str) -> list[str]:
    """The data lines of a table the client printed (no header, no rule, no warnings)."""
    lines = out.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    except StopIteration:
        return []
    return [line for line in lines[start:] if line.strip()]


def names(out: str) -> set[str]:
    return {word for line in rows_of(out) for word in line.split()}


# --- a plain user: their own rows, refusals with reasons -------------------------------------------


def test_user_sees_own_rows_through_the_client(world):
    folders = names(bai(world, "alice", "vfolder", "list"))
    assert "alice-data" in folders and not {"bob-data", "dave-data"} & folders

    me = bai(world, "alice", "admin", "user", "info")
    assert "alice@example.com" in me and "bob@example.com" not in me
    access, secret = world.keys("alice")
    mine = bai(world, "alice", "admin", "keypair", "info")
    assert access in mine and secret in mine  # a user sees their own secret

    sessions = names(bai(world, "alice", "ps"))
    assert {"alice-nb", world.sessions["alice"], "RUNNING"} <= sessions and "dave-nb" not in sessions
    detail = bai(world, "alice", "admin", "session", "info", world.sessions["alice"])
    assert "alice-nb" in detail and "cpu:2, mem:2.0G" in detail and "i-node1" in detail
    assert "no session" in bai(world, "alice", "admin", "session", "info", world.sessions["dave"], ok=False)

    assert "lab/python" in names(bai(world, "alice", "admin", "image", "list"))  # images are for everyone
    assert "this needs an administrator" in bai(world, "alice", "admin", "user", "list", ok=False)
    assert "this needs an administrator" in bai(world, "alice", "admin", "keypair", "list", ok=False)
    assert "this needs a superadmin" in bai(world, "alice", "admin", "agent", "list", ok=False)
    assert "this needs an administrator" in bai(world, "alice", "admin", "user", "add", "default", "x@example.com",
                                                PASSWORD, ok=False)  # fmt: skip


# --- a domain admin: their domain only ------------------------------------------------------------------


def test_domain_admin_sees_their_domain_through_the_client(world):
    users = names(bai(world, "carol", "admin", "user", "list"))
    assert {"carol@example.com", "dave@example.com"} <= users
    assert not {"alice@example.com", "admin@example.com", "bob@example.com"} & users
    refusal = bai(world, "carol", "admin", "user", "info", "-e", "alice@example.com", ok=False)
    assert "you administer domain 'lab'" in refusal

    keys = names(bai(world, "carol", "admin", "keypair", "list"))
    assert world.keys("dave")[0] in keys and world.keys("alice")[0] not in keys
    assert world.keys("dave")[1] not in keys  # another user's secret is never listed

    sessions = names(bai(world, "carol", "admin", "session", "list"))
    assert "dave-nb" in sessions and "alice-nb" not in sessions
    assert "no session" in bai(world, "carol", "admin", "session", "info", world.sessions["alice"], ok=False)

    folders = names(bai(world, "carol", "vfolder", "list"))
    assert "dave-data" in folders and not {"alice-data", "bob-data"} & folders

    assert names(bai(world, "carol", "admin", "group", "list")) & {"research", "default"} == {"research"}
    assert names(bai(world, "carol", "admin", "domain", "list")) & {"lab", "default"} == {"lab"}
    assert "you are in domain 'lab'" in bai(world, "carol", "admin", "domain", "info", "default", ok=False)
    sgroups = names(bai(world, "carol", "admin", "scaling-group", "list"))
    assert "default" in sgroups and "gpu-only" not in sgroups
    assert "not open to your domain" in bai(world, "carol", "admin", "scaling-group", "info", "gpu-only", ok=False)

    # System-wide objects stay the superadmin's.
    assert "this needs a superadmin" in bai(world, "carol", "admin", "agent", "list", ok=False)
    assert "this needs a superadmin" in bai(world, "carol", "admin", "storage", "list", ok=False)


# --- a superadmin: everything -----------------------------------------------------------------------------


def test_superadmin_sees_everything_through_the_client(world):
    users = names(bai(world, "admin", "admin", "user", "list"))
    assert {f"{u}@example.com" for u in ("admin", "alice", "bob", "carol", "dave")} <= users
    lab_only = rows_of(bai(world, "admin", "admin", "user", "list", "--filter", 'domain_name == "lab"',
                           "--order", "-email"))  # fmt: skip
    assert [line.split()[3] for line in lab_only] == ["dave@example.com", "carol@example.com"]
    bad = bai(world, "admin", "admin", "user", "list", "--filter", 'password == "x"', ok=False)
    assert "cannot filter on 'password'" in bad

    sessions = names(bai(world, "admin", "admin", "session", "list"))
    assert {"alice-nb", "dave-nb", world.keys("alice")[0], world.keys("dave")[0], "research"} <= sessions
    agents = bai(world, "admin", "admin", "agent", "list")
    (agent,) = rows_of(agents)
    # Two running sessions of 2 CPUs and 2 GiB each, and their last usage samples (37.5 %, 512 MiB each).
    assert agent.split()[:3] == ["i-node1", "ALIVE", "(null)"] and "cpu:4, mem:4.0G" in agent
    assert "cpu:8, mem:16.0G" in agent and " 75 " in agent and " 1024 " in agent
    assert "cpu:8, mem:16.0G" in bai(world, "admin", "admin", "agent", "info", "i-node1")

    images = rows_of(bai(world, "admin", "admin", "image", "list"))
    assert images[0].split()[:5] == ["lab/python", "cr.example.com", "x86_64", "3.11", "sha256:" + "ab" * 32]
    policies = names(bai(world, "admin", "admin", "keypair-resource-policy", "list"))
    assert {"default", "gold"} <= policies
    gold = bai(world, "admin", "admin", "keypair-resource-policy", "info", "gold")
    assert "Max Vfolder Count           7" in gold
    assert {"default", "gpu-only"} <= names(bai(world, "admin", "admin", "scaling-group", "list"))
    assert "The default resource group" in bai(world, "admin", "admin", "scaling-group", "info", "default")
    assert {"default", "lab"} <= names(bai(world, "admin", "admin", "domain", "list"))
    group = bai(world, "admin", "admin", "group", "info", "research")
    assert world.research_id in group and "lab" in group
    assert "local" in names(bai(world, "admin", "admin", "storage", "list"))
    assert "vfs" in bai(world, "admin", "admin", "storage", "info", "local")
    assert {"alice-data", "bob-data", "dave-data"} <= names(bai(world, "admin", "vfolder", "list"))


# --- administration through the client's mutations ---------------------------------------------------------


def _user(manager: Manager, email: str) -> dict[str, Any] | None:
    """The account as the database holds it (None when there is none)."""
    with manager.pdb.factory() as db:
        user = db.scalar(select(m.User).where(m.User.email == email))
        if user is None:
            return None
        return {
            "domain": user.domain_name,
            "role": user.role.value,
            "status": user.status.value,
            "full_name": user.full_name,
            "keys": sorted((k.access_key, k.is_active, k.rate_limit) for k in user.keypairs),
        }


def test_users_and_keypairs_administered_through_the_client(world):
    out = bai(world, "carol", "admin", "user", "add", "lab", "erin@example.com", PASSWORD, "-n", "Erin")
    assert "erin@example.com" in out
    assert _user(world, "erin@example.com")["domain"] == "lab"
    assert "you administer domain 'lab'" in bai(world, "carol", "admin", "user", "add", "default", "f@example.com",
                                                PASSWORD, ok=False)  # fmt: skip
    weak = bai(world, "carol", "admin", "user", "add", "lab", "g@example.com", "short", ok=False)
    assert "password" in weak.lower() and _user(world, "g@example.com") is None  # the reason, nothing written
    assert "already exists" in bai(world, "carol", "admin", "user", "add", "lab", "erin@example.com", PASSWORD,
                                   ok=False)  # fmt: skip

    bai(world, "carol", "admin", "user", "update", "erin@example.com", "-n", "Erin Lab")
    assert _user(world, "erin@example.com")["full_name"] == "Erin Lab"
    assert "superadmin" in bai(world, "carol", "admin", "user", "update", "dave@example.com", "-r", "superadmin",
                               ok=False)  # fmt: skip
    assert "you administer domain 'lab'" in bai(world, "carol", "admin", "user", "update", "alice@example.com",
                                                "-n", "x", ok=False)  # fmt: skip
    assert _user(world, "alice@example.com")["full_name"] == ""
    bai(world, "carol", "admin", "user", "delete", "erin@example.com")
    assert _user(world, "erin@example.com")["status"] == "inactive"  # deactivated, never deleted (F37)

    before = {k for k, *_ in _user(world, "dave@example.com")["keys"]}
    made = bai(world, "carol", "admin", "keypair", "add", "dave@example.com", "gold", "-r", "77")
    (new,) = {k for k, *_ in _user(world, "dave@example.com")["keys"]} - before
    assert new in made
    bai(world, "carol", "admin", "keypair", "update", new, "-r", "5")
    bai(world, "carol", "admin", "keypair", "deactivate", new)
    assert (new, False, 5) in _user(world, "dave@example.com")["keys"]
    bai(world, "carol", "admin", "keypair", "activate", new)
    assert (new, True, 5) in _user(world, "dave@example.com")["keys"]
    alice_key = world.keys("alice")[0]
    assert "you administer domain 'lab'" in bai(world, "carol", "admin", "keypair", "deactivate", alice_key, ok=False)
    assert "you administer domain 'lab'" in bai(world, "carol", "admin", "keypair", "add", "alice@example.com",
                                                "default", ok=False)  # fmt: skip
    bai(world, "carol", "admin", "keypair", "delete", new)
    assert new not in {k for k, *_ in _user(world, "dave@example.com")["keys"]}
    used = bai(world, "carol", "admin", "keypair", "delete", world.keys("dave")[0], ok=False)
    assert "cannot be deleted" in used  # it ran a session (F38)

    # A superadmin acts in any domain.
    bai(world, "admin", "admin", "user", "update", "alice@example.com", "-n", "Alice A")
    assert _user(world, "alice@example.com")["full_name"] == "Alice A"


# --- raw GraphQL: errors are reasons -----------------------------------------------------------------------


def test_graphql_errors_name_the_reason(world):
    unknown = gql(world, "alice", "{ user { email password_hash } }")
    assert unknown.status_code == 200
    body = unknown.json()
    assert body["data"] is None and "Cannot query field 'password_hash' on type 'User'" in body["errors"][0]["message"]

    syntax = gql(world, "alice", "{ user { email ")
    assert syntax.status_code == 200 and "Syntax Error" in syntax.json()["errors"][0]["message"]

    refused = gql(world, "alice", "{ user { email } users { email } }").json()
    assert refused["data"] == {"user": {"email": "alice@example.com"}, "users": None}
    (error,) = refused["errors"]
    assert error["message"] == "this needs an administrator" and error["path"] == ["users"]
    assert error["extensions"] == {"status": 403}

    paged = gql(world, "admin", "query { user_list(limit: 1000, offset: 0) { total_count } }").json()
    assert "limit must be between 1 and 100" in paged["errors"][0]["message"]
    filtered = gql(world, "admin", 'query { user_list(limit: 5, offset: 0, filter: "email ==") { total_count } }')
    assert "field operator value" in filtered.json()["errors"][0]["message"]
    bad_uuid = gql(world, "admin", "query($id: UUID!) { compute_session(id: $id) { name } }", {"id": "nope"})
    assert "is not a UUID" in bad_uuid.json()["errors"][0]["message"]

    for body, words in [
        ({}, "'query' (a GraphQL document) is required"),
        ({"query": "{ user { email } }", "variables": [1]}, "'variables' must be an object"),
        ({"query": 5}, "'query' (a GraphQL document) is required"),
    ]:
        answer = world.call("POST", "/admin/gql", "alice", json_body=body)
        assert answer.status_code == 400 and words in answer.json()["title"], answer.text
    assert world.call("POST", "/admin/gql", json_body={"query": "{ user { email } }"}).status_code == 401

    # A refused mutation writes nothing, even the parts that were valid.
    weak = gql(world, "admin", 'mutation { create_user(email: "h@example.com", props: {password: "x"}) { ok msg } }')
    answer = weak.json()["data"]["create_user"]
    assert answer["ok"] is False and "password" in answer["msg"].lower()
    assert _user(world, "h@example.com") is None

    purge = gql(world, "admin", 'mutation { purge_user(email: "bob@example.com", props: {}) { ok msg } }')
    assert purge.json()["data"]["purge_user"] == {
        "ok": False,
        "msg": "users are never deleted here, only deactivated (delete_user)",
    }
    assert _user(world, "bob@example.com")["status"] == "active"

    # The endpoint of API versions before v6.20210815 answers the bare data.
    legacy = world.call("POST", "/admin/graphql", "alice", json_body={"query": "{ user { email } }"})
    assert legacy.status_code == 200 and legacy.json() == {"user": {"email": "alice@example.com"}}
    legacy_bad = world.call("POST", "/admin/graphql", "alice", json_body={"query": "{ users { email } }"})
    assert legacy_bad.status_code == 400 and legacy_bad.json()["errors"][0]["message"] == "this needs an administrator"


def test_folder_sizes_and_sessions_paged(world):
    created = world.call("POST", "/folders", "alice", json_body={"name": "sized", "host": "local"})
    assert created.status_code == 201, created.text
    folder_id = uuid.UUID(created.json()["id"])
    path = world.pdb.storage_root / "local" / folder_id.hex[:2] / folder_id.hex
    (path / "a.bin").write_bytes(b"x" * 1000)
    (path / "b.bin").write_bytes(b"y" * 24)
    query = """query { vfolder_list(limit: 10, offset: 0, filter: "name == 'sized'") {
                 items { id name num_files cur_size user_email } total_count } }"""
    listed = gql(world, "alice", query).json()["data"]["vfolder_list"]
    assert listed == {
        "items": [{"id": str(folder_id), "name": "sized", "num_files": 2, "cur_size": 1024,
                   "user_email": "alice@example.com"}],
        "total_count": 1,
    }  # fmt: skip
    for _ in range(3):
        running_session(world, "alice")
    q = "query($o: Int!) { compute_session_list(limit: 2, offset: $o) { items { id name } total_count } }"
    first = gql(world, "alice", q, {"o": 0}).json()["data"]["compute_session_list"]
    second = gql(world, "alice", q, {"o": 2}).json()["data"]["compute_session_list"]
    assert first["total_count"] == second["total_count"] == 4
    ids = [s["id"] for s in first["items"] + second["items"]]
    assert len(set(ids)) == 4 and world.sessions["alice"] in ids and world.sessions["dave"] not in ids


@pytest.mark.parametrize(
    ("pattern", "value", "ignore_case", "expected"),
    [
        ("%@lab.org", "dave@lab.org", False, True),
        ("%@lab.org", "dave@lab.org.evil", False, False),
        ("a%", "abc", False, True),
        ("a%", "bac", False, False),
        ("%b%", "abc", False, True),
        ("a_c", "abc", False, True),
        ("a_c", "abbc", False, False),
        ("a%_%c", "ac", False, False),
        ("a%_%c", "axc", False, True),
        ("%%", "", False, True),
        ("", "", False, True),
        ("", "x", False, False),
        ("ab%ba", "aba", False, False),  # head and tail may not overlap
        ("ab%ba", "abba", False, True),
        ("%a_a%", "xaya", False, True),
        ("%A%B", "xxaxxb", True, True),
        ("%A%B", "xxaxxb", False, False),
        ("%.%", "a.b", False, True),  # no regex meaning
        ("%.%", "ab", False, False),
    ],
)
def test_like_matcher(pattern, value, ignore_case, expected):
    assert like_matcher(pattern, ignore_case=ignore_case)(value) is expected


def test_like_matcher_is_linear_on_many_wildcards():
    """``%a%a…%b`` against ``aaaa…`` made the regex translation backtrack for hours."""
    pattern = "%a" * 30 + "%b"
    started = time.monotonic()
    assert like_matcher(pattern)("a" * 5000) is False
    assert like_matcher(pattern)("a" * 5000 + "b") is True
    assert like_matcher("%a_" * 30 + "%b")("a" * 5000) is False
    assert time.monotonic() - started < 2


def test_filter_with_many_wildcards_answers_quickly(manager):
    """A pathological ``like`` filter is answered at once; a filter past the bound is a 400."""
    long_name = "a" * 3000
    manager.pdb.setup(lambda db: setattr(admin.get_user(db, "alice"), "full_name", long_name))
    text = 'full_name like "' + "%a" * 40 + '%b"'
    query = "query($f: String) { user_list(limit: 10, offset: 0, filter: $f) { total_count } }"
    started = time.monotonic()
    answer = gql(manager, "admin", query, {"f": text})
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["user_list"] == {"total_count": 0}
    assert time.monotonic() - started < 10
    found = gql(manager, "admin", query, {"f": 'full_name like "%a%a%"'}).json()["data"]["user_list"]
    assert found == {"total_count": 1}

    too_long = gql(manager, "admin", query, {"f": 'email like "' + "%" * (MAX_FILTER_LENGTH) + '"'}).json()
    assert too_long["data"]["user_list"] is None
    assert f"a filter is at most {MAX_FILTER_LENGTH} characters" in too_long["errors"][0]["message"]
    assert too_long["errors"][0]["extensions"] == {"status": 400}
