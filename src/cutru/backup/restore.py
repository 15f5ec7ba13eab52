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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cutru.backup.archive import list_segments, load_segment, segment_name
from cutru.backup.repository import Repository
from cutru.backup.snapshot import (
    CHECKPOINT_STREAM,
    JOURNAL_STREAM,
    KIND,
    Position,
    SnapshotInfo,
    StoredEntry,
    load_snapshot,
    read_stream,
)
from cutru.errors import (
    CheckpointInvalid,
    InputError,
    IntegrityFailure,
    NotFound,
    ProjectionMismatch,
    RepositoryDamaged,
)
from cutru.journal import canonical
from cutru.journal.entry import GENESIS, Entry
from cutru.journal.signing import SignedCheckpoint, verify_checkpoint
from cutru.store import audit_store, journal_store, migrate
from cutru.store.bulk import deferred_indexes, insert_many
from cutru.store.engine import Database
from cutru.store.projection import projection_state
from cutru.store.rows import layout, replace_rows
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

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "duration_ms": self.duration_ms,
                "entries": self.entries, "position": self.position.to_dict(),
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
    migrate.upgrade(target_db)
    where = f"snapshots/{name}"
    with target_db.begin_fill() as conn:
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
            replay_started = time.monotonic()
            if segments and (upto is None or upto > base.seq):
                last = _apply_segments(conn, repo, snap, last, upto, public_keys, used,
                                       progress, generation)
            replay_ms = int((time.monotonic() - replay_started) * 1000)
        position = Position(last.seq, last.hash, last.ts, last.digest) if last.seq > base.seq \
            else base
        if upto is not None and position.seq != upto:
            raise NotFound(f"the archive continues snapshot {name} only to entry "
                           f"{position.seq}, not to {upto}", field="upto",
                           rule="backup.restore_position")
        state, count = projection_state(conn)
        if state.digest() != position.state_digest:
            raise ProjectionMismatch(
                f"the restored tables give state digest {state.digest()}, not the digest "
                f"{position.state_digest} recorded at entry {position.seq}: restore refused",
                expected=position.state_digest, got=state.digest())
        conn.execute(update(journal_head).where(journal_head.c.id == 1).values(
            seq=position.seq, hash=position.chain_head, ts=position.ts,
            lthash=state.to_bytes()))
    return RestoreResult(name, position, state.digest(), count, position.seq, used,
                         int((time.monotonic() - started) * 1000), replay_ms)


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
                row = canonical.loads(line)
                try:
                    batch.append(lay.values(row))
                except KeyError:  # a column added since the snapshot was taken
                    batch.append(tuple(row.get(n) for n in lay.names))
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
        conn, [tuple(r[c] for c in journal_store.COLUMNS) for r in (e.row() for e in entries)],
        [(s, e.seq) for e in entries for s in e.subjects])


def _checkpoint_row(cp: SignedCheckpoint) -> dict[str, Any]:
    c = cp.checkpoint
    return {"seq": c.seq, "chain_head": c.chain_head, "state_digest": c.state_digest,
            "created_at": c.created_at, "key_id": c.key_id, "signature": cp.signature}


def _apply_segments(conn: Connection, repo: Repository, snap: SnapshotInfo, last: _Last,
                    upto: int | None, public_keys: Mapping[str, bytes], used: list[str],
                    progress: Progress, generation: int | None) -> _Last:
    """Replay archived entries after the snapshot, following the hash chain from it. The
    rows take their final images at the end, in bulk (after-images are whole rows); the
    digest recomputed from the tables then proves the result."""
    final: dict[tuple[str, str], Any] = {}
    for name, entries in continuation(repo, snap, public_keys, upto, generation):
        used.append(name)
        applied = []
        for entry in entries:
            if entry.seq <= last.seq:
                continue
            if upto is not None and entry.seq > upto:
                break
            for change in entry.changes:
                final[(change.table, change.key)] = change.after
            applied.append(entry)
            last = _Last(entry.seq, entry.hash, entry.ts, entry.digest)
        journal_store.insert_rows(conn, [journal_store.journal_row(e) for e in applied],
                                  [(s, e.seq) for e in applied for s in e.subjects])
        progress(len(applied))
    replace_rows(conn, final)
    return last


def continuation(repo: Repository, snap: SnapshotInfo, public_keys: Mapping[str, bytes],
                 upto: int | None = None, generation: int | None = None
                 ) -> Iterator[tuple[str, list[Entry]]]:
    """The segments that continue ``snap``, in order, each loaded and checked: from the
    snapshot's position, the next segment is one holding the following entry whose ``prev``
    is the hash reached so far (``generation`` first if given, else the snapshot's, then
    newer ones). Stops where no segment continues the chain (or at ``upto``); a damaged
    candidate refuses."""
    names = list_segments(repo)
    prefer = generation if generation is not None else snap.generation
    seq, head = snap.position.seq, snap.position.chain_head
    while upto is None or seq < upto:
        candidates = sorted((s for s in names if s.first <= seq + 1 <= s.last),
                            key=lambda s: (s.generation == prefer, s.generation,
                                           s.last), reverse=True)
        problem: IntegrityFailure | NotFound | None = None
        chosen: tuple[str, list[Entry]] | None = None
        for seg in candidates:
            name = segment_name(seg)
            try:
                _header, entries = load_segment(repo, name, public_keys)
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
        seq, head = entries[-1].seq, entries[-1].hash


def restorable_snapshot(repo: Repository, public_keys: Mapping[str, bytes]) -> SnapshotInfo:
    """The newest snapshot (what the restore drill restores)."""
    for name in reversed(repo.list_manifests()):
        manifest = repo.load_manifest(name, public_keys)
        if manifest.kind == KIND:
            return SnapshotInfo.from_manifest(manifest)
    raise NotFound("the repository holds no snapshot yet: run `cutru backup snapshot`",
                   field="snapshot", rule="backup.no_snapshot")

