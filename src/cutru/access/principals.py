"""Who asks: principals and the administrative unit they act for.

A :class:`Principal` is an authenticated identity as the access layer sees it: what kind of
requester it is (the four kinds of Decree 62/2021 Art. 13(3)–(4) and Decree 154/2024
Art. 13(5), plus the people who run the system), the unit it acts for, and what it holds
(an agency's functions, a citizen's own record, state-secret clearance). Identities are
stored and authenticated elsewhere; this module is only the data the decision reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cutru.domain import units
from cutru.errors import InputError


class PrincipalKind(StrEnum):
    OFFICER = "officer"  # commune-police registration officer (cán bộ đăng ký cư trú)
    COMMUNE_POLICE_HEAD = "commune_police_head"  # trưởng công an cấp xã
    AGENCY_PROCEDURAL = "agency_procedural"  # cơ quan tiến hành tố tụng
    AGENCY_STATE = "agency_state"  # state agency, organisation, specialised-database manager
    THIRD_PARTY = "third_party"  # anyone else, with the citizen's consent and a grant
    CITIZEN = "citizen"  # công dân, for their own information
    OPERATOR = "operator"  # runs backups and restores; never reads personal data
    AUDITOR = "auditor"  # reads the audit trail and integrity proofs only
    ADMINISTRATOR = "administrator"  # manages identities; never reads personal data


#: Kinds that never receive personal data, whatever a policy says.
NO_PERSONAL_DATA = frozenset(
    {PrincipalKind.OPERATOR, PrincipalKind.AUDITOR, PrincipalKind.ADMINISTRATOR}
)
#: Kinds that act for exactly one commune (the commune police).
COMMUNE_ONLY = frozenset({PrincipalKind.OFFICER, PrincipalKind.COMMUNE_POLICE_HEAD})


class UnitLevel(StrEnum):
    COMMUNE = "commune"
    PROVINCE = "province"
    NATIONAL = "national"


@dataclass(frozen=True)
class Unit:
    """A commune (5-digit code), a province (2-digit code) or the whole nation (no code).

    The code is checked against the current administrative units on construction
    (:class:`~cutru.errors.AddressError` if unknown).

    >>> Unit.province("01").contains("00070")  # Phường Hoàn Kiếm lies in Hà Nội
    True
    """

    level: UnitLevel
    code: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", UnitLevel(self.level))
        if self.level is UnitLevel.NATIONAL:
            if self.code is not None:
                raise InputError("the national unit has no code", field="unit",
                                 rule="unit.national_code")
        elif self.level is UnitLevel.PROVINCE:
            units.province(str(self.code), field="unit")
        else:
            units.commune(str(self.code), field="unit")

    @classmethod
    def commune(cls, code: str) -> Unit:
        return cls(UnitLevel.COMMUNE, code)

    @classmethod
    def province(cls, code: str) -> Unit:
        return cls(UnitLevel.PROVINCE, code)

    @classmethod
    def national(cls) -> Unit:
        return cls(UnitLevel.NATIONAL)

    @classmethod
    def parse(cls, text: str) -> Unit:
        """The inverse of ``str(unit)``: ``"commune:00070"``, ``"province:01"``, ``"national"``."""
        level, _, code = text.partition(":")
        if level not in UnitLevel.__members__.values():
            raise InputError(f"{text!r} is not a unit (commune:CODE, province:CODE, national)",
                             field="unit", rule="unit.format")
        return cls(UnitLevel(level), code or None)

    def __str__(self) -> str:
        return self.level.value if self.code is None else f"{self.level.value}:{self.code}"

    @property
    def province_code(self) -> str | None:
        """The province this unit lies in (``None`` for the nation)."""
        if self.level is UnitLevel.COMMUNE:
            return units.commune(str(self.code)).province_code
        return self.code

    def contains(self, commune_code: str) -> bool:
        """Whether the commune lies in this unit.

        Raises :class:`~cutru.errors.AddressError` for a code that is not a current commune:
        an unknown place is a data error to report, not a place to guess about.
        """
        place = units.commune(commune_code)
        if self.level is UnitLevel.NATIONAL:
            return True
        if self.level is UnitLevel.PROVINCE:
            return place.province_code == self.code
        return place.code == self.code


@dataclass(frozen=True)
class Principal:
    """An authenticated requester.

    ``unit`` is the unit it acts for (``None`` for citizens and third parties); ``role`` is a
    free label kept for the audit trail (the decision reads ``kind``, not ``role``);
    ``functions`` are an agency's statutory functions (``{"investigation"}``, ``{"tax"}``);
    ``person_key`` is a citizen's own record; ``clearance`` is state-secret clearance.
    """

    id: str
    kind: PrincipalKind
    unit: Unit | None = None
    role: str = ""
    functions: frozenset[str] = field(default_factory=frozenset)
    person_key: str | None = None
    clearance: bool = False

    def __post_init__(self) -> None:
        if not self.id:
            raise InputError("a principal needs an id", field="id", rule="required")
        object.__setattr__(self, "kind", PrincipalKind(self.kind))
        object.__setattr__(self, "functions", frozenset(self.functions))
