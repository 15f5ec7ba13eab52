"""A batch of any length, the whole file by default, is applied a chunk at a time inside its
one transaction: memory stays bounded, yet a bad line anywhere still writes nothing of the
batch, and the journal it writes verifies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cutru.errors import ImportLineError
from cutru.services import importer
from cutru.services.registry import Registry
from cutru.store.schema import PROJECTION, journal, persons, residences
from tests.conftest import Clock, make_settings
from tests.helpers import OFFICER, SAI_GON, household_line, person


def _lines(n: int) -> list[tuple[int, dict[str, Any]]]:
    return [(i, household_line(street=f"{i} Hàng Bạc", members=[("head", person())]))
            for i in range(1, n + 1)]


def _counts(reg: Registry) -> tuple[int, int]:
    with reg.db.read() as conn:
        entries = conn.execute(select(func.count()).select_from(journal)).scalar_one()
        rows = sum(conn.execute(select(func.count()).select_from(t)).scalar_one()
                   for t in PROJECTION)
    return int(entries), int(rows)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "SPILL_LINES", 3)


def test_a_whole_file_batch_is_written_a_chunk_at_a_time(registry: Registry,
                                                         small_chunks: None) -> None:
    seen: list[tuple[int, int]] = []
    result = importer.import_records(registry.runner, _lines(10), actor=OFFICER,
                                     batch_lines=0, progress=lambda n, p: seen.append((n, p)))
    assert (result.lines, result.persons, result.entries) == (10, 10, 10)
    assert seen == [(3, 3), (3, 3), (3, 3), (1, 1)]  # progress after each chunk
    assert _counts(registry)[0] == 10
    assert registry.verify().ok


def test_a_bad_line_in_a_later_chunk_writes_nothing_of_the_batch(registry: Registry,
                                                                 small_chunks: None) -> None:
    lines = _lines(10)
    lines[7] = (8, {**lines[7][1], "commune_code": "99999"})  # no such commune
    with pytest.raises(ImportLineError) as info:
        importer.import_records(registry.runner, lines, actor=OFFICER, batch_lines=0)
    assert info.value.line == 8
    assert _counts(registry) == (0, 0)  # chunks 1 and 2 were rolled back with the batch
    assert registry.verify().ok


def test_batches_longer_than_a_chunk_commit_separately(registry: Registry,
                                                       small_chunks: None) -> None:
    lines = _lines(10)
    lines[7] = (8, {**lines[7][1], "commune_code": "99999"})
    with pytest.raises(ImportLineError):
        importer.import_records(registry.runner, lines, actor=OFFICER, batch_lines=5)
    assert _counts(registry)[0] == 5  # the first batch (two chunks) stays committed
    assert registry.verify().ok


def test_a_duplicate_id_number_in_a_later_chunk_is_refused(registry: Registry,
                                                           small_chunks: None) -> None:
    lines = _lines(6)
    dup = lines[0][1]["members"][0]["person"]["id_number"]
    lines[4][1]["members"][0]["person"]["id_number"] = dup  # chunk 2, line 5
    with pytest.raises(ImportLineError) as info:
        importer.import_records(registry.runner, lines, actor=OFFICER, batch_lines=0)
    assert info.value.rule == "person.id_number_unique"
    assert _counts(registry) == (0, 0)


@pytest.mark.parametrize("second", [2, 5], ids=["same chunk", "later chunk"])
def test_an_id_number_spelled_another_way_is_the_same_number(
        registry: Registry, small_chunks: None, second: int) -> None:
    """Spaces around an ID number do not make it another one: the second person declaring it
    is refused by the rule, with its line, not by the database's unique index."""
    lines = _lines(6)
    first = lines[0][1]["members"][0]["person"]
    again = lines[second - 1][1]["members"][0]["person"]
    again.update(id_number=f" {first['id_number']} ", birth_date=first["birth_date"],
                 sex=first["sex"])
    with pytest.raises(ImportLineError) as info:
        importer.import_records(registry.runner, lines, actor=OFFICER, batch_lines=0)
    assert (info.value.line, info.value.rule) == (second, "person.id_number_unique")
    assert _counts(registry) == (0, 0)


@pytest.mark.parametrize("at", [3, 6], ids=["same chunk", "later chunk"])
def test_a_line_names_a_person_by_id_number_however_it_is_spaced(
        registry: Registry, small_chunks: None, at: int) -> None:
    lines = _lines(6)
    number = lines[0][1]["members"][0]["person"]["id_number"]
    lines[at - 1] = (at, {"kind": "temporary", "id_number": f"  {number} ",
                          "commune_code": SAI_GON, "street": "3 Lê Lợi",
                          "start": "2026-01-01", "term_end": "2027-01-01"})
    importer.import_records(registry.runner, lines, actor=OFFICER, batch_lines=0)
    with registry.db.read() as conn:
        holders = conn.execute(select(persons.c.id_number_bidx).join(
            residences, residences.c.person_key == persons.c.key).where(
            residences.c.kind == "temporary")).scalars().all()
    assert holders == [registry.runner.keys.blind_index(number)]  # the person of line 1
    assert registry.verify().ok


def test_a_taken_id_number_is_refused_before_what_is_wrong_with_its_person(
        registry: Registry, small_chunks: None) -> None:
    """The person on line 5 cannot be prepared (no such sex), but its ID number belongs to
    the person of line 1, written with chunk 1: the uniqueness rule is checked first."""
    lines = _lines(6)
    other = lines[4][1]["members"][0]["person"]
    other["id_number"] = lines[0][1]["members"][0]["person"]["id_number"]
    other["sex"] = "unknown"
    with pytest.raises(ImportLineError) as info:
        importer.import_records(registry.runner, lines, actor=OFFICER, batch_lines=0)
    assert (info.value.line, info.value.rule) == (5, "person.id_number_unique")
    assert _counts(registry) == (0, 0)


def test_a_batch_with_hooks_refuses_to_spill(registry: Registry) -> None:
    with pytest.raises(RuntimeError, match="no spill"), registry.runner.batch() as b:
        b.before_commit.append(lambda conn, entries: None)
        b.spill()
    assert _counts(registry) == (0, 0)


def test_an_import_batch_runs_with_the_bulk_page_cache(tmp_path: Path, clock: Clock,
                                                       small_chunks: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite (PostgreSQL has no per-connection page cache to set)."""
    registry = Registry(make_settings(tmp_path, f"sqlite:///{tmp_path / 'bulk.db'}",
                                      sqlite_bulk_cache_mib=96), clock=clock)
    registry.init()
    caches: list[int] = []
    apply_chunk = importer._apply_chunk

    def observed(b: Any, *args: Any) -> None:
        caches.append(-int(b.conn.exec_driver_sql("PRAGMA cache_size").scalar_one()))
        apply_chunk(b, *args)

    monkeypatch.setattr(importer, "_apply_chunk", observed)
    importer.import_records(registry.runner, _lines(4), actor=OFFICER, batch_lines=0)
    assert caches == [96 * 1024, 96 * 1024]
    with registry.db.read() as conn:
        assert -int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one()) == \
            registry.settings.sqlite_cache_mib * 1024
    registry.close()
