"""What the hub does before it starts: the schema, the defaults, an admin, a backend, images.

``jupyterhub_config.py`` calls :func:`prepare_database` and :func:`choose_backend`; both are
idempotent, so a restart changes nothing that an operator has set.
"""

from __future__ import annotations

import logging
import secrets
import string
from typing import NamedTuple

from sqlalchemy import select

from ..db import admin
from ..db import models as m
from ..db.engine import connect, upgrade

log = logging.getLogger("jupyter_backendai")

ADMIN_EMAIL = "admin@localhost.localdomain"
SESSION_IMAGE = "jupyter-backendai-session:local"
#: What the local backend offers: the hub's own Python environment, no minimums.
LOCAL_IMAGE = "local-python:3"
DEFAULT_PRESETS = {
    "small": ({"cpu": "1", "mem": "2g"}, "64m"),
    "medium": ({"cpu": "2", "mem": "4g"}, "256m"),
}


def _password() -> str:
    # 16 random letters and digits plus fixed special characters: always passes the rules.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16)) + "-1a"


def prepare_database(url: str, *, admin_email: str = ADMIN_EMAIL, bootstrap: str | None = None) -> str | None:
    """Migrate, add the defaults and presets, load ``bootstrap`` (YAML) when given, and create a
    superadmin when there is none. Returns the new admin's password (shown once) or None."""
    upgrade(url)
    factory = connect(url)
    with factory() as db:
        admin.ensure_defaults(db)
        if db.scalar(select(m.ResourcePreset).limit(1)) is None:
            for name, (slots, shmem) in DEFAULT_PRESETS.items():
                admin.create_preset(db, name, slots, shared_memory=shmem)
        if bootstrap:
            from ..bootstrap import apply, load_file

            for line in apply(db, load_file(bootstrap)):
                log.info("bootstrap: %s", line)
        password = None
        if db.scalar(select(m.User).where(m.User.role == m.UserRole.SUPERADMIN).limit(1)) is None:
            password = _password()
            # In the default project: in none, its Summary says "You are in no project" and the
            # start dialog offers no project to start a session in.
            default_group = db.scalar(
                select(m.Group).where(m.Group.name == admin.DEFAULT, m.Group.domain_name == admin.DEFAULT)
            )
            admin.create_user(
                db, admin_email, password, username="admin", role="superadmin", need_password_change=True,
                groups=[admin.DEFAULT] if default_group is not None else [],
            )  # fmt: skip
        db.commit()
    factory.kw["bind"].dispose()
    return password


def docker_problem(image: str = SESSION_IMAGE) -> str | None:
    """Why the Docker backend cannot be used here, or None when it can."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as e:  # no socket, no permission, no engine
        return f"no Docker engine answers ({type(e).__name__})"
    try:
        client.images.get(image)
    except Exception:
        return f"the session image {image} is not built (run images/session/build-offline.sh)"
    return None


def swarm_problem(image: str = SESSION_IMAGE) -> str | None:
    """Why the Swarm backend cannot be used (the engine of ``DOCKER_HOST`` must be a swarm manager
    with the session image), or None when it can."""
    try:
        import docker

        info = docker.from_env(timeout=10).info()
    except Exception as e:
        return f"no Docker engine answers ({type(e).__name__})"
    if not (info.get("Swarm") or {}).get("ControlAvailable"):
        return "the Docker engine is not a swarm manager (docker swarm init, or DOCKER_HOST to a manager)"
    return docker_problem(image)


def kubernetes_problem() -> str | None:
    """Why the Kubernetes backend cannot be used (no configuration of a cluster: neither the
    in-cluster service account nor a kubeconfig), or None when it can. The API server is not
    asked: while it does not answer, spawns are refused with the reason and the hub still starts."""
    import asyncio
    import os
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes_asyncio import config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config()
            return None
        except config.ConfigException as e:
            return f"the in-cluster service account is not usable ({e})"
    # As KubeSpawner finds it, read now rather than when the client was imported.
    path = os.path.expanduser(os.environ.get("KUBECONFIG") or "~/.kube/config")
    if not os.path.exists(path.split(os.pathsep)[0]):
        return f"no Kubernetes cluster is configured (no in-cluster service account, no kubeconfig at {path})"
    try:
        with ThreadPoolExecutor(1) as pool:  # its loader is a coroutine; the hub's loop may be running
            pool.submit(lambda: asyncio.run(config.load_kube_config(config_file=path))).result()
    except Exception as e:
        return f"the kubeconfig {path} is not usable ({e})"
    return None


class BackendChoice(NamedTuple):
    """The backend sessions run on, and why: the hub's log and the spawn form say both."""

    backend: str
    reason: str


