"""Shared fixtures: a real registry on SQLite and on PostgreSQL.

PostgreSQL is the server at ``CUTRU_TEST_PG_URL`` (default: 127.0.0.1:5432, database
``test``). Each test gets a schema of its own. When the server cannot be reached the
PostgreSQL variants are skipped with a visible reason, except in CI (``CI=true``), where
that is an error.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from cutru.config import Settings
from cutru.services.registry import Registry
from cutru.services.unit import KeyFactory

PG_URL = os.environ.get("CUTRU_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
_pg_error: str | None = None


def _pg_available() -> str | None:
    try:
        eng = create_engine(PG_URL)
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


def pytest_sessionstart(session: pytest.Session) -> None:
    global _pg_error
    _pg_error = _pg_available()
    if _pg_error and IN_CI:
        raise pytest.UsageError(f"PostgreSQL unreachable in CI at {PG_URL}: {_pg_error}")


class Clock:
    """A settable UTC clock (the journal's trusted time source in tests)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 27, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _pg_schema_url() -> Iterator[str]:
    schema = f"t_{secrets.token_hex(6)}"
    eng = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with eng.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and _pg_error:
        pytest.skip(f"PostgreSQL unreachable: {_pg_error}")
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'cutru.db'}"
    else:
        yield from _pg_schema_url()


def make_settings(tmp_path: Path, url: str, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", key_dir=tmp_path / "keys", database_url=url,
                    **kw)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, checkpoint_interval=5)


@pytest.fixture
def registry(settings: Settings, clock: Clock) -> Iterator[Registry]:
    import random

    reg = Registry(settings, clock=clock, new_key=KeyFactory(random.Random(7).getrandbits))
    reg.init()
    yield reg
    reg.close()


@pytest.fixture
def sqlite_registry(tmp_path: Path, clock: Clock) -> Iterator[Registry]:
    """A registry on a SQLite file, for what only a SQLite file has (its pages)."""
    import random

    url = f"sqlite:///{tmp_path / 'data' / 'cutru.db'}"
    reg = Registry(make_settings(tmp_path, url, checkpoint_interval=5), clock=clock,
                   new_key=KeyFactory(random.Random(7).getrandbits))
    reg.init()
    yield reg
    reg.close()
