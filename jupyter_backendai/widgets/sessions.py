"""``SessionList``: the caller's sessions as a live table, running or finished, with terminate buttons."""

from __future__ import annotations

import html
import threading

import ipywidgets as w

from ..client import Client
from . import model
from ._common import Confirm, Poller, client_or_default, describe_error, message_html

COLUMNS = ("Name", "Status", "Image", "Resource group", "Resources", "Created", "")


class SessionList(w.VBox):
    """A table of sessions; Running/Finished toggles which. Terminate asks for confirmation.

    ``refresh()`` reloads it (what the Refresh button does), ``start(interval)`` keeps it live
    from a background thread, ``stop()`` ends that; ``terminate(name)`` is what confirming does.
    """

    def __init__(self, client: Client | None = None, *, page_size: int = 50, live: float | None = None):
        self.client = client_or_default(client)
        self.page_size = page_size
        self.rows: list[model.SessionRow] = []
        self.total = 0
        self._lock = threading.Lock()
        self._poller: Poller | None = None
        self.which = w.ToggleButtons(options=[("Running", "running"), ("Finished", "finished")])
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.confirm = Confirm()
        self.message = w.HTML()
        self.table = w.GridBox(layout=w.Layout(grid_template_columns="repeat(6, auto) 110px", grid_gap="2px 12px"))
        super().__init__(
            [w.HBox([self.which, self.refresh_button]), self.table, self.confirm, self.message],
        )
        self.add_class("jp-BackendAI-SessionList")
        self.which.observe(lambda _c: self.refresh(), names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.refresh()
        if live:
            self.start(live)

    @property
    def status_filter(self) -> str:
        return self.which.value

    def refresh(self) -> list[model.SessionRow]:
        """Reload the table from ``GET /session``; returns its rows."""
        try:
            listing = self.client.list_sessions(self.which.value, page_size=self.page_size)
        except Exception as e:  # noqa: BLE001 - shown to the user
            self.message.value = message_html(f"Could not list the sessions: {describe_error(e)}", "error")
            return self.rows
        rows = model.session_rows(listing)
        with self._lock:
            self.rows, self.total = rows, int(listing.get("total_count", len(rows)))
            self.table.children = self._cells(rows)
        shown = f"{len(rows)} of {self.total}" if self.total > len(rows) else str(len(rows))
        self.message.value = message_html(f"{shown} {self.which.value} session(s)")
        return rows

    def _cells(self, rows: list[model.SessionRow]) -> list[w.Widget]:
        cells: list[w.Widget] = [w.HTML(f"<b>{c}</b>") for c in COLUMNS]
        for row in rows:
            status = html.escape(row.status) + (
                f' <small title="{html.escape(row.info)}">ⓘ</small>' if row.info else ""
            )
            cells += [
                w.HTML(html.escape(row.name)),
                w.HTML(status),
                w.HTML(html.escape(row.image)),
                w.HTML(html.escape(row.resource_group)),
                w.HTML(html.escape(row.resources)),
                w.HTML(html.escape(row.created)),
            ]
            if row.can_terminate:
                button = w.Button(description="Terminate", button_style="danger", layout=w.Layout(width="100px"))
                button.on_click(lambda _b, r=row: self.request_terminate(r.name))
                cells.append(button)
            else:
                cells.append(w.HTML(""))
        return cells

    def request_terminate(self, name: str) -> None:
        """What a Terminate button does: ask first."""
        self.confirm.ask(f"Terminate the session {name}?", lambda: self.terminate(name))

    def terminate(self, name: str) -> dict | None:
        """Stop a session through the manager, then reload the table; returns its final state."""
        try:
            answer = self.client.destroy_session(name)
        except Exception as e:  # noqa: BLE001
            self.message.value = message_html(f"Could not terminate {name}: {describe_error(e)}", "error")
            return None
        self.refresh()
        self.message.value = message_html(f"{name}: {answer.get('status')}", "ok")
        return answer

    def start(self, interval: float = 5.0) -> None:
        """Refresh every ``interval`` seconds in the background."""
        self.stop()

        def step() -> bool:
            if not self.confirm.pending:  # a table redrawn under an open question would lose its button
                self.refresh()
            return False

        self._poller = Poller(step, interval=interval)
        self._poller.start()

    def stop(self) -> None:
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
