"""The whole story of "restore to the moment before", on real SQLite and real PostgreSQL.

Seed; snapshot; legitimate changes; a compromised officer account makes improper changes;
more legitimate changes, some to the same persons; someone edits the database directly.
``verify`` finds the direct edit and where it is; revert undoes exactly the improper changes
and reports the conflicts; point-in-time restore to just before the first improper change
gives exactly the state at that position (digest, and row by row against a copy taken then).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from cutru.access import identities
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.backup.archive import archive_once
from cutru.backup.targets import LocalTarget
from cutru.errors import RevertConflict, RuleViolation
from cutru.recovery.locate import Query, find, resolve_point
from cutru.recovery.revert import Resolution, plan_revert
from cutru.services import recovery
from cutru.services import restore as rs
from cutru.services.recovery import Recovery
from cutru.services.registry import Registry
from cutru.services.restore import check_against_archive
from cutru.store import journal_store
from cutru.store.engine import Database
from tests.backup.test_snapshot import BASIS, OFFICER, new_repo, person_keys, seed, tables
from tests.conftest import Clock
from tests.test_integrity import exec_sql

ROGUE = "officer-rogue"
PASSWORD = "mật khẩu đủ dài 2026"


def accounts(reg: Registry) -> dict[str, Principal]:
    unit = Unit.commune("00070")
    people = {
        "requester": Principal("auditor-1", PrincipalKind.AUDITOR, Unit.national()),
        "head": Principal("head-1", PrincipalKind.COMMUNE_POLICE_HEAD, unit),
        "officer": Principal("officer-2", PrincipalKind.OFFICER, unit),
    }
    with reg.db.begin() as conn:
        for p in people.values():
            identities.create_principal(conn, p, password=PASSWORD, now=reg.clock())
    return people


def drop_schema(reg: Registry, name: str) -> None:
    with reg.db.engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def occupation(reg: Registry, key: str) -> object:
    return reg.person(key)["person"].get("occupation")


def test_the_whole_story(registry: Registry, tmp_path: Path, clock: Clock) -> None:
    reg = registry
    seed(reg, 40)
    people = accounts(reg)
    key = reg.signing_key
    assert key is not None
    repo = new_repo(LocalTarget(tmp_path / "repo"))
    archive_once(reg.db, repo, key)  # the first snapshot begins the archive's generation
    pk = person_keys(reg, 10)

    clock.advance(minutes=10)  # 09:10 ICT: legitimate work
    for i, k in enumerate(pk[:3]):
        reg.adjust_information(OFFICER, BASIS, k, {"occupation": f"thợ may {i}"})
    before_attack = {k: occupation(reg, k) for k in pk}
    copy_then = tables(reg.db)
    with reg.db.read() as conn:
        then = journal_store.read_head(conn)

    clock.advance(minutes=10)  # 09:20: the compromised account
    attack_time = clock.now
    for k in pk[2:6]:
        reg.adjust_information(ROGUE, BASIS, k, {"occupation": "bị sửa trái phép"})
    clock.advance(minutes=10)  # 09:30: legitimate work again, some on the same persons
    reg.adjust_information(OFFICER, BASIS, pk[4], {"occupation": "kỹ sư"})
    reg.adjust_information(OFFICER, BASIS, pk[7], {"occupation": "giáo viên"})
    archive_once(reg.db, repo, key, public_keys=reg.public_keys())

    # someone edits the database directly
    exec_sql(reg, "UPDATE persons SET occupation = 'sửa thẳng' WHERE key = :k", k=pk[8])
    report = reg.verify()
    edited = [p for p in report.problems if p.kind == "projection"]
    assert [(p.table, p.key, p.change) for p in edited] == [("persons", pk[8], "updated")]
    assert edited[0].since_seq is not None and edited[0].since_seq <= then.seq

    # an incident, and the moment: the rogue account's first change after 09:15
    with reg.db.begin() as conn:
        inc = recovery.open_incident(conn, trigger="unauthorised_access",
                                     fault="improper_adjustment",
                                     discovered_at="2026-11-27T09:30",
                                     summary="tài khoản cán bộ bị chiếm dụng",
                                     opened_by="auditor-1", now=clock.now)
    with reg.db.read() as conn:
        first = find(conn, Query(actor=ROGUE, since="2026-11-27T02:15:00.000000Z"), limit=1)
        rogue = [m.seq for m in find(conn, Query(actor=ROGUE))]
    assert first[0].seq == then.seq + 1 == rogue[0] and len(rogue) == 4
    assert first[0].ts >= attack_time.strftime("%Y-%m-%dT%H:%M:%S")

    rec = Recovery(reg)
    # a revert cannot go through an edited row: rebuild first
    digest = rec.rebuild(inc, "cli:admin")
    assert reg.verify().ok and digest == reg.verify().digest

    # the revert: pk[4] was changed again later -> a conflict, shown with both versions
    params = {"positions": rogue}
    with reg.db.read() as conn:
        plan = plan_revert(conn, rogue)
    assert [c.key for c in plan.conflicts] == [pk[4]]
    assert plan.conflicts[0].current["occupation"] == "kỹ sư"
    assert plan.conflicts[0].before["occupation"] == before_attack[pk[4]]
    with pytest.raises(RevertConflict):
        rec.request("revert", params, incident=inc, requested_by="auditor-1",
                    legal_basis="QĐ 12/QĐ-CAX")
    params["resolutions"] = {f"persons:{pk[4]}": "skip"}
    with reg.db.read() as conn:
        assert plan_revert(conn, rogue, {f"persons:{pk[4]}": Resolution("skip")}).applicable
    req = rec.request("revert", params, incident=inc, requested_by="auditor-1",
                      legal_basis="QĐ 12/QĐ-CAX")
    with pytest.raises(RuleViolation) as same:
        rec.approve(req.id, people["requester"])
    assert same.value.rule == "recovery.four_eyes"
    with pytest.raises(RuleViolation) as officer:
        rec.approve(req.id, rec.authenticate("officer-2", PASSWORD))
    assert officer.value.rule == "recovery.approver_role"
    head_before = reg.journal_length()
    done = rec.approve(req.id, rec.authenticate("head-1", PASSWORD))
    assert done["journal_seq"] == head_before + 1 and done["rows"] == 3
    for k in (pk[2], pk[3], pk[5]):
        assert occupation(reg, k) == before_attack[k]
    assert occupation(reg, pk[4]) == "kỹ sư"  # the later legitimate change is kept
    assert occupation(reg, pk[7]) == "giáo viên"
    with reg.db.read() as conn:  # nothing is erased: the improper entries stay as evidence
        assert [m.seq for m in find(conn, Query(actor=ROGUE))] == rogue
        last = journal_store.get_entry(conn, done["journal_seq"])
    assert last is not None and last.operation == "recovery.revert" and inc in last.purpose
    assert reg.verify().ok

    # point-in-time: just before the first improper change
    archive_once(reg.db, repo, key, public_keys=reg.public_keys())
    keys = reg.public_keys()
    with repo.lock():
        p = rs.plan(repo, keys, str(first[0].seq), before=True)
        by_time = rs.plan(repo, keys, attack_time.isoformat(), before=True)
    assert p.seq == then.seq == by_time.seq and p.state_digest == then.state.digest()
    url = rs.new_target(reg.settings, clock.now, p.seq)
    target = Database(url)
    try:
        with repo.lock():
            result = rs.apply(repo, keys, p, target)
        assert result.digest == then.state.digest()
        assert tables(target) == copy_then  # row by row
    finally:
        target.dispose()
    with reg.db.read() as conn:
        assert resolve_point(conn, attack_time.isoformat(), before=True).seq == then.seq

    # ... and swapped in, the old registry kept, accounts carried over
    swapped = rec.swap_in(url, incident=inc, requested_by="auditor-1",
                          approver=rec.authenticate("head-1", PASSWORD),
                          legal_basis="QĐ 13/QĐ-CAX", generation=p.generation)
    assert swapped["position"] == then.seq and swapped["outcome"] == "swapped"
    live = Registry(reg.settings, clock=clock)
    try:
        assert live.journal_length() == then.seq
        assert live.verify().ok  # the checkpoint outside the database now signs this head
        # the archive still holds the replaced history: a restore on record, not a cut
        assert check_against_archive(live.db, repo, keys) == []
        assert tables(live.db) == copy_then
        assert Recovery(live).authenticate("head-1", PASSWORD).id == "head-1"
        with live.db.read() as conn:
            report = recovery.incident_report(conn, inc, clock.now)
        kinds = [e["kind"] for e in report["events"]]
        assert kinds == ["opened", "rebuilt", "revert_requested", "revert_applied",
                         "restore_swapped"]
        assert report["incident"]["point_seq"] == then.seq
        assert "72-hour" in recovery.render_report(report)
    finally:
        live.close()
    if not reg.db.is_sqlite:
        drop_schema(reg, swapped["kept_as"])
    else:
        kept = reg.settings.data_dir / swapped["kept_as"]
        old = Database(f"sqlite:///{kept}")
        try:
            with old.read() as conn:
                assert journal_store.last_seq(conn) == head_before + 1
        finally:
            old.dispose()
