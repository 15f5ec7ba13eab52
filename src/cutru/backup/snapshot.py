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
import json
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, func, select, text

from cutru.backup import blobs, naming, pages
from cutru.backup.blobs import BlobSealer, Cut
from cutru.backup.manifest import Manifest
from cutru.backup.pack import BlobType
from cutru.backup.repository import Repository
from cutru.errors import (
    CheckpointInvalid,
    CutruError,
    InputError,
    JournalChainBroken,
    ProjectionMismatch,
    RepositoryDamaged,
    RepositoryVersionError,
)
from cutru.journal import canonical
from cutru.journal.entry import ENTRY_PREFIX, GENESIS, Change, Entry, encode_body, encode_changes
from cutru.journal.helper import Helper, helper_process
from cutru.journal.lthash import LtHash, Summer, key_elements
from cutru.journal.signing import SignedCheckpoint, SigningKey
from cutru.store import journal_store, migrate, seals
from cutru.store.engine import Database
from cutru.store.projection import encoded_rows, reader
from cutru.store.rows import Delta, delta
from cutru.store.schema import PROJECTION, PROJECTION_BY_NAME

#: 2 since state digest format 2 (docs/design.md, "State digest"); format 1 manifests record
#: digests this build cannot recompute, and are refused by name.
SNAPSHOT_FORMAT = 2
#: The format of a pages snapshot (:mod:`cutru.backup.pages`): a build that reads only rows
#: snapshots refuses it by its format, with a clear message.
PAGES_FORMAT = 3
LAYOUT_ROWS = "rows"
LAYOUT_PAGES = "pages"
#: ``auto``: pages for a SQLite file, rows otherwise (PostgreSQL).
LAYOUTS = ("auto", LAYOUT_PAGES, LAYOUT_ROWS)
KIND = "snapshot"
JOURNAL_STREAM = "journal"
CHECKPOINT_STREAM = "checkpoints"
#: Streams in the order they are written and restored: the tables, the journal, checkpoints.
STREAMS = (*(t.name for t in PROJECTION), JOURNAL_STREAM, CHECKPOINT_STREAM)
TREE_MAGIC = b"CTTR\x01"
TREE_FANOUT = 4096  # blob ids per tree blob (128 KiB)
_BLOCK = 1 << 20  # bytes handed to the chunker at a time
_WINDOW = 16  # calls in the helper's hands before this process waits for the oldest
_JOURNAL_BATCH = 1000  # journal entries read (and handed to the helper) at a time
#: With this many rows and journal entries or more, a snapshot uses a helper process.
HELPER_MIN_ITEMS = 40_000
_REUSE_LOOKBACK = 3  # manifests (newest first) searched for a snapshot to reuse from

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
    layout: str = LAYOUT_ROWS  # rows, or pages: the SQLite database file

    @property
    def pages(self) -> int:
        """Database pages in a pages snapshot (0 in a rows snapshot)."""
        return self.streams[pages.FILE_STREAM].rows if self.layout == LAYOUT_PAGES else 0

    @property
    def rows(self) -> int:
        """Projection rows (the journal and checkpoint streams are not counted; 0 in a pages
        snapshot, which copies the file without counting them)."""
        if self.layout == LAYOUT_PAGES:
            return 0
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
        if type(fmt) is int and fmt not in (SNAPSHOT_FORMAT, PAGES_FORMAT) and fmt >= 1:
            raise RepositoryVersionError(f"{where} has snapshot format {fmt}; this build reads "
                                         f"{SNAPSHOT_FORMAT} and {PAGES_FORMAT}"
                                         f"{OLD_DIGESTS if fmt < 2 else ''}", object=where)
        layout = LAYOUT_PAGES if fmt == PAGES_FORMAT else LAYOUT_ROWS
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
                duration_ms=body["duration_ms"], body=body, layout=layout,
            )
        except (KeyError, TypeError):
            raise _damaged(where, "it is not a well-formed snapshot manifest") from None
        want = {pages.FILE_STREAM} if layout == LAYOUT_PAGES else set(STREAMS)
        have = set(info.streams) - ({pages.SEALS_STREAM} if layout == LAYOUT_PAGES else set())
        if fmt not in (SNAPSHOT_FORMAT, PAGES_FORMAT) or have != want or (
                layout == LAYOUT_PAGES and info.database != "sqlite"):
            raise _damaged(where, "it is not a well-formed snapshot manifest")
        return info


#: Why a format 1 snapshot or segment is refused rather than read.
OLD_DIGESTS = (" (format 1 records state digests of format 1, SHAKE128, which this build "
                "does not compute; restore it with the build that wrote it)")


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


_HASH_MEMBER = b',"hash":"'
_HASH_MEMBER_LEN = len(_HASH_MEMBER) + 64 + 1  # ,"hash":"<64 hex digits>"
_CHANGES_AT = b',"changes":'
_DIGEST_MEMBER = b',"digest":"'


