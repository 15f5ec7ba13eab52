"""Deterministic synthetic residents, for ``cutru demo seed --persons N --seed S``.

:func:`generate` yields import records: JSON-serialisable dicts, one per JSON Lines line, in
four kinds (``household``, ``temporary``, ``stay``, ``absence``). Each household record is
followed by the temporary-residence, stay and absence records of its members, so every record
refers to a person emitted earlier. Output depends only on ``(persons, seed, today)``.

Names, streets, phone numbers and occupations come from Faker's ``vi_VN`` locale, drawn once
per seed into pools; every other choice is made by one ``random.Random(seed)``, which keeps the
generator above 30,000 persons per second. Distributions are census-like, not census-exact.
"""

from __future__ import annotations

import random
import unicodedata
from bisect import bisect
from calendar import monthrange
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from faker import Faker

from cutru.domain.enums import AbsenceCategory, MaritalStatus, Relationship, ResidenceBasis, Sex
from cutru.domain.idnumber import make_id_number
from cutru.domain.units import OLD_PROVINCE_TO_NEW, all_communes, all_provinces

PERSON_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "id_number": "12-digit personal ID number, consistent with birth year and sex; unique",
        "full_name": "family name, middle name(s), given name",
        "birth_date": "YYYY-MM-DD, or YYYY alone for some people born before 1955",
        "sex": "male | female",
        "birth_registration_place": "5-digit current commune code",
        "native_place": "5-digit current commune code (a child's is the father's)",
        "ethnicity": "e.g. Kinh, Tày, Thái, Mường, H'Mông, Khmer (sensitive)",
        "religion": "Không, or Phật giáo, Công giáo, Tin lành, Hòa Hảo, Cao Đài (sensitive)",
        "nationality": "VN",
        "marital_status": "single | married | divorced | widowed",
        "occupation": "free text; Trẻ em / Học sinh / Sinh viên / Hưu trí by age",
        "phone": "optional; absent for children under 15",
        "email": "optional",
        "father": "optional {full_name, id_number (only if in the household), nationality}",
        "mother": "optional, as father",
        "spouse": "married couples only, pointing at each other (full_name, id_number)",
        "other_names": "optional, rare",
        "blood_group": "optional, rare: O | A | B | AB",
        "criminal_record": "optional, rare short text (sensitive)",
        "violation_record": "optional, rare short text (sensitive)",
    }
)

T = TypeVar("T")


class _Weighted(Generic[T]):
    """Weighted choice in O(log n) with one ``random()`` call."""

    def __init__(self, weights: Mapping[T, float]) -> None:
        self.items = tuple(weights)
        self.cum = tuple(accumulate(weights.values()))
        self.total = self.cum[-1]

    def pick(self, rng: random.Random) -> T:
        return self.items[bisect(self.cum, rng.random() * self.total)]


