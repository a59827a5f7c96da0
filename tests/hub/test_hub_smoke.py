"""Smoke tests of the end-to-end infrastructure in testing/hub.py: a real JupyterHub behind a
real configurable-http-proxy, driven by Chromium, and a real SMTP server."""

from __future__ import annotations

import re
import smtplib
from email.message import EmailMessage

import requests

# Harmless when the main conftest loads the plugin as well (pytest registers it once). The helpers
# are imported inside the tests so that this plugin import comes first (assertion rewriting).
pytest_plugins = ["testing.hub"]

PASSWORD = "correct-horse-battery"
DUMMY_HUB = f"""
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {PASSWORD!r}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
# Land on the home page after login instead of spawning a server.
c.JupyterHub.default_url = "/hub/home"
"""


def test_browser_login_through_real_proxy(make_hub, page):
    from testing.hub import screenshot

    hub = make_hub(DUMMY_HUB)

    # The hub sits behind the real configurable-http-proxy, which it started.
    assert hub.proxy_running(), hub.log_tail()
    routes = hub.proxy_api("GET", "/api/routes")
    assert routes.status_code == 200
    assert "/" in routes.json()  # the hub's own route
    assert requests.get(f"{hub.proxy_api_url}/api/routes", timeout=5).status_code == 403
    assert "version" in hub.api("GET", "/", token=None).json()
    assert hub.api("GET", "/users").status_code == 200
    assert hub.api("GET", "/users", token=None).status_code == 403

    # A wrong password is refused on the login form.
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "alice")
    page.fill("#password_input", "wrong")
    page.click("#login_submit")
    page.wait_for_selector("text=Invalid username or password")
    assert "/hub/login" in page.url

    # The right one lands on the hub's home page.
    page.fill("#username_input", "alice")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/home"))
    assert page.url.startswith(f"{hub.url}/hub/home")
    path = screenshot(page, "home-after-login")
    assert path.is_file() and path.stat().st_size > 0

    user = hub.api("GET", "/users/alice")
    assert user.status_code == 200
    assert user.json()["server"] is None  # nothing was spawned

    # Teardown stops the hub and the proxy it started.
    proxy_pid = hub.proxy_pid
    hub.stop()
    assert not hub.running
    assert proxy_pid is not None and not hub.proxy_running()
    assert "Cleaning up proxy" in hub.log_text()


def test_smtp_server_receives_mail(smtp_server):
    from testing.hub import first_url

    msg = EmailMessage()
    msg["From"] = "hub@example.test"
    msg["To"] = "alice@example.test"
    msg["Subject"] = "Confirm your address"
    msg.set_content("Hello,\n\nopen http://127.0.0.1:8000/hub/confirm?token=abc123.\n")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        smtp.send_message(msg, to_addrs=["alice@example.test"])

    got = smtp_server.wait_for_message("alice@example.test", timeout=10)
    assert got["Subject"] == "Confirm your address"
    assert first_url(got) == "http://127.0.0.1:8000/hub/confirm?token=abc123"
    assert smtp_server.wait_for_url("Alice@Example.test") == "http://127.0.0.1:8000/hub/confirm?token=abc123"
    assert smtp_server.messages_to("bob@example.test") == []
