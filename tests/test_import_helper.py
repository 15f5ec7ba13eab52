"""A large import computes its state digests in a helper process: the journal it writes
verifies (every entry's digest is recomputed from its row images) and holds what the same
import writes without a helper; a helper that dies costs time, not the import. (The two
journals cannot be equal byte for byte: protected fields are encrypted with random nonces.)"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

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


@pytest.fixture
def unhelped(tmp_path: Path, records: list[tuple[int, dict[str, Any]]]
             ) -> list[tuple[Any, ...]]:
    """The journal of the import in batches of 20 lines: too small for the helper."""
    reg = _registry(tmp_path, "unhelped")
    importer.import_records(reg.runner, records, actor="importer", batch_lines=20)
    try:
        return _journal(reg)
    finally:
        reg.close()


def test_digests_from_the_helper_give_the_same_journal(
        tmp_path: Path, records: list[tuple[int, dict[str, Any]]],
        unhelped: list[tuple[Any, ...]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Helper | None] = []
    sent: list[str] = []

    @contextmanager
    def watched() -> Iterator[Helper | None]:
        with helper_process() as helper:
            started.append(helper)
            if helper is not None:
                submit = helper.submit
                monkeypatch.setattr(helper, "submit", lambda fn, *args: (
                    sent.append(fn.__name__), submit(fn, *args))[1])
            yield helper

    monkeypatch.setattr(importer, "helper_process", watched)
    reg = _registry(tmp_path, "helped")
    importer.import_records(reg.runner, records, actor="importer", batch_lines=0)
    assert len(started) == 1 and isinstance(started[0], Helper)
    assert sent == ["advance_state"]  # one batch, its digests computed there
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