# Census 2019 (GSO, "Kết quả toàn bộ Tổng điều tra dân số và nhà ở năm 2019"), per cent.
_ETHNICITY = _Weighted(
    {
        "Kinh": 85.3,
        "Tày": 1.9,
        "Thái": 1.9,
        "Mường": 1.5,
        "H'Mông": 1.5,
        "Khmer": 1.4,
        "Nùng": 1.1,
        "Dao": 0.9,
        "Hoa": 0.8,
        "Gia Rai": 0.5,
        "Ê Đê": 0.4,
        "Ba Na": 0.3,
        "Xơ Đăng": 0.2,
        "Sán Chay": 0.2,
        "Cơ Ho": 0.2,
        "Chăm": 0.2,
        "Sán Dìu": 0.2,
    }
)
_RELIGION = _Weighted(
    {
        "Không": 86.3,
        "Công giáo": 6.1,
        "Phật giáo": 4.8,
        "Hòa Hảo": 1.0,
        "Tin lành": 1.0,
        "Cao Đài": 0.6,
    }
)
# Family-name frequencies from Wikipedia, "Vietnamese name" (Nguyễn 38%, Trần 11% ...).
_SURNAME = _Weighted(
    {
        "Nguyễn": 38.4,
        "Trần": 12.1,
        "Lê": 9.5,
        "Phạm": 7.0,
        "Hoàng": 2.6,
        "Huỳnh": 2.5,
        "Phan": 4.5,
        "Vũ": 2.0,
        "Võ": 1.9,
        "Đặng": 2.1,
        "Bùi": 2.0,
        "Đỗ": 1.4,
        "Hồ": 1.3,
        "Ngô": 1.3,
        "Dương": 1.0,
        "Lý": 0.5,
    }
)
# Approximate ABO shares reported for Vietnam.
_BLOOD = _Weighted({"O": 42.0, "B": 31.0, "A": 21.0, "AB": 6.0})
# Mean household size 3.5 (Census 2019).
_SIZE = _Weighted({1: 11.0, 2: 17.0, 3: 22.0, 4: 25.0, 5: 13.0, 6: 8.0, 7: 4.0})
_COMMON_JOBS = ("Nông dân", "Công nhân", "Buôn bán", "Lao động tự do", "Nội trợ", "Ngư dân")
_NICKNAMES = ("Tí", "Tèo", "Bé", "Út", "Cu", "Bi", "Hai", "Ba", "Tư", "Năm")
_CRIMES = (
    "Trộm cắp tài sản, 9 tháng tù",
    "Cố ý gây thương tích, 12 tháng tù cho hưởng án treo",
    "Đánh bạc, phạt tiền",
    "Vi phạm quy định về tham gia giao thông đường bộ, 18 tháng tù",
)
_VIOLATIONS = (
    "Xử phạt hành chính: gây rối trật tự công cộng",
    "Xử phạt hành chính: đánh bạc trái phép",
    "Giáo dục tại xã, phường: trộm cắp vặt",
)
_STAY_REASONS = ("Thăm người thân", "Công tác", "Du lịch", "Khám chữa bệnh", "Học tập ngắn hạn")
# Going abroad needs no absence declaration (Art. 31(1)(d)), so destinations are domestic.
_AWAY_REASONS = ("Đi làm ăn xa", "Đi học", "Chăm sóc người thân", "Đi làm việc theo hợp đồng")
_SUPERVISED_REASONS = ("Thăm người thân", "Khám chữa bệnh")
_TEMPORARY_BASES = (ResidenceBasis.RENTED, ResidenceBasis.RELATIVE, ResidenceBasis.OWN_RESIDENCE)
_NEW_ID_CODES_FROM = date(2025, 7, 1)  # births registered since then carry the current code


