"""Row writing that records before and after images of every projection row it touches.

Inserts are buffered per table and written with the driver's ``executemany`` (bulk import
speed). Reads see the buffered rows without writing them first: :meth:`RowWriter.get` looks a
key up in the buffer, :meth:`RowWriter.select` by ``person_key`` or ``household_key`` adds the
buffered matches to the database's answer. Updates and deletes flush first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Boolean, Connection, Table, delete, update

from cutru.journal.entry import Change, Row
from cutru.store.bulk import insert_many
from cutru.store.schema import PROJECTION_BY_NAME

#: Columns by which buffered rows are indexed, so reads by them need no flush.
INDEXED = ("person_key", "household_key")


@dataclass(frozen=True)
class Layout:
    """A table's columns in schema order and how rows of it are built and read."""

    names: tuple[str, ...]
    columns: frozenset[str]
    template: Row  # every column with its default, in schema order
    values: Callable[[Row], tuple[Any, ...]]  # a row's values in column order
    booleans: tuple[int, ...]  # positions of boolean columns (SQLite returns 0/1)


@cache
def layout(table_name: str) -> Layout:
    table = PROJECTION_BY_NAME[table_name]
    names = tuple(str(c.name) for c in table.c)  # plain str: quoted_name is a subclass
    defaults = tuple(
        getattr(c.default, "arg", None) if getattr(c.default, "is_scalar", False) else None
        for c in table.c
    )
    booleans = tuple(i for i, c in enumerate(table.c) if isinstance(c.type, Boolean))
    return Layout(names, frozenset(names), dict(zip(names, defaults, strict=True)),
                  itemgetter(*names), booleans)


def complete_row(table: Table, values: dict[str, Any]) -> Row:
    """All columns of ``table`` in schema order; missing ones get their default or None."""
    lay = layout(table.name)
    if not values.keys() <= lay.columns:
        unknown = sorted(set(values) - lay.columns)
        raise KeyError(f"{table.name} has no column(s) {unknown}")
    row = lay.template.copy()  # keys keep the template's order: the schema's
    row.update(values)
    return row


