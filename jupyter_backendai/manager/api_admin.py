"""The administration API (F35–F47): users, keypairs, policies, images, registries, presets, agents, groups.

Backend.AI's console does all of this through the manager's GraphQL endpoint; this project
speaks plain REST instead, with Backend.AI's field names (the views of :mod:`..db.views`), so
that scripts need no GraphQL client. Every write goes through :mod:`..db.admin`, the one place
that validates administrative input: its messages come back as ``{"title": ...}`` with the
error's status (400 bad input, 404 unknown, 409 conflict).

Who may do what (checked before the database is touched):

* a plain user: nothing here (403 with the reason);
* a domain admin: the users, keypairs and groups of their own domain (a superadmin account is
  out of their reach even when it lives in that domain); read access to policies, presets,
  registries, images and the resource groups open to their domain;
* a superadmin: everything, including the global objects (policies, presets, images,
  registries, agents, resource groups, domains, settings, maintenance).

Paths (relative to the service's base URL)::

    GET    /admin/users?status=active|inactive|all&domain=     list (domain admins: their domain)
    POST   /admin/users                                        create; answers the user and its keypair
    GET    /admin/users/{email}                                detail (e-mail or user name)
    PATCH  /admin/users/{email}                                username, password, role, status, full_name,
                                                               description, need_password_change
    DELETE /admin/users/{email}                                deactivate (users are never deleted, F37)
    GET    /admin/keypairs?active=true|false|all&user=         list
    POST   /admin/keypairs                                     {user, policy, rate_limit, is_admin,
                                                                access_key?, secret_key?}
    GET|PATCH|DELETE /admin/keypairs/{access_key}              PATCH: policy, rate_limit, is_active, is_admin;
                                                               DELETE: 409 once it ran a session
    GET|POST /admin/policies, GET|PATCH|DELETE /admin/policies/{name}
    GET    /admin/images?installed=true|false                  list
    POST   /admin/images/rescan                                read every registry (Docker Registry API v2)
    POST   /admin/images/cleanup                               {dry_run?, registry?} drop unused rows
    GET|PATCH /admin/images/{ref}?architecture=                PATCH: {min_slots}; with installed_agents, installs
    POST   /admin/images/{ref}/install                         {scaling_group?, agents?}: the agents pull it
    GET|POST /admin/registries, GET|DELETE /admin/registries/{hostname}
    GET|POST /admin/presets, GET|PATCH|DELETE /admin/presets/{name}
    GET    /admin/agents?status=alive|lost|all                 capacity, occupied (from sessions), status
    PATCH  /admin/agents/{id}                                  {schedulable}
    GET|POST /admin/scaling-groups, GET|PATCH /admin/scaling-groups/{name}
    POST   /admin/scaling-groups/{name}/allow                  {domains, groups, keypairs, revoke}
    GET|POST /admin/domains, GET|PATCH /admin/domains/{name}   PATCH (superadmins): total_resource_slots
                                                               (the slots named; "unlimited" lifts a cap),
                                                               description, allowed_vfolder_hosts,
                                                               allowed_docker_registries
    GET|POST /admin/groups?domain=, GET|PATCH /admin/groups/{name}?domain=   PATCH as for a domain
    POST   /admin/groups/{name}/members                        {add, remove, domain?}
    GET    /admin/settings                                     read-only system view (F46)
    POST   /admin/maintenance/recalculate-usage                delegated to the resources module (F47)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from .._version import __version__
from ..core.slots import ResourceSlots
from ..db import admin, views
from ..db import images as image_db
from ..db import models as m
from ..db import sessions as session_db
from .api_resources import RecalculateUsageHandler as _ResourcesRecalculate
from .base import RATE_WINDOW, APIError, APIHandler, Identity
from .signing import API_VERSION

# --- request helpers ------------------------------------------------------------------------------

_KINDS: dict[type, str] = {str: "string", bool: "boolean", int: "whole number", list: "list", dict: "object"}


def pick(
    data: Mapping[str, Any], spec: Mapping[str, type | tuple[type, ...]], *, mixed_lists: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The fields of ``spec`` that the body carries, each of the expected JSON type.

    Only JSON types are checked here (so that a number where a password belongs, or a number
    in a list of host names, is a 400 and not a traceback); what the values mean is
    :mod:`..db.admin`'s business. Lists hold strings unless named in ``mixed_lists``.
    """
    out: dict[str, Any] = {}
    for name, kinds in spec.items():
        if data.get(name) is None:
            continue
        value = data[name]
        kinds_ = kinds if isinstance(kinds, tuple) else (kinds,)
        if not any(isinstance(value, k) and not (k is int and isinstance(value, bool)) for k in kinds_):
            raise APIError(400, f"{name!r} must be a {' or '.join(_KINDS.get(k, k.__name__) for k in kinds_)}")
        if isinstance(value, list) and name not in mixed_lists and not all(isinstance(v, str) for v in value):
            raise APIError(400, f"{name!r} must be a list of strings")
        out[name] = value
    return out


