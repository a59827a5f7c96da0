"""Users from any authenticator: map each hub user to one db user, creating it when allowed.

With ``c.BackendAI.auto_provision = True``, a user who logs in through another JupyterHub
authenticator (OAuth, LDAP, ...) for the first time gets a db user, a keypair with the
default resource policy, and membership of the default group. Without it, only users who
already exist in the db may log in. A hub user named by an e-mail address (with '@') gets that
address as both user name and e-mail (it must be a valid, unused address). Installed as
``c.Authenticator.post_auth_hook = post_auth_hook`` (``jupyterhub_config.py`` does it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from tornado import web
from traitlets import Bool, Unicode
from traitlets.config import LoggingConfigurable

from ..db import admin, launch
from ..db import models as m
from ..db.engine import Database
from ..settings import DatabaseSettings


class BackendAI(DatabaseSettings, LoggingConfigurable):
    """Settings shared by the product's parts inside the hub (``c.BackendAI.*``)."""

    auto_provision = Bool(
        False,
        config=True,
        help="""With another authenticator (OAuth, LDAP, ...): on a user's first login, create a user
        in the product's database, a keypair with ``default_policy`` and membership of
        ``default_group`` in ``default_domain``. Off: only users already in the database may log in.""",
    )
    default_domain = Unicode(admin.DEFAULT, config=True, help="The domain auto-provisioned users belong to.")
    default_group = Unicode(
        admin.DEFAULT,
        config=True,
        help="The group (project) in ``default_domain`` auto-provisioned users join (none when empty).",
    )
    default_policy = Unicode(
        admin.DEFAULT, config=True, help="The keypair resource policy of auto-provisioned users' keypair."
    )
    email_domain = Unicode(
        "localhost",
        config=True,
        help="E-mail domain for provisioned users whose authenticator gives no address: <name>@<email_domain>.",
    )


def _email_of(name: str, authentication: dict[str, Any], settings: BackendAI) -> str:
    state = authentication.get("auth_state") or {}
    for candidate in (state.get("email"), (state.get("oauth_user") or {}).get("email"), name):
        if isinstance(candidate, str) and "@" in candidate:
            return candidate.lower()
    return f"{name}@{settings.email_domain}"


def provision(db, name: str, authentication: dict[str, Any], settings: BackendAI) -> dict[str, Any] | str | None:
    """The auth state to add, a refusal message, or None when the user is unknown and not provisioned."""
    user = db.scalar(select(m.User).where(m.User.username == name))
    if user is None:
        if not settings.auto_provision:
            return None
        groups = [settings.default_group] if settings.default_group else []
        # A hub name with '@' (authenticators that name users by e-mail address) becomes both the
        # user name and the address: user names with '@' are otherwise refused, as one could
        # shadow someone else's address at login.
        by_email = "@" in name
        user, _ = admin.create_user(
            db,
            name if by_email else _email_of(name, authentication, settings),
            None,  # no password: this user logs in through the other authenticator
            username=name,
            username_is_email=by_email,
            domain=settings.default_domain,
            groups=groups,
            policy=settings.default_policy,
        )
        settings.log.info("Provisioned db user %s (%s) for hub user %s", user.username, user.email, name)
    return hub_auth_state(db, user)


def hub_auth_state(db, user: m.User) -> dict[str, Any] | str:
    """What the hub keeps of a db user who may log in (the ``auth_state`` the spawner and the
    manager read), or why the user may not: not active, or no active keypair to act with."""
    keypair = launch.login_keypair(db, user)
    if keypair is None:
        if not user.is_active:
            return "This account is inactive. Ask an administrator to reactivate it."
        return "This account has no active keypair. Ask an administrator for one."
    return {
        "user_id": str(user.id),
        "email": user.email,
        "role": user.role.value,
        "domain": user.domain_name,
        "access_key": keypair.access_key,
    }


async def post_auth_hook(authenticator, handler, authentication):
    """JupyterHub's ``post_auth_hook``: link the hub user to its db user (or refuse the login)."""
    from .auth import BackendAIAuthenticator

    if authentication is None or isinstance(authenticator, BackendAIAuthenticator):
        return authentication  # the product's own authenticator already did all of this
    settings = BackendAI(parent=authenticator)
    name = authentication["name"]
    try:
        result = await Database.shared(settings.db_url).run(provision, name, authentication, settings)
    except admin.AdminError as e:
        result = f"Cannot create an account for {name!r}: {e}."
    if result is None:
        settings.log.warning("Refused hub user %s: no db user and c.BackendAI.auto_provision is off", name)
        raise web.HTTPError(403, "This hub has no account for you. Ask an administrator to create one.")
    if isinstance(result, str):
        raise web.HTTPError(403, result)
    authentication["auth_state"] = {**(authentication.get("auth_state") or {}), **result}
    return authentication
