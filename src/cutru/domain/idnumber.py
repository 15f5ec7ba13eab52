"""The personal identification number (số định danh cá nhân) and the old ID card numbers.

Twelve digits (Decree 137/2015/NĐ-CP Art. 13; Circular 59/2021/TT-BCA Art. 4)::

    0 0 1 2 0 3 0 1 2 3 4 5
    └─┬─┘ │ └┬┘ └────┬────┘
      │   │  │       └── digits 7-12: random serial
      │   │  └────────── digits 5-6: last two digits of the birth year
      │   └───────────── digit 4: century and sex (1900s male 0, female 1; 2000s 2/3; ... 2300s 8/9)
      └───────────────── digits 1-3: region code of the province where the birth was registered

There is no check digit, so validation is format plus consistency with the record: a known
region code, and a birth year and sex that agree with the recorded ones. A number can be
re-issued (after re-registration of sex, for example), so it is never a primary key.

Births registered abroad carry a country code instead of a province code; those codes are not
in :data:`REGION_CODES` and such numbers are refused as an unknown region for now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

from cutru.domain.enums import Sex
from cutru.errors import (
    IdNumberBirthYearMismatch,
    IdNumberCenturyError,
    IdNumberFormatError,
    IdNumberRegionError,
    IdNumberSexMismatch,
    InputError,
)

# The 63 provinces as they were before 1 July 2025, by their statistics-office (GSO) code, which
# the ID number writes with a leading 0 (Circular 59/2021/TT-BCA Art. 4; codes from the GSO list of
# administrative units, Decision 124/2004/QĐ-TTg). The 34 current provinces each kept one of them.
REGION_CODES: Mapping[str, str] = MappingProxyType(
    {
        "001": "Thành phố Hà Nội",
        "002": "Hà Giang",
        "004": "Cao Bằng",
        "006": "Bắc Kạn",
        "008": "Tuyên Quang",
        "010": "Lào Cai",
        "011": "Điện Biên",
        "012": "Lai Châu",
        "014": "Sơn La",
        "015": "Yên Bái",
        "017": "Hòa Bình",
        "019": "Thái Nguyên",
        "020": "Lạng Sơn",
        "022": "Quảng Ninh",
        "024": "Bắc Giang",
        "025": "Phú Thọ",
        "026": "Vĩnh Phúc",
        "027": "Bắc Ninh",
        "030": "Hải Dương",
        "031": "Thành phố Hải Phòng",
        "033": "Hưng Yên",
        "034": "Thái Bình",
        "035": "Hà Nam",
        "036": "Nam Định",
        "037": "Ninh Bình",
        "038": "Thanh Hóa",
        "040": "Nghệ An",
        "042": "Hà Tĩnh",
        "044": "Quảng Bình",
        "045": "Quảng Trị",
        "046": "Thừa Thiên Huế",
        "048": "Thành phố Đà Nẵng",
        "049": "Quảng Nam",
        "051": "Quảng Ngãi",
        "052": "Bình Định",
        "054": "Phú Yên",
        "056": "Khánh Hòa",
        "058": "Ninh Thuận",
        "060": "Bình Thuận",
        "062": "Kon Tum",
        "064": "Gia Lai",
        "066": "Đắk Lắk",
        "067": "Đắk Nông",
        "068": "Lâm Đồng",
        "070": "Bình Phước",
        "072": "Tây Ninh",
        "074": "Bình Dương",
        "075": "Đồng Nai",
        "077": "Bà Rịa - Vũng Tàu",
        "079": "Thành phố Hồ Chí Minh",
        "080": "Long An",
        "082": "Tiền Giang",
        "083": "Bến Tre",
        "084": "Trà Vinh",
        "086": "Vĩnh Long",
        "087": "Đồng Tháp",
        "089": "An Giang",
        "091": "Kiên Giang",
        "092": "Thành phố Cần Thơ",
        "093": "Hậu Giang",
        "094": "Sóc Trăng",
        "095": "Bạc Liêu",
        "096": "Cà Mau",
    }
)

_FIRST_CENTURY = 19  # digit 4 = 0 or 1
_LAST_YEAR = 2399  # digit 4 = 8 or 9
_SERIAL_LIMIT = 1_000_000


@dataclass(frozen=True)
class IdNumber:
    """A parsed personal ID number; ``str()`` gives the 12 digits back.

    >>> idn = parse_id_number("001203012345")
    >>> (idn.region_code, idn.birth_year, idn.sex.value)
    ('001', 2003, 'male')
    """

    value: str
    region_code: str
    century_sex_digit: int
    birth_year: int
    sex: Sex

    def __str__(self) -> str:
        return self.value


def _is_ascii_digits(text: str, length: int) -> bool:
    # str.isdigit() accepts other scripts' digits (e.g. Arabic-Indic); the register wants ASCII.
    return len(text) == length and text.isascii() and text.isdigit()


def parse_id_number(text: str, field: str = "id_number") -> IdNumber:
    """Parse 12 ASCII digits; raise :class:`IdNumberFormatError` or :class:`IdNumberRegionError`.

    Digit 4 is always a defined century (0-9 covers 1900-2399), so parsing never fails on it;
    a birth year in the future is a consistency question (:func:`check_consistency`).
    """
    if not isinstance(text, str) or not _is_ascii_digits(text, 12):
        raise IdNumberFormatError(
            f"an ID number is exactly 12 digits 0-9, got {text!r}",
            field=field,
            rule="id_number.format",
        )
    region = text[:3]
    if region not in REGION_CODES:
        raise IdNumberRegionError(
            f"digits 1-3 of {text} ({region}) are not a known province code",
            field=field,
            rule="id_number.region",
        )
    digit = int(text[3])
    year = (_FIRST_CENTURY + digit // 2) * 100 + int(text[4:6])
    sex = Sex.FEMALE if digit % 2 else Sex.MALE
    return IdNumber(text, region, digit, year, sex)


def check_consistency(
    idn: IdNumber,
    *,
    birth_year: int | None,
    sex: Sex | None,
    today: date | None = None,
    field: str = "id_number",
) -> None:
    """Check the number against the record; ``None`` skips a comparison.

    Order: a future birth year (a wrong century digit) first, then year, then sex, so that the
    most specific cause is the one reported.
    """
    current_year = (today or date.today()).year
    if idn.birth_year > current_year:
        raise IdNumberCenturyError(
            f"digit 4 of {idn.value} ({idn.century_sex_digit}) gives birth year {idn.birth_year},"
            f" which is after {current_year}",
            field=field,
            rule="id_number.century",
        )
    if birth_year is not None and idn.birth_year != birth_year:
        raise IdNumberBirthYearMismatch(
            f"digits 5-6 of {idn.value} say born {idn.birth_year}, the record says {birth_year}",
            field=field,
            rule="id_number.birth_year",
        )
    if sex is not None and idn.sex != Sex(sex):
        raise IdNumberSexMismatch(
            f"digit 4 of {idn.value} ({idn.century_sex_digit}) says {idn.sex.value},"
            f" the record says {Sex(sex).value}",
            field=field,
            rule="id_number.sex",
        )


def validate_id_number(
    text: str,
    *,
    birth_year: int | None,
    sex: Sex | None,
    today: date | None = None,
    field: str = "id_number",
) -> IdNumber:
    """:func:`parse_id_number` then :func:`check_consistency`."""
    idn = parse_id_number(text, field)
    check_consistency(idn, birth_year=birth_year, sex=sex, today=today, field=field)
    return idn


def make_id_number(region_code: str, birth_year: int, sex: Sex, serial: int) -> str:
    """Build a valid number; ``serial`` (0-999999) becomes digits 7-12.

    >>> make_id_number("079", 1985, Sex.FEMALE, 42)
    '079185000042'
    """
    if region_code not in REGION_CODES:
        raise ValueError(f"unknown region code {region_code!r}")
    if not 1900 <= birth_year <= _LAST_YEAR:
        raise ValueError(f"birth year {birth_year} is outside 1900-{_LAST_YEAR}")
    if not 0 <= serial < _SERIAL_LIMIT:
        raise ValueError(f"serial {serial} is outside 0-999999")
    digit = (birth_year // 100 - _FIRST_CENTURY) * 2 + (1 if Sex(sex) is Sex.FEMALE else 0)
    return f"{region_code}{digit}{birth_year % 100:02d}{serial:06d}"


def validate_old_id_card(text: str, field: str = "old_id_card") -> str:
    """An old identity card (chứng minh nhân dân, CMND) number: exactly 9 ASCII digits.

    The 12-digit citizen ID card (căn cước công dân, CCCD) carries the personal ID number
    itself: validate those with :func:`parse_id_number`.
    """
    if not isinstance(text, str) or not _is_ascii_digits(text, 9):
        raise InputError(
            f"an old ID card (CMND) number is exactly 9 digits 0-9, got {text!r}",
            field=field,
            rule="old_id_card.format",
        )
    return text
