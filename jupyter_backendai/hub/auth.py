"""``BackendAIAuthenticator``: hub users are the product's users (F7–F10, F15).

Login takes an e-mail address (input with '@') or a user name (input without), and the
password, checked against the argon2 hash in the product's database. Inactive accounts and accounts waiting for e-mail
verification are refused with a message that says so (only once the password is right, so
that strangers learn nothing). A superadmin is a hub admin. Every hub user is exactly one db
user (the hub name is the db ``username``) with its active keypair.

The authenticator also serves the account pages under ``/hub/``: ``signup``,
``verify-email``, ``forgot-password``, ``reset-password`` and ``change-password``; their
templates are in ``templates/`` and can be overridden with ``c.JupyterHub.template_paths``.
Links in e-mail are built from ``public_url``, never from the request's ``Host`` header.

Failed logins and reset requests are throttled per account and per client address, where the
address is only what the trusted proxies appended to ``X-Forwarded-For``
(:func:`..core.throttle.client_address`). A user's role and status are read again every
``auth_refresh_age`` seconds (:meth:`BackendAIAuthenticator.refresh_user`): a deactivated user
is logged out, a demoted superadmin loses the hub's admin rights.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from jupyterhub.auth import Authenticator
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.handlers.login import LoginHandler
from sqlalchemy import select
from tornado import web
from traitlets import Bool, Float, Instance, Integer, Unicode, default

from ..core.passwords import password_problems
from ..core.throttle import LoginThrottle, request_address
from ..db import admin, tokens
from ..db import models as m
from ..db.credentials import hash_password, verify_password
from ..db.engine import Database
from ..settings import DatabaseSettings
from .mail import Mailer
from .provision import hub_auth_state

T = TypeVar("T")

ENV_PUBLIC_URL = "BACKENDAI_PUBLIC_URL"


class BackendAIAuthenticator(DatabaseSettings, Authenticator):
    """Log in with the product's accounts; serve sign-up and password pages."""

    @default("allow_all")
    def _default_allow_all(self):
        # Who may log in is the db's business (active users with an active keypair).
        return True

    allow_signup = Bool(
        False,
        config=True,
        help="""Offer ``/hub/signup``: e-mail address, user name, password twice, and the terms and
        privacy links when set. Off by default: accounts are made by administrators (CLI, REST,
        Administration) or ``bootstrap``. New users go to ``signup_domain``, ``signup_group`` and
        ``signup_policy``.""",
    )
    signup_requires_invitation = Bool(
        False,
        config=True,
        help="""Sign-up needs an invitation token from ``jupyter-backendai invitation create``
        (single use, expiring; only its hash is stored).""",
    )
    signup_email_verification = Bool(
        False,
        config=True,
        help="""New accounts stay inactive until the link in the verification e-mail is opened
        (valid for ``verification_token_lifetime``; mail goes through ``c.Mailer``).""",
    )
    allow_password_reset = Bool(
        True,
        config=True,
        help="""Offer 'forgot password': a one-time reset link sent by e-mail (through ``c.Mailer``).
        The answer never tells whether the address has an account.""",
    )
    reset_token_lifetime = Integer(3600, config=True, help="Seconds a password-reset link stays valid (1 hour).")
    verification_token_lifetime = Integer(
        86400, config=True, help="Seconds an e-mail verification link stays valid (1 day)."
    )
    public_url = Unicode(
        config=True,
        help=f"""Public URL of the hub for links in e-mail (password reset, address verification),
        like https://hub.example.org: scheme, host and port; the hub's base URL is added.

        Default: ``${ENV_PUBLIC_URL}``, else ``c.JupyterHub.public_url``, else
        ``c.JupyterHub.bind_url`` when it names a host (``jupyterhub_config.py``'s
        http://127.0.0.1:8000 does). Links are never built from the request's ``Host`` header,
        which the client chooses. With password reset or e-mail verification on and no URL
        known, the hub refuses to start and says so.""",
    )

    @default("public_url")
    def _default_public_url(self):
        return os.environ.get(ENV_PUBLIC_URL, "")

    trusted_proxy_count = Integer(
        1,
        config=True,
        help="""How many proxies in front of the hub append the client's address to
        ``X-Forwarded-For`` (1: configurable-http-proxy; 2 with a load balancer in front of it).

        The throttles count failed logins and reset requests per client address, which is the
        entry this many places from the right of ``X-Forwarded-For``; entries further left,
        ``X-Real-Ip`` and the like are written by the client and ignored. 0: the address of the
        connection itself.""",
    )
    terms_url = Unicode("", config=True, help="Link to the terms of use shown on the sign-up form (none when empty).")
    privacy_url = Unicode(
        "", config=True, help="Link to the privacy policy shown on the sign-up form (none when empty)."
    )
    signup_domain = Unicode(admin.DEFAULT, config=True, help="The domain users who sign up belong to.")
    signup_group = Unicode(
        admin.DEFAULT, config=True, help="The group (project) in that domain users who sign up join."
    )
    signup_policy = Unicode(
        admin.DEFAULT, config=True, help="The keypair resource policy of the keypair made for users who sign up."
    )

    max_failed_logins = Integer(
        10,
        config=True,
        help="""Failed logins (per account, and per client address) that lock it for lockout_seconds.
        An account is one lock whether it is named by e-mail address or user name; password
        reset requests count per address and per e-mail address the same way.""",
    )
    free_failed_logins = Integer(
        3,
        config=True,
        help="""Failed logins (per account and per client address) answered without delay; later
        ones are slowed, from 0.5 s doubling up to ``max_login_delay``.""",
    )
    failed_login_window = Float(
        900.0,
        config=True,
        help="Seconds over which failed logins are counted (a failure older than this is forgotten).",
    )
    lockout_seconds = Float(
        900.0, config=True, help="Seconds an account or address stays locked after ``max_failed_logins``."
    )
    max_login_delay = Float(
        8.0, config=True, help="Upper bound, in seconds, of the delay added to slowed logins (0.5 s doubling)."
    )

    mailer = Instance(Mailer)

    @default("mailer")
    def _default_mailer(self):
        return Mailer(parent=self)

    throttle = Instance(LoginThrottle)

    @default("throttle")
    def _default_throttle(self):
        return LoginThrottle(
            max_failures=self.max_failed_logins,
            free_failures=self.free_failed_logins,
            window=self.failed_login_window,
            lockout=self.lockout_seconds,
            max_delay=self.max_login_delay,
        )

    @default("auth_refresh_age")
    def _default_auth_refresh_age(self):
        # A demoted or deactivated user keeps their hub rights at most this long (refresh_user).
        return 60

    _link_base: str | None = None

    # --- database ------------------------------------------------------------------------

    @property
    def database(self) -> Database:
        """The process's handle on ``db_url`` (the spawners share it)."""
        return Database.shared(self.db_url)

    async def run_db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(db, *args)`` in one transaction on a worker thread (argon2 and SQL block)."""
        return await self.database.run(fn, *args)

    # --- login ---------------------------------------------------------------------------

    async def authenticate(self, handler, data):
        name = (data.get("username") or "").strip().lower()
        password = data.get("password") or ""
        if not name or not password:
            return None
        address = self.client_address(handler)
        keys = [await self.run_db(admin.login_throttle_key, name), f"address:{address}"]
        verdict = self.throttle.check(keys, time.monotonic())
        if not verdict.allowed:
            self.log.warning("Login refused for %s: %s is locked", name, verdict.key)
            raise web.HTTPError(429, f"Too many failed logins. Try again in {math.ceil(verdict.retry_after)} seconds.")
        if verdict.delay:
            await asyncio.sleep(verdict.delay)
        result = await self.run_db(_check_login, name, password)
        if result is None:
            self.throttle.failed(keys, time.monotonic())
            self.log.info("Failed login for %s from %s", name, address)
            return None
        self.throttle.succeeded(keys[0])
        if isinstance(result, str):
            raise web.HTTPError(403, result)
        return result

    def client_address(self, handler) -> str:
        """The client's address as the trusted proxies saw it (see ``trusted_proxy_count``)."""
        return request_address(handler.request, self.trusted_proxy_count)

    async def refresh_user(self, user, handler=None):
        """Read the account's role and status again (every ``auth_refresh_age`` seconds).

        Deactivated or gone: False, which logs out a browser; where the hub cannot force a new
        login (API tokens, another user's request) the admin right is taken away at least. A
        superadmin demoted since login: no longer a hub admin.
        """
        standing = await self.run_db(_standing, user.name)
        if standing is None:
            # JupyterHub's own reading of these attributes (set for token-authenticated requests).
            cookie_of_user = (
                handler is not None
                and not getattr(handler, "_token_authenticated", False)
                and getattr(handler, "_jupyterhub_user", None) is user
            )
            if cookie_of_user or not user.admin:
                return False
            return {"admin": False}
        if standing == user.admin:
            return True
        self.log.info("%s is %s a superadmin now", user.name, "" if standing else "no longer")
        return {"admin": standing}

    async def pre_spawn_start(self, user, spawner):
        """No session before a required password change, nor for an account deactivated since login."""
        problem = await self.run_db(_spawn_blocker, user.name)
        if problem:
            raise web.HTTPError(403, problem)

    def get_handlers(self, app):
        self._link_base = public_origin(self.public_url, app.public_url, app.bind_url)
        if self._link_base is None and (self.allow_password_reset or self.signup_email_verification):
            raise ValueError(
                "jupyter-backendai: links in password-reset and verification e-mail need the hub's "
                f"public URL, and none is known: set c.BackendAIAuthenticator.public_url (or ${ENV_PUBLIC_URL}) "
                "to the URL users open, like https://hub.example.org, or turn both off "
                "(c.BackendAIAuthenticator.allow_password_reset = False)"
            )
        # Lets page.html show the "Change password" link only with this authenticator. In place:
        # the tornado settings, made before the handlers, hold this very dict.
        app.template_vars.setdefault("backendai_accounts", True)
        return [
            (r"/login", BackendAILoginHandler),
            (r"/signup", SignupHandler),
            (r"/verify-email", VerifyEmailHandler),
            (r"/forgot-password", ForgotPasswordHandler),
            (r"/reset-password", ResetPasswordHandler),
            (r"/change-password", ChangePasswordHandler),
        ]

    def link(self, handler: BaseHandler, page: str, **query: str) -> str:
        if self._link_base is None:  # get_handlers refused to start without one
            raise RuntimeError("no public URL for links in e-mail")
        url = f"{self._link_base}{handler.hub.base_url}{page}"
        return f"{url}?{urlencode(query)}" if query else url


