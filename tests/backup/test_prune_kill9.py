"""kill -9 at random moments of ``cutru backup prune`` (a real process): the repository still
passes ``cutru backup verify --read-data``, every retained snapshot restores with the digest
its manifest signed, and a later prune finishes the work.

The repository has small chunks and packs, so that prune has hundreds of packs to repack
and remove (each a save or a remove with its fsyncs) and a kill lands in every phase: new
packs, the new index, the old indexes, the old packs. A first, undisturbed prune of a copy
counts its steps; each round picks a random step in one slice of them, watches the
repository until prune gets there and kills it, so that the kills are spread over the whole
of prune's work whatever the process's start-up takes.
"""

from __future__ import annotations

import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from cutru.backup import ChunkerParams, Repository, generate_key_file
from cutru.backup.prune import forget, plan_prune, prune
from cutru.backup.restore import restore_snapshot
from cutru.backup.snapshot import SnapshotInfo, take_snapshot
from cutru.backup.targets import LocalTarget
from cutru.config import Settings
from cutru.services.registry import Registry

from .test_kill9 import repository, run_ok, start
from .test_snapshot import adjust, new_db, person_keys, seed

SMALL_CHUNKS = ChunkerParams(min_size=256, avg_size=1024, max_size=4096)
SMALL_PACKS = 2 * 1024
ROUNDS = 5


def state(repo_dir: Path) -> tuple[frozenset[str], frozenset[str]]:
    """The packs and indexes on disk (temporary files of a killed save excluded)."""
    def names(kind: str) -> frozenset[str]:
        folder = repo_dir / kind
        return frozenset(p.name for p in folder.iterdir() if not p.name.startswith(".")) \
            if folder.is_dir() else frozenset()
    return names("data"), names("index")


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Registry, list[SnapshotInfo]]:
    """A registry, and in ``base/`` a repository with five snapshots of which the three
    oldest are forgotten: prune has mixed packs to repack and unused ones to remove."""
    reg = Registry(Settings(data_dir=tmp_path / "data", key_dir=tmp_path / "keys"))
    reg.init()
    seed(reg, 300)
    key = reg.signing_key
    assert key is not None
    repo = Repository.init(LocalTarget(tmp_path / "base"),
                           generate_key_file(tmp_path / "repo.key"), chunker=SMALL_CHUNKS,
                           pack_size=SMALL_PACKS)
    people = person_keys(reg, 300)
    snaps = []
    for i in range(5):  # a fifth of the persons changed between snapshots
        snaps.append(take_snapshot(reg.db, repo, key, helper=False))
        adjust(reg, people[i::5], f"nghề {i}")
    forget(repo, [s.name for s in snaps[:3]], public_keys=reg.public_keys())
    return tmp_path, reg, snaps[3:]


def fresh_copy(tmp: Path) -> Path:
    shutil.rmtree(tmp / "repo", ignore_errors=True)
    shutil.copytree(tmp / "base", tmp / "repo")
    return tmp / "repo"


def finished(tmp: Path, reg: Registry) -> bool:
    return not plan_prune(repository(tmp), reg.public_keys()).needed


def progress(repo_dir: Path, before: tuple[frozenset[str], frozenset[str]]) -> int:
    """Prune's steps so far: packs written and removed, the index written, indexes removed.
    It only ever adds new packs and one index, then removes: this never goes down."""
    data, index = state(repo_dir)
    return len(data ^ before[0]) + len(index ^ before[1])


def steps(tmp: Path) -> int:
    """How many steps ``cutru backup prune`` takes on a copy left alone."""
    repo_dir = fresh_copy(tmp)
    before = state(repo_dir)
    run_ok(tmp, "backup", "prune")
    total = progress(repo_dir, before)
    assert total > 50, "prune does little: the test repository is too small"
    return total


def test_kill9_during_prune_leaves_a_repository_that_verifies_and_restores(
        world: tuple[Path, Registry, list[SnapshotInfo]]) -> None:
    tmp, reg, retained = world
    keys = reg.public_keys()
    total = steps(tmp)
    assert finished(tmp, reg)
    rng = random.Random(41)
    phases = []
    for round_ in range(ROUNDS):
        repo_dir = fresh_copy(tmp)
        before = state(repo_dir)
        # a random step in this round's slice of prune's work: the kill lands within a
        # few steps of it, however long the process takes to start
        target = int(total * (round_ + rng.random()) / ROUNDS)
        proc = start(tmp, "backup", "prune")
        while progress(repo_dir, before) < target and proc.poll() is None:
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        after = state(repo_dir)
        phases.append("untouched" if after == before else "done" if finished(tmp, reg)
                      else f"interrupted at step {progress(repo_dir, before)}")

        run_ok(tmp, "backup", "verify", "--read-data")
        repo = repository(tmp)
        for snap in retained:
            db = new_db(tmp, f"restored-{round_}-{snap.name}")
            try:
                restored = restore_snapshot(repo, snap.name, db, public_keys=keys)
            finally:
                db.dispose()
            assert restored.digest == snap.position.state_digest

        later = repository(tmp)
        with later.lock(exclusive=True):  # a later prune finishes the work
            prune(later, keys)
        assert finished(tmp, reg)
    print(f"prune takes {total} steps; kills: {phases}")
    assert sum(p.startswith("interrupted") for p in phases) >= ROUNDS // 2, phases
