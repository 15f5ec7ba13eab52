"""Request dependencies: the caller (bearer token or API key) and the declared purpose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from cutru.access.decision import Declaration
from cutru.access.principals import Principal
from cutru.errors import InputError, NotAuthenticated
from cutru.services.guard import Guard


def guard(request: Request) -> Guard:
    g = request.app.state.guard
    assert isinstance(g, Guard)
    return g


def bearer(authorization: Annotated[str | None, Header()] = None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def caller(request: Request, g: Annotated[Guard, Depends(guard)],
           token: Annotated[str | None, Depends(bearer)],
           x_api_key: Annotated[str | None, Header()] = None) -> Principal:
    if not token and not x_api_key:
        raise NotAuthenticated("sign in (Authorization: Bearer) or present X-API-Key",
                               reason="denied.no_credentials")
    principal, scopes = g.caller(token=token, api_key=x_api_key)
    request.state.scopes = scopes
    return principal


def purpose(request: Request, g: Annotated[Guard, Depends(guard)],
            who: Annotated[Principal, Depends(caller)],
            x_cutru_purpose: Annotated[str | None, Header()] = None,
            x_cutru_legal_basis: Annotated[str | None, Header()] = None,
            x_cutru_case_number: Annotated[str | None, Header()] = None,
            x_cutru_grant: Annotated[str | None, Header()] = None) -> Declaration:
    """Every request that touches personal data declares its purpose in headers (never in
    the URL): ``X-Cutru-Purpose``, ``X-Cutru-Legal-Basis``, ``X-Cutru-Case-Number``, and a
    third party's ``X-Cutru-Grant``."""
    if not x_cutru_purpose:
        raise InputError("declare a purpose in the X-Cutru-Purpose header",
                         field="X-Cutru-Purpose", rule="purpose.required")
    declared = g.declare(x_cutru_purpose, legal_basis=x_cutru_legal_basis,
                         case_number=x_cutru_case_number, grant_key=x_cutru_grant)
    g.check_scope(who, getattr(request.state, "scopes", None), declared)
    return declared


GuardDep = Annotated[Guard, Depends(guard)]
CallerDep = Annotated[Principal, Depends(caller)]
PurposeDep = Annotated[Declaration, Depends(purpose)]
