"""The state digest of some tables of a SQLite registry, summed in a helper process.

:func:`cutru.store.projection.projection_state` on a SQLite file has a helper process read
and sum the tables of :data:`cutru.store.projection.BESIDE` on its own connection, while
the caller reads and sums the others: reading the rows, not hashing them, was the larger
part of a full digest (9.4 s of 12.7 s for 4,414,877 rows in the reading process, the
helper that hashed its batches idle a fifth of the time). Like
:mod:`cutru.store.stored_bytes`, this works with the ``sqlite3`` module alone, on queries
the caller writes from the schema.
"""

from __future__ import annotations

import sqlite3

from cutru.journal.lthash import LtHash, sum_rows
from cutru.store.stored_bytes import json_batches, snapshot


def sum_stored(path: str, head_sql: str, head: int, tables: list[tuple[str, str, bytes]],
               batch: int) -> list[tuple[bytes, int] | None] | None:
    """For each ``(table, query, prefix)`` of ``tables`` (queries as
    :func:`~cutru.store.stored_bytes.json_batches` takes them, ``prefix`` the table's
    :func:`~cutru.journal.lthash.table_prefix`), the LtHash state of its rows' elements as
    2048 bytes and the number of rows, read on a new connection to the SQLite file ``path``
    whose snapshot holds the journal head ``head``. None where that snapshot does not (see
    :func:`~cutru.store.stored_bytes.snapshot`); a table's None where its query refused a
    row (the caller then reads that table itself, the row way)."""
    with snapshot(path, head_sql, head) as raw:
        if raw is None:
            return None
        out: list[tuple[bytes, int] | None] = []
        for _name, sql, prefix in tables:
            state, count = LtHash.empty(), 0
            try:
                for _rowid, keys, encoded in json_batches(raw, sql, batch):
                    state.combine(LtHash.from_bytes(sum_rows(keys, encoded, prefix)))
                    count += len(keys)
            except sqlite3.Error:
                out.append(None)
                continue
            out.append((state.to_bytes(), count))
        return out
