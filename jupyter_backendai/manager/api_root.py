"""``GET /``: the version, unsigned, as Backend.AI's clients expect; ``/auth/*`` account calls."""

from __future__ import annotations

import asyncio
import math
import time

from .._version import __version__
from ..core.passwords import WeakPasswordError, check_password
from ..core.signing import API_VERSION
from ..core.throttle import request_address
from ..db import admin, launch, views
from ..db import models as m
from ..db.credentials import hash_password, verify_password
from .base import APIError, APIHandler, log


class RootHandler(APIHandler):
    public = True

    def get(self):
        self.send({"version": API_VERSION, "manager": __version__})


class AuthorizeHandler(APIHandler):
    """``POST /auth/authorize`` {type: keypair, domain, username, password} → the user's keypair.

    A password check that hands out the secret key, so it is throttled like the hub's login
    (``ManagerApp.max_failed_logins`` and friends): 429 with ``Retry-After`` while locked.
    """

    public = True

    async def post(self):
        data = self.json_body()
        if data.get("type", "keypair") != "keypair":
            raise APIError(400, "only type 'keypair' is supported")
        name = str(data.get("username") or "").strip().lower()
        password = str(data.get("password") or "")
        domain = data.get("domain")
        if not name or not password:
            raise APIError(400, "username and password are required")

        # The hub's login limits: slowed, then locked per account and per client address.
        throttle = self.manager.login_throttle
        address = request_address(self.request, self.manager.trusted_proxy_count)
        keys = [await self.run_db(admin.login_throttle_key, name), f"address:{address}"]
        verdict = throttle.check(keys, time.monotonic())
        if not verdict.allowed:
            wait = max(1, math.ceil(verdict.retry_after))
            raise APIError(
                429, f"too many failed logins; try again in {wait} seconds", headers={"Retry-After": str(wait)}
            )
        if verdict.delay:
            await asyncio.sleep(verdict.delay)

        def check(db):
            user = admin.find_login_user(db, name)
            # Verifies a dummy hash when there is no such user: as slow as a wrong password.
            if not verify_password(user.password if user else None, password):
                return None
            if domain and user.domain_name != domain:
                return None
            keypair = launch.login_keypair(db, user)
            if keypair is None:
                return "inactive"
            return {
                "access_key": keypair.access_key,
                "secret_key": keypair.secret_key,
                "role": user.role.value,
                "status": user.status.value,
            }

        result = await self.run_db(check)
        if result is None:
            throttle.failed(keys, time.monotonic())
            log.info("Failed /auth/authorize for %s from %s", name, address)
            raise APIError(401, "wrong user name or password")
        throttle.succeeded(keys[0])
        if result == "inactive":
            raise APIError(403, "this account is inactive")
        self.send({"data": result})


class UpdatePasswordHandler(APIHandler):
    """``POST /auth/update-password`` {old_password, new_password, new_password2}."""

    async def post(self):
        data = self.json_body()
        old, new, again = (str(data.get(k) or "") for k in ("old_password", "new_password", "new_password2"))
        if new != again:
            raise APIError(400, "the two new passwords differ")
        try:
            check_password(new)
        except WeakPasswordError as e:
            raise APIError(400, str(e)) from None

        def change(db):
            user = db.get(m.User, self.identity.user_id)
            if not verify_password(user.password, old):
                return False
            user.password = hash_password(new)
            user.need_password_change = False
            return True

        if not await self.run_db(change):
            raise APIError(403, "the current password is wrong")
        self.send({"error_msg": ""})


class WhoAmIHandler(APIHandler):
    def get(self):
        ident = self.identity
        self.send(
            {
                "username": ident.username,
                "email": ident.email,
                "role": ident.role,
                "domain": ident.domain,
                "access_key": ident.access_key,
                "via": ident.via,
            }
        )


#: The preferred SSH port must be in this range, as the spawner only takes it from there.
SSH_PORT_RANGE = (10000, 65000)


class ProfileHandler(APIHandler):
    """``GET /auth/profile``: the caller's account, projects, keypair policy and preferences.

    What the lab's Summary and Settings need and a plain user may read about themselves: the
    project (group) names for the switcher, the limits of their main keypair's policy (the
    session count limit is not in check-presets) and the preferred SSH port.
    """

    async def get(self):
        ident = self.identity

        def read(db):
            user = db.get(m.User, ident.user_id)
            # The keypair whose policy limits the user's sessions, whichever one signed this request.
            keypair = launch.main_keypair(db, user) or db.get(m.KeyPair, ident.access_key)
            return {
                "username": user.username,
                "email": user.email,
                "full_name": user.full_name,
                "role": user.role.value,
                "domain": user.domain_name,
                "groups": sorted(g.name for g in user.groups),
                "access_key": keypair.access_key,
                "resource_policy": views.policy_view(keypair.policy),
                "preferred_ssh_port": user.preferred_ssh_port,
            }

        self.send(await self.run_db(read))

    async def patch(self):
        """``PATCH /auth/profile`` {preferred_ssh_port: 10000–65000 or null, full_name}: change one's own settings."""
        ident = self.identity
        data = self.json_body()
        unknown = sorted(set(data) - {"preferred_ssh_port", "full_name"})
        if unknown:
            raise APIError(400, f"unknown field(s): {', '.join(unknown)}; expected preferred_ssh_port, full_name")
        port = data.get("preferred_ssh_port")
        lo, hi = SSH_PORT_RANGE
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not lo <= port <= hi):
            raise APIError(400, f"the preferred SSH port must be a whole number from {lo} to {hi}, or null")
        full_name = data.get("full_name")
        if full_name is not None and (not isinstance(full_name, str) or len(full_name) > 128):
            raise APIError(400, "the full name must be a string of at most 128 characters")

        def change(db):
            user = db.get(m.User, ident.user_id)
            if "preferred_ssh_port" in data:
                user.preferred_ssh_port = port
            if full_name is not None:
                user.full_name = full_name.strip()
            return {"preferred_ssh_port": user.preferred_ssh_port, "full_name": user.full_name}

        self.send(await self.run_db(change))


handlers = [
    (r"/?", RootHandler),
    (r"/auth/authorize", AuthorizeHandler),
    (r"/auth/update-password", UpdatePasswordHandler),
    (r"/auth/whoami", WhoAmIHandler),
    (r"/auth/profile", ProfileHandler),
]
