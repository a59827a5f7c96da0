"""``DockerSessionSpawner`` (``backendai-docker``): sessions as containers of one Docker engine.

Built on dockerspawner's ``DockerSpawner`` for what it does well (the container's life, state
across hub restarts), with the container's arguments from the pure
:func:`~.docker_args.docker_create_kwargs` of the session's spec: CPU quota, memory (no extra
swap), shared memory, a pids limit, uid 1000, no new privileges, every capability dropped,
the folders, the labels and the GPU device requests. The engine is one agent of the resource
group ``agent_scaling_group``, with the engine's CPUs and memory (or ``agent_capacity``).

Each session gets a network of its own (``network_isolation``, the default): a bridge network
with a small subnet of ``network_pool``, internal (no route out, and the engine's own rules
drop traffic between two such bridges), in which the server listens on ``session_port`` and
sshd on 2200. Nothing of the host's loopback is reachable from there. The hub reaches the
container at its address; the container reaches the hub's API and the manager only through a
relay (:mod:`.relay`) that the hub opens on the network's gateway address and that forwards to
the proxy's public address; users reach sshd through an SSH relay on ``ssh_bind_ip``. With
``network_isolation = False`` sessions join ``network_name`` instead (``host`` by default: the
host's network namespace, where every session can reach every other session's ports and the
host's loopback services; for single-user machines only).
"""

from __future__ import annotations

import asyncio
import ipaddress
import shlex
import socket
import time
from urllib.parse import urlsplit

import psutil
from dockerspawner import DockerSpawner
from traitlets import Bool, Integer, TraitError, Unicode, default, validate

from ..core.nvidia import NvidiaSmiError, agent_devices, gpu_slots
from ..core.slots import ResourceSlots
from .docker_args import (
    docker_create_kwargs,
    files_archive,
    free_subnet,
    log_config,
    network_create_kwargs,
    relay_env,
)
from .images import DockerImages
from .logs import SessionLogsMixin, StreamSource
from .nvidia import query_gpus
from .relay import Relay
from .runtime import PlainImagesMixin
from .spawner import SessionSpawnerMixin, usage_sample
from .spec import LABEL_SESSION_ID, SessionSpec, SpecError

#: sshd's port inside a session's own network namespace (the image's default).
INNER_SSH_PORT = 2200


def sshd_and_server(listen: str) -> str:
    """The shell line that starts sshd (when the session has an SSH port) beside the server.

    sshd runs as the same user (uid 1000) on an unprivileged port: no capability is needed (see
    docker_args.CAP_ADD). `exec` keeps the server as the main process.
    """
    return (
        'if [ -n "${BACKENDAI_SSH_PORT:-}" ] && command -v session-sshd >/dev/null; then '
        f'session-sshd -p "$BACKENDAI_SSH_PORT" -o ListenAddress={shlex.quote(listen)} '
        '-o "AuthorizedKeysFile=$BACKENDAI_SSH_AUTHORIZED_KEYS" & fi; exec "$@"'
    )


def _host_subnets() -> list[str]:
    """The host's own IPv4 networks: a session network must not shadow any of them."""
    out = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and a.netmask:
                out.append(str(ipaddress.ip_interface(f"{a.address}/{a.netmask}").network))
    return out


def nvidia_devices(shares_per_device: int = 1, log=None) -> list[dict]:
    """The host's GPUs from ``nvidia-smi``, as agent devices (none when it is missing or fails)."""
    try:
        gpus = query_gpus()
    except NvidiaSmiError as e:
        if log is not None:
            log.warning("nvidia-smi failed, the agent offers no GPU: %s", e)
        return []
    return agent_devices(gpus or [], shares_per_device)


