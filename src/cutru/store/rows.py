"""Row writing that records before and after images of every projection row it touches.

Inserts are buffered per table and written with ``executemany`` (bulk import speed); any
read, update or delete flushes them first, so callers always see their own writes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select, update

from cutru.journal.entry import Change, Row
from cutru.store.schema import PROJECTION_BY_NAME


def complete_row(table: Table, values: dict[str, Any]) -> Row:
    """All columns of ``table`` in schema order; missing ones get their default or None."""
    unknown = set(values) - set(table.c.keys())
    if unknown:
        raise KeyError(f"{table.name} has no column(s) {sorted(unknown)}")
    row: Row = {}
    for col in table.c:
        name = str(col.name)  # a plain str: SQLAlchemy's quoted_name is a subclass
        if name in values:
            row[name] = values[name]
        elif col.default is not None and getattr(col.default, "is_scalar", False):
            row[name] = col.default.arg  # type: ignore[attr-defined]
        else:
            row[name] = None
    return row


class RowWriter:
    """Writes projection rows on one connection and keeps the list of changes made."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.changes: list[Change] = []
        self._pending: dict[str, list[Row]] = {}

    def flush(self) -> None:
        for name, rows in self._pending.items():
            if rows:
                self.conn.execute(insert(PROJECTION_BY_NAME[name]), rows)
        self._pending.clear()

    def get(self, table: Table, key: str) -> Row | None:
        self.flush()
        found = self.conn.execute(select(table).where(table.c.key == key)).mappings().first()
        return dict(found) if found is not None else None

    def insert(self, table: Table, values: dict[str, Any]) -> Row:
        row = complete_row(table, values)
        self._pending.setdefault(table.name, []).append(row)
        self.changes.append(Change(table.name, row["key"], None, row))
        return row

    def update(self, table: Table, key: str, **values: Any) -> Row:
        before = self.get(table, key)
        if before is None:
            raise LookupError(f"{table.name} row {key} does not exist")
        after = {**before, **values}
        if after != before:
            self.conn.execute(update(table).where(table.c.key == key).values(**values))
            self.changes.append(Change(table.name, key, before, after))
        return after

    def delete(self, table: Table, key: str) -> Row:
        before = self.get(table, key)
        if before is None:
            raise LookupError(f"{table.name} row {key} does not exist")
        self.conn.execute(delete(table).where(table.c.key == key))
        self.changes.append(Change(table.name, key, before, None))
        return before

    def apply(self, change: Change) -> None:
        """Apply a change from the journal as it is (rebuild and compensation)."""
        table = PROJECTION_BY_NAME[change.table]
        if change.before is None and change.after is not None:
            pending = self._pending.setdefault(table.name, [])
            pending.append(dict(change.after))
            if len(pending) >= 10000:
                self.flush()
            return
        self.flush()
        if change.after is None:
            self.conn.execute(delete(table).where(table.c.key == change.key))
        else:
            self.conn.execute(
                update(table).where(table.c.key == change.key).values(**change.after)
            )
