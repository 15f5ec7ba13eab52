"""The storage interface of the backup repository: byte strings under (kind, name).

A target knows nothing of packs, keys or manifests; it stores, loads, lists and removes
objects, as restic's backend interface does. Objects are written once: saving a name that
exists is refused with :class:`~cutru.errors.ObjectExists`, never replaced.

Every target raises only errors of the tree in :mod:`cutru.errors`: ``ObjectNotFound``,
``ObjectExists``, ``TransientTargetError`` (worth retrying; see ``retry.RetryingTarget``) and
``TargetUnavailable``. Foreign exceptions are translated inside the target that meets them.

>>> Handle(Kind.DATA, "0a1b").path
'data/0a1b'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from cutru.errors import InputError


class Kind(StrEnum):
    """The kinds of object; each is a directory (or key prefix) of its own."""

    CONFIG = "config"
    KEYS = "keys"
    LOCKS = "locks"
    DATA = "data"
    INDEX = "index"
    SNAPSHOTS = "snapshots"
    JOURNAL = "journal"


# Safe as a file name and an S3 key on every platform: no dots, slashes or upper case.
_NAME = re.compile(r"[0-9a-z][0-9a-z-]{0,127}")


@dataclass(frozen=True, slots=True)
class Handle:
    """The address of one object. The config has the empty name; every other object has a
    name of lower-case letters, digits and ``-`` (at most 128), starting with a letter or digit.
    """

    kind: Kind
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):
            raise InputError(f"unknown object kind {self.kind!r}", field="kind",
                             rule="backup.kind")
        if self.kind is Kind.CONFIG:
            if self.name:
                raise InputError("the config object has no name", field="name",
                                 rule="backup.name")
        elif not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise InputError(f"{self.name!r} is not a valid object name", field="name",
                             rule="backup.name")

    @property
    def path(self) -> str:
        """``<kind>/<name>``, or ``config``: the object's key within the target."""
        return self.kind.value if self.kind is Kind.CONFIG else f"{self.kind.value}/{self.name}"

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What :meth:`Target.stat` and :meth:`Target.list` report about an object."""

    handle: Handle
    size: int


class Target(Protocol):
    """Where a repository's objects live. Implementations: ``MemoryTarget``,
    ``LocalTarget``, ``S3Target``; ``RetryingTarget`` wraps any of them."""

    @property
    def location(self) -> str:
        """A human-readable place (a directory, ``s3://bucket/prefix``), for messages."""
        ...

    def save(self, handle: Handle, data: bytes) -> None:
        """Store a new object atomically: whole or not at all. ``ObjectExists`` if taken."""
        ...

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        """The object's bytes from ``offset``: ``length`` of them, or all to the end.
        A range past the end is refused (``InputError``); ``ObjectNotFound`` if missing."""
        ...

    def stat(self, handle: Handle) -> ObjectInfo:
        """The object's size, or ``ObjectNotFound``."""
        ...

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        """Every object of ``kind``, sorted by name."""
        ...

    def remove(self, handle: Handle) -> None:
        """Delete the object; a missing object is not an error (a retry may have done it)."""
        ...

    def close(self) -> None:
        """Release connections or handles; the target is not used afterwards."""
        ...

    def local_file(self, handle: Handle) -> str | None:
        """The name of the file on this machine that holds the object, for another process
        of this program to read a range of it directly (a restore's writers); None where
        objects are not files here."""
        ...


def check_range(handle: Handle, size: int, offset: int, length: int | None) -> int:
    """Validate a read of ``length`` bytes at ``offset`` in an object of ``size`` bytes;
    return the end offset. Every target calls this, so all refuse the same ranges."""
    if offset < 0 or (length is not None and length < 0):
        raise InputError(f"negative range for {handle}", field="offset", rule="backup.range")
    end = size if length is None else offset + length
    if offset > size or end > size:
        raise InputError(
            f"range {offset}+{length} is past the end of {handle} ({size} bytes)",
            field="offset",
            rule="backup.range",
        )
    return end
