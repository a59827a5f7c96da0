"""The lab's pages in Chromium: its paths with the built extension, and the steps a person takes."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from testing.hub import REPO_ROOT, not_installed
from testing.sessions import PASSWORD, spawn, wait_ready

LABEXTENSION = REPO_ROOT / "jupyter_backendai" / "labextension"


SERVER_CONFIG = REPO_ROOT / "jupyter-config" / "server-config" / "jupyter_backendai.json"


def jupyter_paths(tmp_path: Path) -> dict[str, str]:
    """A data path with the built lab extension and a config path enabling the server extension."""
    if not (LABEXTENSION / "package.json").is_file() or not (LABEXTENSION / "static").is_dir():
        not_installed("the built lab extension (cd labextension && jlpm install && jlpm build)")
    # Sessions of a root hub run as accounts of their own, which cannot enter pytest's 0700 tree:
    # the paths they read live in a directory of the test's own that they can.
    tmp_path = Path(tempfile.mkdtemp(prefix="backendai-jupyter-paths-"))
    tmp_path.chmod(0o755)
    data = tmp_path / "jupyter-data"
    (data / "labextensions").mkdir(parents=True)
    (data / "labextensions" / "jupyter-backendai").symlink_to(LABEXTENSION, target_is_directory=True)
    config = tmp_path / "jupyter-config"
    (config / "jupyter_server_config.d").mkdir(parents=True)
    (config / "jupyter_server_config.d" / "jupyter_backendai.json").write_text(SERVER_CONFIG.read_text())
    # No "would you like news?" toast over the screenshots.
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    # The labs save settings there (the theme) as their sessions' accounts.
    for path in [tmp_path / "lab-settings", *(tmp_path / "lab-settings").rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return {
        "JUPYTER_PATH": str(data),
        "JUPYTER_CONFIG_PATH": str(config),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
    }


def hub_login(page: Any, hub: Any, username: str, password: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", username)
    page.fill("#password_input", password)
    page.click("#login_submit")


def open_spawn_form(page: Any, hub: Any, user: str, server: str) -> None:
    """The hub's spawn form for the user's named server (the user logged in)."""
    page.goto(f"{hub.url}/hub/spawn/{user}/{server}")
    page.wait_for_selector("#backendai-spawn-form")


def submit_spawn_form(page: Any, user: str, server: str) -> None:
    """Start the server from its spawn form; the pending page (or the server, if it was quick) follows."""
    page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    page.wait_for_url(re.compile(f"/hub/spawn-pending/{user}/{server}|/user/{user}/{server}/"))


def wait_lab_with_folder(page: Any, user: str, server: str, folder: str) -> None:
    """Until the started server's JupyterLab shows ``folder`` in its file browser."""
    page.wait_for_url(re.compile(f"/user/{user}/{server}/lab"), timeout=120_000)
    page.wait_for_selector(f".jp-DirListing-item:has-text('{folder}')", timeout=60_000)


def open_from_menu(page: Any, item: str) -> None:
    """Open a console widget the way a person does: the "Backend.AI" menu of the menu bar."""
    page.click(".lm-MenuBar-item:has-text('Backend.AI')")
    page.click(f".lm-Menu-item:has-text('{item}')")


def console_area(page: Any, kind: str) -> Any:
    return page.locator(f"#backendai-{kind}")


def field(scope: Any, label: str) -> Any:
    return scope.get_by_label(label, exact=True)


def fill(scope: Any, values: dict[str, str]) -> None:
    """Fill the fields of ``scope`` by their labels, in order (a select: the option of that value)."""
    for label, value in values.items():
        found = field(scope, label)
        if found.evaluate("e => e.tagName") == "SELECT":
            found.select_option(value)
        else:
            found.fill(value)


def open_dialog(page: Any, scope: Any, button: str, dialog: str) -> Any:
    """Press ``button`` in ``scope``; the dialog named ``dialog`` it opens."""
    scope.get_by_role("button", name=button).click()
    return page.get_by_role("dialog", name=dialog)


def submit(dialog: Any, button: str = "Save", values: dict[str, str] | None = None) -> None:
    """Fill the dialog with ``values``, press its ``button`` and wait until it closes."""
    fill(dialog, values or {})
    dialog.get_by_role("button", name=button).click()
    dialog.wait_for(state="detached")


#: The local backend's image, which the lab scenarios start.
LAB_IMAGE = "python-local:3"
SLOW_MS = 120_000


def open_panel(page: Any, panel_id: str) -> None:
    """Show a left side panel by clicking its tab (once: a second click would collapse it)."""
    tab = page.locator(f'.jp-SideBar li[data-id="{panel_id}"]')
    tab.wait_for()
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    page.locator(f"#{panel_id}").wait_for(state="visible")


def accept_dialog(page: Any) -> None:
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    page.locator(".jp-Dialog").wait_for(state="detached")


def answer_dialog(page: Any, label: str, value: str) -> None:
    """Type ``value`` into the field ``label`` of the lab's open dialog and accept it."""
    page.locator(".jp-Dialog").get_by_label(label).fill(value)
    accept_dialog(page)


def new_folder(page: Any, storage: Any, name: str) -> None:
    """Create a folder with the Data & Storage panel's button."""
    storage.get_by_role("button", name="Create a new folder").click()
    answer_dialog(page, "Folder name", name)


def open_lab(hub: Any, page: Any, user: str, server: str = "desk") -> None:
    """Start the user's first session (where they work in JupyterLab), log in and open its lab."""
    r = spawn(hub, user, server, image=LAB_IMAGE, preset="small")
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, user, server)
    hub_login(page, hub, user, PASSWORD)
    page.wait_for_url(re.compile(r"/hub/"))
    page.goto(f"{hub.url}/user/{user}/{server}/lab")
    page.locator('.jp-SideBar li[data-id="backendai-storage"]').wait_for(timeout=SLOW_MS)
