"""One launch rule for every path: a user's main keypair, their resource groups, images and project.

A user with two active keypairs must get the same keypair (and so the same limits and resource
groups) on the spawn form, in the spawner's admission, in check-presets and launch-options, in
the folder rules, at login and in the GraphQL user; the rules are ``db/launch.py`` over the
pure ``core/launch.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from jupyter_backendai.core import launch as rules
from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.db import admin, launch
from jupyter_backendai.db import folders as folder_db
from jupyter_backendai.db import models as m
from jupyter_backendai.db import sessions as store
from jupyter_backendai.hub.admission import Launch, admit_together
from jupyter_backendai.hub.auth import _check_login
from jupyter_backendai.hub.local import LocalSessionSpawner
from jupyter_backendai.hub.spawner import SessionRefused, SessionRequest
from jupyter_backendai.manager.gql.items import user_item

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@dataclass
class Key:
    access_key: str
    is_active: bool = True
    created_at: dt.datetime = T0


@dataclass
class Group:
    name: str
    extra: list = field(default_factory=list)


def test_main_keypair_is_the_oldest_active_one() -> None:
    old, new = Key("AKB", created_at=T0), Key("AKA", created_at=T0 + dt.timedelta(days=1))
    assert rules.main_keypair([new, old]) is old
    assert rules.main_keypair([old, new]) is old
    old.is_active = False
    assert rules.main_keypair([new, old]) is new
    assert rules.main_keypair([old]) is None
    # Made in the same instant: the access key decides, so every caller picks the same one.
    a, b = Key("AKA"), Key("AKB")
    assert rules.main_keypair([b, a]) is a


def test_project_and_resource_group_order() -> None:
    assert rules.default_project([Group("zeta"), Group("default"), Group("alpha")]).name == "default"
    assert rules.default_project([Group("zeta"), Group("alpha")]).name == "alpha"
    assert rules.default_project([]) is None
    assert rules.order_scaling_groups(["b", "default", "a", "b"]) == ["default", "a", "b"]
    assert rules.order_scaling_groups(["b", "default", "a"], default="b") == ["b", "a", "default"]
    assert rules.image_allowed("local", []) and rules.image_allowed("reg:5000", ["reg:5000"])
    assert not rules.image_allowed("reg:5000", ["other"])


@pytest.fixture
def two_keys(db):
    """alice with a main keypair (policy 'small', folder host 'h-small') and a newer one ('big',
    'h-big', the only one the 'gpu' resource group is open to), the newer written first so that
    an unordered look-up would meet it first."""
    admin.create_policy(db, "small", total_resource_slots={"cpu": 2, "mem": "2g"}, allowed_vfolder_hosts=["h-small"])
    admin.create_policy(db, "big", total_resource_slots={"cpu": 64, "mem": "64g"}, allowed_vfolder_hosts=["h-big"])
    user, first = admin.create_user(db, "alice@example.org", "pw-Alice-1234", username="alice", groups=["default"])
    main_key = first.access_key
    db.delete(first)
    db.flush()
    newer = admin.create_keypair(db, user, policy="big", access_key="AKNEWER0000000000001")
    newer.created_at = T0 + dt.timedelta(days=30)
    main = admin.create_keypair(db, user, policy="small", access_key=main_key)
    main.created_at = T0
    db.execute(m.memberships.delete().where(m.memberships.c.user_id == user.id))
    admin.add_user_to_group(db, admin.get_group(db, "default"), user)
    admin.create_scaling_group(db, "gpu")
    admin.allow_scaling_group(db, "gpu", keypairs=[newer.access_key])
    admin.upsert_image(db, "python-local:3", installed=True)
    admin.create_preset(db, "tiny", {"cpu": 1, "mem": "1g"})
    admin.create_preset(db, "huge", {"cpu": 32, "mem": "32g"})
    # An agent so that presets fit the resource group (a simulated one: nothing runs here).
    store.register_agent(db, "agent-1", scaling_group="default", capacity=ResourceSlots(cpu=64, mem="64g"))
    db.commit()
    db.expire_all()
    return admin.get_user(db, "alice"), main.access_key, newer.access_key


def spawner_for(username: str) -> LocalSessionSpawner:
    return LocalSessionSpawner(user=SimpleNamespace(name=username), backend_reason="")


def test_every_path_counts_the_same_keypair(db, two_keys) -> None:
    user, main, newer = two_keys
    assert launch.main_keypair(db, user).access_key == main
    assert rules.main_keypair(user.keypairs).access_key == main
    assert user_item(user)["main_access_key"] == main  # GraphQL's user.main_access_key

    # The manager's check-presets and launch-options, whichever keypair signed the request.
    who, keypair, group = launch.launcher(db, user.id)
    assert (who.username, keypair.access_key, group.name) == ("alice", main, "default")
    sgroups = launch.allowed_scaling_groups(db, user, keypair, group)
    assert sgroups == ["default"]
    answer = launch.check_presets_for(db, keypair, group, sgroups)
    assert answer["keypair_limits"]["cpu"] == "2"
    assert {p["name"]: p["allocatable"] for p in answer["presets"]} == {"huge": False, "tiny": True}

    # The spawn form and the spawner's admission.
    spawner = spawner_for("alice")
    form = spawner._form_namespace(db)
    assert form["policy"].name == "small"
    assert form["scaling_groups"] == ["default"]
    assert [p["name"] for p in form["presets"]] == ["tiny"]
    with pytest.raises(SessionRefused, match="you may not use the resource group 'gpu'"):
        admit_one(spawner, db, SessionRequest(scaling_group="gpu"), "s-gpu")
    admitted = admit_one(spawner, db, SessionRequest(preset="tiny"), "s-one")
    assert db.get(m.Session, admitted.session_id).access_key == main

    # The folder rules (storage hosts from the main keypair's policy) and the login.
    assert "h-small" in folder_db.allowed_hosts(db, user) and "h-big" not in folder_db.allowed_hosts(db, user)
    login = _check_login(db, "alice", "pw-Alice-1234")
    assert login["auth_state"]["access_key"] == main

    # With the main keypair deactivated, the other one counts everywhere.
    db.get(m.KeyPair, main).is_active = False
    db.flush()
    db.expire_all()
    user = admin.get_user(db, "alice")
    assert launch.main_keypair(db, user).access_key == newer
    assert user_item(user)["main_access_key"] == newer
    assert launch.allowed_scaling_groups(db, user, launch.main_keypair(db, user), None) == ["default", "gpu"]
    assert _check_login(db, "alice", "pw-Alice-1234")["auth_state"]["access_key"] == newer


def admit_one(spawner, db, request: SessionRequest, name: str):
    """The spawner's admission of one launch, as the hub admits them (together, in one transaction)."""
    (result,) = admit_together(db, [Launch(spawner, request, name)])
    if isinstance(result, BaseException):
        raise result
    return result


