"""Images from a registry become usable on the Docker backend: rescan, install, pull at spawn.

A real registry (Debian's ``docker-registry``) on loopback holds an image built offline from the
session image plus a layer of random bytes; the hub's engine reaches it through a slow link
(:class:`~testing.registry.SlowLink`), so that a pull lasts seconds and its progress can be
seen. Through a real hub, proxy and manager:

* the rescan lists the image, not installed and not offered; an administrator installs it, the
  engine pulls it (``docker image inspect``) with its progress in ``GET /admin/images``; it is then
  installed on the engine's agent, offered in launch-options and the spawn form, and a session
  runs from it;
* a session whose image is offered but not on the engine is PULLING (status history, the pending
  page's progress events) and then runs;
* with ``pull_policy = "never"`` a session whose image no agent has is refused with the reason,
  and once the engine has it (a heartbeat reports it) it starts;
* in a real browser, Administration → Environments → Images of the lab extension (a JupyterLab on
  this host managing the hub with the superadmin's keypair) installs the image and shows its
  pull's progress, then the agent that has it.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import pytest
import requests

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing.hub import free_port, screenshot
from testing.registry import (
    SESSION_IMAGE,
    SlowLink,
    add_registry,
    admin_call,
    docker,
    docker_agent,
    image_exists,
    images_by_ref,
    manager_docker_hub,
    push_session_variant,
)
from testing.sessions import (
    PREFIX,
    ProductDB,
    add_students,
    keypair_call,
    progress_until,
    spawn,
    spawn_running,
    stop,
    wait_ready,
    wait_status,
)

pytestmark = pytest.mark.docker

S = m.SessionStatus
#: Bytes per second the slow link passes per connection: a 12 MiB layer takes about 6 s.
RATE = 2 * 1024 * 1024


@pytest.fixture
def registry(image_registry):
    return image_registry.address


@pytest.fixture
def pdb(tmp_path):
    with ProductDB(tmp_path) as pdb:
        pdb.setup(lambda db: add_students(db, image=SESSION_IMAGE, labels={"ai.backend.resource.min.cpu": "0.5"}))
        pdb.user("root@example.com", role="superadmin")  # who administers the images
        pdb.user("alice@example.com", policy="student")
        yield pdb


def alice_offers(hub, pdb) -> list[str]:
    """What alice's start dialogs are offered (launch-options, signed with her keypair)."""
    r = keypair_call(hub.url + PREFIX, *pdb.keys("alice"), "GET", "/resource/launch-options")
    assert r.status_code == 200, r.text
    return [i["reference"] for i in r.json()["images"]]


def cleanup(*refs: str) -> None:
    for ref in refs:
        if image_exists(ref):
            docker("rmi", "-f", ref)


