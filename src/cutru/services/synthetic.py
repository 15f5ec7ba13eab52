"""Deterministic synthetic residents, for ``cutru demo seed --persons N --seed S``.

:func:`generate` yields import records, JSON-serialisable dicts written one per JSON Lines
line. Output depends only on ``(persons, seed, today)``; dates are relative to ``today``::

    {"kind": "household", "commune_code", "street", "registered_on",
     "members": [{"relationship": "head" | "spouse" | "child" | ..., "person": PERSON}, ...]}
    {"kind": "temporary", "id_number", "commune_code", "street", "start", "term_end", "basis"}
    {"kind": "stay", "id_number", "commune_code", "street", "arrival", "departure", "reason"}
    {"kind": "absence", "id_number", "category", "start", "end", "destination", "reason"}

PERSON's keys are listed in :data:`PERSON_FIELDS`. A household's follow-up records (temporary
residence, stay, absence; at most one per person) come right after it, so each refers to a
person already emitted. The invariants the importer enforces hold by construction: valid,
unique ID numbers agreeing with birth year and sex; one adult head per household; parents
19-44 years older than their children; temporary residence and stays in another commune than
the household's, terms of at most 2 years, stays under 30 days; absence periods as long as their
category requires (Law 68/2020 Art. 31(1)).

Names, streets, phone numbers and occupations come from Faker's ``vi_VN`` locale, drawn once per
seed into pools; every other choice is made by one seeded random generator (one ``random()``
call per choice), for some 30,000-60,000 persons per second on one core. The output is
reproducible for a given Faker version. Faker's ``vi_VN`` names are ordered given name
first and its family-name list is short, so names are assembled here in Vietnamese order (family,
middle, given) with census-like family-name frequencies.
"""

from __future__ import annotations

import random
import unicodedata
from calendar import isleap
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from itertools import islice
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from faker import Faker

from cutru.domain.enums import AbsenceCategory, MaritalStatus, Relationship, ResidenceBasis, Sex
from cutru.domain.idnumber import make_id_number
from cutru.domain.units import OLD_PROVINCE_TO_NEW, all_communes, all_provinces
from cutru.journal.helper import HelperFailed, helper_process

PERSON_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "id_number": "12-digit personal ID number, consistent with birth year and sex; unique",
        "full_name": "family name, middle name, given name",
        "birth_date": "YYYY-MM-DD, or YYYY alone for some people born before 1955",
        "sex": "male | female",
        "birth_registration_place": "5-digit current commune code",
        "native_place": "5-digit current commune code (a child's is the father's)",
        "ethnicity": "Kinh, Tày, Thái, Mường, H'Mông, Khmer, ... (sensitive)",
        "religion": "Không, Công giáo, Phật giáo, Hòa Hảo, Tin lành, Cao Đài (sensitive)",
        "nationality": "VN",
        "marital_status": "single | married | divorced | widowed",
        "occupation": "free text; Trẻ em under 6, Học sinh under 18",
        "phone": "optional; never under 15",
        "email": "optional",
        "father": "optional {full_name, id_number (only when in the household), nationality}",
        "mother": "optional, as father",
        "spouse": "married members only: {full_name, id_number, nationality} of each other",
        "other_names": "optional, rare",
        "blood_group": "optional, rare: O | A | B | AB",
        "criminal_record": "optional, rare short text (sensitive)",
        "violation_record": "optional, rare short text (sensitive)",
    }
)

T = TypeVar("T")


class _Rng(random.Random):
    """``random.Random`` plus picks that cost one ``random()`` call each.

    ``choice`` and ``randint`` spend most of their time in ``_randbelow``; the bias of
    ``int(random() * n)`` with 53-bit floats and n < 10**7 is irrelevant here.
    """

    def pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]

    def between(self, lo: int, hi: int) -> int:
        """An integer in ``lo..hi``, both included."""
        return lo + int(self.random() * (hi - lo + 1))


class _Weighted(Generic[T]):
    """Weighted choice by one lookup: each item fills table slots in proportion to its weight."""

    def __init__(self, weights: Mapping[T, float], slots: int = 2000) -> None:
        total = sum(weights.values())
        self.table = tuple(
            item for item, w in weights.items() for _ in range(max(1, round(w * slots / total)))
        )
        self.size = len(self.table)

    def pick(self, rng: random.Random) -> T:
        return self.table[int(rng.random() * self.size)]


