"""Bulk loading: many rows in one statement, and secondary indexes built once, after the rows.

:func:`insert_many` writes a batch of rows with SQLite's ``executemany`` (one prepared
statement stepped per row, in this process) or PostgreSQL's ``COPY ... FROM STDIN`` (the
whole batch streamed as one command instead of one INSERT statement per row, the way
``pg_restore`` loads a table's data).

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

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Connection, exc, text


def insert_many(conn: Connection, table: str, columns: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (values in ``columns`` order) into ``table`` inside the caller's
    transaction. A database error is raised as SQLAlchemy's (``IntegrityError`` for a
    duplicate key, ...), whichever way the rows went."""
    if not rows:
        return
    cols = ", ".join(columns)
    if conn.dialect.name != "postgresql":  # SQLite: the sqlite3 module's qmark style
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(rows))
        return
    sql = f"COPY {table} ({cols}) FROM STDIN"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as error:
        raise exc.DBAPIError.instance(sql, None, error, psycopg.Error,
                                      dialect=conn.dialect) from error
    finally:
        cursor.close()


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
def deferred_indexes(conn: Connection, tables: Iterable[str],
                     only: Iterable[str] | None = None) -> Iterator[None]:
    """Drop the secondary indexes of ``tables`` now, create them again on leaving (not
    when the block raises: the caller's transaction rolls the drop back). With ``only``,
    just those of them named there (a name ``tables`` has no droppable index by is
    ignored)."""
    found = _indexes(conn, list(tables))
    if only is not None:
        names = set(only)
        found = [(name, ddl) for name, ddl in found if name in names]
    for name, _ddl in found:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    yield
    for _name, ddl in found:
        conn.exec_driver_sql(ddl)
