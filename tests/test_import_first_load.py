"""A large import into a registry with no person yet (a first load) builds the secondary
indexes no import read goes by once, after its rows, inside its transaction; any other import
leaves every index in place. The persons it prepares ahead come with their rows' encodings.
On SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Connection, func, inspect, select

from cutru.errors import ImportLineError
from cutru.journal.canonical import encode_row
from cutru.services import importer, people, synthetic
from cutru.services.registry import Registry
from cutru.store.bulk import deferred_indexes
from cutru.store.rows import RowWriter, complete_row
from cutru.store.schema import PROJECTION, id_numbers, persons
from tests.helpers import projection_indexes

TODAY = date(2026, 11, 27)
TABLES = [t.name for t in PROJECTION]


@pytest.fixture(scope="module")
def records() -> list[tuple[int, dict[str, Any]]]:
    found = list(enumerate(synthetic.generate(1300, seed=4, today=TODAY), start=1))
    assert len(found) >= importer.HELPER_LINES  # a large import
    return found


@pytest.fixture
def deferred(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """Each time the importer defers indexes: the names of the projection's indexes while
    deferred (read on the import's own connection)."""
    seen: list[set[str]] = []

    @contextmanager
    def watched(conn: Connection, tables: Iterable[str],
                only: Iterable[str] | None = None) -> Iterator[None]:
        with deferred_indexes(conn, tables, only):
            insp = inspect(conn)
            seen.append({i["name"] for t in TABLES for i in insp.get_indexes(t)})
            yield

    monkeypatch.setattr(importer, "deferred_indexes", watched)
    return seen


def test_only_the_named_indexes_are_deferred(registry: Registry) -> None:
    before = projection_indexes(registry)
    with registry.db.begin() as conn, deferred_indexes(conn, TABLES,
                                                       only=["ix_persons_name_year"]):
        during = {i["name"] for i in inspect(conn).get_indexes("persons")}
    assert {n for n, _c, _u in before["persons"]} - during == {"ix_persons_name_year"}
    assert projection_indexes(registry) == before


def test_a_first_load_builds_the_indexes_no_import_reads_after_its_rows(
        registry: Registry, records: list[tuple[int, dict[str, Any]]],
        deferred: list[set[str]]) -> None:
    before = projection_indexes(registry)
    every = {n for idx in before.values() for n, _c, _u in idx}
    assert set(importer.DEFERRED_INDEXES.values()) <= every  # the names are the schema's
    result = importer.import_records(registry.runner, records, actor="importer")
    assert len(deferred) == 1
    assert every - deferred[0] == set(importer.DEFERRED_INDEXES.values())
    assert projection_indexes(registry) == before  # built again, the same
    assert registry.verify().ok
    with registry.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(persons)).scalar() == \
            result.persons
    # the registry has persons now: a second large import leaves every index in place
    again = synthetic.generate(1300, seed=5, today=TODAY)
    importer.import_records(registry.runner, enumerate(again, start=1), actor="importer")
    assert len(deferred) == 1
    assert projection_indexes(registry) == before and registry.verify().ok


def test_a_rejected_first_load_leaves_the_indexes_and_writes_nothing(
        registry: Registry, records: list[tuple[int, dict[str, Any]]],
        deferred: list[set[str]]) -> None:
    before = projection_indexes(registry)
    bad = copy.deepcopy(records)
    n, last = bad[-1]
    bad[-1] = (n, {**last, "kind": "nonsense"})
    with pytest.raises(ImportLineError) as info:
        importer.import_records(registry.runner, bad, actor="importer")
    assert info.value.line == n
    assert len(deferred) == 1  # deferred, then rolled back with the rest
    assert projection_indexes(registry) == before
    with registry.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(persons)).scalar() == 0


def test_persons_prepared_ahead_carry_the_encodings_their_entries_are_sealed_with(
        registry: Registry, records: list[tuple[int, dict[str, Any]]]) -> None:
    """The helper encodes the rows it prepares; the change written keeps those bytes, and
    they are exactly what encoding the completed rows gives."""
    member = next(m["person"] for _n, r in records if r["kind"] == "household"
                  for m in r["members"] if m["person"].get("id_number"))
    person, id_row, _idn, person_bytes, id_bytes = people.prepare_person(
        registry.runner.keys, member, key="P00000000000000aa", today=TODAY, encode=True)
    assert id_row is not None and id_bytes is not None and person_bytes is not None
    assert person == complete_row(persons, person)  # every column, in the schema's order
    assert person_bytes == encode_row(person) and id_bytes == encode_row(id_row)
    plain = people.prepare_person(registry.runner.keys, member, key="P00000000000000aa",
                                  today=TODAY)
    assert plain[3:] == (None, None)
    with registry.db.begin() as conn:
        writer = RowWriter(conn)
        writer.insert(persons, person, encoded=person_bytes)
        writer.insert(id_numbers, id_row)
        given, made = writer.changes
        assert given.after_bytes is person_bytes  # kept, not encoded again
        assert made.after_bytes == id_bytes  # encoded here: the same bytes
        conn.rollback()
