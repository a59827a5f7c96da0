"""Backend.AI's client administers domains, groups, keypair resource policies and resource groups.

``backend.ai admin domain|group|keypair-resource-policy|scaling-group ...`` against a live
manager (``/admin/gql`` mutations), as a superadmin, a domain admin and a plain user, with what
the database holds afterwards; then plain GraphQL for the mutations the client does not send.
Roles as in :mod:`tests.manager.test_manager_gql`: ``admin`` (superadmin), ``carol`` (admin of ``lab``),
``dave`` (user in ``lab``, member of ``research``), ``alice`` (user in ``default``).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from jupyter_backendai.db import admin, launch
from jupyter_backendai.db import models as m
from testing.client import bai, gql


def _read(manager, fn):
    with manager.pdb.factory() as db:
        return fn(db)


def _domain(manager, name):
    def read(db):
        d = db.get(m.Domain, name)
        if d is None:
            return None
        return {
            "active": d.is_active,
            "description": d.description,
            "slots": d.total_resource_slots.to_json(),
            "hosts": list(d.allowed_vfolder_hosts),
            "registries": list(d.allowed_docker_registries),
        }

    return _read(manager, read)


def _group(manager, domain, name):
    def read(db):
        g = db.scalar(select(m.Group).where(m.Group.domain_name == domain, m.Group.name == name))
        if g is None:
            return None
        return {
            "id": str(g.id),
            "active": g.is_active,
            "description": g.description,
            "slots": g.total_resource_slots.to_json(),
            "members": sorted(u.email for u in g.users),
        }

    return _read(manager, read)


def _user_id(manager, email):
    return _read(manager, lambda db: str(admin.get_user(db, email).id))


def _launch_refusal(manager, email, project=""):
    """Why a launch of ``email`` into ``project`` is refused (the hub's and the manager's rule), or None."""
    request = SimpleNamespace(image="", group=project, scaling_group="", preset="", slots={}, shmem="", folders=[])

    def run(db):
        try:
            launch.plan_launch(db, admin.get_user(db, email), request)
        except launch.Refused as e:
            return str(e)
        return None

    return _read(manager, run)


# --- domains: superadmins ---------------------------------------------------------------------------


def test_domains_through_the_client(world):
    out = bai(world, "admin", "admin", "domain", "add", "physics", "-d", "Physics dept",
              "--total-resource-slots", '{"cpu": 4}', "--vfolder-host-perms", '{"local": ["create-vfolder"]}',
              "--allowed-docker-registries", "cr.example.com")  # fmt: skip
    assert "physics" in out
    assert _domain(world, "physics") == {
        "active": True,
        "description": "Physics dept",
        "slots": {"cpu": "4"},
        "hosts": ["local"],
        "registries": ["cr.example.com"],
    }
    assert "Physics dept" in bai(world, "admin", "admin", "domain", "info", "physics")

    bai(world, "admin", "admin", "domain", "update", "physics", "--description", "Physics",
        "--total-resource-slots", '{"mem": "8g"}')  # fmt: skip
    changed = _domain(world, "physics")
    assert changed["description"] == "Physics" and changed["slots"] == {"cpu": "4", "mem": str(8 * 1024**3)}

    # Bad input: the reason, nothing written.
    assert "invalid domain name" in bai(world, "admin", "admin", "domain", "add", "no such!", ok=False)
    assert "already exists" in bai(world, "admin", "admin", "domain", "add", "physics", ok=False)
    bad_slots = bai(world, "admin", "admin", "domain", "add", "chem", "--total-resource-slots", "{cpu: 4", ok=False)
    assert "not valid JSON" in bad_slots and _domain(world, "chem") is None
    assert "no domain named 'nowhere'" in bai(world, "admin", "admin", "domain", "update", "nowhere",
                                              "--description", "x", ok=False)  # fmt: skip

    # Only superadmins: a domain admin and a user are refused, nothing written.
    for who in ("carol", "dave"):
        assert "this needs a superadmin" in bai(world, who, "admin", "domain", "add", "chem", ok=False)
        assert "this needs a superadmin" in bai(world, who, "admin", "domain", "update", "lab", "--description",
                                                "mine", ok=False)  # fmt: skip
        assert "this needs a superadmin" in bai(world, who, "admin", "domain", "delete", "lab", ok=False)
    assert _domain(world, "chem") is None and _domain(world, "lab")["description"] == ""
    assert _domain(world, "lab")["active"] is True

    # delete deactivates, as Backend.AI's does: the domain's users launch nothing until it is active again.
    assert _launch_refusal(world, "dave@example.com") != "the domain 'lab' is inactive; ask an administrator"
    bai(world, "admin", "admin", "domain", "delete", "lab")
    assert _domain(world, "lab")["active"] is False
    assert _launch_refusal(world, "dave@example.com") == "the domain 'lab' is inactive; ask an administrator"
    bai(world, "admin", "admin", "domain", "update", "lab", "--is-active", "true")
    assert _domain(world, "lab")["active"] is True
    purge = bai(world, "admin", "admin", "domain", "purge", "physics", ok=False, answer="y\n")
    assert "domains are never deleted here" in purge and _domain(world, "physics") is not None


# --- groups (projects): the admins of their domain --------------------------------------------------


def test_groups_through_the_client(world):
    out = bai(world, "carol", "admin", "group", "add", "lab", "optics", "-d", "Optics",
              "--total-resource-slots", '{"cpu": 2}')  # fmt: skip
    optics = _group(world, "lab", "optics")
    assert optics["id"] in out and optics["slots"] == {"cpu": "2"} and optics["description"] == "Optics"
    gid = optics["id"]

    bai(world, "carol", "admin", "group", "update", gid, "--description", "Optics lab")
    assert _group(world, "lab", "optics")["description"] == "Optics lab"
    dave = _user_id(world, "dave@example.com")
    bai(world, "carol", "admin", "group", "add-users", gid, dave)
    assert _group(world, "lab", "optics")["members"] == ["dave@example.com"]
    bai(world, "carol", "admin", "group", "remove-users", gid, dave)
    assert _group(world, "lab", "optics")["members"] == []

    # Another domain's admin, a user: refused, nothing written.
    default_gid = _group(world, "default", "default")["id"]
    assert "you administer domain 'lab', not 'default'" in bai(world, "carol", "admin", "group", "add", "default",
                                                              "hack", ok=False)  # fmt: skip
    refused = bai(world, "carol", "admin", "group", "update", default_gid, "--description", "x", ok=False)
    assert "you administer domain 'lab'; group 'default' is in 'default'" in refused
    alice = _user_id(world, "alice@example.com")
    assert "you administer domain 'lab'" in bai(world, "carol", "admin", "group", "add-users", gid, alice, ok=False)
    assert "this needs an administrator" in bai(world, "dave", "admin", "group", "add", "lab", "mine", ok=False)
    assert "this needs an administrator" in bai(world, "dave", "admin", "group", "delete", gid, ok=False)
    assert _group(world, "default", "hack") is None and _group(world, "lab", "mine") is None
    assert _group(world, "default", "default")["description"] == "The default project"
    assert _group(world, "lab", "optics")["members"] == [] and _group(world, "lab", "optics")["active"]

    # Bad input: the reason, nothing written.
    assert "invalid group name" in bai(world, "carol", "admin", "group", "add", "lab", "bad name", ok=False)
    assert "already exists" in bai(world, "carol", "admin", "group", "add", "lab", "optics", ok=False)
    bad = bai(world, "carol", "admin", "group", "update", gid, "--total-resource-slots", '{"cpu": "many"}', ok=False)
    assert "cpu" in bad and _group(world, "lab", "optics")["slots"] == {"cpu": "2"}
    missing = "00000000-0000-0000-0000-000000000000"
    assert f"no group with id '{missing}'" in bai(world, "carol", "admin", "group", "delete", missing, ok=False)
    assert "is not a UUID" in bai(world, "carol", "admin", "group", "delete", "optics", ok=False)

    # delete deactivates: no launch in the project, a launch without one goes elsewhere.
    research = _group(world, "lab", "research")["id"]
    bai(world, "carol", "admin", "group", "delete", research)
    assert _group(world, "lab", "research")["active"] is False
    assert _launch_refusal(world, "dave@example.com", "research") == (
        "the project 'research' is inactive; ask an administrator"
    )


# --- keypair resource policies: superadmins ----------------------------------------------------------


def _policy(manager, name):
    def read(db):
        p = db.get(m.KeyPairResourcePolicy, name)
        if p is None:
            return None
        return {
            "slots": p.total_resource_slots.to_json(),
            "sessions": p.max_concurrent_sessions,
            "idle": p.idle_timeout,
            "lifetime": p.max_session_lifetime,
            "hosts": list(p.allowed_vfolder_hosts),
        }

    return _read(manager, read)


def test_keypair_resource_policies_through_the_client(world):
    # The client's defaults: UNLIMITED, 30 sessions, 30 SFTP sessions (nothing to limit here), 1800 s idle.
    out = bai(world, "admin", "admin", "keypair-resource-policy", "add", "silver", "--total-resource-slots",
              '{"cpu": 4, "mem": "4g"}', "--max-session-lifetime", "7200")  # fmt: skip
    assert "silver" in out
    assert _policy(world, "silver") == {
        "slots": {"cpu": "4", "mem": str(4 * 1024**3)},
        "sessions": 30,
        "idle": 1800,
        "lifetime": 7200,
        "hosts": ["local:volume1"],  # the client's default {host: permissions}
    }
    bai(world, "admin", "admin", "keypair-resource-policy", "update", "silver", "--max-concurrent-sessions", "3",
        "--vfolder-host-perms", '{"local": ["create-vfolder", "mount-in-session"]}')  # fmt: skip
    changed = _policy(world, "silver")
    assert changed["sessions"] == 3 and changed["hosts"] == ["local"] and changed["idle"] == 1800

    # Bad input: the reason, nothing written.
    limited = bai(world, "admin", "admin", "keypair-resource-policy", "add", "bronze", "--default-for-unspecified",
                  "LIMITED", ok=False)  # fmt: skip
    assert "default_for_unspecified 'LIMITED' is not supported" in limited
    negative = bai(world, "admin", "admin", "keypair-resource-policy", "add", "bronze", "--max-concurrent-sessions",
                   "-1", ok=False)  # fmt: skip
    assert "max concurrent sessions must be a whole number of 0 or more" in negative
    assert "already exists" in bai(world, "admin", "admin", "keypair-resource-policy", "add", "gold", ok=False)
    assert _policy(world, "bronze") is None
    assert "no keypair resource policy named 'tin'" in bai(world, "admin", "admin", "keypair-resource-policy",
                                                           "update", "tin", "--idle-timeout", "5", ok=False)  # fmt: skip
    in_use = bai(world, "admin", "admin", "keypair-resource-policy", "delete", "default", ok=False, answer="y\n")
    assert "is used by" in in_use and _policy(world, "default") is not None

    for who in ("carol", "dave"):
        assert "this needs a superadmin" in bai(world, who, "admin", "keypair-resource-policy", "add", "mine",
                                                ok=False)  # fmt: skip
        assert "this needs a superadmin" in bai(world, who, "admin", "keypair-resource-policy", "update", "silver",
                                                "--max-concurrent-sessions", "99", ok=False)  # fmt: skip
        assert "this needs a superadmin" in bai(world, who, "admin", "keypair-resource-policy", "delete", "silver",
                                                ok=False, answer="y\n")  # fmt: skip
    assert _policy(world, "mine") is None and _policy(world, "silver")["sessions"] == 3

    bai(world, "admin", "admin", "keypair-resource-policy", "delete", "silver", answer="y\n")
    assert _policy(world, "silver") is None


# --- resource (scaling) groups: superadmins ----------------------------------------------------------


def _sgroup(manager, name):
    def read(db):
        s = db.get(m.ScalingGroup, name)
        if s is None:
            return None
        return {
            "description": s.description,
            "active": s.is_active,
            "scheduler": s.scheduler.value,
            "pending_timeout": s.pending_timeout,
            "opts": dict(s.scheduler_opts),
            "domains": sorted(d.name for d in s.domains),
            "groups": sorted(g.name for g in s.groups),
            "keypairs": sorted(k.access_key for k in s.keypairs),
        }

    return _read(manager, read)


def test_scaling_groups_through_the_client(world):
    out = bai(world, "admin", "admin", "scaling-group", "add", "batch", "-d", "Batch jobs", "--scheduler", "drf",
              "--scheduler-opts", '{"pending_timeout": 30, "config": {"num_retries_to_skip": 2}}')  # fmt: skip
    assert "batch" in out
    batch = _sgroup(world, "batch")
    assert batch["description"] == "Batch jobs" and batch["scheduler"] == "drf" and batch["pending_timeout"] == 30
    assert batch["opts"] == {"agent_selection": "concentrated", "fifo_max_skips": 2} and batch["domains"] == []

    bai(world, "admin", "admin", "scaling-group", "update", "batch", "--scheduler", "fifo", "--active", "false")
    assert _sgroup(world, "batch")["scheduler"] == "fifo" and _sgroup(world, "batch")["active"] is False
    bai(world, "admin", "admin", "scaling-group", "update", "batch", "--active", "true", "--scheduler-opts",
        '{"agent_selection_strategy": "dispersed"}')  # fmt: skip
    assert _sgroup(world, "batch")["opts"]["agent_selection"] == "dispersed" and _sgroup(world, "batch")["active"]
    bai(world, "admin", "admin", "scaling-group", "associate-scaling-group", "batch", "lab")
    assert _sgroup(world, "batch")["domains"] == ["lab"]
    # The client's dissociate-scaling-group then prints a 'scaling_group' item its own mutation did not
    # ask for (a KeyError in the client, Backend.AI's 23.09 client does it against its own manager too).
    gone = bai(world, "admin", "admin", "scaling-group", "dissociate-scaling-group", "batch", "lab", ok=False)
    assert "KeyError: 'scaling_group'" in gone
    assert _sgroup(world, "batch")["domains"] == []

    # Bad input: the reason, nothing written.
    assert "invalid scheduler 'nosuch'" in bai(world, "admin", "admin", "scaling-group", "add", "x", "--scheduler",
                                               "nosuch", ok=False)  # fmt: skip
    assert "private resource groups are not supported" in bai(world, "admin", "admin", "scaling-group", "add", "x",
                                                              "--private", ok=False)  # fmt: skip
    unknown = bai(world, "admin", "admin", "scaling-group", "add", "x", "--scheduler-opts", '{"bogus": 1}', ok=False)
    assert "unknown scheduler option(s) bogus" in unknown and _sgroup(world, "x") is None
    assert "no domain named 'nowhere'" in bai(world, "admin", "admin", "scaling-group", "associate-scaling-group",
                                              "batch", "nowhere", ok=False)  # fmt: skip
    used = bai(world, "admin", "admin", "scaling-group", "delete", "default", ok=False)
    assert "cannot be deleted" in used and _sgroup(world, "default") is not None

    for who in ("carol", "dave"):
        assert "this needs a superadmin" in bai(world, who, "admin", "scaling-group", "add", "mine", ok=False)
        assert "this needs a superadmin" in bai(world, who, "admin", "scaling-group", "update", "batch", "-d", "x",
                                                ok=False)  # fmt: skip
        assert "this needs a superadmin" in bai(world, who, "admin", "scaling-group", "associate-scaling-group",
                                                "gpu-only", "lab", ok=False)  # fmt: skip
        assert "this needs a superadmin" in bai(world, who, "admin", "scaling-group", "delete", "batch", ok=False)
    assert _sgroup(world, "mine") is None and _sgroup(world, "gpu-only")["domains"] == []
    assert _sgroup(world, "batch")["description"] == "Batch jobs"

    bai(world, "admin", "admin", "scaling-group", "delete", "batch")
    assert _sgroup(world, "batch") is None


# --- plain GraphQL: what the client does not send -----------------------------------------------------


def _mutate(manager, who, document, variables=None):
    answer = gql(manager, who, "mutation" + document, variables)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_mutations_the_client_does_not_send(world):
    research = _group(world, "lab", "research")["id"]
    dave_key = world.keys("dave")[0]
    assoc = """($sg: String!, $g: UUID!, $k: String!) {
        g: associate_scaling_group_with_user_group(scaling_group: $sg, user_group: $g) { ok msg }
        k: associate_scaling_group_with_keypair(scaling_group: $sg, access_key: $k) { ok msg }
    }"""
    done = _mutate(world, "admin", assoc, {"sg": "gpu-only", "g": research, "k": dave_key})
    assert done["data"] == {"g": {"ok": True, "msg": "success"}, "k": {"ok": True, "msg": "success"}}
    assert _sgroup(world, "gpu-only")["groups"] == ["research"] and _sgroup(world, "gpu-only")["keypairs"] == [dave_key]
    # The group is open to the project's members: a launch of dave may choose it.
    assert "gpu-only" in _read(world, lambda db: launch.allowed_scaling_groups(
        db, admin.get_user(db, "dave"), launch.main_keypair(db, admin.get_user(db, "dave")), None))  # fmt: skip

    # As Backend.AI's client sends it: the group's id as a String.
    undo = """($sg: String!, $g: String!, $k: String!) {
        g: disassociate_scaling_group_with_user_group(scaling_group: $sg, user_group: $g) { ok msg }
        k: disassociate_scaling_group_with_keypair(scaling_group: $sg, access_key: $k) { ok msg }
    }"""
    assert _mutate(world, "admin", undo, {"sg": "gpu-only", "g": research, "k": dave_key})["data"]["g"]["ok"]
    assert _sgroup(world, "gpu-only")["groups"] == [] and _sgroup(world, "gpu-only")["keypairs"] == []

    _mutate(world, "admin", assoc, {"sg": "gpu-only", "g": research, "k": dave_key})
    _mutate(world, "admin", '{ associate_scaling_group_with_domain(scaling_group: "gpu-only", domain: "lab") { ok } }')
    every = f"""{{ d: disassociate_all_scaling_groups_with_domain(domain: "lab") {{ ok msg }}
                  g: disassociate_all_scaling_groups_with_group(user_group: "{research}") {{ ok msg }} }}"""
    assert _mutate(world, "admin", every)["data"] == {"d": {"ok": True, "msg": "success"},
                                                      "g": {"ok": True, "msg": "success"}}  # fmt: skip
    assert _sgroup(world, "gpu-only")["domains"] == [] and _sgroup(world, "gpu-only")["groups"] == []
    assert _sgroup(world, "default")["domains"] == ["default"]  # lab's access to default went too; default's stays
    refused = _mutate(world, "carol", '{ disassociate_all_scaling_groups_with_domain(domain: "lab") { ok msg } }')
    assert refused["errors"][0]["message"] == "this needs a superadmin"
    assert refused["errors"][0]["extensions"] == {"status": 403}
    missing = _mutate(world, "admin", '{ disassociate_all_scaling_groups_with_domain(domain: "nowhere") { ok msg } }')
    assert missing["data"]["disassociate_all_scaling_groups_with_domain"] == {
        "ok": False,
        "msg": "no domain named 'nowhere'",
    }

    # Objects instead of JSON text, a list of hosts; the new domain comes back in Backend.AI's shape.
    made = _mutate(
        world,
        "admin",
        """($p: DomainInput!) { create_domain(name: "bio", props: $p) {
        ok msg domain { name is_active total_resource_slots allowed_vfolder_hosts scaling_groups } } }""",
        {"p": {"total_resource_slots": {"cpu": 8}, "allowed_vfolder_hosts": ["local"], "is_active": False}},
    )
    assert made["data"]["create_domain"] == {"ok": True, "msg": "success", "domain": {
        "name": "bio", "is_active": False, "total_resource_slots": json.dumps({"cpu": "8"}),
        "allowed_vfolder_hosts": ["local"], "scaling_groups": []}}  # fmt: skip

    for document, words in [
        ('{ modify_domain(name: "bio", props: {name: "biology"}) { ok msg } }', "renaming a domain is not supported"),
        ('{ create_domain(name: "x", props: {integration_id: "ldap"}) { ok msg } }', "integration ids"),
        ('{ create_domain(name: "x", props: {allowed_vfolder_hosts: "[1]"}) { ok msg } }', "invalid storage host"),
        ('{ create_domain(name: "x", props: {total_resource_slots: "[1]"}) { ok msg } }', "must be a JSON object"),
        ('{ purge_domain(name: "bio") { ok msg } }', "domains are never deleted here"),
        (f'{{ purge_group(gid: "{research}") {{ ok msg }} }}', "groups are never deleted here"),
        (f'{{ modify_group(gid: "{research}", props: {{user_update_mode: "swap", user_uuids: []}}) {{ ok msg }} }}',
         "user_update_mode must be 'add' or 'remove'"),
        (f'{{ modify_group(gid: "{research}", props: {{domain_name: "default"}}) {{ ok msg }} }}',
         "moving a group to another domain"),
        ('{ modify_scaling_group(name: "gpu-only", props: {driver: "kubernetes"}) { ok msg } }',
         "the driver of a resource group cannot be changed"),
        ('{ create_scaling_group(name: "y", props: {wsproxy_addr: "http://x"}) { ok msg } }', "no app proxy"),
        ('{ create_scaling_group(name: "y", props: {use_host_network: true}) { ok msg } }', "host networking"),
        ('{ create_scaling_group(name: "y", props: {driver_opts: "{\\"a\\": 1}"}) { ok msg } }', "driver options"),
        ('{ create_scaling_group(name: "y", props: {scheduler_opts: "{\\"config\\": {\\"x\\": 1}}"}) { ok msg } }',
         "unknown scheduler option(s) config.x"),
        ('{ create_keypair_resource_policy(name: "p", props: {idle_timeout: "soon"}) { ok msg } }',
         "idle timeout must be a whole number"),
        ('{ create_keypair_resource_policy(name: "p", props: {allowed_vfolder_hosts: "{\\"local\\": 1}"}) '
         "{ ok msg } }", "the permissions of host 'local' must be a list"),
    ]:  # fmt: skip
        answer = _mutate(world, "admin", document)
        assert "errors" not in answer, (document, answer)
        (result,) = answer["data"].values()
        assert result["ok"] is False and words in result["msg"], (document, result)
    assert _domain(world, "x") is None and _sgroup(world, "y") is None and _policy(world, "p") is None
    assert _read(world, lambda db: db.get(m.Domain, "bio").name) == "bio"  # purge refused: the domain stays


@pytest.mark.parametrize("who", ["carol", "alice"])
def test_refusals_are_graphql_errors_that_change_nothing(world, who):
    """A caller who may not change a domain, policy or resource group gets the REST API's 403 and its reason."""
    research = _group(world, "lab", "research")["id"]
    documents = [
        '{ modify_domain(name: "lab", props: {description: "x"}) { ok } }',
        '{ purge_domain(name: "lab") { ok } }',
        '{ modify_keypair_resource_policy(name: "gold", props: {max_concurrent_sessions: 1}) { ok } }',
        '{ delete_scaling_group(name: "gpu-only") { ok } }',
        '{ associate_scaling_group_with_keypair(scaling_group: "gpu-only", access_key: "x") { ok } }',
    ]
    if who == "alice":  # a user in default: not an admin of lab's groups
        documents.append(f'{{ modify_group(gid: "{research}", props: {{description: "x"}}) {{ ok }} }}')
    for document in documents:
        answer = _mutate(world, who, document)
        (error,) = answer["errors"]
        assert error["extensions"] == {"status": 403}, (document, answer)
        assert "needs a superadmin" in error["message"] or "needs an administrator" in error["message"]
    assert _domain(world, "lab")["description"] == "" and _sgroup(world, "gpu-only") is not None
    assert _group(world, "lab", "research")["description"] == ""
