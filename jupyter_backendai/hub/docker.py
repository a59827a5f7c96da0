"""``DockerSessionSpawner`` (``backendai-docker``): sessions as containers of one Docker engine.

Built on dockerspawner's ``DockerSpawner`` for what it does well (the container's life, state
across hub restarts), with the container's arguments from the pure
:func:`~.docker_args.docker_create_kwargs` of the session's spec: CPU quota, memory (no extra
swap), shared memory, a pids limit, uid 1000, no new privileges, every capability dropped,
the folders, the labels and the GPU device requests. The engine is one agent of the resource
group ``agent_scaling_group``, with the engine's CPUs and memory (or ``agent_capacity``).

Sessions use the host network (the hub reaches them on 127.0.0.1 at a port picked per
session), which is how this project runs on machines whose engine has no bridge network; set
``network_name`` to a Docker network for the usual bridged set-up.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import subprocess

from dockerspawner import DockerSpawner
from traitlets import default

from ..core.slots import ResourceSlots
from .docker_args import docker_create_kwargs, files_archive
from .spawner import SessionSpawnerMixin, usage_sample
from .spec import SessionSpec

# sshd runs beside the server as the same user (uid 1000) on an unprivileged port: no
# capability is needed (see docker_args.CAP_ADD). `exec` keeps the server as the main process.
SSHD_AND_SERVER = (
    'if [ -n "${BACKENDAI_SSH_PORT:-}" ] && command -v session-sshd >/dev/null; then '
    'session-sshd -p "$BACKENDAI_SSH_PORT" -o ListenAddress=127.0.0.1 '
    '-o "AuthorizedKeysFile=$BACKENDAI_SSH_AUTHORIZED_KEYS" & fi; exec "$@"'
)


def nvidia_devices() -> list[dict]:
    """The host's GPUs from ``nvidia-smi`` (none when it is missing or fails): one share each."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    devices = []
    for line in out.splitlines():
        index, _, memory = (part.strip() for part in line.partition(","))
        if index.isdigit():
            devices.append({"id": index, "capacity": 1, "memory_mib": int(memory) if memory.isdigit() else None})
    return devices


class DockerSessionSpawner(SessionSpawnerMixin, DockerSpawner):
    backend_name = "docker"
    isolates_users = True

    @default("network_name")
    def _default_network_name(self):
        return "host"

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        return True  # "host" networking cannot publish ports (dockerspawner#462)

    @default("remove")
    def _default_remove(self):
        return True  # a session's container is gone with the session; its data lives in folders

    @default("pull_policy")
    def _default_pull_policy(self):
        return "never"  # images come from the admin's registries through rescans, not at spawn

    _spec: SessionSpec | None = None

    async def agent_info(self):
        info = await self.docker("info")
        devices = await asyncio.to_thread(nvidia_devices)
        slots = {"cpu": info.get("NCPU", 1), "mem": info.get("MemTotal", 0)}
        if devices:
            slots["cuda.shares"] = len(devices)
            slots["cuda.device"] = len(devices)
        return ResourceSlots(slots), devices, info.get("Name", "")

    def session_command(self, ssh_port: int | None) -> tuple[str, ...]:
        return ("sh", "-c", SSHD_AND_SERVER, "session", "jupyterhub-singleuser")

    async def start_session(self, spec: SessionSpec):
        self._spec = spec
        self.image = spec.image
        self.object_name = f"backendai-session-{spec.session_id}"
        return await DockerSpawner.start(self)

    async def create_object(self):
        spec = self._spec
        kwargs = docker_create_kwargs(spec, port=self.port, network=self.network_name)
        host_config = self.client.create_host_config(**kwargs.pop("host_config"))
        self.log.info("Creating container %s: %s", self.object_name, shlex.join(kwargs.get("command") or []))
        obj = await self.docker("create_container", name=self.object_name, host_config=host_config, **kwargs)
        # The SSH key files go in before the start, owned by the session user, never via env.
        await self.docker("put_archive", obj["Id"], "/", files_archive(spec))
        return obj

    async def check_allowed(self, image):
        # The image was already checked at admission against the db's images allowed for the user.
        return image

    async def get_ip_and_port(self):
        return "127.0.0.1", self.port

    async def stop_session(self, now: bool) -> None:
        if self.object_id or self.object_name:
            await DockerSpawner.stop(self, now=now)

    async def poll_session(self):
        status = await DockerSpawner.poll(self)
        if status is not None and self.remove and self.object_id and not self._stopping:
            # Died on its own (killed, crashed): remove it like a stopped one.
            try:
                await self.remove_object()
            except Exception as e:  # already gone is fine
                self.log.debug("Removing the ended container %s: %s", self.object_name, e)
        return status

    async def sample_usage(self):
        if not self.object_id:
            return {}
        stats = await self.docker("stats", self.object_id, stream=False)
        cpu = stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage", 0) / 1e9
        mem = stats.get("memory_stats", {}).get("usage", 0)
        read = write = 0
        for entry in (stats.get("blkio_stats", {}) or {}).get("io_service_bytes_recursive") or []:
            if entry.get("op", "").lower() == "read":
                read += entry.get("value", 0)
            elif entry.get("op", "").lower() == "write":
                write += entry.get("value", 0)
        return usage_sample(self, cpu, int(mem), int(read), int(write))

    def backend_object_id(self) -> str | None:
        return self.object_id or None
