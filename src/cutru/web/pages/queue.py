"""The commune-police head's queue: corrections to approve or reject (four eyes, Decree
62/2021 Art. 12) and third parties' requests to decide within 2 working days (Art. 13(4)),
each with its deadline. Each list is read under its own declared purpose."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from cutru.errors import InputError
from cutru.web.core import Member, Posted, Visit, field_text
from cutru.web.errors import FormPage, WebRoute

router = APIRouter(route_class=WebRoute, include_in_schema=False)

CORRECTIONS, GRANTS = "approve_correction", "decide_third_party"


def _context(v: Visit) -> dict[str, Any]:
    corrections = grants = None
    why = v.declared_for(CORRECTIONS)
    if why is not None:
        corrections = v.guard.correction_queue(v.me, why)
    why = v.declared_for(GRANTS)
    if why is not None:
        grants = v.guard.grant_queue(v.me, why)
    return {"corrections": corrections, "grants": grants, "actions": (CORRECTIONS, GRANTS)}


@router.get("/queue")
def queue(v: Member) -> Response:
    context = _context(v)
    if context["corrections"] is None and context["grants"] is None:
        v.purpose(CORRECTIONS)  # neither purpose declared yet: ask for the first
    return v.page("queue/index.html", **context)


def _decision(form: Any) -> bool:
    choice = field_text(form, "decision")
    if choice not in ("approve", "reject"):
        raise InputError("choose approve or reject", field="decision", rule="enum")
    return choice == "approve"


@router.post("/queue/corrections/{key}")
def decide_correction(v: Member, key: str, form: Posted) -> Response:
    v.request.state.back = "/queue"
    approve = _decision(form)
    why = v.purpose(CORRECTIONS)
    v.request.state.form = FormPage("queue/index.html", _context(v))
    v.guard.decide_correction(v.me, why, key, approve=approve)
    v.notice("queue.correction_done" if approve else "queue.correction_rejected", key=key)
    return v.redirect("/queue")


@router.post("/queue/grants/{key}")
def decide_grant(v: Member, key: str, form: Posted) -> Response:
    v.request.state.back = "/queue"
    approve = _decision(form)
    why = v.purpose(GRANTS)
    v.request.state.form = FormPage("queue/index.html", _context(v))
    days = field_text(form, "days") or "30"
    if not days.isdigit():
        raise InputError("days must be a whole number", field="days", rule="number.format")
    v.guard.decide_grant(v.me, why, key, approve=approve, days=int(days),
                         reason=field_text(form, "reason") or None)
    v.notice("queue.grant_done" if approve else "queue.grant_refused", key=key)
    return v.redirect("/queue")