def reject_unknown(data: Mapping[str, Any], allowed: set[str]) -> None:
    """Refuse fields we do not know: a typo silently ignored would look like a change that happened."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise APIError(400, f"unknown field(s): {', '.join(unknown)}; expected some of {', '.join(sorted(allowed))}")


def _bool_arg(value: str | None, name: str, *, allow_all: bool = False) -> bool | None:
    if value is None or (allow_all and value == "all"):
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    choices = "true, false" + (" or all" if allow_all else "")
    raise APIError(400, f"{name!r} must be {choices}, not {value!r}")


def check_user_reach(ident: Identity, user: m.User) -> None:
    """A domain admin acts on their own domain's users only, and never on a superadmin account."""
    if not ident.may_administer(user.domain_name):
        raise APIError(403, f"you administer domain {ident.domain!r}; user {user.email!r} is in {user.domain_name!r}")
    if user.role == m.UserRole.SUPERADMIN and not ident.is_superadmin:
        raise APIError(403, f"only a superadmin may change the superadmin account {user.email!r}")


def _count(db: DB, model: Any, *where: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


class AdminHandler(APIHandler):
    """Every admin endpoint: nobody below a domain admin gets past ``prepare``."""

    async def prepare(self):
        await super().prepare()
        self.require_admin()

    @property
    def me(self) -> Identity:
        assert self.identity is not None
        return self.identity

    def domain_scope(self, requested: str | None) -> str | None:
        """The domain a listing may cover: a superadmin's choice (None = all), else the admin's own."""
        if self.me.is_superadmin:
            return requested or None
        if requested and requested != self.me.domain:
            raise APIError(403, f"you administer domain {self.me.domain!r}, not {requested!r}")
        return self.me.domain


# --- users (F35–F37) ---------------------------------------------------------------------------------

USER_CREATE = {
    "email": str,
    "password": str,
    "username": str,
    "role": str,
    "domain": str,
    "groups": list,
    "policy": str,
    "full_name": str,
    "description": str,
    "need_password_change": bool,
    "status": str,
}
USER_UPDATE = {
    "username": str,
    "password": str,
    "role": str,
    "status": str,
    "full_name": str,
    "description": str,
    "need_password_change": bool,
}


class UsersHandler(AdminHandler):
    async def get(self):
        status = self.get_query_argument("status", "active")
        if status not in ("active", "inactive", "all"):
            raise APIError(400, f"'status' must be active, inactive or all, not {status!r}")
        domain = self.domain_scope(self.get_query_argument("domain", None))

        def run(db: DB) -> list[dict[str, Any]]:
            query = select(m.User).order_by(m.User.email)
            if domain is not None:
                query = query.where(m.User.domain_name == domain)
            if status == "active":
                query = query.where(m.User.status == m.UserStatus.ACTIVE)
            elif status == "inactive":
                query = query.where(m.User.status != m.UserStatus.ACTIVE)
            return [views.user_view(u) for u in db.scalars(query)]

        self.send({"users": await self.run_db(run)})

    async def post(self):
        data = self.json_body()
        reject_unknown(data, set(USER_CREATE))
        fields = pick(data, USER_CREATE)
        if "email" not in fields or "password" not in fields:
            raise APIError(400, "'email' and 'password' are required")
        fields.setdefault("domain", self.me.domain if not self.me.is_superadmin else admin.DEFAULT)
        self.require_admin(fields["domain"])
        if fields.get("role") == m.UserRole.SUPERADMIN.value and not self.me.is_superadmin:
            raise APIError(403, "only a superadmin may create a superadmin")
        email, password = fields.pop("email"), fields.pop("password")

        def run(db: DB) -> dict[str, Any]:
            user, keypair = admin.create_user(db, email, password, **fields)
            # The secret key is shown this once; afterwards only the access key is listed.
            return {"user": views.user_view(user), "keypair": views.keypair_view(keypair, with_secret=True)}

        self.send(await self.run_db(run), status=201)


class UserHandler(AdminHandler):
    def _user(self, db: DB, key: str) -> m.User:
        user = admin.get_user(db, key)
        check_user_reach(self.me, user)
        return user

    async def get(self, key: str):
        def run(db: DB) -> dict[str, Any]:
            user = self._user(db, key)
            view = views.user_view(user)
            view["keypairs"] = [views.keypair_view(k) for k in user.keypairs]
            return view

        self.send(await self.run_db(run))

    async def patch(self, key: str):
        data = self.json_body()
        reject_unknown(data, set(USER_UPDATE))
        fields = pick(data, USER_UPDATE)
        if fields.get("role") == m.UserRole.SUPERADMIN.value and not self.me.is_superadmin:
            raise APIError(403, "only a superadmin may make a user superadmin")

        def run(db: DB) -> dict[str, Any]:
            user = self._user(db, key)
            if user.id == self.me.user_id and (
                fields.get("status", "active") != "active" or fields.get("role", user.role.value) != user.role.value
            ):
                raise APIError(409, "you cannot deactivate yourself or change your own role; ask another admin")
            return views.user_view(admin.update_user(db, user, **fields))

        self.send(await self.run_db(run))

    async def delete(self, key: str):
        def run(db: DB) -> dict[str, Any]:
            user = self._user(db, key)
            if user.id == self.me.user_id:
                raise APIError(409, "you cannot deactivate yourself; ask another admin")
            return views.user_view(admin.deactivate_user(db, user))

        self.send(await self.run_db(run))


# --- keypairs (F38) ----------------------------------------------------------------------------------

KEYPAIR_CREATE = {
    "user": str,
    "policy": str,
    "rate_limit": int,
    "is_admin": bool,
    "access_key": str,
    "secret_key": str,
}
KEYPAIR_UPDATE = {"policy": str, "rate_limit": int, "is_active": bool, "is_admin": bool}


class KeypairsHandler(AdminHandler):
    async def get(self):
        active = _bool_arg(self.get_query_argument("active", "true"), "active", allow_all=True)
        user_key = self.get_query_argument("user", None)
        domain = self.domain_scope(self.get_query_argument("domain", None))

        def run(db: DB) -> list[dict[str, Any]]:
            query = select(m.KeyPair).join(m.User).order_by(m.User.email, m.KeyPair.created_at)
            if domain is not None:
                query = query.where(m.User.domain_name == domain)
            if active is not None:
                query = query.where(m.KeyPair.is_active.is_(active))
            if user_key:
                user = admin.get_user(db, user_key)
                check_user_reach(self.me, user)
                query = query.where(m.KeyPair.user_id == user.id)
            return [views.keypair_view(k) for k in db.scalars(query)]

        self.send({"keypairs": await self.run_db(run)})

    async def post(self):
        data = self.json_body()
        reject_unknown(data, set(KEYPAIR_CREATE))
        fields = pick(data, KEYPAIR_CREATE)
        if "user" not in fields:
            raise APIError(400, "'user' (e-mail or user name) is required")
        user_key = fields.pop("user")

        def run(db: DB) -> dict[str, Any]:
            user = admin.get_user(db, user_key)
            check_user_reach(self.me, user)
            keypair = admin.create_keypair(db, user, **fields)
            return views.keypair_view(keypair, with_secret=True)

        self.send(await self.run_db(run), status=201)


class KeypairHandler(AdminHandler):
    def _keypair(self, db: DB, access_key: str) -> m.KeyPair:
        keypair = admin.get_keypair(db, access_key)
        check_user_reach(self.me, keypair.user)
        return keypair

    async def get(self, access_key: str):
        self.send(await self.run_db(lambda db: views.keypair_view(self._keypair(db, access_key))))

    async def patch(self, access_key: str):
        data = self.json_body()
        reject_unknown(data, set(KEYPAIR_UPDATE))
        fields = pick(data, KEYPAIR_UPDATE)
        if fields.get("is_active") is False and access_key == self.me.access_key:
            raise APIError(409, "this request is signed with that keypair; deactivate it from another one")

        def run(db: DB) -> dict[str, Any]:
            return views.keypair_view(admin.update_keypair(db, self._keypair(db, access_key), **fields))

        self.send(await self.run_db(run))

    async def delete(self, access_key: str):
        if access_key == self.me.access_key:
            raise APIError(409, "this request is signed with that keypair; delete it from another one")

        def run(db: DB) -> None:
            admin.delete_keypair(db, self._keypair(db, access_key))

        await self.run_db(run)
        self.send({"deleted": access_key})


# --- policies (F40) -------------------------------------------------------------------------------

#: What a policy body may carry; the values are checked by admin.create_policy / update_policy.
POLICY_FIELDS = {"total_resource_slots", "allowed_vfolder_hosts", *admin.POLICY_FIELDS}
#: The JSON shapes admin.check_hosts and parse_slots assume (a bare string would be read as a list of letters).
POLICY_SHAPES: dict[str, type | tuple[type, ...]] = {"total_resource_slots": dict, "allowed_vfolder_hosts": list}


class PoliciesHandler(AdminHandler):
    async def get(self):
        rows = await self.run_db(
            lambda db: [views.policy_view(p) for p in db.scalars(select(m.KeyPairResourcePolicy).order_by("name"))]
        )
        self.send({"policies": rows})

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"name", *POLICY_FIELDS})
        pick(data, POLICY_SHAPES)
        name = data.pop("name", None)
        if not isinstance(name, str):
            raise APIError(400, "'name' is required")
        # The field names and values are checked by admin.create_policy ("unknown policy field ...").
        self.send(await self.run_db(lambda db: views.policy_view(admin.create_policy(db, name, **data))), status=201)


