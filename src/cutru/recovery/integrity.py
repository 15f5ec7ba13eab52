"""Tamper detection and rebuild (docs/design.md, "Verification").

``verify`` checks, in order: the hash chain (gapless sequence, links, hashes, times); the
state digest recorded in every entry against a replay of the row images; the journal head;
every signed checkpoint (signature, and agreement with the entry it names) and the latest
checkpoint kept outside the database (a journal cut back to an older valid prefix); and
finally the live projection against the journal's digest. A projection mismatch is
pinpointed row by row against the journal's last images, with the last journal position
that wrote the row: on a SQLite file with a signed seal of its page groups, among the rows
of the groups that changed and the keys written since the seal (:func:`pinpoint_sealed`),
else among every row (:func:`pinpoint`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import ExitStack, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, select, update

from cutru.errors import (
    CheckpointInvalid,
    InputError,
    JournalChainBroken,
    ProjectionMismatch,
)
from cutru.journal import canonical
from cutru.journal.entry import GENESIS, Entry
from cutru.journal.helper import Helper, HelperFailed, helper_process
from cutru.journal.lthash import LtHash, row_element
from cutru.journal.signing import SignedCheckpoint, SigningKey, verify_checkpoint
from cutru.runtime import collector_paused
from cutru.store import journal_store, page_groups, seals, stored_bytes
from cutru.store.bulk import deferred_indexes
from cutru.store.engine import Database
from cutru.store.projection import (
    HEAD_SEQ_SQL,
    ROW_BATCH,
    Beside,
    encoded_rows,
    helper_beside,
    projection_state,
    sqlite_file,
    sqlite_json_ok,
    storage_order_sql,
    table_rows,
)
from cutru.store.rows import RowWriter
from cutru.store.schema import PROJECTION, journal, journal_head
from cutru.store.stored_bytes import Odd

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    kind: str  # chain | digest | head | checkpoint | truncation | projection
    message: str
    seq: int | None = None
    table: str | None = None
    key: str | None = None
    change: str | None = None  # inserted | updated | deleted (projection rows)
    since_seq: int | None = None  # last journal entry that wrote this row


@dataclass
class Report:
    entries: int = 0
    rows: int = 0
    checkpoints: int = 0
    digest: str = ""
    groups: int = 0  # page groups the quick check summed (0: it read every row)
    groups_read: int = 0  # of which read as rows: their bytes matched no seal
    #: a mismatch pinpointed among the rows of the groups read (and the keys written since
    #: the seal) instead of among every row
    pinpointed_by_groups: bool = False
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _noop(_: int) -> None:
    return None


def _check_chain(conn: Connection, report: Report, progress: Progress,
                 each: Callable[[Entry], None] | None = None) -> tuple[LtHash, Entry | None]:
    """Check every entry in order (checks 1-5 of docs/design.md "Verification"); ``each``,
    when given, is called with every entry after its checks, in the same pass."""
    state, prev_hash, prev_ts, expected = LtHash.empty(), GENESIS, "", 1
    last: Entry | None = None
    for batch in _batches(journal_store.iter_entries(conn, lenient=True), 2000):
        digests = state.advance([journal_store.row_elements(e.changes) for e in batch])
        for e, digest in zip(batch, digests, strict=True):
            _check_entry(e, digest, expected, prev_hash, prev_ts, report)
            prev_hash, prev_ts, expected, last = e.hash, e.ts, e.seq + 1, e
            report.entries += 1
            if each is not None:
                each(e)
        progress(len(batch))
    return state, last


def _batches(entries: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    batch: list[Entry] = []
    for e in entries:
        batch.append(e)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _hash_matches(e: Entry) -> bool:
    """Whether the entry hashes to its ``hash``; no for a field holding text that no entry
    can hold (bytes that are not UTF-8, read as lone surrogates: no canonical encoding)."""
    try:
        return e.computed_hash() == e.hash
    except (InputError, TypeError):
        return False


def _check_entry(e: Entry, digest: str, expected: int, prev_hash: str, prev_ts: str,
                 report: Report) -> None:
    """Checks 1-5 of docs/design.md "Verification" for one entry."""
    if e.seq != expected:
        report.problems.append(Problem("chain", f"entry {expected} is missing "
                                       f"(next present is {e.seq})", seq=expected))
    if e.prev != prev_hash:
        report.problems.append(Problem("chain", f"entry {e.seq} does not link to its "
                                       "predecessor", seq=e.seq))
    if not _hash_matches(e):
        report.problems.append(Problem("chain", f"entry {e.seq} was altered: its hash "
                                       "does not match its content", seq=e.seq))
    if e.ts < prev_ts:
        report.problems.append(Problem("chain", f"entry {e.seq} is dated before its "
                                       "predecessor", seq=e.seq))
    if digest != e.digest:
        report.problems.append(Problem("digest", f"entry {e.seq} records a state digest "
                                       "that its row images do not give", seq=e.seq))


def _check_checkpoints(conn: Connection, report: Report, keys: Mapping[str, bytes],
                       external: SignedCheckpoint | None, last: Entry | None) -> None:
    cps = journal_store.list_checkpoints(conn)
    if external is not None and all(c.checkpoint.seq != external.checkpoint.seq for c in cps):
        cps.append(external)
    for cp in cps:
        report.checkpoints += 1
        c = cp.checkpoint
        try:
            verify_checkpoint(cp, keys)
        except CheckpointInvalid as exc:
            report.problems.append(Problem("checkpoint", f"checkpoint at {c.seq}: {exc}",
                                           seq=c.seq))
            continue
        entry = journal_store.get_entry(conn, c.seq, lenient=True)
        if entry is None:
            report.problems.append(Problem(
                "truncation", f"a signed checkpoint covers entry {c.seq} but the journal ends "
                f"at {last.seq if last else 0}: entries were removed", seq=c.seq))
        elif (entry.hash, entry.digest) != (c.chain_head, c.state_digest):
            report.problems.append(Problem(
                "checkpoint", f"entry {c.seq} differs from what checkpoint {c.seq} signed",
                seq=c.seq))


def verify(db: Database, *, public_keys: Mapping[str, bytes],
           external: SignedCheckpoint | None = None, progress: Progress = _noop) -> Report:
    """Check everything; never raises for a finding, returns them all in the report."""
    report = Report()
    ready = _groups_ready(db, public_keys)  # for pinpointing by page groups, if need be
    with helper_beside(db) as aside, db.read() as conn:
        if aside is not None:  # its tables summed there while the chain is checked here
            aside.start(conn)
        state, last = _check_chain(conn, report, progress)
        head = journal_store.read_head(conn)
        if last is not None and (head.seq, head.hash) != (last.seq, last.hash):
            report.problems.append(Problem("head", f"the journal head says {head.seq} but the "
                                           f"journal ends at {last.seq}", seq=head.seq))
        if head.state != state:
            report.problems.append(Problem("head", "the stored running digest differs from "
                                           "the journal's replay"))
        _check_checkpoints(conn, report, public_keys, external, last)
        _check_projection(conn, report, state, progress, aside,
                          sealed=(head.seq, ready) if ready is not None else None)
    return report


def _check_projection(conn: Connection, report: Report, expected: LtHash,
                      progress: Progress, aside: Beside | None,
                      sealed: tuple[int, tuple[str, seals.Seals | None]] | None = None
                      ) -> None:
    """The live tables against the journal's state (some read by the helper ``aside``
    where there is one); a difference is pinpointed, by page groups where ``sealed`` (the
    journal head ``conn``'s snapshot holds, and :func:`_groups_ready`'s answer) lets it
    (:func:`pinpoint_sealed`), else among every row."""
    try:
        live, report.rows = projection_state(conn, progress, beside=aside or False)
    except ProjectionMismatch as exc:  # a value no journal entry can hold
        report.problems.extend(pinpoint(conn) or [Problem(
            "projection", exc.message, table=exc.details.get("table"),
            key=exc.details.get("key"), change="updated")])
        return
    report.digest = live.digest()
    if live != expected:
        found = None
        if sealed is not None:
            head, (database, seal) = sealed
            found = pinpoint_sealed(conn, database, seal, head, expected, live)
            report.pinpointed_by_groups = found is not None
        report.problems.extend((pinpoint(conn) if found is None else found) or [Problem(
            "projection", "the live tables do not give the journal's state digest")])


def pinpoint_sealed(conn: Connection, database: str, sealed: seals.Seals | None, head: int,
                    expected: LtHash, live: LtHash) -> list[Problem] | None:
    """``cutru verify``'s pinpointing where the SQLite file ``database`` has a signed seal
    (:mod:`cutru.store.seals`): once every row has been read and summed to ``live``, which
    is not ``expected`` (the journal's state at ``head``, the head ``conn``'s snapshot
    holds), the tables are summed again by page groups, which reads only the groups whose
    bytes the seal does not hold, and the difference is pinpointed among those groups'
    rows and the keys written since the seal (:func:`_pinpoint_grouped`).

    The seal only says where to look. The groups must sum to ``live``, what the rows
    themselves summed to, and what is found must account for the whole difference between
    ``live`` and ``expected``: the state digest is a homomorphic hash, so a row that
    differs and was not looked at leaves that sum off, whatever a seal said. None (the
    caller pinpoints among every row) where there is no seal to use, where the groups
    cannot be summed or do not give ``live``, or where :func:`_pinpoint_grouped` cannot
    account for the difference."""
    if sealed is None:
        return None
    grouped = seals.grouped_state(database, head, sealed)
    if grouped is None or grouped.read >= grouped.groups or grouped.state != live:
        return None
    return _pinpoint_grouped(conn, grouped, expected, sealed)


def replay_state(conn: Connection, stop: int | None = None
                 ) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], int]]:
    """Rows the journal says exist (up to ``stop``), and the last position that wrote each."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    written: dict[tuple[str, str], int] = {}
    # the row images only: decoded straight from the stored JSON, without building entries
    # (their hashes are the chain check's business, not this one's)
    # (an entry whose changes cannot be read is skipped: the chain check reports it altered)
    loads = canonical.loads
    for seq, raw in journal_store.iter_changes(conn, stop=stop):
        try:
            changes = [(c["table"], c["key"], c["after"]) for c in loads(raw)]
        except (InputError, ValueError, TypeError, KeyError, AttributeError):
            continue
        for table, key, after in changes:
            k = (table, key)
            written[k] = seq
            if after is None:
                rows.pop(k, None)
            else:
                rows[k] = after
    return rows, written


