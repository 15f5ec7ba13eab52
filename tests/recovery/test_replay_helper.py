"""Point-in-time replay with segments decoded in a helper process: the same rows, journal
and digest as replaying here, whatever the history (inserts, updates, deletes, rows deleted
and made again); a helper that dies mid-replay costs time, not the restore; errors cross
from the helper as themselves."""

from __future__ import annotations

import pickle
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cutru.backup import Repository
from cutru.backup import restore as restore_mod
from cutru.backup.archive import list_segments, read_segment, segment_name
from cutru.backup.restore import decode_for_replay, restore_snapshot
from cutru.backup.snapshot import list_snapshots
from cutru.errors import ImportLineError, InputError, RepositoryDamaged
from cutru.journal import canonical
from cutru.journal.helper import Helper, helper_process
from cutru.recovery import integrity
from cutru.recovery.integrity import replay_state
from cutru.services.registry import Registry
from cutru.store import journal_store, stored_bytes
from cutru.store.engine import Database
from cutru.store.rows import NetChanges
from tests.backup.test_snapshot import journal_of, tables
from tests.recovery.test_properties import build
from tests.test_integrity import drop_guards, exec_sql
from tests.test_properties import COMMUNES, RELS

KINDS = ["found", "found", "join", "temporary", "extend", "untemp", "head", "separate",
         "death", "adjust", "adjust"]


def history(n: int, seed: int) -> list[tuple[Any, ...]]:
    """``n`` operations of the property tests' kinds, drawn from ``random.Random(seed)``:
    people found households, join, separate (household rows deleted), die, and are
    adjusted, so that a replay inserts, updates and deletes rows."""
    rng = random.Random(seed)
    steps: list[tuple[Any, ...]] = []
    for i in range(n):
        kind = "found" if i < 4 else rng.choice(KINDS)
        a, b = rng.randrange(31), rng.randrange(31)
        steps.append({
            "found": ("found", rng.randrange(1940, 2021), rng.choice(COMMUNES)),
            "join": ("join", a, b, rng.choice(RELS)),
            "temporary": ("temporary", a, rng.choice(COMMUNES), rng.randrange(30, 901)),
            "extend": ("extend", a, rng.randrange(1, 801)),
            "untemp": ("untemp", a),
            "head": ("head", a, b),
            "separate": ("separate", a, b),
            "death": ("death", a, b),
            "adjust": ("adjust", a, f"nghề {i}"),
        }[kind])
    return steps


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Repository]]:
    """A history archived a few entries at a time: a snapshot, then many small segments."""
    tmp = tmp_path_factory.mktemp("replay")
    reg, _clock, repo = build(tmp, history(70, seed=7), archive_every=3)
    assert repo is not None
    try:
        yield reg, repo
    finally:
        reg.close()


@contextmanager
def counting_helper(calls: list[str], *, kill_at: int | None = None
                    ) -> Iterator[Helper | None]:
    """:func:`helper_process`, counting the segments sent to it; with ``kill_at``, the
    helper is killed when that many have been sent."""
    with helper_process() as helper:
        assert helper is not None, "these tests need two CPUs"
        submit = helper.submit

        def counted(fn: Any, *args: Any) -> Any:
            if fn is decode_for_replay:
                calls.append(args[0])
                if kill_at is not None and len(calls) == kill_at:
                    helper._proc.kill()
                    helper._proc.wait()
                    # until its reader has seen the end, a submit can still pass and fail
                    # later: wait for it, so that what is sent after the death is counted
                    # the same on every run (this call raises HelperFailed)
                    helper._reader.join(timeout=60)
            return submit(fn, *args)

        helper.submit = counted  # type: ignore[method-assign]
        yield helper


def restore_to(repo: Repository, reg: Registry, p: int, db: Database) -> Any:
    public = reg.public_keys()
    with repo.lock():
        snap = min(list_snapshots(repo, public), key=lambda s: s.position.seq)
        return snap, restore_snapshot(repo, snap.name, db, public_keys=public, upto=p)


def expected_at(reg: Registry, p: int) -> tuple[dict[Any, Any], str]:
    with reg.db.read() as conn:
        rows, _ = replay_state(conn, stop=p)
        entry = journal_store.get_entry(conn, p)
    assert entry is not None
    return rows, entry.digest


def assert_whole_restore(repo: Repository, reg: Registry, path: Path) -> None:
    """Restore to the newest entry into ``path``: the rows and digest of the live registry."""
    head = reg.journal_length()
    db = Database(f"sqlite:///{path}")
    try:
        _snap, result = restore_to(repo, reg, head, db)
        rows, digest = expected_at(reg, head)
        assert result.digest == digest and tables(db) == rows
    finally:
        db.dispose()