def _line_hash(line: bytes) -> tuple[str, bool]:
    """The ``hash`` a line records, and whether the rest of the line (which must be the
    entry body, exactly the bytes the hash was computed over) hashes to it.

    The member is the last ``,"hash":"`` of the line: after it come only string members and
    the list of subject strings, whose quotes are escaped. Any byte of the body other than
    the journal's own (whitespace, another escape or member order) fails here."""
    at = line.rfind(_HASH_MEMBER)
    if at < 0 or line[at + _HASH_MEMBER_LEN - 1:at + _HASH_MEMBER_LEN] != b'"':
        return "", False
    recorded = line[at + len(_HASH_MEMBER):at + _HASH_MEMBER_LEN - 1].decode("ascii", "replace")
    body = hashlib.sha256(ENTRY_PREFIX)
    body.update(memoryview(line)[:at])
    body.update(memoryview(line)[at + _HASH_MEMBER_LEN:])
    return recorded, body.hexdigest() == recorded


def _changes_span(line: bytes) -> tuple[int, int]:
    """Where the ``changes`` member's value lies in an entry line: from after the first
    ``,"changes":`` (``actor`` before it is a string) to the last ``,"digest":"``
    (every member after it holds strings only)."""
    return line.index(_CHANGES_AT) + len(_CHANGES_AT), line.rindex(_DIGEST_MEMBER)


def _entry_doc(line: bytes) -> dict[str, Any]:
    """An entry line parsed, with exactly an entry's members and the types of its scalar
    ones (``TypeError`` otherwise); ``changes`` is left to the caller."""
    doc = canonical.loads(line)
    if not isinstance(doc, dict) or set(doc) != _ENTRY_FIELDS:
        raise TypeError("fields")
    subjects = doc["subjects"]
    if type(doc["seq"]) is not int or not isinstance(subjects, list) or not all(
            isinstance(v, str) for v in (doc["ts"], doc["actor"], doc["purpose"],
                                         doc["operation"], doc["digest"], doc["prev"],
                                         doc["hash"], *subjects)):
        raise TypeError("types")
    return doc


def parse_entry_line(line: bytes, where: str) -> Entry:
    """An entry from :func:`entry_line`'s bytes, with its hash checked over its content.

    The hash is checked over the line's own bytes (the line without its ``hash`` member is
    the body the journal hashed), so every byte of the entry's content is the journal's own;
    ``changes`` keeps the line's bytes."""
    recorded, sound = _line_hash(line)
    try:
        doc = _entry_doc(line)
        start, end = _changes_span(line)
        entry = Entry(
            seq=doc["seq"], ts=doc["ts"], actor=doc["actor"], purpose=doc["purpose"],
            operation=doc["operation"], subjects=tuple(doc["subjects"]),
            changes=tuple(Change.from_object(c) for c in doc["changes"]),
            digest=doc["digest"], prev=doc["prev"], hash=doc["hash"],
            raw_changes=line[start:end])
    except (InputError, TypeError, KeyError, AttributeError, ValueError):
        raise _damaged(where, "it holds a malformed journal entry") from None
    if not sound or recorded != entry.hash:
        raise _damaged(where, f"journal entry {entry.seq} does not hash to its recorded hash")
    return entry


_CHANGE_FIELDS = frozenset({"after", "before", "key", "table"})


class ReplayEntry(NamedTuple):
    """An entry in the form a replay writes it: its fields but ``changes``, where the
    stored bytes of its changes lie in its line (``span``), and its changes as
    :data:`~cutru.store.rows.Delta`. A named tuple: it crosses from a helper process
    pickled, and a slotted dataclass unpickles five times slower (``dataclasses.fields``
    per object); the changes' bytes stay behind (the process that sent the segment cuts
    them out of its own copy)."""

    seq: int
    prev: str
    hash: str
    ts: str
    digest: str
    actor: str
    purpose: str
    operation: str
    subjects: tuple[str, ...]
    #: ``subjects`` as the ``journal`` row stores them (their canonical encoding)
    subjects_text: str
    span: tuple[int, int]
    changes: list[Delta]

    def row(self, line: bytes) -> tuple[Any, ...]:
        """The ``journal`` row (values in :data:`cutru.store.journal_store.COLUMNS` order)
        of this entry, whose line is ``line``."""
        return (self.seq, self.ts, self.actor, self.purpose, self.operation,
                self.subjects_text, line[self.span[0]:self.span[1]], self.digest, self.prev,
                self.hash)


