"""The operator's restore planning and incidents over the real HTTP API: no personal data,
every view audited, the plan the same as the command line's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from cutru.access import identities
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.api.app import create_app
from cutru.backup import Repository
from cutru.backup.archive import archive_once
from cutru.backup.targets import LocalTarget
from cutru.services import restore as rs
from cutru.services.registry import Registry
from tests.access_db.server import serving
from tests.backup.test_snapshot import PASS, adjust, new_repo, person_keys, seed

PASSWORD = "mật-khẩu-vận-hành"
OPS = {"X-Cutru-Purpose": "backup_operations", "X-Cutru-Legal-Basis": "Decree 62/2021 Art. 14"}


def test_operator_plans_a_restore_and_opens_an_incident(registry: Registry, tmp_path: Path,
                                                        clock: Any) -> None:
    seed(registry, 12)
    key = registry.signing_key
    assert key is not None
    new_repo(LocalTarget(tmp_path / "repo"))
    repo = Repository.open(LocalTarget(tmp_path / "repo"), PASS)
    archive_once(registry.db, repo, key)
    people = person_keys(registry, 4)
    clock.advance(minutes=5)
    adjust(registry, people, "sau")
    archive_once(registry.db, repo, key, public_keys=registry.public_keys())
    with registry.db.begin() as conn:
        identities.create_principal(conn, Principal("van-hanh", PrincipalKind.OPERATOR,
                                                    Unit.national()),
                                    password=PASSWORD, now=clock())
    app = create_app(registry.settings, registry=registry)
    app.state.guard.backup_repository = lambda: Repository.open(
        LocalTarget(tmp_path / "repo"), PASS)
    target = registry.journal_length() - 2
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        token = c.post("/api/v1/auth/login", json={"principal_id": "van-hanh",
                                                   "password": PASSWORD}).json()["token"]
        ops = {"Authorization": f"Bearer {token}", **OPS}
        r = c.get("/api/v1/restore/plan", params={"to": str(target)}, headers=ops)
        assert r.status_code == 200, r.text
        plan = r.json()["plan"]
        assert plan["position"] == target and plan["entries_not_restored"] == 2
        assert plan["next"]["operation"] == "person.adjust"
        with repo.lock():
            cli = rs.plan(repo, registry.public_keys(), str(target)).to_dict()
        assert plan["expected_digest"] == cli["expected_digest"]
        assert not any(k in r.text for k in people)  # keys only of backups, not persons
        far = c.get("/api/v1/restore/plan", params={"to": "9999"}, headers=ops)
        assert far.status_code == 404 and far.json()["rule"] == "restore.point_reachable"
        bad = c.post("/api/v1/incidents", headers=ops, json={
            "trigger": "flood", "fault": "damage", "discovered_at": "2026-11-27T08:00",
            "summary": "máy chủ hỏng"})
        assert bad.status_code == 422 and bad.json()["field"] == "trigger"
        made = c.post("/api/v1/incidents", headers=ops, json={
            "trigger": "destroyed", "fault": "damage", "discovered_at": "2026-11-27T08:00",
            "summary": "máy chủ hỏng ổ đĩa"})
        assert made.status_code == 201, made.text
        listed = c.get("/api/v1/incidents", headers=ops).json()["incidents"]
        assert [i["id"] for i in listed] == [made.json()["incident"]["id"]]
        clock_ = listed[0]["notification"]
        assert clock_["hours_left"] == 70.9 and not clock_["overdue"]
        officer = c.get("/api/v1/incidents", headers={"Authorization": f"Bearer {token}",
                                                     "X-Cutru-Purpose": "registration"})
        assert officer.status_code == 403
    assert json.dumps(listed, ensure_ascii=False).count("máy chủ") == 1
