"""Backend.AI's GraphQL endpoint (``POST /admin/gql``), which its own client and console query.

Backend.AI's client sends GraphQL for its listings and administration (``backend.ai vfolder
list``, ``admin user list|info|add|update|delete``, ``admin keypair ...``, ``admin session
list|info``, ``admin image list``, ``admin keypair-resource-policy ...``, ``admin scaling-group
...``, ``admin agent list|info``, ``admin domain ...``, ``admin group ...``, ``admin storage
...``, ``ps``). These documents are answered by a real GraphQL
executor (graphql-core) over a schema that has the fields the client asks for, with
Backend.AI's names and shapes.

* :file:`schema.graphql` — the schema; :mod:`.schema` loads it (with the UUID scalar);
* :mod:`.filter` — the ``filter``/``order``/``limit``/``offset`` mini-language of list fields (pure);
* :mod:`.context` — the request's context, refusals and the guard around every resolver;
* :mod:`.items` — rows as Backend.AI's objects;
* :mod:`.queries` and :mod:`.mutations` — ``q_<field>`` and ``m_<field>`` resolve ``<field>``;
* :mod:`.handler` — the endpoint (``handlers``), which checks at import that every field has a resolver.

Answers follow Backend.AI's manager: HTTP 200 with ``{"data": ..., "errors": [...]}``, where
each error names the reason (an unknown field, a refusal, a bad argument) and the path of the
field it belongs to. A body that is not a GraphQL request is a 400. Mutations answer
``{ok, msg}``: ``ok: false`` with the reason for input the database layer refuses.
``/admin/graphql`` (API versions before v6.20210815) answers the bare ``data`` object, or a 400
with the errors.
"""