def public_origin(*candidates: str) -> str | None:
    """``scheme://host[:port]`` of the first candidate URL that names a host, or None.

    The candidates go from the most to the least explicit (the authenticator's ``public_url``,
    the hub's, its ``bind_url``); a bind address on every interface (``http://:8000``,
    ``0.0.0.0``, ``::``) is no URL anyone opens and is passed over.
    """
    for i, url in enumerate(candidates):
        if not url:
            continue
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme in ("http", "https") and host and host not in ("0.0.0.0", "::"):
            return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        if i == 0:
            raise ValueError(f"c.BackendAIAuthenticator.public_url {url!r} is not an http(s) URL with a host")
    return None


def _standing(db, username: str) -> bool | None:
    """Whether the account is a superadmin now; None when it is gone or not active."""
    user = db.scalar(select(m.User).where(m.User.username == username))
    if user is None or not user.is_active:
        return None
    return user.role == m.UserRole.SUPERADMIN


def _check_login(db, name: str, password: str) -> dict | str | None:
    """The auth model, a refusal message for a right password, or None for wrong credentials."""
    user = admin.find_login_user(db, name)
    # With no account (or one without a password) a hash is verified all the same, so that a
    # wrong name costs as long as a wrong password and timing does not tell which accounts exist.
    if not verify_password(user.password if user else None, password):
        return None
    if user.status == m.UserStatus.BEFORE_VERIFICATION:
        return "Confirm your e-mail address first: open the link in the verification e-mail we sent you."
    state = hub_auth_state(db, user)
    if isinstance(state, str):
        return state
    return {"name": user.username, "admin": user.role == m.UserRole.SUPERADMIN, "auth_state": state}


