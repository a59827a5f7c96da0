"""What every test may use: a fresh database of each kind, the harness's fixtures, and markers.

The harness (``testing/``) starts the real services; its fixtures are loaded here as plugins.
Markers say what a test needs, so that a run can choose (``-m "not docker and not browser"``
on a laptop without an engine): ``db``, ``hub`` and ``browser`` are added from the fixtures a
test uses; ``docker`` is declared by the modules whose tests use the engine (and added to users of a swarm,
a cluster or the registry), checked once per run (a missing engine skips them, or fails them
where ``BACKENDAI_TEST_REQUIRE_DOCKER=1``); ``slow`` marks what takes minutes (a swarm, a
Kubernetes cluster: added from their fixtures, so that ``-m "not slow"`` never starts one).
"""

from __future__ import annotations

import functools

import pytest

# The harness asserts too: its modules get pytest's assertion messages (before they are imported).
pytest.register_assert_rewrite("testing")


from testing import missing  # noqa: E402 - after register_assert_rewrite
from testing.db import postgres_database, use_fresh_db_key  # noqa: E402 - after register_assert_rewrite
from testing.docker import IMAGE, docker_problem  # noqa: E402 - after register_assert_rewrite
from testing.sessions import MIN_LABELS, ProductDB, add_students  # noqa: E402 - after register_assert_rewrite

# One key for the database's secrets for the whole run; tests of the key's sources set their own.
use_fresh_db_key()

pytest_plugins = [
    "testing.hub",
    "testing.manager",
    "testing.swarm",
    "testing.k8s",
    "testing.registry",
]

#: Markers added from the fixtures a test uses (directly or through other fixtures).
MARKERS_BY_FIXTURE = {
    "db": {"db_url", "db"},
    "hub": {"make_hub"},
    "browser": {"page", "browser", "context"},
    "docker": {"swarm", "gpu_swarm", "k8s_cluster", "image_registry"},
    "slow": {"swarm", "gpu_swarm", "k8s_cluster"},  # and the README path, by its module
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in MARKERS_BY_FIXTURE.items():
            if used & fixtures:
                item.add_marker(marker)


@functools.cache
def _docker_problem() -> str | None:
    return docker_problem()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") and (problem := _docker_problem()):
        missing(problem, "docker")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'backendai.sqlite'}"
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
def db(db_url):
    """An open session on an upgraded database with the defaults in place."""
    from jupyter_backendai.db import admin, connect, upgrade

    upgrade(db_url)
    factory = connect(db_url)
    with factory() as session:
        admin.ensure_defaults(session)
        session.commit()
        yield session
    factory.kw["bind"].dispose()


@pytest.fixture
def pdb(tmp_path):
    """The product's database with the student policy, the small preset and the session image."""
    labels = {**MIN_LABELS, "ai.backend.service-ports": "jupyter:http:8888,sshd:tcp:2200"}
    with ProductDB(tmp_path) as pdb:
        pdb.setup(lambda db: add_students(db, image=IMAGE, labels=labels))
        yield pdb
