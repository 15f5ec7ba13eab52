"""The web's defences: CSRF tokens, cookie flags, security headers, safe redirects.

* **CSRF.** Every form carries ``csrf`` = HMAC-SHA256(server secret, the session token, or
  before sign-in a random pre-session nonce kept in a cookie). A POST whose field does not
  match is refused before anything else runs. The token is bound to the session, so a token
  read from one session is useless in another; the secret lives only in the server's memory.
* **Cookies** are ``HttpOnly``, ``SameSite=Strict``, ``Path=/`` and ``Secure`` whenever the
  request came over https.
* **Headers**: a Content-Security-Policy allowing only this origin (no inline script or
  style), no framing, no referrer, no sniffing, and ``Cache-Control: no-store`` on pages.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from starlette.datastructures import FormData

from cutru.errors import AccessDenied

SESSION_COOKIE = "cutru_session"
PRE_COOKIE = "cutru_pre"
LANG_COOKIE = "cutru_lang"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; object-src 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
#: Paths that belong to the API (its own documentation pages load their own scripts).
API_PATHS = ("/api/", "/docs", "/redoc", "/openapi.json", "/metrics")


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(secret: bytes, binding: str) -> str:
    return hmac.new(secret, b"csrf\x00" + binding.encode(), hashlib.sha256).hexdigest()


def check_csrf(secret: bytes, request: Request, form: FormData) -> None:
    """Refuse a POST whose ``csrf`` field is not this session's (or this visitor's) token."""
    binding = request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRE_COOKIE)
    sent = form.get("csrf")
    if not binding or not isinstance(sent, str) or not hmac.compare_digest(
            sent, csrf_token(secret, binding)):
        raise AccessDenied("the form has expired or did not come from this site; reload "
                           "the page and send it again", reason="denied.csrf")


def set_cookie(response: Response, request: Request, name: str, value: str, *,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")


def safe_next(target: str | None, default: str = "/home") -> str:
    """Only a path on this site: never another host (``//evil``, ``https://…``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def install_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def _headers(request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if not request.url.path.startswith(API_PATHS):
            for name, value in HEADERS.items():
                response.headers.setdefault(name, value)
            if not request.url.path.startswith("/static/"):
                response.headers["Cache-Control"] = "no-store"
        return response