class RowWriter:
    """Writes projection rows on one connection and keeps the list of changes made."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.changes: list[Change] = []
        self._pending: dict[str, dict[str, Row]] = {}
        self._index: dict[tuple[str, str, Any], list[Row]] = {}
        self._mark = "?" if conn.dialect.name == "sqlite" else "%s"

    def _query(self, table: str, where: dict[str, Any]) -> list[Row]:
        """``SELECT *`` by equality on the driver's cursor: the hot read of every operation
        (SQLAlchemy's statement machinery costs several times the query itself)."""
        lay = layout(table)
        cond = " AND ".join(f"{c} = {self._mark}" for c in where)
        sql = f"SELECT {', '.join(lay.names)} FROM {table} WHERE {cond}"
        cur = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute(sql, tuple(where.values()))
            fetched = cur.fetchall()
        finally:
            cur.close()
        rows = []
        for values in fetched:
            row = dict(zip(lay.names, values, strict=True))
            for i in lay.booleans:
                name = lay.names[i]
                if row[name] is not None:
                    row[name] = bool(row[name])
            rows.append(row)
        return rows

    def flush(self) -> None:
        for name, rows in self._pending.items():
            if rows:
                lay = layout(name)
                # in key order: each page of the key's B-tree is visited once per batch
                # rather than once per row (keys are random)
                insert_many(self.conn, name, lay.names,
                            [lay.values(rows[k]) for k in sorted(rows)])
        self._pending.clear()
        self._index.clear()

    def _buffer(self, table: str, row: Row) -> None:
        self._pending.setdefault(table, {})[row["key"]] = row
        for col in INDEXED:
            value = row.get(col)
            if value is not None:
                self._index.setdefault((table, col, value), []).append(row)

    def get(self, table: Table, key: str) -> Row | None:
        buffered = self._pending.get(table.name, {}).get(key)
        if buffered is not None:
            return dict(buffered)
        found = self._query(table.name, {"key": key})
        return found[0] if found else None

    def select(self, table: Table, **where: Any) -> list[Row]:
        """Rows matching every ``column == value``, buffered ones included, ordered by key."""
        indexed = next((c for c in INDEXED if c in where), None)
        if indexed is None:
            self.flush()
        rows = self._query(table.name, where)
        if indexed is not None:
            rows += [dict(r) for r in self._index.get((table.name, indexed, where[indexed]), [])
                     if all(r.get(c) == v for c, v in where.items())]
        rows.sort(key=lambda r: str(r["key"]))
        return rows

    def insert(self, table: Table, values: dict[str, Any], *,
               encoded: bytes | None = None) -> Row:
        """Buffer a new row. ``encoded``, when given, is the canonical encoding of
        ``values``, which then already has every column of ``table`` as :func:`complete_row`
        gives them (both made ahead in a helper process by a bulk import): the row is taken
        as it is, and the change keeps those bytes as its after-image's instead of encoding
        again."""
        row = values if encoded is not None else complete_row(table, values)
        self._buffer(table.name, row)
        change = Change(str(table.name), row["key"], None, row)
        if encoded is not None:
            change.__dict__["after_bytes"] = encoded  # what Change.after_bytes would compute
        self.changes.append(change)
        return row

    def update(self, table: Table, key: str, **values: Any) -> Row:
        self.flush()
        before = self.get(table, key)
        if before is None:
            raise LookupError(f"{table.name} row {key} does not exist")
        after = {**before, **values}
        if after != before:
            self.conn.execute(update(table).where(table.c.key == key).values(**values))
            self.changes.append(Change(str(table.name), key, before, after))
        return after

    def delete(self, table: Table, key: str) -> Row:
        self.flush()
        before = self.get(table, key)
        if before is None:
            raise LookupError(f"{table.name} row {key} does not exist")
        self.conn.execute(delete(table).where(table.c.key == key))
        self.changes.append(Change(str(table.name), key, before, None))
        return before

    def apply(self, change: Change) -> None:
        """Apply a change from the journal as it is (rebuild). An insert is buffered without
        the index :meth:`select` reads buffered rows by: nothing reads while rebuilding."""
        table = PROJECTION_BY_NAME[change.table]
        if change.before is None and change.after is not None:
            pending = self._pending.setdefault(table.name, {})
            pending[change.key] = change.after
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


def row_values(table_name: str, row: Row) -> tuple[Any, ...]:
    """``row``'s values in :func:`layout` order; a column the row lacks (one added since
    the row image was written) is None."""
    try:
        return layout(table_name).values(row)
    except KeyError:
        return tuple(row.get(n) for n in layout(table_name).names)


#: A change as a replay applies it: ``(table, key, whether the row existed before, what it
#: is after)``, the last being the row's values in :func:`layout` order when it was
#: inserted, None when it was deleted, or ``{position: new value}`` of the columns an update
#: changed (a replay needs no more, and a helper process sends no more).
Delta = tuple[str, str, bool, tuple[Any, ...] | dict[int, Any] | None]


def delta(table: str, key: str, before: Row | None, after: Row | None) -> Delta:
    """The :data:`Delta` of a change from its before and after images."""
    if after is None:
        return table, key, before is not None, None
    new = row_values(table, after)
    if before is None:
        return table, key, False, new
    old = row_values(table, before)
    return table, key, True, {i: y for i, (x, y) in enumerate(zip(old, new, strict=True))
                              if x != y or type(x) is not type(y)}


class NetChanges:
    """What a stretch of journal does to the rows it touches, as one step per row: whether
    the row existed before the stretch, and what it is after it (as in :data:`Delta`).
    Replaying archived entries adds their deltas in order, then :meth:`apply` writes the
    result at once. A delta that cannot follow the one before (an update of a row the
    stretch deleted) is kept as it is: the state digest checked after the replay refuses
    what it makes."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[Any]] = {}

    def add(self, d: Delta) -> None:
        k = (d[0], d[1])
        had = self.rows.get(k)
        now = d[3]
        if had is None:
            self.rows[k] = [d[2], now]
        elif isinstance(now, dict) and isinstance(had[1], tuple):
            values = list(had[1])
            for i, v in now.items():
                values[i] = v
            had[1] = tuple(values)
        elif isinstance(now, dict) and isinstance(had[1], dict):
            had[1].update(now)
        else:
            had[1] = now

    def apply(self, conn: Connection, chunk: int = 500) -> None:
        """Rows that appear are inserted, rows that go are deleted, and rows that stay get
        an ``UPDATE`` of the columns that changed and of those only: SQLite writes a
        38-column ``persons`` row back in about 30 µs whichever way it is given whole
        (upsert, ``REPLACE``, ``UPDATE`` of every column) and changes one column of it in
        about 10 µs. Rows that changed the same columns share one ``executemany``, in key
        order (the key index is walked once)."""
        mark = "?" if conn.dialect.name == "sqlite" else "%s"
        by_table: dict[str, list[tuple[str, bool, Any]]] = {}
        for (table, key), (existed, now) in self.rows.items():
            by_table.setdefault(table, []).append((key, existed, now))
        for table, items in by_table.items():
            items.sort(key=lambda item: item[0])
            lay = layout(table)
            gone = [k for k, existed, now in items if existed and now is None]
            for i in range(0, len(gone), chunk):
                part = gone[i:i + chunk]
                conn.exec_driver_sql(
                    f"DELETE FROM {table} WHERE key IN ({', '.join(mark for _ in part)})",
                    tuple(part))
            insert_many(conn, table, lay.names, [now for _, existed, now in items
                                                 if not existed and isinstance(now, tuple)])
            every = tuple(i for i, n in enumerate(lay.names) if n != "key")
            updates: dict[tuple[int, ...], list[tuple[Any, ...]]] = {}
            for key, existed, now in items:
                if not existed or now is None:
                    continue
                if isinstance(now, tuple):  # deleted and inserted again: every column
                    updates.setdefault(every, []).append((*(now[i] for i in every), key))
                elif now:
                    cols = tuple(sorted(now))
                    updates.setdefault(cols, []).append((*(now[i] for i in cols), key))
            for cols, rows in updates.items():
                sets = ", ".join(f"{lay.names[i]} = {mark}" for i in cols)
                conn.exec_driver_sql(f"UPDATE {table} SET {sets} WHERE key = {mark}", rows)
