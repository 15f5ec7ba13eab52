"""Journal entries: their fields, their hash, and the hash chain (docs/design.md, "The journal").

An entry is built in two steps: a :class:`Draft` collects what one operation changed; sealing
it against the previous entry gives an :class:`Entry` with its sequence number, time, state
digest, previous hash and own hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload

from cutru.journal import canonical

#: The hash of "no previous entry" (the predecessor of seq 1).
GENESIS = "0" * 64
ENTRY_PREFIX = b"cutru-journal-v1\n"

Row = dict[str, Any]
T = TypeVar("T")


class once(Generic[T]):
    """A property computed on first use and then kept in the instance's ``__dict__``, where
    attribute lookup finds it before this (non-data) descriptor. Unlike
    ``functools.cached_property`` before Python 3.12 it takes no lock: a bulk import reads
    three such values per changed row, and that lock cost more than the value."""

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self.fn = fn
        self.name = fn.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> once[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> T | once[T]:
        if obj is None:
            return self
        value = self.fn(obj)
        obj.__dict__[self.name] = value
        return value


@dataclass(frozen=True)
class Change:
    """One projection row changed: insert (before None), update, or delete (after None)."""

    table: str
    key: str
    before: Row | None
    after: Row | None

    def to_object(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "before": self.before, "after": self.after}

    # The canonical encodings of the two images and of the whole change, computed once, when
    # first needed: the entry hash and the state digest both use them; replaying a restore
    # needs only the images.
    @once
    def before_bytes(self) -> bytes | None:
        return None if self.before is None else canonical.encode_row(self.before)

    @once
    def after_bytes(self) -> bytes | None:
        return None if self.after is None else canonical.encode_row(self.after)

    @once
    def encoded(self) -> bytes:
        # keys in canonical order: after, before, key, table
        return b"".join((
            b'{"after":', self.after_bytes or b"null", b',"before":',
            self.before_bytes or b"null", b',"key":', canonical.encode_str(self.key),
            b',"table":', canonical.encode_str(self.table), b"}"))

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> Change:
        return cls(obj["table"], obj["key"], obj["before"], obj["after"])


@dataclass
class Draft:
    """What one operation did, before it is sealed into the chain."""

    actor: str
    purpose: str
    operation: str
    subjects: set[str] = field(default_factory=set)
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    seq: int
    ts: str
    actor: str
    purpose: str
    operation: str
    subjects: tuple[str, ...]
    changes: tuple[Change, ...]
    digest: str
    prev: str
    hash: str
    #: the stored canonical bytes of ``changes``, when read back (not part of equality)
    raw_changes: bytes | None = field(default=None, compare=False, repr=False)

    def body(self) -> dict[str, Any]:
        """The object the hash is computed over: every field except ``hash``."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "purpose": self.purpose,
            "operation": self.operation,
            "subjects": list(self.subjects),
            "changes": [c.to_object() for c in self.changes],
            "digest": self.digest,
            "prev": self.prev,
        }

    def computed_hash(self) -> str:
        """The hash of the entry's content: over the stored ``changes`` bytes when the entry
        was read from storage (so any other encoding of the same value is an alteration)."""
        changes = self.raw_changes if self.raw_changes is not None else \
            encode_changes(self.changes)
        body = encode_body(seq=self.seq, ts=self.ts, actor=self.actor, purpose=self.purpose,
                           operation=self.operation, subjects=self.subjects,
                           changes_bytes=changes, digest=self.digest, prev=self.prev)
        return hashlib.sha256(ENTRY_PREFIX + body).hexdigest()


def encode_changes(changes: tuple[Change, ...] | list[Change]) -> bytes:
    """Canonical encoding of the ``changes`` list, equal to ``canonical.encode`` of it."""
    return b"[" + b",".join(c.encoded for c in changes) + b"]"


def encode_body(*, seq: int, ts: str, actor: str, purpose: str, operation: str,
                subjects: tuple[str, ...], changes_bytes: bytes, digest: str, prev: str
                ) -> bytes:
    """Canonical encoding of an entry body (keys in canonical order), without re-encoding
    the row images. Equal to ``canonical.encode(entry.body())``; a test holds it to that."""
    enc = canonical.encode_str
    return b"".join((
        b'{"actor":', enc(actor), b',"changes":', changes_bytes, b',"digest":', enc(digest),
        b',"operation":', enc(operation), b',"prev":', enc(prev), b',"purpose":', enc(purpose),
        b',"seq":', str(int(seq)).encode(), b',"subjects":', canonical.encode(list(subjects)),
        b',"ts":', enc(ts), b"}"))


def seal(draft: Draft, *, seq: int, ts: str, digest: str, prev: str) -> Entry:
    """Give a draft its place in the chain."""
    subjects = tuple(sorted(draft.subjects))
    changes = tuple(draft.changes)
    body = encode_body(seq=seq, ts=ts, actor=draft.actor, purpose=draft.purpose,
                       operation=draft.operation, subjects=subjects,
                       changes_bytes=encode_changes(changes), digest=digest, prev=prev)
    return Entry(seq, ts, draft.actor, draft.purpose, draft.operation, subjects, changes,
                 digest, prev, hashlib.sha256(ENTRY_PREFIX + body).hexdigest())


def format_ts(moment: datetime) -> str:
    """UTC, microseconds, 'Z': ``2026-11-27T09:00:00.000000Z`` (sorts as text)."""
    if moment.tzinfo is None:
        raise ValueError("journal times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def next_ts(now: datetime, previous: str) -> str:
    """The entry time: the clock's UTC time, never earlier than the previous entry's."""
    ts = format_ts(now)
    return previous if previous and ts < previous else ts
