"""``LocalSessionSpawner`` (``backend-local``): sessions as plain processes, for machines without Docker.

Each session runs ``jupyterhub-singleuser`` as the hub's own user in a home directory of its
own (``<sessions_root>/<user>/<session id>``); the chosen and automounted folders appear in it
as links named after them, and ``id_container`` holds the user's SSH private key. It does not
isolate users from each other or from the hub: a session can read whatever the hub's user can,
read-only folders are not enforced, and limits are best effort (memory is not capped). It says
so in the hub's log and on the spawn form. Use it for laptops, Binder and demos.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import psutil
from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode, default

from ..core.slots import ResourceSlots
from .spawner import SessionSpawnerMixin, usage_sample
from .spec import SessionSpec, container_files

WARNING = "the local backend runs sessions as the hub's own user: it does not isolate users"


class LocalSessionSpawner(SessionSpawnerMixin, SimpleLocalProcessSpawner):
    backend_name = "local"
    isolates_users = False

    sessions_root = Unicode(
        config=True, help="Where session home directories are made (default: ./backendai-sessions)."
    )

    @default("sessions_root")
    def _default_sessions_root(self):
        return str(Path("backendai-sessions").resolve())

    @default("ssh_enabled")
    def _default_ssh_enabled(self):
        return False  # an sshd would let users in as the hub's user

    @default("args")
    def _default_args(self):
        # The hub's user runs the sessions; when that is root, jupyter-server needs telling.
        return ["--allow-root"] if os.geteuid() == 0 else []

    _warned = False

    async def agent_info(self):
        if not LocalSessionSpawner._warned:
            self.log.warning("jupyter-backendai: %s", WARNING)
            LocalSessionSpawner._warned = True
        memory = psutil.virtual_memory().total
        capacity = ResourceSlots(cpu=os.cpu_count() or 1, mem=memory)
        return capacity, [], socket.gethostname()

    async def start_session(self, spec: SessionSpec):
        home = Path(self.sessions_root) / self.user.name / str(spec.session_id)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        for mount in spec.mounts:
            link = home / mount.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(mount.host_path, target_is_directory=True)
        for f in container_files(spec):
            if f.path.startswith(spec.home + "/"):
                target = home / f.path[len(spec.home) + 1 :]
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, f.mode)
                with os.fdopen(fd, "w") as out:
                    out.write(f.content)
        self.home_dir = str(home)
        self._session_env = {k: v for k, v in spec.env.items() if k not in ("HOME", "USER")}
        return await SimpleLocalProcessSpawner.start(self)

    def get_env(self):
        env = super().get_env()
        env.update(getattr(self, "_session_env", {}))
        return env

    async def stop_session(self, now: bool) -> None:
        await SimpleLocalProcessSpawner.stop(self, now=now)
        if self.session_id and self.home_dir and Path(self.home_dir).name == str(self.session_id):
            # The folders are links: removing the home never touches their data.
            shutil.rmtree(self.home_dir, ignore_errors=True)

    async def poll_session(self):
        return await SimpleLocalProcessSpawner.poll(self)

    async def sample_usage(self):
        if not self.pid:
            return {}
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return {}
        cpu = mem = read = write = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
                cpu += times.user + times.system
                mem += proc.memory_info().rss
                io = proc.io_counters()
                read += io.read_bytes
                write += io.write_bytes
            except (psutil.Error, AttributeError):
                continue
        return usage_sample(self, cpu, int(mem), int(read), int(write))

    def backend_object_id(self) -> str | None:
        return str(self.pid) if self.pid else None