def parse_replay_line(line: bytes, where: str) -> ReplayEntry:
    """:func:`parse_entry_line`'s checks (the hash over the line's bytes, the members and
    their types), building the replay's form straight from the parsed line instead of
    :class:`Entry` and its :class:`Change` objects."""
    recorded, sound = _line_hash(line)
    try:
        doc = _entry_doc(line)
        seq, subjects = doc["seq"], doc["subjects"]
        changes: list[Delta] = []
        for c in doc["changes"]:
            if set(c) != _CHANGE_FIELDS or not isinstance(c["key"], str):
                raise TypeError("change")
            table, before, after = c["table"], c["before"], c["after"]
            if table not in PROJECTION_BY_NAME or not all(
                    v is None or isinstance(v, dict) for v in (before, after)):
                raise TypeError("change")
            changes.append(delta(table, c["key"], before, after))
        entry = ReplayEntry(seq, doc["prev"], doc["hash"], doc["ts"], doc["digest"],
                            doc["actor"], doc["purpose"], doc["operation"], tuple(subjects),
                            canonical.encode(subjects).decode(), _changes_span(line), changes)
    except (InputError, TypeError, KeyError, AttributeError, ValueError):
        raise _damaged(where, "it holds a malformed journal entry") from None
    if not sound or recorded != entry.hash:
        raise _damaged(where, f"journal entry {seq} does not hash to its recorded hash")
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
    def from_tuple(cls, row: tuple[Any, ...]) -> StoredEntry:
        """From a ``journal`` row as the driver returns it (:func:`journal_rows`)."""
        seq, ts, actor, purpose, operation, subjects, changes, digest, prev, hash_ = row
        return cls(int(seq), str(ts), str(actor), str(purpose), str(operation),
                   tuple(str(s) for s in json.loads(str(subjects))),
                   bytes(changes) if isinstance(changes, bytes | bytearray | memoryview)
                   else str(changes).encode(),
                   str(digest), str(prev), str(hash_))

    @classmethod
    def from_line(cls, line: bytes, where: str) -> StoredEntry:
        """An entry from its line, ``changes`` cut out of the line as they were written
        (never decoded: the hash, checked over the line's bytes, covers them)."""
        recorded, sound = _line_hash(line)
        try:
            start, end = _changes_span(line)
            # every member but changes, as one small object: {"actor":..,"digest":..,...}
            doc = canonical.loads(line[:start - len(_CHANGES_AT)] + line[end:])
            if not isinstance(doc, dict) or set(doc) != _ENTRY_FIELDS - {"changes"}:
                raise TypeError("fields")
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
        if not sound or recorded != entry.hash:
            raise _damaged(where, f"journal entry {entry.seq} does not hash to its recorded "
                           "hash")
        return entry

    def checked_line(self) -> tuple[bytes, bool]:
        """:meth:`line`, and whether the entry hashes to its ``hash`` (:meth:`hash_ok`),
        from one encoding: the body is the line without its ``hash`` member."""
        enc = canonical.encode_str
        head = b"".join((b'{"actor":', enc(self.actor), b',"changes":', self.changes,
                         b',"digest":', enc(self.digest)))
        tail = b"".join((
            b',"operation":', enc(self.operation), b',"prev":', enc(self.prev),
            b',"purpose":', enc(self.purpose), b',"seq":', str(int(self.seq)).encode(),
            b',"subjects":', canonical.encode(list(self.subjects)), b',"ts":', enc(self.ts),
            b"}"))
        body_hash = hashlib.sha256(ENTRY_PREFIX)
        body_hash.update(head)
        body_hash.update(tail)
        return (b"".join((head, b',"hash":', enc(self.hash), tail)),
                body_hash.hexdigest() == self.hash)

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

    def values(self) -> tuple[Any, ...]:
        """The ``journal`` row as :func:`cutru.store.journal_store.insert_rows` takes it."""
        return (self.seq, self.ts, self.actor, self.purpose, self.operation,
                canonical.encode(list(self.subjects)).decode(), self.changes, self.digest,
                self.prev, self.hash)


_JOURNAL_COLUMNS = ("seq", "ts", "actor", "purpose", "operation", "subjects", "changes",
                    "digest", "prev", "hash")


def journal_rows(conn: Connection, *, start: int = 1, stop: int | None = None,
                 batch: int = 2000) -> Iterator[list[tuple[Any, ...]]]:
    """The ``journal`` rows ``start <= seq <= stop`` in order as the driver returns them
    (columns as :data:`_JOURNAL_COLUMNS`), ``batch`` at a time (keyset paging on ``seq``).
    ``changes``, most of a journal's bytes, comes as the UTF-8 bytes stored, never decoded
    to text on the way: lines and hashes are made of bytes."""
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    as_bytes = "CAST(changes AS BLOB)" if sqlite else "convert_to(changes, 'UTF8')"
    columns = ", ".join(as_bytes if c == "changes" else c for c in _JOURNAL_COLUMNS)
    sql = (f"SELECT {columns} FROM journal WHERE seq >= {mark}"
           + ("" if stop is None else f" AND seq <= {mark}") + f" ORDER BY seq LIMIT {int(batch)}")
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    seq = start
    try:
        while True:
            cur.execute(sql, (seq,) if stop is None else (seq, stop))
            rows = cast(list[tuple[Any, ...]], cur.fetchall())
            if rows:
                yield rows
            if len(rows) < batch:
                return
            seq = int(rows[-1][0]) + 1
    finally:
        cur.close()


def stored_entries(conn: Connection, *, start: int = 1, stop: int | None = None,
                   batch: int = 2000) -> Iterator[StoredEntry]:
    """Entries ``start <= seq <= stop`` in order, as stored (keyset paging on ``seq``, with
    the driver's cursor)."""
    for rows in journal_rows(conn, start=start, stop=stop, batch=batch):
        yield from map(StoredEntry.from_tuple, rows)


