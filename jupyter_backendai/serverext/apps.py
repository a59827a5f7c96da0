"""The session's apps in its Jupyter server: started on demand, proxied by jupyter-server-proxy.

The hub gives the session the image's ``ai.backend.service-ports`` label in
``$BACKENDAI_SERVICE_PORTS`` and its chosen folders in ``$BACKENDAI_FOLDERS``
(:mod:`..core.apps` says what each entry becomes). For every web app the server does not serve
itself, :class:`Apps` makes a jupyter-server-proxy ``ServerProcess`` from the image's service
definition (``/etc/backend.ai/service-defs/<name>.json``) and routes ``<base_url><name>/`` to
it: the first request starts the app on a free port and waits until it answers; later ones are
proxied to it. Routes:

``GET <base_url>backendai/_ext/apps``
    the apps (name, title, protocol, where to open them, their arguments, whether running).
``GET|DELETE <base_url>backendai/_ext/apps/<name>``
    one app; DELETE stops it (the next request starts it again).
``GET|POST <base_url>backendai/_ext/apps/<name>/open``
    the page that opens an app: an app with arguments (TensorBoard's log directory) shows a
    form, prefilled with the values in use or the defaults; POSTing it (re)starts the app with
    those values and redirects to it. ``terminal`` opens a new terminal. Any other app redirects
    to its URL at once. The Sessions panel, the hub and the lab's launcher link here.

A process that has exited is started again by the next request (jupyter-server-proxy alone
would keep proxying to the dead port).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.escape import xhtml_escape

from ..core import apps as core
from . import proxy
from .handlers import AUTH_RESOURCE, ExtensionAPIHandler

#: Where Backend.AI images keep their service definitions.
SERVICE_DEFS_DIR = "/etc/backend.ai/service-defs"
#: URL segments of the Jupyter server and its usual extensions: an app of that name would hide them.
RESERVED_NAMES = frozenset(
    {
        "api", "lab", "tree", "notebooks", "edit", "consoles", "terminals", "files", "view", "static",
        "custom", "nbextensions", "kernelspecs", "nbconvert", "login", "logout", "proxy", "server-proxy",
        "backendai", "doc", "voila", "metrics",
    }
)  # fmt: skip


def _escape_braces(value: str) -> str:
    # jupyter-server-proxy runs str.format over what a command callable returns.
    return value.replace("{", "{{").replace("}", "}}")


def _asking_port(method: Any, app: Any) -> Any:
    # jupyter-server-proxy calls a command callable with the arguments its code object names
    # (port, base_url, unix_socket): a plain function taking only ``port``, not a partial.
    def call(port: int) -> Any:
        return method(app, port)

    return call


@dataclass
class App:
    """One declared app, and the state of its process."""

    port: core.ServicePort
    defn: core.ServiceDef | None = None
    error: str | None = None
    #: The user's argument values for the next start (empty: the defaults).
    arguments: dict[str, str] = field(default_factory=dict)
    #: jupyter-server-proxy's per-app state (``proc``, ``port``, ``proc_lock``), shared with its handler.
    state: dict[str, Any] = field(default_factory=dict)
    #: The arguments the running process was started with.
    started_with: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return self.port.name

    @property
    def running(self) -> bool:
        proc = self.state.get("proc")
        return bool(proc is not None and not isinstance(proc, str) and getattr(proc, "running", False))


class Apps:
    """The session's apps (from its env and the image's service definitions) and their processes."""

    def __init__(
        self,
        *,
        label: str,
        folders: str = "",
        home: str | None = None,
        runtime_path: str | None = None,
        defs_dir: str = SERVICE_DEFS_DIR,
        timeout: float = 60.0,
        taken: frozenset[str] = frozenset(),
        log: Any = None,
    ) -> None:
        self.home = home or os.path.expanduser("~")
        self.runtime_path = runtime_path or sys.executable
        self.folders = core.parse_folders(folders)
        self.timeout = timeout
        self.log = log
        self.error: str | None = None
        self.declared: tuple[core.ServicePort, ...] = ()
        self.apps: dict[str, App] = {}
        try:
            self.declared = core.parse_service_ports(label)
        except core.AppError as e:
            self.error = f"the image's service ports cannot be used: {e}"
            return
        for port in core.proxied_apps(self.declared):
            app = App(port)
            self.apps[port.name] = app
            if port.name in RESERVED_NAMES or port.name in taken:
                app.error = f"the name {port.name!r} is taken by the Jupyter server or its configuration"
                continue
            path = Path(defs_dir) / f"{port.name}.json"
            try:
                data = json.loads(path.read_text())
            except FileNotFoundError:
                continue  # started by the image itself, on the label's port
            except (OSError, ValueError) as e:
                app.error = f"the service definition {path} cannot be read: {e}"
                continue
            try:
                app.defn = core.parse_service_def(port.name, data)
            except core.AppError as e:
                app.error = str(e)

    @classmethod
    def from_environ(cls, environ: Any = os.environ, **kwargs: Any) -> Apps:
        return cls(label=environ.get(core.SERVICE_PORTS_ENV, ""), folders=environ.get(core.FOLDERS_ENV, ""), **kwargs)

    def values(self, port: int) -> dict[str, Any]:
        return core.variables(port=port, runtime_path=self.runtime_path, home=self.home, folders=self.folders)

    def command(self, app: App, port: int) -> list[str]:
        """The command line that starts ``app`` on ``port`` (its ``mkdir`` actions done first)."""
        assert app.defn is not None
        values = self.values(port)
        for directory in core.prestart_dirs(app.defn, values):
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as e:  # a read-only folder: the app may still run
                if self.log is not None:
                    self.log.warning("app %s: cannot create %s: %s", app.name, directory, e)
        argv, _ = core.app_command(app.defn, values, app.arguments)
        app.started_with = dict(app.arguments)
        if self.log is not None:
            self.log.info("app %s: starting %s", app.name, argv)
        return [_escape_braces(a) for a in argv]

    def environment(self, app: App, port: int) -> dict[str, str]:
        assert app.defn is not None
        _, env = core.app_command(app.defn, self.values(port), app.arguments)
        return {_escape_braces(k): _escape_braces(v) for k, v in env.items()}

    def defaults(self, app: App) -> dict[str, str]:
        """The argument values the open page shows: those in use, else the defaults."""
        if app.defn is None:
            return {}
        shown = core.default_arguments(app.defn, self.values(0))
        shown.update(app.arguments)
        return shown

    def set_arguments(self, app: App, given: dict[str, Any]) -> dict[str, str]:
        """Check and keep a user's argument values for the next start; :class:`core.AppError` if bad."""
        if app.defn is None:
            if given:
                raise core.AppError(f"{app.name} takes no arguments")
            return {}
        checked = {}
        for name, value in given.items():
            if isinstance(value, str) and not value.strip():
                continue  # an empty field: the default
            checked[name] = core.check_argument(app.defn, name, value, self.home)
        app.arguments = checked
        return checked

    async def stop(self, app: App) -> None:
        lock = app.state.get("proc_lock")
        if lock is None:
            return
        async with lock:
            proc = app.state.pop("proc", None)
            app.state.pop("port", None)  # a fresh port next time: the old one may linger in TIME_WAIT
            if proc is not None and not isinstance(proc, str) and getattr(proc, "running", False):
                await proc.terminate()
            app.started_with = None

    # --- jupyter-server-proxy ------------------------------------------------------------------

    def server_processes(self) -> list[Any]:
        """A jupyter-server-proxy ``ServerProcess`` per usable app (none without jupyter-server-proxy)."""
        try:
            from jupyter_server_proxy.config import ServerProcess
            from jupyter_server_proxy.handlers import SuperviseAndProxyHandler
        except ImportError:
            for app in self.apps.values():
                app.error = app.error or "jupyter-server-proxy is not installed in this session's image"
            return []

        class AppProxyHandler(SuperviseAndProxyHandler):
            async def ensure_process(self) -> None:
                proc = self.state.get("proc")
                if proc is not None and not isinstance(proc, str) and not proc.running:
                    self.state.pop("proc", None)  # it exited: start it again
                try:
                    await super().ensure_process()
                except web.HTTPError:
                    raise
                except (core.AppError, OSError) as e:
                    raise web.HTTPError(502, f"the app {self.name} could not start: {e}") from None

        class AppProcess(ServerProcess):
            def get_proxy_base_class(self) -> tuple[Any, dict]:
                cls, kwargs = super().get_proxy_base_class()
                if cls is SuperviseAndProxyHandler:
                    return AppProxyHandler, {"state": self.app_state}
                return cls, kwargs

        out = []
        for app in self.apps.values():
            if app.error:
                continue
            if app.defn is None:
                process = AppProcess(name=app.name, command=[], port=app.port.ports[0])
            elif app.defn.noop:
                continue
            else:
                process = AppProcess(
                    name=app.name,
                    command=_asking_port(self.command, app),
                    environment=_asking_port(self.environment, app),
                    timeout=self.timeout,
                    launcher_entry={"enabled": False},
                )
            app.state.setdefault("proc_lock", asyncio.Lock())
            process.app_state = app.state
            out.append(process)
        return out

    def routes(self, base_url: str) -> list[tuple]:
        """Tornado routes ``<base_url><name>/(.*)`` to each app's proxy (the base URL taken literally)."""
        processes = self.server_processes()
        if not processes:
            return []
        from jupyter_server_proxy.handlers import AddSlashHandler

        base = proxy.url_prefix(base_url)[: -len(proxy.URL_SEGMENT) - 1]
        out: list[tuple] = []
        for process in processes:
            handler, kwargs = process.make_proxy_handler()
            if handler is None:
                continue
            out.append((re.escape(base + process.name) + "/(.*)", handler, kwargs))
            out.append((re.escape(base + process.name), AddSlashHandler))
        return out

    # --- what the lab and the open page show ------------------------------------------------------

    def model(self, app: App, base_url: str) -> dict[str, Any]:
        base = base_url if base_url.endswith("/") else base_url + "/"
        usable = app.error is None and not (app.defn is not None and app.defn.noop)
        args = []
        if app.defn is not None:
            shown = self.defaults(app)
            args = [
                {"name": n, "title": core.ARGUMENT_TITLES.get(n, n), "value": shown.get(n, "")}
                for n in app.defn.allowed_arguments
            ]
        return {
            "name": app.name,
            "title": core.title_of(app.name),
            "protocol": app.port.protocol,
            "ports": list(app.port.ports),
            "url": f"{base}{urllib.parse.quote(app.name)}/" if usable else None,
            "open_url": f"{base}backendai/_ext/apps/{urllib.parse.quote(app.name)}/open" if usable else None,
            "proxied": True,
            "managed": app.defn is not None,
            "arguments": args,
            "running": app.running,
            "started_with": app.started_with if app.running else None,
            "error": app.error,
        }

    def listing(self, base_url: str) -> dict[str, Any]:
        base = base_url if base_url.endswith("/") else base_url + "/"
        entries = []
        for port in self.declared:
            if port.name in self.apps:
                entries.append(self.model(self.apps[port.name], base_url))
                continue
            path = core.SERVER_APPS.get(port.name) if port.protocol in core.WEB_PROTOCOLS else None
            entries.append(
                {
                    "name": port.name,
                    "title": core.title_of(port.name),
                    "protocol": port.protocol,
                    "ports": list(port.ports),
                    "url": f"{base}{path}" if path else None,
                    "open_url": f"{base}{path}" if path else None,
                    "proxied": False,
                    "managed": False,
                    "arguments": [],
                    "running": path is not None,
                    "started_with": None,
                    "error": None,
                }
            )
        return {"apps": entries, "error": self.error}


