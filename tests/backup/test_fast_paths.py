"""The fast paths of snapshots and of the state digest give exactly what the plain ones give.

* Rows read with the driver's cursor, and on SQLite encoded by the query itself
  (``json_object``), against SQLAlchemy rows encoded by ``canonical.encode_row``: the same
  bytes for every value, awkward strings included, and the same errors for values the
  canonical encoding refuses.
* The state digest shared with a helper process against one process.
* A snapshot sealed in a helper process, and one that reuses the journal blobs of the
  snapshot before it, against a plain one: the same blobs, and they restore.
* kill -9 of a snapshot with a helper: the helper ends too, and the repository verifies.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import insert, select, text

from cutru.backup import (
    KeyFile,
    Repository,
    blobs,
    generate_key_file,
    naming,
    pages,
    snapshot,
)
from cutru.backup import restore as restore_module
from cutru.backup.archive import archive_once
from cutru.backup.lock import remove_stale_locks
from cutru.backup.restore import restore_snapshot
from cutru.backup.service import verify_repository
from cutru.backup.snapshot import take_snapshot
from cutru.backup.targets import Handle, Kind, LocalTarget, MemoryTarget
from cutru.config import Settings
from cutru.errors import (
    InputError,
    JournalChainBroken,
    ProjectionMismatch,
    RepositoryDamaged,
)
from cutru.journal import canonical
from cutru.journal.helper import Helper, HelperFailed
from cutru.journal.lthash import LtHash, Summer, key_elements, row_element, sum_expansions
from cutru.journal.signing import SigningKey
from cutru.services.registry import Registry
from cutru.store import projection, seals
from cutru.store.rows import complete_row
from cutru.store.schema import PROJECTION, persons, stays

from .test_snapshot import PASS, TEST_CHUNKS, adjust, new_db, new_repo, person_keys, seed

#: Every character the canonical encoding escapes, and some it writes raw.
AWKWARD = ("".join(map(chr, range(0x20))) + '"\\/\x7f \u2028\u2029\ufeff é Nguyễn Thị Ánh '
           "\U0001f600 '; DROP TABLE persons; --")


def reference_rows(conn: Any) -> list[tuple[str, str, bytes]]:
    """(table, key, canonical row) the plain way: SQLAlchemy rows and the canonical encoder."""
    out = []
    for table in PROJECTION:
        for row in conn.execute(select(table).order_by(table.c.key)).mappings():
            image = {str(k): v for k, v in row.items()}
            out.append((table.name, image["key"], canonical.encode_row(image)))
    return out


def fast_rows(conn: Any, batch: int = projection.ROW_BATCH, *, ordered: bool = True
              ) -> list[tuple[str, str, bytes]]:
    """The fast path's rows; ``ordered=False`` (storage order) sorted back into key order,
    which is what the plain way gives for these ASCII keys."""
    out = [(table.name, key, row) for table in PROJECTION
           for keys, rows in projection.encoded_rows(conn, table, batch, ordered=ordered)
           for key, row in zip(keys, rows, strict=True)]
    if not ordered:
        tables = [t.name for t in PROJECTION]
        out.sort(key=lambda r: (tables.index(r[0]), r[1]))
    return out


def add_awkward_rows(reg: Registry) -> None:
    awkward = AWKWARD if reg.db.is_sqlite else AWKWARD.replace("\0", "")  # PostgreSQL: no NUL
    with reg.db.begin() as conn:
        for i, text_ in enumerate([awkward, "", "\\u0041", '{"a":1}', "x" * 5000]):
            conn.execute(insert(persons).values(complete_row(persons, {
                "key": f"P-awkward-{i}", "full_name": text_, "birth_date": "2000-01-01",
                "birth_year": -(2**31) if i == 2 else 2000, "sex": "nữ",
                "secret_label": i % 2 == 0, "occupation": text_ or None})))
        conn.execute(insert(stays).values(complete_row(stays, {
            "key": "S-awkward", "full_name": awkward, "document_number": "0",
            "commune_code": "00001", "street": awkward, "arrival": "2026-01-01",
            "departure": "2026-01-02", "reason": "\n", "notified_at": "x"})))


def test_rows_and_state_equal_the_plain_way(registry: Registry) -> None:
    seed(registry, 60)
    add_awkward_rows(registry)
    with registry.db.read() as conn:
        expected = reference_rows(conn)
        assert fast_rows(conn) == expected
        assert fast_rows(conn, batch=7) == expected  # many pages
        assert fast_rows(conn, ordered=False) == expected
        assert fast_rows(conn, batch=7, ordered=False) == expected
        assert [(t, r["key"]) for t, _, r in projection.iter_projection_rows(conn)] == \
            [(t, k) for t, k, _ in expected]
        state = LtHash.of(row_element(t, k, r) for t, k, r in expected)
        assert projection.projection_state(conn, helper=False) == (state, len(expected))
        assert projection.projection_state(conn, helper=True) == (state, len(expected))
        assert projection.projection_state(conn, helper=True, beside=True) == (
            state, len(expected))


def spy_beside(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record what each projection_state's ``_beside`` gave: the helper's future, or None."""
    given: list[Any] = []
    real = projection._beside

    def recording(*args: Any) -> Any:
        found = real(*args)
        given.append(None if found is None else found.future)
        return found

    monkeypatch.setattr(projection, "_beside", recording)
    return given


