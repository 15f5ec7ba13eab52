"""Persons: declaration, death and going missing, adjustment (Art. 26), correction with four
eyes (Decree 62 Art. 12), and re-addressing after boundary changes (Art. 26(1)(c))."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy import select

from cutru.access.fieldcrypto import Keyring
from cutru.domain.dates import parse_date
from cutru.domain.fields import FIELDS_BY_NAME
from cutru.domain.person import ADJUSTABLE, CORRECTABLE, person_row
from cutru.domain.rules import DECREE, LAW, check_four_eyes, require_alive, violation
from cutru.domain.units import commune
from cutru.errors import InputError
from cutru.journal.canonical import encode_row
from cutru.services import households as hh_ops
from cutru.services.protect import open_person, seal_id_number, seal_person
from cutru.services.residence import active
from cutru.services.unit import Tx
from cutru.store.rows import complete_row
from cutru.store.schema import (
    corrections,
    household_members,
    households,
    id_numbers,
    persons,
    residences,
)


def _id_taken(tx: Tx, id_number: str, except_key: str | None = None) -> None:
    tx.rows.flush()
    bidx = tx.keys.blind_index(id_number)
    found = tx.conn.execute(select(persons.c.key).where(persons.c.id_number_bidx == bidx)).first()
    if found is not None and found[0] != except_key:
        raise violation("person.id_number_unique", "Decree 137/2015 Art. 13",
                        f"ID number {id_number} already belongs to another person",
                        field="id_number")


#: A declared person made ready to write: the sealed ``persons`` row, the sealed
#: ``id_numbers`` row of the ID number's history (None without an ID number), the ID
#: number in plain text (None without one), and, when asked for, the canonical encodings
#: (:func:`cutru.journal.canonical.encode_row`) of the two rows, which then have every
#: column of their tables (None otherwise).
Prepared = tuple[dict[str, Any], dict[str, Any] | None, str | None, bytes | None, bytes | None]


def prepare_person(keys: Keyring, data: dict[str, Any], *, key: str, today: date,
                   encode: bool = False) -> Prepared:
    """The part of :func:`declare_person` that reads and writes nothing: validate the
    declared fields, build the rows, encrypt their protected fields and compute the blind
    index. A bulk import runs it in a helper process, ahead of the writing
    (:mod:`cutru.services.importer`), with ``encode``: the journal entry and the state digest
    take the rows' encodings from there, and the process writing them makes none."""
    row = person_row(data, key=key, today=today)
    id_number = row["id_number"]
    id_row = None
    if id_number:
        id_row = seal_id_number(keys, {
            "key": f"I{key[1:]}0", "person_key": key, "id_number": id_number,
            "valid_from": today.isoformat(), "valid_to": None, "reason": "declared"})
    person = seal_person(keys, row)
    if not encode:
        return person, id_row, id_number, None, None
    person = complete_row(persons, person)
    if id_row is None:
        return person, None, id_number, encode_row(person), None
    id_row = complete_row(id_numbers, id_row)
    return person, id_row, id_number, encode_row(person), encode_row(id_row)


def declare_person(tx: Tx, data: dict[str, Any], *, check_unique: bool = True,
                   prepared: tuple[str, Prepared] | None = None) -> str:
    """Record a person (declaring residence information) and the history of their ID number.

    ``prepared`` is the person's key and what :func:`prepare_person` made of ``data`` with
    that key and ``tx.today``, when the caller had it made ahead."""
    if prepared is None:
        key = tx.new_key("P")
        made = prepare_person(tx.keys, data, key=key, today=tx.today)
    else:
        key, made = prepared
    person, id_row, id_number, person_bytes, id_bytes = made
    if id_row is not None:
        if check_unique:
            assert id_number is not None
            _id_taken(tx, id_number)
        tx.rows.insert(id_numbers, id_row, encoded=id_bytes)
    tx.rows.insert(persons, person, encoded=person_bytes)
    tx.touch(key)
    return key


def record_death(tx: Tx, person_key: str, *, on: str, missing: bool = False,
                 new_head_key: str | None = None,
                 relationships: dict[str, Any] | None = None) -> None:
    """Art. 24(1)(a), 29(1)(a): death or being declared missing ends both registrations.
    A head who leaves members behind needs a new head named in the same operation."""
    person = tx.get(persons, person_key, "person")
    require_alive(person)
    parse_date(on, "on")
    member = hh_ops.membership(tx, person_key)
    if member is not None and member["relationship"] == "head":
        others = [m for m in tx.select(household_members,
                                       household_key=member["household_key"])
                  if m["person_key"] != person_key]
        if others:
            if new_head_key is None:
                raise violation("household.head_leaving", f"{LAW} Art. 26(1)(a)",
                                "the deceased/missing person heads a household with members; "
                                "name the new head", field="new_head_key")
            rels = dict(relationships or {})
            rels.setdefault(person_key, "other_relative")
            hh_ops.change_head(tx, member["household_key"], new_head_key, rels)
    reason = "missing" if missing else "death"
    for kind in ("permanent", "temporary"):
        res = active(tx, person_key, kind)
        if res is not None:
            if kind == "permanent":
                hh_ops.leave(tx, person_key)
            tx.rows.update(residences, res["key"], status="deregistered", dereg_reason=reason,
                           dereg_date=on)
    hh_ops.leave(tx, person_key)
    tx.rows.update(persons, person_key, **{"missing_date" if missing else "death_date": on})
    tx.touch(person_key)


