"""A citizen's own pages: their record and its history, and who looked at their data, when
and why (investigative lookups stay hidden until their date)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from cutru.errors import AccessDenied
from cutru.web.core import Member, Visit
from cutru.web.errors import WebRoute
from cutru.web.pages.records import summarise

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _own(v: Visit) -> str:
    if v.me.person_key is None:
        raise AccessDenied("these pages are a citizen's own", reason="denied.not_own_record")
    return v.me.person_key


@router.get("/me")
def me(v: Member) -> Response:
    key = _own(v)
    read = v.guard.read_person(v.me, v.purpose("read"), key)
    record = read.data
    person = {k: val for k, val in record["person"].items() if k != "key"}
    ordered = [name for name in v.web.catalogue["fields"] if name in person]
    return v.page("citizen/me.html", key=key, person=person, ordered=ordered, record=record,
                  place=v.guard.place_name)


@router.get("/me/history")
def my_history(v: Member) -> Response:
    key = _own(v)
    changes = v.guard.history(v.me, v.purpose("read"), key)
    return v.page("records/history.html", key=key, changes=summarise(v, changes, key),
                  back="/me")


@router.get("/me/access-log")
def access_log(v: Member) -> Response:
    _own(v)
    v.purpose("access_log_read")  # the citizen's own purpose, declared for them
    entries = v.guard.access_log(v.me)
    return v.page("citizen/access_log.html", entries=entries, place=v.guard.place_name)
