"""``/admin/keypairs``: API keypairs of the users one administers; a secret is shown once, at creation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ...db import admin, views
from ...db import models as m
from ..base import APIError
from .common import AdminHandler, bool_arg, check_user_reach, pick, reject_unknown

KEYPAIR_CREATE = {
    "user": str,
    "policy": str,
    "rate_limit": int,
    "is_admin": bool,
    "access_key": str,
    "secret_key": str,
}
KEYPAIR_UPDATE = {"policy": str, "rate_limit": int, "is_active": bool, "is_admin": bool}


class KeypairsHandler(AdminHandler):
    async def get(self):
        active = bool_arg(self.get_query_argument("active", "true"), "active", allow_all=True)
        user_key = self.get_query_argument("user", None)
        domain = self.domain_scope(self.get_query_argument("domain", None))

        def run(db: DB) -> list[dict[str, Any]]:
            query = select(m.KeyPair).join(m.User).order_by(m.User.email, m.KeyPair.created_at)
            if domain is not None:
                query = query.where(m.User.domain_name == domain)
            if active is not None:
                query = query.where(m.KeyPair.is_active.is_(active))
            if user_key:
                user = admin.get_user(db, user_key)
                check_user_reach(self.me, user)
                query = query.where(m.KeyPair.user_id == user.id)
            return [views.keypair_view(k) for k in db.scalars(query)]

        self.send({"keypairs": await self.run_db(run)})

    async def post(self):
        data = self.json_body()
        reject_unknown(data, set(KEYPAIR_CREATE))
        fields = pick(data, KEYPAIR_CREATE)
        if "user" not in fields:
            raise APIError(400, "'user' (e-mail or user name) is required")
        user_key = fields.pop("user")

        def run(db: DB) -> dict[str, Any]:
            user = admin.get_user(db, user_key)
            check_user_reach(self.me, user)
            keypair = admin.create_keypair(db, user, **fields)
            return views.keypair_view(keypair, with_secret=True)

        self.send(await self.run_db(run), status=201)


class KeypairHandler(AdminHandler):
    def _keypair(self, db: DB, access_key: str) -> m.KeyPair:
        keypair = admin.get_keypair(db, access_key)
        check_user_reach(self.me, keypair.user)
        return keypair

    async def get(self, access_key: str):
        self.send(await self.run_db(lambda db: views.keypair_view(self._keypair(db, access_key))))

    async def patch(self, access_key: str):
        data = self.json_body()
        reject_unknown(data, set(KEYPAIR_UPDATE))
        fields = pick(data, KEYPAIR_UPDATE)
        if fields.get("is_active") is False and access_key == self.me.access_key:
            raise APIError(409, "this request is signed with that keypair; deactivate it from another one")

        def run(db: DB) -> dict[str, Any]:
            return views.keypair_view(admin.update_keypair(db, self._keypair(db, access_key), **fields))

        self.send(await self.run_db(run))

    async def delete(self, access_key: str):
        if access_key == self.me.access_key:
            raise APIError(409, "this request is signed with that keypair; delete it from another one")

        def run(db: DB) -> None:
            admin.delete_keypair(db, self._keypair(db, access_key))

        await self.run_db(run)
        self.send({"deleted": access_key})


handlers = [
    (r"/admin/keypairs/?", KeypairsHandler),
    (r"/admin/keypairs/([^/]+)", KeypairHandler),
]
