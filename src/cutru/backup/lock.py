"""Repository locks: shared for reading and writing blobs, exclusive for key changes (and,
later, prune), with stale-lock detection as restic does.

A lock is a sealed object ``locks/<32 hex>`` holding canonical JSON
``{"created_at", "exclusive", "host", "pid", "version"}``. Objects are written once, so a
holder *refreshes* by saving a new lock and removing the old one. A lock is stale when it is
older than :data:`STALE_AFTER_US`, or was made on this host by a process that has exited.
Stale locks never conflict; a lock that does not unseal always does (never guess).
docs/design.md, "Locks", is the specification.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from cutru.backup import naming
from cutru.backup.crypto import RepoKeys, associated_data
from cutru.backup.targets import Handle, Kind, Target
from cutru.errors import InputError, ObjectNotFound, RepositoryDamaged, RepositoryLocked
from cutru.journal import canonical

STALE_AFTER_US = 30 * 60 * 1_000_000
REFRESH_EVERY_US = 5 * 60 * 1_000_000
_FIELDS = {"created_at", "exclusive", "host", "pid", "version"}
Clock = Callable[[], int]


@dataclass(frozen=True, slots=True)
class LockInfo:
    name: str
    exclusive: bool
    host: str
    pid: int
    created_us: int
    readable: bool = True

    def describe(self, now: int) -> str:
        if not self.readable:
            return f"an unreadable lock locks/{self.name} (remove it by hand if it is junk)"
        kind = "an exclusive" if self.exclusive else "a shared"
        age = max(0, now - self.created_us) // 1_000_000
        return f"{kind} lock by pid {self.pid} on {self.host}, {age} s old (locks/{self.name})"

    def conflicts_with(self, exclusive: bool) -> bool:
        return not self.readable or exclusive or self.exclusive


def is_stale(info: LockInfo, now: int, host: str | None = None) -> bool:
    """Old, or made on this host by a process that has exited."""
    if not info.readable:
        return False
    if now - info.created_us > STALE_AFTER_US:
        return True
    return info.host == (host or socket.gethostname()) and not _process_alive(info.pid)


def read_locks(target: Target, keys: RepoKeys) -> list[LockInfo]:
    """Every lock in the repository (a lock released while we list is left out)."""
    found = (_read(target, keys, item.handle.name) for item in target.list(Kind.LOCKS))
    return [info for info in found if info is not None]


class Lock:
    """A held lock; use as a context manager, or call :meth:`release`."""

    def __init__(self, target: Target, keys: RepoKeys, info: LockInfo, clock: Clock) -> None:
        self._target, self._keys, self.info, self._clock = target, keys, info, clock
        self.released = False

    def refresh(self) -> None:
        """Replace the lock with a fresh one, so others do not see it as stale."""
        fresh = _write(self._target, self._keys, self.info.exclusive, self._clock())
        self._target.remove(Handle(Kind.LOCKS, self.info.name))
        self.info = fresh

    def needs_refresh(self) -> bool:
        return self._clock() - self.info.created_us >= REFRESH_EVERY_US

    def release(self) -> None:
        if not self.released:
            self._target.remove(Handle(Kind.LOCKS, self.info.name))
            self.released = True

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def acquire(target: Target, keys: RepoKeys, *, exclusive: bool, clock: Clock = naming.now_us
            ) -> Lock:
    """Take a lock, or raise :class:`RepositoryLocked` naming the lock in the way."""
    _check(target, keys, exclusive, clock(), ignore=None)
    info = _write(target, keys, exclusive, clock())
    try:
        _check(target, keys, exclusive, clock(), ignore=info.name)  # did someone race us?
    except RepositoryLocked:
        target.remove(Handle(Kind.LOCKS, info.name))
        raise
    return Lock(target, keys, info, clock)


def remove_stale_locks(target: Target, keys: RepoKeys, clock: Clock = naming.now_us
                       ) -> list[LockInfo]:
    """Remove every stale lock; return what was removed."""
    now = clock()
    stale = [info for info in read_locks(target, keys) if is_stale(info, now)]
    for info in stale:
        target.remove(Handle(Kind.LOCKS, info.name))
    return stale


def _check(target: Target, keys: RepoKeys, exclusive: bool, now: int, ignore: str | None
           ) -> None:
    for info in read_locks(target, keys):
        if info.name != ignore and info.conflicts_with(exclusive) and not is_stale(info, now):
            wanted = "an exclusive" if exclusive else "a shared"
            raise RepositoryLocked(
                f"cannot take {wanted} lock on the repository: held by {info.describe(now)}",
                lock=info.name,
            )


def _write(target: Target, keys: RepoKeys, exclusive: bool, now: int) -> LockInfo:
    name = naming.format_random_name(os.urandom(naming.RANDOM_NAME_BYTES))
    info = LockInfo(name, exclusive, socket.gethostname(), os.getpid(), now)
    body = canonical.encode({
        "created_at": naming.format_time(now),
        "exclusive": exclusive,
        "host": info.host,
        "pid": info.pid,
        "version": 1,
    })
    target.save(Handle(Kind.LOCKS, name),
                keys.seal(body, associated_data(Kind.LOCKS, name), compress=False))
    return info


def _read(target: Target, keys: RepoKeys, name: str) -> LockInfo | None:
    unreadable = LockInfo(name, True, "?", 0, 0, readable=False)
    try:
        sealed = target.load(Handle(Kind.LOCKS, name))
    except ObjectNotFound:
        return None
    try:
        doc = canonical.decode(keys.unseal(sealed, associated_data(Kind.LOCKS, name),
                                           what=f"locks/{name}", limit=4096))
        if not isinstance(doc, dict) or set(doc) != _FIELDS or doc["version"] != 1:
            return unreadable
        return LockInfo(name, doc["exclusive"] is True, str(doc["host"]), int(doc["pid"]),
                        naming.parse_time(doc["created_at"]))
    except (RepositoryDamaged, InputError, TypeError, ValueError):
        return unreadable


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process id we can ask about: assume alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
