"""Hand-written rows that pin the important decisions, one by one, with the checks that ran."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from types import MappingProxyType

import pytest

from cutru.access import (
    REASONS,
    AccessRequest,
    Declaration,
    Jurisdiction,
    Policy,
    Principal,
    Purpose,
    Requirement,
    Resource,
    ResourceKind,
    Unit,
    decide,
)
from cutru.domain.fields import FieldClass
from cutru.errors import AccessDenied, AddressError, InputError, NotFound
from tests.access.test_decision_table import reasons_seen
from tests.access.world import (
    BA_DINH,
    BASIS,
    CASE,
    HOAN_KIEM,
    ME,
    NOW,
    OTHER,
    POLICY,
    SAI_GON,
    K,
    fields_of,
    grant,
    person,
    principal,
)

ORDER = ("purpose", "declaration", "action", "secret_label", "jurisdiction", "fields")
GRANT_ORDER = ("purpose", "declaration", "action", "secret_label", "jurisdiction", "grant",
               "fields")
FIVE = ("identity", "residence", "family", "civil", "contact")
REGISTRATION = fields_of(*FIVE) | {"ethnicity", "religion"}
PROCEEDINGS = fields_of(*FIVE) | {"criminal_record", "violation_record", "preventive_measures",
                                  "wanted_decisions"}
EVERYTHING = fields_of(*FIVE, "sensitive")
NONE: frozenset[str] = frozenset()


def upto(check: str, order: tuple[str, ...] = ORDER) -> tuple[str, ...]:
    return order[: order.index(check) + 1]


def duty(purpose: str = "registration", **kw: object) -> Declaration:
    return Declaration(purpose, BASIS, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    id: str
    who: Principal
    action: str
    declared: Declaration
    resource: Resource
    reason: str
    fields: frozenset[str]
    checks: tuple[str, ...]
    jurisdiction: str | None = None  # checked when given


officer, head = principal(K.OFFICER), principal(K.COMMUNE_POLICE_HEAD)
police, state = principal(K.AGENCY_PROCEDURAL), principal(K.AGENCY_STATE)
citizen, company = principal(K.CITIZEN), principal(K.THIRD_PARTY)
operator, auditor = principal(K.OPERATOR), principal(K.AUDITOR)
admin = principal(K.ADMINISTRATOR)
backup = Resource(ResourceKind.BACKUP)
audit_log = Resource(ResourceKind.AUDIT)
consent = Declaration("third_party_consent", grant=grant())

CASES = [
    # the commune police
    Case("officer reads a resident of their commune", officer, "read", duty(), person(),
         "allowed.duty", REGISTRATION, ORDER, "commune:00070"),
    Case("officer: a neighbouring commune of the same province is outside", officer, "read",
         duty(), person(ME, BA_DINH), "denied.outside_jurisdiction", NONE, upto("jurisdiction")),
    Case("officer given a province unit still acts for one commune only",
         principal(K.OFFICER, unit=Unit.province("01")), "read", duty(), person(),
         "denied.outside_jurisdiction", NONE, upto("jurisdiction")),
    Case("officer: a temporary residence in their commune is enough", officer, "read", duty(),
         person(ME, SAI_GON, HOAN_KIEM), "allowed.duty", REGISTRATION, ORDER),
    Case("officer without a legal basis", officer, "read", Declaration("registration"),
         person(), "denied.legal_basis_missing", NONE, upto("declaration")),
    Case("officer with a blank legal basis", officer, "read", Declaration("registration", "  "),
         person(), "denied.legal_basis_missing", NONE, upto("declaration")),
    Case("officer registers a permanent residence", officer, "permanent.register", duty(),
         person(), "allowed.duty", REGISTRATION, ORDER),
    Case("officer may not approve corrections (four eyes)", officer, "approve_correction",
         duty(), person(), "denied.action_not_allowed", NONE, upto("action")),
    Case("officer may not declare the head's purpose", officer, "read",
         duty("correction_review"), person(), "denied.purpose_not_for_principal", NONE,
         ("purpose",)),
    Case("head approves a correction in their commune", head, "approve_correction",
         duty("correction_review"), person(), "allowed.duty", REGISTRATION, ORDER),
    Case("head deciding a third-party request sees identity and residence", head,
         "decide_third_party", duty("third_party_review"), person(), "allowed.duty",
         fields_of("identity", "residence"), ORDER),
    # state secrets: hidden is the same as absent
    Case("secret record, no clearance", officer, "read", duty(), person(secret=True),
         "not_found", NONE, upto("secret_label"), ""),
    Case("secret record outside the commune: not_found, not outside_jurisdiction", officer,
         "read", duty(), person(ME, SAI_GON, secret=True), "not_found", NONE,
         upto("secret_label"), ""),
    Case("absent record", officer, "read", duty(), Resource.absent(ResourceKind.PERSON, ME),
         "not_found", NONE, upto("secret_label"), ""),
    Case("secret record, cleared officer", principal(K.OFFICER, clearance=True), "read", duty(),
         person(secret=True), "allowed.duty", REGISTRATION, ORDER),
    # procedural and state agencies
    Case("investigator with a case anywhere sees criminal data, not religion", police, "read",
         duty("proceedings", case_number=CASE), person(ME, SAI_GON), "allowed.case",
         PROCEEDINGS, ORDER, "national"),
    Case("investigator without a case number", police, "search", duty("proceedings"),
         person(), "denied.case_number_missing", NONE, upto("declaration")),
    Case("procedural agency holding no procedural function",
         principal(K.AGENCY_PROCEDURAL, functions=frozenset({"tax"})), "read",
         duty("proceedings", case_number=CASE), person(), "denied.function_not_held", NONE,
         ("purpose",)),
    Case("tax office of Hà Nội on a Hà Nội resident", state, "read", duty("tax_administration"),
         person(ME, BA_DINH), "allowed.duty", fields_of("identity", "residence", "contact"),
         ORDER, "province:01"),
    Case("tax office of Hà Nội on a Sài Gòn resident", state, "read",
         duty("tax_administration"), person(ME, SAI_GON), "denied.outside_jurisdiction", NONE,
         upto("jurisdiction")),
    Case("national tax authority on a Sài Gòn resident",
         principal(K.AGENCY_STATE, unit=Unit.national()), "search", duty("tax_administration"),
         person(ME, SAI_GON), "allowed.duty", fields_of("identity", "residence", "contact"),
         ORDER, "national"),
    Case("state agency without the social-insurance function", state, "read",
         duty("social_insurance"), person(), "denied.function_not_held", NONE, ("purpose",)),
    Case("state agency may not declare proceedings", state, "read",
         duty("proceedings", case_number=CASE), person(), "denied.purpose_not_for_principal",
         NONE, ("purpose",)),
    Case("administrative procedure: one applicant, anywhere", state, "read",
         duty("administrative_procedure", case_number="HS-2026-7"), person(ME, SAI_GON),
         "allowed.case", fields_of("identity", "residence"), ORDER),
    Case("administrative procedure does not search", state, "search",
         duty("administrative_procedure", case_number="HS-2026-7"), person(),
         "denied.action_not_allowed", NONE, upto("action")),
    # citizens
    Case("citizen reads their own record, sensitive fields included", citizen, "read",
         Declaration("own_information"), person(ME, SAI_GON), "allowed.own_record",
         EVERYTHING, ORDER, "own_record"),
    Case("citizen reads someone else's record", citizen, "read",
         Declaration("own_information"), person(OTHER), "denied.not_own_record", NONE, ORDER),
    Case("citizen principal without a record of their own",
         principal(K.CITIZEN, person_key=None), "read", Declaration("own_information"),
         person(), "denied.not_own_record", NONE, ORDER),
    Case("citizen reads who accessed their record", citizen, "access_log_read",
         Declaration("own_information"), Resource(ResourceKind.AUDIT, ME),
         "allowed.own_record", NONE, ORDER),
    Case("citizen reads another person's access log", citizen, "access_log_read",
         Declaration("own_information"), Resource(ResourceKind.AUDIT, OTHER),
         "denied.not_own_record", NONE, ORDER),
    # third parties
    Case("third party with an approved grant in force", company, "read", consent, person(),
         "allowed.grant", fields_of("identity"), GRANT_ORDER, "grant:G-1"),
    Case("a grant naming religion does not make it visible", company, "read",
         Declaration("third_party_consent", grant=grant(fields_of("identity") | {"religion"})),
         person(), "allowed.grant", fields_of("identity"), GRANT_ORDER),
    Case("a grant naming only sensitive fields leaves nothing", company, "read",
         Declaration("third_party_consent", grant=grant(frozenset({"religion"}))), person(),
         "denied.no_fields", NONE, GRANT_ORDER),
    Case("grant expired at valid_until", company, "read",
         Declaration("third_party_consent", grant=grant(valid_until=NOW)), person(),
         "denied.grant_expired", NONE, upto("grant", GRANT_ORDER)),
    Case("grant not in force yet", company, "read",
         Declaration("third_party_consent",
                     grant=grant(valid_from=NOW + timedelta(seconds=1))),
         person(), "denied.grant_not_yet_valid", NONE, upto("grant", GRANT_ORDER)),
    Case("grant awaiting the head's decision", company, "read",
         Declaration("third_party_consent", grant=grant(approved=False)), person(),
         "denied.grant_not_approved", NONE, upto("grant", GRANT_ORDER)),
    Case("grant for another person", company, "read", consent, person(OTHER),
         "denied.grant_other_person", NONE, upto("grant", GRANT_ORDER)),
    Case("grant made to another company", principal(K.THIRD_PARTY, id="other-co"), "read",
         consent, person(), "denied.grant_other_principal", NONE, upto("grant", GRANT_ORDER)),
    Case("third party without a grant", company, "read", Declaration("third_party_consent"),
         person(), "denied.grant_missing", NONE, upto("declaration")),
    # running the system
    Case("operator runs a backup", operator, "backup_operate", duty("backup_operations"),
         backup, "allowed.duty", NONE, ORDER, "national"),
    Case("operator may not read a person", operator, "read", duty("backup_operations"),
         person(), "denied.action_not_allowed", NONE, upto("action")),
    Case("operator may not declare registration", operator, "read", duty(), person(),
         "denied.purpose_not_for_principal", NONE, ("purpose",)),
    Case("auditor reads the audit log", auditor, "audit_read", duty("audit_review"), audit_log,
         "allowed.duty", NONE, ORDER),
    Case("auditor's action on a person record", auditor, "audit_read", duty("audit_review"),
         person(), "denied.action_not_for_resource", NONE, upto("action")),
    Case("administrator manages principals", admin, "principal_manage",
         duty("identity_administration"), Resource(ResourceKind.PRINCIPAL), "allowed.duty",
         NONE, ORDER),
    # what no policy knows
    Case("no purpose declared", officer, "read", Declaration(""), person(),
         "denied.no_purpose", NONE, ("purpose",), ""),
    Case("a purpose the policy does not define", officer, "read", duty("curiosity"), person(),
         "denied.no_purpose", NONE, ("purpose",), ""),
    Case("an action nobody defined", officer, "delete", duty(), person(),
         "denied.unknown_action", NONE, upto("action")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pinned_decision(case: Case) -> None:
    d = decide(case.who, AccessRequest(case.action, case.declared), case.resource, POLICY,
               now=NOW)
    assert (d.reason, d.fields, d.checks) == (case.reason, case.fields, case.checks)
    assert d.allowed is case.reason.startswith("allowed.")
    if case.jurisdiction is not None:
        assert d.jurisdiction == case.jurisdiction


def test_hidden_and_absent_records_get_the_same_answer() -> None:
    ask = AccessRequest("read", duty())
    hidden = decide(officer, ask, person(ME, SAI_GON, secret=True), POLICY, now=NOW)
    absent = decide(officer, ask, Resource.absent(ResourceKind.PERSON, ME), POLICY, now=NOW)
    assert hidden == absent


# -- the field step's own guards, under a policy that load_policy would refuse ------------


def _careless(purpose: str, principals: set[K], jurisdiction: Jurisdiction,
              sensitive: bool = False) -> Policy:
    fields = fields_of(*FieldClass)
    bad = Purpose(purpose, "careless", "", "none", frozenset(principals), frozenset(),
                  frozenset({Requirement.LEGAL_BASIS}), frozenset(FieldClass), fields, fields,
                  sensitive, jurisdiction, frozenset({"read"}))
    return Policy("hand-built", MappingProxyType({purpose: bad}))


@pytest.mark.parametrize("kind", [K.OPERATOR, K.AUDITOR, K.ADMINISTRATOR])
def test_no_personal_data_whatever_the_policy(kind: K) -> None:
    policy = _careless("peek", {kind}, Jurisdiction.NATIONAL)
    d = decide(principal(kind), AccessRequest("read", duty("peek")), person(), policy, now=NOW)
    assert (d.allowed, d.reason, d.fields) == (False, f"denied.{kind.value}_no_personal_data",
                                               NONE)
    assert d.checks == ORDER


def test_sensitive_fields_dropped_unless_the_purpose_declares_them() -> None:
    policy = _careless("sloppy", {K.AGENCY_STATE}, Jurisdiction.NATIONAL, sensitive=False)
    d = decide(state, AccessRequest("read", duty("sloppy")), person(), policy, now=NOW)
    assert d.allowed and d.fields == fields_of(*FIVE)


def test_commune_police_outside_own_unit_whatever_the_policy() -> None:
    policy = _careless("roam", {K.OFFICER}, Jurisdiction.NATIONAL)
    d = decide(officer, AccessRequest("read", duty("roam")), person(), policy, now=NOW)
    assert d.reason == "denied.outside_jurisdiction"


def test_province_rule_covers_the_communes_of_the_principals_province() -> None:
    wide = replace(POLICY.purposes["state_duty"], name="wide", jurisdiction=Jurisdiction.PROVINCE)
    policy = Policy("hand-built", MappingProxyType({"wide": wide}))
    agency = principal(K.AGENCY_STATE, unit=Unit.commune(HOAN_KIEM))
    ask = AccessRequest("read", duty("wide"))
    assert decide(agency, ask, person(ME, BA_DINH), policy, now=NOW).jurisdiction == "province:01"
    assert decide(agency, ask, person(ME, BA_DINH), policy, now=NOW).allowed
    assert not decide(agency, ask, person(ME, SAI_GON), policy, now=NOW).allowed
    nowhere = principal(K.AGENCY_STATE, unit=None)
    d = decide(nowhere, ask, person(), policy, now=NOW)
    assert (d.reason, d.jurisdiction) == ("denied.outside_jurisdiction", "none")


def test_every_reason_is_reached_by_the_table_or_a_pinned_row() -> None:
    guards = {f"denied.{k.value}_no_personal_data" for k in (K.OPERATOR, K.AUDITOR,
                                                             K.ADMINISTRATOR)}
    assert set(REASONS) == set(reasons_seen()) | {c.reason for c in CASES} | guards


# -- using a decision ---------------------------------------------------------------------


def test_refusals_that_hold_for_every_record() -> None:
    def refusal(who: Principal, action: str, declared: Declaration, res: Resource) -> bool:
        return decide(who, AccessRequest(action, declared), res, POLICY,
                      now=NOW).refused_for_every_record

    assert refusal(officer, "read", Declaration("registration"), person())
    assert refusal(officer, "read", duty("proceedings"), person())
    assert refusal(officer, "approve_correction", duty(), person())
    assert not refusal(officer, "read", duty(), person(ME, SAI_GON))
    assert not refusal(officer, "read", duty(), person(secret=True))
    assert not refusal(officer, "read", duty(), person())


def test_require_gives_fields_or_raises_the_callers_own_not_found() -> None:
    allowed = decide(officer, AccessRequest("read", duty()), person(), POLICY, now=NOW)
    assert allowed.require(NotFound("person P-INSIDE not found")) == REGISTRATION
    hidden = decide(officer, AccessRequest("read", duty()), person(secret=True), POLICY, now=NOW)
    absent = NotFound("person P-INSIDE not found")
    with pytest.raises(NotFound) as caught:
        hidden.require(absent)
    assert caught.value is absent


def test_require_raises_access_denied_with_the_reason() -> None:
    outside = decide(officer, AccessRequest("read", duty()), person(ME, SAI_GON), POLICY, now=NOW)
    with pytest.raises(AccessDenied) as caught:
        outside.require(NotFound("absent"))
    err = caught.value
    assert (err.reason, err.exit_code, err.http_status) == ("denied.outside_jurisdiction", 8, 403)
    assert err.to_dict()["error"] == "access_denied"
    assert err.to_dict()["reason"] == "denied.outside_jurisdiction"


def test_time_must_be_timezone_aware() -> None:
    with pytest.raises(InputError) as caught:
        decide(officer, AccessRequest("read", duty()), person(), POLICY,
               now=NOW.replace(tzinfo=None))
    assert caught.value.rule == "datetime.aware"


def test_resources_name_real_communes() -> None:
    with pytest.raises(AddressError):
        person(ME, "99999")


@pytest.mark.parametrize(("changes", "rule"), [
    ({"fields": frozenset({"shoe_size"})}, "grant.unknown_field"),
    ({"valid_until": NOW - timedelta(days=2)}, "grant.period"),
    ({"valid_from": NOW.replace(tzinfo=None)}, "datetime.aware"),
])
def test_grants_are_checked_when_built(changes: dict[str, object], rule: str) -> None:
    with pytest.raises(InputError) as caught:
        replace(grant(), **changes)  # type: ignore[arg-type]
    assert caught.value.rule == rule