# fmt: off
# Census 2019 (GSO, "Kết quả toàn bộ Tổng điều tra dân số và nhà ở năm 2019"), per cent.
_ETHNICITY = _Weighted({
    "Kinh": 85.3, "Tày": 1.9, "Thái": 1.9, "Mường": 1.5, "H'Mông": 1.5, "Khmer": 1.4,
    "Nùng": 1.1, "Dao": 0.9, "Hoa": 0.8, "Gia Rai": 0.5, "Ê Đê": 0.4, "Ba Na": 0.3,
    "Xơ Đăng": 0.2, "Sán Chay": 0.2, "Cơ Ho": 0.2, "Chăm": 0.2, "Sán Dìu": 0.2,
})
_RELIGION = _Weighted({
    "Không": 86.3, "Công giáo": 6.1, "Phật giáo": 4.8, "Hòa Hảo": 1.0, "Tin lành": 1.0,
    "Cao Đài": 0.6,
})
# Family-name frequencies, Wikipedia "Vietnamese name" (Nguyễn 38%, Trần 11%, Lê 9.5% ...).
_SURNAME = _Weighted({
    "Nguyễn": 38.4, "Trần": 12.1, "Lê": 9.5, "Phạm": 7.0, "Phan": 4.5, "Hoàng": 2.6,
    "Huỳnh": 2.5, "Đặng": 2.1, "Vũ": 2.0, "Võ": 1.9, "Bùi": 2.0, "Đỗ": 1.4, "Hồ": 1.3,
    "Ngô": 1.3, "Dương": 1.0, "Lý": 0.5,
})
# fmt: on
_BLOOD = _Weighted({"O": 42.0, "B": 31.0, "A": 21.0, "AB": 6.0})  # approximate, Vietnam
_SIZE = _Weighted({1: 11.0, 2: 17.0, 3: 22.0, 4: 25.0, 5: 13.0, 6: 8.0, 7: 4.0})  # mean 3.5
_SINGLE_STATUS = _Weighted(
    {MaritalStatus.SINGLE: 5.0, MaritalStatus.DIVORCED: 3.0, MaritalStatus.WIDOWED: 2.0}
)
_OLD_SINGLE_STATUS = _Weighted(
    {MaritalStatus.WIDOWED: 7.0, MaritalStatus.DIVORCED: 1.0, MaritalStatus.SINGLE: 2.0}
)
_TEMPORARY_BASIS = _Weighted(
    {ResidenceBasis.RENTED: 75.0, ResidenceBasis.RELATIVE: 15.0, ResidenceBasis.OWN_RESIDENCE: 10}
)
_COMMON_JOBS = ("Nông dân", "Công nhân", "Buôn bán", "Lao động tự do", "Nội trợ", "Ngư dân")
_NICKNAMES = ("Tí", "Tèo", "Bé", "Út", "Cu", "Bi", "Hai", "Ba", "Tư", "Năm")
_CRIMES = (
    "Trộm cắp tài sản, 9 tháng tù",
    "Cố ý gây thương tích, 12 tháng tù cho hưởng án treo",
    "Đánh bạc, phạt tiền",
)
_VIOLATIONS = (
    "Xử phạt hành chính: gây rối trật tự công cộng",
    "Giáo dục tại xã, phường: trộm cắp vặt",
)
_STAY_REASONS = ("Thăm người thân", "Công tác", "Du lịch", "Khám chữa bệnh", "Học tập ngắn hạn")
# Going abroad needs no absence declaration (Art. 31(1)(d)), so destinations are domestic.
_AWAY_REASONS = ("Đi làm ăn xa", "Đi học", "Chăm sóc người thân", "Đi làm việc theo hợp đồng")
_SUPERVISED_REASONS = ("Thăm người thân", "Khám chữa bệnh")
_VALUE: Mapping[StrEnum, str] = {e: e.value for e in (*Sex, *MaritalStatus, *Relationship)}
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_FIRST_TODAY, _LAST_BIRTH_YEAR = date(2000, 1, 1), 2399
_NEW_ID_CODES_FROM = date(2025, 7, 1)  # births registered since then carry a current code


