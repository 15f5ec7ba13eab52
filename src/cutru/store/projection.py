"""Reading the projection as row images: the one place both verification (recovery) and
backup (snapshots, restore) compute the state digest from the live tables.

Rows are read with the driver's own cursor (SQLAlchemy's result machinery costs more than
the query), a batch at a time by keyset paging on ``key``, and converted exactly as
SQLAlchemy's column types would: SQLite returns booleans as 0/1, which become ``bool``.
Each row's canonical encoding is the same bytes as
:func:`cutru.journal.canonical.encode_row` gives for it, written one of two ways:

* on SQLite, by the query itself (``json_object``; see "SQLite" below), which spares
  creating a Python object per column;
* otherwise by the standard library's C JSON encoder from a dict built in canonical key
  order (column names are ASCII, so code-point order is the UTF-16 order the canonical
  encoding asks for), any row with an unusual value being handed to ``encode_row`` itself.

The state digest spends much of its time in BLAKE3, which holds the GIL: with many rows,
:func:`projection_state` shares the expansions with one helper process
(:mod:`cutru.journal.helper`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Connection, Integer, Table, select

from cutru.errors import InputError, ProjectionMismatch
from cutru.journal import canonical
from cutru.journal.helper import Helper, HelperFailed, helper_process
from cutru.journal.lthash import LtHash, Summer, table_prefix
from cutru.store import stored_bytes, stored_digest
from cutru.store.engine import Database, fetch_escaping
from cutru.store.rows import layout
from cutru.store.schema import PROJECTION, PROJECTION_BY_NAME, journal_head

ROW_BATCH = 5000  # rows per query (keyset pagination by key)
#: Below this many rows the state digest is computed in one process (a helper process costs
#: about 0.1 s to start); :func:`projection_state` starts one once it has seen this many
#: (on a SQLite file, once the tables of :data:`SUMMED_BESIDE` hold half as many).
HELPER_MIN_ROWS = 40_000
#: Tables whose rows a helper process reads and sums while this one reads and sums the
#: others, on a SQLite file (:func:`projection_state`): persons, the largest rows, and the
#: tables of households, stays and absences, about half of the work. Read and summed alone
#: at 1,000,000 persons: persons 8.7 s, residences 4.2 s, ID numbers 3.8 s, household
#: members 3.0 s, households 0.9 s; so the helper's share is 9.6 s and the caller's 11.0 s
#: (with persons and ID numbers in the helper, 12.5 s against 8.1 s).
SUMMED_BESIDE = ("persons", "households", "stays", "absences")
#: The journal head's position, as a helper process reads it on its own connection.
HEAD_SEQ_SQL = str(select(journal_head.c.seq).where(journal_head.c.id == 1).compile(
    compile_kwargs={"literal_binds": True}))

#: ``submit(fn, *args) -> Future``: an executor's submit, for :class:`~cutru.journal.lthash.Summer`.
Submit = Callable[..., Future[bytes]]

_SCALARS = frozenset({str, int, bool, type(None)})
# Equal to canonical's fast encoder except that it does not sort: the dicts given to it are
# built in canonical key order already.
_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False, allow_nan=False,
                         sort_keys=False, separators=(",", ":")).encode


@dataclass(frozen=True)
class TableReader:
    """How one projection table is read and encoded on one kind of database."""

    table: str
    names: tuple[str, ...]  # columns in schema order
    first_sql: str
    next_sql: str  # with one parameter: the last key seen
    booleans: tuple[int, ...]  # positions to turn from 0/1 into bool (SQLite only)
    sorted_names: tuple[str, ...]  # columns in canonical (UTF-16 code unit) order
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]]  # a row's values in that order
    prefix: bytes  # lthash.table_prefix(table)

    def encode(self, values: tuple[Any, ...]) -> bytes:
        """The canonical encoding of a row (values in schema order)."""
        ordered = self.pick(values)
        if _SCALARS.issuperset(map(type, ordered)):
            try:
                return _JSON(dict(zip(self.sorted_names, ordered, strict=True))).encode("utf-8")
            except UnicodeEncodeError:
                pass  # a lone surrogate: the reference encoder raises the precise error
        return canonical.encode_row(dict(zip(self.names, values, strict=True)))


@cache
def reader(table_name: str, dialect: str) -> TableReader:
    lay = layout(table_name)
    names = lay.names
    if not all(n.isascii() for n in names) or "key" not in names:
        raise ValueError(f"{table_name}: projection columns must be ASCII and include key")
    mark = "?" if dialect == "sqlite" else "%s"
    cols = ", ".join(names)
    base = f"SELECT {cols} FROM {table_name}"
    order = sorted(range(len(names)), key=lambda i: names[i])
    # canonical key order for ASCII names is plain string order; itemgetter of one index
    # would return a bare value rather than a tuple
    if len(order) < 2:
        raise ValueError(f"{table_name}: a projection table has more than one column")
    return TableReader(
        table=table_name, names=names,
        first_sql=f"{base} ORDER BY key LIMIT {{n}}",
        next_sql=f"{base} WHERE key > {mark} ORDER BY key LIMIT {{n}}",
        booleans=lay.booleans if dialect == "sqlite" else (),
        sorted_names=tuple(names[i] for i in order), pick=itemgetter(*order),
        prefix=table_prefix(table_name))


def raw_rows(conn: Connection, table: Table, batch: int = ROW_BATCH
             ) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``table`` in key order as tuples in schema order, ``batch`` at a time,
    read with the driver's cursor (keyset paging, so each query walks the primary key
    index) and with booleans as ``bool``, as SQLAlchemy would give them."""
    rd = reader(table.name, conn.dialect.name)
    key_at = rd.names.index("key")
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        rows = _fetch(conn, cur, rd.first_sql.format(n=int(batch)), ())
        while True:
            if rd.booleans:
                rows = [_booleans(row, rd.booleans) for row in rows]
            if rows:
                yield rows
            if len(rows) < batch:
                return
            rows = _fetch(conn, cur, rd.next_sql.format(n=int(batch)), (str(rows[-1][key_at]),))
    finally:
        cur.close()


