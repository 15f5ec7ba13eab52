"""What a SQLite registry's stored bytes say, read with the ``sqlite3`` module alone.

Pinpointing (:func:`cutru.recovery.integrity.pinpoint`) compares every live row with the
last after-image the journal holds for it, as bytes: the journal's images cut out of each
entry's stored changes and hashed (:func:`last_hashes`), the live rows encoded by the query
itself and hashed likewise (:func:`odd_hashed`). This
module does that part without SQLAlchemy or the schema, so that the helper process that
compares half of the tables (:func:`compare_stored`) starts in a tenth of the time: importing
the schema and SQLAlchemy took it 0.46 s of a 2.5-second pinpoint of 100,000 persons. The
caller, which holds the schema, writes the queries and reads back only the rows whose bytes
differ, to compare them as values.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import orjson

from cutru.runtime import collector_paused

#: The journal's stored changes in order, as bytes (the column is text: the cast keeps the
#: stored UTF-8 as it is, unchecked and undecoded).
LAST_IMAGES_SQL = ("SELECT seq, CAST(changes AS BLOB) FROM journal WHERE seq > ? AND seq <= ? "
                   "ORDER BY seq")
#: How the stored changes of an entry begin, how each change after the first begins, and the
#: members a change holds after its after-image (docs/design.md, "Canonical encoding": the
#: members of a change in key order, no whitespace).
_FIRST, _NEXT = b'[{"after":', b',{"after":'
_BEFORE, _KEY, _TABLE = b',"before":', b',"key":', b',"table":'
_KEY_TEXT = _KEY + b'"'

#: How a change that deletes its row begins.
_DELETES = b"null" + _BEFORE
#: ``table -> key -> (seq, stored change)``: see :func:`last_images`.
LastImages = dict[str, dict[str, tuple[int, bytes | None]]]
#: ``table -> key -> (seq, hash of the after-image)``: see :func:`last_hashes`.
LastHashes = dict[str, dict[str, tuple[int, int | None]]]
#: Rows whose bytes differ: ``(key, live encoding or None, journal image or None, seq of the
#: last entry that wrote the row or None)``; see :func:`odd_hashed`.
Odd = list[tuple[str, bytes | None, bytes | None, int | None]]


def last_images(raw: sqlite3.Connection, *, stop: int | None = None,
                only: Collection[str] | None = None, skip: Collection[str] = (),
                after: int = 0, seqs: Collection[int] | None = None) -> LastImages | None:
    """For every row the journal (up to ``stop``) ever wrote, by table then key,
    ``(seq, change)`` of the last change to it: the change as its stored bytes from its
    after-image on, ``A,"before":B,"key":K,"table":T}`` (None for a deletion), cut out of
    each entry's stored changes without parsing a row image: Python never decodes one.
    :func:`holds` tells whether a change's after-image is given bytes, :func:`after_image`
    cuts it out. ``only`` keeps the rows of those tables alone, ``skip`` drops those
    tables' rows: two processes can share the work. ``after``: only the entries after that
    position. ``seqs``: only the entries at those positions (the last change of a row among
    them is the last of all only if they hold every entry that wrote it).

    The stored changes are the canonical encoding of a list of changes, each
    ``{"after":A,"before":B,"key":K,"table":T}`` with ``A`` and ``B`` flat row objects (or
    null), whose strings escape every ``"``: the list splits at each ``,{"after":``. Only
    ``"key":K,"table":T`` is read, from the end, and must be two strings after a
    ``,"before":``; a change that ends as a kept or dropped table's canonical
    ``,"table":"name"}`` is known by that end, and one of another table is not read at
    all. None where any entry is not so (changes that are not such a list, a change that
    does not end so, the name of a kept or dropped table written with an escape): the
    caller then decodes the changes itself. A caller comparing these bytes must still treat
    a difference as "compare the values", never as proof of one.

    The journal is only ever appended to, so a reader on another connection that stops at
    the position its caller's snapshot holds reads the same entries as the caller would."""
    return cast("LastImages | None", _last(raw, stop, only, skip, after, seqs, hashed=False))


