"""The quick check sums a SQLite registry by page groups, with signed seals (store/seals)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from cutru.journal.helper import own_helper
from cutru.journal.lthash import LtHash, sum_rows
from cutru.journal.signing import SigningKey
from cutru.recovery import integrity
from cutru.services import importer, synthetic
from cutru.services.registry import Registry
from cutru.store import page_groups, seals, stored_bytes
from cutru.store.projection import HEAD_SEQ_SQL, sqlite_file
from tests.helpers import BASIS, OFFICER
from tests.test_integrity import exec_sql
from tests.test_transactions import seed_family

TODAY = date(2026, 11, 27)


@pytest.fixture
def grouped(sqlite_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A SQLite registry of 300 synthetic persons and a family, in groups of about 16
    rows: dozens of groups per large table."""
    monkeypatch.setattr(page_groups, "GROUP_ROWS", 16)
    importer.import_records(sqlite_registry.runner, enumerate(
        synthetic.generate(300, seed=3, today=TODAY), start=1), actor="importer")
    return sqlite_registry


def database(reg: Registry) -> str:
    with reg.db.read() as conn:
        path = sqlite_file(conn)
    assert path is not None
    return path


def row_path(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> integrity.Report:
    """The quick check reading every row (as on PostgreSQL)."""
    with monkeypatch.context() as m:
        m.setattr(integrity, "_groups_ready", lambda *_args: None)
        return reg.quick_check()


def test_a_seal_makes_the_next_quick_check_read_only_the_groups_that_changed(
        grouped: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = grouped
    first = reg.quick_check()
    assert first.ok, first.problems
    assert first.groups > 20 and first.groups_read == first.groups  # nothing sealed yet
    assert seals.seal_path(database(reg)).exists()
    plain = row_path(reg, monkeypatch)
    assert (first.rows, first.digest) == (plain.rows, plain.digest)

    again = reg.quick_check()
    assert again.ok and again.groups_read == 0
    assert (again.rows, again.digest, again.groups) == (first.rows, first.digest, first.groups)

    k = seed_family(reg)  # appended rows: new or last groups
    reg.adjust_information(OFFICER, BASIS, k["child"], {"occupation": "thợ mộc"})
    later = reg.quick_check()
    assert later.ok, later.problems
    assert 0 < later.groups_read < later.groups / 2
    plain = row_path(reg, monkeypatch)
    assert (later.rows, later.digest) == (plain.rows, plain.digest)
    assert reg.quick_check().groups_read == 0  # the check sealed what it read


@pytest.mark.parametrize("sql", [
    # the same length: SQLite overwrites the cell in place
    "UPDATE persons SET full_name = upper(full_name) WHERE rowid = 7",
    "UPDATE persons SET occupation = 'sửa thẳng' WHERE rowid = 150",
    "DELETE FROM id_numbers WHERE rowid = 30",
    "INSERT INTO households SELECT * FROM households WHERE rowid = 5 LIMIT 0",
    "UPDATE residences SET street = street || '.' WHERE rowid = 200",
])
def test_direct_edits_after_a_seal_are_found_and_pinpointed(
        grouped: Registry, sql: str) -> None:
    reg = grouped
    assert reg.quick_check().ok  # sealed
    before = reg.quick_check()
    assert before.groups_read == 0
    exec_sql(reg, sql)
    report = reg.quick_check()
    if "LIMIT 0" in sql:  # inserts nothing: a control, the check must still pass
        assert report.ok and report.groups_read == 0
        return
    assert not report.ok
    table = sql.split()[1] if sql.startswith("UPDATE") else sql.split()[2]
    found = [p for p in report.problems if p.kind == "projection"]
    assert found and all(p.table == table for p in found), found
    assert report.groups_read >= 1


def _row_of(reg: Registry, sql: str) -> tuple[str, str | None]:
    with reg.db.read() as conn:
        row = conn.execute(text(sql)).one()
    return str(row[0]), None if row[1] is None else str(row[1])


@pytest.mark.parametrize(("check", "beside"), [("quick", True), ("quick", False),
                                               ("verify", True)])
def test_a_mismatch_after_a_seal_is_pinpointed_among_the_groups_read(
        grouped: Registry, monkeypatch: pytest.MonkeyPatch, check: str, beside: bool) -> None:
    """After a seal, the quick check pinpoints among the rows of the groups it read and the
    keys written since the seal, not among every row, and finds exactly what pinpointing
    among every row finds: an updated person, a deleted ID number, a forged household, and
    a person whose legitimate change after the seal was undone by direct SQL (its row
    holds the sealed bytes again). Without a helper process, the same. ``cutru verify``,
    which reads every row, then pinpoints the same way."""
    reg = grouped
    if not beside:
        monkeypatch.setattr(integrity, "helper_process", _no_helper)
    victim, _ = _row_of(reg, "SELECT key, occupation FROM persons WHERE rowid = 7")
    undone, occupation = _row_of(reg, "SELECT key, occupation FROM persons WHERE rowid = 120")
    gone, _ = _row_of(reg, "SELECT key, id_number FROM id_numbers WHERE rowid = 30")
    assert reg.quick_check().ok  # sealed
    reg.adjust_information(OFFICER, BASIS, undone, {"occupation": "thợ mộc"})
    exec_sql(reg, "UPDATE persons SET full_name = upper(full_name) WHERE rowid = 7")
    exec_sql(reg, "DELETE FROM id_numbers WHERE rowid = 30")
    exec_sql(reg, "UPDATE persons SET occupation = :o WHERE key = :k", o=occupation, k=undone)
    with reg.db.engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE forged AS SELECT * FROM households "
                          "WHERE rowid = 5"))
        conn.execute(text("UPDATE forged SET key = 'H-forged'"))
        conn.execute(text("INSERT INTO households SELECT * FROM forged"))
    report = reg.quick_check() if check == "quick" else reg.verify()
    assert not report.ok and report.pinpointed_by_groups
    if check == "quick":
        assert report.groups_read < report.groups / 2
    found = [p for p in report.problems if p.kind == "projection"]
    with reg.db.read() as conn:
        assert found == integrity.pinpoint(conn)
    assert {(p.table, p.key, p.change) for p in found} == {
        ("persons", victim, "updated"), ("persons", undone, "updated"),
        ("id_numbers", gone, "deleted"), ("households", "H-forged", "inserted")}