def _fetch(conn: Connection, cur: Any, sql: str, params: tuple[Any, ...]
           ) -> list[tuple[Any, ...]]:
    """``cur.execute(sql, params).fetchall()``, text that is not UTF-8 read as lone
    surrogates (:func:`~cutru.store.engine.fetch_escaping`): the row is then one no
    canonical encoding takes, reported as such, and the read goes on."""
    return fetch_escaping(conn, lambda: cast(list[tuple[Any, ...]],
                                             cur.execute(sql, params).fetchall()))


def _booleans(row: tuple[Any, ...], positions: tuple[int, ...]) -> tuple[Any, ...]:
    values = list(row)
    for i in positions:
        if values[i] is not None:
            values[i] = bool(values[i])
    return tuple(values)


def table_rows(conn: Connection, table: Table, batch: int = ROW_BATCH
               ) -> Iterator[dict[str, Any]]:
    """Row images of ``table`` in key order, read ``batch`` rows at a time (keyset paging,
    so each query walks the primary key index)."""
    names = layout(table.name).names  # plain str keys, in schema order
    for rows in raw_rows(conn, table, batch):
        for row in rows:
            yield dict(zip(names, row, strict=True))


def encoded_rows(conn: Connection, table: Table, batch: int = ROW_BATCH, *,
                 ordered: bool = True) -> Iterator[tuple[list[str], list[bytes]]]:
    """(keys, canonical encodings) of the rows of ``table`` in key order, a batch at a
    time, encoded here from the rows.

    ``ordered=False`` (for a caller to whom order means nothing, such as a sum of
    per-row hashes: every caller in the application): on SQLite, in the table's storage
    order (``rowid``), which reads the table front to back instead of visiting it in the
    order of its key index -- about 40% less time on 441,534 rows -- with the encodings
    written by the query itself where that gives the same bytes (:func:`_storage_order`)."""
    rd = reader(table.name, conn.dialect.name)
    if not ordered and conn.dialect.name == "sqlite":
        yield from _storage_order(conn, rd, batch)
        return
    key_at = rd.names.index("key")
    for rows in raw_rows(conn, table, batch):
        yield [row[key_at] for row in rows], _encode_all(rd, rows, key_at)


