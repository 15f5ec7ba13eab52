"""Registry snapshots: the projection, the journal and its checkpoints at one position H.

A snapshot is read in **one read transaction** (SQLite: a WAL read snapshot; PostgreSQL:
``REPEATABLE READ``), so officers keep writing while it runs and what it holds is exactly the
registry at the journal head H it read first. Each projection table, the journal (entries
1..H) and the checkpoints table become a *stream*: JSON Lines of canonical encodings (row
images sorted by key, entries by seq), chunked and deduplicated through the repository, so
a second snapshot stores only the chunks that changed. The chunk ids of a stream are listed
in *tree* blobs; the signed manifest names the trees, the position H with its chain head and
state digest, and the newest signed checkpoints. docs/design.md, "Registry snapshots and
journal segments", is the specification.

The snapshot checks what it reads: the entries must form the hash chain up to the head, and
the rows must give the state digest the journal records at H. A registry that fails either is
not backed up as if it were sound (run ``cutru verify``).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, func, select, text

from cutru.backup import naming
from cutru.backup.manifest import Manifest
from cutru.backup.pack import BlobType
from cutru.backup.repository import Repository
from cutru.errors import (
    CheckpointInvalid,
    InputError,
    JournalChainBroken,
    ProjectionMismatch,
    RepositoryDamaged,
    RepositoryVersionError,
)
from cutru.journal import canonical
from cutru.journal.entry import ENTRY_PREFIX, GENESIS, Change, Entry, encode_body, encode_changes
from cutru.journal.lthash import LtHash, row_element
from cutru.journal.signing import SignedCheckpoint, SigningKey
from cutru.store import journal_store, migrate
from cutru.store.engine import Database
from cutru.store.projection import ROW_BATCH, table_rows
from cutru.store.schema import PROJECTION, journal

SNAPSHOT_FORMAT = 1
KIND = "snapshot"
JOURNAL_STREAM = "journal"
CHECKPOINT_STREAM = "checkpoints"
#: Streams in the order they are written and restored: the tables, the journal, checkpoints.
STREAMS = (*(t.name for t in PROJECTION), JOURNAL_STREAM, CHECKPOINT_STREAM)
TREE_MAGIC = b"CTTR\x01"
TREE_FANOUT = 4096  # blob ids per tree blob (128 KiB)
_BLOCK = 1 << 20  # bytes handed to the chunker at a time

#: ``progress(done, total)``: ``done`` more rows or entries were handled, of ``total``.
Progress = Callable[[int, int], None]


def _no_progress(_done: int, _total: int) -> None:
    return None


# --- the signer ------------------------------------------------------------------------------


class ManifestKey:
    """The registry's checkpoint key as a :class:`~cutru.backup.manifest.ManifestSigner`:
    manifests want the raw signature bytes, :meth:`SigningKey.sign_message` gives hex."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self.key_id: str = key.key_id

    def sign_message(self, message: bytes) -> bytes:
        return bytes.fromhex(self.key.sign_message(message))


