"""Tamper detection and rebuild (docs/design.md, "Verification").

``verify`` checks, in order: the hash chain (gapless sequence, links, hashes, times); the
state digest recorded in every entry against a replay of the row images; the journal head;
every signed checkpoint (signature, and agreement with the entry it names) and the latest
checkpoint kept outside the database (a journal cut back to an older valid prefix); and
finally the live projection against the journal's digest. A projection mismatch is
pinpointed row by row against a replay, with the last journal position that wrote the row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, update

from cutru.errors import CheckpointInvalid, JournalChainBroken, ProjectionMismatch
from cutru.journal import canonical
from cutru.journal.entry import GENESIS, Entry
from cutru.journal.lthash import LtHash
from cutru.journal.signing import SignedCheckpoint, verify_checkpoint
from cutru.store import journal_store
from cutru.store.engine import Database
from cutru.store.projection import iter_projection_rows, projection_state
from cutru.store.rows import RowWriter
from cutru.store.schema import PROJECTION, journal_head

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
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _noop(_: int) -> None:
    return None


def _check_chain(conn: Connection, report: Report, progress: Progress
                 ) -> tuple[LtHash, Entry | None]:
    state, prev_hash, prev_ts, expected = LtHash.empty(), GENESIS, "", 1
    last: Entry | None = None
    for batch in _batches(journal_store.iter_entries(conn), 2000):
        digests = state.advance([journal_store.row_elements(e.changes) for e in batch])
        for e, digest in zip(batch, digests, strict=True):
            _check_entry(e, digest, expected, prev_hash, prev_ts, report)
            prev_hash, prev_ts, expected, last = e.hash, e.ts, e.seq + 1, e
            report.entries += 1
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


def _check_entry(e: Entry, digest: str, expected: int, prev_hash: str, prev_ts: str,
                 report: Report) -> None:
    """Checks 1-5 of docs/design.md "Verification" for one entry."""
    if e.seq != expected:
        report.problems.append(Problem("chain", f"entry {expected} is missing "
                                       f"(next present is {e.seq})", seq=expected))
    if e.prev != prev_hash:
        report.problems.append(Problem("chain", f"entry {e.seq} does not link to its "
                                       "predecessor", seq=e.seq))
    if e.computed_hash() != e.hash:
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
        entry = journal_store.get_entry(conn, c.seq)
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
    with db.read() as conn:
        state, last = _check_chain(conn, report, progress)
        head = journal_store.read_head(conn)
        if last is not None and (head.seq, head.hash) != (last.seq, last.hash):
            report.problems.append(Problem("head", f"the journal head says {head.seq} but the "
                                           f"journal ends at {last.seq}", seq=head.seq))
        if head.state != state:
            report.problems.append(Problem("head", "the stored running digest differs from "
                                           "the journal's replay"))
        _check_checkpoints(conn, report, public_keys, external, last)
        live, report.rows = projection_state(conn, progress)
        report.digest = live.digest()
        if live != state:
            report.problems.extend(pinpoint(conn))
    return report


def replay_state(conn: Connection, stop: int | None = None
                 ) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], int]]:
    """Rows the journal says exist (up to ``stop``), and the last position that wrote each."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    written: dict[tuple[str, str], int] = {}
    # the row images only: decoded straight from the stored JSON, without building entries
    # (their hashes are the chain check's business, not this one's)
    for seq, raw in journal_store.iter_changes(conn, stop=stop):
        for ch in canonical.loads(raw):
            k = (ch["table"], ch["key"])
            written[k] = seq
            after = ch["after"]
            if after is None:
                rows.pop(k, None)
            else:
                rows[k] = after
    return rows, written


def pinpoint(conn: Connection) -> list[Problem]:
    """Which live rows differ from the journal, and since which position."""
    expected, written = replay_state(conn)
    found: list[Problem] = []
    live_keys = set()
    for table, key, row in iter_projection_rows(conn):
        k = (table, key)
        live_keys.add(k)
        want = expected.get(k)
        if want is None:
            found.append(Problem("projection", f"{table} row {key} exists but no journal "
                                 "entry created it", table=table, key=key, change="inserted",
                                 since_seq=written.get(k)))
        elif want != row:
            cols = sorted(c for c in row if row.get(c) != want.get(c))
            found.append(Problem("projection", f"{table} row {key} differs from the journal "
                                 f"in {', '.join(cols)}", table=table, key=key,
                                 change="updated", since_seq=written.get(k)))
    for k in sorted(set(expected) - live_keys):
        found.append(Problem("projection", f"{k[0]} row {k[1]} is missing from the live "
                             "tables", table=k[0], key=k[1], change="deleted",
                             since_seq=written.get(k)))
    return found


def rebuild(db: Database, progress: Progress = _noop) -> str:
    """Replace the projection by a replay of the journal, in one transaction; the result
    must have exactly the recorded digest, or nothing changes."""
    with db.begin() as conn:
        journal_store.lock_head(conn)
        chain = Report()
        state, last = _check_chain(conn, chain, _noop)
        if chain.problems:
            raise JournalChainBroken("the journal itself is damaged; rebuild refused: "
                                     + chain.problems[0].message, seq=chain.problems[0].seq)
        for table in reversed(PROJECTION):
            conn.execute(delete(table))
        writer = RowWriter(conn)
        for e in journal_store.iter_entries(conn):
            for ch in e.changes:
                writer.apply(ch)
            progress(1)
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
                external: SignedCheckpoint | None = None, progress: Progress = _noop) -> Report:
    """The check ``cutru serve`` runs on a schedule: the chain from the newest signed
    checkpoint to the head (links, hashes, digests), the head against it, the checkpoints
    (a journal cut back below one is caught), and the live projection against the head's
    running digest -- without replaying the journal from its start. A projection mismatch
    is then pinpointed row by row (that part replays the journal)."""
    report = Report()
    with db.read() as conn:
        cps = journal_store.list_checkpoints(conn)
        start = max((c.checkpoint.seq for c in cps), default=0)
        head = journal_store.read_head(conn)
        start = min(start, head.seq)
        base = journal_store.get_entry(conn, start) if start else None
        prev_hash, prev_ts = (base.hash, base.ts) if base else (GENESIS, "")
        last = base
        expected = start + 1
        for e in journal_store.iter_entries(conn, start=start + 1):
            if e.seq != expected:
                report.problems.append(Problem("chain", f"entry {expected} is missing "
                                               f"(next present is {e.seq})", seq=expected))
            if e.prev != prev_hash or e.computed_hash() != e.hash or e.ts < prev_ts:
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
        live, report.rows = projection_state(conn, progress)
        report.digest = live.digest()
        if live != head.state:
            report.problems.extend(pinpoint(conn) or [Problem(
                "projection", "the live tables do not give the journal's state digest")])
    return report
