"""The web's request plumbing: the installed context, one visit (who, which language, which
purpose), rendering pages and the dependencies routes declare."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, TypeVar

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from cutru.access.decision import Declaration
from cutru.access.principals import Principal
from cutru.config import Settings
from cutru.errors import NotAuthenticated
from cutru.services.guard import Guard
from cutru.web import security
from cutru.web.i18n import Translator, language
from cutru.web.sessions import (
    PurposeNeeded,
    SessionState,
    SessionStore,
    choose,
    declaration,
)

VIETNAM = timezone(timedelta(hours=7), "ICT")
R = TypeVar("R", bound=Response)

#: Each kind of principal's pages, in menu order; the first is its home.
NAV: dict[str, list[tuple[str, str]]] = {
    "officer": [("nav.search", "/search"), ("nav.transactions", "/tx")],
    "commune_police_head": [("nav.queue", "/queue"), ("nav.search", "/search"),
                            ("nav.transactions", "/tx")],
    "agency_procedural": [("nav.search", "/search")],
    "agency_state": [("nav.search", "/search")],
    "citizen": [("nav.me", "/me"), ("nav.access_log", "/me/access-log")],
    "operator": [("nav.backup", "/ops"), ("nav.snapshots", "/ops/snapshots"),
                 ("nav.restore", "/ops/restore"), ("nav.incidents", "/ops/incidents")],
    "auditor": [("nav.audit", "/audit"), ("nav.verify", "/audit/verify"),
                ("nav.alerts", "/audit/alerts")],
}


@dataclass
class WebContext:
    """What :func:`cutru.web.install` puts on ``app.state.web``."""

    guard: Guard
    settings: Settings
    backup: Any = None  # a cutru.backup.schedule.BackupSchedule, or None
    secret: bytes = field(default_factory=security.new_secret)
    sessions: SessionStore = field(default_factory=SessionStore)
    templates: jinja2.Environment = field(default_factory=lambda: environment())
    catalogue: dict[str, Any] = field(default_factory=dict)

    def nav(self, kind: str) -> list[tuple[str, str]]:
        return NAV.get(kind, [])


@dataclass
class Visit:
    """One request as the pages see it."""

    request: Request
    web: WebContext
    lang: str
    token: str | None = None
    principal: Principal | None = None
    state: SessionState | None = None
    expired: str | None = None  # the guard's reason when a session cookie no longer works
    cookies: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    _pre: str | None = None

    @property
    def t(self) -> Translator:
        return Translator(self.lang)

    @property
    def guard(self) -> Guard:
        return self.web.guard

    @property
    def me(self) -> Principal:
        if self.principal is None:
            raise NotAuthenticated("sign in first", reason="denied.no_credentials")
        return self.principal

    @property
    def session(self) -> SessionState:
        if self.state is None:
            raise NotAuthenticated("sign in first", reason="denied.no_credentials")
        return self.state

    def csrf(self) -> str:
        binding = self.token or self.request.cookies.get(security.PRE_COOKIE) or self._pre
        if binding is None:
            binding = self._pre = security.new_nonce()
            self.cookies[security.PRE_COOKIE] = (binding, None)
        return security.csrf_token(self.web.secret, binding)

    def purposes(self) -> list[dict[str, Any]]:
        return self.guard.purposes_for(self.me)

    def purpose(self, action: str) -> Declaration:
        """The declared purpose this page reads under (asking for one if none fits)."""
        return declaration(self.guard.declare, choose(self.session, self.purposes(), action))

    def declared_for(self, action: str) -> Declaration | None:
        """The declared purpose for ``action`` if there is one (a page with several parts
        asks for each part's purpose in place)."""
        try:
            return self.purpose(action)
        except PurposeNeeded:
            return None

    def notice(self, message: str, /, **values: Any) -> None:
        self.session.notices.append(self.t(message, **values))

    def purpose_title(self, kind: str) -> str:
        found = self.guard.policy.purposes.get(kind)
        if found is None:
            return kind
        return found.title_vi if self.lang == "vi" else found.title

    def label(self, name: str) -> str:
        """A field's name for people: a person field's legal label, else the input's."""
        spec = self.web.catalogue.get("fields", {}).get(name)
        return str(spec[self.lang]) if spec else self.t.maybe(f"input.{name}") or name

    # -- responses -------------------------------------------------------------------------
    def page(self, template: str, /, *, http_status: int = 200, **context: Any) -> HTMLResponse:
        notices = self.state.notices if self.state is not None else []
        shown, notices[:] = list(notices), []
        base = {"v": self, "t": self.t, "lang": self.lang, "me": self.principal,
                "nav": self.web.nav(self.principal.kind.value) if self.principal else [],
                "csrf": self.csrf(), "notices": shown, "demo": self.web.settings.demo,
                "declared": self.state.declared if self.state else [],
                "path": self.request.url.path, "label": self.label,
                "purpose_title": self.purpose_title}
        html = self.web.templates.get_template(template).render(**base, **context)
        return self._cookies(HTMLResponse(html, status_code=http_status))

    def redirect(self, url: str) -> RedirectResponse:
        return self._cookies(RedirectResponse(url, status_code=303))

    def _cookies(self, response: R) -> R:
        for name, (value, max_age) in self.cookies.items():
            if value:
                security.set_cookie(response, self.request, name, value, max_age=max_age)
            else:
                security.clear_cookie(response, self.request, name)
        return response


def visit(request: Request) -> Visit:
    """The visitor, signed in or not (a cookie whose session ended is cleared)."""
    web: WebContext = request.app.state.web
    found = Visit(request, web, language(request.cookies.get(security.LANG_COOKIE)))
    request.state.visit = found
    token = request.cookies.get(security.SESSION_COOKIE)
    if token:
        try:
            found.principal, _ = web.guard.caller(token=token)
        except NotAuthenticated as exc:
            found.expired = exc.reason
            found.cookies[security.SESSION_COOKIE] = ("", None)
            web.sessions.drop(token)
        else:
            found.token, found.state = token, web.sessions.get(token)
    return found


def member(found: Annotated[Visit, Depends(visit)]) -> Visit:
    """A signed-in visitor; otherwise the sign-in page (saying if the session expired)."""
    if found.principal is None:
        raise NotAuthenticated("sign in first", reason=found.expired or "denied.no_credentials")
    return found


async def posted(request: Request) -> FormData:
    """The body of a POST, refused unless it carries this visitor's CSRF token."""
    form = await request.form()
    security.check_csrf(request.app.state.web.secret, request, form)
    return form


Anyone = Annotated[Visit, Depends(visit)]
Member = Annotated[Visit, Depends(member)]
Posted = Annotated[FormData, Depends(posted)]


# -- templates ------------------------------------------------------------------------------
def _local_time(ts: str | float | None, with_seconds: bool = False) -> str:
    """A journal time (UTC text) or Unix time, in Vietnam time."""
    if ts in (None, "", 0):
        return "—"
    if isinstance(ts, (int, float)):
        moment = datetime.fromtimestamp(ts, UTC)
    else:
        moment = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M:%S" if with_seconds
                                               else "%d/%m/%Y %H:%M")


def _local_date(text: str | None) -> str:
    if not text:
        return "—"
    try:
        return date.fromisoformat(str(text)[:10]).strftime("%d/%m/%Y")
    except ValueError:
        return str(text)  # partial dates (a year only) stay as recorded


def _shown(value: Any) -> str:
    """A record's value for people: nested objects (parents, cards, places) as their parts."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    text = str(value)
    if text.startswith("{"):
        try:
            parts = json.loads(text)
        except ValueError:
            return text
        if isinstance(parts, dict):
            return ", ".join(str(v) for v in parts.values() if v)
    return text


def field_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _size(n: int | float | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("cutru.web", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(local_time=_local_time, local_date=_local_date, size=_size,
                       shown=_shown)
    return env