class PolicyHandler(AdminHandler):
    async def get(self, name: str):
        self.send(await self.run_db(lambda db: views.policy_view(admin.get_policy(db, name))))

    async def patch(self, name: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, POLICY_FIELDS)
        pick(data, POLICY_SHAPES)
        self.send(await self.run_db(lambda db: views.policy_view(admin.update_policy(db, name, **data))))

    async def delete(self, name: str):
        self.require_superadmin()
        await self.run_db(admin.delete_policy, name)
        self.send({"deleted": name})


# --- images (F41) and registries (F42) ------------------------------------------------------------


def image_view(db: DB, image: m.Image, installs: dict[str, list[m.AgentImage]] | None = None) -> dict[str, Any]:
    """An image with the agents that have it and the installs in progress (``installed_agents``, ``installs``)."""
    ref = image_db.reference_of(image)
    if installs is None:
        installs = image_db.installs_by_reference(db, [ref])
    return {**views.image_view(image), **image_db.agents_view(installs.get(ref, ()))}


class ImagesHandler(AdminHandler):
    async def get(self):
        installed = _bool_arg(self.get_query_argument("installed", None), "installed")

        def run(db: DB) -> list[dict[str, Any]]:
            query = select(m.Image).order_by(m.Image.registry_host, m.Image.name, m.Image.tag, m.Image.architecture)
            if installed is not None:
                query = query.where(m.Image.installed.is_(installed))
            installs = image_db.installs_by_reference(db)
            return [image_view(db, i, installs) for i in db.scalars(query)]

        self.send({"images": await self.run_db(run)})


