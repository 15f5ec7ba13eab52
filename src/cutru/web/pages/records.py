"""Looking people up (officers, heads, agencies): search by ID number or by name and birth
year within the caller's reach, a person's record now or as of a moment, its history, and a
household. ID numbers and names travel only in POST bodies; URLs carry internal keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from cutru.errors import InputError
from cutru.services.guard import Read
from cutru.web.core import Member, Posted, Visit, field_text
from cutru.web.errors import FormPage, WebRoute
from cutru.web.forms import FORMS

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/search")
def search_page(v: Member) -> Response:
    v.purpose("read")
    return v.page("records/search.html", values={}, results=None)


def _search_form(v: Visit, values: dict[str, str]) -> None:
    v.request.state.back = "/search"
    v.request.state.form = FormPage("records/search.html", {"values": values, "results": None})


@router.post("/search/id")
def lookup(v: Member, form: Posted) -> Response:
    values = {"id_number": field_text(form, "id_number")}
    _search_form(v, values)
    if not values["id_number"]:
        raise InputError("give an ID number", field="id_number", rule="required")
    read = v.guard.lookup(v.me, v.purpose("read"), values["id_number"])
    return person_page(v, read, as_of="")


@router.post("/search/name")
def search(v: Member, form: Posted) -> Response:
    values = {k: field_text(form, k) for k in ("full_name", "birth_year")}
    _search_form(v, values)
    if not values["full_name"]:
        raise InputError("give a full name", field="full_name", rule="required")
    year = values["birth_year"]
    if year and not (year.isdigit() and len(year) == 4):
        raise InputError("birth_year must be a year (4 digits)", field="birth_year",
                         rule="year.format")
    found = v.guard.search(v.me, v.purpose("search"), full_name=values["full_name"],
                           birth_year=int(year) if year else None)
    return v.page("records/search.html", values=values, results=found)


def _allowed_operations(v: Visit, subject: str) -> list[str]:
    """The forms this principal's purposes allow for a person or a household."""
    allowed = {a for p in v.purposes() for a in p["actions"]}
    return [op for op, f in FORMS.items() if f.subject == subject and op in allowed]


def person_page(v: Visit, read: Read, *, as_of: str) -> Response:
    record = read.data
    key = record["person"]["key"]
    person = {k: val for k, val in record["person"].items() if k != "key"}
    ordered = [name for name in v.web.catalogue["fields"] if name in person]
    return v.page("records/person.html", key=key, person=person, ordered=ordered,
                  record=record, fields=sorted(read.decision.fields), as_of=as_of,
                  operations=_allowed_operations(v, "person"), place=v.guard.place_name)


@router.get("/persons/{person_key}")
def person(v: Member, person_key: str, as_of: str = "") -> Response:
    moment = v.guard.moment(as_of) if as_of else None
    read = v.guard.read_person(v.me, v.purpose("read"), person_key, as_of=moment)
    return person_page(v, read, as_of=as_of)


def summarise(v: Visit, changes: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Newest first; for each entry, the fields of *this* person's row that changed (an
    entry may touch a whole household: other people's rows are not described) and, once
    each, the other kinds of record it added, changed or removed."""
    out = []
    for entry in reversed(changes):
        what: list[str] = []
        for ch in entry["changes"]:
            if ch["table"] == "persons":
                if ch["key"] == key:
                    what += [v.label(f) for f in ch["fields"]]
                continue
            item = f"{v.t('table.' + ch['table'])} ({v.t('change.' + ch['kind'])})"
            if item not in what:
                what.append(item)
        out.append({**entry, "what": what})
    return out


@router.get("/persons/{person_key}/history")
def history(v: Member, person_key: str) -> Response:
    changes = v.guard.history(v.me, v.purpose("read"), person_key)
    return v.page("records/history.html", key=person_key,
                  changes=summarise(v, changes, person_key), back=f"/persons/{person_key}")


@router.get("/households/{household_key}")
def household(v: Member, household_key: str, as_of: str = "") -> Response:
    moment = v.guard.moment(as_of) if as_of else None
    found: dict[str, Any] = v.guard.household(v.me, v.purpose("read"), household_key,
                                              as_of=moment)
    return v.page("records/household.html", key=household_key, household=found,
                  as_of=as_of, operations=_allowed_operations(v, "household"),
                  place=v.guard.place_name)
