"""``/admin/settings``: the read-only system view."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session as DB

from ..._version import __version__
from ...core.signing import API_VERSION
from ...db import models as m
from ...db import sessions as session_db
from ..base import RATE_WINDOW
from .common import AdminHandler, count_rows


class SettingsHandler(AdminHandler):
    """What this installation runs with; secrets (the transfer key, the hub token) are never shown."""

    async def get(self):
        self.require_superadmin()
        app = self.manager
        engine = app.database.engine

        def run(db: DB) -> dict[str, Any]:
            return {
                "users": count_rows(db, m.User),
                "active_users": count_rows(db, m.User, m.User.status == m.UserStatus.ACTIVE),
                "sessions": count_rows(db, m.Session),
                "active_sessions": count_rows(db, m.Session, m.Session.status.in_(session_db.RESERVING)),
                "agents": count_rows(db, m.Agent),
                "alive_agents": count_rows(db, m.Agent, m.Agent.status == m.AgentStatus.ALIVE),
                "images": count_rows(db, m.Image),
                "registries": count_rows(db, m.ContainerRegistry),
                "domains": count_rows(db, m.Domain),
                "groups": count_rows(db, m.Group),
            }

        self.send(
            {
                "version": __version__,
                "api_version": API_VERSION,
                "database": {"dialect": engine.dialect.name, "driver": engine.dialect.driver},
                "storage": {"root": str(app.store.root), "hosts": list(app.store.hosts)},
                "counts": await self.run_db(run),
                "limits": {
                    "rate_limit_window_seconds": RATE_WINDOW,
                    "max_json_body": self.max_body,
                    "max_upload_size": app.max_upload_size,
                    "transfer_token_lifetime": app.transfer_token_lifetime,
                    "hub_token_cache_seconds": app.hub_token_cache_seconds,
                },
                "service": {"base_url": app.base_url, "ip": app.ip, "port": app.port, "hub_api": bool(app.hub_api_url)},
            }
        )


handlers = [
    (r"/admin/settings/?", SettingsHandler),
]
