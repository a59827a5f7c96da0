"""``GET /openapi.json``: an OpenAPI 3 document of the whole API, made from the routes themselves.

Each route's handler methods are the operations; a method's docstring (else its class's) is
the summary and description; path groups are path parameters; handlers with ``public = True``
need no credentials, the others take a JupyterHub token or a Backend.AI keypair signature.
Built from the live routing table, the document cannot drift from what is served;
``tests/manager/test_manager_openapi.py`` checks that every operation is documented and that the
document is valid, and runs schemathesis against it.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from .._version import __version__
from .base import APIHandler

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)|\([^)]*\)")


def openapi_path(regex: str) -> tuple[str, list[str]]:
    """``/folders/(?P<name>[^/]+)/files`` → (``/folders/{name}/files``, ["name"])."""
    names: list[str] = []

    def repl(match: re.Match) -> str:
        name = match.group(1) or f"param{len(names) + 1}"
        names.append(name)
        return "{" + name + "}"

    path = _GROUP.sub(repl, regex.rstrip("$"))
    path = path.replace("/?", "") or "/"
    path = path.replace("\\", "")
    return path, names


def _doc(handler: type, method: str) -> tuple[str, str]:
    fn = getattr(handler, method)
    text = inspect.getdoc(fn) if fn.__qualname__.split(".")[0] == handler.__name__ or fn.__doc__ else None
    text = text or inspect.getdoc(handler) or ""
    first, _, rest = text.partition("\n")
    return first.strip(), rest.strip()


def implemented(handler: type) -> list[str]:
    """The HTTP methods a handler class itself implements (not tornado's defaults)."""
    from tornado.web import RequestHandler

    return [m for m in METHODS if getattr(handler, m, None) is not getattr(RequestHandler, m, None)]


def entry_ids(paths: dict[str, Any], handler: type, method: str) -> set[str]:
    """The methods of ``handler`` already documented under another path."""
    base = f"{handler.__name__}.{method}"
    return {method for item in paths.values() for op in item.values() if op["operationId"].split("@")[0] == base}


def build_document(routes: list[tuple[str, type]], prefix: str = "") -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for regex, handler in routes:
        if not (isinstance(handler, type) and issubclass(handler, APIHandler)) or regex.endswith("/.*"):
            continue
        if prefix and regex.startswith(prefix):
            regex = regex[len(prefix) :] or "/"
        path, params = openapi_path(regex)
        entry = paths.setdefault(path, {})
        for method in implemented(handler):
            summary, description = _doc(handler, method)
            op: dict[str, Any] = {
                # One handler may serve several paths; the id must be unique per operation.
                "operationId": f"{handler.__name__}.{method}"
                + ("" if method not in entry_ids(paths, handler, method) else f"@{path}"),
                "summary": summary,
                "parameters": [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
                ],
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
                    "4XX": {"$ref": "#/components/responses/Error"},
                },
            }
            if description:
                op["description"] = description
            if method in ("post", "put", "patch", "delete") and not getattr(handler, "raw_body", False):
                op["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            op["security"] = [] if handler.public else [{"hubToken": []}, {"keypair": []}]
            entry[method] = op
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "jupyter-backendai manager",
            "version": __version__,
            "description": "Folders, transfers, sessions, resources and administration; Backend.AI's paths and shapes.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "hubToken": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "token <t>"},
                "keypair": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "BackendAI signMethod=HMAC-SHA256, credential=<access key>:<signature>",
                },
            },
            "responses": {
                "Error": {
                    "description": "A refusal with its reason",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"title": {"type": "string"}, "status": {"type": "integer"}},
                                "required": ["title", "status"],
                            }
                        }
                    },
                }
            },
        },
    }


class OpenAPIHandler(APIHandler):
    """The OpenAPI 3 document of this service."""

    public = True

    def get(self):
        """The OpenAPI 3 document of every endpoint."""
        app = self.application
        routes = [(rule.matcher.regex.pattern, rule.target) for rule in app.wildcard_router.rules]
        prefix = "/" + self.manager.base_url.strip("/")
        self.send(build_document(routes, "" if prefix == "/" else prefix))


handlers = [(r"/openapi.json", OpenAPIHandler)]
