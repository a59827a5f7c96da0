"""The OpenAPI document: every operation documented, a valid document, and no 5xx under schemathesis."""

from __future__ import annotations

import requests
from openapi_spec_validator import validate

from jupyter_backendai.core import signing


def test_document_is_valid_and_complete(manager):
    doc = requests.get(manager.url + "/openapi.json", timeout=10).json()
    validate(doc)
    ops = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]
    assert ("/", "get") in {(p, m) for p, m, _ in ops}
    assert ("/auth/whoami", "get") in {(p, m) for p, m, _ in ops}
    undocumented = [f"{m.upper()} {p}" for p, m, op in ops if not op["summary"]]
    assert undocumented == [], f"operations without a docstring: {undocumented}"
    # Every served route appears: the document is made from the routing table, so compare with
    # what the service answers: an undocumented path would be a 404 from the catch-all.
    for path, method, _ in ops:
        if "{" not in path and method == "get":
            assert requests.get(manager.url + path, timeout=10).status_code != 404 or path == "/no", path


def test_schemathesis_finds_no_server_errors(manager):
    """Generated requests (signed as alice) to every operation never get a 5xx."""
    from urllib.parse import urlencode

    import schemathesis
    from hypothesis import HealthCheck, given, settings

    access, secret = manager.keys("alice")
    schema = schemathesis.openapi.from_url(manager.url + "/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def run(case):
            path = case.formatted_path + ("?" + urlencode(case.query, doseq=True) if case.query else "")
            headers = signing.headers(access, secret, case.method, path, f"127.0.0.1:{manager.port}")
            response = case.call(base_url=manager.url, headers=headers, timeout=30)
            # This manager runs without a hub: starting and stopping sessions answer 503 with that
            # reason by design (tests/manager/test_manager_sessions.py covers them with a hub).
            without_hub = response.status_code == 503 and "without a hub" in response.text
            if response.status_code >= 500 and not without_hub:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        run()
    assert failures == [], "\n".join(failures[:20])


def test_metrics(manager):
    assert manager.call("GET", "/auth/whoami", "alice").status_code == 200
    text = requests.get(manager.url + "/metrics", timeout=10).text
    assert 'backendai_manager_requests_total{method="GET",route="WhoAmIHandler",status="200"}' in text
    assert "backendai_manager_request_duration_seconds_bucket" in text
    assert "backendai_manager_transfer_bytes_total" in text or "backendai_manager_transfer_bytes" in text
