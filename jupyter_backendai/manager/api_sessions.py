"""``/session``: Backend.AI's compute-session API on top of JupyterHub named servers.

A session is one named server of the hub (DESIGN.md), so the manager never starts or stops
anything itself: ``POST /session`` asks the hub's REST API to start the named server with the
request translated into the spawner's ``user_options``, and ``DELETE /session/{name}`` asks the
hub to stop (and remove) it. The spawner does the admission and writes the session row; the
hub answers its refusals as JSON ``{"status", "message"}``, which are handed back to the caller
with the same status and reason. Everything else (listings, details, history) is read from the
product's database, which the spawners and the scheduler keep current.

Names: Backend.AI allows 1–64 letters, digits, ``-`` and ``_``; JupyterHub 6 only takes "safe
slugs" as server names (lower-case, 1–30 characters, starting with a letter). A name that is a
safe slug is the server's name as is; any other gets a derived slug (:func:`server_name_for`)
and the session row keeps the requested name. Lookups accept either, or the session id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import re
import time
import uuid
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DB
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..core.apps import SERVER_APPS, WEB_PROTOCOLS, title_of
from ..core.environ import EnvironError, check_environ
from ..db import folders as folder_db
from ..db import models as m
from ..db import session_logs as log_store
from ..db import sessions as store
from ..db.types import utcnow
from .base import APIError, APIHandler, Identity

S = m.SessionStatus

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SLUG_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,28}[a-z0-9])?$")
#: ``?status=`` of ``GET /session``: "running" is what holds or waits for resources.
STATUS_FILTERS: dict[str, tuple[S, ...] | None] = {
    "running": store.RESERVING,
    "finished": tuple(m.FINISHED_SESSION_STATUSES),
    "all": None,
}
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
#: How long to wait for the spawner's session row after the hub accepted a spawn.
ROW_WAIT_SECONDS = 15.0
MAX_WAIT_SECONDS = 300
GONE_REASON = "recalculated: the server is gone"


# --- names ------------------------------------------------------------------------------------


def is_server_slug(name: str) -> bool:
    """Whether JupyterHub (6) accepts ``name`` as a new named server's name."""
    return bool(_SLUG_RE.match(name)) and "--" not in name


def server_name_for(name: str) -> str:
    """The hub server name of a session name: itself when it is a safe slug, else a derived slug.

    The derived form keeps a readable prefix and adds 8 hex digits of the name's SHA-1, so two
    names never share a server (names that differ only in case or ``_``/``-`` stay distinct).
    """
    if is_server_slug(name):
        return name
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not base or not base[0].isalpha():
        base = ("s-" + base).strip("-")
    base = base[:21].rstrip("-")
    return f"{base}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise APIError(400, "a session name is 1 to 64 letters, digits, '-' or '_'")
    return name


# --- the hub's REST API -----------------------------------------------------------------------


class HubAPI:
    """Calls to the hub's REST API with the service's own token (``admin:servers``, ``admin:users``)."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.token = token

    async def request(self, method: str, path: str, body: Any = None, timeout: float = 120) -> tuple[int, Any]:
        """(status, decoded JSON or None); an HTTP error status is returned, not raised."""
        if not self.url:
            raise APIError(
                503, "the manager runs without a hub (no JUPYTERHUB_API_URL): sessions are started through the hub"
            )
        request = HTTPRequest(
            self.url + path,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else (b"" if method in ("POST", "PUT", "PATCH") else None),
            request_timeout=timeout,
            allow_nonstandard_methods=True,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as e:
            raise APIError(502, f"the hub's API does not answer: {e}") from None
        if response.code == 599:
            raise APIError(502, f"the hub's API does not answer: {response.error}")
        data = None
        if response.body:
            try:
                data = json.loads(response.body)
            except ValueError:
                data = None
        return response.code, data

    async def ensure_user(self, username: str) -> None:
        """Create the hub user when missing: the hub only starts servers of users it knows."""
        status, _ = await self.request("GET", f"/users/{quote(username)}")
        if status == 200:
            return
        if status != 404:
            raise APIError(502, f"the hub answered {status} when asked about user {username!r}")
        status, data = await self.request("POST", f"/users/{quote(username)}")
        if status not in (201, 409):
            raise APIError(502, f"the hub could not create user {username!r}: {_hub_message(data, status)}")

    async def servers(self, username: str) -> dict[str, Any] | None:
        """The user's active servers by name, or None when the hub has no such user."""
        status, data = await self.request("GET", f"/users/{quote(username)}")
        if status == 404:
            return None
        if status != 200 or not isinstance(data, dict):
            raise APIError(502, f"the hub answered {status} when asked about user {username!r}")
        return dict(data.get("servers") or {})