class ImageHandler(AdminHandler):
    async def get(self, ref: str):
        arch = self.get_query_argument("architecture", None)
        self.send(await self.run_db(lambda db: image_view(db, admin.get_image(db, ref, arch))))

    async def patch(self, ref: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"min_slots", "architecture"})
        fields = pick(data, {"min_slots": dict, "architecture": str})
        if "min_slots" not in fields:
            raise APIError(400, '\'min_slots\' is required, like {"cpu": 1, "mem": "1g"}')
        arch = fields.get("architecture") or self.get_query_argument("architecture", None)

        def run(db: DB) -> dict[str, Any]:
            return image_view(db, admin.set_image_min(db, admin.get_image(db, ref, arch), fields["min_slots"]))

        self.send(await self.run_db(run))


class ImageInstallHandler(AdminHandler):
    """``POST /admin/images/{ref}/install``: the agents pull the image (Backend.AI's "install").

    The manager only queues the installs; the hub's backend pulls onto its agents (Docker: the
    hub's engine; Swarm: each node) and keeps each agent's state, which ``GET /admin/images``
    shows in ``installs`` (queued, pulling with bytes done, installed, failed with the reason)
    and ``installed_agents``. Once an agent has it the image is ``installed`` and offered.
    """

    async def post(self, ref: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"scaling_group", "agents", "architecture"})
        fields = pick(data, {"scaling_group": str, "agents": list, "architecture": str})
        arch = fields.get("architecture") or self.get_query_argument("architecture", None)

        def run(db: DB) -> dict[str, Any]:
            image = admin.get_image(db, ref, arch)
            image_db.pull_source(db, image.reference)  # an image no agent can pull is refused now, with why
            agents = image_db.install_targets(
                db, scaling_group=fields.get("scaling_group"), agent_ids=fields.get("agents")
            )
            queued, already = image_db.queue_install(db, image, agents)
            return {"image": image.reference, "queued": queued, "already": already, **image_view(db, image)}

        self.send(await self.run_db(run), status=202)


class ImageCleanupHandler(AdminHandler):
    """Forget image rows that no agent has and no session in flight names (F47 "clean up old images").

    Only the database is touched: images on the agents are the spawners' business. A session
    still pending or running keeps its image row, so its reference stays resolvable.
    """

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"dry_run", "registry"})
        opts = pick(data, {"dry_run": bool, "registry": str})

        def run(db: DB) -> dict[str, Any]:
            in_use: set[tuple[str, str, str]] = set()
            for ref in db.scalars(select(m.Session.image).where(m.Session.status.in_(session_db.RESERVING))):
                try:
                    in_use.add(admin.parse_image_ref(ref))
                except admin.AdminError:
                    continue
            query = select(m.Image).where(m.Image.installed.is_(False))
            if "registry" in opts:
                query = query.where(m.Image.registry_host == opts["registry"])
            removed, kept = [], []
            for image in db.scalars(query):
                if (image.registry_host, image.name, image.tag) in in_use:
                    kept.append(image.reference)
                    continue
                removed.append(f"{image.reference} ({image.architecture})")
                if not opts.get("dry_run"):
                    db.delete(image)
            db.flush()
            return {"removed": sorted(removed), "kept_in_use": sorted(kept), "dry_run": bool(opts.get("dry_run"))}

        self.send(await self.run_db(run))


REGISTRY_CREATE = {"hostname": str, "url": str, "username": str, "password": str, "project": str, "ssl_verify": bool}


class RegistriesHandler(AdminHandler):
    async def get(self):
        rows = await self.run_db(
            lambda db: [views.registry_view(r) for r in db.scalars(select(m.ContainerRegistry).order_by("hostname"))]
        )
        self.send({"registries": rows})

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, set(REGISTRY_CREATE))
        fields = pick(data, REGISTRY_CREATE)
        hostname, url = fields.pop("hostname", ""), fields.pop("url", "")
        ssl_verify = fields.pop("ssl_verify", True)

        def run(db: DB) -> dict[str, Any]:
            registry = admin.add_registry(db, hostname, url, **fields)
            registry.ssl_verify = ssl_verify
            return views.registry_view(registry)

        self.send(await self.run_db(run), status=201)


class RegistryHandler(AdminHandler):
    async def get(self, hostname: str):
        self.send(await self.run_db(lambda db: views.registry_view(admin.get_registry(db, hostname))))

    async def delete(self, hostname: str):
        self.require_superadmin()
        await self.run_db(admin.remove_registry, hostname)
        self.send({"deleted": hostname})


# --- the registry scan ------------------------------------------------------------------------------

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
#: Docker's architecture names → Backend.AI's (``uname -m``).
ARCHITECTURES = {"amd64": "x86_64", "arm64": "aarch64", "386": "i386", "arm": "armv7l", "ppc64le": "ppc64le"}
#: An image must carry one of these labels to be offered (F42 "images labeled for the platform").
PLATFORM_LABEL_PREFIX = "ai.backend."
SCAN_CONCURRENCY = 8


