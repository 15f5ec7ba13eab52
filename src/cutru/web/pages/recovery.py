"""The operator's restore planning and incidents (Decree 62/2021 Art. 14(3)): a plan is
computed from the backup repository alone and shown before anything is touched; applying it
stays on the command line, with a second person's approval. No personal data: positions,
times, digests, snapshot and segment names, and account names only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from cutru.web.core import Member, Posted, Visit, field_text
from cutru.web.errors import FormPage, WebRoute

router = APIRouter(route_class=WebRoute, include_in_schema=False)

RESTORE, WATCH = "restore", "backup_verify"


@router.get("/ops/restore")
def restore_page(v: Member) -> Response:
    v.purpose(RESTORE)
    return v.page("ops/restore.html", values={}, plan=None)


@router.post("/ops/restore")
def restore_plan(v: Member, form: Posted) -> Response:
    v.request.state.back = "/ops/restore"
    values = {k: field_text(form, k) for k in ("to", "before", "generation")}
    v.request.state.form = FormPage("ops/restore.html", {"values": values, "plan": None})
    plan = v.guard.restore_plan(v.me, v.purpose(RESTORE), to=values["to"],
                                before=values["before"] == "on",
                                generation=values["generation"] or None)
    return v.page("ops/restore.html", values=values, plan=plan)


def _incidents(v: Visit, values: dict[str, str]) -> dict[str, Any]:
    return {"incidents": v.guard.incidents(v.me, v.purpose(WATCH)), "values": values,
            "catalogue": v.web.catalogue}


@router.get("/ops/incidents")
def incidents(v: Member) -> Response:
    return v.page("ops/incidents.html", **_incidents(v, {}))


@router.post("/ops/incidents")
def open_incident(v: Member, form: Posted) -> Response:
    v.request.state.back = "/ops/incidents"
    values = {k: field_text(form, k) for k in ("trigger", "fault", "discovered_at", "summary")}
    v.request.state.form = FormPage("ops/incidents.html", _incidents(v, values))
    made = v.guard.open_incident(v.me, v.purpose(RESTORE), **values)
    v.notice("incident.opened", id=made["id"])
    return v.redirect(f"/ops/incidents/{made['id']}")


@router.get("/ops/incidents/{incident_id}")
def incident(v: Member, incident_id: str) -> Response:
    report = v.guard.incident(v.me, v.purpose(WATCH), incident_id)
    return v.page("ops/incident.html", report=report)
