"""``UsageGauges``: per resource slot, what the caller's sessions hold against what they could hold."""

from __future__ import annotations

import ipywidgets as w

from ..client import Client
from . import model
from ._common import Poller, client_or_default, describe_error, message_html


class UsageGauges(w.VBox):
    """One progress bar per slot with its numbers (``CPU: 1 / 4``), from check-presets.

    ``group`` and ``scaling_group`` narrow what "allocatable" means (a project's cap, one
    resource group's free room); by default the caller's default project and all resource
    groups open to them. ``refresh()`` reloads; ``start(interval)`` keeps it live.
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        group: str | None = None,
        scaling_group: str | None = None,
        live: float | None = None,
    ):
        self.client = client_or_default(client)
        self.group = group
        self.scaling_group = scaling_group
        self.gauges: list[model.Gauge] = []
        self._poller: Poller | None = None
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.bars = w.VBox()
        self.message = w.HTML()
        super().__init__([w.HTML("<b>Resources</b>"), self.bars, w.HBox([self.refresh_button, self.message])])
        self.add_class("jp-BackendAI-UsageGauges")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.refresh()
        if live:
            self.start(live)

    def refresh(self) -> list[model.Gauge]:
        try:
            check = self.client.check_presets(self.group, self.scaling_group)
        except Exception as e:  # noqa: BLE001 - shown to the user
            self.message.value = message_html(f"Could not read the usage: {describe_error(e)}", "error")
            return self.gauges
        self.gauges = model.gauges(check, self.scaling_group)
        rows = []
        for gauge in self.gauges:
            bar = w.FloatProgress(
                value=model.gauge_bar_value(gauge),
                min=0,
                max=model.gauge_bar_max(gauge),
                bar_style="danger" if gauge.fraction >= 0.9 else ("warning" if gauge.fraction >= 0.7 else "success"),
                layout=w.Layout(width="260px"),
            )
            rows.append(w.HBox([w.Label(gauge.label, layout=w.Layout(width="60px")), bar, w.Label(gauge.text)]))
        self.bars.children = rows
        self.message.value = "" if rows else message_html("Nothing in use and no limit to show")
        return self.gauges

    def start(self, interval: float = 10.0) -> None:
        self.stop()
        self._poller = Poller(lambda: (self.refresh(), False)[1], interval=interval)
        self._poller.start()

    def stop(self) -> None:
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