# --- SQLite: the canonical encoding written by the query -------------------------------------
#
# On 441,534 rows of 100,000 persons, json_object() in the query takes about half the time
# of fetching the values and encoding them in Python.
#
# json_object() quotes text exactly as the canonical encoding does (only '"', '\\' and
# U+0000-U+001F escaped, the last as \b \t \n \f \r or \u00xx in lower-case hex, UTF-8
# otherwise raw), writes integers in decimal and NULL as null, and keeps the order of its
# arguments, which are given in canonical key order. That is checked once per process
# against the canonical encoder (sqlite_json_ok), and every value the row path would not
# encode the same way makes the query fail, so that the batch is read again the row way
# (which then encodes it, or raises what it always raised): a REAL in an INTEGER column, a
# BLOB (json_object refuses it), a boolean column holding anything but an integer or NULL,
# invalid UTF-8 where the encoding is read as text (the driver refuses to decode it; read as
# bytes, see _storage_order, it passes into bytes no canonical encoding has), a key that is
# not text. REAL cannot reach a TEXT column: TEXT affinity stores numbers as text.


def _sqlite_json_sql(rd: TableReader) -> str:
    """SELECT key, canonical JSON of each row of the table as a BLOB."""
    lay = layout(rd.table)
    types = {c.name: c.type for c in PROJECTION_BY_NAME[rd.table].c}
    booleans = {lay.names[i] for i in lay.booleans}
    fail = "json('!')"  # malformed JSON: json() raises, and so does the query
    args = []
    for name in rd.sorted_names:
        if name in booleans:
            value = (f"CASE WHEN {name} IS NULL THEN NULL WHEN typeof({name}) = 'integer' THEN "
                     f"(CASE WHEN {name} THEN json('true') ELSE json('false') END) "
                     f"ELSE {fail} END")
        elif isinstance(types[name], Integer):
            value = f"CASE WHEN typeof({name}) = 'real' THEN {fail} ELSE {name} END"
        else:
            value = name
        args.append(f"'{name}', {value}")
    key = f"CASE WHEN typeof(key) = 'text' THEN key ELSE {fail} END"
    return f"SELECT {key}, CAST(json_object({', '.join(args)}) AS BLOB) FROM {rd.table}"


def storage_order_sql(table: str) -> str:
    """``SELECT rowid, key, canonical JSON`` of every row of the SQLite ``table``, without
    WHERE or ORDER BY, as :func:`cutru.store.stored_bytes.json_batches` takes it."""
    return _sqlite_json_sql(reader(table, "sqlite")).replace("SELECT ", "SELECT rowid, ", 1)


def _storage_order(conn: Connection, rd: TableReader, batch: int
                   ) -> Iterator[tuple[list[str], list[bytes]]]:
    """:func:`encoded_rows` of a SQLite table by ``rowid`` paging: encoded by the query
    while it can, then (from the first batch it refuses) row by row in Python.

    The query's encodings come as the bytes SQLite writes (``CAST(... AS BLOB)``), not
    decoded to strings and encoded back (about 15% of the reading process's time on
    441,534 rows). A text value that is not UTF-8 (direct SQL) then passes unchecked, into
    bytes that no canonical encoding has, as every reader of these bytes expects: a state
    digest over them differs from every one the journal records, and pinpointing, which
    compares them with the journal's images and decodes the ones that differ, reads such a
    row the plain way and names it."""
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    last = None  # the last rowid yielded
    try:
        if sqlite_json_ok(conn):
            try:
                for rowid, keys, encoded in stored_bytes.json_batches(
                        cast(sqlite3.Connection, conn.connection.dbapi_connection),
                        storage_order_sql(rd.table), batch):
                    yield keys, encoded
                    last = rowid
                return
            except sqlite3.Error:
                pass  # this batch goes the row way, from the last rowid yielded
        key_at = rd.names.index("key")
        base = f"SELECT rowid, {', '.join(rd.names)} FROM {rd.table}"
        while True:
            where = "" if last is None else f" WHERE rowid > {int(last)}"
            fetched = _fetch(conn, cur, f"{base}{where} ORDER BY rowid LIMIT {int(batch)}", ())
            rows = [tuple(r[1:]) for r in fetched]
            if rd.booleans:
                rows = [_booleans(row, rd.booleans) for row in rows]
            if rows:
                yield [row[key_at] for row in rows], _encode_all(rd, rows, key_at)
                last = fetched[-1][0]
            if len(rows) < batch:
                return
    finally:
        cur.close()