#: Tables whose rows a helper process compares while this one compares the others: persons
#: and their ID numbers, about half of a registry's rows and of its journal's changes.
BESIDE = ("persons", "id_numbers")
#: Journal entries from which pinpointing starts that helper (below, the helper's start
#: would cost more than it saves: 100,000 persons are about 41,500 entries).
BESIDE_MIN_ENTRIES = 10_000


@dataclass(frozen=True)
class Differs:
    """A row whose live value and journal image differ (None: that side has no such row),
    with the last journal position that wrote it."""

    table: str
    key: str
    row: dict[str, Any] | None
    image: dict[str, Any] | None
    since: int | None


def pinpoint(conn: Connection) -> list[Problem]:
    """Which live rows differ from the journal, and since which position.

    Every live row is compared with the last after-image the journal holds for it, table by
    table. On SQLite both sides are bytes: the live rows as their canonical JSON, written by
    the query in storage order (:func:`~cutru.store.projection.encoded_rows`), and the
    journal's images as stored, cut out of each entry's canonical changes and kept as their
    hashes (:func:`~cutru.store.journal_store.last_hashes`), so that no row image is parsed
    or encoded in Python. Equal bytes are equal rows, whatever the encoder; the few rows
    whose hashes differ have their images read again and are parsed and compared as
    values, so that an encoder that wrote some value otherwise would cost time, never a
    false finding. A table holding a value with no
    canonical encoding (a REAL or BLOB written by direct SQL) is compared the plain way, as
    on PostgreSQL, where the journal is decoded here.

    On a SQLite file with a long journal, a helper process
    (:func:`cutru.journal.helper.helper_process`) compares the tables of :data:`BESIDE`
    meanwhile, as bytes, on its own connection and with the ``sqlite3`` module alone
    (:func:`cutru.store.stored_bytes.compare_stored`, which starts without importing
    SQLAlchemy): it reads the journal up to the last entry the caller's snapshot holds (the
    journal is only appended to), and its own snapshot must hold the same journal head, else
    this process compares those tables too. It sends back the rows whose bytes differ, which
    this process compares as values. A direct edit made between
    the two snapshots' start is seen by the helper's. Findings are inserted and updated rows
    in table order, then key order, then deleted rows.

    Python's cyclic garbage collector is paused meanwhile, in both processes: the journal's
    images are millions of small tuples in no cycle, which it would scan again and again."""
    with collector_paused():
        return _pinpoint(conn)


