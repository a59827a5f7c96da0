"""The JupyterLab panels in a real browser, through a real hub, proxy and manager, as a new user would.

A new user logs in and opens JupyterLab in a session of the local backend (the host's Python,
where this package's lab extension and server extension are installed). From the Data &
Storage panel they create a folder and upload a file into it; from the Sessions panel they
start a second session with that folder mounted, find the file inside it, terminate it and
find it under Finished. Screenshots of both panels, light and dark, go to test-artifacts.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from jupyter_backendai.db import admin, session_logs
from jupyter_backendai.db import folders as folder_db
from jupyter_backendai.db import models as m
from testing.browser import SLOW_MS, accept_dialog, answer_dialog, new_folder, open_lab, open_panel
from testing.hub import screenshot
from testing.sessions import (
    PASSWORD,
    ProductDB,
    add_students,
    contents,
    session_process_env,
    spawn,
    start_hub_with_manager,
    wait_ready,
)

IMAGE = "python-local:3"
#: Three tus PATCH requests of 1 MiB and a bit (the panel sends chunks of at least 1 MiB).
UPLOAD_BYTES = 2 * 1024 * 1024 + 12345


@pytest.fixture
def pdb(tmp_path: Any):
    with ProductDB(tmp_path) as pdb:
        pdb.setup(
            lambda db: add_students(db, slots={"cpu": 4, "mem": "4g"}, shared_memory=None, image=IMAGE, labels={})
        )
        yield pdb


@pytest.fixture
def hub(make_hub: Any, pdb: ProductDB):
    """A hub on the local backend, with the manager as its ``backendai`` service; sessions open /lab."""
    # The server extension in each session forwards to the manager (as jupyterhub_config.py sets it).
    return start_hub_with_manager(make_hub, pdb, lab=True, endpoint="direct")


def set_theme(hub: Any, user: str, server: str, theme: str) -> None:
    """Choose the lab's theme through its settings API (as the Settings menu would)."""
    url = f"{hub.url}/user/{user}/{server}/lab/api/settings/@jupyterlab/apputils-extension:themes"
    r = requests.put(
        url,
        headers={"Authorization": f"token {hub.admin_token}"},
        data=json.dumps({"raw": json.dumps({"theme": theme})}),
        timeout=30,
    )
    assert r.status_code == 204, r.text


