"""The options reference (docs/options.md), rendered from the traits' own ``help=``.

Each option's meaning lives once, in its trait; the reference is generated from it and a test
keeps the committed file equal to what this renders. Regenerate after changing a trait:

    python -m jupyter_backendai._docs            # writes docs/options.md
    python -m jupyter_backendai._docs --check    # exits 1 when docs/options.md is stale
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import NamedTuple

from traitlets import DefaultHandler, Enum, TraitType
from traitlets.config import Configurable

OPTIONS_MD = Path(__file__).resolve().parent.parent / "docs" / "options.md"
REGENERATE = "python -m jupyter_backendai._docs"


class Section(NamedTuple):
    path: str  # "module:Class"
    title: str
    where: str  # which configurations it applies to, in a sentence


# Every configurable class with options of its own, in reading order. A test fails when one is
# missing, so a new class cannot ship undocumented.
SECTIONS = [
    Section(
        "jupyter_backendai.settings:DatabaseSettings",
        "The database, for every part",
        "`c.DatabaseSettings.db_url` sets it for all of them at once; one part at a time: "
        "`c.DockerSessionSpawner.db_url` (any spawner), `c.BackendAIAuthenticator.db_url`, "
        "`c.BackendAI.db_url`, `--ManagerApp.db_url=`, the CLI's `--db-url`",
    ),
    Section(
        "jupyter_backendai.settings:StorageSettings",
        "The folder storage, for every part",
        "`c.StorageSettings.storage_root` sets it for all spawners at once; one part at a time: "
        "`c.DockerSessionSpawner.storage_root` (any spawner), `--ManagerApp.storage_root=`",
    ),
    Section(
        "jupyter_backendai.hub.spawner:SessionSpawnerMixin",
        "Every session spawner",
        "options of all backends; set them on the spawner class in use, e.g. "
        "`c.DockerSessionSpawner.usage_interval`, `c.SwarmSessionSpawner.…`, `c.KubeSessionSpawner.…`, "
        "`c.LocalSessionSpawner.…` (or `c.SessionSpawnerMixin.…` for whichever runs)",
    ),
    Section(
        "jupyter_backendai.hub.spawn_form:SpawnFormMixin",
        "The spawn form of every session spawner",
        "set it on the spawner class in use, e.g. `c.DockerSessionSpawner.options_template` "
        "(or `c.SessionSpawnerMixin.…` for whichever runs)",
    ),
    Section(
        "jupyter_backendai.hub.usage:SessionUsageMixin",
        "Usage samples and idleness in every session spawner",
        "set it on the spawner class in use, e.g. `c.DockerSessionSpawner.usage_interval` "
        "(or `c.SessionSpawnerMixin.…` for whichever runs)",
    ),
    Section(
        "jupyter_backendai.hub.logs:SessionLogsMixin",
        "Sessions' output (every backend)",
        "`c.DockerSessionSpawner.…`, `c.SwarmSessionSpawner.…`, `c.KubeSessionSpawner.…`, `c.LocalSessionSpawner.…`",
    ),
    Section(
        "jupyter_backendai.hub.images:ImagesMixin",
        "Images onto agents (Docker, Swarm and Kubernetes backends)",
        "`c.DockerSessionSpawner.…`, `c.SwarmSessionSpawner.…`, `c.KubeSessionSpawner.…`; see the README's "
        "*Images from registries*",
    ),
    Section(
        "jupyter_backendai.hub.runtime:PlainImagesMixin",
        "Plain images (Docker and Swarm backends)",
        "`c.DockerSessionSpawner.…`, `c.SwarmSessionSpawner.…`; see [plain-images.md](plain-images.md)",
    ),
    Section(
        "jupyter_backendai.hub.docker:DockerSessionSpawner",
        "Docker backend (`backendai-docker`)",
        "`c.DockerSessionSpawner.…`, besides dockerspawner's own `DockerSpawner` options",
    ),
    Section(
        "jupyter_backendai.hub.swarm:SwarmSessionSpawner",
        "Docker Swarm backend (`backendai-swarm`)",
        "`c.SwarmSessionSpawner.…`, besides dockerspawner's own `SwarmSpawner` options",
    ),
    Section(
        "jupyter_backendai.hub.swarm_nodes:SwarmNodesMixin",
        "Swarm nodes as agents",
        "`c.SwarmSessionSpawner.…`",
    ),
    Section(
        "jupyter_backendai.hub.images:SwarmImages",
        "Images onto swarm nodes",
        "`c.SwarmSessionSpawner.…`",
    ),
    Section(
        "jupyter_backendai.hub.kube:KubeSessionSpawner",
        "Kubernetes backend (`backendai-kubernetes`)",
        "`c.KubeSessionSpawner.…`, besides kubespawner's own `KubeSpawner` options; see [kubernetes.md](kubernetes.md)",
    ),
    Section(
        "jupyter_backendai.hub.kube_nodes:KubeNodesMixin",
        "Kubernetes nodes as agents",
        "`c.KubeSessionSpawner.…`; see [kubernetes.md](kubernetes.md)",
    ),
    Section(
        "jupyter_backendai.hub.kube_images:KubeImages",
        "Images onto Kubernetes nodes",
        "`c.KubeSessionSpawner.…`; see [kubernetes.md](kubernetes.md#images)",
    ),
    Section(
        "jupyter_backendai.hub.local:LocalSessionSpawner",
        "Local backend (`backendai-local`)",
        "`c.LocalSessionSpawner.…`, besides JupyterHub's `LocalProcessSpawner` options",
    ),
    Section(
        "jupyter_backendai.hub.auth:BackendAIAuthenticator",
        "Login, sign-up and password reset",
        "`c.BackendAIAuthenticator.…` in `jupyterhub_config.py`",
    ),
    Section(
        "jupyter_backendai.hub.mail:Mailer",
        "Mail (verification and reset links)",
        "`c.Mailer.…` in `jupyterhub_config.py`",
    ),
    Section(
        "jupyter_backendai.hub.provision:BackendAI",
        "Users of other authenticators",
        "`c.BackendAI.…` in `jupyterhub_config.py`",
    ),
    Section(
        "jupyter_backendai.manager.app:ManagerApp",
        "The manager service",
        "`--ManagerApp.…=` on its command line (`jupyter-backendai-manager`, or the `command` of the hub's "
        "service in `jupyterhub_config.py`)",
    ),
    Section(
        "jupyter_backendai.serverext.app:BackendAIExtension",
        "The server extension (in sessions and in JupyterLab)",
        "`c.BackendAIExtension.…` in `jupyter_server_config.py`, or `--BackendAIExtension.…=`",
    ),
]


def load(path: str) -> type[Configurable]:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def own_traits(cls: type[Configurable]) -> dict[str, TraitType]:
    """The configurable traits ``cls`` itself declares (inherited ones are documented with their class)."""
    return {name: t for name, t in cls.class_traits(config=True).items() if name in cls.__dict__}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def help_markdown(help_text: str) -> str:
    """A trait's help as one table cell: reST literals as Markdown code, paragraphs kept apart."""
    paragraphs = [" ".join(p.split()) for p in inspect.cleandoc(help_text).split("\n\n") if p.strip()]
    return "<br><br>".join(_cell(p.replace("``", "`")) for p in paragraphs)


