"""Continuous journal archiving: gap-free, hash-linked segments that reach the repository
within seconds, resume after a crash, and start a new generation (saying why) when
continuity breaks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cutru.backup import Repository
from cutru.backup.archive import (
    ArchivePosition,
    Archiver,
    archive_once,
    archived_position,
    list_segments,
    load_segment,
    segment_name,
)
from cutru.backup.restore import restore_snapshot
from cutru.backup.service import verify_repository
from cutru.backup.targets import Handle, Kind, LocalTarget
from cutru.errors import JournalChainBroken, RepositoryDamaged
from cutru.recovery import integrity
from cutru.services.registry import Registry
from cutru.store import journal_store
from tests.conftest import make_settings
from tests.test_integrity import drop_guards, exec_sql

from .test_snapshot import (
    PASS,
    adjust,
    flip_byte,
    journal_of,
    new_db,
    new_repo,
    person_keys,
    seed,
    tables,
)


def open_repo(tmp_path: Path) -> Repository:
    return Repository.open(LocalTarget(tmp_path / "repo"), PASS)


def segment_file(tmp_path: Path, name: str) -> Path:
    return tmp_path / "repo" / "journal" / name


def test_segments_are_gap_free_hash_linked_and_resume_after_a_crash(registry: Registry,
                                                                    tmp_path: Path) -> None:
    seed(registry, 60)
    key = registry.signing_key
    assert key is not None
    repo = new_repo(LocalTarget(tmp_path / "repo"))
    keys = person_keys(registry, 12)

    first = Archiver(registry.db, repo, key).run_once()
    assert first.continuity is not None and first.continuity.kind == "start"
    assert first.snapshot is not None and first.position is not None
    base = first.position.seq
    assert base == registry.journal_length() and first.entries == 1  # the anchor entry
    adjust(registry, keys[:3], "nghề")
    archiver = Archiver(registry.db, repo, key)
    assert archiver.run_once().entries == 3

    # a crash: nothing survives but the repository; a new archiver resumes where it stood
    resumed = Archiver(registry.db, open_repo(tmp_path), key, max_entries=2)
    adjust(registry, keys[3:8], "nghề mới")
    report = resumed.run_once()
    assert report.continuity is None and report.entries == 5 and len(report.segments) == 3
    assert resumed.run_once().entries == 0, "nothing new, nothing written"

    segments = list_segments(repo)
    assert {s.generation for s in segments} == {first.position.generation}
    public = registry.public_keys()
    previous_last, previous_hash = base - 1, None
    for seg in segments:
        header, entries = load_segment(repo, segment_name(seg), public)
        assert seg.first == previous_last + 1, "gap-free"
        if previous_hash is not None:
            assert header.prev == entries[0].prev == previous_hash, "hash-linked"
        previous_last, previous_hash = seg.last, entries[-1].hash
    assert previous_last == registry.journal_length()
    anchor, _ = load_segment(repo, segment_name(segments[0]), public)
    assert anchor.base is not None and anchor.base["snapshot"] == first.snapshot
    assert anchor.reason is not None and anchor.reason["kind"] == "start"
    assert verify_repository(open_repo(tmp_path), public, read_data=True).ok

    # the snapshot plus the segments restore the registry to the end of the archive ...
    target = new_db(tmp_path, "latest")
    result = restore_snapshot(open_repo(tmp_path), first.snapshot, target, public_keys=public)
    assert result.position.seq == registry.journal_length() and len(result.segments) == 4
    assert tables(target) == tables(registry.db) and journal_of(target) == \
        journal_of(registry.db)
    assert integrity.verify(target, public_keys=public).ok
    # ... or to any position in between, with the digest recorded there
    middle = base + 4
    target = new_db(tmp_path, "middle")
    result = restore_snapshot(repo, first.snapshot, target, public_keys=public, upto=middle)
    with registry.db.read() as conn:
        at_middle, _ = integrity.replay_state(conn, stop=middle)
        entry = journal_store.get_entry(conn, middle)
    assert entry is not None and result.digest == entry.digest
    assert tables(target) == at_middle


def test_broken_continuity_starts_a_new_generation_and_says_why(registry: Registry,
                                                                tmp_path: Path) -> None:
    seed(registry, 30)
    key = registry.signing_key
    assert key is not None
    repo = new_repo(LocalTarget(tmp_path / "repo"))
    keys = person_keys(registry, 10)
    start = archive_once(registry.db, repo, key)
    assert start.snapshot is not None and start.position is not None
    for i in range(3):
        adjust(registry, keys[i:i + 1], f"lần {i}")
        archive_once(registry.db, repo, key)
    generation = start.position.generation

    def reasons() -> list[str]:
        """Why each generation began, read back from its first segment."""
        found = []
        for g in sorted({s.generation for s in list_segments(repo)}):
            first = min((s for s in list_segments(repo) if s.generation == g),
                        key=lambda s: s.first)
            header, _ = load_segment(repo, segment_name(first), registry.public_keys())
            assert header.reason is not None
            found.append(header.reason["kind"])
        return found

    # a segment lost from the repository: a gap
    middle = [s for s in list_segments(repo) if s.generation == generation][2]
    repo.target.remove(Handle(Kind.JOURNAL, segment_name(middle)))
    gap = archive_once(registry.db, open_repo(tmp_path), key)
    assert gap.continuity is not None and gap.continuity.kind == "gap"
    assert gap.continuity.generation == generation and gap.continuity.seq == middle.first
    assert gap.snapshot is not None and gap.position is not None
    assert gap.position.generation > generation

    adjust(registry, keys[4:5], "sau khoảng trống")
    assert archive_once(registry.db, open_repo(tmp_path), key).entries == 1
    # the newest segment damaged: unreadable
    newest = max(list_segments(repo), key=lambda s: (s.generation, s.last))
    flip_byte(segment_file(tmp_path, segment_name(newest)))
    damaged = archive_once(registry.db, open_repo(tmp_path), key)
    assert damaged.continuity is not None and damaged.continuity.kind == "unreadable"
    assert "fails authentication" in damaged.continuity.message

    # the database replaced by an older copy: behind, then (once it moved on) a fork
    older = new_db(tmp_path, "older")
    restore_snapshot(open_repo(tmp_path), start.snapshot, older,
                     public_keys=registry.public_keys(), segments=False)
    behind = archive_once(older, open_repo(tmp_path), key)
    assert behind.continuity is not None and behind.continuity.kind == "behind"
    assert behind.position is not None and behind.position.seq == start.position.seq
    other = Registry(make_settings(tmp_path, older.url, checkpoint_interval=5))
    adjust(other, keys[5:6], "khác")  # the older copy takes new work, which is archived ...
    assert archive_once(older, open_repo(tmp_path), key).continuity is None
    adjust(registry, keys[6:8], "tiếp")  # ... and so does the live registry, differently
    fork = archive_once(registry.db, open_repo(tmp_path), key)
    assert fork.continuity is not None and fork.continuity.kind == "fork"
    other.close()
    older.dispose()

    assert reasons() == ["start", "gap", "unreadable", "behind", "fork"]
    # the newest generation is whole, and restores to the live registry
    snap = fork.snapshot
    assert snap is not None
    target = new_db(tmp_path, "restored")
    restore_snapshot(open_repo(tmp_path), snap, target, public_keys=registry.public_keys())
    assert tables(target) == tables(registry.db)
    report = verify_repository(open_repo(tmp_path), registry.public_keys(), read_data=True)
    assert [p.check for p in report.problems] == ["segment"], "only the damaged segment"
    assert any("a newer generation followed" in n for n in report.notes)


def test_a_journal_broken_inside_the_database_is_not_archived(registry: Registry) -> None:
    seed(registry, 20)
    key = registry.signing_key
    assert key is not None
    repo = new_repo()
    start = archive_once(registry.db, repo, key)
    assert start.position is not None
    adjust(registry, person_keys(registry, 3), "x")
    drop_guards(registry)
    exec_sql(registry, "UPDATE journal SET actor = 'kẻ gian' WHERE seq = :s",
             s=start.position.seq + 2)
    before = list_segments(repo)
    with pytest.raises(JournalChainBroken, match=f"entry {start.position.seq + 2}"):
        archive_once(registry.db, repo, key)
    written = sorted(set(list_segments(repo)) - set(before))
    assert [(s.first, s.last) for s in written] == [(start.position.seq + 1,) * 2], \
        "what links is archived, nothing after the break, and no new generation"
    position = archived_position(repo, registry.public_keys())
    assert isinstance(position, ArchivePosition) and position.seq == start.position.seq + 1


def test_a_damaged_segment_makes_restore_refuse(registry: Registry, tmp_path: Path) -> None:
    seed(registry, 20)
    key = registry.signing_key
    assert key is not None
    repo = new_repo(LocalTarget(tmp_path / "repo"))
    start = archive_once(registry.db, repo, key)
    adjust(registry, person_keys(registry, 2), "y")
    report = archive_once(registry.db, repo, key)
    flip_byte(segment_file(tmp_path, report.segments[0]))
    target = new_db(tmp_path)
    assert start.snapshot is not None
    with pytest.raises(RepositoryDamaged, match="fails authentication"):
        restore_snapshot(open_repo(tmp_path), start.snapshot, target,
                         public_keys=registry.public_keys())
    assert tables(target) == {} and journal_of(target) == []


def test_archiving_lag_stays_under_two_seconds(registry: Registry, tmp_path: Path) -> None:
    seed(registry, 20)
    key = registry.signing_key
    assert key is not None
    repo = new_repo(LocalTarget(tmp_path / "repo"))
    archive_once(registry.db, repo, key)  # the generation's snapshot, before timing
    keys = person_keys(registry, 6)
    archiver = Archiver(registry.db, open_repo(tmp_path), key)
    archiver.start(interval_seconds=0.5)
    watcher = open_repo(tmp_path)
    lags = []
    try:
        for i, person in enumerate(keys):
            adjust(registry, [person], f"giờ {i}")
            committed, seq = time.monotonic(), registry.journal_length()
            while max(s.last for s in list_segments(watcher)) < seq:
                assert time.monotonic() - committed < 10, "never archived"
                time.sleep(0.01)
            lags.append(time.monotonic() - committed)
            time.sleep(0.13 * i % 0.4)  # commits at varied points of the archiver's cycle
    finally:
        archiver.stop()
    assert archiver.last_error is None
    assert max(lags) < 2.0, lags
    print(f"archiving lag with a 0.5 s interval: max {max(lags):.3f} s, "
          f"mean {sum(lags) / len(lags):.3f} s")