# --- writing streams --------------------------------------------------------------------------


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
        blob_id, new = repo.put_blob(blob_type, data)
        if new:
            self.new_blobs += 1
            self.new_bytes += len(data)
        return blob_id


@dataclass(frozen=True)
class Reuse:
    """A prefix of a stream known to be byte for byte the prefix of an earlier snapshot's
    stream: its first ``skip`` bytes are exactly the data blobs ``ids`` (every chunk of the
    earlier stream but its last, which ended at the end of that stream rather than at a cut
    point). Those bytes need no chunking: the chunker cuts a longer stream with the same
    prefix at the same points up to there."""

    skip: int
    ids: tuple[bytes, ...]
    snapshot: str  # where they come from, for messages


class _JournalLines:
    """Journal rows (as :func:`journal_rows` reads them) become the lines of the ``journal``
    stream. The chain is checked as they pass, as a snapshot always has; the bytes a
    :class:`Reuse` covers are counted but not handed on; the size at the reuse mark is
    checked. Runs where the lines are chunked: in the helper process, or here."""

    def __init__(self, skip: int = 0, mark: tuple[int, int] | None = None) -> None:
        self.expected, self.prev = 1, GENESIS
        self.rows = self.size = 0
        self.skip = skip
        self.mark = mark
        self.last: tuple[int, str, str] | None = None  # seq, hash, digest
        self.broken: int | None = None  # the seq where the chain breaks
        self.mark_ok = mark is None

    def lines(self, rows: list[tuple[Any, ...]]) -> bytes:
        parts: list[bytes] = []
        for row in rows:
            if self.broken is not None:
                break
            entry = StoredEntry.from_tuple(row)
            line, hash_ok = entry.checked_line()
            if entry.seq != self.expected or entry.prev != self.prev or not hash_ok:
                self.broken = self.expected
                break
            n = len(line) + 1
            if self.skip >= n:
                self.skip -= n
            else:
                parts += [line[self.skip:], b"\n"]
                self.skip = 0
            self.rows += 1
            self.size += n
            if self.mark is not None and entry.seq == self.mark[0]:
                self.mark_ok = self.size == self.mark[1]
            self.expected, self.prev = entry.seq + 1, entry.hash
            self.last = (entry.seq, entry.hash, entry.digest)
        return b"".join(parts)

    def status(self) -> JournalStatus:
        return JournalStatus(self.rows, self.size, self.last, self.broken,
                             self.mark_ok and not self.skip)


@dataclass(frozen=True)
class JournalStatus:
    rows: int
    size: int
    last: tuple[int, str, str] | None  # seq, hash, digest of the last entry
    broken: int | None  # where the chain broke
    reuse_ok: bool  # the reused prefix is exactly what the lines began with


_JOURNAL: list[_JournalLines] = []  # in the helper process


def helper_journal_start(skip: int, mark: tuple[int, int] | None) -> None:
    blobs.helper_start(JOURNAL_STREAM)
    _JOURNAL[:] = [_JournalLines(skip, mark)]


def helper_journal(rows: list[tuple[Any, ...]]) -> list[Cut]:
    data = _JOURNAL[0].lines(rows)
    return blobs.helper_feed(JOURNAL_STREAM, data) if data else []


def helper_journal_finish() -> tuple[list[Cut], JournalStatus]:
    return blobs.helper_finish(JOURNAL_STREAM), _JOURNAL[0].status()


