"""Reading the registry: a person's or household's record now or as of a past moment, and
the list of changes to it (both straight from the journal's before/after images)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from cutru.access.fieldcrypto import Keyring
from cutru.errors import NotFound
from cutru.journal.entry import Entry
from cutru.services.protect import open_row
from cutru.store import journal_store
from cutru.store.schema import (
    PROJECTION_BY_NAME,
    absences,
    corrections,
    household_members,
    households,
    id_numbers,
    persons,
    residences,
    stays,
)

State = dict[str, dict[str, dict[str, Any]]]  # table -> key -> row


def find_by_id_number(conn: Connection, keys: Keyring, id_number: str) -> str:
    bidx = keys.blind_index(id_number)
    found = conn.execute(select(persons.c.key).where(persons.c.id_number_bidx == bidx)).first()
    if found is None:
        raise NotFound("no person with this ID number", field="id_number", rule="exists")
    return str(found[0])


def _live_state(conn: Connection, person_key: str) -> State:
    state: State = {t: {} for t in PROJECTION_BY_NAME}

    def put(table: Any, where: Any) -> list[dict[str, Any]]:
        rows = [dict(r) for r in conn.execute(select(table).where(where)).mappings()]
        for r in rows:
            state[table.name][r["key"]] = r
        return rows

    put(persons, persons.c.key == person_key)
    for t in (id_numbers, residences, stays, absences, corrections):
        put(t, t.c.person_key == person_key)
    for m in put(household_members, household_members.c.person_key == person_key):
        put(households, households.c.key == m["household_key"])
        for other in put(household_members,
                         household_members.c.household_key == m["household_key"]):
            put(persons, persons.c.key == other["person_key"])
    return state


def _collect(conn: Connection, subjects: set[str], stop: int, entries: dict[int, Entry],
             seen: set[str]) -> State:
    """Add the entries of ``subjects`` (up to ``stop``) and replay all collected entries in
    journal order: one row may be written by entries found through different subjects."""
    for subject in sorted(subjects - seen):
        seen.add(subject)
        for entry in journal_store.entries_for_subject(conn, subject, stop=stop):
            entries[entry.seq] = entry
    state: State = {t: {} for t in PROJECTION_BY_NAME}
    for seq in sorted(entries):
        for ch in entries[seq].changes:
            if ch.after is None:
                state[ch.table].pop(ch.key, None)
            else:
                state[ch.table][ch.key] = dict(ch.after)
    return state


def _state_as_of(conn: Connection, person_key: str, stop: int) -> State:
    entries: dict[int, Entry] = {}
    seen: set[str] = set()
    state = _collect(conn, {person_key}, stop, entries, seen)
    households_then = {m["household_key"] for m in state["household_members"].values()
                       if m["person_key"] == person_key}
    state = _collect(conn, households_then, stop, entries, seen)
    co_members = {m["person_key"] for m in state["household_members"].values()
                  if m["household_key"] in households_then}
    return _collect(conn, co_members, stop, entries, seen)


def _open(state: State, keys: Keyring) -> State:
    """Decrypt the protected fields of every row of a replayed or live state."""
    return {t: {k: open_row(keys, t, r) for k, r in rows.items()} for t, rows in state.items()}


def _assemble(state: State, person_key: str) -> dict[str, Any]:
    person = state["persons"].get(person_key)
    if person is None:
        raise NotFound("person not found at that moment", field="person_key", rule="exists")

    def of(table: str) -> list[dict[str, Any]]:
        return sorted((r for r in state[table].values() if r.get("person_key") == person_key),
                      key=lambda r: r["key"])

    membership = next((m for m in state["household_members"].values()
                       if m["person_key"] == person_key), None)
    household = None
    if membership is not None:
        hh = state["households"].get(membership["household_key"])
        members = sorted((m for m in state["household_members"].values()
                          if m["household_key"] == membership["household_key"]),
                         key=lambda m: (m["relationship"] != "head", m["key"]))
        household = {
            **(hh or {}),
            "members": [{**m, "full_name": state["persons"].get(m["person_key"], {}).get(
                "full_name"), "id_number": state["persons"].get(m["person_key"], {}).get(
                "id_number")} for m in members],
        }
    return {"person": person, "id_numbers": of("id_numbers"), "residences": of("residences"),
            "household": household, "stays": of("stays"), "absences": of("absences"),
            "corrections": of("corrections")}


def person_record(conn: Connection, keys: Keyring, person_key: str, *,
                  as_of_seq: int | None = None) -> dict[str, Any]:
    """The whole record of a person now, or as it was after journal position ``as_of_seq``."""
    if as_of_seq is None:
        return _assemble(_open(_live_state(conn, person_key), keys), person_key)
    return _assemble(_open(_state_as_of(conn, person_key, as_of_seq), keys), person_key)


def household_record(conn: Connection, keys: Keyring, household_key: str, *,
                     as_of_seq: int | None = None) -> dict[str, Any]:
    stop = as_of_seq if as_of_seq is not None else journal_store.last_seq(conn)
    entries: dict[int, Entry] = {}
    seen: set[str] = set()
    state = _collect(conn, {household_key}, stop, entries, seen)
    hh = state["households"].get(household_key)
    if hh is None:
        raise NotFound("household not found at that moment", field="household_key",
                       rule="exists")
    members = [m for m in state["household_members"].values()
               if m["household_key"] == household_key]
    state = _open(_collect(conn, {m["person_key"] for m in members}, stop, entries, seen), keys)
    return {**hh, "members": sorted(
        ({**m, "full_name": state["persons"].get(m["person_key"], {}).get("full_name")}
         for m in members), key=lambda m: (m["relationship"] != "head", m["key"]))}


def history(conn: Connection, subject: str) -> list[dict[str, Any]]:
    """Every journal entry that changed the subject, oldest first, with the fields changed."""
    return [_describe(e, subject) for e in journal_store.entries_for_subject(conn, subject)]


def _describe(entry: Entry, subject: str) -> dict[str, Any]:
    changed = []
    for ch in entry.changes:
        before, after = ch.before or {}, ch.after or {}
        fields = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        kind = "insert" if ch.before is None else "delete" if ch.after is None else "update"
        changed.append({"table": ch.table, "key": ch.key, "kind": kind, "fields": fields})
    return {"seq": entry.seq, "ts": entry.ts, "actor": entry.actor, "purpose": entry.purpose,
            "operation": entry.operation, "changes": changed}