@dataclass(frozen=True)
class _Pools:
    """What Faker provides, drawn once per seed."""

    names: Mapping[Sex, tuple[str, ...]]  # "middle given", to follow a family name
    streets: tuple[str, ...]
    phone_stems: tuple[str, ...]  # Faker numbers without their last 4 digits
    jobs: tuple[str, ...]
    mail_domains: tuple[str, ...]

    @classmethod
    def draw(cls, seed: int) -> _Pools:
        fake = Faker("vi_VN")
        fake.seed_instance(seed)
        unisex = [fake.first_name_unisex() for _ in range(64)]
        male = [fake.first_name_male() for _ in range(192)] + unisex
        female = [fake.first_name_female() for _ in range(192)]
        # "Văn" and "Thị" lead; a woman's middle name is often a given name (Ngọc, Lan).
        middle = {
            Sex.MALE: ["Văn"] * 128 + [m for m in (fake.middle_name() for _ in range(256))
                                       if m != "Thị"],
            Sex.FEMALE: ["Thị"] * 192 + female,
        }  # fmt: skip
        given = {Sex.MALE: male, Sex.FEMALE: female + unisex}
        pick = fake.random.choice

        def combine(sex: Sex) -> tuple[str, ...]:
            combos = (f"{pick(middle[sex])} {pick(given[sex])}" for _ in range(4096))
            return tuple(n for n in combos if len(set(n.split())) == len(n.split()))

        names = {sex: combine(sex) for sex in Sex}
        return cls(
            names=names,
            streets=tuple(fake.street_address() for _ in range(1024)),
            phone_stems=tuple(fake.phone_number()[:-4] for _ in range(512)),
            jobs=tuple(fake.job() for _ in range(256)),
            mail_domains=tuple(fake.free_email_domain() for _ in range(32)),
        )


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum()).lower()


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    if d.day <= 28:
        return date(year, month, d.day)
    return date(year, month, min(d.day, _MONTH_DAYS[month] + (month == 2 and isleap(year))))


def _other(sex: Sex) -> Sex:
    return Sex.FEMALE if sex is Sex.MALE else Sex.MALE


class _Member:
    """A person being generated: the PERSON record plus what relatives need to know."""

    __slots__ = ("age", "birth", "commune", "record", "sex", "surname", "year_only")

    def __init__(self, sex: Sex, age: int, birth: date, surname: str, commune: str) -> None:
        self.sex, self.age, self.birth, self.surname = sex, age, birth, surname
        self.commune = commune  # of birth registration
        self.year_only = False
        self.record: dict[str, Any] = {}

    @property
    def ref(self) -> dict[str, str]:
        r = self.record
        return {"full_name": r["full_name"], "id_number": r["id_number"], "nationality": "VN"}

    @property
    def adult_on(self) -> date:
        """The 18th birthday (31 December of the 18th year when only the year is known)."""
        if self.year_only:
            return date(self.birth.year + 18, 12, 31)
        return _add_months(self.birth, 18 * 12)


_Parent = _Member | dict[str, str] | None  # in the household, name-only, or unknown
_Members = list[tuple[Relationship, _Member]]  # head first