class DockerSessionSpawner(PlainImagesMixin, DockerImages, SessionLogsMixin, SessionSpawnerMixin, DockerSpawner):
    backend_name = "docker"
    isolates_users = True

    network_isolation = Bool(
        True,
        config=True,
        help="""Give each session a network namespace of its own (a Docker bridge network per session).

        The session then reaches neither other sessions nor the host's loopback services; it reaches
        the hub and the manager only through the hub relay, and users reach its sshd through the
        SSH relay. Turn it off only on a single-user machine: sessions then join ``network_name``
        (``host`` unless set), where they share the host's network namespace.
        """,
    )
    network_pool = Unicode(
        "10.231.0.0/16",
        config=True,
        help="""The IPv4 range that session networks are cut from (one ``network_prefix`` subnet each).

        Choose a range that no network of the site uses: subnets already used by the engine's
        networks or by the host's interfaces are skipped.
        """,
    )
    network_prefix = Integer(
        28, config=True, help="Prefix length of each session's network (28: 16 addresses, 4,096 per /16 pool)."
    )
    session_egress = Bool(
        False,
        config=True,
        help="""Let sessions open connections out of their network (package indexes, the internet).

        Off by default: session networks are internal, with no route out. On, the engine routes
        and masquerades their traffic like any bridge network (the engine's iptables must be on);
        sessions still cannot reach one another or the host's loopback services.
        """,
    )
    session_port = Integer(8888, config=True, help="Port of the server inside a session's own network namespace.")
    engine_log_driver = Unicode(
        "json-file",
        config=True,
        help="""The engine's log driver for session containers, bounded to about ``log_keep_bytes``.

        ``json-file`` (the default) or ``local``: the engine keeps between one and two times
        ``log_keep_bytes`` of a session's output, so that a long session cannot fill the host's
        disk (the hub keeps its own copy in the database). Empty: the engine's configured driver
        and options are used unchanged; the hub can then keep output only if that driver can be
        read back (json-file, local, journald).
        """,
    )
    hub_relay_target = Unicode(
        "",
        config=True,
        help="""``host:port`` the hub relay forwards sessions' connections to (plain HTTP).

        Default: the proxy's public address (``JupyterHub.bind_url``; 127.0.0.1 when it binds all
        addresses). Set it when the proxy serves HTTPS itself: sessions speak plain HTTP to the
        relay, so point it at an HTTP listener of the hub's proxy or ingress.
        """,
    )

    @validate("engine_log_driver")
    def _check_log_driver(self, proposal):
        try:
            log_config(1, proposal.value)
        except SpecError as e:
            raise TraitError(f"engine_log_driver: {e}") from None
        return proposal.value

    @validate("network_prefix")
    def _check_prefix(self, proposal):
        if not 16 <= proposal.value <= 29:
            raise ValueError(f"network_prefix must be between 16 and 29, not {proposal.value}")
        return proposal.value

    @default("network_name")
    def _default_network_name(self):
        return "host"

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        return True  # the hub reaches the container at its address ("host" cannot publish ports)

    @default("ssh_host")
    def _default_ssh_host(self):
        # What users type in their ssh command: this machine's name, not its loopback.
        return socket.getfqdn() or socket.gethostname()

    @default("remove")
    def _default_remove(self):
        return True  # a session's container is gone with the session; its data lives in folders

    _spec: SessionSpec | None = None

    async def agent_info(self):
        info = await self.docker("info")
        devices = await asyncio.to_thread(nvidia_devices, self.gpu_shares_per_device, self.log)
        slots = {"cpu": info.get("NCPU", 1), "mem": info.get("MemTotal", 0), **gpu_slots(devices)}
        # The agent's address is where users' SSH clients reach its sessions (shown by the API).
        return ResourceSlots(slots), devices, self.ssh_host

    # --- the session's network -------------------------------------------------------------------

    _network: str | None = None  # the session's own network (isolated mode)
    _gateway: str | None = None  # its gateway address, on the host: where the hub relay listens
    _network_lock: asyncio.Lock | None = None
    _relays: dict[str, Relay] | None = None  # open in this hub process ("hub", "ssh")

    def session_command(self, ssh_port: int | None) -> tuple[str, ...]:
        listen = "0.0.0.0" if self.network_isolation else self.ssh_bind_ip
        return ("sh", "-c", sshd_and_server(listen), "session", "jupyterhub-singleuser")

    def server_address(self) -> tuple[str, int]:
        if self.network_isolation:
            return "0.0.0.0", self.session_port
        return super().server_address()

    def session_ssh_port(self, public_port: int) -> int:
        return INNER_SSH_PORT if self.network_isolation else public_port

    def _hub_target(self) -> tuple[str, int]:
        target = self.hub_relay_target
        if not target:
            proxy = (getattr(self.user, "settings", None) or {}).get("proxy")
            target = urlsplit(getattr(proxy, "public_url", "") or "http://127.0.0.1:8000").netloc
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        if not port.isdigit():
            raise SpecError(f"hub_relay_target {target!r} must be host:port")
        return host, int(port)

    async def open_network(self) -> None:
        """Create the session's network and the hub relay on its gateway (isolated mode)."""
        if not self.network_isolation:
            return
        name = f"backendai-net-{self.session_id}"
        labels = {LABEL_SESSION_ID: str(self.session_id)}
        if DockerSessionSpawner._network_lock is None:
            DockerSessionSpawner._network_lock = asyncio.Lock()
        async with DockerSessionSpawner._network_lock:  # two spawns must not take the same subnet
            used = _host_subnets()
            for net in await self.docker("networks"):
                for cfg in (net.get("IPAM") or {}).get("Config") or []:
                    if cfg.get("Subnet"):
                        used.append(cfg["Subnet"])
            subnet = free_subnet(self.network_pool, self.network_prefix, used)
            kwargs = network_create_kwargs(subnet, labels=labels, egress=self.session_egress)
            await self.docker("create_network", name, **kwargs)
        self._network = self.network_name = name
        self._gateway = kwargs["ipam"]["Config"][0]["Gateway"]
        self.log.info("Session %s: network %s (%s)", self.session_id, name, subnet)
        await self._open_relays()

    async def _open_relays(self, container_ip: str | None = None) -> None:
        if self._relays is None:
            self._relays = {}
        relays = self._relays
        if self._gateway and "hub" not in relays:
            host, port = self._hub_target()
            relays["hub"] = await Relay(f"hub-{self.session_id}", self._gateway, port, host, port).start()
        if container_ip and self.ssh_port and "ssh" not in relays:
            relays["ssh"] = await Relay(
                f"ssh-{self.session_id}", self.ssh_bind_ip, self.ssh_port, container_ip, INNER_SSH_PORT
            ).start()

    async def _close_network(self) -> None:
        relays, self._relays = self._relays or {}, None
        for relay in relays.values():
            await relay.stop()
        name, self._network, self._gateway = self._network, None, None
        if name:
            try:
                await self.docker("remove_network", name)
            except Exception as e:  # already gone after a crash is fine; anything else is logged
                if "not found" not in str(e).lower():
                    self.log.warning("Removing the network %s of a session: %s", name, e)

    def get_env(self):
        env = super().get_env()
        if self._gateway:
            host, port = self._hub_target()
            hub_netlocs = {f"{host}:{port}", urlsplit(self.hub.api_url).netloc}
            env = relay_env(env, relay=f"{self._gateway}:{port}", hub_netlocs=hub_netlocs)
        return env

    def get_state(self):
        state = super().get_state()
        if self._network:
            state["backendai_network"] = self._network
            state["backendai_gateway"] = self._gateway
        return state

    def load_state(self, state):
        super().load_state(state)
        self._network = state.get("backendai_network")
        self._gateway = state.get("backendai_gateway")
        if self._network:
            self.network_name = self._network

    # --- the container ---------------------------------------------------------------------------

    async def start_session(self, spec: SessionSpec):
        self._spec = spec
        self.image = spec.image
        self.object_name = f"backendai-session-{spec.session_id}"
        ip_port = await DockerSpawner.start(self)
        self.collect_output(self._output_source(), reset=False)
        await self._open_relays(container_ip=ip_port[0])
        await self.wait_for_server(*ip_port, exited=lambda: DockerSpawner.poll(self), describe=self._exit_reason)
        return ip_port

    # --- the container's output ------------------------------------------------------------------

    def _output_source(self, follow: bool = True) -> StreamSource:
        """The container's log as the engine has it (all of it), followed until it stops."""
        container, client = self.object_id, self.client

        def stream():
            if follow:
                return client.logs(container, stdout=True, stderr=True, stream=True, follow=True)
            return [client.logs(container, stdout=True, stderr=True, stream=False)]

        return StreamSource(stream, int(self.log_keep_bytes), name=f"logs-{self.session_id}")

    async def _exit_reason(self, status) -> str:
        try:
            state = (await self.docker("inspect_container", self.object_id)).get("State") or {}
        except Exception:
            state = {}
        reason = f"the session's container exited with status {state.get('ExitCode', '?')} before its server listened"
        if state.get("OOMKilled"):
            reason += " (out of memory: its memory limit was reached)"
        if state.get("Error"):
            reason += f": {state['Error']}"
        return reason

    async def remove_object(self):
        # The container's output goes with it: store the rest first.
        if self.object_id and self.session_id and self.output_finished != self.session_id:
            if self._log_collector is None:
                # Nothing in this hub process followed it (it ended while the hub was down): read it once.
                self.collect_output(self._output_source(follow=False), reset=True)
            await self.finish_output()
        await DockerSpawner.remove_object(self)

    async def create_object(self):
        spec = self._spec
        ip = "0.0.0.0" if self.network_isolation else "127.0.0.1"
        kwargs = docker_create_kwargs(spec, port=self.port, network=self.network_name, ip=ip)
        # An image without jupyterhub-singleuser or a work user: the product's runtime, a home, an account.
        kwargs, account_files = await self.adapt_to_image(spec, kwargs)
        logging = log_config(int(self.log_keep_bytes), self.engine_log_driver)
        if logging is not None:
            kwargs["host_config"]["log_config"] = logging
        host_config = self.client.create_host_config(**kwargs.pop("host_config"))
        self.log.info("Creating container %s: %s", self.object_name, shlex.join(kwargs.get("command") or []))
        obj = await self.docker("create_container", name=self.object_name, host_config=host_config, **kwargs)
        if account_files:
            await self.docker("put_archive", obj["Id"], "/", account_files)
        # The SSH key files go in before the start, owned by the session user, never via env.
        # Dated now: a tar's default of 0 showed id_container as made in 1970 in the file browser.
        await self.docker("put_archive", obj["Id"], "/", files_archive(spec, mtime=int(time.time())))
        return obj

    async def check_allowed(self, image):
        # The image was already checked at admission against the db's images allowed for the user.
        return image

    async def get_ip_and_port(self):
        if self.network_isolation:
            return await DockerSpawner.get_ip_and_port(self)
        return "127.0.0.1", self.port

    async def stop_session(self, now: bool) -> None:
        try:
            if self.object_id or self.object_name:
                await DockerSpawner.stop(self, now=now)
        finally:
            await self._close_network()

    async def poll_session(self):
        status = await DockerSpawner.poll(self)
        if status is not None and self.remove and self.object_id and not self._stopping:
            # Died on its own (killed, crashed): remove it like a stopped one.
            try:
                await self.remove_object()
            except Exception as e:  # already gone is fine
                self.log.debug("Removing the ended container %s: %s", self.object_name, e)
            await self._close_network()
        elif status is None and self._network and self._relays is None:
            # Still running after a hub restart: the relays lived in the old hub process.
            ip, _ = await self.get_ip_and_port()
            await self._open_relays(container_ip=ip)
        if status is None and self._log_collector is None and self.object_id and self.session_id and not self._stopping:
            # Running, and nothing follows its output (the hub restarted): read it all again.
            self.collect_output(self._output_source(), reset=True)
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
        return {**usage_sample(self, cpu, int(mem), int(read), int(write)), **await self.sample_gpu()}

    async def session_pids(self) -> list[int]:
        if not self.object_id:
            return []
        top = await self.docker("top", self.object_id, ps_args="-eo pid")
        column = (top.get("Titles") or []).index("PID") if "PID" in (top.get("Titles") or []) else 0
        return [int(row[column]) for row in top.get("Processes") or [] if str(row[column]).isdigit()]

    def backend_object_id(self) -> str | None:
        return self.object_id or None
