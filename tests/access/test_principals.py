"""Units and principals."""

from __future__ import annotations

import pytest

from cutru.access import Principal, PrincipalKind, Unit, UnitLevel
from cutru.errors import AddressError, InputError
from tests.access.world import BA_DINH, HA_NOI, HOAN_KIEM, SAI_GON


@pytest.mark.parametrize(("unit", "inside", "outside"), [
    (Unit.commune(HOAN_KIEM), {HOAN_KIEM}, {BA_DINH, SAI_GON}),
    (Unit.province(HA_NOI), {HOAN_KIEM, BA_DINH}, {SAI_GON}),
    (Unit.national(), {HOAN_KIEM, BA_DINH, SAI_GON}, set()),
])
def test_contains(unit: Unit, inside: set[str], outside: set[str]) -> None:
    assert all(unit.contains(code) for code in inside)
    assert not any(unit.contains(code) for code in outside)


def test_contains_refuses_an_unknown_commune_rather_than_guess() -> None:
    with pytest.raises(AddressError):
        Unit.national().contains("99999")


@pytest.mark.parametrize("text", ["commune:00070", "province:01", "national"])
def test_parse_is_the_inverse_of_str(text: str) -> None:
    assert str(Unit.parse(text)) == text


def test_province_of_a_unit() -> None:
    assert Unit.commune(SAI_GON).province_code == "79"
    assert Unit.province(HA_NOI).province_code == HA_NOI
    assert Unit.national().province_code is None


@pytest.mark.parametrize(("build", "error"), [
    (lambda: Unit.commune("99999"), AddressError),
    (lambda: Unit.province("1"), AddressError),
    (lambda: Unit(UnitLevel.NATIONAL, "01"), InputError),
    (lambda: Unit.parse("district:001"), InputError),
    (lambda: Principal("", PrincipalKind.OFFICER), InputError),
])
def test_bad_units_and_principals_are_refused(build: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        build()  # type: ignore[operator]


def test_principal_is_frozen_and_hashable() -> None:
    p = Principal("o-1", PrincipalKind("officer"), Unit.commune(HOAN_KIEM),
                  functions=frozenset({"registration"}))
    assert p.kind is PrincipalKind.OFFICER
    assert hash(p) == hash(Principal("o-1", PrincipalKind.OFFICER, Unit.commune(HOAN_KIEM),
                                     functions=frozenset({"registration"})))
    with pytest.raises(AttributeError):
        p.clearance = True  # type: ignore[misc]
