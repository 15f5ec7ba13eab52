"""The journal is append-only and verifiable; the projection is checked against it."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cutru.errors import IntegrityFailure, JournalChainBroken, ProjectionMismatch
from cutru.recovery import integrity
from cutru.services.registry import Registry
from cutru.store import journal_store, projection, stored_bytes
from cutru.store.projection import storage_order_sql
from tests.helpers import BASIS, OFFICER, SAI_GON
from tests.test_transactions import seed_family


def exec_sql(reg: Registry, sql: str, **params: Any) -> None:
    with reg.db.engine.begin() as conn:
        conn.execute(text(sql), params)


def drop_guards(reg: Registry) -> None:
    """What an attacker with database access does first."""
    if reg.db.is_sqlite:
        for t in ("journal_no_update", "journal_no_delete", "checkpoints_no_update",
                  "checkpoints_no_delete"):
            exec_sql(reg, f"DROP TRIGGER {t}")
    else:
        exec_sql(reg, "DROP TRIGGER journal_no_change ON journal")
        exec_sql(reg, "DROP TRIGGER checkpoints_no_change ON checkpoints")


@pytest.mark.parametrize("sql", ["UPDATE journal SET actor = 'x' WHERE seq = 1",
                                 "DELETE FROM journal WHERE seq = 1",
                                 "DELETE FROM checkpoints"])
def test_database_refuses_journal_update_and_delete(registry: Registry, sql: str) -> None:
    seed_family(registry)
    registry.checkpoint()
    with pytest.raises(DBAPIError, match="append-only"):
        exec_sql(registry, sql)


@pytest.mark.parametrize("quick", [False, True])
def test_verify_with_a_helper_beside_finds_what_it_finds_alone(
        sqlite_registry: Registry, monkeypatch: pytest.MonkeyPatch, quick: bool) -> None:
    """On a SQLite file large enough (here: whatever its size), verification starts a
    helper before its read transaction and has it sum some tables beside it while the chain
    is checked: a clean registry passes, and a direct edit in one of those tables (or in one
    read here) is found and pinpointed as without it. (The quick check sums by page groups
    where it can: tests/recovery/test_seals.py; here it cannot.)"""
    registry = sqlite_registry
    k = seed_family(registry)
    monkeypatch.setattr(projection, "HELPER_MIN_ROWS", 0)
    monkeypatch.setattr(integrity, "_groups_ready", lambda *_args: None)
    asides: list[Any] = []
    real = projection.helper_beside

    @contextmanager
    def spy(db: Any) -> Any:
        with real(db) as aside:
            asides.append(aside)
            yield aside

    monkeypatch.setattr(integrity, "helper_beside", spy)

    def check() -> integrity.Report:
        return registry.quick_check() if quick else registry.verify()

    report = check()
    assert report.ok, report.problems
    assert asides[-1] is not None and asides[-1].future.result() is not None, "summed there"
    for table, sql in (("persons", "UPDATE persons SET full_name = 'Kẻ Giả' WHERE key = :k"),
                       ("residences", "DELETE FROM residences WHERE person_key = :k")):
        exec_sql(registry, sql, k=k["child"])
        report = check()
        assert asides[-1] is not None and asides[-1].future.result() is not None
        assert not report.ok and any(p.kind == "projection" and p.table == table
                                     for p in report.problems), report.problems


def test_a_restored_database_is_checked_with_a_helper_beside(
        sqlite_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before a restored database is swapped in, its head is checked against its tables
    in a transaction that only reads: a helper sums some of them beside it."""
    from cutru.services import restore as rs

    registry = sqlite_registry
    seed_family(registry)
    monkeypatch.setattr(projection, "HELPER_MIN_ROWS", 0)
    futures: list[Any] = []
    real = projection._beside
    monkeypatch.setattr(projection, "_beside", lambda *args: (
        found := real(*args), futures.append(found and found.future))[0])
    seq, _hash, digest = rs.check_restored(registry.db)
    assert seq == registry.journal_length()
    with registry.db.read() as conn:
        assert digest == journal_store.read_head(conn).state.digest()
    assert futures and futures[0] is not None and futures[0].result() is not None
    exec_sql(registry, "UPDATE households SET street = 'x' WHERE 1 = 1")
    with pytest.raises(ProjectionMismatch):
        rs.check_restored(registry.db)


