"""Finding the moment to restore to (docs/operations.md, "Find the moment").

Every question an incident asks of the journal -- "the first change by this account after
09:00", "what happened at 14:32", "every change to this household since Monday" -- is answered
with journal positions and what happened there: time, actor, operation, subjects and how many
rows changed. Only keys and operation names appear, never a row image, so an operator can use
it without seeing personal data. The audit log answers the questions the journal cannot (when
an account signed in, what it read) with its own records.

Times given by a person are read as Vietnam's civil time (UTC+7) unless they carry an offset;
the journal keeps UTC.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, func, select

from cutru.errors import InputError, NotFound
from cutru.journal.entry import format_ts
from cutru.store import audit_store, journal_store
from cutru.store.schema import journal, journal_subjects

#: Vietnam's civil time: a time written without an offset means this.
VIETNAM = timezone(timedelta(hours=7), "ICT")

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_moment(text: str, *, field: str = "time") -> str:
    """A time as the journal writes it (UTC, microseconds, ``Z``). Accepts ISO 8601 with or
    without an offset (without: Vietnam time) and a bare date (its first moment, Vietnam)."""
    value = text.strip()
    if _DATE_ONLY.match(value):
        value += "T00:00:00"
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{field} {text!r} is not a time: write 2026-11-27T09:00 (Vietnam "
                         "time) or 2026-11-27T02:00:00Z", field=field,
                         rule="time.format") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=VIETNAM)
    return format_ts(moment.astimezone(UTC))


def local_time(ts: str) -> str:
    """A journal time shown in Vietnam time, to the second."""
    moment = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return moment.astimezone(VIETNAM).strftime("%Y-%m-%d %H:%M:%S ICT")


@dataclass(frozen=True)
class Moment:
    """One journal position and what happened there (keys only, no row images)."""

    seq: int
    ts: str
    actor: str
    operation: str
    purpose: str
    subjects: tuple[str, ...]
    rows: int  # projection rows the entry changed
    tables: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "local_time": local_time(self.ts),
                "actor": self.actor, "operation": self.operation, "purpose": self.purpose,
                "subjects": list(self.subjects), "rows": self.rows,
                "tables": list(self.tables)}


def _moment(row: Any) -> Moment:
    changes = json.loads(str(row.changes))
    return Moment(int(row.seq), str(row.ts), str(row.actor), str(row.operation),
                  str(row.purpose), tuple(json.loads(str(row.subjects))), len(changes),
                  tuple(sorted({str(c["table"]) for c in changes})))


@dataclass(frozen=True)
class Query:
    """What to look for; every given condition must hold."""

    actor: str | None = None
    since: str | None = None  # journal time (parse_moment), inclusive
    until: str | None = None  # journal time, exclusive
    subject: str | None = None
    operation: str | None = None
    first: int | None = None  # positions from
    last: int | None = None  # positions to (inclusive)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (("actor", self.actor), ("since", self.since),
                                         ("until", self.until), ("subject", self.subject),
                                         ("operation", self.operation),
                                         ("from", self.first), ("to", self.last))
                 if v is not None]
        return ", ".join(parts) or "every entry"


def find(conn: Connection, query: Query, *, limit: int = 100, newest_first: bool = False
         ) -> list[Moment]:
    """Journal positions matching ``query``, oldest first (or newest first). The composite
    index on (actor, ts) answers "this account in this window" without a scan."""
    stmt = select(journal.c.seq, journal.c.ts, journal.c.actor, journal.c.operation,
                  journal.c.purpose, journal.c.subjects, journal.c.changes)
    if query.subject is not None:
        stmt = stmt.join(journal_subjects, journal_subjects.c.seq == journal.c.seq).where(
            journal_subjects.c.subject == query.subject)
    if query.actor is not None:
        stmt = stmt.where(journal.c.actor == query.actor)
    if query.since is not None:
        stmt = stmt.where(journal.c.ts >= query.since)
    if query.until is not None:
        stmt = stmt.where(journal.c.ts < query.until)
    if query.operation is not None:
        stmt = stmt.where(journal.c.operation == query.operation)
    if query.first is not None:
        stmt = stmt.where(journal.c.seq >= query.first)
    if query.last is not None:
        stmt = stmt.where(journal.c.seq <= query.last)
    order: list[Any] = [journal.c.seq]
    if query.actor is not None and query.subject is None:
        # walk the (actor, ts) index in order; ts never decreases along seq
        order = [journal.c.ts, journal.c.seq]
    if newest_first:
        order = [c.desc() for c in order]
    rows = conn.execute(stmt.order_by(*order).limit(limit)).all()
    return [_moment(r) for r in rows]


def at(conn: Connection, seq: int) -> Moment:
    row = conn.execute(select(journal.c.seq, journal.c.ts, journal.c.actor,
                              journal.c.operation, journal.c.purpose, journal.c.subjects,
                              journal.c.changes).where(journal.c.seq == seq)).first()
    if row is None:
        last = journal_store.last_seq(conn)
        raise NotFound(f"the journal has no entry {seq} (it holds 1..{last})",
                       field="position", rule="journal.position_exists")
    return _moment(row)


@dataclass(frozen=True)
class Point:
    """A restore point: the registry as it was right after entry ``seq`` (0: empty)."""

    seq: int
    ts: str  # that entry's time ("" for 0)
    asked: str  # what was asked, for the record
    next: Moment | None  # the first entry *not* included, if any

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts,
                "local_time": local_time(self.ts) if self.ts else None,
                "asked": self.asked, "next": self.next.to_dict() if self.next else None}


def resolve_point(conn: Connection, target: str, *, before: bool = False) -> Point:
    """``target`` is a journal position (digits) or a time. The point is the state after
    that position, or after the last entry at or before that time; ``before`` takes the state
    just *before* that entry (position ``p - 1``), or before the first entry at or after that
    time. Refuses a target outside the journal with the reason."""
    last = journal_store.last_seq(conn)
    text = target.strip()
    if text.isdigit():
        seq = int(text)
        if seq > last:
            raise NotFound(f"position {seq} is beyond the journal's end ({last})",
                           field="to", rule="restore.point_reachable")
        if before:
            if seq == 0:
                raise InputError("there is no state before position 0", field="to",
                                 rule="restore.point_reachable")
            seq -= 1
    else:
        ts = parse_moment(text, field="to")
        if before:
            first_at = conn.execute(select(func.min(journal.c.seq))
                                    .where(journal.c.ts >= ts)).scalar()
            if first_at is None:
                raise NotFound(f"no journal entry was made at or after {text}",
                               field="to", rule="restore.point_reachable")
            seq = int(first_at) - 1
        else:
            seq = journal_store.seq_at(conn, ts)
    entry_ts = "" if seq == 0 else at(conn, seq).ts
    nxt = at(conn, seq + 1) if seq < last else None
    return Point(seq, entry_ts, f"{target}{' (before)' if before else ''}", nxt)


def audit_events(conn: Connection, *, principal: str | None, since: str | None,
                 until: str | None, limit: int = 100) -> list[dict[str, Any]]:
    """What the audit log saw of an account in a window (sign-ins, reads, denials): the
    context of a journal position, with record keys only."""
    found = audit_store.search(conn, principal=principal, since=since, until=until,
                               limit=limit)
    return [{"seq": r.seq, "ts": r.ts, "principal": r.principal, "action": r.action,
             "outcome": r.outcome, "purpose": r.purpose_kind,
             "subjects": list(r.subjects)} for r in found]
