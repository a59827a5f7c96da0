"""A real Kubernetes cluster on this one machine, for the Kubernetes backend's tests.

``testing/k8s/`` holds the scripts (adapted from a recipe verified on the project's machines):
``build.sh`` builds Kubernetes v1.20.2 from Debian's source package with Debian's Go (about four
minutes on two cores, once; the binaries are kept in a cache directory outside the clone,
``$BACKENDAI_K8S_CACHE``, default ``~/.cache/jupyter-backendai-k8s``, so that every checkout and
CI run of the machine reuses them); ``up.sh`` starts etcd, the API server, the scheduler, the
controller-manager, two real kubelets and the simulated nodes; ``down.sh`` stops everything and
restores the host.

- **node1**: a kubelet (dockershim) on the host's Docker engine; pods on ``10.231.64.0/24``.
- **node2**: a kubelet and a Docker engine of its own in a network and mount namespace; pods on
  ``10.231.65.0/24``. The session image is copied into its engine once (kept in the cache).
- **simulated nodes** (``testing/k8s/fake_kubelet.py``): Node objects labelled
  ``k8s-test-cluster/simulated=true`` that a test creates (:meth:`Cluster.add_sim_node`) are
  adopted: they turn Ready, pods bound to them turn Running with a loopback pod IP, nothing runs.
  They stand in for what this machine cannot have: many nodes, GPUs.

The API server listens on 127.0.0.1:16443; pods reach the host (the hub) at ``10.231.2.1``, the
address of the nodes' bridge. A node that stops is NotReady after about 10 s.

While the cluster is up the kubelets change host-wide settings (``vm.overcommit_memory``,
``kernel.panic``, ``kernel.panic_on_oops`` and others); ``up.sh`` records them first and
``down.sh`` puts them back, with the bridges, routes, iptables rules, mounts and cgroups it made.
The kubelets run with ``AWS_EC2_METADATA_DISABLED=true``: Kubernetes 1.20 links a cloud
credential provider whose start-up probe would otherwise contact a cloud metadata address.

``k8s_cluster`` is session-scoped (about 15-20 s to bring up when built, ~850 MB of memory) and
tears everything down at the end even when a test or the bring-up fails. :func:`running_cluster`
is the same as a plain context manager, for benchmarks. Needs root, cgroup v1 and the host's
Docker engine with the ``cgroupfs`` driver; with ``BACKENDAI_TEST_REQUIRE_KUBERNETES=1`` (CI) a
missing part, the binaries not built included, fails the tests instead of skipping them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from testing import missing
from testing.docker import IMAGE

SCRIPTS = Path(__file__).resolve().parent
K8S_VERSION = "v1.20.2"
#: The host on the nodes' bridge: pods on both real nodes reach the hub there.
HOST_IP = "10.231.2.1"
POD_CIDRS = {"node1": "10.231.64.0/24", "node2": "10.231.65.0/24"}
NODE_LABEL = "k8s-test-cluster/node"
SIM_LABEL = "k8s-test-cluster/simulated"
UP_TIMEOUT = 600  # the first run copies the session image into node2's engine
DOWN_TIMEOUT = 180


def cache_dir() -> Path:
    """Where the binaries, node2's engine data and the running cluster's files live."""
    explicit = os.environ.get("BACKENDAI_K8S_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jupyter-backendai-k8s"


def _run(*cmd: str, timeout: float = 60, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check, **kw)


@dataclass
class Cluster:
    """The running cluster: ``kubectl`` against it, the real nodes' engines, simulated nodes, faults."""

    cache: Path
    env: dict[str, str]
    real_nodes: list[str]
    sim_nodes: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.cache / "run"

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60, check: bool = True):
        done = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.run_dir / 'kubectl-cache'}", *args],
            capture_output=True, text=True, timeout=timeout, input=input,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def apply(self, manifest: dict[str, Any], *extra: str):
        return self.kubectl("apply", "-f", "-", *extra, input=json.dumps(manifest))

    def docker_host(self, node: str) -> str:
        """The engine that runs the pods of a real node."""
        return {"node1": "unix:///var/run/docker.sock", "node2": "unix:///run/ktc/node2-docker.sock"}[node]

    def docker(self, node: str, *args: str, timeout: float = 60, check: bool = True):
        return _run("docker", "-H", self.docker_host(node), *args, timeout=timeout, check=check)

    # --- nodes ------------------------------------------------------------------------------

    def node_ready(self, name: str) -> bool:
        done = self.kubectl("get", "node", name, "-o", "json", check=False)
        if done.returncode != 0:
            return False
        node = json.loads(done.stdout)
        conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions") or []}
        taints = [t["key"] for t in node.get("spec", {}).get("taints") or []]
        return conditions.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints

    def wait_node(self, name: str, ready: bool = True, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.node_ready(name) != ready:
            if time.monotonic() > deadline:
                raise AssertionError(f"node {name} not {'Ready' if ready else 'NotReady'} within {timeout} s")
            time.sleep(0.5)

    def add_sim_node(
        self,
        name: str,
        capacity: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
        wait: bool = True,
        images: list[str] | None = None,
    ) -> str:
        """A simulated node (adopted by the fake kubelet): Ready, pods on it run, nothing runs.
        ``images``: the tags its status lists as its images (as a kubelet lists its engine's)."""
        cap = {"cpu": "8", "memory": "32Gi", "pods": "110", **(capacity or {})}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", SIM_LABEL: "true"}
                | (labels or {}),
            },
            "spec": {"taints": taints or []},
            # Without a Ready condition: the fake kubelet adopts it and reports it Ready with this.
            "status": {"capacity": cap, "allocatable": cap},
        }
        if images is not None:
            node["status"]["images"] = [{"names": [ref], "sizeBytes": 1024} for ref in images]
        self.kubectl("create", "-f", "-", input=json.dumps(node))
        self.sim_nodes.append(name)
        if wait:
            self.wait_node(name)
        return name

    def remove_node(self, name: str) -> None:
        self.kubectl("delete", "node", name, "--wait=false", check=False)
        if name in self.sim_nodes:
            self.sim_nodes.remove(name)

    def label_node(self, name: str, key: str, value: str | None) -> None:
        self.kubectl("label", "node", name, "--overwrite", f"{key}-" if value is None else f"{key}={value}")

    def _pid(self, path: Path) -> int | None:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill_node(self, name: str) -> None:
        """SIGKILL a real node as if its machine died. node2: every process in its network
        namespace (kubelet, engine, containerd, shims) and in its pods' cgroups; node1 (on the
        host's engine, which must live on): its kubelet alone."""
        pids = [self._pid(self.run_dir / name / "pids" / "kubelet.pid")]
        if name == "node2":
            pids += [int(p) for p in _run("ip", "netns", "pids", "ktc-node2", check=False).stdout.split()]
            for procs in Path("/sys/fs/cgroup/pids/ktc-node2").rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids += [int(p) for p in procs.read_text().split()]
        for pid in pids:
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def restore(self) -> None:
        """``up.sh`` again with the same settings: starts again whatever died (a killed node)."""
        _up(self.cache, self.env)

    # --- namespaces ---------------------------------------------------------------------------

    def create_namespace(self, prefix: str = "jba-test") -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.kubectl("create", "namespace", name)
        # The API server needs a moment to make the namespace's default service account; a pod
        # created before it exists is refused.
        deadline = time.monotonic() + 30
        while self.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"namespace {name} has no default service account after 30 s")
            time.sleep(0.3)
        return name

    def delete_namespace(self, name: str) -> None:
        # Pods first: a namespace that still has pods takes 20-75 s to go on Kubernetes 1.20.
        self.kubectl("delete", "pods", "--all", "-n", name, "--grace-period=1", "--wait=false", check=False)
        self.kubectl("delete", "namespace", name, "--wait=false", check=False)

    def pods(self, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["pods", "-n", namespace] + (["-l", selector] if selector else [])
        return self.get(*args)["items"]


def kube_hub(
    make_hub, pdb, cluster: Cluster, namespace: str, extra: str = "", selector: str = NODE_LABEL, *,
    kubeconfig=None, manager: bool = False, image_pull_policy: str | None = "Never",
):  # fmt: skip
    """A hub on the Kubernetes backend with ``cluster``'s own kubeconfig (unless given).

    ``manager``: with the manager service, the nodes agents from the hub's start (as the shipped
    ``jupyterhub_config.py`` does); ``image_pull_policy``: the kubelet's (``Never``: the session
    image is on the real nodes' engines; ``None``: the spawner's default).
    """
    from testing.sessions import hub_config, manager_hub_config, wait_for_manager

    settings = f"""
c.KubeSessionSpawner.namespace = {namespace!r}
c.KubeSessionSpawner.agent_node_selector = {selector!r}
c.Spawner.poll_interval = 2
# Pods on both nodes reach the hub's API on the nodes' bridge.
c.JupyterHub.hub_ip = {HOST_IP!r}
"""
    if image_pull_policy is not None:
        settings += f"c.KubeSessionSpawner.image_pull_policy = {image_pull_policy!r}\n"
    if manager:
        settings += """c.KubeSessionSpawner.image_poll_interval = 0.5
from jupyter_backendai.hub.first_run import register_agent_at_start as _register
_register(c, "kubernetes")
"""
    settings += extra
    config = (
        manager_hub_config(pdb, spawner="backendai-kubernetes", extra=settings)
        if manager
        else hub_config(pdb, "backendai-kubernetes", settings)
    )
    hub = make_hub(config, env={"KUBECONFIG": str(kubeconfig or cluster.kubeconfig)})
    if manager:
        wait_for_manager(hub)
    return hub


def _script_env(cache: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(CACHE=str(cache), SKIP_BUILD="1", **settings)
    return env


def _up(cache: Path, env: dict[str, str]) -> None:
    done = subprocess.run(["bash", str(SCRIPTS / "up.sh")], capture_output=True, text=True, timeout=UP_TIMEOUT, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"testing/k8s/up.sh failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )


def _down(cache: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", str(SCRIPTS / "down.sh")], capture_output=True, text=True, timeout=DOWN_TIMEOUT, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"testing/k8s/down.sh failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def cluster_problem() -> str | None:
    """Why the cluster cannot run here, or None."""
    if os.geteuid() != 0:
        return "the Kubernetes test cluster needs root (kubelets, namespaces, cgroups)"
    for tool in ("ip", "nsenter", "iptables", "dockerd", "docker", "kubectl", "etcd", "socat", "openssl"):
        if _run("sh", "-c", f"command -v {tool}", check=False).returncode != 0:
            return f"no {tool} on PATH (testing/k8s/build.sh installs what is missing)"
    if _run("stat", "-fc", "%T", "/sys/fs/cgroup").stdout.strip() != "tmpfs":
        return "the Kubernetes test cluster's kubelets need cgroup v1"
    driver = _run("docker", "info", "-f", "{{.CgroupDriver}}", check=False)
    if driver.returncode != 0 or driver.stdout.strip() != "cgroupfs":
        return "the host's Docker engine must run, with the cgroupfs cgroup driver"
    binaries = cache_dir() / "bin" / K8S_VERSION
    if not (binaries / "kubelet").exists() or not (binaries / "kube-apiserver").exists():
        return f"Kubernetes is not built in {cache_dir()}: run testing/k8s/build.sh (about 4 minutes)"
    if _run("docker", "image", "inspect", IMAGE, check=False).returncode != 0:
        return f"the session image {IMAGE} is not built (images/session/build-offline.sh)"
    return None


@contextlib.contextmanager
def running_cluster(
    *, real_nodes: int = 2, sim_nodes: int = 0, sim_args: str = "", node_grace: str = "10s"
) -> Iterator[Cluster]:
    """Bring the cluster up, yield it, bring it down and restore the host: the fixture's body, also
    for the benchmark. ``sim_nodes`` uniform simulated nodes (``sim-node-N``, ``sim_args`` as
    fake_kubelet.py takes them) come on top of those a test adds. The caller checks
    :func:`cluster_problem` first."""
    cache = cache_dir()
    empty = cache / "no-sim-nodes.json"  # the fake kubelet runs even with none: it adopts test nodes
    cache.mkdir(parents=True, exist_ok=True)
    empty.write_text("[]")
    env = _script_env(
        cache, REAL_NODES=str(real_nodes), SIM_NODES=str(sim_nodes), SIM_NODES_JSON=str(empty),
        SIM_KUBELET_ARGS=sim_args, NODE_GRACE=node_grace, IMAGES=IMAGE if real_nodes > 1 else "",
    )  # fmt: skip
    cluster = Cluster(cache=cache, env=env, real_nodes=[f"node{i}" for i in range(1, real_nodes + 1)])
    try:
        _up(cache, env)
        yield cluster
    finally:
        for name in list(cluster.sim_nodes):
            cluster.remove_node(name)
        out = _down(cache, env)
        if "must be 0" in out and "packets sent to 169.254.169.254 while up: 0 " not in out:
            raise AssertionError(f"the cluster contacted a cloud metadata address:\n{out}")


@pytest.fixture(scope="session")
def k8s_cluster():
    """The cluster with two real nodes (the session image on both) and the fake kubelet, for the
    whole test session."""
    problem = cluster_problem()
    if problem:
        missing(problem, "kubernetes")
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def k8s_namespace(k8s_cluster):
    """A namespace of the test's own, its pods and itself deleted afterwards."""
    name = k8s_cluster.create_namespace()
    try:
        yield name
    finally:
        k8s_cluster.delete_namespace(name)