def test_new_user_folder_upload_session_terminate(hub, pdb, page, tmp_path):
    pdb.user("nina@example.com", policy="student", username="nina")
    payload = secrets.token_bytes(UPLOAD_BYTES)
    upload_file = tmp_path / "measurements.bin"
    upload_file.write_bytes(payload)

    open_lab(hub, page, "nina")

    # Data & Storage: a new folder.
    open_panel(page, "backendai-storage")
    storage = page.locator("#backendai-storage")
    new_folder(page, storage, "results")
    card = storage.locator('[data-folder-name="results"]')
    card.wait_for()
    assert "WD" in card.inner_text()

    # Upload a file with the panel (tus in chunks) and see it listed.
    card.get_by_role("button", name="Open folder results").first.click()
    storage.locator(".jp-BackendAI-fileInput").set_input_files(str(upload_file))
    storage.locator('[data-upload-path="measurements.bin"].jp-BackendAI-upload-done').wait_for(timeout=SLOW_MS)
    row = storage.locator('[data-file-name="measurements.bin"]')
    row.wait_for()
    assert "2.01 MiB" in row.inner_text()
    # An upload broken by a lost connection resumes from the server's offset.
    resumed = secrets.token_bytes(UPLOAD_BYTES)
    (tmp_path / "resumed.bin").write_bytes(resumed)
    patches = []

    def drop_second_patch(route: Any) -> None:
        if route.request.method == "PATCH":
            patches.append(route.request.url)
            if len(patches) == 2:
                route.abort("connectionreset")
                return
        route.continue_()

    tus = re.compile(r".*/backendai/folders/_/tus/upload.*")
    page.route(tus, drop_second_patch)
    storage.locator(".jp-BackendAI-fileInput").set_input_files(str(tmp_path / "resumed.bin"))
    broken = storage.locator('[data-upload-path="resumed.bin"].jp-BackendAI-upload-error')
    broken.wait_for(timeout=SLOW_MS)
    page.unroute(tus)
    broken.get_by_role("button", name="Resume the upload of resumed.bin").click()
    storage.locator('[data-upload-path="resumed.bin"].jp-BackendAI-upload-done').wait_for(timeout=SLOW_MS)

    # A file dropped on the explorer is uploaded too.
    dropped = page.evaluate_handle(
        "() => { const dt = new DataTransfer();"
        " dt.items.add(new File(['dropped on the panel'], 'notes.txt', {type: 'text/plain'})); return dt; }"
    )
    storage.locator(".jp-BackendAI-explorer").dispatch_event("drop", {"dataTransfer": dropped})
    storage.locator('[data-file-name="notes.txt"]').wait_for(timeout=SLOW_MS)

    # A sub-folder, entered and left by the breadcrumb; rename, download and delete.
    storage.get_by_role("button", name="Create a sub-folder here").click()
    answer_dialog(page, "Name of the new sub-folder", "raw")
    storage.get_by_role("button", name="Open directory raw").click()
    storage.get_by_text("This directory is empty.").wait_for()
    assert storage.locator(".jp-BackendAI-breadcrumb").inner_text().split() == ["results", "/", "raw"]
    storage.get_by_role("button", name="Top of results").click()
    storage.locator('[data-file-name="notes.txt"]').get_by_role("button", name="Rename notes.txt").click()
    answer_dialog(page, "New name", "notes.md")
    notes = storage.locator('[data-file-name="notes.md"]')
    with page.expect_download() as download:
        notes.get_by_role("button", name="Download notes.md").click()
    assert Path(download.value.path()).read_bytes() == b"dropped on the panel"
    storage.locator('[data-file-name="raw"]').get_by_role("button", name="Delete raw").click()
    accept_dialog(page)
    storage.locator('[data-file-name="raw"]').wait_for(state="detached")
    screenshot(page, "storage-light")
    storage.get_by_role("button", name="Back to the folder list").click()
    usage = storage.locator('[data-folder-name="results"] .jp-BackendAI-usageBar')
    usage.wait_for()
    page.wait_for_function(
        "() => /3 file\\(s\\)/.test(document.querySelector('[data-folder-name=\"results\"] .jp-BackendAI-usageBar').innerText)"
    )

    # The palette's command makes a folder too; deleting it needs its name typed exactly.
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("New Backend.AI Folder")
    page.keyboard.press("Enter")
    answer_dialog(page, "Folder name", "scratch")
    storage.locator('[data-folder-name="scratch"]').get_by_role("button", name="Rename folder scratch").click()
    answer_dialog(page, "New folder name", "scratch2")
    scratch = storage.locator('[data-folder-name="scratch2"]')
    scratch.get_by_role("button", name="Delete folder scratch2").click()
    answer_dialog(page, "Type the folder's name (scratch2) to confirm", "scratch")
    page.wait_for_timeout(1000)
    assert scratch.count() == 1, "a folder was deleted without its name typed"
    scratch.get_by_role("button", name="Delete folder scratch2").click()
    answer_dialog(page, "Type the folder's name (scratch2) to confirm", "scratch2")
    scratch.wait_for(state="detached")

    # Sessions: start one with the folder mounted.
    open_panel(page, "backendai-sessions")
    sessions = page.locator("#backendai-sessions")
    sessions.locator('[data-session-name="desk"]').wait_for()
    sessions.get_by_role("button", name="Start a session").click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_label("Session name (optional)").fill("analysis")
    # With no folder chosen the dialog warns that data outside folders is lost.
    assert "No folder is mounted" in dialog.inner_text()
    dialog.get_by_label("results", exact=True).check()
    assert "No folder is mounted" not in dialog.inner_text()
    # Only presets that still fit are offered (small does).
    dialog.get_by_label("Resource preset").locator("option", has_text="small").wait_for(state="attached")
    # Environment variables, KEY=value lines: a line that is not one is shown before sending.
    environ = dialog.get_by_label("Environment variables")
    environ.fill("oops")
    dialog.get_by_text("Line 1 is not KEY=value.").wait_for()
    environ.fill("# for the analysis\nANALYSIS_MODE=fast and careful\n")
    assert "is not KEY=value" not in dialog.inner_text()
    screenshot(page, "start-dialog-light")
    accept_dialog(page)
    analysis = sessions.locator('[data-session-name="analysis"]')
    analysis.locator(".jp-BackendAI-status-RUNNING").wait_for(timeout=SLOW_MS)
    assert IMAGE in analysis.inner_text()
    started = [s for s in pdb.sessions("nina") if s.name == "analysis"][-1]
    assert session_process_env(str(started.id))["ANALYSIS_MODE"] == "fast and careful"
    screenshot(page, "sessions-light")

    # The uploaded file is inside the new session, in the mounted folder (once the hub routes to it).
    wait_ready(hub, "nina", "analysis")
    got = contents(hub, "nina", "analysis", "results/measurements.bin", params={"content": "1", "format": "base64"})
    assert got.status_code == 200, got.text
    assert base64.b64decode(got.json()["content"]) == payload
    got = contents(hub, "nina", "analysis", "results/resumed.bin", params={"content": "1", "format": "base64"})
    assert got.status_code == 200, got.text
    assert base64.b64decode(got.json()["content"]) == resumed

    # Its apps open in a new tab.
    analysis.get_by_role("button", name="Apps of analysis").click()
    link = page.locator(".jp-Dialog a.jp-BackendAI-appLink", has_text="jupyterlab")
    assert link.get_attribute("target") == "_blank"
    assert link.get_attribute("href").endswith("/user/nina/analysis/lab")
    accept_dialog(page)

    # The local backend runs no sshd: the SSH/SFTP dialog says so.
    analysis.get_by_role("button", name="SSH / SFTP of analysis").click()
    assert "runs no SSH server" in page.locator(".jp-Dialog").inner_text()
    accept_dialog(page)

    # Its output: the server's start-up lines; a line it writes later shows after Refresh.
    analysis.get_by_role("button", name="Logs of analysis").click()
    log_text = page.locator('.jp-Dialog pre[aria-label="Logs of analysis"]')
    log_text.filter(has_text="Jupyter Server").wait_for(timeout=SLOW_MS)
    marker = f"written later {secrets.token_hex(4)}"
    with open(f"/proc/{started.container_id}/fd/1", "a") as out:  # the local process's stdout (its log file)
        out.write(marker + "\n")
    assert marker not in log_text.inner_text()
    deadline = time.monotonic() + 30  # until the hub copied it (every half second)
    while marker not in pdb.setup(lambda db: session_logs.read(db, started.id).text) and time.monotonic() < deadline:
        time.sleep(0.3)
    page.locator(".jp-Dialog").get_by_role("button", name="Refresh the logs of analysis").click()
    log_text.filter(has_text=marker).wait_for(timeout=30_000)
    screenshot(page, "session-logs-light")
    accept_dialog(page)

    # Terminate, confirmed; it leaves Running and shows under Finished.
    analysis.get_by_role("button", name="Terminate analysis").click()
    assert "Terminate" in page.locator(".jp-Dialog").inner_text()
    accept_dialog(page)
    analysis.wait_for(state="detached", timeout=SLOW_MS)
    # The tabs work with the keyboard: the arrow key moves from Running to Finished.
    sessions.get_by_role("tab", name="Running").focus()
    page.keyboard.press("ArrowRight")
    assert sessions.get_by_role("tab", name="Finished").get_attribute("aria-selected") == "true"
    finished = sessions.locator('[data-session-name="analysis"]')
    finished.locator(".jp-BackendAI-status-TERMINATED").wait_for(timeout=SLOW_MS)
    rows = [s for s in pdb.sessions("nina") if s.name == "analysis"]
    assert rows and rows[-1].status == m.SessionStatus.TERMINATED
    assert rows[-1].mounts[0]["folder"] == "results"
    screenshot(page, "sessions-finished-light")
    # Its output outlived it.
    finished.get_by_role("button", name="Logs of analysis").click()
    log_text.filter(has_text=marker).wait_for(timeout=30_000)
    accept_dialog(page)

    # The same panels in the dark theme.
    set_theme(hub, "nina", "desk", "JupyterLab Dark")
    page.reload()
    page.locator('body[data-jp-theme-light="false"]').wait_for(state="attached", timeout=SLOW_MS)
    open_panel(page, "backendai-sessions")
    page.locator('#backendai-sessions [data-session-name="desk"]').wait_for()
    screenshot(page, "sessions-dark")
    page.locator("#backendai-sessions").get_by_role("button", name="Start a session").click()
    page.locator(".jp-Dialog").get_by_label("Resource preset").locator("option").first.wait_for(state="attached")
    screenshot(page, "start-dialog-dark")
    page.locator(".jp-Dialog .jp-Dialog-button:not(.jp-mod-accept)").first.click()
    open_panel(page, "backendai-storage")
    page.locator('#backendai-storage [data-folder-name="results"]').wait_for()
    screenshot(page, "storage-dark")


