"""The unit of work: one database transaction holding projection changes and their journal
entries. A rule violated anywhere inside raises, the transaction rolls back, nothing is written.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Table

from cutru.access.fieldcrypto import Keyring
from cutru.errors import ConfigError, NotFound
from cutru.journal import lthash
from cutru.journal.entry import Draft, Entry, Row
from cutru.journal.helper import Helper, HelperFailed
from cutru.journal.lthash import LtHash
from cutru.journal.signing import Checkpoint, SigningKey
from cutru.store import journal_store
from cutru.store.engine import Database
from cutru.store.rows import RowWriter

Clock = Callable[[], datetime]


#: Vietnam's civil time (UTC+7, no daylight saving): dates of the law are local dates.
VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")


def utc_now() -> datetime:
    return datetime.now(UTC)


def local_date(moment: datetime) -> date:
    return moment.astimezone(VIETNAM_TZ).date()


#: Operations in a batch from which a helper process, when given, computes the digests.
HELPER_DRAFTS = 200


class KeyFactory:
    """Internal record keys: a one-letter kind and 16 hex digits (never the ID number).

    By default the digits are 64 bits from the operating system's CSPRNG, drawn 4 KiB at a
    time (one system call per 512 keys: a call per key cost 1.2 µs, four times what the rest
    of drawing a key costs); ``randbits`` (such as ``random.Random(seed).getrandbits``) makes
    them deterministic, for ``demo seed`` and tests."""

    _POOL_BYTES = 4096

    def __init__(self, randbits: Callable[[int], int] | None = None) -> None:
        self._randbits = randbits
        self._pool = ""  # hex digits not handed out yet, from _at on
        self._at = 0
        self._lock = threading.Lock()  # a registry's runner serves every request thread

    def __call__(self, kind: str) -> str:
        if self._randbits is not None:
            return f"{kind}{self._randbits(64):016x}"
        with self._lock:
            at = self._at
            if at >= len(self._pool):
                self._pool, at = os.urandom(self._POOL_BYTES).hex(), 0
            self._at = at + 16
            return kind + self._pool[at:at + 16]


@dataclass
class Tx:
    """What an operation sees: the connection, the row writer, its draft, today's date."""

    conn: Connection
    rows: RowWriter
    draft: Draft
    today: date
    new_key: KeyFactory
    keys: Keyring

    def get(self, table: Table, key: str, what: str) -> Row:
        row = self.rows.get(table, key)
        if row is None:
            raise NotFound(f"{what} {key} not found", field=f"{what}_key", rule="exists")
        return row

    def select(self, table: Table, **where: Any) -> list[Row]:
        return self.rows.select(table, **where)

    def touch(self, *subjects: str | None) -> None:
        self.draft.subjects.update(s for s in subjects if s)


@dataclass
class Batch:
    """Several operations in one transaction (bulk import); each gets its own journal entry."""

    conn: Connection
    rows: RowWriter
    today: date
    new_key: KeyFactory
    keys: Keyring
    drafts: list[Draft] = field(default_factory=list)
    #: run inside the transaction after the journal entries are appended (the audit record
    #: of a write goes here, so it commits or rolls back with the write)
    before_commit: list[Callable[[Connection, list[Entry]], None]] = field(default_factory=list)
    #: set by :meth:`UnitRunner.batch`: writes and seals what the batch holds so far
    sealer: Callable[[], list[Entry]] | None = field(default=None, repr=False)

    def spill(self) -> None:
        """Write the rows and seal the entries of the operations so far, inside the same
        transaction, and let go of them: a long batch (a whole file imported as one
        transaction) keeps its memory bounded and still commits or rolls back as one.
        Call it between operations, never inside one."""
        if self.before_commit:
            raise RuntimeError("a batch with before-commit hooks keeps its entries: no spill")
        if self.sealer is not None:
            self.sealer()

    @contextmanager
    def unit(self, actor: str, purpose: str, operation: str) -> Iterator[Tx]:
        mark = len(self.rows.changes)
        draft = Draft(actor=actor, purpose=purpose, operation=operation)
        tx = Tx(self.conn, self.rows, draft, self.today, self.new_key, self.keys)
        yield tx
        draft.changes = self.rows.changes[mark:]
        self.drafts.append(draft)


