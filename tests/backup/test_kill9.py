"""kill -9 at random moments of a snapshot and of continuous archiving (real processes):
the repository still verifies, the next run succeeds, and the registry lost no committed
entry."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cutru.backup import KeyFile, Repository
from cutru.backup.archive import archived_position
from cutru.backup.lock import remove_stale_locks
from cutru.backup.service import verify_repository
from cutru.backup.targets import LocalTarget
from cutru.config import Settings
from cutru.services.registry import Registry

from .test_snapshot import adjust, person_keys, seed


def _env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "CUTRU_DATA_DIR": str(tmp / "data"), "CUTRU_KEY_DIR": str(tmp / "keys"),
           "CUTRU_BACKUP_REPO": str(tmp / "repo"), "CUTRU_BACKUP_KEY_FILE": str(tmp / "repo.key")}
    env.pop("CUTRU_DATABASE_URL", None)
    return env


def start(tmp: Path, *args: str) -> subprocess.Popen[bytes]:
    """A cutru process to kill."""
    return subprocess.Popen([sys.executable, "-m", "cutru.cli.main", *args], env=_env(tmp),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_ok(tmp: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cutru.cli.main", *args], env=_env(tmp),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Registry]:
    reg = Registry(Settings(data_dir=tmp_path / "data", key_dir=tmp_path / "keys"))
    reg.init()
    seed(reg, 400)
    run_ok(tmp_path, "backup", "init")
    return tmp_path, reg


def repository(tmp: Path) -> Repository:
    return Repository.open(LocalTarget(tmp / "repo"), KeyFile.load(tmp / "repo.key"))


def test_kill9_during_snapshots_leaves_a_repository_that_verifies(
        world: tuple[Path, Registry]) -> None:
    tmp, reg = world
    rng = random.Random(9)
    for _ in range(4):
        proc = start(tmp, "backup", "snapshot")
        time.sleep(rng.uniform(0.3, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        repo = repository(tmp)
        remove_stale_locks(repo.target, repo.keys)  # the killed process's lock
        report = verify_repository(repo, reg.public_keys(), read_data=True)
        assert report.ok, report.to_dict()
    run_ok(tmp, "backup", "snapshot")


def test_kill9_during_archiving_resumes_without_losing_entries(
        world: tuple[Path, Registry]) -> None:
    tmp, reg = world
    rng = random.Random(3)
    keys = person_keys(reg, 30)
    for round_ in range(3):
        proc = start(tmp, "backup", "archive", "--interval", "0.1")
        deadline = time.monotonic() + rng.uniform(1.5, 4.0)
        i = 0
        while time.monotonic() < deadline:
            adjust(reg, [keys[i % len(keys)]], f"vòng {round_}")
            i += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    committed = reg.journal_length()
    run_ok(tmp, "backup", "archive", "--once")
    repo = repository(tmp)
    position = archived_position(repo, reg.public_keys())
    assert position is not None and position.seq == committed
    report = verify_repository(repo, reg.public_keys(), read_data=False)
    assert report.ok, report.to_dict()
    assert reg.verify().ok
