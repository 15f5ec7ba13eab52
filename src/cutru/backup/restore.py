"""Restoring a snapshot, and the archived segments after it, into a new database.

:func:`restore_snapshot` rebuilds a registry from a signed snapshot manifest plus the
journal segments that continue it up to a position, in **one transaction** of an empty
database, and commits only if the state digest recomputed from the restored tables equals
the digest recorded at that position (signed in the snapshot manifest, or reached through
the hash chain from it to a segment's signed checkpoint). Anything missing, damaged, unsigned
or inconsistent refuses the restore with a clear error and leaves the database without a
single restored row: it never returns wrong data. ``cutru backup verify --restore-test``
uses it as the restore drill.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, insert, select, update

from cutru.backup import naming, pages
from cutru.backup.archive import (
    Linked,
    decode_segment,
    list_segments,
    load_segment,
    read_segment,
    segment_name,
)
from cutru.backup.repository import Repository
from cutru.backup.snapshot import (
    CHECKPOINT_STREAM,
    JOURNAL_STREAM,
    KIND,
    LAYOUT_PAGES,
    Position,
    ReplayEntry,
    SnapshotInfo,
    StoredEntry,
    blob_ids,
    load_snapshot,
    parse_replay_line,
    read_blobs,
    read_stream,
)
from cutru.errors import (
    CheckpointInvalid,
    CutruError,
    InputError,
    IntegrityFailure,
    NotFound,
    ProjectionMismatch,
    RepositoryDamaged,
)
from cutru.journal import canonical
from cutru.journal.entry import GENESIS
from cutru.journal.helper import Helper, HelperFailed, helper_process
from cutru.journal.lthash import LtHash
from cutru.journal.signing import SignedCheckpoint, verify_checkpoint
from cutru.runtime import collector_paused
from cutru.store import audit_store, journal_store, migrate, page_groups, seals
from cutru.store.bulk import deferred_indexes, insert_many
from cutru.store.engine import Database
from cutru.store.projection import projection_state
from cutru.store.rows import NetChanges, layout, row_values
from cutru.store.schema import PROJECTION, checkpoints, journal_head

BATCH = 2000
#: Tables whose secondary indexes are built after their rows: the projection's, whose keys
#: (blind indexes of ID numbers, names) arrive in random order. Not the journal's: their keys
#: (actor, time) arrive almost in order, so inserting them as the entries come costs little,
#: where building them after would read the whole journal once per index.
BULK_TABLES = tuple(t.name for t in PROJECTION)
#: SQLite page cache of the connection that restores (KiB, as ``PRAGMA cache_size`` takes it
#: negative): the default 2 MiB makes every upsert of a replay and every index build a trip to
#: the operating system once the tables outgrow it.
RESTORE_CACHE_KIB = 256 * 1024

#: ``progress(done)``: ``done`` more rows or entries were restored.
Progress = Callable[[int], None]


def _no_progress(_done: int) -> None:
    return None


@dataclass(frozen=True)
class RestoreResult:
    snapshot: str
    position: Position  # the position restored, with the digest recorded there
    digest: str  # recomputed from the restored tables (equal to position.state_digest)
    rows: int
    entries: int
    segments: list[str] = field(default_factory=list)
    duration_ms: int = 0
    replay_ms: int = 0  # of which: loading and applying the archived entries
    page_groups: int = 0  # proved by page groups (0: every row read)
    page_groups_read: int = 0  # of which read as rows: their bytes matched no seal

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "duration_ms": self.duration_ms,
                "entries": self.entries, "page_groups": self.page_groups,
                "page_groups_read": self.page_groups_read,
                "position": self.position.to_dict(),
                "rows": self.rows, "segments": len(self.segments), "snapshot": self.snapshot}


def restore_snapshot(repo: Repository, name: str, target_db: Database, *,
                     public_keys: Mapping[str, bytes], upto: int | None = None,
                     segments: bool = True, progress: Progress = _no_progress,
                     generation: int | None = None) -> RestoreResult:
    """Restore snapshot ``name`` into ``target_db`` (created or upgraded to the current
    schema; it must hold no registry yet), then apply archived entries up to journal
    position ``upto`` (None: as far as the archive continues the snapshot; ``segments=False``:
    the snapshot alone), following archive ``generation`` where histories part (default: the
    snapshot's own, then the newest). The caller holds a shared repository lock."""
    started = time.monotonic()
    snap = load_snapshot(repo, name, public_keys)
    base = snap.position
    if upto is not None and upto < base.seq:
        raise InputError(f"snapshot {name} holds the registry at entry {base.seq}, after the "
                         f"position {upto} asked for: restore an older snapshot",
                         field="upto", rule="backup.restore_position")
    if not segments and upto not in (None, base.seq):
        raise InputError("a position after the snapshot needs the archived segments",
                         field="upto", rule="backup.restore_position")
    where = f"snapshots/{name}"
    if snap.layout == LAYOUT_PAGES:
        return _restore_pages(repo, snap, target_db, public_keys=public_keys, upto=upto,
                              segments=segments, progress=progress, generation=generation,
                              started=started)
    migrate.upgrade(target_db)
    replay = segments and (upto is None or upto > base.seq)
    with ExitStack() as stack, target_db.begin_fill() as conn:
        stack.enter_context(collector_paused())
        # the first segment is decoded in a helper while the tables load here
        load = _replay_loader(stack, repo, snap, public_keys, replay, upto, generation)
        journal_store.init_head(conn)
        audit_store.init_state(conn)
        _require_empty(conn, target_db)
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"PRAGMA cache_size = -{RESTORE_CACHE_KIB}")
        used: list[str] = []
        with deferred_indexes(conn, BULK_TABLES):
            _restore_tables(conn, repo, snap, where, progress)
            cps = _read_checkpoints(repo, snap, where, public_keys)
            last = _restore_journal(conn, repo, snap, where, cps, progress)
            if cps:
                conn.execute(insert(checkpoints), [_checkpoint_row(cp) for cp in cps])
            last, replay_ms = _replay(conn, snap, last, upto, public_keys, used, progress,
                                      generation, load if replay else None)
        position, state, count = _prove(conn, snap, last, upto)
    return RestoreResult(name, position, state.digest(), count, position.seq, used,
                         int((time.monotonic() - started) * 1000), replay_ms)


