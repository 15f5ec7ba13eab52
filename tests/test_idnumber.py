"""The personal ID number: format, region, century/sex digit, consistency with the record."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cutru.domain.enums import Sex
from cutru.domain.idnumber import (
    REGION_CODES,
    IdNumber,
    check_consistency,
    make_id_number,
    parse_id_number,
    validate_id_number,
    validate_old_id_card,
)
from cutru.errors import (
    IdNumberBirthYearMismatch,
    IdNumberCenturyError,
    IdNumberError,
    IdNumberFormatError,
    IdNumberRegionError,
    IdNumberSexMismatch,
    InputError,
)

TODAY = date(2026, 11, 27)


def test_parse_reads_every_part() -> None:
    idn = parse_id_number("001203012345")
    assert idn == IdNumber("001203012345", "001", 2, 2003, Sex.MALE)
    assert str(idn) == "001203012345"


def test_parse_a_woman_born_in_the_1900s() -> None:
    idn = parse_id_number("079185000042")
    assert (idn.region_code, idn.birth_year, idn.sex) == ("079", 1985, Sex.FEMALE)


@pytest.mark.parametrize(
    ("digit", "year", "sex"),
    [
        (0, 1985, Sex.MALE),
        (1, 1985, Sex.FEMALE),
        (2, 2085, Sex.MALE),
        (3, 2085, Sex.FEMALE),
        (4, 2185, Sex.MALE),
        (5, 2185, Sex.FEMALE),
        (6, 2285, Sex.MALE),
        (7, 2285, Sex.FEMALE),
        (8, 2385, Sex.MALE),
        (9, 2385, Sex.FEMALE),
    ],
)
def test_digit_4_gives_century_and_sex(digit: int, year: int, sex: Sex) -> None:
    idn = parse_id_number(f"038{digit}85123456")
    assert (idn.century_sex_digit, idn.birth_year, idn.sex) == (digit, year, sex)


def test_parsed_number_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse_id_number("001203012345").birth_year = 1990  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "00120301234",  # 11 digits
        "0012030123456",  # 13 digits
        "00120301234a",
        "001-03012345",
        " 001203012345",
        "001203012345\n",
        "００１２０３０１２３４５",  # full-width digits
        "٠٠١٢٠٣٠١٢٣٤٥",  # Arabic-Indic digits: isdigit() is True for them
    ],
)
def test_not_twelve_ascii_digits_is_a_format_error(text: str) -> None:
    with pytest.raises(IdNumberFormatError) as info:
        parse_id_number(text, field="members[0].id_number")
    assert info.value.rule == "id_number.format"
    assert info.value.field == "members[0].id_number"


def test_non_text_is_a_format_error() -> None:
    with pytest.raises(IdNumberFormatError):
        parse_id_number(1203012345)  # type: ignore[arg-type]


@pytest.mark.parametrize("region", ["000", "003", "097", "100", "999"])
def test_unknown_region_code(region: str) -> None:
    with pytest.raises(IdNumberRegionError) as info:
        parse_id_number(f"{region}203012345")
    assert info.value.rule == "id_number.region"
    assert region in info.value.message


def test_birth_year_mismatch_names_both_years() -> None:
    idn = parse_id_number("001203012345")
    with pytest.raises(IdNumberBirthYearMismatch) as info:
        check_consistency(idn, birth_year=1985, sex=Sex.MALE, today=TODAY)
    assert info.value.rule == "id_number.birth_year"
    assert info.value.message == "digits 5-6 of 001203012345 say born 2003, the record says 1985"


def test_a_wrong_century_is_a_birth_year_mismatch_when_in_the_past() -> None:
    # digit 0 (1900s) where the record says 2003: the year digits agree, the century does not
    with pytest.raises(IdNumberBirthYearMismatch):
        validate_id_number("001003012345", birth_year=2003, sex=Sex.MALE, today=TODAY)


def test_sex_mismatch() -> None:
    with pytest.raises(IdNumberSexMismatch) as info:
        validate_id_number("001203012345", birth_year=2003, sex=Sex.FEMALE, today=TODAY)
    assert info.value.rule == "id_number.sex"
    assert "says male, the record says female" in info.value.message


def test_future_birth_year_is_a_century_error() -> None:
    # digit 4 = 4 means the 2100s: born 2103, which has not happened yet
    with pytest.raises(IdNumberCenturyError) as info:
        validate_id_number("001403012345", birth_year=None, sex=None, today=TODAY)
    assert info.value.rule == "id_number.century"
    assert "2103" in info.value.message


def test_next_year_is_already_the_future() -> None:
    with pytest.raises(IdNumberCenturyError):
        validate_id_number("001227012345", birth_year=2027, sex=Sex.MALE, today=TODAY)


def test_century_error_is_reported_before_the_year_mismatch() -> None:
    with pytest.raises(IdNumberCenturyError):
        validate_id_number("001485012345", birth_year=1985, sex=Sex.MALE, today=TODAY)


def test_a_future_century_becomes_valid_once_reached() -> None:
    idn = validate_id_number("001403012345", birth_year=2103, sex=Sex.MALE, today=date(2103, 1, 1))
    assert idn.birth_year == 2103


def test_born_this_year_is_not_the_future() -> None:
    validate_id_number("001326012345", birth_year=2026, sex=Sex.FEMALE, today=TODAY)


def test_unknown_fields_are_not_compared() -> None:
    idn = validate_id_number("001203012345", birth_year=None, sex=None, today=TODAY)
    assert idn.birth_year == 2003


def test_record_sex_may_be_given_as_text() -> None:
    validate_id_number("001303012345", birth_year=2003, sex="female", today=TODAY)  # type: ignore[arg-type]


def test_consistency_errors_carry_the_field() -> None:
    with pytest.raises(IdNumberSexMismatch) as info:
        validate_id_number(
            "001203012345", birth_year=2003, sex=Sex.FEMALE, today=TODAY, field="spouse.id_number"
        )
    assert info.value.field == "spouse.id_number"
    assert info.value.to_dict()["field"] == "spouse.id_number"


def test_each_failure_has_its_own_class_and_rule() -> None:
    classes = [
        IdNumberFormatError,
        IdNumberRegionError,
        IdNumberCenturyError,
        IdNumberBirthYearMismatch,
        IdNumberSexMismatch,
    ]
    assert len(set(classes)) == 5
    for cls in classes:
        assert issubclass(cls, IdNumberError) and issubclass(cls, InputError)
    for a in classes:  # none is a subclass of another: a handler for one never catches another
        assert [b for b in classes if b is not a and issubclass(a, b)] == []


def test_make_id_number_layout() -> None:
    assert make_id_number("079", 1985, Sex.FEMALE, 42) == "079185000042"
    assert make_id_number("001", 2003, Sex.MALE, 999_999) == "001203999999"
    assert make_id_number("096", 2399, Sex.FEMALE, 0) == "096999000000"


@pytest.mark.parametrize(
    ("region", "year", "serial"),
    [
        ("003", 1985, 1),  # unknown region
        ("79", 1985, 1),
        ("079", 1899, 1),
        ("079", 2400, 1),
        ("079", 1985, -1),
        ("079", 1985, 1_000_000),
    ],
)
def test_make_id_number_refuses_out_of_range(region: str, year: int, serial: int) -> None:
    with pytest.raises(ValueError):
        make_id_number(region, year, Sex.MALE, serial)


@given(
    region=st.sampled_from(sorted(REGION_CODES)),
    year=st.integers(1900, 2399),
    sex=st.sampled_from(Sex),
    serial=st.integers(0, 999_999),
)
def test_make_then_parse_round_trips(region: str, year: int, sex: Sex, serial: int) -> None:
    text = make_id_number(region, year, sex, serial)
    idn = validate_id_number(text, birth_year=year, sex=sex, today=date(2400, 1, 1))
    assert (idn.value, idn.region_code, idn.birth_year, idn.sex) == (text, region, year, sex)
    assert int(text[6:]) == serial


@given(st.text(max_size=14).filter(lambda t: not (len(t) == 12 and t.isascii() and t.isdigit())))
def test_anything_but_twelve_digits_is_a_format_error(text: str) -> None:
    with pytest.raises(IdNumberFormatError):
        parse_id_number(text)


@given(st.from_regex(r"[0-9]{12}", fullmatch=True))
def test_twelve_digits_parse_or_fail_on_the_region_only(text: str) -> None:
    try:
        idn = parse_id_number(text)
    except IdNumberRegionError:
        assert text[:3] not in REGION_CODES
        return
    digit = int(text[3])
    assert idn.birth_year == (19 + digit // 2) * 100 + int(text[4:6])
    assert idn.sex is (Sex.FEMALE if digit % 2 else Sex.MALE)


def test_region_codes_are_the_63_former_provinces() -> None:
    assert len(REGION_CODES) == 63
    assert all(len(c) == 3 and c.startswith("0") and c.isdigit() for c in REGION_CODES)
    assert min(REGION_CODES) == "001" and max(REGION_CODES) == "096"
    assert REGION_CODES["001"] == "Thành phố Hà Nội"
    assert REGION_CODES["077"] == "Bà Rịa - Vũng Tàu"
    assert len(set(REGION_CODES.values())) == 63


def test_old_id_card_is_nine_digits() -> None:
    assert validate_old_id_card("012345678") == "012345678"


@pytest.mark.parametrize("text", ["", "01234567", "0123456789", "01234567a", "001203012345"])
def test_old_id_card_format_error(text: str) -> None:
    with pytest.raises(InputError) as info:
        validate_old_id_card(text, field="old_id_card.number")
    assert (info.value.rule, info.value.field) == ("old_id_card.format", "old_id_card.number")