def test_tables_summed_beside_in_a_helper_give_the_same_digest(
        registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a SQLite file a helper reads and sums persons and ID numbers on its own
    connection while this process reads the rest: the same state and count. Where its
    snapshot holds another journal head (a change committed after this one's began), or it
    dies, those tables are read here: still the digest of this process's snapshot."""
    if not registry.db.is_sqlite:
        pytest.skip("a helper reads tables beside its caller on a SQLite file only")
    seed(registry, 60)
    target = person_keys(registry, 1)
    add_awkward_rows(registry)
    given = spy_beside(monkeypatch)
    with registry.db.read() as conn:
        alone = projection.projection_state(conn, helper=False)
        assert given == []
        assert projection.projection_state(conn, helper=True, beside=True) == alone
        assert given[-1] is not None and given[-1].result() is not None, "summed there"
        head = registry.journal_length()
        adjust(registry, target, "later")  # committed after this snapshot began
        assert registry.journal_length() == head + 1
        handed: list[Any] = []
        real_use = Summer.use
        monkeypatch.setattr(Summer, "use", lambda self, submit: (
            handed.append(submit), real_use(self, submit)))
        assert projection.projection_state(conn, helper=True, beside=True) == alone
        assert given[-1] is not None and given[-1].result() is None, "another head there"
        assert handed and handed[-1] is not None, "the helper sums what is read here"
    with registry.db.read() as conn:
        moved = projection.projection_state(conn, helper=False)
        assert moved != alone
        failed: Future[Any] = Future()
        failed.set_exception(HelperFailed("the helper ended"))
        monkeypatch.setattr(projection, "_beside", lambda *args: projection.Beside(
            cast(Any, None), "", failed))  # its helper is gone: never used again
        assert projection.projection_state(conn, helper=True, beside=True) == moved


def test_a_table_the_helper_cannot_read_is_read_here(
        registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value the query refuses (a REAL in an integer column, direct SQL) in a table the
    helper reads: that table is read here, the row way, which names the row."""
    if not registry.db.is_sqlite:
        pytest.skip("PostgreSQL keeps a column's type: only SQLite stores such values")
    seed(registry, 20)
    key = person_keys(registry, 3)[1]
    with registry.db.engine.begin() as conn:
        conn.execute(text("UPDATE persons SET birth_year = 1985.5 WHERE key = :k"), {"k": key})
    given = spy_beside(monkeypatch)
    with registry.db.read() as conn:
        with pytest.raises(ProjectionMismatch) as raised:
            projection.projection_state(conn, helper=True, beside=True)
        assert given[-1] is not None and given[-1].result()[0] is None
        assert given[-1].result()[1] is not None, "households summed there"
        assert (raised.value.details["table"], raised.value.details["key"]) == ("persons", key)


@pytest.mark.parametrize(("sql", "error"), [
    ("UPDATE persons SET birth_year = 1985.5 WHERE key = :k", "canonical.float"),
    ("UPDATE persons SET full_name = x'00ff' WHERE key = :k", "canonical.type"),
    ("UPDATE persons SET secret_label = 'có' WHERE key = :k", None),
    ("UPDATE persons SET secret_label = 2 WHERE key = :k", None),
    ("UPDATE persons SET secret_label = 0.0 WHERE key = :k", None),
    ("UPDATE persons SET occupation = 17 WHERE key = :k", None),
])
def test_values_sqlite_would_encode_otherwise_take_the_row_path(registry: Registry, sql: str,
                                                                error: str | None) -> None:
    """A value the canonical encoding refuses makes the table's rows unreadable as row images
    (ProjectionMismatch naming the row and the encoding's rule), and one it reads in its own
    way (a boolean column holding text) gives the same bytes, whichever path."""
    if not registry.db.is_sqlite:
        pytest.skip("PostgreSQL keeps a column's type: only SQLite stores such values")
    seed(registry, 20)
    key = person_keys(registry, 3)[1]
    with registry.db.engine.begin() as conn:
        conn.execute(text(sql), {"k": key})
    with registry.db.read() as conn:
        for ordered in (True, False):  # key order, and the state digest's storage order
            if error is None:
                assert fast_rows(conn, batch=4, ordered=ordered) == reference_rows(conn)
            else:
                with pytest.raises(InputError) as plain:
                    reference_rows(conn)
                with pytest.raises(ProjectionMismatch) as fast:
                    fast_rows(conn, batch=4, ordered=ordered)
                assert fast.value.details["rule"] == plain.value.rule == error
                assert (fast.value.details["table"], fast.value.details["key"]) == (
                    "persons", key)


def test_sum_expansions_and_the_summer_equal_lthash() -> None:
    items = [f"phần tử {i}".encode() for i in range(10_000)]
    expected = LtHash.of(b"pre" + i for i in items)
    assert sum_expansions(items, b"pre") == expected.to_bytes()
    with_helper = Helper()
    try:
        summer = Summer(with_helper.submit, inflight=1)
        for start in range(0, len(items), 700):
            summer.add(items[start:start + 700], b"pre")
        assert summer.result() == expected
    finally:
        with_helper.close()
    alone = Summer()
    alone.add(items, b"pre")
    assert alone.result() == expected
    # rows framed where they are summed (add_rows): the same as framing them first
    keys = [f"K{i}" for i in range(len(items))]
    framed = LtHash.of(b"pre" + e for e in key_elements(keys, items))
    for submit in (None, "helper"):
        pool = Helper() if submit else None
        try:
            rows_summer = Summer(pool.submit if pool else None, inflight=4)
            for start in range(0, len(items), 700):
                rows_summer.add_rows(keys[start:start + 700], items[start:start + 700], b"pre")
            assert rows_summer.result() == framed
        finally:
            if pool:
                pool.close()


@pytest.mark.parametrize("seen", [False, True], ids=["at-result", "at-submit"])
def test_a_summer_whose_helper_dies_sums_the_rest_here(seen: bool) -> None:
    """The batches the helper held when it died, and every later one, are summed here: the
    state is the same (the quick check and restore proofs use a Summer)."""
    items = [f"phần tử {i}".encode() for i in range(6_000)]
    expected = LtHash.of(b"pre" + i for i in items)
    helper = Helper()
    try:
        summer = Summer(helper.submit, inflight=8)
        for n, start in enumerate(range(0, len(items), 500)):
            if n == 4:  # four batches wait in the helper, or were summed there
                helper._proc.kill()
                helper._proc.wait()
                if seen:  # the reader has seen the end: the next submit raises
                    helper._reader.join(timeout=60)
            summer.add(items[start:start + 500], b"pre")
        assert summer.result() == expected
    finally:
        helper.close()


def test_helper_reports_errors_and_its_end() -> None:
    helper = Helper()
    try:
        with pytest.raises(ZeroDivisionError):
            helper.submit(divmod, 1, 0).result()
        assert helper.submit(divmod, 7, 2).result() == (3, 1)
        helper._proc.kill()
        helper._proc.wait()
        with pytest.raises(HelperFailed):
            helper.submit(divmod, 7, 2).result(timeout=30)
    finally:
        helper.close()


def streams_of(info: snapshot.SnapshotInfo) -> dict[str, tuple[str, ...]]:
    return {name: s.trees for name, s in info.streams.items()}


def test_a_snapshot_sealed_in_a_helper_has_the_same_blobs_and_restores(
        registry: Registry, tmp_path: Path) -> None:
    seed(registry, 120)
    key = registry.signing_key
    assert key is not None
    repo = new_repo(LocalTarget(tmp_path / "repo"))
    plain = take_snapshot(registry.db, repo, key, helper=False)
    helped = take_snapshot(registry.db, repo, key, helper=True)
    assert helped.new_blobs == 0 and streams_of(helped) == streams_of(plain)
    assert helped.position == plain.position

    other = new_repo(LocalTarget(tmp_path / "other"))
    first = take_snapshot(registry.db, other, key, helper=True)
    reopened = Repository.open(LocalTarget(tmp_path / "other"), PASS)
    assert verify_repository(reopened, registry.public_keys(), read_data=True).ok
    db = new_db(tmp_path)
    try:
        restored = restore_snapshot(reopened, first.name, db, public_keys=registry.public_keys())
    finally:
        db.dispose()
    assert restored.digest == plain.position.state_digest


def test_a_restore_proves_beside_a_helper_only_what_it_has_not_written(
        sqlite_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pages snapshot restored without a replay is proved by page groups read in helper
    processes (the restoring transaction has written nothing; with no page groups, by a
    helper reading tables beside); one with archived entries replayed is proved by reading
    every row here: a helper's connection would see the file before the replay, and the
    proof would fail."""
    registry = sqlite_registry
    seed(registry, 40)
    key = registry.signing_key
    assert key is not None
    repo = new_repo(LocalTarget(tmp_path / "repo"))
    start = archive_once(registry.db, repo, key)
    assert start.snapshot is not None
    adjust(registry, person_keys(registry, 3), "thợ hàn")
    archive_once(registry.db, repo, key)
    monkeypatch.setattr(projection, "HELPER_MIN_ROWS", 0)  # a helper whatever the size
    given = spy_beside(monkeypatch)
    for name, segments, groups in (("newest", False, True), ("replayed", True, True),
                                   ("newest-rows", False, False)):
        if not groups:
            monkeypatch.setattr(restore_module.page_groups, "settle_wal", lambda _p: False)
        db = new_db(tmp_path, name)
        try:
            restored = restore_snapshot(repo, start.snapshot, db, segments=segments,
                                        public_keys=registry.public_keys())
        finally:
            db.dispose()
        if segments:
            assert restored.position.seq == registry.journal_length()
            assert not given and restored.page_groups == 0, "every replayed row read here"
        elif groups:
            assert restored.position.seq < registry.journal_length()
            assert restored.page_groups > 0 and not given, "proved by page groups"
        else:
            assert restored.page_groups == 0
            assert len(given) == 1 and given[0] is not None and given[0].result()[0] is not None


def test_a_snapshot_carries_the_seal_its_restore_proves_the_file_with(
        sqlite_registry: Registry, tmp_path: Path) -> None:
    """A quick check seals the live registry; the pages snapshot after it carries the seal,
    and restoring it reads no group as rows. A seal signed by a key the registry does not
    list is carried but not used: every group is read, and the file is still proved."""
    registry = sqlite_registry
    repo, snap = _sealed_snapshot(registry, tmp_path, 60)
    key = registry.signing_key
    assert key is not None and pages.SEALS_STREAM in snap.streams
    restored = _restored(registry, repo, snap.name, tmp_path / "sealed")
    assert restored.digest == snap.position.state_digest
    assert restored.page_groups > 0 and restored.page_groups_read == 0

    with registry.db.read() as conn:
        live = projection.sqlite_file(conn)
    assert live is not None
    honest = seals.load(live, registry.public_keys())
    assert honest is not None
    seals.save(live, honest, SigningKey.generate())
    adjust(registry, person_keys(registry, 2), "thợ điện")
    snap = take_snapshot(registry.db, repo, key)
    restored = _restored(registry, repo, snap.name, tmp_path / "foreign")
    assert restored.digest == snap.position.state_digest
    assert restored.page_groups_read == restored.page_groups > 0


def test_a_damaged_seal_stream_only_loses_the_shortcut(
        sqlite_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seal is an accelerator: a restore whose snapshot's seal stream cannot be read
    (its blobs damaged) reads every group and still proves the file."""
    registry = sqlite_registry
    repo, snap = _sealed_snapshot(registry, tmp_path, 30)
    real = restore_module.read_blobs

    def damaged(repo_: Repository, info: Any, where: str) -> Any:
        if info.name == pages.SEALS_STREAM:
            raise RepositoryDamaged(f"{where}: a blob of its seals is damaged", object=where)
        return real(repo_, info, where)

    monkeypatch.setattr(restore_module, "read_blobs", damaged)
    restored = _restored(registry, repo, snap.name, tmp_path / "damaged")
    assert restored.digest == snap.position.state_digest
    assert restored.page_groups_read == restored.page_groups > 0


def _force_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writer processes for a file of any size, a few blobs a run (many runs)."""
    monkeypatch.setattr(pages, "HELPER_MIN_BYTES", 0)
    monkeypatch.setattr(pages, "WRITE_RUN", 3 * TEST_CHUNKS.avg_size)


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_writer_processes_write_the_file_byte_for_byte(
        sqlite_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        kind: str) -> None:
    """Writer processes write exactly the bytes this process writes from the loaded blobs:
    from a repository in a directory (each writer reads its runs from the pack files) and
    from one that is not (this process sends them). A restore with writers proves the file
    by page groups in those same processes, the seal's groups taken as sealed."""
    registry = sqlite_registry
    repo, snap = _sealed_snapshot(registry, tmp_path, 40,
                                  None if kind == "local" else MemoryTarget())
    info = snap.stream(pages.FILE_STREAM)
    _force_writers(monkeypatch)
    where = f"snapshots/{snap.name}"
    plain, helped = tmp_path / "plain.db", tmp_path / "helped.db"
    pages.write_file(snapshot.read_blobs(repo, info, where), plain, info.bytes, where,
                     lambda _n: None)
    written: list[int] = []
    with pages.file_writers(repo, info.bytes) as writers:
        assert len(writers) == 2
        pages.write_file_by(writers, repo, snapshot.blob_ids(repo, info, where), helped,
                            info.bytes, info.blobs, where, written.append)
    assert helped.read_bytes() == plain.read_bytes()
    assert sum(written) == info.bytes and len(written) > 2
    assert not list(tmp_path.glob(".*restoring*"))

    restored = _restored(registry, repo, snap.name, tmp_path / "restored")
    assert restored.digest == snap.position.state_digest
    assert restored.page_groups > 0 and restored.page_groups_read == 0


def test_each_run_written_is_handed_to_the_disk_at_once(
        sqlite_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer asks the kernel to start writing each run out as soon as it has written it
    (``sync_file_range``), so that the disk works while the next runs are opened: the
    ranges handed over are those written, and together they are the whole file. On this
    machine's C library the call exists and accepts them."""
    repo, snap = _sealed_snapshot(sqlite_registry, tmp_path, 20)
    info = snap.stream(pages.FILE_STREAM)
    where = f"snapshots/{snap.name}"
    path = tmp_path / "written.db"
    path.write_bytes(b"")
    handed: list[tuple[int, int]] = []
    real = blobs.start_writeback

    def spy(fd: int, offset: int, length: int) -> None:
        handed.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(blobs, "start_writeback", spy)
    at = 0
    for pack_id, run in repo.runs(snapshot.blob_ids(repo, info, where),
                                  3 * TEST_CHUNKS.avg_size):
        written = blobs.write_run(repo.keys, str(path), at, run, repo.load_run(pack_id, run),
                                  where)
        assert handed[-1] == (at, written)
        at += written
    assert at == info.bytes and len(handed) > 2
    plain = tmp_path / "plain.db"
    pages.write_file(snapshot.read_blobs(repo, info, where), plain, info.bytes, where,
                     lambda _n: None)
    assert path.read_bytes() == plain.read_bytes()
    if sys.platform == "linux":
        assert blobs._SYNC_FILE_RANGE is not None


@pytest.mark.parametrize("damage", ["flipped", "missing"])
def test_a_damaged_pack_fails_a_writer_and_leaves_nothing(
        sqlite_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        damage: str) -> None:
    """A blob that fails its check in a writer process (one bit flipped in its pack), or a
    pack file that is gone, fails the restore with RepositoryDamaged naming it; no
    temporary file is left and the target holds no registry."""
    repo, snap = _sealed_snapshot(sqlite_registry, tmp_path, 30)
    ids = list(snapshot.blob_ids(repo, snap.stream(pages.FILE_STREAM), "x"))
    found = repo.index.lookup(ids[len(ids) // 2])
    assert found is not None
    pack_id, entry = found
    pack = Path(cast(str, repo.target.local_file(
        Handle(Kind.DATA, naming.format_id(pack_id)))))
    if damage == "missing":
        pack.unlink()
    else:
        data = bytearray(pack.read_bytes())
        data[entry.offset + entry.length // 2] ^= 0x01
        pack.write_bytes(bytes(data))
    _force_writers(monkeypatch)
    target = tmp_path / "restored"
    with pytest.raises(RepositoryDamaged) as caught:
        _restored(sqlite_registry, repo, snap.name, target)
    assert ("fails authentication" if damage == "flipped" else "missing or too short") \
        in str(caught.value)
    assert not list(target.glob(".*restoring*"))
    db = new_db(target)
    try:
        with db.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM persons")).scalar_one() == 0
    finally:
        db.dispose()


def _sealed_snapshot(registry: Registry, tmp_path: Path, persons: int,
                     target: MemoryTarget | None = None) -> tuple[Repository, Any]:
    """``persons`` seeded, sealed by a quick check, then a snapshot into a new repository
    (in ``target``, else in a directory)."""
    seed(registry, persons)
    key = registry.signing_key
    assert key is not None
    assert registry.quick_check().ok
    repo = new_repo(target or LocalTarget(tmp_path / "repo"))
    return repo, take_snapshot(registry.db, repo, key)


def _restored(registry: Registry, repo: Repository, name: str, where: Path) -> Any:
    """Snapshot ``name`` restored, without segments, into a new file under ``where``."""
    db = new_db(where)
    try:
        return restore_snapshot(repo, name, db, segments=False,
                                public_keys=registry.public_keys())
    finally:
        db.dispose()


@pytest.mark.parametrize("helper", [False, True])
def test_the_journal_blobs_of_the_snapshot_before_are_reused_exactly(
        registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        helper: bool) -> None:
    seed(registry, 120)
    key = registry.signing_key
    assert key is not None
    repo = new_repo(MemoryTarget())
    first = take_snapshot(registry.db, repo, key, helper=helper, layout="rows")
    adjust(registry, person_keys(registry, 5), "kỹ sư")

    reused: list[Any] = []
    real = snapshot._journal_reuse

    def spy(*args: Any) -> Any:
        found = real(*args)
        reused.append(found[0])
        return found

    monkeypatch.setattr(snapshot, "_journal_reuse", spy)
    second = take_snapshot(registry.db, repo, key, helper=helper, layout="rows")
    assert reused[0] is not None and reused[0].snapshot == first.name
    assert reused[0].skip > first.streams["journal"].bytes // 2
    monkeypatch.setattr(snapshot, "_journal_reuse", lambda *_: (None, None))
    third = take_snapshot(registry.db, repo, key, helper=helper, layout="rows")
    assert third.new_blobs == 0 and streams_of(third) == streams_of(second)
    db = new_db(tmp_path)
    try:
        restored = restore_snapshot(repo, second.name, db, public_keys=registry.public_keys())
    finally:
        db.dispose()
    assert restored.position == second.position


def test_reuse_still_reads_and_checks_every_entry(registry: Registry) -> None:
    """The blobs of the journal's start are reused only because every entry is read and
    its hash and link checked as before: an entry altered in the database is refused."""
    seed(registry, 60)
    key = registry.signing_key
    assert key is not None
    repo = new_repo(MemoryTarget())
    take_snapshot(registry.db, repo, key, layout="rows")
    adjust(registry, person_keys(registry, 2), "thợ điện")
    with registry.db.engine.begin() as conn:
        if registry.db.is_sqlite:
            conn.execute(text("DROP TRIGGER journal_no_update"))
        else:
            conn.execute(text("DROP TRIGGER journal_no_change ON journal"))
        conn.execute(text("UPDATE journal SET actor = 'kẻ giả' WHERE seq = 2"))
    with pytest.raises(JournalChainBroken):
        take_snapshot(registry.db, repo, key, layout="rows")


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # a zombie waiting for a reaper has ended


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_kill9_of_a_snapshot_ends_its_helper_and_leaves_a_repository_that_verifies(
        tmp_path: Path) -> None:
    reg = Registry(Settings(data_dir=tmp_path / "data", key_dir=tmp_path / "keys"))
    reg.init()
    seed(reg, 200)
    Repository.init(LocalTarget(tmp_path / "repo"), generate_key_file(tmp_path / "repo.key"),
                    chunker=TEST_CHUNKS, pack_size=32 * 1024)
    script = f"""
from pathlib import Path
from cutru.backup import KeyFile, Repository
from cutru.backup.snapshot import take_snapshot
from cutru.backup.targets import LocalTarget
from cutru.config import Settings
from cutru.services.registry import Registry
tmp = Path({str(tmp_path)!r})
reg = Registry(Settings(data_dir=tmp / "data", key_dir=tmp / "keys"))
repo = Repository.open(LocalTarget(tmp / "repo"), KeyFile.load(tmp / "repo.key"))
while True:
    with repo.lock():
        take_snapshot(reg.db, repo, reg.signing_key, helper=True)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    rng = random.Random(5)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (helpers := _children(proc.pid)) and time.monotonic() < deadline:
            assert proc.poll() is None, "the snapshot process ended by itself"
            time.sleep(0.01)
        assert helpers, "no helper process started"
        time.sleep(rng.uniform(0.1, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 30
        while not all(map(_gone, helpers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(map(_gone, helpers)), "the helper outlived its snapshot"
        repo = Repository.open(LocalTarget(tmp_path / "repo"), KeyFile.load(tmp_path / "repo.key"))
        remove_stale_locks(repo.target, repo.keys)
        report = verify_repository(repo, reg.public_keys(), read_data=True)
        assert report.ok, report.to_dict()
