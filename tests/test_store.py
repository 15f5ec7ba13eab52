"""Storage: migrations match the schema; stored entries decode to what was written."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cutru.services.registry import Registry
from cutru.store import journal_store, migrate
from cutru.store.schema import metadata
from tests.helpers import BASIS, OFFICER
from tests.test_transactions import seed_family


def test_migrations_create_exactly_the_schema(registry: Registry) -> None:
    assert migrate.current_revision(registry.db) == migrate.head_revision()
    with registry.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    registry.init()  # idempotent


def test_stored_entries_decode_to_what_was_sealed(registry: Registry) -> None:
    k = seed_family(registry)
    registry.adjust_information(OFFICER, BASIS, k["mother"], {"email": "hoa@example.vn"})
    with registry.db.read() as conn:
        entries = list(journal_store.iter_entries(conn))
        head = journal_store.read_head(conn)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert all(e.computed_hash() == e.hash for e in entries)
    assert head.seq == entries[-1].seq and head.hash == entries[-1].hash
    assert head.state.digest() == entries[-1].digest
    assert entries[-1].changes[0].after["email"] == "hoa@example.vn"  # type: ignore[index]