def _pinpoint(conn: Connection) -> list[Problem]:
    if not (conn.dialect.name == "sqlite" and sqlite_json_ok(conn)):
        return _findings(_compare_plain(conn))
    stop = conn.execute(select(func.max(journal.c.seq))).scalar_one() or 0
    head = journal_store.read_head(conn).seq
    database = sqlite_file(conn)
    beside = database is not None and stop >= BESIDE_MIN_ENTRIES
    with helper_process() if beside else nullcontext(None) as helper:
        future = None
        if helper is not None:
            try:
                future = helper.submit(
                    stored_bytes.compare_stored, database, HEAD_SEQ_SQL, head, stop,
                    [(name, storage_order_sql(name)) for name in BESIDE], ROW_BATCH)
            except HelperFailed:
                future = None
        mine = _compare(conn, stop, skip=BESIDE if future is not None else ())
        theirs: list[Differs] | None = []
        if future is not None:
            try:
                stored = future.result()
            except HelperFailed:
                stored = None
            # the helper could not (another head in its snapshot, changes that do not split
            # as stored, a process that died): its tables are compared here
            theirs = (_compare(conn, stop, only=BESIDE) if stored is None
                      else _settle_beside(conn, stop, stored))
    if mine is None or theirs is None:  # a journal whose changes do not split as stored
        return _findings(_compare_plain(conn))
    return _findings(mine + theirs)




