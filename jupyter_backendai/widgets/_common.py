"""What every widget shares: the client, a stoppable background poller, confirmations, progress."""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from ..client import Client, ManagerError

log = logging.getLogger("jupyter_backendai.widgets")

#: A poller gives up after this long, so that a forgotten widget does not poll forever.
DEFAULT_POLL_LIMIT = 3600.0


def client_or_default(client: Client | None) -> Client:
    """The given client, else one from the environment (inside a session: endpoint and token)."""
    return client if client is not None else Client()


def describe_error(e: BaseException) -> str:
    """A refusal's reason as the manager gave it; anything else by its type and message."""
    if isinstance(e, ManagerError):
        return f"{e.title} (HTTP {e.status})"
    return f"{type(e).__name__}: {e}"


def message_html(text: str, kind: str = "info") -> str:
    colour = {"error": "var(--jp-error-color1, #d32f2f)", "ok": "var(--jp-success-color1, #388e3c)"}.get(
        kind, "var(--jp-ui-font-color1, inherit)"
    )
    return f'<span style="color:{colour}">{html.escape(text, quote=False)}</span>'


class Poller:
    """Calls ``step()`` every ``interval`` seconds on a daemon thread until it returns True,
    :meth:`stop` is called, or ``limit`` seconds pass.

    A thread rather than an asyncio task: a notebook cell that blocks (``launcher.wait()``)
    holds the kernel's event loop, and the status must keep moving meanwhile. ipywidgets
    sends trait changes from any thread. An exception in ``step`` goes to ``on_error`` and
    polling goes on (a blip of the network should not freeze the display).
    """

    def __init__(
        self,
        step: Callable[[], bool],
        interval: float = 1.0,
        limit: float = DEFAULT_POLL_LIMIT,
        on_error: Callable[[BaseException], None] | None = None,
    ):
        self.step = step
        self.interval = interval
        self.limit = limit
        self.on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="backendai-widget-poller", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.interval + 30)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if self.step():
                    return
            except Exception as e:  # noqa: BLE001 - shown in the widget, polling goes on
                if self.on_error is not None:
                    self.on_error(e)
                else:
                    log.warning("widget poll failed: %s", e)
            self._stop.wait(self.interval)


class Confirm(w.HBox):
    """An inline "are you sure?" with Yes / No; hidden until :meth:`ask`."""

    def __init__(self) -> None:
        self.question = w.HTML()
        self.yes = w.Button(description="Yes", button_style="danger", layout=w.Layout(width="80px"))
        self.no = w.Button(description="No", layout=w.Layout(width="80px"))
        super().__init__([self.question, self.yes, self.no], layout=w.Layout(display="none"))
        self._action: Callable[[], Any] | None = None
        self.yes.on_click(lambda _b: self._answer(True))
        self.no.on_click(lambda _b: self._answer(False))

    @property
    def pending(self) -> bool:
        return self._action is not None

    def ask(self, question: str, action: Callable[[], Any]) -> None:
        self.question.value = message_html(question)
        self._action = action
        self.layout.display = "flex"

    def _answer(self, yes: bool) -> Any:
        action, self._action = self._action, None
        self.layout.display = "none"
        if yes and action is not None:
            return action()
        return None

    def confirm(self) -> Any:
        """What the Yes button does (for scripts and tests)."""
        return self._answer(True)

    def cancel(self) -> None:
        self._answer(False)


class ProgressBar:
    """A client progress bar (``n``, ``update``, ``refresh``, ``close``) drawn on an ipywidgets bar."""

    def __init__(self, bar: w.IntProgress, label: w.Label, total: int, initial: int, desc: str):
        self.bar = bar
        self.label = label
        self.total = max(int(total), 0)
        self.desc = desc
        self.n = initial
        self._shown = -1.0
        bar.max = max(self.total, 1)
        bar.layout.visibility = "visible"
        self.refresh()

    def update(self, n: int | float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._shown > 0.1 or self.n >= self.total:  # a message per chunk would flood the comm
            self.refresh()

    def refresh(self) -> None:
        self._shown = time.monotonic()
        self.bar.value = min(int(self.n), self.bar.max)
        self.label.value = f"{self.desc}: {int(self.n):,} of {self.total:,} bytes"

    def close(self) -> None:
        self.refresh()

    @classmethod
    def factory(cls, bar: w.IntProgress, label: w.Label) -> Callable[..., ProgressBar]:
        return lambda total, initial, desc: cls(bar, label, total, initial, desc)