def type_markdown(trait: TraitType) -> str:
    if isinstance(trait, Enum):
        return " \\| ".join(f"`{v}`" for v in trait.values)
    name = type(trait).__name__
    inner = getattr(trait, "_trait", None)
    if inner is not None and name in ("List", "Set", "Tuple"):
        return f"{name} of {type(inner).__name__}"
    return name


def default_markdown(cls: type[Configurable], name: str, trait: TraitType) -> str:
    # A default computed at run time (environment, host, other options) depends on where the
    # docs are rendered; the help says what it is.
    if isinstance(cls._all_trait_default_generators.get(name), DefaultHandler):
        return "computed (see description)"
    value = trait.default_value_repr()
    if value in ("''", '""', "0") and re.search(r"\bdefault\b", trait.help or "", re.I):
        return "see description"  # empty stands for a default the help names (an image, a port)
    if value in ("''", '""'):
        return "empty"
    return f"`{_cell(value)}`"


def render_section(section: Section) -> str:
    cls = load(section.path)
    rows = [
        f"| `{name}` | {type_markdown(t)} | {default_markdown(cls, name, t)} | {help_markdown(t.help)} |"
        for name, t in sorted(own_traits(cls).items())
    ]
    return "\n".join(
        [
            # The class name alone as the heading, so that its anchor (#dockersessionspawner) links.
            f"## {cls.__name__}",
            "",
            f"{section.title}: {section.where} (`{cls.__module__}`)",
            "",
            "| option | type | default | description |",
            "|---|---|---|---|",
            *rows,
        ]
    )


def render() -> str:
    parts = [
        "# Options",
        "",
        f"<!-- Generated from the traits' help= by `{REGENERATE}`; edit the traits, not this file. -->",
        "",
        "Every option of the hub's spawners and authenticator, the manager and the server extension,",
        "rendered from the option's own help text (its trait's `help=`, which `--help-all` prints too).",
        "Hub options go into `jupyterhub_config.py`, the server extension's into `jupyter_server_config.py`,",
        "as `c.<Class>.<option> = value`; the manager takes `--ManagerApp.<option>=value`.",
    ]
    for section in SECTIONS:
        parts += ["", render_section(section)]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        if OPTIONS_MD.read_text() != text:
            print(f"{OPTIONS_MD.name} is stale: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    OPTIONS_MD.write_text(text)
    print(f"wrote {OPTIONS_MD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
