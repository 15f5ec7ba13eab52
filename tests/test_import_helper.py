"""A large import computes its state digests in one helper process and prepares its persons
(validated, rows built and sealed) in a second: the journal it writes verifies (every entry's
digest is recomputed from its row images) and holds what the same import writes without
helpers; a helper that dies costs time, not the import. (The two journals cannot be equal
byte for byte: protected fields are encrypted with random nonces.)"""

from __future__ import annotations

import copy
import io
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from cutru.errors import ImportLineError
from cutru.journal.helper import Helper, helper_cpus, helper_process
from cutru.services import importer, synthetic
from cutru.services.registry import Registry
from cutru.services.unit import HELPER_DRAFTS, KeyFactory
from cutru.store.schema import journal
from tests.conftest import Clock, make_settings

TODAY = date(2026, 11, 27)
pytestmark = pytest.mark.skipif(helper_cpus() < 2, reason="one CPU: no helper process")


def _registry(tmp_path: Path, name: str) -> Registry:
    """Registries with the same keys and the same clock write the same journal."""
    settings = make_settings(tmp_path / name, f"sqlite:///{tmp_path / name / 'cutru.db'}")
    reg = Registry(settings, clock=Clock(), new_key=KeyFactory(random.Random(3).getrandbits))
    reg.init()
    return reg


def _journal(reg: Registry) -> list[tuple[Any, ...]]:
    """What each entry is, without its encrypted content or what depends on it."""
    with reg.db.read() as conn:
        return [tuple(r) for r in conn.execute(
            select(journal.c.seq, journal.c.actor, journal.c.operation, journal.c.subjects)
            .order_by(journal.c.seq))]


@pytest.fixture(scope="module")
def records() -> list[tuple[int, dict[str, Any]]]:
    # some 600 lines: above both thresholds when imported as one batch
    found = list(enumerate(synthetic.generate(1500, seed=9, today=TODAY), start=1))
    assert len(found) >= max(importer.HELPER_LINES, HELPER_DRAFTS)
    return found


@contextmanager
def _no_helper() -> Iterator[Helper | None]:
    yield None  # what helper_process gives on one CPU


def _counting(calls: list[str], monkeypatch: pytest.MonkeyPatch
              ) -> Callable[[], AbstractContextManager[Helper | None]]:
    """helper_process, recording the name of each function submitted to its helpers."""
    @contextmanager
    def counted() -> Iterator[Helper | None]:
        with helper_process() as helper:
            assert isinstance(helper, Helper)
            submit = helper.submit
            monkeypatch.setattr(helper, "submit", lambda fn, *args: (
                calls.append(fn.__name__), submit(fn, *args))[1])
            yield helper
    return counted


