"""Storage: migrations match the schema; stored entries decode to what was written."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from cutru.errors import ConfigError, DatabaseFormatError
from cutru.services.registry import Registry
from cutru.services.unit import KeyFactory
from cutru.store import journal_store, migrate
from cutru.store.engine import Database
from cutru.store.schema import metadata
from tests.conftest import make_settings
from tests.helpers import BASIS, OFFICER
from tests.test_transactions import seed_family


def test_migrations_create_exactly_the_schema(registry: Registry) -> None:
    assert migrate.current_revision(registry.db) == migrate.head_revision()
    with registry.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    registry.init()  # idempotent


def test_the_head_revision_is_alembics_and_commands_start_without_alembic() -> None:
    """The schema check every command makes at start-up knows this build's revision
    without importing Alembic; that revision is the one Alembic reads from the scripts."""
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(
        migrate._config()).get_current_head() == migrate.HEAD_REVISION
    code = ("import sys, cutru.cli.main; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_upgrading_a_database_at_the_head_does_not_import_alembic(tmp_path: Path) -> None:
    """A restore upgrades the database it has just written: at this build's head, that is
    a query, not Alembic's import. A database behind the head is still upgraded."""
    db_path = tmp_path / "at-head.db"
    Database(f"sqlite:///{db_path}").dispose()
    code = ("import sys; from cutru.store import migrate; from cutru.store.engine import "
            f"Database; db = Database('sqlite:///{db_path}'); migrate.upgrade(db); "
            "print(migrate.current_revision(db), 'alembic' in sys.modules)")
    run = [sys.executable, "-c", code]
    first = subprocess.run(run, capture_output=True, text=True, check=True).stdout.split()
    again = subprocess.run(run, capture_output=True, text=True, check=True).stdout.split()
    assert first == [migrate.HEAD_REVISION, "True"]  # an empty database: Alembic upgrades
    assert again == [migrate.HEAD_REVISION, "False"]


def test_a_database_error_carries_no_statement_parameters(registry: Registry) -> None:
    """A statement's values are residents' data: the error a refused write raises (and any
    traceback or log line made of it) names the statement and the reason, not the values.
    (PostgreSQL's own reason names the conflicting value of the unique column: here a
    blind index, never a plain field.)"""
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from cutru.store.schema import persons

    row = {"key": "P1", "full_name": "Trần Thị Bình", "birth_date": "1990-02-03",
           "birth_year": 1990, "sex": "female", "secret_label": False,
           "id_number_bidx": "bidx-of-a-resident"}
    with pytest.raises(IntegrityError) as info, registry.db.begin() as conn:
        conn.execute(insert(persons), [row, {**row, "key": "P2"}])
    message = str(info.value)
    assert "persons" in message  # the statement and the reason are there
    assert "parameters hidden" in message and "Trần" not in message


def test_stored_entries_decode_to_what_was_sealed(registry: Registry) -> None:
    k = seed_family(registry)
    registry.adjust_information(OFFICER, BASIS, k["mother"], {"email": "hoa@example.vn"})
    with registry.db.read() as conn:
        entries = list(journal_store.iter_entries(conn))
        head = journal_store.read_head(conn)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert all(e.computed_hash() == e.hash for e in entries)
    assert head.seq == entries[-1].seq and head.hash == entries[-1].hash
    assert head.state.digest() == entries[-1].digest
    assert entries[-1].changes[0].after["email"] == "hoa@example.vn"  # type: ignore[index]