# --- what a manifest says ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    """A journal position: entry ``seq``, its hash, time and the state digest after it."""

    seq: int
    chain_head: str
    ts: str
    state_digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"chain_head": self.chain_head, "seq": self.seq,
                "state_digest": self.state_digest, "ts": self.ts}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Position:
        try:
            pos = cls(data["seq"], data["chain_head"], data["ts"], data["state_digest"])
        except (KeyError, TypeError):
            raise _damaged(where, "its position is malformed") from None
        if type(pos.seq) is not int or pos.seq < 0 or not all(
            isinstance(v, str) for v in (pos.chain_head, pos.ts, pos.state_digest)
        ):
            raise _damaged(where, "its position is malformed")
        return pos


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One stream of a snapshot: its lines, plaintext bytes, data blobs and tree blobs."""

    name: str
    rows: int
    bytes: int
    blobs: int
    trees: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"blobs": self.blobs, "bytes": self.bytes, "name": self.name,
                "rows": self.rows, "trees": list(self.trees)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> StreamInfo:
        try:
            info = cls(data["name"], data["rows"], data["bytes"], data["blobs"],
                       tuple(data["trees"]))
        except (KeyError, TypeError):
            raise _damaged(where, "a stream entry is malformed") from None
        ints = (info.rows, info.bytes, info.blobs)
        if not isinstance(info.name, str) or any(type(n) is not int or n < 0 for n in ints):
            raise _damaged(where, f"stream {info.name!r} is malformed")
        for tree in info.trees:
            if not isinstance(tree, str) or len(tree) != 64:
                raise _damaged(where, f"stream {info.name!r} names a malformed tree")
        return info


@dataclass(frozen=True)
class SnapshotInfo:
    """A verified snapshot manifest, parsed."""

    name: str
    created_at: str
    key_id: str
    registry: str
    database: str
    schema: str | None
    position: Position
    streams: dict[str, StreamInfo]
    checkpoint: dict[str, Any] | None  # the newest signed checkpoint in the database, <= H
    external_checkpoint: dict[str, Any] | None  # latest-checkpoint.json when the snapshot ran
    generation: int | None  # the archive generation this snapshot began, if any
    reason: dict[str, Any] | None  # why that generation began
    new_blobs: int
    new_bytes: int
    duration_ms: int
    body: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def rows(self) -> int:
        """Projection rows (the journal and checkpoint streams are not counted)."""
        return sum(s.rows for n, s in self.streams.items()
                   if n not in (JOURNAL_STREAM, CHECKPOINT_STREAM))

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.streams.values())

    def stream(self, name: str) -> StreamInfo:
        try:
            return self.streams[name]
        except KeyError:
            raise _damaged(f"snapshots/{self.name}", f"it has no stream {name!r}") from None

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> SnapshotInfo:
        where = f"snapshots/{manifest.name}"
        if manifest.kind != KIND:
            raise InputError(f"{where} is a {manifest.kind} manifest, not a snapshot",
                             field="snapshot", rule="backup.not_a_snapshot")
        body = manifest.body
        fmt = body.get("format")
        if type(fmt) is int and fmt > SNAPSHOT_FORMAT:
            raise RepositoryVersionError(f"{where} has snapshot format {fmt}; this build reads "
                                         f"{SNAPSHOT_FORMAT}", object=where)
        try:
            streams = [StreamInfo.from_dict(s, where) for s in body["streams"]]
            info = cls(
                name=manifest.name, created_at=manifest.created_at, key_id=manifest.key_id,
                registry=body["registry"], database=body["database"], schema=body["schema"],
                position=Position.from_dict(body["position"], where),
                streams={s.name: s for s in streams},
                checkpoint=body["checkpoint"], external_checkpoint=body["external_checkpoint"],
                generation=body["generation"], reason=body["reason"],
                new_blobs=body["new_blobs"], new_bytes=body["new_bytes"],
                duration_ms=body["duration_ms"], body=body,
            )
        except (KeyError, TypeError):
            raise _damaged(where, "it is not a well-formed snapshot manifest") from None
        if fmt != SNAPSHOT_FORMAT or set(info.streams) != set(STREAMS):
            raise _damaged(where, "it is not a well-formed snapshot manifest")
        return info


def _damaged(where: str, problem: str) -> RepositoryDamaged:
    return RepositoryDamaged(f"{where}: {problem}", object=where)


# --- reading the registry -------------------------------------------------------------------


@contextmanager
def consistent_read(db: Database) -> Iterator[Connection]:
    """One read transaction that sees a single committed state of the whole database:
    SQLite's WAL read snapshot (fixed at the first read), PostgreSQL's REPEATABLE READ."""
    with db.read() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        yield conn


def registry_id(conn: Connection) -> str:
    """A registry's identity: the hash of its first journal entry (64 zeros while empty).
    A restored registry keeps it; a different registry, or a journal rewritten from the
    start, has another."""
    first = journal_store.get_entry(conn, 1)
    return first.hash if first is not None else GENESIS


def read_checkpoint_file(path: Path) -> SignedCheckpoint | None:
    """The signed checkpoint kept outside the database (``latest-checkpoint.json``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CheckpointInvalid(f"{path} is not a readable checkpoint ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointInvalid(f"{path} is not a checkpoint (not an object)")
    return SignedCheckpoint.from_dict(data)


# --- entries as lines -------------------------------------------------------------------------


def entry_line(entry: Entry) -> bytes:
    """The canonical encoding of an entry with its ``hash`` (no newline), keeping the stored
    bytes of its changes: equal to ``canonical.encode({**entry.body(), "hash": entry.hash})``
    for a sound entry, and still the stored bytes for an altered one."""
    enc = canonical.encode_str
    changes = entry.raw_changes if entry.raw_changes is not None else \
        encode_changes(entry.changes)
    return b"".join((
        b'{"actor":', enc(entry.actor), b',"changes":', changes, b',"digest":',
        enc(entry.digest), b',"hash":', enc(entry.hash), b',"operation":', enc(entry.operation),
        b',"prev":', enc(entry.prev), b',"purpose":', enc(entry.purpose), b',"seq":',
        str(int(entry.seq)).encode(), b',"subjects":', canonical.encode(list(entry.subjects)),
        b',"ts":', enc(entry.ts), b"}"))


_ENTRY_FIELDS = frozenset({"actor", "changes", "digest", "hash", "operation", "prev", "purpose",
                           "seq", "subjects", "ts"})


def parse_entry_line(line: bytes, where: str) -> Entry:
    """An entry from :func:`entry_line`'s bytes, with its hash checked over its content."""
    try:
        doc = canonical.decode(line)
        if not isinstance(doc, dict) or set(doc) != _ENTRY_FIELDS:
            raise TypeError("fields")
        changes = doc["changes"]
        entry = Entry(
            seq=doc["seq"], ts=doc["ts"], actor=doc["actor"], purpose=doc["purpose"],
            operation=doc["operation"], subjects=tuple(doc["subjects"]),
            changes=tuple(Change.from_object(c) for c in changes), digest=doc["digest"],
            prev=doc["prev"], hash=doc["hash"], raw_changes=canonical.encode(changes))
        if type(entry.seq) is not int or not all(isinstance(s, str) for s in entry.subjects):
            raise TypeError("types")
    except (InputError, TypeError, KeyError, AttributeError):
        raise _damaged(where, "it holds a malformed journal entry") from None
    if entry.computed_hash() != entry.hash:
        raise _damaged(where, f"journal entry {entry.seq} does not hash to its recorded hash")
    return entry


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A journal entry as stored: its fields, and its ``changes`` as the stored bytes, never
    parsed. Snapshots and segments copy entries in this form; it checks the same hash as
    :meth:`Entry.computed_hash` (over the stored ``changes`` bytes) at a fraction of the cost
    of decoding every row image."""

    seq: int
    ts: str
    actor: str
    purpose: str
    operation: str
    subjects: tuple[str, ...]
    changes: bytes
    digest: str
    prev: str
    hash: str

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> StoredEntry:
        subjects = json.loads(str(row["subjects"]))
        return cls(int(row["seq"]), str(row["ts"]), str(row["actor"]), str(row["purpose"]),
                   str(row["operation"]), tuple(str(s) for s in subjects),
                   str(row["changes"]).encode(), str(row["digest"]), str(row["prev"]),
                   str(row["hash"]))

    @classmethod
    def from_line(cls, line: bytes, where: str) -> StoredEntry:
        """An entry from its line, ``changes`` cut out of the line as they were written."""
        try:
            doc = json.loads(line)
            start = line.index(b',"changes":') + len(b',"changes":')
            end = line.rindex(b',"digest":"')  # no string value holds an unescaped quote
            entry = cls(doc["seq"], doc["ts"], doc["actor"], doc["purpose"], doc["operation"],
                        tuple(doc["subjects"]), line[start:end], doc["digest"], doc["prev"],
                        doc["hash"])
            if type(entry.seq) is not int or not all(
                    isinstance(v, str) for v in (entry.ts, entry.actor, entry.purpose,
                                                 entry.operation, entry.digest, entry.prev,
                                                 entry.hash, *entry.subjects)):
                raise TypeError("types")
        except (ValueError, TypeError, KeyError):
            raise _damaged(where, "it holds a malformed journal entry") from None
        if not entry.hash_ok():
            raise _damaged(where, f"journal entry {entry.seq} does not hash to its recorded "
                           "hash")
        return entry

    def hash_ok(self) -> bool:
        body = encode_body(seq=self.seq, ts=self.ts, actor=self.actor, purpose=self.purpose,
                           operation=self.operation, subjects=self.subjects,
                           changes_bytes=self.changes, digest=self.digest, prev=self.prev)
        return hashlib.sha256(ENTRY_PREFIX + body).hexdigest() == self.hash

    def line(self) -> bytes:
        """The same bytes as :func:`entry_line` of the decoded entry."""
        enc = canonical.encode_str
        return b"".join((
            b'{"actor":', enc(self.actor), b',"changes":', self.changes, b',"digest":',
            enc(self.digest), b',"hash":', enc(self.hash), b',"operation":',
            enc(self.operation), b',"prev":', enc(self.prev), b',"purpose":', enc(self.purpose),
            b',"seq":', str(int(self.seq)).encode(), b',"subjects":',
            canonical.encode(list(self.subjects)), b',"ts":', enc(self.ts), b"}"))

    def row(self) -> dict[str, Any]:
        """The ``journal`` table row."""
        return {"seq": self.seq, "ts": self.ts, "actor": self.actor, "purpose": self.purpose,
                "operation": self.operation,
                "subjects": canonical.encode(list(self.subjects)).decode(),
                "changes": self.changes.decode(), "digest": self.digest, "prev": self.prev,
                "hash": self.hash}


def stored_entries(conn: Connection, *, start: int = 1, stop: int | None = None,
                   batch: int = 2000) -> Iterator[StoredEntry]:
    """Entries ``start <= seq <= stop`` in order, as stored (keyset paging on ``seq``)."""
    seq = start
    while True:
        stmt = select(journal).where(journal.c.seq >= seq).order_by(journal.c.seq).limit(batch)
        if stop is not None:
            stmt = stmt.where(journal.c.seq <= stop)
        rows = conn.execute(stmt).mappings().all()
        for row in rows:
            yield StoredEntry.from_row(row)
        if len(rows) < batch:
            return
        seq = int(rows[-1]["seq"]) + 1


# --- writing streams --------------------------------------------------------------------------


class _Blocks(io.RawIOBase):
    """A readable stream over an iterator of byte strings (for ``Chunker.read``)."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._buf = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._pos >= len(self._buf):
            try:
                self._buf, self._pos = next(self._blocks), 0
            except StopIteration:
                return 0
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._buf) - self._pos)
        view[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n


def _blocks(lines: Iterable[bytes]) -> Iterator[bytes]:
    parts: list[bytes] = []
    size = 0
    for line in lines:
        parts.append(line)
        size += len(line)
        if size >= _BLOCK:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


@dataclass
class _Counter:
    new_blobs: int = 0
    new_bytes: int = 0

    def save(self, repo: Repository, blob_type: BlobType, data: bytes) -> bytes:
        if not repo.has_blob(repo.keys.content_id(blob_type.label, data)):
            self.new_blobs += 1
            self.new_bytes += len(data)
        return repo.save_blob(blob_type, data)


def save_stream(repo: Repository, name: str, lines: Iterable[bytes], counter: _Counter
                ) -> StreamInfo:
    """Chunk the concatenation of ``lines`` (each ending in ``\\n``) into data blobs and list
    their ids in tree blobs of :data:`TREE_FANOUT` ids each."""
    rows = 0
    size = 0

    def counted() -> Iterator[bytes]:
        nonlocal rows, size
        for line in lines:
            rows += 1
            size += len(line)
            yield line

    stream = io.BufferedReader(_Blocks(_blocks(counted())), buffer_size=_BLOCK)
    ids = [counter.save(repo, BlobType.DATA, chunk) for chunk in repo.chunker.read(stream)]
    trees = [counter.save(repo, BlobType.TREE, TREE_MAGIC + b"".join(ids[i:i + TREE_FANOUT]))
             for i in range(0, len(ids), TREE_FANOUT)]
    return StreamInfo(name, rows, size, len(ids), tuple(naming.format_id(t) for t in trees))


def read_stream(repo: Repository, info: StreamInfo, where: str) -> Iterator[bytes]:
    """The lines of a stream (without their newlines), each blob checked as it is loaded,
    and the whole checked against the row and byte counts the manifest records."""
    rows = size = blobs = 0
    pending = b""
    for tree_hex in info.trees:
        tree = repo.load_blob(naming.parse_id(tree_hex))
        if not tree.startswith(TREE_MAGIC) or (len(tree) - len(TREE_MAGIC)) % 32:
            raise _damaged(where, f"tree blob {tree_hex} of stream {info.name} is malformed")
        for i in range(len(TREE_MAGIC), len(tree), 32):
            data = repo.load_blob(tree[i:i + 32])
            blobs += 1
            size += len(data)
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            rows += len(lines)
            yield from lines
    if pending or (rows, size, blobs) != (info.rows, info.bytes, info.blobs):
        raise _damaged(where, f"stream {info.name} does not hold the {info.rows} lines and "
                       f"{info.bytes} bytes its manifest records")


# --- taking a snapshot ------------------------------------------------------------------------


def take_snapshot(db: Database, repo: Repository, signer: SigningKey, *,
                  external_checkpoint: SignedCheckpoint | None = None,
                  generation: int | None = None, reason: dict[str, Any] | None = None,
                  progress: Progress = _no_progress
                  ) -> SnapshotInfo:
    """Snapshot the registry into ``repo`` and save its signed manifest.

    Reads everything in one read transaction while writers go on; refuses
    (:class:`JournalChainBroken`, :class:`ProjectionMismatch`) a registry whose journal does
    not chain to its head or whose tables do not give the digest recorded at H. The caller
    holds a shared repository lock. ``generation`` and ``reason`` are set by the archiver
    when this snapshot starts a new archive generation."""
    started = time.monotonic()
    started_at = naming.format_time(naming.now_us())
    schema = migrate.current_revision(db)
    counter = _Counter()
    streams: list[StreamInfo] = []
    with consistent_read(db) as conn:
        head = journal_store.read_head(conn)  # the first read fixes the snapshot
        total = head.seq + sum(_row_count(conn, t) for t in PROJECTION)
        state = LtHash.empty()
        for table in PROJECTION:
            streams.append(save_stream(repo, table.name,
                                       _table_lines(conn, table, state, progress, total),
                                       counter))
        last: list[StoredEntry] = []
        streams.append(save_stream(repo, JOURNAL_STREAM,
                                   _journal_lines(conn, head.seq, last, progress, total),
                                   counter))
        entry = last[0] if last else None
        reached = (entry.seq, entry.hash) if entry else (0, GENESIS)
        if reached != (head.seq, head.hash):
            raise JournalChainBroken(f"the journal head says entry {head.seq} but the journal "
                                     "ends elsewhere; run `cutru verify`", seq=head.seq)
        digest = entry.digest if entry else LtHash.empty().digest()
        if state.digest() != digest or state != head.state:
            raise ProjectionMismatch(
                f"the tables do not give the state digest the journal records at entry "
                f"{head.seq}; the registry was changed around the application: run "
                "`cutru verify` (snapshot refused)", expected=digest, got=state.digest())
        cps = [cp for cp in journal_store.list_checkpoints(conn) if cp.checkpoint.seq <= head.seq]
        streams.append(save_stream(repo, CHECKPOINT_STREAM,
                                   (canonical.encode(cp.to_dict()) + b"\n" for cp in cps),
                                   counter))
        reg_id = registry_id(conn)
    position = Position(head.seq, head.hash, head.ts, digest)
    body: dict[str, Any] = {
        "checkpoint": cps[-1].to_dict() if cps else None,
        "database": db.dialect,
        "duration_ms": 0,
        "external_checkpoint": external_checkpoint.to_dict() if external_checkpoint else None,
        "format": SNAPSHOT_FORMAT,
        "generation": generation,
        "new_blobs": counter.new_blobs,
        "new_bytes": counter.new_bytes,
        "position": position.to_dict(),
        "reason": reason,
        "registry": reg_id,
        "schema": schema,
        "started_at": started_at,
        "streams": [s.to_dict() for s in streams],
    }
    repo.flush()
    body["duration_ms"] = int((time.monotonic() - started) * 1000)
    name = repo.save_manifest(body, ManifestKey(signer), kind=KIND)
    return SnapshotInfo.from_manifest(repo.load_manifest(name, {
        signer.key_id: signer.public_key_bytes}))


def _row_count(conn: Connection, table: Table) -> int:
    """Rows in ``table`` for the progress bar: exact on SQLite, the planner's estimate on
    PostgreSQL (an exact count would scan the table once more)."""
    if conn.dialect.name == "postgresql":
        estimate = conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = "
                                     "to_regclass(:t)"), {"t": table.name}).scalar()
        return max(0, int(estimate or 0))
    return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def _table_lines(conn: Connection, table: Table, state: LtHash, progress: Progress,
                 total: int) -> Iterator[bytes]:
    batch: list[bytes] = []
    for row in table_rows(conn, table):
        encoded = canonical.encode_row(row)
        batch.append(row_element(table.name, row["key"], encoded))
        yield encoded + b"\n"
        if len(batch) >= ROW_BATCH:
            state.add_many(batch)
            progress(len(batch), total)
            batch = []
    state.add_many(batch)
    progress(len(batch), total)


