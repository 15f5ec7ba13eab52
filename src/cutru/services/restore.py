"""Point-in-time restore: plan, apply into a new database, and swap it in (docs/operations.md).

``plan`` reads only the backup repository (the live database may be gone): it turns a time or
a journal position into the entry it means, in every archive generation that holds it -- after
an earlier restore, the archive holds two histories past the point where they parted, and a
target they disagree on is refused as ambiguous unless a generation is chosen -- then picks
the newest snapshot whose chain reaches that entry, and the segments to replay. It touches
nothing.

``apply`` restores that plan into a **new** database (a SQLite file, or a PostgreSQL schema)
and commits only when the recomputed state digest equals the digest recorded at the target,
whose entry is signed by its segment's checkpoint (or by the snapshot manifest).

``swap_in`` makes a restored database the live one. The live one is kept under another name,
never deleted, and what is not residence data (accounts, the audit trail, grants, incidents) is
carried over from it. The swap is recorded in an intent file first, so that a crash at any
moment leaves the live database either untouched or fully replaced (see
:meth:`cutru.services.registry.Registry.finish_swap`).
"""

from __future__ import annotations

import bisect
import fcntl
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select, text
from sqlalchemy.engine import make_url

from cutru.backup.archive import list_segments, load_segment, segment_name
from cutru.backup.repository import Repository
from cutru.backup.restore import RestoreResult, continuation, restore_snapshot
from cutru.backup.snapshot import SnapshotInfo, list_snapshots
from cutru.config import Settings
from cutru.errors import ConfigError, InputError, NotFound, ProjectionMismatch
from cutru.journal.entry import Entry
from cutru.recovery.integrity import Problem
from cutru.recovery.locate import local_time, parse_moment
from cutru.services.registry import fsync_dir, write_durably
from cutru.store import journal_store
from cutru.store.engine import Database
from cutru.store.projection import projection_state
from cutru.store.schema import OPERATIONAL, audit_state, meta

Progress = Callable[[int], None]


def _no_progress(_n: int) -> None:
    return None


@dataclass(frozen=True)
class Found:
    """The entry a target means in one history."""

    seq: int
    chain_head: str
    ts: str
    state_digest: str
    generation: int | None  # None: known from a snapshot manifest alone
    signed_by: str


@dataclass
class RestorePlan:
    asked: str
    seq: int
    chain_head: str
    ts: str
    state_digest: str
    generation: int | None
    signed_by: str
    snapshot: str
    snapshot_seq: int
    snapshot_ts: str
    segments: list[str] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)  # other histories' answers

    @property
    def replay(self) -> int:
        return self.seq - self.snapshot_seq

    def to_dict(self) -> dict[str, Any]:
        return {"asked": self.asked, "position": self.seq, "ts": self.ts,
                "local_time": local_time(self.ts) if self.ts else None,
                "chain_head": self.chain_head, "expected_digest": self.state_digest,
                "generation": f"{self.generation:016x}" if self.generation else None,
                "signed_by": self.signed_by, "snapshot": self.snapshot,
                "snapshot_position": self.snapshot_seq,
                "snapshot_local_time": local_time(self.snapshot_ts)
                if self.snapshot_ts else None,
                "segments": self.segments, "replay_entries": self.replay,
                "other_histories": self.others}


