"""Tamper detection beyond the database: a journal cut back to an older valid prefix (the
external checkpoint removed as well) or rewritten is caught against the backup archive; the
scheduled quick check finds direct edits, pinpoints them, and raises one alert."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from cutru.access import abuse
from cutru.backup import Repository
from cutru.backup.archive import archive_once
from cutru.backup.targets import LocalTarget
from cutru.journal.helper import HelperFailed
from cutru.recovery import integrity
from cutru.services.registry import Registry
from cutru.services.restore import check_against_archive
from cutru.services.watch import IntegrityWatch
from cutru.store import journal_store
from tests.backup.test_snapshot import PASS, adjust, new_repo, person_keys, seed
from tests.conftest import Clock
from tests.test_integrity import drop_guards, exec_sql


def archived(reg: Registry, tmp_path: Path) -> Repository:
    new_repo(LocalTarget(tmp_path / "repo"))
    repo = Repository.open(LocalTarget(tmp_path / "repo"), PASS)
    assert reg.signing_key is not None
    archive_once(reg.db, repo, reg.signing_key)
    return repo


def cut_back(reg: Registry, keep: int) -> None:
    """An attacker with database and key-directory access removes the newest entries and
    everything that names them, leaving an older prefix that is valid on its own."""
    drop_guards(reg)
    with reg.db.engine.begin() as conn:
        gone = conn.execute(text("SELECT changes FROM journal WHERE seq > :k ORDER BY seq DESC"),
                            {"k": keep}).scalars().all()
        for raw in gone:  # undo the rows the removed entries wrote
            for ch in json.loads(raw):
                table = ch["table"]
                conn.execute(text(f"DELETE FROM {table} WHERE key = :key"), {"key": ch["key"]})
                if ch["before"] is not None:
                    cols = ", ".join(ch["before"])
                    vals = ", ".join(f":{c}" for c in ch["before"])
                    conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({vals})"),
                                 ch["before"])
        conn.execute(text("DELETE FROM journal_subjects WHERE seq > :k"), {"k": keep})
        conn.execute(text("DELETE FROM journal WHERE seq > :k"), {"k": keep})
        conn.execute(text("DELETE FROM checkpoints WHERE seq > :k"), {"k": keep})
    reg.settings.external_checkpoint_path.unlink()
    reg.rebuild()  # the head and running digest now agree with the shortened journal


def test_a_journal_cut_back_is_caught_against_the_archive(registry: Registry,
                                                          tmp_path: Path) -> None:
    seed(registry, 20)
    repo = archived(registry, tmp_path)
    keep = registry.journal_length()
    adjust(registry, person_keys(registry, 5), "sau")
    assert registry.signing_key is not None
    archive_once(registry.db, repo, registry.signing_key, public_keys=registry.public_keys())
    assert check_against_archive(registry.db, repo, registry.public_keys()) == []
    cut_back(registry, keep)
    assert registry.journal_length() == keep
    assert registry.verify().ok  # inside the database, the older prefix is valid
    problems = check_against_archive(registry.db, repo, registry.public_keys())
    assert [(p.kind, p.seq) for p in problems] == [("truncation", keep + 1)]


def test_a_rewritten_journal_is_caught_against_the_archive(registry: Registry,
                                                           tmp_path: Path) -> None:
    seed(registry, 10)
    repo = archived(registry, tmp_path)
    adjust(registry, person_keys(registry, 2), "sau")
    assert registry.signing_key is not None
    archive_once(registry.db, repo, registry.signing_key, public_keys=registry.public_keys())
    # the newest entry rewritten with a valid hash, the head and outside checkpoint to match
    drop_guards(registry)
    n = registry.journal_length()
    with registry.db.read() as conn:
        entry = journal_store.get_entry(conn, n)
    assert entry is not None
    forged = dataclasses.replace(entry, purpose="giả mạo")
    new_hash = forged.computed_hash()
    exec_sql(registry, "UPDATE journal SET purpose = 'giả mạo', hash = :h WHERE seq = :s",
             h=new_hash, s=n)
    exec_sql(registry, "UPDATE journal_head SET hash = :h", h=new_hash)
    exec_sql(registry, "DELETE FROM checkpoints WHERE seq = :s", s=n)
    registry.settings.external_checkpoint_path.unlink()
    assert registry.verify().ok  # nothing inside the database or key dir tells any more
    problems = check_against_archive(registry.db, repo, registry.public_keys())
    assert [(p.kind, p.seq) for p in problems] == [("chain", n)]


def test_the_quick_check_pinpoints_direct_edits_and_alerts_once(registry: Registry,
                                                               clock: Clock) -> None:
    seed(registry, 15)
    registry.checkpoint()
    adjust(registry, person_keys(registry, 3), "sau")
    watch = IntegrityWatch(registry, interval=3600)
    assert watch.check_now().ok and watch.figures()["integrity_ok"] == 1
    victim = person_keys(registry, 4)[1]
    exec_sql(registry, "UPDATE persons SET occupation = 'sửa thẳng' WHERE key = :k", k=victim)
    with registry.db.read() as conn:
        member = conn.execute(text("SELECT key FROM household_members ORDER BY key")).scalar()
    exec_sql(registry, "DELETE FROM household_members WHERE key = :k", k=member)
    report = watch.check_now()
    found = {(p.table, p.key, p.change) for p in report.problems if p.kind == "projection"}
    assert found == {("persons", victim, "updated"), ("household_members", member, "deleted")}
    watch.check_now()
    with registry.db.read() as conn:
        rules = [a["rule"] for a in abuse.list_alerts(conn)]
    assert rules.count("integrity.mismatch") == 1
    assert watch.figures()["integrity_ok"] == 0
    full = registry.verify()
    assert {(p.table, p.key) for p in full.problems if p.kind == "projection"} == {
        (t, k) for t, k, _c in found}


def test_quick_check_catches_an_edited_entry_after_the_last_checkpoint(
        registry: Registry) -> None:
    seed(registry, 8)
    registry.checkpoint()
    adjust(registry, person_keys(registry, 2), "sau")
    drop_guards(registry)
    last = registry.journal_length()
    exec_sql(registry, "UPDATE journal SET purpose = 'giả mạo' WHERE seq = :s", s=last)
    report = integrity.quick_check(registry.db, public_keys=registry.public_keys())
    assert any(p.kind == "chain" and p.seq == last for p in report.problems)


def test_the_watch_goes_on_after_a_helper_process_ends(registry: Registry,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper that dies under a scheduled check (HelperFailed, a CutruError) is logged and
    the watch keeps its schedule: its thread does not end with it."""
    seed(registry, 3)
    real = registry.quick_check
    calls: list[int] = []

    def flaky() -> integrity.Report:
        calls.append(1)
        if len(calls) == 1:
            raise HelperFailed("the helper process ended: it exited")
        return real()

    monkeypatch.setattr(registry, "quick_check", flaky)
    watch = IntegrityWatch(registry, interval=0.05)
    watch.start()
    try:
        deadline = time.monotonic() + 30
        while watch.checks < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watch.stop()
    assert len(calls) >= 2 and watch.checks >= 1 and watch.last_ok is True
