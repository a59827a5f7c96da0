"""Backend.AI's own client (its CLI in a virtualenv of its own), as users and tests run it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testing import missing

if TYPE_CHECKING:
    from testing.manager import Manager

VENV = Path(os.environ.get("BACKENDAI_CLIENT_VENV", ".venv-backendai-client")).resolve()
CLI = VENV / "bin" / "backend.ai"


def require_client() -> None:
    """Skip the test without Backend.AI's client, or fail it where ``BACKENDAI_TEST_REQUIRE_CLIENT=1``."""
    if not CLI.exists():
        missing(f"Backend.AI's client is not installed at {CLI} (see .ci/run)", "client")


def bai(manager: Manager, who: str, *args: str, ok: bool = True, answer: str | None = None) -> str:
    """``backend.ai <args>`` signed with ``who``'s keypair; its output (stdout and stderr).

    ``answer`` is typed at the client's prompts (``y`` for "Are you sure?").
    """
    access, secret = manager.keys(who)
    env = {
        **os.environ,
        "BACKEND_ENDPOINT": manager.url,
        "BACKEND_ACCESS_KEY": access,
        "BACKEND_SECRET_KEY": secret,
        "BACKEND_ENDPOINT_TYPE": "api",
    }
    done = subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, env=env, timeout=60, cwd=Path.cwd(), input=answer
    )
    out = done.stdout + done.stderr
    if ok:
        assert done.returncode == 0 and "✗" not in out, f"backend.ai {' '.join(args)} ({done.returncode}):\n{out}"
    else:
        assert done.returncode != 0 or "✗" in out, f"backend.ai {' '.join(args)} should have failed:\n{out}"
    return out


def gql(manager: Manager, who: str, query: str, variables: dict[str, Any] | None = None):
    return manager.call("POST", "/admin/gql", who, json_body={"query": query, "variables": variables or {}})
