"""A hub on the local backend with the manager as its service, for the widget and notebook tests.

Module-scoped (one hub per test module; starting one costs seconds on a small machine). The
product database has a ``student`` policy (2 CPU, 2 GiB, 2 sessions), presets that fit and one
that does not, the image ``python-local:3``, and users ``alice`` and ``bob``; the local agent
offers 2 CPU and 4 GiB, so two 1-CPU sessions fill it and a third one queues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_backendai.db import admin
from testing.hub import Hub
from testing.sessions import PREFIX, ProductDB, manager_hub_config, wait_for_manager

IMAGE = "python-local:3"


class Backend:
    """The running hub, its product database, and the manager's URL through the proxy."""

    def __init__(self, hub: Hub, pdb: ProductDB):
        self.hub = hub
        self.pdb = pdb
        self.endpoint = hub.url + PREFIX

    def keys(self, username: str) -> tuple[str, str]:
        return self.pdb.keys(username)

    def token(self, username: str) -> str:
        """A hub API token of the user, like the one a session has in ``$JUPYTERHUB_API_TOKEN``."""
        created = self.hub.api("POST", f"/users/{username}")
        assert created.status_code in (201, 409), created.text
        answer = self.hub.api("POST", f"/users/{username}/tokens", json={"note": "widget test", "expires_in": 3600})
        assert answer.status_code == 201, answer.text
        return answer.json()["token"]

    def session_env(self, username: str) -> dict[str, str]:
        """What a session's environment says about the manager: its URL and the user's token."""
        return {"BACKENDAI_ENDPOINT": self.endpoint, "JUPYTERHUB_API_TOKEN": self.token(username)}


def make_pdb(directory: Path) -> ProductDB:
    pdb = ProductDB(directory)

    def setup(db: Any) -> None:
        admin.create_policy(db, "student", total_resource_slots={"cpu": 2, "mem": "2g"}, max_concurrent_sessions=2)
        admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"})
        admin.create_preset(db, "huge", {"cpu": 64, "mem": "256g"})
        admin.upsert_image(db, IMAGE, installed=True)

    pdb.setup(setup)
    pdb.user("alice@example.com", policy="student", groups=["default"])
    pdb.user("bob@example.com", policy="student", groups=["default"])
    return pdb


def start_backend(directory: Path, pdb: ProductDB, extra: str = "") -> Backend:
    config = manager_hub_config(
        pdb,
        capacity={"cpu": 2, "mem": "4g"},
        endpoint="proxy",
        extra=f"""
{extra}
""",
    )
    hub = Hub(directory / "hub", config)
    hub.start()
    try:
        wait_for_manager(hub)
    except AssertionError:
        hub.stop()
        raise
    return Backend(hub, pdb)
