"""What every command shares: the base command, its output as a table or JSON, and the slot options."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from traitlets import Bool, Dict, Unicode
from traitlets.config import Application, Configurable

from .._version import __version__
from ..core.slots import ResourceSlots
from ..db.engine import connect
from ..settings import DatabaseSettings


class CommandError(Exception):
    """Bad usage of a command; printed as one line."""


# --- the base of every command --------------------------------------------------------------


class Command(DatabaseSettings, Application):
    """A command: either a group of sub-commands or a leaf that does one thing."""

    version = __version__
    #: Names of the positional arguments of a leaf, for its usage line and count check.
    arguments: Sequence[str] = ()
    #: Trailing positional arguments may repeat (the last name takes the rest).
    variadic = False

    json = Bool(False, config=True, help="Print JSON instead of a table.")

    aliases = {"db-url": "Command.db_url", "log-level": "Application.log_level"}
    flags = {"json": ({"Command": {"json": True}}, "Print JSON instead of a table.")}

    def initialize(self, argv: list[str] | None = None) -> None:
        # Not wrapped in catch_config_error: main() turns every error into one line.
        argv = list(argv or [])
        if not (argv and argv[0] in self.subcommands):
            self._check_options(argv)
        self.parse_command_line(argv)
        if self.subapp is not None:
            return
        if self.subcommands:
            if self.extra_args:
                raise CommandError(f"unknown command {self.extra_args[0]!r}; choose one of {self._choices()}")
            return
        given, wanted = len(self.extra_args), len(self.arguments)
        if given < wanted or (given > wanted and not self.variadic):
            usage = " ".join(a.upper() for a in self.arguments)
            raise CommandError(f"usage: {self._path()} {usage} [options] (see --help)")

    def _check_options(self, argv: list[str]) -> None:
        """Refuse options this command does not know (traitlets would only warn)."""
        known = {"help", "help-all", "h", "version", "debug", "show-config", "show-config-json"}
        known |= set(self.aliases) | set(self.flags)
        for arg in argv:
            if arg == "--":
                break
            if arg.startswith("-") and len(arg) > 1 and not arg[1:].replace(".", "").isdigit():
                name = arg.lstrip("-").split("=", 1)[0]
                if name not in known and "." not in name:
                    raise CommandError(f"{self._path()}: unknown option {arg.split('=', 1)[0]} (see --help)")

    def _choices(self) -> str:
        return ", ".join(sorted(self.subcommands))

    def _path(self) -> str:
        names = []
        app: Any = self
        while app is not None:
            names.append(app.name)
            app = app.parent
        return " ".join(reversed(names))

    def start(self) -> None:
        if self.subapp is not None:
            self.subapp.start()
            return
        if self.subcommands:
            raise CommandError(f"{self._path()} needs a command: {self._choices()} (see --help)")
        factory = connect(self.db_url or None)
        with factory() as db:
            result = self.run(db)
            db.commit()
        if result is not None:
            self.emit(result)

    def run(self, db) -> Any:  # pragma: no cover - every leaf overrides it
        raise NotImplementedError

    # output --------------------------------------------------------------------------------
    def emit(self, result: Output) -> None:
        if self.json:
            print(json.dumps(result.data, indent=2, sort_keys=True, default=str))
        else:
            print(result.text())


class Output:
    """What a command prints: JSON data, shown as a table (listings) or as text."""

    def __init__(self, data: Any, columns: Sequence[str] = (), message: str | None = None):
        self.data = data
        self.columns = columns
        self.message = message

    def text(self) -> str:
        if self.message is not None:
            return self.message
        rows = self.data if isinstance(self.data, list) else [self.data]
        if not rows:
            return "(none)"
        if not isinstance(self.data, list):  # one object: "key: value" lines
            return "\n".join(f"{k}: {_cell(v, k)}" for k, v in self.data.items())
        cells = [[_cell(r.get(c), c) for c in self.columns] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
        return "\n".join(lines)


SLOT_COLUMNS = frozenset({"total_resource_slots", "resource_slots", "resource_limits"})


def _cell(value: Any, column: str = "") -> str:
    if column in SLOT_COLUMNS and isinstance(value, dict):
        value = ResourceSlots.parse(value).humanize()
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def listing(rows: list[dict], columns: Sequence[str]) -> Output:
    return Output(rows, columns)


def shown(view: dict, message: str | None = None) -> Output:
    out = Output(view)
    out.message = message
    return out


# --- shared options -------------------------------------------------------------------------


class SlotOptions(Configurable):
    """Resource amounts given as options (``--cpu 4 --mem 16g --cuda-shares 0.5``)."""

    cpu = Unicode(None, allow_none=True, config=True, help="CPU cores (a number, or 'unlimited').")
    mem = Unicode(None, allow_none=True, config=True, help="Memory: 16g, 512m, 1.5GiB, bytes, or 'unlimited'.")
    cuda_device = Unicode(None, allow_none=True, config=True, help="Whole GPUs (cuda.device).")
    cuda_shares = Unicode(None, allow_none=True, config=True, help="Fractional GPUs (cuda.shares).")
    slot = Dict({}, config=True, help="Any other slot as NAME=AMOUNT, repeatable (--slot rocm.device=1).")

    def slots(self) -> dict[str, Any]:
        given = {"cpu": self.cpu, "mem": self.mem, "cuda.device": self.cuda_device, "cuda.shares": self.cuda_shares}
        given.update(self.slot)
        return {k: v for k, v in given.items() if v is not None}


SLOT_ALIASES = {
    "cpu": "SlotOptions.cpu",
    "mem": "SlotOptions.mem",
    "cuda-device": "SlotOptions.cuda_device",
    "cuda-shares": "SlotOptions.cuda_shares",
    "slot": "SlotOptions.slot",
}


class SlotCommand(Command):
    """A leaf that reads resource amounts."""

    aliases = {**Command.aliases, **SLOT_ALIASES}
    # Listing the option classes lets the parser type their values (a single --allowed-hosts
    # value would otherwise stay an unparsed string).
    classes = [SlotOptions]

    @property
    def slot_options(self) -> SlotOptions:
        return SlotOptions(parent=self)


def commands(*classes: type[Command]) -> dict[str, tuple[type[Command], str]]:
    """A command group's ``subcommands``: each command under its ``name``, with its description."""
    return {c.name: (c, c.description) for c in classes}


def yes_no_flags(cls: str, trait: str, name: str, what: str) -> dict:
    return {
        name: ({cls: {trait: True}}, f"Set {what}."),
        f"no-{name}": ({cls: {trait: False}}, f"Unset {what}."),
    }


def split_values(values: Sequence[str] | None) -> list[str]:
    """Accept both repeated options and comma-separated values."""
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]
