"""``jupyter-backendai db`` and ``bootstrap``: the schema, its defaults, and a whole set-up from YAML."""

from __future__ import annotations

from traitlets import Bool

from ..db import admin
from ..db.engine import connect, make_engine, resolve_url, upgrade
from ._base import Command, CommandError, Output, commands

# --- db ---------------------------------------------------------------------------------------


class DBUpgrade(Command):
    name = "upgrade"
    description = "Create or migrate the database schema to the newest revision, and add the defaults."

    def start(self) -> None:
        url = resolve_url(self.db_url or None)
        revision, created = upgrade_with_defaults(url)
        self.emit(
            Output(
                {"revision": revision, "created": created, "url": make_engine(url).url.render_as_string()},
                message=f"database at revision {revision}" + (f"; created {', '.join(created)}" if created else ""),
            )
        )


def upgrade_with_defaults(url: str) -> tuple[str, list[str]]:
    """Migrate the schema, then add the default domain, group, policy and resource group."""
    revision = upgrade(make_engine(url))
    factory = connect(url)
    with factory() as db:
        created = admin.ensure_defaults(db)
        db.commit()
    return revision, created


class DBApp(Command):
    name = "db"
    description = "Database maintenance."
    subcommands = commands(DBUpgrade)


# --- bootstrap ----------------------------------------------------------------------------


class Bootstrap(Command):
    name = "bootstrap"
    description = "Load a whole set-up from a YAML file, idempotently (running it twice changes nothing)."
    arguments = ("file",)
    upgrade_db = Bool(True, config=True, help="Bring the schema up to date first.")
    flags = {**Command.flags, "no-upgrade": ({"Bootstrap": {"upgrade_db": False}}, "Do not upgrade the schema first.")}

    def start(self) -> None:
        from ..bootstrap import BootstrapError, load_file

        url = resolve_url(self.db_url or None)
        if self.upgrade_db:
            upgrade_with_defaults(url)
        try:
            spec = load_file(self.extra_args[0])
        except BootstrapError as e:
            raise CommandError(str(e)) from None
        factory = connect(url)
        with factory() as db:
            from ..bootstrap import apply

            report = apply(db, spec)
            db.commit()
        self.emit(Output({"changes": report}, message="\n".join(report) if report else "nothing to change"))
