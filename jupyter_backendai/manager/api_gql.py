"""``POST /admin/gql``: the GraphQL endpoint Backend.AI's own client and console query.

Backend.AI's client sends GraphQL for its listings and account administration (``backend.ai
vfolder list``, ``admin user list|info|add|update|delete``, ``admin keypair ...``, ``admin
session list|info``, ``admin image list``, ``admin keypair-resource-policy list|info``,
``admin scaling-group list|info``, ``admin agent list|info``, ``admin domain ...``, ``admin
group ...``, ``admin storage ...``, ``ps``). This module answers those documents with a real
GraphQL executor (graphql-core) over a schema that has the fields the client asks for, with
Backend.AI's names and shapes (resource slots and nested objects as JSON strings, as its
output formatters expect).

Who sees what is the REST API's rule (:mod:`.api_admin`, :mod:`.api_folders`,
:mod:`.api_sessions`): a user sees their own account, keypairs, folders and sessions; a
domain admin their domain's; a superadmin everything. Agents and storage volumes are for
superadmins. Mutations go through :mod:`..db.admin`, as the REST endpoints do.

Answers follow Backend.AI's manager: HTTP 200 with ``{"data": ..., "errors": [...]}``, where
each error names the reason (an unknown field, a refusal, a bad argument) and the path of the
field it belongs to. A body that is not a GraphQL request is a 400. Mutations answer
``{ok, msg}``: ``ok: false`` with the reason for input the database layer refuses.
``/admin/graphql`` (API versions before v6.20210815) answers the bare ``data`` object, or a 400
with the errors.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError, GraphQLScalarType, build_schema, graphql_sync
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DB

from ..core.like import like_matcher
from ..core.slots import ResourceSlots
from ..db import admin, views
from ..db import folders as folder_db
from ..db import images as image_db
from ..db import models as m
from ..db import sessions as session_db
from ..storage import StorageError
from .api_admin import check_user_reach
from .base import APIError, APIHandler, Identity

log = logging.getLogger("jupyter_backendai.manager")

MAX_QUERY_LENGTH = 64 * 1024
MAX_PAGE_SIZE = 100  # as Backend.AI's client (ai.backend.client.pagination)

SDL = """
scalar UUID
scalar DateTime
scalar JSONString
scalar BigInt

type Query {
  user(email: String, domain_name: String): User
  user_from_uuid(user_id: ID, domain_name: String): User
  users(domain_name: String, group_id: UUID, is_active: Boolean, status: String): [User]
  user_list(limit: Int!, offset: Int!, filter: String, order: String, domain_name: String,
            group_id: UUID, is_active: Boolean, status: String): UserList

  keypair(domain_name: String, access_key: String): KeyPair
  keypairs(domain_name: String, email: String, is_active: Boolean): [KeyPair]
  keypair_list(limit: Int!, offset: Int!, filter: String, order: String, domain_name: String,
               email: String, is_active: Boolean): KeyPairList

  keypair_resource_policy(name: String): KeyPairResourcePolicy
  keypair_resource_policies: [KeyPairResourcePolicy]

  domain(name: String): Domain
  domains(is_active: Boolean): [Domain]
  group(id: UUID!, domain_name: String): Group
  groups(domain_name: String, is_active: Boolean): [Group]
  groups_by_name(name: String!, domain_name: String): [Group]

  image(reference: String!, architecture: String): Image
  images(is_installed: Boolean, is_operation: Boolean): [Image]

  resource_preset(name: String!): ResourcePreset
  resource_presets: [ResourcePreset]

  scaling_group(name: String): ScalingGroup
  scaling_groups(name: String, is_active: Boolean): [ScalingGroup]
  scaling_groups_for_domain(domain: String!, is_active: Boolean): [ScalingGroup]
  scaling_groups_for_user_group(user_group: String!, is_active: Boolean): [ScalingGroup]
  scaling_groups_for_keypair(access_key: String!, is_active: Boolean): [ScalingGroup]

  agent(agent_id: String!): Agent
  agents(scaling_group: String, status: String): [Agent]
  agent_list(limit: Int!, offset: Int!, filter: String, order: String, scaling_group: String,
             status: String): AgentList

  compute_session(id: UUID!): ComputeSession
  compute_session_list(limit: Int!, offset: Int!, filter: String, order: String, domain_name: String,
                       group_id: String, access_key: String, status: String): ComputeSessionList

  vfolder(id: String): VirtualFolder
  vfolder_list(limit: Int!, offset: Int!, filter: String, order: String, domain_name: String,
               group_id: UUID, access_key: String): VirtualFolderList

  storage_volume(id: String): StorageVolume
  storage_volume_list(limit: Int!, offset: Int!, filter: String, order: String): StorageVolumeList
}

type Mutation {
  create_user(email: String!, props: UserInput!): CreateUser
  modify_user(email: String!, props: ModifyUserInput!): ModifyUser
  delete_user(email: String!): DeleteUser
  purge_user(email: String!, props: PurgeUserInput!): PurgeUser
  create_keypair(user_id: String!, props: KeyPairInput!): CreateKeyPair
  modify_keypair(access_key: String!, props: ModifyKeyPairInput!): ModifyKeyPair
  delete_keypair(access_key: String!): DeleteKeyPair
}

type UserGroup { id: UUID name: String }
type UserInfo { email: String full_name: String username: String role: String domain_name: String }

type User {
  id: ID uuid: UUID username: String email: String need_password_change: Boolean full_name: String
  description: String is_active: Boolean status: String status_info: String created_at: DateTime
  modified_at: DateTime domain_name: String role: String resource_policy: String
  allowed_client_ip: [String] totp_activated: Boolean sudo_session_enabled: Boolean
  main_access_key: String groups: [UserGroup]
}
type UserList { items: [User]! total_count: Int! }

type KeyPair {
  user_id: String user: UUID user_info: UserInfo projects: [String] access_key: String secret_key: String
  is_active: Boolean is_admin: Boolean resource_policy: String created_at: DateTime modified_at: DateTime
  last_used: DateTime rate_limit: Int num_queries: Int concurrency_used: Int concurrency_limit: Int
  domain_name: String ssh_public_key: String ssh_private_key: String dotfiles: String bootstrap_script: String
}
type KeyPairList { items: [KeyPair]! total_count: Int! }

type KeyPairResourcePolicy {
  name: String created_at: DateTime default_for_unspecified: String total_resource_slots: JSONString
  max_session_lifetime: Int max_concurrent_sessions: Int max_containers_per_session: Int
  idle_timeout: BigInt max_pending_session_count: Int max_vfolder_count: Int max_vfolder_size: BigInt
  allowed_vfolder_hosts: [String]
}

type Domain {
  name: String description: String is_active: Boolean created_at: DateTime modified_at: DateTime
  total_resource_slots: JSONString allowed_vfolder_hosts: [String] allowed_docker_registries: [String]
  integration_id: String scaling_groups: [String]
}

type Group {
  id: UUID name: String description: String is_active: Boolean created_at: DateTime modified_at: DateTime
  domain_name: String total_resource_slots: JSONString allowed_vfolder_hosts: [String]
  allowed_docker_registries: [String] integration_id: String scaling_groups: [String]
}

type KVPair { key: String value: String }
type ResourceLimit { key: String min: String max: String }

type Image {
  id: UUID name: String humanized_name: String tag: String registry: String architecture: String
  digest: String size_bytes: BigInt aliases: [String] labels: [KVPair] resource_limits: [ResourceLimit]
  supported_accelerators: [String] installed: Boolean installed_agents: [String] hash: String
}

type ResourcePreset { name: String resource_slots: JSONString shared_memory: BigInt scaling_group_name: String }

type ScalingGroup {
  name: String description: String is_active: Boolean is_public: Boolean created_at: DateTime
  wsproxy_addr: String wsproxy_api_token: String driver: String driver_opts: JSONString
  scheduler: String scheduler_opts: JSONString use_host_network: Boolean
}

