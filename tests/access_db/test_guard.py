"""The guarded registry on the real databases: decisions applied, fields filtered, state
secrets indistinguishable from absence, every call audited, writes audited in their own
transaction."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from cutru.access import identities
from cutru.access.decision import Declaration
from cutru.access.policy import default_policy
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.errors import AccessDenied, NotFound, RuleViolation
from cutru.journal.audit_record import verify_log
from cutru.services.guard import Guard
from cutru.services.registry import Registry
from cutru.store import audit_store
from tests.helpers import HOAN_KIEM, SAI_GON, person
from tests.test_transactions import seed_family

DUTY = Declaration("registration", legal_basis="Law 68/2020/QH14 Art. 20")
OFFICER_HK = Principal("can-bo-hk", PrincipalKind.OFFICER, Unit.commune(HOAN_KIEM))
OFFICER_SG = Principal("can-bo-sg", PrincipalKind.OFFICER, Unit.commune(SAI_GON))
OPERATOR = Principal("van-hanh", PrincipalKind.OPERATOR, Unit.national())


@pytest.fixture
def guard(registry: Registry) -> Guard:
    return Guard(registry, default_policy())


def audit(registry: Registry) -> list[Any]:
    with registry.db.read() as conn:
        return list(audit_store.iter_records(conn))


def test_officer_reads_own_commune_with_allowed_fields_only(registry: Registry,
                                                            guard: Guard) -> None:
    k = seed_family(registry)
    read = guard.read_person(OFFICER_HK, DUTY, k["child"])
    assert read.data["person"]["full_name"] == "Trần Minh Khoa"
    assert "criminal_record" not in read.data["person"]
    assert set(read.data["person"]) <= read.decision.fields | {"key"}
    last = audit(registry)[-1]
    assert (last.action, last.outcome, last.subjects) == ("read", "allowed", (k["child"],))
    assert set(last.fields) == set(read.decision.fields)


def test_outside_jurisdiction_is_denied_and_audited(registry: Registry, guard: Guard) -> None:
    k = seed_family(registry)
    with pytest.raises(AccessDenied) as info:
        guard.read_person(OFFICER_SG, DUTY, k["child"])
    assert info.value.reason == "denied.outside_jurisdiction"
    last = audit(registry)[-1]
    assert (last.outcome, last.reason) == ("denied", "denied.outside_jurisdiction")


def test_operator_never_reads_personal_data(registry: Registry, guard: Guard) -> None:
    k = seed_family(registry)
    with pytest.raises(AccessDenied):
        guard.read_person(OPERATOR, Declaration("backup_operations", legal_basis="x"),
                          k["child"])


def test_state_secret_is_indistinguishable_from_absent(registry: Registry, guard: Guard) -> None:
    secret = person("Bí Mật", "1970-01-01", secret_label=True)
    from cutru.services import importer
    from tests.helpers import household_line
    importer.import_records(registry.runner, [(1, household_line(members=[("head", secret)]))],
                            actor="x")
    with pytest.raises(NotFound) as hidden:
        guard.lookup(OFFICER_HK, DUTY, secret["id_number"])
    with pytest.raises(NotFound) as absent:
        guard.lookup(OFFICER_HK, DUTY, person()["id_number"])
    assert hidden.value.to_dict() == absent.value.to_dict()
    assert guard.search(OFFICER_HK, DUTY, full_name="Bí Mật") == []
    cleared = Principal("can-bo-mat", PrincipalKind.OFFICER, Unit.commune(HOAN_KIEM),
                        clearance=True)
    assert guard.lookup(cleared, DUTY, secret["id_number"]).data["person"]["full_name"] == \
        "Bí Mật"


def test_write_is_audited_in_its_transaction(registry: Registry, guard: Guard) -> None:
    k = seed_family(registry)
    guard.transact(OFFICER_HK, DUTY, "person.adjust", person_key=k["child"],
                   changes={"occupation": "kế toán"})
    last = audit(registry)[-1]
    assert last.action == "write" and last.journal_seq == registry.journal_length()
    with pytest.raises(AccessDenied):
        guard.transact(OFFICER_SG, DUTY, "person.adjust", person_key=k["child"],
                       changes={"occupation": "x"})
    before = registry.journal_length()
    with pytest.raises(RuleViolation):  # a refused rule writes neither journal nor audit
        guard.transact(OFFICER_HK, DUTY, "temporary.register", person_key=k["child"],
                       commune_code=HOAN_KIEM, street="1", start="2026-01-01",
                       term_end="2027-01-01")
    assert registry.journal_length() == before
    assert audit(registry)[-1].action == "deny"


def test_citizen_sees_who_read_their_record(registry: Registry, guard: Guard,
                                            clock: Any) -> None:
    k = seed_family(registry)
    citizen = Principal("cd-khoa", PrincipalKind.CITIZEN, person_key=k["child"])
    guard.read_person(OFFICER_HK, DUTY, k["child"])
    log = guard.access_log(citizen)
    assert [(e["principal"], e["purpose"]) for e in log] == [("can-bo-hk", "registration")]
    assert "full_name" in log[0]["fields"]
    investigator = Principal("dieu-tra", PrincipalKind.AGENCY_PROCEDURAL, Unit.national(),
                             functions=frozenset({"investigation"}))
    guard.read_person(investigator, Declaration("proceedings", legal_basis="BLTTHS 2015",
                                                case_number="VA-12/2026"), k["child"])
    assert len(guard.access_log(citizen)) == 1, "investigative lookups stay hidden"


def test_login_is_audited_and_audit_log_verifies(registry: Registry, guard: Guard,
                                                 clock: Any) -> None:
    with registry.db.begin() as conn:
        identities.create_principal(conn, OFFICER_HK, password="mật-khẩu-dài-đủ", now=clock())
    guard.login(OFFICER_HK.id, "mật-khẩu-dài-đủ")
    with pytest.raises(AccessDenied):
        guard.login(OFFICER_HK.id, "sai-mật-khẩu-rồi")
    actions = [r.action for r in audit(registry)]
    assert actions[-2:] == ["login", "login_failed"]
    with registry.db.begin() as conn:
        assert registry.signing_key is not None
        audit_store.sign_current_head(conn, registry.signing_key, now=clock())
        heads = audit_store.heads(conn)
    assert verify_log(audit(registry), heads, registry.public_keys()) == []
    # an auditor-detectable edit: drop the guard, change a record
    if registry.db.is_sqlite:
        stmts = ["DROP TRIGGER audit_log_no_update"]
    else:
        stmts = ["DROP TRIGGER audit_log_no_change ON audit_log"]
    with registry.db.engine.begin() as conn:
        for sql in stmts:
            conn.execute(text(sql))
        conn.execute(text("UPDATE audit_log SET record = replace(record, 'login_failed', "
                          "'login') WHERE seq = 2"))
    assert verify_log(audit(registry), heads, registry.public_keys()) != []
