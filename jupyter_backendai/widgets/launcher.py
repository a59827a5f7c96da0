"""``SessionLauncher``: choose an image, a resource group, a preset or custom amounts and folders,
then launch and watch the session through the queue to RUNNING."""

from __future__ import annotations

import html
import os
import threading
import time
from typing import Any

import ipywidgets as w

from ..client import Client, ManagerError
from . import model
from ._common import Poller, client_or_default, describe_error, message_html

PRESET, CUSTOM = "preset", "custom"
#: JupyterLab resets the look of links in outputs; this one must look like a link.
LINK_STYLE = "color: var(--jp-content-link-color, #1976d2); text-decoration: underline"


class SessionLauncher(w.VBox):
    """A launch form with a live status line and, once RUNNING, a link to open the session.

    ``launch()`` is what the button does; ``wait()`` blocks until the session runs or ends.
    The status is polled on a background thread every ``poll_interval`` seconds while a
    launch is in flight (``stop()`` ends it).
    """

    def __init__(self, client: Client | None = None, *, poll_interval: float = 1.0, load: bool = True):
        self.client = client_or_default(client)
        self.poll_interval = poll_interval
        self._state = model.LaunchState()
        self._changed = threading.Condition()
        self._poller: Poller | None = None
        style = {"description_width": "120px"}

        def wide() -> w.Layout:  # one each: hiding a widget sets display on its layout
            return w.Layout(width="420px")

        self.project = w.Dropdown(description="Project", style=style, layout=wide())
        self.image = w.Dropdown(description="Image", style=style, layout=wide())
        self.scaling_group = w.Dropdown(description="Resource group", style=style, layout=wide())
        self.mode = w.ToggleButtons(
            options=[("Preset", PRESET), ("Custom", CUSTOM)], description="Resources", style=style
        )
        self.preset = w.Dropdown(description="Preset", style=style, layout=wide())
        self.cpu = w.BoundedFloatText(value=1, min=0, max=1024, step=0.5, description="CPU (cores)", style=style)
        self.mem = w.Text(value="1g", description="RAM", placeholder="e.g. 512m, 2g", style=style)
        self.gpu = w.BoundedFloatText(value=0, min=0, max=64, step=0.1, description="GPU (fGPU)", style=style)
        self.custom = w.VBox([self.cpu, self.mem, self.gpu])
        self.folders = w.SelectMultiple(
            description="Folders", style=style, layout=w.Layout(width="420px", height="90px")
        )
        self.name = w.Text(description="Session name", placeholder="(generated)", style=style, layout=wide())
        self.launch_button = w.Button(description="Launch", button_style="primary", icon="rocket")
        self.stop_button = w.Button(description="Stop watching", icon="stop", disabled=True)
        self.message = w.HTML()
        self.status = w.HTML(value=message_html(model.status_text(self._state)))
        self.link = w.HTML()
        super().__init__(
            [
                w.HTML("<b>Launch a session</b>"),
                self.project,
                self.image,
                self.scaling_group,
                self.mode,
                self.preset,
                self.custom,
                self.folders,
                self.name,
                w.HBox([self.launch_button, self.stop_button]),
                self.message,
                self.status,
                self.link,
            ]
        )
        self.add_class("jp-BackendAI-SessionLauncher")
        self.launch_button.on_click(lambda _b: self._launch_clicked())
        self.stop_button.on_click(lambda _b: self.stop())
        self.mode.observe(lambda _c: self._show_mode(), names="value")
        self.project.observe(lambda _c: self._project_changed(), names="value")
        self.scaling_group.observe(lambda _c: self._refresh_presets(), names="value")
        self._loading = False
        self._show_mode()
        if load:
            self.refresh()

    # --- options ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Load projects, images, resource groups, presets that fit and folders from the manager."""
        self._loading = True
        try:
            options = self.client.launch_options(self.project.value or None)
            groups = [g["name"] for g in options.get("groups") or []]
            self.project.options = groups
            if options.get("group") in groups:
                self.project.value = options["group"]
            self._set_options(options)
            self.folders.options = model.folder_options(self.client.list_folders())
            self.message.value = ""
        except Exception as e:  # noqa: BLE001 - shown to the user
            self.message.value = message_html(f"Could not load the options: {describe_error(e)}", "error")
        finally:
            self._loading = False
        self._refresh_presets()

    def _set_options(self, options: dict[str, Any]) -> None:
        images = [i["reference"] for i in options.get("images") or []]
        self.image.options = images
        if images and self.image.value not in images:
            self.image.value = images[0]
        groups = list(options.get("scaling_groups") or [])
        self.scaling_group.options = groups
        if groups and self.scaling_group.value not in groups:
            self.scaling_group.value = groups[0]

    def _project_changed(self) -> None:
        if self._loading or not self.project.value:
            return
        try:
            self._set_options(self.client.launch_options(self.project.value))
        except Exception as e:  # noqa: BLE001
            self.message.value = message_html(describe_error(e), "error")
        self._refresh_presets()

    def _refresh_presets(self) -> None:
        if self._loading:
            return
        try:
            check = self.client.check_presets(self.project.value or None, self.scaling_group.value or None)
        except Exception as e:  # noqa: BLE001
            self.message.value = message_html(f"Could not check the presets: {describe_error(e)}", "error")
            return
        options = model.preset_options(check)
        current = self.preset.value
        self.preset.options = options
        names = [name for _label, name in options]
        if names:
            self.preset.value = current if current in names else names[0]
        elif self.mode.value == PRESET:
            self.message.value = message_html(
                "No preset fits what you may still use and what is free now: choose custom amounts."
            )

    def _show_mode(self) -> None:
        preset = self.mode.value == PRESET
        self.preset.layout.display = None if preset else "none"
        self.custom.layout.display = "none" if preset else None

    # --- launching ----------------------------------------------------------------------------

    def form(self) -> model.LaunchForm:
        """What the controls say now."""
        preset = self.mode.value == PRESET
        return model.LaunchForm(
            name=self.name.value,
            image=self.image.value,
            group=self.project.value,
            scaling_group=self.scaling_group.value,
            preset=self.preset.value if preset else None,
            cpu=None if preset else self.cpu.value,
            mem=None if preset else self.mem.value,
            gpu=None if preset else self.gpu.value,
            folders=tuple(self.folders.value),
        )

    @property
    def state(self) -> model.LaunchState:
        return self._state

    def _set_state(self, state: model.LaunchState) -> None:
        with self._changed:
            self._state = state
            self._changed.notify_all()
        kind = {"refused": "error", "error": "error", "running": "ok"}.get(state.phase, "info")
        self.status.value = message_html(model.status_text(state), kind)
        if state.url:
            url = html.escape(state.url, quote=True)
            self.link.value = (
                f'<a href="{url}" target="_blank" rel="noopener" style="{LINK_STYLE}">'
                f"Open {html.escape(state.name or '')}</a>"
            )
        else:
            self.link.value = ""
        self.launch_button.disabled = not state.done and state.phase != "idle"
        self.stop_button.disabled = state.done or state.phase == "idle"

    def _launch_clicked(self) -> None:
        try:
            self.launch()
        except ValueError as e:
            self.message.value = message_html(str(e), "error")

    def launch(self, watch: bool = True) -> model.LaunchState:
        """Submit the form (what the Launch button does); then poll the status unless ``watch`` is False.

        A request the form cannot express raises ValueError; a refusal by the manager becomes
        the ``refused`` state with the manager's reason.
        """
        request = model.launch_request(self.form())
        self.stop()
        self.message.value = ""
        self.launch_button.disabled = True
        try:
            answer = self.client.create_session(**request)
        except ManagerError as e:
            self._set_state(model.refused_state(e.status, e.title))
            return self._state
        except Exception as e:  # noqa: BLE001 - the network, a proxy: said in the status line
            self._set_state(model.LaunchState(phase="error", message=describe_error(e)))
            return self._state
        self._set_state(model.launch_state(answer))
        try:
            self.poll()  # the queue position, or (a quick backend) the link to the running session
        except Exception as e:  # noqa: BLE001 - the watch retries
            self.message.value = message_html(f"Could not read the status: {describe_error(e)}", "error")
        if watch and not self._state.done:
            self.watch()
        return self._state

    def poll(self) -> model.LaunchState:
        """Read the launched session's status (and queue position) once, and show it."""
        name = self._state.session_id or self._state.name
        if not name:
            return self._state
        queue = self.client.session_queue(name)
        url = None
        if queue.get("status") == model.RUNNING:
            detail = self.client.get_session(name)
            url = model.app_url(detail, self.client.endpoint, same_origin=_served_by_the_hub())
        state = model.launch_state({**queue, "name": self._state.name or queue.get("name")}, url=url)
        self._set_state(state)
        return state

    def watch(self) -> None:
        """Poll in the background until the session runs or ends (or ``stop()``)."""
        self.stop()

        def on_error(e: BaseException) -> None:
            self.message.value = message_html(f"Could not read the status: {describe_error(e)}", "error")

        self._poller = Poller(lambda: self.poll().done, interval=self.poll_interval, on_error=on_error)
        self._poller.start()

    def stop(self) -> None:
        """Stop polling (the session itself goes on)."""
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
            if not self._state.done:
                self.stop_button.disabled = True
                self.launch_button.disabled = False

    def wait(self, phases: tuple[str, ...] = ("running",), timeout: float = 120) -> model.LaunchState:
        """Block until the launch reaches one of ``phases`` or is done; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._state.phase not in phases and not self._state.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"after {timeout} s the launch is at: {model.status_text(self._state)}")
                if self._poller is None or not self._poller.running:
                    self._changed.release()
                    try:
                        self.poll()
                    finally:
                        self._changed.acquire()
                    self._changed.wait(min(left, self.poll_interval))
                else:
                    self._changed.wait(min(left, 1.0))
        return self._state


def _served_by_the_hub() -> bool:
    """Inside a session the page is served through the hub's proxy, where the app path is right as is."""
    return bool(os.environ.get("JUPYTERHUB_API_URL"))