def test_verify_passes_on_a_clean_registry(registry: Registry) -> None:
    seed_family(registry)
    report = registry.verify()
    assert report.ok, report.problems
    assert report.entries == registry.journal_length() and report.rows > 0


@pytest.mark.parametrize("change", ["updated", "inserted", "deleted"])
def test_direct_sql_on_the_projection_is_pinpointed(registry: Registry, change: str) -> None:
    k = seed_family(registry)
    if change == "updated":
        exec_sql(registry, "UPDATE persons SET full_name = 'Kẻ Giả' WHERE key = :k",
                 k=k["child"])
    elif change == "inserted":
        exec_sql(registry, "INSERT INTO absences (key, person_key, category, start_date, "
                 "end_date, destination, reason) VALUES ('Afake', :k, 'other', '2026-01-01', "
                 "'2027-01-01', 'x', 'y')", k=k["child"])
    else:
        exec_sql(registry, "DELETE FROM residences WHERE person_key = :k", k=k["mother"])
    report = registry.verify()
    assert not report.ok
    rows = [p for p in report.problems if p.kind == "projection"]
    assert rows and all(p.change == change for p in rows)
    if change == "updated":
        assert rows[0].table == "persons" and rows[0].key == k["child"]
        assert "full_name" in rows[0].message and rows[0].since_seq == 1
    # rebuild from the journal restores the recorded state
    registry.rebuild()
    assert registry.verify().ok


def test_edited_journal_entry_is_detected(registry: Registry) -> None:
    k = seed_family(registry)
    registry.adjust_information(OFFICER, BASIS, k["child"], {"occupation": "thợ mộc"})
    drop_guards(registry)
    exec_sql(registry, "UPDATE journal SET actor = 'someone-else' WHERE seq = 1")
    report = registry.verify()
    assert any(p.kind == "chain" and p.seq == 1 for p in report.problems)


@pytest.mark.parametrize("changes", ["[1]", "not json", '[{"table": 5, "key": "k", '
                                     '"before": null, "after": null}]'])
def test_journal_content_that_is_no_entry_is_reported_not_a_crash(registry: Registry,
                                                                    changes: str) -> None:
    k = seed_family(registry)
    registry.adjust_information(OFFICER, BASIS, k["child"], {"occupation": "thợ mộc"})
    last = registry.journal_length()
    drop_guards(registry)
    exec_sql(registry, "UPDATE journal SET changes = :c WHERE seq = :s", c=changes, s=last)
    exec_sql(registry, "UPDATE persons SET full_name = 'Kẻ Giả' WHERE key = :k", k=k["mother"])
    report = registry.verify()
    assert any(p.kind == "chain" and p.seq == last and "altered" in p.message
               for p in report.problems)
    assert any(p.kind == "projection" and p.key == k["mother"] for p in report.problems)
    assert not registry.quick_check().ok
    with registry.db.read() as conn, pytest.raises(JournalChainBroken) as raised:
        journal_store.get_entry(conn, last)
    assert raised.value.details["seq"] == last


@pytest.mark.parametrize("column", ["changes", "actor", "subjects"])
def test_journal_text_that_is_not_utf8_is_reported_not_a_crash(registry: Registry,
                                                               column: str) -> None:
    """Bytes that are not UTF-8 stored by direct SQL into a journal column (SQLite takes
    any): verify reports the entry as altered, where the driver's decoding error used to
    end it as "database unavailable"; the quick check fails."""
    if not registry.db.is_sqlite:
        pytest.skip("PostgreSQL refuses text that is not UTF-8")
    k = seed_family(registry)
    registry.adjust_information(OFFICER, BASIS, k["child"], {"occupation": "thợ mộc"})
    last = registry.journal_length()
    drop_guards(registry)
    exec_sql(registry, f"UPDATE journal SET {column} = CAST(X'5b22ff225d' AS TEXT) "
             "WHERE seq = :s", s=last)
    report = registry.verify()
    assert any(p.kind == "chain" and p.seq == last and "altered" in p.message
               for p in report.problems), report.problems
    assert not registry.quick_check().ok


def test_deleted_and_reordered_entries_are_detected(registry: Registry) -> None:
    k = seed_family(registry)
    for occ in ("a", "b", "c"):
        registry.adjust_information(OFFICER, BASIS, k["child"], {"occupation": occ})
    drop_guards(registry)
    exec_sql(registry, "DELETE FROM journal WHERE seq = 2")
    report = registry.verify()
    assert any("missing" in p.message for p in report.problems)


