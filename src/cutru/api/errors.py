"""The one place where errors become HTTP responses, all of one JSON shape::

    {"error": "<code>", "message": "<human text>", ...details (field, rule, article, reason)}
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from cutru.errors import CutruError

log = logging.getLogger("cutru.api")


def error_body(code: str, message: str, **details: object) -> dict[str, object]:
    return {"error": code, "message": message, **{k: v for k, v in details.items() if v}}


def install(app: FastAPI) -> None:
    @app.exception_handler(CutruError)
    async def _cutru(_: Request, exc: CutruError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in {"body", "query"})
        return JSONResponse(error_body("invalid_input", str(first.get("msg")),
                                       field=field or "(request)",
                                       rule=f"schema.{first.get('type', 'invalid')}"),
                            status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        # never echo internals (they may hold personal data); log the type only
        log.error("internal error: %s", type(exc).__name__)
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
