"""Registry snapshots: online and consistent, deduplicated, and restorable into a new database
with exactly the rows and the digest of their position (or refused, never wrong)."""

from __future__ import annotations

import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from cutru.backup import Passphrase, Repository, pages
from cutru.backup.chunker import ChunkerParams
from cutru.backup.restore import restore_snapshot
from cutru.backup.service import verify_repository
from cutru.backup.snapshot import (
    SnapshotInfo,
    StoredEntry,
    entry_line,
    list_snapshots,
    parse_entry_line,
    stored_entries,
    take_snapshot,
)
from cutru.backup.targets import Kind, LocalTarget, MemoryTarget, Target
from cutru.errors import (
    InputError,
    ManifestInvalid,
    ProjectionMismatch,
    RepositoryDamaged,
    RepositoryVersionError,
)
from cutru.journal import canonical
from cutru.journal.signing import SigningKey
from cutru.recovery import integrity
from cutru.services import importer, synthetic
from cutru.services.registry import Registry
from cutru.store import journal_store
from cutru.store.engine import Database
from cutru.store.projection import iter_projection_rows

from .conftest import CHEAP_KDF

PASS = Passphrase("kho sao lưu cư trú")
#: Chunks of about 1 KiB, so that a registry of a few hundred persons makes hundreds of them
#: and deduplication can be measured on it as on a large registry with 64 KiB chunks.
TEST_CHUNKS = ChunkerParams(min_size=256, avg_size=1024, max_size=4096)
TODAY = date(2026, 11, 27)
OFFICER, BASIS = "officer-backup", "Law on Residence 68/2020/QH14"


def new_repo(target: Target | None = None) -> Repository:
    return Repository.init(target or MemoryTarget(), PASS, kdf=CHEAP_KDF, chunker=TEST_CHUNKS,
                           pack_size=64 * 1024)


def seed(reg: Registry, persons: int, seed_value: int = 1) -> None:
    lines = enumerate(synthetic.generate(persons, seed=seed_value, today=TODAY), start=1)
    importer.import_records(reg.runner, lines, actor="seed", batch_lines=500)


