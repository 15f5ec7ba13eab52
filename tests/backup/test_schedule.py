"""The standing duty inside the server: journal archiving and scheduled snapshots run in
their threads, and /metrics reports the last snapshot and the archiving lag."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from cutru.api.app import create_app
from cutru.backup import Repository
from cutru.backup.schedule import BackupSchedule
from cutru.backup.snapshot import list_snapshots
from cutru.backup.targets import LocalTarget
from cutru.services.registry import Registry
from tests.access_db.server import serving

from .test_snapshot import PASS, adjust, new_repo, person_keys, seed


def test_schedule_archives_snapshots_and_reports(registry: Registry, tmp_path: Path) -> None:
    seed(registry, 60)
    new_repo(LocalTarget(tmp_path / "repo"))
    assert registry.signing_key is not None
    schedule = BackupSchedule(
        registry.db, lambda: Repository.open(LocalTarget(tmp_path / "repo"), PASS),
        registry.signing_key, public_keys=registry.public_keys(),
        external_checkpoint_path=registry.settings.external_checkpoint_path,
        snapshot_interval=3600, archive_interval=0.2)
    schedule.start()
    try:
        adjust(registry, person_keys(registry, 3), "lịch")
        deadline = time.monotonic() + 30
        while (schedule.figures()["backup_archive_lag_entries"] or
               not schedule.status.drills):
            assert time.monotonic() < deadline, (schedule.figures(), schedule.status)
            time.sleep(0.1)
        with serving(create_app(registry.settings, registry=registry,
                                backup=schedule)) as base:
            text = httpx.get(f"{base}/metrics").text
    finally:
        schedule.stop()
    assert "cutru_backup_archive_lag_entries 0.0" in text
    assert "cutru_backup_snapshots 1.0" in text
    assert "cutru_backup_restore_drills 1.0" in text
    assert schedule.status.last_error is None
    repo = Repository.open(LocalTarget(tmp_path / "repo"), PASS)
    infos = list_snapshots(repo, registry.public_keys())
    # the archiver's first round begins a generation with a snapshot of its own
    assert len(infos) == 2 and sum(i.generation is not None for i in infos) == 1
    # the drill proved the newest snapshot (the scheduled one or the archiver's)
    assert schedule.report()["last_verified_snapshot"] in {i.name for i in infos}
