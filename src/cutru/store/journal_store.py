"""Persistence of the journal: the head, appending sealed entries, checkpoints, and reading.

Appending happens inside the caller's transaction, after the projection rows changed, so the
journal and the projection commit or roll back together. Writers are serialised: SQLite by
``BEGIN IMMEDIATE``, PostgreSQL by locking the single ``journal_head`` row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import Connection, Row, RowMapping, Select, func, insert, select, update

from cutru.errors import InputError, JournalChainBroken
from cutru.journal import canonical
from cutru.journal.entry import GENESIS, Change, Draft, Entry, encode_changes, next_ts, seal
from cutru.journal.lthash import LtHash, RowStep, change_elements, framed_steps
from cutru.journal.signing import Checkpoint, SignedCheckpoint
from cutru.store import stored_bytes
from cutru.store.bulk import insert_many
from cutru.store.engine import fetch_escaping
from cutru.store.schema import checkpoints, journal, journal_head, journal_subjects
from cutru.store.stored_bytes import LastHashes, LastImages


@dataclass
class Head:
    seq: int
    hash: str
    ts: str
    state: LtHash


def init_head(conn: Connection) -> None:
    """Create the head row of an empty journal (idempotent)."""
    if conn.execute(select(journal_head.c.id)).first() is None:
        conn.execute(insert(journal_head).values(
            id=1, seq=0, hash=GENESIS, ts="", lthash=LtHash.empty().to_bytes()))


def lock_head(conn: Connection) -> Head:
    """The head, locked for the rest of the transaction (the writers' queue)."""
    return _load_head(conn, for_update=conn.dialect.name == "postgresql")


def read_head(conn: Connection) -> Head:
    return _load_head(conn, for_update=False)


def _load_head(conn: Connection, *, for_update: bool) -> Head:
    stmt = select(journal_head).where(journal_head.c.id == 1)
    if for_update:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise LookupError("journal head missing: run `cutru init` first")
    return Head(row["seq"], row["hash"], row["ts"], LtHash.from_bytes(bytes(row["lthash"])))


def changed_rows(changes: Sequence[Change]) -> RowStep:
    """The rows a list of changes adds and removes, as ``(table, key, canonical bytes)``."""
    added: list[tuple[str, str, bytes]] = []
    removed: list[tuple[str, str, bytes]] = []
    for ch in changes:
        before, after = ch.before_bytes, ch.after_bytes
        if before is not None:
            removed.append((ch.table, ch.key, before))
        if after is not None:
            added.append((ch.table, ch.key, after))
    return added, removed


def row_elements(changes: Sequence[Change]) -> tuple[list[bytes], list[bytes]]:
    """State-digest elements a list of changes adds and removes."""
    added, removed = changed_rows(changes)
    return change_elements(added), change_elements(removed)


def row_steps(drafts: Sequence[Draft]) -> list[RowStep]:
    """The rows each draft that changed something adds and removes, in order: what
    :func:`cutru.journal.lthash.advance_state_rows` takes (in a helper process, which frames
    them into elements there)."""
    return [changed_rows(d.changes) for d in drafts if d.changes]


def digest_steps(drafts: Sequence[Draft]) -> list[tuple[list[bytes], list[bytes]]]:
    """The state-digest elements each draft that changed something adds and removes, in
    order: what :meth:`LtHash.advance` takes."""
    return framed_steps(row_steps(drafts))


def seal_drafts(head: Head, drafts: Sequence[Draft], now: Callable[[], datetime],
                digests: Sequence[str] | None = None) -> list[Entry]:
    """The entries of ``drafts`` sealed after ``head``, which advances to the last of them
    (in memory only: :func:`write_entries` stores both). ``digests``, when given, are the
    state digests after each draft that changed something, already computed (and
    ``head.state`` already advanced) elsewhere."""
    drafts = [d for d in drafts if d.changes]  # an operation that changed nothing: no entry
    if digests is None:
        digests = head.state.advance(digest_steps(drafts))
    entries: list[Entry] = []
    for draft, digest in zip(drafts, digests, strict=True):
        ts = next_ts(now(), head.ts)
        entry = seal(draft, seq=head.seq + 1, ts=ts, digest=digest, prev=head.hash)
        entries.append(entry)
        head.seq, head.hash, head.ts = entry.seq, entry.hash, entry.ts
    return entries


def write_entries(conn: Connection, head: Head, entries: Sequence[Entry]) -> None:
    """Store sealed entries and the head they advanced it to."""
    if not entries:
        return
    insert_rows(conn, [journal_row(e) for e in entries],
                [(s, e.seq) for e in entries for s in e.subjects])
    conn.execute(update(journal_head).where(journal_head.c.id == 1).values(
        seq=head.seq, hash=head.hash, ts=head.ts, lthash=head.state.to_bytes()))


#: The ``journal`` columns in the order :func:`insert_rows` takes them.
COLUMNS = ("seq", "ts", "actor", "purpose", "operation", "subjects", "changes", "digest",
           "prev", "hash")


def journal_row(e: Entry) -> tuple[object, ...]:
    """The ``journal`` row of an entry, values in :data:`COLUMNS` order (as
    :func:`insert_rows` takes them): ``changes`` are the entry's stored bytes when it has
    them, else encoded here."""
    changes = e.raw_changes if e.raw_changes is not None else encode_changes(e.changes)
    return (e.seq, e.ts, e.actor, e.purpose, e.operation,
            canonical.encode(list(e.subjects)).decode(), changes, e.digest, e.prev, e.hash)


#: Where ``changes`` is in a row of :data:`COLUMNS`.
_CHANGES = COLUMNS.index("changes")
#: SQLite: ``changes`` bound as a BLOB and stored as TEXT (the bytes as they are).
_SQLITE_INSERT = (f"INSERT INTO journal ({', '.join(COLUMNS)}) VALUES ("
                  + ", ".join("CAST(? AS TEXT)" if c == "changes" else "?" for c in COLUMNS)
                  + ")")


def insert_rows(conn: Connection, rows: list[tuple[object, ...]],
                subjects: list[tuple[str, int]]) -> None:
    """``journal`` rows (values in :data:`COLUMNS` order, ``changes`` as the UTF-8 bytes of
    its text, valid UTF-8 as every writer of a row has it) and ``journal_subjects`` rows
    ``(subject, seq)``, with the driver's ``executemany`` or ``COPY``
    (:func:`cutru.store.bulk.insert_many`): SQLAlchemy's statement machinery would cost more
    per row than the database does. On SQLite the ``changes`` bytes are stored as they
    come, not decoded to a string for the driver to encode back (some 2 KiB an entry)."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_INSERT, rows)
    else:
        at = _CHANGES
        insert_many(conn, journal.name, COLUMNS,
                    [(*r[:at], cast(bytes, r[at]).decode(), *r[at + 1:]) for r in rows])
    insert_many(conn, journal_subjects.name, ("subject", "seq"), subjects)


def entry_from_row(row: dict[str, object], *, lenient: bool = False) -> Entry:
    """Decode a stored journal row. The entry keeps the stored bytes of its changes: its hash
    is checked over them, so any re-encoding of the same value counts as an alteration.

    A row whose subjects or changes are not what the journal writes (text that is not JSON,
    a change that is not an object naming a table and a key with row images) raises
    :class:`JournalChainBroken`; ``lenient`` (verification, which reports instead) gives the
    entry with no changes, and its stored bytes, whose hash then fails to match."""
    raw = str(row["changes"]).encode("utf-8", "surrogateescape")  # the stored bytes
    seq = int(row["seq"])  # type: ignore[call-overload]
    try:
        subjects = canonical.loads(str(row["subjects"]))
        changes = canonical.loads(raw)
        if not isinstance(subjects, list) or not isinstance(changes, list):
            raise TypeError("not lists")
        parsed = tuple(Change.from_object(c) for c in changes)
        if not all(isinstance(c.table, str) and isinstance(c.key, str) and all(
                v is None or isinstance(v, dict) for v in (c.before, c.after))
                for c in parsed) or not all(isinstance(x, str) for x in subjects):
            raise TypeError("not rows")
    except (InputError, ValueError, TypeError, KeyError, AttributeError):
        if not lenient:
            raise JournalChainBroken(f"journal entry {seq} does not hold a journal entry's "
                                     "content (its changes or subjects cannot be read): it "
                                     "was altered; run `cutru verify`", seq=seq) from None
        subjects, parsed = [], ()
    return Entry(
        seq=seq, ts=str(row["ts"]), actor=str(row["actor"]), purpose=str(row["purpose"]),
        operation=str(row["operation"]), subjects=tuple(str(s) for s in subjects),
        changes=parsed, digest=str(row["digest"]), prev=str(row["prev"]),
        hash=str(row["hash"]), raw_changes=raw,
    )


def iter_entries(conn: Connection, *, start: int = 1, stop: int | None = None,
                 batch: int = 2000, lenient: bool = False) -> Iterator[Entry]:
    """Entries with ``start <= seq <= stop`` in order, fetched in batches (``lenient``: see
    :func:`entry_from_row`)."""
    seq = start
    while True:
        stmt = select(journal).where(journal.c.seq >= seq).order_by(journal.c.seq).limit(batch)
        if stop is not None:
            stmt = stmt.where(journal.c.seq <= stop)
        rows = _rows(conn, stmt, lenient)
        if not rows:
            return
        for r in rows:
            yield entry_from_row(dict(r), lenient=lenient)
        seq = int(rows[-1]["seq"]) + 1


def iter_changes(conn: Connection, *, stop: int | None = None, batch: int = 5000
                 ) -> Iterator[tuple[int, str]]:
    """(seq, stored changes JSON) of entries up to ``stop``, in order (keyset batches)."""
    seq = 0
    while True:
        stmt = select(journal.c.seq, journal.c.changes).where(journal.c.seq > seq) \
            .order_by(journal.c.seq).limit(batch)
        if stop is not None:
            stmt = stmt.where(journal.c.seq <= stop)
        # verification reads these: text that is not UTF-8 comes as lone surrogates, and
        # the entry is one that cannot be read (fetch_escaping)
        rows = fetch_escaping(conn, partial(_all, conn, stmt))
        if not rows:
            return
        for r in rows:
            yield int(r.seq), str(r.changes)
        seq = int(rows[-1].seq)


def last_images(conn: Connection, *, stop: int | None = None,
                only: Collection[str] | None = None, skip: Collection[str] = ()
                ) -> LastImages | None:
    """On SQLite: :func:`cutru.store.stored_bytes.last_images` on this connection (for
    every row the journal up to ``stop`` wrote, ``(seq, after-image bytes)`` of the last
    change to it, cut out of the stored changes). None on another database, or where the
    stored changes do not split so: the caller then decodes them (:func:`iter_changes`)."""
    raw = sqlite_raw(conn)
    return None if raw is None else stored_bytes.last_images(raw, stop=stop, only=only,
                                                              skip=skip)


def last_hashes(conn: Connection, *, stop: int | None = None,
                only: Collection[str] | None = None, skip: Collection[str] = ()
                ) -> LastHashes | None:
    """:func:`last_images`, each image as its hash
    (:func:`cutru.store.stored_bytes.last_hashes`)."""
    raw = sqlite_raw(conn)
    return None if raw is None else stored_bytes.last_hashes(raw, stop=stop, only=only,
                                                              skip=skip)


def sqlite_raw(conn: Connection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under ``conn`` (in its transaction), None on another
    database."""
    if conn.dialect.name != "sqlite":
        return None
    raw = conn.connection.dbapi_connection
    assert raw is not None
    return cast(sqlite3.Connection, raw)


def entries_for_subject(conn: Connection, subject: str, *, stop: int | None = None
                        ) -> list[Entry]:
    stmt = (select(journal).join(journal_subjects, journal_subjects.c.seq == journal.c.seq)
            .where(journal_subjects.c.subject == subject).order_by(journal.c.seq))
    if stop is not None:
        stmt = stmt.where(journal.c.seq <= stop)
    return [entry_from_row(dict(r)) for r in conn.execute(stmt).mappings()]


def seq_at(conn: Connection, ts: str) -> int:
    """The last journal position whose time is at or before ``ts`` (0 when none)."""
    # ts never decreases along seq, so the newest entry by ts is the one we want; this form
    # lets the database walk the ts index backwards instead of scanning journal rows
    found = conn.execute(select(journal.c.seq).where(journal.c.ts <= ts)
                         .order_by(journal.c.ts.desc(), journal.c.seq.desc()).limit(1)).scalar()
    return int(found or 0)


def last_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.max(journal.c.seq))).scalar() or 0)


