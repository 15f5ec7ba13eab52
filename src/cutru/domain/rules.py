"""The Law on Residence's rules as pure checks. Each raises :class:`RuleViolation` naming the
rule and its article; legal bases are data (``LAW`` etc.) so a change of law is a data change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from cutru.domain.enums import AbsenceCategory, Relationship
from cutru.domain.person import age_on
from cutru.errors import RuleViolation

LAW = "Law on Residence 68/2020/QH14"
LAW_2025 = "Law 118/2025/QH15"
DECREE = "Decree 62/2021/NĐ-CP"
CIRCULAR = "Circular 55/2021/TT-BCA"

ADULT_AGE = 18
#: Minimum floor area per person for rented/borrowed permanent registration; a province may
#: set more, never less (Law 68/2020 Art. 20(3)).
MIN_FLOOR_AREA_M2 = 8.0
#: From this day a child under 6 registers with a parent/guardian without consent (Law 118/2025).
CHILD_UNDER_6_FROM = date(2026, 7, 1)


def violation(rule: str, article: str, message: str, **details: Any) -> RuleViolation:
    return RuleViolation(message, rule=rule, article=article, **details)


def add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    day = min(d.day, [31, 29 if (d.year + y) % 4 == 0 else 28, 31, 30, 31, 30, 31, 31, 30, 31,
                      30, 31][m])
    return date(d.year + y, m + 1, day)


def require_alive(person: Mapping[str, Any]) -> None:
    if person.get("death_date") or person.get("missing_date"):
        raise violation("person.not_alive", f"{LAW} Art. 24(1)(a)",
                        f"person {person['key']} is recorded dead or missing")


def check_household(members: Iterable[Mapping[str, Any]], people: Mapping[str, Mapping[str, Any]],
                    today: date) -> None:
    """Exactly one head; the head has full civil-act capacity if any member does (domain §3)."""
    members = list(members)
    heads = [m for m in members if m["relationship"] == Relationship.HEAD]
    if len(heads) != 1:
        raise violation("household.exactly_one_head", f"{LAW} Art. 10",
                        f"a household has exactly one head; this one would have {len(heads)}")
    head = people[heads[0]["person_key"]]
    adults = [m for m in members if age_on(people[m["person_key"]]["birth_date"], today)
              >= ADULT_AGE]
    if adults and age_on(head["birth_date"], today) < ADULT_AGE:
        raise violation("household.head_capacity", f"{LAW} Art. 10(2)",
                        "the household head must have full civil-act capacity when a member has")


def check_permanent_basis(*, basis: str, head_consent: bool, owner_consent: bool,
                          floor_area_m2: float | None, persons_at_address: int,
                          min_area_m2: float, joining_household: bool, age: int,
                          start: date, has_parent_in_household: bool) -> None:
    """Law 68/2020 Art. 20 (and Law 118/2025 for children under 6)."""
    if basis == "relative":
        if not joining_household:
            raise violation("permanent.relative_household", f"{LAW} Art. 20(2)",
                            "registration with a relative joins that relative's household")
        if not (head_consent and owner_consent):
            raise violation("permanent.relative_consent", f"{LAW} Art. 20(2)",
                            "the household head's and the owner's consent are required")
    elif basis == "rented":
        if not owner_consent:
            raise violation("permanent.owner_consent", f"{LAW} Art. 20(3)",
                            "the owner's (or lender's) consent is required")
        floor = max(min_area_m2, MIN_FLOOR_AREA_M2)
        if floor_area_m2 is None or floor_area_m2 / max(persons_at_address, 1) < floor:
            raise violation("permanent.min_floor_area", f"{LAW} Art. 20(3)",
                            f"at least {floor:g} m² of floor area per person is required",
                            floor_area_m2=floor_area_m2, persons=persons_at_address)
    elif basis == "child_under_6":
        if start < CHILD_UNDER_6_FROM:
            raise violation("permanent.child_under_6_in_force", f"{LAW_2025}",
                            f"registration without consent for a child under 6 applies from "
                            f"{CHILD_UNDER_6_FROM}")
        if age >= 6:
            raise violation("permanent.child_under_6_age", f"{LAW_2025}",
                            "this ground is only for a child under 6")
        if not has_parent_in_household:
            raise violation("permanent.child_under_6_parent", f"{LAW_2025}",
                            "the child registers with a parent or guardian in that household")
    elif joining_household and not (head_consent and owner_consent):
        raise violation("permanent.join_consent", f"{LAW} Art. 20(2)",
                        "joining an existing household needs the head's and the owner's consent")


def check_temporary(*, start: date, term_end: date, commune_code: str,
                    permanent_commune: str | None, age: int, guardian_consent: bool) -> None:
    if term_end <= start:
        raise violation("temporary.term_positive", f"{LAW} Art. 27(3)",
                        "the term must end after it starts")
    if term_end > add_years(start, 2):
        raise violation("temporary.term_max_2_years", f"{LAW} Art. 27(3)",
                        "a temporary residence term is at most 2 years",
                        start=str(start), term_end=str(term_end))
    if permanent_commune is not None and permanent_commune == commune_code:
        raise violation("temporary.outside_permanent_commune", f"{LAW} Art. 27(1)",
                        "temporary residence is registered outside the commune of permanent "
                        "residence")
    if age < ADULT_AGE and not guardian_consent:
        raise violation("temporary.minor_consent", f"{LAW} Art. 28(1)",
                        "a minor needs a parent's or guardian's consent")


def check_extension(*, term_end: date, applied_on: date, new_term_end: date) -> None:
    if applied_on > term_end - timedelta(days=15):
        raise violation("temporary.extension_15_days", f"{LAW} Art. 28(3)",
                        "an extension is applied for at least 15 days before the term ends",
                        term_end=str(term_end), applied_on=str(applied_on))
    if new_term_end <= term_end:
        raise violation("temporary.extension_later", f"{LAW} Art. 28(3)",
                        "the new term must end after the current one")
    if new_term_end > add_years(term_end, 2):
        raise violation("temporary.term_max_2_years", f"{LAW} Art. 27(3)",
                        "each extension is at most 2 years")


def check_stay(*, arrival: datetime, departure: date, notified_at: datetime) -> None:
    """Art. 30: stays under 30 days; notified before 23:00 the same day, or by 08:00 the
    next day when arriving after 23:00 (times are local)."""
    if departure < arrival.date():
        raise violation("stay.period_order", f"{LAW} Art. 30(1)",
                        "departure is before arrival")
    if (departure - arrival.date()).days >= 30:
        raise violation("stay.under_30_days", f"{LAW} Art. 30(1)",
                        "a stay is shorter than 30 days; longer needs temporary registration")
    if arrival.hour >= 23:
        deadline = datetime.combine(arrival.date() + timedelta(days=1),
                                    datetime.min.time()).replace(hour=8, tzinfo=arrival.tzinfo)
    else:
        deadline = arrival.replace(hour=23, minute=0, second=0, microsecond=0)
    if notified_at > deadline:
        raise violation("stay.notify_deadline", f"{LAW} Art. 30(4)",
                        f"the stay had to be notified by {deadline:%Y-%m-%d %H:%M}",
                        deadline=deadline.isoformat())


def _min_absence_end(category: AbsenceCategory, start: date) -> tuple[str, date]:
    if category is AbsenceCategory.SUPERVISED:
        return "1 day", start + timedelta(days=1)
    if category is AbsenceCategory.MILITARY_AGE:
        return "3 consecutive months", add_months(start, 3)
    return "12 consecutive months", add_months(start, 12)


def check_absence(*, category: AbsenceCategory, start: date, end: date,
                  has_permanent: bool, has_temporary_elsewhere: bool) -> None:
    label, minimum = _min_absence_end(category, start)
    if end < minimum:
        raise violation("absence.min_period", f"{LAW} Art. 31(1)",
                        f"a temporary-absence declaration of this category covers at least "
                        f"{label}", category=category.value)
    if category is AbsenceCategory.OTHER:
        if not has_permanent:
            raise violation("absence.requires_permanent", f"{LAW} Art. 31(1)(d)",
                            "absence is declared from the commune of permanent residence")
        if has_temporary_elsewhere:
            raise violation("absence.registered_elsewhere", f"{LAW} Art. 31(1)(d)",
                            "no declaration is needed while registered temporarily elsewhere")


def check_separation(*, separating: list[Mapping[str, Any]], head_key: str, today: date,
                     head_consent: bool, owner_consent: bool, divorced_spouse: bool,
                     remaining: int) -> None:
    if any(p["key"] == head_key for p in separating):
        raise violation("separation.not_head", f"{LAW} Art. 25(1)",
                        "the household head stays; change the head first to separate them")
    if remaining < 1:
        raise violation("separation.someone_remains", f"{LAW} Art. 25(1)",
                        "separation leaves at least one member in the original household")
    if not any(age_on(p["birth_date"], today) >= ADULT_AGE for p in separating):
        raise violation("separation.capacity", f"{LAW} Art. 25(1)(a)",
                        "at least one separating member has full civil-act capacity")
    if not divorced_spouse and not (head_consent and owner_consent):
        raise violation("separation.consent", f"{LAW} Art. 25(1)(b)",
                        "the household head's and the owner's consent are required "
                        "(not for a divorced spouse)")


def check_four_eyes(requested_by: str, approver: str) -> None:
    if requested_by == approver:
        raise violation("correction.four_eyes", f"{DECREE} Art. 12",
                        "a correction is approved by someone other than its requester")
