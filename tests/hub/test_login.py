"""Login, sign-up and passwords on a real hub behind a real configurable-http-proxy.

The browser walk drives Debian's Chromium through Playwright; the other tests post the forms
with ``requests`` as a browser would (XSRF cookie and field included). Mail goes through a
real SMTP server on loopback (aiosmtpd).
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
import requests

from jupyter_backendai.cli import upgrade_with_defaults
from jupyter_backendai.db import admin, connect, tokens
from jupyter_backendai.db import models as m
from jupyter_backendai.db.credentials import verify_password
from jupyter_backendai.db.types import utcnow
from jupyter_backendai.hub import TEMPLATES
from testing.hub import login, post_form, screenshot

PASSWORD = "S3cret!pw"


@pytest.fixture
def product_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'backendai.sqlite'}"
    upgrade_with_defaults(url)
    factory = connect(url)
    yield url, factory
    factory.kw["bind"].dispose()


def hub_config(db_url: str, smtp=None, **auth: object) -> str:
    lines = [
        'c.JupyterHub.authenticator_class = "backendai"',
        f"c.JupyterHub.template_paths = [{TEMPLATES!r}]",
        f"c.BackendAIAuthenticator.db_url = {db_url!r}",
        'c.JupyterHub.spawner_class = "simple"',
        'c.JupyterHub.default_url = "/hub/home"',
    ]
    lines += [f"c.BackendAIAuthenticator.{k} = {v!r}" for k, v in auth.items()]
    if smtp is not None:
        lines += [f"c.Mailer.smtp_host = {smtp.host!r}", f"c.Mailer.smtp_port = {smtp.port!r}"]
    return "\n".join(lines) + "\n"


def make_user(factory, email: str, password: str = PASSWORD, **kw):
    with factory() as db:
        user, kp = admin.create_user(db, email, password, **kw)
        db.commit()
        return user.username


# --- the walk of a new user ----------------------------------------------------------------


def test_new_user_walk_in_the_browser(make_hub, smtp_server, product_db, page):
    url, factory = product_db
    with factory() as db:
        invitation, _ = tokens.create_invitation(db, ttl=dt.timedelta(days=1), created_by="test")
        db.commit()
    hub = make_hub(
        hub_config(url, smtp_server, allow_signup=True, signup_requires_invitation=True, signup_email_verification=True)
    )

    page.goto(f"{hub.url}/hub/login")
    screenshot(page, "01-login")
    page.click("#signup-link")
    page.wait_for_url(re.compile(r"/hub/signup"))
    page.fill("#email", "newbie@example.com")
    page.fill("#username", "newbie")
    page.fill("#password", "Newbie-pw-1")
    page.fill("#password2", "Newbie-pw-1")
    page.fill("#invitation", invitation)
    page.check("#accept_terms")
    screenshot(page, "02-signup")
    page.click("#signup_submit")
    page.wait_for_selector("#form-message")
    assert "We sent a confirmation link to newbie@example.com" in page.inner_text("#form-message")
    screenshot(page, "03-signup-done")

    # Not active yet: the password is right but the address is unconfirmed.
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "newbie")
    page.fill("#password_input", "Newbie-pw-1")
    page.click("#login_submit")
    page.wait_for_selector("text=Confirm your e-mail address first")

    link = smtp_server.wait_for_url("newbie@example.com")
    assert link.startswith(f"{hub.url}/hub/verify-email?token=")
    page.goto(link)
    page.wait_for_selector("#form-message")
    assert "newbie@example.com is confirmed" in page.inner_text("#form-message")
    screenshot(page, "04-verified")

    page.click("#go-login")
    page.fill("#username_input", "newbie@example.com")  # the e-mail address works as well as the name
    page.fill("#password_input", "Newbie-pw-1")
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/home"))
    screenshot(page, "05-home")

    page.click("#change-password-link")
    page.wait_for_url(re.compile(r"/hub/change-password"))
    page.fill("#current", "Newbie-pw-1")
    page.fill("#password", "weak")
    page.fill("#password2", "weak")
    page.click("#change_submit")
    page.wait_for_selector("#form-errors")
    errors = page.inner_text("#form-errors")
    assert "at least 8 characters" in errors and "at least one digit" in errors
    page.fill("#current", "Newbie-pw-1")
    page.fill("#password", "Changed-pw-2")
    page.fill("#password2", "Changed-pw-2")
    screenshot(page, "06-change-password")
    page.click("#change_submit")
    page.wait_for_selector("#form-message")
    screenshot(page, "07-password-changed")

    page.goto(f"{hub.url}/hub/logout")
    page.goto(f"{hub.url}/hub/login")
    page.click("#forgot-password-link")
    page.wait_for_url(re.compile(r"/hub/forgot-password"))
    page.fill("#email", "newbie@example.com")
    screenshot(page, "08-forgot-password")
    page.click("#forgot_submit")
    page.wait_for_selector("#form-message")
    assert "If an account uses that address" in page.inner_text("#form-message")

    reset_mail = smtp_server.wait_for_message("newbie@example.com", count=2)
    assert reset_mail["Subject"] == "Reset your password"
    from testing.hub import first_url

    page.goto(first_url(reset_mail))
    page.fill("#password", "Reset-pw-3")
    page.fill("#password2", "Reset-pw-3")
    screenshot(page, "09-reset-password")
    page.click("#reset_submit")
    page.wait_for_selector("#form-message")

    page.click("#go-login")
    page.fill("#username_input", "newbie")
    page.fill("#password_input", "Reset-pw-3")
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/home"))
    screenshot(page, "10-home-with-new-password")

    with factory() as db:
        user = admin.get_user(db, "newbie")
        assert user.status == m.UserStatus.ACTIVE and verify_password(user.password, "Reset-pw-3")
        assert [g.name for g in user.groups] == ["default"] and user.keypairs[0].resource_policy == "default"


# --- refusals ------------------------------------------------------------------------------


def test_login_refusals(make_hub, product_db):
    url, factory = product_db
    make_user(factory, "ok@example.com")
    name = make_user(factory, "gone@example.com")
    with factory() as db:
        admin.deactivate_user(db, admin.get_user(db, name))
        db.commit()
    hub = make_hub(hub_config(url, free_failed_logins=100))

    wrong = login(hub, "ok@example.com", "Wrong-pw-1")
    assert wrong.status_code == 403 and "Invalid username or password" in wrong.text
    unknown = login(hub, "nobody@example.com", PASSWORD)
    assert unknown.status_code == 403 and "Invalid username or password" in unknown.text
    inactive = login(hub, "gone@example.com", PASSWORD)
    assert inactive.status_code == 403 and "This account is inactive" in inactive.text
    # An inactive account with a wrong password learns nothing about its state.
    assert "inactive" not in login(hub, "gone@example.com", "Wrong-pw-1").text

    session = requests.Session()
    ok = login(hub, "ok", PASSWORD, session)
    assert ok.status_code == 200 and ok.url.endswith("/hub/home")
    user = hub.api("GET", "/users/ok").json()
    assert user["admin"] is False


def test_superadmin_is_hub_admin_and_password_change_is_required(make_hub, product_db):
    url, factory = product_db
    make_user(factory, "root@example.com", role="superadmin", need_password_change=True)
    hub = make_hub(hub_config(url))
    session = requests.Session()
    landed = login(hub, "root", PASSWORD, session)
    assert "/hub/change-password" in landed.url and "required=1" in landed.url
    assert "asks you to choose a new password" in landed.text
    assert hub.api("GET", "/users/root").json()["admin"] is True

    # No session before the change.
    spawn = hub.api("POST", "/users/root/server")
    assert spawn.status_code >= 400
    assert "Change your password before starting a session" in hub.log_text()

    changed = post_form(
        session,
        landed.url,
        {"current": PASSWORD, "password": "Brand-new-2", "password2": "Brand-new-2"},
    )
    assert changed.status_code == 200 and "Your password is changed" in changed.text
    with factory() as db:
        assert admin.get_user(db, "root").need_password_change is False


def test_signup_rules_and_tokens(make_hub, product_db):
    url, factory = product_db
    with factory() as db:
        good, _ = tokens.create_invitation(db, ttl=dt.timedelta(hours=1))
        expired, _ = tokens.create_invitation(db, ttl=dt.timedelta(hours=1), now=utcnow() - dt.timedelta(hours=2))
        db.commit()
    hub = make_hub(hub_config(url, allow_signup=True, signup_requires_invitation=True))
    signup = f"{hub.url}/hub/signup"

    def attempt(**fields):
        data = {"email": "x@example.com", "username": "x", "password": "Good-pw-1", "password2": "Good-pw-1",
                "invitation": good, "accept_terms": "1"}  # fmt: skip
        data.update(fields)
        return post_form(requests.Session(), signup, {k: v for k, v in data.items() if v is not None})

    cases = {
        "short": ("Ab1!", "The password needs at least 8 characters."),
        "no letter": ("12345678!", "The password needs at least one letter."),
        "no digit": ("abcdefgh!", "The password needs at least one digit."),
        "no special": ("abcdefg12", "The password needs at least one special character."),
    }
    for password, message in cases.values():
        r = attempt(password=password, password2=password)
        assert r.status_code == 400 and message in r.text, (password, r.text[-2000:])
    r = attempt(password2="Other-pw-1")
    assert r.status_code == 400 and "The two passwords differ." in r.text
    r = attempt(accept_terms=None)
    assert "Accept the terms of use and the privacy policy" in r.text
    r = attempt(invitation="")
    assert "An invitation token is required" in r.text
    r = attempt(invitation=expired)
    assert r.status_code == 400 and "This invitation token has expired." in r.text
    r = attempt(email="not-an-address")
    assert "Enter a valid e-mail address." in r.text

    r = attempt()
    assert r.status_code == 200 and "Account created. You can log in now." in r.text
    r = attempt(email="y@example.com", username="y")
    assert r.status_code == 400 and "This invitation token has already been used." in r.text
    assert login(hub, "x", "Good-pw-1").url.endswith("/hub/home")

    # Turned off, the page is gone.
    off = make_hub(hub_config(url))
    assert requests.get(f"{off.url}/hub/signup", timeout=10).status_code == 404
    assert 'id="signup-link"' not in requests.get(f"{off.url}/hub/login", timeout=10).text


def test_password_reset_tokens(make_hub, smtp_server, product_db):
    url, factory = product_db
    make_user(factory, "r@example.com")
    hub = make_hub(hub_config(url, smtp_server))
    forgot = f"{hub.url}/hub/forgot-password"

    known = post_form(requests.Session(), forgot, {"email": "r@example.com"})
    unknown = post_form(requests.Session(), forgot, {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    # The pages differ only in their per-request XSRF tokens (wherever the template puts them).
    strip = lambda text: re.sub(r"[A-Za-z0-9+/=_|-]{40,}", "", text)  # noqa: E731
    assert strip(known.text) == strip(unknown.text)
    link = smtp_server.wait_for_url("r@example.com")
    time.sleep(0.5)
    assert smtp_server.messages_to("nobody@example.com") == []

    session = requests.Session()
    weak = post_form(session, link, {"token": link.split("token=")[1], "password": "short", "password2": "short"},
                     action=f"{hub.url}/hub/reset-password")  # fmt: skip
    assert weak.status_code == 400 and "The new password needs at least 8 characters." in weak.text
    token = link.split("token=")[1]
    done = post_form(session, link, {"token": token, "password": "Reset-pw-9", "password2": "Reset-pw-9"},
                     action=f"{hub.url}/hub/reset-password")  # fmt: skip
    assert done.status_code == 200 and "Your password is changed" in done.text
    again = requests.get(link, timeout=10)
    assert again.status_code == 400 and "This password reset link has already been used." in again.text
    assert login(hub, "r", "Reset-pw-9").url.endswith("/hub/home")
    assert login(hub, "r", PASSWORD).status_code == 403

    with factory() as db:
        old = tokens.create_user_token(
            db, admin.get_user(db, "r"), m.TokenPurpose.RESET_PASSWORD, ttl=dt.timedelta(minutes=5),
            now=utcnow() - dt.timedelta(hours=1),
        )  # fmt: skip
        db.commit()
    expired = requests.get(f"{hub.url}/hub/reset-password?token={old}", timeout=10)
    assert expired.status_code == 400 and "This password reset link has expired" in expired.text


def test_brute_force_is_slowed_then_refused(make_hub, product_db):
    url, factory = product_db
    make_user(factory, "bf@example.com")
    hub = make_hub(
        hub_config(url, free_failed_logins=1, max_failed_logins=4, lockout_seconds=120.0, max_login_delay=1.0)
    )
    timings = []
    for _ in range(4):
        start = time.monotonic()
        r = login(hub, "bf", "Wrong-pw-1")
        timings.append(time.monotonic() - start)
        assert r.status_code == 403
    # The first failure is free; the third waits max_login_delay (1 s). Compared with the first
    # rather than with a fixed bound, so that a loaded machine's slower hashing cannot fail it.
    assert timings[2] >= 0.9 and timings[2] - timings[0] >= 0.5, timings
    locked = login(hub, "bf", PASSWORD)  # even the right password is refused now
    assert locked.status_code == 429 and "Too many failed logins. Try again in" in locked.text
    # Another account from the same address is locked too (password spraying).
    make_user(factory, "other@example.com")
    assert login(hub, "other", PASSWORD).status_code == 429


# --- users from another authenticator --------------------------------------------------------


def provisioning_config(db_url: str, auto: bool) -> str:
    return "\n".join(
        [
            "from jupyter_backendai.hub.provision import post_auth_hook",
            'c.JupyterHub.authenticator_class = "dummy"',
            'c.DummyAuthenticator.password = "Dummy-pw-1"',
            "c.Authenticator.allow_all = True",
            "c.Authenticator.post_auth_hook = post_auth_hook",
            f"c.BackendAI.db_url = {db_url!r}",
            f"c.BackendAI.auto_provision = {auto!r}",
            'c.BackendAI.email_domain = "example.org"',
            'c.JupyterHub.spawner_class = "simple"',
            'c.JupyterHub.default_url = "/hub/home"',
        ]
    )


def test_auto_provisioning_through_another_authenticator(make_hub, product_db):
    url, factory = product_db
    hub = make_hub(provisioning_config(url, auto=True))
    assert login(hub, "carol", "Dummy-pw-1").url.endswith("/hub/home")
    assert login(hub, "carol", "Dummy-pw-1").url.endswith("/hub/home")  # a second login adds nothing
    with factory() as db:
        carol = admin.get_user(db, "carol")
        assert carol.email == "carol@example.org" and carol.password is None
        assert [g.name for g in carol.groups] == ["default"]
        (kp,) = carol.keypairs
        assert kp.is_active and kp.resource_policy == "default"
        admin.deactivate_user(db, carol)
        db.commit()
    refused = login(hub, "carol", "Dummy-pw-1")
    assert refused.status_code == 403 and "This account is inactive" in refused.text

    strict = make_hub(provisioning_config(url, auto=False))
    r = login(strict, "dave", "Dummy-pw-1")
    assert r.status_code == 403 and "This hub has no account for you" in r.text
    with factory() as db:
        with pytest.raises(admin.NotFound):
            admin.get_user(db, "dave")


# --- issue 10: links, addresses, standing, redirects, names -------------------------------------


def test_reset_link_is_built_from_the_public_url_not_the_host_header(make_hub, smtp_server, product_db):
    url, factory = product_db
    make_user(factory, "host@example.com")
    # No public_url configured: it comes from the hub's bind_url, as with jupyterhub_config.py.
    hub = make_hub(hub_config(url, smtp_server))
    forged = requests.Session()
    forged.headers["Host"] = "evil.example"
    answer = post_form(forged, f"{hub.url}/hub/forgot-password", {"email": "host@example.com"})
    assert answer.status_code == 200, answer.text[-1000:]
    link = smtp_server.wait_for_url("host@example.com")
    assert link.startswith(f"{hub.url}/hub/reset-password?token="), link

    # Explicitly configured (or $BACKENDAI_PUBLIC_URL): that one, with the hub's base URL.
    smtp_server.clear()
    public = make_hub(hub_config(url, smtp_server), env={"BACKENDAI_PUBLIC_URL": "https://hub.example.org"})
    post_form(forged, f"{public.url}/hub/forgot-password", {"email": "host@example.com"})
    assert smtp_server.wait_for_url("host@example.com").startswith("https://hub.example.org/hub/reset-password?token=")


def test_reset_mail_without_a_public_url_is_a_start_up_error():
    from types import SimpleNamespace

    from jupyter_backendai.hub.auth import BackendAIAuthenticator, public_origin

    assert public_origin("", "", "http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert public_origin("https://hub.example.org/x/", "", "http://127.0.0.1:8000") == "https://hub.example.org"
    assert public_origin("", "https://jh.example.org/prefix/", "http://:8000") == "https://jh.example.org"
    assert public_origin("", "", "http://:8000") is None and public_origin("", "", "http://0.0.0.0:8000") is None
    with pytest.raises(ValueError, match="not an http"):
        public_origin("hub.example.org", "", "")

    def app(bind_url: str):
        return SimpleNamespace(public_url="", bind_url=bind_url, template_vars={})

    auth = BackendAIAuthenticator(db_url="sqlite://", public_url="")
    with pytest.raises(ValueError, match=r"set c.BackendAIAuthenticator.public_url \(or \$BACKENDAI_PUBLIC_URL\)"):
        auth.get_handlers(app("http://:8000"))
    # Without reset mail and verification there is nothing to link to: the hub starts.
    quiet = BackendAIAuthenticator(db_url="sqlite://", public_url="", allow_password_reset=False)
    assert quiet.get_handlers(app("http://:8000"))


def login_as(hub, name: str, password: str, headers: dict[str, str]) -> requests.Response:
    session = requests.Session()
    session.headers.update(headers)
    return login(hub, name, password, session)


def test_throttles_count_the_proxys_address_and_one_lock_per_account(make_hub, product_db):
    url, factory = product_db
    make_user(factory, "acct@example.com")
    make_user(factory, "good@example.com")
    limits = {"free_failed_logins": 100, "max_failed_logins": 4, "lockout_seconds": 300.0}

    # Behind configurable-http-proxy alone (the default): whatever a client puts in X-Real-Ip or
    # at the front of X-Forwarded-For, the address is the one the proxy saw.
    hub = make_hub(hub_config(url, **limits))
    for i in range(4):
        spoof = {"X-Real-Ip": f"192.0.2.{i + 1}", "X-Forwarded-For": f"198.51.100.{i + 1}"}
        assert login_as(hub, f"nobody{i}", "Wrong-pw-1", spoof).status_code == 403
    sprayed = login_as(hub, "good", PASSWORD, {"X-Real-Ip": "192.0.2.200", "X-Forwarded-For": "198.51.100.200"})
    assert sprayed.status_code == 429 and "Too many failed logins" in sprayed.text

    # Behind a trusted load balancer too (2 proxies): its entry is the address, and an account is
    # one lock whether named by user name or e-mail address, from any address.
    hub2 = make_hub(hub_config(url, trusted_proxy_count=2, **limits))
    names = ["acct", "ACCT@example.com", "acct", "acct@example.com"]
    for i, name in enumerate(names):
        via = {"X-Real-Ip": f"192.0.2.{i + 1}", "X-Forwarded-For": f"6.6.6.{i}, 203.0.113.{i + 1}"}
        assert login_as(hub2, name, "Wrong-pw-1", via).status_code == 403
    fresh = {"X-Forwarded-For": "203.0.113.99"}
    locked = login_as(hub2, "acct", PASSWORD, fresh)
    assert locked.status_code == 429 and "Too many failed logins" in locked.text
    assert login_as(hub2, "good", PASSWORD, fresh).url.endswith("/hub/home")  # the address is not locked

    # Reset requests: counted per proxy-seen address however X-Real-Ip rotates.
    forgot = f"{hub2.url}/hub/forgot-password"
    for i in range(4):
        via = {"X-Real-Ip": f"192.0.2.{i + 1}", "X-Forwarded-For": f"6.6.6.{i}, 203.0.113.50"}
        s = requests.Session()
        s.headers.update(via)
        assert post_form(s, forgot, {"email": f"x{i}@example.com"}).status_code == 200
    s = requests.Session()
    s.headers.update({"X-Real-Ip": "192.0.2.77", "X-Forwarded-For": "6.6.6.77, 203.0.113.50"})
    assert post_form(s, forgot, {"email": "y@example.com"}).status_code == 429


def test_a_demoted_or_deactivated_superadmin_loses_hub_rights(make_hub, product_db):
    url, factory = product_db
    make_user(factory, "boss@example.com", role="superadmin")
    make_user(factory, "chief@example.com", role="superadmin")
    hub = make_hub(hub_config(url) + "c.BackendAIAuthenticator.auth_refresh_age = 1\n")
    boss, chief = requests.Session(), requests.Session()
    assert login(hub, "boss", PASSWORD, boss).url.endswith("/hub/home")
    assert login(hub, "chief", PASSWORD, chief).url.endswith("/hub/home")
    assert boss.get(f"{hub.url}/hub/admin", timeout=10).status_code == 200
    chief_token = hub.api("POST", "/users/chief/tokens", json={"expires_in": 600}).json()["token"]

    with factory() as db:
        admin.update_user(db, admin.get_user(db, "boss"), role="user")
        admin.deactivate_user(db, admin.get_user(db, "chief"))
        db.commit()
    time.sleep(1.5)
    assert boss.get(f"{hub.url}/hub/admin", timeout=10).status_code == 403
    assert hub.api("GET", "/users/boss").json()["admin"] is False
    assert boss.get(f"{hub.url}/hub/home", timeout=10).url.endswith("/hub/home")  # still a user
    # Deactivated: the browser is logged out, and an API token loses the admin rights.
    assert "/hub/login" in chief.get(f"{hub.url}/hub/home", timeout=10).url
    listing = requests.get(f"{hub.url}/hub/api/users", headers={"Authorization": f"token {chief_token}"}, timeout=10)
    assert listing.status_code == 403
    assert hub.api("GET", "/users/chief").json()["admin"] is False


def test_no_redirect_off_the_hub_after_a_password_change(make_hub, product_db):
    url, factory = product_db
    make_user(factory, "next@example.com")
    hub = make_hub(hub_config(url))
    session = requests.Session()
    assert login(hub, "next", PASSWORD, session).url.endswith("/hub/home")
    password = PASSWORD
    cases = {
        "//evil.example": False,
        "/\\evil.example": False,
        "/\t/evil.example": False,
        "https://evil.example/hub/home": False,
        "javascript:alert(1)": False,
        "/hub/spawn": True,
    }
    for i, (target, kept) in enumerate(cases.items()):
        page = f"{hub.url}/hub/change-password?next={requests.utils.quote(target, safe='')}"
        new = f"Changed-pw-{i}"
        done = post_form(session, page, {"current": password, "password": new, "password2": new}, action=page)
        assert done.status_code == 200 and "Your password is changed" in done.text, done.text[-1000:]
        password = new
        go_on = re.search(r'id="go-on"[^>]*href="([^"]*)"', done.text).group(1)
        assert go_on == ("/hub/spawn" if kept else "/hub/home"), (target, go_on)


def test_user_names_cannot_look_like_e_mail_addresses(make_hub, product_db):
    url, factory = product_db
    make_user(factory, "victim@example.com")
    with factory() as db:
        with pytest.raises(admin.AdminError, match="no '@'"):
            admin.create_user(db, "mallory@evil.example", PASSWORD, username="victim@example.com")
        with pytest.raises(admin.AdminError, match="no '@'"):
            admin.update_user(db, admin.get_user(db, "victim"), username="someone@example.com")
        # An earlier version let such a name in: it must not answer for the address at login.
        legacy, _ = admin.create_user(db, "legacy@other.example", PASSWORD, username="legacy")
        legacy.username = "shadow@example.com"
        db.commit()
    hub = make_hub(hub_config(url, allow_signup=True))
    signup = post_form(requests.Session(), f"{hub.url}/hub/signup", {
        "email": "mallory@evil.example", "username": "victim@example.com", "password": "Good-pw-1",
        "password2": "Good-pw-1", "accept_terms": "1"})  # fmt: skip
    assert signup.status_code == 400 and "A user name uses lower-case letters" in signup.text
    # Input with '@' is an e-mail address only; without, a user name only.
    assert login(hub, "shadow@example.com", PASSWORD).status_code == 403
    assert login(hub, "legacy@other.example", PASSWORD).url.endswith("/hub/home")
    assert login(hub, "victim@example.com", PASSWORD).url.endswith("/hub/home")
    assert hub.api("GET", "/users/victim").status_code == 200


def test_provisioned_users_named_by_e_mail(make_hub, product_db):
    url, factory = product_db
    make_user(factory, "taken@example.org")
    hub = make_hub(provisioning_config(url, auto=True))
    assert login(hub, "Dora@Example.org", "Dummy-pw-1").url.endswith("/hub/home")
    with factory() as db:
        dora = admin.get_user(db, "dora@example.org")
        assert dora.username == dora.email == "dora@example.org"
    # A hub name that is someone else's address gets no account of its own.
    refused = login(hub, "taken@example.org", "Dummy-pw-1")
    assert refused.status_code == 403 and "Cannot create an account" in refused.text
