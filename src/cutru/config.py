"""Settings, read once at the edge (CLI or app factory) and passed down.

Every setting can come from the environment (``CUTRU_<NAME>``) or from the command line.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cutru.errors import ConfigError


class Settings(BaseSettings):
    """The validated, typed configuration of one cutru installation."""

    model_config = SettingsConfigDict(env_prefix="CUTRU_", extra="forbid", frozen=True)

    data_dir: Path = Field(Path("cutru-data"), description="where the SQLite registry lives")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file cutru.db in data_dir"
    )
    key_dir: Path = Field(
        Path("cutru-keys"),
        description="signing keys; must lie outside data_dir so a copy of the data is no key",
    )
    checkpoint_interval: int = Field(1000, ge=1, description="sign a checkpoint every N entries")
    sqlite_synchronous: str = Field("FULL", description="SQLite PRAGMA synchronous")
    sqlite_cache_mib: int = Field(
        64, ge=1, le=65536, description="SQLite page cache per connection, in MiB")
    sqlite_bulk_cache_mib: int = Field(
        1024, ge=1, le=65536,
        description="SQLite page cache of the connection that imports, while it does, in MiB")
    policy_path: Path | None = Field(
        None, description="access policy file (TOML); default: the shipped policy")
    session_ttl_minutes: int = Field(30, ge=1, le=24 * 60, description="web/API session life")
    rate_per_minute: int = Field(120, ge=1, description="audited requests per principal/min")
    audit_head_interval: int = Field(100, ge=1, description="sign an audit tree head every N")
    investigation_hidden_days: int = Field(
        180, ge=0, description="days an investigative lookup stays out of the citizen's log")
    demo: bool = Field(
        False, description="a demo registry: the web's first page explains the demo accounts")

    @field_validator("sqlite_synchronous")
    @classmethod
    def _sync(cls, v: str) -> str:
        if v.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("must be OFF, NORMAL, FULL or EXTRA")
        return v.upper()

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'cutru.db'}"

    @property
    def signing_key_path(self) -> Path:
        return self.key_dir / "checkpoint.key"

    @property
    def external_checkpoint_path(self) -> Path:
        """The newest signed checkpoint, kept beside the keys: a journal cut back to an older
        prefix inside the database cannot cut this copy too."""
        return self.key_dir / "latest-checkpoint.json"

    def check_key_outside_data(self) -> None:
        """The signing key must not live inside the database directory (issue: threat model)."""
        data = self.data_dir.resolve()
        key = self.key_dir.resolve()
        if key == data or data in key.parents:
            raise ConfigError(
                f"key_dir {self.key_dir} lies inside data_dir {self.data_dir}; "
                "keep signing keys outside the database directory",
                field="key_dir",
                rule="keys.outside_data_dir",
            )


def load_settings(**overrides: object) -> Settings:
    """Build and validate settings once; errors name the setting and the rule."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"setting {name}: {first['msg']}", field=name,
                          rule=first["type"]) from exc
    settings.check_key_outside_data()
    return settings