type Agent {
  id: ID status: String status_changed: DateTime region: String architecture: String scaling_group: String
  schedulable: Boolean available_slots: JSONString occupied_slots: JSONString addr: String
  first_contact: DateTime lost_at: DateTime live_stat: JSONString version: String compute_plugins: JSONString
  hardware_metadata: JSONString local_config: JSONString cpu_cur_pct: Float mem_cur_bytes: Float
  compute_containers(status: String): [ComputeContainer]
}
type AgentList { items: [Agent]! total_count: Int! }

type ComputeContainer {
  id: UUID idx: Int role: String hostname: String cluster_role: String cluster_idx: Int
  cluster_hostname: String session_id: UUID image: String registry: String status: String
  status_changed: DateTime status_info: String status_data: JSONString agent: String agent_addr: String
  container_id: String resource_opts: JSONString occupied_slots: JSONString live_stat: JSONString
  last_stat: JSONString preopen_ports: [Int] created_at: DateTime terminated_at: DateTime
}

type SessionDependency { id: UUID name: String }

type ComputeSession {
  id: UUID session_id: UUID main_kernel_id: UUID tag: String name: String type: String image: String
  registry: String cluster_template: String cluster_mode: String cluster_size: Int domain_name: String
  group_id: UUID group_name: String user_id: UUID user_email: String access_key: String
  created_user_email: String created_user_id: UUID status: String status_info: String
  status_data: JSONString status_changed: DateTime created_at: DateTime terminated_at: DateTime
  starts_at: DateTime scheduled_at: DateTime startup_command: String result: String
  resource_opts: JSONString scaling_group: String service_ports: JSONString mounts: [String]
  occupying_slots: JSONString occupied_slots: JSONString requested_slots: JSONString agent_ids: [String]
  containers: [ComputeContainer] dependencies: [SessionDependency] abusing_reports: [JSONString]
  idle_checks: JSONString
}
type ComputeSessionList { items: [ComputeSession]! total_count: Int! }

type VirtualFolder {
  id: UUID host: String quota_scope_id: String name: String user: UUID user_email: String group: UUID
  group_name: String creator: String domain_name: String unmanaged_path: String usage_mode: String
  permission: String ownership_type: String max_files: Int max_size: BigInt created_at: DateTime
  last_used: DateTime num_files: Int cur_size: BigInt cloneable: Boolean status: String
}
type VirtualFolderList { items: [VirtualFolder]! total_count: Int! }

type StorageVolume {
  id: String backend: String fsprefix: String path: String capabilities: [String]
  hardware_metadata: JSONString performance_metric: JSONString usage: JSONString
}
type StorageVolumeList { items: [StorageVolume]! total_count: Int! }

input UserInput {
  username: String password: String! need_password_change: Boolean full_name: String description: String
  is_active: Boolean status: String domain_name: String role: String group_ids: [String]
  allowed_client_ip: [String] totp_activated: Boolean resource_policy: String sudo_session_enabled: Boolean
}
input ModifyUserInput {
  username: String password: String need_password_change: Boolean full_name: String description: String
  is_active: Boolean status: String domain_name: String role: String group_ids: [String]
  allowed_client_ip: [String] totp_activated: Boolean resource_policy: String sudo_session_enabled: Boolean
  main_access_key: String
}
input KeyPairInput {
  is_active: Boolean is_admin: Boolean resource_policy: String! concurrency_limit: Int rate_limit: Int!
}
input ModifyKeyPairInput {
  is_active: Boolean is_admin: Boolean resource_policy: String concurrency_limit: Int rate_limit: Int
}

type CreateUser { ok: Boolean msg: String user: User }
type ModifyUser { ok: Boolean msg: String user: User }
type DeleteUser { ok: Boolean msg: String }
type PurgeUser { ok: Boolean msg: String }
input PurgeUserInput { purge_shared_vfolders: Boolean }
type CreateKeyPair { ok: Boolean msg: String keypair: KeyPair }
type ModifyKeyPair { ok: Boolean msg: String }
type DeleteKeyPair { ok: Boolean msg: String }
"""


def _build_schema():
    schema = build_schema(SDL)

    def uuid_value(value: Any) -> uuid.UUID:
        try:
            return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            raise GraphQLError(f"{value!r} is not a UUID") from None

    def uuid_literal(node: Any, _variables: Any = None) -> uuid.UUID:
        return uuid_value(getattr(node, "value", None))

    scalar = schema.type_map["UUID"]
    assert isinstance(scalar, GraphQLScalarType)
    scalar.serialize = str
    scalar.parse_value = uuid_value
    scalar.parse_literal = uuid_literal
    return schema


SCHEMA = _build_schema()


class Refused(GraphQLError):
    """A refusal with the REST API's words and status (kept in ``extensions``)."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message, extensions={"status": status})


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Refusals of the shared layers become GraphQL errors with their reason; a bug is not shown."""

    @functools.wraps(fn)
    def wrapper(info, **kwargs):
        try:
            return fn(info.context, **kwargs)
        except GraphQLError:
            raise
        except APIError as e:
            raise Refused(e.title, e.status_code) from None
        except (admin.AdminError, StorageError) as e:
            raise Refused(str(e), getattr(e, "status", 400) or 400) from None
        except Exception:
            log.exception("GraphQL field %s failed", info.field_name)
            raise GraphQLError("internal error; the server log has the details") from None

    return wrapper


def _lazy(fn: Callable[[], Any]) -> Callable[..., Any]:
    """A field computed only when a query asks for it (graphql-core calls callables)."""
    return _guard(lambda ctx, **kwargs: fn())


# --- the request's context ----------------------------------------------------------------------


@dataclass
class Ctx:
    db: DB
    me: Identity
    store: Any
    failed: bool = False
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> m.User:
        if "user" not in self._cache:
            self._cache["user"] = self.db.get(m.User, self.me.user_id)
        return self._cache["user"]

    def require_admin(self) -> None:
        if not self.me.is_admin:
            raise Refused("this needs an administrator")

    def require_superadmin(self) -> None:
        if not self.me.is_superadmin:
            raise Refused("this needs a superadmin")

    def domain_scope(self, requested: str | None) -> str | None:
        """The domain an admin listing covers: a superadmin's choice (None = all), else the admin's own."""
        self.require_admin()
        if self.me.is_superadmin:
            return requested or None
        if requested and requested != self.me.domain:
            raise Refused(f"you administer domain {self.me.domain!r}, not {requested!r}")
        return self.me.domain

    def may_see_domain(self, domain: str) -> bool:
        return self.me.is_superadmin or domain == self.me.domain


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def _slots(value: ResourceSlots | None) -> str:
    return _json(value.to_json() if value else {})


# --- lists: Backend.AI's filter and order arguments ------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)"""
    r"""|(?P<op>==|!=|<=|>=|<|>|&|\||\(|\)|\[|\]|,)|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"""
)
_WORD_OPS = ("like", "ilike", "in", "contains", "is", "isnot")
# Filters are typed by people or built by consoles from a few search fields: a few hundred
# characters at most. The bound keeps the work of one filter (its length times every listed
# value's length) small whatever the caller sends.
MAX_FILTER_LENGTH = 2048


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _condition(op: str, value: Any) -> Callable[[Any], bool]:
    """``row value <op> value``; strings compare case-insensitively (``status == "ACTIVE"`` is Backend.AI's way)."""
    if op in ("like", "ilike"):
        if not isinstance(value, str):
            raise Refused(f"{op} needs a quoted pattern", 400)
        matches = like_matcher(value, ignore_case=op == "ilike")
        return lambda x: x is not None and matches(str(x))
    if op == "in":
        if not isinstance(value, list):
            raise Refused('in needs a list, like ["a", "b"]', 400)
        folded = [_fold(v) for v in value]
        return lambda x: _fold(x) in folded
    if op == "contains":
        return lambda x: x is not None and _fold(value) in _fold(x if isinstance(x, (str, list)) else str(x))
    if isinstance(value, list):
        raise Refused(f"{op} compares with one value, not a list", 400)
    if op in ("is", "isnot"):
        if value is not None:
            raise Refused(f"{op} compares with null", 400)
        return (lambda x: x is None) if op == "is" else (lambda x: x is not None)
    if op in ("==", "!="):
        equal = (lambda x: _fold(x) == _fold(value)) if value is not None else (lambda x: x is None)
        return equal if op == "==" else (lambda x: not equal(x))
    order = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
    compare = order[op]

    def check(x: Any) -> bool:
        try:
            return x is not None and compare(x, value)
        except TypeError:
            return False

    return check