def _encode_all(rd: TableReader, rows: list[tuple[Any, ...]], key_at: int) -> list[bytes]:
    """The canonical encodings of ``rows``. A value no journal entry can hold (a REAL, a
    BLOB, text that is not Unicode: direct SQL on SQLite, whose columns take any type) has
    none, and the table cannot be at any state the journal records: ProjectionMismatch."""
    try:
        return [rd.encode(row) for row in rows]
    except InputError as exc:
        for row in rows:
            try:
                rd.encode(row)
            except InputError:
                key = row[key_at]
                raise ProjectionMismatch(
                    f"{rd.table} row {key!r} holds a value no journal entry can hold "
                    f"({exc.message}): the table was changed around the application",
                    table=rd.table, key=str(key), rule=exc.details.get("rule")) from None
        raise


_PROBE_TEXT = "".join(map(chr, range(0x80))) + "é Hà Nội \u2028\u2029\ufeff\U0001f600"
_probed: dict[str, bool] = {}


def sqlite_json_ok(conn: Connection) -> bool:
    """Whether this SQLite library's json_object() writes canonical JSON (cached)."""
    version = sqlite3.sqlite_version
    if version not in _probed:
        expected = canonical.encode({"a": _PROBE_TEXT, "b": 2**63 - 1, "c": -(2**63),
                                     "d": None, "e": True, "f": False, "g": 0})
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            got = cur.execute("SELECT json_object('a', ?, 'b', ?, 'c', ?, 'd', NULL, "
                              "'e', json('true'), 'f', json('false'), 'g', 0)",
                              (_PROBE_TEXT, 2**63 - 1, -(2**63))).fetchone()[0]
            _probed[version] = got.encode("utf-8") == expected
        except (sqlite3.Error, UnicodeError):
            _probed[version] = False
        finally:
            cur.close()
    return _probed[version]


def sqlite_file(conn: Connection) -> str | None:
    """The path of the SQLite file ``conn`` is connected to, for another connection (a
    helper process's) to open; None on another database or one in memory, which a new
    connection would not see."""
    database = conn.engine.url.database or ""
    if conn.dialect.name != "sqlite" or not database or ":memory:" in database \
            or "mode=memory" in database:
        return None
    return database


def iter_projection_rows(conn: Connection) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(table, key, row image) of every projection row, table by table in key order."""
    for table in PROJECTION:
        for row in table_rows(conn, table):
            yield table.name, row["key"], row


def projection_state(conn: Connection, progress: Callable[[int], None] | None = None, *,
                     submit: Submit | None = None, helper: bool | None = None,
                     beside: bool | Beside = False) -> tuple[LtHash, int]:
    """The state digest recomputed from the live tables (not from the journal head), and
    the number of rows.

    ``submit`` hands batches of expansions to an executor the caller runs. Otherwise, unless
    ``helper`` is False, a helper process shares the work (``helper=True``: whatever the
    size). With ``beside`` (the caller's transaction only reads: another connection sees
    what it sees), on a SQLite file whose :data:`SUMMED_BESIDE` tables hold
    :data:`HELPER_MIN_ROWS` / 2 rows, the helper reads and sums those tables itself, on its
    own connection, while this process reads and sums the others
    (:func:`cutru.store.stored_digest.sum_stored`); its snapshot must hold this one's
    journal head, else this process reads those tables too (the helper summing what it
    reads, as below). Otherwise the helper is started
    once :data:`HELPER_MIN_ROWS` rows have been read, and sums batches this process reads.
    ``beside`` may also be a :class:`Beside` already started on ``conn``. Progress is
    reported as rows are read here, and a helper's rows when it is done."""
    count = 0
    with ExitStack() as stack:
        summer = Summer(submit, inflight=8)
        if isinstance(beside, Beside):
            aside: Beside | None = beside
            if beside.future is None:  # it could not start: it sums what is read here
                summer.use(beside.pool.submit)
        else:
            aside = _beside(conn, stack, helper is True) if beside and submit is None \
                and helper is not False else None
        want_helper = submit is None and helper is not False and aside is None
        threshold = 0 if helper else HELPER_MIN_ROWS
        for table in PROJECTION:
            if aside is not None and aside.future is not None \
                    and table.name in SUMMED_BESIDE:
                continue
            for keys, encoded in encoded_rows(conn, table, ordered=False):
                if want_helper and count >= threshold:
                    want_helper = False
                    started = stack.enter_context(helper_process())
                    if started is not None:
                        summer.use(started.submit)
                count += _add(conn, summer, table, keys, encoded, progress)
        if aside is not None and aside.future is not None:
            try:
                summed = aside.future.result()
                if summed is None or None in summed:
                    summer.use(aside.pool.submit)  # it sums what is read here instead
            except (HelperFailed, sqlite3.Error):  # it died; its connection failed
                summed = None
            for name, got in zip(SUMMED_BESIDE, summed or [None] * len(SUMMED_BESIDE),
                                 strict=True):
                if got is None:  # read here: another head there, a row its query refused
                    table = PROJECTION_BY_NAME[name]
                    for keys, encoded in encoded_rows(conn, table, ordered=False):
                        count += _add(conn, summer, table, keys, encoded, progress)
                else:
                    summer.add_state(got[0])
                    count += got[1]
                    if progress:
                        progress(got[1])
        state = summer.result()
    return state, count


