"""SQLite specifics: file sizes, and the peer (bare ``sqlite3`` executemany and SELECT)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

from bench_common import CHUNK, LOOKUP_COLUMN, Steps, latency, rate
from sqlalchemy import Table, create_engine
from sqlalchemy.engine import make_url

from cutru.services.registry import Registry
from cutru.store.engine import SQLITE_BULK_CACHE_MIB
from cutru.store.schema import PROJECTION, metadata

#: The PRAGMAs cutru's engine sets on the connection that imports (cutru.store.engine,
#: ``Database.begin_bulk``: its page cache is the bulk one), applied to the bare load too.
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
           f"PRAGMA cache_size=-{SQLITE_BULK_CACHE_MIB * 1024}")
PROJECTION_NAMES = frozenset(t.name for t in PROJECTION)


def db_file(reg: Registry) -> Path:
    database = make_url(reg.settings.url).database
    assert database, "not a SQLite file registry"
    return Path(database)


def _group(table: str | None) -> str:
    if table in PROJECTION_NAMES:
        return "projection"
    if table in {"journal", "journal_subjects"}:
        return str(table)
    return "other"


def file_sizes(path: Path) -> dict[str, Any]:
    """Checkpoint the WAL (TRUNCATE), then the main file, the WAL, and the bytes of each
    part (tables with their indexes) from ``dbstat`` when this SQLite has it."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        busy, _log, _done = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        main = path.stat().st_size
        wal_path = path.with_name(path.name + "-wal")
        wal = wal_path.stat().st_size if wal_path.exists() else 0
        parts: dict[str, int] | None = {}
        try:
            rows = con.execute(
                "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat AS s "
                "LEFT JOIN sqlite_master AS m ON m.name = s.name GROUP BY s.name").fetchall()
        except sqlite3.OperationalError:  # SQLite built without SQLITE_ENABLE_DBSTAT_VTAB
            parts = None
        else:
            assert parts is not None
            for table, size in rows:
                parts[_group(table)] = parts.get(_group(table), 0) + int(size)
            parts["free"] = main - sum(parts.values())
    finally:
        con.close()
    return {"main_bytes": main, "wal_bytes": wal, "total_bytes": main + wal,
            "checkpoint_busy": bool(busy), "parts": parts}


def _quoted(table: Table) -> list[str]:
    return [f'"{c.name}"' for c in table.c]


def bare_load(source: Path, target: Path, tables: Sequence[Table], *, steps: Steps,
              description: str) -> dict[str, Any]:
    """Copy ``tables`` from ``source`` into a fresh file made by ``metadata.create_all``:
    plain ``executemany`` in one transaction, same PRAGMAs as cutru. Only the inserts and the
    commit are timed; reading the source is not (it is read in chunks to bound memory)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{target}")
    metadata.create_all(engine, tables=list(tables))
    engine.dispose()
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        for pragma in PRAGMAS:
            dst.execute(pragma)
        total = sum(int(src.execute(f'SELECT COUNT(*) FROM "{t.name}"').fetchone()[0])
                    for t in tables)
        seconds = 0.0
        with steps.task(description, total) as advance:
            t0 = perf_counter()
            dst.execute("BEGIN")
            seconds += perf_counter() - t0
            for table in tables:
                cols = ", ".join(_quoted(table))
                insert = (f'INSERT INTO "{table.name}" ({cols}) '
                          f"VALUES ({', '.join('?' * len(table.c))})")
                cur = src.execute(f'SELECT {cols} FROM "{table.name}"')
                while rows := cur.fetchmany(CHUNK):
                    t0 = perf_counter()
                    dst.executemany(insert, rows)
                    seconds += perf_counter() - t0
                    advance(len(rows))
            t0 = perf_counter()
            dst.execute("COMMIT")
            seconds += perf_counter() - t0
    finally:
        src.close()
        dst.close()
    return {"seconds": seconds, "rows": total, "rows_per_s": rate(total, seconds),
            "tables": [t.name for t in tables]}


def bare_lookups(path: Path, n: int, seed: int, *, steps: Steps,
                 description: str) -> dict[str, Any]:
    """``SELECT * FROM persons WHERE <lookup column> = ?`` with the sqlite3 module for ``n``
    random persons, each timed."""
    con = sqlite3.connect(path)
    col = LOOKUP_COLUMN
    sql = f"SELECT * FROM persons WHERE {col} = ?"
    try:
        values = sorted(str(r[0]) for r in con.execute(
            f"SELECT {col} FROM persons WHERE {col} IS NOT NULL"))
        values = random.Random(seed).sample(values, min(n, len(values)))
        for value in values[:20]:
            con.execute(sql, (value,)).fetchall()
        samples: list[float] = []
        with steps.task(description, len(values)) as advance:
            for value in values:
                t0 = perf_counter()
                rows = con.execute(sql, (value,)).fetchall()
                samples.append(perf_counter() - t0)
                assert len(rows) == 1
                advance(1)
    finally:
        con.close()
    return {**latency(samples), "column": col}
