"""``POST /admin/gql`` and ``/admin/graphql``: one GraphQL document per request, run in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import graphql_sync
from sqlalchemy.orm import Session as DB

from ..base import APIError, APIHandler, Identity
from . import mutations, queries
from .context import Ctx, guard
from .schema import SCHEMA

MAX_QUERY_LENGTH = 64 * 1024


def _resolvers(module: Any, prefix: str) -> dict[str, Callable[..., Any]]:
    return {
        name[len(prefix) :]: guard(fn)
        for name, fn in vars(module).items()
        if name.startswith(prefix) and callable(fn) and getattr(fn, "__module__", None) == module.__name__
    }


#: The root value: every Query and Mutation field's resolver, each behind the guard.
ROOT: dict[str, Callable[..., Any]] = {**_resolvers(queries, "q_"), **_resolvers(mutations, "m_")}


def _check_root_covers_schema() -> None:
    declared = set(SCHEMA.query_type.fields) | set(SCHEMA.mutation_type.fields)
    missing = declared - set(ROOT)
    if missing:  # pragma: no cover - a programming error caught at import
        raise RuntimeError(f"GraphQL fields without a resolver: {sorted(missing)}")


_check_root_covers_schema()


def execute(db: DB, me: Identity, store: Any, query: str, variables: dict[str, Any] | None, operation: str | None):
    """Run one GraphQL request in the caller's transaction; the answer as Backend.AI's manager gives it."""
    ctx = Ctx(db, me, store)
    result = graphql_sync(
        SCHEMA, query, root_value=ROOT, context_value=ctx, variable_values=variables, operation_name=operation
    )
    if ctx.failed or result.errors:
        db.rollback()  # a document is all or nothing, like one REST request
    answer: dict[str, Any] = {"data": result.data}
    if result.errors:
        answer["errors"] = [e.formatted for e in result.errors]
    return answer


class GQLHandler(APIHandler):
    """Backend.AI's GraphQL admin API (``{query, variables, operation_name}``); users see their own rows.

    The answer is ``{"data": ..., "errors": [...]}`` with HTTP 200, as Backend.AI's manager
    answers; an error names its reason and the field's path.
    """

    legacy = False

    async def post(self):
        data = self.json_body()
        query = data.get("query")
        if not isinstance(query, str) or not query.strip():
            raise APIError(400, "'query' (a GraphQL document) is required")
        if len(query) > MAX_QUERY_LENGTH:
            raise APIError(413, f"the GraphQL document is longer than {MAX_QUERY_LENGTH} characters")
        variables = data.get("variables")
        if variables is not None and not isinstance(variables, dict):
            raise APIError(400, "'variables' must be an object")
        operation = data.get("operation_name", data.get("operationName"))
        if operation is not None and not isinstance(operation, str):
            raise APIError(400, "'operation_name' must be a string")
        ident = self.identity
        answer = await self.run_db(execute, ident, self.store, query, variables or None, operation)
        if self.legacy:
            if answer.get("errors"):
                raise APIError(400, "GraphQL-generated error", errors=answer["errors"])
            self.send(answer["data"])
            return
        self.send(answer)


class LegacyGraphQLHandler(GQLHandler):
    """``/admin/graphql`` for clients of API versions before v6.20210815: the bare ``data``, or a 400."""

    legacy = True


handlers = [
    (r"/admin/gql/?", GQLHandler),
    (r"/admin/graphql/?", LegacyGraphQLHandler),
]
