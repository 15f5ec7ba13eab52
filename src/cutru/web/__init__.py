"""The web interface: server-rendered pages for officers, commune-police heads, agencies,
citizens, operators and auditors, in Vietnamese first (English by a switch).

It talks only to :class:`cutru.services.guard.Guard`, as the API does, so every page that
shows personal data has been decided, filtered and audited. ``docs/web.md`` describes the
pages and the security design (CSRF, cookies, Content-Security-Policy, the purpose prompt).

Compose it onto the API's app (``cutru serve`` and the tests do it the same way)::

    app = create_app(settings, registry=reg, backup=schedule)
    install(app, guard=app.state.guard, backup=schedule, settings=settings)
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cutru.config import Settings
from cutru.services.guard import Guard
from cutru.web import security
from cutru.web.core import WebContext
from cutru.web.pages import (
    auditor,
    citizen,
    operator,
    public,
    queue,
    records,
    recovery,
    transactions,
)

__all__ = ["install"]


def install(app: FastAPI, *, guard: Guard, settings: Settings, backup: Any = None) -> None:
    """Mount the pages (``/`` is the first page), the static files and the security headers
    onto ``app``. ``backup`` is the running :class:`~cutru.backup.schedule.BackupSchedule`,
    if any (the operator's pages report on it)."""
    app.state.web = WebContext(guard=guard, settings=settings, backup=backup,
                               catalogue=guard.catalogue())
    for module in (public, records, transactions, queue, citizen, operator, recovery, auditor):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(packages=[("cutru.web", "static")]), name="static")
    security.install_headers(app)