def test_installed_from_a_registry_with_progress_then_offered_and_run(make_hub, pdb, registry, tmp_path):
    repo = f"lab/pulled-{uuid.uuid4().hex[:6]}:1"
    push_session_variant(registry, repo, tmp_path)
    with SlowLink(registry, rate=RATE) as link:
        ref = f"{link.address}/{repo}"
        add_registry(pdb, link.address)
        assert not image_exists(ref)
        try:
            hub = manager_docker_hub(make_hub, pdb)
            agent = docker_agent(pdb)

            # The rescan lists it: not installed, not offered.
            report = admin_call(hub, pdb, "POST", "/admin/images/rescan").json()
            assert f"{ref} (x86_64)" in report["images"], report
            image = images_by_ref(hub, pdb)[ref]
            assert image["installed"] is False and image["installed_agents"] == [] and image["installs"] == []
            assert ref not in alice_offers(hub, pdb)

            # Who may install what: a superadmin, images that have a registry, agents that exist.
            path = f"/admin/images/{quote(ref, safe='/:')}/install"
            refused = keypair_call(hub.url + PREFIX, *pdb.keys("alice"), "POST", path, {})
            assert refused.status_code == 403, refused.text
            bad = admin_call(hub, pdb, "POST", f"/admin/images/{SESSION_IMAGE}/install", {})
            assert bad.status_code == 400 and "names no registry" in bad.json()["title"], bad.text
            bad = admin_call(hub, pdb, "POST", path, {"agents": ["nope"]})
            assert bad.status_code == 404 and "no agent 'nope'" in bad.json()["title"], bad.text
            assert admin_call(hub, pdb, "POST", path, {"agents": "x"}).status_code == 400

            # Install: queued on the engine's agent, pulled with its progress shown, installed.
            answer = admin_call(hub, pdb, "POST", path, {})
            assert answer.status_code == 202, answer.text
            assert answer.json()["queued"] == [agent], answer.text
            seen = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                image = images_by_ref(hub, pdb)[ref]
                seen += [(i["status"], i["progress"], i["message"]) for i in image["installs"]]
                if image["installed_agents"] == [agent]:
                    break
                assert all(i["status"] != "failed" for i in image["installs"]), image["installs"]
                time.sleep(0.3)
            else:
                raise AssertionError(f"not installed within 120 s: {seen[-3:]}\n{hub.log_tail(60)}")
            pulling = [s for s in seen if s[0] == "pulling" and s[1]]
            assert pulling, seen
            status, progress, message = pulling[-1]
            assert 0 < progress["current"] <= progress["total"] and "layers" in message, pulling
            assert image["installed"] is True and image["installs"][0]["status"] == "installed"
            assert image_exists(ref)  # on the engine
            # Backend.AI's GraphQL field says the same (its client's `admin image list`).
            gql = admin_call(
                hub, pdb, "POST", "/admin/gql", {"query": "{ images { humanized_name installed_agents } }"}
            )
            assert gql.status_code == 200 and not gql.json().get("errors"), gql.text
            found = {i["humanized_name"]: i["installed_agents"] for i in gql.json()["data"]["images"]}
            assert found[ref] == [agent], found

            # Offered now: in launch-options and in the hub's spawn form; a session runs from it.
            assert ref in alice_offers(hub, pdb)
            session = spawn_running(hub, pdb, "alice", "pulled", timeout=120, preset="small", image=ref)
            assert session.image == ref
            assert docker("inspect", "-f", "{{.Config.Image}}", session.container_id).strip() == ref
            assert [h.status for h in session.history].count(S.PULLING) == 0  # it was there already
            stop(hub, "alice", "pulled")
            form = hub_spawn_form(hub, "alice")
            assert ref in form, form[:2000]
        finally:
            cleanup(ref)


def hub_spawn_form(hub, user: str) -> str:
    """The spawn form's HTML as the user sees it (logged in with the hub's login form)."""
    with requests.Session() as s:
        s.get(f"{hub.url}/hub/login", timeout=10)
        r = s.post(
            f"{hub.url}/hub/login",
            data={"username": user, "password": "S3cret!pw", "_xsrf": s.cookies.get("_xsrf", "")},
            timeout=30,
        )
        assert r.status_code == 200, r.text[:500]
        r = s.get(f"{hub.url}/hub/spawn/{user}/form-check", timeout=30)
        assert r.status_code == 200, r.text[:500]
        return r.text


def test_a_session_pulls_its_missing_image_while_pulling(make_hub, pdb, registry, tmp_path):
    repo = f"lab/at-spawn-{uuid.uuid4().hex[:6]}:1"
    push_session_variant(registry, repo, tmp_path)
    with SlowLink(registry, rate=RATE) as link:
        ref = f"{link.address}/{repo}"
        add_registry(pdb, link.address)
        # Offered (an administrator marked it installed), but the engine does not have it.
        pdb.setup(lambda db: admin.upsert_image(db, ref, labels={"ai.backend.test": "1"}, installed=True))
        try:
            hub = manager_docker_hub(make_hub, pdb)
            agent = docker_agent(pdb)
            r = spawn(hub, "alice", "pulls", preset="small", image=ref)
            assert r.status_code in (201, 202), r.text
            seen = progress_until(hub, "alice", "pulls", b'"ready": true', b'"failed": true', timeout=120)
            assert b"Pulling" in seen or b"pulling" in seen, seen
            assert f"pulling {ref}: ".encode() in seen and b"layers" in seen and b"MiB" in seen, seen
            wait_ready(hub, "alice", "pulls", timeout=120)
            session = wait_status(pdb, "alice", "pulls", S.RUNNING)
            history = [(h.status, h.reason) for h in session.history]
            statuses = [s for s, _ in history]
            assert statuses.index(S.PULLING) < statuses.index(S.CREATING) < statuses.index(S.RUNNING), history
            assert (S.PULLING, f"pulling image {ref} onto agent {agent}") in history
            assert image_exists(ref)
            image = images_by_ref(hub, pdb)[ref]
            assert image["installed_agents"] == [agent]
            stop(hub, "alice", "pulls")
        finally:
            cleanup(ref)