def test_a_database_with_format_1_digests_is_refused_and_left_as_it_was(tmp_path: Path
                                                                        ) -> None:
    """Migration 0006 (state digest format 2) refuses a journal written with format 1
    digests: the error names the reason, and the database stays at 0005, untouched."""
    db = Database(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    migrate.upgrade(db, "0005")
    with db.begin() as conn:
        conn.execute(text(
            "INSERT INTO journal (seq, ts, actor, purpose, operation, subjects, changes, digest,"
            " prev, hash) VALUES (1, '2026-01-05T08:30:00.000000Z', 'officer:a', 'p', 'op',"
            " '[]', '[]', :d, :z, :h)"), {"d": "a" * 64, "z": "0" * 64, "h": "b" * 64})
    with pytest.raises(DatabaseFormatError, match="format 1") as caught:
        migrate.upgrade(db)
    assert caught.value.exit_code == 9
    assert caught.value.to_dict()["rule"] == "store.digest_format"
    assert migrate.current_revision(db) == "0005"
    with db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM journal")).scalar_one() == 1
        indexes = {r[1] for r in conn.execute(text("PRAGMA index_list(journal)"))}
    assert "ix_journal_actor" in indexes  # 0006 rolled back whole
    db.dispose()


def test_an_empty_database_moves_to_format_2_without_the_redundant_actor_index(
        tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    migrate.upgrade(db, "0005")
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()
    with db.read() as conn:
        indexes = {r[1] for r in conn.execute(text("PRAGMA index_list(journal)"))}
    assert "ix_journal_actor_ts" in indexes and "ix_journal_actor" not in indexes
    db.dispose()


def test_a_registry_refuses_a_schema_behind_this_build_until_init(tmp_path: Path) -> None:
    """Nothing reads a database of an older schema the new way (a journal of an older digest
    format would look tampered with): opening it says to run `cutru init`, which upgrades."""
    url = f"sqlite:///{tmp_path / 'data' / 'cutru.db'}"
    db = Database(url)
    migrate.upgrade(db, "0005")
    db.dispose()
    settings = make_settings(tmp_path, url)
    with pytest.raises(ConfigError, match="run `cutru init`") as caught:
        Registry(settings)
    assert caught.value.exit_code == 9
    assert caught.value.to_dict()["rule"] == "db.schema_revision"
    reg = Registry(settings, upgrading=True)
    reg.init()
    reg.close()
    again = Registry(settings)  # current now
    assert migrate.current_revision(again.db) == migrate.head_revision()
    again.close()


def test_begin_fill_writes_without_a_wal_rolls_back_whole_and_leaves_wal_mode(
        tmp_path: Path) -> None:
    """A restore fills its new SQLite file with the rollback journal in memory (each page
    written once); an error still undoes everything, and the file is in WAL mode after."""
    db = Database(f"sqlite:///{tmp_path / 'fill.sqlite3'}")
    migrate.upgrade(db)
    insert = text("INSERT INTO meta (name, value) VALUES (:n, 'v')")
    with pytest.raises(RuntimeError), db.begin_fill() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "memory"
        conn.execute(insert, {"n": "undone"})
        raise RuntimeError("a restore refused half-way")
    with db.begin_fill() as conn:
        conn.execute(insert, {"n": "kept"})
    db.dispose()
    again = Database(f"sqlite:///{tmp_path / 'fill.sqlite3'}")
    with again.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert [r[0] for r in conn.execute(text("SELECT name FROM meta"))] == ["kept"]
    again.dispose()


def test_sqlite_connections_get_the_configured_page_cache(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from cutru.config import Settings
    from cutru.store.engine import SQLITE_CACHE_MIB

    def cache_kib(db: Database) -> int:
        with db.read() as conn:
            return -int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())

    default = Database(f"sqlite:///{tmp_path / 'a.db'}")
    assert cache_kib(default) == SQLITE_CACHE_MIB * 1024
    monkeypatch.setenv("CUTRU_SQLITE_CACHE_MIB", "8")
    settings = Settings(data_dir=tmp_path / "b", key_dir=tmp_path / "k")
    assert settings.sqlite_cache_mib == 8
    assert cache_kib(Database(settings.url, sqlite_cache_mib=settings.sqlite_cache_mib)) == 8192
    monkeypatch.setenv("CUTRU_SQLITE_CACHE_MIB", "0")
    with pytest.raises(ValidationError, match="sqlite_cache_mib"):
        Settings(data_dir=tmp_path / "b", key_dir=tmp_path / "k")


def test_bulk_transactions_have_the_bulk_page_cache_then_the_usual_one(tmp_path: Path) -> None:
    """An import's transactions get ``sqlite_bulk_cache_mib``; the pooled connection goes
    back to ``sqlite_cache_mib`` after, whether the transaction committed or rolled back."""
    db = Database(f"sqlite:///{tmp_path / 'bulk.db'}", sqlite_cache_mib=8,
                  sqlite_bulk_cache_mib=96)
    migrate.upgrade(db)
    insert = text("INSERT INTO meta (name, value) VALUES (:n, 'v')")

    def cache_kib(conn: Any) -> int:
        return -int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())

    with db.begin_bulk() as conn:
        assert cache_kib(conn) == 96 * 1024
        conn.execute(insert, {"n": "kept"})
    with pytest.raises(RuntimeError), db.begin_bulk() as conn:
        conn.execute(insert, {"n": "undone"})
        raise RuntimeError("a rejected batch")
    with db.read() as conn:
        assert cache_kib(conn) == 8 * 1024
        assert [r[0] for r in conn.execute(text("SELECT name FROM meta"))] == ["kept"]
    db.dispose()


def test_record_keys_are_random_and_unique_across_threads() -> None:
    """Keys drawn from the pool are 16 lower-case hex digits after the kind, never twice,
    even with threads drawing at once (the web's request threads share one runner)."""
    new_key = KeyFactory()
    drawn: list[list[str]] = [[] for _ in range(4)]

    def draw(out: list[str]) -> None:
        out.extend(new_key("P") for _ in range(3000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in drawn]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = [k for out in drawn for k in out]
    assert len(set(keys)) == len(keys) == 12_000  # several refills of the pool
    assert all(len(k) == 17 and k[0] == "P" and all(c in "0123456789abcdef" for c in k[1:])
               for k in keys)
    digits = Counter(c for k in keys for c in k[1:])
    assert len(digits) == 16 and min(digits.values()) > 0.8 * 12_000  # roughly uniform
