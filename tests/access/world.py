"""A small world for access tests: three communes, one principal of each kind, fixed time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cutru.access import (
    Grant,
    Principal,
    PrincipalKind,
    Resource,
    ResourceKind,
    Unit,
    default_policy,
)
from cutru.domain.fields import PERSON_FIELDS, FieldClass

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
HOAN_KIEM = "00070"  # Phường Hoàn Kiếm, Hà Nội (province 01)
BA_DINH = "00004"  # Phường Ba Đình, Hà Nội (province 01)
SAI_GON = "26740"  # Phường Sài Gòn, Hồ Chí Minh City (province 79)
HA_NOI = "01"
POLICY = default_policy()
BASIS = "Law 68/2020/QH14 Art. 20"
CASE = "VKS-2026-0042"
ME = "P-INSIDE"  # the citizen's own record; the person a grant names
OTHER = "P-OUTSIDE"

K = PrincipalKind

_UNITS = {
    K.OFFICER: Unit.commune(HOAN_KIEM),
    K.COMMUNE_POLICE_HEAD: Unit.commune(HOAN_KIEM),
    K.AGENCY_PROCEDURAL: Unit.province(HA_NOI),
    K.AGENCY_STATE: Unit.province(HA_NOI),
}
_FUNCTIONS = {K.AGENCY_PROCEDURAL: frozenset({"investigation"}),
              K.AGENCY_STATE: frozenset({"tax"})}


def principal(kind: PrincipalKind, *, clearance: bool = False, **changes: object) -> Principal:
    """The standard principal of this kind (see the module constants), with ``changes``."""
    base: dict[str, object] = {
        "id": f"{kind.value}-1",
        "kind": kind,
        "unit": _UNITS.get(kind),
        "role": kind.value,
        "functions": _FUNCTIONS.get(kind, frozenset()),
        "person_key": ME if kind is K.CITIZEN else None,
        "clearance": clearance,
    }
    base.update(changes)
    return Principal(**base)  # type: ignore[arg-type]


def fields_of(*classes: FieldClass | str) -> frozenset[str]:
    wanted = {FieldClass(c) for c in classes}
    return frozenset(f.name for f in PERSON_FIELDS if f.field_class in wanted)


def person(key: str = ME, *communes: str, secret: bool = False) -> Resource:
    return Resource(ResourceKind.PERSON, key, frozenset(communes or {HOAN_KIEM}), secret)


def grant(fields: frozenset[str] | None = None, *, person_key: str = ME,
          grantee: str = "third_party-1", approved: bool = True,
          valid_from: datetime = NOW - timedelta(days=1),
          valid_until: datetime = NOW + timedelta(days=30)) -> Grant:
    return Grant("G-1", person_key, fields if fields is not None else fields_of("identity"),
                 valid_from, valid_until, approved, grantee)
