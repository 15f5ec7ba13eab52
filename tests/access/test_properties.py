"""Properties of every decision, under the default policy and under careless hand-built ones
(which load_policy would refuse): the decision function keeps its promises on its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from cutru.access import (
    ACTIONS,
    NO_PERSONAL_DATA,
    NOT_FOUND,
    REASONS,
    AccessRequest,
    Declaration,
    Grant,
    Jurisdiction,
    Policy,
    Principal,
    PrincipalKind,
    Purpose,
    Requirement,
    Resource,
    ResourceKind,
    Unit,
    decide,
)
from cutru.domain.fields import FIELDS_BY_NAME, SENSITIVE_FIELDS, FieldClass
from tests.access.world import BA_DINH, HOAN_KIEM, NOW, POLICY, SAI_GON

ORDER = ("purpose", "declaration", "action", "secret_label", "jurisdiction", "grant", "fields")
PEOPLE = ("P1", "P2")
IDS = ("a", "b")
ALL_FIELDS = sorted(FIELDS_BY_NAME)

units = st.sampled_from([None, Unit.commune(HOAN_KIEM), Unit.commune(SAI_GON),
                         Unit.province("01"), Unit.province("79"), Unit.national()])
principals = st.builds(
    Principal, id=st.sampled_from(IDS), kind=st.sampled_from(PrincipalKind), unit=units,
    functions=st.frozensets(st.sampled_from(["investigation", "tax", "social_insurance"])),
    person_key=st.sampled_from([None, *PEOPLE]), clearance=st.booleans())
field_sets = st.frozensets(st.sampled_from(ALL_FIELDS))
moments = st.sampled_from([NOW - timedelta(days=60), NOW, NOW + timedelta(days=60)])
grants = st.builds(
    lambda start, days, **kw: Grant(valid_from=start, valid_until=start + timedelta(days=days),
                                    **kw),
    start=moments, days=st.integers(1, 90), id=st.just("G"), person_key=st.sampled_from(PEOPLE),
    fields=field_sets, approved=st.booleans(), grantee=st.sampled_from(IDS))
careless_purposes = st.builds(
    lambda name, fields, **kw: Purpose(name=name, title=name, title_vi="", basis="none",
                                       classes=frozenset(), named=fields, fields=fields, **kw),
    name=st.sampled_from(["p", "q", "r"]), fields=field_sets,
    principals=st.frozensets(st.sampled_from(PrincipalKind), min_size=1),
    functions=st.frozensets(st.sampled_from(["investigation", "tax"])),
    requires=st.frozensets(st.sampled_from(Requirement)), sensitive=st.booleans(),
    jurisdiction=st.sampled_from(Jurisdiction),
    actions=st.frozensets(st.sampled_from(sorted(ACTIONS)), min_size=1))
policies = st.just(POLICY) | st.lists(careless_purposes, min_size=1, max_size=3).map(
    lambda ps: Policy("hand-built", MappingProxyType({p.name: p for p in ps})))
resources = st.builds(
    Resource, kind=st.sampled_from(ResourceKind), person_key=st.sampled_from([None, *PEOPLE]),
    commune_codes=st.frozensets(st.sampled_from([HOAN_KIEM, BA_DINH, SAI_GON])),
    secret_label=st.booleans(), exists=st.booleans())


Situation = tuple[Principal, AccessRequest, Resource, Policy, datetime]


@st.composite
def situations(draw: st.DrawFn) -> Situation:
    """Half of them anything at all; half a principal doing what its purpose is for."""
    policy = draw(policies)
    name = draw(st.sampled_from([*policy.purposes, "", "unknown"]))
    purpose = policy.purposes.get(name)
    if purpose is None or draw(st.booleans()):
        declared = Declaration(
            name, draw(st.sampled_from([None, "", "Law 68/2020/QH14"])),
            draw(st.sampled_from([None, "C-1"])), draw(st.none() | grants))
        action = draw(st.sampled_from([*sorted(ACTIONS), "bogus"]))
        return draw(principals), AccessRequest(action, declared), draw(resources), policy, draw(
            moments)
    return draw(cooperative(policy, purpose))


@st.composite
def cooperative(draw: st.DrawFn, policy: Policy, purpose: Purpose) -> Situation:
    who = Principal(draw(st.sampled_from(IDS)), draw(st.sampled_from(sorted(purpose.principals))),
                    draw(units), functions=purpose.functions,
                    person_key=draw(st.sampled_from(PEOPLE)), clearance=draw(st.booleans()))
    action = draw(st.sampled_from(sorted(purpose.actions)))
    key = draw(st.sampled_from([who.person_key, *PEOPLE]))
    resource = Resource(draw(st.sampled_from(sorted(ACTIONS[action]))), key,
                        draw(st.frozensets(st.sampled_from([HOAN_KIEM, BA_DINH, SAI_GON]),
                                           min_size=1)), draw(st.booleans()))
    now = draw(moments)
    grant = Grant("G", draw(st.sampled_from([key or "P1", "P2"])), draw(field_sets),
                  now - timedelta(days=1), now + timedelta(days=draw(st.integers(1, 9))),
                  True, who.id)
    declared = Declaration(purpose.name, "Law 68/2020/QH14", "C-1", grant)
    return who, AccessRequest(action, declared), resource, policy, now


def _purpose(policy: Policy, request: AccessRequest) -> Purpose | None:
    return policy.purposes.get(request.purpose.kind)


@settings(max_examples=600, deadline=None)
@given(situations())
def test_every_decision_keeps_its_promises(
        s: Situation) -> None:
    who, request, resource, policy, now = s
    d = decide(who, request, resource, policy, now=now)
    purpose = _purpose(policy, request)

    assert d.reason in REASONS and d.allowed == d.reason.startswith("allowed.")
    assert d.checks[0] == "purpose" and list(d.checks) == [c for c in ORDER if c in d.checks]
    if not d.allowed:
        assert d.fields == frozenset()
        return
    assert purpose is not None and d.checks[-1] == "fields"
    # never a sensitive field for a purpose that does not name it
    if not purpose.sensitive:
        assert not d.fields & SENSITIVE_FIELDS
    assert d.fields <= purpose.fields
    # never any personal field to an operator, an auditor or an administrator
    if who.kind in NO_PERSONAL_DATA:
        assert d.fields == frozenset()
    if who.kind is PrincipalKind.CITIZEN:
        assert who.person_key is not None and resource.person_key == who.person_key
    if Requirement.GRANT in purpose.requires:
        grant = request.purpose.grant
        assert grant is not None and grant.approved and grant.grantee == who.id
        assert grant.person_key == resource.person_key and d.fields <= grant.fields
        assert grant.valid_from <= now < grant.valid_until
    assert resource.exists and (not resource.secret_label or who.clearance)


@settings(max_examples=300, deadline=None)
@given(situations())
def test_a_hidden_record_is_answered_as_an_absent_one(
        s: Situation) -> None:
    who, request, resource, policy, now = s
    uncleared = Principal(who.id, who.kind, who.unit, who.role, who.functions, who.person_key,
                          clearance=False)
    hidden = Resource(resource.kind, resource.person_key, resource.commune_codes, True)
    absent = Resource.absent(resource.kind, resource.person_key)
    a = decide(uncleared, request, hidden, policy, now=now)
    b = decide(uncleared, request, absent, policy, now=now)
    assert a == b
    assert not a.allowed
    if a.reason == NOT_FOUND:
        assert (a.message, a.jurisdiction) == ("not found", "")


@settings(max_examples=150, deadline=None)
@given(principals, st.sampled_from(sorted(ACTIONS)))
def test_the_default_policy_never_gives_the_system_roles_personal_data(
        who: Principal, action: str) -> None:
    for name in POLICY.purposes:
        for kind in ResourceKind:
            d = decide(who, AccessRequest(action, Declaration(name, "basis", "C-1")),
                       Resource(kind, "P1", frozenset({HOAN_KIEM})), POLICY, now=NOW)
            if who.kind in NO_PERSONAL_DATA or not d.allowed:
                assert d.fields == frozenset()
            assert not (d.fields & SENSITIVE_FIELDS) or POLICY.purposes[name].sensitive


def test_sensitive_class_is_the_sensitive_fields() -> None:
    by_class = {n for n, f in FIELDS_BY_NAME.items() if f.field_class is FieldClass.SENSITIVE}
    assert by_class == SENSITIVE_FIELDS