def _spawn_blocker(db, username: str) -> str | None:
    user = db.scalar(select(m.User).where(m.User.username == username))
    if user is None:
        return "This hub user has no account in the product's database."
    if not user.is_active:
        return "This account is inactive."
    if user.need_password_change:
        return "Change your password before starting a session (Account → Change password)."
    return None


# --- pages ------------------------------------------------------------------------------


class AccountPage(BaseHandler):
    """Shared by the account pages: the form rendering and the authenticator's settings."""

    @property
    def auth(self) -> BackendAIAuthenticator:
        return self.authenticator

    def page(self, template: str, status: int = 200, **ns: Any):
        from jupyterhub._xsrf_utils import _set_xsrf_cookie

        if self.request.method == "GET" and self.request.headers.get("Sec-Fetch-Mode", "navigate") == "navigate":
            _set_xsrf_cookie(self, self._xsrf_token_id, cookie_path=self.hub.base_url, xsrf_token=self.xsrf_token)
        self.set_status(status)
        ns.setdefault("errors", [])
        ns.setdefault("message", None)
        return self.render_template(template, xsrf=self.xsrf_token.decode("ascii"), authenticator=self.auth, **ns)

    def form(self, *names: str, strip: tuple[str, ...] = ()) -> dict[str, str]:
        return {n: self.get_body_argument(n, default="", strip=n in strip) for n in names}


