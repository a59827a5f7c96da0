"""``GET /session/{name}/queue``: a session's status and, while it waits, its place in the queue.

The scheduler keeps the positions in the hub's memory; the hub's pending page numbers the
sessions a pass leaves waiting in the order they were queued. The same count is made here from
the database (``db.launch.queue_position``: the resource group's PENDING sessions, oldest
first), so that launchers outside the hub's pages (the notebook widgets, scripts) can show it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session as DB

from ..db import launch
from .api_sessions import find_session
from .base import APIHandler


class SessionQueueHandler(APIHandler):
    """``GET /session/{name}/queue``: status, and for a PENDING session its place in the queue.

    ``position`` is 1-based among the resource group's pending sessions, ``length`` their count;
    both are null once the session has left the queue.
    """

    async def get(self, ref: str) -> None:
        data = self.json_body()
        owner = self.param(data, "owner_access_key", "owner")

        def read(db: DB) -> dict[str, Any]:
            session, _user = find_session(db, self.identity, ref, owner)
            answer: dict[str, Any] = {
                "id": str(session.id),
                "name": session.name,
                "status": session.status.value,
                "status_info": session.status_info,
                "resource_group": session.scaling_group,
                "position": None,
                "length": None,
            }
            place = launch.queue_position(db, session)
            if place is not None:
                answer["position"], answer["length"] = place
            return answer

        self.send(await self.run_db(read))


handlers = [(r"/session/(?P<ref>[^/]+)/queue", SessionQueueHandler)]