def _hub_message(data: Any, status: int) -> str:
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return f"HTTP {status}"


def hub_api(handler: APIHandler) -> HubAPI:
    return HubAPI(handler.manager.hub_api_url, handler.manager.hub_api_token)


# --- reading sessions -------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def hub_base_url() -> str:
    """The hub's public prefix (``JUPYTERHUB_BASE_URL`` of a managed service), ending in ``/``."""
    base = os.environ.get("JUPYTERHUB_BASE_URL", "/")
    return base if base.endswith("/") else base + "/"


def apps_of(session: m.Session, username: str) -> list[dict[str, Any]]:
    """What a user can open in the session, with URLs through the hub's proxy.

    Every session is a Jupyter server, so JupyterLab and the classic tree are always there, and
    the label's ``terminal`` is the server's own (a new terminal per opening). Other web apps
    of the image open through the session's server extension (``backendai/_ext/apps/<name>/open``:
    a form for apps that take arguments, such as TensorBoard's log directory, then the app
    through jupyter-server-proxy); TCP and pty apps have no URL.
    """
    server = session.server_name or session.name
    prefix = f"{hub_base_url()}user/{quote(username)}/{quote(server)}/"
    apps: dict[str, dict[str, Any]] = {
        name: {"name": name, "title": title_of(name), "protocol": "http", "ports": [], "url": prefix + path}
        for name, path in SERVER_APPS.items()
        if name != "terminal"
    }
    for port in session.service_ports or []:
        name, protocol, ports = port.get("name"), port.get("protocol"), list(port.get("ports") or [])
        if name in apps:
            apps[name]["ports"] = ports
            continue
        if name in SERVER_APPS:
            url = prefix + SERVER_APPS[name]
        elif protocol in WEB_PROTOCOLS:
            url = f"{prefix}backendai/_ext/apps/{quote(str(name))}/open"
        else:
            url = None
        apps[name] = {"name": name, "title": title_of(str(name)), "protocol": protocol, "ports": ports, "url": url}
    return list(apps.values())