def test_truncation_to_a_valid_prefix_is_detected(registry: Registry) -> None:
    """Cutting the journal back (and the checkpoints table and head with it) leaves a valid
    chain; the signed checkpoint kept outside the database gives it away."""
    k = seed_family(registry)
    for i in range(6):  # interval 5 in tests: a checkpoint is signed on the way
        registry.adjust_information(OFFICER, BASIS, k["child"], {"occupation": f"nghề {i}"})
    registry.checkpoint()
    drop_guards(registry)
    exec_sql(registry, "DELETE FROM journal WHERE seq > 2")
    exec_sql(registry, "DELETE FROM journal_subjects WHERE seq > 2")
    exec_sql(registry, "DELETE FROM checkpoints")
    report = registry.verify()
    assert any(p.kind == "truncation" for p in report.problems), report.problems


def test_forged_checkpoint_signature_is_detected(registry: Registry) -> None:
    seed_family(registry)
    registry.checkpoint()
    drop_guards(registry)
    exec_sql(registry, "UPDATE checkpoints SET signature = :s", s="00" * 64)
    report = registry.verify()
    assert any(p.kind == "checkpoint" for p in report.problems)


def test_rebuild_gives_the_recorded_digest(registry: Registry) -> None:
    k = seed_family(registry)
    registry.register_temporary(OFFICER, BASIS, k["child"], commune_code=SAI_GON,
                                street="3 Lê Lợi", start="2026-11-01", term_end="2027-11-01")
    before = registry.verify().digest
    assert registry.rebuild() == before
    assert registry.verify().ok


@pytest.mark.parametrize("damage", [
    "UPDATE journal SET actor = 'someone-else' WHERE seq = 1",  # altered: hash mismatch
    "DELETE FROM journal WHERE seq = 1",  # a gap at the start: later entries do not link
])
def test_rebuild_refuses_a_damaged_journal_and_changes_nothing(registry: Registry,
                                                               damage: str) -> None:
    from cutru.errors import JournalChainBroken
    from cutru.store.projection import projection_state

    k = seed_family(registry)
    registry.adjust_information(OFFICER, BASIS, k["child"], {"occupation": "bác sĩ"})
    with registry.db.read() as conn:
        before = projection_state(conn)
    drop_guards(registry)
    exec_sql(registry, damage)
    with pytest.raises(JournalChainBroken):
        registry.rebuild()
    with registry.db.read() as conn:
        assert projection_state(conn) == before  # the emptied tables were rolled back


def test_as_of_shows_the_past(registry: Registry, clock: Any) -> None:
    k = seed_family(registry)
    clock.advance(days=1)
    registry.adjust_information(OFFICER, BASIS, k["child"], {"occupation": "bác sĩ"})
    clock.advance(days=1)
    registry.adjust_information(OFFICER, BASIS, k["child"], {"occupation": "giáo viên"})
    from datetime import timedelta

    from cutru.journal.entry import format_ts
    then = format_ts(clock.now - timedelta(hours=12))
    assert registry.person(k["child"], as_of=then)["person"]["occupation"] == "bác sĩ"
    assert registry.person(k["child"])["person"]["occupation"] == "giáo viên"
    early = format_ts(clock.now - timedelta(days=5))
    with pytest.raises(Exception, match="not found"):
        registry.person(k["child"], as_of=early)
    hist = registry.history(k["child"])
    assert [h["operation"] for h in hist] == ["household.register", "person.adjust",
                                              "person.adjust"]
    assert hist[1]["changes"][0]["fields"] == ["occupation"]


def test_assembled_entry_encoding_equals_canonical_encoding(registry: Registry) -> None:
    """The journal writer assembles entry bytes from per-row encodings; they must be exactly
    the canonical encoding of the entry body (docs/design.md)."""
    import hashlib

    from cutru.journal import canonical
    from cutru.journal.entry import ENTRY_PREFIX, encode_body, encode_changes
    from cutru.store import journal_store

    k = seed_family(registry)
    registry.adjust_information(OFFICER, BASIS, k["child"], {"occupation": "ngư dân \"\\\n"})
    with registry.db.read() as conn:
        for e in journal_store.iter_entries(conn):
            body = canonical.encode(e.body())
            assert body == encode_body(seq=e.seq, ts=e.ts, actor=e.actor, purpose=e.purpose,
                                       operation=e.operation, subjects=e.subjects,
                                       changes_bytes=encode_changes(e.changes),
                                       digest=e.digest, prev=e.prev)
            assert hashlib.sha256(ENTRY_PREFIX + body).hexdigest() == e.hash