def last_hashes(raw: sqlite3.Connection, *, stop: int | None = None,
                only: Collection[str] | None = None, skip: Collection[str] = ()
                ) -> LastHashes | None:
    """:func:`last_images`, but for every row ``(seq, hash)`` of the last change to it:
    Python's ``hash`` of the bytes of its after-image, None for a deletion. A pinpointing
    of every row keeps millions of these: holding the images themselves instead (2.4 GB
    at 1,000,000 persons) took more time than reading them (26.6 s against 13.5 s to cut
    4.4 million changes). :func:`odd_hashed` compares live rows with them, and reads again
    the images of the few rows whose hashes differ (:func:`changes_at`).

    The after-image ends where the change's first ``,"before":`` begins: a flat row's
    image can hold those bytes only where a column is called ``before``, and the bytes
    before them then end within the image, never with the ``}`` that every row's encoding
    ends with, so a hash of them is never a row's."""
    return cast("LastHashes | None", _last(raw, stop, only, skip, 0, None, hashed=True))


def _last(raw: sqlite3.Connection, stop: int | None, only: Collection[str] | None,
          skip: Collection[str], after: int, seqs: Collection[int] | None, *, hashed: bool
          ) -> dict[str, dict[str, tuple[int, Any]]] | None:
    """:func:`last_images` (``hashed``: :func:`last_hashes`). The loop runs once per change
    (4.4 million at 1,000,000 persons), so the plain case is written out in it: a change
    that ends as a kept table's canonical end, whose key has no escape."""
    cur = raw.cursor()
    last: dict[str, dict[str, tuple[int, Any]]] = {}
    kept = None if only is None else frozenset(only)
    dropped = frozenset(skip)
    wanted = {table_end(t): t for t in sorted(kept or ())}  # by the end of their changes
    into: dict[bytes, dict[str, tuple[int, Any]]] = {}  # the same: the rows found so far
    ends = tuple(wanted)
    unwanted = tuple(table_end(t) for t in sorted(dropped))
    passed: tuple[bytes, ...] = unwanted  # ends of tables whose changes are passed over
    try:
        for rows in _stored_changes(cur, after, 2**63 - 1 if stop is None else stop, seqs):
            for seq, changes in rows:
                if changes == b"[]":
                    continue
                if type(changes) is not bytes or not changes.startswith(_FIRST) \
                        or not changes.endswith(b"}]"):
                    return None
                parts = changes.split(_NEXT)  # then without the list's "[{"after":" and "]"
                parts[0] = parts[0][len(_FIRST):]
                parts[-1] = parts[-1][:-1]
                for change in parts:
                    # change: A,"before":B,"key":K,"table":T}
                    if ends and change.endswith(ends):
                        end = change.rfind(_TABLE)
                        j = change.rfind(_KEY_TEXT, 0, end)
                        i = change.find(_BEFORE, 0, j) if j >= 0 else -1
                        if i < 0:
                            return None
                        plain = change[j + len(_KEY_TEXT):end - 1]
                        if change[end - 1] == 0x22 and b'"' not in plain \
                                and b"\\" not in plain:
                            key = plain.decode()
                        else:  # a key written with escapes
                            if (got := _cut(change)) is None:
                                return None
                            key = got[1]
                        tail = change[end:]
                        rows_of = into.get(tail)
                        if rows_of is None:
                            rows_of = into[tail] = last.setdefault(wanted[tail], {})
                    elif passed and change.endswith(passed):
                        continue  # a dropped table's, or another's, its name written plainly
                    else:  # a table not met before, or a name written with escapes
                        if (got := _cut(change)) is None:
                            return None
                        table, key = got[0], got[1]
                        if table in dropped or (kept is not None and table in kept):
                            return None  # a kept or dropped table's name, escaped
                        if change.endswith(end_of := table_end(table)):
                            if kept is not None:
                                passed += (end_of,)
                            else:  # every table is kept: its next changes are cut plainly
                                wanted[end_of] = table
                                ends += (end_of,)
                        if kept is not None:
                            continue
                        rows_of = last.setdefault(table, {})
                        i = change.find(_BEFORE)
                    if change.startswith(_DELETES):
                        rows_of[key] = (seq, None)
                    elif hashed:  # the after-image's bytes, hashed
                        rows_of[key] = (seq, hash(change[:i]))
                    else:
                        rows_of[key] = (seq, change)
    except (sqlite3.Error, ValueError, AttributeError):  # not JSON; not an object; not UTF-8
        return None
    finally:
        cur.close()
    return last


