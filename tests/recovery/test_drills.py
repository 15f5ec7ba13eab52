"""Restore drills restore a random recent point, prove its digest, and are recorded with
their result and duration (passed or failed)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cutru.backup import Repository
from cutru.backup.archive import archive_once
from cutru.backup.schedule import BackupSchedule
from cutru.backup.service import restore_drill
from cutru.backup.targets import LocalTarget
from cutru.errors import CutruError
from cutru.services.registry import Registry
from cutru.store import journal_store
from tests.backup.test_snapshot import PASS, adjust, new_repo, person_keys, seed


def test_drills_restore_random_recent_points(registry: Registry, tmp_path: Path) -> None:
    seed(registry, 15)
    new_repo(LocalTarget(tmp_path / "repo"))
    repo = Repository.open(LocalTarget(tmp_path / "repo"), PASS)
    key = registry.signing_key
    assert key is not None
    archive_once(registry.db, repo, key)
    base = registry.journal_length()
    adjust(registry, person_keys(registry, 6), "sau")
    archive_once(registry.db, repo, key, public_keys=registry.public_keys())
    points = set()
    rng = random.Random(4)
    for _ in range(6):
        result, record = restore_drill(repo, registry.public_keys(), signer=key, rng=rng)
        assert record is not None
        with registry.db.read() as conn:
            entry = journal_store.get_entry(conn, result.position.seq)
        assert entry is not None and result.digest == entry.digest
        points.add(result.position.seq)
    assert len(points) > 1 and all(base <= p <= registry.journal_length() for p in points)

    schedule = BackupSchedule(registry.db, lambda: Repository.open(
        LocalTarget(tmp_path / "repo"), PASS), key, public_keys=registry.public_keys(),
        external_checkpoint_path=None, snapshot_interval=3600, archive_interval=3600)
    schedule.drill_now(schedule.open_repository())
    broken = Repository.open(LocalTarget(tmp_path / "repo"), PASS)
    for pack in (tmp_path / "repo" / "data").rglob("*"):  # the repository loses its data
        if pack.is_file():
            pack.unlink()
    with pytest.raises(CutruError):
        schedule.drill_now(broken)
    drills = schedule.report()["drills"]
    assert [d["ok"] for d in drills] == [True, False]
    assert drills[0]["duration_ms"] >= 0 and "position" in drills[0] and drills[1]["error"]
