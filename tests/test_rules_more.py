"""The remaining rules, each with a refused and (where it has one) an accepted case."""

from __future__ import annotations

from typing import Any

import pytest

from cutru.domain.dates import PartialDate
from cutru.errors import AddressError, ImportLineError, InputError, RuleViolation
from cutru.services import importer
from cutru.services.registry import Registry
from tests.helpers import BA_DINH, BASIS, HOAN_KIEM, OFFICER, SAI_GON, household_line, person
from tests.test_transactions import refused, seed_family


def test_child_under_6_registers_with_a_parent_without_consent(registry: Registry) -> None:
    k = seed_family(registry)
    baby = registry.declare_person(OFFICER, BASIS, person("Trần Bé", "2025-03-01"))
    kw: dict[str, Any] = dict(household_key=k["household"], basis="child_under_6",
                              commune_code="", street="")
    refused(registry, RuleViolation, "permanent.child_under_6_in_force",
            lambda: registry.register_permanent(OFFICER, BASIS, baby, relationship="child",
                                                start="2026-06-30", **kw))
    refused(registry, RuleViolation, "permanent.child_under_6_parent",
            lambda: registry.register_permanent(OFFICER, BASIS, baby, relationship="sibling",
                                                start="2026-07-02", **kw))
    registry.register_permanent(OFFICER, BASIS, baby, relationship="child", start="2026-07-02",
                                **kw)
    older = registry.declare_person(OFFICER, BASIS, person("Trần Lớn", "2015-03-01"))
    refused(registry, RuleViolation, "permanent.child_under_6_age",
            lambda: registry.register_permanent(OFFICER, BASIS, older, relationship="child",
                                                start="2026-07-02", **kw))


def test_joining_without_consent_and_renting_without_owner(registry: Registry) -> None:
    k = seed_family(registry)
    guest = registry.declare_person(OFFICER, BASIS, person("Khách Trọ", "1990-01-01"))
    refused(registry, RuleViolation, "permanent.join_consent",
            lambda: registry.register_permanent(
                OFFICER, BASIS, guest, household_key=k["household"],
                relationship="non_relative", basis="own_residence", start="2026-01-01",
                commune_code="", street=""))
    refused(registry, RuleViolation, "permanent.owner_consent",
            lambda: registry.register_permanent(
                OFFICER, BASIS, guest, basis="rented", commune_code=BA_DINH, street="2 Lý",
                start="2026-01-01", floor_area_m2=50))
    refused(registry, RuleViolation, "permanent.relative_household",
            lambda: registry.register_permanent(
                OFFICER, BASIS, guest, basis="relative", commune_code=BA_DINH, street="2 Lý",
                start="2026-01-01", head_consent=True, owner_consent=True))
    refused(registry, RuleViolation, "household.exactly_one_head",
            lambda: registry.register_permanent(
                OFFICER, BASIS, guest, household_key=k["household"], relationship="head",
                basis="relative", start="2026-01-01", head_consent=True, owner_consent=True,
                commune_code="", street=""))
    refused(registry, RuleViolation, "permanent.already_registered",
            lambda: registry.register_permanent(
                OFFICER, BASIS, k["child"], basis="own_residence", commune_code=HOAN_KIEM,
                street="12 Hàng Bạc", start="2026-01-01"))


def test_separation_needs_an_adult_and_someone_remaining(registry: Registry) -> None:
    dad, kid = person("Hồ Cha", "1980-01-01"), person("Hồ Con", "2015-01-01")
    importer.import_records(registry.runner, [(1, household_line(
        members=[("head", dad), ("child", kid)]))], actor=OFFICER)
    d, c = registry.find(dad["id_number"]), registry.find(kid["id_number"])
    hh = registry.person(d)["household"]["key"]
    refused(registry, RuleViolation, "separation.capacity",
            lambda: registry.separate_household(OFFICER, BASIS, hh, member_keys=[c],
                                                new_head_key=c, relationships={},
                                                head_consent=True, owner_consent=True))
    refused(registry, InputError, "members.belong",
            lambda: registry.separate_household(OFFICER, BASIS, hh, member_keys=["Pnobody"],
                                                new_head_key="Pnobody", relationships={}))