def _stored_changes(cur: sqlite3.Cursor, after: int, stop: int,
                    seqs: Collection[int] | None) -> Iterator[list[tuple[int, bytes]]]:
    """Batches of ``(seq, stored changes)`` of the entries after ``after`` up to ``stop``,
    in order; of those at ``seqs`` alone where it is given."""
    if seqs is None:
        cur.execute(LAST_IMAGES_SQL, (after, stop))
        while rows := cur.fetchmany(5_000):
            yield rows
        return
    ordered = sorted(s for s in set(seqs) if after < s <= stop)
    for i in range(0, len(ordered), _IN_BATCH):
        batch = ordered[i:i + _IN_BATCH]
        yield cur.execute("SELECT seq, CAST(changes AS BLOB) FROM journal WHERE seq IN "
                          f"({', '.join('?' * len(batch))}) ORDER BY seq", batch).fetchall()


#: Values bound to one ``IN (...)`` list.
_IN_BATCH = 500


def table_end(table: str) -> bytes:
    """How a change of ``table`` ends in its canonical encoding: ``,"table":"name"}``."""
    return _TABLE + orjson.dumps(table) + b"}"


def _cut(change: bytes) -> tuple[str, str, bytes | None] | None:
    """(table, key, the change or None for a deletion) of one stored change
    ``A,"before":B,"key":K,"table":T}``; None where it does not read so."""
    j = change.rfind(_KEY)
    if j < 0 or change.rfind(_BEFORE, 0, j) < 0:
        return None
    tail = orjson.loads(b"{" + change[j + 1:])
    if len(tail) != 2 or type(key := tail.get("key")) is not str \
            or type(name := tail.get("table")) is not str:
        return None
    return name, key, None if change.startswith(_DELETES) else change


def holds(change: bytes | None, data: bytes) -> bool:
    """Whether the stored ``change`` (see :func:`last_images`) has ``data``, the canonical
    encoding of a row, as its after-image: whether it begins with ``data,"before":``. A
    row's encoding is a whole JSON object, so the after-image a change begins with ends
    where ``data`` ends, whatever its rows' columns are called."""
    return change is not None and change.startswith(data) \
        and change.startswith(_BEFORE, len(data))


def after_image(change: bytes) -> bytes:
    """The after-image of a stored change (see :func:`last_images`), as its bytes.
    ``ValueError`` where the change does not hold one ``,"before":`` (a column called
    ``before``): where its image ends is then for a JSON parser to say."""
    i = change.find(_BEFORE)
    if i < 0 or change.find(_BEFORE, i + 1) >= 0:
        raise ValueError("a change whose after-image cannot be cut out by its bytes")
    return change[:i]


def json_batches(raw: sqlite3.Connection, sql: str, batch: int
                 ) -> Iterator[tuple[int, list[str], list[bytes]]]:
    """(last rowid, keys, encodings) of a table, ``batch`` rows at a time in storage order,
    from ``sql``: ``SELECT rowid, key, encoding FROM ...`` without WHERE or ORDER BY, written
    by the caller. A query that refuses a row raises ``sqlite3.Error``: the caller reads the
    table another way (from the last rowid it was given)."""
    cur = raw.cursor()
    try:
        last = None
        while True:
            where = "" if last is None else f" WHERE rowid > {int(last)}"
            rows = cur.execute(f"{sql}{where} ORDER BY rowid LIMIT {int(batch)}").fetchall()
            if rows:
                last = rows[-1][0]
                yield last, [r[1] for r in rows], [r[2] for r in rows]
            if len(rows) < batch:
                return
    finally:
        cur.close()


