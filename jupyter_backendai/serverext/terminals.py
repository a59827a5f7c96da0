"""A terminal manager that tells each terminal's shell command the terminal's name.

terminado starts every terminal with the same ``shell_command`` and keeps the name to itself,
so a shell command cannot tell two terminals apart: the session image's ``tmux new-session -A
-s main`` attached every terminal to one tmux session, and two terminal tabs mirrored each
other. With this manager the command finds the name in ``$JUPYTER_TERMINAL_NAME``; the image's
``session-terminal`` runs ``tmux new-session -A -s <name>``, so each terminal has a tmux
session of its own, and a terminal that is opened again under its name (JupyterLab does so
after a reload, and after the server lost the terminal) attaches to that session with its
screen and running programs. Enable it with::

    c.TerminalsExtensionApp.terminal_manager_class = "jupyter_backendai.serverext.terminals.SessionTerminalManager"
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from jupyter_server_terminals.terminalmanager import TerminalManager

#: The variable that carries the terminal's name into its shell command.
NAME_ENV = "JUPYTER_TERMINAL_NAME"

#: Questions a program asks the terminal (device attributes, status and cursor reports, the
#: terminal's version, colours, modes). tmux asks some whenever a client attaches.
QUERIES = re.compile(
    r"\x1b\[[>=?]?[0-9;]*[cn]"  # DA1/DA2/DA3, DSR and cursor position
    r"|\x1b\[>[0-9;]*q"  # XTVERSION
    r"|\x1b\[\??[0-9;]*\$p"  # DECRQM
    r"|\x1b\][0-9;]*;\?(?:\x07|\x1b\\)"  # OSC colour queries
)


def strip_queries(text: str) -> str:
    """``text`` without terminal queries.

    terminado replays a terminal's recent output to every browser that connects (after a
    reload too). A question in that replay was answered long ago; the new browser would answer
    it again, and the answer would reach the shell as typed text (``0;276;0c`` at the prompt).
    """
    return QUERIES.sub("", text)


class SessionTerminalManager(TerminalManager):
    """:class:`TerminalManager` whose terminals get ``$JUPYTER_TERMINAL_NAME``, and whose replay
    to a reconnecting browser holds no terminal queries."""

    def new_named_terminal(self, **kwargs: Any) -> Any:
        name = kwargs.get("name") or self._next_available_name()
        extra_env = dict(kwargs.get("extra_env") or {})
        extra_env[NAME_ENV] = name
        return super().new_named_terminal(**{**kwargs, "name": name, "extra_env": extra_env})

    def get_terminal(self, term_name: str) -> Any:
        if term_name is not None and term_name not in self.terminals:
            self.new_named_terminal(name=term_name)  # with its name, as create() would
        term = super().get_terminal(term_name)
        buffer = term.read_buffer
        term.read_buffer = deque((strip_queries(chunk) for chunk in buffer), maxlen=buffer.maxlen)
        return term
