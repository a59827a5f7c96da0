"""The GraphQL schema (:file:`schema.graphql`, shipped with the package) with its UUID scalar."""

from __future__ import annotations

import uuid
from importlib import resources
from typing import Any

from graphql import GraphQLError, GraphQLScalarType, build_schema

#: Backend.AI's types and fields that this manager answers (the ones its client and console ask for).
SDL = resources.files(__package__).joinpath("schema.graphql").read_text(encoding="utf-8")


def _build_schema():
    schema = build_schema(SDL)

    def uuid_value(value: Any) -> uuid.UUID:
        try:
            return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            raise GraphQLError(f"{value!r} is not a UUID") from None

    def uuid_literal(node: Any, _variables: Any = None) -> uuid.UUID:
        return uuid_value(getattr(node, "value", None))

    scalar = schema.type_map["UUID"]
    assert isinstance(scalar, GraphQLScalarType)
    scalar.serialize = str
    scalar.parse_value = uuid_value
    scalar.parse_literal = uuid_literal
    return schema


SCHEMA = _build_schema()
