"""Backend.AI's own client (``backend.ai`` CLI of the ``backend.ai-client`` package) against the manager.

The client lives in a virtual environment of its own (its pinned dependencies clash with
JupyterHub's): ``.ci/run`` makes it at ``$BACKENDAI_CLIENT_VENV`` and sets
``BACKENDAI_TEST_REQUIRE_CLIENT=1`` so that a missing client fails instead of skipping.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from testing.client import CLI, require_client


@pytest.fixture
def client_cli(manager, tmp_path):
    require_client()
    access, secret = manager.keys("alice")
    env = {
        **os.environ,
        "BACKEND_ENDPOINT": manager.url,
        "BACKEND_ACCESS_KEY": access,
        "BACKEND_SECRET_KEY": secret,
        "BACKEND_ENDPOINT_TYPE": "api",
    }

    def run(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess:
        done = subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)
        assert done.returncode == 0, f"backend.ai {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done

    return run


def test_folders_and_files_with_backendai_client(manager, client_cli, tmp_path):
    (tmp_path / "hello world.txt").write_text("from the real client\n")
    assert 'Virtual folder "data" is created' in client_cli("vfolder", "create", "data", "local").stdout
    listed = client_cli("vfolder", "list").stdout  # a GraphQL query (POST /admin/gql)
    assert any(line.split()[:2] == ["local", "data"] for line in listed.splitlines()), listed
    client_cli("vfolder", "mkdir", "data", "sub")
    client_cli("vfolder", "upload", "data", "hello world.txt")  # signed request-upload, then tus
    listing = client_cli("vfolder", "ls", "data").stdout
    assert "hello world.txt" in listing and "sub" in listing
    out = tmp_path / "out"
    out.mkdir()
    client_cli("vfolder", "download", "data", "hello world.txt", cwd=out)
    assert (out / "hello world.txt").read_text() == "from the real client\n"
    (stored,) = list(manager.pdb.storage_root.rglob("hello world.txt"))
    assert stored.read_text() == "from the real client\n"