def test_a_replay_decoded_in_the_helper_gives_the_rows_of_that_position(
        archived: tuple[Registry, Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reg, repo = archived
    monkeypatch.setattr(restore_mod, "HELPER_MIN_ENTRIES", 1)
    head = reg.journal_length()
    calls: list[str] = []
    monkeypatch.setattr(restore_mod, "helper_process", lambda: counting_helper(calls))
    for p in (head, head - 7):
        db = Database(f"sqlite:///{tmp_path / f'at-{p}.db'}")
        try:
            snap, result = restore_to(repo, reg, p, db)
            rows, digest = expected_at(reg, p)
            assert result.position.seq == p and result.digest == digest
            assert tables(db) == rows
            with db.read() as conn:
                assert [e.seq for e in journal_store.iter_entries(conn)] == list(range(1, p + 1))
        finally:
            db.dispose()
        assert p - snap.position.seq > 20 and len(result.segments) > 5
    with reg.db.read() as conn:
        replayed = [c for e in journal_store.iter_entries(conn, start=snap.position.seq + 1)
                    for c in e.changes]
    assert {(c.before is None, c.after is None) for c in replayed} == {
        (True, False), (False, False), (False, True)}, "inserts, updates and deletes"
    assert len(calls) >= 10, "the segments were decoded in the helper"
    # the whole journal, byte for byte, against the live one
    db = Database(f"sqlite:///{tmp_path / 'whole.db'}")
    try:
        restore_to(repo, reg, head, db)
        assert journal_of(db) == journal_of(reg.db)
        assert tables(db) == tables(reg.db)
    finally:
        db.dispose()


def test_a_helper_that_dies_mid_replay_costs_time_not_the_restore(
        archived: tuple[Registry, Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reg, repo = archived
    monkeypatch.setattr(restore_mod, "HELPER_MIN_ENTRIES", 1)
    calls: list[str] = []
    monkeypatch.setattr(restore_mod, "helper_process",
                        lambda: counting_helper(calls, kill_at=3))
    assert_whole_restore(repo, reg, tmp_path / 'killed.db')
    assert len(calls) == 3, "nothing more went to the dead helper"


def test_segments_are_decoded_ahead_within_the_lookahead(
        archived: tuple[Registry, Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reg, repo = archived
    monkeypatch.setattr(restore_mod, "HELPER_MIN_ENTRIES", 1)
    monkeypatch.setattr(restore_mod, "LOOKAHEAD", 3)
    calls: list[str] = []
    monkeypatch.setattr(restore_mod, "helper_process", lambda: counting_helper(calls))
    waiting: list[int] = []
    load = restore_mod._Loader.__call__

    def spied(self: Any, name: str) -> Any:
        segment = load(self, name)
        waiting.append(len(self.ahead))
        assert name not in self.ahead
        return segment

    monkeypatch.setattr(restore_mod._Loader, "__call__", spied)
    assert_whole_restore(repo, reg, tmp_path / 'ahead.db')
    assert len(waiting) > 5 and max(waiting) == 3, "three segments wait decoded, no more"
    assert waiting[-1] == 0 and len(calls) == len(set(calls)), "each segment decoded once"


def test_damage_found_in_the_helper_refuses_as_itself(
        archived: tuple[Registry, Repository]) -> None:
    reg, repo = archived
    name = segment_name(list_segments(repo)[-1])
    plain = read_segment(repo, name)
    cut = plain.rfind(b'"digest":"') + len(b'"digest":"')
    damaged = plain[:cut] + (b"0" if plain[cut:cut + 1] != b"0" else b"1") + plain[cut + 1:]
    with helper_process() as helper:
        assert helper is not None
        good = helper.submit(decode_for_replay, name, plain, reg.public_keys()).result()
        assert [e.seq for e in good] == [e.seq for e in decode_for_replay(
            name, plain, reg.public_keys())]
        with pytest.raises(RepositoryDamaged) as raised:
            helper.submit(decode_for_replay, name, damaged, reg.public_keys()).result()
    assert raised.value.details["object"] == f"journal/{name}"
    assert "does not hash to its recorded hash" in raised.value.message


def test_errors_pickle_as_themselves() -> None:
    for error in (InputError("bad", field="f", rule="r.x", extra=1),
                  ImportLineError("no", line=7, field="g", rule="r.y"),
                  RepositoryDamaged("gone", object="data/ab")):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
        assert back.to_dict() == error.to_dict() and back.__dict__ == error.__dict__


def test_net_changes_keep_one_step_per_row() -> None:
    net = NetChanges()
    row = ("k1", "a", "b")
    net.add(("t", "k1", False, row))           # inserted ...
    net.add(("t", "k1", True, {1: "A"}))        # ... then updated: still an insert
    net.add(("t", "k2", True, {2: "B"}))        # updated ...
    net.add(("t", "k2", True, {1: "C"}))        # ... twice: both columns
    net.add(("t", "k3", True, None))            # deleted ...
    net.add(("t", "k3", False, ("k3", "x", "y")))  # ... and made again: every column
    net.add(("t", "k4", False, ("k4", "x", "y")))  # inserted ...
    net.add(("t", "k4", True, None))            # ... and deleted: nothing at all
    assert net.rows == {
        ("t", "k1"): [False, ("k1", "A", "b")],
        ("t", "k2"): [True, {2: "B", 1: "C"}],
        ("t", "k3"): [True, ("k3", "x", "y")],
        ("t", "k4"): [False, None],
    }


def test_last_images_are_the_journal_replayed(archived: tuple[Registry, Repository]) -> None:
    reg, _repo = archived
    with reg.db.read() as conn:
        last = journal_store.last_images(conn)
        rows, written = replay_state(conn)
    assert last is not None
    flat = {(table, key): got for table, rows_of in last.items() for key, got in rows_of.items()}
    assert {k: seq for k, (seq, _image) in flat.items()} == written
    kept = {k: image for k, (_seq, image) in flat.items() if image is not None}
    assert kept.keys() == rows.keys() and len(written) > len(rows), "deleted rows: None"
    assert all(stored_bytes.after_image(change) == canonical.encode(rows[k])
               and stored_bytes.holds(change, canonical.encode(rows[k]))
               for k, change in kept.items()), "byte for byte the canonical encoding"



def test_last_hashes_are_the_last_images_hashed(archived: tuple[Registry, Repository]) -> None:
    """What pinpointing keeps of each row instead of its image: the same positions, and the
    hash of the after-image's bytes (None for a deletion); the image itself is read again,
    for the few rows that differ, from the entry that wrote it last."""
    reg, _repo = archived
    with reg.db.read() as conn:
        stop = journal_store.last_seq(conn)
        images = journal_store.last_images(conn)
        hashes = journal_store.last_hashes(conn, skip=("stays",))
        raw = journal_store.sqlite_raw(conn)
        assert images is not None and hashes is not None and raw is not None
        assert hashes == {
            table: {key: (seq, None if change is None
                          else hash(stored_bytes.after_image(change)))
                    for key, (seq, change) in rows_of.items()}
            for table, rows_of in images.items() if table != "stays"}
        held = {key: seq for key, (seq, change) in images["persons"].items()
                if change is not None}
        assert stored_bytes.changes_at(raw, "persons", held, stop) == {
            key: images["persons"][key][1] for key in held}
        key, seq = next(iter(held.items()))
        with pytest.raises(ValueError, match="does not hold the last change"):
            stored_bytes.changes_at(raw, "persons", {key: seq - 1}, stop)
        table, gone, at = next((t, k, s) for t, rows_of in images.items()
                               for k, (s, change) in rows_of.items() if change is None)
        with pytest.raises(ValueError):  # a deletion has no image to read again
            stored_bytes.changes_at(raw, table, {gone: at}, stop)

def test_last_images_shared_between_two_readers_are_the_whole(
        archived: tuple[Registry, Repository]) -> None:
    """``only`` and ``skip`` of the same tables split the images between two readers (the
    two processes of pinpointing) without losing or doubling any."""
    reg, _repo = archived
    with reg.db.read() as conn:
        whole = journal_store.last_images(conn)
        theirs = journal_store.last_images(conn, only=("persons", "id_numbers"))
        mine = journal_store.last_images(conn, skip=("persons", "id_numbers"))
    assert whole is not None and theirs is not None and mine is not None
    assert set(theirs) == {"persons", "id_numbers"} and not set(mine) & set(theirs)
    assert {**mine, **theirs} == whole
    assert len(whole["persons"]) > 10 and len(whole["residences"]) > 10


@pytest.mark.parametrize(("only", "skip", "none"), [
    (("persons",), (), True), (None, ("persons",), True), (None, (), False),
    (("residences",), (), False)])
def test_a_table_name_written_with_an_escape_is_not_as_stored(
        tmp_path: Path, only: tuple[str, ...] | None, skip: tuple[str, ...],
        none: bool) -> None:
    """A change naming its table with an escape (``"per\\u0073ons"``: the same name, not
    the stored form) cannot be found by how the table's changes end: a reader that keeps or
    drops that table gives way (None) rather than miss or keep the change; the others read
    it by parsing, as always."""
    reg, _clock, _repo = build(tmp_path, history(6, seed=2))
    try:
        drop_guards(reg)
        with reg.db.read() as conn:
            raw = journal_store.last_images(conn)
        assert raw is not None
        exec_sql(reg, "UPDATE journal SET changes = replace(changes, '\"table\":\"persons\"', "
                 "'\"table\":\"per\\u0073ons\"') WHERE seq = 1")
        with reg.db.read() as conn:
            got = journal_store.last_images(conn, only=only, skip=skip)
        if none:
            assert got is None
        else:
            assert got is not None and (only is None or set(got) <= set(only))
    finally:
        reg.close()


def cut(last: journal_store.LastImages) -> dict[str, dict[str, tuple[int, bytes | None]]]:
    """Each row's (seq, after-image bytes) of what last_images gives."""
    return {table: {key: (seq, None if change is None else stored_bytes.after_image(change))
                    for key, (seq, change) in rows.items()} for table, rows in last.items()}


@pytest.mark.parametrize(("only", "skip"), [(("persons",), ()), (None, ()),
                                           (None, ("residences",))])
def test_a_key_written_with_an_escape_is_read_as_its_value(
        tmp_path: Path, only: tuple[str, ...] | None, skip: tuple[str, ...]) -> None:
    """A change's key is cut out as it is written where it has no escape; one written with
    an escape (``"\\u0050..."``: the same key) is parsed, and gives the same images."""
    reg, _clock, _repo = build(tmp_path, history(6, seed=2))
    try:
        drop_guards(reg)
        with reg.db.read() as conn:
            before = journal_store.last_images(conn, only=only, skip=skip)
            written = [(e.seq, c.key) for e in journal_store.iter_entries(conn)
                       for c in e.changes if c.table == "persons"]
        assert before is not None and len(written) >= 2
        for seq, key in written:  # every change of persons names its key with an escape
            escaped = f"\\u{ord(key[0]):04x}{key[1:]}"
            exec_sql(reg, "UPDATE journal SET changes = replace(changes, :plain, :escaped) "
                     "WHERE seq = :seq", plain=f'"key":"{key}","table":"persons"',
                     escaped=f'"key":"{escaped}","table":"persons"', seq=seq)
        with reg.db.read() as conn:
            assert "\\u" in conn.exec_driver_sql(
                "SELECT changes FROM journal WHERE seq = ?", (written[-1][0],)).scalar_one()
            after = journal_store.last_images(conn, only=only, skip=skip)
        assert after is not None and cut(after) == cut(before)
    finally:
        reg.close()


def test_a_column_called_before_is_compared_by_its_bytes_or_parsed() -> None:
    """A row image with a column called ``before`` holds the marker that ends an
    after-image: the image the change begins with is still known by the live row's bytes,
    and cut out by parsing, not by the marker."""
    change = b'{"a":1,"before":2},"before":{"a":0,"before":1},"key":"k","table":"t"}'
    assert stored_bytes.holds(change, b'{"a":1,"before":2}')
    assert not stored_bytes.holds(change, b'{"a":1}')
    assert not stored_bytes.holds(None, b'{"a":1}')
    with pytest.raises(ValueError, match="cannot be cut out"):
        stored_bytes.after_image(change)
    assert integrity._image(change) == {"a": 1, "before": 2}
    assert stored_bytes.after_image(b'{"a":1},"before":null,"key":"k","table":"t"}') \
        == b'{"a":1}'
    raw = sqlite3.connect(":memory:")
    raw.execute("CREATE TABLE journal (seq INTEGER PRIMARY KEY, changes TEXT)")
    raw.executemany("INSERT INTO journal VALUES (?, ?)", [
        (4, '[{"after":' + change.decode() + "]"),
        (5, '[{"after":{"a":3},"before":null,"key":"m","table":"t"}]')])
    last = stored_bytes.last_hashes(raw)
    assert last is not None
    hashes = last["t"]
    assert hashes["m"] == (5, hash(b'{"a":3}'))
    assert hashes["k"][1] == hash(b'{"a":1'), "bytes that end inside the image: never a row's"
    assert stored_bytes.odd_hashed(raw, "t", [(["m"], [b'{"a":3}'])], {"m": hashes["m"]},
                                   5) == []
    with pytest.raises(ValueError, match="cannot be cut out"):  # compared as values then
        stored_bytes.odd_hashed(raw, "t", [(["k", "m"], [b'{"a":1,"before":2}', b'{"a":3}'])],
                                hashes, 5)


@pytest.mark.parametrize("changes", [
    "[1]", '[{"table": 5, "key": "k", "after": null}]', "not json",
    '[{"after":null,"key":"k","table":"persons"}]',  # no before
    '[{"after":null,"before":null,"key":"k","table":5}]'])
def test_last_images_give_way_when_changes_are_not_rows(tmp_path: Path, changes: str) -> None:
    reg, _clock, _repo = build(tmp_path, history(6, seed=2))
    try:
        drop_guards(reg)
        exec_sql(reg, "UPDATE journal SET changes = :c WHERE seq = 2", c=changes)
        with reg.db.read() as conn:
            assert journal_store.last_images(conn) is None
    finally:
        reg.close()
