"""The decision table: every principal kind × purpose × action × placement (inside/outside the
principal's reach) × state-secret label and clearance × declaration (complete, or lacking
each thing it must carry in turn) × grant field class, against expectations written here
independently of the policy file.

``SPEC`` says what the default policy must allow, in the words of docs/access.md; ``expect``
applies the documented decision order to it. A change to the default policy that is not also
made here fails, naming the rows that changed.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import pytest

from cutru.access import (
    ACTIONS,
    AccessRequest,
    Declaration,
    Grant,
    Principal,
    PrincipalKind,
    Resource,
    ResourceKind,
    decide,
)
from cutru.domain.fields import SENSITIVE_FIELDS, FieldClass
from tests.access.world import (
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
    principal,
)

REGISTRATION_WRITES = frozenset({
    "person.declare", "person.adjust", "person.death", "person.missing", "permanent.register",
    "permanent.deregister", "temporary.register", "temporary.extend", "temporary.deregister",
    "stay.notify", "absence.declare", "correction.request", "residence.confirm",
    "household.register", "household.separate", "household.change_head",
})
NON_SENSITIVE = ("identity", "residence", "family", "civil", "contact")
ALL_SENSITIVE = frozenset({"ethnicity", "religion", "criminal_record", "violation_record",
                           "preventive_measures", "expunged_convictions", "wanted_decisions"})
PROCEDURAL_SENSITIVE = frozenset({"criminal_record", "violation_record", "preventive_measures",
                                  "wanted_decisions"})


@dataclass(frozen=True)
class Spec:
    principals: frozenset[PrincipalKind]
    requires: tuple[str, ...]  # in the order the declaration check reports what is missing
    actions: frozenset[str]
    classes: tuple[str, ...] = ()
    sensitive: frozenset[str] = frozenset()  # the sensitive fields the purpose names
    scope: str = "own_unit"
    functions: frozenset[str] = frozenset()

    @property
    def fields(self) -> frozenset[str]:
        return fields_of(*self.classes) | self.sensitive


SPEC = {
    "registration": Spec(
        frozenset({K.OFFICER, K.COMMUNE_POLICE_HEAD}), ("legal_basis",),
        frozenset({"read", "search"}) | REGISTRATION_WRITES, NON_SENSITIVE,
        frozenset({"ethnicity", "religion"})),
    "correction_review": Spec(
        frozenset({K.COMMUNE_POLICE_HEAD}), ("legal_basis",),
        frozenset({"read", "approve_correction"}), NON_SENSITIVE,
        frozenset({"ethnicity", "religion"})),
    "third_party_review": Spec(
        frozenset({K.COMMUNE_POLICE_HEAD}), ("legal_basis",),
        frozenset({"read", "decide_third_party"}), ("identity", "residence")),
    "proceedings": Spec(
        frozenset({K.AGENCY_PROCEDURAL}), ("legal_basis", "case_number"),
        frozenset({"read", "search"}), NON_SENSITIVE, PROCEDURAL_SENSITIVE, "national",
        frozenset({"investigation", "prosecution", "court", "judgment_enforcement"})),
    "state_duty": Spec(
        frozenset({K.AGENCY_STATE}), ("legal_basis",), frozenset({"read", "search"}),
        ("identity", "residence")),
    "tax_administration": Spec(
        frozenset({K.AGENCY_STATE}), ("legal_basis",), frozenset({"read", "search"}),
        ("identity", "residence", "contact"), functions=frozenset({"tax"})),
    "social_insurance": Spec(
        frozenset({K.AGENCY_STATE}), ("legal_basis",), frozenset({"read", "search"}),
        ("identity", "residence", "family", "civil"),
        functions=frozenset({"social_insurance"})),
    "administrative_procedure": Spec(
        frozenset({K.AGENCY_STATE}), ("legal_basis", "case_number"), frozenset({"read"}),
        ("identity", "residence"), scope="national"),
    "own_information": Spec(
        frozenset({K.CITIZEN}), (), frozenset({"read", "access_log_read"}), NON_SENSITIVE,
        ALL_SENSITIVE, "own_record"),
    "third_party_consent": Spec(
        frozenset({K.THIRD_PARTY}), ("grant",), frozenset({"read"}), NON_SENSITIVE,
        scope="grant"),
    "backup_operations": Spec(
        frozenset({K.OPERATOR}), ("legal_basis",),
        frozenset({"backup_operate", "backup_verify", "restore_drill", "restore"}),
        scope="national"),
    "audit_review": Spec(
        frozenset({K.AUDITOR}), ("legal_basis",), frozenset({"audit_read"}), scope="national"),
    "identity_administration": Spec(
        frozenset({K.ADMINISTRATOR}), ("legal_basis",), frozenset({"principal_manage"}),
        scope="national"),
}

R = ResourceKind
#: The resource each action naturally applies to (mismatches are pinned by hand-written rows).
NATURAL = {
    **{a: R.PERSON for a in ("read", "search", "approve_correction", "decide_third_party")},
    **{a: R.PERSON for a in REGISTRATION_WRITES if not a.startswith("household.")},
    **{a: R.HOUSEHOLD for a in REGISTRATION_WRITES if a.startswith("household.")},
    "address.readdress": R.COMMUNE,
    "access_log_read": R.AUDIT, "audit_read": R.AUDIT,
    **{a: R.BACKUP for a in ("backup_operate", "backup_verify", "restore_drill", "restore")},
    "principal_manage": R.PRINCIPAL,
}
PERSONAL = {R.PERSON, R.HOUSEHOLD, R.COMMUNE}
NO_PERSONAL_DATA = {K.OPERATOR, K.AUDITOR, K.ADMINISTRATOR}
_MISSING = {"legal_basis": "denied.legal_basis_missing",
            "case_number": "denied.case_number_missing", "grant": "denied.grant_missing"}
#: Grant field sets tried: every class, and every field.
GRANT_CLASSES: tuple[str, ...] = (*(c.value for c in FieldClass), "all")


@dataclass(frozen=True)
class Row:
    kind: PrincipalKind
    purpose: str
    action: str
    inside: bool
    label: bool
    clearance: bool
    missing: str | None  # what the declaration lacks (None: complete)
    grant_class: str | None

    def __str__(self) -> str:
        return (f"{self.kind.value}/{self.purpose}/{self.action}/"
                f"{'inside' if self.inside else 'outside'}/label={self.label}/"
                f"clearance={self.clearance}/missing={self.missing}/grant={self.grant_class}")


@dataclass(frozen=True)
class Outcome:
    allowed: bool
    reason: str
    fields: frozenset[str]
    checks: tuple[str, ...]


def rows(purpose: str) -> Iterator[Row]:
    spec = SPEC[purpose]
    declarations = (None, *spec.requires)
    grants: tuple[str | None, ...] = GRANT_CLASSES if "grant" in spec.requires else (None,)
    for kind, action, inside, (label, clearance), missing, grant_class in itertools.product(
            K, sorted(ACTIONS), (True, False), itertools.product((False, True), repeat=2),
            declarations, grants):
        yield Row(kind, purpose, action, inside, label, clearance, missing, grant_class)


def grant_fields(grant_class: str) -> frozenset[str]:
    return fields_of(*NON_SENSITIVE, "sensitive") if grant_class == "all" else fields_of(
        grant_class)


def expect(row: Row) -> Outcome:
    """The documented decision order, applied to ``SPEC``."""
    spec, checks = SPEC[row.purpose], ["purpose"]

    def no(reason: str) -> Outcome:
        return Outcome(False, reason, frozenset(), tuple(checks))

    if row.kind not in spec.principals:
        return no("denied.purpose_not_for_principal")
    if spec.functions and not principal(row.kind).functions & spec.functions:
        return no("denied.function_not_held")
    checks.append("declaration")
    if row.missing is not None:
        return no(_MISSING[row.missing])
    checks.append("action")
    if row.action not in spec.actions:
        return no("denied.action_not_allowed")
    checks.append("secret_label")
    if row.label and not row.clearance:
        return no("not_found")
    checks.append("jurisdiction")
    if spec.scope == "own_unit" and not row.inside and NATURAL[row.action] in PERSONAL:
        return no("denied.outside_jurisdiction")
    if "grant" in spec.requires:
        checks.append("grant")
        if not row.inside:
            return no("denied.grant_other_person")
    checks.append("fields")
    personal = NATURAL[row.action] in PERSONAL
    if personal and row.kind in NO_PERSONAL_DATA:
        return no(f"denied.{row.kind.value}_no_personal_data")
    if spec.scope == "own_record" and not row.inside:
        return no("denied.not_own_record")
    fields = spec.fields if personal else frozenset()
    if row.grant_class is not None:
        fields &= grant_fields(row.grant_class)
    if personal and not fields:
        return no("denied.no_fields")
    reason = ("allowed.grant" if "grant" in spec.requires else
              "allowed.own_record" if spec.scope == "own_record" else
              "allowed.case" if "case_number" in spec.requires else "allowed.duty")
    return Outcome(True, reason, fields, tuple(checks))


def resource(row: Row) -> Resource:
    kind = NATURAL[row.action]
    key = ME if row.inside else OTHER
    if kind in PERSONAL:
        return Resource(kind, key, frozenset({HOAN_KIEM if row.inside else SAI_GON}), row.label)
    if kind is R.AUDIT:  # an access log is about one person
        return Resource(kind, key, secret_label=row.label)
    return Resource(kind, secret_label=row.label)


def declaration(row: Row) -> Declaration:
    spec = SPEC[row.purpose]
    given = set(spec.requires) - {row.missing}
    g: Grant | None = None
    if "grant" in given and row.grant_class is not None:
        g = grant(grant_fields(row.grant_class))
    return Declaration(row.purpose, BASIS if "legal_basis" in given else None,
                       CASE if "case_number" in given else None, g)


def actual(row: Row) -> Outcome:
    who: Principal = principal(row.kind, clearance=row.clearance)
    d = decide(who, AccessRequest(row.action, declaration(row)), resource(row), POLICY, now=NOW)
    return Outcome(d.allowed, d.reason, d.fields, d.checks)


def difference(want: Outcome, got: Outcome) -> str:
    parts = [f"expected {want.reason}, got {got.reason}"]
    if want.fields != got.fields:
        parts.append(f"fields missing {sorted(want.fields - got.fields)}, "
                     f"extra {sorted(got.fields - want.fields)}")
    if want.checks != got.checks:
        parts.append(f"checks expected {want.checks}, ran {got.checks}")
    return "; ".join(parts)


@cache
def reasons_seen() -> Counter[str]:
    return Counter(expect(row).reason for purpose in SPEC for row in rows(purpose))


def test_spec_covers_the_default_policy() -> None:
    assert set(SPEC) == set(POLICY.purposes)
    assert set(NATURAL) == set(ACTIONS)
    assert all(kind in ACTIONS[action] for action, kind in NATURAL.items())
    assert frozenset(SENSITIVE_FIELDS) == ALL_SENSITIVE


@pytest.mark.parametrize("purpose", sorted(SPEC))
def test_decision_table(purpose: str) -> None:
    wrong = []
    count = 0
    for row in rows(purpose):
        count += 1
        want, got = expect(row), actual(row)
        if want != got:
            wrong.append(f"{row}\n    {difference(want, got)}")
    assert not wrong, f"{len(wrong)} of {count} rows differ:\n" + "\n".join(wrong[:10])


def test_table_reaches_every_step_of_the_order() -> None:
    seen = reasons_seen()
    for reason in ("denied.purpose_not_for_principal", "denied.function_not_held",
                   "denied.legal_basis_missing", "denied.case_number_missing",
                   "denied.grant_missing", "denied.action_not_allowed", "not_found",
                   "denied.outside_jurisdiction", "denied.grant_other_person",
                   "denied.not_own_record", "denied.no_fields", "allowed.duty",
                   "allowed.case", "allowed.own_record", "allowed.grant"):
        assert seen[reason] > 0, reason
    assert sum(seen.values()) > 50_000
