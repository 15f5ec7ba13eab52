"""Administrative units since 1 July 2025, addresses, and the mapping of pre-2025 addresses."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cutru.domain.idnumber import REGION_CODES
from cutru.domain.units import (
    OLD_PROVINCE_TO_NEW,
    Address,
    Commune,
    Province,
    all_communes,
    all_provinces,
    commune,
    communes_of,
    map_pre2025_address,
    province,
)
from cutru.errors import AddressError

CURRENT_PROVINCES = {p.code for p in all_provinces()}


def test_34_provinces() -> None:
    provinces = all_provinces()
    assert len(provinces) == 34
    assert len(CURRENT_PROVINCES) == 34
    kinds = Counter(p.kind for p in provinces)
    assert kinds == {"tỉnh": 28, "thành phố trung ương": 6}
    assert [p.code for p in provinces] == sorted(p.code for p in provinces)


def test_3321_communes_by_kind() -> None:
    communes = all_communes()
    assert len(communes) == 3321
    assert Counter(c.kind for c in communes) == {"xã": 2621, "phường": 687, "đặc khu": 13}
    assert len({c.code for c in communes}) == 3321
    assert all(len(c.code) == 5 and c.code.isdigit() for c in communes)
    assert {c.province_code for c in communes} == CURRENT_PROVINCES


def test_all_communes_is_built_once() -> None:
    assert all_communes() is all_communes()


def test_communes_of_partition_the_country() -> None:
    total = 0
    for p in all_provinces():
        mine = communes_of(p.code)
        assert mine and all(c.province_code == p.code for c in mine)
        total += len(mine)
    assert total == 3321


def test_look_up_by_code() -> None:
    hoan_kiem = commune("00070")
    assert isinstance(hoan_kiem, Commune)
    assert (hoan_kiem.code, hoan_kiem.kind, hoan_kiem.province_code) == ("00070", "phường", "01")
    assert "Hoàn Kiếm" in hoan_kiem.name
    hcm = province("79")
    assert isinstance(hcm, Province)
    assert (hcm.code, hcm.kind) == ("79", "thành phố trung ương")


@pytest.mark.parametrize("code", ["70", "0070", "000070", "abcde", "", "０００７０", " 0070"])
def test_commune_code_format(code: str) -> None:
    with pytest.raises(AddressError) as info:
        commune(code, field="temporary.commune_code")
    assert info.value.rule == "address.commune_format"
    assert info.value.field == "temporary.commune_code"


@pytest.mark.parametrize("code", ["00000", "00001", "99999", "32249"])
def test_unknown_commune(code: str) -> None:
    with pytest.raises(AddressError) as info:
        commune(code)
    assert (info.value.rule, info.value.field) == ("address.commune_unknown", "commune_code")


def test_province_errors() -> None:
    with pytest.raises(AddressError) as info:
        province("1")
    assert info.value.rule == "address.province_format"
    with pytest.raises(AddressError) as info:
        province("02")  # Hà Giang, merged into Tuyên Quang
    assert info.value.rule == "address.province_unknown"
    with pytest.raises(AddressError):
        communes_of("02")


def test_address_validates() -> None:
    Address("00070", "12 Hàng Bạc").validate()
    Address("00070", "x" * 200).validate()
    Address("00070", "  " + "x" * 200 + "  ").validate()  # surrounding blanks do not count


@pytest.mark.parametrize(
    ("address", "field", "rule"),
    [
        (Address("00070", ""), "street", "address.street_required"),
        (Address("00070", " \t "), "street", "address.street_required"),
        (Address("00070", "x" * 201), "street", "address.street_too_long"),
        (Address("00001", "12 Hàng Bạc"), "commune_code", "address.commune_unknown"),
        (Address("70", "12 Hàng Bạc"), "commune_code", "address.commune_format"),
    ],
)
def test_address_errors(address: Address, field: str, rule: str) -> None:
    with pytest.raises(AddressError) as info:
        address.validate()
    assert (info.value.field, info.value.rule) == (field, rule)


# -- pre-2025 provinces ------------------------------------------------------------------------


def test_every_former_province_is_mapped_to_a_current_one() -> None:
    assert len(OLD_PROVINCE_TO_NEW) == 63
    assert {"0" + old for old in OLD_PROVINCE_TO_NEW} == set(REGION_CODES)
    assert set(OLD_PROVINCE_TO_NEW.values()) == CURRENT_PROVINCES


def test_every_current_province_kept_the_code_of_one_former_province() -> None:
    for code in CURRENT_PROVINCES:
        assert OLD_PROVINCE_TO_NEW[code] == code


def test_merger_sizes() -> None:
    # Resolution 202/2025/QH15: 11 provinces unchanged, 23 formed by merging two or three.
    sizes = Counter(OLD_PROVINCE_TO_NEW.values())
    assert sorted(Counter(sizes.values()).items()) == [(1, 11), (2, 17), (3, 6)]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("02", "08"),  # Hà Giang → Tuyên Quang
        ("10", "15"),  # Lào Cai → Lào Cai, which took the code of Yên Bái
        ("27", "24"),  # Bắc Ninh → Bắc Ninh, code of Bắc Giang
        ("30", "31"),  # Hải Dương → Hải Phòng
        ("46", "46"),  # Thừa Thiên Huế → Huế
        ("64", "52"),  # Gia Lai → Gia Lai, code of Bình Định
        ("74", "79"),  # Bình Dương → Hồ Chí Minh City
        ("77", "79"),  # Bà Rịa - Vũng Tàu → Hồ Chí Minh City
        ("89", "91"),  # An Giang → An Giang, code of Kiên Giang
        ("95", "96"),  # Bạc Liêu → Cà Mau
    ],
)
def test_known_mergers(old: str, new: str) -> None:
    assert OLD_PROVINCE_TO_NEW[old] == new


def test_map_an_address_whose_commune_kept_its_code() -> None:
    assert map_pre2025_address("01", "00070", " 12 Hàng Bạc") == Address("00070", " 12 Hàng Bạc")


def test_map_an_address_of_a_merged_province() -> None:
    # 00691 was a commune of Hà Giang (codes 00688-01260); it is a commune of Tuyên Quang now.
    assert commune("00691").province_code == "08"
    assert map_pre2025_address("02", "00691", "Thôn Nà Mạ").commune_code == "00691"


def test_map_checks_the_province_the_old_one_went_to() -> None:
    # 04936 has a code from Hòa Bình's range but has been part of Hà Nội since 2008.
    assert commune("04936").province_code == "01"
    assert map_pre2025_address("01", "04936", "Xóm 1").commune_code == "04936"
    with pytest.raises(AddressError) as info:
        map_pre2025_address("17", "04936", "Xóm 1")  # Hòa Bình went to Phú Thọ
    assert info.value.rule == "address.pre2025_unmappable"


def test_a_merged_away_commune_cannot_be_mapped() -> None:
    # 00001 (Phường Phúc Xá, Ba Đình) was merged in 2025 and its code not kept.
    with pytest.raises(AddressError) as info:
        map_pre2025_address("01", "00001", "12 Phúc Xá")
    assert info.value.rule == "address.pre2025_unmappable"
    assert info.value.field == "old_commune_code"
    assert "cannot be mapped to a current unit" in info.value.message


def test_a_commune_of_another_province_cannot_be_mapped() -> None:
    with pytest.raises(AddressError) as info:
        map_pre2025_address("79", "00070", "12 Hàng Bạc")
    assert info.value.rule == "address.pre2025_unmappable"


@pytest.mark.parametrize(
    ("old_province", "old_commune", "street", "field", "rule"),
    [
        ("1", "00070", "x", "old_province_code", "address.province_format"),
        ("03", "00070", "x", "old_province_code", "address.province_unknown"),
        ("01", "0070", "x", "old_commune_code", "address.commune_format"),
        ("01", "00070", " ", "street", "address.street_required"),
        ("01", "00070", "x" * 201, "street", "address.street_too_long"),
    ],
)
def test_map_input_errors(
    old_province: str, old_commune: str, street: str, field: str, rule: str
) -> None:
    with pytest.raises(AddressError) as info:
        map_pre2025_address(old_province, old_commune, street)
    assert (info.value.field, info.value.rule) == (field, rule)


@given(c=st.sampled_from(all_communes()), old=st.sampled_from(sorted(OLD_PROVINCE_TO_NEW)))
def test_mapping_accepts_exactly_the_province_it_was_merged_into(c: Commune, old: str) -> None:
    if OLD_PROVINCE_TO_NEW[old] == c.province_code:
        assert map_pre2025_address(old, c.code, "Số 1").commune_code == c.code
    else:
        with pytest.raises(AddressError) as info:
            map_pre2025_address(old, c.code, "Số 1")
        assert info.value.rule == "address.pre2025_unmappable"