def _settle_beside(conn: Connection, stop: int, stored: dict[str, Odd | None]
                   ) -> list[Differs] | None:
    """The helper's rows whose bytes differ, compared here as values; a table whose query
    refused a row there, or whose rows do not parse, is compared here."""
    out: list[Differs] = []
    for name in BESIDE:
        odd = stored.get(name)
        differ = None
        if odd is not None:
            try:
                differ = _settle(odd)
            except ValueError:
                differ = None
        if differ is None:
            again = _compare(conn, stop, only=(name,))
            if again is None:
                return None
            out.extend(again)
        else:
            out.extend(Differs(name, key, row, image, seq) for key, row, image, seq in differ)
    return out


def _compare(conn: Connection, stop: int, *, only: Collection[str] | None = None,
             skip: Collection[str] = ()) -> list[Differs] | None:
    """The rows that differ, of the projection tables in ``only`` (all by default) and not
    in ``skip``, compared by the hashes of their bytes (None: the journal's changes do not
    split as stored); without ``only``, also the rows the journal holds of tables the schema
    no longer has."""
    raw = journal_store.sqlite_raw(conn)
    last = journal_store.last_hashes(conn, stop=stop, only=only, skip=skip)
    if raw is None or last is None:
        return None
    out: list[Differs] = []
    for table in PROJECTION:
        if (only is not None and table.name not in only) or table.name in skip:
            continue
        hashes = last.pop(table.name, {})
        differ = None
        try:
            differ = _settle(stored_bytes.odd_hashed(
                raw, table.name, encoded_rows(conn, table, ordered=False), hashes, stop))
        except (ProjectionMismatch, ValueError):
            differ = None  # read again, value by value
        if differ is None:
            again = journal_store.last_images(conn, stop=stop, only=(table.name,))
            if again is None:
                return None
            images = again.get(table.name, {})
            want = {key: _image(change) for key, (_seq, change) in images.items()
                    if change is not None}
            differ = [(key, row, image, _seq_of(images.get(key)))
                      for key, row, image in _differing_plain(conn, table, want)]
        out.extend(Differs(table.name, key, row, image, seq) for key, row, image, seq in differ)
    if only is None:
        for name, rows in last.items():
            held = {key: seq for key, (seq, h) in rows.items() if h is not None}
            try:
                changes = stored_bytes.changes_at(raw, name, held, stop)
            except ValueError:
                return None
            out.extend(Differs(name, key, None, _image(changes[key]), seq)
                       for key, seq in held.items())
    return out


