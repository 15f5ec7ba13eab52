"""Restore plans: after an earlier restore the archive holds two histories past the point
where they parted; a target they disagree on is refused as ambiguous until a generation is
chosen, and a target no backup reaches is refused with what the repository holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutru.access import identities
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.backup import Repository
from cutru.backup import restore as backup_restore
from cutru.backup.archive import archive_once, list_segments, load_segment
from cutru.backup.targets import Kind, LocalTarget
from cutru.errors import InputError, NotFound
from cutru.services import recovery
from cutru.services import restore as rs
from cutru.services.recovery import Recovery
from cutru.services.registry import Registry
from cutru.store import journal_store
from cutru.store.engine import Database
from tests.backup.test_snapshot import PASS, adjust, new_repo, person_keys, seed
from tests.conftest import Clock

PASSWORD = "mật-khẩu-kế-hoạch"


def test_two_histories_make_a_target_ambiguous(tmp_path: Path, registry: Registry,
                                               clock: Clock) -> None:
    reg = registry
    seed(reg, 12)
    new_repo(LocalTarget(tmp_path / "repo"))
    repo = Repository.open(LocalTarget(tmp_path / "repo"), PASS)
    key = reg.signing_key
    assert key is not None
    keys = reg.public_keys()
    archive_once(reg.db, repo, key)
    clock.advance(minutes=1)
    adjust(reg, person_keys(reg, 6), "cũ")
    archive_once(reg.db, repo, key, public_keys=keys)
    old_head = reg.journal_length()
    point = old_head - 4
    with reg.db.begin() as conn:
        for p in (Principal("req", PrincipalKind.AUDITOR, Unit.national()),
                  Principal("head", PrincipalKind.COMMUNE_POLICE_HEAD, Unit.commune("00070"))):
            identities.create_principal(conn, p, password=PASSWORD, now=clock())
        inc = recovery.open_incident(conn, trigger="destroyed", fault="damage",
                                     discovered_at="2026-11-27T09:00", summary="thử",
                                     opened_by="req", now=clock())
    plan = rs.plan(repo, keys, str(point))
    url = rs.new_target(reg.settings, clock(), point)
    db = Database(url)
    try:
        rs.apply(repo, keys, plan, db)
    finally:
        db.dispose()
    rec = Recovery(reg)
    swapped = rec.swap_in(url, incident=inc, requested_by="req",
                approver=rec.authenticate("head", PASSWORD), legal_basis="thử",
                generation=plan.generation)
    live = Registry(reg.settings, clock=clock)
    try:
        clock.advance(minutes=1)
        adjust(live, person_keys(live, 6)[3:], "mới")  # a new history after the point
        archive_once(live.db, repo, key, public_keys=keys)  # a new generation
        gens = sorted({s.generation for s in list_segments(repo)})
        assert len(gens) == 2
        head = live.journal_length()
        with live.db.read() as conn:
            mine = journal_store.get_entry(conn, head)
        assert mine is not None
        # the live head: the archive has it (a snapshot) and the old history's entry too
        with pytest.raises(InputError) as ambiguous:
            rs.plan(repo, keys, str(head))
        assert ambiguous.value.rule == "restore.point_ambiguous"
        assert rs.plan(repo, keys, str(head), live=live.db).chain_head == mine.hash
        # a point only the old history holds in the archive: refused, unless chosen
        with pytest.raises(InputError) as other:
            rs.plan(repo, keys, str(point + 1), live=live.db)
        assert other.value.rule == "restore.point_ambiguous"
        old = rs.plan(repo, keys, str(point + 1), generation=f"{gens[0]:016x}")
        with live.db.read() as conn:
            assert old.chain_head != journal_store.get_entry(conn, point + 1).hash  # type: ignore[union-attr]
        assert rs.plan(repo, keys, str(point), live=live.db).seq == point  # the shared past
        with pytest.raises(NotFound) as far:
            rs.plan(repo, keys, "9999")
        assert far.value.details["rule"] == "restore.point_reachable"
        assert "generation" in far.value.message
        assert rs.check_against_archive(live.db, repo, keys) == []
    finally:
        live.close()
        if not reg.db.is_sqlite:  # the kept schema is this test's to drop
            with reg.db.engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{swapped["kept_as"]}" CASCADE')


def test_a_plan_lists_the_archive_once_and_loads_each_segment_once(
        tmp_path: Path, registry: Registry, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = registry
    seed(reg, 8)
    repo = new_repo(LocalTarget(tmp_path / "repo"))
    key = reg.signing_key
    assert key is not None
    keys = reg.public_keys()
    archive_once(reg.db, repo, key)  # the snapshot
    for tag in ("một", "hai", "ba"):  # three segments after it
        clock.advance(minutes=1)
        adjust(reg, person_keys(reg, 3), tag)
        archive_once(reg.db, repo, key, public_keys=keys)
    assert len(list_segments(repo)) >= 3
    loads: list[str] = []
    listings: list[object] = []
    target_list = repo.target.list

    def counted_load(repo_: Repository, name: str, keys_: object) -> object:
        loads.append(name)
        return load_segment(repo_, name, keys_)  # type: ignore[arg-type]

    def counted_list(kind: Kind) -> object:
        listings.append(kind)
        return target_list(kind)

    # every way a segment is loaded, and the target's own listing
    monkeypatch.setattr(rs, "load_segment", counted_load)
    monkeypatch.setattr(backup_restore, "load_segment", counted_load)
    monkeypatch.setattr(repo.target, "list", counted_list)
    plan = rs.plan(repo, keys, str(reg.journal_length()))
    assert plan.seq == reg.journal_length() and len(plan.segments) >= 3
    assert sorted(loads) == sorted(set(loads))  # each segment loaded once, none again
    assert set(plan.segments) <= set(loads)
    assert listings.count(Kind.JOURNAL) == 1