class RegistryError(Exception):
    """A registry that cannot be read (down, refused, malformed answer): one line for the report."""


@dataclass(frozen=True)
class RegistryAccess:
    """What the scan needs of a registry row, copied so that no db session crosses into the event loop."""

    hostname: str
    url: str
    username: str | None = None
    password: str | None = None
    project: str | None = None
    ssl_verify: bool = True


@dataclass
class ScannedImage:
    reference: str
    architecture: str
    labels: dict[str, str]
    digest: str | None


@dataclass
class ScanReport:
    images: list[ScannedImage] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _next_link(response: HTTPResponse) -> str | None:
    """The ``Link: <...>; rel="next"`` of a paginated catalog or tag list."""
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', response.headers.get("Link", ""))
    return match.group(1) if match else None


def _challenge(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


class RegistryClient:
    """The Docker Registry HTTP API v2, with basic auth or the bearer-token dance of Docker Hub/Harbor."""

    def __init__(self, access: RegistryAccess, *, timeout: float = 30.0):
        self.access = access
        self.timeout = timeout
        self._token: str | None = None
        self.http = AsyncHTTPClient()

    def _request(self, url: str, headers: dict[str, str], *, basic: bool) -> HTTPRequest:
        kwargs: dict[str, Any] = {}
        if basic and self.access.username:
            kwargs = {"auth_username": self.access.username, "auth_password": self.access.password or ""}
        return HTTPRequest(
            url, headers=headers, validate_cert=self.access.ssl_verify, request_timeout=self.timeout, **kwargs
        )

    async def _fetch(self, request: HTTPRequest) -> HTTPResponse:
        try:
            return await self.http.fetch(request, raise_error=False)
        except (OSError, HTTPClientError, asyncio.TimeoutError) as e:
            raise RegistryError(f"{request.url}: {e}") from None

    async def get(self, path: str, accept: str | None = None) -> HTTPResponse:
        url = urljoin(self.access.url + "/", path.lstrip("/")) if not path.startswith("http") else path
        headers = {"Accept": accept} if accept else {}
        for attempt in range(2):
            if self._token:
                request = self._request(url, {**headers, "Authorization": f"Bearer {self._token}"}, basic=False)
            else:
                request = self._request(url, headers, basic=True)
            response = await self._fetch(request)
            challenge = response.headers.get("WWW-Authenticate", "")
            if response.code == 401 and attempt == 0 and challenge.lower().startswith("bearer "):
                self._token = await self._bearer_token(_challenge(challenge))
                continue
            if response.code != 200:
                detail = (response.body or b"")[:200].decode(errors="replace").strip()
                raise RegistryError(f"{url}: HTTP {response.code} {detail}".rstrip())
            return response
        raise RegistryError(f"{url}: still refused after authenticating")  # pragma: no cover - loop exits above

    async def _bearer_token(self, challenge: dict[str, str]) -> str:
        realm = challenge.get("realm")
        if not realm:
            raise RegistryError(f"{self.access.hostname}: a bearer challenge without a realm")
        query = urlencode({k: v for k, v in challenge.items() if k in ("service", "scope")})
        response = await self._fetch(self._request(f"{realm}?{query}" if query else realm, {}, basic=True))
        if response.code != 200:
            raise RegistryError(f"{self.access.hostname}: the token service answered HTTP {response.code}")
        data = json.loads(response.body)
        token = data.get("token") or data.get("access_token")
        if not token:
            raise RegistryError(f"{self.access.hostname}: the token service gave no token")
        return token

    async def get_json(self, path: str, accept: str | None = None) -> tuple[Any, HTTPResponse]:
        response = await self.get(path, accept)
        try:
            return json.loads(response.body), response
        except ValueError:
            raise RegistryError(f"{response.effective_url}: the answer is not JSON") from None

    async def paged(self, path: str, key: str) -> list[str]:
        items: list[str] = []
        next_path: str | None = path
        while next_path:
            data, response = await self.get_json(next_path)
            items += data.get(key) or []
            next_path = _next_link(response)
        return items

    async def image(self, repo: str, reference: str) -> list[tuple[str, dict[str, str], str | None]]:
        """(architecture, labels, digest) of each platform of ``repo:reference``."""
        accept = ", ".join((MANIFEST_V2, OCI_MANIFEST, MANIFEST_LIST, OCI_INDEX))
        manifest, response = await self.get_json(f"/v2/{repo}/manifests/{reference}", accept)
        digest = response.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(response.body).hexdigest()
        media = manifest.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0]
        if media in (MANIFEST_LIST, OCI_INDEX) or "manifests" in manifest:
            out = []
            for entry in manifest.get("manifests", []):
                platform = entry.get("platform") or {}
                if platform.get("os", "linux") != "linux" or platform.get("architecture") in (None, "unknown"):
                    continue  # attestations and other operating systems
                out += await self.image(repo, entry["digest"])
            return out
        if manifest.get("schemaVersion") != 2 or "config" not in manifest:
            raise RegistryError(f"{repo}:{reference}: unsupported manifest (schema {manifest.get('schemaVersion')})")
        config, _ = await self.get_json(f"/v2/{repo}/blobs/{manifest['config']['digest']}")
        labels = (config.get("config") or {}).get("Labels") or {}
        arch = config.get("architecture") or "amd64"
        return [(ARCHITECTURES.get(arch, arch), {str(k): str(v) for k, v in labels.items()}, digest)]


