"""The backend contract: what a session backend implements, as a :class:`typing.Protocol`.

A backend is a JupyterHub spawner class ``class X(SessionSpawnerMixin, SomeSpawner)``: the mixin
(``hub/spawner.py``) does admission, the queue, folders, the status history and the idle
timeout, and calls the methods below; the backend turns the engine-neutral
:class:`~.spec.SessionSpec` into its engine's terms and reports its agents. This is to a
backend what ``Spawner.start/stop/poll`` are to a JupyterHub spawner; docs/backends.md tells the
same contract in prose, with the hooks of the optional mixins (output, images).

:func:`contract_problems` checks a class against it (each member present, coroutine or not as
declared, the same parameters, and the members without a usable default overridden);
``tests/hub/test_backends.py`` runs it on every backend, so that a new backend or a renamed hook
fails there rather than at a user's first spawn.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..core.slots import ResourceSlots
    from .spec import SessionSpec

__all__ = ["SessionBackend", "contract_problems"]


@runtime_checkable
class SessionBackend(Protocol):
    """What :class:`~.spawner.SessionSpawnerMixin` needs from a backend.

    Members the mixin implements already (with a default a backend may keep) are marked
    *default*; :data:`REQUIRED` lists those each backend must provide itself.
    """

    #: The engine's name (``docker``, ``swarm``, ``kubernetes``, ``local``): stored as the
    #: agents' ``version`` and in messages ("the session's docker backend ended it").
    backend_name: str

    # --- agents: where sessions can run -------------------------------------------------------

    async def agent_info(self) -> tuple[ResourceSlots, list[dict], str]:
        """A one-agent backend's agent: its capacity, GPU devices and address.

        The mixin registers it as ``agent_id`` in ``agent_scaling_group`` at every heartbeat.
        A many-agent backend (Swarm, Kubernetes) overrides the mixin's ``_register_agent()``
        instead: it registers every node of its engine and hands the ids of nodes down or gone
        to ``lose_agents()``.
        """
        ...

    async def ensure_agent(self) -> None:
        """*Default.* Register the agents, again once ``agent_heartbeat_interval`` has passed."""
        ...

    # --- start ------------------------------------------------------------------------------------

    def server_address(self) -> tuple[str, int]:
        """*Default* (the hub host's loopback). Where the server will listen, chosen first:
        JupyterHub puts it into the session's environment."""
        ...

    async def open_network(self) -> None:
        """*Default* (nothing). Make what the session's network needs before the spec is built."""
        ...

    def choose_ssh_port(self, preferred: int | None) -> int:
        """*Default* (a free port on the hub's host). The port users' SSH clients connect to."""
        ...

    def session_command(self, ssh_port: int | None) -> tuple[str, ...]:
        """*Default* (``jupyterhub-singleuser``). The session's command line."""
        ...

    def session_ssh_port(self, public_port: int) -> int:
        """*Default* (the same). The port sshd listens on inside the session."""
        ...

    async def start_session(self, spec: SessionSpec) -> tuple[str, int]:
        """Run the session ``spec`` describes on the agent the scheduler chose (the session row's
        ``agent_id``); return where the hub reaches its server.

        A refusal the user can act on is a ``SpecError`` (the spawn page shows it as a 400);
        anything else ends the session ERROR ``could not start: <reason>``.
        """
        ...

    # --- stop and poll ----------------------------------------------------------------------------

    async def stop_session(self, now: bool) -> None:
        """End the session and remove what it left on the engine; the mixin records TERMINATED."""
        ...

    async def poll_session(self) -> Any:
        """``None`` while the session runs; anything else once it ended without a stop.

        After a hub restart this is the first call (``load_state()`` gave back ``get_state()``):
        reopen what lived only in the old hub process.
        """
        ...

    # --- usage ------------------------------------------------------------------------------------

    async def sample_usage(self) -> dict[str, Any]:
        """*Default* (``{}``: the engine cannot say). ``cpu_seconds``, ``cpu_percent``,
        ``mem_bytes``, ``io_read_bytes``, ``io_write_bytes`` (``usage_sample()`` computes the
        percentage), plus :meth:`sample_gpu`'s fields for a session with GPUs."""
        ...

    async def sample_gpu(self) -> dict[str, Any]:
        """*Default* (nvidia-smi on the hub's host). ``gpu_percent`` and ``gpu_mem_bytes``."""
        ...

    async def session_pids(self) -> list[int]:
        """*Default* (none). Host pids of the session's processes: its share of a shared GPU."""
        ...

    # --- address ----------------------------------------------------------------------------------

    #: The name users' SSH clients connect to (a trait of the mixin).
    ssh_host: str
    #: The address the session's published ports bind to on the agent (a trait of the mixin).
    ssh_bind_ip: str

    def backend_object_id(self) -> str | None:
        """*Default* (None). The container, service or pod id, stored with the session."""
        ...


#: Members whose mixin default only raises: each backend implements them.
REQUIRED = ("start_session", "stop_session", "poll_session")


def _members() -> dict[str, Any]:
    return {name: value for name, value in vars(SessionBackend).items() if not name.startswith("_") and callable(value)}


def _parameters(fn: Any) -> list[str]:
    return [p.name for p in inspect.signature(fn).parameters.values()]


def contract_problems(cls: type) -> list[str]:
    """What ``cls`` lacks or gets wrong of :class:`SessionBackend`; empty when it satisfies it.

    Structural, like the Protocol (nothing is instantiated, no engine is reached): each member
    exists, is a coroutine function when the contract's is and a plain one when it is not, and
    takes the same parameters; the :data:`REQUIRED` members and the agents are the backend's
    own, not the mixin's defaults that raise ``NotImplementedError``.
    """
    from .spawner import SessionSpawnerMixin

    problems = []
    for name in SessionBackend.__annotations__:
        if not hasattr(cls, name):
            problems.append(f"{cls.__name__} has no attribute {name!r}")
    for name, expected in _members().items():
        actual = getattr(cls, name, None)
        if actual is None or not callable(actual):
            problems.append(f"{cls.__name__} has no method {name}()")
            continue
        if inspect.iscoroutinefunction(expected) != inspect.iscoroutinefunction(actual):
            kind = "a coroutine function" if inspect.iscoroutinefunction(expected) else "a plain method"
            problems.append(f"{cls.__name__}.{name} must be {kind}")
        if _parameters(actual) != _parameters(expected):
            problems.append(
                f"{cls.__name__}.{name} takes {_parameters(actual)}, the contract says {_parameters(expected)}"
            )
    for name in REQUIRED:
        if getattr(cls, name, None) is getattr(SessionSpawnerMixin, name):
            problems.append(f"{cls.__name__} does not implement {name}()")
    registers = getattr(cls, "_register_agent", None)
    one_agent = registers is None or registers is SessionSpawnerMixin._register_agent
    if one_agent and getattr(cls, "agent_info", None) in (None, SessionSpawnerMixin.agent_info):
        problems.append(f"{cls.__name__} reports no agent: implement agent_info() or override _register_agent()")
    return problems
