"""Schema migrations (Alembic), run programmatically by ``cutru init`` and at start-up."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from cutru.errors import ConfigError
from cutru.store.engine import Database

_DIR = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_DIR))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the database schema up to ``revision`` (idempotent)."""
    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


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