async def scan_registry(access: RegistryAccess, report: ScanReport) -> None:
    """Add every tag of every repository (under the registry's project, when set) to ``report``."""
    client = RegistryClient(access)
    try:
        repos = await client.paged("/v2/_catalog?n=1000", "repositories")
    except RegistryError as e:
        report.errors.append(f"{access.hostname}: cannot list repositories: {e}")
        return
    if access.project:
        repos = [r for r in repos if r.startswith(access.project.strip("/") + "/")]
    limit = asyncio.Semaphore(SCAN_CONCURRENCY)

    async def one(repo: str, tag: str) -> None:
        ref = f"{access.hostname}/{repo}:{tag}"
        async with limit:
            try:
                platforms = await client.image(repo, tag)
            except (RegistryError, KeyError, TypeError, AttributeError) as e:
                report.errors.append(f"{ref}: {e}")
                return
        for arch, labels, digest in platforms:
            if any(k.startswith(PLATFORM_LABEL_PREFIX) for k in labels):
                report.images.append(ScannedImage(ref, arch, labels, digest))
            else:
                report.skipped.append(f"{ref} ({arch}): no {PLATFORM_LABEL_PREFIX}* label")

    jobs = []
    for repo in repos:
        try:
            tags = await client.paged(f"/v2/{repo}/tags/list?n=1000", "tags")
        except RegistryError as e:
            report.errors.append(f"{access.hostname}/{repo}: cannot list tags: {e}")
            continue
        jobs += [one(repo, tag) for tag in tags]
    await asyncio.gather(*jobs)


class ImageRescanHandler(AdminHandler):
    """Read every registry and upsert the images labeled for the platform (F42 refresh, F47 rescan).

    Registries are read concurrently on the event loop; the database is written in one
    transaction afterwards, so a scan that fails half-way leaves the images as they were for
    that registry and reports why instead of answering 500.
    """

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"registry"})
        only = pick(data, {"registry": str}).get("registry") or self.get_query_argument("registry", None)

        def registries(db: DB) -> list[RegistryAccess]:
            query = select(m.ContainerRegistry).order_by(m.ContainerRegistry.hostname)
            if only:
                query = query.where(m.ContainerRegistry.hostname == admin.get_registry(db, only).hostname)
            return [
                RegistryAccess(r.hostname, r.url, r.username, r.password, r.project, bool(r.ssl_verify))
                for r in db.scalars(query)
            ]

        accesses = await self.run_db(registries)
        report = ScanReport()
        await asyncio.gather(*(scan_registry(a, report) for a in accesses))

        def store(db: DB) -> dict[str, Any]:
            added, updated = [], []
            for image in sorted(report.images, key=lambda i: (i.reference, i.architecture)):
                host = image.reference.split("/", 1)[0]
                try:
                    if admin.parse_image_ref(image.reference)[0] != host:
                        raise admin.AdminError(
                            f"registry host name {host!r} is not read as a registry in image references "
                            "(it needs a '.', a ':port' or to be 'localhost')"
                        )
                    row, created = admin.upsert_image(
                        db, image.reference, labels=image.labels, architecture=image.architecture, digest=image.digest
                    )
                except admin.AdminError as e:  # checked before the row is touched: the others still count
                    report.errors.append(f"{image.reference} ({image.architecture}): {e}")
                    continue
                (added if created else updated).append(f"{row.reference} ({row.architecture})")
            return {
                "added": len(added),
                "updated": len(updated),
                "images": added + updated,
                "skipped": sorted(report.skipped),
                "errors": sorted(report.errors),
                "registries": [a.hostname for a in accesses],
            }

        self.send(await self.run_db(store))


# --- presets (F43) ---------------------------------------------------------------------------------

PRESET_FIELDS = {"resource_slots": dict, "shared_memory": (str, int), "scaling_group": str}


class PresetsHandler(AdminHandler):
    async def get(self):
        rows = await self.run_db(
            lambda db: [views.preset_view(p) for p in db.scalars(select(m.ResourcePreset).order_by("name"))]
        )
        self.send({"presets": rows})

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"name", *PRESET_FIELDS})
        fields = pick(data, {"name": str, **PRESET_FIELDS})
        name, slots = fields.pop("name", ""), fields.pop("resource_slots", {})
        self.send(
            await self.run_db(lambda db: views.preset_view(admin.create_preset(db, name, slots, **fields))), status=201
        )


class PresetHandler(AdminHandler):
    async def get(self, name: str):
        self.send(await self.run_db(lambda db: views.preset_view(admin.get_preset(db, name))))

    async def patch(self, name: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, set(PRESET_FIELDS))
        fields = pick(data, PRESET_FIELDS)
        self.send(await self.run_db(lambda db: views.preset_view(admin.update_preset(db, name, **fields))))

    async def delete(self, name: str):
        self.require_superadmin()
        await self.run_db(admin.delete_preset, name)
        self.send({"deleted": name})