def _latest_usage(db: DB, session_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    return store.latest_usage(db, session_ids)


def _usage_json(sample: m.SessionUsage | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {
        "at": _iso(sample.at),
        "cpu_percent": sample.cpu_percent,
        "cpu_seconds": sample.cpu_seconds,
        "mem_bytes": sample.mem_bytes,
        "io_read_bytes": sample.io_read_bytes,
        "io_write_bytes": sample.io_write_bytes,
        "gpu_percent": sample.gpu_percent,
        "gpu_mem_bytes": sample.gpu_mem_bytes,
    }


def session_item(session: m.Session, user: m.User, usage: m.SessionUsage | None) -> dict[str, Any]:
    """One session as ``GET /session`` lists it (slots as Backend.AI's strings)."""
    return {
        "id": str(session.id),
        "name": session.name,
        "server_name": session.server_name,
        "type": session.session_type,
        "image": session.image,
        "status": session.status.value,
        "status_info": session.status_info,
        "resource_group": session.scaling_group,
        "domain": session.domain_name,
        "group_id": str(session.group_id) if session.group_id else None,
        "occupied_slots": session.occupied_slots.to_json() if session.occupied_slots else {},
        "requested_slots": session.requested_slots.to_json() if session.requested_slots else {},
        "created_at": _iso(session.created_at),
        "started_at": _iso(session.started_at),
        "terminated_at": _iso(session.terminated_at),
        "agent": session.agent_id,
        "usage": _usage_json(usage),
        "user_email": user.email,
        "username": user.username,
        "access_key": session.access_key,
    }


def listed_item(row: Any, usage: Any) -> dict[str, Any]:
    """:func:`session_item`'s shape from a listing row (:func:`store.list_sessions`), no ORM object."""
    return {
        "id": str(row.id),
        "name": row.name,
        "server_name": row.server_name,
        "type": row.session_type,
        "image": row.image,
        "status": row.status.value,
        "status_info": row.status_info,
        "resource_group": row.scaling_group,
        "domain": row.domain_name,
        "group_id": str(row.group_id) if row.group_id else None,
        "occupied_slots": row.occupied_slots or {},
        "requested_slots": row.requested_slots or {},
        "created_at": _iso(row.created_at),
        "started_at": _iso(row.started_at),
        "terminated_at": _iso(row.terminated_at),
        "agent": row.agent_id,
        "usage": _usage_json(usage),
        "user_email": row.user_email,
        "username": row.username,
        "access_key": row.access_key,
    }


def _usage_summary(db: DB, session_id: uuid.UUID) -> dict[str, Any]:
    u = m.SessionUsage
    count, first, last, avg_cpu, max_cpu, max_mem = db.execute(
        select(
            func.count(u.id), func.min(u.at), func.max(u.at), func.avg(u.cpu_percent), func.max(u.cpu_percent),
            func.max(u.mem_bytes),
        ).where(u.session_id == session_id)
    ).one()  # fmt: skip
    latest = _latest_usage(db, [session_id]).get(session_id)
    return {
        "samples": count,
        "first_at": _iso(first),
        "last_at": _iso(last),
        "cpu_percent_avg": round(float(avg_cpu), 2) if avg_cpu is not None else None,
        "cpu_percent_max": max_cpu,
        "mem_bytes_max": max_mem,
        "latest": _usage_json(latest),
    }


def _ssh_host(db: DB, session: m.Session, fallback: str) -> str:
    """Where users reach the session's SSH port: its agent's public address (the backend's
    ``ssh_host``), else the host name this request came to."""
    agent = db.get(m.Agent, session.agent_id) if session.agent_id else None
    return (agent.addr if agent is not None else "") or fallback


def session_detail(db: DB, session: m.Session, user: m.User, ssh_host: str) -> dict[str, Any]:
    usage = _latest_usage(db, [session.id]).get(session.id)
    detail = session_item(session, user, usage)
    group = db.get(m.Group, session.group_id) if session.group_id else None
    detail.update(
        {
            "group": group.name if group else None,
            "resource_opts": session.resource_opts or {},
            "mounts": session.mounts or [],
            "service_ports": session.service_ports or [],
            "gpu_placement": session.gpu_placement or {},
            "last_activity": _iso(session.last_activity),
            "scheduled_at": _iso(session.scheduled_at),
            # When the hub ends it for the policy's maximum lifetime (None: no end).
            "ends_at": _iso(store.lifetime_end(db, session)),
            "status_history": [
                {"status": h.status.value, "reason": h.reason, "at": _iso(h.at)} for h in session.history
            ],
            "usage_summary": _usage_summary(db, session.id),
            "apps": apps_of(session, user.username),
            "ssh": {"host": _ssh_host(db, session, ssh_host), "port": session.ssh_port} if session.ssh_port else None,
        }
    )
    return detail


def _owner(db: DB, ident: Identity, owner: str | None) -> m.User:
    """The user whose sessions a name refers to: the caller, or (admins) ``owner``."""
    if not owner:
        return db.get(m.User, ident.user_id)
    user = db.scalar(select(m.User).where(or_(m.User.username == owner, m.User.email == owner)))
    if user is None:
        keypair = db.get(m.KeyPair, owner)
        user = keypair.user if keypair is not None else None
    if user is None:
        raise APIError(404, f"no such user {owner!r}")
    if user.id != ident.user_id and not ident.may_administer(user.domain_name):
        raise APIError(403, "only an administrator of the owner's domain may act on another user's sessions")
    return user


def find_session(db: DB, ident: Identity, ref: str, owner: str | None = None) -> tuple[m.Session, m.User]:
    """A session by id, or by name (session or server name) among the owner's; active ones first.

    Another user's session is "not found" rather than "forbidden", so that names don't leak.
    """
    try:
        session_id = uuid.UUID(ref)
    except ValueError:
        session_id = None
    if session_id is not None:
        session = db.get(m.Session, session_id)
        if session is not None:
            user = db.get(m.User, session.user_id)
            if user.id == ident.user_id or ident.may_administer(session.domain_name):
                return session, user
        raise APIError(404, f"no session {ref!r}")
    user = _owner(db, ident, owner)
    rows = db.scalars(
        select(m.Session)
        .where(m.Session.user_id == user.id, or_(m.Session.name == ref, m.Session.server_name == ref))
        .order_by(m.Session.created_at.desc())
    ).all()
    if not rows:
        raise APIError(404, f"no session named {ref!r}" + (f" of {user.username}" if owner else ""))
    active = [s for s in rows if s.status in store.RESERVING]
    return (active or rows)[0], user


def end_gone(db: DB, session_id: uuid.UUID, reason: str = GONE_REASON) -> bool:
    """End a session the hub no longer runs; True when it was still claiming resources."""
    session = db.get(m.Session, session_id)
    if session is None or session.status not in store.RESERVING:
        return False
    store.set_status(db, session, S.TERMINATED, reason)
    return True


# --- translating a Backend.AI create request --------------------------------------------------


def user_options_from(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Backend.AI's ``POST /session`` body → the spawner's ``user_options`` (and warnings).

    What a Jupyter-server session cannot do is refused rather than ignored: batch sessions,
    startup commands, multi-container clusters, mounts at custom paths.
    """
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise APIError(400, "'config' must be an object")
    warnings: list[str] = []
    kind = data.get("type", data.get("sessionType", "interactive")) or "interactive"
    if kind != "interactive":
        raise APIError(400, f"session type {kind!r} is not supported: sessions are interactive Jupyter servers")
    for key in ("startupCommand", "startup_command", "bootstrap_script", "bootstrapScript"):
        if data.get(key) or config.get(key):
            raise APIError(400, f"{key!r} is not supported: a session runs a Jupyter server")
    size = data.get("cluster_size", data.get("clusterSize", 1)) or 1
    if size != 1:
        raise APIError(400, "multi-container sessions (cluster_size > 1) are not supported")

    options: dict[str, Any] = {}
    for key, value in (
        ("image", data.get("image") or data.get("lang")),
        ("group", data.get("group") or data.get("group_name")),
        ("scaling_group", config.get("scaling_group") or data.get("scaling_group") or data.get("resource_group")),
        ("preset", data.get("preset") or config.get("preset")),
    ):
        if value not in (None, ""):
            if not isinstance(value, str):
                raise APIError(400, f"{key!r} must be a string")
            options[key] = value
    resources = config.get("resources") or {}
    if not isinstance(resources, dict):
        raise APIError(400, "'config.resources' must be an object of slot name to amount")
    if resources:
        options["resources"] = {str(k): str(v) for k, v in resources.items()}
    resource_opts = config.get("resource_opts") or {}
    if not isinstance(resource_opts, dict):
        raise APIError(400, "'config.resource_opts' must be an object")
    if resource_opts.get("shmem") not in (None, ""):
        options["shmem"] = str(resource_opts["shmem"])
    mounts = config.get("mounts") or []
    if not isinstance(mounts, list) or not all(isinstance(f, str) for f in mounts):
        raise APIError(400, "'config.mounts' must be a list of folder names")
    mount_map = config.get("mount_map") or {}
    if not isinstance(mount_map, dict):
        raise APIError(400, "'config.mount_map' must be an object of folder name to path")
    for folder, path in mount_map.items():
        if str(path).rstrip("/") not in (folder, f"{folder_db.MOUNT_ROOT}/{folder}"):
            raise APIError(
                400, f"folders are mounted at {folder_db.MOUNT_ROOT}/<name>; {folder!r} cannot go to {path!r}"
            )
    folders = sorted(set(mounts) | set(mount_map))
    if folders:
        options["folders"] = folders
    environ = config.get("environ") or {}
    if not isinstance(environ, dict):
        raise APIError(400, "'config.environ' must be an object")
    try:
        # The same rule as the spawner's: refused here, before the hub is asked at all.
        environ = check_environ(environ)
    except EnvironError as e:
        raise APIError(400, f"config.environ: {e}") from None
    if environ:
        options["environ"] = environ
    return options, warnings


# --- handlers ---------------------------------------------------------------------------------


class SessionsHandler(APIHandler):
    """``POST /session`` (create through the hub) and ``GET /session`` (list)."""

    async def post(self) -> None:
        ident = self.identity
        data = self.json_body()
        name = data.get("name", data.get("clientSessionToken"))
        name = check_name(name) if name not in (None, "") else f"s-{uuid.uuid4().hex[:8]}"
        options, warnings = user_options_from(data)
        enqueue_only = bool(self.param(data, "enqueueOnly", "enqueue_only", default=False, kind=bool))
        max_wait = self.param(data, "maxWaitSeconds", "max_wait_seconds", default=0, kind=int)
        reuse = bool(self.param(data, "reuseIfExists", "reuse_if_exists", default=False, kind=bool))
        owner_key = data.get("owner_access_key")
        server = server_name_for(name)

        def prepare(db: DB) -> tuple[str, dict[str, Any] | None]:
            user = _owner(db, ident, owner_key) if owner_key else db.get(m.User, ident.user_id)
            domain = data.get("domain")
            if domain and domain != user.domain_name:
                raise APIError(400, f"the user is in domain {user.domain_name!r}, not {domain!r}")
            clash = db.scalars(
                select(m.Session).where(
                    m.Session.user_id == user.id,
                    m.Session.status.in_(store.RESERVING),
                    or_(m.Session.name.in_([name, server]), m.Session.server_name.in_([name, server])),
                )
            ).first()
            if clash is None:
                return user.username, None
            if reuse and (not options.get("image") or clash.image == options["image"]):
                return user.username, _create_answer(clash, created=False)
            raise APIError(409, f"you already have an active session named {name!r} ({clash.status.value})")

        username, reused = await self.run_db(prepare)
        if reused is not None:
            self.send(reused, 200)
            return
        hub = hub_api(self)
        await hub.ensure_user(username)
        started = utcnow() - dt.timedelta(seconds=1)
        body = {"user_options": options, "display_name": name}
        status, answer = await hub.request("POST", f"/users/{quote(username)}/servers/{quote(server)}", body)
        if status not in (201, 202):
            message = _hub_message(answer, status)
            if status == 400 and "already running" in message:
                status = 409
            elif status >= 500 and status != 503:
                message, status = f"the hub could not start the session: {message}", 502
            raise APIError(status, message)

        session_id = await self._wait_for_row(username, server, name, started)
        if session_id is None:
            raise APIError(502, "the hub accepted the session but its spawner wrote no session record")
        if not enqueue_only and max_wait:
            deadline = time.monotonic() + min(int(max_wait), MAX_WAIT_SECONDS)
            while time.monotonic() < deadline:
                current = await self.run_db(lambda db: db.get(m.Session, session_id).status)
                if current == S.RUNNING or current in m.FINISHED_SESSION_STATUSES:
                    break
                await asyncio.sleep(0.5)
        answer = await self.run_db(lambda db: _create_answer(db.get(m.Session, session_id), created=True))
        if warnings:
            answer["warnings"] = warnings
        self.send(answer, 201)

    async def _wait_for_row(self, username: str, server: str, name: str, since: dt.datetime) -> uuid.UUID | None:
        """The row the spawner wrote for this spawn (it admits before it queues); renamed to ``name``."""

        def look(db: DB) -> uuid.UUID | None:
            user = db.scalar(select(m.User).where(m.User.username == username))
            row = db.scalars(
                select(m.Session)
                .where(m.Session.user_id == user.id, m.Session.server_name == server, m.Session.created_at >= since)
                .order_by(m.Session.created_at.desc())
            ).first()
            if row is None:
                return None
            if row.name != name:
                row.name = name
            return row.id

        deadline = time.monotonic() + ROW_WAIT_SECONDS
        while True:
            found = await self.run_db(look)
            if found is not None or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.3)

    async def get(self) -> None:
        ident = self.identity
        data = self.json_body()
        status_name = str(self.param(data, "status", default="running")).lower()
        if status_name not in STATUS_FILTERS:
            raise APIError(400, f"status must be one of {', '.join(STATUS_FILTERS)}")
        all_users = bool(self.param(data, "all_users", default=False, kind=bool))
        if all_users and not ident.is_admin:
            raise APIError(403, "only administrators may list other users' sessions")
        page = self.param(data, "page", default=1, kind=int)
        page_size = self.param(data, "page_size", default=DEFAULT_PAGE_SIZE, kind=int)
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise APIError(400, f"page starts at 1 and page_size is 1 to {MAX_PAGE_SIZE}")
        cursor = self.param(data, "cursor", kind=str) or None
        # The count costs an index scan of every matching session: by default only for pages
        # by number (where clients need it, and always had it), on request for cursor pages.
        count = self.param(data, "count", default=cursor is None, kind=bool)
        statuses = STATUS_FILTERS[status_name]
        scope: dict[str, Any] = {}
        if not all_users:
            scope["user_id"] = ident.user_id
        elif not ident.is_superadmin:
            scope["domain_name"] = ident.domain

        def listing(db: DB) -> dict[str, Any]:
            try:
                found = store.list_sessions(
                    db, statuses=statuses, limit=page_size, offset=(page - 1) * page_size, cursor=cursor,
                    count=count, **scope,
                )  # fmt: skip
            except store.CursorError as e:
                raise APIError(400, str(e)) from None
            return {
                "total_count": found.total,
                "page": page,
                "page_size": page_size,
                "status": status_name,
                "next_cursor": found.next_cursor,
                "items": [listed_item(row, found.usage.get(row.id)) for row in found.rows],
            }

        self.send(await self.run_db(listing))


def _create_answer(session: m.Session, *, created: bool) -> dict[str, Any]:
    return {
        "sessionId": str(session.id),
        "sessionName": session.name,
        "serverName": session.server_name,
        "status": session.status.value,
        "statusInfo": session.status_info,
        "servicePorts": list(session.service_ports or []),
        "created": created,
    }


class SessionHandler(APIHandler):
    """``GET /session/{name}`` (details) and ``DELETE /session/{name}`` (stop through the hub)."""

    def _owner_param(self, data: dict[str, Any]) -> str | None:
        return self.param(data, "owner_access_key", "owner")

    async def get(self, ref: str) -> None:
        data = self.json_body()
        owner = self._owner_param(data)
        ssh_host = self.request.host_name or "127.0.0.1"

        def detail(db: DB) -> dict[str, Any]:
            session, user = find_session(db, self.identity, ref, owner)
            return session_detail(db, session, user, ssh_host)

        self.send(await self.run_db(detail))

    async def delete(self, ref: str) -> None:
        data = self.json_body()
        owner = self._owner_param(data)

        def look(db: DB) -> tuple[uuid.UUID, str, str, S]:
            session, user = find_session(db, self.identity, ref, owner)
            return session.id, user.username, session.server_name or session.name, session.status

        session_id, username, server, status = await self.run_db(look)
        if status not in store.RESERVING:
            raise APIError(404, f"session {ref!r} has already ended ({status.value})")
        hub = hub_api(self)
        code, answer = await hub.request(
            "DELETE", f"/users/{quote(username)}/servers/{quote(server)}", {"remove": True}
        )
        if code == 404:
            # The hub has no such server: whatever the row claims, nothing runs any more.
            await self.run_db(end_gone, session_id, "terminated: the hub has no such server any more")
        elif code not in (202, 204):
            raise APIError(code if 400 <= code < 500 else 502, _hub_message(answer, code))
        deadline = time.monotonic() + 30
        while True:
            row = await self.run_db(lambda db: _create_answer(db.get(m.Session, session_id), created=False))
            if S(row["status"]) in m.FINISHED_SESSION_STATUSES or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        row.pop("created", None)
        self.send(row)


class SessionLogsHandler(APIHandler):
    """``GET /session/{name}/logs``: the session's output, as Backend.AI answers it (``result.logs``).

    The output is what its container or process wrote to stdout and stderr: the hub copies it
    into the database while the session runs and keeps its last ``log_keep_bytes`` after it
    ended (``hub.logs``); ``dropped_bytes`` says how much older output is no longer kept. The
    status history is ``GET /session/{name}/status-history``.
    """

    async def get(self, ref: str) -> None:
        data = self.json_body()
        owner = self.param(data, "owner_access_key", "owner")

        def logs(db: DB) -> dict[str, Any]:
            session, _user = find_session(db, self.identity, ref, owner)
            kept = log_store.read(db, session.id)
            answer: dict[str, Any] = {
                "result": {
                    "logs": kept.text if kept is not None else "",
                    "status": session.status.value,
                    "kept_bytes": kept.kept_bytes if kept is not None else 0,
                    "dropped_bytes": kept.dropped_bytes if kept is not None else 0,
                    "updated_at": _iso(kept.updated_at) if kept is not None else None,
                }
            }
            if kept is None:
                answer["note"] = (
                    "no output was collected for this session (it has written none yet, or has not started)"
                )
            return answer

        self.send(await self.run_db(logs))


class SessionStatusHistoryHandler(APIHandler):
    """``GET /session/{name}/status-history``: when the session entered each status, and why.

    ``result`` is Backend.AI's: each status the session was in → the time it last entered it;
    ``items`` lists every change with its time and reason.
    """

    async def get(self, ref: str) -> None:
        data = self.json_body()
        owner = self.param(data, "owner_access_key", "owner")

        def history(db: DB) -> dict[str, Any]:
            session, _user = find_session(db, self.identity, ref, owner)
            items = [{"status": h.status.value, "reason": h.reason, "at": _iso(h.at)} for h in session.history]
            return {"result": {item["status"]: item["at"] for item in items}, "items": items}

        self.send(await self.run_db(history))


class SessionRenameHandler(APIHandler):
    """``POST /session/{name}/rename`` {name}: a new name for the session (its server keeps its own)."""

    async def post(self, ref: str) -> None:
        data = self.json_body()
        new = check_name(self.param(data, "name", "new_name"))
        owner = self.param(data, "owner_access_key", "owner")

        def rename(db: DB) -> dict[str, Any]:
            session, user = find_session(db, self.identity, ref, owner)
            if session.status not in store.RESERVING:
                raise APIError(400, "only an active session can be renamed")
            clash = db.scalars(
                select(m.Session).where(
                    m.Session.user_id == user.id,
                    m.Session.id != session.id,
                    m.Session.status.in_(store.RESERVING),
                    or_(m.Session.name == new, m.Session.server_name == new),
                )
            ).first()
            if clash is not None:
                raise APIError(409, f"an active session named {new!r} already exists")
            session.name = new
            return _create_answer(session, created=False)

        answer = await self.run_db(rename)
        answer.pop("created", None)
        self.send(answer)


handlers = [
    (r"/session/?", SessionsHandler),
    (r"/session/(?P<ref>[^/]+)/logs", SessionLogsHandler),
    (r"/session/(?P<ref>[^/]+)/status-history", SessionStatusHistoryHandler),
    (r"/session/(?P<ref>[^/]+)/rename", SessionRenameHandler),
    (r"/session/(?P<ref>[^/]+)/?", SessionHandler),
]
