"""Bulk loading into a new database: secondary indexes built once, after the rows.

Inserting a million rows into a table with an index on a random-looking column (an ID
number's blind index, a journal entry's hash) walks the index B-tree at random for every
row. Building the index after the load sorts the keys once instead; both SQLite
("CREATE INDEX" sorts the table's keys) and PostgreSQL (its B-tree build) are much faster
that way, the reason ``pg_restore`` and ``sqlite3 .restore``-style loaders work in that
order. :func:`deferred_indexes` drops the indexes of the given tables that nothing but
their own DDL created (not those behind a primary key or a UNIQUE constraint), and runs
that same DDL again on leaving, inside the caller's transaction: a failure, a duplicate in
a unique index included, rolls everything back together.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text


def _indexes(conn: Connection, tables: list[str]) -> list[tuple[str, str]]:
    """(name, creating DDL) of each droppable secondary index of ``tables``."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({', '.join('?' for _ in tables)}) ORDER BY name",
            tuple(tables)).all()
    else:
        rows = conn.execute(text(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relnamespace = current_schema()::regnamespace "
            "AND t.relname = ANY(:tables) AND NOT x.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid) "
            "ORDER BY i.relname"), {"tables": tables}).all()
    return [(str(name), str(ddl)) for name, ddl in rows]


@contextmanager
def deferred_indexes(conn: Connection, tables: Iterable[str]) -> Iterator[None]:
    """Drop the secondary indexes of ``tables`` now, create them again on leaving (not
    when the block raises: the caller's transaction rolls the drop back)."""
    found = _indexes(conn, list(tables))
    for name, _ddl in found:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    yield
    for _name, ddl in found:
        conn.exec_driver_sql(ddl)