def test_invitation_accepted_and_admins_see_others(hub, pdb, page, browser):
    """An admin sees another user's session under Others and invites them to a folder; they accept it.

    Then the owner, from the folder's sharing dialog, lowers the share to ro and revokes it, and
    the invitee's panel and folder listing follow each step; a change the manager refuses (the
    user left meanwhile) shows its reason in the dialog.
    """
    pdb.user("ada@example.com", policy="student", username="ada", role="admin")
    pdb.user("nina@example.com", policy="student", username="nina")
    pdb.user("omar@example.com", policy="student", username="omar")

    open_lab(hub, page, "ada")
    open_panel(page, "backendai-sessions")
    sessions = page.locator("#backendai-sessions")
    # A user's own session under Running; Others lists only the other users' (nina has none yet).
    sessions.locator('[data-session-name="desk"]').wait_for()
    r = spawn(hub, "nina", "desk", image=IMAGE, preset="small")
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "nina", "desk")
    sessions.get_by_role("tab", name="Others").click()
    other = sessions.locator('[data-session-name="desk"]')
    other.wait_for()
    assert "nina@example.com" in other.inner_text()
    assert other.count() == 1
    screenshot(page, "sessions-others-light")

    open_panel(page, "backendai-storage")
    storage = page.locator("#backendai-storage")
    new_folder(page, storage, "datasets")
    storage.locator('[data-folder-name="datasets"]').get_by_role("button", name="Invite users to datasets").click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_label("E-mail addresses (separated by commas or spaces)").fill("nina@example.com")
    dialog.get_by_label("Permission").select_option("rw")
    accept_dialog(page)
    # An unknown address is refused with the manager's reason.
    storage.locator('[data-folder-name="datasets"]').get_by_role("button", name="Invite users to datasets").click()
    page.locator(".jp-Dialog").get_by_label("E-mail addresses (separated by commas or spaces)").fill("nobody")
    # The error dialog may open before the invite dialog is gone: wait for it by its text.
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    error = page.locator(".jp-Dialog", has_text="no user 'nobody'")
    error.wait_for()
    error.locator(".jp-Dialog-button").first.click()
    error.wait_for(state="detached")

    # nina, in her own lab, accepts the invitation from the Shared tab.
    nina_context = browser.new_context(viewport={"width": 1280, "height": 900})
    nina_context.set_default_timeout(15_000)
    try:
        nina = nina_context.new_page()
        nina.goto(f"{hub.url}/hub/login")
        nina.fill("#username_input", "nina")
        nina.fill("#password_input", PASSWORD)
        nina.click("#login_submit")
        nina.wait_for_url(re.compile(r"/hub/"))
        nina.goto(f"{hub.url}/user/nina/desk/lab")
        open_panel(nina, "backendai-storage")
        shared = nina.locator("#backendai-storage")
        shared.get_by_role("tab", name="Shared (1)").click()
        assert "ada@example.com invites you to datasets (rw)" in shared.inner_text()
        screenshot(nina, "invitation-light")
        shared.get_by_role("button", name="Accept the invitation to datasets").click()
        card = shared.locator('[data-folder-name="datasets"]')
        card.wait_for()
        assert "RW" in card.inner_text() and "from ada@example.com" in card.inner_text()
        assert nina_folders(nina_context, hub) == {"datasets": "rw"}

        # omar accepted an invitation too (through the manager's own functions: his lab is not
        # what is tested here).
        def share_with_omar(db: Any) -> None:
            ada, omar = admin.get_user(db, "ada"), admin.get_user(db, "omar")
            (invitation,) = folder_db.invite(db, ada, "datasets", ["omar@example.com"], "rw")
            folder_db.accept_invitation(db, omar, invitation.id)

        pdb.setup(share_with_omar)

        # ada lowers nina's share to ro in the folder's sharing dialog.
        storage.locator('[data-folder-name="datasets"]').get_by_role("button", name="Sharing of datasets").click()
        sharing = page.get_by_role("dialog", name="Sharing of datasets")
        permission = sharing.get_by_label("Permission of nina@example.com", exact=True)
        permission.wait_for()
        assert permission.input_value() == "rw"
        assert sharing.get_by_label("Permission of omar@example.com", exact=True).input_value() == "rw"
        change = sharing.get_by_role("button", name="Change the permission of nina@example.com")
        assert change.is_disabled()  # nothing to change yet
        permission.select_option("ro")
        change.click()
        sharing.get_by_text("changed the share of nina@example.com to ro").wait_for()
        assert permission.input_value() == "ro"
        screenshot(page, "sharing-light")
        assert nina_folders(nina_context, hub) == {"datasets": "ro"}
        # nina's panel says so once it lists again, and a read-only folder offers no upload.
        shared.get_by_role("button", name="Refresh the folder list").click()
        card.get_by_text("RO", exact=True).wait_for()
        card.get_by_role("button", name="Open folder datasets").first.click()
        assert shared.get_by_role("button", name=re.compile("^Upload files into datasets")).is_disabled()

        # omar leaves while ada's dialog still lists him: revoking is refused with the
        # manager's reason, and the dialog lists what is true now.
        pdb.setup(lambda db: folder_db.leave_folder(db, admin.get_user(db, "omar"), "datasets"))
        sharing.get_by_role("button", name="Revoke the share of omar@example.com").click()
        alert = sharing.get_by_role("alert")
        alert.wait_for()
        assert "folder 'datasets' is not shared with 'omar@example.com'" in alert.inner_text()
        sharing.get_by_label("Permission of omar@example.com", exact=True).wait_for(state="detached")

        # ada revokes nina's share: the folder leaves nina's list.
        sharing.get_by_role("button", name="Revoke the share of nina@example.com").click()
        sharing.get_by_text("revoked the share of nina@example.com").wait_for()
        sharing.get_by_text("datasets is not shared with anyone").wait_for()
        sharing.locator(".jp-Dialog-button.jp-mod-accept").click()  # Close
        sharing.wait_for(state="detached")
        assert nina_folders(nina_context, hub) == {}
        shared.get_by_role("button", name="Refresh the folder list").click()
        shared.get_by_text("Nothing is shared with you.").wait_for()
        assert card.count() == 0
    finally:
        nina_context.close()


def nina_folders(context: Any, hub: Any) -> dict[str, str]:
    """nina's folders and her permission on each, as her lab's server extension lists them."""
    r = context.request.get(f"{hub.url}/user/nina/desk/backendai/folders")
    assert r.ok, r.text()
    return {f["name"]: f["permission"] for f in r.json()}
