"""What a spawn asks for, and the two answers admission gives it.

:func:`request_from_options` reads the request (:class:`SessionRequest`) from the spawn form's
fields or from ``user_options``, accepting Backend.AI's names too (``resources``, ``mounts``,
``config.environ``). A launch is then either :class:`Admitted` (queued in its resource group)
or refused: :class:`SessionRefused`, whose message JupyterHub shows on the spawn page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tornado import web

from ..core.environ import EnvironError, check_environ, parse_environ_lines

SLOT_FIELDS = {"cpu": "cpu", "mem": "mem", "cuda_device": "cuda.device", "cuda_shares": "cuda.shares"}


class SessionRefused(web.HTTPError):
    """A spawn that cannot go ahead; JupyterHub shows ``jupyterhub_message`` on the spawn page."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(status, reason)
        self.jupyterhub_message = reason
        self.reason = reason


@dataclass
class SessionRequest:
    """The user's request, read from the form or from ``user_options``."""

    image: str = ""
    group: str = ""
    scaling_group: str = ""
    preset: str = ""
    slots: dict[str, str] = field(default_factory=dict)
    shmem: str = ""
    folders: list[str] = field(default_factory=list)
    #: The user's environment variables (``config.environ``), checked by core.environ.
    environ: dict[str, str] = field(default_factory=dict)


def request_from_options(options: dict[str, Any]) -> SessionRequest:
    """Accept both the form's field names and Backend.AI-style names (``resources``, ``mounts``)."""

    def text(key: str, *aliases: str) -> str:
        for k in (key, *aliases):
            value = options.get(k)
            if isinstance(value, list):
                value = value[0] if value else ""
            if value not in (None, ""):
                return str(value).strip()
        return ""

    slots: dict[str, str] = {}
    resources = options.get("resources") or {}
    if not isinstance(resources, dict):
        raise SessionRefused("'resources' must be a mapping of slot name to amount")
    for key, value in resources.items():
        slots[str(key)] = str(value)
    for field_name, slot in SLOT_FIELDS.items():
        value = text(field_name, slot)
        if value:
            slots[slot] = value
    folders = options.get("folders", options.get("mounts", []))
    if isinstance(folders, str):
        folders = [f for f in folders.split(",")]
    if not isinstance(folders, list):
        raise SessionRefused("'folders' must be a list of folder names")
    environ = options.get("environ")
    try:
        # A mapping from the API (Backend.AI's config.environ), KEY=value lines from a form.
        environ = parse_environ_lines(environ) if isinstance(environ, str) else check_environ(environ)
    except EnvironError as e:
        raise SessionRefused(str(e)) from None
    return SessionRequest(
        image=text("image"),
        group=text("group", "project"),
        scaling_group=text("scaling_group", "resource_group"),
        preset=text("preset"),
        slots=slots,
        shmem=text("shmem"),
        folders=sorted({str(f).strip() for f in folders if str(f).strip()}),
        environ=environ,
    )


@dataclass(frozen=True)
class Admitted:
    session_id: uuid.UUID
    scaling_group: str
    note: str | None
