"""Manager tests' shared fixtures."""

from __future__ import annotations

import pytest

from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.db import admin
from jupyter_backendai.db import folders as folder_db
from jupyter_backendai.db import sessions as session_db
from testing.client import require_client
from testing.manager import PASSWORD, Manager, running_session


@pytest.fixture
def world(manager: Manager) -> Manager:
    """Two domains with users, folders, sessions, an agent, an image, a preset and a policy."""
    require_client()

    def setup(db):
        admin.create_domain(db, "lab")
        research = admin.create_group(db, "research", domain="lab")
        admin.create_user(db, "carol@example.com", PASSWORD, role="admin", domain="lab", groups=["research"])
        admin.create_user(db, "dave@example.com", PASSWORD, domain="lab", groups=["research"], full_name="Dave Lab")
        admin.allow_scaling_group(db, admin.DEFAULT, domains=["lab"])
        admin.create_scaling_group(db, "gpu-only", description="not for lab")
        admin.create_policy(db, "gold", max_vfolder_count=7)
        admin.create_preset(db, "small", {"cpu": 1, "mem": "1g"})
        admin.upsert_image(
            db,
            "cr.example.com/lab/python:3.11",
            labels={"ai.backend.resource.min.cpu": "1", "ai.backend.service-ports": "jupyter:http:8080"},
            digest="sha256:" + "ab" * 32,
        )
        session_db.register_agent(
            db,
            "i-node1",
            scaling_group=admin.DEFAULT,
            capacity=ResourceSlots.parse({"cpu": 8, "mem": "16g"}),
            addr="127.0.0.1:6001",
            version="test",
        )
        for owner, name in [("alice", "alice-data"), ("bob", "bob-data"), ("dave", "dave-data")]:
            folder_db.create_folder(db, admin.get_user(db, owner), name)
        return str(research.id)

    manager.research_id = manager.pdb.setup(setup)
    manager.sessions = {who: running_session(manager, who) for who in ("alice", "dave")}
    return manager
