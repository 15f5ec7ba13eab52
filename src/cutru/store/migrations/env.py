"""Alembic environment: runs on the connection cutru hands it (see cutru.store.migrate)."""

from __future__ import annotations

from alembic import context

from cutru.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - cutru always passes its own connection
    raise RuntimeError("run migrations through `cutru init` / cutru.store.migrate.upgrade")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