class _Archive:
    """The repository's snapshots and segments, segments loaded once each."""

    def __init__(self, repo: Repository, keys: Mapping[str, bytes]) -> None:
        self.repo, self.keys = repo, keys
        self.snapshots = list_snapshots(repo, keys)
        #: every segment, listed once (:func:`list_segments`' order)
        self.names = list_segments(repo)
        self.by_gen: dict[int, list[Any]] = {}
        for s in self.names:
            self.by_gen.setdefault(s.generation, []).append(s)
        self._loaded: dict[str, list[Entry]] = {}

    def load(self, name: str) -> list[Entry]:
        """The entries of segment ``name``, loaded and checked the first time only."""
        if name not in self._loaded:
            _header, entries = load_segment(self.repo, name, self.keys)
            self._loaded[name] = entries
        return self._loaded[name]

    def entries(self, seg: Any) -> list[Entry]:
        return self.load(segment_name(seg))

    def at_seq(self, gen: int, seq: int) -> Found | None:
        for seg in sorted(self.by_gen[gen], key=lambda s: -s.last):
            if seg.first <= seq <= seg.last:
                e = self.entries(seg)[seq - seg.first]
                return Found(e.seq, e.hash, e.ts, e.digest, gen,
                             f"segment {segment_name(seg)} (signed checkpoint at entry "
                             f"{seg.last}, hash-chained)")
        return None

    def at_time(self, gen: int, ts: str, strict: bool) -> Found | None:
        """The last entry of generation ``gen`` at or before ``ts`` (``strict``: before)."""
        segs = sorted(self.by_gen[gen], key=lambda s: (s.first, s.last))

        def ok(e: Entry) -> bool:
            return e.ts < ts if strict else e.ts <= ts

        lo, hi = 0, len(segs)  # find the last segment whose first entry is ok
        while lo < hi:
            mid = (lo + hi) // 2
            if ok(self.entries(segs[mid])[0]):
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            return None
        entries = self.entries(segs[lo - 1])
        stamps = [e.ts for e in entries]
        i = (bisect.bisect_left if strict else bisect.bisect_right)(stamps, ts) - 1
        e = entries[i]
        return self.at_seq(gen, e.seq)

    def extent(self) -> str:
        parts = [f"generation {g:016x}: entries {min(s.first for s in segs)}.."
                 f"{max(s.last for s in segs)}" for g, segs in sorted(self.by_gen.items())]
        parts += [f"snapshot {s.name} at entry {s.position.seq}" for s in self.snapshots]
        return "; ".join(parts) or "nothing"


def plan(repo: Repository, keys: Mapping[str, bytes], target: str, *, before: bool = False,
         generation: str | None = None, live: Database | None = None) -> RestorePlan:
    """The restore plan for ``target`` (a position or a time), from the repository. With
    ``live`` (the live database, when it can still be read), a target in the live journal's
    own history is preferred among the archive's histories, and one the archive holds only
    in another history is refused as ambiguous."""
    arch = _Archive(repo, keys)
    if not arch.snapshots:
        raise NotFound("the repository holds no snapshot: nothing to restore from",
                       field="to", rule="restore.point_reachable")
    gen = _generation(generation, arch)
    raw = target.strip()
    answers: list[Found] = []
    if raw.isdigit():
        seq = int(raw) - (1 if before else 0)
        if seq < 1:
            raise InputError("restoring to position 0 is an empty registry: use `cutru init`",
                             field="to", rule="restore.point_reachable")
        for g in arch.by_gen:
            found = arch.at_seq(g, seq)
            if found:
                answers.append(found)
        answers += [_snap_found(s) for s in arch.snapshots if s.position.seq == seq]
    else:
        ts = parse_moment(raw, field="to")
        for g in arch.by_gen:
            found = arch.at_time(g, ts, before)
            if found:
                answers.append(found)
        if not answers:
            older = [s for s in arch.snapshots
                     if (s.position.ts < ts if before else s.position.ts <= ts)]
            if older:
                answers.append(_snap_found(max(older, key=lambda s: s.position.seq)))
    asked = f"{target}{' (before)' if before else ''}"
    if gen is not None:
        answers = [a for a in answers if a.generation in (gen, None)]
    elif live is not None and answers:
        answers = _in_live_history(live, answers, asked)
    distinct = {(a.seq, a.chain_head): a for a in answers}
    if not distinct:
        raise NotFound(f"no backup reaches {asked}: the repository holds {arch.extent()}",
                       field="to", rule="restore.point_reachable")
    if len(distinct) > 1:
        listing = "; ".join(f"generation {a.generation:016x}: entry {a.seq} at "
                            f"{local_time(a.ts)}" if a.generation else
                            f"a snapshot: entry {a.seq}" for a in distinct.values())
        raise InputError(f"{asked} means different entries in different histories of the "
                         f"archive ({listing}): choose one with --generation",
                         field="to", rule="restore.point_ambiguous")
    chosen = next(iter(distinct.values()))
    others = [{"generation": f"{a.generation:016x}", "position": a.seq}
              for a in answers if a.generation not in (chosen.generation, None)]
    return _route(arch, chosen, asked, gen if gen is not None else chosen.generation, others)


