"""The first page, signing in and out, the language, each role's home, the purpose prompt."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from cutru.errors import InputError
from cutru.web import security
from cutru.web.core import Anyone, Member, Posted, field_text
from cutru.web.errors import FormPage, WebRoute
from cutru.web.i18n import LANGUAGES
from cutru.web.sessions import Declared

router = APIRouter(route_class=WebRoute, include_in_schema=False)

#: The accounts ``cutru demo accounts`` creates, and what each shows (demo mode only).
DEMO_ACCOUNTS = ("demo-officer", "demo-head", "demo-investigator", "demo-tax", "demo-citizen",
                 "demo-operator", "demo-auditor", "demo-admin")
DEMO_PASSWORD = "cutru-demo-2026"


@router.get("/")
def landing(v: Anyone) -> Response:
    if v.principal is not None:
        return v.redirect("/home")
    return v.page("landing.html", accounts=DEMO_ACCOUNTS, password=DEMO_PASSWORD)


@router.get("/login")
def login_page(v: Anyone, next: str = "/home", expired: str = "") -> Response:
    return v.page("login.html", values={}, next=security.safe_next(next),
                  expired=bool(expired or v.expired == "denied.session_expired"))


@router.post("/login")
def login(v: Anyone, form: Posted) -> Response:
    who, target = field_text(form, "principal_id"), security.safe_next(field_text(form, "next"))
    v.request.state.form = FormPage("login.html", {"values": {"principal_id": who},
                                                   "next": target, "expired": False})
    done = v.guard.login(who, str(form.get("password") or ""))
    ttl = v.web.settings.session_ttl_minutes * 60
    v.cookies[security.SESSION_COOKIE] = (done.token, ttl)
    return v.redirect(target)


@router.post("/logout")
def logout(v: Member, form: Posted) -> Response:
    assert v.token is not None
    v.guard.logout(v.me, v.token)
    v.web.sessions.drop(v.token)
    v.cookies[security.SESSION_COOKIE] = ("", None)
    return v.redirect("/")


@router.post("/lang")
def switch_language(v: Anyone, form: Posted) -> Response:
    lang = field_text(form, "lang")
    if lang in LANGUAGES:
        v.cookies[security.LANG_COOKIE] = (lang, 365 * 24 * 3600)
    return v.redirect(security.safe_next(field_text(form, "next"), "/"))


@router.get("/home")
def home(v: Member) -> Response:
    items = v.web.nav(v.me.kind.value)
    if items:
        return v.redirect(items[0][1])
    return v.page("home.html")


def _offered(v: Member, action: str) -> list[dict[str, Any]]:
    return [p for p in v.purposes() if not action or action in p["actions"]]


@router.get("/purpose")
def purpose_page(v: Member, action: str = "", next: str = "/home") -> Response:
    offered = _offered(v, action)
    names = {p["name"] for p in offered}
    earlier = [(i, d) for i, d in enumerate(v.session.declared) if d.kind in names]
    return v.page("purpose.html", offered=offered, earlier=earlier, action=action,
                  next=security.safe_next(next), values={})


@router.post("/purpose")
def declare(v: Member, form: Posted) -> Response:
    action, target = field_text(form, "action"), security.safe_next(field_text(form, "next"))
    offered = _offered(v, action)
    use = field_text(form, "use")
    if use.isdigit() and int(use) < len(v.session.declared):
        v.session.declare(v.session.declared[int(use)])
        return v.redirect(target)
    values = {k: field_text(form, k) for k in ("kind", "legal_basis", "case_number")}
    v.request.state.form = FormPage("purpose.html", {
        "offered": offered, "action": action, "next": target, "values": values,
        "earlier": [(i, d) for i, d in enumerate(v.session.declared)
                    if d.kind in {p["name"] for p in offered}]})
    chosen = next((p for p in offered if p["name"] == values["kind"]), None)
    if chosen is None:
        raise InputError("choose a purpose", field="kind", rule="purpose.required")
    for need in ("legal_basis", "case_number"):
        if need in chosen["requires"] and not values[need]:
            raise InputError(f"purpose {values['kind']} requires {need}", field=need,
                             rule=f"purpose.{need}_required")
    v.session.declare(Declared(values["kind"], values["legal_basis"], values["case_number"]))
    return v.redirect(target)
