"""Sealing and opening the encrypted fields of rows (cutru.access.fieldcrypto) at the
boundary of the services: rules see plaintext, the projection and the journal ciphertext."""

from __future__ import annotations

from typing import Any

from cutru.access.fieldcrypto import ENCRYPTED_PERSON_FIELDS, Keyring

Row = dict[str, Any]


def seal_person(keys: Keyring, row: Row) -> Row:
    """A persons row with its protected fields encrypted and the ID number's blind index."""
    out = dict(row)
    idn = row.get("id_number")
    out["id_number_bidx"] = keys.blind_index(idn) if idn else None
    for name in ENCRYPTED_PERSON_FIELDS:
        out[name] = keys.encrypt(row.get(name), table="persons", column=name, key=row["key"])
    return out


def open_person(keys: Keyring, row: Row) -> Row:
    out = dict(row)
    for name in ENCRYPTED_PERSON_FIELDS:
        out[name] = keys.decrypt(row.get(name), table="persons", column=name, key=row["key"])
    out.pop("id_number_bidx", None)
    return out


def seal_id_number(keys: Keyring, row: Row) -> Row:
    out = dict(row)
    out["id_number_bidx"] = keys.blind_index(row["id_number"])
    out["id_number"] = keys.encrypt(row["id_number"], table="id_numbers", column="id_number",
                                    key=row["key"])
    return out


def open_id_number(keys: Keyring, row: Row) -> Row:
    out = dict(row)
    out["id_number"] = keys.decrypt(row["id_number"], table="id_numbers", column="id_number",
                                    key=row["key"])
    out.pop("id_number_bidx", None)
    return out


def open_row(keys: Keyring, table: str, row: Row) -> Row:
    if table == "persons":
        return open_person(keys, row)
    if table == "id_numbers":
        return open_id_number(keys, row)
    return row