def _in_live_history(live: Database, answers: list[Found], asked: str) -> list[Found]:
    try:
        with live.read() as conn:
            hashes = {a.seq: journal_store.get_entry(conn, a.seq) for a in answers}
    except ConfigError:  # the live database is gone or unreadable: the archive alone decides
        return answers
    if all(e is None for e in hashes.values()):
        return answers  # beyond the live journal (cut back?): the archive alone decides
    same = [a for a in answers if (e := hashes[a.seq]) is not None and e.hash == a.chain_head]
    if same:
        return same
    others = ", ".join(sorted({f"{a.generation:016x}" if a.generation else "a snapshot"
                               for a in answers}))
    raise InputError(f"{asked} in the live journal's history is not in the backup archive; "
                     f"the archive holds another history there ({others}): choose one with "
                     "--generation, or a point the archive holds", field="to",
                     rule="restore.point_ambiguous")


def _generation(text_: str | None, arch: _Archive) -> int | None:
    if text_ is None:
        return None
    try:
        gen = int(text_, 16)
    except ValueError:
        raise InputError("a generation is 16 hex digits (see `cutru backup list`)",
                         field="generation", rule="restore.generation_form") from None
    if gen not in arch.by_gen:
        raise NotFound(f"the archive has no generation {text_}", field="generation",
                       rule="restore.generation_exists")
    return gen


def _snap_found(s: SnapshotInfo) -> Found:
    p = s.position
    return Found(p.seq, p.chain_head, p.ts, p.state_digest, None,
                 f"snapshot manifest {s.name} (signed)")


def _route(arch: _Archive, target: Found, asked: str, gen: int | None,
           others: list[dict[str, Any]]) -> RestorePlan:
    """The newest snapshot from which the archive's hash chain reaches the target."""
    for snap in sorted(arch.snapshots, key=lambda s: -s.position.seq):
        pos = snap.position
        if pos.seq > target.seq:
            continue
        segs: list[str] = []
        head = pos.chain_head
        if pos.seq < target.seq:
            reached = pos.seq
            # the archive's listing and loaded segments, not the repository's again for
            # each snapshot tried
            for name, entries in continuation(arch.repo, snap, arch.keys, target.seq, gen,
                                              names=arch.names, load=arch.load):
                segs.append(name)
                last = entries[min(target.seq, entries[-1].seq) - entries[0].seq]
                reached, head = last.seq, last.hash
            if reached != target.seq:
                continue
        if head != target.chain_head:
            continue
        return RestorePlan(asked, target.seq, target.chain_head, target.ts,
                           target.state_digest, target.generation, target.signed_by,
                           snap.name, pos.seq, pos.ts, segs, others)
    raise NotFound(f"no snapshot leads to entry {target.seq} through the archive "
                   f"(the repository holds {arch.extent()})", field="to",
                   rule="restore.point_reachable")


