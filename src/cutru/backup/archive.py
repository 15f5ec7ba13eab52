"""Continuous journal archiving: new journal entries reach the repository within seconds.

Entries are written as *segments* ``journal/<generation>-<first>-<last>``: a signed header line
(the generation, the range, the hash of the entry before ``first``, and a signed checkpoint of
``last``) followed by the entries' canonical encodings, one per line. Within a generation the
segments are gap-free and hash-linked: each one's ``first`` entry names the previous
segment's ``last`` hash as its ``prev``.

The archiver keeps no local state: where it stands is read from the repository (the newest
generation's segment with the highest ``last``), so after a crash it resumes where it stopped.
When continuity cannot hold -- the repository has no segment yet, a segment of the current
generation is missing or unreadable, or the database no longer holds the archived entries
(it was restored or replaced) -- the archiver reports why, as data (:class:`ContinuityBreak`),
takes a fresh snapshot and starts a new generation whose first segment begins at that
snapshot's position and records the reason (as litestream does). A journal that is broken
*inside the database* is not archived at all (:class:`JournalChainBroken`): blessing it with a
new generation would back up tampering as if it were work.

docs/design.md, "Registry snapshots and journal segments", is the specification.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, overload

from sqlalchemy import Connection

from cutru.backup import naming
from cutru.backup.crypto import associated_data
from cutru.backup.repository import Repository
from cutru.backup.snapshot import (
    OLD_DIGESTS,
    StoredEntry,
    parse_entry_line,
    read_checkpoint_file,
    registry_id,
    stored_entries,
    take_snapshot,
)
from cutru.backup.targets import Handle, Kind
from cutru.errors import (
    CheckpointInvalid,
    CutruError,
    InputError,
    IntegrityFailure,
    JournalChainBroken,
    ManifestInvalid,
    NotFound,
    RepositoryDamaged,
    RepositoryVersionError,
)
from cutru.journal import canonical
from cutru.journal.entry import GENESIS, Entry
from cutru.journal.signing import Checkpoint, SignedCheckpoint, SigningKey, verify_checkpoint
from cutru.store import journal_store
from cutru.store.engine import Database

log = logging.getLogger(__name__)

SEGMENT_FORMAT = 2  # 2 since state digest format 2, as snapshots (snapshot.SNAPSHOT_FORMAT)
MAX_SEGMENT_ENTRIES = 5000
MAX_SEGMENT_BYTES = 8 << 20  # plaintext; a segment is one sealed object
_HEADER_FIELDS = frozenset({"base", "checkpoint", "created_at", "first", "format", "generation",
                            "last", "prev", "reason", "registry"})


# --- what the archiver reports --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContinuityBreak:
    """Why the archive cannot continue its current generation.

    ``kind`` is one of ``start`` (no segment yet), ``gap`` (a segment of the generation is
    missing), ``unreadable`` (its newest segment is damaged), ``behind`` (the database's
    journal ends before the archived position) or ``fork`` (the database holds other entries
    than those archived: it was restored, or it is another registry)."""

    kind: str
    message: str
    generation: int | None = None
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"generation": self.generation, "kind": self.kind, "message": self.message,
                "seq": self.seq}


@dataclass(frozen=True, slots=True)
class ArchivePosition:
    """The last archived entry of the current generation."""

    generation: int
    seq: int
    hash: str
    #: the base and reason the generation's first segment will carry, while it has none
    #: (a generation begun on an empty journal)
    pending_start: dict[str, Any] | None = None


@dataclass
class ArchiveReport:
    position: ArchivePosition | None
    segments: list[str] = field(default_factory=list)
    entries: int = 0
    continuity: ContinuityBreak | None = None  # set when a new generation was begun
    snapshot: str | None = None  # the snapshot that began it
    newest_ts: str | None = None  # time of the newest archived entry
    duration_ms: int = 0


# --- segments -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentHeader:
    generation: int
    first: int
    last: int
    prev: str  # hash of entry first - 1 (64 zeros for seq 1)
    registry: str
    checkpoint: SignedCheckpoint  # of entry ``last``
    created_at: str
    base: dict[str, Any] | None = None  # first segment of a generation: its snapshot
    reason: dict[str, Any] | None = None  # ... and why the generation began

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "checkpoint": self.checkpoint.to_dict(),
                "created_at": self.created_at, "first": self.first, "format": SEGMENT_FORMAT,
                "generation": self.generation, "last": self.last, "prev": self.prev,
                "reason": self.reason, "registry": self.registry}


def encode_segment(header: SegmentHeader, lines: list[bytes]) -> bytes:
    return b"".join([canonical.encode(header.to_dict()), b"\n",
                     *(line + b"\n" for line in lines)])


class Linked(Protocol):
    """An entry as far as the chain goes."""

    @property
    def seq(self) -> int: ...
    @property
    def prev(self) -> str: ...
    @property
    def hash(self) -> str: ...
    @property
    def digest(self) -> str: ...


E = TypeVar("E", bound=Linked)


@overload
def decode_segment(name: str, plain: bytes, public_keys: Mapping[str, bytes]
                   ) -> tuple[SegmentHeader, list[Entry]]: ...
@overload
def decode_segment(name: str, plain: bytes, public_keys: Mapping[str, bytes],
                   parse: Callable[[bytes, str], E]) -> tuple[SegmentHeader, list[E]]: ...
def decode_segment(name: str, plain: bytes, public_keys: Mapping[str, bytes],
                   parse: Callable[[bytes, str], Any] = parse_entry_line
                   ) -> tuple[SegmentHeader, list[Any]]:
    """Parse and check a segment: its header against its name, the checkpoint's signature,
    and that its entries are exactly ``first..last``, hash-linked from ``prev`` to the
    checkpointed head. Damage raises :class:`RepositoryDamaged`, a bad signature
    :class:`ManifestInvalid`. Each entry line is read by ``parse(line, where)``, which
    checks its hash (default :func:`~cutru.backup.snapshot.parse_entry_line`, giving
    :class:`Entry`)."""
    where = f"journal/{name}"
    parsed = naming.parse_segment_name(name)
    end = plain.find(b"\n")
    try:
        doc = canonical.decode(plain[:end] if end >= 0 else b"")
        if not isinstance(doc, dict) or set(doc) != _HEADER_FIELDS:
            raise TypeError("fields")
        fmt = doc["format"]
        if type(fmt) is int and fmt != SEGMENT_FORMAT and fmt >= 1:
            old = OLD_DIGESTS if fmt < 2 else ""
            raise RepositoryVersionError(f"{where} has segment format {fmt}; this build reads "
                                         f"{SEGMENT_FORMAT}{old}", object=where)
        header = SegmentHeader(doc["generation"], doc["first"], doc["last"], doc["prev"],
                               doc["registry"], SignedCheckpoint.from_dict(doc["checkpoint"]),
                               doc["created_at"], doc["base"], doc["reason"])
        if doc["format"] != SEGMENT_FORMAT:
            raise TypeError("format")
    except (InputError, TypeError, KeyError, CheckpointInvalid):
        raise RepositoryDamaged(f"{where} does not start with a well-formed segment header",
                                object=where) from None
    if (header.generation, header.first, header.last) != tuple(parsed):
        raise RepositoryDamaged(f"{where} is stored under another segment's name", object=where)
    try:
        verify_checkpoint(header.checkpoint, public_keys)
    except CheckpointInvalid as exc:
        raise ManifestInvalid(f"{where}: {exc.message}", object=where) from None
    lines = plain[end + 1:].split(b"\n")
    if lines.pop() != b"" or len(lines) != header.last - header.first + 1:
        raise RepositoryDamaged(f"{where} does not hold entries {header.first}..{header.last}",
                                object=where)
    entries = [parse(line, where) for line in lines]
    prev = header.prev
    for expected, entry in enumerate(entries, start=header.first):
        if entry.seq != expected or entry.prev != prev:
            raise RepositoryDamaged(f"{where}: entry {expected} is missing or does not link "
                                    "to its predecessor", object=where)
        prev = entry.hash
    cp = header.checkpoint.checkpoint
    last = entries[-1]
    if (cp.seq, cp.chain_head, cp.state_digest) != (last.seq, last.hash, last.digest):
        raise RepositoryDamaged(f"{where}: its signed checkpoint is not of its last entry",
                                object=where)
    return header, entries


def load_segment(repo: Repository, name: str, public_keys: Mapping[str, bytes]
                 ) -> tuple[SegmentHeader, list[Entry]]:
    """Load, unseal and check one segment (see :func:`decode_segment`)."""
    return decode_segment(name, read_segment(repo, name), public_keys)


def read_segment(repo: Repository, name: str) -> bytes:
    """A segment's plaintext: loaded and unsealed (its seal checked), not yet decoded."""
    return repo.keys.unseal(repo.target.load(Handle(Kind.JOURNAL, name)),
                            associated_data(Kind.JOURNAL, name), what=f"journal/{name}")