def _filter_tokens(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise Refused(f"cannot read the filter at {text[pos : pos + 20]!r}", 400)
        pos = match.end()
        if match.group("str") is not None:
            tokens.append(("value", re.sub(r"\\(.)", r"\1", match.group("str")[1:-1])))
        elif match.group("num") is not None:
            num = match.group("num")
            tokens.append(("value", float(num) if "." in num else int(num)))
        elif match.group("op") is not None:
            if match.group("op") in "()":
                raise Refused("parentheses are not supported in filters", 400)
            tokens.append(("op", match.group("op")))
        else:
            word = match.group("word")
            lowered = word.lower()
            if lowered in _WORD_OPS:
                tokens.append(("op", lowered))
            elif lowered in ("true", "false"):
                tokens.append(("value", lowered == "true"))
            elif lowered in ("null", "none"):
                tokens.append(("value", None))
            else:
                tokens.append(("field", word))
    return tokens


def parse_filter(text: str, fields: Iterable[str]) -> Callable[[Mapping[str, Any]], bool]:
    """Backend.AI's filter minilang over listed rows: ``email ilike "%@lab.org" & role in ["ADMIN"] | ...``.

    Conditions are ``field operator value`` with ``== != < <= > >= like ilike in contains is
    isnot``, joined by ``&`` (binding tighter) and ``|``; no parentheses. A field that is not a
    scalar of the listed rows, or a malformed expression, is refused with the reason.
    """
    known = set(fields)
    tokens = _filter_tokens(text)
    alternatives: list[list[Callable[[Mapping[str, Any]], bool]]] = [[]]
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 3 or tokens[i][0] != "field" or tokens[i + 1][0] != "op":
            raise Refused("a filter condition is 'field operator value'", 400)
        name, op = tokens[i][1], tokens[i + 1][1]
        if name not in known:
            raise Refused(f"cannot filter on {name!r}; use one of {', '.join(sorted(known))}", 400)
        if op in ("&", "|", "[", "]", ","):
            raise Refused(f"{op!r} is not a comparison", 400)
        i += 2
        if tokens[i] == ("op", "["):  # a list of values
            values, i = [], i + 1
            while i < len(tokens) and tokens[i] != ("op", "]"):
                if tokens[i][0] != "value":
                    raise Refused('a list holds values, like ["a", "b"]', 400)
                values.append(tokens[i][1])
                i += 1
                if i < len(tokens) and tokens[i] == ("op", ","):
                    i += 1
            if i >= len(tokens):
                raise Refused("a list in the filter is not closed with ']'", 400)
            value: Any = values
        elif tokens[i][0] == "value":
            value = tokens[i][1]
        else:
            raise Refused("a filter condition is 'field operator value'", 400)
        i += 1
        test = _condition(op, value)
        alternatives[-1].append(lambda row, n=name, test=test: test(row.get(n)))
        if i < len(tokens):
            if tokens[i] not in (("op", "&"), ("op", "|")) or i + 1 >= len(tokens):
                raise Refused("join filter conditions with '&' or '|'", 400)
            if tokens[i][1] == "|":
                alternatives.append([])
            i += 1
    return lambda row: any(all(c(row) for c in conds) for conds in alternatives)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (value is None, value if isinstance(value, (int, float, bool)) else str(value or ""))


def page(
    rows: list[dict[str, Any]], *, limit: int, offset: int, filter: str | None, order: str | None
) -> dict[str, Any]:
    """Backend.AI's ``{items, total_count}`` of rows, after the optional filter and order."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise Refused(f"limit must be between 1 and {MAX_PAGE_SIZE}", 400)
    if offset < 0:
        raise Refused("offset must be 0 or more", 400)
    scalars = [k for k, v in (rows[0].items() if rows else ()) if not callable(v) and not isinstance(v, (list, dict))]
    if filter and len(filter) > MAX_FILTER_LENGTH:
        raise Refused(f"a filter is at most {MAX_FILTER_LENGTH} characters long, this one has {len(filter)}", 400)
    if filter:
        keep = parse_filter(filter, scalars) if rows else None
        rows = [r for r in rows if keep(r)] if keep else []
    if order:
        for part in reversed([p.strip() for p in order.split(",") if p.strip()]):
            desc = part.startswith("-")
            name = part.lstrip("+-")
            if rows and name not in scalars:
                raise Refused(f"cannot order by {name!r}; use one of {', '.join(sorted(scalars))}", 400)
            rows = sorted(rows, key=lambda r, n=name: _sort_key(r.get(n)), reverse=desc)
    return {"items": rows[offset : offset + limit], "total_count": len(rows)}


# --- rows as Backend.AI's objects ----------------------------------------------------------------


def user_item(u: m.User) -> dict[str, Any]:
    main = next((k.access_key for k in sorted(u.keypairs, key=lambda k: k.created_at) if k.is_active), None)
    return {
        "id": str(u.id),
        "uuid": str(u.id),
        "username": u.username,
        "email": u.email,
        "need_password_change": u.need_password_change,
        "full_name": u.full_name,
        "description": u.description,
        "is_active": u.is_active,
        "status": u.status.value,
        "status_info": None,
        "created_at": _iso(u.created_at),
        "modified_at": _iso(u.modified_at),
        "domain_name": u.domain_name,
        "role": u.role.value,
        "resource_policy": None,
        "allowed_client_ip": None,
        "totp_activated": False,
        "sudo_session_enabled": False,
        "main_access_key": main,
        "groups": [{"id": str(g.id), "name": g.name} for g in sorted(u.groups, key=lambda g: g.name)],
    }


def keypair_item(ctx: Ctx, k: m.KeyPair) -> dict[str, Any]:
    user = k.user
    db = ctx.db

    def ssh_public_key() -> str | None:
        row = db.get(m.SSHKeyPair, user.id)
        return row.public_key if row is not None else None

    return {
        "user_id": user.email,
        "user": str(user.id),
        "user_info": {
            "email": user.email,
            "full_name": user.full_name,
            "username": user.username,
            "role": user.role.value,
            "domain_name": user.domain_name,
        },
        "projects": sorted(g.name for g in user.groups),
        "access_key": k.access_key,
        # As the REST API: a secret is shown to its owner only (admins saw it once, at creation).
        "secret_key": k.secret_key if user.id == ctx.me.user_id else None,
        "is_active": k.is_active,
        "is_admin": k.is_admin,
        "resource_policy": k.resource_policy,
        "created_at": _iso(k.created_at),
        "modified_at": _iso(k.modified_at),
        "last_used": _iso(k.last_used),
        "rate_limit": k.rate_limit,
        "num_queries": k.num_queries,
        "concurrency_used": _lazy(lambda: sum(session_db.session_counts(db, k.access_key))),
        "concurrency_limit": k.policy.max_concurrent_sessions if k.policy else None,
        "domain_name": user.domain_name,
        "ssh_public_key": _lazy(ssh_public_key),
        "ssh_private_key": None,
        "dotfiles": None,
        "bootstrap_script": "",
    }


def policy_item(p: m.KeyPairResourcePolicy) -> dict[str, Any]:
    view = views.policy_view(p)
    view["total_resource_slots"] = _json(view["total_resource_slots"])
    view["default_for_unspecified"] = "UNLIMITED"
    return view


def domain_item(d: m.Domain, sgroups: list[str]) -> dict[str, Any]:
    view = views.domain_view(d)
    view.update(
        total_resource_slots=_json(view["total_resource_slots"]),
        modified_at=_iso(d.modified_at),
        integration_id=None,
        scaling_groups=sgroups,
    )
    return view


def group_item(g: m.Group, sgroups: list[str]) -> dict[str, Any]:
    view = views.group_view(g)
    view.pop("members")
    view.update(
        total_resource_slots=_json(view["total_resource_slots"]),
        modified_at=_iso(g.modified_at),
        integration_id=None,
        scaling_groups=sgroups,
    )
    return view


def image_item(i: m.Image, installed_agents: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": str(i.id),
        "name": i.name,
        "humanized_name": i.reference,
        "tag": i.tag,
        "registry": i.registry_host,
        "architecture": i.architecture,
        "digest": i.digest,
        # Sizes are not recorded by the rescan; Backend.AI's client formats this field as a number.
        "size_bytes": 0,
        "aliases": [],
        "labels": [{"key": k, "value": str(v)} for k, v in sorted((i.labels or {}).items())],
        "resource_limits": [{"key": k, "min": str(v), "max": None} for k, v in (i.min_slots or {}).items()],
        "supported_accelerators": sorted({k.split(".", 1)[0] for k in (i.min_slots or {}) if k.startswith("cuda.")}),
        "installed": i.installed,
        "installed_agents": installed_agents or [],
        "hash": i.digest,
    }


def preset_item(p: m.ResourcePreset) -> dict[str, Any]:
    return {
        "name": p.name,
        "resource_slots": _slots(p.resource_slots),
        "shared_memory": p.shared_memory,
        "scaling_group_name": p.scaling_group_name,
    }


def scaling_group_item(s: m.ScalingGroup) -> dict[str, Any]:
    return {
        "name": s.name,
        "description": s.description,
        "is_active": s.is_active,
        "is_public": True,
        "created_at": _iso(s.created_at),
        "wsproxy_addr": None,
        "wsproxy_api_token": None,
        "driver": s.driver,
        "driver_opts": _json(s.driver_opts or {}),
        "scheduler": s.scheduler.value,
        "scheduler_opts": _json(s.scheduler_opts or {}),
        "use_host_network": False,
    }


def _latest_samples(db: DB, session_ids: list[uuid.UUID]) -> dict[uuid.UUID, m.SessionUsage]:
    if not session_ids:
        return {}
    latest = (
        select(func.max(m.SessionUsage.id))
        .where(m.SessionUsage.session_id.in_(session_ids))
        .group_by(m.SessionUsage.session_id)
    )
    return {u.session_id: u for u in db.scalars(select(m.SessionUsage).where(m.SessionUsage.id.in_(latest)))}


def _stat(sample: m.SessionUsage | None) -> str | None:
    if sample is None:
        return None
    return _json(
        {
            "at": _iso(sample.at),
            "cpu_util": sample.cpu_percent,
            "cpu_used": sample.cpu_seconds,
            "mem": sample.mem_bytes,
            "io_read": sample.io_read_bytes,
            "io_write": sample.io_write_bytes,
            "gpu_util": sample.gpu_percent,
            # Backend.AI's names for the same readings of the CUDA devices.
            "cuda_util": sample.gpu_percent,
            "cuda_mem": sample.gpu_mem_bytes,
        }
    )


def container_item(s: m.Session, status_changed: str | None, sample: m.SessionUsage | None) -> dict[str, Any]:
    """A session is one container here: its ``main`` kernel, with the session's own id."""
    registry = admin.parse_image_ref(s.image)[0] if s.image else None
    ports = sorted({p for sp in (s.service_ports or []) for p in sp.get("ports", [])})
    return {
        "id": str(s.id),
        "idx": 0,
        "role": "main",
        "hostname": "main1",
        "cluster_role": "main",
        "cluster_idx": 1,
        "cluster_hostname": "main1",
        "session_id": str(s.id),
        "image": s.image,
        "registry": registry,
        "status": s.status.value,
        "status_changed": status_changed,
        "status_info": s.status_info,
        "status_data": _json({}),
        "agent": s.agent_id,
        "agent_addr": None,
        "container_id": s.container_id,
        "resource_opts": _json(s.resource_opts or {}),
        "occupied_slots": _slots(s.occupied_slots),
        "live_stat": _stat(sample),
        "last_stat": _stat(sample),
        "preopen_ports": ports,
        "created_at": _iso(s.created_at),
        "terminated_at": _iso(s.terminated_at),
    }


def session_item(ctx: Ctx, s: m.Session, user: m.User, group_name: str | None) -> dict[str, Any]:
    db = ctx.db

    def status_changed() -> str | None:
        at = db.scalar(select(func.max(m.SessionStatusChange.at)).where(m.SessionStatusChange.session_id == s.id))
        return _iso(at or s.created_at)

    def containers() -> list[dict[str, Any]]:
        return [container_item(s, status_changed(), _latest_samples(db, [s.id]).get(s.id))]

    try:
        registry = admin.parse_image_ref(s.image)[0]
    except admin.AdminError:
        registry = None
    finished = s.status in m.FINISHED_SESSION_STATUSES
    return {
        "id": str(s.id),
        "session_id": str(s.id),
        "main_kernel_id": str(s.id),
        "tag": None,
        "name": s.name,
        "type": s.session_type.upper(),
        "image": s.image,
        "registry": registry,
        "cluster_template": None,
        "cluster_mode": "single-node",
        "cluster_size": 1,
        "domain_name": s.domain_name,
        "group_id": str(s.group_id) if s.group_id else None,
        "group_name": group_name,
        "user_id": str(user.id),
        "user_email": user.email,
        "access_key": s.access_key,
        "created_user_email": user.email,
        "created_user_id": str(user.id),
        "status": s.status.value,
        "status_info": s.status_info,
        "status_data": _json({}),
        "status_changed": _lazy(status_changed),
        "created_at": _iso(s.created_at),
        "terminated_at": _iso(s.terminated_at),
        "starts_at": None,
        "scheduled_at": _iso(s.scheduled_at),
        "startup_command": None,
        "result": ("FAILURE" if s.status == m.SessionStatus.ERROR else "SUCCESS") if finished else "UNDEFINED",
        "resource_opts": _json(s.resource_opts or {}),
        "scaling_group": s.scaling_group,
        "service_ports": _json(s.service_ports or []),
        "mounts": [mount.get("folder") for mount in (s.mounts or []) if isinstance(mount, dict)],
        "occupying_slots": _slots(s.occupied_slots or s.requested_slots),
        "occupied_slots": _slots(s.occupied_slots),
        "requested_slots": _slots(s.requested_slots),
        "agent_ids": [s.agent_id] if s.agent_id else [],
        "containers": _lazy(containers),
        "dependencies": [],
        "abusing_reports": [],
        "idle_checks": _json({}),
    }


def agent_item(ctx: Ctx, a: m.Agent, occupied: ResourceSlots) -> dict[str, Any]:
    db = ctx.db

    def running() -> list[m.Session]:
        return list(
            db.scalars(select(m.Session).where(m.Session.agent_id == a.id, m.Session.status.in_(session_db.HOLDING)))
        )

    def samples() -> list[m.SessionUsage]:
        return list(_latest_samples(db, [s.id for s in running()]).values())

    def containers(status: str | None = None) -> list[dict[str, Any]]:
        rows = running()
        if status:
            rows = [s for s in rows if s.status.value in {x.strip() for x in status.split(",")}]
        latest = _latest_samples(db, [s.id for s in rows])
        return [container_item(s, None, latest.get(s.id)) for s in rows]

    return {
        "id": a.id,
        "status": a.status.value,
        "status_changed": _iso(a.status_changed),
        "region": a.region,
        "architecture": None,  # not recorded for agents
        "scaling_group": a.scaling_group,
        "schedulable": a.schedulable,
        "available_slots": _slots(a.available_slots),
        "occupied_slots": _slots(occupied),
        "addr": a.addr,
        "first_contact": _iso(a.first_contact),
        "lost_at": _iso(a.lost_at),
        "live_stat": None,
        "version": a.version,
        "compute_plugins": _json({}),
        "hardware_metadata": _json({"devices": list(a.devices or [])}),
        "local_config": _json({}),
        # What the agent's sessions reported last (usage samples), not a host probe.
        "cpu_cur_pct": _lazy(lambda: round(sum(s.cpu_percent or 0.0 for s in samples()), 2)),
        "mem_cur_bytes": _lazy(lambda: float(sum(s.mem_bytes or 0 for s in samples()))),
        "compute_containers": _guard(lambda _ctx, status=None: containers(status)),
    }


def folder_item(ctx: Ctx, f: m.VFolder, permission: str, owner: m.User | None, group: m.Group | None) -> dict:
    store = ctx.store

    def usage() -> tuple[int, int]:
        if "usage" not in cache:
            path = store.path(f.host, f.id) if f.host in store.hosts else None
            cache["usage"] = folder_usage(path) if path is not None and path.is_dir() else (0, 0)
        return cache["usage"]

    cache: dict[str, tuple[int, int]] = {}
    return {
        "id": str(f.id),
        "host": f.host,
        "quota_scope_id": f"user:{f.user_id}" if f.user_id else f"project:{f.group_id}",
        "name": f.name,
        "user": str(f.user_id) if f.user_id else None,
        "user_email": owner.email if owner is not None else None,
        "group": str(f.group_id) if f.group_id else None,
        "group_name": group.name if group is not None else None,
        "creator": f.creator,
        "domain_name": owner.domain_name if owner is not None else (group.domain_name if group is not None else None),
        "unmanaged_path": None,
        "usage_mode": f.usage_mode,
        "permission": permission,
        "ownership_type": f.ownership_type.value,
        "max_files": 0,
        "max_size": f.quota,
        "created_at": _iso(f.created_at),
        "last_used": _iso(f.last_used),
        "num_files": _lazy(lambda: usage()[1]),
        "cur_size": _lazy(lambda: usage()[0]),
        "cloneable": f.cloneable,
        "status": "ready",
    }


def folder_usage(path) -> tuple[int, int]:
    from ..storage import files

    return files.usage(path)


# --- access helpers -----------------------------------------------------------------------------


def _reach_user(ctx: Ctx, key: str) -> m.User:
    """A user by e-mail or name that the caller may read: themselves, or one they administer."""
    user = admin.get_user(ctx.db, key)
    if user.id == ctx.me.user_id:
        return user
    ctx.require_admin()
    check_user_reach(ctx.me, user)
    return user


def _scaling_group_names(sgroups: Iterable[m.ScalingGroup]) -> list[str]:
    return sorted(s.name for s in sgroups)


def _sgroups_of_domain(db: DB, domain: str) -> list[str]:
    rows = db.scalars(select(m.ScalingGroup).where(m.ScalingGroup.domains.any(m.Domain.name == domain)))
    return _scaling_group_names(rows)


def _sgroups_of_group(db: DB, group: m.Group) -> list[str]:
    rows = db.scalars(select(m.ScalingGroup).where(m.ScalingGroup.groups.any(m.Group.id == group.id)))
    return _scaling_group_names(rows)


def _as_uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise Refused(f"{what} {value!r} is not a UUID", 400) from None


# --- query fields -------------------------------------------------------------------------------


def q_user(ctx: Ctx, email: str | None = None, domain_name: str | None = None):
    user = ctx.user if not email else _reach_user(ctx, email)
    if domain_name and user.domain_name != domain_name:
        return None
    return user_item(user)


def q_user_from_uuid(ctx: Ctx, user_id: str | None = None, domain_name: str | None = None):
    if not user_id:
        return q_user(ctx, None, domain_name)
    user = ctx.db.get(m.User, _as_uuid(user_id, "user_id"))
    if user is None:
        raise Refused(f"no user with id {user_id!r}", 404)
    return q_user(ctx, user.email, domain_name)


def _users(ctx: Ctx, domain_name=None, group_id=None, is_active=None, status=None) -> list[dict[str, Any]]:
    scope = ctx.domain_scope(domain_name)
    query = select(m.User).order_by(m.User.created_at, m.User.email)
    if scope is not None:
        query = query.where(m.User.domain_name == scope)
    if status:
        query = query.where(m.User.status == admin._enum(m.UserStatus, "status", status))
    if is_active is not None:
        query = query.where((m.User.status == m.UserStatus.ACTIVE) == is_active)
    if group_id is not None:
        query = query.where(m.User.groups.any(m.Group.id == _as_uuid(group_id, "group_id")))
    return [user_item(u) for u in ctx.db.scalars(query)]


def q_users(ctx: Ctx, **kwargs):
    return _users(ctx, **kwargs)


def q_user_list(ctx: Ctx, limit: int, offset: int, filter=None, order=None, **kwargs):
    return page(_users(ctx, **kwargs), limit=limit, offset=offset, filter=filter, order=order)


def q_keypair(ctx: Ctx, domain_name: str | None = None, access_key: str | None = None):
    keypair = admin.get_keypair(ctx.db, access_key or ctx.me.access_key)
    if keypair.user_id != ctx.me.user_id:
        ctx.require_admin()
        check_user_reach(ctx.me, keypair.user)
    if domain_name and keypair.user.domain_name != domain_name:
        return None
    return keypair_item(ctx, keypair)


def _keypairs(ctx: Ctx, domain_name=None, email=None, is_active=None) -> list[dict[str, Any]]:
    scope = ctx.domain_scope(domain_name)
    query = select(m.KeyPair).join(m.User, m.User.id == m.KeyPair.user_id).order_by(m.User.email, m.KeyPair.created_at)
    if scope is not None:
        query = query.where(m.User.domain_name == scope)
    if is_active is not None:
        query = query.where(m.KeyPair.is_active.is_(is_active))
    if email:
        query = query.where(m.KeyPair.user_id == _reach_user(ctx, email).id)
    return [keypair_item(ctx, k) for k in ctx.db.scalars(query)]


def q_keypairs(ctx: Ctx, **kwargs):
    return _keypairs(ctx, **kwargs)


def q_keypair_list(ctx: Ctx, limit: int, offset: int, filter=None, order=None, **kwargs):
    return page(_keypairs(ctx, **kwargs), limit=limit, offset=offset, filter=filter, order=order)


def q_keypair_resource_policy(ctx: Ctx, name: str | None = None):
    if not name:
        return policy_item(ctx.db.get(m.KeyPair, ctx.me.access_key).policy)
    policy = admin.get_policy(ctx.db, name)
    if not ctx.me.is_admin and all(k.resource_policy != name for k in ctx.user.keypairs):
        raise Refused(f"none of your keypairs uses the policy {name!r}")
    return policy_item(policy)


def q_keypair_resource_policies(ctx: Ctx):
    ctx.require_admin()
    return [policy_item(p) for p in ctx.db.scalars(select(m.KeyPairResourcePolicy).order_by("name"))]


def q_domain(ctx: Ctx, name: str | None = None):
    name = name or ctx.me.domain
    if not ctx.may_see_domain(name):
        raise Refused(f"you are in domain {ctx.me.domain!r}, not {name!r}")
    return domain_item(admin.get_domain(ctx.db, name), _sgroups_of_domain(ctx.db, name))


def q_domains(ctx: Ctx, is_active: bool | None = None):
    scope = ctx.domain_scope(None)
    query = select(m.Domain).order_by(m.Domain.name)
    if scope is not None:
        query = query.where(m.Domain.name == scope)
    if is_active is not None:
        query = query.where(m.Domain.is_active.is_(is_active))
    return [domain_item(d, _sgroups_of_domain(ctx.db, d.name)) for d in ctx.db.scalars(query)]


def _visible_groups(ctx: Ctx, domain_name: str | None, is_active: bool | None, name: str | None = None):
    if ctx.me.is_admin:
        scope = ctx.domain_scope(domain_name)
        query = select(m.Group).order_by(m.Group.domain_name, m.Group.name)
        if scope is not None:
            query = query.where(m.Group.domain_name == scope)
        rows = list(ctx.db.scalars(query))
    else:  # a user sees the projects they belong to
        rows = sorted(ctx.user.groups, key=lambda g: (g.domain_name, g.name))
        rows = [g for g in rows if not domain_name or g.domain_name == domain_name]
    rows = [g for g in rows if (is_active is None or g.is_active == is_active) and (name is None or g.name == name)]
    return [group_item(g, _sgroups_of_group(ctx.db, g)) for g in rows]


def q_group(ctx: Ctx, id: uuid.UUID, domain_name: str | None = None):
    group = ctx.db.get(m.Group, _as_uuid(id, "id"))
    if group is None or (domain_name and group.domain_name != domain_name):
        raise Refused(f"no group with id {str(id)!r}", 404)
    if not ctx.me.may_administer(group.domain_name) and ctx.user not in group.users:
        raise Refused(f"you are not a member of the group {group.name!r}")
    return group_item(group, _sgroups_of_group(ctx.db, group))


def q_groups(ctx: Ctx, domain_name: str | None = None, is_active: bool | None = None):
    return _visible_groups(ctx, domain_name, is_active)


def q_groups_by_name(ctx: Ctx, name: str, domain_name: str | None = None):
    return _visible_groups(ctx, domain_name, None, name)


def q_image(ctx: Ctx, reference: str, architecture: str | None = None):
    image = admin.get_image(ctx.db, reference, architecture)
    return image_item(image, _installed_agents(ctx, [image]).get(image_db.reference_of(image)))


def q_images(ctx: Ctx, is_installed: bool | None = None, is_operation: bool | None = None):
    if is_operation:
        return []  # no operation (system) images here
    query = select(m.Image).order_by(m.Image.registry_host, m.Image.name, m.Image.tag, m.Image.architecture)
    if is_installed is not None:
        query = query.where(m.Image.installed.is_(is_installed))
    images = list(ctx.db.scalars(query))
    agents = _installed_agents(ctx, images)
    return [image_item(i, agents.get(image_db.reference_of(i))) for i in images]


def _installed_agents(ctx: Ctx, images: list[m.Image]) -> dict[str, list[str]]:
    """Per image reference, the agents that have it: agents are shown to superadmins only."""
    if not ctx.me.is_superadmin or not images:
        return {}
    rows = image_db.installs_by_reference(ctx.db, [image_db.reference_of(i) for i in images])
    return {ref: image_db.agents_view(r)["installed_agents"] for ref, r in rows.items()}


def q_resource_preset(ctx: Ctx, name: str):
    return preset_item(admin.get_preset(ctx.db, name))


def q_resource_presets(ctx: Ctx):
    return [preset_item(p) for p in ctx.db.scalars(select(m.ResourcePreset).order_by(m.ResourcePreset.name))]


def _open_to_domain(sgroup: m.ScalingGroup, domain: str) -> bool:
    return any(d.name == domain for d in sgroup.domains)


def q_scaling_group(ctx: Ctx, name: str | None = None):
    ctx.require_admin()
    if not name:
        raise Refused("name the resource group", 400)
    sgroup = admin.get_scaling_group(ctx.db, name)
    if not ctx.me.is_superadmin and not _open_to_domain(sgroup, ctx.me.domain):
        raise Refused(f"resource group {name!r} is not open to your domain {ctx.me.domain!r}")
    return scaling_group_item(sgroup)


def _sgroup_rows(ctx: Ctx, is_active: bool | None, keep: Callable[[m.ScalingGroup], bool]) -> list[dict[str, Any]]:
    rows = ctx.db.scalars(select(m.ScalingGroup).order_by(m.ScalingGroup.name))
    return [scaling_group_item(s) for s in rows if (is_active is None or s.is_active == is_active) and keep(s)]


def q_scaling_groups(ctx: Ctx, name: str | None = None, is_active: bool | None = None):
    ctx.require_admin()
    me = ctx.me
    return _sgroup_rows(
        ctx,
        is_active,
        lambda s: (name is None or s.name == name) and (me.is_superadmin or _open_to_domain(s, me.domain)),
    )


def q_scaling_groups_for_domain(ctx: Ctx, domain: str, is_active: bool | None = None):
    if not ctx.me.may_administer(domain):
        raise Refused(f"you administer no domain {domain!r}" if ctx.me.is_admin else "this needs an administrator")
    return _sgroup_rows(ctx, is_active, lambda s: _open_to_domain(s, domain))


def q_scaling_groups_for_user_group(ctx: Ctx, user_group: str, is_active: bool | None = None):
    """The resource groups a member of the project may use: open to its domain, to it, or to their keypair."""
    group = ctx.db.get(m.Group, _as_uuid(user_group, "user_group"))
    if group is None:
        raise Refused(f"no group with id {user_group!r}", 404)
    if not ctx.me.may_administer(group.domain_name) and ctx.user not in group.users:
        raise Refused(f"you are not a member of the group {group.name!r}")
    key = ctx.me.access_key
    return _sgroup_rows(
        ctx,
        is_active,
        lambda s: (
            _open_to_domain(s, group.domain_name)
            or any(g.id == group.id for g in s.groups)
            or any(k.access_key == key for k in s.keypairs)
        ),
    )


def q_scaling_groups_for_keypair(ctx: Ctx, access_key: str, is_active: bool | None = None):
    keypair = admin.get_keypair(ctx.db, access_key)
    if keypair.user_id != ctx.me.user_id:
        ctx.require_admin()
        check_user_reach(ctx.me, keypair.user)
    return _sgroup_rows(ctx, is_active, lambda s: any(k.access_key == access_key for k in s.keypairs))


AGENT_STATUSES = {s.value for s in m.AgentStatus}


def _agents(ctx: Ctx, scaling_group: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    ctx.require_superadmin()
    query = select(m.Agent).order_by(m.Agent.id)
    if status:
        wanted = {s.strip().upper() for s in status.split(",") if s.strip()}
        if not wanted <= AGENT_STATUSES:
            raise Refused(f"agent status is one of {', '.join(sorted(AGENT_STATUSES))}, not {status!r}", 400)
        query = query.where(m.Agent.status.in_([m.AgentStatus(s) for s in wanted]))
    if scaling_group:
        query = query.where(m.Agent.scaling_group == scaling_group)
    agents = list(ctx.db.scalars(query))
    held = session_db.held_by_agents(ctx.db, [a.id for a in agents])
    return [agent_item(ctx, a, held[a.id]) for a in agents]


def q_agent(ctx: Ctx, agent_id: str):
    ctx.require_superadmin()
    agent = ctx.db.get(m.Agent, agent_id)
    if agent is None:
        raise Refused(f"no agent {agent_id!r}", 404)
    return agent_item(ctx, agent, session_db.held_by_agents(ctx.db, [agent.id])[agent.id])


def q_agents(ctx: Ctx, **kwargs):
    return _agents(ctx, **kwargs)


def q_agent_list(ctx: Ctx, limit: int, offset: int, filter=None, order=None, **kwargs):
    return page(_agents(ctx, **kwargs), limit=limit, offset=offset, filter=filter, order=order)


SESSION_STATUSES = {s.value for s in m.SessionStatus}


def _session_scope(ctx: Ctx, query: Any) -> Any:
    if ctx.me.is_superadmin:
        return query
    if ctx.me.is_admin:
        return query.where(m.Session.domain_name == ctx.me.domain)
    return query.where(m.Session.user_id == ctx.me.user_id)


def q_compute_session(ctx: Ctx, id: uuid.UUID):
    query = _session_scope(
        ctx,
        select(m.Session, m.User, m.Group.name)
        .join(m.User, m.User.id == m.Session.user_id)
        .outerjoin(m.Group, m.Group.id == m.Session.group_id)
        .where(m.Session.id == _as_uuid(id, "id")),
    )
    row = ctx.db.execute(query).first()
    if row is None:
        raise Refused(f"no session {str(id)!r} that you may see", 404)
    return session_item(ctx, *row)


def q_compute_session_list(
    ctx: Ctx,
    limit: int,
    offset: int,
    filter=None,
    order=None,
    domain_name=None,
    group_id=None,
    access_key=None,
    status=None,
):
    query = _session_scope(
        ctx,
        select(m.Session, m.User, m.Group.name)
        .join(m.User, m.User.id == m.Session.user_id)
        .outerjoin(m.Group, m.Group.id == m.Session.group_id),
    )
    if domain_name:
        if not ctx.may_see_domain(domain_name):
            raise Refused(f"you are in domain {ctx.me.domain!r}, not {domain_name!r}")
        query = query.where(m.Session.domain_name == domain_name)
    if group_id:
        query = query.where(m.Session.group_id == _as_uuid(group_id, "group_id"))
    if access_key:
        query = query.where(m.Session.access_key == access_key)
    if status:
        wanted = {s.strip().upper() for s in status.split(",") if s.strip()}
        # Backend.AI's client also names statuses this project has no use for (RUNNING_DEGRADED).
        query = query.where(m.Session.status.in_([m.SessionStatus(s) for s in wanted & SESSION_STATUSES]))
    query = query.order_by(m.Session.created_at.desc(), m.Session.id)
    if filter or order:
        rows = [session_item(ctx, *r) for r in ctx.db.execute(query)]
        return page(rows, limit=limit, offset=offset, filter=filter, order=order)
    page([], limit=limit, offset=offset, filter=None, order=None)  # checks limit and offset
    total = ctx.db.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = ctx.db.execute(query.limit(limit).offset(offset)).all()
    return {"items": [session_item(ctx, *r) for r in rows], "total_count": int(total or 0)}


def _folder_rows(ctx: Ctx, domain_name=None, group_id=None, access_key=None) -> list[dict[str, Any]]:
    db = ctx.db
    group_uuid = _as_uuid(group_id, "group_id") if group_id else None
    if ctx.me.is_admin:
        scope = ctx.domain_scope(domain_name)
        mine = {a.folder.id: a.permission for a in folder_db.accessible_folders(db, ctx.user)}
        query = (
            select(m.VFolder, m.User, m.Group)
            .outerjoin(m.User, m.User.id == m.VFolder.user_id)
            .outerjoin(m.Group, m.Group.id == m.VFolder.group_id)
            .order_by(m.VFolder.name, m.VFolder.id)
        )
        if scope is not None:
            query = query.where(or_(m.User.domain_name == scope, m.Group.domain_name == scope))
        triples = [(f, mine.get(f.id, f.permission.value), u, g) for f, u, g in db.execute(query)]
    else:
        if domain_name and domain_name != ctx.me.domain:
            raise Refused(f"you are in domain {ctx.me.domain!r}, not {domain_name!r}")
        triples = []
        for access in folder_db.accessible_folders(db, ctx.user):
            f = access.folder
            owner = db.get(m.User, f.user_id) if f.user_id else None
            group = db.get(m.Group, f.group_id) if f.group_id else None
            triples.append((f, access.permission, owner, group))
    if group_uuid is not None:
        triples = [t for t in triples if t[0].group_id == group_uuid]
    if access_key:
        keypair = admin.get_keypair(db, access_key)
        if keypair.user_id != ctx.me.user_id:
            ctx.require_admin()
            check_user_reach(ctx.me, keypair.user)
        triples = [t for t in triples if t[0].user_id == keypair.user_id]
    return [folder_item(ctx, f, perm, owner, group) for f, perm, owner, group in triples]


def q_vfolder_list(ctx: Ctx, limit: int, offset: int, filter=None, order=None, **kwargs):
    return page(_folder_rows(ctx, **kwargs), limit=limit, offset=offset, filter=filter, order=order)


def q_vfolder(ctx: Ctx, id: str | None = None):
    if not id:
        raise Refused("name the folder by its id", 400)
    wanted = _as_uuid(id, "id")
    rows = [r for r in _folder_rows(ctx) if r["id"] == str(wanted)]
    if not rows:
        raise Refused(f"no folder {id!r} that you may see", 404)
    return rows[0]


def _volumes(ctx: Ctx) -> list[dict[str, Any]]:
    ctx.require_superadmin()
    out = []
    for host in ctx.store.hosts:
        path = ctx.store.root / host

        def usage(path=path) -> str:
            try:
                total, used, _free = shutil.disk_usage(path if path.exists() else ctx.store.root)
            except OSError:
                return _json({})
            return _json({"capacity_bytes": total, "used_bytes": used})

        out.append(
            {
                "id": host,
                "backend": "vfs",
                "fsprefix": "",
                "path": str(path),
                "capabilities": ["vfolder"],
                "hardware_metadata": _json({}),
                "performance_metric": _json({}),
                "usage": _lazy(usage),
            }
        )
    return out


def q_storage_volume(ctx: Ctx, id: str | None = None):
    rows = [v for v in _volumes(ctx) if v["id"] == id]
    if not rows:
        raise Refused(f"no storage volume {id!r}", 404)
    return rows[0]


def q_storage_volume_list(ctx: Ctx, limit: int, offset: int, filter=None, order=None):
    return page(_volumes(ctx), limit=limit, offset=offset, filter=filter, order=order)


# --- mutations: the REST API's checks, Backend.AI's {ok, msg} answers ---------------------------


def _outcome(ctx: Ctx, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Input the database layer refuses is ``ok: false`` with its message; refusals stay errors.

    A refused mutation marks the request failed, so that nothing it half-did is committed.
    """
    try:
        return {"ok": True, "msg": "success", **fn()}
    except admin.AdminError as e:
        ctx.failed = True
        if getattr(e, "status", 400) == 403:
            raise
        return {"ok": False, "msg": str(e)}


def _unsupported(props: Mapping[str, Any]) -> None:
    if props.get("totp_activated"):
        raise admin.AdminError("two-factor authentication (TOTP) is not supported here")
    if props.get("allowed_client_ip"):
        raise admin.AdminError("per-user client IP restrictions are not supported here")
    if props.get("sudo_session_enabled"):
        raise admin.AdminError("sudo in sessions is not supported here")


def _group_names(ctx: Ctx, ids: Iterable[str] | None, domain: str) -> list[str]:
    names = []
    for gid in ids or []:
        group = ctx.db.get(m.Group, _as_uuid(gid, "group id"))
        if group is None or group.domain_name != domain:
            raise admin.AdminError(f"no group with id {gid!r} in domain {domain!r}")
        names.append(group.name)
    return names


def m_create_user(ctx: Ctx, email: str, props: dict[str, Any]):
    ctx.require_admin()
    domain = props.get("domain_name") or (ctx.me.domain if not ctx.me.is_superadmin else admin.DEFAULT)
    if not ctx.me.may_administer(domain):
        raise Refused(f"you administer domain {ctx.me.domain!r}, not {domain!r}")
    role = props.get("role") or "user"
    if role == m.UserRole.SUPERADMIN.value and not ctx.me.is_superadmin:
        raise Refused("only a superadmin may create a superadmin")

    def run() -> dict[str, Any]:
        _unsupported(props)
        status = props.get("status") or ("inactive" if props.get("is_active") is False else "active")
        user, _keypair = admin.create_user(
            ctx.db,
            email,
            props["password"],
            username=props.get("username") or None,
            role=role,
            domain=domain,
            groups=_group_names(ctx, props.get("group_ids"), domain),
            policy=props.get("resource_policy") or admin.DEFAULT,
            full_name=props.get("full_name") or "",
            description=props.get("description") or "",
            need_password_change=bool(props.get("need_password_change")),
            status=status,
        )
        return {"user": user_item(user)}

    return _outcome(ctx, run)


def m_modify_user(ctx: Ctx, email: str, props: dict[str, Any]):
    ctx.require_admin()
    user = admin.get_user(ctx.db, email)
    check_user_reach(ctx.me, user)
    if props.get("role") == m.UserRole.SUPERADMIN.value and not ctx.me.is_superadmin:
        raise Refused("only a superadmin may make a user superadmin")
    status = props.get("status")
    if status is None and props.get("is_active") is not None:
        status = "active" if props["is_active"] else "inactive"
    if user.id == ctx.me.user_id and (
        (status or "active") != "active" or (props.get("role") or user.role.value) != user.role.value
    ):
        raise Refused("you cannot deactivate yourself or change your own role; ask another admin", 409)

    def run() -> dict[str, Any]:
        _unsupported(props)
        if props.get("domain_name") and props["domain_name"] != user.domain_name:
            raise admin.AdminError("moving a user to another domain is not supported; create the user there")
        if props.get("main_access_key"):
            keypair = admin.get_keypair(ctx.db, props["main_access_key"])
            if keypair.user_id != user.id:
                raise admin.AdminError(f"keypair {keypair.access_key} is not {user.email}'s")
        if props.get("group_ids") is not None:
            wanted = {ctx.db.get(m.Group, _as_uuid(g, "group id")) for g in props["group_ids"]}
            _group_names(ctx, props["group_ids"], user.domain_name)  # all exist, in the user's domain
            for group in list(user.groups):
                if group not in wanted:
                    admin.remove_user_from_group(ctx.db, group, user)
            for group in wanted:
                admin.add_user_to_group(ctx.db, group, user)
        admin.update_user(
            ctx.db,
            user,
            password=props.get("password") or None,
            username=props.get("username") or None,
            role=props.get("role") or None,
            full_name=props.get("full_name"),
            description=props.get("description"),
            need_password_change=props.get("need_password_change"),
            status=status,
        )
        return {"user": user_item(user)}

    return _outcome(ctx, run)


def m_delete_user(ctx: Ctx, email: str):
    ctx.require_admin()
    user = admin.get_user(ctx.db, email)
    check_user_reach(ctx.me, user)
    if user.id == ctx.me.user_id:
        raise Refused("you cannot deactivate yourself; ask another admin", 409)
    return _outcome(ctx, lambda: (admin.deactivate_user(ctx.db, user), {})[1])


def m_purge_user(ctx: Ctx, email: str, props: dict[str, Any]):
    ctx.require_admin()
    check_user_reach(ctx.me, admin.get_user(ctx.db, email))
    ctx.failed = True
    return {"ok": False, "msg": "users are never deleted here, only deactivated (delete_user)"}


def m_create_keypair(ctx: Ctx, user_id: str, props: dict[str, Any]):
    ctx.require_admin()
    user = admin.get_user(ctx.db, user_id)
    check_user_reach(ctx.me, user)

    def run() -> dict[str, Any]:
        keypair = admin.create_keypair(
            ctx.db,
            user,
            policy=props["resource_policy"],
            is_admin=bool(props.get("is_admin")),
            rate_limit=props["rate_limit"],
        )
        if props.get("is_active") is False:
            keypair.is_active = False
        item = keypair_item(ctx, keypair)
        item["secret_key"] = keypair.secret_key  # shown this once, as POST /admin/keypairs does
        return {"keypair": item}

    return _outcome(ctx, run)


def m_modify_keypair(ctx: Ctx, access_key: str, props: dict[str, Any]):
    ctx.require_admin()
    keypair = admin.get_keypair(ctx.db, access_key)
    check_user_reach(ctx.me, keypair.user)
    if props.get("is_active") is False and access_key == ctx.me.access_key:
        raise Refused("this request is signed with that keypair; deactivate it from another one", 409)

    def run() -> dict[str, Any]:
        admin.update_keypair(
            ctx.db,
            keypair,
            policy=props.get("resource_policy"),
            rate_limit=props.get("rate_limit"),
            is_admin=props.get("is_admin"),
            is_active=props.get("is_active"),
        )
        return {}

    return _outcome(ctx, run)


def m_delete_keypair(ctx: Ctx, access_key: str):
    ctx.require_admin()
    keypair = admin.get_keypair(ctx.db, access_key)
    check_user_reach(ctx.me, keypair.user)
    if access_key == ctx.me.access_key:
        raise Refused("this request is signed with that keypair; delete it from another one", 409)
    return _outcome(ctx, lambda: (admin.delete_keypair(ctx.db, keypair), {})[1])


ROOT: dict[str, Callable[..., Any]] = {
    name[2:]: _guard(fn) for name, fn in list(globals().items()) if name.startswith(("q_", "m_")) and callable(fn)
}


def _check_root_covers_schema() -> None:
    declared = set(SCHEMA.query_type.fields) | set(SCHEMA.mutation_type.fields)
    missing = declared - set(ROOT)
    if missing:  # pragma: no cover - a programming error caught at import
        raise RuntimeError(f"GraphQL fields without a resolver: {sorted(missing)}")


_check_root_covers_schema()


# --- the endpoint ---------------------------------------------------------------------------------


def execute(db: DB, me: Identity, store: Any, query: str, variables: dict[str, Any] | None, operation: str | None):
    """Run one GraphQL request in the caller's transaction; the answer as Backend.AI's manager gives it."""
    ctx = Ctx(db, me, store)
    result = graphql_sync(
        SCHEMA, query, root_value=ROOT, context_value=ctx, variable_values=variables, operation_name=operation
    )
    if ctx.failed or result.errors:
        db.rollback()  # a document is all or nothing, like one REST request
    answer: dict[str, Any] = {"data": result.data}
    if result.errors:
        answer["errors"] = [e.formatted for e in result.errors]
    return answer


class GQLHandler(APIHandler):
    """Backend.AI's GraphQL admin API (``{query, variables, operation_name}``); users see their own rows.

    The answer is ``{"data": ..., "errors": [...]}`` with HTTP 200, as Backend.AI's manager
    answers; an error names its reason and the field's path.
    """

    legacy = False

    async def post(self):
        data = self.json_body()
        query = data.get("query")
        if not isinstance(query, str) or not query.strip():
            raise APIError(400, "'query' (a GraphQL document) is required")
        if len(query) > MAX_QUERY_LENGTH:
            raise APIError(413, f"the GraphQL document is longer than {MAX_QUERY_LENGTH} characters")
        variables = data.get("variables")
        if variables is not None and not isinstance(variables, dict):
            raise APIError(400, "'variables' must be an object")
        operation = data.get("operation_name", data.get("operationName"))
        if operation is not None and not isinstance(operation, str):
            raise APIError(400, "'operation_name' must be a string")
        ident = self.identity
        answer = await self.run_db(execute, ident, self.store, query, variables or None, operation)
        if self.legacy:
            if answer.get("errors"):
                raise APIError(400, "GraphQL-generated error", errors=answer["errors"])
            self.send(answer["data"])
            return
        self.send(answer)


class LegacyGraphQLHandler(GQLHandler):
    """``/admin/graphql`` for clients of API versions before v6.20210815: the bare ``data``, or a 400."""

    legacy = True


handlers = [
    (r"/admin/gql/?", GQLHandler),
    (r"/admin/graphql/?", LegacyGraphQLHandler),
]