class UnitRunner:
    """Opens transactions, seals their drafts into the journal, signs periodic checkpoints."""

    def __init__(self, db: Database, keys: Keyring, *, clock: Clock = utc_now,
                 signing_key: SigningKey | None = None, checkpoint_interval: int = 1000,
                 new_key: KeyFactory | None = None) -> None:
        self.db = db
        self.keys = keys
        self.clock = clock
        self.signing_key = signing_key
        self.checkpoint_interval = checkpoint_interval
        self.new_key = new_key or KeyFactory()
        #: called with the first and the last entry of each committed batch, after the commit
        self.on_commit: Callable[[Entry, Entry], None] | None = None

    @contextmanager
    def batch(self, *, helper: Helper | None = None, bulk: bool = False) -> Iterator[Batch]:
        """One transaction for several operations. With a ``helper`` process, a large
        batch's state digests are computed there while its rows are written here; ``bulk``
        (an import) gives the transaction the larger page cache of
        :meth:`~cutru.store.engine.Database.begin_bulk`."""
        span: list[Entry] = []  # the first and the last entry written
        with self.db.begin_bulk() if bulk else self.db.begin() as conn:
            head = journal_store.lock_head(conn)
            batch = Batch(conn, RowWriter(conn), local_date(self.clock()), self.new_key,
                          self.keys)

            def seal() -> list[Entry]:
                before = head.seq
                entries = self._seal(batch, head, helper)
                journal_store.write_entries(conn, head, entries)
                if entries:
                    if self._checkpoint_due(before, head.seq):
                        self._sign(conn, entries[-1])
                    span[:] = [span[0] if span else entries[0], entries[-1]]
                batch.drafts.clear()
                batch.rows.changes.clear()
                return entries

            batch.sealer = seal
            yield batch
            entries = seal()
            for hook in batch.before_commit:
                hook(conn, entries)
        if span and self.on_commit is not None:
            self.on_commit(span[0], span[1])

    def _seal(self, batch: Batch, head: journal_store.Head, helper: Helper | None
              ) -> list[Entry]:
        """Write the batch's buffered rows and seal its drafts into entries."""
        if helper is None or len(batch.drafts) < HELPER_DRAFTS:
            batch.rows.flush()
            return journal_store.seal_drafts(head, batch.drafts, self.clock)
        # expanding every changed row for the state digest is the largest cost of sealing;
        # the helper does it on the other core while this process writes the rows
        # (the rows go as they are: framing them into elements is the helper's work too)
        steps = journal_store.row_steps(batch.drafts)
        try:
            pending: Future[tuple[list[str], bytes]] | None = helper.submit(
                lthash.advance_state_rows, head.state.to_bytes(), steps)
        except HelperFailed:
            pending = None
        batch.rows.flush()
        if pending is not None:
            try:
                digests, state = pending.result()
            except HelperFailed:  # the helper died: do the work here after all
                pending = None
            else:
                head.state = LtHash.from_bytes(state)
        if pending is None:
            digests = head.state.advance(lthash.framed_steps(steps))
        return journal_store.seal_drafts(head, batch.drafts, self.clock, digests)

    @contextmanager
    def unit(self, actor: str, purpose: str, operation: str,
             before_commit: Callable[[Connection, list[Entry]], None] | None = None
             ) -> Iterator[Tx]:
        with self.batch() as b, b.unit(actor, purpose, operation) as tx:
            if before_commit is not None:
                b.before_commit.append(before_commit)
            yield tx

    def read_tx(self, conn: Connection) -> Tx:
        """A Tx for read-only helpers (its draft is never sealed)."""
        return Tx(conn, RowWriter(conn), Draft("reader", "read", "read"),
                  local_date(self.clock()), self.new_key, self.keys)

    def _checkpoint_due(self, before: int, after: int) -> bool:
        n = self.checkpoint_interval
        return self.signing_key is not None and after // n > before // n

    def _sign(self, conn: Connection, entry: Entry) -> None:
        if self.signing_key is None:
            raise ConfigError("no signing key loaded", field="key_dir", rule="keys.present")
        cp = Checkpoint(seq=entry.seq, chain_head=entry.hash, state_digest=entry.digest,
                        created_at=entry.ts, key_id=self.signing_key.key_id)
        journal_store.save_checkpoint(conn, self.signing_key.sign(cp))

    def checkpoint(self) -> Checkpoint | None:
        """Sign a checkpoint at the current head now (none when the journal is empty
        or the head is already checkpointed)."""
        with self.db.begin() as conn:
            head = journal_store.lock_head(conn)
            if head.seq == 0 or journal_store.last_checkpoint_seq(conn) == head.seq:
                return None
            entry = journal_store.get_entry(conn, head.seq)
            assert entry is not None
            self._sign(conn, entry)
            return Checkpoint(entry.seq, entry.hash, entry.digest, entry.ts,
                              self.signing_key.key_id if self.signing_key else "")