def test_the_images_of_the_groups_read_come_from_the_subject_index(
        grouped: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A person edited by direct SQL after a seal: the images of the rows of its group are
    read from the entries that name them as subjects, and the whole journal is not read."""
    reg = grouped
    monkeypatch.setattr(integrity, "helper_process", _no_helper)
    assert reg.quick_check().ok  # sealed
    victim, _ = _row_of(reg, "SELECT key, occupation FROM persons WHERE rowid = 7")
    exec_sql(reg, "UPDATE persons SET occupation = 'sửa thẳng' WHERE rowid = 7")
    whole: list[Any] = []
    real = stored_bytes.last_images

    def spy(raw: sqlite3.Connection, **kw: Any) -> Any:
        if not kw.get("after") and kw.get("seqs") is None:
            whole.append(kw.get("only"))
        return real(raw, **kw)

    monkeypatch.setattr(stored_bytes, "last_images", spy)
    report = reg.quick_check()
    assert report.pinpointed_by_groups and whole == []
    assert [(p.table, p.key, p.change) for p in report.problems] == [
        ("persons", victim, "updated")]


def test_an_image_the_subject_index_misses_is_read_from_the_whole_journal(
        grouped: Registry) -> None:
    """An attacker removes from ``journal_subjects`` the entry that last changed a person
    before the seal, then puts the person's row back to what it was before that change:
    the subject index gives the older image, which the row holds, and the rows found do
    not account for the difference. The images are then read from the whole journal, and
    the row is found."""
    reg = grouped
    person, _ = _row_of(reg, "SELECT key, occupation FROM persons WHERE rowid = 40")
    with reg.db.read() as conn:
        old = conn.execute(text("SELECT * FROM persons WHERE key = :k"), {"k": person}
                           ).mappings().one()
    reg.adjust_information(OFFICER, BASIS, person, {"occupation": "thợ mộc"})
    assert reg.quick_check().ok  # sealed, with the change
    exec_sql(reg, "DELETE FROM journal_subjects WHERE subject = :k AND seq = "
             "(SELECT max(seq) FROM journal_subjects WHERE subject = :k)", k=person)
    exec_sql(reg, "UPDATE persons SET occupation = :o WHERE key = :k",
             o=old["occupation"], k=person)
    report = reg.quick_check()
    assert not report.ok and report.pinpointed_by_groups
    assert [(p.table, p.key, p.change) for p in report.problems] == [
        ("persons", person, "updated")]


@pytest.mark.parametrize(("check", "recreated"), [("quick", False), ("verify", False),
                                                  ("quick", True), ("verify", True)])
def test_a_row_forged_into_a_table_the_journal_never_wrote_is_pinpointed(
        grouped: Registry, check: str, recreated: bool) -> None:
    """After a seal, a residence confirmation inserted by direct SQL into the table no
    entry ever wrote (the journal has no image of any of its rows) is pinpointed among the
    groups read, as inserted; so it is when the attacker has also dropped and recreated the
    table with another definition (its seal then no longer holds, and its count at the seal
    is not known: the whole journal is read for it)."""
    reg = grouped
    assert reg.quick_check().ok  # sealed, with the table empty
    if recreated:
        definition = _row_of(reg, "SELECT sql, NULL FROM sqlite_master "
                                  "WHERE name = 'confirmations'")[0]
        exec_sql(reg, "DROP TABLE confirmations")
        exec_sql(reg, definition.replace("(", "( ", 1))
    exec_sql(reg, "INSERT INTO confirmations (key, person_key, issued_on, valid_until, "
             "content) VALUES ('C-forged', 'P-none', '2026-11-27', '2027-11-27', 'x')")
    report = reg.quick_check() if check == "quick" else reg.verify()
    assert not report.ok and report.pinpointed_by_groups
    assert [(p.table, p.key, p.change) for p in report.problems] == [
        ("confirmations", "C-forged", "inserted")]


def test_a_row_put_back_to_its_sealed_bytes_after_a_change_is_found(
        grouped: Registry) -> None:
    """A legitimate change after the seal, then the page that held the row written back
    as it was sealed (its group hashes as sealed again, and is not read): the key the
    journal wrote after the seal is still compared, and found."""
    reg = grouped
    path = database(reg)
    undone, _ = _row_of(reg, "SELECT key, occupation FROM persons WHERE rowid = 120")
    assert reg.quick_check().ok  # sealed; the log emptied into the file
    with own_helper() as helper:  # pages read and written away from the registry's locks
        assert helper is not None
        pageno, sealed_page = helper.submit(_leaf_holding, path, "persons", 120).result()
        reg.adjust_information(OFFICER, BASIS, undone, {"occupation": "thợ mộc"})
        assert page_groups.settle_wal(path)
        assert helper.submit(_leaf_holding, path, "persons", 120).result()[0] == pageno
        helper.submit(_write_page, path, pageno, sealed_page).result()
    reg.db.dispose()  # no connection keeps the page as it was before
    report = reg.quick_check()
    assert not report.ok and report.pinpointed_by_groups and report.groups_read == 0
    assert [(p.table, p.key, p.change) for p in report.problems if p.kind == "projection"
            ] == [("persons", undone, "updated")]


def _leaf_holding(path: str, table: str, rowid: int) -> tuple[int, bytes]:
    """The number and bytes of the leaf page of ``table`` that holds ``rowid`` (in a
    helper process)."""
    raw = sqlite3.connect(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        found = (0, b"")
        for pageno, leaf, page in page_groups.table_pages(raw, fd, table):
            first = page_groups._first_rowid(page, table, pageno) if leaf else None
            if first is not None and first <= rowid:
                found = (pageno, page)
        return found
    finally:
        raw.close()
        os.close(fd)


def _write_page(path: str, pageno: int, page: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek((pageno - 1) * len(page))
        f.write(page)


@contextmanager
def _no_helper() -> Iterator[None]:
    yield None


@pytest.mark.parametrize(("why", "check"), [("unaccounted", "quick"), ("long tail", "quick"),
                                           ("unaccounted", "verify"), ("no seal", "verify")])
def test_what_the_groups_read_do_not_account_for_is_pinpointed_among_every_row(
        grouped: Registry, monkeypatch: pytest.MonkeyPatch, why: str, check: str) -> None:
    """The rows found among the groups read must account for the whole difference of
    state digests; where they do not (here, elements miscounted), every row is compared.
    So it is where the seal is further behind the journal than SEALED_TAIL_MAX entries,
    and, for ``cutru verify``, where there is no seal."""
    reg = grouped
    assert reg.quick_check().ok
    exec_sql(reg, "UPDATE persons SET occupation = 'sửa thẳng' WHERE rowid = 150")
    if why == "unaccounted":
        monkeypatch.setattr(integrity, "row_element", lambda t, k, r: b"x" + r)
    elif why == "long tail":
        reg.adjust_information(OFFICER, BASIS, _row_of(
            reg, "SELECT key, occupation FROM persons WHERE rowid = 9")[0], {"occupation": "y"})
        monkeypatch.setattr(integrity, "SEALED_TAIL_MAX", 0)
    else:
        seals.seal_path(database(reg)).unlink()
    report = reg.quick_check() if check == "quick" else reg.verify()
    assert not report.ok and not report.pinpointed_by_groups
    found = [p for p in report.problems if p.kind == "projection"]
    assert [(p.table, p.change) for p in found] == [("persons", "updated")]


def test_an_altered_or_foreign_seal_is_not_used(grouped: Registry) -> None:
    """An attacker who edits a row and writes a seal that says its group's new bytes hold
    the old state (so that the sum would still come out right) cannot sign it with the
    checkpoint key: the seal is not used, every row is read, the edit is found."""
    reg = grouped
    assert reg.quick_check().ok
    path = database(reg)
    keys = reg.public_keys()
    honest = seals.load(path, keys)
    assert honest is not None
    exec_sql(reg, "UPDATE persons SET full_name = upper(full_name) WHERE rowid = 40")
    # the attacker's seal: each group's current bytes, with the honest (old) states
    assert page_groups.settle_wal(path)
    with own_helper() as helper:
        assert helper is not None
        scanned = helper.submit(page_groups.scan_groups, path, HEAD_SEQ_SQL, honest.seq,
                                seals.specs(["persons"], honest)).result()
    assert scanned is not None
    forged = {name: seals.TableSeal(t.fingerprint, t.width, dict(t.groups))
              for name, t in honest.tables.items()}
    for group in scanned[0][2]:
        old = honest.tables["persons"].groups[group.bucket]
        forged["persons"].groups[group.bucket] = (group.digest, old[1], old[2])
    forgery = seals.Seals(honest.seq, honest.digest, forged)
    seal_file = seals.seal_path(path)
    honest_signature = seal_file.read_bytes().split(b"\n")[1]
    seals.save(path, forgery, SigningKey.generate())  # a key the registry does not know
    assert seals.load(path, keys) is None
    report = reg.quick_check()
    assert not report.ok and report.groups_read == report.groups
    assert [p.table for p in report.problems if p.kind == "projection"] == ["persons"]

    # the forgery under the registry's key id, with the signature of the honest seal
    signer = reg.signing_key
    assert signer is not None
    seal_file.write_bytes(seals._body(forgery, signer.key_id) + b"\n" + honest_signature
                          + b"\n")
    assert seals.load(path, keys) is None
    assert not reg.quick_check().ok


def test_a_seal_of_another_schema_is_not_used(grouped: Registry) -> None:
    reg = grouped
    assert reg.quick_check().ok
    exec_sql(reg, "ALTER TABLE stays ADD COLUMN note TEXT")  # the same bytes, other rows
    report = reg.quick_check()
    assert report.ok, report.problems
    stays = seals.load(database(reg), reg.public_keys())
    assert stays is not None and report.groups_read >= len(stays.tables["stays"].groups)


def test_pages_in_the_write_ahead_log_make_the_check_read_rows(
        grouped: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """While another connection keeps the log from being emptied, the file does not hold
    every page: the quick check reads the rows, and still finds a direct edit."""
    reg = grouped
    assert reg.quick_check().ok
    monkeypatch.setattr(page_groups, "SETTLE_TIMEOUT_MS", 50)
    path = database(reg)
    exec_sql(reg, "UPDATE persons SET occupation = 'trong nhật ký' WHERE rowid = 3")
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM persons").fetchone()  # holds the log's frames
        report = reg.quick_check()
    finally:
        reader.close()
    assert report.groups == 0  # every row read
    assert not report.ok
    assert [p.table for p in report.problems if p.kind == "projection"] == ["persons"]


def _headed_file(path: str) -> sqlite3.Connection:
    """A new SQLite file in WAL mode with a journal head at entry 9 and an empty table
    ``t (key, v)``; the connection that made it, in autocommit."""
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE journal_head (id INTEGER PRIMARY KEY, seq INTEGER)")
    setup.execute("INSERT INTO journal_head VALUES (1, 9)")
    setup.execute("CREATE TABLE t (key TEXT, v TEXT)")
    return setup


def test_a_group_s_hash_covers_the_overflow_pages_of_its_rows(tmp_path: Path) -> None:
    """A value longer than a page continues on overflow pages; SQLite overwrites a value of
    the same length in place, leaving the leaf page as it was: the group still changes.
    (Run here, in a process with no other connection to this file.)"""
    path = str(tmp_path / "t.db")
    setup = _headed_file(path)
    for i in range(40):
        setup.execute("INSERT INTO t VALUES (?, ?)", (f"k{i}", "x" * (9000 if i % 5 == 0 else 50)))
    setup.close()
    sql = "SELECT rowid, key, CAST(json_object('v', v) AS BLOB) FROM t"
    spec: Any = ("t", sql, b"t", None)
    assert page_groups.settle_wal(path)
    first = page_groups.scan_groups(path, HEAD_SEQ_SQL, 9, [spec], group_rows=8)
    assert first is not None
    _fp, _width, groups = first[0]
    reading = sqlite3.connect(path)
    rows = reading.execute(sql).fetchall()
    reading.close()  # scan_groups closes its own descriptor of the file: see group_snapshot
    assert sum(g.rows for g in groups) == 40
    total = LtHash.empty()
    for g in groups:
        total.combine(LtHash.from_bytes(g.state))
    assert total == LtHash.from_bytes(sum_rows([r[1] for r in rows], [r[2] for r in rows],
                                               b"t"))
    edit = sqlite3.connect(path, isolation_level=None)
    edit.execute("UPDATE t SET v = substr(v, 1, 8000) || 'y' || substr(v, 8002) "
                 "WHERE key = 'k10'")
    edit.close()
    assert page_groups.settle_wal(path)
    sealed = {g.bucket: (g.digest, g.rows, g.state) for g in groups}
    again = page_groups.scan_groups(path, HEAD_SEQ_SQL, 9, [("t", sql, b"t", (
        _fp, _width, sealed))], group_rows=8)
    assert again is not None
    changed = [g for g in again[0][2] if g.read]
    assert len(changed) == 1 and changed[0].state != sealed[changed[0].bucket][2]
    # another head in the snapshot: refused
    assert page_groups.scan_groups(path, HEAD_SEQ_SQL, 8, [spec]) is None


@pytest.mark.parametrize("page_size", [512, 4096, 65536])
def test_the_walk_lists_the_pages_dbstat_lists(tmp_path: Path, page_size: int) -> None:
    """The leaf and overflow pages of each table, walked from its root, are the ones, in
    the order, that SQLite's dbstat lists: payloads of every size around the most a page
    keeps (one, several and many overflow pages), b-trees of one to three levels."""
    path = str(tmp_path / "w.db")
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute(f"PRAGMA page_size={page_size}")
    setup.execute("CREATE TABLE empty (v BLOB)")
    setup.execute("CREATE TABLE one (v BLOB)")
    setup.execute("INSERT INTO one VALUES (x'00')")
    setup.execute("CREATE TABLE t (v BLOB)")
    # a payload (the value and a record header of 3 or 4 bytes) of more than the page's
    # size less 35 spills
    sizes = [*range(1, 200, 13), *range(page_size - 45, page_size - 30),
             *range(page_size, page_size + 400, 37), 3 * page_size, 20 * page_size + 17,
             *([60] * (40 * page_size // 60))]
    setup.execute("BEGIN")
    setup.executemany("INSERT INTO t VALUES (?)", [(bytes(n),) for n in sizes])
    setup.execute("DELETE FROM t WHERE rowid % 7 = 3")  # freeblocks, rowid gaps
    setup.execute("COMMIT")
    setup.close()
    reading = sqlite3.connect(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        for table in ("empty", "one", "t"):
            listed = [(n, kind == "leaf") for n, kind in reading.execute(
                "SELECT pageno, pagetype FROM dbstat WHERE name = ?", (table,))
                if kind != "internal"]
            walked = [(n, leaf) for n, leaf, _page in page_groups.table_pages(
                reading, fd, table)]
            assert walked == listed
        assert any(not leaf for _n, leaf in walked)
        interior = reading.execute("SELECT count(*) FROM dbstat WHERE name = 't' AND "
                                   "pagetype = 'internal'").fetchone()[0]
        assert interior > (1 if page_size == 512 else 0)  # three levels at 512 bytes
    finally:
        reading.close()
        os.close(fd)


def test_a_b_tree_pointing_outside_the_file_is_not_grouped(tmp_path: Path) -> None:
    """A child pointer past the end of the file (a damaged or crafted interior page): the
    pages cannot be grouped, and the caller reads the rows the usual way."""
    path = str(tmp_path / "bad.db")
    setup = _headed_file(path)
    setup.executemany("INSERT INTO t VALUES (?, ?)", [(f"k{i}", "v" * 200) for i in range(500)])
    root = setup.execute("SELECT rootpage FROM sqlite_master WHERE name = 't'").fetchone()[0]
    size = setup.execute("PRAGMA page_size").fetchone()[0]
    setup.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    setup.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * size)
        assert f.read(1) == b"\x05"  # an interior page
        f.seek((root - 1) * size + 8)
        f.write((2**31).to_bytes(4, "big"))  # its rightmost child
    spec: Any = ("t", "SELECT rowid, key, CAST(json_object('v', v) AS BLOB) FROM t", b"t",
                 None)
    assert page_groups.scan_groups(path, HEAD_SEQ_SQL, 9, [spec]) is None


def test_the_quick_check_reads_rows_where_it_cannot_sign(
        grouped: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the signing key (a verifier with public keys only) no seal is written."""
    reg = grouped
    monkeypatch.setattr(reg, "_signing_key", None)
    report = reg.quick_check()
    assert report.ok and report.groups_read == report.groups > 0
    assert not seals.seal_path(database(reg)).exists()


def test_a_seal_that_cannot_be_written_costs_nothing_but_the_shortcut(
        grouped: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A data directory this process may not write (or a full disk): the check passes, and
    the next one reads every group again."""
    def refuse(*_args: Any) -> None:
        raise PermissionError("read-only data directory")

    monkeypatch.setattr(seals, "save", refuse)
    report = grouped.quick_check()
    assert report.ok and report.groups_read == report.groups > 0
    assert grouped.quick_check().groups_read == report.groups