def test_plan_launch_refusals(db, two_keys) -> None:
    user, main, _newer = two_keys
    with pytest.raises(launch.Refused, match="not a member of the project 'research'"):
        launch.plan_launch(db, user, SessionRequest(group="research"))
    with pytest.raises(launch.Refused, match="unknown image 'nope:1'"):
        launch.plan_launch(db, user, SessionRequest(image="nope:1"))
    with pytest.raises(launch.Refused, match="unknown resource preset 'nope'"):
        launch.plan_launch(db, user, SessionRequest(preset="nope"))
    asked = []
    plan = launch.plan_launch(
        db, user, SessionRequest(preset="tiny", shmem="64m"), check_image=lambda i, sg: asked.append((i.reference, sg))
    )
    assert asked == [("python-local:3", "default")]
    assert (plan.keypair.access_key, plan.group.name, plan.scaling_group, plan.shmem) == (
        main,
        "default",
        "default",
        64 * 1024**2,
    )
    assert plan.slots["cpu"] == 1


def test_queue_position(db, two_keys) -> None:
    user, main, _newer = two_keys
    admin.update_policy(db, "small", total_resource_slots={"cpu": 8, "mem": "8g"})
    spawner = spawner_for("alice")
    ids = [admit_one(spawner, db, SessionRequest(preset="tiny"), f"s{i}").session_id for i in range(3)]
    db.flush()
    rows = [db.get(m.Session, i) for i in ids]
    for k, row in enumerate(rows):
        row.created_at = T0 + dt.timedelta(seconds=k)
    db.flush()
    assert [launch.queue_position(db, r) for r in rows] == [(1, 3), (2, 3), (3, 3)]
    rows[0].status = m.SessionStatus.RUNNING
    db.flush()
    assert [launch.queue_position(db, r) for r in rows] == [None, (1, 2), (2, 2)]


def test_the_manager_answers_for_the_main_keypair_whichever_signs(manager) -> None:
    """Signed with alice's newer keypair, the manager still answers for her main one: a launch
    through the hub counts against that one."""

    def setup(db):
        admin.create_policy(db, "big", total_resource_slots={"cpu": 64, "mem": "64g"})
        user = admin.get_user(db, "alice")
        main = launch.main_keypair(db, user)
        newer = admin.create_keypair(db, user, policy="big")
        newer.created_at = main.created_at + dt.timedelta(days=1)
        admin.create_scaling_group(db, "gpu")
        admin.allow_scaling_group(db, "gpu", keypairs=[newer.access_key])
        return main.access_key, main.resource_policy, (newer.access_key, newer.secret_key)

    main, main_policy, newer = manager.pdb.setup(setup)
    assert main_policy != "big"
    options = manager.call("GET", "/resource/launch-options", newer)
    assert options.status_code == 200, options.text
    assert options.json()["scaling_groups"] == ["default"]
    presets = manager.call("POST", "/resource/check-presets", newer, json_body={})
    assert presets.status_code == 200, presets.text
    refused = manager.call("POST", "/resource/check-presets", newer, json_body={"scaling_group": "gpu"})
    assert refused.status_code == 403 and "you may not use the resource group 'gpu'" in refused.json()["title"]
    profile = manager.call("GET", "/auth/profile", newer).json()
    assert (profile["access_key"], profile["resource_policy"]["name"]) == (main, main_policy)
    me = manager.call("POST", "/admin/gql", newer, json_body={"query": "{ user { main_access_key } }"})
    assert me.json()["data"]["user"]["main_access_key"] == main
