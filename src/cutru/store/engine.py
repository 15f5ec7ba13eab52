"""Engines for the two supported databases and the one transaction helper.

SQLite (the embedded default) runs in WAL mode; a write transaction starts with
``BEGIN IMMEDIATE`` so writers queue at the start instead of failing at commit. PostgreSQL
serialises writers on the journal head row (``SELECT ... FOR UPDATE``), see ``journal_store``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from cutru.errors import ConfigError, CutruError, IntegrityFailure

_T = TypeVar("_T")

#: The default page cache of each SQLite connection, in MiB (setting ``sqlite_cache_mib``).
SQLITE_CACHE_MIB = 64
#: The page cache of the connection that bulk-imports, in MiB, for its transactions only
#: (setting ``sqlite_bulk_cache_mib``). SQLite takes the pages as it needs them: a small
#: import uses little of it.
SQLITE_BULK_CACHE_MIB = 1024


class Database:
    """One registry database: an engine plus the transaction discipline of cutru."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL",
                 sqlite_cache_mib: int = SQLITE_CACHE_MIB,
                 sqlite_bulk_cache_mib: int = SQLITE_BULK_CACHE_MIB) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"database URL is not valid: {exc}", field="database_url",
                              rule="url.format") from exc
        self.url = url
        self.cache_mib = int(sqlite_cache_mib)
        self.bulk_cache_mib = int(sqlite_bulk_cache_mib)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in {"sqlite", "postgresql"}:
            raise ConfigError(f"unsupported database {self.dialect!r}; use sqlite or postgresql",
                              field="database_url", rule="url.dialect")
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if self.dialect == "sqlite" and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # a statement's parameters are residents' data (names, ciphertexts, blind indexes):
        # no error message, traceback or log line carries them
        self.engine: Engine = create_engine(parsed, future=True, hide_parameters=True)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, sqlite_synchronous, sqlite_cache_mib)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One write transaction: commits on success, rolls back (writing nothing) on error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (OperationalError, sqlite3.OperationalError) as exc:
            raise _unavailable(exc) from exc

    @contextmanager
    def begin_bulk(self) -> Iterator[Connection]:
        """:meth:`begin` for a bulk import: on SQLite, the connection's page cache is
        ``bulk_cache_mib`` for the transaction, then back to ``cache_mib``.

        A registry's indexes are keyed by random keys (record keys, blind indexes, entry
        hashes), so a large import writes all over every index; once they outgrow the cache,
        nearly every row is a read from the operating system: importing 1,000,000 persons as
        one batch took 367 s here with the 64 MiB cache, 272 s with 1 GiB and 275 s with
        2 GiB."""
        if not self.is_sqlite:
            with self.begin() as conn:
                yield conn
            return
        try:
            with self.engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                assert raw is not None
                raw.execute(f"PRAGMA cache_size=-{self.bulk_cache_mib * 1024}")
                try:
                    with conn.begin():
                        yield conn
                finally:
                    raw.execute(f"PRAGMA cache_size=-{self.cache_mib * 1024}")
        except (OperationalError, sqlite3.OperationalError) as exc:
            raise _unavailable(exc) from exc

    @contextmanager
    def begin_fill(self) -> Iterator[Connection]:
        """:meth:`begin` for filling a new, empty database in one transaction (a restore).

        On SQLite the transaction keeps its rollback journal in memory instead of writing a
        WAL: every page is written once, to the database file, where a WAL would take them
        all and then copy them over. A rollback still undoes everything; a crash in the
        middle leaves the new file unusable, which is acceptable only because nothing uses a
        database while it is being filled (a restore goes to a new file and refuses a file
        that holds anything). The file is back in WAL mode when this ends."""
        if not self.is_sqlite:
            with self.begin() as conn:
                yield conn
            return
        self.engine.dispose()  # the mode changes only with no other connection open
        try:
            with self.engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                assert raw is not None
                raw.execute("PRAGMA journal_mode=MEMORY")
                try:
                    with conn.begin():
                        yield conn
                finally:
                    raw.execute("PRAGMA journal_mode=WAL")
        except (OperationalError, sqlite3.OperationalError) as exc:
            raise _unavailable(exc) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot (one transaction, rolled back at the end)."""
        try:
            with self.engine.connect().execution_options(cutru_read=True) as conn:
                yield conn
                conn.rollback()
        except (OperationalError, sqlite3.OperationalError) as exc:
            raise _unavailable(exc) from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _unavailable(exc: OperationalError | sqlite3.OperationalError) -> CutruError:
    """What a database's operational error means to the user: a schema behind the build,
    text that is not UTF-8 (SQLite keeps any bytes that direct SQL gives a column, and its
    driver refuses to decode them: the data was changed around the application), or the
    database unavailable."""
    text = str(getattr(exc, "orig", None) or exc)
    if "no such column" in text or "no such table" in text or "does not exist" in text:
        return ConfigError(f"the database schema is not current ({text}); run `cutru init`",
                           field="database_url", rule="db.schema")
    if _not_utf8(exc):
        return IntegrityFailure(f"the database holds text that is not UTF-8 ({text}), which "
                                "the application never writes: it was changed by other "
                                "means; run `cutru verify`", rule="db.not_utf8")
    return ConfigError(f"database unavailable: {text}", field="database_url",
                       rule="db.unavailable")


def _configure_sqlite(engine: Engine, synchronous: str, cache_mib: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        # SQLite's default page cache is 2 MiB: a registry's indexes are keyed by random
        # keys, so a bulk load or a large read misses it on nearly every row
        cur.execute(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Readers take a deferred snapshot; writers take the write lock at once.
        read = conn.get_execution_options().get("cutru_read", False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def fetch_escaping(conn: Connection, fetch: Callable[[], _T]) -> _T:
    """``fetch()``: a query on ``conn`` and the reading of its rows. On SQLite, whose
    columns take any bytes, a read that fails because stored text is not UTF-8 (written by
    direct SQL: the driver refuses to decode it) is run again with the bad bytes as lone
    surrogates (``surrogateescape``), so that verification reports the row or entry that
    holds them instead of failing: no canonical encoding takes a lone surrogate, and
    ``.encode("utf-8", "surrogateescape")`` gives back the stored bytes."""
    try:
        return fetch()
    except (sqlite3.OperationalError, OperationalError) as exc:
        if conn.dialect.name != "sqlite" or not _not_utf8(exc):
            raise
        raw = conn.connection.dbapi_connection
        assert raw is not None
        before = raw.text_factory
        raw.text_factory = _surrogate_escaped
        try:
            return fetch()
        finally:
            raw.text_factory = before


def _not_utf8(exc: OperationalError | sqlite3.OperationalError) -> bool:
    """Whether the error is the sqlite3 driver refusing to decode stored text as UTF-8."""
    return str(getattr(exc, "orig", None) or exc).startswith("Could not decode to UTF-8")


def _surrogate_escaped(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")