def apply(repo: Repository, keys: Mapping[str, bytes], p: RestorePlan, target_db: Database,
          progress: Progress = _no_progress) -> RestoreResult:
    """Restore ``p`` into the new database; refuses unless the result is exactly the planned
    entry with its recorded digest."""
    result = restore_snapshot(repo, p.snapshot, target_db, public_keys=keys, upto=p.seq,
                              progress=progress, generation=p.generation)
    if (result.position.chain_head, result.digest) != (p.chain_head, p.state_digest):
        raise ProjectionMismatch(
            f"the restore reached entry {p.seq} by another history than planned: refused",
            expected=p.state_digest, got=result.digest)
    return result


# --- where a restore goes ----------------------------------------------------------------------


def stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S")


def new_target(settings: Settings, now: datetime, seq: int, into: str | None = None) -> str:
    """The URL of a new, empty database for a restore: ``into`` if given (a file path or a
    database URL), else a new SQLite file in the data directory, or a new schema in the
    same PostgreSQL database."""
    if into:
        if "://" not in into:
            path = Path(into)
            if path.exists():
                raise InputError(f"{path} exists: restore into a new file", field="into",
                                 rule="restore.target_new")
            return f"sqlite:///{path}"
        return into
    url = make_url(settings.url)
    if url.get_backend_name() == "sqlite":
        path = settings.data_dir / f"restored-{stamp(now)}-at-{seq}.db"
        return f"sqlite:///{path}"
    schema = f"cutru_restore_{stamp(now).lower()}_{secrets.token_hex(3)}"
    db = Database(settings.url)
    try:
        with db.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        db.dispose()
    query = dict(url.query)
    query["options"] = f"-csearch_path={schema}"
    return url.set(query=query).render_as_string(hide_password=False)


def check_restored(db: Database) -> tuple[int, str, str]:
    """A restored database's head (seq, hash, digest), checked against its tables."""
    with db.read() as conn:
        head = journal_store.read_head(conn)
        last = journal_store.get_entry(conn, head.seq) if head.seq else None
        state, _rows = projection_state(conn, beside=True)  # a transaction that only reads
    if last is None or (last.hash, last.digest) != (head.hash, state.digest()) or \
            head.state != state:
        raise ProjectionMismatch("the restored database does not match its own journal head: "
                                 "it was changed after the restore; restore again",
                                 expected=last.digest if last else "", got=state.digest())
    return head.seq, head.hash, state.digest()


# --- swapping a restored database in -------------------------------------------------------------


def intent_path(settings: Settings) -> Path:
    return settings.data_dir / "swap-intent.json"


def carry_over(live: Database, restored_url: str) -> int:
    """Copy what is not residence data from the live database into the restored one:
    accounts, sessions, keys, grants, alerts, the audit trail, incidents. Returns rows."""
    tables = (*OPERATIONAL, audit_state)
    restored = Database(restored_url)
    count = 0
    try:
        if live.is_sqlite:
            live_path = Path(str(make_url(live.url).database))
            if not live_path.exists():
                return 0  # the live database is gone: nothing to carry over
            restored.dispose()
            conn = sqlite3.connect(str(make_url(restored_url).database), isolation_level=None)
            try:
                conn.execute("ATTACH DATABASE ? AS live", (str(live_path),))
                conn.execute("BEGIN IMMEDIATE")
                for t in tables:
                    cols = ", ".join(c.name for c in t.c)
                    conn.execute(f"DELETE FROM main.{t.name}")
                    count += conn.execute(f"INSERT INTO main.{t.name} ({cols}) SELECT {cols} "
                                          f"FROM live.{t.name}").rowcount
                conn.execute("COMMIT")
                conn.execute("DETACH DATABASE live")
            finally:
                conn.close()
        else:
            with live.read() as lc:
                live_schema = lc.execute(text("SELECT current_schema()")).scalar()
            with restored.begin() as pg:
                for t in tables:
                    cols = ", ".join(f'"{c.name}"' for c in t.c)
                    pg.execute(text(f'DELETE FROM "{t.name}"'))
                    count += pg.execute(text(
                        f'INSERT INTO "{t.name}" ({cols}) SELECT {cols} '
                        f'FROM "{live_schema}"."{t.name}"')).rowcount
                    serial = [c.name for c in t.primary_key.columns
                              if c.autoincrement is True]
                    for col in serial:  # copied ids do not advance the sequence by themselves
                        pg.execute(text(
                            f"SELECT setval(pg_get_serial_sequence('\"{t.name}\"', '{col}'), "
                            f'COALESCE(MAX("{col}"), 1), MAX("{col}") IS NOT NULL) '
                            f'FROM "{t.name}"'))
    finally:
        restored.dispose()
    return count


