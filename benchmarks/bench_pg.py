"""PostgreSQL specifics: scratch databases, sizes, and the peer (psycopg ``COPY`` and a bare
SELECT)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from time import perf_counter
from typing import Any

import psycopg
from bench_common import CHUNK, LOOKUP_COLUMN, Steps, latency, rate
from psycopg import sql
from sqlalchemy import Table, create_engine
from sqlalchemy.engine import make_url

from cutru.store.schema import PROJECTION, metadata

PROJECTION_NAMES = frozenset(t.name for t in PROJECTION)


def libpq(url: str) -> str:
    """A libpq connection string from a SQLAlchemy URL (``postgresql+psycopg://...``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(drivername="postgresql+psycopg", database=database
                             ).render_as_string(hide_password=False)


def server_version(url: str) -> str | None:
    """The server's version, or None when it cannot be reached."""
    try:
        with psycopg.connect(libpq(url), connect_timeout=5) as con:
            return str(con.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        return None


def unreachable_reason(url: str) -> str | None:
    try:
        with psycopg.connect(libpq(url), connect_timeout=5):
            return None
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


@contextmanager
def scratch_databases(admin_url: str, *suffixes: str) -> Iterator[dict[str, str]]:
    """Fresh databases ``cutru_bench_<pid>_<suffix>``, dropped afterwards; yields
    suffix -> SQLAlchemy URL."""
    names = {s: f"cutru_bench_{os.getpid()}_{s}" for s in suffixes}
    with psycopg.connect(libpq(admin_url), autocommit=True) as admin:
        for name in names.values():
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                          .format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield {s: with_database(admin_url, n) for s, n in names.items()}
        finally:
            for name in names.values():
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                              .format(sql.Identifier(name)))


def analyze(url: str) -> None:
    with psycopg.connect(libpq(url), autocommit=True) as con:
        con.execute("ANALYZE")


def sizes(url: str) -> dict[str, Any]:
    """``pg_total_relation_size`` (heap, indexes, TOAST) per part, and the database size."""
    with psycopg.connect(libpq(url)) as con:
        rows = con.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchall()
        database = con.execute("SELECT pg_database_size(current_database())").fetchone()
    parts: dict[str, int] = {}
    for name, size in rows:
        group = ("projection" if name in PROJECTION_NAMES else
                 name if name in {"journal", "journal_subjects"} else "other")
        parts[group] = parts.get(group, 0) + int(size)
    assert database is not None
    return {"total_bytes": sum(parts.values()), "database_bytes": int(database[0]),
            "parts": parts}


def bare_copy(source_url: str, target_url: str, tables: Sequence[Table], *, steps: Steps,
              description: str) -> dict[str, Any]:
    """Copy ``tables`` into a fresh database made by ``metadata.create_all``: psycopg
    ``cursor.copy`` (COPY FROM STDIN) per table, one transaction. Reading the source (a
    server-side cursor, in chunks) is not timed; writing the rows, ending each COPY and the
    commit are."""
    engine = create_engine(target_url)
    metadata.create_all(engine, tables=list(tables))
    engine.dispose()
    seconds = 0.0
    with psycopg.connect(libpq(source_url)) as src, psycopg.connect(libpq(target_url)) as dst:
        total = 0
        for t in tables:
            found = src.execute(sql.SQL("SELECT COUNT(*) FROM {}")
                                .format(sql.Identifier(t.name))).fetchone()
            assert found is not None
            total += int(found[0])
        with steps.task(description, total) as advance:
            for table in tables:
                cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.c)
                name = sql.Identifier(table.name)
                with src.cursor(name=f"bench_{table.name}") as reader, dst.cursor() as writer:
                    reader.execute(sql.SQL("SELECT {} FROM {}").format(cols, name))
                    reading = 0.0
                    t0 = perf_counter()
                    with writer.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(name, cols)
                                     ) as copy:
                        while True:
                            r0 = perf_counter()
                            rows = reader.fetchmany(CHUNK)
                            reading += perf_counter() - r0
                            if not rows:
                                break
                            for row in rows:
                                copy.write_row(row)
                            advance(len(rows))
                    seconds += perf_counter() - t0 - reading
            t0 = perf_counter()
            dst.commit()
            seconds += perf_counter() - t0
    return {"seconds": seconds, "rows": total, "rows_per_s": rate(total, seconds),
            "tables": [t.name for t in tables]}


def bare_lookups(url: str, n: int, seed: int, *, steps: Steps,
                 description: str) -> dict[str, Any]:
    """``SELECT * FROM persons WHERE <lookup column> = %s`` with psycopg for ``n`` random
    persons, each timed."""
    col = sql.Identifier(LOOKUP_COLUMN)
    query = sql.SQL("SELECT * FROM persons WHERE {} = %s").format(col)
    with psycopg.connect(libpq(url), autocommit=True) as con:
        values = sorted(str(r[0]) for r in con.execute(
            sql.SQL("SELECT {0} FROM persons WHERE {0} IS NOT NULL").format(col)))
        values = random.Random(seed).sample(values, min(n, len(values)))
        for value in values[:20]:
            con.execute(query, (value,)).fetchall()
        samples: list[float] = []
        with steps.task(description, len(values)) as advance:
            for value in values:
                t0 = perf_counter()
                rows = con.execute(query, (value,)).fetchall()
                samples.append(perf_counter() - t0)
                assert len(rows) == 1
                advance(1)
    return {**latency(samples), "column": LOOKUP_COLUMN}
