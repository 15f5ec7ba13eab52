"""Deferred secondary indexes for bulk loads (cutru.store.bulk), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from cutru.errors import CutruError
from cutru.services.registry import Registry
from cutru.store import bulk
from cutru.store.schema import PROJECTION, persons
from tests.helpers import projection_indexes

TABLES = [t.name for t in PROJECTION]


def test_indexes_come_back_as_they_were(registry: Registry) -> None:
    registry.init()
    before = projection_indexes(registry)
    assert before["persons"], "the schema indexes persons"
    with registry.db.begin() as conn, bulk.deferred_indexes(conn, TABLES):
        assert not inspect(conn).get_indexes("persons")  # dropped while loading
    assert projection_indexes(registry) == before


def test_a_duplicate_in_a_unique_index_fails_the_load_and_rolls_it_back(
        registry: Registry) -> None:
    registry.init()
    before = projection_indexes(registry)
    row = {"key": "p1", "full_name": "Nguyễn Văn A", "birth_date": "1990-01-01",
           "birth_year": 1990, "sex": "male", "secret_label": False, "id_number_bidx": "dup"}
    # the driver's IntegrityError, whatever the engine
    with pytest.raises(Exception) as info, registry.db.begin() as conn, \
            bulk.deferred_indexes(conn, TABLES):
        conn.execute(insert(persons), [row, {**row, "key": "p2"}])
    assert not isinstance(info.value, CutruError)
    assert "unique" in str(info.value).lower()
    assert projection_indexes(registry) == before
    with registry.db.read() as conn:
        assert conn.execute(persons.select()).first() is None


def test_insert_many_writes_rows_exactly(registry: Registry) -> None:
    # COPY's text format escapes tabs, newlines and backslashes; the values come back as given
    registry.init()
    names = ("key", "full_name", "birth_date", "birth_year", "sex", "secret_label",
             "occupation")
    rows = [("p1", "Nguyễn\tVăn\nA \\N", "1990-01-01", 1990, "male", True, None),
            ("p2", "Trần Thị B", "1991", 1991, "female", False, "\\.")]
    with registry.db.begin() as conn:
        bulk.insert_many(conn, "persons", names, rows)
        bulk.insert_many(conn, "persons", names, [])
    with registry.db.read() as conn:
        got = [tuple(r) for r in conn.execute(
            select(*(persons.c[n] for n in names)).order_by(persons.c.key))]
    assert got == rows


def test_insert_many_raises_sqlalchemys_integrity_error_and_writes_nothing(
        registry: Registry) -> None:
    registry.init()
    names = ("key", "full_name", "birth_date", "birth_year", "sex", "secret_label")
    row = ("p1", "Nguyễn Văn A", "1990-01-01", 1990, "male", False)
    with pytest.raises(IntegrityError), registry.db.begin() as conn:
        bulk.insert_many(conn, "persons", names, [row, ("p0", *row[1:]), row])
    with registry.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(persons)).scalar_one() == 0