def choose_backend(url: str, *, prefer: str = "auto", image: str = SESSION_IMAGE) -> str:
    """:func:`choose`'s backend."""
    return choose(url, prefer=prefer, image=image).backend


def choose(url: str, *, prefer: str = "auto", image: str = SESSION_IMAGE) -> BackendChoice:
    """``docker`` when an engine answers and the session image exists, else ``local``, with the reason
    (``swarm`` and ``kubernetes`` only when asked for).

    ``auto`` never falls back silently: the reason names what is missing, and for the local
    backend whether it isolates users (a root hub: one Unix account per user) or is a
    single-user demo. Registers the backend's image as installed, so that the spawn form offers it.
    """
    import os

    from ..core.accounts import isolates_users

    if prefer not in ("auto", "docker", "local", "swarm", "kubernetes"):
        raise ValueError(f"unknown backend {prefer!r}: choose auto, docker, swarm, kubernetes or local")
    if prefer == "kubernetes":  # only when asked for, as swarm
        problem = kubernetes_problem()
        if problem:
            raise RuntimeError(f"the Kubernetes backend was asked for but {problem}")
        backend = "kubernetes"
    elif prefer == "swarm":  # only when asked for: a manager's engine also answers as a plain engine
        problem = swarm_problem(image)
        if problem:
            raise RuntimeError(f"the Swarm backend was asked for but {problem}")
        backend = "swarm"
    else:
        problem = docker_problem(image) if prefer in ("auto", "docker") else "the local backend was asked for"
        if prefer == "docker" and problem:
            raise RuntimeError(f"the Docker backend was asked for but {problem}")
        backend = "docker" if problem is None else "local"
    factory = connect(url)
    with factory() as db:
        if backend in ("docker", "swarm"):
            import docker

            labels = docker.from_env(timeout=5).images.get(image).labels or {}
            admin.upsert_image(db, image, labels=labels, installed=True)
        elif backend == "kubernetes":
            # The nodes' kubelets pull it; its labels (minimums, service ports) from an engine here, if any.
            try:
                import docker

                labels = docker.from_env(timeout=5).images.get(image).labels or {}
            except Exception:
                labels = {}
            admin.upsert_image(db, image, labels=labels, installed=True)
        else:
            admin.upsert_image(db, LOCAL_IMAGE, installed=True)
        db.commit()
    factory.kw["bind"].dispose()
    if backend == "kubernetes":
        reason = f"sessions run as pods of a Kubernetes cluster, every node an agent (image {image})"
        log.info("jupyter-backendai: %s", reason)
    elif backend == "swarm":
        reason = f"sessions run as services of a Docker Swarm, every node an agent (image {image})"
        log.info("jupyter-backendai: %s", reason)
    elif backend == "docker":
        reason = f"sessions run as Docker containers (image {image})"
        log.info("jupyter-backendai: %s", reason)
    elif isolates_users(os.geteuid()):
        reason = (
            f"sessions run as local processes because {problem}; each user's sessions run as a Unix "
            "account of their own"
        )
        log.warning("jupyter-backendai: %s", reason)
    else:
        reason = (
            f"sessions run as local processes because {problem}, as the hub's own user: a single-user demo "
            "that does NOT isolate users"
        )
        log.warning("jupyter-backendai: %s", reason)
    return BackendChoice(backend, reason)


_agent_tasks: set = set()


def register_agent_at_start(config, backend: str) -> None:
    """Register the backend's agent as soon as the hub runs, not at the first spawn.

    Until an agent is registered, check-presets has no capacity to offer, so a fresh hub's
    panels, widgets and spawn form would show nothing that fits. JupyterHub reads its config
    inside its event loop, so the registration is scheduled there; the spawners keep it fresh
    with their heartbeats afterwards. Outside a running loop (a config file read by a tool)
    nothing is scheduled.
    """
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    kwargs: dict = {}
    if backend == "docker":
        from .docker import DockerSessionSpawner as cls
    elif backend == "swarm":
        # Its heartbeat then reads the node list from the start: nodes show up before any spawn.
        from .swarm import SwarmSessionSpawner as cls
    elif backend == "kubernetes":
        # Its node watch starts now: nodes show up (and follow the cluster) before any spawn.
        # KubeSpawner names its objects after a user at construction; this spawner starts none.
        from types import SimpleNamespace

        from .kube import KubeSessionSpawner as cls

        kwargs["user"] = SimpleNamespace(name="backendai-agents", id=0, url="/")
    else:
        from .local import LocalSessionSpawner as cls

    async def register() -> None:
        try:
            await cls(config=config, **kwargs).ensure_agent()
        except Exception:
            log.exception("jupyter-backendai: could not register the %s agent at start-up", backend)

    def schedule() -> None:
        task = loop.create_task(register())
        _agent_tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(_agent_tasks.discard)

    loop.call_soon(schedule)
