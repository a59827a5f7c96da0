"""A Docker Swarm of three engines on this one machine, for the Swarm backend's tests.

Each engine runs in a network namespace of its own (``jbswN``), joined to the host by a veth
pair on a bridge the fixture creates (``jbsw0``, ``10.231.200.1/24``; node N at
``10.231.200.1N``), with a data root and an exec root of its own; node 1 is the manager and
the others join it. The engines share the host's file system, standing in for the shared
storage a multi-node site mounts at the same path on every node. The session image is saved
once from the host's engine and loaded into every node.

``swarm`` is module-scoped (built once per test module, about half a minute on two cores) and
tears everything down even when a test or the bring-up fails: the engines and every process in
their namespaces killed, their mounts undone, the namespaces, veths, bridge, forwarding rule
and data roots removed. Needs root, ``ip``, ``nsenter``, ``iptables`` and ``dockerd``; with
``BACKENDAI_TEST_REQUIRE_DOCKER=1`` (CI) a missing part fails the tests instead of skipping them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from testing import missing
from testing.docker import IMAGE
from testing.sessions import hub_config

#: The nodes' bridge on the host. A /24 high in 10.231.0.0/16, away from where the Docker
#: backend cuts its session networks (it starts at the bottom and skips the host's subnets).
BRIDGE = "jbsw0"
BRIDGE_IP = "10.231.200.1"
BRIDGE_NET = "10.231.200.0/24"
#: The swarm's own networks (ingress, overlays) are cut from here, inside the nodes' namespaces.
ADDR_POOL = "10.231.208.0/20"
NODES = 3
#: The nodes' data roots are /var/lib/<ROOT_PREFIX>XXXX.
ROOT_PREFIX = "jbsw-"
ENGINE_TIMEOUT = 60
LOAD_TIMEOUT = 240


def _run(*cmd: str, timeout: float = 60, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check, **kw)


@dataclass
class Node:
    n: int
    root: Path  # data root, exec root, socket and log live under it

    netns: str = ""
    ip: str = ""
    veth: str = ""
    process: subprocess.Popen | None = None
    node_id: str = ""
    #: More of dockerd's arguments (a test's fake GPUs: ``--node-generic-resource``).
    engine_args: tuple[str, ...] = ()
    log_file: Path = field(init=False)

    def __post_init__(self):
        self.netns = f"jbsw{self.n}"
        self.ip = f"10.231.200.{10 + self.n}"
        self.veth = f"jbswv{self.n}"
        self.log_file = self.root / "dockerd.log"

    @property
    def sock(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    def docker(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return _run("docker", "-H", self.sock, *args, timeout=timeout, check=check)

    def start_engine(self, wrap: tuple[str, ...] = ()) -> None:
        """Start the engine; ``wrap`` is a command line it runs under (a mount namespace of its own)."""
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        (self.root / "exec").mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            # nsenter keeps the host's mount namespace (``ip netns exec`` would remount /sys and
            # hide the cgroup hierarchy from the engine).
            self.process = subprocess.Popen(
                [
                    *wrap, "nsenter", f"--net=/var/run/netns/{self.netns}",
                    "dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                    "--pidfile", str(self.root / "dockerd.pid"), "-H", self.sock,
                    "--bridge=none", "--iptables=false", "--ip-masq=false",
                    # Registries the tests serve on the bridge speak plain HTTP (tests/hub/test_images_swarm.py).
                    "--insecure-registry", BRIDGE_NET, *self.engine_args,
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def wait_engine(self, timeout: float = ENGINE_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"dockerd of node {self.n} exited:\n{self.log_tail()}")
            if self.docker("info", timeout=10, check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError(f"dockerd of node {self.n} did not answer within {timeout} s:\n{self.log_tail()}")

    def kill_engine(self) -> None:
        """SIGKILL the engine alone (its containers keep running): a node whose daemon died."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def set_link(self, up: bool) -> None:
        """Cut (or restore) the node's link to the bridge: a node that the network lost."""
        _run("ip", "link", "set", self.veth, "up" if up else "down")

    def namespace_pids(self) -> list[int]:
        done = _run("ip", "netns", "pids", self.netns, check=False)
        return [int(p) for p in done.stdout.split() if p.isdigit()]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Swarm:
    nodes: list[Node]
    root: Path

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def node_ids(self) -> dict[int, str]:
        return {node.n: node.node_id for node in self.nodes}

    def label(self, node: Node, key: str, value: str | None) -> None:
        if value is None:  # removing a label that is not there fails: fine
            self.manager.docker("node", "update", "--label-rm", key, node.node_id, check=False)
        else:
            self.manager.docker("node", "update", "--label-add", f"{key}={value}", node.node_id)


