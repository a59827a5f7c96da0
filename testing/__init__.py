"""The test harness: real services for the tests and the benchmarks.

``tests/`` (through its conftests) and ``benchmarks/`` import from here, never from each other:

- :mod:`testing.db` a PostgreSQL database of a test's own, a fresh key for the database's secrets;
- :mod:`testing.hub` a real JupyterHub with configurable-http-proxy, ports, an SMTP server, Chromium;
- :mod:`testing.sessions` the product's database as a hub sees it (users, folders, policies) and
  the waits of a session's life through a hub;
- :mod:`testing.manager` the manager API on its own; :mod:`testing.client` Backend.AI's own client;
- :mod:`testing.docker`, :mod:`testing.swarm`, :mod:`testing.k8s`, :mod:`testing.registry` the
  engine, a three-engine swarm, a Kubernetes cluster and an image registry on this machine;
- :mod:`testing.kernel`, :mod:`testing.widgets`, :mod:`testing.browser` kernels, the widgets'
  backend and the lab's pages.

What a part needs is checked once; a missing part skips the test on a developer's machine and
fails it where ``BACKENDAI_TEST_REQUIRE_<PART>=1`` says it is required (CI sets them all).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, NoReturn

import pytest
import requests


def required(part: str) -> bool:
    """Whether ``BACKENDAI_TEST_REQUIRE_<PART>`` says that tests needing ``part`` must run."""
    return os.environ.get(f"BACKENDAI_TEST_REQUIRE_{part.upper()}", "") not in ("", "0", "false")


def missing(problem: str, part: str) -> NoReturn:
    """Skip the test for want of ``part`` or, where it is required, fail it with ``problem``."""
    if required(part):
        pytest.fail(f"BACKENDAI_TEST_REQUIRE_{part.upper()}=1 but {problem}")
    pytest.skip(problem)


def wait_for(check: Callable[[], Any], timeout: float, what: str | Callable[[], str], interval: float = 0.5) -> Any:
    """The first true value of ``check()`` within ``timeout`` seconds, or an AssertionError saying
    ``what`` (a function of no arguments where it should say how things stand at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what() if callable(what) else what}")
        time.sleep(interval)


def answers(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 now."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
