"""Who may call the manager: keypair signatures (forged, expired, replayed), rate limits, errors."""

from __future__ import annotations

import datetime as dt
import statistics
import time

import pytest
import requests

from jupyter_backendai.db import admin
from testing.manager import PASSWORD, Manager
from testing.sessions import ProductDB


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
    from jupyter_backendai.core import signing

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


def authorize(manager, name: str, password: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(manager.url + "/auth/authorize", json={"type": "keypair", "username": name,
                         "password": password}, headers=headers or {}, timeout=60)  # fmt: skip


@pytest.fixture
def strict_manager(tmp_path):
    """A manager whose /auth/authorize locks after 3 failures, without the slowing-down first."""
    pdb = ProductDB(tmp_path)
    pdb.user("alice@example.com")
    pdb.user("bob@example.com")
    service = Manager(tmp_path, pdb, ["--ManagerApp.max_failed_logins=3", "--ManagerApp.free_failed_logins=100"])
    yield service
    service.stop()
    pdb.close()


def test_authorize_is_throttled_per_account_and_per_proxy_seen_address(strict_manager):
    manager = strict_manager
    # The test stands in for the proxy: the last X-Forwarded-For entry is the address it saw.
    # One account whatever it is called and wherever the attempts come from.
    for i, name in enumerate(["alice", "ALICE@example.com", "alice"]):
        via = {"X-Real-Ip": f"192.0.2.{i}", "X-Forwarded-For": f"198.51.100.{i}"}
        assert authorize(manager, name, "Wrong-pw-1", via).status_code == 401
    locked = authorize(manager, "alice@example.com", PASSWORD, {"X-Forwarded-For": "198.51.100.99"})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert locked.json()["title"].startswith("too many failed logins; try again in")
    assert "secret_key" not in locked.text

    # One address, whatever the client writes in front of it or in X-Real-Ip.
    for i in range(3):
        spoof = {"X-Real-Ip": f"192.0.2.{50 + i}", "X-Forwarded-For": f"6.6.6.{i}, 203.0.113.7"}
        assert authorize(manager, f"nobody{i}@example.com", "Wrong-pw-1", spoof).status_code == 401
    sprayed = authorize(
        manager, "bob", PASSWORD, {"X-Real-Ip": "192.0.2.99", "X-Forwarded-For": "1.2.3.4, 203.0.113.7"}
    )
    assert sprayed.status_code == 429
    assert authorize(manager, "bob", PASSWORD, {"X-Forwarded-For": "203.0.113.8"}).status_code == 200


def test_authorize_takes_as_long_for_an_unknown_user(tmp_path):
    """A hash is verified whether or not the account exists (or has a password): the time of the
    answer does not tell which accounts exist."""
    pdb = ProductDB(tmp_path)
    pdb.user("alice@example.com")
    pdb.setup(lambda db: admin.create_user(db, "sso@example.com", None, username="sso"))
    manager = Manager(tmp_path, pdb, ["--ManagerApp.max_failed_logins=1000", "--ManagerApp.free_failed_logins=1000"])
    try:

        def median_time(name: str) -> float:
            times = []
            for _ in range(5):
                start = time.perf_counter()
                assert authorize(manager, name, "Wrong-pw-1").status_code == 401
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        known = median_time("alice")
        # Without a hash to verify, the answer took a few milliseconds against argon2's tens.
        assert median_time("nobody@example.com") > 0.5 * known
        assert median_time("sso") > 0.5 * known
    finally:
        manager.stop()
        pdb.close()
