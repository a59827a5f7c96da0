"""Every administration and resource endpoint as a user, a domain admin and a superadmin.

One table lists, for each request, the status a plain user (``alice``, domain ``default``), a
domain admin (``carol``, domain ``lab``) and a superadmin (``admin``) get; refusals must carry
the reason. Then the edges a domain admin meets inside their own domain: a superadmin account
living in it, rows of another domain in the answers, and usage scoped to the domain.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests

from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.db import sessions as session_db
from jupyter_backendai.db.types import utcnow
from testing.manager import PASSWORD, Manager

USER, DOMAIN_ADMIN, SUPERADMIN = "alice", "carol", "admin"


@pytest.fixture
def lab(manager: Manager) -> Manager:
    """Domain ``lab`` (admin ``carol``, user ``dave``, superadmin ``root`` living there), a policy,
    a preset, a registry, an image, an agent and a resource group closed to ``lab``."""

    def setup(db):
        admin.create_domain(db, "lab")
        admin.create_group(db, "research", domain="lab")
        admin.create_user(db, "carol@example.com", PASSWORD, role="admin", domain="lab", groups=["research"])
        admin.create_user(db, "dave@example.com", PASSWORD, domain="lab")
        admin.create_user(db, "root@example.com", PASSWORD, role="superadmin", domain="lab")
        admin.allow_scaling_group(db, admin.DEFAULT, domains=["lab"])
        admin.create_scaling_group(db, "closed")
        admin.create_policy(db, "gold")
        admin.create_preset(db, "small", {"cpu": 1, "mem": "1g"})
        admin.add_registry(db, "cr.example.com", "https://cr.example.com")
        admin.upsert_image(db, "cr.example.com/lab/tiny:1", labels={"ai.backend.resource.min.cpu": "1"})
        session_db.register_agent(
            db, "i-node1", scaling_group=admin.DEFAULT, capacity=ResourceSlots.parse({"cpu": 4, "mem": "8g"})
        )

    manager.pdb.setup(setup)
    return manager


def status_and_title(response: requests.Response) -> tuple[int, str]:
    body = response.json() if response.content else {}
    return response.status_code, body.get("title", "") if isinstance(body, dict) else ""


# (method, path, body, user, domain admin, superadmin); a refusal's reason is checked by its status:
# 403 from a user says "administrator", 403 from a domain admin says "superadmin" or "you administer".
MATRIX: list[tuple[str, str, Any, int, int, int]] = [
    ("GET", "/admin/users", None, 403, 200, 200),
    ("GET", "/admin/users/dave@example.com", None, 403, 200, 200),
    ("GET", "/admin/users/alice@example.com", None, 403, 403, 200),
    ("GET", "/admin/users?domain=default", None, 403, 403, 200),
    ("GET", "/admin/keypairs", None, 403, 200, 200),
    ("GET", "/admin/keypairs?domain=default", None, 403, 403, 200),
    ("GET", "/admin/policies", None, 403, 200, 200),
    ("GET", "/admin/policies/gold", None, 403, 200, 200),
    ("POST", "/admin/policies", {"name": "silver"}, 403, 403, 201),
    ("PATCH", "/admin/policies/gold", {"idle_timeout": 60}, 403, 403, 200),
    ("GET", "/admin/images", None, 403, 200, 200),
    ("GET", "/admin/images/cr.example.com/lab/tiny:1", None, 403, 200, 200),
    ("PATCH", "/admin/images/cr.example.com/lab/tiny:1", {"min_slots": {"cpu": 2}}, 403, 403, 200),
    ("POST", "/admin/images/cleanup", {"dry_run": True}, 403, 403, 200),
    ("GET", "/admin/registries", None, 403, 200, 200),
    ("GET", "/admin/registries/cr.example.com", None, 403, 200, 200),
    ("POST", "/admin/registries", {"hostname": "r2.example.com", "url": "https://r2.example.com"}, 403, 403, 201),
    ("DELETE", "/admin/registries/r2.example.com", None, 403, 403, 200),
    ("GET", "/admin/presets", None, 403, 200, 200),
    ("GET", "/admin/presets/small", None, 403, 200, 200),
    ("POST", "/admin/presets", {"name": "big", "resource_slots": {"cpu": 8}}, 403, 403, 201),
    ("PATCH", "/admin/presets/big", {"resource_slots": {"cpu": 6}}, 403, 403, 200),
    ("DELETE", "/admin/presets/big", None, 403, 403, 200),
    ("GET", "/admin/agents", None, 403, 403, 200),
    ("PATCH", "/admin/agents/i-node1", {"schedulable": True}, 403, 403, 200),
    ("GET", "/admin/scaling-groups", None, 403, 200, 200),
    ("GET", "/admin/scaling-groups/default", None, 403, 200, 200),
    ("GET", "/admin/scaling-groups/closed", None, 403, 403, 200),
    ("POST", "/admin/scaling-groups", {"name": "fresh"}, 403, 403, 201),
    ("PATCH", "/admin/scaling-groups/fresh", {"description": "x"}, 403, 403, 200),
    ("POST", "/admin/scaling-groups/fresh/allow", {"domains": ["lab"]}, 403, 403, 200),
    ("GET", "/admin/domains", None, 403, 200, 200),
    ("POST", "/admin/domains", {"name": "other"}, 403, 403, 201),
    ("GET", "/admin/groups", None, 403, 200, 200),
    ("GET", "/admin/groups?domain=default", None, 403, 403, 200),
    ("POST", "/admin/groups", {"name": "t1", "domain": "default"}, 403, 403, 201),
    ("GET", "/admin/settings", None, 403, 403, 200),
    ("POST", "/admin/maintenance/recalculate-usage", {}, 403, 403, 200),
    ("POST", "/resource/recalculate-usage", {}, 403, 200, 200),
    ("GET", "/resource/presets", None, 200, 200, 200),
]


def test_every_admin_endpoint_by_role(lab):
    for method, path, body, *expected in MATRIX:
        for who, want in zip((USER, DOMAIN_ADMIN, SUPERADMIN), expected, strict=True):
            status, title = status_and_title(lab.call(method, path, who, json_body=body))
            where = f"{method} {path} as {who}: {status} {title}"
            assert status == want, where
            if status == 403 and who == USER:
                assert "administrator" in title, where
            elif status == 403:
                assert "superadmin" in title or "you administer" in title or "not open to your domain" in title, where


def test_domain_admin_cannot_touch_a_superadmin_of_their_domain(lab):
    root_key = lab.keys("root")[0]
    for method, path, body in [
        ("GET", "/admin/users/root@example.com", None),
        ("PATCH", "/admin/users/root@example.com", {"full_name": "x"}),
        ("DELETE", "/admin/users/root@example.com", None),
        ("GET", f"/admin/keypairs/{root_key}", None),
        ("PATCH", f"/admin/keypairs/{root_key}", {"rate_limit": 1}),
        ("DELETE", f"/admin/keypairs/{root_key}", None),
        ("POST", "/admin/keypairs", {"user": "root@example.com"}),
        ("POST", "/admin/groups/research/members", {"add": ["root@example.com"]}),
    ]:
        status, title = status_and_title(lab.call(method, path, DOMAIN_ADMIN, json_body=body))
        assert (status, "only a superadmin" in title) == (403, True), f"{method} {path}: {status} {title}"
    # Nothing changed.
    with lab.pdb.factory() as db:
        root = admin.get_user(db, "root")
        assert root.full_name == "" and root.is_active and [k.rate_limit for k in root.keypairs] == [1000]
        assert root not in admin.get_group(db, "research", "lab").users
    # What a domain admin may do inside their domain, for contrast: make a user an admin there.
    status, _ = status_and_title(lab.call("PATCH", "/admin/users/dave", DOMAIN_ADMIN, json_body={"role": "admin"}))
    assert status == 200
    status, title = status_and_title(
        lab.call(
            "POST",
            "/admin/users",
            DOMAIN_ADMIN,
            json_body={"email": "z@example.com", "password": PASSWORD, "role": "superadmin"},
        )  # fmt: skip
    )
    assert (status, "only a superadmin may create a superadmin" in title) == (403, True)


def test_domain_admin_answers_hold_their_domain_only(lab):
    def get(path: str, key: str) -> list[dict[str, Any]]:
        response = lab.call("GET", path, DOMAIN_ADMIN)
        assert response.status_code == 200, response.text
        return response.json()[key]

    assert {u["domain_name"] for u in get("/admin/users?status=all", "users")} == {"lab"}
    emails = {k["user_id"] for k in get("/admin/keypairs?active=all", "keypairs")}
    assert emails == {"carol@example.com", "dave@example.com", "root@example.com"}
    assert all("secret_key" not in k for k in get("/admin/keypairs", "keypairs"))
    assert {g["domain_name"] for g in get("/admin/groups", "groups")} == {"lab"}
    assert [d["name"] for d in get("/admin/domains", "domains")] == ["lab"]
    assert [s["name"] for s in get("/admin/scaling-groups", "scaling_groups")] == ["default"]


def test_usage_period_is_scoped_by_role(lab):
    def started(username: str) -> None:
        def setup(db):
            user = admin.get_user(db, username)
            keypair = next(k for k in user.keypairs if k.is_active)
            row = m.Session(
                name=f"{username}-s",
                user_id=user.id,
                access_key=keypair.access_key,
                domain_name=user.domain_name,
                scaling_group=admin.DEFAULT,
                image="lab/tiny:1",
                occupied_slots=ResourceSlots.parse({"cpu": 1, "mem": "1g"}),
            )
            db.add(row)
            db.flush()
            session_db.set_status(db, row, m.SessionStatus.RUNNING, "test")
            row.started_at = utcnow() - dt.timedelta(minutes=10)

        lab.pdb.setup(setup)

    for username in ("alice", "bob", "dave"):
        started(username)
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    path = f"/resource/usage/period?start_date={today}&end_date={today}"
    seen = {}
    for who in (USER, DOMAIN_ADMIN, SUPERADMIN):
        response = lab.call("GET", path, who)
        assert response.status_code == 200, response.text
        body = response.json()
        seen[who] = (body["scope"], {item["username"] for item in body["items"]})
        assert all(item["cpu_seconds"] > 0 for item in body["items"])
    assert seen == {
        USER: ("user", {"alice"}),
        DOMAIN_ADMIN: ("domain", {"dave"}),
        SUPERADMIN: ("all", {"alice", "bob", "dave"}),
    }
