"""A new session from the browser: log in, fill the spawn form, see the pending page, land in JupyterLab."""

from __future__ import annotations

import re

import pytest

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing.browser import hub_login, open_spawn_form, submit_spawn_form, wait_lab_with_folder
from testing.docker import IMAGE
from testing.hub import screenshot
from testing.sessions import PASSWORD, ProductDB, add_students, hub_config, wait_status

pytestmark = pytest.mark.docker


def test_spawn_form_pending_page_and_jupyterlab(make_hub, tmp_path, page):
    pdb = ProductDB(tmp_path)

    def setup(db):
        add_students(db, sessions=0, shared_memory=None, image=IMAGE, labels={"ai.backend.resource.min.cpu": "0.5"})
        admin.create_preset(db, "huge", {"cpu": 64, "mem": "512g"})

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

    hub_login(page, hub, "lee", PASSWORD)
    page.wait_for_url(re.compile(r"/hub/home"))
    open_spawn_form(page, hub, "lee", "first")
    # Presets larger than what lee may still use are hidden; the no-folder warning shows.
    assert page.is_visible("#no-folder-warning")
    assert "huge" not in page.inner_text("#backendai-spawn-form")
    assert "1 preset(s) are hidden" in page.inner_text("#hidden-presets")
    page.check("input.bai-folder[value=work]")
    assert not page.is_visible("#no-folder-warning")
    screenshot(page, "01-spawn-form")
    submit_spawn_form(page, "lee", "first")
    screenshot(page, "02-pending")
    # JupyterLab's file browser shows the mounted folder.
    wait_lab_with_folder(page, "lee", "first", "work")
    screenshot(page, "03-jupyterlab")
    session = wait_status(pdb, "lee", "first", m.SessionStatus.RUNNING)
    assert session.mounts[0]["folder"] == "work"
    assert session.occupied_slots["cpu"] == 1
    pdb.close()