def test_household_head_must_be_adult_when_a_member_is(registry: Registry) -> None:
    kid, adult = person("Ngô Nhỏ", "2014-01-01"), person("Ngô Lớn", "1970-01-01")
    line = household_line(members=[("head", kid), ("parent", adult)])
    with pytest.raises(ImportLineError) as info:
        importer.import_records(registry.runner, [(1, line)], actor=OFFICER)
    assert info.value.rule == "household.head_capacity" and info.value.line == 1
    assert registry.journal_length() == 0
    two_heads = household_line(members=[("head", person()), ("head", person())])
    with pytest.raises(ImportLineError) as info:
        importer.import_records(registry.runner, [(7, two_heads)], actor=OFFICER)
    assert info.value.rule == "household.exactly_one_head" and info.value.line == 7
    k = seed_family(registry)
    refused(registry, RuleViolation, "household.head_is_member",
            lambda: registry.change_head(OFFICER, BASIS, k["household"], "Poutsider", {}))


def test_term_and_extension_edges(registry: Registry) -> None:
    k = seed_family(registry)
    refused(registry, RuleViolation, "temporary.term_positive",
            lambda: registry.register_temporary(OFFICER, BASIS, k["child"],
                                                commune_code=SAI_GON, street="1 Lê Lợi",
                                                start="2026-05-01", term_end="2026-04-01"))
    registry.register_temporary(OFFICER, BASIS, k["child"], commune_code=SAI_GON,
                                street="1 Lê Lợi", start="2026-05-01", term_end="2027-05-01")
    refused(registry, RuleViolation, "temporary.extension_later",
            lambda: registry.extend_temporary(OFFICER, BASIS, k["child"],
                                              new_term_end="2027-04-01",
                                              applied_on="2027-01-01"))
    refused(registry, RuleViolation, "temporary.term_max_2_years",
            lambda: registry.extend_temporary(OFFICER, BASIS, k["child"],
                                              new_term_end="2029-06-01",
                                              applied_on="2027-01-01"))
    refused(registry, RuleViolation, "absence.registered_elsewhere",
            lambda: registry.declare_absence(OFFICER, BASIS, k["child"], category="other",
                                             start="2026-06-01", end="2027-07-01",
                                             destination="TP HCM", reason="làm việc"))


def test_stay_order_and_confirmation_without_residence(registry: Registry) -> None:
    refused(registry, RuleViolation, "stay.period_order",
            lambda: registry.notify_stay(OFFICER, BASIS, commune_code=SAI_GON, street="1 A",
                                         full_name="X", document_number="C1",
                                         arrival="2026-05-05T10:00", departure="2026-05-01",
                                         reason="r", notified_at="2026-05-05T11:00"))
    nobody = registry.declare_person(OFFICER, BASIS, person("Chưa Có", "1999-01-01"))
    refused(registry, RuleViolation, "confirmation.has_residence",
            lambda: registry.confirm_residence(OFFICER, BASIS, nobody))


@pytest.mark.parametrize(("data", "field", "rule"), [
    ({"full_name": ""}, "full_name", "required"),
    ({"birth_date": "1990-13-01"}, "birth_date", "date.calendar"),
    ({"birth_date": "31/01/1990"}, "birth_date", "date.format"),
    ({"birth_date": "2090-01-01"}, "birth_date", "date.not_future"),
    ({"sex": "x"}, "sex", "enum"),
    ({"marital_status": "complicated"}, "marital_status", "enum"),
    ({"religion_x": "a"}, "religion_x", "field.unknown"),
    ({"father": {"full_name": "A", "age": 3}}, "father.age", "object.unknown_key"),
    ({"father": {"full_name": "A", "id_number": "12"}}, "father.id_number", "id_number.format"),
    ({"old_id_card": {"number": "12ab"}}, "old_id_card.number", "old_id_card.format"),
    ({"id_number": "999085000001"}, "id_number", "id_number.region"),
])
def test_bad_person_input_names_field_and_rule(registry: Registry, data: dict[str, Any],
                                               field: str, rule: str) -> None:
    p = {**person(), **data}
    err = refused(registry, InputError, rule, lambda: registry.declare_person(OFFICER, BASIS, p))
    assert err.field == field


def test_pre2025_address_is_mapped_or_refused(registry: Registry) -> None:
    line = household_line()
    line["old_province_code"] = "01"
    importer.import_records(registry.runner, [(1, line)], actor=OFFICER)
    bad = household_line(commune="00070")
    bad["old_province_code"] = "79"  # Hoàn Kiếm was never in Hồ Chí Minh City
    with pytest.raises(ImportLineError) as info:
        importer.import_records(registry.runner, [(1, bad)], actor=OFFICER)
    assert info.value.rule == "address.pre2025_unmappable"
    with pytest.raises(AddressError):
        from cutru.domain.units import commune
        commune("00001")


def test_partial_birth_dates() -> None:
    assert PartialDate.parse("1941").earliest().isoformat() == "1941-01-01"
    assert str(PartialDate.parse("1941-07")) == "1941-07"
