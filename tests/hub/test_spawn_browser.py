"""A new session from the browser: log in, fill the spawn form, see the pending page, land in JupyterLab."""

from __future__ import annotations

import re

import pytest

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing.docker import IMAGE
from testing.hub import screenshot
from testing.sessions import PASSWORD, ProductDB, hub_config, wait_status

pytestmark = pytest.mark.docker


def test_spawn_form_pending_page_and_jupyterlab(make_hub, tmp_path, page):
    pdb = ProductDB(tmp_path)

    def setup(db):
        admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"})
        admin.create_preset(db, "huge", {"cpu": 64, "mem": "512g"})
        admin.upsert_image(db, IMAGE, labels={"ai.backend.resource.min.cpu": "0.5"}, installed=True)
        admin.create_policy(db, "student", total_resource_slots={"cpu": 2, "mem": "2g"})

    pdb.setup(setup)
    pdb.user("lee@example.com", policy="student")
    pdb.folder("lee", "work")
    hub = make_hub(
        hub_config(
            pdb,
            "backendai-docker",
            'c.DockerSessionSpawner.agent_capacity = {"cpu": 2, "mem": "4g"}\nc.Spawner.default_url = "/lab"',
        )
    )

    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "lee")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/home"))
    page.goto(f"{hub.url}/hub/spawn/lee/first")
    page.wait_for_selector("#backendai-spawn-form")
    # Presets larger than what lee may still use are hidden; the no-folder warning shows.
    assert page.is_visible("#no-folder-warning")
    assert "huge" not in page.inner_text("#backendai-spawn-form")
    assert "1 preset(s) are hidden" in page.inner_text("#hidden-presets")
    page.check("input.bai-folder[value=work]")
    assert not page.is_visible("#no-folder-warning")
    screenshot(page, "01-spawn-form")
    page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    page.wait_for_url(re.compile(r"/hub/spawn-pending/lee/first|/user/lee/first/"))
    screenshot(page, "02-pending")
    page.wait_for_url(re.compile(r"/user/lee/first/lab"), timeout=120_000)
    # JupyterLab's file browser shows the mounted folder.
    page.wait_for_selector(".jp-DirListing-item:has-text('work')", timeout=60_000)
    screenshot(page, "03-jupyterlab")
    session = wait_status(pdb, "lee", "first", m.SessionStatus.RUNNING)
    assert session.mounts[0]["folder"] == "work"
    assert session.occupied_slots["cpu"] == 1
    pdb.close()