class _Generator:
    def __init__(self, seed: int, today: date) -> None:
        self.rng = _Rng(seed)
        self.pools = _Pools.draw(seed)
        self.today = today
        self.used_ids: set[str] = set()
        self.id_prefixes: dict[tuple[str, int, Sex], str] = {}
        self.folded: dict[str, str] = {}
        # first day (ordinal) and number of days of each birth year, up to today
        self.years = {
            y: (date(y, 1, 1).toordinal(), 365 + isleap(y))
            for y in range(today.year - 120, today.year)
        }
        self.years[today.year] = (date(today.year, 1, 1).toordinal(), today.timetuple().tm_yday)
        communes = all_communes()
        # Households cluster in wards (phường) and in the largest cities.
        boost = {"79": 2.5, "01": 2.0, "31": 1.3, "48": 1.3, "92": 1.2}
        density = {"phường": 3.0, "xã": 1.0, "đặc khu": 1.0}
        weights = {c.code: density[c.kind] * boost.get(c.province_code, 1.0) for c in communes}
        self.home = _Weighted(weights, slots=round(10 * sum(weights.values())))
        self.province_of = {c.code: c.province_code for c in communes}
        self.commune_names = {c.code: c.name for c in communes}
        self.province_names = {p.code: p.name for p in all_provinces()}
        self.by_province: dict[str, list[str]] = {p: [] for p in self.province_names}
        for c in communes:
            self.by_province[c.province_code].append(c.code)
        self.old_codes: dict[str, list[str]] = {p: [] for p in self.province_names}
        for old, new in OLD_PROVINCE_TO_NEW.items():
            self.old_codes[new].append("0" + old)
        # The household being composed.
        self.province, self.ethnicity, self.religion = "", "", ""
        self.plans: list[tuple[str, _Member]] = []

    # -- records -----------------------------------------------------------------------------

    def records(self, persons: int) -> Iterator[dict[str, Any]]:
        emitted = 0
        while emitted < persons:
            size = min(_SIZE.pick(self.rng), persons - emitted)
            yield from self.household(size)
            emitted += size

    def household(self, size: int) -> Iterator[dict[str, Any]]:
        commune = self.home.pick(self.rng)
        self.province = self.province_of[commune]
        self.ethnicity, self.religion = _ETHNICITY.pick(self.rng), _RELIGION.pick(self.rng)
        self.plans = []
        members = self.compose(size)
        # Registered once the head was an adult and every member born.
        lower = max(
            max(m.birth for _, m in members),
            members[0][1].adult_on,
            self.today - timedelta(days=30 * 365),
        )
        registered = self.day_between(lower, self.today - timedelta(days=1))
        yield {
            "kind": "household",
            "commune_code": commune,
            "street": self.rng.pick(self.pools.streets),
            "registered_on": registered.isoformat(),
            "members": [{"relationship": _VALUE[rel], "person": m.record} for rel, m in members],
        }
        for kind, m in self.plans:
            if kind == "stay":
                yield self.stay(m, commune, max(registered, m.birth))
            elif kind == "temporary":
                yield self.temporary(m, commune, max(registered, m.adult_on))
            else:
                yield self.absence(AbsenceCategory(kind), m, commune, max(registered, m.adult_on))

    def stay(self, m: _Member, home: str, floor: date) -> dict[str, Any]:
        """A stay notification (Law 68/2020 Art. 30): under 30 days, away from home."""
        r, today = self.rng, self.today
        arrival = self.day_between(max(floor, today - timedelta(45)), today)
        return {
            "kind": "stay",
            "id_number": m.record["id_number"],
            "commune_code": self.elsewhere(home),
            "street": r.pick(self.pools.streets),
            "arrival": arrival.isoformat(),
            "departure": (arrival + timedelta(r.between(1, 20))).isoformat(),
            "reason": r.pick(_STAY_REASONS),
        }

    def temporary(self, m: _Member, home: str, floor: date) -> dict[str, Any]:
        """A current temporary residence (Art. 27): another commune, a term of at most 2 years."""
        r, today = self.rng, self.today
        months = r.pick((6, 12, 12, 24, 24))
        start = self.day_between(max(floor, _add_months(today, -months) + timedelta(1)), today)
        return {
            "kind": "temporary",
            "id_number": m.record["id_number"],
            "commune_code": self.elsewhere(home),
            "street": r.pick(self.pools.streets),
            "start": start.isoformat(),
            "term_end": (_add_months(start, months) - timedelta(1)).isoformat(),
            "basis": _TEMPORARY_BASIS.pick(r).value,
        }

    def absence(self, kind: AbsenceCategory, m: _Member, home: str, floor: date) -> dict[str, Any]:
        """A temporary-absence declaration (Art. 31(1)), as long as its category requires."""
        r = self.rng
        start = self.day_between(max(floor, self.today - timedelta(120)), self.today)
        if kind is AbsenceCategory.SUPERVISED:  # >= 1 day
            end, reason = start + timedelta(r.between(1, 30)), r.pick(_SUPERVISED_REASONS)
        elif kind is AbsenceCategory.MILITARY_AGE:  # >= 3 consecutive months
            end, reason = _add_months(start, r.between(3, 12)), r.pick(_AWAY_REASONS)
        else:  # >= 12 consecutive months
            end, reason = _add_months(start, r.pick((12, 18, 24))), r.pick(_AWAY_REASONS)
        to = self.elsewhere(home)
        return {
            "kind": "absence",
            "id_number": m.record["id_number"],
            "category": kind.value,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "destination": f"{self.commune_names[to]}, {self.province_names[self.province_of[to]]}",
            "reason": reason,
        }

    def elsewhere(self, home: str) -> str:
        """A commune other than ``home``, half the time in the same province."""
        while True:
            if self.rng.random() < 0.5:
                code = self.rng.pick(self.by_province[self.province_of[home]])
            else:
                code = self.home.pick(self.rng)
            if code != home:
                return code

    def day_between(self, lo: date, hi: date) -> date:
        if hi <= lo:
            return lo
        return date.fromordinal(self.rng.between(lo.toordinal(), hi.toordinal()))

    # -- household shapes --------------------------------------------------------------------

    def compose(self, n: int) -> _Members:
        """The members of an ``n``-person household (1 to 7), head first."""
        r = self.rng.random()
        if n == 1:
            return self.single()
        if n == 2:
            if r < 0.70:
                return self.nuclear(0)
            if r < 0.82:
                return self.single_parent(1)
            return self.siblings(2) if r < 0.88 else self.with_parents(2, spouse=False)
        if r < 0.50 and n <= 6:
            return self.nuclear(n - 2)
        if r < 0.58 and n <= 5:
            return self.single_parent(n - 1)
        if r < 0.62 and n >= 4:
            return self.nuclear(n - 3, sibling=True)
        if r < 0.80:
            return self.with_parents(n, spouse=True)
        return self.three_generations(n)

    def family_ages(self, k: int, max_mother: int) -> tuple[int, int, list[int]]:
        """Ages of a father, a mother and ``k`` children, eldest first.

        The mother is 20-39 years older than each child, the father 19-44 (he is at least 20
        at the first birth), so every parent-child gap lies within 18-45 years by any count.
        """
        r = self.rng
        if k == 0:
            mother = r.between(19, 35) if r.random() < 0.5 else r.between(45, max_mother)
            return max(mother + r.between(-1, 5), 20), mother, []
        births = [r.between(20, 32)]  # the mother's age at each birth
        for _ in range(k - 1):
            births.append(min(births[-1] + r.between(1, 4), 39))
        mother = births[-1] + min(int(r.triangular(0, 26, 3)), max_mother - births[-1])
        father = mother + max(r.between(-1, 5), 20 - births[0])
        return father, mother, [mother - b for b in births]

    def single(self) -> _Members:
        r = self.rng
        band = r.random()
        if band < 0.4:
            age = r.between(19, 35)
        else:
            age = r.between(36, 59) if band < 0.65 else r.between(60, 92)
        if age < 30:
            status = MaritalStatus.SINGLE
        else:
            status = (_OLD_SINGLE_STATUS if age >= 60 else _SINGLE_STATUS).pick(r)
        widow = status is MaritalStatus.WIDOWED
        sex = Sex.FEMALE if r.random() < (0.65 if widow else 0.45) else Sex.MALE
        return [(Relationship.HEAD, self.person(sex, age, status))]

    def couple(self, f_age: int, m_age: int) -> tuple[_Member, _Member]:
        husband = self.person(Sex.MALE, f_age, MaritalStatus.MARRIED)
        wife = self.person(Sex.FEMALE, m_age, MaritalStatus.MARRIED)
        husband.record["spouse"], wife.record["spouse"] = wife.ref, husband.ref
        return husband, wife

    def children(
        self, ages: Sequence[int], father: _Parent, mother: _Parent, surname: str | None = None
    ) -> list[_Member]:
        """Unmarried children, mostly born where the family lives, with the father's surname."""
        if surname is None and isinstance(father, _Member):
            surname = father.surname
        kw: dict[str, Any] = {"father": father, "mother": mother, "surname": surname}
        return [
            self.person(self.sex(), a, MaritalStatus.SINGLE, home_birth=0.85, **kw) for a in ages
        ]

    def nuclear(self, k: int, sibling: bool = False) -> _Members:
        """A couple with ``k`` children, and possibly an unmarried sibling of the head."""
        f_age, m_age, ages = self.family_ages(k, 85)
        husband, wife = self.couple(f_age, m_age)
        kids = self.children(ages, husband, wife)
        head, spouse = (husband, wife) if self.rng.random() < 0.8 else (wife, husband)
        out = [(Relationship.HEAD, head), (Relationship.SPOUSE, spouse)]
        out += [(Relationship.CHILD, c) for c in kids]
        if sibling:
            age = max(15, head.age + self.rng.between(-8, 8))
            parents = head.record.get("father"), head.record.get("mother")
            [brother_or_sister] = self.children([age], *parents, surname=head.surname)
            out.append((Relationship.SIBLING, brother_or_sister))
        return out

    def single_parent(self, k: int) -> _Members:
        """A divorced or widowed parent (usually the mother) with ``k`` children."""
        f_age, m_age, ages = self.family_ages(k, 85)
        status = MaritalStatus.DIVORCED if self.rng.random() < 0.55 else MaritalStatus.WIDOWED
        if self.rng.random() < 0.8:
            surname = _SURNAME.pick(self.rng)
            parent = self.person(Sex.FEMALE, m_age, status)
            kids = self.children(ages, self.name_only(Sex.MALE, surname), parent, surname)
        else:
            parent = self.person(Sex.MALE, f_age, status)
            kids = self.children(ages, parent, self.name_only(Sex.FEMALE))
        return [(Relationship.HEAD, parent)] + [(Relationship.CHILD, c) for c in kids]

    def siblings(self, n: int) -> _Members:
        """Brothers and sisters, the head an adult, with the same (absent) parents."""
        head_age = self.rng.between(19, 45)
        ages = [head_age] + [max(10, head_age + self.rng.between(-10, 10)) for _ in range(n - 1)]
        surname = _SURNAME.pick(self.rng)
        father, mother = self.name_only(Sex.MALE, surname), self.name_only(Sex.FEMALE)
        head, *others = self.children(ages, father, mother, surname)
        return [(Relationship.HEAD, head)] + [(Relationship.SIBLING, o) for o in others]

    def elders(self, child_age: int, count: int) -> tuple[_Member | None, _Member | None]:
        """The parents of a ``child_age``-year-old: both (married), or one (widowed)."""
        mother = child_age + self.rng.between(20, max(20, min(39, 95 - child_age)))
        father = mother + self.rng.between(-1, 5)
        if count == 2:
            return self.couple(father, mother)
        if self.rng.random() < 0.7:
            return None, self.person(Sex.FEMALE, mother, MaritalStatus.WIDOWED)
        return self.person(Sex.MALE, father, MaritalStatus.WIDOWED), None

    def descend(
        self, elders: tuple[_Member | None, _Member | None], sex: Sex, age: int, married: bool
    ) -> _Member:
        """A child of ``elders``; a missing parent is stood in for by a name-only one."""
        father, mother = elders
        status = MaritalStatus.MARRIED if married else MaritalStatus.SINGLE
        if father is None:
            surname = _SURNAME.pick(self.rng)
            f_ref: _Parent = self.name_only(Sex.MALE, surname)
        else:
            f_ref, surname = father, father.surname
        m_ref: _Parent = mother if mother else self.name_only(Sex.FEMALE)
        return self.person(sex, age, status, father=f_ref, mother=m_ref, surname=surname)

    def marry(self, a: _Member, age: int) -> _Member:
        """A spouse for ``a``, married to them."""
        b = self.person(_other(a.sex), age, MaritalStatus.MARRIED)
        a.record["spouse"], b.record["spouse"] = b.ref, a.ref
        return b

    def with_parents(self, n: int, spouse: bool) -> _Members:
        """A head living with one or both parents, and with their own spouse and children."""
        couple = 2 if spouse else 1
        elder_count = 2 if n - couple >= 2 and self.rng.random() < 0.5 else 1
        f_age, m_age, ages = self.family_ages(n - couple - elder_count, 55)
        male = self.rng.random() < 0.85 if spouse else self.rng.random() < 0.5
        head_age = (f_age if male else m_age) if spouse else self.rng.between(19, 50)
        elders = self.elders(head_age, elder_count)
        head = self.descend(elders, Sex.MALE if male else Sex.FEMALE, head_age, spouse)
        out = [(Relationship.HEAD, head)]
        if spouse:
            partner = self.marry(head, m_age if male else f_age)
            husband, wife = (head, partner) if male else (partner, head)
            out.append((Relationship.SPOUSE, partner))
            out += [(Relationship.CHILD, c) for c in self.children(ages, husband, wife)]
        return out + [(Relationship.PARENT, e) for e in elders if e is not None]

    def three_generations(self, n: int) -> _Members:
        """A grandparent head (and spouse), a married child and in-law, grandchildren."""
        elder_count = 2 if n >= 4 and self.rng.random() < 0.6 else 1
        f_age, m_age, ages = self.family_ages(n - elder_count - 2, 55)
        son = self.rng.random() < 0.75  # the couple usually lives with his parents
        elders = self.elders(f_age if son else m_age, elder_count)
        blood = self.descend(elders, Sex.MALE if son else Sex.FEMALE, f_age if son else m_age, True)
        in_law = self.marry(blood, m_age if son else f_age)
        husband, wife = (blood, in_law) if son else (in_law, blood)
        kids = self.children(ages, husband, wife)
        grandfather, grandmother = elders
        out: _Members = []
        if grandfather:
            out.append((Relationship.HEAD, grandfather))
            if grandmother:
                out.append((Relationship.SPOUSE, grandmother))
        elif grandmother:
            out.append((Relationship.HEAD, grandmother))
        out += [(Relationship.CHILD, blood), (Relationship.CHILD_IN_LAW, in_law)]
        return out + [(Relationship.GRANDCHILD, c) for c in kids]

    # -- persons -----------------------------------------------------------------------------

    def sex(self) -> Sex:
        return Sex.MALE if self.rng.random() < 0.51 else Sex.FEMALE

    def name(self, sex: Sex, surname: str) -> str:
        names = self.pools.names[sex]
        return f"{surname} {names[int(self.rng.random() * len(names))]}"

    def name_only(self, sex: Sex, surname: str | None = None) -> dict[str, str]:
        """A parent outside the household: a name and nationality, no ID number."""
        return {
            "full_name": self.name(sex, surname or _SURNAME.pick(self.rng)),
            "nationality": "VN",
        }

    def person(
        self,
        sex: Sex,
        age: int,
        status: MaritalStatus,
        *,
        father: _Parent = None,
        mother: _Parent = None,
        surname: str | None = None,
        home_birth: float = 0.6,
    ) -> _Member:
        """A new member of the household being composed (the hot path: keep it lean).

        ``age`` is the difference of birth year and ``today``'s year.
        """
        r = self.rng
        rnd = r.random
        first, days = self.years[self.today.year - age]
        birth = date.fromordinal(first + int(rnd() * days))
        province = self.province if rnd() < home_birth else self.province_of[self.home.pick(r)]
        places = self.by_province[province]
        surname = surname or _SURNAME.pick(r)
        m = _Member(sex, age, birth, surname, places[int(rnd() * len(places))])
        m.year_only = birth.year < 1955 and rnd() < 0.3
        if isinstance(father, _Member):
            native = father.record["native_place"]  # quê quán follows the father
        else:
            native = m.commune if rnd() < 0.6 else self.home.pick(r)
        m.record = {
            "id_number": self.id_number(province, birth, sex),
            "full_name": self.name(sex, surname),
            "birth_date": str(birth.year) if m.year_only else birth.isoformat(),
            "sex": _VALUE[sex],
            "birth_registration_place": m.commune,
            "native_place": native,
            "ethnicity": self.ethnicity if rnd() < 0.93 else _ETHNICITY.pick(r),
            "religion": self.religion if rnd() < 0.92 else _RELIGION.pick(r),
            "nationality": "VN",
            "marital_status": _VALUE[status],
            "occupation": self.occupation(age),
        }
        self.parents(m, father, mother)
        self.extras(m)
        self.plan(m)
        return m

    def id_number(self, province: str, birth: date, sex: Sex) -> str:
        """A fresh number whose region is the birth province's code when the birth was registered.

        Before 1 July 2025 that is one of the former provinces merged into ``province``.
        """
        rnd = self.rng.random
        if birth >= _NEW_ID_CODES_FROM:
            region = "0" + province
        else:
            regions = self.old_codes[province]
            region = regions[int(rnd() * len(regions))]
        key = (region, birth.year, sex)
        prefix = self.id_prefixes.get(key)
        if prefix is None:  # make_id_number is the one place that knows the layout
            prefix = self.id_prefixes[key] = make_id_number(region, birth.year, sex, 0)[:6]
        idn = f"{prefix}{int(rnd() * 1_000_000):06d}"
        while idn in self.used_ids:
            idn = f"{prefix}{int(rnd() * 1_000_000):06d}"
        self.used_ids.add(idn)
        return idn

    def occupation(self, age: int) -> str:
        r = self.rng
        if age < 6:
            return "Trẻ em"
        if age < 18:
            return "Học sinh"
        if age <= 22 and r.random() < 0.6:
            return "Sinh viên"
        if age >= 60 and r.random() < 0.55:
            return "Hưu trí"
        return r.pick(_COMMON_JOBS) if r.random() < 0.35 else r.pick(self.pools.jobs)

    def parents(self, m: _Member, father: _Parent, mother: _Parent) -> None:
        """Father and mother: a member, a name-only parent, or (often) a made-up name."""
        rec, known = m.record, 0.8 if m.age < 60 else 0.4
        if isinstance(father, _Member):
            rec["father"] = father.ref
        elif father is not None:
            rec["father"] = dict(father)
        elif self.rng.random() < known:
            rec["father"] = self.name_only(Sex.MALE, m.surname)
        if isinstance(mother, _Member):
            rec["mother"] = mother.ref
        elif mother is not None:
            rec["mother"] = dict(mother)
        elif self.rng.random() < known:
            rec["mother"] = self.name_only(Sex.FEMALE)

    def extras(self, m: _Member) -> None:
        """Optional fields: contact details, and rarely other names, blood group, records."""
        r, rec = self.rng, m.record
        if m.age >= 15 and r.random() < 0.92:
            rec["phone"] = f"{r.pick(self.pools.phone_stems)}{int(r.random() * 10_000):04d}"
            if m.age <= 65 and r.random() < 0.3:
                rec["email"] = self.email(rec["full_name"])
        u = r.random()
        if u >= 0.072:
            return
        if u < 0.02:
            rec["other_names"] = r.pick(_NICKNAMES)
        elif u < 0.06:
            rec["blood_group"] = _BLOOD.pick(r)
        elif m.age >= 18 and u < 0.064:
            rec["criminal_record"] = r.pick(_CRIMES)
        elif m.age >= 18:
            rec["violation_record"] = r.pick(_VIOLATIONS)

    def email(self, full_name: str) -> str:
        folded = self.folded.get(full_name)
        if folded is None:
            parts = full_name.split()
            folded = self.folded[full_name] = _ascii(parts[-1]) + _ascii(parts[0])
        r = self.rng
        return f"{folded}{r.between(1, 999)}@{r.pick(self.pools.mail_domains)}"

    def plan(self, m: _Member) -> None:
        """Decide this person's follow-up record, if any (at most one per person).

        Shares of all persons: stays ~3%; temporary residence ~8% and absences ~2%, both for
        adults only (about 70% of persons).
        """
        u = self.rng.random()
        if u < 0.03:
            self.plans.append(("stay", m))
        elif m.age < 19 or u >= 0.175:
            return
        elif u < 0.145:
            self.plans.append(("temporary", m))
        elif m.sex is Sex.MALE and m.age <= 27 and u < 0.17:
            self.plans.append((AbsenceCategory.MILITARY_AGE, m))
        elif u < 0.1745:
            self.plans.append((AbsenceCategory.OTHER, m))
        else:  # on probation or a suspended sentence: needs a record to match
            self.plans.append((AbsenceCategory.SUPERVISED, m))
            m.record.setdefault("criminal_record", "Đang chấp hành án treo")


