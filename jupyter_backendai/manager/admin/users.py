"""``/admin/users``: accounts; a domain admin manages their own domain's, never a superadmin's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ...db import admin, views
from ...db import models as m
from ..base import APIError
from .common import AdminHandler, check_user_reach, pick, reject_unknown

USER_CREATE = {
    "email": str,
    "password": str,
    "username": str,
    "role": str,
    "domain": str,
    "groups": list,
    "policy": str,
    "full_name": str,
    "description": str,
    "need_password_change": bool,
    "status": str,
}
USER_UPDATE = {
    "username": str,
    "password": str,
    "role": str,
    "status": str,
    "full_name": str,
    "description": str,
    "need_password_change": bool,
}


class UsersHandler(AdminHandler):
    async def get(self):
        status = self.get_query_argument("status", "active")
        if status not in ("active", "inactive", "all"):
            raise APIError(400, f"'status' must be active, inactive or all, not {status!r}")
        domain = self.domain_scope(self.get_query_argument("domain", None))

        def run(db: DB) -> list[dict[str, Any]]:
            query = select(m.User).order_by(m.User.email)
            if domain is not None:
                query = query.where(m.User.domain_name == domain)
            if status == "active":
                query = query.where(m.User.status == m.UserStatus.ACTIVE)
            elif status == "inactive":
                query = query.where(m.User.status != m.UserStatus.ACTIVE)
            return [views.user_view(u) for u in db.scalars(query)]

        self.send({"users": await self.run_db(run)})

    async def post(self):
        data = self.json_body()
        reject_unknown(data, set(USER_CREATE))
        fields = pick(data, USER_CREATE)
        if "email" not in fields or "password" not in fields:
            raise APIError(400, "'email' and 'password' are required")
        fields.setdefault("domain", self.me.domain if not self.me.is_superadmin else admin.DEFAULT)
        self.require_admin(fields["domain"])
        if fields.get("role") == m.UserRole.SUPERADMIN.value and not self.me.is_superadmin:
            raise APIError(403, "only a superadmin may create a superadmin")
        email, password = fields.pop("email"), fields.pop("password")

        def run(db: DB) -> dict[str, Any]:
            user, keypair = admin.create_user(db, email, password, **fields)
            # The secret key is shown this once; afterwards only the access key is listed.
            return {"user": views.user_view(user), "keypair": views.keypair_view(keypair, with_secret=True)}

        self.send(await self.run_db(run), status=201)


class UserHandler(AdminHandler):
    def _user(self, db: DB, key: str) -> m.User:
        user = admin.get_user(db, key)
        check_user_reach(self.me, user)
        return user

    async def get(self, key: str):
        def run(db: DB) -> dict[str, Any]:
            user = self._user(db, key)
            view = views.user_view(user)
            view["keypairs"] = [views.keypair_view(k) for k in user.keypairs]
            return view

        self.send(await self.run_db(run))

    async def patch(self, key: str):
        data = self.json_body()
        reject_unknown(data, set(USER_UPDATE))
        fields = pick(data, USER_UPDATE)
        if fields.get("role") == m.UserRole.SUPERADMIN.value and not self.me.is_superadmin:
            raise APIError(403, "only a superadmin may make a user superadmin")

        def run(db: DB) -> dict[str, Any]:
            user = self._user(db, key)
            if user.id == self.me.user_id and (
                fields.get("status", "active") != "active" or fields.get("role", user.role.value) != user.role.value
            ):
                raise APIError(409, "you cannot deactivate yourself or change your own role; ask another admin")
            return views.user_view(admin.update_user(db, user, **fields))

        self.send(await self.run_db(run))

    async def delete(self, key: str):
        def run(db: DB) -> dict[str, Any]:
            user = self._user(db, key)
            if user.id == self.me.user_id:
                raise APIError(409, "you cannot deactivate yourself; ask another admin")
            return views.user_view(admin.deactivate_user(db, user))

        self.send(await self.run_db(run))


handlers = [
    (r"/admin/users/?", UsersHandler),
    (r"/admin/users/([^/]+)", UserHandler),
]
