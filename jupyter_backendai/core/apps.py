"""The apps of a session (F6, F21): what an image declares and how one is started. Pure, no I/O.

An image declares its apps in the label ``ai.backend.service-ports`` (``name:protocol:port``,
comma-separated, Backend.AI's format) and says how to start each in a Backend.AI
*service definition*, ``/etc/backend.ai/service-defs/<name>.json``::

    {"command": ["{runtime_path}", "-m", "tensorboard.main", "--port", "{ports[0]}"],
     "prestart": [{"action": "mkdir", "args": {"path": "{folder}/logs"}}],
     "allowed_arguments": ["--logdir"], "default_arguments": {"--logdir": "{folder}/logs"}}

What happens to each declared app:

* :data:`SERVER_APPS` (``jupyter``, ``jupyterlab``, ``terminal``) are served by the session's
  Jupyter server itself, whatever port the label names: nothing is started or proxied.
* ``tcp`` and ``pty`` apps (``sshd``) have no web page; the backend starts sshd.
* Every other ``http`` (or ``preopen``) app is proxied by jupyter-server-proxy at
  ``<server>/<name>/`` and started on the first request from its service definition. Its
  ``{ports[0]}`` (also ``{port}``) is a free port chosen at start: on a host-network session the
  label's fixed number could be taken by another session's copy of the app. An app without a
  service definition is taken to be started by the image itself on the label's port, and is
  only proxied.

Service definitions follow Backend.AI's fields (:data:`DEF_FIELDS`): ``command`` (a list, or a
string run by ``shell``), ``env``, ``prestart`` (``mkdir`` is carried out; ``log`` is ignored;
other actions make the definition unusable, with a reason), ``allowed_arguments`` with their
``default_arguments``, ``noop``. Placeholders (``{name}``, ``{ports[0]}``, or ``${{ name }}``)
are filled from :func:`variables`; values a user passes as arguments are used as given, never
interpolated. Argument values are text without control characters that does not start with
``-`` (it would be read as another option); ``~`` at the start stands for the home directory.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import errors

__all__ = [
    "ARGUMENT_TITLES",
    "DEF_FIELDS",
    "FOLDERS_ENV",
    "PROTOCOLS",
    "SERVER_APPS",
    "SERVICE_PORTS_ENV",
    "TITLES",
    "WEB_PROTOCOLS",
    "AppError",
    "ServiceDef",
    "ServicePort",
    "app_command",
    "check_argument",
    "default_arguments",
    "first_folder",
    "format_service_ports",
    "parse_folders",
    "parse_service_def",
    "parse_service_ports",
    "prestart_dirs",
    "proxied_apps",
    "title_of",
    "variables",
]

#: The session's env that carries the image's service-ports label (set by the spawner).
SERVICE_PORTS_ENV = "BACKENDAI_SERVICE_PORTS"
#: The session's env naming its chosen folders in mount order, ``:``-separated (no folder name
#: holds a ``:``): the first one is where an app's files go by default (``{folder}``).
FOLDERS_ENV = "BACKENDAI_FOLDERS"

PROTOCOLS = ("tcp", "http", "pty", "preopen")
#: Protocols of apps with a web page.
WEB_PROTOCOLS = ("http", "preopen")
#: Apps the Jupyter server serves itself, and their path under the server's URL (the terminal's
#: is the server extension's page that opens a new terminal).
SERVER_APPS: Mapping[str, str] = MappingProxyType(
    {"jupyterlab": "lab", "jupyter": "tree", "terminal": "backendai/_ext/apps/terminal/open"}
)
#: What people call the well-known apps (anything else is shown by its name).
TITLES: Mapping[str, str] = MappingProxyType(
    {
        "jupyter": "Jupyter Notebook",
        "jupyterlab": "JupyterLab",
        "terminal": "Terminal",
        "tensorboard": "TensorBoard",
        "sshd": "SSH / SFTP",
        "vscode": "VS Code",
        "mlflow-ui": "MLflow",
        "digits": "DIGITS",
        "rstudio": "RStudio",
    }
)
#: Labels of well-known arguments in the launch forms.
ARGUMENT_TITLES: Mapping[str, str] = MappingProxyType({"--logdir": "Log directory"})
#: The fields of a Backend.AI service definition (``prestart`` is the files' spelling of
#: ``prestart_actions``).
DEF_FIELDS = frozenset(
    {
        "command",
        "shell",
        "noop",
        "url_template",
        "prestart",
        "prestart_actions",
        "env",
        "allowed_envs",
        "allowed_arguments",
        "default_arguments",
    }
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Backend.AI's two placeholder spellings: ${{ expr }} and {expr} (not preceded by $ or {).
_PLACEHOLDER = re.compile(r"\$\{\{\s*(?P<a>.*?)\s*\}\}|(?<![${])\{\s*(?P<b>.*?)\s*\}")
_EXPR = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<index>\d+)\])?$")
MAX_ARGUMENT_CHARS = 4096


class AppError(errors.BadRequest, ValueError):
    """A label, service definition or argument that cannot be used; the message says why."""


def title_of(name: str) -> str:
    return TITLES.get(name, name)


# --- the label -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePort:
    """One entry of ``ai.backend.service-ports``."""

    name: str
    protocol: str
    ports: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "protocol": self.protocol, "ports": list(self.ports)}


def parse_service_ports(label: str) -> tuple[ServicePort, ...]:
    """``jupyter:http:8888,tensorboard:http:6006`` → its entries; :class:`AppError` if malformed."""
    out: list[ServicePort] = []
    seen: set[str] = set()
    for item in filter(None, (p.strip() for p in (label or "").split(","))):
        parts = item.split(":")
        if len(parts) != 3 or parts[1] not in PROTOCOLS or not parts[2].isdigit():
            raise AppError(f"invalid service port {item!r}: expected name:protocol:port, like jupyter:http:8080")
        name, protocol, port = parts[0], parts[1], int(parts[2])
        if not _NAME.match(name):
            raise AppError(f"invalid app name {name!r}: letters, digits, '-', '_' and '.' only")
        if not 0 < port < 65536:
            raise AppError(f"invalid port {port} of app {name!r}")
        if name in seen:
            raise AppError(f"app {name!r} is declared twice")
        seen.add(name)
        out.append(ServicePort(name, protocol, (port,)))
    return tuple(out)


def format_service_ports(entries: Iterable[Mapping[str, Any]]) -> str:
    """The label's text of stored entries (``[{"name", "protocol", "ports"}]``), for the session's env."""
    items = []
    for e in entries or ():
        ports = list(e.get("ports") or [])
        if e.get("name") and e.get("protocol") and ports:
            items.append(f"{e['name']}:{e['protocol']}:{ports[0]}")
    return ",".join(items)


def proxied_apps(ports: Iterable[ServicePort]) -> tuple[ServicePort, ...]:
    """The declared apps jupyter-server-proxy serves: web apps the server does not serve itself."""
    return tuple(p for p in ports if p.protocol in WEB_PROTOCOLS and p.name not in SERVER_APPS)


# --- folders ---------------------------------------------------------------------------------


def parse_folders(value: str | None) -> tuple[str, ...]:
    return tuple(n for n in (value or "").split(":") if n)


def first_folder(folders: Sequence[str], home: str) -> str:
    """Where an app keeps its files by default: the first chosen folder that is not a dot-folder
    (those hold settings and packages), else the home directory."""
    for name in folders:
        if name and not name.startswith(".") and "/" not in name and name not in (".", ".."):
            return posixpath.join(home, name)
    return home


def variables(*, port: int, runtime_path: str, home: str, folders: Sequence[str] = ()) -> dict[str, Any]:
    """The placeholders a service definition may use."""
    return {
        "ports": [port],
        "port": port,
        "runtime_path": runtime_path,
        "home": home,
        "folder": first_folder(folders, home),
    }


# --- service definitions ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceDef:
    """A parsed service definition (see the module docstring)."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    prestart: tuple[Mapping[str, Any], ...] = ()
    allowed_arguments: tuple[str, ...] = ()
    default_arguments: Mapping[str, str | tuple[str, ...] | None] = field(default_factory=dict)
    noop: bool = False


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AppError(f"{what} must be a list of strings")
    return tuple(value)