# --- agents (F44) ------------------------------------------------------------------------------------


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


# --- resource groups (F45) ----------------------------------------------------------------------------

SGROUP_FIELDS = {
    "description": str,
    "scheduler": str,
    "pending_timeout": int,
    "agent_selection": str,
    "fifo_max_skips": int,
    "is_active": bool,
}


class ScalingGroupsHandler(AdminHandler):
    async def get(self):
        me = self.me

        def run(db: DB) -> list[dict[str, Any]]:
            rows = db.scalars(select(m.ScalingGroup).order_by(m.ScalingGroup.name))
            # A domain admin sees the resource groups open to their domain.
            return [
                views.scaling_group_view(s)
                for s in rows
                if me.is_superadmin or any(d.name == me.domain for d in s.domains)
            ]

        self.send({"scaling_groups": await self.run_db(run)})

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        allowed = {"name", "driver", *SGROUP_FIELDS}
        reject_unknown(data, allowed)
        fields = pick(data, {"name": str, "driver": str, **SGROUP_FIELDS})
        name = fields.pop("name", "")
        self.send(
            await self.run_db(lambda db: views.scaling_group_view(admin.create_scaling_group(db, name, **fields))),
            status=201,
        )


class ScalingGroupHandler(AdminHandler):
    async def get(self, name: str):
        me = self.me

        def run(db: DB) -> dict[str, Any]:
            sgroup = admin.get_scaling_group(db, name)
            if not me.is_superadmin and not any(d.name == me.domain for d in sgroup.domains):
                raise APIError(403, f"resource group {name!r} is not open to your domain {me.domain!r}")
            return views.scaling_group_view(sgroup)

        self.send(await self.run_db(run))

    async def patch(self, name: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, set(SGROUP_FIELDS))
        fields = pick(data, SGROUP_FIELDS)
        self.send(
            await self.run_db(lambda db: views.scaling_group_view(admin.update_scaling_group(db, name, **fields)))
        )


def _group_pairs(values: list[Any]) -> list[tuple[str, str]]:
    """Groups as ``"domain/name"`` (how the view lists them), ``{"name", "domain"}`` or a name in default."""
    pairs = []
    for value in values:
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            pairs.append((value["name"], str(value.get("domain") or admin.DEFAULT)))
        elif isinstance(value, str) and "/" in value:
            domain, _, name = value.partition("/")
            pairs.append((name, domain))
        elif isinstance(value, str):
            pairs.append((value, admin.DEFAULT))
        else:
            raise APIError(400, f'a group is \'domain/name\', a name or {{"name", "domain"}}, not {value!r}')
    return pairs


class ScalingGroupAllowHandler(AdminHandler):
    async def post(self, name: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"domains", "groups", "keypairs", "revoke"})
        fields = pick(
            data, {"domains": list, "groups": list, "keypairs": list, "revoke": bool}, mixed_lists=frozenset({"groups"})
        )
        groups = _group_pairs(fields.pop("groups", []))

        def run(db: DB) -> dict[str, Any]:
            return views.scaling_group_view(admin.allow_scaling_group(db, name, groups=groups, **fields))

        self.send(await self.run_db(run))


# --- domains and groups ----------------------------------------------------------------------------

ORG_FIELDS = {
    "description": str,
    "total_resource_slots": dict,
    "allowed_vfolder_hosts": list,
    "allowed_docker_registries": list,
}


class DomainsHandler(AdminHandler):
    async def get(self):
        scope = self.domain_scope(None)

        def run(db: DB) -> list[dict[str, Any]]:
            query = select(m.Domain).order_by(m.Domain.name)
            if scope is not None:
                query = query.where(m.Domain.name == scope)
            return [views.domain_view(d) for d in db.scalars(query)]

        self.send({"domains": await self.run_db(run)})

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"name", *ORG_FIELDS})
        fields = pick(data, {"name": str, **ORG_FIELDS})
        name = fields.pop("name", "")
        self.send(await self.run_db(lambda db: views.domain_view(admin.create_domain(db, name, **fields))), status=201)


class GroupsHandler(AdminHandler):
    async def get(self):
        scope = self.domain_scope(self.get_query_argument("domain", None))

        def run(db: DB) -> list[dict[str, Any]]:
            query = select(m.Group).order_by(m.Group.domain_name, m.Group.name)
            if scope is not None:
                query = query.where(m.Group.domain_name == scope)
            return [views.group_view(g) for g in db.scalars(query)]

        self.send({"groups": await self.run_db(run)})

    async def post(self):
        data = self.json_body()
        reject_unknown(data, {"name", "domain", *ORG_FIELDS})
        fields = pick(data, {"name": str, "domain": str, **ORG_FIELDS})
        fields.setdefault("domain", self.me.domain)
        self.require_admin(fields["domain"])
        name = fields.pop("name", "")
        self.send(await self.run_db(lambda db: views.group_view(admin.create_group(db, name, **fields))), status=201)


class DomainHandler(AdminHandler):
    """``GET|PATCH /admin/domains/{name}``: a domain; superadmins change its caps and description.

    ``total_resource_slots`` in a PATCH changes the slots it names (``"unlimited"`` lifts a
    cap) and keeps the others; see :func:`..db.admin.update_domain`.
    """

    async def get(self, name: str):
        self.require_admin(name)
        self.send(await self.run_db(lambda db: views.domain_view(admin.get_domain(db, name))))

    async def patch(self, name: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, set(ORG_FIELDS))
        fields = pick(data, ORG_FIELDS)
        self.send(await self.run_db(lambda db: views.domain_view(admin.update_domain(db, name, **fields))))


