"""A policy's maximum session lifetime on the real Docker engine: the hub ends the session at
its end with the reason ``lifetime``, and the session's JupyterLab warns before it.

Needs the engine and the session image (``images/session/build-offline.sh``: the image holds
this package's server and lab extensions).
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing.docker import IMAGE, docker_hub
from testing.hub import screenshot
from testing.sessions import (
    PASSWORD,
    ProductDB,
    manager_hub_config,
    spawn,
    wait_for_manager,
    wait_ready,
    wait_status,
)

pytestmark = pytest.mark.docker

S = m.SessionStatus
CAPACITY = 'c.DockerSessionSpawner.agent_capacity = {"cpu": 2, "mem": "4g"}'


def product_db(tmp_path, lifetime: int) -> ProductDB:
    pdb = ProductDB(tmp_path)

    def setup(db):
        admin.create_policy(
            db, "brief", total_resource_slots={"cpu": 2, "mem": "2g"}, max_session_lifetime=lifetime,
            allowed_vfolder_hosts=["local"],
        )  # fmt: skip
        admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"})
        admin.upsert_image(
            db, IMAGE, labels={"ai.backend.resource.min.cpu": "0.5", "ai.backend.resource.min.mem": "256m"},
            installed=True,
        )  # fmt: skip

    pdb.setup(setup)
    return pdb


def ran_for(session: m.Session) -> float:
    return (session.terminated_at - session.started_at).total_seconds()


def test_the_hub_ends_a_session_at_its_lifetime(make_hub, tmp_path):
    pdb = product_db(tmp_path, lifetime=5)
    pdb.user("lin@example.com", policy="brief")
    # Usage is sampled every 30 s (the default): the loop looks again at the lifetime's end.
    hub = docker_hub(make_hub, pdb)
    assert spawn(hub, "lin", "short", preset="small").status_code in (201, 202)
    ended = wait_status(pdb, "lin", "short", S.TERMINATED, timeout=120)
    assert ended.status_info == "lifetime"
    assert [h.reason for h in ended.history][-2:] == ["lifetime", "lifetime"]  # TERMINATING, TERMINATED
    assert 5 <= ran_for(ended) < 15, ran_for(ended)
    pdb.close()


LIFETIME = 90
WARNING = 50


def test_the_lab_warns_before_the_lifetime_ends_the_session(make_hub, tmp_path, page):
    pdb = product_db(tmp_path, lifetime=LIFETIME)
    pdb.user("liv@example.com", policy="brief")
    hub = make_hub(
        manager_hub_config(
            pdb,
            spawner="backendai-docker",
            lab=True,
            endpoint="proxy",
            extra=f"{CAPACITY}\nc.DockerSessionSpawner.lifetime_warning = {WARNING}",
        )
    )
    wait_for_manager(hub)
    assert spawn(hub, "liv", "desk", preset="small").status_code in (201, 202)
    wait_ready(hub, "liv", "desk", timeout=120)

    # The server extension says when the session ends and how early to warn.
    info = requests.get(
        f"{hub.url}/user/liv/desk/backendai/_ext/session",
        headers={"Authorization": f"token {hub.admin_token}"},
        timeout=30,
    ).json()
    session = pdb.session("liv", "desk")
    assert info["id"] == str(session.id) and info["name"] == session.name, info
    assert info["warn_before"] == WARNING and info["error"] is None, info
    assert 0 < info["ends_in"] <= LIFETIME and info["ends_at"], info

    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "liv")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/"))
    opened = time.monotonic()
    page.goto(f"{hub.url}/user/liv/desk/lab")
    page.locator('.jp-SideBar li[data-id="backendai-storage"]').wait_for(timeout=120_000)
    warning = page.locator(".Toastify__toast", has_text="maximum lifetime")
    left = info["ends_in"] - (time.monotonic() - opened)
    if left > WARNING + 10:
        # Not yet: the lab warns only from WARNING seconds before the end.
        page.wait_for_timeout(3000)
        assert warning.count() == 0
    warning.wait_for(timeout=(LIFETIME + 10) * 1000)
    text = warning.inner_text()
    assert text.startswith(f"Session {session.name} ends at") and "Save your work to a mounted folder." in text, text
    with pdb() as db:
        row = db.get(m.Session, session.id)
        # Shown no earlier than WARNING seconds before the end (and a few seconds of polling late at most).
        left_at_warning = LIFETIME - (time.time() - row.started_at.timestamp())
    assert left_at_warning <= WARNING + 2, left_at_warning
    page.wait_for_timeout(1000)  # the notification slides in
    screenshot(page, "lifetime-warning")

    ended = wait_status(pdb, "liv", "desk", S.TERMINATED, timeout=LIFETIME + 60)
    assert ended.status_info == "lifetime"
    assert LIFETIME <= ran_for(ended) < LIFETIME + 15, ran_for(ended)
    pdb.close()
