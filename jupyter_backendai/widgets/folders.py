"""``FolderBrowser``: one folder's files: enter sub-folders, go up, upload, download, delete."""

from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path
from typing import Any

import ipywidgets as w

from ..client import Client
from . import model
from ._common import Confirm, ProgressBar, client_or_default, describe_error, message_html


class FolderBrowser(w.VBox):
    """Browse the folder ``name``. Uploads come from the kernel's disk (a path) or from the
    browser (the file picker); downloads go to the kernel's disk. Transfers show progress.

    The methods are what the buttons do: ``enter(dir)``, ``up()``, ``refresh()``,
    ``upload(local_path)``, ``upload_selected()``, ``download(name, to)``, ``delete(name)``
    (the button asks first: ``request_delete``).
    """

    def __init__(self, name: str, client: Client | None = None, *, path: str = ""):
        self.client = client_or_default(client)
        self.folder = name
        self.path = model.normalize_path(path)
        self.rows: list[model.FileRow] = []
        style = {"description_width": "140px"}
        self.location = w.HTML()
        self.entries = w.Select(rows=10, layout=w.Layout(width="460px"))
        self.open_button = w.Button(description="Open", icon="folder-open", tooltip="Enter the selected folder")
        self.up_button = w.Button(description="Up", icon="arrow-up")
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.delete_button = w.Button(description="Delete", icon="trash", button_style="danger")
        self.local_path = w.Text(description="Kernel path", placeholder="file on the kernel's disk", style=style)
        self.upload_button = w.Button(description="Upload", icon="upload")
        self.picker = w.FileUpload(multiple=True, description="Browser files")
        self.picker_upload = w.Button(description="Upload chosen", icon="upload")
        self.save_to = w.Text(value=".", description="Download to", placeholder="kernel directory or path", style=style)
        self.download_button = w.Button(description="Download", icon="download")
        self.confirm = Confirm()
        self.progress = w.IntProgress(min=0, max=1, layout=w.Layout(width="300px", visibility="hidden"))
        self.progress_label = w.Label()
        self.message = w.HTML()
        super().__init__(
            [
                self.location,
                w.HBox(
                    [self.entries, w.VBox([self.open_button, self.up_button, self.refresh_button, self.delete_button])]
                ),
                w.HBox([self.local_path, self.upload_button]),
                w.HBox([self.picker, self.picker_upload]),
                w.HBox([self.save_to, self.download_button]),
                self.confirm,
                w.HBox([self.progress, self.progress_label]),
                self.message,
            ]
        )
        self.add_class("jp-BackendAI-FolderBrowser")
        self.open_button.on_click(lambda _b: self._selected(lambda r: self.enter(r.name) if r.is_dir else None))
        self.up_button.on_click(lambda _b: self.up())
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.delete_button.on_click(lambda _b: self._selected(lambda r: self.request_delete(r.name)))
        self.upload_button.on_click(lambda _b: self.upload(self.local_path.value) if self.local_path.value else None)
        self.picker_upload.on_click(lambda _b: self.upload_selected())
        self.download_button.on_click(
            lambda _b: self._selected(lambda r: None if r.is_dir else self.download(r.name, self.save_to.value or "."))
        )
        self.refresh()

    # --- listing and moving -----------------------------------------------------------------------

    def refresh(self) -> list[model.FileRow]:
        """Reload the current directory."""
        crumbs = model.breadcrumbs(self.folder, self.path)
        self.location.value = "<b>" + " / ".join(html.escape(label) for label, _p in crumbs) + "</b>"
        try:
            items = self.client.list_files(self.folder, self.path)
        except Exception as e:  # noqa: BLE001 - shown to the user
            self._error(f"Could not list {self.folder}/{self.path}: {describe_error(e)}")
            return self.rows
        self.rows = model.file_rows(items)
        self.entries.options = [(r.label, r.name) for r in self.rows]
        self.up_button.disabled = not self.path
        return self.rows

    def _selected(self, action: Any) -> Any:
        row = next((r for r in self.rows if r.name == self.entries.value), None)
        if row is None:
            self._error("Select an entry first")
            return None
        return action(row)

    def enter(self, name: str) -> list[model.FileRow]:
        """Go into the sub-folder ``name`` of the current directory."""
        row = next((r for r in self.rows if r.name == name), None)
        if row is None or not row.is_dir:
            raise ValueError(f"{name!r} is not a directory here")
        self.path = model.join_path(self.path, name)
        return self.refresh()

    def up(self) -> list[model.FileRow]:
        self.path = model.parent_path(self.path)
        return self.refresh()

    # --- transfers ------------------------------------------------------------------------------

    def _bar(self) -> Any:
        return ProgressBar.factory(self.progress, self.progress_label)

    def upload(self, local_path: str | os.PathLike[str], name: str | None = None) -> str | None:
        """Upload a file from the kernel's disk into the current directory; returns its path in the folder."""
        local = Path(local_path).expanduser()
        if not local.is_file():
            self._error(f"{local} is not a file on the kernel's disk")
            return None
        target = model.join_path(self.path, name or local.name)
        try:
            remote = self.client.upload(self.folder, local, target, progress=self._bar())
        except Exception as e:  # noqa: BLE001
            self._error(f"Upload of {local.name} failed: {describe_error(e)}")
            return None
        self.message.value = message_html(f"Uploaded {local.name} to {self.folder}/{remote}", "ok")
        self.refresh()
        return remote

    def upload_selected(self) -> list[str]:
        """Upload the files chosen in the browser's file picker (they arrive through the widget)."""
        done = []
        for item in self.picker.value:
            with tempfile.TemporaryDirectory(prefix="backendai-upload-") as tmp:
                local = Path(tmp) / Path(item["name"]).name
                local.write_bytes(bytes(item["content"]))
                remote = self.upload(local)
            if remote is not None:
                done.append(remote)
        self.picker.value = ()
        return done

    def download(self, name: str, to: str | os.PathLike[str] = ".") -> Path | None:
        """Download the file ``name`` of the current directory to the kernel's disk (a directory or a path)."""
        remote = model.join_path(self.path, name)
        try:
            local = self.client.download(self.folder, remote, Path(to).expanduser(), progress=self._bar())
        except Exception as e:  # noqa: BLE001
            self._error(f"Download of {name} failed: {describe_error(e)}")
            return None
        self.message.value = message_html(f"Downloaded {self.folder}/{remote} to {local}", "ok")
        return local

    # --- deleting ---------------------------------------------------------------------------------

    def request_delete(self, name: str) -> None:
        """What the Delete button does: ask first."""
        self.confirm.ask(f"Delete {name} from {self.folder}?", lambda: self.delete(name))

    def delete(self, name: str) -> list[str]:
        """Delete ``name`` (a file, or a directory with its contents) from the current directory."""
        row = next((r for r in self.rows if r.name == name), None)
        target = model.join_path(self.path, name)
        try:
            deleted = self.client.delete_files(self.folder, target, recursive=bool(row and row.is_dir))
        except Exception as e:  # noqa: BLE001
            self._error(f"Could not delete {name}: {describe_error(e)}")
            return []
        self.message.value = message_html(f"Deleted {target}", "ok")
        self.refresh()
        return deleted

    def _error(self, text: str) -> None:
        self.message.value = message_html(text, "error")