def _image(change: bytes) -> dict[str, Any]:
    """The after-image of a stored change (:func:`~cutru.store.stored_bytes.last_images`),
    parsed: cut out by its bytes where it can be, else by parsing the whole change."""
    try:
        image = stored_bytes.after_image(change)
    except ValueError:
        return cast(dict[str, Any], canonical.loads(b'{"after":' + change)["after"])
    return cast(dict[str, Any], canonical.loads(image))


def _seq_of(got: tuple[int, bytes | None] | None) -> int | None:
    return None if got is None else got[0]


def _compare_plain(conn: Connection) -> list[Differs]:
    """The same from decoded values: the journal replayed here (PostgreSQL, or a journal
    whose changes do not split as stored), the live rows as the driver returns them."""
    expected, written = replay_state(conn)
    by_table: dict[str, dict[str, dict[str, Any]]] = {}
    for (table_name, key), after in expected.items():
        by_table.setdefault(table_name, {})[key] = after
    out: list[Differs] = []
    for table in PROJECTION:
        differ = _differing_plain(conn, table, by_table.pop(table.name, {}))
        out.extend(Differs(table.name, key, row, image, written.get((table.name, key)))
                   for key, row, image in differ)
    out.extend(Differs(name, key, None, image, written.get((name, key)))
               for name, rows in by_table.items() for key, image in rows.items())
    return out


def _findings(differs: list[Differs]) -> list[Problem]:
    """The problems: inserted and updated rows in table order, then key order; then deleted
    rows by table and key."""
    order = {table.name: i for i, table in enumerate(PROJECTION)}
    found: list[Problem] = []
    for d in sorted((d for d in differs if d.row is not None),
                    key=lambda d: (order.get(d.table, len(order)), d.table, d.key)):
        assert d.row is not None
        if d.image is None:
            found.append(Problem("projection", f"{d.table} row {d.key} exists but no journal "
                                 "entry created it", table=d.table, key=d.key,
                                 change="inserted", since_seq=d.since))
        else:
            row, image = d.row, d.image
            cols = sorted(c for c in row.keys() | image.keys()
                          if row.get(c) != image.get(c)
                          or type(row.get(c)) is not type(image.get(c)))
            found.append(Problem("projection", f"{d.table} row {d.key} differs from the "
                                 f"journal in {', '.join(cols)}", table=d.table, key=d.key,
                                 change="updated", since_seq=d.since))
    for d in sorted((d for d in differs if d.row is None), key=lambda d: (d.table, d.key)):
        found.append(Problem("projection", f"{d.table} row {d.key} is missing from the live "
                             "tables", table=d.table, key=d.key, change="deleted",
                             since_seq=d.since))
    return found


#: (key, live row or None, journal image or None) of a row that differs.
_Differing = list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]


def _settle(odd: Odd) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None,
                                      int | None]]:
    """Of the rows whose bytes differ from the journal's image
    (:func:`cutru.store.stored_bytes.odd_hashed`), those that differ as values too: ``(key,
    live row or None, journal image or None, seq)``. Bytes that do not parse raise
    ``ValueError``: the caller then reads the table value by value."""
    out: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, int | None]] = []
    for key, data, stored, seq in odd:
        row = None if data is None else canonical.loads(data)
        image = None if stored is None else canonical.loads(stored)
        if row is None or image is None or row != image or not _same_types(image, row):
            out.append((key, row, image, seq))
    return out


