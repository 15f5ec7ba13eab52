"""The fields the registry holds for each citizen, as data (Decree 62/2021 Art. 9;
Decree 154/2024 Art. 11).

Each field names its legal basis and its class. The access layer decides which classes a
purpose may see; ``SENSITIVE`` fields are those that sensitive-data law protects (Law 91/2025;
Decree 356/2025 Art. 4(2)): they need a purpose that names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FieldClass(StrEnum):
    IDENTITY = "identity"  # names, ID numbers, birth data
    RESIDENCE = "residence"  # where someone lives, stays, is absent
    FAMILY = "family"  # household, relationships, parents, spouse, guardian
    CIVIL = "civil"  # nationality, marital status, occupation, death, documents
    CONTACT = "contact"
    SENSITIVE = "sensitive"  # ethnicity, religion, criminal/violation data, measures, wanted


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label_vi: str
    label_en: str
    field_class: FieldClass
    basis: str  # legal instrument and article

    @property
    def sensitive(self) -> bool:
        return self.field_class is FieldClass.SENSITIVE


_D62 = "Decree 62/2021 Art. 9"
_D154 = "Decree 154/2024 Art. 11"

PERSON_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("residence_file_no", "Số hồ sơ cư trú", "Residence file number",
              FieldClass.RESIDENCE, f"{_D62}(1)"),
    FieldSpec("id_number", "Số định danh cá nhân", "Personal ID number",
              FieldClass.IDENTITY, f"{_D62}(9)"),
    FieldSpec("full_name", "Họ, chữ đệm và tên khai sinh", "Full birth name",
              FieldClass.IDENTITY, f"{_D62}(10)"),
    FieldSpec("other_names", "Tên gọi khác", "Other names", FieldClass.IDENTITY, f"{_D62}(23)"),
    FieldSpec("birth_date", "Ngày, tháng, năm sinh", "Date of birth",
              FieldClass.IDENTITY, f"{_D62}(11)"),
    FieldSpec("sex", "Giới tính", "Sex", FieldClass.IDENTITY, f"{_D62}(12)"),
    FieldSpec("birth_registration_place", "Nơi đăng ký khai sinh", "Place of birth registration",
              FieldClass.IDENTITY, f"{_D62}(13)"),
    FieldSpec("native_place", "Quê quán", "Native place", FieldClass.IDENTITY, f"{_D62}(14)"),
    FieldSpec("ethnicity", "Dân tộc", "Ethnicity", FieldClass.SENSITIVE, f"{_D62}(15)"),
    FieldSpec("religion", "Tôn giáo", "Religion", FieldClass.SENSITIVE, f"{_D62}(16)"),
    FieldSpec("nationality", "Quốc tịch", "Nationality", FieldClass.CIVIL, f"{_D62}(17)"),
    FieldSpec("marital_status", "Tình trạng hôn nhân", "Marital status",
              FieldClass.CIVIL, f"{_D62}(18)"),
    FieldSpec("blood_group", "Nhóm máu", "Blood group", FieldClass.CIVIL, f"{_D62}(19)"),
    FieldSpec("father", "Cha", "Father", FieldClass.FAMILY, f"{_D62}(20)"),
    FieldSpec("mother", "Mẹ", "Mother", FieldClass.FAMILY, f"{_D62}(20)"),
    FieldSpec("spouse", "Vợ/chồng", "Spouse", FieldClass.FAMILY, f"{_D62}(20)"),
    FieldSpec("legal_representative", "Người đại diện hợp pháp", "Legal representative",
              FieldClass.FAMILY, f"{_D62}(20)"),
    FieldSpec("death_date", "Ngày chết", "Date of death", FieldClass.CIVIL, f"{_D62}(21)"),
    FieldSpec("missing_date", "Ngày mất tích", "Date of going missing",
              FieldClass.CIVIL, f"{_D62}(21)"),
    FieldSpec("old_id_card", "Chứng minh nhân dân", "Old ID card (CMND)",
              FieldClass.IDENTITY, f"{_D62}(22)"),
    FieldSpec("citizen_id_card", "Căn cước công dân", "Citizen ID card (CCCD)",
              FieldClass.IDENTITY, f"{_D62}(22)"),
    FieldSpec("occupation", "Nghề nghiệp", "Occupation", FieldClass.CIVIL, f"{_D62}(24)"),
    FieldSpec("criminal_record", "Tiền án", "Criminal record", FieldClass.SENSITIVE,
              f"{_D62}(25)"),
    FieldSpec("violation_record", "Tiền sự", "Administrative-violation record",
              FieldClass.SENSITIVE, f"{_D62}(26)"),
    FieldSpec("preventive_measures", "Biện pháp ngăn chặn", "Preventive measures",
              FieldClass.SENSITIVE, f"{_D62}(27)"),
    FieldSpec("guardian", "Người giám hộ", "Guardian", FieldClass.FAMILY, f"{_D62}(28)"),
    FieldSpec("phone", "Số điện thoại", "Phone", FieldClass.CONTACT, f"{_D62}(29)"),
    FieldSpec("email", "Thư điện tử", "Email", FieldClass.CONTACT, f"{_D62}(29)"),
    FieldSpec("postal_address", "Địa chỉ liên hệ", "Postal address",
              FieldClass.CONTACT, f"{_D62}(29)"),
    FieldSpec("nationality_decisions", "Quyết định về quốc tịch", "Nationality decisions",
              FieldClass.CIVIL, f"{_D62}(30)"),
    FieldSpec("expunged_convictions", "Xóa án tích", "Expunged convictions",
              FieldClass.SENSITIVE, f"{_D154} (not confirmed)"),
    FieldSpec("wanted_decisions", "Quyết định truy nã, truy tìm", "Wanted/search decisions",
              FieldClass.SENSITIVE, f"{_D154} (not confirmed)"),
    FieldSpec("current_living_place", "Nơi ở hiện tại", "Current place of living",
              FieldClass.RESIDENCE, f"{_D62}(5)"),
    FieldSpec("current_living_since", "Nơi ở hiện tại từ ngày", "Living there since",
              FieldClass.RESIDENCE, f"{_D62}(5)"),
)

FIELDS_BY_NAME = {f.name: f for f in PERSON_FIELDS}
SENSITIVE_FIELDS = frozenset(f.name for f in PERSON_FIELDS if f.sensitive)
#: Person fields holding a nested object (name, id_number, ...), stored as canonical JSON.
NESTED_FIELDS = frozenset(
    {"father", "mother", "spouse", "legal_representative", "guardian", "old_id_card",
     "citizen_id_card", "current_living_place"}
)
