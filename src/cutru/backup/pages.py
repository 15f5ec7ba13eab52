"""Pages snapshots: a SQLite registry's database file, copied at one committed state.

A *rows* snapshot (:mod:`cutru.backup.snapshot`) reads every row through SQL, encodes it and
proves the state digest from it while it reads; a *pages* snapshot copies the database file
as it stands, page for page, which is what restic and borg back up, and costs what reading,
chunking, compressing and sealing the file cost. Its manifest signs the journal position
that the file holds (the head's sequence number, hash, time and the state digest the journal
records there) and the newest signed checkpoint. The digest is proved where the rows are
read anyway: by every restore (which recomputes it from the restored tables, as a restore of
rows does), by ``cutru backup verify --restore-test`` and the scheduled restore drills, and on
the live registry by ``cutru verify`` and the quick check of ``cutru serve``.

**One committed state, while writers go on.** SQLite in WAL mode writes commits to the
``-wal`` file, and a checkpoint copies them into the database file only where no reader
could still need the old page. A reader that starts when the WAL is wholly copied back into
the file reads the file alone (read mark 0), and no checkpoint writes to the file while such
a reader is open (it needs that mark exclusively). So :func:`pinned_file` holds the write
lock for a moment, checkpoints (passively: it never waits for a reader), and, if the WAL is
then wholly copied back, starts a read transaction before it lets writers go: from then on
the file does not change under the copy, and commits go to the WAL. If readers keep the
checkpoint from finishing, it tries again, for :data:`SETTLE_SECONDS` in all. Two snapshots of
one file in one process (the archiver's and the schedule's in ``cutru serve``) take turns:
while one holds the file, nothing can be copied back for the other.

**Regions.** The file is cut at every :data:`REGION` bytes and each region is chunked on its
own (content-defined, as a stream is), so that two helper processes can read, chunk and seal
at once (:func:`file_readers` says why never this one) and an unchanged region gives the
same blobs in every snapshot. docs/design.md, "Pages
snapshots", is the specification.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from cutru.backup import blobs, naming
from cutru.backup.blobs import Cut
from cutru.backup.pack import PackEntry
from cutru.backup.repository import Repository
from cutru.backup.targets import Handle, Kind
from cutru.errors import JournalChainBroken, ProjectionMismatch, RepositoryDamaged
from cutru.journal.helper import Helper, helper_cpus
from cutru.journal.signing import SignedCheckpoint
from cutru.store import journal_store
from cutru.store.engine import Database
from cutru.store.journal_store import Head

#: The one stream of a pages snapshot.
FILE_STREAM = "sqlite-file"
#: The seal file beside the database when the snapshot ran (docs/design.md, "Sealed page
#: groups"), where there was one: a restore proves the file by page groups with it.
SEALS_STREAM = "page-seals"
#: Chunking starts afresh at every multiple of this offset (64 MiB).
REGION = 64 * 1024 * 1024
#: How long a snapshot tries to find the WAL copied back before it reads rows instead.
SETTLE_SECONDS = 10.0
#: Files at least this large are read, chunked and sealed by two helper processes.
HELPER_MIN_BYTES = 64 * 1024 * 1024


def sqlite_path(db: Database) -> Path | None:
    """The database file of a SQLite registry (None: PostgreSQL, or SQLite in memory)."""
    if not db.is_sqlite:
        return None
    name = make_url(db.url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


@dataclass(frozen=True)
class Pinned:
    """A read transaction that sees exactly the database file (the WAL wholly copied back
    into it when it began), and what it read."""

    conn: Connection
    path: Path
    head: Head
    page_size: int
    pages: int
    checkpoints: list[SignedCheckpoint]

    @property
    def size(self) -> int:
        return self.page_size * self.pages


_PINS: dict[Path, threading.Lock] = {}
_PINS_LOCK = threading.Lock()


def _pin_lock(path: Path) -> threading.Lock:
    with _PINS_LOCK:
        return _PINS.setdefault(path.resolve(), threading.Lock())


@contextmanager
def pinned_file(db: Database, wait: float | None = None) -> Iterator[Pinned | None]:
    """A read transaction on ``db`` whose snapshot is the database file itself (see the
    module's docstring), or None if readers kept the WAL from being copied back for ``wait``
    seconds (default :data:`SETTLE_SECONDS`), or ``db`` is not a SQLite file."""
    path = sqlite_path(db)
    if path is None or not path.exists():
        yield None
        return
    with ExitStack() as stack:
        # one pin at a time per file in this process: while one is open no checkpoint can
        # copy the WAL back, so a second would only wait for the first and then give up
        stack.enter_context(_pin_lock(path))
        deadline = time.monotonic() + (SETTLE_SECONDS if wait is None else wait)
        delay = 0.005
        ckpt = sqlite3.connect(path, isolation_level=None, timeout=0.5)
        stack.callback(ckpt.close)
        conn: Connection | None = None
        head: Head | None = None
        while conn is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            writer = sqlite3.connect(path, isolation_level=None, timeout=max(0.05, left))
            try:
                writer.execute("BEGIN IMMEDIATE")  # writers wait (their busy timeout)
                busy, log, copied = ckpt.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if busy == 0 and log == copied:
                    # the WAL is wholly in the file and no commit can come: a read begun now
                    # takes read mark 0 and reads the file alone
                    read = stack.enter_context(db.read())
                    head = journal_store.read_head(read)  # the first read fixes the snapshot
                    conn = read
            except sqlite3.OperationalError:
                pass  # a long write transaction or a busy checkpoint: try again
            finally:
                with suppress(sqlite3.Error):
                    writer.execute("ROLLBACK")
                writer.close()
            if conn is None:
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 0.5)
        if conn is None or head is None:
            yield None
            return
        page_size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
        cps = [cp for cp in journal_store.list_checkpoints(conn) if cp.checkpoint.seq <= head.seq]
        if path.stat().st_size < page_size * pages:
            raise RepositoryDamaged(f"{path.name} is shorter than its {pages} pages: snapshot "
                                    "refused", object=path.name)
        entry = journal_store.get_entry(conn, head.seq) if head.seq else None
        if head.seq and (entry is None or entry.hash != head.hash):
            raise JournalChainBroken(f"the journal head says entry {head.seq}, which the "
                                     "journal does not hold as such; run `cutru verify` "
                                     "(snapshot refused)", seq=head.seq)
        if entry is not None and entry.digest != head.state.digest():
            raise ProjectionMismatch(
                f"the journal head's state digest is not the one entry {head.seq} records; "
                "run `cutru verify` (snapshot refused)", expected=entry.digest,
                got=head.state.digest())
        yield Pinned(conn, path, head, page_size, pages, cps)


#: ``store(cuts)``: keep the sealed blobs of one region.
Store = Callable[[list[Cut]], None]


def save_file(path: Path, size: int, store: Store, readers: list[Helper],
              progress: Callable[[int], None]) -> list[bytes]:
    """The data blob ids of the file's first ``size`` bytes, region by region, each region
    read, chunked and sealed by one of ``readers`` (in turn, two regions each in flight);
    new blobs go to ``store`` as each region comes back, in order (``progress`` is told in
    bytes)."""
    regions = [(off, min(REGION, size - off)) for off in range(0, size, REGION)]
    ids: list[bytes] = []
    queued: deque[tuple[int, Future[list[Cut]]]] = deque()

    def keep() -> None:
        i, future = queued.popleft()
        cuts = future.result()
        ids.extend(c[0] for c in cuts)
        store(cuts)
        progress(regions[i][1])

    for i, (off, length) in enumerate(regions):
        if len(queued) >= 2 * len(readers):
            keep()
        reader = readers[i % len(readers)]
        queued.append((i, reader.submit(blobs.helper_seal_region, str(path), off, length)))
    while queued:
        keep()
    return ids


@contextmanager
def file_readers(repo: Repository, size: int, helper: bool | None) -> Iterator[list[Helper]]:
    """Helper processes that read the database file, set up to seal this repository's
    blobs: two for a file of :data:`HELPER_MIN_BYTES` or more on a machine with two CPUs
    (``helper``: True two always, False one), else one.

    Never this process: SQLite's locks are POSIX advisory locks, which belong to the
    process and are all released when it closes *any* descriptor of the file, so a second
    descriptor opened and closed here would drop the very read lock that keeps the file
    still (the "posix advisory locks canceled" case of SQLite's "How To Corrupt An SQLite
    Database File")."""
    two = helper or (helper is None and size >= HELPER_MIN_BYTES)
    count = 2 if two and helper_cpus() >= 2 else 1
    with ExitStack() as stack:
        readers = []
        for _ in range(count):
            reader = Helper()
            stack.callback(reader.close)
            readers.append(reader)
        p = repo.config.chunker
        known = repo.known_blobs()
        for reader in readers:
            reader.submit(blobs.helper_init, repo.master_key, p.min_size, p.avg_size,
                          p.max_size, repo.config.chunker_seed, known).result()
        yield readers


# --- restoring ---------------------------------------------------------------------------------


def remove_database(path: Path) -> None:
    """Remove a database file this process created, with its WAL and shared memory."""
    for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        with suppress(FileNotFoundError):
            p.unlink()


T = TypeVar("T")
#: What a restore checks in the file it has written, before it is renamed into place (see
#: :func:`write_file`).
Check = Callable[[Path], T] | None

#: Sealed bytes of one run of blobs that a writer opens and writes at once (read from the
#: pack with one read); how many runs may be loaded or written ahead of the one finished.
WRITE_RUN = 4 * 1024 * 1024
WRITE_AHEAD = 4


#: Writer processes of a large restore (:func:`file_writers`).
WRITERS = 2


@contextmanager
def file_writers(repo: Repository, size: int) -> Iterator[list[Helper]]:
    """Helper processes that open this repository's blobs and write a database file being
    restored: two for a file of :data:`HELPER_MIN_BYTES` or more on a machine with two CPUs,
    else none (the file is then written here, from :func:`read_blobs`-style loads).

    Decrypting, decompressing and checking each blob's id, then writing it, run with
    Python's lock released but take it between calls; threads of one process that share
    the work wait on it about as long as they work (restoring 4.4 GB at 1,000,000 persons,
    ``write_file`` took 9.7-12.6 s with two loading threads). Processes do not share it."""
    with ExitStack() as stack:
        writers: list[Helper] = []
        if size >= HELPER_MIN_BYTES and helper_cpus() >= 2:
            for _ in range(WRITERS):
                writer = Helper()
                stack.callback(writer.close)
                writers.append(writer)
            for writer in writers:  # not waited for: the first run's write reports a failure
                writer.submit(blobs.helper_open_init, repo.master_key)
        yield writers


def write_file_by(writers: list[Helper], repo: Repository, blob_ids: Iterator[bytes],
                  path: Path, size: int, count: int, where: str,
                  progress: Callable[[int], None], check: Check[T] = None) -> T | None:
    """Write the file from its blobs, ``blob_ids`` in order, by ``writers``
    (:func:`file_writers`), a run of blobs that lie one after the other in a pack at a time:
    a writer opens, checks and writes each run at its place. A writer reads the run from
    the pack file itself where the repository is a directory on this machine (sending
    the bytes through a pipe cost 2 s of 9.6 for 4.4 GB); otherwise this process loads
    it (in threads: a remote repository answers slowly) and sends it. Through a temporary
    name, synced, then renamed into place, as :func:`write_file` (and ``check``d as it
    says); the number of blobs and bytes must be ``count`` and ``size``."""
    with _written(path, check) as (tmp, checked):
        loads: deque[tuple[int, list[PackEntry], Future[bytes] | str]] = deque()
        writes: deque[tuple[int, Future[int]]] = deque()
        at = blobs_seen = turn = 0

        def write_next() -> None:
            nonlocal turn
            start, run, load = loads.popleft()
            length = sum(e.plain_length for e in run)
            writes.append((length, writers[turn % len(writers)].submit(
                blobs.helper_write_run, str(tmp), start, run,
                load if isinstance(load, str) else load.result(), where)))
            turn += 1

        def finish_next() -> None:
            length, write = writes.popleft()
            if write.result() != length:
                raise RepositoryDamaged(f"{where}: a run of its blobs did not write the "
                                        f"{length} bytes its index records", object=where)
            progress(length)

        with ThreadPoolExecutor(2, thread_name_prefix="cutru-runs") as pool:
            try:
                for pack_id, run in repo.runs(blob_ids, WRITE_RUN):
                    blobs_seen += len(run)
                    local = repo.target.local_file(Handle(Kind.DATA, naming.format_id(pack_id)))
                    loads.append((at, run, local if local is not None
                                  else pool.submit(repo.load_run, pack_id, run)))
                    at += sum(e.plain_length for e in run)
                    if at > size or blobs_seen > count:
                        break
                    if len(loads) > WRITE_AHEAD:
                        write_next()
                    if len(writes) > WRITE_AHEAD:
                        finish_next()
                while loads:
                    write_next()
                while writes:
                    finish_next()
            except BaseException:
                for _start, _run, load in loads:
                    if not isinstance(load, str):
                        load.cancel()
                raise
        if (at, blobs_seen) != (size, count):
            raise RepositoryDamaged(f"{where}: its file stream does not hold the {count} "
                                    f"blobs and {size} bytes its manifest records",
                                    object=where)
    return checked[0] if checked else None


def write_file(blobs_: Iterator[bytes], path: Path, size: int, where: str,
               progress: Callable[[int], None], check: Check[T] = None) -> T | None:
    """Write the file from its blobs (each checked as it was loaded) through a temporary
    name, synced, then renamed into place; its length is checked against ``size``.
    ``check``: called with the temporary file once it is written, while it is synced (in
    another thread); what it returns is returned, and what it raises fails the write."""
    with _written(path, check) as (tmp, checked):
        written = 0
        with open(tmp, "r+b") as f:
            for data in blobs_:
                f.write(data)
                written += len(data)
                progress(len(data))
        if written != size:
            raise RepositoryDamaged(f"{where}: its file has {written} bytes, not the {size} "
                                    "its manifest records", object=where)
    return checked[0] if checked else None


@contextmanager
def _written(path: Path, check: Check[T]) -> Iterator[tuple[Path, list[T]]]:
    """A new, empty temporary file beside ``path`` for the block to write; then synced,
    ``check``ed meanwhile (its result put in the list yielded), and renamed into place, and
    the directory synced. Removed, with any log SQLite left beside it, if anything fails."""
    tmp = path.with_name(f".{path.name}.restoring-{secrets.token_hex(4)}")
    checked: list[T] = []
    try:
        with open(tmp, "xb"):
            pass
        yield tmp, checked
        fd = os.open(tmp, os.O_RDONLY)
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="cutru-sync") as pool:
                synced = pool.submit(os.fsync, fd)
                try:
                    if check is not None:
                        checked.append(check(tmp))
                finally:
                    synced.result()
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-wal", "-shm"))):
            with suppress(FileNotFoundError):
                leftover.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
