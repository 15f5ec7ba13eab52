"""Residence transactions of the Law on Residence 68/2020 (domain.md §3)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from cutru.domain.dates import parse_date
from cutru.domain.enums import (
    AbsenceCategory,
    PermanentDeregistrationReason,
    Relationship,
    ResidenceBasis,
    TemporaryDeregistrationReason,
)
from cutru.domain.person import age_on
from cutru.domain.rules import (
    CIRCULAR,
    LAW,
    add_years,
    check_absence,
    check_extension,
    check_permanent_basis,
    check_stay,
    check_temporary,
    require_alive,
    violation,
)
from cutru.domain.units import Address
from cutru.errors import InputError
from cutru.services import households as hh_ops
from cutru.services.unit import VIETNAM_TZ, Tx
from cutru.store.schema import (
    absences,
    confirmations,
    households,
    persons,
    residences,
    stays,
)


def _enum(cls: Any, value: Any, field: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise InputError(f"{field} must be one of {[m.value for m in cls]}", field=field,
                         rule="enum") from None


def address(commune_code: str, street: str) -> Address:
    a = Address(commune_code=commune_code, street=(street or "").strip())
    a.validate()
    return a


def active(tx: Tx, person_key: str, kind: str) -> dict[str, Any] | None:
    rows = tx.select(residences, person_key=person_key, kind=kind, status="active")
    return rows[0] if rows else None


def _end(tx: Tx, res: dict[str, Any], reason: str, on: str) -> None:
    tx.rows.update(residences, res["key"], status="deregistered", dereg_reason=reason,
                   dereg_date=on)
    tx.touch(res["person_key"])


def register_permanent(tx: Tx, person_key: str, *, commune_code: str, street: str,
                       basis: str, start: str, household_key: str | None = None,
                       relationship: str | None = None, head_consent: bool = False,
                       owner_consent: bool = False, floor_area_m2: float | None = None,
                       min_area_m2: float = 8.0) -> str:
    """Art. 20-22. Joins ``household_key`` with ``relationship``, or founds a household."""
    person = tx.get(persons, person_key, "person")
    require_alive(person)
    basis_e = _enum(ResidenceBasis, basis, "basis")
    start_d = parse_date(start, "start")
    if household_key is not None:
        hh = tx.get(households, household_key, "household")
        commune_code, street = hh["commune_code"], hh["street"]
        rel = hh_ops.relationship(relationship)
        if rel is Relationship.HEAD:
            raise violation("household.exactly_one_head", f"{LAW} Art. 10",
                            "a person joining a household cannot be its head; change the "
                            "head afterwards if needed")
        members, _ = hh_ops.members_and_people(tx, household_key)
        occupants = len(members) + 1
        parent_present = rel is Relationship.CHILD
    else:
        occupants, parent_present = 1, False
    addr = address(commune_code, street)
    check_permanent_basis(
        basis=basis_e.value, head_consent=head_consent, owner_consent=owner_consent,
        floor_area_m2=floor_area_m2, persons_at_address=occupants, min_area_m2=min_area_m2,
        joining_household=household_key is not None, age=age_on(person["birth_date"], start_d),
        start=start_d, has_parent_in_household=parent_present)
    old = active(tx, person_key, "permanent")
    if old is not None:
        if old["commune_code"] == addr.commune_code and old["street"] == addr.street:
            raise violation("permanent.already_registered", f"{LAW} Art. 20",
                            "the person is already permanently registered at this address")
        _end(tx, old, PermanentDeregistrationReason.REGISTERED_ELSEWHERE.value, start)
    hh_ops.leave(tx, person_key)
    if household_key is None:
        household_key = hh_ops.new_household(tx, person_key, addr.commune_code, addr.street,
                                             start)
    else:
        hh_ops.join(tx, household_key, person_key, rel, start)
    temp = active(tx, person_key, "temporary")
    if temp is not None and temp["commune_code"] == addr.commune_code:
        _end(tx, temp, TemporaryDeregistrationReason.PERMANENT_AT_SAME_ADDRESS.value
             if temp["street"] == addr.street else
             TemporaryDeregistrationReason.REGISTERED_ELSEWHERE.value, start)
    key = tx.new_key("R")
    tx.rows.insert(residences, {
        "key": key, "person_key": person_key, "kind": "permanent",
        "commune_code": addr.commune_code, "street": addr.street,
        "household_key": household_key, "basis": basis_e.value, "start_date": start,
        "term_end": None, "extensions": 0, "status": "active"})
    file_no = tx.get(households, household_key, "household")["residence_file_no"]
    tx.rows.update(persons, person_key, residence_file_no=file_no)
    tx.touch(person_key, household_key)
    hh_ops.check_invariants(tx, household_key)
    return key


def deregister_permanent(tx: Tx, person_key: str, *, reason: str, on: str) -> None:
    """Art. 24."""
    _enum(PermanentDeregistrationReason, reason, "reason")
    parse_date(on, "on")
    res = active(tx, person_key, "permanent")
    if res is None:
        raise violation("permanent.none_active", f"{LAW} Art. 24",
                        "the person has no active permanent residence")
    hh_ops.leave(tx, person_key)
    _end(tx, res, reason, on)


def register_temporary(tx: Tx, person_key: str, *, commune_code: str, street: str,
                       start: str, term_end: str, basis: str = "rented",
                       guardian_consent: bool = False) -> str:
    """Art. 27-28."""
    person = tx.get(persons, person_key, "person")
    require_alive(person)
    addr = address(commune_code, street)
    start_d, end_d = parse_date(start, "start"), parse_date(term_end, "term_end")
    perm = active(tx, person_key, "permanent")
    check_temporary(start=start_d, term_end=end_d, commune_code=addr.commune_code,
                    permanent_commune=perm["commune_code"] if perm else None,
                    age=age_on(person["birth_date"], start_d), guardian_consent=guardian_consent)
    old = active(tx, person_key, "temporary")
    if old is not None:
        _end(tx, old, TemporaryDeregistrationReason.REGISTERED_ELSEWHERE.value, start)
    key = tx.new_key("R")
    tx.rows.insert(residences, {
        "key": key, "person_key": person_key, "kind": "temporary",
        "commune_code": addr.commune_code, "street": addr.street, "household_key": None,
        "basis": basis, "start_date": start, "term_end": term_end, "extensions": 0,
        "status": "active"})
    tx.touch(person_key)
    return key


def extend_temporary(tx: Tx, person_key: str, *, new_term_end: str, applied_on: str) -> None:
    """Art. 28(3)."""
    res = active(tx, person_key, "temporary")
    if res is None:
        raise violation("temporary.none_active", f"{LAW} Art. 28(3)",
                        "the person has no active temporary residence to extend")
    check_extension(term_end=parse_date(res["term_end"], "term_end"),
                    applied_on=parse_date(applied_on, "applied_on"),
                    new_term_end=parse_date(new_term_end, "new_term_end"))
    tx.rows.update(residences, res["key"], term_end=new_term_end,
                   extensions=int(res["extensions"]) + 1)
    tx.touch(person_key)


def deregister_temporary(tx: Tx, person_key: str, *, reason: str, on: str) -> None:
    """Art. 29."""
    _enum(TemporaryDeregistrationReason, reason, "reason")
    parse_date(on, "on")
    res = active(tx, person_key, "temporary")
    if res is None:
        raise violation("temporary.none_active", f"{LAW} Art. 29",
                        "the person has no active temporary residence")
    _end(tx, res, reason, on)


def _local(text: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InputError(f"{field} must be a local date-time YYYY-MM-DDTHH:MM", field=field,
                         rule="datetime.format") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM_TZ)


def notify_stay(tx: Tx, *, commune_code: str, street: str, full_name: str,
                document_number: str, arrival: str, departure: str, reason: str,
                notified_at: str, person_key: str | None = None) -> str:
    """Art. 30: a stay of under 30 days, notified by the host."""
    addr = address(commune_code, street)
    if not (full_name or "").strip():
        raise InputError("full_name is required", field="full_name", rule="required")
    if not (document_number or "").strip():
        raise InputError("document_number (ID or passport) is required",
                         field="document_number", rule="required")
    if not (reason or "").strip():
        raise InputError("reason is required", field="reason", rule="required")
    arrival_at, notified = _local(arrival, "arrival"), _local(notified_at, "notified_at")
    check_stay(arrival=arrival_at, departure=parse_date(departure, "departure"),
               notified_at=notified)
    if person_key is not None:
        require_alive(tx.get(persons, person_key, "person"))
    key = tx.new_key("S")
    tx.rows.insert(stays, {
        "key": key, "person_key": person_key, "full_name": full_name.strip(),
        "document_number": document_number.strip(), "commune_code": addr.commune_code,
        "street": addr.street, "arrival": arrival_at.date().isoformat(),
        "departure": departure, "reason": reason.strip(),
        "notified_at": notified.isoformat(timespec="minutes")})
    tx.touch(person_key, key)
    return key


def declare_absence(tx: Tx, person_key: str, *, category: str, start: str, end: str,
                    destination: str, reason: str) -> str:
    """Art. 31."""
    person = tx.get(persons, person_key, "person")
    require_alive(person)
    cat = _enum(AbsenceCategory, category, "category")
    if not (destination or "").strip():
        raise InputError("destination is required", field="destination", rule="required")
    perm = active(tx, person_key, "permanent")
    temp = active(tx, person_key, "temporary")
    check_absence(category=cat, start=parse_date(start, "start"), end=parse_date(end, "end"),
                  has_permanent=perm is not None,
                  has_temporary_elsewhere=temp is not None)
    key = tx.new_key("A")
    tx.rows.insert(absences, {"key": key, "person_key": person_key, "category": cat.value,
                              "start_date": start, "end_date": end,
                              "destination": destination.strip(),
                              "reason": (reason or "").strip()})
    tx.touch(person_key)
    return key


def residence_summary(tx: Tx, person_key: str) -> list[dict[str, Any]]:
    rows = tx.select(residences, person_key=person_key)
    return sorted(({k: r[k] for k in ("kind", "commune_code", "street", "start_date",
                                       "term_end", "status", "dereg_date")} for r in rows),
                  key=lambda r: (r["start_date"], r["kind"]))


def confirm_residence(tx: Tx, person_key: str) -> str:
    """Circular 55/2021 Art. 17: current and previous residences with periods; valid one
    year, void once the residence information changes."""
    tx.get(persons, person_key, "person")
    content = residence_summary(tx, person_key)
    if not content:
        raise violation("confirmation.has_residence", f"{CIRCULAR} Art. 17",
                        "the person has no residence information to confirm")
    key = tx.new_key("C")
    tx.rows.insert(confirmations, {
        "key": key, "person_key": person_key, "issued_on": tx.today.isoformat(),
        "valid_until": add_years(tx.today, 1).isoformat(),
        "content": json.dumps(content, ensure_ascii=False, sort_keys=True)})
    tx.touch(person_key)
    return key


def confirmation_status(tx: Tx, key: str, today: date) -> tuple[bool, str]:
    """(valid, reason) of a residence confirmation."""
    conf = tx.get(confirmations, key, "confirmation")
    if today > date.fromisoformat(conf["valid_until"]):
        return False, "expired (valid 1 year)"
    now = json.dumps(residence_summary(tx, conf["person_key"]), ensure_ascii=False,
                     sort_keys=True)
    if now != conf["content"]:
        return False, "void: residence information changed since issue"
    return True, "valid"