def _checked_changes(tx: Tx, person: dict[str, Any], changes: dict[str, Any],
                     allowed: frozenset[str]) -> tuple[dict[str, Any], str | None]:
    """Validate ``changes`` against the whole record; return the changed columns, sealed
    for storage, and the new ID number in plain text when it changes."""
    if not changes:
        raise InputError("no changes given", field="changes", rule="required")
    for name in changes:
        if name not in FIELDS_BY_NAME:
            raise InputError(f"unknown person field {name!r}", field=name, rule="field.unknown")
        if name not in allowed:
            raise violation("adjustment.needs_correction", f"{DECREE} Art. 12",
                            f"{name} is changed only by an approved correction", field=name)
    plain = open_person(tx.keys, person)
    merged = {k: v for k, v in plain.items() if k not in {"key", "birth_year"}}
    merged.update(changes)
    row = person_row(merged, key=person["key"], today=tx.today)
    changed = {k for k, v in row.items() if v != plain.get(k)}
    sealed = seal_person(tx.keys, row)
    if "id_number" in changed:
        changed.add("id_number_bidx")
    new_id = row["id_number"] if "id_number" in changed else None
    return {k: sealed[k] for k in changed}, new_id


def adjust_information(tx: Tx, person_key: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Art. 26(1)(b): civil-status and contact changes declared by the citizen."""
    person = tx.get(persons, person_key, "person")
    diff, _ = _checked_changes(tx, person, changes, ADJUSTABLE)  # ID numbers: not adjustable
    if diff:
        tx.rows.update(persons, person_key, **diff)
    tx.touch(person_key)
    return diff


def request_correction(tx: Tx, person_key: str, changes: dict[str, Any], *, doc_number: str,
                       doc_date: str, doc_issuer: str, reason: str, requested_by: str) -> str:
    """Decree 62 Art. 12: a correction on a detected change or error, with the competent
    authority's document; it waits for the commune-police head's approval."""
    person = tx.get(persons, person_key, "person")
    for name, value in (("doc_number", doc_number), ("doc_issuer", doc_issuer),
                        ("reason", reason)):
        if not (value or "").strip():
            raise InputError(f"{name} is required for a correction", field=name,
                             rule="correction.document_required")
    parse_date(doc_date, "doc_date")
    _checked_changes(tx, person, changes, CORRECTABLE)  # validate now, apply on approval
    key = tx.new_key("K")
    tx.rows.insert(corrections, {
        "key": key, "person_key": person_key,
        "changes": json.dumps(changes, ensure_ascii=False, sort_keys=True),
        "doc_number": doc_number.strip(), "doc_date": doc_date, "doc_issuer": doc_issuer.strip(),
        "reason": reason.strip(), "requested_by": requested_by,
        "requested_at": tx.today.isoformat(), "status": "pending"})
    tx.touch(person_key)
    return key


def decide_correction(tx: Tx, correction_key: str, *, approver: str, approve: bool) -> None:
    corr = tx.get(corrections, correction_key, "correction")
    if corr["status"] != "pending":
        raise violation("correction.pending", f"{DECREE} Art. 12",
                        f"the correction is already {corr['status']}")
    check_four_eyes(corr["requested_by"], approver)
    tx.rows.update(corrections, correction_key, status="approved" if approve else "rejected",
                   decided_by=approver, decided_at=tx.today.isoformat())
    tx.touch(corr["person_key"])
    if not approve:
        return
    person = tx.get(persons, corr["person_key"], "person")
    diff, new_id = _checked_changes(tx, person, json.loads(corr["changes"]), CORRECTABLE)
    if new_id:
        _id_taken(tx, new_id, except_key=person["key"])
        history = tx.select(id_numbers, person_key=person["key"])
        for h in history:
            if h["valid_to"] is None:
                tx.rows.update(id_numbers, h["key"], valid_to=tx.today.isoformat())
        tx.rows.insert(id_numbers, seal_id_number(tx.keys, {
            "key": f"I{person['key'][1:]}{len(history)}", "person_key": person["key"],
            "id_number": new_id, "valid_from": tx.today.isoformat(), "valid_to": None,
            "reason": f"correction {correction_key}"}))
    if diff:
        tx.rows.update(persons, person["key"], **diff)


def readdress(tx: Tx, *, old_commune_code: str, new_commune_code: str) -> int:
    """Art. 26(1)(c): after a boundary or name change, every active residence and household in
    one commune moves to another unit; the history keeps the old address."""
    commune(new_commune_code, field="new_commune_code")
    if old_commune_code == new_commune_code:
        raise InputError("old and new commune are the same", field="new_commune_code",
                         rule="readdress.different")
    moved = 0
    for hh in tx.select(households, commune_code=old_commune_code):
        tx.rows.update(households, hh["key"], commune_code=new_commune_code)
        tx.touch(hh["key"])
    for res in tx.select(residences, commune_code=old_commune_code, status="active"):
        tx.rows.update(residences, res["key"], commune_code=new_commune_code)
        tx.touch(res["person_key"])
        moved += 1
    return moved