@dataclass(frozen=True)
class _Pools:
    """What Faker provides, drawn once per seed."""

    given: Mapping[Sex, tuple[str, ...]]
    middle: Mapping[Sex, tuple[str, ...]]
    streets: tuple[str, ...]
    phone_stems: tuple[str, ...]  # a Faker number without its last 4 digits
    jobs: tuple[str, ...]
    mail_domains: tuple[str, ...]

    @classmethod
    def draw(cls, seed: int) -> _Pools:
        fake = Faker("vi_VN")
        fake.seed_instance(seed)
        unisex = [fake.first_name_unisex() for _ in range(64)]
        male = [fake.first_name_male() for _ in range(192)] + unisex
        female = [fake.first_name_female() for _ in range(192)] + unisex
        middles = [m for m in (fake.middle_name() for _ in range(256)) if m != "Thị"]
        return cls(
            given={Sex.MALE: tuple(male), Sex.FEMALE: tuple(female)},
            # "Văn" and "Thị" lead; a woman's middle name is often a given name (Ngọc, Lan).
            middle={
                Sex.MALE: tuple(["Văn"] * 128 + middles),
                Sex.FEMALE: tuple(["Thị"] * 192 + female[:192]),
            },
            streets=tuple(fake.street_address() for _ in range(2048)),
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
    return date(year, month, min(d.day, monthrange(year, month)[1]))


class _Member:
    __slots__ = ("age", "birth", "commune", "record", "sex", "surname", "year_only")

    def __init__(self, sex: Sex, age: int, birth: date, surname: str, commune: str) -> None:
        self.sex, self.age, self.birth, self.surname = sex, age, birth, surname
        self.commune = commune  # birth-registration commune
        self.year_only = False
        self.record: dict[str, Any] = {}

    @property
    def ref(self) -> dict[str, str]:
        r = self.record
        return {"full_name": r["full_name"], "id_number": r["id_number"], "nationality": "VN"}

    @property
    def adult_on(self) -> date:
        """The 18th birthday (31 December of the 18th year when only the year is known)."""
        return (
            date(self.birth.year + 18, 12, 31) if self.year_only else _add_months(self.birth, 216)
        )


_Parent = _Member | dict[str, str] | None
_Plan = tuple[str, _Member]  # a follow-up record to emit once the household is dated


class _Generator:
    def __init__(self, seed: int, today: date) -> None:
        self.rng = random.Random(seed)
        self.pools = _Pools.draw(seed)
        self.today = today
        self.used_ids: set[str] = set()
        communes = all_communes()
        boost = {"79": 2.5, "01": 2.0, "31": 1.3, "48": 1.3, "92": 1.2}
        kind_weight = {"phường": 3.0, "xã": 1.0, "đặc khu": 1.0}
        self.home = _Weighted(
            {c.code: kind_weight[c.kind] * boost.get(c.province_code, 1.0) for c in communes}
        )
        self.province_of = {c.code: c.province_code for c in communes}
        self.names = {c.code: c.name for c in communes}
        self.province_names = {p.code: p.name for p in all_provinces()}
        self.by_province: dict[str, list[str]] = {p.code: [] for p in all_provinces()}
        for c in communes:
            self.by_province[c.province_code].append(c.code)
        self.old_codes: dict[str, list[str]] = {p: [] for p in self.by_province}
        for old, new in OLD_PROVINCE_TO_NEW.items():
            self.old_codes[new].append("0" + old)
        self.folded: dict[str, str] = {}
        # the household being composed
        self.province, self.ethnicity, self.religion = "", "", ""
        self.plans: list[_Plan] = []

    # -- records -----------------------------------------------------------------------------

    def households(self, persons: int) -> Iterator[dict[str, Any]]:
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
        head = members[0][1]
        youngest = max(m.birth for _, m in members)
        lower = max(youngest, head.adult_on, self.today - timedelta(days=30 * 365))
        registered = self.day_between(lower, self.today - timedelta(days=1))
        yield {
            "kind": "household",
            "commune_code": commune,
            "street": self.rng.choice(self.pools.streets),
            "registered_on": registered.isoformat(),
            "members": [{"relationship": rel.value, "person": m.record} for rel, m in members],
        }
        for kind, member in self.plans:
            yield self.follow_up(kind, member, commune, registered)

    def follow_up(self, kind: str, m: _Member, home: str, registered: date) -> dict[str, Any]:
        if kind == "stay":
            return self.stay(m, home, registered)
        if kind == "temporary":
            return self.temporary(m, home, max(registered, m.adult_on))
        return self.absence(AbsenceCategory(kind), m, home, max(registered, m.adult_on))

    def stay(self, m: _Member, home: str, registered: date) -> dict[str, Any]:
        """A stay notification (Law 68/2020 Art. 30): under 30 days, away from home."""
        r, today = self.rng, self.today
        arrival = self.day_between(max(registered, m.birth, today - timedelta(45)), today)
        return {
            "kind": "stay",
            "id_number": m.record["id_number"],
            "commune_code": self.elsewhere(home),
            "street": r.choice(self.pools.streets),
            "arrival": arrival.isoformat(),
            "departure": (arrival + timedelta(r.randint(1, 20))).isoformat(),
            "reason": r.choice(_STAY_REASONS),
        }

    def temporary(self, m: _Member, home: str, floor: date) -> dict[str, Any]:
        """A current temporary residence (Art. 27): another commune, term at most 2 years."""
        r, today = self.rng, self.today
        months = r.choice((6, 12, 12, 24, 24))
        start = self.day_between(max(floor, _add_months(today, -months) + timedelta(1)), today)
        basis = r.choices(_TEMPORARY_BASES, (75, 15, 10))[0]
        return {
            "kind": "temporary",
            "id_number": m.record["id_number"],
            "commune_code": self.elsewhere(home),
            "street": r.choice(self.pools.streets),
            "start": start.isoformat(),
            "term_end": (_add_months(start, months) - timedelta(1)).isoformat(),
            "basis": basis.value,
        }

    def absence(self, kind: AbsenceCategory, m: _Member, home: str, floor: date) -> dict[str, Any]:
        """A temporary-absence declaration (Art. 31(1)), with the period its category needs."""
        r = self.rng
        start = self.day_between(max(floor, self.today - timedelta(120)), self.today)
        if kind is AbsenceCategory.SUPERVISED:  # >= 1 day
            end, reason = start + timedelta(r.randint(1, 30)), r.choice(_SUPERVISED_REASONS)
        elif kind is AbsenceCategory.MILITARY_AGE:  # >= 3 consecutive months
            end, reason = _add_months(start, r.randint(3, 12)), r.choice(_AWAY_REASONS)
        else:  # >= 12 consecutive months
            end, reason = _add_months(start, r.choice((12, 18, 24))), r.choice(_AWAY_REASONS)
        code = self.elsewhere(home)
        return {
            "kind": "absence",
            "id_number": m.record["id_number"],
            "category": kind.value,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "destination": f"{self.names[code]}, {self.province_names[self.province_of[code]]}",
            "reason": reason,
        }

    def elsewhere(self, home: str) -> str:
        """A commune other than ``home``: half the time in the same province."""
        while True:
            if self.rng.random() < 0.5:
                code = self.rng.choice(self.by_province[self.province_of[home]])
            else:
                code = self.home.pick(self.rng)
            if code != home:
                return code

    def day_between(self, lo: date, hi: date) -> date:
        if hi <= lo:
            return lo
        return date.fromordinal(self.rng.randint(lo.toordinal(), hi.toordinal()))

    # -- household shapes --------------------------------------------------------------------

    def compose(self, n: int) -> list[tuple[Relationship, _Member]]:
        """Members of an ``n``-person household, head first."""
        r = self.rng.random()
        if n == 1:
            return self.single()
        if n == 2:
            if r < 0.70:
                return self.nuclear(0)
            if r < 0.82:
                return self.single_parent(1)
            if r < 0.88:
                return self.siblings(2)
            return self.with_parents(n, spouse=False)
        if r < 0.50 and n <= 6:
            return self.nuclear(n - 2)
        if r < 0.58 and n <= 5:
            return self.single_parent(n - 1)
        if r < 0.62 and n >= 4:
            return self.nuclear(n - 3, sibling=True)
        if r < 0.80 and n >= 3:
            return self.with_parents(n, spouse=True)
        return self.three_generations(n)

    def family_ages(self, k: int, max_mother: int) -> tuple[int, int, list[int]]:
        """Ages of father, mother and ``k`` children (eldest first); gaps 20-44 years."""
        r = self.rng
        if k == 0:
            mother = r.randint(19, 35) if r.random() < 0.5 else r.randint(45, max_mother)
            return max(mother + r.randint(-1, 5), 20), mother, []
        births = [r.randint(20, 32)]
        for _ in range(k - 1):
            births.append(min(births[-1] + r.randint(1, 4), 39))
        youngest = min(int(r.triangular(0, 26, 3)), max_mother - births[-1])
        mother = births[-1] + youngest
        father = mother + max(r.randint(-1, 5), 20 - births[0])
        return father, mother, [mother - b for b in births]

    def parent_ages(self, child_age: int) -> tuple[int, int]:
        mother = child_age + self.rng.randint(20, max(20, min(39, 95 - child_age)))
        return min(mother + self.rng.randint(-1, 5), 99), mother

    def single(self) -> list[tuple[Relationship, _Member]]:
        r = self.rng
        band = r.random()
        age = (
            r.randint(19, 35)
            if band < 0.4
            else r.randint(36, 59)
            if band < 0.65
            else r.randint(60, 92)
        )
        if age < 30:
            status = MaritalStatus.SINGLE
        else:
            widow = 0.7 if age >= 60 else 0.15
            status = r.choices(
                (MaritalStatus.WIDOWED, MaritalStatus.DIVORCED, MaritalStatus.SINGLE),
                (widow, 0.25, 0.75 - widow),
            )[0]
        sex = (
            Sex.FEMALE
            if r.random() < (0.65 if status is MaritalStatus.WIDOWED else 0.45)
            else (Sex.MALE)
        )
        return [(Relationship.HEAD, self.person(sex, age, status))]

    def couple(self, f_age: int, m_age: int, **kw: Any) -> tuple[_Member, _Member]:
        husband = self.person(Sex.MALE, f_age, MaritalStatus.MARRIED, **kw)
        wife = self.person(Sex.FEMALE, m_age, MaritalStatus.MARRIED, **kw)
        husband.record["spouse"], wife.record["spouse"] = wife.ref, husband.ref
        return husband, wife

    def children(
        self, ages: Sequence[int], father: _Parent, mother: _Parent, surname: str
    ) -> list[_Member]:
        return [
            self.person(
                self.sex(),
                a,
                MaritalStatus.SINGLE,
                father=father,
                mother=mother,
                surname=surname,
                home_birth=0.85,
            )
            for a in ages
        ]

    def nuclear(self, k: int, sibling: bool = False) -> list[tuple[Relationship, _Member]]:
        f_age, m_age, ages = self.family_ages(k, 85)
        husband, wife = self.couple(f_age, m_age)
        kids = self.children(ages, husband, wife, husband.surname)
        head, spouse = (husband, wife) if self.rng.random() < 0.8 else (wife, husband)
        out = [(Relationship.HEAD, head), (Relationship.SPOUSE, spouse)]
        out += [(Relationship.CHILD, c) for c in kids]
        if sibling:
            age = max(15, head.age + self.rng.randint(-8, 8))
            out.append(
                (
                    Relationship.SIBLING,
                    self.person(
                        self.sex(),
                        age,
                        MaritalStatus.SINGLE,
                        father=head.record.get("father"),
                        mother=head.record.get("mother"),
                        surname=head.surname,
                    ),
                )
            )
        return out

    def single_parent(self, k: int) -> list[tuple[Relationship, _Member]]:
        f_age, m_age, ages = self.family_ages(k, 85)
        status = self.rng.choices(
            (MaritalStatus.DIVORCED, MaritalStatus.WIDOWED, MaritalStatus.SINGLE), (5, 4, 1)
        )[0]
        absent = self.name_only(Sex.MALE if self.rng.random() < 0.8 else Sex.FEMALE)
        if absent["sex"] == Sex.MALE:
            parent = self.person(Sex.FEMALE, m_age, status)
            known = None if status is MaritalStatus.SINGLE else absent["ref"]
            kids = self.children(ages, known, parent, absent["surname"])
        else:
            parent = self.person(Sex.MALE, f_age, status)
            kids = self.children(ages, parent, absent["ref"], parent.surname)
        return [(Relationship.HEAD, parent)] + [(Relationship.CHILD, c) for c in kids]

    def siblings(self, n: int) -> list[tuple[Relationship, _Member]]:
        head_age = self.rng.randint(19, 45)
        father, mother = self.name_only(Sex.MALE), self.name_only(Sex.FEMALE)
        kw: dict[str, Any] = {
            "father": father["ref"],
            "mother": mother["ref"],
            "surname": father["surname"],
        }
        head = self.person(self.sex(), head_age, MaritalStatus.SINGLE, **kw)
        out = [(Relationship.HEAD, head)]
        for _ in range(n - 1):
            age = max(10, head_age + self.rng.randint(-10, 10))
            out.append(
                (Relationship.SIBLING, self.person(self.sex(), age, MaritalStatus.SINGLE, **kw))
            )
        return out

    def elders(self, child_age: int, count: int) -> tuple[_Member | None, _Member | None]:
        """The parents of a ``child_age``-year-old: both (married) or one (widowed)."""
        f_age, m_age = self.parent_ages(child_age)
        if count == 2:
            return self.couple(f_age, m_age)
        if self.rng.random() < 0.7:
            return None, self.person(Sex.FEMALE, m_age, MaritalStatus.WIDOWED)
        return self.person(Sex.MALE, f_age, MaritalStatus.WIDOWED), None

    def descend(
        self,
        elders: tuple[_Member | None, _Member | None],
        sex: Sex,
        age: int,
        status: MaritalStatus,
    ) -> _Member:
        """A child of ``elders`` (one may be absent: then a name-only parent stands in)."""
        father, mother = elders
        if father is None:
            absent = self.name_only(Sex.MALE)
            f_ref: _Parent = absent["ref"]
            surname = absent["surname"]
        else:
            f_ref, surname = father, father.surname
        m_ref: _Parent = mother if mother else self.name_only(Sex.FEMALE)["ref"]
        return self.person(sex, age, status, father=f_ref, mother=m_ref, surname=surname)

    def with_parents(self, n: int, spouse: bool) -> list[tuple[Relationship, _Member]]:
        """A head living with one or both of their parents (and their own family)."""
        elder_count = 2 if n - (2 if spouse else 1) >= 2 and self.rng.random() < 0.5 else 1
        k = n - elder_count - (2 if spouse else 1)
        f_age, m_age, ages = self.family_ages(k, 55) if spouse else (0, 0, [])
        head_sex = Sex.MALE if spouse and self.rng.random() < 0.85 else self.sex()
        if spouse:
            head_age = f_age if head_sex is Sex.MALE else m_age
        else:
            head_age = self.rng.randint(19, 50)
        elders = self.elders(head_age, elder_count)
        status = MaritalStatus.MARRIED if spouse else MaritalStatus.SINGLE
        head = self.descend(elders, head_sex, head_age, status)
        out = [(Relationship.HEAD, head)]
        if spouse:
            other = self.person(
                _other(head_sex), m_age if head_sex is Sex.MALE else f_age, MaritalStatus.MARRIED
            )
            head.record["spouse"], other.record["spouse"] = other.ref, head.ref
            husband, wife = (head, other) if head_sex is Sex.MALE else (other, head)
            out.append((Relationship.SPOUSE, other))
            out += [
                (Relationship.CHILD, c) for c in self.children(ages, husband, wife, husband.surname)
            ]
        out += [(Relationship.PARENT, e) for e in elders if e is not None]
        return out

    def three_generations(self, n: int) -> list[tuple[Relationship, _Member]]:
        """Grandparent head, a married child with their spouse, grandchildren."""
        elder_count = 2 if n >= 4 and self.rng.random() < 0.6 else 1
        k = n - elder_count - 2
        f_age, m_age, ages = self.family_ages(k, 55)
        son = self.rng.random() < 0.75
        elders = self.elders(f_age if son else m_age, elder_count)
        blood = self.descend(
            elders, Sex.MALE if son else Sex.FEMALE, f_age if son else m_age, MaritalStatus.MARRIED
        )
        in_law = self.person(_other(blood.sex), m_age if son else f_age, MaritalStatus.MARRIED)
        blood.record["spouse"], in_law.record["spouse"] = in_law.ref, blood.ref
        husband, wife = (blood, in_law) if son else (in_law, blood)
        kids = self.children(ages, husband, wife, husband.surname)
        father, mother = elders
        head, partner = (father, mother) if father else (mother, None)
        assert head is not None
        out = [(Relationship.HEAD, head)]
        if partner:
            out.append((Relationship.SPOUSE, partner))
        out += [(Relationship.CHILD, blood), (Relationship.CHILD_IN_LAW, in_law)]
        return out + [(Relationship.GRANDCHILD, c) for c in kids]

    # -- persons -----------------------------------------------------------------------------

    def sex(self) -> Sex:
        return Sex.MALE if self.rng.random() < 0.51 else Sex.FEMALE

    def name(self, sex: Sex, surname: str) -> str:
        r, p = self.rng, self.pools
        given = r.choice(p.given[sex])
        middle = r.choice(p.middle[sex])
        if middle == given:
            middle = "Văn" if sex is Sex.MALE else "Thị"
        return f"{surname} {middle} {given}"

    def name_only(self, sex: Sex, surname: str | None = None) -> dict[str, Any]:
        """A parent outside the household: name and nationality, no ID number."""
        surname = surname or _SURNAME.pick(self.rng)
        ref = {"full_name": self.name(sex, surname), "nationality": "VN"}
        return {"sex": sex, "surname": surname, "ref": ref}

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
        r, today = self.rng, self.today
        year = today.year - age
        birth = self.day_between(date(year, 1, 1), min(date(year, 12, 31), today))
        province = self.province if r.random() < home_birth else self.province_of[self.home.pick(r)]
        m = _Member(
            sex, age, birth, surname or _SURNAME.pick(r), r.choice(self.by_province[province])
        )
        m.year_only = year < 1955 and r.random() < 0.3
        region = (
            "0" + province if birth >= _NEW_ID_CODES_FROM else r.choice(self.old_codes[province])
        )
        idn = make_id_number(region, year, sex, r.randrange(1_000_000))
        while idn in self.used_ids:
            idn = make_id_number(region, year, sex, r.randrange(1_000_000))
        self.used_ids.add(idn)
        native = (
            father.record["native_place"]
            if isinstance(father, _Member)
            else (m.commune if r.random() < 0.6 else self.home.pick(r))
        )
        rec = m.record
        rec["id_number"] = idn
        rec["full_name"] = self.name(sex, m.surname)
        rec["birth_date"] = str(year) if m.year_only else birth.isoformat()
        rec["sex"] = sex.value
        rec["birth_registration_place"] = m.commune
        rec["native_place"] = native
        rec["ethnicity"] = self.ethnicity if r.random() < 0.93 else _ETHNICITY.pick(r)
        rec["religion"] = self.religion if r.random() < 0.92 else _RELIGION.pick(r)
        rec["nationality"] = "VN"
        rec["marital_status"] = status.value
        rec["occupation"] = self.occupation(age)
        self.extras(m, father, mother)
        self.plan(m)
        return m

    def occupation(self, age: int) -> str:
        r = self.rng
        if age < 6:
            return "Trẻ em"
        if age < 18:
            return "Học sinh"
        if (age <= 22 and r.random() < 0.6) or (age >= 60 and r.random() < 0.55):
            return "Sinh viên" if age <= 22 else "Hưu trí"
        return r.choice(_COMMON_JOBS) if r.random() < 0.35 else r.choice(self.pools.jobs)

    def extras(self, m: _Member, father: _Parent, mother: _Parent) -> None:
        """Optional fields: contact details, parents, rare data."""
        r, rec, p = self.rng, m.record, self.pools
        for key, parent in (("father", father), ("mother", mother)):
            if isinstance(parent, _Member):
                rec[key] = parent.ref
            elif parent is not None:
                rec[key] = dict(parent)
            elif r.random() < (0.8 if m.age < 60 else 0.4):
                absent = (
                    self.name_only(Sex.MALE, m.surname)
                    if key == "father"
                    else (self.name_only(Sex.FEMALE))
                )
                rec[key] = absent["ref"]
        if m.age >= 15 and r.random() < 0.92:
            rec["phone"] = f"{r.choice(p.phone_stems)}{r.randrange(10_000):04d}"
            if m.age <= 65 and r.random() < 0.3:
                rec["email"] = self.email(rec["full_name"])
        u = r.random()
        if u < 0.02:
            rec["other_names"] = r.choice(_NICKNAMES)
        elif u < 0.06:
            rec["blood_group"] = _BLOOD.pick(r)
        elif m.age >= 18 and u < 0.064:
            rec["criminal_record"] = r.choice(_CRIMES)
        elif m.age >= 18 and u < 0.072:
            rec["violation_record"] = r.choice(_VIOLATIONS)

    def email(self, full_name: str) -> str:
        folded = self.folded.get(full_name)
        if folded is None:
            parts = full_name.split()
            folded = self.folded[full_name] = _ascii(parts[-1]) + _ascii(parts[0])
        r = self.rng
        return f"{folded}{r.randrange(1, 1000)}@{r.choice(self.pools.mail_domains)}"

    def plan(self, m: _Member) -> None:
        """Decide this person's follow-up record, if any (at most one per person)."""
        u = self.rng.random()
        if u < 0.03:
            self.plans.append(("stay", m))
        elif m.age < 19 or u >= 0.17:
            return
        elif u < 0.136:  # ~8% of all persons: adults are ~75% of them
            self.plans.append(("temporary", m))
        elif m.sex is Sex.MALE and m.age <= 27 and u < 0.16:
            self.plans.append((AbsenceCategory.MILITARY_AGE, m))
        elif u < 0.1675:
            self.plans.append((AbsenceCategory.OTHER, m))
        else:
            self.plans.append((AbsenceCategory.SUPERVISED, m))
            m.record.setdefault("criminal_record", "Đang chấp hành án treo")


def _other(sex: Sex) -> Sex:
    return Sex.FEMALE if sex is Sex.MALE else Sex.MALE


def generate(persons: int, *, seed: int = 0, today: date) -> Iterator[dict[str, Any]]:
    """Yield import records until exactly ``persons`` persons are in households.

    >>> from datetime import date
    >>> first = next(generate(3, seed=1, today=date(2026, 11, 27)))
    >>> first["kind"], len(first["members"]) <= 3
    ('household', True)
    """
    if persons < 0:
        raise ValueError(f"persons must be >= 0, got {persons}")
    return _Generator(seed, today).households(persons)
