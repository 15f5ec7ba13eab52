"""The one access decision: may this principal do this, for this purpose, to this resource?

:func:`decide` runs its checks in a fixed order (``docs/access.md``, "The decision order") and
stops at the first that refuses. Every :class:`Decision` carries a stable reason code, a
message for people, the exact fields that may be returned, the jurisdiction it was made in and
the names of the checks that ran. The checks before ``secret_label`` never look at the record,
so a record hidden by a state-secret label is refused exactly like a record that is not there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

from cutru.access.policy import (
    ACTIONS,
    PERSONAL_RESOURCES,
    Jurisdiction,
    Policy,
    Purpose,
    Requirement,
    ResourceKind,
)
from cutru.access.principals import (
    COMMUNE_ONLY,
    NO_PERSONAL_DATA,
    Principal,
    PrincipalKind,
    Unit,
    UnitLevel,
)
from cutru.domain.fields import FIELDS_BY_NAME, SENSITIVE_FIELDS
from cutru.domain.units import commune
from cutru.errors import AccessDenied, InputError, NotFound

NOT_FOUND = "not_found"
#: The checks that run before the record is looked at.
_RECORD_BLIND = frozenset({"purpose", "declaration", "action"})

#: Every reason a decision can give, with what it means.
REASONS = MappingProxyType({
    "allowed.duty": "allowed: a duty declared with its legal basis",
    "allowed.case": "allowed: a case or administrative procedure declared with its number",
    "allowed.own_record": "allowed: a citizen's own record",
    "allowed.grant": "allowed: an approved third-party grant in force",
    "denied.no_purpose": "no purpose declared, or one the policy does not define",
    "denied.purpose_not_for_principal": "this kind of principal may not declare this purpose",
    "denied.function_not_held": "the agency holds none of the functions the purpose needs",
    "denied.legal_basis_missing": "the declaration states no legal basis",
    "denied.case_number_missing": "the declaration states no case number",
    "denied.grant_missing": "the declaration carries no grant",
    "denied.unknown_action": "no such action",
    "denied.action_not_allowed": "the purpose does not allow this action",
    "denied.action_not_for_resource": "the action does not apply to this kind of resource",
    NOT_FOUND: "no such record, or one labelled state-secret and the principal has no clearance",
    "denied.outside_jurisdiction": "the record is not registered in the principal's unit",
    "denied.grant_not_approved": "the grant has not been approved",
    "denied.grant_other_principal": "the grant was made to another principal",
    "denied.grant_other_person": "the grant is for another person",
    "denied.grant_not_yet_valid": "the grant is not in force yet",
    "denied.grant_expired": "the grant has expired",
    "denied.operator_no_personal_data": "operators never receive personal data",
    "denied.auditor_no_personal_data": "auditors never receive personal data",
    "denied.administrator_no_personal_data": "administrators never receive personal data",
    "denied.not_own_record": "a citizen may see only their own record",
    "denied.no_fields": "no field is left that this purpose (and grant) may return",
})


@dataclass(frozen=True)
class Grant:
    """A third party's approved access to one person's information, for a time.

    ``grantee`` is the principal the commune-police head granted it to: a grant is not a
    bearer token. ``valid_until`` is exclusive.
    """

    id: str
    person_key: str
    fields: frozenset[str]
    valid_from: datetime
    valid_until: datetime
    approved: bool
    grantee: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", frozenset(self.fields))
        for name in sorted(self.fields - FIELDS_BY_NAME.keys()):
            raise InputError(f"grant {self.id}: unknown field {name!r}", field="grant.fields",
                             rule="grant.unknown_field")
        _aware(self.valid_from, "grant.valid_from")
        _aware(self.valid_until, "grant.valid_until")
        if self.valid_until <= self.valid_from:
            raise InputError(f"grant {self.id} ends before it starts", field="grant.valid_until",
                             rule="grant.period")


@dataclass(frozen=True)
class Declaration:
    """What the requester declares: the purpose (its name in the policy) and its particulars.

    ``legal_basis`` is the duty or procedure and its legal basis as text; ``case_number`` the
    case or administrative-procedure file number; ``grant`` a third party's grant.
    """

    kind: str
    legal_basis: str | None = None
    case_number: str | None = None
    grant: Grant | None = None


@dataclass(frozen=True)
class AccessRequest:
    action: str
    purpose: Declaration


@dataclass(frozen=True)
class Resource:
    """What is asked for.

    ``commune_codes`` are the communes the record is registered in (permanent and temporary
    residence; a household's address) and, for a write, the commune the transaction acts in.
    ``exists=False`` (see :meth:`absent`) lets the caller ask about a record that is not
    there, so that the answer cannot tell it apart from a hidden one.
    """

    kind: ResourceKind
    person_key: str | None = None
    commune_codes: frozenset[str] = field(default_factory=frozenset)
    secret_label: bool = False
    exists: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ResourceKind(self.kind))
        object.__setattr__(self, "commune_codes", frozenset(self.commune_codes))
        for code in self.commune_codes:
            commune(code, field="commune_codes")

    @classmethod
    def absent(cls, kind: ResourceKind, person_key: str | None = None) -> Resource:
        """A record that does not exist: decided like any other, answered ``not_found``."""
        return cls(kind, person_key, exists=False)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    message: str
    fields: frozenset[str]
    jurisdiction: str
    checks: tuple[str, ...]

    @property
    def refused_for_every_record(self) -> bool:
        """Refused by a check that never looks at the record (``purpose``, ``declaration``,
        ``action``): the same refusal holds for every record, present, absent or hidden. A
        search can report it once instead of deciding record by record."""
        return not self.allowed and self.checks[-1] in _RECORD_BLIND

    def require(self, absent: NotFound) -> frozenset[str]:
        """The fields if allowed; else raise ``absent`` (the caller's own answer for a record
        that is not there) for ``not_found``, and :class:`AccessDenied` for any other refusal.
        """
        if self.allowed:
            return self.fields
        if self.reason == NOT_FOUND:
            raise absent
        raise AccessDenied(self.message, reason=self.reason)


class _Refusal(NamedTuple):
    reason: str
    message: str


@dataclass(frozen=True)
class _Ask:
    principal: Principal
    request: AccessRequest
    resource: Resource
    purpose: Purpose
    now: datetime

    @property
    def grant(self) -> Grant | None:
        return self.request.purpose.grant


def decide(principal: Principal, request: AccessRequest, resource: Resource, policy: Policy,
           *, now: datetime) -> Decision:
    """Decide a request. ``now`` (timezone-aware) is the trusted time grants are judged at.

    >>> from datetime import UTC
    >>> from cutru.access import *
    >>> officer = Principal("o-1", PrincipalKind.OFFICER, Unit.commune("00070"))
    >>> ask = AccessRequest("read", Declaration("registration", legal_basis="Law 68/2020"))
    >>> record = Resource(ResourceKind.PERSON, "P1", frozenset({"26740"}))
    >>> decide(officer, ask, record, default_policy(), now=datetime.now(UTC)).reason
    'denied.outside_jurisdiction'
    """
    _aware(now, "now")
    purpose = policy.purposes.get(request.purpose.kind)
    refusal = _check_purpose(principal, request.purpose.kind, purpose)
    if refusal is not None or purpose is None:
        refusal = refusal or _Refusal("denied.no_purpose", "no purpose declared")
        return Decision(False, *refusal, frozenset(), "", ("purpose",))
    ask = _Ask(principal, request, resource, purpose, now)
    checks = ["purpose"]
    for name, check in _CHECKS:
        if name == "grant" and Requirement.GRANT not in purpose.requires:
            continue
        checks.append(name)
        refusal = check(ask)
        if refusal:
            scope = "" if refusal.reason == NOT_FOUND else _scope(ask)
            return Decision(False, *refusal, frozenset(), scope, tuple(checks))
    checks.append("fields")
    outcome = _fields(ask)
    if isinstance(outcome, _Refusal):
        return Decision(False, *outcome, frozenset(), _scope(ask), tuple(checks))
    return Decision(True, _allowed_reason(purpose), _allowed_message(ask, outcome), outcome,
                    _scope(ask), tuple(checks))


def _check_purpose(principal: Principal, kind: str, purpose: Purpose | None) -> _Refusal | None:
    if purpose is None:
        return _Refusal("denied.no_purpose", f"no purpose {kind!r} in the access policy"
                        if kind else "no purpose declared")
    if principal.kind not in purpose.principals:
        return _Refusal("denied.purpose_not_for_principal",
                        f"a {principal.kind.value} may not declare purpose {purpose.name!r}")
    if purpose.functions and not principal.functions & purpose.functions:
        return _Refusal("denied.function_not_held", f"purpose {purpose.name!r} needs one of the "
                        f"functions {', '.join(sorted(purpose.functions))}")
    return None


def _check_declaration(ask: _Ask) -> _Refusal | None:
    declared, requires, name = ask.request.purpose, ask.purpose.requires, ask.purpose.name
    if Requirement.LEGAL_BASIS in requires and not _given(declared.legal_basis):
        return _Refusal("denied.legal_basis_missing", f"purpose {name!r}: state the legal basis")
    if Requirement.CASE_NUMBER in requires and not _given(declared.case_number):
        return _Refusal("denied.case_number_missing", f"purpose {name!r}: state the case number")
    if Requirement.GRANT in requires and declared.grant is None:
        return _Refusal("denied.grant_missing", f"purpose {name!r}: present an approved grant")
    return None


def _check_action(ask: _Ask) -> _Refusal | None:
    action, kind = ask.request.action, ask.resource.kind
    if action not in ACTIONS:
        return _Refusal("denied.unknown_action", f"no action {action!r}")
    if action not in ask.purpose.actions:
        return _Refusal("denied.action_not_allowed",
                        f"purpose {ask.purpose.name!r} does not allow {action!r}")
    if kind not in ACTIONS[action]:
        return _Refusal("denied.action_not_for_resource", f"{action!r} does not apply to a {kind}")
    return None


def _check_secret_label(ask: _Ask) -> _Refusal | None:
    hidden = ask.resource.secret_label and not ask.principal.clearance
    # The same words as for a record that is not there: nothing here may tell them apart.
    return _Refusal(NOT_FOUND, "not found") if hidden or not ask.resource.exists else None


def _check_jurisdiction(ask: _Ask) -> _Refusal | None:
    principal, rule = ask.principal, ask.purpose.jurisdiction
    if principal.kind in COMMUNE_ONLY and rule is not Jurisdiction.OWN_UNIT:
        return _outside(f"a {principal.kind.value} acts for its own commune only")
    if rule not in (Jurisdiction.OWN_UNIT, Jurisdiction.PROVINCE):
        return None
    unit = _acting_unit(principal, rule)
    if unit is None:
        return _outside(f"{principal.id} acts for no unit")
    if principal.kind in COMMUNE_ONLY and unit.level is not UnitLevel.COMMUNE:
        return _outside(f"a {principal.kind.value} acts for one commune, not {unit}")
    if not any(unit.contains(code) for code in ask.resource.commune_codes):
        return _outside(f"the record is not registered in {unit}")
    return None


def _check_grant(ask: _Ask) -> _Refusal | None:
    grant, now = ask.grant, ask.now
    assert grant is not None  # the declaration check requires one
    if not grant.approved:
        return _Refusal("denied.grant_not_approved", f"grant {grant.id} is not approved")
    if grant.grantee != ask.principal.id:
        return _Refusal("denied.grant_other_principal", f"grant {grant.id} is not yours")
    if grant.person_key != ask.resource.person_key:
        return _Refusal("denied.grant_other_person", f"grant {grant.id} is for another person")
    if now < grant.valid_from:
        return _Refusal("denied.grant_not_yet_valid",
                        f"grant {grant.id} is in force from {grant.valid_from.isoformat()}")
    if now >= grant.valid_until:
        return _Refusal("denied.grant_expired",
                        f"grant {grant.id} expired at {grant.valid_until.isoformat()}")
    return None


_CHECKS: tuple[tuple[str, Callable[[_Ask], _Refusal | None]], ...] = (
    ("declaration", _check_declaration),
    ("action", _check_action),
    ("secret_label", _check_secret_label),
    ("jurisdiction", _check_jurisdiction),
    ("grant", _check_grant),
)


def _fields(ask: _Ask) -> frozenset[str] | _Refusal:
    principal, purpose, resource = ask.principal, ask.purpose, ask.resource
    personal = resource.kind in PERSONAL_RESOURCES
    if personal and principal.kind in NO_PERSONAL_DATA:
        kind = principal.kind.value
        return _Refusal(f"denied.{kind}_no_personal_data", f"a {kind} never reads personal data")
    own_only = principal.kind is PrincipalKind.CITIZEN or (
        purpose.jurisdiction is Jurisdiction.OWN_RECORD)
    if own_only and (principal.person_key is None or resource.person_key != principal.person_key):
        return _Refusal("denied.not_own_record", "a citizen may see only their own record")
    if not personal:
        return frozenset()
    fields = purpose.fields
    if ask.grant is not None and Requirement.GRANT in purpose.requires:
        fields &= ask.grant.fields
    if not purpose.sensitive:
        fields -= SENSITIVE_FIELDS
    if not fields:
        return _Refusal("denied.no_fields", f"nothing that purpose {purpose.name!r} may return")
    return fields


def _acting_unit(principal: Principal, rule: Jurisdiction) -> Unit | None:
    unit = principal.unit
    if unit is None or rule is Jurisdiction.OWN_UNIT or unit.province_code is None:
        return unit
    return Unit.province(unit.province_code)


def _scope(ask: _Ask) -> str:
    rule = ask.purpose.jurisdiction
    if rule in (Jurisdiction.OWN_UNIT, Jurisdiction.PROVINCE):
        unit = _acting_unit(ask.principal, rule)
        return str(unit) if unit else "none"
    if rule is Jurisdiction.GRANT:
        return f"grant:{ask.grant.id}" if ask.grant else "grant"
    return rule.value


def _allowed_reason(purpose: Purpose) -> str:
    if Requirement.GRANT in purpose.requires:
        return "allowed.grant"
    if purpose.jurisdiction is Jurisdiction.OWN_RECORD:
        return "allowed.own_record"
    if Requirement.CASE_NUMBER in purpose.requires:
        return "allowed.case"
    return "allowed.duty"


def _allowed_message(ask: _Ask, fields: frozenset[str]) -> str:
    p = ask.principal
    return (f"{p.kind.value} {p.id} may {ask.request.action} for purpose {ask.purpose.name!r}"
            f" ({len(fields)} fields, {_scope(ask)})")


def _outside(message: str) -> _Refusal:
    return _Refusal("denied.outside_jurisdiction", message)


def _given(text: str | None) -> bool:
    return bool(text and text.strip())


def _aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"{name} must be a timezone-aware datetime", field=name,
                         rule="datetime.aware")
