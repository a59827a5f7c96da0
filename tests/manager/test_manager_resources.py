"""``/resource/*`` against a live manager alone (no hub).

Sessions are inserted into the product database directly here: starting real ones needs a
hub (``test_manager_sessions.py`` does that), while these endpoints only read session rows,
except recalculate-usage, whose hub-backed path is tested with a real hub in
``test_manager_sessions.py``; here it is only checked that it refuses users and says it
needs a hub.
"""

from __future__ import annotations

import datetime as dt

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.db import sessions as store
from testing.manager import add_session

S = m.SessionStatus


def test_presets_listed_in_backendai_shape(manager):
    manager.pdb.setup(lambda db: admin.create_preset(db, "small", {"cpu": 1, "mem": "1g"}, shared_memory="64m"))
    r = manager.call("GET", "/resource/presets", "alice")
    assert r.status_code == 200, r.text
    assert r.json()["presets"] == [
        {
            "name": "small",
            "resource_slots": {"cpu": "1", "mem": str(1024**3)},
            "shared_memory": str(64 * 1024**2),
            "scaling_group_name": None,
        }
    ]


def test_check_presets_follows_policy_usage_and_agents(manager):
    def setup(db):
        admin.create_policy(db, "student", total_resource_slots={"cpu": 2, "mem": "4g"})
        admin.update_keypair(db, admin.get_user(db, "alice").keypairs[0], policy="student")
        admin.create_preset(db, "small", {"cpu": 1, "mem": "1g"})
        admin.create_preset(db, "big", {"cpu": 2, "mem": "2g"})
        admin.create_preset(db, "huge", {"cpu": 8, "mem": "2g"})
        store.register_agent(
            db, "agent-1", scaling_group="default", capacity=admin.parse_slots({"cpu": 4, "mem": "8g"})
        )

    manager.pdb.setup(setup)
    r = manager.call("POST", "/resource/check-presets", "alice", json_body={"scaling_group": "default"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["keypair_limits"] == {"cpu": "2", "mem": str(4 * 1024**3)}
    assert {p["name"]: p["allocatable"] for p in answer["presets"]} == {"big": True, "huge": False, "small": True}
    assert answer["scaling_groups"]["default"]["remaining"] == {"cpu": "4", "mem": str(8 * 1024**3)}

    # One running session of alice holding 1 cpu: "big" no longer fits her policy.
    manager.pdb.setup(lambda db: add_session(db, "alice", "one", S.RUNNING, {"cpu": 1, "mem": "1g"}, agent="agent-1"))
    answer = manager.call("POST", "/resource/check-presets", "alice", json_body={}).json()
    assert answer["keypair_using"]["cpu"] == "1" and answer["keypair_remaining"]["cpu"] == "1"
    assert {p["name"]: p["allocatable"] for p in answer["presets"]} == {"big": False, "huge": False, "small": True}
    assert answer["scaling_groups"]["default"]["using"]["cpu"] == "1"
    # Bob has the default (unlimited) policy: big fits for him; the agent has 3 cpu free.
    bob = manager.call("POST", "/resource/check-presets", "bob", json_body={}).json()
    assert {p["name"]: p["allocatable"] for p in bob["presets"]}["big"] is True
    assert bob["scaling_group_remaining"]["cpu"] == "3"

    refused = manager.call("POST", "/resource/check-presets", "alice", json_body={"scaling_group": "gpu"})
    assert refused.status_code == 403 and "you may not use the resource group 'gpu'" in refused.json()["title"]
    not_member = manager.call("POST", "/resource/check-presets", "alice", json_body={"group": "nope"})
    assert not_member.status_code == 403 and "not a member of the project 'nope'" in not_member.json()["title"]


def test_usage_per_period_per_day_and_scope(manager):
    day1 = dt.datetime(2024, 3, 1, 23, 0, tzinfo=dt.timezone.utc)

    def setup(db):
        # alice: 2 cpu, 1 GiB, 0.5 GPU share from 23:00 on day 1 to 01:00 on day 2 (1 h each day).
        add_session(
            db, "alice", "a", S.TERMINATED, {"cpu": 2, "mem": "1g", "cuda.shares": "0.5"},
            started=day1, ended=day1 + dt.timedelta(hours=2),
        )  # fmt: skip
        # bob: 1 cpu for 30 minutes on day 2.
        add_session(
            db, "bob", "b", S.TERMINATED, {"cpu": 1, "mem": "2g"},
            started=day1 + dt.timedelta(hours=3), ended=day1 + dt.timedelta(hours=3, minutes=30),
        )  # fmt: skip
        # Outside the period: not counted.
        add_session(
            db, "bob", "old", S.TERMINATED, {"cpu": 1},
            started=day1 - dt.timedelta(days=10), ended=day1 - dt.timedelta(days=9),
        )  # fmt: skip

    manager.pdb.setup(setup)
    mine = manager.call("GET", "/resource/usage/period?start_date=20240301&end_date=20240302", "alice")
    assert mine.status_code == 200, mine.text
    items = mine.json()["items"]
    assert mine.json()["scope"] == "user"
    assert [(i["date"], i["username"]) for i in items] == [("2024-03-01", "alice"), ("2024-03-02", "alice")]
    first = items[0]
    assert first["num_sessions"] == 1 and first["cpu_seconds"] == 7200.0
    assert first["mem_byte_seconds"] == 1024**3 * 3600 and first["cuda_shares_seconds"] == 1800.0
    assert first["user_email"] == "alice@example.com"

    everyone = manager.call("GET", "/resource/usage/period?start_date=20240301&end_date=20240302", "admin").json()
    assert everyone["scope"] == "all"
    assert [(i["date"], i["username"]) for i in everyone["items"]] == [
        ("2024-03-01", "alice"),
        ("2024-03-02", "alice"),
        ("2024-03-02", "bob"),
    ]
    assert (
        everyone["items"][2]["cpu_seconds"] == 1800.0 and everyone["items"][2]["mem_byte_seconds"] == 2 * 1024**3 * 1800
    )

    only_day1 = manager.call("GET", "/resource/usage/period?start_date=20240301&end_date=20240301", "admin").json()
    assert [i["username"] for i in only_day1["items"]] == ["alice"]

    bad = manager.call("GET", "/resource/usage/period?start_date=2024-03-01&end_date=20240302", "alice")
    assert bad.status_code == 400 and "YYYYMMDD" in bad.json()["title"]
    too_long = manager.call("GET", "/resource/usage/period?start_date=20240101&end_date=20240701", "alice")
    assert too_long.status_code == 400 and "at most 100 days" in too_long.json()["title"]
    backwards = manager.call("GET", "/resource/usage/period?start_date=20240302&end_date=20240301", "alice")
    assert backwards.status_code == 400


def test_recalculate_usage_needs_an_admin_and_a_hub(manager):
    manager.pdb.setup(lambda db: add_session(db, "alice", "one", S.RUNNING, {"cpu": 1}))
    assert manager.call("POST", "/resource/recalculate-usage", "alice").status_code == 403
    # This manager runs without a hub: it cannot tell which servers are gone, so it ends nothing.
    r = manager.call("POST", "/resource/recalculate-usage", "admin")
    assert r.status_code == 503 and "without a hub" in r.json()["title"]
    assert manager.pdb.session("alice", "one").status == S.RUNNING


def test_ssh_keypair_made_on_first_use_and_refreshed(manager):
    first = manager.call("GET", "/resource/ssh-keypair", "alice")
    assert first.status_code == 200, first.text
    public = first.json()["ssh_public_key"]
    assert public.startswith("ssh-ed25519 ") and public.endswith("alice@jupyter-backendai")
    assert "ssh_private_key" not in first.json()
    assert manager.call("GET", "/resource/ssh-keypair", "alice").json()["ssh_public_key"] == public

    refreshed = manager.call("POST", "/resource/ssh-keypair", "alice")
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["ssh_public_key"] != public and "OPENSSH PRIVATE KEY" in new["ssh_private_key"]
    after = manager.call("GET", "/resource/ssh-keypair", "alice").json()
    assert after == {"ssh_public_key": new["ssh_public_key"]}
    # Bob's pair is his own.
    assert manager.call("GET", "/resource/ssh-keypair", "bob").json()["ssh_public_key"] != new["ssh_public_key"]