def test_rewritten_tail_after_last_stored_checkpoint_is_detected(registry: Registry) -> None:
    """An attacker who recomputes valid hashes for the newest entries is caught by the head
    signed outside the database after every commit."""
    import hashlib

    from cutru.journal import canonical
    from cutru.journal.entry import ENTRY_PREFIX
    from cutru.store import journal_store

    k = seed_family(registry)
    registry.adjust_information(OFFICER, BASIS, k["child"], {"occupation": "nông dân"})
    with registry.db.read() as conn:
        last = journal_store.get_entry(conn, registry.journal_length())
    assert last is not None
    body = {**last.body(), "actor": "ghost"}
    forged = hashlib.sha256(ENTRY_PREFIX + canonical.encode(body)).hexdigest()
    drop_guards(registry)
    exec_sql(registry, "UPDATE journal SET actor = 'ghost', hash = :h WHERE seq = :s",
             h=forged, s=last.seq)
    exec_sql(registry, "UPDATE journal_head SET hash = :h", h=forged)
    report = registry.verify()
    assert [p.kind for p in report.problems] == ["checkpoint"], report.problems
    assert report.problems[0].seq == last.seq


def test_concurrent_writers_keep_a_gapless_valid_chain(registry: Registry) -> None:
    """Officers writing at once: every entry gets its own seq, the chain and digest hold."""
    from concurrent.futures import ThreadPoolExecutor

    k = seed_family(registry)

    def work(i: int) -> None:
        who = k["child"] if i % 2 else k["mother"]
        registry.adjust_information(f"officer-{i}", BASIS, who, {"occupation": f"nghề {i}"})

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(24)))
    report = registry.verify()
    assert report.ok, report.problems
    assert report.entries == registry.journal_length() == 1 + 24


def test_reencoded_journal_text_counts_as_altered(registry: Registry) -> None:
    """The same value stored in another encoding (spaces, key order) is an alteration."""
    seed_family(registry)
    drop_guards(registry)
    exec_sql(registry, "UPDATE journal SET changes = replace(changes, '\"after\":', "
             "'\"after\": ') WHERE seq = 1")
    report = registry.verify()
    assert any(p.kind == "chain" and p.seq == 1 for p in report.problems)