class _Pipeline:
    """Streams on their way to data blobs, several at once: chunked, hashed, compressed and
    sealed by a :class:`~cutru.backup.blobs.BlobSealer` in the helper process when there is
    one (up to :data:`_WINDOW` calls in flight while this process reads on), else here. The
    answers come back in order; their sealed blobs go into this repository's packs."""

    def __init__(self, repo: Repository, counter: _Counter, helper: Helper | None = None
                 ) -> None:
        self.repo = repo
        self.counter = counter
        self.helper = helper
        self.ids: dict[str, list[bytes]] = {}
        self.journal_status: JournalStatus | None = None
        self._inflight: deque[tuple[str, Future[Any]]] = deque()
        self._local: BlobSealer | None = None
        self._journal: _JournalLines | None = None
        if helper is None:
            self._local = BlobSealer(repo.keys, repo.chunker, repo.has_blob)
        else:
            p = repo.config.chunker
            helper.submit(blobs.helper_init, repo.master_key, p.min_size, p.avg_size,
                          p.max_size, repo.config.chunker_seed, repo.known_blobs())

    def start(self, stream: str, ids: Iterable[bytes] = ()) -> None:
        self.ids[stream] = list(ids)
        if self._local is not None:
            self._local.start(stream)
        else:
            self._submit(stream, blobs.helper_start, stream)

    def feed(self, stream: str, data: bytes) -> None:
        if self._local is not None:
            self._store(stream, self._local.feed(stream, data))
        else:
            self._submit(stream, blobs.helper_feed, stream, data)

    def finish(self, stream: str) -> None:
        if self._local is not None:
            self._store(stream, self._local.finish(stream))
        else:
            self._submit(stream, blobs.helper_finish, stream)

    def journal_start(self, reuse: Reuse | None, mark: tuple[int, int] | None) -> None:
        self.ids[JOURNAL_STREAM] = list(reuse.ids) if reuse else []
        skip = reuse.skip if reuse else 0
        if self._local is not None:
            self._local.start(JOURNAL_STREAM)
            self._journal = _JournalLines(skip, mark)
        else:
            self._submit(JOURNAL_STREAM, helper_journal_start, skip, mark)

    def journal(self, rows: list[tuple[Any, ...]]) -> None:
        if self._local is not None and self._journal is not None:
            data = self._journal.lines(rows)
            if data:
                self._store(JOURNAL_STREAM, self._local.feed(JOURNAL_STREAM, data))
        else:
            self._submit(JOURNAL_STREAM, helper_journal, rows)

    def journal_finish(self) -> None:
        if self._local is not None and self._journal is not None:
            self._store(JOURNAL_STREAM, self._local.finish(JOURNAL_STREAM))
            self.journal_status = self._journal.status()
        else:
            self._submit(JOURNAL_STREAM, helper_journal_finish)

    def close(self) -> dict[str, list[bytes]]:
        """Wait for every answer; the data blob ids of each stream, in order."""
        self._drain(0)
        return self.ids

    def _submit(self, stream: str, fn: Callable[..., Any], *args: Any) -> None:
        assert self.helper is not None
        self._inflight.append((stream, self.helper.submit(fn, *args)))
        self._drain(_WINDOW)

    def _drain(self, keep: int) -> None:
        """Take the answers in order: those ready, and more while over ``keep``."""
        while self._inflight and (len(self._inflight) > keep or self._inflight[0][1].done()):
            stream, future = self._inflight.popleft()
            answer = future.result()
            if isinstance(answer, tuple):  # the journal's last answer
                answer, self.journal_status = answer
            if answer:
                self._store(stream, answer)

    def _store(self, stream: str, cuts: list[Cut]) -> None:
        self.ids[stream] += (c[0] for c in cuts)
        keep_cuts(self.repo, self.counter, cuts)


def keep_cuts(repo: Repository, counter: _Counter, cuts: list[Cut]) -> None:
    """Add the sealed blobs of ``cuts`` to the repository's packs (counted when new); a
    chunk the sealer found already stored must still be there."""
    for blob_id, plain_length, sealed in cuts:
        if sealed is None:
            if not repo.has_blob(blob_id):  # the sealer's view is the repository's
                raise _damaged("data/", f"blob {blob_id.hex()} vanished while saving")
        elif repo.put_sealed(BlobType.DATA, blob_id, sealed, plain_length):
            counter.new_blobs += 1
            counter.new_bytes += plain_length


def _stream_info(repo: Repository, counter: _Counter, name: str, rows: int, size: int,
                 ids: list[bytes]) -> StreamInfo:
    """List a stream's data blobs in tree blobs of :data:`TREE_FANOUT` ids each."""
    trees = [counter.save(repo, BlobType.TREE, TREE_MAGIC + b"".join(ids[i:i + TREE_FANOUT]))
             for i in range(0, len(ids), TREE_FANOUT)]
    return StreamInfo(name, rows, size, len(ids), tuple(naming.format_id(t) for t in trees))


def save_stream(repo: Repository, name: str, lines: Iterable[bytes], counter: _Counter,
                *, rows: int | None = None) -> StreamInfo:
    """Chunk the concatenation of ``lines`` (each ending in ``\\n``, unless ``rows`` gives
    the stream's count of rows) into data blobs and list their ids in tree blobs of
    :data:`TREE_FANOUT` ids each."""
    pipe = _Pipeline(repo, counter)
    pipe.start(name)
    lines_ = size = 0
    for block in _blocks(lines):
        lines_ += block.count(b"\n")
        size += len(block)
        pipe.feed(name, block)
    pipe.finish(name)
    return _stream_info(repo, counter, name, lines_ if rows is None else rows, size,
                        pipe.close()[name])


def blob_ids(repo: Repository, info: StreamInfo, where: str) -> Iterator[bytes]:
    """The ids of a stream's data blobs, in order, from its tree blobs (each checked)."""
    for tree_hex in info.trees:
        tree = repo.load_blob(naming.parse_id(tree_hex))
        if not tree.startswith(TREE_MAGIC) or (len(tree) - len(TREE_MAGIC)) % 32:
            raise _damaged(where, f"tree blob {tree_hex} of stream {info.name} is malformed")
        for i in range(len(TREE_MAGIC), len(tree), 32):
            yield tree[i:i + 32]


#: Threads that load (read, decrypt, decompress and check) a stream's blobs ahead of the
#: one its reader is at, the blobs each load takes, and how many such batches may wait
#: ready. Each of those steps runs
#: with Python's lock released (file reads, AES-GCM, zstd, HMAC-SHA-256 over large inputs),
#: so the threads share the CPUs with the reader, which writes meanwhile (one thread
#: loading and writing the 4.4 GB database file of 1,000,000 persons spent 8 s on each).
#: A pages restore of a file that large now uses writer processes instead
#: (:func:`cutru.backup.pages.write_file_by`): the threads still wait on that lock between
#: calls about as long as they work.
LOAD_THREADS = 2
LOAD_BATCH = 32
LOAD_AHEAD = 4