def save_segment(repo: Repository, header: SegmentHeader, lines: list[bytes]) -> str:
    name = naming.format_segment_name(header.generation, header.first, header.last)
    repo.target.save(Handle(Kind.JOURNAL, name), repo.keys.seal(
        encode_segment(header, lines), associated_data(Kind.JOURNAL, name), compress=True))
    return name


def list_segments(repo: Repository) -> list[naming.SegmentName]:
    """Every segment name, by generation then first then last."""
    return sorted(naming.parse_segment_name(item.handle.name)
                  for item in repo.target.list(Kind.JOURNAL))


def segment_name(segment: naming.SegmentName) -> str:
    return naming.format_segment_name(*segment)


def generation_gaps(segments: list[naming.SegmentName]) -> list[tuple[int, int]]:
    """The ranges ``(first, last)`` of entries no segment of one generation holds, between
    its first and its last segment (overlaps are allowed; holes are not)."""
    gaps: list[tuple[int, int]] = []
    ordered = sorted(segments, key=lambda s: (s.first, s.last))
    if not ordered:
        return gaps
    reach = ordered[0].last
    for seg in ordered[1:]:
        if seg.first > reach + 1:
            gaps.append((reach + 1, seg.first - 1))
        reach = max(reach, seg.last)
    return gaps


