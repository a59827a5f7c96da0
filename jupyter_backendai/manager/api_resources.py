"""``/resource/*``: presets, what fits (check-presets), usage per period, recalculation, SSH keys.

The figures come from the session rows (db/sessions.py derives what anyone holds from them),
so these endpoints only read, except ``recalculate-usage``: it ends sessions that still claim
resources although the hub no longer runs their server, which is the one way occupancy
can drift from reality when everything is derived.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session as DB

from ..core.slots import ResourceSlots
from ..db import launch, sshkeys
from ..db import models as m
from ..db import sessions as store
from ..db.types import utcnow
from .api_sessions import GONE_REASON, end_gone, hub_api
from .base import APIError, APIHandler, Identity

MAX_PERIOD_DAYS = 100  # as Backend.AI's /resource/usage/period


def preset_json(row: m.ResourcePreset) -> dict[str, Any]:
    return {
        "name": row.name,
        "resource_slots": row.resource_slots.to_json(),
        "shared_memory": None if row.shared_memory is None else str(row.shared_memory),
        "scaling_group_name": row.scaling_group_name,
    }


class PresetsHandler(APIHandler):
    """``GET /resource/presets``: every preset, in Backend.AI's shape."""

    async def get(self) -> None:
        def read(db: DB) -> list[dict[str, Any]]:
            return [preset_json(p) for p in db.scalars(select(m.ResourcePreset).order_by(m.ResourcePreset.name))]

        self.send({"presets": await self.run_db(read)})


class CheckPresetsHandler(APIHandler):
    """``POST /resource/check-presets`` {group, scaling_group}: limits, usage, what still fits."""

    async def post(self) -> None:
        ident = self.identity
        data = self.json_body()
        group_name = self.param(data, "group", kind=str)
        sg_name = self.param(data, "scaling_group", "resource_group", kind=str) or None

        def check(db: DB) -> dict[str, Any]:
            # The rules of a spawn (db/launch.py): what is called allocatable is what a spawn accepts.
            try:
                user, keypair, group = launch.launcher(db, ident.user_id, group_name)
                sgroups = launch.allowed_scaling_groups(db, user, keypair, group)
                if sg_name is not None:
                    launch.check_scaling_group(sg_name, sgroups)
            except launch.Refused as e:
                raise APIError(403, str(e)) from None
            answer = launch.check_presets_for(db, keypair, group, sgroups, sg_name)
            answer["group"] = group.name if group is not None else None
            answer["scaling_group"] = sg_name
            return answer

        self.send(await self.run_db(check))


def _parse_date(value: Any, name: str) -> dt.date:
    try:
        return dt.datetime.strptime(str(value), "%Y%m%d").date()
    except ValueError:
        raise APIError(400, f"{name} must be a date as YYYYMMDD, not {value!r}") from None


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)


def usage_per_day(
    sessions: list[tuple[m.Session, m.User, str | None]], first: dt.date, last: dt.date, now: dt.datetime
) -> list[dict[str, Any]]:
    """Per day (UTC), user and group: sessions that ran, and slot × seconds of running time.

    A session counts from ``started_at`` until ``terminated_at`` (or now), split at midnight;
    its amounts are the occupied slots (the requested ones when none were recorded).
    """
    totals: dict[tuple[dt.date, Any, Any], dict[str, Any]] = {}
    zero = Decimal(0)
    for session, user, group_name in sessions:
        start = session.started_at
        if start is None:
            continue
        end = min(session.terminated_at or now, now)
        slots = session.occupied_slots or session.requested_slots or ResourceSlots()
        day = max(first, start.date())
        while day <= last and _day_start(day) < end:
            lo, hi = max(start, _day_start(day)), min(end, _day_start(day + dt.timedelta(days=1)))
            seconds = Decimal(max(0.0, (hi - lo).total_seconds()))
            key = (day, user.id, session.group_id)
            entry = totals.get(key)
            if entry is None:
                entry = totals[key] = {
                    "date": day.isoformat(),
                    "user_id": str(user.id),
                    "username": user.username,
                    "user_email": user.email,
                    "domain": session.domain_name,
                    "group_id": str(session.group_id) if session.group_id else None,
                    "group_name": group_name,
                    "num_sessions": 0,
                    "session_ids": [],
                    "_cpu": zero,
                    "_mem": zero,
                    "_shares": zero,
                    "_devices": zero,
                }
            entry["num_sessions"] += 1
            entry["session_ids"].append(str(session.id))
            entry["_cpu"] += slots.get("cpu") * seconds
            entry["_mem"] += slots.get("mem") * seconds
            entry["_shares"] += slots.get("cuda.shares") * seconds
            entry["_devices"] += slots.get("cuda.device") * seconds
            day += dt.timedelta(days=1)
    items = []
    for entry in totals.values():
        cpu, mem, shares, devices = (entry.pop(k) for k in ("_cpu", "_mem", "_shares", "_devices"))
        entry.update(
            {
                "cpu_seconds": round(float(cpu), 3),
                "mem_byte_seconds": int(mem),
                "cuda_shares_seconds": round(float(shares), 3),
                "cuda_device_seconds": round(float(devices), 3),
                "gpu_seconds": round(float(shares + devices), 3),
            }
        )
        items.append(entry)
    return sorted(items, key=lambda e: (e["date"], e["username"], e["group_name"] or ""))