def _restore_pages(repo: Repository, snap: SnapshotInfo, target_db: Database, *,
                   public_keys: Mapping[str, bytes], upto: int | None, segments: bool,
                   progress: Progress, generation: int | None, started: float
                   ) -> RestoreResult:
    """A pages snapshot: its database file written in place of ``target_db``'s (a SQLite
    file that does not exist or holds no registry), the archived entries after it replayed
    in one transaction, then the state digest recomputed from the tables and proved. On any
    failure the file is removed and an empty one (the current schema, no registry) takes its
    place: nothing restored is left, as a rows restore leaves nothing."""
    where = f"snapshots/{snap.name}"
    base = snap.position
    path = _clear_target(target_db)
    info = snap.stream(pages.FILE_STREAM)
    page = max(1, info.bytes // max(1, info.rows))
    replay = segments and (upto is None or upto > base.seq)
    used: list[str] = []
    try:
        with ExitStack() as stack:
            stack.enter_context(collector_paused())
            # the first segment is decoded in a helper while the file is written here
            load = _replay_loader(stack, repo, snap, public_keys, replay, upto, generation)
            writers = stack.enter_context(pages.file_writers(repo, info.bytes))
            # with nothing to replay, the file is proved by page groups while it is synced,
            # with the snapshot's seal, read here while the file is written
            pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="cutru-seal"))
            sealed = None if replay else pool.submit(_seal_of, repo, snap, public_keys)
            check = None if sealed is None else (
                lambda tmp: _grouped(tmp, snap, sealed.result(), writers))
            if writers:
                grouped = pages.write_file_by(writers, repo, blob_ids(repo, info, where),
                                              path, info.bytes, info.blobs, where,
                                              lambda n: progress(n // page), check)
            else:
                grouped = pages.write_file(read_blobs(repo, info, where), path, info.bytes,
                                           where, lambda n: progress(n // page), check)
            migrate.upgrade(target_db)  # a snapshot of an older schema is brought up to date
            # the file is new and nothing else uses it: the transaction that replays the
            # archive writes its pages once, into the file, instead of through a WAL
            conn = stack.enter_context(target_db.begin_fill())
            conn.exec_driver_sql(f"PRAGMA cache_size = -{RESTORE_CACHE_KIB}")
            head = journal_store.read_head(conn)
            if (head.seq, head.hash, head.state.digest()) != (
                    base.seq, base.chain_head, base.state_digest):
                raise RepositoryDamaged(f"{where}: its database file does not hold the "
                                        f"position its manifest signs (entry {base.seq})",
                                        object=where)
            last = _Last(base.seq, base.chain_head, base.ts, base.state_digest)
            last, replay_ms = _replay(conn, snap, last, upto, public_keys, used, progress,
                                      generation, load if replay else None)
            # nothing replayed: this transaction has written nothing, and the tables it
            # proves are the file's, which a helper's connection reads as well
            position, state, count = _prove(conn, snap, last, upto,
                                            beside=last.seq == base.seq, grouped=grouped)
    except BaseException:
        target_db.dispose()
        pages.remove_database(path)
        with suppress(CutruError):  # left as a rows restore leaves it: empty, schema current
            migrate.upgrade(target_db)
        raise
    return RestoreResult(snap.name, position, state.digest(), count, position.seq, used,
                         int((time.monotonic() - started) * 1000), replay_ms,
                         grouped.groups if grouped else 0, grouped.read if grouped else 0)


def _seal_of(repo: Repository, snap: SnapshotInfo, public_keys: Mapping[str, bytes]
             ) -> seals.Seals | None:
    """The seal the snapshot carries, where there is one and its signature verifies; None
    otherwise (a stream that cannot be read loses only the shortcut: ``backup verify``
    reports it)."""
    info = snap.streams.get(pages.SEALS_STREAM)
    if info is None:
        return None
    try:
        data = b"".join(read_blobs(repo, info, f"snapshots/{snap.name}"))
    except RepositoryDamaged:
        return None
    return seals.parse(data, public_keys)


def _grouped(path: Path, snap: SnapshotInfo, sealed: seals.Seals | None,
             helpers: list[Helper]) -> seals.Grouped | None:
    """The tables of the restored file ``path`` summed by page groups
    (:func:`seals.grouped_state`, in ``helpers`` where there are two: the writers, already
    started), the groups of ``sealed`` taken as sealed where their bytes are (without a
    seal every group is read); None where groups cannot be used (the caller then reads
    every row)."""
    if not page_groups.settle_wal(str(path)):
        return None
    return seals.grouped_state(str(path), snap.position.seq, sealed,
                               helpers if len(helpers) == 2 else None)


def _replay_loader(stack: ExitStack, repo: Repository, snap: SnapshotInfo,
                   public_keys: Mapping[str, bytes], replay: bool, upto: int | None,
                   generation: int | None) -> _Loader:
    """The loader of the segments to replay after ``snap``: with a helper process (entered
    on ``stack``) for a long replay, already decoding the first segment, so that it is ready
    when the snapshot's own part is restored."""
    names = list_segments(repo) if replay else []
    reach = max((s.last for s in names), default=0)
    base = snap.position.seq
    helper = stack.enter_context(helper_process()) if replay and min(
        reach, upto or reach) - base >= HELPER_MIN_ENTRIES else None
    prefer = generation if generation is not None else snap.generation
    load = _Loader(repo, public_keys, helper, names, prefer, upto)
    if helper is not None:
        load.prime(base)
    return load


def _replay(conn: Connection, snap: SnapshotInfo, last: _Last, upto: int | None,
            public_keys: Mapping[str, bytes], used: list[str], progress: Progress,
            generation: int | None, load: _Loader | None) -> tuple[_Last, int]:
    """:func:`_apply_segments` when there is a replay (``load``), and how long it took
    (ms)."""
    started = time.monotonic()
    if load is not None:
        last = _apply_segments(conn, snap, last, upto, public_keys, used, progress,
                               generation, load)
    return last, int((time.monotonic() - started) * 1000)


def _prove(conn: Connection, snap: SnapshotInfo, last: _Last, upto: int | None, *,
           beside: bool = False, grouped: seals.Grouped | None = None
           ) -> tuple[Position, LtHash, int]:
    """The position reached (it must be ``upto`` when given), proved: the state digest
    recomputed from the restored tables must be the one recorded there. The journal head is
    set to it. ``beside``: nothing is written in ``conn``'s transaction yet, so a helper
    may read tables on its own connection (see :func:`projection_state`). ``grouped``: the
    tables already summed by page groups, at the snapshot's position, with nothing
    replayed."""
    base = snap.position
    position = Position(last.seq, last.hash, last.ts, last.digest) if last.seq > base.seq \
        else base
    if upto is not None and position.seq != upto:
        raise NotFound(f"the archive continues snapshot {snap.name} only to entry "
                       f"{position.seq}, not to {upto}", field="upto",
                       rule="backup.restore_position")
    state, count = (grouped.state, grouped.rows) if grouped is not None and \
        position.seq == base.seq else projection_state(conn, beside=beside)
    if state.digest() != position.state_digest:
        raise ProjectionMismatch(
            f"the restored tables give state digest {state.digest()}, not the digest "
            f"{position.state_digest} recorded at entry {position.seq}: restore refused",
            expected=position.state_digest, got=state.digest())
    conn.execute(update(journal_head).where(journal_head.c.id == 1).values(
        seq=position.seq, hash=position.chain_head, ts=position.ts, lthash=state.to_bytes()))
    return position, state, count


def _clear_target(db: Database) -> Path:
    """The file a pages snapshot is restored into: ``db``'s, which must be a SQLite file
    that does not exist or holds no registry (an empty schema is removed, with its WAL)."""
    path = pages.sqlite_path(db)
    if path is None:
        raise InputError("a pages snapshot (a SQLite database file) restores into a SQLite "
                         "file only; to move a registry to PostgreSQL, restore it into a "
                         "SQLite file, then take a rows snapshot of that "
                         "(`cutru backup snapshot --layout rows`) and restore that",
                         field="target", rule="backup.pages_need_sqlite")
    if path.exists():
        with db.read() as conn:
            if conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                    "AND name = 'journal'").first() is not None:
                _require_empty(conn, db)
        db.dispose()
        pages.remove_database(path)
    return path


@dataclass
class _Last:
    """The last restored entry (the snapshot's position at first)."""

    seq: int
    hash: str
    ts: str
    digest: str


def _require_empty(conn: Connection, db: Database) -> None:
    if journal_store.last_seq(conn) or any(
        conn.execute(select(t.c.key).limit(1)).first() is not None for t in PROJECTION
    ):
        where = db.url.split("://", 1)[0]
        raise InputError(f"the {where} database to restore into already holds a registry; "
                         "restore into a new, empty database", field="target",
                         rule="backup.restore_target_empty")


def _restore_tables(conn: Connection, repo: Repository, snap: SnapshotInfo, where: str,
                    progress: Progress) -> int:
    count = 0
    for table in PROJECTION:
        lay = layout(table.name)
        batch: list[tuple[Any, ...]] = []
        for line in read_stream(repo, snap.stream(table.name), where):
            try:
                # a column added since the snapshot was taken is None
                batch.append(row_values(table.name, canonical.loads(line)))
            except (ValueError, TypeError, AttributeError):
                raise RepositoryDamaged(f"{where}: a {table.name} row is malformed",
                                        object=where) from None
            if len(batch) >= BATCH:
                insert_many(conn, table.name, lay.names, batch)
                count += len(batch)
                progress(len(batch))
                batch = []
        if batch:
            insert_many(conn, table.name, lay.names, batch)
            count += len(batch)
            progress(len(batch))
    return count


def _read_checkpoints(repo: Repository, snap: SnapshotInfo, where: str,
                      public_keys: Mapping[str, bytes]) -> list[SignedCheckpoint]:
    found = []
    for line in read_stream(repo, snap.stream(CHECKPOINT_STREAM), where):
        try:
            cp = SignedCheckpoint.from_dict(canonical.decode(line))
            verify_checkpoint(cp, public_keys)
        except (InputError, CheckpointInvalid, TypeError, AttributeError) as exc:
            detail = exc.message if isinstance(exc, CheckpointInvalid) else "malformed"
            raise RepositoryDamaged(f"{where}: a stored checkpoint is invalid ({detail})",
                                    object=where) from None
        found.append(cp)
    return found


def _restore_journal(conn: Connection, repo: Repository, snap: SnapshotInfo, where: str,
                     cps: list[SignedCheckpoint], progress: Progress) -> _Last:
    signed = {cp.checkpoint.seq: cp.checkpoint for cp in cps}
    last = _Last(0, GENESIS, "", "")
    batch: list[StoredEntry] = []
    for line in read_stream(repo, snap.stream(JOURNAL_STREAM), where):
        entry = StoredEntry.from_line(line, where)
        if entry.seq != last.seq + 1 or entry.prev != last.hash:
            raise RepositoryDamaged(f"{where}: journal entry {last.seq + 1} is missing or does "
                                    "not link to its predecessor", object=where)
        cp = signed.get(entry.seq)
        if cp is not None and (cp.chain_head, cp.state_digest) != (entry.hash, entry.digest):
            raise RepositoryDamaged(f"{where}: entry {entry.seq} differs from what its signed "
                                    "checkpoint says", object=where)
        last = _Last(entry.seq, entry.hash, entry.ts, entry.digest)
        batch.append(entry)
        if len(batch) >= BATCH:
            _insert_entries(conn, batch)
            progress(len(batch))
            batch = []
    _insert_entries(conn, batch)
    progress(len(batch))
    pos = snap.position
    if (last.seq, last.hash) != (pos.seq, pos.chain_head) or (
            pos.seq and last.digest != pos.state_digest):
        raise RepositoryDamaged(f"{where}: its journal does not end at the position its "
                                f"manifest signs (entry {pos.seq})", object=where)
    if not pos.seq:
        last.digest = pos.state_digest
    return last


def _insert_entries(conn: Connection, entries: list[StoredEntry]) -> None:
    """Journal rows and their subjects, with the driver's ``executemany``."""
    journal_store.insert_rows(
        conn, [e.values() for e in entries],
        [(s, e.seq) for e in entries for s in e.subjects])


def _checkpoint_row(cp: SignedCheckpoint) -> dict[str, Any]:
    c = cp.checkpoint
    return {"seq": c.seq, "chain_head": c.chain_head, "state_digest": c.state_digest,
            "created_at": c.created_at, "key_id": c.key_id, "signature": cp.signature}


def decode_for_replay(name: str, plain: bytes, public_keys: Mapping[str, bytes]
                      ) -> list[ReplayEntry]:
    """:func:`~cutru.backup.archive.decode_segment` (every check it makes) with its entries
    in the form a replay writes them (:func:`~cutru.backup.snapshot.parse_replay_line`). A
    module-level function of bytes, so that a helper process can run it while this one
    writes the segment before."""
    return decode_segment(name, plain, public_keys, parse_replay_line)[1]


def ready() -> None:
    """Nothing: sent to a helper process first, so that it imports this module (and what
    the decoding needs) while the snapshot's tables load, not when the first segment comes."""


@dataclass(frozen=True)
class ReplaySegment:
    """A decoded segment: its entries, and its lines (each entry's changes are cut out of
    its line where they are written)."""

    entries: list[ReplayEntry]
    lines: list[bytes]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> ReplayEntry:
        return self.entries[i]


class _Loader:
    """Loads segments for a replay: unsealed here, decoded (:func:`decode_for_replay`) in a
    helper process when there is one. Loading a segment also sends the segments the chain
    most likely goes on with (the first :func:`candidates` after it, then the first after
    that, up to :data:`LOOKAHEAD` segments) to the helper, so that they are decoded while
    this process writes: guesses, which :func:`continuation` still checks link by link (a
    wrong one costs a decode, never a wrong replay)."""

    def __init__(self, repo: Repository, public_keys: Mapping[str, bytes],
                 helper: Helper | None, names: list[naming.SegmentName], prefer: int | None,
                 upto: int | None) -> None:
        self.repo, self.public_keys, self.helper = repo, public_keys, helper
        self.names, self.prefer, self.upto = names, prefer, upto
        self.ahead: dict[str, tuple[bytes, Future[list[ReplayEntry]]]] = {}

    def prime(self, seq: int) -> None:
        """Send the likeliest segments after entry ``seq`` to the helper now, until
        :data:`LOOKAHEAD` of them are there."""
        while self.helper is not None and (self.upto is None or seq < self.upto):
            guess = candidates(self.names, seq, self.prefer)
            if not guess:
                return
            name = segment_name(guess[0])
            if name not in self.ahead:
                if len(self.ahead) >= LOOKAHEAD:
                    return
                try:
                    self.ahead[name] = self._start(name)
                except CutruError:  # read again, and refused then, if it is wanted
                    return
            seq = guess[0].last

    def __call__(self, name: str) -> ReplaySegment:
        started = self.ahead.pop(name, None) or self._start(name)
        self.prime(naming.parse_segment_name(name).last)
        plain, future = started
        try:
            entries = future.result()
        except HelperFailed:
            self.helper = None
            entries = decode_for_replay(name, plain, self.public_keys)
        lines = plain.split(b"\n")
        return ReplaySegment(entries, lines[1:-1])

    def _start(self, name: str) -> tuple[bytes, Future[list[ReplayEntry]]]:
        plain = read_segment(self.repo, name)
        if self.helper is not None:
            try:
                return plain, self.helper.submit(decode_for_replay, name, plain,
                                                 dict(self.public_keys))
            except HelperFailed:
                self.helper = None
        future: Future[list[ReplayEntry]] = Future()
        try:
            future.set_result(decode_for_replay(name, plain, self.public_keys))
        except CutruError as exc:
            future.set_exception(exc)
        return plain, future


#: With at least this many archived entries after the snapshot, a helper process decodes
#: segments while this one writes.
HELPER_MIN_ENTRIES = 2000
#: Segments sent to the helper ahead of the one being written (the first ones while the
#: snapshot's tables load): a segment holds about 1 MiB of compressed journal, so this bounds
#: what waits decoded in memory, and keeps the helper busy while this process writes.
LOOKAHEAD = 4


def _apply_segments(conn: Connection, snap: SnapshotInfo, last: _Last, upto: int | None,
                    public_keys: Mapping[str, bytes], used: list[str], progress: Progress,
                    generation: int | None, load: _Loader) -> _Last:
    """Replay archived entries after the snapshot, following the hash chain from it. Each
    segment's journal rows are written as it comes (``load`` decodes the next one meanwhile
    in its helper process, when it has one); the projection rows go from their image
    before the stretch to their final one at the end, in bulk (:class:`NetChanges`); the
    digest recomputed from the tables then proves the result."""
    net = NetChanges()
    for name, segment in continuation(load.repo, snap, public_keys, upto, generation,
                                      names=load.names, load=load):
        used.append(name)
        assert isinstance(segment, ReplaySegment)
        todo = [(e, line) for e, line in zip(segment.entries, segment.lines, strict=True)
                if e.seq > last.seq and (upto is None or e.seq <= upto)]
        if not todo:
            continue
        for e, _line in todo:
            for d in e.changes:
                net.add(d)
        journal_store.insert_rows(conn, [e.row(line) for e, line in todo],
                                  [(s, e.seq) for e, _line in todo for s in e.subjects])
        e = todo[-1][0]
        last = _Last(e.seq, e.hash, e.ts, e.digest)
        progress(len(todo))
    net.apply(conn)
    return last


class _Chain(Protocol):
    """A loaded segment as :func:`continuation` reads it: its entries' places in the chain."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int, /) -> Linked: ...


def candidates(names: list[naming.SegmentName], seq: int, prefer: int | None
               ) -> list[naming.SegmentName]:
    """The segments that hold entry ``seq + 1``, the likeliest continuation first: those of
    generation ``prefer``, then newer generations, then the longest."""
    return sorted((s for s in names if s.first <= seq + 1 <= s.last),
                  key=lambda s: (s.generation == prefer, s.generation, s.last), reverse=True)


def continuation(repo: Repository, snap: SnapshotInfo, public_keys: Mapping[str, bytes],
                 upto: int | None = None, generation: int | None = None, *,
                 names: list[naming.SegmentName] | None = None,
                 load: Callable[[str], _Chain] | None = None
                 ) -> Iterator[tuple[str, Any]]:
    """The segments that continue ``snap``, in order, each loaded and checked: from the
    snapshot's position, the next segment is one holding the following entry whose ``prev``
    is the hash reached so far (``generation`` first if given, else the snapshot's, then
    newer ones). Stops where no segment continues the chain (or at ``upto``); a damaged
    candidate refuses. ``names``: the segments to choose from (default: every one in the
    repository). Segments come as ``load(name)`` gives them (default: the list of their
    entries, :func:`~cutru.backup.archive.load_segment`)."""
    if load is None:
        def load(name: str) -> _Chain:
            return load_segment(repo, name, public_keys)[1]
    if names is None:
        names = list_segments(repo)
    prefer = generation if generation is not None else snap.generation
    seq, head = snap.position.seq, snap.position.chain_head
    while upto is None or seq < upto:
        problem: IntegrityFailure | NotFound | None = None
        chosen: tuple[str, _Chain] | None = None
        for seg in candidates(names, seq, prefer):
            name = segment_name(seg)
            try:
                entries = load(name)
            except (IntegrityFailure, NotFound) as exc:
                problem = problem or exc
                continue
            if entries[seq + 1 - seg.first].prev == head:
                chosen = (name, entries)
                break
        if chosen is None:
            if problem is not None:
                raise problem
            return
        yield chosen
        entries = chosen[1]
        seq, head = entries[len(entries) - 1].seq, entries[len(entries) - 1].hash


def restorable_snapshot(repo: Repository, public_keys: Mapping[str, bytes]) -> SnapshotInfo:
    """The newest snapshot (what the restore drill restores)."""
    for name in reversed(repo.list_manifests()):
        manifest = repo.load_manifest(name, public_keys)
        if manifest.kind == KIND:
            return SnapshotInfo.from_manifest(manifest)
    raise NotFound("the repository holds no snapshot yet: run `cutru backup snapshot`",
                   field="snapshot", rule="backup.no_snapshot")

