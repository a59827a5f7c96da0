"""The console part of the lab extension in a real browser, through a real hub and proxy.

A superadmin logs in to the hub, opens JupyterLab in a session (local backend), opens
Administration from the "Backend.AI" menu, creates a resource policy and then a user with
it; the new user logs in to the hub and the policy holds for them. On the way, Summary,
Statistics, Settings and Administration are saved as screenshots in the light and the dark
theme (``test-artifacts/screenshots/test_admin_creates_policy_and_user_who_logs_in/``).

The session sees the extension the way an installed package provides it: the built
``jupyter_backendai/labextension`` as ``labextensions/jupyter-backendai`` on the Jupyter data
path, and the server extension enabled by the package's ``jupyter_server_config.d`` file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from jupyter_backendai.db import admin
from testing.browser import console_area, field, fill, hub_login, jupyter_paths, open_dialog, open_from_menu, submit
from testing.hub import free_port, screenshot
from testing.sessions import PASSWORD, ProductDB, spawn, start_hub_with_manager, wait_ready

NEW_PASSWORD = "Fresh!pw42"
LAB_TIMEOUT_MS = 90_000


def hub_with_manager(make_hub: Any, pdb: ProductDB, tmp_path: Path) -> Any:
    """A hub (local backend) whose ``backendai`` service is the manager; sessions run JupyterLab."""
    return start_hub_with_manager(
        make_hub, pdb, lab=True, endpoint="proxy", environment=jupyter_paths(tmp_path), oauth_no_confirm=True
    )


def set_theme(page: Any, theme: str, light: bool) -> None:
    page.click(".lm-MenuBar-item:has-text('Settings')")
    page.hover(".lm-Menu-item:has-text('Theme')")
    page.click(f".lm-Menu-item:has-text('{theme}')")
    page.wait_for_selector(f"body[data-jp-theme-light='{str(light).lower()}']", state="attached")


def shoot_console(page: Any, theme: str) -> None:
    """Summary, Statistics, Settings and Administration in the current theme."""
    for kind, item, ready in (
        ("summary", "Summary", "[data-gauge=cpu]"),
        ("statistics", "Statistics", "[data-chart=cpu]"),
        ("settings", "Backend.AI Settings", "textarea"),
        ("admin", "Administration", "tr[data-key='newbie@example.com']"),
    ):
        open_from_menu(page, item)
        area = console_area(page, kind)
        area.locator(ready).first.wait_for()
        page.wait_for_timeout(300)  # the last answers and the theme's transitions settle
        screenshot(page, f"{kind}-{theme}")


def other_tabs(page: Any, area: Any, pdb: ProductDB) -> None:
    """One action in each other Administration tab, checked against the database."""
    # Credentials: a second keypair for newbie (its secret shown once), then deactivated.
    area.get_by_role("tab", name="Credentials").click()
    dialog = open_dialog(page, area, "+ New keypair", "New keypair")
    fill(dialog, {"User (e-mail or user name)": "newbie", "Resource policy": "course", "Rate limit": "500"})
    dialog.get_by_role("button", name="Create keypair").click()
    shown = page.get_by_role("dialog", name="Keypair for newbie@example.com")
    access_key = shown.locator("dd code").first.inner_text()
    shown.get_by_role("button", name="Close").click()
    area.locator(f"tr[data-key='{access_key}']").wait_for()
    area.get_by_role("button", name=f"Deactivate {access_key}").click()
    area.locator(f"tr[data-key='{access_key}']").wait_for(state="detached")
    keypair = pdb.setup(lambda db: admin.get_keypair(db, access_key))
    assert (keypair.resource_policy, keypair.rate_limit, keypair.is_active) == ("course", 500, False)

    # Environments: an image's minimums (its reference has a ':' in the URL), a preset, a registry.
    area.get_by_role("tab", name="Environments").click()
    dialog = open_dialog(
        page, area, "Edit the minimum resources of python-local:3", "Minimum resources of python-local:3"
    )
    submit(dialog, values={"Minimum CPU (cores)": "1", "Minimum RAM": "256m"})
    area.get_by_text("CPU 1, RAM 256 MiB").wait_for()
    image = pdb.setup(lambda db: admin.get_image(db, "python-local:3", None).min_slots.to_json())
    assert image == {"cpu": "1", "mem": str(256 * 1024**2)}

    area.get_by_role("tab", name="Presets").click()
    dialog = open_dialog(page, area, "+ New preset", "New resource preset")
    fill(dialog, {"Name": "tiny", "CPU (cores)": "0.5", "RAM": "256m", "Shared memory": "64m"})
    dialog.get_by_role("button", name="Create preset").click()
    area.locator("tr[data-key='tiny']").wait_for()
    preset = pdb.setup(lambda db: admin.get_preset(db, "tiny"))
    assert preset.resource_slots.to_json() == {"cpu": "0.5", "mem": str(256 * 1024**2)}
    assert preset.shared_memory == 64 * 1024**2

    area.get_by_role("tab", name="Registries").click()
    dialog = open_dialog(page, area, "+ Add registry", "Add a registry")
    port = free_port()  # nothing listens there: the rescan reports why it read nothing
    fill(dialog, {"Host name": f"localhost:{port}", "URL": f"http://127.0.0.1:{port}"})
    dialog.get_by_role("button", name="Add registry").click()
    area.locator(f"tr[data-key='localhost:{port}']").wait_for()
    area.get_by_role("button", name=f"Rescan localhost:{port}").click()
    report = area.get_by_role("status").filter(has_text="Scanned")
    report.wait_for()
    assert f"Scanned localhost:{port}: 0 image(s) added" in report.inner_text()
    assert "cannot list repositories" in report.inner_text()

    # Resources: the hub's agent with its use, and why another one is not schedulable (a drained
    # swarm node, as its backend registers it); a DRF resource group open to the default domain.
    from jupyter_backendai.core.slots import ResourceSlots
    from jupyter_backendai.db import sessions as session_db

    pdb.setup(
        lambda db: session_db.register_agent(
            db, "node-x", scaling_group="default", capacity=ResourceSlots(cpu=2, mem="2g"), version="swarm",
            schedulable=False, status_info="node availability drain",
        )
    )  # fmt: skip
    area.get_by_role("tab", name="Resources").click()
    agent_row = area.locator("tbody tr").first
    agent_row.wait_for()
    assert "ALIVE" in agent_row.inner_text() and "1 / 4" in agent_row.inner_text()
    drained = area.locator("tbody tr").filter(has_text="node-x")
    drained.wait_for()
    assert "ALIVE: node availability drain" in drained.inner_text()
    area.get_by_role("tab", name="Resource groups").click()
    dialog = open_dialog(page, area, "+ New resource group", "New resource group")
    fill(dialog, {"Name": "gpu", "Scheduler": "drf", "Pending timeout (seconds)": "600"})
    dialog.get_by_role("button", name="Create resource group").click()
    area.locator("tr[data-key='gpu']").wait_for()
    dialog = open_dialog(page, area, "Who may use gpu", "Who may use gpu")
    dialog.get_by_label("default", exact=True).check()
    dialog.get_by_label("default/physics", exact=True).check()
    submit(dialog)
    area.locator("tr[data-key='gpu']").filter(has_text="default/physics").wait_for()

    def sgroup(db: Any) -> dict[str, Any]:
        sg = admin.get_scaling_group(db, "gpu")
        return {
            "scheduler": sg.scheduler.value,
            "timeout": sg.pending_timeout,
            "domains": sorted(d.name for d in sg.domains),
            "groups": sorted(g.name for g in sg.groups),
        }

    assert pdb.setup(sgroup) == {"scheduler": "drf", "timeout": 600, "domains": ["default"], "groups": ["physics"]}

    # Domains & projects: caps edited; a bad amount keeps the dialog open with the manager's
    # reason; a cap cleared in an edit is lifted.
    area.get_by_role("tab", name="Domains & projects").click()
    dialog = open_dialog(page, area, "Edit domain default", "Edit domain default")
    field(dialog, "CPU (cores)").fill("lots")
    dialog.get_by_role("button", name="Save").click()
    assert "cpu: 'lots' is not a number" in dialog.get_by_role("alert").inner_text()
    submit(dialog, values={"CPU (cores)": "16", "RAM": "64g"})
    area.locator("tr[data-key='default']").filter(has_text="CPU 16, RAM 64 GiB").wait_for()
    area.get_by_role("tab", name="Projects", exact=True).click()
    dialog = open_dialog(page, area, "Edit project default/physics", "Edit project physics (default)")
    submit(dialog, values={"Description": "Physics lab", "fGPU (shares)": "2"})
    area.locator("tr[data-key='default/physics']").filter(has_text="fGPU 2").wait_for()
    screenshot(page, "admin-projects")
    area.get_by_role("tab", name="Domains", exact=True).click()
    submit(open_dialog(page, area, "Edit domain default", "Edit domain default"), values={"CPU (cores)": ""})
    area.locator("tr[data-key='default']").filter(has_text="RAM 64 GiB").wait_for()

    def caps(db: Any) -> tuple[Any, ...]:
        physics = admin.get_group(db, "physics")
        return (admin.get_domain(db, "default").total_resource_slots.to_json(),
                physics.total_resource_slots.to_json(), physics.description)  # fmt: skip

    assert pdb.setup(caps) == ({"mem": str(64 * 1024**3)}, {"cuda.shares": "2"}, "Physics lab")

    # System settings and Maintenance: the running service, and usage recalculated (the lab runs).
    area.get_by_role("tab", name="System settings").click()
    area.get_by_text("sqlite (pysqlite)").wait_for()
    area.get_by_role("tab", name="Maintenance").click()
    area.get_by_role("button", name="Recalculate usage").click()
    area.get_by_text("Checked 1 session(s) holding resources; all of them run.").wait_for()
    area.get_by_role("tab", name="Users").click()


@pytest.fixture
def pdb(tmp_path: Path) -> Any:
    pdb = ProductDB(tmp_path)

    def setup(db: Any) -> None:
        admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"})
        admin.upsert_image(db, "python-local:3", installed=True)
        admin.create_group(db, "physics", domain="default")

    pdb.setup(setup)
    pdb.user("admin@example.com", role="superadmin", username="admin", groups=["default"])
    yield pdb
    pdb.close()


def test_admin_creates_policy_and_user_who_logs_in(make_hub, pdb, tmp_path, page, browser) -> None:
    hub = hub_with_manager(make_hub, pdb, tmp_path)
    hub_login(page, hub, "admin", PASSWORD)
    page.wait_for_url(re.compile(r"/hub/home"))
    started = spawn(hub, "admin", "lab", image="python-local:3", preset="small")
    assert started.status_code in (201, 202), started.text
    wait_ready(hub, "admin", "lab", timeout=120)

    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{hub.url}/user/admin/lab/lab", timeout=LAB_TIMEOUT_MS)
    page.wait_for_selector("#jp-main-dock-panel", timeout=LAB_TIMEOUT_MS)
    # The menu gets Administration once auth/whoami (through the server extension) says superadmin.
    open_from_menu(page, "Administration")
    admin_area = console_area(page, "admin")
    admin_area.get_by_role("tab", name="Users").wait_for()
    assert "Superadmin (admin@example.com)" in admin_area.inner_text()

    # Tabs follow the keyboard: arrow keys move the selection.
    users_tab = admin_area.get_by_role("tab", name="Users")
    users_tab.focus()
    page.keyboard.press("ArrowRight")
    assert admin_area.get_by_role("tab", name="Credentials").get_attribute("aria-selected") == "true"
    page.keyboard.press("ArrowRight")
    policies_tab = admin_area.get_by_role("tab", name="Resource Policies")
    assert policies_tab.get_attribute("aria-selected") == "true"

    # A resource policy: 1 CPU, 1 GiB, one session at a time, 3 folders of 2 GiB.
    dialog = open_dialog(page, admin_area, "+ New policy", "New resource policy")
    course = {"Name": "course", "CPU (cores)": "1", "RAM": "1g", "Concurrent sessions": "1"}
    course |= {"Idle timeout (seconds)": "3600", "Folders": "3", "Folder capacity": "2g"}
    submit(dialog, "Create policy", course)
    row = admin_area.locator("tr[data-key='course']")
    row.wait_for()
    assert "1 GiB" in row.inner_text() and "1 h" in row.inner_text()

    def policy(db: Any) -> dict[str, Any]:
        p = admin.get_policy(db, "course")
        return {
            "slots": p.total_resource_slots.to_json(),
            "sessions": p.max_concurrent_sessions,
            "idle": p.idle_timeout,
            "folders": p.max_vfolder_count,
            "size": p.max_vfolder_size,
            "hosts": list(p.allowed_vfolder_hosts),
        }

    assert pdb.setup(policy) == {
        "slots": {"cpu": "1", "mem": str(1024**3)},
        "sessions": 1,
        "idle": 3600,
        "folders": 3,
        "size": 2 * 1024**3,
        "hosts": ["local"],
    }

    # The same name again: the manager's reason is shown in the dialog, which stays open.
    dialog = open_dialog(page, admin_area, "+ New policy", "New resource policy")
    field(dialog, "Name").fill("course")
    dialog.get_by_role("button", name="Create policy").click()
    assert "keypair resource policy 'course' already exists" in dialog.get_by_role("alert").inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")

    # A user with that policy, in the project "physics".
    admin_area.get_by_role("tab", name="Users").click()
    dialog = open_dialog(page, admin_area, "+ New user", "New user")
    fill(dialog, {"E-mail": "newbie@example.com", "User name": "newbie", "Full name": "New Bie", "Password": "short"})
    assert "not met yet" in dialog.get_by_label("Password rules").inner_text()
    field(dialog, "Password").fill(NEW_PASSWORD)
    assert "not met yet" not in dialog.get_by_label("Password rules").inner_text()
    field(dialog, "Resource policy").select_option("course")
    dialog.get_by_label("physics").check()
    screenshot(page, "admin-new-user-dialog")
    dialog.get_by_role("button", name="Create user").click()
    shown = page.get_by_role("dialog", name="User newbie@example.com created")
    access_key = shown.locator("dd code").first.inner_text()
    secret_key = shown.locator("dd code").nth(1).inner_text()
    assert re.fullmatch(r"AK[A-Z0-9]{18}", access_key) and len(secret_key) == 40
    shown.get_by_role("button", name="Close").click()
    user_row = admin_area.locator("tr[data-key='newbie@example.com']")
    user_row.wait_for()
    assert "physics" in user_row.inner_text() and "New Bie" in user_row.inner_text()

    def new_user(db: Any) -> dict[str, Any]:
        user = admin.get_user(db, "newbie")
        return {
            "groups": sorted(g.name for g in user.groups),
            "keypairs": [(k.access_key, k.secret_key, k.resource_policy) for k in user.keypairs],
            "role": user.role.value,
            "full_name": user.full_name,
        }

    assert pdb.setup(new_user) == {
        "groups": ["physics"],
        "keypairs": [(access_key, secret_key, "course")],
        "role": "user",
        "full_name": "New Bie",
    }

    other_tabs(page, admin_area, pdb)

    # Settings: a wrong current password is refused with the manager's reason; the preferred
    # SSH port is saved; a new SSH keypair shows its private key once, with a download.
    open_from_menu(page, "Backend.AI Settings")
    settings = console_area(page, "settings")
    fill(
        settings,
        {"Current password": "not-my-password", "New password": NEW_PASSWORD, "New password again": NEW_PASSWORD},
    )
    settings.get_by_role("button", name="Change password").click()
    assert "the current password is wrong" in settings.get_by_role("alert").inner_text()
    field(settings, "Port").fill("20022")
    settings.get_by_role("button", name="Save port").click()
    settings.get_by_text("New sessions use port 20022 when it is free.").wait_for()
    assert pdb.setup(lambda db: admin.get_user(db, "admin").preferred_ssh_port) == 20022
    old_key = field(settings, "Public key").input_value()
    assert old_key.startswith("ssh-ed25519 ")
    settings.get_by_role("button", name="Generate a new keypair").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Generate").click()
    private = field(settings, "New private key")
    private.wait_for()
    assert private.input_value().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert field(settings, "Public key").input_value() not in ("", old_key)
    with page.expect_download() as download:
        settings.get_by_role("button", name="Download id_container").click()
    assert download.value.suggested_filename == "id_container"
    assert Path(download.value.path()).read_text() == private.input_value()
    screenshot(page, "settings-new-keypair")

    shoot_console(page, "light")
    set_theme(page, "JupyterLab Dark", light=False)
    shoot_console(page, "dark")
    set_theme(page, "JupyterLab Light", light=True)
    assert not errors, errors

    # The new user logs in to the hub (a browser of their own) ...
    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        newbie = other.new_page()
        hub_login(newbie, hub, "newbie", NEW_PASSWORD)
        newbie.wait_for_url(re.compile(r"/hub/home"))
        screenshot(newbie, "newbie-home")
        assert hub.api("GET", "/users/newbie").json()["name"] == "newbie"
        # ... the policy holds for them: two CPUs are more than "course" gives ...
        refused = spawn(hub, "newbie", "big", image="python-local:3", cpu="2", mem="512m")
        assert refused.status_code == 403, refused.text
        assert "exceeds the keypair policy 'course' limit of 1" in refused.json()["message"]
        # ... and in their lab, Summary measures them against it; Administration is not there.
        started = spawn(hub, "newbie", "work", image="python-local:3", preset="small")
        assert started.status_code in (201, 202), started.text
        wait_ready(hub, "newbie", "work", timeout=120)
        newbie.goto(f"{hub.url}/user/newbie/work/lab", timeout=LAB_TIMEOUT_MS)
        newbie.wait_for_selector("#jp-main-dock-panel", timeout=LAB_TIMEOUT_MS)
        open_from_menu(newbie, "Summary")
        summary = console_area(newbie, "summary")
        cpu = summary.locator("[data-gauge=cpu] svg")
        cpu.wait_for()
        assert field(summary, "Project").input_value() == "physics"
        assert cpu.get_attribute("aria-label") == "CPU: 1 core used of 1 core (100%)"
        ram = summary.locator("[data-gauge=mem] svg").get_attribute("aria-label")
        assert ram == "RAM: 512 MiB used of 1 GiB (50%)"
        sessions = summary.locator("[data-gauge=sessions] svg").get_attribute("aria-label")
        assert sessions == "Sessions: 1 used of 1 (100%)"
        assert "bounded by your keypair policy" in summary.locator("[data-gauge=cpu]").inner_text()
        screenshot(newbie, "newbie-summary")
        newbie.click(".lm-MenuBar-item:has-text('Backend.AI')")
        menu = newbie.locator(".lm-Menu").last
        menu.get_by_text("Summary").wait_for()
        assert "Administration" not in menu.inner_text()
    finally:
        other.close()

    # Back in the admin's lab: an edit sends only what changed; deactivation locks the user out.
    page.bring_to_front()
    open_from_menu(page, "Administration")
    admin_area.get_by_role("tab", name="Users").click()
    dialog = open_dialog(page, admin_area, "Edit newbie@example.com", "Edit newbie@example.com")
    field(dialog, "Full name").fill("Newbie Second")
    dialog.get_by_label("Must change the password at next login").check()
    submit(dialog)
    admin_area.locator("tr[data-key='newbie@example.com']").filter(has_text="Newbie Second").wait_for()
    edited = pdb.setup(
        lambda db: (lambda u: (u.full_name, u.need_password_change, u.role.value))(admin.get_user(db, "newbie"))
    )
    assert edited == ("Newbie Second", True, "user")
    admin_area.get_by_role("button", name="Deactivate newbie@example.com").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Deactivate").click()
    admin_area.locator("tr[data-key='newbie@example.com']").wait_for(state="detached")
    assert pdb.setup(lambda db: admin.get_user(db, "newbie").status.value) == "inactive"
    locked = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        again = locked.new_page()
        hub_login(again, hub, "newbie", NEW_PASSWORD)
        again.get_by_text("This account is inactive").wait_for()
        assert "/hub/login" in again.url
    finally:
        locked.close()


def test_the_extension_files_are_what_the_session_loads(tmp_path) -> None:
    """The data and config paths the browser test gives sessions hold the real, built files."""
    env = jupyter_paths(tmp_path)
    linked = Path(env["JUPYTER_PATH"]) / "labextensions" / "jupyter-backendai"
    package = json.loads((linked / "package.json").read_text())
    assert package["name"] == "jupyter-backendai"
    assert package["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    enabled = Path(env["JUPYTER_CONFIG_PATH"]) / "jupyter_server_config.d" / "jupyter_backendai.json"
    assert json.loads(enabled.read_text())["ServerApp"]["jpserver_extensions"] == {"jupyter_backendai.serverext": True}
