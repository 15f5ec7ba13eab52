"""The HTTP API over real HTTP (uvicorn on a loopback port): authentication, purposes,
field filtering, state secrets indistinguishable from absence, one error shape, every call
audited with the checks it ran."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cutru.access import identities
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.api.app import create_app
from cutru.services import importer
from cutru.services.registry import Registry
from cutru.store import audit_store
from tests.access_db.server import serving
from tests.helpers import HOAN_KIEM, SAI_GON, household_line, person
from tests.test_transactions import seed_family

PASSWORD = "mật-khẩu-thử-nghiệm"
DUTY = {"X-Cutru-Purpose": "registration", "X-Cutru-Legal-Basis": "Law 68/2020 Art. 20"}
ACCOUNTS = {
    "can-bo-hk": Principal("can-bo-hk", PrincipalKind.OFFICER, Unit.commune(HOAN_KIEM)),
    "can-bo-sg": Principal("can-bo-sg", PrincipalKind.OFFICER, Unit.commune(SAI_GON)),
    "van-hanh": Principal("van-hanh", PrincipalKind.OPERATOR, Unit.national()),
    "kiem-toan": Principal("kiem-toan", PrincipalKind.AUDITOR, Unit.national()),
}


@pytest.fixture
def api(registry: Registry, clock: Any) -> Iterator[httpx.Client]:
    with registry.db.begin() as conn:
        for p in ACCOUNTS.values():
            identities.create_principal(conn, p, password=PASSWORD, now=clock())
    with serving(create_app(registry.settings, registry=registry)) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        yield client


def auth(api: httpx.Client, who: str) -> dict[str, str]:
    r = api.post("/api/v1/auth/login", json={"principal_id": who, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


def test_lookup_returns_only_allowed_fields(registry: Registry, api: httpx.Client) -> None:
    k = seed_family(registry)
    idn = registry.person(k["child"])["person"]["id_number"]
    r = api.post("/api/v1/persons/lookup", json={"id_number": idn},
                 headers={**auth(api, "can-bo-hk"), **DUTY})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["record"]["person"]) <= set(body["fields"]) | {"key"}
    assert not {"criminal_record", "violation_record", "preventive_measures"} & \
        keys_of(body["record"])
    assert idn not in r.request.url.path  # no personal data in URLs


def test_errors_share_one_shape(registry: Registry, api: httpx.Client) -> None:
    k = seed_family(registry)
    hk = auth(api, "can-bo-hk")
    cases = [
        (api.get(f"/api/v1/persons/{k['child']}"), 401, "not_authenticated"),
        (api.get(f"/api/v1/persons/{k['child']}", headers=hk), 422, "invalid_input"),
        (api.get(f"/api/v1/persons/{k['child']}", headers={**auth(api, "can-bo-sg"), **DUTY}),
         403, "access_denied"),
        (api.post("/api/v1/persons/lookup", json={"nope": 1}, headers={**hk, **DUTY}), 422,
         "invalid_input"),
        (api.post("/api/v1/transactions/temporary.register", headers={**hk, **DUTY},
                  json={"arguments": {"person_key": k["child"], "commune_code": HOAN_KIEM,
                                      "street": "1", "start": "2026-01-01",
                                      "term_end": "2027-01-01"}}), 409, "rule_violation"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"] == code and body["message"]
    assert cases[1][0].json()["field"] == "X-Cutru-Purpose"
    assert cases[4][0].json()["rule"] == "temporary.outside_permanent_commune"
    assert "Art. 27(1)" in cases[4][0].json()["article"]


def test_state_secret_and_absent_answer_alike(registry: Registry, api: httpx.Client) -> None:
    secret = person("Bí Mật", "1970-01-01", secret_label=True)
    importer.import_records(registry.runner, [(1, household_line(members=[("head", secret)]))],
                            actor="x")
    hk = {**auth(api, "can-bo-hk"), **DUTY}
    hidden = api.post("/api/v1/persons/lookup", json={"id_number": secret["id_number"]},
                      headers=hk)
    absent = api.post("/api/v1/persons/lookup", json={"id_number": person()["id_number"]},
                      headers=hk)
    assert (hidden.status_code, hidden.json()) == (absent.status_code, absent.json())
    found = api.post("/api/v1/persons/search", json={"full_name": "Bí Mật"}, headers=hk)
    assert found.json() == {"results": []}


def test_operator_gets_no_personal_data(registry: Registry, api: httpx.Client) -> None:
    k = seed_family(registry)
    r = api.get(f"/api/v1/persons/{k['child']}",
                headers={**auth(api, "van-hanh"), "X-Cutru-Purpose": "backup_operations",
                         "X-Cutru-Legal-Basis": "Decree 62 Art. 14"})
    assert r.status_code == 403
    assert "Trần" not in r.text


ROUTE_CHECKS = {
    "read": ("purpose", "declaration", "action", "secret_label", "jurisdiction", "fields"),
    "search": ("purpose", "declaration", "action", "secret_label", "jurisdiction", "fields"),
    "write": ("purpose", "declaration", "action", "secret_label", "jurisdiction", "fields"),
}


def test_every_route_runs_the_expected_checks_and_is_audited(registry: Registry,
                                                             api: httpx.Client) -> None:
    k = seed_family(registry)
    hk = {**auth(api, "can-bo-hk"), **DUTY}
    idn = registry.person(k["child"])["person"]["id_number"]
    with registry.db.read() as conn:
        before = len(list(audit_store.iter_records(conn)))
    calls = [
        ("read", api.post("/api/v1/persons/lookup", json={"id_number": idn}, headers=hk)),
        ("read", api.get(f"/api/v1/persons/{k['child']}", headers=hk)),
        ("search", api.post("/api/v1/persons/search", json={"full_name": "Trần Minh Khoa"},
                            headers=hk)),
        ("write", api.post("/api/v1/transactions/person.adjust", headers=hk,
                           json={"arguments": {"person_key": k["child"],
                                               "changes": {"occupation": "thợ điện"}}})),
    ]
    for _, response in calls:
        assert response.status_code == 200, response.text
    with registry.db.read() as conn:
        records = list(audit_store.iter_records(conn))[before:]
    assert [r.action for r in records] == [c[0] for c in calls]
    for (action, _), record in zip(calls, records, strict=True):
        checks = tuple(record.detail["checks"].split(","))
        assert checks[:3] == ("purpose", "declaration", "action"), checks
        assert "jurisdiction" in checks and checks[-1] == "fields", (action, checks)
    audited = api.get("/api/v1/audit", params={"subject": k["child"]},
                      headers={**auth(api, "kiem-toan"), "X-Cutru-Purpose": "audit_review",
                               "X-Cutru-Legal-Basis": "Decree 356/2025 Art. 4"})
    assert audited.status_code == 200
    assert len(audited.json()["records"]) >= 4
    verified = api.get("/api/v1/audit/verify",
                       headers={**auth(api, "kiem-toan"), "X-Cutru-Purpose": "audit_review",
                                "X-Cutru-Legal-Basis": "Decree 356/2025 Art. 4"})
    assert verified.json()["ok"] is True


def test_third_party_request_consent_decision_and_limited_use(registry: Registry,
                                                              api: httpx.Client,
                                                              clock: Any) -> None:
    k = seed_family(registry)
    with registry.db.begin() as conn:
        identities.create_principal(conn, Principal("ngan-hang", PrincipalKind.THIRD_PARTY),
                                    password=PASSWORD, now=clock())
        identities.create_principal(conn, Principal("truong-ca-hk",
                                                    PrincipalKind.COMMUNE_POLICE_HEAD,
                                                    Unit.commune(HOAN_KIEM)),
                                    password=PASSWORD, now=clock())
    idn = registry.person(k["child"])["person"]["id_number"]
    bank = auth(api, "ngan-hang")
    asked = {"id_number": idn, "purpose": "thẩm định hồ sơ vay", "fields": ["full_name",
             "residence_file_no"], "consent_by": "Trần Minh Khoa",
             "consent_document": "GĐY-2026-001"}
    sensitive = api.post("/api/v1/grants", headers=bank,
                         json={**asked, "fields": ["full_name", "religion"]})
    assert sensitive.status_code == 409 and sensitive.json()["rule"] == "grant.no_sensitive"
    made = api.post("/api/v1/grants", headers=bank, json=asked)
    assert made.status_code == 201, made.text
    grant = made.json()["grant"]
    assert grant["status"] == "pending" and grant["deadline"] == "2026-12-01"  # Fri + 2 w.d.
    use = {**bank, "X-Cutru-Purpose": "third_party_consent", "X-Cutru-Grant": grant["key"]}
    early = api.get(f"/api/v1/persons/{k['child']}", headers=use)
    assert early.status_code == 403
    review = {**auth(api, "truong-ca-hk"), "X-Cutru-Purpose": "third_party_review",
              "X-Cutru-Legal-Basis": "Decree 62/2021 Art. 13(4)"}
    queue = api.get("/api/v1/grants/pending", headers=review).json()["pending"]
    assert [q["key"] for q in queue] == [grant["key"]] and queue[0]["overdue"] is False
    refused = api.post(f"/api/v1/grants/{grant['key']}/decision", headers=review,
                       json={"approve": False})
    assert refused.json()["rule"] == "grant.refusal_reason"
    ok = api.post(f"/api/v1/grants/{grant['key']}/decision", headers=review,
                  json={"approve": True, "days": 10})
    assert ok.status_code == 200 and ok.json()["grant"]["status"] == "approved"
    seen = api.get(f"/api/v1/persons/{k['child']}", headers=use)
    assert seen.status_code == 200, seen.text
    assert set(seen.json()["record"]["person"]) == {"key", "full_name", "residence_file_no"}
    other = api.get(f"/api/v1/persons/{k['mother']}", headers=use)
    assert other.status_code == 403 and other.json()["reason"] == "denied.grant_other_person"


def test_history_as_of_and_household_hold_no_disallowed_field(registry: Registry,
                                                              api: httpx.Client,
                                                              clock: Any) -> None:
    k = seed_family(registry)
    clock.advance(hours=1)
    registry.adjust_information("x", "basis", k["child"], {"occupation": "thợ may"})
    investigator = Principal("dieu-tra-vien", PrincipalKind.AGENCY_PROCEDURAL,
                             Unit.national(), functions=frozenset({"investigation"}))
    with registry.db.begin() as conn:
        identities.create_principal(conn, investigator, password=PASSWORD, now=clock())
    tax = Principal("thue-hn", PrincipalKind.AGENCY_STATE, Unit.province("01"),
                    functions=frozenset({"tax"}))
    with registry.db.begin() as conn:
        identities.create_principal(conn, tax, password=PASSWORD, now=clock())
    headers = {**auth(api, "thue-hn"), "X-Cutru-Purpose": "tax_administration",
               "X-Cutru-Legal-Basis": "Law 38/2019/QH14"}
    record = api.get(f"/api/v1/persons/{k['child']}", headers=headers).json()
    allowed = set(record["fields"]) | {"key"}
    assert set(record["record"]["person"]) <= allowed
    assert "religion" not in allowed and "marital_status" not in allowed
    past = api.get(f"/api/v1/persons/{k['child']}", params={"as_of": "2026-11-27T02:30:00Z"},
                   headers=headers).json()
    assert set(past["record"]["person"]) <= allowed
    history = api.get(f"/api/v1/persons/{k['child']}/history", headers=headers).json()
    changed = {f for e in history["changes"] for c in e["changes"] if c["table"] == "persons"
               for f in c["fields"]}
    assert changed <= allowed and "occupation" not in changed  # civil: not for tax
    household = api.get(f"/api/v1/households/{k['household']}", headers=headers).json()
    member_keys = {key for m in household["household"]["members"] for key in m}
    assert member_keys <= allowed | {"person_key", "relationship", "joined_on"}


def test_deleted_audit_record_is_detected(registry: Registry, api: httpx.Client) -> None:
    k = seed_family(registry)
    hk = {**auth(api, "can-bo-hk"), **DUTY}
    for _ in range(3):
        api.get(f"/api/v1/persons/{k['child']}", headers=hk)
    review = {**auth(api, "kiem-toan"), "X-Cutru-Purpose": "audit_review",
              "X-Cutru-Legal-Basis": "Decree 356/2025 Art. 4"}
    assert api.get("/api/v1/audit/verify", headers=review).json()["ok"] is True
    from sqlalchemy import text
    with registry.db.engine.begin() as conn:
        if registry.db.is_sqlite:
            conn.execute(text("DROP TRIGGER audit_log_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_change ON audit_log"))
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    result = api.get("/api/v1/audit/verify", headers=review).json()
    assert result["ok"] is False and result["problems"]


def test_api_key_is_limited_to_its_scoped_purposes(registry: Registry, api: httpx.Client,
                                                   clock: Any) -> None:
    k = seed_family(registry)
    agency = Principal("vks-ha-noi", PrincipalKind.AGENCY_PROCEDURAL, Unit.province("01"),
                       functions=frozenset({"prosecution"}))
    with registry.db.begin() as conn:
        identities.create_principal(conn, agency, password=None, now=clock())
        raw = identities.create_api_key(conn, agency.id, ["proceedings"], now=clock())
    case = {"X-API-Key": raw, "X-Cutru-Purpose": "proceedings",
            "X-Cutru-Legal-Basis": "Criminal Procedure Code 2015",
            "X-Cutru-Case-Number": "VKS-88/2026"}
    ok = api.get(f"/api/v1/persons/{k['child']}", headers=case)
    assert ok.status_code == 200, ok.text
    other = api.get(f"/api/v1/persons/{k['child']}",
                    headers={**case, "X-Cutru-Purpose": "state_duty"})
    assert other.status_code == 403 and other.json()["reason"] == "denied.api_key_scope"


def test_officer_declares_a_person_in_their_commune_only(registry: Registry,
                                                        api: httpx.Client) -> None:
    hk = {**auth(api, "can-bo-hk"), **DUTY}
    someone = person("Lê Thị Hoa", "1990-02-03", "female",
                     current_living_place={"commune_code": HOAN_KIEM, "street": "5 Hàng Gai"})
    r = api.post("/api/v1/transactions/person.declare", headers=hk,
                 json={"arguments": {"person": someone}})
    assert r.status_code == 200, r.text
    assert registry.person(r.json()["result"])["person"]["full_name"] == "Lê Thị Hoa"
    elsewhere = person("Lê Văn Nam", "1991-02-03", "male",
                       current_living_place={"commune_code": SAI_GON, "street": "1 Lê Lợi"})
    refused = api.post("/api/v1/transactions/person.declare", headers=hk,
                       json={"arguments": {"person": elsewhere}})
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
