"""Hypothesis: for random histories and a random position p, restoring to p from the backup
repository equals replaying the journal up to p; reverting a random conflict-free set of
entries equals the history without them (and keeps every invariant)."""

from __future__ import annotations

import contextlib
import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from cutru.access import identities
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.backup import Repository
from cutru.backup.archive import archive_once
from cutru.backup.targets import LocalTarget
from cutru.config import Settings
from cutru.errors import InputError, RuleViolation
from cutru.recovery.integrity import replay_state
from cutru.recovery.revert import plan_revert
from cutru.services import recovery
from cutru.services import restore as rs
from cutru.services.recovery import Recovery
from cutru.services.registry import Registry
from cutru.services.unit import KeyFactory
from cutru.store import journal_store
from cutru.store.engine import Database
from tests.backup.test_snapshot import PASS, new_repo, tables
from tests.conftest import Clock
from tests.test_properties import apply, check_invariants, op

PASSWORD = "mật-khẩu-thuộc-tính"


def build(tmp: Path, steps: list[tuple[Any, ...]], *, archive_every: int = 0
          ) -> tuple[Registry, Clock, Repository | None]:
    s = Settings(data_dir=tmp / "data", key_dir=tmp / "keys", checkpoint_interval=4)
    clock = Clock()
    reg = Registry(s, clock=clock, new_key=KeyFactory(random.Random(0).getrandbits))
    reg.init()
    repo = None
    if archive_every:
        new_repo(LocalTarget(tmp / "repo"))
        repo = Repository.open(LocalTarget(tmp / "repo"), PASS)
    people: list[str] = []
    for i, step in enumerate(steps):
        clock.advance(seconds=30)
        with contextlib.suppress(RuleViolation, InputError):
            apply(reg, people, step)
        if repo is not None and reg.signing_key and (i + 1) % archive_every == 0 \
                and reg.journal_length():
            archive_once(reg.db, repo, reg.signing_key, public_keys=reg.public_keys())
    if repo is not None and reg.signing_key and reg.journal_length():
        archive_once(reg.db, repo, reg.signing_key, public_keys=reg.public_keys())
    return reg, clock, repo


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=3, max_size=18), st.integers(1, 4), st.floats(0.2, 1))
def test_restore_to_p_equals_replaying_the_journal_to_p(steps: list[tuple[Any, ...]],
                                                         every: int, where: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reg, _clock, repo = build(Path(tmp), steps, archive_every=every)
        try:
            assert repo is not None
            head = reg.journal_length()
            assume(head > 0)
            with repo.lock():
                first = min(s.position.seq for s in rs.list_snapshots(repo, reg.public_keys()))
            p = first + round(where * (head - first))
            assume(p >= 1)
            event(f"replay {'0' if p == first else '>0'} entries")
            with repo.lock():
                plan = rs.plan(repo, reg.public_keys(), str(p))
                db = Database(f"sqlite:///{Path(tmp) / f'restored-{p}.db'}")
                try:
                    result = rs.apply(repo, reg.public_keys(), plan, db)
                    restored = tables(db)
                finally:
                    db.dispose()
            with reg.db.read() as conn:
                expected, _ = replay_state(conn, stop=p)
                entry = journal_store.get_entry(conn, p)
            assert entry is not None and result.digest == entry.digest
            assert restored == expected
        finally:
            reg.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=2, max_size=18), st.lists(st.integers(0, 40), min_size=1,
                                                         max_size=4))
def test_reverting_conflict_free_entries_equals_the_history_without_them(
        steps: list[tuple[Any, ...]], picks: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reg, clock, _ = build(Path(tmp), steps)
        try:
            head = reg.journal_length()
            assume(head > 0)
            chosen = sorted({1 + i % head for i in picks})
            with reg.db.read() as conn:
                plan = plan_revert(conn, chosen)
                entries = list(journal_store.iter_entries(conn))
            if plan.conflicts:
                event("conflicts: refused until resolved")
                return
            without: dict[tuple[str, str], dict[str, Any]] = {}
            for e in entries:
                if e.seq in chosen:
                    continue
                for ch in e.changes:
                    if ch.after is None:
                        without.pop((ch.table, ch.key), None)
                    else:
                        without[(ch.table, ch.key)] = ch.after
            with reg.db.begin() as conn:
                for p in (Principal("req", PrincipalKind.AUDITOR, Unit.national()),
                          Principal("ok", PrincipalKind.ADMINISTRATOR, Unit.national())):
                    identities.create_principal(conn, p, password=PASSWORD, now=clock())
                inc = recovery.open_incident(conn, trigger="unauthorised_access",
                                             fault="improper_adjustment",
                                             discovered_at="2026-11-27T08:00",
                                             summary="thử", opened_by="req", now=clock())
            rec = Recovery(reg)
            try:
                req = rec.request("revert", {"positions": chosen}, incident=inc,
                                  requested_by="req", legal_basis="thử")
                rec.approve(req.id, rec.authenticate("ok", PASSWORD))
            except RuleViolation as exc:  # the result would break an invariant: refused
                event(f"refused: {exc.rule}")
                assert reg.journal_length() == head
                return
            event("applied")
            assert tables(reg.db) == without
            check_invariants(reg)
            assert reg.verify().ok
        finally:
            reg.close()
