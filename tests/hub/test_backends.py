"""Every session backend satisfies the backend contract (``hub/backend.py``'s ``SessionBackend``).

Structural checks on the classes (no engine is reached): the real backends pass, and a class
that breaks the contract in each way it can is named with what is wrong.
"""

import pytest

from jupyter_backendai.hub.backend import REQUIRED, SessionBackend, contract_problems
from jupyter_backendai.hub.docker import DockerSessionSpawner
from jupyter_backendai.hub.kube import KubeSessionSpawner
from jupyter_backendai.hub.local import LocalSessionSpawner
from jupyter_backendai.hub.spawner import SessionSpawnerMixin
from jupyter_backendai.hub.swarm import SwarmSessionSpawner

BACKENDS = [DockerSessionSpawner, LocalSessionSpawner, SwarmSessionSpawner, KubeSessionSpawner]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda cls: cls.backend_name)
def test_each_backend_satisfies_the_contract(backend):
    assert contract_problems(backend) == []
    assert issubclass(backend, SessionSpawnerMixin)


def test_each_backend_has_its_own_name():
    names = [cls.backend_name for cls in BACKENDS]
    assert names == ["docker", "local", "swarm", "kubernetes"]


def test_the_contract_covers_what_docs_backends_describes():
    members = set(vars(SessionBackend)) | set(SessionBackend.__annotations__)
    for name in ("agent_info", "start_session", "stop_session", "poll_session", "sample_usage", "ssh_host"):
        assert name in members
    assert set(REQUIRED) == {"start_session", "stop_session", "poll_session"}


class _Complete(SessionSpawnerMixin):
    async def agent_info(self):
        return None

    async def start_session(self, spec):
        return "127.0.0.1", 1

    async def stop_session(self, now):
        return None

    async def poll_session(self):
        return None


def test_a_complete_backend_passes():
    assert contract_problems(_Complete) == []


def test_the_mixin_alone_is_not_a_backend():
    problems = contract_problems(SessionSpawnerMixin)
    assert [p for p in problems if "does not implement" in p] == [
        f"SessionSpawnerMixin does not implement {name}()" for name in REQUIRED
    ]
    assert any("reports no agent" in p for p in problems)


def test_a_plain_method_where_a_coroutine_belongs_is_named():
    class Sync(_Complete):
        def stop_session(self, now):
            return None

    assert contract_problems(Sync) == ["Sync.stop_session must be a coroutine function"]


def test_other_parameters_are_named():
    class Renamed(_Complete):
        async def stop_session(self, now, force):
            return None

    assert contract_problems(Renamed) == [
        "Renamed.stop_session takes ['self', 'now', 'force'], the contract says ['self', 'now']"
    ]


def test_a_many_agent_backend_registers_its_nodes_instead():
    class Nodes(_Complete):
        agent_info = SessionSpawnerMixin.agent_info

        async def _register_agent(self):
            return None

    class Nowhere(_Complete):
        agent_info = SessionSpawnerMixin.agent_info

    assert contract_problems(Nodes) == []
    assert contract_problems(Nowhere) == [
        "Nowhere reports no agent: implement agent_info() or override _register_agent()"
    ]


def test_a_class_that_is_no_spawner_lacks_everything():
    problems = contract_problems(type("Bare", (), {}))
    assert "Bare has no attribute 'backend_name'" in problems
    assert "Bare has no attribute 'ssh_host'" in problems
    assert "Bare has no method start_session()" in problems
    assert "Bare reports no agent: implement agent_info() or override _register_agent()" in problems