def test_without_pulling_a_session_needs_an_agent_with_its_image(make_hub, pdb, registry, tmp_path):
    repo = f"lab/no-pull-{uuid.uuid4().hex[:6]}:1"
    pushed = push_session_variant(registry, repo, tmp_path, size_mib=1)
    ref = pushed
    add_registry(pdb, registry)
    pdb.setup(lambda db: admin.upsert_image(db, ref, labels={"ai.backend.test": "1"}, installed=True))
    try:
        hub = manager_docker_hub(make_hub, pdb, 'c.DockerSessionSpawner.pull_policy = "never"')
        docker_agent(pdb)
        r = spawn(hub, "alice", "nopull", preset="small", image=ref)
        assert r.status_code == 400, r.text
        reason = r.json()["message"]
        assert f"the image {ref} is on no agent of resource group 'default'" in reason, reason
        assert "pull_policy 'never'" in reason
        assert not image_exists(ref)

        # Put on the engine by other means: the next heartbeat reports it, and the session starts.
        docker("pull", ref)
        deadline = time.monotonic() + 30
        while images_by_ref(hub, pdb)[ref]["installed_agents"] == []:
            assert time.monotonic() < deadline, images_by_ref(hub, pdb)[ref]
            time.sleep(0.5)
        session = spawn_running(hub, pdb, "alice", "nopull2", timeout=120, preset="small", image=ref)
        assert S.PULLING not in [h.status for h in session.history]
        stop(hub, "alice", "nopull2")
    finally:
        cleanup(ref)


@contextlib.contextmanager
def keypair_lab(tmp_path, endpoint: str, access_key: str, secret_key: str):
    """A plain JupyterLab on this host whose Backend.AI panels manage the hub with a keypair."""
    from testing.browser import jupyter_paths

    port, token = free_port(), uuid.uuid4().hex
    root = tmp_path / "lab-root"
    root.mkdir()
    env = {**os.environ, **jupyter_paths(tmp_path)}
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--ServerApp.port={port}",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
        f"--BackendAIExtension.endpoint={endpoint}", f"--BackendAIExtension.access_key={access_key}",
        f"--BackendAIExtension.secret_key={secret_key}",
    ]  # fmt: skip
    with open(tmp_path / "lab.log", "wb") as log:
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "lab.log").read_text()
            time.sleep(0.3)
        yield f"{url}/lab?token={token}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_administration_installs_an_image_and_shows_its_pull(make_hub, pdb, registry, tmp_path, page):
    from testing.browser import console_area, open_from_menu

    repo = f"lab/from-panel-{uuid.uuid4().hex[:6]}:1"
    push_session_variant(registry, repo, tmp_path)
    with SlowLink(registry, rate=RATE) as link:
        ref = f"{link.address}/{repo}"
        add_registry(pdb, link.address)
        pdb.setup(lambda db: admin.upsert_image(db, ref, labels={"ai.backend.test": "1"}))
        try:
            hub = manager_docker_hub(make_hub, pdb)
            agent = docker_agent(pdb)
            with keypair_lab(tmp_path, hub.url + PREFIX, *pdb.keys("root")) as lab_url:
                page.goto(lab_url, timeout=90_000)
                page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
                open_from_menu(page, "Administration")
                area = console_area(page, "admin")
                area.get_by_role("tab", name="Environments").click()
                area.get_by_role("tab", name="Images").click()
                row = area.locator(f"tr[data-key='{ref}@x86_64']")
                row.wait_for()
                assert "—" in row.inner_text()  # on no agent yet
                row.get_by_role("button", name=f"Install {ref} on the agents").click()
                dialog = page.get_by_role("dialog", name=f"Install {ref}")
                dialog.get_by_label("Onto the agents of", exact=True).select_option("default")
                dialog.get_by_role("button", name="Install").click()
                area.get_by_text(f"The agents pull {ref}: {agent}.").wait_for()
                # The pull's progress in the row while it runs (the list follows it by itself) ...
                pulling = row.locator(f"li[data-install-status='pulling'][data-agent='{agent}']")
                pulling.filter(has_text=re.compile(r"pulling on .*: \d+ % \(.* of .*\)")).wait_for(timeout=60_000)
                screenshot(page, "image-pulling")
                # ... then the agent that has it.
                row.locator("li[data-install-status]").first.wait_for(state="detached", timeout=120_000)
                assert agent in row.inner_text() and image_exists(ref)
                screenshot(page, "image-installed")
        finally:
            cleanup(ref)
