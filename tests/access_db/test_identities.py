"""Identities on the real databases: argon2id passwords, sessions that expire, lockout with
backoff, API keys stored hashed, scoped and revocable."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from cutru.access import identities
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.errors import InputError, NotAuthenticated
from cutru.services.registry import Registry
from cutru.store.schema import api_keys, credentials, sessions

PASSWORD = "mật-khẩu-đủ-dài-1"
TTL = timedelta(minutes=30)


def officer() -> Principal:
    return Principal("can-bo-hk", PrincipalKind.OFFICER, Unit.commune("00070"), role="officer")


def add(registry: Registry, clock: Any, p: Principal | None = None) -> Principal:
    p = p or officer()
    with registry.db.begin() as conn:
        identities.create_principal(conn, p, password=PASSWORD, now=clock())
    return p


def test_password_is_argon2id_and_login_opens_an_expiring_session(registry: Registry,
                                                                  clock: Any) -> None:
    p = add(registry, clock)
    with registry.db.begin() as conn:
        stored = conn.execute(select(credentials.c.password_hash)).scalar_one()
        assert stored.startswith("$argon2id$") and PASSWORD not in stored
        login = identities.login(conn, p.id, PASSWORD, now=clock(), ttl=TTL)
        assert login.principal == p
        assert conn.execute(select(sessions.c.token_hash)).scalar_one() != login.token
        assert identities.authenticate(conn, login.token, now=clock()) == p
        with pytest.raises(NotAuthenticated) as info:
            identities.authenticate(conn, login.token, now=clock() + TTL)
        assert info.value.reason == "denied.session_expired"
        identities.logout(conn, login.token)
        with pytest.raises(NotAuthenticated):
            identities.authenticate(conn, login.token, now=clock())


def test_lockout_with_backoff(registry: Registry, clock: Any) -> None:
    p = add(registry, clock)
    with registry.db.begin() as conn:
        for _ in range(identities.LOCK_AFTER):
            with pytest.raises(NotAuthenticated):
                identities.login(conn, p.id, "sai-mật-khẩu-123", now=clock(), ttl=TTL)
        with pytest.raises(NotAuthenticated) as info:
            identities.login(conn, p.id, PASSWORD, now=clock(), ttl=TTL)
        assert info.value.reason == "denied.locked"
        later = clock() + identities.LOCK_BASE + timedelta(seconds=1)
        assert identities.login(conn, p.id, PASSWORD, now=later, ttl=TTL).principal == p


def test_unknown_account_and_short_password(registry: Registry, clock: Any) -> None:
    with registry.db.begin() as conn:
        with pytest.raises(NotAuthenticated) as info:
            identities.login(conn, "ai-đó", PASSWORD, now=clock(), ttl=TTL)
        assert info.value.reason == "denied.bad_credentials"
        with pytest.raises(InputError) as bad:
            identities.create_principal(conn, officer(), password="ngắn", now=clock())
        assert bad.value.rule == "password.min_length"


def test_api_keys_are_hashed_scoped_and_revocable(registry: Registry, clock: Any) -> None:
    agency = Principal("vien-kiem-sat-hn", PrincipalKind.AGENCY_PROCEDURAL, Unit.province("01"),
                       functions=frozenset({"prosecution"}))
    add(registry, clock, agency)
    with registry.db.begin() as conn:
        raw = identities.create_api_key(conn, agency.id, ["lookup"], now=clock())
        assert raw not in str(conn.execute(select(api_keys)).all())
        who, scopes = identities.authenticate_api_key(conn, raw)
        assert who == agency and scopes == {"lookup"}
        identities.revoke_api_key(conn, raw.split("_")[1], now=clock())
        with pytest.raises(NotAuthenticated) as info:
            identities.authenticate_api_key(conn, raw)
        assert info.value.reason == "denied.api_key_revoked"
        with pytest.raises(InputError):
            identities.create_api_key(conn, add_officer_id(conn, clock), ["lookup"], now=clock())


def add_officer_id(conn: Any, clock: Any) -> str:
    p = officer()
    identities.create_principal(conn, p, password=PASSWORD, now=clock())
    return p.id


def test_citizen_account_is_bound_to_a_record(registry: Registry, clock: Any) -> None:
    with registry.db.begin() as conn, pytest.raises(InputError) as info:
        identities.create_principal(conn, Principal("cong-dan", PrincipalKind.CITIZEN),
                                    password=PASSWORD, now=clock())
    assert info.value.rule == "principal.citizen_record"


def test_the_refusal_hash_is_made_when_a_server_starts_not_on_import() -> None:
    """The hash checked for unknown accounts costs an Argon2 hash (about 130 ms): a command
    does not pay it on import, a server pays it as it starts, so that its first refusal of an
    unknown account takes no longer than the next."""
    code = ("import cutru.cli.main\n"
            "from cutru.access import identities\n"
            "assert identities.refusal_hash.cache_info().currsize == 0, 'made on import'\n"
            "import tempfile, pathlib\n"
            "from cutru.api.app import create_app\n"
            "from cutru.config import Settings\n"
            "d = pathlib.Path(tempfile.mkdtemp())\n"
            "from cutru.services.registry import Registry\n"
            "s = Settings(data_dir=d / 'data', key_dir=d / 'keys')\n"
            "Registry(s).init()\n"
            "create_app(s)\n"
            "assert identities.refusal_hash.cache_info().currsize == 1, 'not made at start'\n"
            "assert identities.refusal_hash().startswith('$argon2id$')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