@pytest.fixture
def unhelped(tmp_path: Path, records: list[tuple[int, dict[str, Any]]],
             monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The journal of the same import with no helper process."""
    reg = _registry(tmp_path, "unhelped")
    with monkeypatch.context() as m:
        m.setattr(importer, "helper_process", _no_helper)
        importer.import_records(reg.runner, records, actor="importer", batch_lines=0)
    try:
        return _journal(reg)
    finally:
        reg.close()


def test_digests_from_the_helper_give_the_same_journal(
        tmp_path: Path, records: list[tuple[int, dict[str, Any]]],
        unhelped: list[tuple[Any, ...]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Helper | None] = []
    sent: list[list[str]] = []

    @contextmanager
    def watched() -> Iterator[Helper | None]:
        with helper_process() as helper:
            started.append(helper)
            calls: list[str] = []
            sent.append(calls)
            if helper is not None:
                submit = helper.submit
                monkeypatch.setattr(helper, "submit", lambda fn, *args: (
                    calls.append(fn.__name__), submit(fn, *args))[1])
            yield helper

    monkeypatch.setattr(importer, "helper_process", watched)
    reg = _registry(tmp_path, "helped")
    importer.import_records(reg.runner, records, actor="importer", batch_lines=0)
    assert len(started) == 2 and all(isinstance(h, Helper) for h in started)
    assert sent == [["advance_state_rows"],  # one batch, its digests computed there
                    []]  # one chunk, the batch's first: its persons are prepared here
    assert _journal(reg) == unhelped
    assert reg.verify().ok
    reg.close()


def test_a_helper_that_died_costs_time_not_the_batch(
        tmp_path: Path, records: list[tuple[int, dict[str, Any]]],
        unhelped: list[tuple[Any, ...]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    @contextmanager
    def dead() -> Iterator[Helper | None]:
        with helper_process() as helper:
            assert isinstance(helper, Helper)
            helper._proc.kill()
            helper._proc.wait()
            yield helper

    monkeypatch.setattr(importer, "helper_process", dead)
    reg = _registry(tmp_path, "dead")
    result = importer.import_records(reg.runner, records, actor="importer", batch_lines=0)
    assert result.lines == len(records)
    assert _journal(reg) == unhelped
    assert reg.verify().ok
    reg.close()


def test_persons_prepared_ahead_in_several_chunks_give_the_same_journal(
        tmp_path: Path, records: list[tuple[int, dict[str, Any]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chunk's persons are prepared while the chunk before is applied: the keys drawn
    and the journal written do not depend on whether a helper prepared them."""
    monkeypatch.setattr(importer, "SPILL_LINES", 100)
    monkeypatch.setattr(importer, "HELPER_LINES", 50)
    journals = []
    calls: list[str] = []
    for name, helpers in (("one", _no_helper), ("two", _counting(calls, monkeypatch))):
        monkeypatch.setattr(importer, "helper_process", helpers)
        reg = _registry(tmp_path, name)
        result = importer.import_records(reg.runner, records, actor="importer")
        assert result.lines == len(records)
        assert reg.verify().ok
        journals.append(_journal(reg))
        reg.close()
    assert journals[0] == journals[1]
    chunks = -(-len(records) // 100)
    # every chunk prepared in the helper but the first, prepared here while the helper
    # starts on the second
    assert calls.count("_prepare") == chunks - 1


@pytest.mark.parametrize("helpers", [_no_helper, helper_process], ids=["here", "helper"])
def test_a_person_that_fails_in_a_chunk_prepared_ahead_names_its_line_and_field(
        tmp_path: Path, records: list[tuple[int, dict[str, Any]]],
        monkeypatch: pytest.MonkeyPatch, helpers: Any) -> None:
    monkeypatch.setattr(importer, "SPILL_LINES", 100)
    monkeypatch.setattr(importer, "HELPER_LINES", 50)
    monkeypatch.setattr(importer, "helper_process", helpers)
    bad = next(n for n, r in records if r["kind"] == "household" and n > 250)
    rec = copy.deepcopy(records[bad - 1][1])
    rec["members"][-1]["person"]["birth_date"] = "2099-01-01"
    lines = [*records[:bad - 1], (bad, rec), *records[bad:]]
    reg = _registry(tmp_path, "bad")
    with pytest.raises(ImportLineError) as info:
        importer.import_records(reg.runner, lines, actor="importer")
    assert info.value.line == bad
    last = len(rec["members"]) - 1
    assert info.value.details["field"] == f"members[{last}].person.birth_date"
    assert info.value.details["rule"] == "date.not_future"
    assert _journal(reg) == []  # the whole batch was rolled back
    reg.close()


def test_the_first_bad_line_is_reported_though_a_later_chunk_was_read_ahead(
        tmp_path: Path, records: list[tuple[int, dict[str, Any]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk after the one being applied is read ahead; an unreadable line in it is
    reported only if every line before it passes."""
    monkeypatch.setattr(importer, "SPILL_LINES", 100)
    text = [orjson.dumps(r).decode() for _, r in records[:300]]
    text[149] = "{not json"  # line 150, in the second chunk
    refused = dict(records[39][1], kind="nonsense")  # line 40, in the first
    for lines, line in ((text, 150), ([*text[:39], orjson.dumps(refused).decode(),
                                       *text[40:]], 40)):
        reg = _registry(tmp_path, f"first{line}")
        with pytest.raises(ImportLineError) as info:
            importer.import_records(reg.runner, importer.parse_lines(
                io.StringIO("\n".join(lines) + "\n")), actor="importer")
        assert info.value.line == line
        assert _journal(reg) == []
        reg.close()