def get_entry(conn: Connection, seq: int, *, lenient: bool = False) -> Entry | None:
    """Entry ``seq``, or None (``lenient``: see :func:`entry_from_row`)."""
    rows = _rows(conn, select(journal).where(journal.c.seq == seq), lenient)
    return entry_from_row(dict(rows[0]), lenient=lenient) if rows else None


def _all(conn: Connection, stmt: Select[Any]) -> Sequence[Row[Any]]:
    return conn.execute(stmt).all()


def _rows(conn: Connection, stmt: Select[Any], lenient: bool) -> Sequence[RowMapping]:
    """The rows of ``stmt`` as mappings; ``lenient`` (verification, where text that is not
    UTF-8 is an altered entry, reported): read whatever bytes the columns hold
    (:func:`~cutru.store.engine.fetch_escaping`)."""
    if not lenient:
        return conn.execute(stmt).mappings().all()
    return fetch_escaping(conn, lambda: conn.execute(stmt).mappings().all())


def save_checkpoint(conn: Connection, signed: SignedCheckpoint) -> None:
    cp = signed.checkpoint
    conn.execute(insert(checkpoints).values(
        seq=cp.seq, chain_head=cp.chain_head, state_digest=cp.state_digest,
        created_at=cp.created_at, key_id=cp.key_id, signature=signed.signature))


def list_checkpoints(conn: Connection) -> list[SignedCheckpoint]:
    rows = conn.execute(select(checkpoints).order_by(checkpoints.c.seq)).mappings()
    return [
        SignedCheckpoint(
            Checkpoint(r["seq"], r["chain_head"], r["state_digest"], r["created_at"],
                       r["key_id"]),
            r["signature"],
        )
        for r in rows
    ]


def last_checkpoint_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.max(checkpoints.c.seq))).scalar() or 0)