class BackendAILoginHandler(LoginHandler):
    """The hub's login page with the sign-up / forgot-password links and the password-change detour."""

    def get_next_url(self, user=None, default=None):
        url = super().get_next_url(user, default)
        if user is not None and getattr(self, "_backendai_needs_change", False):
            return url_path_join_query(self.hub.base_url + "change-password", next=url, required="1")
        return url

    async def post(self):
        self._backendai_needs_change = False
        name = self.get_body_argument("username", default="", strip=True).lower()
        if name:
            # Decided before the hub redirects; a failed login simply never uses it.
            self._backendai_needs_change = await self.authenticator.run_db(_needs_password_change_by_login, name)
        await super().post()


def _needs_password_change_by_login(db, name: str) -> bool:
    user = admin.find_login_user(db, name)
    return bool(user and user.need_password_change)


def url_path_join_query(path: str, **query: str) -> str:
    return f"{path}?{urlencode(query)}"


class SignupHandler(AccountPage):
    def _check_enabled(self):
        if not self.auth.allow_signup:
            raise web.HTTPError(404, "Sign-up is not offered on this hub.")

    async def get(self):
        self._check_enabled()
        self.finish(await self.page("signup.html", form={}))

    async def post(self):
        self._check_enabled()
        form = self.form(
            "email",
            "username",
            "password",
            "password2",
            "invitation",
            "accept_terms",
            strip=("email", "username", "invitation"),
        )
        errors = _signup_errors(form, self.auth)
        if errors:
            self.finish(await self.page("signup.html", status=400, form=form, errors=errors))
            return
        try:
            user_id, email, token = await self.auth.run_db(_create_signup, form, self.auth)
        except (admin.AdminError, tokens.TokenError) as e:
            self.finish(await self.page("signup.html", status=400, form=form, errors=[str(e).capitalize() + "."]))
            return
        self.log.info("New account %s signed up", email)
        if token:
            link = self.auth.link(self, "verify-email", token=token)
            await self.auth.mailer.send(
                email,
                "Confirm your e-mail address",
                f"Welcome!\n\nOpen this link to confirm your address and activate your account:\n\n{link}\n\n"
                f"The link is valid for {self.auth.verification_token_lifetime // 3600} hours.\n",
            )
            message = f"Account created. We sent a confirmation link to {email}: open it to activate your account."
        else:
            message = "Account created. You can log in now."
        self.finish(await self.page("message.html", title="Sign up", message=message, login_link=True))


