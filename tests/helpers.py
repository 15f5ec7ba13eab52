"""Small builders for test data (real, valid values; no mocks)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect

from cutru.domain.enums import Sex
from cutru.domain.idnumber import make_id_number
from cutru.store.schema import PROJECTION

if TYPE_CHECKING:
    from cutru.services.registry import Registry

HOAN_KIEM = "00070"  # Phường Hoàn Kiếm, Hà Nội
BA_DINH = "00004"  # Phường Ba Đình, Hà Nội
SAI_GON = "26740"  # Phường Sài Gòn, Thành phố Hồ Chí Minh
OFFICER = "officer-hk-01"
HEAD = "head-hk-01"
BASIS = "Law on Residence 68/2020/QH14"

_serial = itertools.count(1)


def person(name: str = "Nguyễn Văn An", birth: str = "1985-04-12", sex: str = "male",
           **extra: Any) -> dict[str, Any]:
    year = int(birth[:4])
    return {"id_number": make_id_number("001", year, Sex(sex), next(_serial)),
            "full_name": name, "birth_date": birth, "sex": sex, "nationality": "VN", **extra}


def household_line(commune: str = HOAN_KIEM, street: str = "12 Hàng Bạc",
                   members: list[tuple[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    members = members or [("head", person())]
    return {"kind": "household", "commune_code": commune, "street": street,
            "registered_on": "2015-03-02",
            "members": [{"relationship": r, "person": p} for r, p in members]}


def projection_indexes(registry: Registry) -> dict[str, list[tuple[str, tuple[str, ...], bool]]]:
    """Each projection table's indexes: (name, columns, unique), sorted."""
    with registry.db.read() as conn:
        insp = inspect(conn)
        return {t.name: sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                               for i in insp.get_indexes(t.name)) for t in PROJECTION}
