"""What the spawn (pending) page says while a session waits and starts: JupyterHub's ``progress()``.

First the check against the user's limits, then the session's place in its resource group's
queue ("Waiting for resources in <group>: position k of n", with the reason when no agent has
its image), then the start on the backend with the pull of its image where the backend pulls
(``pull_progress_event``, :class:`~.images.ImagesMixin`).
"""

from __future__ import annotations

import asyncio

from ..db import models as m


class SessionProgressMixin:
    """The pending page's events of every session spawner; a base of ``SessionSpawnerMixin``."""

    async def progress(self):
        yield {"progress": 5, "message": "Checking the request against your limits"}
        last = None
        while self.session_id is None:
            await asyncio.sleep(0.2)
        while True:
            status = await self.run_db(lambda db: db.get(m.Session, self.session_id).status)
            if status != m.SessionStatus.PENDING:
                break
            pos = self.scheduler.position(self.session_id)
            if pos is not None:
                message = f"Waiting for resources in {pos.resource_group}: position {pos.position} of {pos.length}"
                if "image" in pos.reason:
                    message += f" ({pos.reason})"  # no agent with the image, and none may pull it
                if message != last:
                    last = message
                    yield {"progress": 10, "message": message}
            await asyncio.sleep(0.5)
        if status in m.ACTIVE_SESSION_STATUSES:
            yield {"progress": 50, "message": f"Starting the session on the {self.backend_name} backend"}
        # While the backend prepares it: the pull of its image, when one runs (backends that pull).
        while status in m.ACTIVE_SESSION_STATUSES and status != m.SessionStatus.RUNNING:
            event = getattr(self, "pull_progress_event", lambda: None)()
            if event is not None and event["message"] != last:
                last = event["message"]
                yield event
            await asyncio.sleep(0.5)
            session_id = self.session_id
            if session_id is None:
                return
            status = await self.run_db(lambda db, sid=session_id: db.get(m.Session, sid).status)
