"""Reading the projection as row images: the one place both verification (recovery) and
backup (snapshots, restore) compute the state digest from the live tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection, Table, select

from cutru.journal import canonical
from cutru.journal.lthash import LtHash, row_element
from cutru.store.rows import layout
from cutru.store.schema import PROJECTION

ROW_BATCH = 5000  # rows per query (keyset pagination by key)


def table_rows(conn: Connection, table: Table, batch: int = ROW_BATCH
               ) -> Iterator[dict[str, Any]]:
    """Row images of ``table`` in key order, read ``batch`` rows at a time (keyset paging,
    so each query walks the primary key index)."""
    names = layout(table.name).names  # plain str keys, in schema order
    last: str | None = None
    while True:
        stmt = select(table).order_by(table.c.key).limit(batch)
        if last is not None:
            stmt = stmt.where(table.c.key > last)
        rows = conn.execute(stmt).all()
        for row in rows:
            yield dict(zip(names, row, strict=True))
        if len(rows) < batch:
            return
        last = str(rows[-1][0])


def iter_projection_rows(conn: Connection) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(table, key, row image) of every projection row, table by table in key order."""
    for table in PROJECTION:
        for row in table_rows(conn, table):
            yield table.name, row["key"], row


def projection_state(conn: Connection, progress: Callable[[int], None] | None = None
                     ) -> tuple[LtHash, int]:
    """The state digest recomputed from the live tables (not from the journal head), and
    the number of rows."""
    state, count, batch = LtHash.empty(), 0, []
    for table, key, row in iter_projection_rows(conn):
        batch.append(row_element(table, key, canonical.encode_row(row)))
        if len(batch) >= ROW_BATCH:
            state.add_many(batch)
            count += len(batch)
            if progress:
                progress(len(batch))
            batch = []
    state.add_many(batch)
    count += len(batch)
    if progress and batch:
        progress(len(batch))
    return state, count
