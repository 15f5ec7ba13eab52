"""Persistence of the audit log (docs/audit.md): append a record in the caller's transaction,
sign tree heads, search, prove inclusion.

The Merkle frontier (O(log n) hashes) lives in ``audit_state`` beside the records, so an
append never reads earlier records. Writers are serialised on that row (``FOR UPDATE`` on
PostgreSQL; ``BEGIN IMMEDIATE`` already on SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from cutru.journal import merkle
from cutru.journal.audit_record import (
    AuditRecord,
    SignedTreeHead,
    TreeHead,
    decode_record,
    encode_record,
    record_leaf,
    sign_head,
)
from cutru.journal.entry import format_ts
from cutru.journal.signing import SigningKey
from cutru.store.schema import audit_heads, audit_log, audit_state, audit_subjects


def init_state(conn: Connection) -> None:
    if conn.execute(select(audit_state.c.id)).first() is None:
        conn.execute(insert(audit_state).values(
            id=1, size=0, ts="", frontier=merkle.MerkleAccumulator().to_bytes()))


def _lock_state(conn: Connection) -> tuple[int, str, merkle.MerkleAccumulator]:
    stmt = select(audit_state).where(audit_state.c.id == 1)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise LookupError("audit log missing: run `cutru init` first")
    return (int(row["size"]), str(row["ts"]),
            merkle.MerkleAccumulator.from_bytes(bytes(row["frontier"])))


def append(conn: Connection, record: AuditRecord, *, now: datetime) -> AuditRecord:
    """Give ``record`` its ``seq`` and time and append it; returns the stored record.
    ``record.seq`` and ``record.ts`` are ignored (pass 0 and "")."""
    size, last_ts, acc = _lock_state(conn)
    ts = max(format_ts(now), last_ts)
    stored = replace(record, seq=size + 1, ts=ts)
    leaf = record_leaf(stored)
    acc.append(leaf)
    conn.execute(insert(audit_log).values(
        seq=stored.seq, ts=ts, principal=stored.principal, action=stored.action,
        outcome=stored.outcome, purpose_kind=stored.purpose_kind,
        record=encode_record(stored).decode(), leaf=leaf.hex()))
    if stored.subjects:
        conn.execute(insert(audit_subjects),
                     [{"subject": s, "seq": stored.seq} for s in stored.subjects])
    conn.execute(update(audit_state).where(audit_state.c.id == 1).values(
        size=stored.seq, ts=ts, frontier=acc.to_bytes()))
    return stored


def sign_current_head(conn: Connection, key: SigningKey, *, now: datetime
                      ) -> SignedTreeHead | None:
    """Sign the tree as it stands (nothing when already signed at this size or empty)."""
    size, _, acc = _lock_state(conn)
    if size == 0 or conn.execute(select(audit_heads.c.size).where(audit_heads.c.size == size)
                                 ).first():
        return None
    signed = sign_head(TreeHead(size=size, root=acc.root().hex(), ts=format_ts(now),
                                key_id=key.key_id), key)
    h = signed.head
    conn.execute(insert(audit_heads).values(size=h.size, root=h.root, ts=h.ts, key_id=h.key_id,
                                            signature=signed.signature))
    return signed


def heads(conn: Connection) -> list[SignedTreeHead]:
    rows = conn.execute(select(audit_heads).order_by(audit_heads.c.size)).mappings()
    return [SignedTreeHead(TreeHead(r["size"], r["root"], r["ts"], r["key_id"]),
                           r["signature"]) for r in rows]


def iter_records(conn: Connection, batch: int = 5000) -> Iterator[AuditRecord]:
    seq = 0
    while True:
        rows = conn.execute(select(audit_log.c.seq, audit_log.c.record)
                            .where(audit_log.c.seq > seq).order_by(audit_log.c.seq)
                            .limit(batch)).all()
        if not rows:
            return
        for r in rows:
            yield decode_record(str(r.record).encode())
        seq = int(rows[-1].seq)


def search(conn: Connection, *, principal: str | None = None, subject: str | None = None,
           purpose_kind: str | None = None, since: str | None = None,
           until: str | None = None, action: str | None = None, seq: int | None = None,
           limit: int = 200) -> list[AuditRecord]:
    """Records matching every given criterion, newest first."""
    stmt = select(audit_log.c.record).order_by(audit_log.c.seq.desc()).limit(limit)
    if subject is not None:
        stmt = stmt.join(audit_subjects, audit_subjects.c.seq == audit_log.c.seq).where(
            audit_subjects.c.subject == subject)
    if principal is not None:
        stmt = stmt.where(audit_log.c.principal == principal)
    if purpose_kind is not None:
        stmt = stmt.where(audit_log.c.purpose_kind == purpose_kind)
    if action is not None:
        stmt = stmt.where(audit_log.c.action == action)
    if seq is not None:
        stmt = stmt.where(audit_log.c.seq == seq)
    if since is not None:
        stmt = stmt.where(audit_log.c.ts >= since)
    if until is not None:
        stmt = stmt.where(audit_log.c.ts <= until)
    return [decode_record(str(r[0]).encode()) for r in conn.execute(stmt)]


def inclusion_proof(conn: Connection, seq: int, size: int) -> list[bytes]:
    """The RFC 9162 inclusion proof of record ``seq`` in the tree of the first ``size``."""
    leaves = [bytes.fromhex(r[0]) for r in conn.execute(
        select(audit_log.c.leaf).where(audit_log.c.seq <= size).order_by(audit_log.c.seq))]
    return merkle.inclusion_proof(leaves, seq - 1)