def _signup_errors(form: dict[str, str], auth: BackendAIAuthenticator) -> list[str]:
    errors = []
    try:
        admin.check_email(form["email"])
    except admin.AdminError:
        errors.append("Enter a valid e-mail address.")
    try:
        admin.check_username(form["username"] or "x")
        if not form["username"]:
            errors.append("Choose a user name.")
    except admin.AdminError:
        errors.append("A user name uses lower-case letters, digits, '.', '_' or '-' (up to 64).")
    errors += [f"The password needs {p}." for p in password_problems(form["password"])]
    if form["password"] != form["password2"]:
        errors.append("The two passwords differ.")
    if not form["accept_terms"]:
        errors.append("Accept the terms of use and the privacy policy to sign up.")
    if auth.signup_requires_invitation and not form["invitation"]:
        errors.append("An invitation token is required to sign up.")
    return errors


def _create_signup(db, form: dict[str, str], auth: BackendAIAuthenticator) -> tuple[str, str, str | None]:
    email = admin.check_email(form["email"])
    if auth.signup_requires_invitation:
        tokens.use_invitation(db, form["invitation"], email)
    status = "before-verification" if auth.signup_email_verification else "active"
    groups = [auth.signup_group] if auth.signup_group else []
    user, _ = admin.create_user(
        db,
        email,
        form["password"],
        username=form["username"],
        domain=auth.signup_domain,
        groups=groups,
        policy=auth.signup_policy,
        status=status,
    )
    token = None
    if auth.signup_email_verification:
        token = tokens.create_user_token(
            db, user, m.TokenPurpose.VERIFY_EMAIL, ttl=dt.timedelta(seconds=auth.verification_token_lifetime)
        )
    return str(user.id), user.email, token


class VerifyEmailHandler(AccountPage):
    async def get(self):
        token = self.get_argument("token", default="")
        try:
            email = await self.auth.run_db(_verify_email, token)
        except tokens.TokenError as e:
            self.finish(
                await self.page(
                    "message.html", status=400, title="E-mail verification", errors=[f"{str(e).capitalize()}."]
                )
            )
            return
        self.finish(
            await self.page(
                "message.html",
                title="E-mail verification",
                message=f"{email} is confirmed. You can log in now.",
                login_link=True,
            )
        )


def _verify_email(db, token: str) -> str:
    user = tokens.use_user_token(db, token, m.TokenPurpose.VERIFY_EMAIL)
    if user.status == m.UserStatus.BEFORE_VERIFICATION:
        user.status = m.UserStatus.ACTIVE
    return user.email


class ForgotPasswordHandler(AccountPage):
    def _check_enabled(self):
        if not self.auth.allow_password_reset:
            raise web.HTTPError(404, "Password reset is not offered on this hub.")

    async def get(self):
        self._check_enabled()
        self.finish(await self.page("forgot_password.html", form={}))

    async def post(self):
        self._check_enabled()
        email = self.get_body_argument("email", default="", strip=True).lower()[:254]
        keys = [f"reset:{self.auth.client_address(self)}", f"reset-email:{email}"]
        verdict = self.auth.throttle.check(keys, time.monotonic())
        if not verdict.allowed:
            raise web.HTTPError(429, f"Too many requests. Try again in {math.ceil(verdict.retry_after)} seconds.")
        # Counted like a failure: bounds how many mails one client can make the hub send, and how
        # many one mailbox can receive from many clients.
        self.auth.throttle.failed(keys, time.monotonic())
        token = await self.auth.run_db(_reset_token_for, email, self.auth.reset_token_lifetime)
        if token:
            link = self.auth.link(self, "reset-password", token=token)
            # Sent in the background: the answer takes as long whether the account exists or not.
            asyncio.ensure_future(
                self.auth.mailer.send(
                    email,
                    "Reset your password",
                    f"Someone asked to reset the password of your account.\n\nOpen this link to choose a new one:\n\n"
                    f"{link}\n\nThe link is valid for {max(1, self.auth.reset_token_lifetime // 60)} minutes and works once. "
                    "If it was not you, ignore this mail.\n",
                )
            )
        self.finish(
            await self.page(
                "message.html",
                title="Forgot password",
                message="If an account uses that address, we sent it a link to reset the password.",
                login_link=True,
            )
        )