class UsagePeriodHandler(APIHandler):
    """``GET /resource/usage/period?start_date=YYYYMMDD&end_date=YYYYMMDD`` (both days included).

    Users see their own sessions, domain admins their domain's, superadmins everyone's.
    """

    async def get(self) -> None:
        ident = self.identity
        data = self.json_body()
        first = _parse_date(self.param(data, "start_date"), "start_date")
        last = _parse_date(self.param(data, "end_date"), "end_date")
        if last < first:
            raise APIError(400, "end_date is before start_date")
        if (last - first).days + 1 > MAX_PERIOD_DAYS:
            raise APIError(400, f"a period is at most {MAX_PERIOD_DAYS} days")

        def read(db: DB) -> list[dict[str, Any]]:
            lo, hi = _day_start(first), _day_start(last + dt.timedelta(days=1))
            query = (
                select(m.Session, m.User, m.Group.name)
                .join(m.User, m.User.id == m.Session.user_id)
                .outerjoin(m.Group, m.Group.id == m.Session.group_id)
                .where(
                    m.Session.started_at.is_not(None),
                    m.Session.started_at < hi,
                    or_(m.Session.terminated_at.is_(None), m.Session.terminated_at > lo),
                )
            )
            query = _scoped(query, ident)
            rows = [tuple(r) for r in db.execute(query).all()]
            return usage_per_day(rows, first, last, utcnow())

        items = await self.run_db(read)
        self.send(
            {
                "start_date": first.strftime("%Y%m%d"),
                "end_date": last.strftime("%Y%m%d"),
                "scope": "all" if ident.is_superadmin else ("domain" if ident.is_admin else "user"),
                "items": items,
            }
        )


def _scoped(query: Any, ident: Identity) -> Any:
    if ident.is_superadmin:
        return query
    if ident.is_admin:
        return query.where(m.Session.domain_name == ident.domain)
    return query.where(m.Session.user_id == ident.user_id)


class RecalculateUsageHandler(APIHandler):
    """``POST /resource/recalculate-usage`` (admins): end sessions whose server is gone.

    Occupancy is derived from session rows, so the only drift is a row that still claims
    resources after its server vanished (a hub crash between the stop and the db write, a
    server removed by hand). The hub is asked for each owner's servers; a claiming session
    whose server the hub does not list is ended TERMINATED with a reason.
    """

    async def post(self) -> None:
        ident = self.require_admin()

        def claiming(db: DB) -> list[tuple[str, str, str]]:
            query = (
                select(m.Session.id, m.User.username, m.Session.server_name, m.Session.name)
                .join(m.User, m.User.id == m.Session.user_id)
                .where(m.Session.status.in_(store.RESERVING))
            )
            return [(sid, user, server or name) for sid, user, server, name in db.execute(_scoped(query, ident))]

        rows = await self.run_db(claiming)
        hub = hub_api(self)
        servers: dict[str, dict[str, Any] | None] = {}
        ended: list[dict[str, str]] = []
        for session_id, username, server in rows:
            if username not in servers:
                servers[username] = await hub.servers(username)
            if servers[username] is not None and server in servers[username]:
                continue
            if await self.run_db(end_gone, session_id, GONE_REASON):
                ended.append({"id": str(session_id), "username": username, "server_name": server})
        self.send({"checked": len(rows), "terminated": ended})


class SSHKeypairHandler(APIHandler):
    """``GET /resource/ssh-keypair`` (the public key, made on first use) and ``POST`` (a new pair).

    Only the refresh answers the private key: it is shown once, as Backend.AI does; sessions
    get it as ``id_container`` in the session's home folder.
    """

    async def get(self) -> None:
        def read(db: DB) -> str:
            return sshkeys.get_or_create(db, db.get(m.User, self.identity.user_id)).public_key

        self.send({"ssh_public_key": await self.run_db(read)})

    async def post(self) -> None:
        def refresh(db: DB) -> dict[str, str]:
            row = sshkeys.refresh(db, db.get(m.User, self.identity.user_id))
            return {"ssh_public_key": row.public_key, "ssh_private_key": row.private_key}

        self.send(await self.run_db(refresh))

    patch = post  # Backend.AI's client refreshes with PATCH /auth/ssh-keypair


handlers = [
    (r"/resource/presets/?", PresetsHandler),
    (r"/resource/check-presets/?", CheckPresetsHandler),
    (r"/resource/usage/period/?", UsagePeriodHandler),
    (r"/resource/recalculate-usage/?", RecalculateUsageHandler),
    (r"/resource/ssh-keypair/?", SSHKeypairHandler),
]