def swap_files(live_url: str, restored_url: str, now: datetime) -> str:
    """Make the restored database the live one; returns the name the old one is kept under.
    SQLite: a hard link keeps the old file, then one atomic rename puts the new file in its
    place. PostgreSQL: two schema renames in one transaction."""
    live, restored = make_url(live_url), make_url(restored_url)
    if live.get_backend_name() != restored.get_backend_name():
        raise InputError("a restored database replaces a live one of the same kind",
                         field="into", rule="restore.same_backend")
    if live.get_backend_name() == "sqlite":
        return _swap_sqlite(Path(str(live.database)), Path(str(restored.database)), now)
    return _swap_postgres(live_url, restored_url, now)


def _settle_sqlite(path: Path, *, exclusive: bool) -> sqlite3.Connection:
    """Checkpoint a SQLite file's WAL into it; with ``exclusive``, hold the write lock."""
    conn = sqlite3.connect(path, timeout=5, isolation_level=None)
    row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if row and row[0]:
        conn.close()
        raise ConfigError(f"{path} is in use (its log cannot be checkpointed): stop "
                          "`cutru serve` and other cutru commands first", field="database_url",
                          rule="restore.live_idle")
    if exclusive:
        try:
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError:
            conn.close()
            raise ConfigError(f"{path} is being written: stop `cutru serve` first",
                              field="database_url", rule="restore.live_idle") from None
    return conn


def _swap_sqlite(live: Path, restored: Path, now: datetime) -> str:
    settle = _settle_sqlite(restored, exclusive=False)
    settle.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{restored}{suffix}").unlink(missing_ok=True)
    if not live.exists():  # destroyed: nothing to keep
        os.replace(restored, live)
        fsync_dir(live.parent)
        return "(none: the live database file was missing)"
    kept = live.with_name(f"{live.name}.replaced-{stamp(now)}")
    hold = _settle_sqlite(live, exclusive=True)
    try:
        os.link(live, kept)  # the old registry stays, under another name
        fsync_dir(live.parent)
        os.replace(restored, live)  # atomic: the live name now holds the restored file
        fsync_dir(live.parent)
    finally:
        hold.close()
    return kept.name


def _swap_postgres(live_url: str, restored_url: str, now: datetime) -> str:
    db_live, db_new = Database(live_url), Database(restored_url)
    try:
        with db_live.read() as c:
            live_schema = str(c.execute(text("SELECT current_schema()")).scalar())
        with db_new.read() as c:
            new_schema = str(c.execute(text("SELECT current_schema()")).scalar())
    finally:
        db_new.dispose()
    kept = f"{live_schema}_replaced_{stamp(now).lower()}"[:63]
    try:
        with db_live.begin() as conn:
            conn.execute(text(f'ALTER SCHEMA "{live_schema}" RENAME TO "{kept}"'))
            conn.execute(text(f'ALTER SCHEMA "{new_schema}" RENAME TO "{live_schema}"'))
    finally:
        db_live.dispose()
    return kept


def intent(settings: Settings, *, restored_url: str, head: tuple[int, str, str],
           incident: str, now: datetime) -> dict[str, Any]:
    body = {"restored": restored_url, "seq": head[0], "chain_head": head[1],
            "state_digest": head[2], "incident": incident, "at": stamp(now),
            "written": time.time()}
    write_durably(intent_path(settings), json.dumps(body, sort_keys=True).encode())
    return body


