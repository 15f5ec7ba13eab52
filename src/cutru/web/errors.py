"""The one place where errors become web pages.

Every web route is a :class:`WebRoute`. What its endpoint raises is answered here:

* :class:`~cutru.web.sessions.PurposeNeeded`: the purpose prompt, then back to the page;
* :class:`~cutru.errors.NotAuthenticated`: the sign-in page (saying when a session expired);
* any other :class:`~cutru.errors.CutruError` on a form (the route set
  ``request.state.form``): the same form again, its values kept, the error beside its field
  and summarised above it, naming the rule (and for a rule of the law, its article);
* any other :class:`~cutru.errors.CutruError`: an error page;
* anything else (a bug): an error page saying only "internal error", its type logged.

Status codes are the exception's own (``CutruError.http_status``), as the API's are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from cutru.errors import AccessDenied, CutruError, InputError, NotAuthenticated, RuleViolation
from cutru.web.core import Visit, WebContext
from cutru.web.i18n import Translator, language
from cutru.web.security import LANG_COOKIE
from cutru.web.sessions import PurposeNeeded

log = logging.getLogger("cutru.web")


@dataclass
class FormPage:
    """A form to show again if what it sent is refused."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)


def explain(exc: CutruError, t: Translator) -> dict[str, Any]:
    """What a person needs to put it right: a message in their language, the field, and the
    rule (with its article) or the access decision's reason."""
    rule = exc.details.get("rule")
    article = exc.details.get("article")
    reason = exc.details.get("reason")
    text = (t.rule(str(rule)) if rule else None) or (t.reason(str(reason)) if reason
                                                      and t.lang == "vi" else None)
    return {"code": exc.code, "status": exc.http_status, "message": text or exc.message,
            "original": exc.message, "field": exc.details.get("field"), "rule": rule,
            "article": t.article(str(article)) if article else None, "reason": reason,
            "law": isinstance(exc, RuleViolation), "input": isinstance(exc, InputError),
            "denied": isinstance(exc, AccessDenied)}


def _visit(request: Request) -> Visit:
    found = getattr(request.state, "visit", None)
    if isinstance(found, Visit):
        return found
    web: WebContext = request.app.state.web
    return Visit(request, web, language(request.cookies.get(LANG_COOKIE)))


def _back(request: Request) -> str:
    """Where to return after signing in or declaring a purpose: this page for a GET, the
    form's own page for a POST (its body is never put in a URL)."""
    if request.method == "GET":
        query = f"?{request.url.query}" if request.url.query else ""
        return request.url.path + query
    return str(getattr(request.state, "back", "/home"))


def answer(request: Request, exc: Exception) -> Response:
    v = _visit(request)
    if isinstance(exc, PurposeNeeded):
        return v.redirect("/purpose?" + urlencode({"action": exc.action,
                                                    "next": _back(request)}))
    if not isinstance(exc, CutruError):
        raise exc
    if isinstance(exc, NotAuthenticated) and getattr(request.state, "form", None) is None:
        query = {"next": _back(request)}
        if exc.reason == "denied.session_expired" or v.expired == "denied.session_expired":
            query["expired"] = "1"
        return v.redirect("/login?" + urlencode(query))
    error = explain(exc, v.t)
    if exc.http_status >= 500:
        log.error("web: %s", exc.code)  # the code only: messages may hold personal data
    form = getattr(request.state, "form", None)
    if isinstance(form, FormPage):
        return v.page(form.template, http_status=exc.http_status, error=error, **form.context)
    return v.page("error.html", http_status=exc.http_status, error=error)


class WebRoute(APIRoute):
    """An API route whose errors are answered by :func:`answer` (pages, not JSON)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (PurposeNeeded, CutruError) as exc:
                return answer(request, exc)
            except HTTPException:
                raise  # the framework's own answers (a malformed body, …)
            except Exception as exc:
                # never echo internals (they may hold personal data); log the type only
                log.error("web: internal error %s", type(exc).__name__)
                return answer(request, CutruError("internal error"))

        return guarded
