"""Notebook widgets (ipywidgets 8) on the manager's API: launch and watch sessions, list and
terminate them, see what is used against what is allocatable, and browse a folder.

Each takes ``client=`` (a :class:`jupyter_backendai.client.Client`); without it, one is made
from the environment, which inside a session finds the manager and the user's token::

    from jupyter_backendai.widgets import FolderBrowser, SessionLauncher, SessionList, UsageGauges

    SessionLauncher()

They are made of standard ipywidgets only (no JavaScript of their own), so JupyterLab with
``jupyterlab_widgets`` shows them. The buttons call public methods (``launch()``,
``refresh()``, ``terminate()``, ``upload()``, ...), which scripts and tests can call too; what
the widgets show is computed by the pure functions of :mod:`.model`.
"""

from __future__ import annotations

from .folders import FolderBrowser
from .gauges import UsageGauges
from .launcher import SessionLauncher
from .sessions import SessionList

__all__ = ["FolderBrowser", "SessionLauncher", "SessionList", "UsageGauges"]