def archived_position(repo: Repository, public_keys: Mapping[str, bytes]
                      ) -> ArchivePosition | ContinuityBreak:
    """Where the archive stands, read from the repository alone."""
    segments = list_segments(repo)
    if not segments:
        return ContinuityBreak("start", "the repository holds no journal segment yet")
    generation = max(s.generation for s in segments)
    current = [s for s in segments if s.generation == generation]
    gaps = generation_gaps(current)
    if gaps:
        first, last = gaps[0]
        return ContinuityBreak("gap", f"generation {generation:016x} has no segment for "
                               f"entries {first}..{last}", generation, first)
    newest = max(current, key=lambda s: (s.last, s.first))
    name = segment_name(newest)
    try:
        _header, entries = load_segment(repo, name, public_keys)
    except (IntegrityFailure, NotFound) as exc:
        return ContinuityBreak("unreadable", f"the newest segment journal/{name} cannot be "
                               f"used: {exc.message}", generation, newest.last)
    return ArchivePosition(generation, newest.last, entries[-1].hash)


# --- archiving ------------------------------------------------------------------------------


def archive_once(db: Database, repo: Repository, signer: SigningKey, *,
                 position: ArchivePosition | None = None,
                 public_keys: Mapping[str, bytes] | None = None,
                 external_checkpoint_path: Path | None = None,
                 max_entries: int = MAX_SEGMENT_ENTRIES) -> ArchiveReport:
    """Archive the journal entries committed since the last archived one.

    ``position`` is where a running archiver stands (None: read it from the repository).
    Returns what was written and where the archive now stands; when continuity broke, the
    report says why and names the snapshot that began the new generation. The caller holds
    a shared repository lock."""
    started = time.monotonic()
    keys = dict(public_keys) if public_keys else {signer.key_id: signer.public_key_bytes}
    state = position if position is not None else archived_position(repo, keys)
    report = ArchiveReport(position=state if isinstance(state, ArchivePosition) else None)
    if isinstance(state, ArchivePosition):
        with db.read() as conn:
            head = journal_store.read_head(conn)
            broken = _check_link(conn, head.seq, state)
            if broken is None:
                if head.seq > state.seq:
                    report.position = _archive_range(
                        conn, repo, signer, report, generation=state.generation,
                        start=state.seq + 1, stop=head.seq, prev=state.hash,
                        start_info=state.pending_start, max_entries=max_entries)
                report.duration_ms = int((time.monotonic() - started) * 1000)
                return report
        state = broken
    report.continuity = state
    log.warning("journal archive: %s; starting a new generation after a fresh snapshot",
                state.message)
    _new_generation(db, repo, signer, report, state, external_checkpoint_path, max_entries)
    report.duration_ms = int((time.monotonic() - started) * 1000)
    return report


