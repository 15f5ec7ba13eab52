"""The auditor's pages: search the audit log, verify it against its signed heads (the result
and every problem found), and the abuse alerts. Records name persons by key and fields by
name, never values."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from cutru.web.core import Member, Posted, field_text
from cutru.web.errors import FormPage, WebRoute

router = APIRouter(route_class=WebRoute, include_in_schema=False)

AUDIT = "audit_read"
CRITERIA = ("principal", "subject", "purpose_kind", "since", "until")


@router.get("/audit")
def audit_page(v: Member) -> Response:
    v.purpose(AUDIT)
    return v.page("audit/search.html", values={}, records=None)


@router.post("/audit")
def audit_search(v: Member, form: Posted) -> Response:
    v.request.state.back = "/audit"
    values = {k: field_text(form, k) for k in CRITERIA}
    v.request.state.form = FormPage("audit/search.html", {"values": values, "records": None})
    why = v.purpose(AUDIT)
    criteria: dict[str, Any] = {k: values[k] or None for k in ("principal", "subject",
                                                                "purpose_kind")}
    if values["since"]:
        criteria["since"] = v.guard.moment(values["since"] + "T00:00", "since")
    if values["until"]:
        criteria["until"] = v.guard.moment(values["until"], "until")
    records = v.guard.audit_search(v.me, why, limit=200, **criteria)
    return v.page("audit/search.html", values=values, records=records)


@router.get("/audit/verify")
def verify_page(v: Member) -> Response:
    v.purpose(AUDIT)
    return v.page("audit/verify.html", result=None)


@router.post("/audit/verify")
def verify(v: Member, form: Posted) -> Response:
    v.request.state.back = "/audit/verify"
    records, heads, problems = v.guard.audit_verify(v.me, v.purpose(AUDIT))
    result = {"ok": not problems, "records": records, "heads": heads,
              "problems": [asdict(p) for p in problems]}
    return v.page("audit/verify.html", result=result)


@router.get("/audit/alerts")
def alerts(v: Member) -> Response:
    found = v.guard.alerts(v.me, v.purpose(AUDIT))
    return v.page("audit/alerts.html", alerts=found)