def odd_hashed(raw: sqlite3.Connection, table: str,
               batches: Iterable[tuple[list[str], list[bytes]]],
               hashes: Mapping[str, tuple[int, int | None]], stop: int) -> Odd:
    """The live rows (``batches`` of keys and canonical encodings) of ``table`` whose bytes
    are not the journal's image of them, then the rows the journal holds an image of and
    the live tables do not, each with the journal's after-image (:func:`after_image`) and
    the position that wrote it last. ``hashes``: :func:`last_hashes`' of the table, read on
    ``raw`` up to ``stop`` in the same snapshot. A live row whose encoding hashes as its
    image does is the row the journal holds; the images of the others are read again, from
    the entries that wrote them last (:func:`changes_at`). Equal bytes are equal rows; the
    caller compares the rows returned as values. ``ValueError`` where an image cannot be cut
    out by its bytes (:func:`after_image`), or those entries do not hold those changes."""
    odd: Odd = []
    again: list[tuple[str, bytes | None, int]] = []  # (key, live encoding or None, seq)
    live_keys: list[str] = []
    present = 0  # live rows of which the journal holds an image
    get = hashes.get
    for keys, encoded in batches:
        live_keys.extend(keys)
        for key, data in zip(keys, encoded, strict=True):
            got = get(key)
            if got is None:
                odd.append((key, data, None, None))
            elif got[1] is None:  # the journal deleted it
                odd.append((key, data, None, got[0]))
            else:
                present += 1
                if got[1] != hash(data):
                    again.append((key, data, got[0]))
    if present < sum(1 for _seq, h in hashes.values() if h is not None):
        live = set(live_keys)  # some rows the journal holds are gone
        again.extend((key, None, seq) for key, (seq, h) in hashes.items()
                     if h is not None and key not in live)
    if again:
        changes = changes_at(raw, table, {key: seq for key, _data, seq in again}, stop)
        odd.extend((key, data, after_image(changes[key]), seq) for key, data, seq in again)
    return odd


def changes_at(raw: sqlite3.Connection, table: str, written: Mapping[str, int], stop: int
               ) -> dict[str, bytes]:
    """The stored change (as :func:`last_images` gives it) to each row of ``table`` that
    ``written`` names, by key, in the entry at the position given with it: the last that
    wrote the row up to ``stop``. ``ValueError`` where an entry does not hold such a
    change (the journal changed under a caller whose snapshot did not hold, or its changes
    do not split as stored), or holds the row's deletion."""
    got = last_images(raw, stop=stop, only=[table], seqs=set(written.values()))
    rows = {} if got is None else got.get(table, {})
    out: dict[str, bytes] = {}
    for key, seq in written.items():
        hit = rows.get(key)
        if hit is None or hit[0] != seq or hit[1] is None:
            raise ValueError(f"entry {seq} does not hold the last change to {table} row {key}")
        out[key] = hit[1]
    return out


def compare_stored(path: str, head_sql: str, head: int, stop: int,
                   tables: list[tuple[str, str]], batch: int) -> dict[str, Odd | None] | None:
    """:func:`odd_hashed` of each ``(table, query)`` of ``tables`` (queries as
    :func:`json_batches` takes them) against the journal up to ``stop``, on a new connection
    to the SQLite file ``path``: in a helper process. None when this connection's snapshot
    does not hold the journal head ``head`` (``head_sql`` reads it) as the caller's did, or
    the journal's changes do not split as stored; a table's None where its query refused a
    row, or an after-image could not be cut out by its bytes."""
    with snapshot(path, head_sql, head) as raw, collector_paused():  # millions of tuples
        if raw is None:
            return None
        last = last_hashes(raw, stop=stop, only=[name for name, _sql in tables])
        if last is None:
            return None
        out: dict[str, Odd | None] = {}
        for name, sql in tables:
            try:
                out[name] = odd_hashed(raw, name, ((keys, encoded) for _rowid, keys, encoded
                                                   in json_batches(raw, sql, batch)),
                                       last.pop(name, {}), stop)
            except (sqlite3.Error, ValueError):  # a row the query refused; an image not cut
                out[name] = None
        return out


#: What :func:`odd_candidates` compares of one table: ``(table, query, ranges, live rows,
#: sealed rows)``, the query as :func:`json_batches` takes it, the ``[lo, hi)`` rowid ranges
#: whose rows may differ (None: no bound), how many rows the table holds, and how many it
#: held at the seal's position (None: not known).
Candidates = tuple[str, str, "list[tuple[int | None, int | None]]", int, "int | None"]