def parse_service_def(name: str, data: Any) -> ServiceDef:
    """A service definition from its JSON; :class:`AppError` says what is wrong with it."""
    if not isinstance(data, dict):
        raise AppError(f"the service definition of {name!r} is not a JSON object")
    unknown = sorted(set(data) - DEF_FIELDS)
    if unknown:
        raise AppError(f"the service definition of {name!r} has unknown fields: {', '.join(unknown)}")
    noop = data.get("noop", False)
    if not isinstance(noop, bool):
        raise AppError(f"{name}: noop must be true or false")
    raw = data.get("command")
    shell = data.get("shell", "bash")
    if not isinstance(shell, str) or not shell:
        raise AppError(f"{name}: shell must be a program name")
    if isinstance(raw, str) and raw.strip():
        command: tuple[str, ...] = (shell, "-c", raw)
    elif isinstance(raw, list) and raw:
        command = _strings(raw, f"{name}: command")
    elif noop:
        command = ()
    else:
        raise AppError(f"{name}: command must be a non-empty list of strings or a shell line")
    env = data.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise AppError(f"{name}: env must map names to strings")
    prestart = data.get("prestart", data.get("prestart_actions")) or []
    if not isinstance(prestart, list) or not all(isinstance(a, dict) for a in prestart):
        raise AppError(f"{name}: prestart must be a list of actions")
    for action in prestart:
        kind = action.get("action")
        args = action.get("args") or {}
        if kind == "mkdir":
            if not isinstance(args, dict) or not isinstance(args.get("path"), str) or not args["path"]:
                raise AppError(f"{name}: a mkdir action needs args.path")
        elif kind != "log":
            raise AppError(f"{name}: the prestart action {kind!r} is not supported here (only mkdir and log)")
    allowed = _strings(data.get("allowed_arguments") or [], f"{name}: allowed_arguments")
    defaults_raw = data.get("default_arguments") or {}
    if not isinstance(defaults_raw, dict):
        raise AppError(f"{name}: default_arguments must be an object")
    defaults: dict[str, str | tuple[str, ...] | None] = {}
    for arg, value in defaults_raw.items():
        if value is None or isinstance(value, str):
            defaults[arg] = value
        else:
            defaults[arg] = _strings(value, f"{name}: default_arguments[{arg!r}]")
    return ServiceDef(
        name=name,
        command=command,
        env=MappingProxyType(dict(env)),
        prestart=tuple(MappingProxyType(dict(a)) for a in prestart),
        allowed_arguments=allowed,
        default_arguments=MappingProxyType(defaults),
        noop=noop,
    )


