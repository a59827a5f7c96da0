"""Who may call the manager: keypair signatures (forged, expired, replayed), rate limits, errors."""

from __future__ import annotations

import datetime as dt

import requests

from jupyter_backendai.db import admin
from tests.manager_fixtures import PASSWORD


def test_root_is_public_and_unknown_paths_are_json_404(manager):
    root = requests.get(manager.url + "/", timeout=10).json()
    assert root["version"].startswith("v8.") and "manager" in root
    missing = requests.get(manager.url + "/no/such/thing", timeout=10)
    assert missing.status_code == 404 and missing.json()["title"].startswith("no such endpoint")


def test_signed_requests(manager):
    me = manager.call("GET", "/auth/whoami", "alice")
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice" and me.json()["via"] == "keypair"
    assert manager.call("GET", "/auth/whoami").status_code == 401  # unsigned

    access, secret = manager.keys("alice")
    forged = manager.call("GET", "/auth/whoami", (access, "x" * 40))
    assert forged.status_code == 401 and forged.json()["title"] == "the signature does not match the request"
    unknown = manager.call("GET", "/auth/whoami", ("AKIAAAAAAAAAAAAAAAAA", secret))
    assert unknown.status_code == 401 and "unknown or inactive access key" in unknown.json()["title"]
    old = manager.call("GET", "/auth/whoami", "alice", date=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=20))
    assert old.status_code == 401 and "more than 15 minutes" in old.json()["title"]

    # The same signed request twice: the second is a replay.
    when = dt.datetime.now(dt.timezone.utc)
    assert manager.call("GET", "/auth/whoami", "alice", date=when).status_code == 200
    replay = manager.call("GET", "/auth/whoami", "alice", date=when)
    assert replay.status_code == 401 and "replayed" in replay.json()["title"]

    # A signature over another path does not hold for this one.
    from jupyter_backendai.manager import signing

    h = signing.headers(access, secret, "GET", "/auth/other", f"127.0.0.1:{manager.port}")
    moved = requests.get(manager.url + "/auth/whoami", headers=h, timeout=10)
    assert moved.status_code == 401


def test_rate_limit_and_query_count(manager):
    def low(db):
        kp = admin.get_user(db, "bob").keypairs[0]
        admin.update_keypair(db, kp, rate_limit=3)

    manager.pdb.setup(low)
    for _ in range(3):
        assert manager.call("GET", "/auth/whoami", "bob").status_code == 200
    limited = manager.call("GET", "/auth/whoami", "bob")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "rate limit of 3 requests per 15 minutes" in limited.json()["title"]
    assert manager.pdb.setup(lambda db: admin.get_user(db, "bob").keypairs[0].num_queries) == 4


def test_authorize_and_update_password(manager):
    ok = requests.post(manager.url + "/auth/authorize", json={"type": "keypair", "username": "alice@example.com",
                                                              "password": PASSWORD}, timeout=10)  # fmt: skip
    assert ok.status_code == 200 and ok.json()["data"]["access_key"] == manager.keys("alice")[0]
    bad = requests.post(manager.url + "/auth/authorize", json={"username": "alice", "password": "nope"}, timeout=10)
    assert bad.status_code == 401
    garbage = requests.post(manager.url + "/auth/authorize", data=b"{not json", timeout=10)
    assert garbage.status_code == 400 and garbage.json()["title"] == "the request body is not valid JSON"
    huge = requests.post(manager.url + "/auth/authorize", data=b"{" + b" " * (2 * 1024 * 1024) + b"}", timeout=30)
    assert huge.status_code == 413

    weak = manager.call("POST", "/auth/update-password", "alice",
                        json_body={"old_password": PASSWORD, "new_password": "short", "new_password2": "short"})  # fmt: skip
    assert weak.status_code == 400 and "at least 8 characters" in weak.json()["title"]
    done = manager.call("POST", "/auth/update-password", "alice",
                        json_body={"old_password": PASSWORD, "new_password": "Newer-pw-2", "new_password2": "Newer-pw-2"})  # fmt: skip
    assert done.status_code == 200
    wrong = manager.call("POST", "/auth/update-password", "alice",
                         json_body={"old_password": PASSWORD, "new_password": "Other-pw-3", "new_password2": "Other-pw-3"})  # fmt: skip
    assert wrong.status_code == 403


def test_profile_and_preferred_ssh_port(manager):
    """``/auth/profile``: one's own projects, keypair policy and preferred SSH port (F34), nobody else's."""
    manager.pdb.setup(lambda db: admin.create_policy(db, "two", max_concurrent_sessions=2))
    manager.pdb.setup(lambda db: admin.update_keypair(db, admin.get_user(db, "alice").keypairs[0], policy="two"))
    manager.pdb.setup(lambda db: admin.add_user_to_group(db, admin.get_group(db, "default", "default"),
                                                         admin.get_user(db, "alice")))  # fmt: skip
    me = manager.call("GET", "/auth/profile", "alice")
    assert me.status_code == 200, me.text
    profile = me.json()
    assert profile["username"] == "alice" and profile["groups"] == ["default"]
    assert profile["resource_policy"]["name"] == "two" and profile["resource_policy"]["max_concurrent_sessions"] == 2
    assert profile["preferred_ssh_port"] is None

    changed = manager.call("PATCH", "/auth/profile", "alice", json_body={"preferred_ssh_port": 20022})
    assert changed.status_code == 200 and changed.json()["preferred_ssh_port"] == 20022
    assert manager.pdb.setup(lambda db: admin.get_user(db, "alice").preferred_ssh_port) == 20022
    assert manager.call("GET", "/auth/profile", "bob").json()["preferred_ssh_port"] is None
    for bad in (22, 65001, "20022", True, 1.5):
        refused = manager.call("PATCH", "/auth/profile", "alice", json_body={"preferred_ssh_port": bad})
        assert refused.status_code == 400 and "10000 to 65000" in refused.json()["title"], bad
    other = manager.call("PATCH", "/auth/profile", "alice", json_body={"username": "mallory"})
    assert other.status_code == 400 and "unknown field(s): username" in other.json()["title"]
    cleared = manager.call("PATCH", "/auth/profile", "alice", json_body={"preferred_ssh_port": None})
    assert cleared.status_code == 200 and cleared.json()["preferred_ssh_port"] is None
    assert manager.call("GET", "/auth/profile").status_code == 401
