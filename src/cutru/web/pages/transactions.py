"""A form for every transaction of the Law on Residence, run through ``Guard.transact``; a
refusal shows the form again with the rule (and its article) beside the field it concerns."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from cutru.errors import NotFound
from cutru.web.core import Member, Posted, Visit, field_text
from cutru.web.errors import FormPage, WebRoute
from cutru.web.forms import FORMS, IN_QUEUE, SIMPLE_FIELDS, Form, arguments, error_input

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/tx")
def index(v: Member) -> Response:
    allowed = {a for p in v.purposes() for a in p["actions"]}
    return v.page("tx/index.html", forms=list(FORMS.values()),
                  queued=IN_QUEUE, all_operations=v.web.catalogue["operations"],
                  allowed=allowed)


def _spec(operation: str) -> Form:
    spec = FORMS.get(operation)
    if spec is None:
        raise NotFound(f"no form for {operation!r}", field="operation", rule="operation.known")
    return spec


def _subject(v: Visit, spec: Form, key: str) -> dict[str, Any]:
    """The person or household the form acts on. Only a form that lists household members
    reads the record (an audited read under the form's purpose); the others name the key."""
    if not key or spec.subject is None:
        return {}
    if spec.members is None:
        return {"kind": spec.subject, "key": key}
    why = v.purpose(spec.operation)
    if spec.subject == "person":
        data = v.guard.read_person(v.me, why, key).data
        members = (data.get("household") or {}).get("members", [])
        return {"kind": "person", "key": key, "person": data["person"],
                "members": [m for m in members if m["person_key"] != key],
                "heads": any(m["person_key"] == key and m["relationship"] == "head"
                             for m in members)}
    household = v.guard.household(v.me, why, key)
    return {"kind": "household", "key": key, "household": household,
            "members": household["members"]}


def _context(v: Visit, spec: Form, subject: dict[str, Any], values: dict[str, Any]
             ) -> dict[str, Any]:
    return {"spec": spec, "subject": subject, "values": values,
            "communes": v.guard.communes_near(v.me), "catalogue": v.web.catalogue,
            "error_input": error_input, "simple_fields": SIMPLE_FIELDS,
            "siblings": [op for op, f in FORMS.items()
                         if spec.subject and f.subject == spec.subject and op != spec.operation]}


@router.get("/tx/{operation}")
def form_page(v: Member, operation: str, person: str = "", household: str = "") -> Response:
    spec = _spec(operation)
    v.purpose(operation)
    subject = _subject(v, spec, person or household)
    values = {i.name: i.default for i in spec.inputs if i.default}
    return v.page("tx/form.html", **_context(v, spec, subject, values))


@router.post("/tx/{operation}")
def run(v: Member, operation: str, form: Posted) -> Response:
    spec = _spec(operation)
    key = field_text(form, "subject")
    v.request.state.back = f"/tx/{operation}" + (f"?{spec.subject}={key}" if key else "")
    why = v.purpose(operation)
    subject = _subject(v, spec, key)
    values: dict[str, Any] = {k: field_text(form, k) for k in form}
    values["member_keys"] = [str(x) for x in form.getlist("member_keys")]
    v.request.state.form = FormPage("tx/form.html", _context(v, spec, subject, values))
    args = arguments(spec, form, key or None)
    if operation == "person.declare":
        result: Any = v.guard.declare_person(v.me, why, args["person"])
    else:
        result = v.guard.transact(v.me, why, operation, **args)
    v.notice("tx.done", operation=v.t.op(operation), result=result or "")
    if operation == "person.declare":  # next: where they live (it brings them in reach)
        return v.redirect(f"/tx/permanent.register?person={result}")
    if spec.subject == "person" and key:
        return v.redirect(f"/persons/{key}")
    if operation == "household.separate":
        return v.redirect(f"/households/{result}")
    if spec.subject == "household" and key:
        return v.redirect(f"/households/{key}")
    return v.redirect("/tx")