def _add(conn: Connection, summer: Summer, table: Table, keys: list[str],
         encoded: list[bytes], progress: Callable[[int], None] | None) -> int:
    """Add a batch of ``table``'s rows to ``summer``; the number of rows."""
    summer.add_rows(keys, encoded, reader(table.name, conn.dialect.name).prefix)
    if progress:
        progress(len(keys))
    return len(keys)


@dataclass
class Beside:
    """A helper process that reads and sums the tables of :data:`SUMMED_BESIDE` beside a
    read transaction (see :func:`projection_state`), made by :func:`helper_beside` before
    that transaction begins, so that the helper's own begins as soon as :meth:`start` is
    called: the sooner it begins, the likelier its snapshot holds the same journal head."""

    pool: Helper
    database: str
    future: Future[list[tuple[bytes, int] | None] | None] | None = None

    def start(self, conn: Connection) -> None:
        """Have the helper sum its tables at the journal head ``conn``'s snapshot holds
        (reading it begins that snapshot if nothing did)."""
        head = conn.exec_driver_sql(HEAD_SEQ_SQL).scalar()
        if head is None:
            return
        try:
            self.future = self.pool.submit(
                stored_digest.sum_stored, self.database, HEAD_SEQ_SQL, int(head),
                [(name, storage_order_sql(name), table_prefix(name))
                 for name in SUMMED_BESIDE], ROW_BATCH)
        except HelperFailed:
            self.future = None


@contextmanager
def helper_beside(db: Database) -> Iterator[Beside | None]:
    """A :class:`Beside` for a read transaction of ``db`` about to begin, where a helper
    would read tables beside it (:func:`projection_state`); else None."""
    if not db.is_sqlite:  # no transaction opened only to learn that
        yield None
        return
    with db.read() as conn:
        database = _beside_file(conn, always=False)
    if database is None:
        yield None
        return
    with helper_process() as pool:
        yield None if pool is None else Beside(pool, database)


def _beside(conn: Connection, stack: ExitStack, always: bool) -> Beside | None:
    """A :class:`Beside` started on ``conn``, its helper closed by the stack, where
    :func:`_beside_file` allows one; else None."""
    database = _beside_file(conn, always)
    if database is None:
        return None
    pool: Helper | None = stack.enter_context(helper_process())
    if pool is None:
        return None
    aside = Beside(pool, database)
    aside.start(conn)
    return aside


def _beside_file(conn: Connection, always: bool) -> str | None:
    """The SQLite file a helper would read the :data:`SUMMED_BESIDE` tables from: where
    their rows are that many (``always``: whatever their number) and the query's encodings
    are canonical; else None."""
    database = sqlite_file(conn)
    if database is None or not sqlite_json_ok(conn):
        return None
    if not always and sum(  # about their rows, without counting them
            conn.exec_driver_sql(f"SELECT max(rowid) FROM {name}").scalar() or 0
            for name in SUMMED_BESIDE) < HELPER_MIN_ROWS // 2:
        return None
    return database