def person_keys(reg: Registry, n: int) -> list[str]:
    with reg.db.read() as conn:
        rows = conn.execute(text("SELECT key FROM persons ORDER BY key")).all()
    step = max(1, len(rows) // n)
    return [str(r[0]) for r in rows[::step][:n]]


def adjust(reg: Registry, keys: list[str], tag: str) -> None:
    for i, key in enumerate(keys):
        reg.adjust_information(OFFICER, BASIS, key, {"occupation": f"{tag} {i}"})


def new_db(tmp_path: Path, name: str = "restored") -> Database:
    return Database(f"sqlite:///{tmp_path / name / 'cutru.db'}", sqlite_synchronous="OFF")


def tables(db: Database) -> dict[tuple[str, str], dict[str, Any]]:
    with db.read() as conn:
        return {(t, k): row for t, k, row in iter_projection_rows(conn)}


def journal_of(db: Database) -> list[Any]:
    with db.read() as conn:
        return [(e, e.raw_changes) for e in journal_store.iter_entries(conn)]


def data_bytes(target: Target) -> int:
    return sum(item.size for item in target.list(Kind.DATA))


# --- round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["rows", "auto"])
def test_round_trip_restores_the_same_rows_journal_and_digest(registry: Registry,
                                                              tmp_path: Path,
                                                              layout: str) -> None:
    seed(registry, 150)
    adjust(registry, person_keys(registry, 3), "thợ may")
    registry.checkpoint()
    repo = new_repo(LocalTarget(tmp_path / "repo"))
    assert registry.signing_key is not None
    snap = take_snapshot(registry.db, repo, registry.signing_key, layout=layout)
    # auto: the database file of a SQLite registry, rows of a PostgreSQL one
    pages = layout == "auto" and registry.db.is_sqlite
    assert snap.layout == ("pages" if pages else "rows")
    assert (snap.pages > 0) is pages

    with registry.db.read() as conn:
        live_state, live_rows = integrity.projection_state(conn)
        head = journal_store.read_head(conn)
        live_checkpoints = journal_store.list_checkpoints(conn)
    assert (snap.position.seq, snap.position.chain_head) == (head.seq, head.hash)
    assert snap.position.state_digest == live_state.digest()
    assert snap.rows == (0 if pages else live_rows)  # a file's rows are not counted
    assert snap.checkpoint is not None and snap.checkpoint["seq"] == head.seq

    target = new_db(tmp_path)
    reopened = Repository.open(LocalTarget(tmp_path / "repo"), PASS)
    result = restore_snapshot(reopened, snap.name, target, public_keys=registry.public_keys())
    assert result.digest == live_state.digest() and result.rows == live_rows
    assert tables(target) == tables(registry.db)
    assert journal_of(target) == journal_of(registry.db)
    with target.read() as conn:
        assert journal_store.list_checkpoints(conn) == live_checkpoints
        restored_head = journal_store.read_head(conn)
    assert (restored_head.seq, restored_head.hash, restored_head.state) == \
        (head.seq, head.hash, head.state)
    report = integrity.verify(target, public_keys=registry.public_keys())
    assert report.ok, report.problems


def test_entry_lines_are_the_canonical_encoding(registry: Registry) -> None:
    seed(registry, 20)
    with registry.db.read() as conn:
        entries = list(journal_store.iter_entries(conn))
        stored = list(stored_entries(conn))
    for entry, as_stored in zip(entries, stored, strict=True):
        line = entry_line(entry)
        assert line == canonical.encode({**entry.body(), "hash": entry.hash})
        assert as_stored.line() == line and as_stored.hash_ok()
        back = parse_entry_line(line, "test")
        assert back == entry and back.raw_changes == entry.raw_changes
        assert StoredEntry.from_line(line, "test") == as_stored
    forged = entry_line(entries[0]).replace(b'"seed"', '"kẻ giả"'.encode())
    for parse in (parse_entry_line, StoredEntry.from_line):
        with pytest.raises(RepositoryDamaged, match="does not hash"):
            parse(forged, "test")


def test_entry_lines_other_than_the_canonical_bytes_are_refused(registry: Registry) -> None:
    """The hash is checked over the line's own bytes: the same values written any other way
    (whitespace, another member order, another escape, the hash moved or duplicated into a
    row image) are damage, never a silently accepted entry."""
    seed(registry, 5)
    with registry.db.read() as conn:
        entry = next(e for e in journal_store.iter_entries(conn) if e.changes)
    line = entry_line(entry)
    hash_member = b',"hash":"' + entry.hash.encode() + b'"'
    without_hash = line.replace(hash_member, b"")
    variants = {
        "space": line.replace(b'"actor":', b'"actor": '),
        "hash first": b'{"hash":"' + entry.hash.encode() + b'",' + without_hash[1:],
        "escaped": line.replace(b'"seq":', b'"\\u0073eq":'),
        "hash in a row": line.replace(b'"table":', hash_member[1:] + b',"table":', 1),
        "no hash": without_hash,
        "short hash": line.replace(entry.hash.encode(), entry.hash[:-1].encode()),
        "truncated": line[:-1],
        "not json": line.replace(b'"actor":', b'"actor"='),
    }
    for name, bad in variants.items():
        assert bad != line, name
        for parse in (parse_entry_line, StoredEntry.from_line):
            with pytest.raises(RepositoryDamaged):
                parse(bad, "test")
                pytest.fail(f"{parse.__name__} accepted {name}")


# --- online and consistent --------------------------------------------------------------------


def test_snapshot_during_concurrent_writes_restores_the_state_at_its_position(
        registry: Registry, tmp_path: Path) -> None:
    seed(registry, 200)
    keys = person_keys(registry, 40)
    committed = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        i = 0
        try:
            while not stop.is_set() and i < 200:
                registry.adjust_information(OFFICER, BASIS, keys[i % len(keys)],
                                            {"occupation": f"ca {i}"})
                committed.append(time.monotonic())
                i += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    waited = False

    def progress(_done: int, _total: int) -> None:
        nonlocal waited  # the first time: let the officer commit while we are mid-read
        if not waited:
            waited = True
            before = len(committed)
            deadline = time.monotonic() + 20
            while len(committed) < before + 5 and time.monotonic() < deadline:
                time.sleep(0.01)

    thread = threading.Thread(target=writer)
    repo = new_repo()
    assert registry.signing_key is not None
    thread.start()
    while not committed:
        time.sleep(0.005)
    try:
        snap = take_snapshot(registry.db, repo, registry.signing_key, progress=progress)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    final = registry.journal_length()
    assert final >= snap.position.seq + 5, "officers committed while the snapshot ran"

    target = new_db(tmp_path)
    restore_snapshot(repo, snap.name, target, public_keys=registry.public_keys())
    with registry.db.read() as conn:
        at_h, _ = integrity.replay_state(conn, stop=snap.position.seq)
        entry_h = journal_store.get_entry(conn, snap.position.seq)
    assert entry_h is not None and entry_h.digest == snap.position.state_digest
    assert tables(target) == at_h, "the snapshot is exactly the registry at its position"
    assert len(journal_of(target)) == snap.position.seq


def test_two_pages_snapshots_of_one_file_at_once_take_turns(
        sqlite_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``cutru serve`` may start the archiver's snapshot and the schedule's together. While
    one holds the file no checkpoint can copy the WAL back for the other, which would give
    up after the settling time; they take turns instead, both pages, while an officer keeps
    writing. (The settling time is cut to 0.5 s here and each snapshot holds the file for
    1 s.)"""
    monkeypatch.setattr(pages, "SETTLE_SECONDS", 0.5)
    registry = sqlite_registry
    seed(registry, 60)
    keys = person_keys(registry, 10)
    stop = threading.Event()
    taken: dict[str, SnapshotInfo] = {}
    errors: list[BaseException] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            registry.adjust_information(OFFICER, BASIS, keys[i % len(keys)],
                                        {"occupation": f"lượt {i}"})
            i += 1

    def snap(name: str, repo: Repository) -> None:
        assert registry.signing_key is not None
        try:
            taken[name] = take_snapshot(registry.db, repo, registry.signing_key,
                                        layout="pages", progress=lambda *_: time.sleep(1))
        except BaseException as exc:  # reported below
            errors.append(exc)

    repos = {"a": new_repo(), "b": new_repo()}
    writing = threading.Thread(target=writer)
    writing.start()
    try:
        snaps = [threading.Thread(target=snap, args=item) for item in repos.items()]
        for t in snaps:
            t.start()
        for t in snaps:
            t.join()
    finally:
        stop.set()
        writing.join()
    assert not errors, errors
    for name, info in taken.items():
        assert info.layout == "pages"
        result = restore_snapshot(repos[name], info.name, new_db(tmp_path, name),
                                  public_keys=registry.public_keys())
        assert result.digest == info.position.state_digest


# --- deduplication ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["rows", "auto"])
def test_second_snapshot_after_a_small_change_stores_only_the_changed_chunks(
        registry: Registry, layout: str) -> None:
    seed(registry, 400)
    target = MemoryTarget()
    repo = new_repo(target)
    assert registry.signing_key is not None
    first = take_snapshot(registry.db, repo, registry.signing_key, layout=layout)
    after_first = data_bytes(target)
    adjust(registry, person_keys(registry, 5), "kỹ sư")
    second = take_snapshot(registry.db, repo, registry.signing_key, layout=layout)
    added = data_bytes(target) - after_first
    assert second.position.seq == first.position.seq + 5
    assert second.bytes > first.bytes > 400_000
    # a file's change is whole pages, of the row, of every index it is in and of the journal:
    # some twenty pages for each of the five changes in a 2 MB file
    bound = 0.25 if second.layout == "pages" else 0.10
    assert added < bound * after_first, f"{added} bytes added to {after_first}"
    assert second.new_bytes < bound * second.bytes
    assert [s.name for s in list_snapshots(repo, registry.public_keys())] == \
        [first.name, second.name]


# --- refusals: never wrong data -----------------------------------------------------------------


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    where = len(data) // 2 if offset is None else offset
    data[where] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_a_pack_makes_verify_and_restore_refuse(registry: Registry,
                                                                  tmp_path: Path) -> None:
    seed(registry, 80)
    repo = new_repo(LocalTarget(tmp_path / "repo"))
    assert registry.signing_key is not None
    snap = take_snapshot(registry.db, repo, registry.signing_key)
    keys = registry.public_keys()
    assert verify_repository(repo, keys, read_data=True).ok
    packs = sorted((tmp_path / "repo" / "data").iterdir(), key=lambda p: p.stat().st_size)
    flip_byte(packs[-1], 100)  # inside the first blob of the biggest pack

    reopened = Repository.open(LocalTarget(tmp_path / "repo"), PASS)
    report = verify_repository(reopened, keys, read_data=True)
    assert not report.ok and report.problems[0].check == "pack"
    assert "fails authentication" in report.problems[0].message
    target = new_db(tmp_path)
    with pytest.raises(RepositoryDamaged):
        restore_snapshot(reopened, snap.name, target, public_keys=keys)
    assert tables(target) == {} and journal_of(target) == [], "nothing half-restored"


def tamper(registry: Registry) -> None:
    """Seed, then change one person's row by direct SQL, around the application."""
    seed(registry, 30)
    key = person_keys(registry, 1)[0]
    with registry.db.engine.begin() as conn:
        conn.execute(text("UPDATE persons SET occupation = 'sửa lén' WHERE key = :k"),
                     {"k": key})


def test_a_tampered_registry_is_not_snapshotted(registry: Registry) -> None:
    tamper(registry)
    assert registry.signing_key is not None
    with pytest.raises(ProjectionMismatch, match="snapshot refused"):
        take_snapshot(registry.db, new_repo(), registry.signing_key, layout="rows")


def test_a_tampered_file_is_copied_but_never_restored(sqlite_registry: Registry,
                                                      tmp_path: Path) -> None:
    """A pages snapshot does not read rows: the file of a registry changed around the
    application is copied as it is, and every restore of it is refused by the digest."""
    registry = sqlite_registry
    tamper(registry)
    assert registry.signing_key is not None
    repo = new_repo()
    snap = take_snapshot(registry.db, repo, registry.signing_key, layout="pages")
    target = new_db(tmp_path)
    with pytest.raises(ProjectionMismatch, match="restore refused"):
        restore_snapshot(repo, snap.name, target, public_keys=registry.public_keys())
    assert tables(target) == {} and journal_of(target) == []


def test_restore_checks_signatures_and_refuses_a_non_empty_target(registry: Registry,
                                                                  tmp_path: Path) -> None:
    seed(registry, 20)
    repo = new_repo()
    assert registry.signing_key is not None
    snap = take_snapshot(registry.db, repo, registry.signing_key)
    stranger = SigningKey.generate()
    with pytest.raises(ManifestInvalid, match="unknown key"):
        restore_snapshot(repo, snap.name, new_db(tmp_path, "a"),
                         public_keys={stranger.key_id: stranger.public_key_bytes})
    target = new_db(tmp_path, "b")
    restore_snapshot(repo, snap.name, target, public_keys=registry.public_keys())
    with pytest.raises(InputError, match="already holds a registry"):
        restore_snapshot(repo, snap.name, target, public_keys=registry.public_keys())


@pytest.mark.parametrize("layout", ["rows", "auto"])
def test_an_empty_registry_snapshots_and_restores(registry: Registry, tmp_path: Path,
                                                  layout: str) -> None:
    assert registry.signing_key is not None
    repo = new_repo()
    snap: SnapshotInfo = take_snapshot(registry.db, repo, registry.signing_key, layout=layout)
    assert snap.position.seq == 0 and snap.rows == 0
    result = restore_snapshot(repo, snap.name, new_db(tmp_path),
                              public_keys=registry.public_keys())
    assert result.digest == snap.position.state_digest


@pytest.mark.parametrize("fmt", [1, 4])
def test_a_snapshot_of_another_format_is_refused_by_name(fmt: int) -> None:
    """Format 1 snapshots record state digests of format 1 (SHAKE128), which this build does
    not compute: refused with that reason, not reported as damage or a digest mismatch."""
    from cutru.backup.manifest import Manifest

    manifest = Manifest(name="0" * 16, kind="snapshot", created_at="2026-01-05T08:30:00Z",
                        repository="r" * 64, body={"format": fmt}, key_id="k" * 16,
                        signature="0" * 128)
    with pytest.raises(RepositoryVersionError, match=f"snapshot format {fmt}") as caught:
        SnapshotInfo.from_manifest(manifest)
    assert ("SHAKE128" in caught.value.message) is (fmt == 1)


@pytest.mark.parametrize("fmt", [1, 3])
def test_a_segment_of_another_format_is_refused_by_name(fmt: int) -> None:
    from cutru.backup import naming
    from cutru.backup.archive import decode_segment

    header = {"base": None, "checkpoint": None, "created_at": "2026-01-05T08:30:00.000000Z",
              "first": 1, "format": fmt, "generation": 1, "last": 1, "prev": "0" * 64,
              "reason": None, "registry": "0" * 64}
    plain = canonical.encode(header) + b"\n"
    with pytest.raises(RepositoryVersionError, match=f"segment format {fmt}") as caught:
        decode_segment(naming.format_segment_name(1, 1, 1), plain, {})
    assert ("SHAKE128" in caught.value.message) is (fmt == 1)


def test_a_pages_snapshot_restores_only_into_a_sqlite_file(sqlite_registry: Registry,
                                                           tmp_path: Path) -> None:
    registry = sqlite_registry
    seed(registry, 10)
    assert registry.signing_key is not None
    repo = new_repo()
    snap = take_snapshot(registry.db, repo, registry.signing_key)
    assert snap.layout == "pages"
    with pytest.raises(InputError, match="restores into a SQLite file only") as caught:
        restore_snapshot(repo, snap.name, Database("sqlite://"),
                         public_keys=registry.public_keys())
    assert caught.value.rule == "backup.pages_need_sqlite"
    with pytest.raises(InputError, match="copies a SQLite database file") as refused:
        take_snapshot(Database("sqlite://"), repo, registry.signing_key, layout="pages")
    assert refused.value.rule == "backup.pages_need_sqlite"


def test_a_snapshot_sees_the_blobs_another_repository_object_saved(
        sqlite_registry: Registry, tmp_path: Path) -> None:
    """``cutru serve``'s archiver keeps its repository open while the schedule opens its own:
    a snapshot through the first stores nothing the second already stored."""
    registry = sqlite_registry
    seed(registry, 40)
    assert registry.signing_key is not None
    new_repo(LocalTarget(tmp_path / "repo"))
    early = Repository.open(LocalTarget(tmp_path / "repo"), PASS)
    later = Repository.open(LocalTarget(tmp_path / "repo"), PASS)
    first = take_snapshot(registry.db, later, registry.signing_key)
    second = take_snapshot(registry.db, early, registry.signing_key)
    assert first.layout == second.layout == "pages"
    assert first.new_blobs > 0 and second.new_blobs == 0


def test_a_reader_that_keeps_the_wal_gives_rows_or_a_clear_refusal(
        sqlite_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read transaction begun before the last commit keeps the checkpoint from copying
    that commit back: ``auto`` then reads rows, ``pages`` refuses by its rule, and a layout
    that does not exist is refused by name."""
    monkeypatch.setattr(pages, "SETTLE_SECONDS", 0.3)
    registry = sqlite_registry
    seed(registry, 10)
    assert registry.signing_key is not None
    with registry.db.read() as reader:
        journal_store.read_head(reader)  # fixes the reader's snapshot
        adjust(registry, person_keys(registry, 1), "sau")
        snap = take_snapshot(registry.db, new_repo(), registry.signing_key)
        assert snap.layout == "rows" and snap.rows > 0
        with pytest.raises(InputError, match="copied back") as refused:
            take_snapshot(registry.db, new_repo(), registry.signing_key, layout="pages")
        assert refused.value.rule == "backup.pages_settle"
    assert take_snapshot(registry.db, new_repo(), registry.signing_key).layout == "pages"
    with pytest.raises(InputError, match="not one of auto, pages, rows") as bad:
        take_snapshot(registry.db, new_repo(), registry.signing_key, layout="files")
    assert bad.value.field == "layout" and bad.value.rule == "backup.snapshot_layout"
