"""Schema migrations (Alembic), run programmatically by ``cutru init`` and at start-up."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.exc import SQLAlchemyError

from cutru.errors import ConfigError
from cutru.store.engine import Database

if TYPE_CHECKING:
    from alembic.config import Config

_DIR = Path(__file__).parent / "migrations"
#: The revision this build's schema is at: the newest of ``migrations/versions`` (a test
#: checks it against Alembic's own reading of them). Known without importing Alembic, which
#: every command would otherwise pay (about 0.13 s) only to check the schema as it starts.
HEAD_REVISION = "0006"


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_DIR))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the database schema up to ``revision`` (idempotent). A database already at
    this build's head is left as it is without importing Alembic (0.13-0.33 s: a restore
    upgrades the database it has just written, and its time counts)."""
    if revision in ("head", HEAD_REVISION):
        with suppress(SQLAlchemyError):  # Alembic then says what is wrong
            if current_revision(db) == HEAD_REVISION:
                return
    from alembic import command

    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(db: Database) -> str | None:
    """The revision the database's schema is at, as Alembic's version table records it
    (several, where it holds several: joined by commas); None without that table."""
    with db.engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        found = sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    return ",".join(found) if found else None


def head_revision() -> str:
    return HEAD_REVISION


def require_current(db: Database) -> None:
    """Refuse a database whose schema is behind (or ahead of) this build's: ``cutru init``
    upgrades it, or says why it cannot. A database with no schema yet passes (its first
    query says to run ``cutru init``)."""
    try:
        current = current_revision(db)
    except SQLAlchemyError:  # unreachable or not a database: the first real query says so
        return
    head = head_revision()
    if current is not None and current != head:
        raise ConfigError(
            f"the database schema is at revision {current} and this build needs {head}: run "
            "`cutru init` to upgrade it (it refuses, saying why, what it cannot upgrade)",
            field="database_url", rule="db.schema_revision", current=current, needed=head)