def _reset_token_for(db, email: str, lifetime: int) -> str | None:
    user = db.scalar(select(m.User).where(m.User.email == email))
    if user is None or user.status != m.UserStatus.ACTIVE:
        return None
    return tokens.create_user_token(db, user, m.TokenPurpose.RESET_PASSWORD, ttl=dt.timedelta(seconds=lifetime))


class ResetPasswordHandler(AccountPage):
    async def get(self):
        token = self.get_argument("token", default="")
        try:
            await self.auth.run_db(lambda db: tokens.peek_user_token(db, token, m.TokenPurpose.RESET_PASSWORD))
        except tokens.TokenError as e:
            self.finish(
                await self.page("message.html", status=400, title="Reset password", errors=[f"{str(e).capitalize()}."])
            )
            return
        self.finish(await self.page("reset_password.html", token=token))

    async def post(self):
        form = self.form("token", "password", "password2")
        errors = _new_password_errors(form["password"], form["password2"])
        if errors:
            self.finish(await self.page("reset_password.html", status=400, token=form["token"], errors=errors))
            return
        try:
            await self.auth.run_db(_reset_password, form["token"], form["password"])
        except tokens.TokenError as e:
            self.finish(
                await self.page("message.html", status=400, title="Reset password", errors=[f"{str(e).capitalize()}."])
            )
            return
        self.finish(
            await self.page(
                "message.html",
                title="Reset password",
                message="Your password is changed. Log in with the new one.",
                login_link=True,
            )
        )


def _new_password_errors(password: str, again: str) -> list[str]:
    errors = [f"The new password needs {p}." for p in password_problems(password)]
    if password != again:
        errors.append("The two new passwords differ.")
    return errors


def _reset_password(db, token: str, password: str) -> None:
    user = tokens.use_user_token(db, token, m.TokenPurpose.RESET_PASSWORD)
    user.password = hash_password(password)
    user.need_password_change = False


class ChangePasswordHandler(AccountPage):
    @web.authenticated
    async def get(self):
        required = self.get_argument("required", default="") == "1"
        next_url = local_next_url(self.get_argument("next", ""), self.base_url)
        self.finish(await self.page("change_password.html", required=required, next_url=next_url))

    @web.authenticated
    async def post(self):
        form = self.form("current", "password", "password2")
        next_url = self.get_argument("next", default="")
        errors = _new_password_errors(form["password"], form["password2"])
        if not errors and form["password"] == form["current"]:
            errors.append("Choose a new password different from the current one.")
        if not errors:
            problem = await self.auth.run_db(
                _change_password, self.current_user.name, form["current"], form["password"]
            )
            if problem:
                errors.append(problem)
        if errors:
            self.finish(
                await self.page("change_password.html", status=400, errors=errors, required=False, next_url=next_url)
            )
            return
        self.log.info("%s changed their password", self.current_user.name)
        target = local_next_url(next_url, self.base_url)
        self.finish(
            await self.page(
                "message.html",
                title="Change password",
                message="Your password is changed.",
                continue_url=target or self.hub.base_url + "home",
            )
        )


def local_next_url(url: str, base_url: str) -> str:
    r"""``url`` when it is a path on this hub (under ``base_url``), else ''.

    Refuses what a browser would take to another site: a scheme or host (``https://x``,
    ``//x``), a backslash (``/\x`` is ``//x`` to browsers) and control characters (browsers drop
    tabs and newlines, so ``/\t/x`` is ``//x`` too).
    """
    if not url or "\\" in url or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return ""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith("//") or not parts.path.startswith(base_url):
        return ""
    return url


def _change_password(db, username: str, current: str, new: str) -> str | None:
    user = db.scalar(select(m.User).where(m.User.username == username))
    if user is None:
        return "This hub user has no account in the product's database."
    if not verify_password(user.password, current):
        return "The current password is wrong."
    user.password = hash_password(new)
    user.need_password_change = False
    return None
