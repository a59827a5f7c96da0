"""The Kubernetes client reads the proxy environment once, not at every API call."""

import asyncio

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

from jupyter_backendai.hub.kube import read_proxy_once

API_SERVER = "https://127.0.0.1:6443"
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")


def client_after_read(proxy: str | None = None):
    """(proxy, proxy headers, whether the session still trusts the environment) of a new client."""

    async def make():
        config = Configuration()
        config.host = API_SERVER
        config.proxy = proxy
        client = ApiClient(config)  # its aiohttp session needs a running loop; no request is made
        try:
            read_proxy_once(CoreV1Api(client))
            rest = client.rest_client
            return rest.proxy, rest.proxy_headers or {}, rest.pool_manager.trust_env
        finally:
            await client.close()

    return asyncio.run(make())


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_the_environments_proxy_for_the_api_server_is_set_once_on_the_client(monkeypatch, variable):
    monkeypatch.setenv(variable, "http://user:secret@127.0.0.1:3128")
    proxy, headers, trusts_env = client_after_read()
    assert proxy == "http://127.0.0.1:3128"
    assert headers["Proxy-Authorization"].startswith("Basic ")
    assert not trusts_env  # no per-request look at the environment any more


def test_no_proxy_and_no_variables_leave_the_api_server_direct(monkeypatch):
    assert client_after_read()[:2] == (None, {})
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    proxy, _, trusts_env = client_after_read()
    assert proxy is None and not trusts_env


def test_a_proxy_set_in_the_configuration_wins(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert client_after_read("http://127.0.0.1:8888")[0] == "http://127.0.0.1:8888"