# --- handlers ------------------------------------------------------------------------------------


def _apps(handler: Any) -> Apps:
    apps = handler.extensionapp.apps
    if apps is None:
        raise web.HTTPError(503, "the session's apps are not set up")
    return apps


def _app(handler: Any, name: str) -> App:
    apps = _apps(handler)
    app = apps.apps.get(name)
    if app is None:
        raise web.HTTPError(404, f"this session has no app {name!r} to start")
    return app


class AppsHandler(ExtensionAPIHandler):
    """``GET <base_url>backendai/_ext/apps``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(_apps(self).listing(self.base_url)))


class AppHandler(ExtensionAPIHandler):
    """``GET`` (the app) and ``DELETE`` (stop it) ``<base_url>backendai/_ext/apps/<name>``."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.finish(json.dumps(_apps(self).model(_app(self, name), self.base_url)))

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await _apps(self).stop(_app(self, name))
        self.set_status(204)
        self.finish()


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; }}
label {{ display: block; margin: 1rem 0 .25rem; font-weight: 600; }}
input[type=text] {{ width: 100%; padding: .4rem; box-sizing: border-box; }}
button {{ margin-top: 1rem; padding: .4rem 1.2rem; }}
.error {{ color: #b00020; }} .hint {{ color: #555; }}
</style></head>
<body><h1>{title}</h1>{error}
<form method="post" id="open-app" action="{action}">
<input type="hidden" name="_xsrf" value="{xsrf}">
{fields}
<button type="submit" id="open-app-submit">{button}</button>
</form>{script}</body></html>
"""


class AppOpenHandler(ExtensionHandlerMixin, JupyterHandler):
    """``GET|POST <base_url>backendai/_ext/apps/<name>/open``: the page that opens an app."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, name: str, prefix: str) -> None:  # type: ignore[override]
        self.prefix = prefix
        super().initialize(name)

    def _page(self, title: str, fields: str, button: str, error: str = "", auto: bool = False) -> None:
        script = "<script>document.getElementById('open-app').submit()</script>" if auto else ""
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(
            _PAGE.format(
                title=xhtml_escape(title),
                error=f'<p class="error" role="alert">{xhtml_escape(error)}</p>' if error else "",
                action=xhtml_escape(self.request.path),
                xsrf=xhtml_escape(self.xsrf_token),
                fields=fields,
                button=xhtml_escape(button),
                script=script,
            )
        )

    def _form(self, apps: Apps, app: App, error: str = "", values: dict[str, str] | None = None) -> None:
        shown = {**apps.defaults(app), **(values or {})}
        fields = [
            '<p class="hint">The app starts with these values; opening it again with other values restarts it.</p>'
        ]
        for i, name in enumerate(app.defn.allowed_arguments if app.defn else ()):
            fields.append(
                f'<label for="arg-{i}">{xhtml_escape(core.ARGUMENT_TITLES.get(name, name))}</label>'
                f'<input type="text" id="arg-{i}" name="{xhtml_escape(name)}" value="{xhtml_escape(shown.get(name, ""))}">'
            )
        self._page(f"Open {core.title_of(app.name)}", "\n".join(fields), "Open", error)

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        if name == "terminal":
            self._terminal_manager()
            self._page("New terminal", "", "Open a new terminal", auto=True)
            return
        apps = _apps(self)
        app = _app(self, name)
        if app.error:
            raise web.HTTPError(409, f"{app.name} cannot be opened: {app.error}")
        if app.defn is not None and app.defn.allowed_arguments:
            self._form(apps, app)
            return
        self.redirect(apps.model(app, self.base_url)["url"])

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        if name == "terminal":
            await self._new_terminal()
            return
        apps = _apps(self)
        app = _app(self, name)
        if app.error:
            raise web.HTTPError(409, f"{app.name} cannot be opened: {app.error}")
        given = {k: self.get_body_argument(k) for k in self.request.body_arguments if k != "_xsrf"}
        previous = app.started_with if app.running else None
        try:
            checked = apps.set_arguments(app, given)
        except core.AppError as e:
            self.set_status(400)
            self._form(apps, app, str(e), {k: v for k, v in given.items() if isinstance(v, str)})
            return
        if previous is not None and previous != checked:
            await apps.stop(app)  # restarted with the new values on the next request
        self.redirect(apps.model(app, self.base_url)["url"], status=303)

    def _terminal_manager(self) -> Any:
        manager = self.settings.get("terminal_manager")
        if manager is None or not self.settings.get("terminals_available", False):
            raise web.HTTPError(404, "this server has no terminals")
        return manager

    async def _new_terminal(self) -> None:
        manager = self._terminal_manager()
        user = self.current_user
        if not await ensure_async(self.authorizer.is_authorized(self, user, "write", "terminals")):
            raise web.HTTPError(403, "you may not open terminals on this server")
        model = manager.create()
        self.redirect(f"{self.base_url}terminals/{urllib.parse.quote(model['name'])}", status=303)


def app_routes(prefix: str, kwargs: dict[str, Any]) -> list[tuple]:
    """The extension's ``_ext/apps`` routes (to add before its catch-all proxy to the manager)."""
    return [
        (proxy.route_pattern(prefix, "_ext/apps"), AppsHandler, kwargs),
        (proxy.route_pattern(prefix, "_ext/apps/([^/]+)"), AppHandler, kwargs),
        (proxy.route_pattern(prefix, "_ext/apps/([^/]+)/open"), AppOpenHandler, kwargs),
    ]