def generate(persons: int, *, seed: int = 0, today: date) -> Iterator[dict[str, Any]]:
    """Yield import records until exactly ``persons`` persons are in households.

    >>> first = next(generate(3, seed=1, today=date(2026, 11, 27)))
    >>> first["kind"], 1 <= len(first["members"]) <= 3
    ('household', True)
    """
    if persons < 0:
        raise ValueError(f"persons must be >= 0, got {persons}")
    if not _FIRST_TODAY.year <= today.year <= _LAST_BIRTH_YEAR:
        # ID numbers encode births in 1900-2399 and the oldest resident is about 100
        raise ValueError(f"today must be in {_FIRST_TODAY.year}-{_LAST_BIRTH_YEAR}, got {today}")
    return _Generator(seed, today).records(persons)


#: Records per call to the helper, and calls kept in flight ahead of the consumer: 4,096
#: records, more than the importer takes at a time (its ``SPILL_LINES``, 2,000 lines). With
#: fewer in flight (768), the importer emptied them at the start of each of its chunks and
#: then waited while the helper made the rest: 10% of a 100,000-person ``demo seed`` was
#: that wait, the helper working only while the importer did not.
AHEAD_CHUNK = 256
AHEAD_CALLS = 16

#: The generators of :func:`_next_records`, in the helper process, by stream number.
_STREAMS: dict[int, Iterator[dict[str, Any]]] = {}


