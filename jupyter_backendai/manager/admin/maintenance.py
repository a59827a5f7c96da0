"""``/admin/maintenance``: maintenance tasks."""

from __future__ import annotations

from ..api_resources import RecalculateUsageHandler as _ResourcesRecalculate


class RecalculateUsageHandler(_ResourcesRecalculate):
    """``POST /admin/maintenance/recalculate-usage`` (superadmins): ``/resource/recalculate-usage`` for everyone."""

    async def post(self):
        self.require_admin()  # a plain user hears "administrator", like on every /admin path
        self.require_superadmin()
        await super().post()


handlers = [
    (r"/admin/maintenance/recalculate-usage", RecalculateUsageHandler),
]
