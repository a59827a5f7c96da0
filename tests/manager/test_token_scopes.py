"""A JupyterHub token is only as good as its scopes, at the manager too (issue 10, item 2).

A real hub with the manager as its service: a token the admin made for something narrow (reading
their own name) must not carry the admin's full rights into the manager, while tokens with the
manager's access scope, and a running session's own token, keep working.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from jupyter_backendai.db import admin
from jupyter_backendai.hub.roles import access_scope
from jupyter_backendai.manager.base import token_grants
from testing.hub import login
from testing.sessions import PASSWORD, PREFIX, HubWithManager, ProductDB, start_hub_with_manager, wait_ready

SECRETS_QUERY = {"query": "{ keypairs { access_key secret_key } }"}


@pytest.fixture
def pdb(tmp_path: Any):
    pdb = ProductDB(tmp_path)
    pdb.setup(lambda db: admin.upsert_image(db, "python-local:3", installed=True))
    pdb.setup(lambda db: admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"}))
    pdb.user("admin@example.com", role="superadmin", username="admin")
    pdb.user("alice@example.com")
    yield pdb
    pdb.close()


def make_token(hub, user: str, scopes: list[str] | None) -> str:
    if user == "admin":  # the product's superadmin is a hub admin once logged in
        assert login(hub, "admin", PASSWORD).url.endswith("/hub/home")
    assert hub.api("POST", f"/users/{user}").status_code in (201, 409)
    body: dict[str, Any] = {"note": "scope test", "expires_in": 600}
    if scopes is not None:
        body["scopes"] = scopes
    made = hub.api("POST", f"/users/{user}/tokens", json=body)
    assert made.status_code == 201, made.text
    return made.json()["token"]


def as_token(hub, token: str, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(
        method, hub.url + PREFIX + path, headers={"Authorization": f"token {token}"}, timeout=30, **kw
    )


def test_a_narrow_token_gets_nothing_from_the_manager(make_hub, pdb):
    backendai = HubWithManager(start_hub_with_manager(make_hub, pdb), pdb)
    hub = backendai.hub
    narrow = make_token(hub, "admin", ["read:users:name!user=admin"])
    # The hub itself says whose it is: it identifies the admin, which used to be enough.
    me = requests.get(f"{hub.url}/hub/api/user", headers={"Authorization": f"token {narrow}"}, timeout=10)
    assert me.status_code == 200 and me.json()["name"] == "admin"

    for method, path, kw in [
        ("POST", "/admin/gql", {"json": SECRETS_QUERY}),
        ("GET", "/admin/keypairs", {}),
        ("GET", "/admin/users", {}),
        ("GET", "/auth/whoami", {}),
        ("GET", "/folders", {}),
        ("POST", "/folders", {"json": {"name": "planted"}}),
        ("GET", "/session", {}),
    ]:
        refused = as_token(hub, narrow, method, path, **kw)
        assert refused.status_code == 403, (method, path, refused.status_code, refused.text)
        assert "lacks the scope 'access:services!service=backendai'" in refused.json()["title"]
        assert "secret_key" not in refused.text
    assert backendai.call("GET", "/folders", "admin").json() == []

    # With the manager's scope (exactly, or the broader access:services) the same admin may.
    for scopes in ([access_scope()], ["access:services"], None):
        token = make_token(hub, "admin", scopes)
        answer = as_token(hub, token, "POST", "/admin/gql", json=SECRETS_QUERY)
        assert answer.status_code == 200, (scopes, answer.text)
        assert as_token(hub, token, "GET", "/auth/whoami").json()["via"] == "hub-token"
    # A plain user's token without scopes inherits the user role, which holds the scope.
    assert as_token(hub, make_token(hub, "alice", None), "GET", "/auth/whoami").json()["username"] == "alice"
    # Another service's scope is not this one's.
    other = make_token(hub, "admin", ["access:services!service=test-admin"])
    assert as_token(hub, other, "GET", "/auth/whoami").status_code == 403


def test_a_sessions_own_token_still_works(make_hub, pdb):
    """The session's ``$JUPYTERHUB_API_TOKEN`` (the hub's ``server`` role) carries the scope: the
    server extension forwards with it."""
    backendai = HubWithManager(start_hub_with_manager(make_hub, pdb, endpoint="proxy"), pdb)
    created = backendai.call("POST", "/session", "alice", {"image": "python-local:3", "name": "lab", "preset": "small"})
    assert created.status_code == 201, created.text
    backendai.wait_status("alice", "lab", {"RUNNING"})
    wait_ready(backendai.hub, "alice", "lab")
    # A token that may only open the session's server: the extension uses its own token onward.
    opener = make_token(backendai.hub, "alice", ["access:servers!server=alice/lab"])
    base = f"{backendai.hub.url}/user/alice/lab/backendai/"
    config = requests.get(base + "_ext/config", headers={"Authorization": f"token {opener}"}, timeout=30)
    assert config.status_code == 200, config.text
    assert config.json()["user"]["username"] == "alice" and config.json()["user"]["via"] == "hub-token"
    # That token itself gets nothing from the manager directly.
    assert as_token(backendai.hub, opener, "GET", "/auth/whoami").status_code == 403
    assert backendai.call("DELETE", "/session/lab", "alice").status_code == 200


def test_scope_check_follows_the_hub():
    required = access_scope("backendai")
    assert token_grants([required], required)
    assert token_grants(["access:services"], required)
    assert not token_grants(["access:services!service=other"], required)
    assert not token_grants(["read:users:name!user=admin", "access:servers!server=admin/"], required)
    assert not token_grants(None, required) and not token_grants("access:services", required)
