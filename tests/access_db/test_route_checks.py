"""Every API route performs the access checks expected of it: each call is audited with the
decision checks that ran (not only the right status). A route added without an entry here
fails the coverage test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from cutru.access import identities
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.api.app import create_app
from cutru.services.registry import Registry
from cutru.store import audit_store
from tests.access_db.server import serving
from tests.helpers import HOAN_KIEM
from tests.test_transactions import seed_family

PASSWORD = "mật-khẩu-thử-nghiệm"
DUTY = {"X-Cutru-Purpose": "registration", "X-Cutru-Legal-Basis": "Law 68/2020"}
REVIEW = {"X-Cutru-Purpose": "audit_review", "X-Cutru-Legal-Basis": "Decree 356/2025"}
RECORD = ("purpose", "declaration", "action", "secret_label", "jurisdiction", "fields")
NO_RECORD = ("purpose", "declaration", "action", "secret_label", "jurisdiction", "fields")
#: Routes without personal data or access decisions of their own.
UNGUARDED = {"/api/v1/health", "/metrics", "/api/v1/auth/login"}


@pytest.fixture
def env(registry: Registry, clock: Any) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    k = seed_family(registry)
    people = {
        "officer": Principal("can-bo", PrincipalKind.OFFICER, Unit.commune(HOAN_KIEM)),
        "head": Principal("truong", PrincipalKind.COMMUNE_POLICE_HEAD, Unit.commune(HOAN_KIEM)),
        "auditor": Principal("kiem-toan", PrincipalKind.AUDITOR, Unit.national()),
        "bank": Principal("ngan-hang", PrincipalKind.THIRD_PARTY),
        "citizen": Principal("cong-dan", PrincipalKind.CITIZEN, person_key=k["child"]),
    }
    with registry.db.begin() as conn:
        for p in people.values():
            identities.create_principal(conn, p, password=PASSWORD, now=clock())
    with serving(create_app(registry.settings, registry=registry)) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        tokens = {name: {"Authorization": "Bearer " + client.post(
            "/api/v1/auth/login", json={"principal_id": p.id, "password": PASSWORD}
        ).json()["token"]} for name, p in people.items()}
        k["idn"] = registry.person(k["child"])["person"]["id_number"]
        yield client, {"k": k, "t": tokens, "reg": registry}


Call = Callable[[httpx.Client, dict[str, Any]], httpx.Response]


def _grant(c: httpx.Client, e: dict[str, Any]) -> str:
    r = c.post("/api/v1/grants", headers=e["t"]["bank"], json={
        "id_number": e["k"]["idn"], "purpose": "vay vốn", "fields": ["full_name"],
        "consent_by": "Trần Minh Khoa", "consent_document": "GĐY-1"})
    return str(r.json()["grant"]["key"])


#: route -> (call, audited action, checks expected to have run, in order)
SPEC: dict[tuple[str, str], tuple[Call, str, tuple[str, ...] | None]] = {
    ("POST", "/api/v1/auth/logout"): (
        lambda c, e: c.post("/api/v1/auth/logout", headers=e["t"]["officer"]), "logout", None),
    ("POST", "/api/v1/persons/lookup"): (
        lambda c, e: c.post("/api/v1/persons/lookup", json={"id_number": e["k"]["idn"]},
                            headers={**e["t"]["officer"], **DUTY}), "read", RECORD),
    ("POST", "/api/v1/persons/search"): (
        lambda c, e: c.post("/api/v1/persons/search", json={"full_name": "Trần Minh Khoa"},
                            headers={**e["t"]["officer"], **DUTY}), "search", RECORD),
    ("GET", "/api/v1/persons/{person_key}"): (
        lambda c, e: c.get(f"/api/v1/persons/{e['k']['child']}",
                           headers={**e["t"]["officer"], **DUTY}), "read", RECORD),
    ("GET", "/api/v1/persons/{person_key}/history"): (
        lambda c, e: c.get(f"/api/v1/persons/{e['k']['child']}/history",
                           headers={**e["t"]["officer"], **DUTY}), "read", RECORD),
    ("GET", "/api/v1/households/{household_key}"): (
        lambda c, e: c.get(f"/api/v1/households/{e['k']['household']}",
                           headers={**e["t"]["officer"], **DUTY}), "read", NO_RECORD),
    ("POST", "/api/v1/transactions/{operation}"): (
        lambda c, e: c.post("/api/v1/transactions/person.adjust",
                            headers={**e["t"]["officer"], **DUTY},
                            json={"arguments": {"person_key": e["k"]["child"],
                                                "changes": {"occupation": "thợ hàn"}}}),
        "write", RECORD),
    ("POST", "/api/v1/grants"): (
        lambda c, e: c.post("/api/v1/grants", headers=e["t"]["bank"], json={
            "id_number": e["k"]["idn"], "purpose": "vay vốn", "fields": ["full_name"],
            "consent_by": "Trần Minh Khoa", "consent_document": "GĐY-1"}),
        "grant.request", None),
    ("GET", "/api/v1/grants/pending"): (
        lambda c, e: c.get("/api/v1/grants/pending", headers={
            **e["t"]["officer"], **DUTY}), "deny", ("purpose", "declaration", "action")),
    ("POST", "/api/v1/grants/{key}/decision"): (
        lambda c, e: c.post(f"/api/v1/grants/{_grant(c, e)}/decision",
                            headers={**e["t"]["head"], "X-Cutru-Purpose": "third_party_review",
                                     "X-Cutru-Legal-Basis": "Decree 62 Art. 13(4)"},
                            json={"approve": True}), "grant.decide", None),
    ("GET", "/api/v1/audit"): (
        lambda c, e: c.get("/api/v1/audit", headers={**e["t"]["officer"], **DUTY}),
        "deny", ("purpose", "declaration", "action")),
    ("GET", "/api/v1/audit/verify"): (
        lambda c, e: c.get("/api/v1/audit/verify", headers={**e["t"]["citizen"],
                                                            "X-Cutru-Purpose": "audit_review"}),
        "deny", ("purpose",)),
    ("GET", "/api/v1/audit/{seq}/proof"): (
        lambda c, e: c.get("/api/v1/audit/1/proof", headers={**e["t"]["officer"], **REVIEW}),
        "deny", ("purpose",)),
    ("GET", "/api/v1/backup/status"): (
        lambda c, e: c.get("/api/v1/backup/status", headers={**e["t"]["officer"], **DUTY}),
        "deny", ("purpose", "declaration", "action")),
    ("GET", "/api/v1/restore/plan"): (
        lambda c, e: c.get("/api/v1/restore/plan", params={"to": "1"},
                           headers={**e["t"]["officer"], **DUTY}),
        "deny", ("purpose", "declaration", "action")),
    ("GET", "/api/v1/incidents"): (
        lambda c, e: c.get("/api/v1/incidents", headers={**e["t"]["officer"], **DUTY}),
        "deny", ("purpose", "declaration", "action")),
    ("POST", "/api/v1/incidents"): (
        lambda c, e: c.post("/api/v1/incidents", headers={**e["t"]["officer"], **DUTY},
                            json={"trigger": "destroyed", "fault": "damage",
                                  "discovered_at": "2026-11-27T08:00", "summary": "x"}),
        "deny", ("purpose", "declaration", "action")),
    ("GET", "/api/v1/alerts"): (
        lambda c, e: c.get("/api/v1/alerts", headers={**e["t"]["officer"], **DUTY}),
        "deny", ("purpose", "declaration", "action")),
    ("GET", "/api/v1/me/access-log"): (
        lambda c, e: c.get("/api/v1/me/access-log", headers=e["t"]["officer"]),
        "deny", ("purpose",)),
}


def test_every_route_is_specified(registry: Registry) -> None:
    app = create_app(registry.settings, registry=registry)
    routes = {(m, r.path) for r in app.routes if isinstance(r, APIRoute)
              for m in r.methods if r.path not in UNGUARDED}
    assert routes == set(SPEC), f"unspecified: {routes - set(SPEC)}; gone: {set(SPEC) - routes}"


@pytest.mark.parametrize("route", sorted(SPEC))
def test_route_runs_its_checks(env: tuple[httpx.Client, dict[str, Any]],
                               route: tuple[str, str]) -> None:
    client, e = env
    call, action, checks = SPEC[route]
    response = call(client, e)
    assert response.status_code < 500, response.text
    with e["reg"].db.read() as conn:
        last = list(audit_store.iter_records(conn))[-1]
    assert last.action == action, (route, last)
    if checks is not None:
        ran = tuple(last.detail["checks"].split(","))
        assert ran == checks, (route, ran)
    if action == "deny":
        assert response.status_code in {403, 404} and response.json()["reason"]
