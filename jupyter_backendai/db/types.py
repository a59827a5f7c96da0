"""Column types shared by the models: resource slots, timestamps and string enums."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, DateTime, Enum, TypeDecorator

from ..core.slots import ResourceSlots


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class SlotsType(TypeDecorator):
    """Resource slots stored as Backend.AI's JSON form (amounts as strings, exact)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, ResourceSlots):
            value = ResourceSlots.parse(value)
        return value.to_json()

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return ResourceSlots.parse(value)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value


def str_enum(cls: type[enum.Enum], name: str) -> Enum:
    """A portable enum column: values stored as text with a CHECK constraint, no native type."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )
