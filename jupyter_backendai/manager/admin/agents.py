"""``/admin/agents``: the agents, their capacity and what sessions occupy; superadmins mark them (un)schedulable."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ...core.slots import ResourceSlots
from ...db import admin
from ...db import models as m
from ...db import sessions as session_db
from ..base import APIError
from .common import AdminHandler, pick, reject_unknown


def agent_view(agent: m.Agent, occupied: ResourceSlots) -> dict[str, Any]:
    """An agent with its use derived from the sessions it holds (never a stored running total)."""
    return {
        "id": agent.id,
        "status": agent.status.value,
        "status_changed": agent.status_changed.isoformat() if agent.status_changed else None,
        "status_info": agent.status_info,
        "region": agent.region,
        "scaling_group": agent.scaling_group,
        "schedulable": agent.schedulable,
        "addr": agent.addr,
        "version": agent.version,
        "first_contact": agent.first_contact.isoformat() if agent.first_contact else None,
        "lost_at": agent.lost_at.isoformat() if agent.lost_at else None,
        "available_slots": agent.available_slots.to_json(),
        "occupied_slots": occupied.to_json(),
        "devices": list(agent.devices or []),
    }


class AgentsHandler(AdminHandler):
    async def get(self):
        self.require_superadmin()
        status = self.get_query_argument("status", "alive")
        wanted = {
            "alive": [m.AgentStatus.ALIVE],
            "lost": [m.AgentStatus.LOST, m.AgentStatus.TERMINATED],
            "all": list(m.AgentStatus),
        }.get(status)
        if wanted is None:
            raise APIError(400, f"'status' must be alive, lost or all, not {status!r}")

        def run(db: DB) -> list[dict[str, Any]]:
            agents = list(db.scalars(select(m.Agent).where(m.Agent.status.in_(wanted)).order_by(m.Agent.id)))
            held = session_db.held_by_agents(db, [a.id for a in agents])
            return [agent_view(a, held[a.id]) for a in agents]

        self.send({"agents": await self.run_db(run)})


class AgentHandler(AdminHandler):
    async def patch(self, agent_id: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"schedulable"})
        fields = pick(data, {"schedulable": bool})
        if "schedulable" not in fields:
            raise APIError(400, "'schedulable' (true or false) is required")

        def run(db: DB) -> dict[str, Any]:
            agent = db.get(m.Agent, agent_id)
            if agent is None:
                raise admin.NotFound(f"no agent {agent_id!r}")
            agent.schedulable = fields["schedulable"]
            db.flush()
            return agent_view(agent, session_db.held_by_agents(db, [agent.id])[agent.id])

        self.send(await self.run_db(run))


handlers = [
    (r"/admin/agents/?", AgentsHandler),
    (r"/admin/agents/([^/]+)", AgentHandler),
]