def read_blobs(repo: Repository, info: StreamInfo, where: str) -> Iterator[bytes]:
    """The data blobs of a stream in order, each checked as it is loaded (by
    :data:`LOAD_THREADS` threads, up to :data:`LOAD_AHEAD` batches of :data:`LOAD_BATCH`
    blobs ahead of the caller), and
    their number and bytes checked against what the manifest records."""
    size = count = 0
    for data in _loaded_ahead(repo, blob_ids(repo, info, where)):
        count += 1
        size += len(data)
        if size > info.bytes:
            break
        yield data
    if (size, count) != (info.bytes, info.blobs):
        raise _damaged(where, f"stream {info.name} does not hold the {info.blobs} blobs and "
                       f"{info.bytes} bytes its manifest records")


def _loaded_ahead(repo: Repository, blob_ids: Iterator[bytes]) -> Iterator[bytes]:
    """``repo.load_blob`` of each id, in order, loaded :data:`LOAD_BATCH` at a time
    (:meth:`Repository.load_blobs`) by a pool of threads ahead of the caller; an error is
    raised where its blob comes. Blobs loaded ahead of a caller that stops are dropped, and
    loads not yet begun are cancelled."""
    pool = ThreadPoolExecutor(LOAD_THREADS, thread_name_prefix="cutru-blobs")
    pending: deque[Future[list[bytes]]] = deque()
    try:
        while batch := list(islice(blob_ids, LOAD_BATCH)):
            pending.append(pool.submit(repo.load_blobs, batch))
            if len(pending) > LOAD_AHEAD:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def read_stream(repo: Repository, info: StreamInfo, where: str) -> Iterator[bytes]:
    """The lines of a stream (without their newlines), each blob checked as it is loaded,
    and the whole checked against the row and byte counts the manifest records."""
    rows = 0
    pending = b""
    for data in read_blobs(repo, info, where):
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        rows += len(lines)
        yield from lines
    if pending or rows != info.rows:
        raise _damaged(where, f"stream {info.name} does not hold the {info.rows} lines and "
                       f"{info.bytes} bytes its manifest records")


# --- taking a snapshot ------------------------------------------------------------------------


def take_snapshot(db: Database, repo: Repository, signer: SigningKey, *,
                  external_checkpoint: SignedCheckpoint | None = None,
                  generation: int | None = None, reason: dict[str, Any] | None = None,
                  progress: Progress = _no_progress, helper: bool | None = None,
                  layout: str = "auto") -> SnapshotInfo:
    """Snapshot the registry into ``repo`` and save its signed manifest.

    ``layout`` (:data:`LAYOUTS`): ``pages`` copies a SQLite registry's database file
    (:mod:`cutru.backup.pages`; ``auto`` does so for every SQLite file, and reads rows when
    readers keep the file from settling); the file is always read by helper processes (two
    for a large file; ``helper=True``: two, ``False``: one). ``rows``, as follows.

    Reads everything in one read transaction while writers go on; refuses
    (:class:`JournalChainBroken`, :class:`ProjectionMismatch`) a registry whose journal does
    not chain to its head or whose tables do not give the digest recorded at H. The caller
    holds a shared repository lock. ``generation`` and ``reason`` are set by the archiver
    when this snapshot starts a new archive generation.

    With :data:`HELPER_MIN_ITEMS` rows and entries or more (or ``helper=True``), a helper
    process chunks, compresses and seals the streams and shares the state digest's
    expansions while this one reads (``helper=False``: never)."""
    if layout not in LAYOUTS:
        raise InputError(f"snapshot layout {layout!r} is not one of {', '.join(LAYOUTS)}",
                         field="layout", rule="backup.snapshot_layout")
    if layout == LAYOUT_PAGES and pages.sqlite_path(db) is None:
        raise InputError("a pages snapshot copies a SQLite database file; this registry is "
                         f"{db.dialect}: take a rows snapshot", field="layout",
                         rule="backup.pages_need_sqlite")
    extra: dict[str, Any] = {"external_checkpoint": external_checkpoint,
                             "generation": generation, "reason": reason,
                             "progress": progress, "helper": helper}
    if layout != LAYOUT_ROWS and pages.sqlite_path(db) is not None:
        with pages.pinned_file(db) as pinned:
            if pinned is not None:
                return _take_pages(db, repo, signer, pinned, **extra)
        if layout == LAYOUT_PAGES:
            raise InputError(f"readers kept the write-ahead log from being copied back into "
                             f"the database file for {pages.SETTLE_SECONDS:g} s: no pages "
                             "snapshot now; try again, or take a rows snapshot",
                             field="layout", rule="backup.pages_settle")
    return _take_rows(db, repo, signer, **extra)