def head_of(conn: Connection) -> tuple[int, str]:
    head = journal_store.read_head(conn)
    return head.seq, head.hash


# --- the live journal against the backup archive -------------------------------------------------

RESTORED_FROM = "restored_from"


def check_against_archive(db: Database, repo: Repository, keys: Mapping[str, bytes]
                          ) -> list[Problem]:
    """A journal cut back to an older valid prefix, or rewritten, as the backup archive sees
    it: the archive's newest generation must be a prefix of the live journal, or the live
    journal a prefix of it that a recorded restore explains."""
    from cutru.backup.archive import ArchivePosition, archived_position

    pos = archived_position(repo, keys)
    if not isinstance(pos, ArchivePosition) and pos.kind == "start":
        snaps = list_snapshots(repo, keys)  # no segment yet: the newest snapshot's position
        if not snaps:
            return []
        newest = max(snaps, key=lambda s: s.position.seq).position
        with db.read() as conn:
            live = journal_store.get_entry(conn, newest.seq) if newest.seq else None
            end = journal_store.last_seq(conn)
        if newest.seq and live is None:
            return [Problem("truncation", f"a backup snapshot holds entries up to "
                            f"{newest.seq} but the live journal ends at {end}",
                            seq=end + 1)]
        if live is not None and live.hash != newest.chain_head:
            return [Problem("chain", f"journal entry {newest.seq} differs from the one the "
                            "backup snapshot holds: the journal was rewritten",
                            seq=newest.seq)]
        return []
    if not isinstance(pos, ArchivePosition):
        return [Problem("archive", f"the backup archive cannot be compared: {pos.message}")]
    with db.read() as conn:
        head = journal_store.read_head(conn)
        row = conn.execute(select(meta.c.value).where(meta.c.name == RESTORED_FROM)).scalar()
        restored = json.loads(row) if row else None
        if pos.seq <= head.seq:
            live = journal_store.get_entry(conn, pos.seq)
            if live is None or live.hash != pos.hash:
                return [Problem("chain", f"journal entry {pos.seq} differs from the one the "
                                "backup archive holds: the journal was rewritten",
                                seq=pos.seq)]
            return []
    if restored and restored.get("generation") in (None, pos.generation) and \
            restored.get("seq") == head.seq and restored.get("chain_head") == head.hash:
        return []  # restored to here on purpose; the archive holds the replaced history
    arch = _Archive(repo, keys)
    found = arch.at_seq(pos.generation, head.seq) if head.seq else None
    if head.seq == 0 or (found is not None and found.chain_head == head.hash):
        return [Problem("truncation", f"the backup archive holds entries up to {pos.seq} but "
                        f"the live journal ends at {head.seq}: entries {head.seq + 1}.."
                        f"{pos.seq} were removed", seq=head.seq + 1)]
    return [Problem("chain", f"journal entry {head.seq} differs from the one the backup "
                    "archive holds: the journal was rewritten", seq=head.seq)]


def record_restored_from(conn: Connection, repo_generation: int | None, seq: int,
                         chain_head: str) -> None:
    body = json.dumps({"generation": repo_generation, "seq": seq, "chain_head": chain_head})
    conn.execute(delete(meta).where(meta.c.name == RESTORED_FROM))
    conn.execute(insert(meta).values(name=RESTORED_FROM, value=body))


# --- a swap never happens under a running server ----------------------------------------------


@contextmanager
def serving(settings: Settings) -> Iterator[None]:
    """Held by `cutru serve` while it runs (a shared lock in the data directory)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.data_dir / "serve.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def require_not_serving(settings: Settings) -> None:
    path = settings.data_dir / "serve.lock"
    if not path.exists():
        return
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise ConfigError("`cutru serve` is running on this registry: stop it before the "
                          "swap", field="database_url", rule="restore.live_idle") from None
    finally:
        os.close(fd)
