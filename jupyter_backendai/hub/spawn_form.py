"""The spawn form and the options a spawn brings (JupyterHub's ``options_form`` / ``user_options``).

The form is a Jinja template (``options_template``) rendered with what the user may choose:
images, projects, resource groups, the presets that fit each (project, resource group) pair by
the rule the lab's start dialog reads (``check-presets``), folders and the user's policy. Its
fields become options by :meth:`SpawnFormMixin.options_from_form`; options from the API are
checked before the spawn starts (``apply_user_options``), both read by
:func:`~.request.request_from_options`.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from ..core.environ import RESERVED_TEXT, EnvironError, parse_environ_lines
from ..core.slots import ResourceSlots
from ..db import launch
from . import TEMPLATES
from .request import SLOT_FIELDS, SessionRefused, request_from_options


class SpawnFormMixin(LoggingConfigurable):
    """The spawn form of every session spawner; a base of ``SessionSpawnerMixin``."""

    options_template = Unicode(
        "spawn_form.html",
        config=True,
        help="""Template of the spawn form; to change it, put a file of this name in a directory of
        ``c.JupyterHub.template_paths`` (searched first).""",
    )

    @default("apply_user_options")
    def _default_apply_user_options(self):
        # JupyterHub >= 5.3 calls this before start(): bad options become a 400 right away.
        def check(spawner, user_options):
            request_from_options(user_options or {})

        return check

    @default("options_form")
    def _default_options_form(self):
        return self._render_options_form

    async def _render_options_form(self, spawner) -> str:
        await self.ensure_agent()  # what fits depends on the agents' capacity
        ns = await self.run_db(self._form_namespace)
        env = Environment(loader=FileSystemLoader([*self._template_paths(), TEMPLATES]), autoescape=select_autoescape())
        return env.get_template(self.options_template).render(**ns)

    def _template_paths(self) -> list[str]:
        app = getattr(self.user, "settings", {}) or {}
        return [p for p in (app.get("template_path") or []) if isinstance(p, str)]

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for key in ("image", "group", "scaling_group", "preset", "shmem", *SLOT_FIELDS):
            value = (formdata.get(key) or [""])[0].strip()
            if value:
                options[key] = value
        options["folders"] = [f for f in formdata.get("folders", []) if f.strip()]
        lines = (formdata.get("environ") or [""])[0]
        if lines.strip():
            try:
                options["environ"] = parse_environ_lines(lines)
            except EnvironError as e:
                raise SessionRefused(str(e)) from None  # shown above the form again
        return options

    def _form_namespace(self, db) -> dict[str, Any]:
        from ..db import folders as folder_db

        user, keypair = self._user_and_keypair(db)
        groups = sorted(user.groups, key=lambda g: g.name)
        first_group = groups[0] if groups else None
        sgroups = launch.allowed_scaling_groups(db, user, keypair, first_group, self.default_scaling_group)
        images = launch.allowed_images(db, user, first_group)
        accessible = folder_db.accessible_folders(db, user)
        # Which presets fit, per project and resource group, by the rule the lab's start dialog
        # reads (check-presets); the form shows those of the pair chosen in it.
        offered: dict[str, dict[str, Any]] = {}
        every: set[str] = set()
        for group, sg, answer in launch.presets_per_choice(db, user, keypair, self.default_scaling_group):
            for p in answer["presets"]:
                every.add(p["name"])
                if p["allocatable"]:
                    entry = offered.setdefault(p["name"], {**p, "fits": []})
                    entry["fits"].append(form_choice(group.name if group else "", sg))
        first = form_choice(groups[0].name if groups else "", sgroups[0] if sgroups else "")
        presets = [
            {
                **p,
                "human": ResourceSlots.parse(p["resource_slots"]).nonzero().humanize(),
                "fits_first": first in p["fits"],
            }
            for _, p in sorted(offered.items())
        ]
        return {
            "user": user,
            "backend": self.backend_name,
            "isolates_users": self.isolates_users,
            "backend_reason": getattr(self, "backend_reason", ""),  # why this backend runs (local)
            "images": images,
            "groups": groups,
            "scaling_groups": sgroups,
            "presets": presets,
            "preset_total": len(every),
            "hidden_presets": len(every) - len([p for p in presets if p["fits_first"]]),
            "folders": [a for a in accessible if not a.is_automount],
            "automount": [a for a in accessible if a.is_automount],
            "policy": keypair.policy,
            "environ_reserved": RESERVED_TEXT,
        }


def form_choice(group: str, scaling_group: str) -> str:
    """How the spawn form names a (project, resource group) pair in a preset's ``data-fits``."""
    return f"{group}/{scaling_group}"