def interpolate(text: str, values: Mapping[str, Any]) -> str:
    """Fill Backend.AI's placeholders in ``text``: ``{name}``, ``{name[0]}``, ``${{ name }}``."""

    def one(match: re.Match[str]) -> str:
        expr = match.group("a") if match.group("a") is not None else match.group("b")
        parsed = _EXPR.match(expr or "")
        if not parsed or parsed.group("name") not in values:
            known = ", ".join(sorted(values))
            raise AppError(f"unknown placeholder {{{expr}}} (known: {known})")
        value = values[parsed.group("name")]
        if parsed.group("index") is not None:
            try:
                value = value[int(parsed.group("index"))]
            except (IndexError, TypeError, KeyError):
                raise AppError(f"placeholder {{{expr}}} has no such item") from None
        return str(value)

    return _PLACEHOLDER.sub(one, text)


def check_argument(defn: ServiceDef, name: str, value: Any, home: str) -> str:
    """A user's value for argument ``name``, checked, with a leading ``~`` made the home."""
    if name not in defn.allowed_arguments:
        allowed = ", ".join(defn.allowed_arguments) or "none"
        raise AppError(f"{defn.name} takes no argument {name!r} (allowed: {allowed})")
    if not isinstance(value, str):
        raise AppError(f"the value of {name} must be text")
    value = value.strip()
    if not value:
        raise AppError(f"the value of {name} is empty")
    if len(value) > MAX_ARGUMENT_CHARS or _CONTROL.search(value):
        raise AppError(f"the value of {name} is too long or holds control characters")
    if value.startswith("-"):
        raise AppError(f"the value of {name} must not start with '-' (it would be read as an option)")
    if value == "~" or value.startswith("~/"):
        value = home + value[1:]
    return value


def app_command(
    defn: ServiceDef, values: Mapping[str, Any], arguments: Mapping[str, Any] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command line and extra env that start ``defn``: its command with the placeholders
    filled, then every default argument, a user's value (``arguments``, checked) replacing the
    default of the same name."""
    home = str(values.get("home", "~"))
    given = {name: check_argument(defn, name, value, home) for name, value in (arguments or {}).items()}
    argv = [interpolate(part, values) for part in defn.command]
    for name in [*defn.default_arguments, *(n for n in given if n not in defn.default_arguments)]:
        argv.append(name)
        if name in given:
            argv.append(given[name])
            continue
        default = defn.default_arguments[name]
        if isinstance(default, str):
            argv.append(interpolate(default, values))
        elif default is not None:
            argv += [interpolate(v, values) for v in default]
    env = {interpolate(k, values): interpolate(v, values) for k, v in defn.env.items()}
    return argv, env


def default_arguments(defn: ServiceDef, values: Mapping[str, Any]) -> dict[str, str]:
    """The allowed arguments with their defaults filled in (empty text where there is none)."""
    out = {}
    for name in defn.allowed_arguments:
        default = defn.default_arguments.get(name)
        out[name] = interpolate(default, values) if isinstance(default, str) else ""
    return out


def prestart_dirs(defn: ServiceDef, values: Mapping[str, Any]) -> list[str]:
    """The directories the definition's ``mkdir`` actions create before the app starts."""
    return [interpolate(a["args"]["path"], values) for a in defn.prestart if a.get("action") == "mkdir"]
