"""``jupyter-backendai``: the operator's command line.

A tree of traitlets Applications, the way JupyterHub builds ``jupyterhub upgrade-db``: the
top command has a sub-command per kind of thing (``user``, ``policy``...), each of those a
sub-command per action. Every leaf takes ``--db-url`` (or ``$BACKENDAI_DB_URL``) and every
listing takes ``--json``. Bad input ends with one line on stderr and exit status 2, never a
traceback.

One module per kind of thing (``users``, ``policies``...); what they share is in ``_base``.
"""

from __future__ import annotations

import re
import sys

from sqlalchemy.exc import SQLAlchemyError
from traitlets import TraitError
from traitlets.config.loader import ArgumentError

from ..core.slots import SlotError
from ..db import admin
from ..db.engine import DatabaseError
from ._base import Command, CommandError, commands
from .database import Bootstrap, DBApp, upgrade_with_defaults
from .domains import DomainApp, GroupApp
from .images import ImageApp, RegistryApp
from .invitations import InvitationApp
from .keypairs import KeypairApp
from .policies import PolicyApp, PresetApp
from .scaling_groups import ScalingGroupApp
from .users import UserApp

__all__ = ["BackendAIApp", "main", "upgrade_with_defaults"]


# --- the top ------------------------------------------------------------------------------


class BackendAIApp(Command):
    name = "jupyter-backendai"
    description = "Operate a jupyter-backendai installation: database, accounts, policies, images, resource groups."
    examples = """
    jupyter-backendai db upgrade --db-url=sqlite:///backendai.sqlite
    jupyter-backendai policy create student --cpu 4 --mem 16g --max-sessions 2
    jupyter-backendai user create alice@example.com --password 'S3cret!pw' --group default --policy student
    jupyter-backendai user list --json
    """
    subcommands = commands(
        DBApp,
        DomainApp,
        GroupApp,
        UserApp,
        KeypairApp,
        PolicyApp,
        PresetApp,
        ImageApp,
        RegistryApp,
        ScalingGroupApp,
        InvitationApp,
        Bootstrap,
    )


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    CommandError,
    admin.AdminError,
    SlotError,
    DatabaseError,
    TraitError,
    ArgumentError,
    ValueError,
)


def _reset_singletons() -> None:
    """Forget the sub-command instances of an earlier run (traitlets keeps them as singletons)."""
    stack: list[type] = [Command]
    while stack:
        cls = stack.pop()
        cls.clear_instance()
        stack.extend(cls.__subclasses__())


def main(argv: list[str] | None = None) -> int:
    _reset_singletons()
    app = BackendAIApp()
    try:
        app.initialize(sys.argv[1:] if argv is None else argv)
        app.start()
    except EXPECTED_ERRORS as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except SQLAlchemyError as e:
        print(f"error: database: {_one_line(e.orig if getattr(e, 'orig', None) else e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        # A sub-command left as the Application singleton would make any later Application in
        # this process (a jupyter server started by a test or a notebook) refuse to start.
        _reset_singletons()
    return 0


_TRAIT_ERROR = re.compile(r"^The '(\w+)' trait of an? \w+ instance expected (.+?), not the \w+ (.+?)\.?$")


def _one_line(e: BaseException) -> str:
    if isinstance(e, TraitError):
        match = _TRAIT_ERROR.match(str(e).strip())
        if match:
            option, expected, got = match.groups()
            return f"--{option.rstrip('_').replace('_', '-')}: expected {expected}, not {got}"
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__