@pytest.mark.parametrize("beside", [False, True], ids=["here", "helper"])
@pytest.mark.parametrize("column", ["occupation", "key"])
def test_text_that_is_not_utf8_fails_the_check_and_is_pinpointed(
        registry: Registry, column: str, beside: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes that are not UTF-8 stored as text by direct SQL into SQLite, in a value or in
    a key: the quick check fails (it used to crash on the driver's decoding error), and
    verify names the row, whether persons are compared here or by the helper process."""
    if not registry.db.is_sqlite:
        pytest.skip("PostgreSQL refuses text that is not UTF-8")
    monkeypatch.setattr(integrity, "BESIDE_MIN_ENTRIES", 0 if beside else 10**9)
    k = seed_family(registry)
    assert registry.quick_check().ok
    exec_sql(registry, f"UPDATE persons SET {column} = CAST(X'4e67ff' AS TEXT) WHERE key = :k",
             k=k["child"])
    assert not registry.quick_check().ok
    report = registry.verify()
    assert not report.ok
    rows = [(p.table, p.change) for p in report.problems if p.kind == "projection"]
    if column == "key":
        assert ("persons", "deleted") in rows and any(c != "deleted" for _t, c in rows)
    else:
        assert [(p.table, p.key, p.change) for p in report.problems
                if p.kind == "projection"] == [("persons", k["child"], "updated")]
        # reading the record says what is wrong, not "database unavailable"
        with pytest.raises(IntegrityFailure) as raised:
            registry.person(k["child"])
        assert raised.value.details["rule"] == "db.not_utf8"
        assert "occupation" in raised.value.message and "cutru verify" in raised.value.message


@pytest.mark.parametrize("beside", [False, True], ids=["here", "helper"])
@pytest.mark.parametrize(("value", "column"), [("'hai nghìn'", "birth_year"),
                                               ("birth_year + 0.5", "birth_year"),
                                               ("CAST(full_name AS BLOB)", "full_name")])
def test_values_without_a_canonical_encoding_are_pinpointed(
        registry: Registry, value: str, column: str, beside: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Text in an integer column, a REAL or a BLOB written by direct SQL into SQLite (whose
    columns take any type; the last two have no canonical encoding): verify reports the row,
    naming the column, rather than failing, whether persons are compared here or by the
    helper process (whose query refuses the last two: this process compares them then)."""
    if not registry.db.is_sqlite:
        pytest.skip("PostgreSQL's column types refuse such values")
    monkeypatch.setattr(integrity, "BESIDE_MIN_ENTRIES", 0 if beside else 10**9)
    k = seed_family(registry)
    exec_sql(registry, f"UPDATE persons SET {column} = {value} WHERE key = :k", k=k["child"])
    report = registry.verify()
    rows = [p for p in report.problems if p.kind == "projection"]
    assert [(p.table, p.key, p.change) for p in rows] == [("persons", k["child"], "updated")]
    assert column in rows[0].message


def test_pinpointing_compares_the_live_rows_with_the_journal_of_the_same_moment(
        registry: Registry) -> None:
    """On SQLite the journal is read on a second connection while the live rows are read in
    the caller's snapshot: an entry committed after that snapshot began (a row the snapshot
    does not show yet) is no finding, and a direct edit seen by the snapshot still is."""
    k = seed_family(registry)
    exec_sql(registry, "UPDATE persons SET full_name = 'Kẻ Giả' WHERE key = :k", k=k["child"])
    with registry.db.read() as conn:
        conn.execute(text("SELECT count(*) FROM persons")).scalar_one()  # the snapshot begins
        registry.adjust_information(OFFICER, BASIS, k["mother"], {"occupation": "thợ may"})
        found = integrity.pinpoint(conn)
    assert [(p.table, p.key, p.change) for p in found] == [("persons", k["child"], "updated")]
    assert found[0].since_seq == 1
    with registry.db.read() as conn:  # after the commit: the same single finding
        assert [(p.table, p.key) for p in integrity.pinpoint(conn)] == [
            ("persons", k["child"])]


def test_last_images_stop_where_they_are_asked_to(sqlite_registry: Registry) -> None:
    """(last_images reads SQLite's stored bytes; PostgreSQL's journal is decoded.)"""
    registry = sqlite_registry
    k = seed_family(registry)
    registry.adjust_information(OFFICER, BASIS, k["mother"], {"occupation": "thợ may"})
    with registry.db.read() as conn:
        stop = registry.journal_length() - 1
        last = journal_store.last_images(conn, stop=stop)
        _rows, written = integrity.replay_state(conn, stop)
    assert last is not None
    assert {(t, key): seq for t, by_key in last.items() for key, (seq, _) in by_key.items()} \
        == written
    assert max(written.values()) == stop



@pytest.mark.parametrize("beside", [True, False])
def test_pinpointing_reads_the_images_again_where_hashes_cannot_say(
        sqlite_registry: Registry, monkeypatch: pytest.MonkeyPatch, beside: bool) -> None:
    """The rows whose hashes differ have their images read again from the entries that
    wrote them; where those cannot be read so, the table is compared value by value from
    the whole journal, and the findings are the same."""
    registry = sqlite_registry
    monkeypatch.setattr(integrity, "BESIDE_MIN_ENTRIES", 0 if beside else 10**9)
    k = seed_family(registry)
    exec_sql(registry, "UPDATE persons SET full_name = 'Kẻ Giả' WHERE key = :k", k=k["child"])
    exec_sql(registry, "DELETE FROM residences WHERE person_key = :k", k=k["mother"])
    asked: list[tuple[str, set[str]]] = []
    changes_at = stored_bytes.changes_at

    def spy(raw: Any, table: str, written: dict[str, int], stop: int) -> dict[str, bytes]:
        asked.append((table, set(written)))
        return changes_at(raw, table, written, stop)

    monkeypatch.setattr(stored_bytes, "changes_at", spy)
    with registry.db.read() as conn:
        found = [(p.table, p.key, p.change, p.since_seq, p.message)
                 for p in integrity.pinpoint(conn)]
    assert [f[:3] for f in found] == [("persons", k["child"], "updated"),
                                      ("residences", found[1][1], "deleted")]
    assert "full_name" in found[0][4] and all(f[3] is not None for f in found)
    # only the two rows that differ had their images read again (here: the helper's are
    # read in its own process)
    assert sorted(asked) == ([("residences", {found[1][1]})] if beside else
                             [("persons", {k["child"]}), ("residences", {found[1][1]})])

    def refuse(*_args: Any) -> dict[str, bytes]:
        raise ValueError("entry does not hold the last change")

    monkeypatch.setattr(stored_bytes, "changes_at", refuse)
    monkeypatch.setattr(integrity, "BESIDE_MIN_ENTRIES", 10**9)  # the helper has its own
    with registry.db.read() as conn:
        assert [(p.table, p.key, p.change, p.since_seq, p.message)
                for p in integrity.pinpoint(conn)] == found


def test_rows_of_a_table_the_schema_no_longer_has_are_found_with_their_images(
        sqlite_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows the journal holds of a table the projection does not have are reported missing,
    each with the image the journal last wrote of it."""
    registry = sqlite_registry
    k = seed_family(registry)
    monkeypatch.setattr(integrity, "PROJECTION",
                        tuple(t for t in integrity.PROJECTION if t.name != "households"))
    with registry.db.read() as conn:
        differs = integrity._compare(conn, registry.journal_length())
        held = conn.execute(text("SELECT key, head_key FROM households")).all()
    assert differs is not None and held
    assert {(d.table, d.key, d.row, d.image["head_key"] if d.image else None)
            for d in differs} == {("households", key, None, head) for key, head in held}
    assert k["child"] not in {d.key for d in differs}

@pytest.mark.parametrize("beside", [True, False])
def test_pinpointing_shared_with_a_helper_process_finds_the_same(
        sqlite_registry: Registry, monkeypatch: pytest.MonkeyPatch, beside: bool) -> None:
    """With the helper process comparing persons and ID numbers (a long journal; here the
    threshold is lowered) and without it, the same findings: an edit in each half, a row
    inserted and one deleted. (The helper compares stored bytes: SQLite only.)"""
    registry = sqlite_registry
    monkeypatch.setattr(integrity, "BESIDE_MIN_ENTRIES", 0 if beside else 10**9)
    k = seed_family(registry)
    exec_sql(registry, "UPDATE persons SET full_name = 'Kẻ Giả' WHERE key = :k", k=k["child"])
    exec_sql(registry, "UPDATE residences SET street = 'x' WHERE person_key = :k",
             k=k["mother"])
    exec_sql(registry, "DELETE FROM id_numbers WHERE person_key = :k", k=k["father"])
    exec_sql(registry, "INSERT INTO absences (key, person_key, category, start_date, "
             "end_date, destination, reason) VALUES ('Afake', :k, 'other', '2026-01-01', "
             "'2027-01-01', 'x', 'y')", k=k["child"])
    compared_here: list[object] = []
    compare = integrity._compare

    def spy(*args: Any, **kwargs: Any) -> Any:
        compared_here.append(kwargs.get("only"))
        return compare(*args, **kwargs)

    monkeypatch.setattr(integrity, "_compare", spy)
    with registry.db.read() as conn:
        found = [(p.table, p.change, p.since_seq is not None)
                 for p in integrity.pinpoint(conn)]
    assert found == [("persons", "updated", True), ("residences", "updated", True),
                     ("absences", "inserted", False), ("id_numbers", "deleted", True)]
    # with the helper, persons and ID numbers were compared there, not again here
    assert compared_here == [None]


def test_the_helper_gives_way_when_its_snapshot_holds_another_head(
        sqlite_registry: Registry) -> None:
    registry = sqlite_registry
    seed_family(registry)
    path = str(registry.db.engine.url.database)
    length = registry.journal_length()
    tables = [(name, storage_order_sql(name)) for name in integrity.BESIDE]

    def compare(head: int) -> object:
        return stored_bytes.compare_stored(path, integrity.HEAD_SEQ_SQL, head, length,
                                           tables, 2)

    assert compare(length) == {"persons": [], "id_numbers": []}
    assert compare(length - 1) is None


def test_the_helper_s_comparison_starts_without_sqlalchemy() -> None:
    """The point of cutru.store.stored_bytes: the helper process imports neither SQLAlchemy
    nor the schema, which took it a fifth of a pinpoint of 100,000 persons."""
    code = ("import sys, cutru.store.stored_bytes; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy' "
            "or m.startswith('cutru.store.') and m != 'cutru.store.stored_bytes'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
