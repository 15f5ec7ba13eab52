"""Locks: shared locks coexist, exclusive ones exclude, stale ones do not count, unreadable ones
always do, and a refresh replaces the lock."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from cutru.backup import Passphrase, Repository
from cutru.backup.lock import (
    REFRESH_EVERY_US,
    STALE_AFTER_US,
    LockInfo,
    acquire,
    is_stale,
    read_locks,
    remove_stale_locks,
)
from cutru.backup.targets import Handle, Kind, Target
from cutru.errors import RepositoryLocked

from .conftest import CHEAP_KDF


@pytest.fixture
def repo(target: Target) -> Repository:
    return Repository.init(target, Passphrase("p"), kdf=CHEAP_KDF)


def test_shared_locks_coexist(repo: Repository) -> None:
    with repo.lock(), repo.lock():
        assert len(read_locks(repo.target, repo.keys)) == 2
    assert read_locks(repo.target, repo.keys) == []


def test_exclusive_excludes_everything(repo: Repository) -> None:
    with repo.lock(exclusive=True):
        with pytest.raises(RepositoryLocked, match="exclusive lock by pid"):
            repo.lock()
        with pytest.raises(RepositoryLocked):
            repo.lock(exclusive=True)
    with repo.lock(), pytest.raises(RepositoryLocked, match="shared lock"):
        repo.lock(exclusive=True)
    assert read_locks(repo.target, repo.keys) == []  # the refused ones left nothing behind


def test_old_locks_are_stale(repo: Repository) -> None:
    now = [10**15]
    old = acquire(repo.target, repo.keys, exclusive=True, clock=lambda: now[0])
    now[0] += STALE_AFTER_US + 1
    with acquire(repo.target, repo.keys, exclusive=True, clock=lambda: now[0]):
        pass  # the old lock did not stop us
    assert [i.name for i in remove_stale_locks(repo.target, repo.keys, lambda: now[0])] == [
        old.info.name
    ]
    assert read_locks(repo.target, repo.keys) == []


def test_locks_of_exited_processes_on_this_host_are_stale(repo: Repository) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = LockInfo("ab" * 16, True, socket.gethostname(), int(child.stdout), 10**15)
    assert is_stale(dead, 10**15)
    alive_elsewhere = LockInfo("ab" * 16, True, "another-host", int(child.stdout), 10**15)
    assert not is_stale(alive_elsewhere, 10**15)


def test_a_lock_that_does_not_unseal_conflicts(repo: Repository) -> None:
    repo.target.save(Handle(Kind.LOCKS, "ab" * 16), b"not a lock")
    with pytest.raises(RepositoryLocked, match="unreadable"):
        repo.lock()
    assert remove_stale_locks(repo.target, repo.keys) == []


def test_refresh_replaces_the_lock(repo: Repository) -> None:
    now = [10**15]
    lock = acquire(repo.target, repo.keys, exclusive=False, clock=lambda: now[0])
    first = lock.info.name
    now[0] += REFRESH_EVERY_US
    assert lock.needs_refresh()
    lock.refresh()
    names = [info.name for info in read_locks(repo.target, repo.keys)]
    assert names == [lock.info.name] and lock.info.name != first
    assert not lock.needs_refresh()
    lock.release()
    lock.release()  # twice is harmless
    assert read_locks(repo.target, repo.keys) == []