def odd_candidates(raw: sqlite3.Connection, stop: int, since: int,
                   tables: list[Candidates], *, subjects: bool = True
                   ) -> dict[str, Odd | None] | None:
    """:func:`odd_hashed`'s answer for each table of ``tables`` without reading most of its
    rows, from the images themselves (:func:`last_images`): the
    caller knows (from sealed page groups, :mod:`cutru.store.seals`) that every row outside
    the rowid ranges given is a row the journal held at position ``since``. So only the rows
    in those ranges, and the live rows of keys the journal wrote after ``since``, are
    compared with the journal's images up to ``stop``.

    The images of the rows in those ranges are looked for, where ``subjects`` is true,
    among the entries that name their keys as subjects (``journal_subjects``: an entry names
    the persons, households and stays whose rows it writes); a table none of whose keys in
    the ranges is so named, or whose count at ``since`` is not known, has its images read
    from the whole journal. The others take their images from the entries after ``since``.
    Rows the journal holds and the table does not are looked for (every key read) only
    where the table's count says some are missing. A table's None where its query refused
    a row, an image could not be cut out, or the count cannot be (more live rows of known
    keys than the journal holds). None where the journal's changes do not split as stored.
    The caller must still prove the result complete (the differences it finds must account
    for the whole difference of state digests), as a row counted but not looked at, or an
    image that was not the last, could hide one; where it cannot, ``subjects=False`` reads
    the images of the ranges' rows from the whole journal."""
    names = [t[0] for t in tables]
    tail = last_images(raw, stop=stop, only=names, after=since)
    if tail is None:
        return None
    try:
        born = _existed(raw, since, stop, names)
        ranged = {name: _range_rows(raw, sql, ranges)
                  for name, sql, ranges, _live, _sealed in tables if ranges}
    except (ValueError, KeyError, TypeError, sqlite3.Error):  # not a list of changes
        return None
    named: dict[str, dict[str, tuple[int, bytes | None]]] = {}
    for name, _sql, ranges, _live, sealed in tables:
        if subjects and ranges and sealed is not None:
            found = _subject_images(raw, name, list(ranged[name]), stop)
            if found is not None:
                named[name] = found
    whole = [name for name, _sql, ranges, _live, sealed in tables
             if sealed is None or (ranges and name not in named)]
    full = last_images(raw, stop=stop, only=whole) if whole else {}
    if full is None:
        return None
    out: dict[str, Odd | None] = {}
    for name, sql, _ranges, live, sealed in tables:
        rows = ranged.get(name, {})
        try:
            if name in whole:
                out[name] = _odd_candidates(raw, name, sql, rows, live, since,
                                            full.get(name, {}), None)
                continue
            changed = tail.get(name, {})
            expected = cast(int, sealed) + sum(
                (change is not None) - born.get((name, key), True)
                for key, (_seq, change) in changed.items())
            out[name] = _odd_candidates(raw, name, sql, rows, live, since,
                                        {**named.get(name, {}), **changed}, expected)
            if out[name] is None:  # rows gone before ``since``: the whole journal says
                again = last_images(raw, stop=stop, only=[name])
                out[name] = None if again is None else _odd_candidates(
                    raw, name, sql, rows, live, since, again.get(name, {}), None)
        except (sqlite3.Error, ValueError):
            out[name] = None
    return out


def _range_rows(raw: sqlite3.Connection, sql: str,
                ranges: list[tuple[int | None, int | None]]) -> dict[str, bytes]:
    """``key -> canonical encoding`` of the live rows in the rowid ranges ``[lo, hi)`` (an
    end None: unbounded), read with the table's storage-order query ``sql``."""
    rows: dict[str, bytes] = {}
    for lo, hi in ranges:
        where = [f"rowid >= {int(lo)}"] if lo is not None else []
        if hi is not None:
            where.append(f"rowid < {int(hi)}")
        query = f"{sql}{' WHERE ' + ' AND '.join(where) if where else ''}"
        rows.update((key, data) for _rowid, key, data in raw.execute(query))
    return rows


def _subject_images(raw: sqlite3.Connection, table: str, keys: list[str], stop: int
                    ) -> dict[str, tuple[int, bytes | None]] | None:
    """The last change to each row of ``table`` whose key is in ``keys`` (as
    :func:`last_images` gives it) among the entries up to ``stop`` that name that key as a
    subject, read through the ``journal_subjects`` index instead of the whole journal; None
    where no key is named (the table's keys are not subjects) or the changes do not split
    as stored. A key named but not written is left out."""
    seqs: set[int] = set()
    named: set[str] = set()
    for i in range(0, len(keys), _IN_BATCH):
        batch = keys[i:i + _IN_BATCH]
        for subject, seq in raw.execute(
                "SELECT subject, seq FROM journal_subjects WHERE seq <= ? AND subject IN "
                f"({', '.join('?' * len(batch))})", [stop, *batch]):
            named.add(subject)
            seqs.add(seq)
    if not named:
        return None
    got = last_images(raw, stop=stop, only=[table], seqs=seqs)
    if got is None:
        return None
    rows = got.get(table, {})
    return {key: rows[key] for key in named if key in rows}


