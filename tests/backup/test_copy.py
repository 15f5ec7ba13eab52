"""Copying snapshots and segments into a second repository: re-chunked and re-hashed under
its keys, signed again, and restoring to the same digest there."""

from __future__ import annotations

import json
from pathlib import Path

from cutru.backup import Passphrase, Repository
from cutru.backup.archive import Archiver, list_segments
from cutru.backup.copy import copy_all, copy_snapshot
from cutru.backup.restore import restore_snapshot
from cutru.backup.service import verify_repository
from cutru.backup.snapshot import ManifestKey, load_snapshot, take_snapshot
from cutru.backup.targets import MemoryTarget
from cutru.services.registry import Registry

from .conftest import CHEAP_KDF, SMALL_CHUNKS
from .test_prune import live_digest
from .test_snapshot import adjust, new_db, new_repo, person_keys, seed

OTHER = Passphrase("kho thứ hai")


def test_a_copied_snapshot_restores_to_the_same_digest(registry: Registry,
                                                       tmp_path: Path) -> None:
    key = registry.signing_key
    assert key is not None
    seed(registry, 40)
    src = new_repo()
    snap = take_snapshot(registry.db, src, key)
    dst_target = MemoryTarget()
    # another master key and another chunker: every id differs, every chunk is cut anew
    dst = Repository.init(dst_target, OTHER, kdf=CHEAP_KDF, chunker=SMALL_CHUNKS,
                          pack_size=16 * 1024)
    keys = registry.public_keys()

    result = copy_snapshot(src, dst, snap.name, ManifestKey(key), public_keys=keys)
    assert result.snapshots == [snap.name] and result.new_blobs > 0
    again = copy_snapshot(src, dst, snap.name, ManifestKey(key), public_keys=keys)
    assert again.skipped == [snap.name] and again.snapshots == []

    reopened = Repository.open(dst_target, OTHER)
    copied = load_snapshot(reopened, snap.name, keys)
    assert copied.position == snap.position and copied.created_at == snap.created_at
    assert copied.rows == snap.rows and copied.bytes == snap.bytes
    for name, stream in snap.streams.items():
        assert not stream.blobs or copied.stream(name).trees != stream.trees
    assert verify_repository(reopened, keys, read_data=True).ok
    db = new_db(tmp_path)
    restored = restore_snapshot(reopened, snap.name, db, public_keys=keys)
    db.dispose()
    assert restored.digest == snap.position.state_digest


def test_copy_all_brings_segments_and_the_copy_restores_past_the_snapshot(
        registry: Registry, tmp_path: Path) -> None:
    key = registry.signing_key
    assert key is not None
    seed(registry, 30)
    src = new_repo()
    archiver = Archiver(registry.db, src, key)
    first = archiver.run_once()
    adjust(registry, person_keys(registry, 4), "kỹ sư")
    archiver.run_once()
    assert first.snapshot is not None
    dst_target = MemoryTarget()
    dst = Repository.init(dst_target, OTHER, kdf=CHEAP_KDF)
    keys = registry.public_keys()

    result = copy_all(src, dst, ManifestKey(key), public_keys=keys)
    assert result.snapshots == [first.snapshot]
    assert result.segments and list_segments(dst) == list_segments(src)
    assert copy_all(src, dst, ManifestKey(key), public_keys=keys).segments == []

    reopened = Repository.open(dst_target, OTHER)
    assert verify_repository(reopened, keys, read_data=True).ok
    db = new_db(tmp_path)
    restored = restore_snapshot(reopened, first.snapshot, db, public_keys=keys)
    db.dispose()
    assert restored.position.seq == registry.journal_length()
    assert restored.digest == live_digest(registry)


def test_forget_prune_and_copy_from_the_command_line(tmp_path: Path) -> None:
    from .test_backup_cli import cutru

    def ok(*args: str, **env: str) -> str:
        result = cutru(tmp_path, *args, **env)
        assert result.exit_code == 0, result.output
        return result.stdout

    ok("demo", "seed", "--persons", "30", "--seed", "2", "--today", "2026-11-27")
    repo, key = tmp_path / "repo", tmp_path / "repo.key"
    ok("backup", "init", "--repo", str(repo), "--key-file", str(key))
    env = {"CUTRU_BACKUP_REPO": str(repo), "CUTRU_BACKUP_KEY_FILE": str(key)}
    first = json.loads(ok("backup", "snapshot", "--json", **env))["name"]
    ok("demo", "seed", "--persons", "5", "--seed", "9", "--today", "2026-11-27")
    second = json.loads(ok("backup", "snapshot", "--json", **env))["name"]

    refused = cutru(tmp_path, "backup", "forget", **env)
    assert refused.exit_code != 0 and "keep" in refused.output
    dry = json.loads(ok("backup", "forget", "--keep-last", "1", "--prune", "--dry-run",
                        "--json", **env))
    assert dry["forget"]["forgotten"] == [first] and dry["prune"]["dry_run"]
    assert "forget " + first in ok("backup", "forget", "--keep-last", "1", "--prune", **env)
    listed = json.loads(ok("backup", "list", "--json", **env))
    assert [s["name"] for s in listed["snapshots"]] == [second]
    assert "prune removed 0" in ok("backup", "prune", **env)
    assert "repository verified" in ok("backup", "verify", "--read-data", **env)

    other, other_key = tmp_path / "other", tmp_path / "other.key"
    ok("backup", "init", "--repo", str(other), "--key-file", str(other_key))
    missing = cutru(tmp_path, "backup", "copy", "--to", str(other), **env)
    assert missing.exit_code == 9, missing.output  # no destination credential
    copied = json.loads(ok("backup", "copy", "--to", str(other), "--to-key-file",
                           str(other_key), "--json", **env))
    assert copied["snapshots"] == [second]
    assert "repository verified" in ok("backup", "verify", "--read-data", "--restore-test",
                                       CUTRU_BACKUP_REPO=str(other),
                                       CUTRU_BACKUP_KEY_FILE=str(other_key))
