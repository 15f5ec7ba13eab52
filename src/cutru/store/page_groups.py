"""A SQLite table's rows in groups of leaf pages, each group known by the hash of its bytes.

The quick check (:func:`cutru.store.seals.quick_state`) proves the state digest of a
registry without reading most of its rows: a signed seal says, for each group of a table's
leaf pages, the BLAKE3 hash of the group's bytes and the LtHash state of the rows stored in
them. Pages with the same bytes hold the same rows, so a group whose bytes hash as sealed
adds the sealed state; only a group whose bytes changed since is read as rows and summed.
Hashing a page costs about a microsecond, reading and summing its rows about fifty.

A group is every leaf page, in the table's b-tree order, whose first row's ``rowid`` falls
in one bucket ``[bucket * width, (bucket + 1) * width)``, with the overflow pages of its
rows. The b-tree keeps rows in ``rowid`` order, so the rows on a group's pages are exactly
those from its first page's first ``rowid`` up to the next group's: a changed group is
read back by that range. Rows appended at the end of a table change the last group or add
new ones; an update changes the group that holds the row.

The pages are listed by walking the table's b-tree (:func:`table_pages`: the pages, in the
order, that SQLite's ``dbstat`` table lists) and read from the database file itself, which
is what SQLite reads only while the write-ahead log holds no page of the reader's snapshot:
:func:`group_snapshot` takes the snapshot only then. Like :mod:`cutru.store.stored_bytes`,
this module works with the ``sqlite3`` module alone, on queries the caller writes from the
schema, so that a helper process can run it.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import blake3

from cutru.journal.lthash import LtHash, sum_rows
from cutru.store.stored_bytes import snapshot

#: Rows per group a seal aims at: 1,000,000 persons make about 1,000 groups of that table.
GROUP_ROWS = 1024
#: How long the checkpoint that empties the write-ahead log waits for other connections.
SETTLE_TIMEOUT_MS = 2000
_TABLE_LEAF, _TABLE_INTERIOR = 0x0D, 0x05
_MAX_DEPTH = 40  # SQLite's own limit on a b-tree's depth is 20


class NotGrouped(Exception):  # an internal signal, caught in this module
    """The pages cannot be grouped here (a b-tree not in ``rowid`` order, a page that is not
    a table page, a query that refused a row): the caller reads the rows the usual way."""


@dataclass(frozen=True)
class Group:
    """One group of a table's leaf pages, with the state of the rows stored in them."""

    bucket: int | None  # None: leaf pages before any row (an empty table's root)
    lo: int | None      # the first rowid on the group's first page (None: no row)
    digest: bytes       # BLAKE3 of the group's pages, leaf and overflow, in b-tree order
    rows: int
    state: bytes        # LtHash state (LtHash.to_bytes) of the rows' elements
    read: bool          # whether its rows were read here (not taken from a seal)


#: A seal's groups of one table, by bucket: ``bucket -> (digest, rows, state)``.
Sealed = Mapping[int | None, tuple[bytes, int, bytes]]


