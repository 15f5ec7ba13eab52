"""Every residence transaction, with valid and invalid cases, on SQLite and PostgreSQL.

Each invalid case asserts the typed error, the rule it names, and that nothing was written
(the journal did not grow)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cutru.errors import InputError, NotFound, RuleViolation
from cutru.services import importer
from cutru.services.registry import Registry
from tests.helpers import BA_DINH, BASIS, HEAD, HOAN_KIEM, OFFICER, SAI_GON, household_line, person


def seed_family(reg: Registry) -> dict[str, str]:
    """A three-person household in Hoàn Kiếm; returns name -> person key (and 'household')."""
    father = person("Trần Văn Bình", "1970-02-01", "male")
    mother = person("Lê Thị Hoa", "1972-06-15", "female")
    child = person("Trần Minh Khoa", "2001-09-30", "male")
    line = household_line(members=[("head", father), ("spouse", mother), ("child", child)])
    importer.import_records(reg.runner, [(1, line)], actor=OFFICER)
    keys = {n: reg.find(p["id_number"]) for n, p in
            (("father", father), ("mother", mother), ("child", child))}
    keys["household"] = reg.person(keys["father"])["household"]["key"]
    return keys


def refused(reg: Registry, exc: type[Exception], rule: str, fn: Callable[[], Any]) -> Any:
    before = reg.journal_length()
    with pytest.raises(exc) as info:
        fn()
    assert getattr(info.value, "rule", None) == rule
    assert reg.journal_length() == before, "a refused operation must write nothing"
    return info.value


def test_household_import_gives_one_head_and_permanent_residences(registry: Registry) -> None:
    k = seed_family(registry)
    rec = registry.person(k["child"])
    assert [r["kind"] for r in rec["residences"]] == ["permanent"]
    hh = rec["household"]
    assert hh["head_key"] == k["father"]
    assert [m["relationship"] for m in hh["members"]] == ["head", "child", "spouse"] or \
        sorted(m["relationship"] for m in hh["members"]) == ["child", "head", "spouse"]
    assert rec["person"]["residence_file_no"] == hh["residence_file_no"]


def test_declare_person_validates_id_number(registry: Registry) -> None:
    p = person(birth="1990-01-01")
    p["birth_date"] = "1991-01-01"
    err = refused(registry, InputError, "id_number.birth_year",
                  lambda: registry.declare_person(OFFICER, BASIS, p))
    assert err.field == "id_number"
    key = registry.declare_person(OFFICER, BASIS, person())
    assert registry.person(key)["id_numbers"][0]["valid_to"] is None


def test_id_number_unique(registry: Registry) -> None:
    p = person()
    registry.declare_person(OFFICER, BASIS, p)
    refused(registry, RuleViolation, "person.id_number_unique",
            lambda: registry.declare_person(OFFICER, BASIS, {**p, "full_name": "Khác"}))


def test_permanent_registration_grounds(registry: Registry) -> None:
    k = seed_family(registry)
    grandma = registry.declare_person(OFFICER, BASIS, person("Phạm Thị Lan", "1945", "female"))
    refused(registry, RuleViolation, "permanent.relative_consent",
            lambda: registry.register_permanent(
                OFFICER, BASIS, grandma, household_key=k["household"], relationship="parent",
                basis="relative", start="2026-11-01", commune_code="", street=""))
    registry.register_permanent(OFFICER, BASIS, grandma, household_key=k["household"],
                                relationship="parent", basis="relative", start="2026-11-01",
                                head_consent=True, owner_consent=True, commune_code="",
                                street="")
    assert len(registry.household(k["household"])["members"]) == 4
    tenant = registry.declare_person(OFFICER, BASIS, person("Đỗ Văn Tú", "1995-01-01"))
    refused(registry, RuleViolation, "permanent.min_floor_area",
            lambda: registry.register_permanent(
                OFFICER, BASIS, tenant, basis="rented", commune_code=BA_DINH,
                street="5 Phan Đình Phùng", start="2026-11-01", owner_consent=True,
                floor_area_m2=7.5))
    registry.register_permanent(OFFICER, BASIS, tenant, basis="rented", commune_code=BA_DINH,
                                street="5 Phan Đình Phùng", start="2026-11-01",
                                owner_consent=True, floor_area_m2=20)


def test_moving_permanent_residence_ends_the_old_one(registry: Registry) -> None:
    k = seed_family(registry)
    refused(registry, RuleViolation, "household.head_leaving",
            lambda: registry.register_permanent(
                OFFICER, BASIS, k["father"], basis="own_residence", commune_code=BA_DINH,
                street="1 Hùng Vương", start="2026-11-02"))
    registry.register_permanent(OFFICER, BASIS, k["child"], basis="own_residence",
                                commune_code=BA_DINH, street="1 Hùng Vương", start="2026-11-02")
    res = registry.person(k["child"])["residences"]
    active = [r for r in res if r["status"] == "active"]
    assert len(active) == 1 and active[0]["commune_code"] == BA_DINH
    old = next(r for r in res if r["status"] == "deregistered")
    assert old["dereg_reason"] == "registered_elsewhere"
    assert registry.person(k["child"])["household"]["head_key"] == k["child"]


def test_temporary_registration_rules(registry: Registry) -> None:
    k = seed_family(registry)
    refused(registry, RuleViolation, "temporary.term_max_2_years",
            lambda: registry.register_temporary(
                OFFICER, BASIS, k["child"], commune_code=SAI_GON, street="3 Lê Lợi",
                start="2026-01-01", term_end="2028-01-02"))
    refused(registry, RuleViolation, "temporary.outside_permanent_commune",
            lambda: registry.register_temporary(
                OFFICER, BASIS, k["child"], commune_code=HOAN_KIEM, street="3 Lê Lợi",
                start="2026-01-01", term_end="2027-01-01"))
    registry.register_temporary(OFFICER, BASIS, k["child"], commune_code=SAI_GON,
                                street="3 Lê Lợi", start="2026-01-01", term_end="2028-01-01")
    refused(registry, RuleViolation, "temporary.extension_15_days",
            lambda: registry.extend_temporary(OFFICER, BASIS, k["child"],
                                              new_term_end="2029-01-01",
                                              applied_on="2027-12-20"))
    registry.extend_temporary(OFFICER, BASIS, k["child"], new_term_end="2029-01-01",
                              applied_on="2027-12-01")
    temp = [r for r in registry.person(k["child"])["residences"] if r["kind"] == "temporary"]
    assert temp[0]["term_end"] == "2029-01-01" and temp[0]["extensions"] == 1
    registry.deregister_temporary(OFFICER, BASIS, k["child"], reason="rental_ended",
                                  on="2026-12-01")
    refused(registry, RuleViolation, "temporary.none_active",
            lambda: registry.deregister_temporary(OFFICER, BASIS, k["child"],
                                                  reason="rental_ended", on="2026-12-02"))
    refused(registry, InputError, "enum",
            lambda: registry.deregister_temporary(OFFICER, BASIS, k["child"],
                                                  reason="bored", on="2026-12-02"))


def test_minor_temporary_needs_consent(registry: Registry) -> None:
    kid = registry.declare_person(OFFICER, BASIS, person("Bé Na", "2015-05-05", "female"))
    refused(registry, RuleViolation, "temporary.minor_consent",
            lambda: registry.register_temporary(
                OFFICER, BASIS, kid, commune_code=SAI_GON, street="3 Lê Lợi",
                start="2026-01-01", term_end="2026-06-01"))
    registry.register_temporary(OFFICER, BASIS, kid, commune_code=SAI_GON, street="3 Lê Lợi",
                                start="2026-01-01", term_end="2026-06-01",
                                guardian_consent=True)


def test_stay_notification(registry: Registry) -> None:
    kw: dict[str, Any] = dict(commune_code=SAI_GON, street="9 Đồng Khởi",
                              full_name="Nguyễn Khách", document_number="B1234567",
                              reason="du lịch")
    refused(registry, RuleViolation, "stay.under_30_days",
            lambda: registry.notify_stay(OFFICER, BASIS, arrival="2026-11-01T10:00",
                                         departure="2026-12-05",
                                         notified_at="2026-11-01T12:00", **kw))
    refused(registry, RuleViolation, "stay.notify_deadline",
            lambda: registry.notify_stay(OFFICER, BASIS, arrival="2026-11-01T10:00",
                                         departure="2026-11-05",
                                         notified_at="2026-11-01T23:30", **kw))
    registry.notify_stay(OFFICER, BASIS, arrival="2026-11-01T23:40", departure="2026-11-05",
                         notified_at="2026-11-02T07:50", **kw)
    refused(registry, InputError, "required",
            lambda: registry.notify_stay(OFFICER, BASIS, arrival="2026-11-01T10:00",
                                         departure="2026-11-05",
                                         notified_at="2026-11-01T11:00",
                                         **{**kw, "reason": " "}))


def test_absence_declaration(registry: Registry) -> None:
    k = seed_family(registry)
    refused(registry, RuleViolation, "absence.min_period",
            lambda: registry.declare_absence(OFFICER, BASIS, k["child"], category="other",
                                             start="2026-01-01", end="2026-06-01",
                                             destination="Đà Nẵng", reason="làm việc"))
    registry.declare_absence(OFFICER, BASIS, k["child"], category="military_age",
                             start="2026-01-01", end="2026-04-01", destination="Đà Nẵng",
                             reason="học")
    loner = registry.declare_person(OFFICER, BASIS, person("Vô Gia", "1980-01-01"))
    refused(registry, RuleViolation, "absence.requires_permanent",
            lambda: registry.declare_absence(OFFICER, BASIS, loner, category="other",
                                             start="2026-01-01", end="2027-06-01",
                                             destination="Huế", reason="x"))


def test_permanent_deregistration_and_death(registry: Registry) -> None:
    k = seed_family(registry)
    refused(registry, RuleViolation, "household.head_leaving",
            lambda: registry.record_death(OFFICER, BASIS, k["father"], on="2026-10-01"))
    registry.record_death(OFFICER, BASIS, k["father"], on="2026-10-01",
                          new_head_key=k["mother"], relationships={k["child"]: "child"})
    hh = registry.household(k["household"])
    assert hh["head_key"] == k["mother"] and len(hh["members"]) == 2
    dead = registry.person(k["father"])
    assert dead["person"]["death_date"] == "2026-10-01"
    assert all(r["status"] == "deregistered" for r in dead["residences"])
    refused(registry, RuleViolation, "person.not_alive",
            lambda: registry.register_temporary(
                OFFICER, BASIS, k["father"], commune_code=SAI_GON, street="1",
                start="2026-11-01", term_end="2027-01-01"))
    registry.deregister_permanent(OFFICER, BASIS, k["child"], reason="settled_abroad",
                                  on="2026-11-01")
    refused(registry, RuleViolation, "permanent.none_active",
            lambda: registry.deregister_permanent(OFFICER, BASIS, k["child"],
                                                  reason="settled_abroad", on="2026-11-02"))


def test_household_separation(registry: Registry) -> None:
    k = seed_family(registry)
    refused(registry, RuleViolation, "separation.consent",
            lambda: registry.separate_household(OFFICER, BASIS, k["household"],
                                                member_keys=[k["child"]],
                                                new_head_key=k["child"], relationships={}))
    refused(registry, RuleViolation, "separation.not_head",
            lambda: registry.separate_household(OFFICER, BASIS, k["household"],
                                                member_keys=[k["father"]],
                                                new_head_key=k["father"], relationships={},
                                                head_consent=True, owner_consent=True))
    new = registry.separate_household(OFFICER, BASIS, k["household"], member_keys=[k["child"]],
                                      new_head_key=k["child"], relationships={},
                                      head_consent=True, owner_consent=True)
    assert registry.household(new)["head_key"] == k["child"]
    assert len(registry.household(k["household"])["members"]) == 2
    assert registry.household(new)["street"] == registry.household(k["household"])["street"]


def test_change_of_head(registry: Registry) -> None:
    k = seed_family(registry)
    refused(registry, InputError, "enum",
            lambda: registry.change_head(OFFICER, BASIS, k["household"], k["mother"], {}))
    registry.change_head(OFFICER, BASIS, k["household"], k["mother"],
                         {k["father"]: "spouse", k["child"]: "child"})
    hh = registry.household(k["household"])
    assert hh["head_key"] == k["mother"]
    assert sum(m["relationship"] == "head" for m in hh["members"]) == 1


def test_adjustment_and_correction_four_eyes(registry: Registry) -> None:
    k = seed_family(registry)
    refused(registry, RuleViolation, "adjustment.needs_correction",
            lambda: registry.adjust_information(OFFICER, BASIS, k["child"],
                                                {"full_name": "Trần Minh Khôi"}))
    registry.adjust_information(OFFICER, BASIS, k["child"],
                                {"occupation": "kỹ sư", "phone": "0912345678"})
    assert registry.person(k["child"])["person"]["occupation"] == "kỹ sư"
    refused(registry, InputError, "correction.document_required",
            lambda: registry.request_correction(
                OFFICER, BASIS, k["child"], {"full_name": "Trần Minh Khôi"}, doc_number="",
                doc_date="2026-10-01", doc_issuer="UBND", reason="sai chính tả"))
    corr = registry.request_correction(
        OFFICER, BASIS, k["child"], {"full_name": "Trần Minh Khôi"}, doc_number="123/QĐ",
        doc_date="2026-10-01", doc_issuer="UBND phường Hoàn Kiếm", reason="sai chính tả")
    assert registry.person(k["child"])["person"]["full_name"] == "Trần Minh Khoa"
    refused(registry, RuleViolation, "correction.four_eyes",
            lambda: registry.decide_correction(OFFICER, BASIS, corr, True))
    registry.decide_correction(HEAD, BASIS, corr, True)
    assert registry.person(k["child"])["person"]["full_name"] == "Trần Minh Khôi"
    refused(registry, RuleViolation, "correction.pending",
            lambda: registry.decide_correction(HEAD, BASIS, corr, True))


def test_correction_of_id_number_keeps_its_history(registry: Registry) -> None:
    k = seed_family(registry)
    new_id = person("x", "2001-01-01", "male")["id_number"]
    corr = registry.request_correction(
        OFFICER, BASIS, k["child"], {"id_number": new_id}, doc_number="9/QĐ",
        doc_date="2026-10-01", doc_issuer="Công an TP Hà Nội", reason="cấp lại")
    registry.decide_correction(HEAD, BASIS, corr, True)
    hist = registry.person(k["child"])["id_numbers"]
    assert len(hist) == 2 and sum(h["valid_to"] is None for h in hist) == 1
    assert registry.find(new_id) == k["child"]


def test_residence_confirmation_void_after_change(registry: Registry) -> None:
    k = seed_family(registry)
    conf = registry.confirm_residence(OFFICER, BASIS, k["child"])
    assert registry.confirmation_status(conf) == (True, "valid")
    registry.register_temporary(OFFICER, BASIS, k["child"], commune_code=SAI_GON,
                                street="3 Lê Lợi", start="2026-11-01", term_end="2027-11-01")
    valid, reason = registry.confirmation_status(conf)
    assert not valid and "changed" in reason


def test_readdress_keeps_history(registry: Registry, clock: Any) -> None:
    k = seed_family(registry)
    clock.advance(hours=1)
    registry.readdress(OFFICER, BASIS, old_commune_code=HOAN_KIEM, new_commune_code=BA_DINH)
    assert registry.household(k["household"])["commune_code"] == BA_DINH
    ops = [h["operation"] for h in registry.history(k["household"])]
    assert ops[-1] == "address.readdress"


def test_not_found(registry: Registry) -> None:
    with pytest.raises(NotFound):
        registry.find("001085000001")
