"""The demo notebook (examples/notebooks/backendai-demo.ipynb), executed by nbclient against a live hub.

Its kernel gets what a session's environment has (the manager's URL through the proxy and the
user's hub token), runs the client and every widget's Python side, and its outputs are checked
against the product's database and the round-tripped file.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_backendai.db import models as m
from testing.hub import REPO_ROOT
from testing.widgets import make_pdb, start_backend

NOTEBOOK = REPO_ROOT / "examples" / "notebooks" / "backendai-demo.ipynb"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def backend(tmp_path):
    pdb = make_pdb(tmp_path)
    service = start_backend(tmp_path, pdb)
    yield service
    service.hub.stop()
    pdb.close()


def text_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_demo_notebook_runs_against_a_live_hub(backend, monkeypatch, tmp_path: Path):
    for name, value in backend.session_env("alice").items():
        monkeypatch.setenv(name, value)
    for name in ("BACKEND_ACCESS_KEY", "BACKEND_SECRET_KEY", "BACKEND_ENDPOINT", "JUPYTERHUB_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BACKENDAI_DEMO_SESSION", "nb-demo")
    work = tmp_path / "kernel-cwd"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(work)}}).execute()

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    out = "\n".join(text_of(c) for c in nb.cells if c.cell_type == "code")
    assert "user: alice | role: user | via: hub-token" in out

    # Each widget was displayed as a widget view (a front end with jupyterlab_widgets draws it).
    views = [o for c in nb.cells for o in c.get("outputs", []) if WIDGET_MIME in o.get("data", {})]
    assert len(views) == 4

    # The launched session: its id and status are the database's.
    (session,) = backend.pdb.sessions("alice")
    shown_id = re.search(r"^session id: (\S+)$", out, re.M).group(1)
    assert uuid.UUID(shown_id) == session.id and session.name == "nb-demo"
    assert re.search(r"^status: RUNNING$", out, re.M)
    assert re.search(rf"^open: {re.escape(backend.hub.url)}/user/alice/nb-demo/lab$", out, re.M)
    assert "RUNNING" in [h.status.value for h in session.history]
    assert "listed: nb-demo RUNNING 1 CPU · 512 MiB RAM" in out
    assert "gauge: CPU: 1 / 2" in out and "gauge: RAM: 512 MiB / 2 GiB" in out

    # The file went up to the folder and came back whole (it names the session).
    assert "uploaded: hello.txt" in out and "listing: ['hello.txt  (" in out
    assert f"round trip: hello from alice, session {session.id}" in out
    assert (work / "hello-copy.txt").read_text() == (work / "hello.txt").read_text()
    assert "deleted: ['hello.txt']" in out

    # Terminated through the list's confirmation, and the database agrees.
    assert "terminated: TERMINATED" in out and "still running: []" in out
    assert backend.pdb.sessions("alice")[0].status == m.SessionStatus.TERMINATED