def _journal_lines(conn: Connection, stop: int, last: list[StoredEntry], progress: Progress,
                   total: int) -> Iterator[bytes]:
    """Entries 1..stop as lines, checking the chain as they pass; ``last`` gets the last."""
    expected, prev = 1, GENESIS
    done = 0
    for entry in stored_entries(conn, stop=stop):
        if entry.seq != expected or entry.prev != prev or not entry.hash_ok():
            raise JournalChainBroken(
                f"journal entry {expected} is missing, altered or does not link to its "
                "predecessor; run `cutru verify` (snapshot refused)", seq=expected)
        yield entry.line() + b"\n"
        expected, prev = entry.seq + 1, entry.hash
        last[:] = [entry]
        done += 1
        if done >= ROW_BATCH:
            progress(done, total)
            done = 0
    progress(done, total)


# --- reading snapshots back -------------------------------------------------------------------


def load_snapshot(repo: Repository, name: str, public_keys: Mapping[str, bytes]
                  ) -> SnapshotInfo:
    """A snapshot manifest, its seal and signature checked."""
    return SnapshotInfo.from_manifest(repo.load_manifest(name, public_keys))


def list_snapshots(repo: Repository, public_keys: Mapping[str, bytes]) -> list[SnapshotInfo]:
    """Every snapshot, oldest first (manifests of other kinds are skipped)."""
    found = []
    for name in repo.list_manifests():
        manifest = repo.load_manifest(name, public_keys)
        if manifest.kind == KIND:
            found.append(SnapshotInfo.from_manifest(manifest))
    return found