def _next_records(stream: int, persons: int, seed: int, today: date,
                  count: int) -> list[dict[str, Any]]:
    """Run in the helper: the next ``count`` records of one :func:`generate` stream (fewer
    at its end, then none)."""
    records = _STREAMS.get(stream)
    if records is None:
        records = _STREAMS[stream] = generate(persons, seed=seed, today=today)
    return list(islice(records, count))


def generate_ahead(persons: int, *, seed: int = 0, today: date) -> Iterator[dict[str, Any]]:
    """:func:`generate`'s records, the same ones in the same order, made in a helper process
    (:mod:`cutru.journal.helper`) a few chunks ahead of the consumer: ``demo seed`` then
    generates on the second core while the importer works on the first. Without a second
    CPU, or when the helper does not start, the records are made here; when it dies, the
    rest are made here (the generator is deterministic: those already given are skipped)."""
    if persons < 0:
        raise ValueError(f"persons must be >= 0, got {persons}")
    given = 0
    with helper_process() as helper:
        if helper is not None:
            try:
                calls = deque(helper.submit(_next_records, 0, persons, seed, today,
                                            AHEAD_CHUNK) for _ in range(AHEAD_CALLS))
                while calls:
                    records = calls.popleft().result()
                    if len(records) == AHEAD_CHUNK:
                        calls.append(helper.submit(_next_records, 0, persons, seed, today,
                                                   AHEAD_CHUNK))
                    for record in records:
                        yield record
                        given += 1
                return
            except HelperFailed:
                pass  # the rest are made here
    yield from islice(generate(persons, seed=seed, today=today), given, None)