def swarm_problem() -> str | None:
    if os.geteuid() != 0:
        return "the swarm fixture needs root (network namespaces, engines)"
    for tool in ("ip", "nsenter", "iptables", "dockerd", "docker"):
        if not shutil.which(tool):
            return f"no {tool} on PATH"
    if _run("docker", "image", "inspect", IMAGE, check=False).returncode != 0:
        return f"the session image {IMAGE} is not built (images/session/build-offline.sh)"
    return None


def _teardown(nodes: list[Node], root: Path) -> None:
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            node.process.terminate()  # stops its containers on the way out
    for node in nodes:
        if node.process is not None:
            try:
                node.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.process.kill()
    # What is left in a namespace (containerd, shims, containers of a killed engine) by its pid.
    for node in nodes:
        for pid in node.namespace_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.5)
    # Overlay and shm mounts of a killed engine stay behind: undo them, deepest first.
    prefix = str(root) + "/"
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[1].startswith(prefix)]
    for mount in sorted(mounts, key=len, reverse=True):
        _run("umount", "-l", mount, check=False)
    for node in nodes:
        _run("ip", "link", "del", node.veth, check=False)
        _run("ip", "netns", "del", node.netns, check=False)
    _run("ip", "link", "del", BRIDGE, check=False)
    _run("iptables", "-D", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT", check=False)
    shutil.rmtree(root, ignore_errors=True)


def _bring_up(nodes: list[Node], root: Path) -> None:
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    # The host engine's rules drop forwarded bridge traffic (br_netfilter): let the nodes talk.
    _run("iptables", "-I", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT")
    for node in nodes:
        _run("ip", "netns", "add", node.netns)
        _run("ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
        _run("ip", "link", "set", node.veth, "master", BRIDGE, "up")
        _run("ip", "-n", node.netns, "addr", "add", f"{node.ip}/24", "dev", "eth0")
        _run("ip", "-n", node.netns, "link", "set", "eth0", "up")
        _run("ip", "-n", node.netns, "link", "set", "lo", "up")
        node.start_engine()
    # The image travels as one tar, loaded into all engines at once while they come up.
    tar = root / "image.tar"
    _run("docker", "save", "-o", str(tar), IMAGE, timeout=LOAD_TIMEOUT)
    for node in nodes:
        node.wait_engine()
    loads = [
        subprocess.Popen(["docker", "-H", node.sock, "load", "-q", "-i", str(tar)], stdout=subprocess.DEVNULL)
        for node in nodes
    ]
    deadline = time.monotonic() + LOAD_TIMEOUT
    for load in loads:
        try:
            rc = load.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in loads:
                other.kill()
            raise RuntimeError(f"loading {IMAGE} into the nodes took longer than {LOAD_TIMEOUT} s") from None
        if rc != 0:
            raise RuntimeError(f"docker load of {IMAGE} into a node failed ({rc})")
    tar.unlink()
    manager = nodes[0]
    manager.docker(
        "swarm", "init", "--advertise-addr", manager.ip,
        "--default-addr-pool", ADDR_POOL, "--default-addr-pool-mask-length", "24",
        # A node's loss is noticed within a few seconds instead of the default's ~15.
        "--dispatcher-heartbeat", "1s",
    )  # fmt: skip
    token = manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
    for node in nodes[1:]:
        node.docker("swarm", "join", "--token", token, f"{manager.ip}:2377", timeout=60)
    for node in nodes:
        node.node_id = node.docker("info", "-f", "{{.Swarm.NodeID}}").stdout.strip()
    deadline = time.monotonic() + 60
    while True:
        states = manager.docker("node", "ls", "-q", "-f", "role=worker").stdout.split()
        ready = manager.docker("node", "ls", "--format", "{{.Status}}").stdout.split()
        if len(states) == len(nodes) - 1 and ready.count("Ready") == len(nodes):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the swarm's nodes are not all ready: {ready}")
        time.sleep(0.5)


@contextlib.contextmanager
def running_swarm(engine_args: dict[int, tuple[str, ...]] | None = None) -> Iterator[Swarm]:
    """Build the swarm, yield it, tear it all down: the fixture's body, also for the benchmark
    (benchmarks/bench_swarm.py). The caller checks :func:`swarm_problem` first. ``engine_args``:
    more dockerd arguments by node number."""
    # What an earlier, interrupted run left: the same names, and its data roots.
    stale = sorted(Path("/var/lib").glob(f"{ROOT_PREFIX}*")) or [Path("/var/lib") / f"{ROOT_PREFIX}none"]
    for old in stale:
        _teardown([Node(n, old / f"node{n}") for n in range(1, NODES + 1)], old)
    # Under /var/lib, not /tmp: the engines' overlay2 needs a file system that supports it.
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir="/var/lib"))
    nodes = [Node(n, root / f"node{n}", engine_args=(engine_args or {}).get(n, ())) for n in range(1, NODES + 1)]
    try:
        _bring_up(nodes, root)
        yield Swarm(nodes, root)
    except BaseException:
        for node in nodes:
            print(f"--- dockerd of node {node.n}:\n{node.log_tail()}")
        raise
    finally:
        _teardown(nodes, root)


@pytest.fixture(scope="module")
def swarm():
    """A swarm of three engines (node 1 the manager) with the session image on every node."""
    problem = swarm_problem()
    if problem:
        missing(problem, "docker")
    with running_swarm() as built:
        yield built


def task_node(swarm: Swarm, session_id) -> str:
    """The node the manager placed the session's task on (``docker service ps``)."""
    out = swarm.manager.docker("service", "ps", "-q", "--no-trunc", f"backendai-session-{session_id}").stdout.split()
    assert len(out) == 1, out  # one task: never restarted, never re-created elsewhere
    task = json.loads(swarm.manager.docker("inspect", out[0]).stdout)[0]
    return task["NodeID"]


def node_of(swarm: Swarm, node_id: str):
    return next(n for n in swarm.nodes if n.node_id == node_id)


def container_on(node, session_id) -> str:
    out = node.docker("ps", "-q", "--filter", f"label=ai.backend.session-id={session_id}").stdout.split()
    assert len(out) == 1, out
    return out[0]


def swarm_settings(
    swarm: Swarm, extra: str = "", *, capacity: str | None = '{"cpu": 2, "mem": "2g"}', base_url: str | None = None
) -> str:
    """The hub's settings for sessions on ``swarm`` (its manager's engine at ``base_url`` unless
    given): each node an agent of ``capacity`` (its own where ``None``) with a heartbeat every 2 s,
    and the hub's API on the nodes' bridge; ``extra`` after them."""
    lines = [
        f'c.SwarmSessionSpawner.client_kwargs = {{"base_url": {base_url or swarm.manager.sock!r}}}',
        *([f"c.SwarmSessionSpawner.agent_capacity = {capacity}"] if capacity else []),
        "c.SwarmSessionSpawner.agent_heartbeat_interval = 2",
        "c.Spawner.poll_interval = 2",
        "# Sessions on the nodes reach the hub's API on the nodes' bridge.",
        f"c.JupyterHub.hub_ip = {BRIDGE_IP!r}",
        extra,
    ]
    return "\n".join(lines) + "\n"


def swarm_hub(make_hub, pdb, swarm: Swarm, extra: str = "", **settings: Any):
    """A started hub on the Swarm backend with :func:`swarm_settings` (``make_hub`` stops it)."""
    return make_hub(hub_config(pdb, "backendai-swarm", swarm_settings(swarm, extra, **settings)))