class GroupHandler(AdminHandler):
    """``GET|PATCH /admin/groups/{name}?domain=``: a group (project); the admins of its domain change
    its caps and description, as for a domain (``domain`` defaults to the caller's)."""

    def _domain(self, given: str | None = None) -> str:
        domain = given or self.get_query_argument("domain", None) or self.me.domain
        self.require_admin(domain)
        return domain

    async def get(self, name: str):
        domain = self._domain()
        self.send(await self.run_db(lambda db: views.group_view(admin.get_group(db, name, domain))))

    async def patch(self, name: str):
        data = self.json_body()
        reject_unknown(data, {"domain", *ORG_FIELDS})
        fields = pick(data, {"domain": str, **ORG_FIELDS})
        domain = self._domain(fields.pop("domain", None))
        self.send(await self.run_db(lambda db: views.group_view(admin.update_group(db, name, domain, **fields))))


class GroupMembersHandler(AdminHandler):
    async def post(self, name: str):
        data = self.json_body()
        reject_unknown(data, {"add", "remove", "domain"})
        fields = pick(data, {"add": list, "remove": list, "domain": str})
        domain = fields.get("domain") or self.get_query_argument("domain", None) or self.me.domain
        self.require_admin(domain)

        def run(db: DB) -> dict[str, Any]:
            group = admin.get_group(db, name, domain)
            added, removed = [], []
            for key in fields.get("add", []):
                user = admin.get_user(db, key)
                check_user_reach(self.me, user)
                if admin.add_user_to_group(db, group, user):
                    added.append(user.email)
            for key in fields.get("remove", []):
                user = admin.get_user(db, key)
                check_user_reach(self.me, user)
                if admin.remove_user_from_group(db, group, user):
                    removed.append(user.email)
            return {"group": views.group_view(group), "added": added, "removed": removed}

        self.send(await self.run_db(run))


# --- settings (F46) and maintenance (F47) ------------------------------------------------------------


class SettingsHandler(AdminHandler):
    """What this installation runs with; secrets (the transfer key, the hub token) are never shown."""

    async def get(self):
        self.require_superadmin()
        app = self.manager
        engine = app.db_factory.kw["bind"]

        def run(db: DB) -> dict[str, Any]:
            return {
                "users": _count(db, m.User),
                "active_users": _count(db, m.User, m.User.status == m.UserStatus.ACTIVE),
                "sessions": _count(db, m.Session),
                "active_sessions": _count(db, m.Session, m.Session.status.in_(session_db.RESERVING)),
                "agents": _count(db, m.Agent),
                "alive_agents": _count(db, m.Agent, m.Agent.status == m.AgentStatus.ALIVE),
                "images": _count(db, m.Image),
                "registries": _count(db, m.ContainerRegistry),
                "domains": _count(db, m.Domain),
                "groups": _count(db, m.Group),
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


class RecalculateUsageHandler(_ResourcesRecalculate):
    """``POST /admin/maintenance/recalculate-usage`` (superadmins): ``/resource/recalculate-usage`` for everyone."""

    async def post(self):
        self.require_admin()  # a plain user hears "administrator", like on every /admin path
        self.require_superadmin()
        await super().post()


handlers = [
    (r"/admin/users/?", UsersHandler),
    (r"/admin/users/([^/]+)", UserHandler),
    (r"/admin/keypairs/?", KeypairsHandler),
    (r"/admin/keypairs/([^/]+)", KeypairHandler),
    (r"/admin/policies/?", PoliciesHandler),
    (r"/admin/policies/([^/]+)", PolicyHandler),
    (r"/admin/images/?", ImagesHandler),
    (r"/admin/images/rescan", ImageRescanHandler),
    (r"/admin/images/cleanup", ImageCleanupHandler),
    (r"/admin/images/(.+)/install", ImageInstallHandler),
    (r"/admin/images/(.+)", ImageHandler),
    (r"/admin/registries/?", RegistriesHandler),
    (r"/admin/registries/([^/]+)", RegistryHandler),
    (r"/admin/presets/?", PresetsHandler),
    (r"/admin/presets/([^/]+)", PresetHandler),
    (r"/admin/agents/?", AgentsHandler),
    (r"/admin/agents/([^/]+)", AgentHandler),
    (r"/admin/scaling-groups/?", ScalingGroupsHandler),
    (r"/admin/scaling-groups/([^/]+)/allow", ScalingGroupAllowHandler),
    (r"/admin/scaling-groups/([^/]+)", ScalingGroupHandler),
    (r"/admin/domains/?", DomainsHandler),
    (r"/admin/domains/([^/]+)", DomainHandler),
    (r"/admin/groups/?", GroupsHandler),
    (r"/admin/groups/([^/]+)/members", GroupMembersHandler),
    (r"/admin/groups/([^/]+)", GroupHandler),
    (r"/admin/settings/?", SettingsHandler),
    (r"/admin/maintenance/recalculate-usage", RecalculateUsageHandler),
]