def settle_wal(path: str) -> bool:
    """Copy the write-ahead log of the SQLite file ``path`` into the file and empty it
    (``PRAGMA wal_checkpoint(TRUNCATE)``), waiting at most :data:`SETTLE_TIMEOUT_MS` for
    other connections; whether it was emptied. Call it before opening a read transaction on
    the file: the checkpoint waits for every reader."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute(f"PRAGMA busy_timeout={SETTLE_TIMEOUT_MS}")
        row = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return row is not None and row[0] == 0
    except sqlite3.Error:
        return False
    finally:
        raw.close()


@contextmanager
def group_snapshot(path: str, head_sql: str, head: int
                   ) -> Iterator[tuple[sqlite3.Connection, int] | None]:
    """A read transaction on the SQLite file ``path`` whose snapshot holds the journal head
    ``head`` and no page in the write-ahead log, with a descriptor of the file to read pages
    from; None where it cannot be had.

    A reader whose snapshot began with an empty log reads every page from the file, and no
    checkpoint writes the file while it reads (SQLite's checkpointer must first lock out such
    readers), so the file's bytes are the snapshot's for as long as the transaction lasts.
    The log's size is looked at after the snapshot began: it is empty then only if it was
    empty when the snapshot began, since only a checkpoint that waits for every reader
    truncates it.

    Only for a process with no other connection to the file (a helper process): closing
    any descriptor of a file releases every POSIX lock the process holds on it, SQLite's
    own included, so a process whose other connections hold locks must never open and
    close the file itself. The connection (:func:`cutru.store.stored_bytes.snapshot`) is
    closed before the descriptor."""
    fd = -1
    try:
        with snapshot(path, head_sql, head) as raw:
            usable = raw is not None and _in_wal_mode(raw) and _log_empty(path)
            if usable:
                fd = os.open(path, os.O_RDONLY)
            yield (raw, fd) if raw is not None and usable else None
    finally:  # after the connection: closing the descriptor would release its locks
        if fd >= 0:
            os.close(fd)


def _in_wal_mode(raw: sqlite3.Connection) -> bool:
    try:
        return str(raw.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
    except sqlite3.Error:
        return False


def _log_empty(path: str) -> bool:
    try:
        return os.stat(path + "-wal").st_size == 0
    except FileNotFoundError:
        return True


def table_groups(raw: sqlite3.Connection, fd: int, table: str, sql: str, prefix: bytes,
                 width: int, sealed: Sealed) -> list[Group]:
    """The groups of ``table`` in the snapshot of ``raw`` (see :func:`group_snapshot`),
    buckets ``width`` rowids wide: a group whose bytes hash as ``sealed`` has it takes the
    sealed rows and state, every other group's rows are read with ``sql`` (``SELECT rowid,
    key, canonical encoding FROM table``, without WHERE or ORDER BY) and summed with
    ``prefix`` (the table's :func:`~cutru.journal.lthash.table_prefix`). A read group's
    query must return as many rows as its pages hold cells, the first with the group's
    first rowid. ``NotGrouped`` where the pages or rows do not allow it."""
    out: list[Group] = []
    # the group being hashed: its bucket, first rowid, hasher and leaf pages
    bucket: int | None = None
    lo: int | None = None
    hasher: blake3.blake3 | None = None
    leaves: list[tuple[int, bytes]] = []
    for pageno, leaf, page in table_pages(raw, fd, table):
        if leaf:
            first = _first_rowid(page, table, pageno)
            if first is not None and (hasher is None or first // width != bucket):
                if hasher is not None:
                    if bucket is not None and first // width < bucket:
                        raise NotGrouped(f"the pages of {table} are not in rowid order")
                    _close_group(out, raw, sql, prefix, sealed, bucket, lo, hasher.digest(),
                                 leaves, first)
                bucket, lo, hasher, leaves = first // width, first, blake3.blake3(), []
            elif hasher is None:  # a leaf holding no row before any that does
                hasher = blake3.blake3()
            leaves.append((pageno, page))
        elif hasher is None:
            raise NotGrouped(f"an overflow page of {table} before its leaf")
        hasher.update(page)
    if hasher is not None:
        _close_group(out, raw, sql, prefix, sealed, bucket, lo, hasher.digest(), leaves, None)
    return out


def table_pages(raw: sqlite3.Connection, fd: int, table: str
                ) -> Iterator[tuple[int, bool, bytes]]:
    """``(page number, leaf?, bytes)`` of each leaf page of the rowid table ``table``, in
    b-tree order, each followed by the overflow pages of its cells in cell order, read from
    the file ``fd``: the leaf and overflow pages, in the order, that SQLite's ``dbstat``
    lists them.

    ``dbstat`` itself decodes every cell of every page it lists (grouping persons,
    households, stays and absences of 1,000,000 persons took 1.07 s with it, 0.90 s so).
    Here only the interior pages are decoded: every leaf lies at the
    depth of the leftmost one, so the leaves are known from their parents, read in runs of
    pages that follow each other in the file, and of a leaf's cells only the first bytes of
    the payload size are looked at, to find the few that spill onto overflow pages.
    ``NotGrouped`` where the pages are not such a b-tree."""
    page_size = int(raw.execute("PRAGMA page_size").fetchone()[0])
    row = raw.execute("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?",
                      (table,)).fetchone()
    if row is None or not isinstance(row[0], int) or row[0] < 1:
        raise NotGrouped(f"{table} has no b-tree of its own")
    tree = _Tree(fd, page_size)
    try:
        for start, count in _page_runs(tree.leaves(row[0])):
            data = tree.read(start, count)
            for i in range(count):
                page = data[i * page_size:(i + 1) * page_size]
                yield start + i, True, page
                yield from tree.overflow(start + i, page)
    except (IndexError, struct.error):
        raise NotGrouped(f"a page of {table} runs past its end") from None


class _Tree:
    """The b-tree pages of one SQLite file (``fd``), read and decoded for
    :func:`table_pages` (https://www.sqlite.org/fileformat2.html, "B-tree Pages")."""

    def __init__(self, fd: int, page_size: int) -> None:
        self.fd, self.page_size = fd, page_size
        header = os.pread(fd, 100, 0)
        if len(header) < 100:
            raise NotGrouped("the file has no database header")
        self.usable = page_size - header[20]  # less the bytes reserved at each page's end
        self.pages = os.fstat(fd).st_size // page_size
        # a leaf cell's payload stays on its page up to max_local bytes; one that spills
        # keeps at least min_local there (the "Cell Payload Overflow Pages" rules)
        self.max_local = self.usable - 35
        self.min_local = (self.usable - 12) * 32 // 255 - 23
        # a payload-size varint of one byte, or of two whose first is at most this, is
        # at most max_local: the cell does not spill
        self.small = 0x80 + min(0x7F, (self.max_local + 1) // 128 - 1)

    def read(self, start: int, count: int = 1) -> bytes:
        if start < 1 or start + count - 1 > self.pages:
            raise NotGrouped(f"page {start + count - 1} is beyond the end of the file")
        data = os.pread(self.fd, count * self.page_size, (start - 1) * self.page_size)
        if len(data) != count * self.page_size:
            raise NotGrouped(f"the file ends before page {start + count - 1}")
        return data

    def leaves(self, root: int) -> list[int]:
        """The leaf page numbers of the table b-tree rooted at ``root``, in order."""
        depth, pageno = 0, root
        while (page := self.read(pageno))[_at(pageno)] == _TABLE_INTERIOR:
            depth += 1  # down the leftmost path to the leaves
            pageno = self._children(pageno, page)[0]
            if depth > _MAX_DEPTH:
                raise NotGrouped("a b-tree deeper than any SQLite writes")
        level, seen = [root], {root}
        for _ in range(depth):
            below: list[int] = []
            for pageno in level:
                page = self.read(pageno)
                if page[_at(pageno)] != _TABLE_INTERIOR:
                    raise NotGrouped(f"page {pageno} is not a table interior page")
                below += self._children(pageno, page)
            if len(set(below)) != len(below) or seen.intersection(below):
                raise NotGrouped("a page is the child of two b-tree cells")
            seen.update(below)
            level = below
        return level  # each is checked to be a leaf as it is read (_first_rowid)

    def _children(self, pageno: int, page: bytes) -> list[int]:
        at = _at(pageno)
        cells = int.from_bytes(page[at + 3:at + 5], "big")
        pointers = struct.unpack_from(f">{cells}H", page, at + 12)
        return [int.from_bytes(page[p:p + 4], "big") for p in pointers] + [
            int.from_bytes(page[at + 8:at + 12], "big")]

    def overflow(self, pageno: int, page: bytes) -> Iterator[tuple[int, bool, bytes]]:
        """The overflow pages of a leaf's cells, in cell order, each chain in its order."""
        at = _at(pageno)
        if page[at] != _TABLE_LEAF:
            return  # _first_rowid refuses it
        cells = int.from_bytes(page[at + 3:at + 5], "big")
        small = self.small
        for p in struct.unpack_from(f">{cells}H", page, at + 8):
            first = page[p]
            if first < 0x80 or (first <= small and page[p + 1] < 0x80):
                continue
            size, i = _varint(page, p)
            if size <= self.max_local:
                continue
            _rowid, i = _varint(page, i)
            spill = self.min_local + (size - self.min_local) % (self.usable - 4)
            local = spill if spill <= self.max_local else self.min_local
            nxt = int.from_bytes(page[i + local:i + local + 4], "big")
            for _ in range(-(-(size - local) // (self.usable - 4))):
                data = self.read(nxt)
                yield nxt, False, data
                nxt = int.from_bytes(data[:4], "big")


def _at(pageno: int) -> int:
    """Where a b-tree page's header begins: after the file header on page 1."""
    return 100 if pageno == 1 else 0


def _page_runs(pages: list[int], most: int = 256) -> Iterator[tuple[int, int]]:
    """``(first, count)`` of each run of page numbers that follow each other in ``pages``
    (at most ``most`` a run): pages read with one read."""
    i = 0
    while i < len(pages):
        start, count = pages[i], 1
        while i + count < len(pages) and count < most and pages[i + count] == start + count:
            count += 1
        yield start, count
        i += count


def _close_group(out: list[Group], raw: sqlite3.Connection, sql: str, prefix: bytes,
                 sealed: Sealed, bucket: int | None, lo: int | None, digest: bytes,
                 leaves: list[tuple[int, bytes]], upto: int | None) -> None:
    """Append the group whose pages hash to ``digest``: sealed, or its rows read from ``lo``
    up to ``upto`` (the next group's first rowid) and checked against its pages' cells."""
    got = sealed.get(bucket)
    if got is not None and got[0] == digest:
        out.append(Group(bucket, lo, digest, got[1], got[2], False))
        return
    rowids, keys, encoded = _read_range(raw, sql, lo, upto)
    cells = sum(_cell_count(page, pageno) for pageno, page in leaves)
    if len(rowids) != cells or (rowids and rowids[0] != lo):
        raise NotGrouped("the rows read by rowid are not the cells of their pages")
    state = sum_rows(keys, encoded, prefix) if keys else LtHash.empty().to_bytes()
    out.append(Group(bucket, lo, digest, len(keys), state, True))


def _read_range(raw: sqlite3.Connection, sql: str, lo: int | None, hi: int | None
                ) -> tuple[list[int], list[str], list[bytes]]:
    """The rowids, keys and encodings of the rows whose rowid is in ``[lo, hi)`` (None: no
    bound there), in rowid order."""
    where = [f"rowid >= {int(lo)}"] if lo is not None else []
    if hi is not None:
        where.append(f"rowid < {int(hi)}")
    query = f"{sql}{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY rowid"
    try:
        rows = raw.execute(query).fetchall()
    except sqlite3.Error as exc:  # a value the encoding query refuses
        raise NotGrouped(str(exc)) from None
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def _cell_count(page: bytes, pageno: int) -> int:
    """The number of cells of a table b-tree leaf page."""
    at = 100 if pageno == 1 else 0
    return int.from_bytes(page[at + 3:at + 5], "big")


def _first_rowid(page: bytes, table: str, pageno: int) -> int | None:
    """The rowid of the first cell of a table b-tree leaf page (None: it has no cell)."""
    at = 100 if pageno == 1 else 0
    if page[at] != _TABLE_LEAF:
        raise NotGrouped(f"page {pageno} of {table} is not a table leaf page")
    if int.from_bytes(page[at + 3:at + 5], "big") == 0:
        return None
    cell = int.from_bytes(page[at + 8:at + 10], "big")
    _size, i = _varint(page, cell)
    rowid, _end = _varint(page, i)
    return rowid - (1 << 64) if rowid >= 1 << 63 else rowid


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's variable-length integer at ``at``: its value and the offset after it."""
    value = 0
    for i in range(8):
        if at + i >= len(data):
            raise NotGrouped("a cell runs past the end of its page")
        byte = data[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    if at + 8 >= len(data):
        raise NotGrouped("a cell runs past the end of its page")
    return (value << 8) | data[at + 8], at + 9


def bucket_width(raw: sqlite3.Connection, table: str, group_rows: int = GROUP_ROWS) -> int:
    """A bucket width that gives ``table``'s rows about ``group_rows`` per group."""
    lo, hi, count = raw.execute(
        f'SELECT min(rowid), max(rowid), count(*) FROM "{table}"').fetchone()
    if not count:
        return group_rows
    return max(1, (int(hi) - int(lo) + 1) * group_rows // int(count))


def table_fingerprint(raw: sqlite3.Connection, table: str, sql: str, prefix: bytes) -> str:
    """What a seal of ``table``'s groups holds only while it is unchanged: the page size,
    the text encoding, the table's definition, and the query and prefix its rows are read
    and summed with (BLAKE3, hex). The same bytes give other rows, or another sum, once
    any of these changes."""
    page_size = raw.execute("PRAGMA page_size").fetchone()[0]
    encoding = raw.execute("PRAGMA encoding").fetchone()[0]
    row = raw.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                      (table,)).fetchone()
    parts = [str(page_size), str(encoding), "" if row is None else str(row[0]), sql]
    hasher = blake3.blake3()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        hasher.update(len(data).to_bytes(8, "big") + data)
    hasher.update(prefix)
    return hasher.hexdigest()


#: What :func:`scan_groups` reads of a table: ``(table, query, prefix, seal)``, the seal
#: ``(fingerprint, width, sealed groups)`` or None.
Spec = tuple[str, str, bytes, "tuple[str, int, Sealed] | None"]


def scan_groups(path: str, head_sql: str, head: int, tables: list[Spec],
                group_rows: int = GROUP_ROWS) -> list[tuple[str, int, list[Group]]] | None:
    """For each ``(table, query, prefix, seal)`` of ``tables``, the table's fingerprint
    (:func:`table_fingerprint`), bucket width and groups (:func:`table_groups`): with the
    seal's width and groups where its fingerprint is the table's, else with a width chosen
    here (about ``group_rows`` rows per group) and every group read. On a new connection to
    the SQLite file ``path`` whose snapshot holds the journal head ``head`` and reads its
    pages from the file (:func:`group_snapshot`). None where no such snapshot could be had
    or the pages cannot be grouped. Run in a helper process (see :func:`group_snapshot`):
    a module-level function of plain values."""
    with group_snapshot(path, head_sql, head) as got:
        if got is None:
            return None
        raw, fd = got
        out: list[tuple[str, int, list[Group]]] = []
        try:
            for table, sql, prefix, seal in tables:
                fingerprint = table_fingerprint(raw, table, sql, prefix)
                if seal is not None and seal[0] == fingerprint:
                    width, sealed = seal[1], seal[2]
                else:
                    width, sealed = bucket_width(raw, table, group_rows), {}
                out.append((fingerprint, width,
                            table_groups(raw, fd, table, sql, prefix, width, sealed)))
        except (NotGrouped, sqlite3.Error):
            return None
        return out
