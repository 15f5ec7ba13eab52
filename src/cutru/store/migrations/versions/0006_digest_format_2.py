"""state digest format 2 (BLAKE3 expansion); the journal's actor index folded into actor+ts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 21:40:00

A journal records the state digest after every entry inside the entry's hash, so digests of
format 1 (SHAKE128 expansion, docs/design.md "State digest") cannot be rewritten into format
2. A database that already holds journal entries or signed checkpoints was written with
format 1, and this migration refuses it, naming the reason, rather than leave a registry
whose every digest fails verification. The transaction rolls back, so the database is left
exactly as it was, at revision 0005.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cutru.errors import DatabaseFormatError

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    entries = bind.execute(sa.text("SELECT count(*) FROM journal")).scalar_one()
    signed = bind.execute(sa.text("SELECT count(*) FROM checkpoints")).scalar_one()
    if entries or signed:
        raise DatabaseFormatError(
            f"this database's journal ({entries} entries, {signed} checkpoints) records state "
            "digests of format 1 (SHAKE128), written by a development build before schema "
            "0006; this build computes format 2 (BLAKE3) and cannot verify or continue it. "
            "Journal entries are immutable, so it cannot be converted: keep it with the build "
            "that wrote it, and start this build on a new data directory or database",
            field="database", rule="store.digest_format")
    with op.batch_alter_table("journal", schema=None) as batch_op:
        batch_op.drop_index("ix_journal_actor")


def downgrade() -> None:
    with op.batch_alter_table("journal", schema=None) as batch_op:
        batch_op.create_index("ix_journal_actor", ["actor"], unique=False)
