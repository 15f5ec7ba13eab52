"""Identities: principals, passwords (argon2id), expiring sessions, API keys, lockout.

* Passwords are hashed with argon2id (RFC 9106) by ``argon2-cffi``; a hash made with weaker
  parameters is upgraded at the next successful login.
* A session token is 32 random bytes (URL-safe base64); only its SHA-256 is stored, with its
  expiry. API keys for agency systems are ``ck_<key id>_<secret>``; the secret's SHA-256 is
  stored (it has 256 bits of entropy, so a slow hash adds nothing), with scopes; a key can be
  revoked.
* After ``LOCK_AFTER`` consecutive failed logins an account is locked for a time that doubles
  with each further failure (``LOCK_BASE`` up to ``LOCK_MAX``). A failed login for an unknown
  account costs the same argon2 verification, so timing tells nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, insert, select, update

from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.errors import InputError, NotAuthenticated
from cutru.journal.entry import format_ts
from cutru.store.schema import api_keys, credentials, principals, sessions

LOCK_AFTER = 5
LOCK_BASE = timedelta(minutes=1)
LOCK_MAX = timedelta(hours=1)
MIN_PASSWORD = 12
_HASHER = PasswordHasher()  # argon2id, library defaults (RFC 9106 second recommendation)


@cache
def refusal_hash() -> str:
    """A hash no password matches, checked for an unknown or disabled principal so that a
    refusal costs what a real check costs. Computed once, when first needed (130 ms: every
    command paid it at start-up when it was computed on import); a server computes it as it
    starts (``create_app``), so that its first refusal is not the slower one."""
    return _HASHER.hash(secrets.token_hex(16))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _denied(reason: str, message: str) -> NotAuthenticated:
    return NotAuthenticated(message, reason=reason)


@dataclass(frozen=True)
class Login:
    principal: Principal
    token: str
    expires_at: str


def to_principal(row: dict[str, object]) -> Principal:
    unit = row.get("unit")
    return Principal(
        id=str(row["id"]), kind=PrincipalKind(str(row["kind"])),
        unit=Unit.parse(str(unit)) if unit else None, role=str(row.get("role") or ""),
        functions=frozenset(json.loads(str(row.get("functions") or "[]"))),
        person_key=str(row["person_key"]) if row.get("person_key") else None,
        clearance=bool(row.get("clearance")))


def create_principal(conn: Connection, principal: Principal, *, password: str | None,
                     now: datetime, display_name: str = "", agency: str | None = None) -> None:
    """Add a principal (and its password). Refuses a taken id or a short password."""
    if conn.execute(select(principals.c.id).where(principals.c.id == principal.id)).first():
        raise InputError(f"principal {principal.id} already exists", field="id",
                         rule="principal.unique")
    if principal.kind is PrincipalKind.CITIZEN and not principal.person_key:
        raise InputError("a citizen account is bound to their own person record",
                         field="person_key", rule="principal.citizen_record")
    conn.execute(insert(principals).values(
        id=principal.id, kind=principal.kind.value,
        unit=str(principal.unit) if principal.unit else None, role=principal.role,
        functions=json.dumps(sorted(principal.functions)), person_key=principal.person_key,
        clearance=principal.clearance, display_name=display_name, agency=agency,
        disabled=False, created_at=format_ts(now)))
    if password is not None:
        set_password(conn, principal.id, password, now=now)


def set_password(conn: Connection, principal_id: str, password: str, *, now: datetime) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"a password has at least {MIN_PASSWORD} characters", field="password",
                         rule="password.min_length")
    values = {"password_hash": _HASHER.hash(password), "failed_count": 0,
              "locked_until": None, "changed_at": format_ts(now)}
    found = conn.execute(select(credentials.c.principal_id)
                         .where(credentials.c.principal_id == principal_id)).first()
    if found:
        conn.execute(update(credentials).where(credentials.c.principal_id == principal_id)
                     .values(**values))
    else:
        conn.execute(insert(credentials).values(principal_id=principal_id, **values))


def get_principal(conn: Connection, principal_id: str) -> Principal:
    row = conn.execute(select(principals).where(principals.c.id == principal_id)
                       ).mappings().first()
    if row is None or row["disabled"]:
        raise _denied("denied.unknown_principal", "no such active account")
    return to_principal(dict(row))


def list_principals(conn: Connection) -> list[dict[str, object]]:
    return [dict(r) for r in conn.execute(select(principals).order_by(principals.c.id))
            .mappings()]


def update_principal(conn: Connection, principal_id: str, *, role: str | None = None,
           unit: Unit | None = None, clearance: bool | None = None,
           functions: Iterable[str] | None = None) -> Principal:
    """Change an account's role, unit, clearance or functions (its kind is fixed: a new kind
    is a new account)."""
    get_principal(conn, principal_id)
    values: dict[str, object] = {}
    if role is not None:
        values["role"] = role
    if unit is not None:
        values["unit"] = str(unit)
    if clearance is not None:
        values["clearance"] = clearance
    if functions is not None:
        values["functions"] = json.dumps(sorted(set(functions)))
    if values:
        conn.execute(update(principals).where(principals.c.id == principal_id)
                     .values(**values))
    return get_principal(conn, principal_id)


def disable(conn: Connection, principal_id: str) -> None:
    get_principal(conn, principal_id)
    conn.execute(update(principals).where(principals.c.id == principal_id).values(disabled=True))
    conn.execute(update(sessions).where(sessions.c.principal_id == principal_id)
                 .values(revoked=True))


def login(conn: Connection, principal_id: str, password: str, *, now: datetime,
          ttl: timedelta) -> Login:
    """Check a password; on success open a session that expires after ``ttl``."""
    cred = conn.execute(select(credentials).where(credentials.c.principal_id == principal_id)
                        ).mappings().first()
    active = conn.execute(select(principals).where(principals.c.id == principal_id)
                          .where(principals.c.disabled.is_(False))).mappings().first()
    if cred is None or active is None:
        _verify(refusal_hash(), password)  # same cost as a real check
        raise _denied("denied.bad_credentials", "wrong account or password")
    if cred["locked_until"] and cred["locked_until"] > format_ts(now):
        raise _denied("denied.locked", f"too many failed logins; locked until "
                      f"{cred['locked_until']}")
    if not _verify(cred["password_hash"], password):
        failed = int(cred["failed_count"]) + 1
        locked = None
        if failed >= LOCK_AFTER:
            locked = format_ts(now + min(LOCK_BASE * 2 ** (failed - LOCK_AFTER), LOCK_MAX))
        conn.execute(update(credentials).where(credentials.c.principal_id == principal_id)
                     .values(failed_count=failed, locked_until=locked))
        raise _denied("denied.bad_credentials", "wrong account or password")
    values: dict[str, object] = {"failed_count": 0, "locked_until": None}
    if _HASHER.check_needs_rehash(cred["password_hash"]):
        values["password_hash"] = _HASHER.hash(password)
    conn.execute(update(credentials).where(credentials.c.principal_id == principal_id)
                 .values(**values))
    token = secrets.token_urlsafe(32)
    expires = format_ts(now + ttl)
    conn.execute(insert(sessions).values(token_hash=_sha(token), principal_id=principal_id,
                                         created_at=format_ts(now), expires_at=expires,
                                         revoked=False))
    return Login(to_principal(dict(active)), token, expires)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def authenticate(conn: Connection, token: str, *, now: datetime) -> Principal:
    """The principal of a live session, or :class:`AccessDenied` (expired, revoked, unknown)."""
    row = conn.execute(select(sessions).where(sessions.c.token_hash == _sha(token))
                       ).mappings().first()
    if row is None or row["revoked"]:
        raise _denied("denied.bad_token", "not signed in")
    if row["expires_at"] <= format_ts(now):
        raise _denied("denied.session_expired", "the session has expired; sign in again")
    return get_principal(conn, row["principal_id"])


def logout(conn: Connection, token: str) -> None:
    conn.execute(update(sessions).where(sessions.c.token_hash == _sha(token))
                 .values(revoked=True))


def create_api_key(conn: Connection, principal_id: str, scopes: Iterable[str], *,
                   now: datetime) -> str:
    """A new API key for an agency system; the raw key is shown once and never stored."""
    principal = get_principal(conn, principal_id)
    if principal.kind not in {PrincipalKind.AGENCY_PROCEDURAL, PrincipalKind.AGENCY_STATE}:
        raise InputError("API keys are for agency systems", field="principal_id",
                         rule="api_key.agency_only")
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    conn.execute(insert(api_keys).values(key_id=key_id, principal_id=principal_id,
                                         secret_hash=_sha(secret),
                                         scopes=json.dumps(sorted(set(scopes))),
                                         created_at=format_ts(now), revoked_at=None))
    return f"ck_{key_id}_{secret}"


def revoke_api_key(conn: Connection, key_id: str, *, now: datetime) -> None:
    conn.execute(update(api_keys).where(api_keys.c.key_id == key_id)
                 .values(revoked_at=format_ts(now)))


def authenticate_api_key(conn: Connection, raw: str) -> tuple[Principal, frozenset[str]]:
    _, _, rest = raw.partition("ck_")
    key_id, _, secret = rest.partition("_")
    row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
    if row is None or not hmac.compare_digest(row["secret_hash"], _sha(secret)):
        raise _denied("denied.bad_api_key", "unknown API key")
    if row["revoked_at"] is not None:
        raise _denied("denied.api_key_revoked", "this API key was revoked")
    return get_principal(conn, row["principal_id"]), frozenset(json.loads(row["scopes"]))
