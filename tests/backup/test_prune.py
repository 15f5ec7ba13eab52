"""Forget and prune: retained snapshots keep restoring, the repository shrinks, and prune
interrupted at any step leaves a repository that verifies and restores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cutru.backup import Repository
from cutru.backup.archive import Archiver, list_segments, segment_name
from cutru.backup.prune import forget, forget_by_policy, plan_prune, prune
from cutru.backup.restore import restore_snapshot
from cutru.backup.retention import Policy
from cutru.backup.service import verify_repository
from cutru.backup.snapshot import SnapshotInfo, take_snapshot
from cutru.backup.targets import Handle, Kind, LocalTarget, MemoryTarget, ObjectInfo, Target
from cutru.errors import InputError
from cutru.recovery import integrity
from cutru.services.registry import Registry

from .conftest import CHEAP_KDF
from .test_snapshot import PASS, TEST_CHUNKS, adjust, data_bytes, new_db, person_keys, seed


class Crash(Exception):
    """The process dies here."""


class Interrupting:
    """A target that dies before its ``fail_at``-th save or remove (None: never), counting
    them; everything else passes through."""

    def __init__(self, inner: Target, fail_at: int | None = None) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.steps = 0

    def _step(self) -> None:
        self.steps += 1
        if self.steps == self.fail_at:
            raise Crash(f"interrupted at step {self.steps}")

    @property
    def location(self) -> str:
        return self.inner.location

    def save(self, handle: Handle, data: bytes) -> None:
        self._step()
        self.inner.save(handle, data)

    def remove(self, handle: Handle) -> None:
        self._step()
        self.inner.remove(handle)

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.load(handle, offset, length)

    def stat(self, handle: Handle) -> ObjectInfo:
        return self.inner.stat(handle)

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        return self.inner.list(kind)

    def close(self) -> None:
        self.inner.close()

    def local_file(self, handle: Handle) -> str | None:
        return self.inner.local_file(handle)


def clone(target: MemoryTarget) -> MemoryTarget:
    copy = MemoryTarget()
    copy._objects = dict(target._objects)
    return copy


def small_repo(target: Target) -> Repository:
    return Repository.init(target, PASS, kdf=CHEAP_KDF, chunker=TEST_CHUNKS,
                           pack_size=24 * 1024)


def restored_digest(repo: Repository, name: str, keys: Any, tmp_path: Path, tag: str) -> str:
    db = new_db(tmp_path, tag)
    try:
        return restore_snapshot(repo, name, db, public_keys=keys).digest
    finally:
        db.dispose()


def live_digest(reg: Registry) -> str:
    with reg.db.read() as conn:
        return integrity.projection_state(conn)[0].digest()


def three_snapshots(reg: Registry, repo: Repository) -> list[SnapshotInfo]:
    key = reg.signing_key
    assert key is not None
    seed(reg, 40)
    keys = person_keys(reg, 12)
    snaps = [take_snapshot(reg.db, repo, key)]
    adjust(reg, keys[:4], "thợ hàn")
    snaps.append(take_snapshot(reg.db, repo, key))
    adjust(reg, keys[4:8], "giáo viên")
    snaps.append(take_snapshot(reg.db, repo, key))
    return snaps


@pytest.mark.parametrize("where", ["memory", "local"])
def test_forget_and_prune_shrink_and_retained_snapshots_restore(registry: Registry,
                                                               tmp_path: Path,
                                                               where: str) -> None:
    target: Target = MemoryTarget() if where == "memory" else LocalTarget(tmp_path / "repo")
    repo = small_repo(target)
    snaps = three_snapshots(registry, repo)
    keys = registry.public_keys()
    before = data_bytes(target)

    done = forget(repo, [snaps[1].name], public_keys=keys)
    assert done.forgotten == [snaps[1].name]
    assert repo.list_manifests() == [snaps[0].name, snaps[2].name]
    report = prune(repo, keys)
    assert report.packs_removed > 0 and report.packs_repacked > 0
    assert data_bytes(target) < before == report.bytes_before
    assert data_bytes(target) == report.bytes_after
    assert plan_prune(repo, keys).needed is False  # a second prune has nothing to do

    reopened = Repository.open(target, PASS)
    assert verify_repository(reopened, keys, read_data=True).ok
    assert verify_repository(reopened, keys).unreferenced_packs == 0
    for snap in (snaps[0], snaps[2]):
        assert restored_digest(reopened, snap.name, keys, tmp_path, snap.name) == \
            snap.position.state_digest

    # a policy keeping only the newest forgets the oldest, and prune frees more
    result = forget_by_policy(reopened, Policy(last=1), public_keys=keys)
    assert result.forgotten == [snaps[0].name]
    assert result.decision is not None and result.decision.reasons() == {
        snaps[2].name: ("last",)}
    shrunk = data_bytes(target)
    prune(reopened, keys)
    assert data_bytes(target) < shrunk
    again = Repository.open(target, PASS)
    assert verify_repository(again, keys, read_data=True).ok
    assert restored_digest(again, snaps[2].name, keys, tmp_path, "last") == \
        snaps[2].position.state_digest


def test_dry_runs_change_nothing_and_unknown_names_are_refused(registry: Registry) -> None:
    target = MemoryTarget()
    repo = small_repo(target)
    snaps = three_snapshots(registry, repo)
    keys = registry.public_keys()
    objects = dict(target._objects)
    result = forget_by_policy(repo, Policy(last=1), public_keys=keys, dry_run=True)
    assert result.forgotten == [snaps[1].name, snaps[0].name]
    assert prune(repo, keys, dry_run=True).dry_run
    assert target._objects == objects
    with pytest.raises(InputError):
        forget(repo, ["0000000000000000-0000000000000000"], public_keys=keys)


def test_prune_interrupted_at_every_step_leaves_a_repository_that_verifies_and_restores(
        registry: Registry, tmp_path: Path) -> None:
    base = MemoryTarget()
    repo = small_repo(base)
    snaps = three_snapshots(registry, repo)
    keys = registry.public_keys()
    forget(repo, [snaps[0].name, snaps[1].name], public_keys=keys)
    kept = snaps[2]

    counting = Interrupting(clone(base))
    full = prune(Repository.open(counting, PASS), keys)
    steps = counting.steps
    assert full.packs_repacked > 0 and full.packs_written > 0
    # new packs, the new index, the old indexes, the old packs: one step each
    assert steps == full.packs_written + 1 + full.indexes_removed + full.packs_removed
    print(f"prune took {steps} steps: {full.to_dict()}")

    for k in range(1, steps + 1):
        target = clone(base)
        with pytest.raises(Crash):
            prune(Repository.open(Interrupting(target, fail_at=k), PASS), keys)
        after = Repository.open(target, PASS)
        report = verify_repository(after, keys, read_data=True)
        assert report.ok, (k, report.problems)
        assert restored_digest(after, kept.name, keys, tmp_path, f"k{k}") == \
            kept.position.state_digest
        prune(after, keys)  # a later prune finishes the job
        assert verify_repository(Repository.open(target, PASS), keys, read_data=True).ok
        assert data_bytes(target) <= data_bytes(counting.inner)


def test_forget_keeps_every_segment_a_retained_snapshot_needs(registry: Registry,
                                                              tmp_path: Path) -> None:
    key = registry.signing_key
    assert key is not None
    target = MemoryTarget()
    repo = small_repo(target)
    seed(registry, 30)
    people = person_keys(registry, 9)
    archiver = Archiver(registry.db, repo, key)
    first = archiver.run_once()  # a snapshot, then the generation's first segment
    assert first.snapshot is not None
    for i in range(3):
        adjust(registry, people[i * 2:i * 2 + 2], f"nghề {i}")
        archiver.run_once()
    middle = take_snapshot(registry.db, repo, key)
    for i in range(3, 5):
        adjust(registry, people[i:i + 1], f"nghề {i}")
        archiver.run_once()
    segments_before = [segment_name(s) for s in list_segments(repo)]
    keys = registry.public_keys()

    result = forget(repo, [first.snapshot], public_keys=keys)
    assert result.segments, "segments wholly before the retained snapshot go"
    remaining = list_segments(repo)
    assert all(s.last > middle.position.seq for s in remaining)
    assert len(remaining) < len(segments_before)
    prune(repo, keys)
    after = Repository.open(target, PASS)
    assert verify_repository(after, keys, read_data=True).ok
    db = new_db(tmp_path, "middle")
    restored = restore_snapshot(after, middle.name, db, public_keys=keys)
    db.dispose()
    assert restored.position.seq == registry.journal_length()
    assert restored.digest == live_digest(registry)

    # forgetting the last snapshot removes no segment: nothing would say where they start
    assert forget(after, [middle.name], public_keys=keys).segments == []
