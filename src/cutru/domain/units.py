"""Administrative units: the 34 provinces and 3,321 communes in force since 1 July 2025.

The units come from the ``vietnam_provinces`` package (2025.10.1); the registry stores their
statistics-office codes (2-digit province, 5-digit commune), never their names, because names
and division types change while codes stay.

Addresses recorded before the 2025 reform name one of the 63 former provinces. Resolution
202/2025/QH15 (12 June 2025) says which current province each former one was merged into
(:data:`OLD_PROVINCE_TO_NEW`). Below the province there is no table here: the 2025.10.1 package
carries only current units, with no commune-level old→new conversion. So
:func:`map_pre2025_address` accepts an old address only when its commune code is still a current
commune code (most new communes kept the code of one of the communes merged into them) lying in
the province the old province went to; every other old commune is refused as unmappable
(rule ``address.pre2025_unmappable``) and needs a person to choose the current commune.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

from vietnam_provinces import Province as _PkgProvince
from vietnam_provinces import Ward as _PkgWard

from cutru.errors import AddressError

STREET_MAX_CHARS = 200


@dataclass(frozen=True)
class Province:
    """A current province: ``kind`` is ``'tỉnh'`` or ``'thành phố trung ương'``."""

    code: str
    name: str
    kind: str


@dataclass(frozen=True)
class Commune:
    """A current commune-level unit: ``kind`` is ``'xã'``, ``'phường'`` or ``'đặc khu'``."""

    code: str
    name: str
    kind: str
    province_code: str


# Resolution 202/2025/QH15 of 12 June 2025 on the arrangement of provincial-level units, Art. 1:
# former province code → code of the current province it became part of. The 11 provinces left
# unchanged map to themselves.
OLD_PROVINCE_TO_NEW: Mapping[str, str] = MappingProxyType(
    {
        "01": "01",  # Hà Nội (unchanged)
        "02": "08",  # Hà Giang → Tuyên Quang
        "04": "04",  # Cao Bằng (unchanged)
        "06": "19",  # Bắc Kạn → Thái Nguyên
        "08": "08",  # Tuyên Quang
        "10": "15",  # Lào Cai → Lào Cai (code of former Yên Bái)
        "11": "11",  # Điện Biên (unchanged)
        "12": "12",  # Lai Châu (unchanged)
        "14": "14",  # Sơn La (unchanged)
        "15": "15",  # Yên Bái → Lào Cai
        "17": "25",  # Hòa Bình → Phú Thọ
        "19": "19",  # Thái Nguyên
        "20": "20",  # Lạng Sơn (unchanged)
        "22": "22",  # Quảng Ninh (unchanged)
        "24": "24",  # Bắc Giang → Bắc Ninh
        "25": "25",  # Phú Thọ
        "26": "25",  # Vĩnh Phúc → Phú Thọ
        "27": "24",  # Bắc Ninh → Bắc Ninh (code of former Bắc Giang)
        "30": "31",  # Hải Dương → Hải Phòng
        "31": "31",  # Hải Phòng
        "33": "33",  # Hưng Yên
        "34": "33",  # Thái Bình → Hưng Yên
        "35": "37",  # Hà Nam → Ninh Bình
        "36": "37",  # Nam Định → Ninh Bình
        "37": "37",  # Ninh Bình
        "38": "38",  # Thanh Hóa (unchanged)
        "40": "40",  # Nghệ An (unchanged)
        "42": "42",  # Hà Tĩnh (unchanged)
        "44": "44",  # Quảng Bình → Quảng Trị
        "45": "44",  # Quảng Trị → Quảng Trị (code of former Quảng Bình)
        "46": "46",  # Thừa Thiên Huế → Huế (unchanged territory)
        "48": "48",  # Đà Nẵng
        "49": "48",  # Quảng Nam → Đà Nẵng
        "51": "51",  # Quảng Ngãi
        "52": "52",  # Bình Định → Gia Lai
        "54": "66",  # Phú Yên → Đắk Lắk
        "56": "56",  # Khánh Hòa
        "58": "56",  # Ninh Thuận → Khánh Hòa
        "60": "68",  # Bình Thuận → Lâm Đồng
        "62": "51",  # Kon Tum → Quảng Ngãi
        "64": "52",  # Gia Lai → Gia Lai (code of former Bình Định)
        "66": "66",  # Đắk Lắk
        "67": "68",  # Đắk Nông → Lâm Đồng
        "68": "68",  # Lâm Đồng
        "70": "75",  # Bình Phước → Đồng Nai
        "72": "80",  # Tây Ninh → Tây Ninh (code of former Long An)
        "74": "79",  # Bình Dương → Hồ Chí Minh City
        "75": "75",  # Đồng Nai
        "77": "79",  # Bà Rịa - Vũng Tàu → Hồ Chí Minh City
        "79": "79",  # Hồ Chí Minh City
        "80": "80",  # Long An → Tây Ninh
        "82": "82",  # Tiền Giang → Đồng Tháp
        "83": "86",  # Bến Tre → Vĩnh Long
        "84": "86",  # Trà Vinh → Vĩnh Long
        "86": "86",  # Vĩnh Long
        "87": "82",  # Đồng Tháp → Đồng Tháp (code of former Tiền Giang)
        "89": "91",  # An Giang → An Giang (code of former Kiên Giang)
        "91": "91",  # Kiên Giang → An Giang
        "92": "92",  # Cần Thơ
        "93": "92",  # Hậu Giang → Cần Thơ
        "94": "92",  # Sóc Trăng → Cần Thơ
        "95": "96",  # Bạc Liêu → Cà Mau
        "96": "96",  # Cà Mau
    }
)


@dataclass(frozen=True)
class _Index:
    provinces: Mapping[str, Province]
    communes: Mapping[str, Commune]
    commune_list: tuple[Commune, ...]
    by_province: Mapping[str, tuple[Commune, ...]]


@cache
def _index() -> _Index:
    provinces = {
        f"{int(p.code):02d}": Province(f"{int(p.code):02d}", p.name, p.division_type.value)
        for p in sorted(_PkgProvince.iter_all(), key=lambda p: int(p.code))
    }
    communes = {
        f"{int(w.code):05d}": Commune(
            f"{int(w.code):05d}", w.name, w.division_type.value, f"{int(w.province_code):02d}"
        )
        for w in sorted(_PkgWard.iter_all(), key=lambda w: int(w.code))
    }
    by_province: dict[str, list[Commune]] = {code: [] for code in provinces}
    for c in communes.values():
        by_province[c.province_code].append(c)
    return _Index(
        MappingProxyType(provinces),
        MappingProxyType(communes),
        tuple(communes.values()),
        MappingProxyType({k: tuple(v) for k, v in by_province.items()}),
    )


def _is_code(text: object, length: int) -> bool:
    return isinstance(text, str) and len(text) == length and text.isascii() and text.isdigit()


def province(code: str, field: str = "province_code") -> Province:
    """The current province with this 2-digit code, e.g. ``province("79")``."""
    if not _is_code(code, 2):
        raise AddressError(
            f"a province code is 2 digits, got {code!r}",
            field=field,
            rule="address.province_format",
        )
    try:
        return _index().provinces[code]
    except KeyError:
        raise AddressError(
            f"{code} is not the code of a current province",
            field=field,
            rule="address.province_unknown",
        ) from None


def commune(code: str, field: str = "commune_code") -> Commune:
    """The current commune with this 5-digit code, e.g. ``commune("00070")`` (Phường Hoàn Kiếm)."""
    if not _is_code(code, 5):
        raise AddressError(
            f"a commune code is 5 digits, got {code!r}", field=field, rule="address.commune_format"
        )
    try:
        return _index().communes[code]
    except KeyError:
        raise AddressError(
            f"{code} is not the code of a current commune",
            field=field,
            rule="address.commune_unknown",
        ) from None


def all_provinces() -> Sequence[Province]:
    """The 34 current provinces, by code."""
    return tuple(_index().provinces.values())


def all_communes() -> Sequence[Commune]:
    """The 3,321 current communes, by code."""
    return _index().commune_list


def communes_of(province_code: str) -> Sequence[Commune]:
    """The communes of one current province, by code."""
    return _index().by_province[province(province_code).code]


@dataclass(frozen=True)
class Address:
    """A registered address: a current commune and the street part (house number, street...)."""

    commune_code: str
    street: str

    def validate(self) -> None:
        """Raise :class:`AddressError` unless the commune exists and the street is 1-200 chars."""
        commune(self.commune_code)
        street = self.street.strip()
        if not street:
            raise AddressError(
                "the street address (house number, street, hamlet) is required",
                field="street",
                rule="address.street_required",
            )
        if len(street) > STREET_MAX_CHARS:
            raise AddressError(
                f"the street address is {len(street)} characters, at most {STREET_MAX_CHARS}",
                field="street",
                rule="address.street_too_long",
            )


def map_pre2025_address(old_province_code: str, old_commune_code: str, street: str) -> Address:
    """Map an address recorded before 1 July 2025 to current units, or refuse.

    See the module docstring for what can be mapped without a commune-level table.
    """
    if not _is_code(old_province_code, 2):
        raise AddressError(
            f"a province code is 2 digits, got {old_province_code!r}",
            field="old_province_code",
            rule="address.province_format",
        )
    new_province = OLD_PROVINCE_TO_NEW.get(old_province_code)
    if new_province is None:
        raise AddressError(
            f"{old_province_code} is not the code of a province before 2025",
            field="old_province_code",
            rule="address.province_unknown",
        )
    if not _is_code(old_commune_code, 5):
        raise AddressError(
            f"a commune code is 5 digits, got {old_commune_code!r}",
            field="old_commune_code",
            rule="address.commune_format",
        )
    current = _index().communes.get(old_commune_code)
    if current is None or current.province_code != new_province:
        raise AddressError(
            f"commune {old_commune_code} of former province {old_province_code} cannot be mapped"
            f" to a current unit: its code is not a current commune of province {new_province};"
            " choose the current commune by hand",
            field="old_commune_code",
            rule="address.pre2025_unmappable",
        )
    address = Address(current.code, street)
    address.validate()
    return address
