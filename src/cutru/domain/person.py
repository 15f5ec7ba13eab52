"""A person's record: turning declared data into a validated projection row.

The row holds scalar values only; nested items (parents, spouse, guardian, ID cards, current
place of living) are kept as canonical JSON text so the row is exactly its journal image.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson

from cutru.domain.dates import PartialDate, parse_date
from cutru.domain.enums import MaritalStatus, Sex
from cutru.domain.fields import FIELDS_BY_NAME, NESTED_FIELDS
from cutru.domain.idnumber import validate_id_number, validate_old_id_card
from cutru.domain.units import commune
from cutru.errors import InputError

#: Keys of a relative/representative object (Art. 9(20)).
RELATIVE_KEYS = frozenset({"full_name", "id_number", "nationality"})
CARD_KEYS = frozenset({"number", "issued_on", "issued_at"})
PLACE_KEYS = frozenset({"commune_code", "street"})
_MAX_TEXT = 500
#: The keys each nested field may hold.
_NESTED_KEYS = {"father": RELATIVE_KEYS, "mother": RELATIVE_KEYS, "spouse": RELATIVE_KEYS,
                "guardian": RELATIVE_KEYS, "legal_representative": RELATIVE_KEYS,
                "old_id_card": CARD_KEYS, "citizen_id_card": CARD_KEYS,
                "current_living_place": PLACE_KEYS}

#: Fields an adjustment (Art. 26) may change without a correction's four eyes.
ADJUSTABLE = frozenset(
    {"other_names", "marital_status", "occupation", "phone", "email", "postal_address",
     "spouse", "guardian", "legal_representative", "blood_group", "nationality_decisions",
     "current_living_place", "current_living_since", "old_id_card", "citizen_id_card"}
)
#: Identity fields changed only by an approved correction (Decree 62 Art. 12).
CORRECTABLE = frozenset(FIELDS_BY_NAME) - {"current_living_place", "current_living_since"}


def _text(data: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InputError(f"{name} is required", field=name, rule="required")
        return None
    if not isinstance(value, str):
        raise InputError(f"{name} must be text", field=name, rule="type.text")
    value = value.strip()
    if len(value) > _MAX_TEXT:
        raise InputError(f"{name} is longer than {_MAX_TEXT} characters", field=name,
                         rule="text.max_length")
    return value


def _nested(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    allowed = _NESTED_KEYS[name]
    if isinstance(value, str):  # already stored form
        try:
            value = orjson.loads(value)
        except ValueError:
            raise InputError(f"{name} must be an object", field=name, rule="type.object") from None
    if not isinstance(value, dict):
        raise InputError(f"{name} must be an object", field=name, rule="type.object")
    extra = set(value) - allowed
    if extra:
        raise InputError(f"{name} has unknown keys {sorted(extra)}; allowed: {sorted(allowed)}",
                         field=f"{name}.{sorted(extra)[0]}", rule="object.unknown_key")
    clean = {k: str(v).strip() for k, v in value.items() if v not in (None, "")}
    if name in {"old_id_card"} and "number" in clean:
        validate_old_id_card(clean["number"], field=f"{name}.number")
    if name == "current_living_place":
        commune(clean.get("commune_code", ""), field=f"{name}.commune_code")
    nested_id = clean.get("id_number")
    if nested_id is not None and not (nested_id.isdigit() and len(nested_id) == 12):
        raise InputError(f"{name}.id_number must be 12 digits", field=f"{name}.id_number",
                         rule="id_number.format")
    try:  # compact, keys sorted, non-ASCII raw: the canonical JSON of docs/design.md
        return orjson.dumps(clean, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        raise InputError(f"{name} holds text that is not valid Unicode", field=name,
                         rule="canonical.invalid_unicode") from None


_EMPTY: dict[str, Any] = dict.fromkeys(FIELDS_BY_NAME)
#: Fields person_row sets itself before the generic pass.
_FIXED = frozenset({"full_name", "birth_date", "sex", "id_number", "secret_label"})


def person_row(data: dict[str, Any], *, key: str, today: date) -> dict[str, Any]:
    """Validate a declared person and return the ``persons`` row (without ``key`` checks)."""
    unknown = set(data) - set(FIELDS_BY_NAME) - {"secret_label"}
    if unknown:
        name = sorted(unknown)[0]
        raise InputError(f"unknown person field {name!r}", field=name, rule="field.unknown")
    full_name = _text(data, "full_name", required=True)
    birth = PartialDate.parse(_text(data, "birth_date", required=True) or "", "birth_date")
    if birth.earliest() > today:
        raise InputError("birth_date is in the future", field="birth_date", rule="date.not_future")
    try:
        sex = Sex(str(data.get("sex")))
    except ValueError:
        raise InputError("sex must be 'male' or 'female'", field="sex", rule="enum") from None
    row: dict[str, Any] = {**_EMPTY, "key": key, "full_name": full_name,
                           "birth_date": str(birth), "birth_year": birth.year,
                           "sex": sex.value, "secret_label": bool(data.get("secret_label", False))}
    id_number = _text(data, "id_number")
    if id_number is not None:
        validate_id_number(id_number, birth_year=birth.year, sex=sex)
    row["id_number"] = id_number
    ms = data.get("marital_status")
    if ms is not None:
        try:
            MaritalStatus(ms)
        except ValueError:
            raise InputError(f"marital_status must be one of {[m.value for m in MaritalStatus]}",
                             field="marital_status", rule="enum") from None
    for place in ("birth_registration_place", "native_place"):
        code = _text(data, place)
        if code is not None and code.isdigit() and len(code) == 5:
            commune(code, field=place)
    for name in data.keys() - _FIXED:  # only the fields given: the rest stay None
        row[name] = _nested(data, name) if name in NESTED_FIELDS else _text(data, name)
    for name in ("death_date", "missing_date", "current_living_since"):
        if row.get(name):
            parse_date(row[name], name)
    nationality = row.get("nationality")
    row["nationality"] = nationality or "VN"
    return row


def age_on(birth_date: str, on: date) -> int:
    """Completed years on ``on``; a year-only birth date counts from 1 January."""
    b = PartialDate.parse(birth_date).earliest()
    return on.year - b.year - ((on.month, on.day) < (b.month, b.day))


def is_alive(person: dict[str, Any]) -> bool:
    return not person.get("death_date") and not person.get("missing_date")