def _take_rows(db: Database, repo: Repository, signer: SigningKey, *,
               external_checkpoint: SignedCheckpoint | None, generation: int | None,
               reason: dict[str, Any] | None, progress: Progress, helper: bool | None
               ) -> SnapshotInfo:
    """Every table, the journal and the checkpoints as streams, read in one transaction,
    the chain and the state digest proved as they are read."""
    started = time.monotonic()
    repo.refresh_index()  # the blobs another Repository of this repository saved meanwhile
    started_at = naming.format_time(naming.now_us())
    schema = migrate.current_revision(db)
    counter = _Counter()
    with consistent_read(db) as conn, ExitStack() as stack:
        head = journal_store.read_head(conn)  # the first read fixes the snapshot
        counts = [_row_count(conn, t) for t in PROJECTION]
        total = head.seq + sum(counts)
        pool = None
        if helper or (helper is None and total >= HELPER_MIN_ITEMS):
            pool = stack.enter_context(helper_process())
        pipe = _Pipeline(repo, counter, pool)
        summer = Summer(pool.submit if pool is not None else None)
        reg_id = registry_id(conn)
        reuse, mark = _journal_reuse(repo, conn, signer, reg_id, head.seq)
        # the journal goes along with the tables, in proportion, so that the helper
        # chunks both while this process reads
        pipe.journal_start(reuse, mark)
        journal = journal_rows(conn, stop=head.seq, batch=_JOURNAL_BATCH)
        entries = 0

        def journal_upto(fraction: float) -> None:
            nonlocal entries
            while entries < fraction * head.seq:
                rows = next(journal, None)
                if rows is None:
                    return
                pipe.journal(rows)  # changes as bytes: they cross to the helper as they are
                entries += len(rows)
                progress(len(rows), total)

        table_rows, read = max(1, sum(counts)), 0
        tables: dict[str, tuple[int, int]] = {}
        for table in PROJECTION:
            pipe.start(table.name)
            rows_ = size = 0
            prefix = reader(table.name, conn.dialect.name).prefix
            for keys, encoded in encoded_rows(conn, table, ordered=False):
                summer.add(key_elements(keys, encoded), prefix)
                data = b"\n".join(encoded) + b"\n"
                pipe.feed(table.name, data)
                rows_ += len(keys)
                size += len(data)
                progress(len(keys), total)
                read += len(keys)
                journal_upto(read / table_rows)
            pipe.finish(table.name)
            tables[table.name] = (rows_, size)
        journal_upto(float("inf"))
        pipe.journal_finish()
        cps = [cp for cp in journal_store.list_checkpoints(conn) if cp.checkpoint.seq <= head.seq]
        pipe.start(CHECKPOINT_STREAM)
        cp_lines = b"".join(canonical.encode(cp.to_dict()) + b"\n" for cp in cps)
        if cp_lines:
            pipe.feed(CHECKPOINT_STREAM, cp_lines)
        pipe.finish(CHECKPOINT_STREAM)
        ids = pipe.close()

        status = pipe.journal_status
        assert status is not None
        if status.broken is not None:
            raise JournalChainBroken(
                f"journal entry {status.broken} is missing, altered or does not link to its "
                "predecessor; run `cutru verify` (snapshot refused)", seq=status.broken)
        if not status.reuse_ok:
            raise _damaged(f"snapshots/{reuse.snapshot if reuse else ''}", "its journal "
                           "stream is not the start of this one: snapshot refused")
        reached = status.last[:2] if status.last else (0, GENESIS)
        if reached != (head.seq, head.hash):
            raise JournalChainBroken(f"the journal head says entry {head.seq} but the journal "
                                     "ends elsewhere; run `cutru verify`", seq=head.seq)
        digest = status.last[2] if status.last else LtHash.empty().digest()
        state = summer.result()
        if state.digest() != digest or state != head.state:
            raise ProjectionMismatch(
                f"the tables do not give the state digest the journal records at entry "
                f"{head.seq}; the registry was changed around the application: run "
                "`cutru verify` (snapshot refused)", expected=digest, got=state.digest())
    sizes = {**tables, JOURNAL_STREAM: (status.rows, status.size),
             CHECKPOINT_STREAM: (len(cps), len(cp_lines))}
    streams = [_stream_info(repo, counter, name, *sizes[name], ids[name]) for name in STREAMS]
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
    return _save(repo, signer, body, started)


def _save(repo: Repository, signer: SigningKey, body: dict[str, Any], started: float
          ) -> SnapshotInfo:
    repo.flush()  # packs and their index before the manifest that names their blobs
    body["duration_ms"] = int((time.monotonic() - started) * 1000)
    name = repo.save_manifest(body, ManifestKey(signer), kind=KIND)
    return SnapshotInfo.from_manifest(repo.load_manifest(name, {
        signer.key_id: signer.public_key_bytes}))