def _check_link(conn: Connection, head_seq: int, pos: ArchivePosition
                ) -> ContinuityBreak | None:
    """Does the database still hold the archived entries (the last one, by its hash)?"""
    if head_seq < pos.seq:
        return ContinuityBreak(
            "behind", f"the database's journal ends at entry {head_seq}, before the archived "
            f"entry {pos.seq}: the database was restored or replaced", pos.generation, head_seq)
    if pos.seq == 0:
        return None
    entry = journal_store.get_entry(conn, pos.seq)
    if entry is None or entry.hash != pos.hash:
        return ContinuityBreak(
            "fork", f"the database's entry {pos.seq} is not the archived one: the database "
            "was restored or replaced, or it is another registry", pos.generation, pos.seq)
    return None


def _new_generation(db: Database, repo: Repository, signer: SigningKey, report: ArchiveReport,
                    why: ContinuityBreak, external_checkpoint_path: Path | None,
                    max_entries: int) -> None:
    previous = why.generation or 0
    generation = max(naming.now_us(), previous + 1)
    external = read_checkpoint_file(external_checkpoint_path) if external_checkpoint_path \
        else None
    snap = take_snapshot(db, repo, signer, external_checkpoint=external,
                         generation=generation, reason=why.to_dict())
    report.snapshot = snap.name
    base_seq = snap.position.seq
    start_info = {"base": {"chain_head": snap.position.chain_head, "seq": base_seq,
                           "snapshot": snap.name},
                  "reason": why.to_dict()}
    if base_seq == 0:  # nothing to anchor the generation on yet: its first entry will
        report.position = ArchivePosition(generation, 0, GENESIS, start_info)
        return
    with db.read() as conn:
        head = journal_store.read_head(conn)
        before = journal_store.get_entry(conn, base_seq - 1) if base_seq > 1 else None
        anchor = journal_store.get_entry(conn, base_seq)
        if anchor is None or anchor.hash != snap.position.chain_head:
            raise JournalChainBroken(f"entry {base_seq} changed after the snapshot that was to "
                                     "begin a new archive generation", seq=base_seq)
        report.position = _archive_range(
            conn, repo, signer, report, generation=generation, start=base_seq,
            stop=head.seq, prev=before.hash if before else GENESIS, start_info=start_info,
            max_entries=max_entries)