def _differing_plain(conn: Connection, table: Table, want: dict[str, dict[str, Any]]
                     ) -> _Differing:
    """The same, from the values the driver returns, compared with their types (read
    this way, ``1.0 == 1 == True`` in Python but not in a row image)."""
    out: _Differing = []
    seen = set()
    for row in table_rows(conn, table):
        key = row["key"]
        seen.add(key)
        image = want.get(key)
        if image is None or image != row or not _same_types(image, row):
            out.append((key, row, image))
    out.extend((key, None, image) for key, image in want.items() if key not in seen)
    return out


def _same_types(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether equal row images also agree in type column by column (``True == 1`` and
    ``1 == 1.0`` in Python, but not in a row image)."""
    return all(type(v) is type(b.get(c)) for c, v in a.items())


def rebuild(db: Database, progress: Progress = _noop) -> str:
    """Replace the projection by a replay of the journal, in one transaction; the result
    must have exactly the recorded digest, or nothing changes."""
    with db.begin() as conn:
        journal_store.lock_head(conn)
        for table in reversed(PROJECTION):
            conn.execute(delete(table))
        writer = RowWriter(conn)

        chain = Report()

        def replay(e: Entry) -> None:
            if not chain.problems:  # after damage, only the checks go on (to raise below)
                for ch in e.changes:
                    writer.apply(ch)

        # one pass: each entry is checked, then replayed; a damaged journal raises below,
        # and the transaction rolls the emptied tables back. On SQLite the secondary indexes
        # are built once at the end (readers keep their snapshot meanwhile); on PostgreSQL
        # dropping them would lock readers out until the commit, so they stay.
        with ExitStack() as stack:
            if db.is_sqlite:
                stack.enter_context(deferred_indexes(conn, [t.name for t in PROJECTION]))
            state, last = _check_chain(conn, chain, progress, replay)
            if chain.problems:
                raise JournalChainBroken("the journal itself is damaged; rebuild refused: "
                                         + chain.problems[0].message,
                                         seq=chain.problems[0].seq)
            writer.flush()
        rebuilt, _ = projection_state(conn)
        recorded = last.digest if last else LtHash.empty().digest()
        if rebuilt.digest() != recorded or rebuilt != state:
            raise ProjectionMismatch("the rebuilt projection does not give the recorded digest",
                                     expected=recorded, got=rebuilt.digest())
        conn.execute(update(journal_head).where(journal_head.c.id == 1).values(
            seq=last.seq if last else 0, hash=last.hash if last else GENESIS,
            ts=last.ts if last else "", lthash=state.to_bytes()))
        return recorded


def quick_check(db: Database, *, public_keys: Mapping[str, bytes],
                external: SignedCheckpoint | None = None, progress: Progress = _noop,
                signer: SigningKey | None = None) -> Report:
    """The check ``cutru serve`` runs on a schedule: the chain from the newest signed
    checkpoint to the head (links, hashes, digests), the head against it, the checkpoints
    (a journal cut back below one is caught), and the live projection against the head's
    running digest -- without replaying the journal from its start. A projection mismatch
    is then pinpointed row by row (that part replays the journal).

    On a SQLite file the projection is summed by page groups (:mod:`cutru.store.seals`):
    a group whose bytes a signed seal holds adds the sealed state, the others are read as
    rows. When the tables give the head's digest and ``signer`` is given, the groups read
    are sealed for the next check. Where groups cannot be used (another connection keeps
    pages in the write-ahead log, a b-tree out of order), every row is read as before."""
    report = Report()
    ready = _groups_ready(db, public_keys)
    with (nullcontext(None) if ready is not None else helper_beside(db)) as aside, \
            db.read() as conn:
        if aside is not None:  # its tables summed there while the chain is checked here
            aside.start(conn)
        cps = journal_store.list_checkpoints(conn)
        start = max((c.checkpoint.seq for c in cps), default=0)
        head = journal_store.read_head(conn)
        start = min(start, head.seq)
        base = journal_store.get_entry(conn, start, lenient=True) if start else None
        prev_hash, prev_ts = (base.hash, base.ts) if base else (GENESIS, "")
        last = base
        expected = start + 1
        for e in journal_store.iter_entries(conn, start=start + 1, lenient=True):
            if e.seq != expected:
                report.problems.append(Problem("chain", f"entry {expected} is missing "
                                               f"(next present is {e.seq})", seq=expected))
            if e.prev != prev_hash or not _hash_matches(e) or e.ts < prev_ts:
                report.problems.append(Problem("chain", f"entry {e.seq} was altered or does "
                                               "not link to its predecessor", seq=e.seq))
            prev_hash, prev_ts, expected, last = e.hash, e.ts, e.seq + 1, e
            report.entries += 1
        if last is not None and (head.seq, head.hash) != (last.seq, last.hash):
            report.problems.append(Problem("head", f"the journal head says {head.seq} but the "
                                           f"journal ends at {last.seq}", seq=head.seq))
        if last is not None and head.state.digest() != last.digest:
            report.problems.append(Problem("head", "the stored running digest differs from "
                                           "the digest the last entry records"))
        _check_checkpoints(conn, report, public_keys, external, last)
        if ready is None or not _check_grouped(conn, report, head.seq, head.state, ready,
                                               signer):
            _check_projection(conn, report, head.state, progress, aside)
    return report


def _groups_ready(db: Database, public_keys: Mapping[str, bytes]
                  ) -> tuple[str, seals.Seals | None] | None:
    """The SQLite file whose tables the quick check sums by page groups, and its seals (None
    where there are none to trust), with its write-ahead log emptied first; None where
    groups cannot be used."""
    if not db.is_sqlite:
        return None
    with db.read() as conn:
        database = sqlite_file(conn)
        if database is None or not sqlite_json_ok(conn):
            return None
    if not page_groups.settle_wal(database):
        return None
    return database, seals.load(database, public_keys)


#: Journal entries after the seal beyond which a mismatch is pinpointed among every row: the
#: entries after the seal are parsed whole (see :func:`_pinpoint_grouped`), and a difference
#: left unrepaired keeps every check failing, so no newer seal is written while they pile up.
SEALED_TAIL_MAX = 50_000


def _pinpoint_grouped(conn: Connection, grouped: seals.Grouped, expected: LtHash,
                      sealed: seals.Seals) -> list[Problem] | None:
    """:func:`pinpoint` after a quick check by page groups found the live tables off the
    head's digest (``expected``), comparing only the rows that can differ.

    Every group whose bytes are ``sealed`` holds rows the journal held at the seal's
    position: the check that wrote the seal found the live tables equal to the journal's
    state there, and equal bytes are equal rows. So a row can differ from the journal only
    if it lies in a group read (its bytes changed), or its key was written after the seal
    (its row then has to be the newer image), or it is gone (its table holds fewer rows
    than the journal says: the seal's count, plus the rows the entries after it added, less
    those they removed). Those rows are compared with the journal's last images as
    :func:`pinpoint` compares them (:func:`cutru.store.stored_bytes.odd_candidates`, the
    tables of :data:`BESIDE` in a helper process). The images of the rows of the groups
    read are first looked for among the entries that name their keys as subjects (an index
    lookup); where the result does not account for the difference (below), once more with
    those tables' images read from the whole journal.

    What is found must account for the whole difference: the head's state, plus the
    elements of the live rows found and less those of the journal's images of them, must
    be the state the groups summed to. The state digest is a homomorphic hash, so any row
    that differs and was not looked at leaves that sum off. None (the caller pinpoints
    among every row) where it is off, where a table cannot be compared so, where the seal
    is not of a position the journal has, or is more than :data:`SEALED_TAIL_MAX` entries
    behind it."""
    since = sealed.seq
    database = sqlite_file(conn)
    stop = conn.execute(select(func.max(journal.c.seq))).scalar_one() or 0
    head = journal_store.read_head(conn).seq
    names = [str(t.name) for t in PROJECTION]
    if database is None or since > head or stop - since > SEALED_TAIL_MAX \
            or not sqlite_json_ok(conn) or set(grouped.counts) != set(names):
        return None

    def spec(name: str) -> stored_bytes.Candidates:
        used = sealed.tables.get(name)  # the table's rows at ``since``, where sealed
        held = None if used is None or used.fingerprint != grouped.tables[name].fingerprint \
            else sum(rows for _digest, rows, _state in used.groups.values())
        return (name, storage_order_sql(name), grouped.ranges.get(name, []),
                grouped.counts[name], held)

    with collector_paused(), helper_process() as helper:
        for subjects in (True, False):  # the images by subject first, then the whole journal
            odd = _candidates(conn, helper, database, head, stop, since,
                              [spec(n) for n in names], subjects)
            if odd is not None and _accounted(odd, expected, grouped.state):
                break
        else:
            return None
    assert odd is not None
    differs: list[Differs] = []
    for name in names:
        try:
            settled = _settle(odd.get(name) or [])
        except ValueError:
            return None
        differs.extend(Differs(name, key, row, image, seq) for key, row, image, seq in settled)
    return _findings(differs)


def _candidates(conn: Connection, helper: Helper | None, database: str, head: int,
                stop: int, since: int, specs: list[stored_bytes.Candidates], subjects: bool
                ) -> dict[str, Odd | None] | None:
    """:func:`cutru.store.stored_bytes.odd_candidates` of the tables of ``specs``, those of
    :data:`BESIDE` in ``helper`` where there is one; None where any table's could not be
    had."""
    future = None
    if helper is not None:
        with suppress(HelperFailed):
            future = helper.submit(stored_bytes.compare_candidates, database, HEAD_SEQ_SQL,
                                   head, stop, since, [s for s in specs if s[0] in BESIDE],
                                   subjects)
    raw = cast(sqlite3.Connection, conn.connection.dbapi_connection)
    odd = stored_bytes.odd_candidates(raw, stop, since, [
        s for s in specs if future is None or s[0] not in BESIDE], subjects=subjects)
    if future is not None and odd is not None:
        try:
            theirs = future.result()
        except HelperFailed:
            theirs = None
        odd = None if theirs is None else {**odd, **theirs}
    return None if odd is None or any(rows is None for rows in odd.values()) else odd


def _accounted(odd: dict[str, Odd | None], expected: LtHash, state: LtHash) -> bool:
    """Whether the rows found account for the whole difference: ``expected`` (the journal's
    state), plus the elements of the live rows found and less those of the journal's
    images of them, is ``state`` (what the live tables sum to)."""
    got = expected.copy()
    for name, rows in odd.items():
        for key, data, image, _seq in rows or ():
            if data is not None:
                got.add(row_element(name, key, data))
            if image is not None:
                got.remove(row_element(name, key, image))
    return got == state


def _check_grouped(conn: Connection, report: Report, head: int, expected: LtHash,
                   ready: tuple[str, seals.Seals | None], signer: SigningKey | None) -> bool:
    """The live tables summed by page groups (:func:`cutru.store.seals.grouped_state`)
    against ``expected``, the state at the journal head ``head`` that ``conn``'s snapshot
    holds; False where groups could not be used."""
    database, sealed = ready
    grouped = seals.grouped_state(database, head, sealed)
    if grouped is None:
        return False
    report.rows, report.digest = grouped.rows, grouped.state.digest()
    report.groups, report.groups_read = grouped.groups, grouped.read
    if grouped.state != expected:
        found = None
        if sealed is not None and grouped.read < grouped.groups:  # the seal spared rows
            found = _pinpoint_grouped(conn, grouped, expected, sealed)
            report.pinpointed_by_groups = found is not None
        report.problems.extend((pinpoint(conn) if found is None else found) or [Problem(
            "projection", "the live tables do not give the journal's state digest")])
    elif signer is not None and grouped.read:  # any table unsealed has all its groups read
        with suppress(OSError):  # a directory this process may not write: no seal, no harm
            seals.save(database, seals.Seals(head, expected.digest(), grouped.tables), signer)
    return True
