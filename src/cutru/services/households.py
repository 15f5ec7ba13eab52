"""Households: membership, the one-head invariant, separation (Art. 25), change of head
(Art. 26(1)(a))."""

from __future__ import annotations

from typing import Any

from cutru.domain.enums import Relationship
from cutru.domain.rules import LAW, check_household, check_separation, violation
from cutru.errors import InputError
from cutru.services.unit import Tx
from cutru.store.schema import household_members, households, persons, residences


def membership(tx: Tx, person_key: str) -> dict[str, Any] | None:
    rows = tx.select(household_members, person_key=person_key)
    return rows[0] if rows else None


def members_and_people(tx: Tx, household_key: str
                       ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    members = tx.select(household_members, household_key=household_key)
    people = {m["person_key"]: tx.get(persons, m["person_key"], "person") for m in members}
    return members, people


def check_invariants(tx: Tx, household_key: str) -> None:
    """Re-check a household after an operation touched it (dissolved households pass)."""
    if tx.rows.get(households, household_key) is None:
        return
    members, people = members_and_people(tx, household_key)
    check_household(members, people, tx.today)
    head = next(m for m in members if m["relationship"] == Relationship.HEAD)
    if tx.get(households, household_key, "household")["head_key"] != head["person_key"]:
        raise violation("household.head_consistent", f"{LAW} Art. 10",
                        "the household's head and its head member disagree")


def relationship(value: Any, field: str = "relationship") -> Relationship:
    try:
        return Relationship(value)
    except ValueError:
        raise InputError(f"{field} must be one of {[r.value for r in Relationship]}",
                         field=field, rule="enum") from None


def join(tx: Tx, household_key: str, person_key: str, rel: Relationship, on: str) -> None:
    tx.rows.insert(household_members, {"key": f"M{household_key[1:]}{person_key[1:]}",
                                       "household_key": household_key,
                                       "person_key": person_key,
                                       "relationship": rel.value, "joined_on": on})
    tx.touch(household_key, person_key)


def leave(tx: Tx, person_key: str) -> str | None:
    """Remove a person from their household; an empty household is dissolved. A head with
    other members left behind is refused (change the head first)."""
    member = membership(tx, person_key)
    if member is None:
        return None
    hh = str(member["household_key"])
    others = [m for m in tx.select(household_members, household_key=hh)
              if m["person_key"] != person_key]
    if member["relationship"] == Relationship.HEAD and others:
        raise violation("household.head_leaving", f"{LAW} Art. 26(1)(a)",
                        "the household head cannot leave while members remain; "
                        "change the head first", household_key=hh)
    tx.rows.delete(household_members, member["key"])
    if not others:
        tx.rows.delete(households, hh)
    tx.touch(hh, person_key)
    return hh


def file_number(household_key: str) -> str:
    """The residence file number (số hồ sơ cư trú) of a household: a record key of its own."""
    return household_key[1:13].upper()


def new_household(tx: Tx, head_key: str, commune_code: str, street: str, on: str,
                  key: str | None = None) -> str:
    key = key or tx.new_key("H")
    tx.rows.insert(households, {"key": key, "residence_file_no": file_number(key),
                                "head_key": head_key, "commune_code": commune_code,
                                "street": street, "registered_on": on})
    join(tx, key, head_key, Relationship.HEAD, on)
    return key


def change_head(tx: Tx, household_key: str, new_head_key: str,
                relationships: dict[str, Any]) -> None:
    """Art. 26(1)(a): a new head; every other member's relationship restated to them."""
    members, _ = members_and_people(tx, household_key)
    keys = {m["person_key"] for m in members}
    if new_head_key not in keys:
        raise violation("household.head_is_member", f"{LAW} Art. 26(1)(a)",
                        "the new head must be a member of the household")
    for m in members:
        pk = m["person_key"]
        rel = Relationship.HEAD if pk == new_head_key else relationship(
            relationships.get(pk), f"relationships.{pk}")
        if pk != new_head_key and rel is Relationship.HEAD:
            raise violation("household.exactly_one_head", f"{LAW} Art. 10",
                            "only the new head may have the relationship 'head'")
        tx.rows.update(household_members, m["key"], relationship=rel.value)
    tx.rows.update(households, household_key, head_key=new_head_key)
    tx.touch(household_key, *keys)
    check_invariants(tx, household_key)


def separate(tx: Tx, household_key: str, member_keys: list[str], new_head_key: str,
             relationships: dict[str, Any], *, head_consent: bool = False,
             owner_consent: bool = False,
             divorced_spouse: bool = False) -> str:
    """Art. 25: members split off into a new household at the same residence."""
    hh = tx.get(households, household_key, "household")
    members, people = members_and_people(tx, household_key)
    keys = {m["person_key"] for m in members}
    if not member_keys or not set(member_keys) <= keys:
        raise InputError("member_keys must name members of the household", field="member_keys",
                         rule="members.belong")
    if new_head_key not in member_keys:
        raise InputError("new_head_key must be one of the separating members",
                         field="new_head_key", rule="members.belong")
    check_separation(separating=[people[k] for k in member_keys], head_key=hh["head_key"],
                     today=tx.today, head_consent=head_consent, owner_consent=owner_consent,
                     divorced_spouse=divorced_spouse, remaining=len(keys) - len(member_keys))
    on = tx.today.isoformat()
    for m in members:
        if m["person_key"] in member_keys:
            tx.rows.delete(household_members, m["key"])
    new_key = new_household(tx, new_head_key, hh["commune_code"], hh["street"], on)
    for pk in member_keys:
        if pk != new_head_key:
            join(tx, new_key, pk, relationship(relationships.get(pk), f"relationships.{pk}"), on)
        for res in tx.select(residences, person_key=pk, kind="permanent", status="active"):
            tx.rows.update(residences, res["key"], household_key=new_key)
        tx.rows.update(persons, pk, residence_file_no=tx.get(households, new_key,
                                                              "household")["residence_file_no"])
    tx.touch(household_key, *keys)
    check_invariants(tx, household_key)
    check_invariants(tx, new_key)
    return new_key