def _take_pages(db: Database, repo: Repository, signer: SigningKey, pinned: pages.Pinned, *,
                external_checkpoint: SignedCheckpoint | None, generation: int | None,
                reason: dict[str, Any] | None, progress: Progress, helper: bool | None
                ) -> SnapshotInfo:
    """The database file as ``pinned`` sees it (:mod:`cutru.backup.pages`)."""
    started = time.monotonic()
    # a snapshot that waited its turn (pages.pinned_file) sees the blobs of the one before,
    # saved through another Repository of the same repository (cutru serve has two)
    repo.refresh_index()
    started_at = naming.format_time(naming.now_us())
    schema = migrate.current_revision(db)
    counter = _Counter()
    head = pinned.head
    reg_id = registry_id(pinned.conn)
    page = pinned.page_size
    with pages.file_readers(repo, pinned.size, helper) as readers:
        ids = pages.save_file(pinned.path, pinned.size,
                              lambda cuts: keep_cuts(repo, counter, cuts), readers,
                              lambda n: progress(n // page, pinned.pages))
        kept = _save_seals(repo, counter, pinned.path, readers)
    stream = _stream_info(repo, counter, pages.FILE_STREAM, pinned.pages, pinned.size, ids)
    cps = pinned.checkpoints
    body: dict[str, Any] = {
        "checkpoint": cps[-1].to_dict() if cps else None,
        "database": "sqlite",
        "duration_ms": 0,
        "external_checkpoint": external_checkpoint.to_dict() if external_checkpoint else None,
        "format": PAGES_FORMAT,
        "generation": generation,
        "layout": LAYOUT_PAGES,
        "new_blobs": counter.new_blobs,
        "new_bytes": counter.new_bytes,
        "page_size": page,
        "position": Position(head.seq, head.hash, head.ts, head.state.digest()).to_dict(),
        "reason": reason,
        "registry": reg_id,
        "schema": schema,
        "started_at": started_at,
        "streams": [stream.to_dict(), *([kept.to_dict()] if kept else [])],
    }
    return _save(repo, signer, body, started)


def _save_seals(repo: Repository, counter: _Counter, database: Path, readers: list[Helper]
                ) -> StreamInfo | None:
    """The seal file beside ``database`` (:func:`cutru.store.seals.seal_path`), as the
    :data:`~cutru.backup.pages.SEALS_STREAM` stream; None where there is none. It is copied
    first: a quick check may replace it meanwhile. Whatever it holds, a restore uses it only
    where its signature verifies and only for pages with the bytes it names."""
    try:
        data = seals.seal_path(str(database)).read_bytes()
    except OSError:
        return None
    if not data:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "seals"
        copy.write_bytes(data)
        ids = pages.save_file(copy, len(data), lambda cuts: keep_cuts(repo, counter, cuts),
                              readers, lambda _n: None)
    return _stream_info(repo, counter, pages.SEALS_STREAM, 0, len(data), ids)


def _row_count(conn: Connection, table: Table) -> int:
    """Rows in ``table`` for the progress bar: exact on SQLite, the planner's estimate on
    PostgreSQL (an exact count would scan the table once more)."""
    if conn.dialect.name == "postgresql":
        estimate = conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = "
                                     "to_regclass(:t)"), {"t": table.name}).scalar()
        return max(0, int(estimate or 0))
    return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def _journal_reuse(repo: Repository, conn: Connection, signer: SigningKey, reg_id: str,
                   head_seq: int) -> tuple[Reuse | None, tuple[int, int] | None]:
    """What of the ``journal`` stream the newest snapshot of this registry already holds.

    Its stream is entries 1..H' as lines. If this database's entry H' has the hash that
    snapshot signed, and the chain 1..H' verifies as it is read (it is, line by line), then
    the first lines here are exactly those bytes: a line is a function of the entry's hashed
    fields and its hash. So all of that stream's data blobs but the last are reused, and
    ``mark = (H', its byte count)`` is checked when line H' passes."""
    public = {signer.key_id: signer.public_key_bytes}
    for name in reversed(repo.list_manifests()[-_REUSE_LOOKBACK:]):
        try:
            manifest = repo.load_manifest(name, public)
            if manifest.kind != KIND:
                continue
            prev = SnapshotInfo.from_manifest(manifest)
        except CutruError:
            continue  # another key, another format, damage: not ours to reuse
        if prev.layout != LAYOUT_ROWS:
            continue  # a database file: no journal stream to reuse
        stream = prev.streams[JOURNAL_STREAM]
        if prev.registry != reg_id or not 0 < prev.position.seq <= head_seq:
            return None, None
        entry = journal_store.get_entry(conn, prev.position.seq)
        if entry is None or entry.hash != prev.position.chain_head:
            return None, None
        ids: list[bytes] = []
        try:
            for tree_hex in stream.trees:
                tree = repo.load_blob(naming.parse_id(tree_hex))
                ids += [tree[i:i + 32] for i in range(len(TREE_MAGIC), len(tree), 32)]
        except CutruError:
            return None, None
        found = repo.index.lookup(ids[-1]) if ids else None
        if len(ids) != stream.blobs or found is None or not all(map(repo.has_blob, ids)):
            return None, None
        skip = stream.bytes - found[1].plain_length
        return Reuse(skip, tuple(ids[:-1]), name), (prev.position.seq, stream.bytes)
    return None, None


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