def _existed(raw: sqlite3.Connection, since: int, stop: int, tables: list[str]
             ) -> dict[tuple[str, str], bool]:
    """For each row of ``tables`` the entries after ``since`` (up to ``stop``) change,
    whether it existed at ``since``: whether the first of them has a before-image. The
    entries are parsed whole: there are few after a recent seal."""
    wanted = set(tables)
    out: dict[tuple[str, str], bool] = {}
    for (changes,) in raw.execute("SELECT CAST(changes AS BLOB) FROM journal WHERE seq > ? "
                                  "AND seq <= ? ORDER BY seq", (since, stop)):
        for change in orjson.loads(changes):
            name, key = change["table"], change["key"]
            if name in wanted and (name, key) not in out:
                out[(name, key)] = change["before"] is not None
    return out


def _odd_candidates(raw: sqlite3.Connection, table: str, sql: str, rows: dict[str, bytes],
                    live: int, since: int, images: Mapping[str, tuple[int, bytes | None]],
                    expected: int | None) -> Odd | None:
    """One table's part of :func:`odd_candidates`: ``rows`` are the live rows of the ranges
    read; ``images`` are the journal's last ones of every row (``expected`` None), or of
    the rows written after ``since`` and of ``rows``, with the number of rows the journal
    holds (``expected``; None is returned where rows written before ``since`` are missing:
    the caller then reads the whole journal)."""
    rows = dict(rows)
    later = [key for key, (seq, _change) in images.items() if seq > since and key not in rows]
    for i in range(0, len(later), _IN_BATCH):  # keys the journal wrote since, in unread groups
        batch = later[i:i + _IN_BATCH]
        query = f"{sql} WHERE key IN ({', '.join('?' * len(batch))})"
        rows.update((key, data) for _rowid, key, data in raw.execute(query, batch))
    odd: Odd = []
    unknown = 0  # live rows the journal holds no image of
    for key, data in rows.items():
        got = images.get(key)
        if got is None or got[1] is None:
            unknown += 1
            odd.append((key, data, None, None if got is None else got[0]))
        elif not holds(got[1], data):
            odd.append((key, data, after_image(got[1]), got[0]))
    gone = [key for key in later if key not in rows and images[key][1] is not None]
    whole = expected is None
    if expected is None:
        expected = sum(1 for _seq, change in images.values() if change is not None)
    missing = expected - (live - unknown)
    if missing < len(gone) or (missing > len(gone) and not whole):
        return None
    if missing > len(gone):  # rows gone that the journal wrote before ``since``: find them
        present = {key for (key,) in raw.execute(f'SELECT key FROM "{table}"')}
        gone = [key for key, (_seq, change) in images.items()
                if change is not None and key not in present]
    odd.extend((key, None, after_image(cast(bytes, images[key][1])), images[key][0])
               for key in gone)
    return odd


def compare_candidates(path: str, head_sql: str, head: int, stop: int, since: int,
                       tables: list[Candidates], subjects: bool = True
                       ) -> dict[str, Odd | None] | None:
    """:func:`odd_candidates` on a new connection to the SQLite file ``path`` whose
    snapshot holds the journal head ``head``: in a helper process (None where it does not,
    as :func:`compare_stored`)."""
    with snapshot(path, head_sql, head) as raw, collector_paused():
        if raw is None:
            return None
        return odd_candidates(raw, stop, since, tables, subjects=subjects)


@contextmanager
def snapshot(path: str, head_sql: str, head: int) -> Iterator[sqlite3.Connection | None]:
    """A new connection to the SQLite file ``path``, in a read transaction whose snapshot
    holds the journal head ``head`` (``head_sql`` reads it) as its caller's does; None
    where it does not (the registry has moved on since). For a helper process that reads
    tables beside its caller: the journal is only appended to, and the application writes
    no projection row without it, so the two snapshots hold the same application state."""
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        try:
            raw.execute("PRAGMA busy_timeout=30000")
            raw.execute("BEGIN")
            row = raw.execute(head_sql).fetchone()
        except sqlite3.Error:  # locked past the timeout; not a registry
            row = None
        yield raw if row is not None and row[0] == head else None
    finally:
        raw.close()