def _archive_range(conn: Connection, repo: Repository, signer: SigningKey,
                   report: ArchiveReport, *, generation: int, start: int, stop: int, prev: str,
                   start_info: dict[str, Any] | None, max_entries: int) -> ArchivePosition:
    """Write entries ``start..stop`` as segments of ``generation``, each linked to ``prev``."""
    reg = registry_id(conn)
    batch: list[StoredEntry] = []
    lines: list[bytes] = []
    size = 0
    expected, link = start, prev

    def flush() -> None:
        nonlocal batch, lines, size, start_info, prev
        if not batch:
            return
        last = batch[-1]
        cp = Checkpoint(last.seq, last.hash, last.digest, naming.format_time(naming.now_us()),
                        signer.key_id)
        header = SegmentHeader(generation, batch[0].seq, last.seq, prev, reg, signer.sign(cp),
                               cp.created_at, base=start_info["base"] if start_info else None,
                               reason=start_info["reason"] if start_info else None)
        report.segments.append(save_segment(repo, header, lines))
        report.entries += len(batch)
        report.newest_ts = last.ts
        prev, start_info = last.hash, None
        batch, lines, size = [], [], 0

    for entry in stored_entries(conn, start=start, stop=stop):
        if entry.seq != expected or entry.prev != link or not entry.hash_ok():
            flush()  # what links is archived; the break is the database's own
            raise JournalChainBroken(
                f"the database's journal entry {expected} is missing, altered or does not link "
                "to its predecessor; archiving stopped there (run `cutru verify`)",
                seq=expected)
        line = entry.line()
        batch.append(entry)
        lines.append(line)
        size += len(line) + 1
        expected, link = entry.seq + 1, entry.hash
        if len(batch) >= max_entries or size >= MAX_SEGMENT_BYTES:
            flush()
    if expected != stop + 1:
        flush()
        raise JournalChainBroken(f"the database's journal ends at entry {expected - 1}, "
                                 f"before its head {stop}", seq=expected)
    flush()
    if expected == start:  # nothing was read (an empty range)
        return ArchivePosition(generation, start - 1, prev, start_info)
    return ArchivePosition(generation, expected - 1, link)


# --- the running archiver ----------------------------------------------------------------


class Archiver:
    """Archives the journal every ``interval_seconds`` until stopped.

    Give it a :class:`Repository` of its own (a repository is not thread-safe). Where it
    stands is kept in memory between rounds and read from the repository when it starts (or
    after an error), so a new Archiver resumes where a crashed one stopped.

    >>> archiver = Archiver(db, repo, key)                    # doctest: +SKIP
    >>> thread = archiver.start(interval_seconds=0.5)         # doctest: +SKIP
    >>> archiver.stop()                                       # doctest: +SKIP
    """

    def __init__(self, db: Database, repo: Repository, signer: SigningKey, *,
                 public_keys: Mapping[str, bytes] | None = None,
                 external_checkpoint_path: Path | None = None,
                 max_entries: int = MAX_SEGMENT_ENTRIES) -> None:
        self.db = db
        self.repo = repo
        self.signer = signer
        self.public_keys = dict(public_keys) if public_keys else {
            signer.key_id: signer.public_key_bytes}
        self.external_checkpoint_path = external_checkpoint_path
        self.max_entries = max_entries
        self.position: ArchivePosition | None = None
        self.last_report: ArchiveReport | None = None
        self.last_error: BaseException | None = None
        self.breaks: list[ContinuityBreak] = []
        self.rounds = 0
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> ArchiveReport:
        report = archive_once(self.db, self.repo, self.signer, position=self.position,
                              public_keys=self.public_keys,
                              external_checkpoint_path=self.external_checkpoint_path,
                              max_entries=self.max_entries)
        self.position = report.position
        self.last_report = report
        self.rounds += 1
        if report.continuity is not None:
            self.breaks.append(report.continuity)
        return report

    def run(self, interval_seconds: float = 1.0) -> None:
        """Archive every ``interval_seconds`` until :attr:`stop_event` is set, under a shared
        repository lock that is refreshed as it ages. An error is logged and kept in
        :attr:`last_error`; the next round starts again from what the repository says."""
        with self.repo.lock() as lock:
            while not self.stop_event.is_set():
                began = time.monotonic()
                try:
                    self.run_once()
                    self.last_error = None
                except Exception as exc:  # a daemon keeps going; the error is kept and logged
                    self.last_error = exc
                    self.position = None
                    if isinstance(exc, CutruError):
                        log.error("journal archive: %s", exc.message)
                    else:
                        log.exception("journal archive failed")
                if lock.needs_refresh():
                    lock.refresh()
                self.stop_event.wait(max(0.0, interval_seconds - (time.monotonic() - began)))

    def start(self, interval_seconds: float = 1.0) -> threading.Thread:
        """Run :meth:`run` in a daemon thread."""
        self.stop_event.clear()
        self._thread = threading.Thread(target=self.run, args=(interval_seconds,),
                                        name="cutru-archiver", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 30.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

