"""The repository's ``config`` object: its id, format version and chunking parameters.

Sealed canonical JSON (codec 0x00) under ``config``::

    {"chunker": {"avg", "max", "min", "seed"}, "created_at", "id", "pack_size", "version"}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cutru.backup import naming
from cutru.backup.chunker import ChunkerParams
from cutru.errors import InputError, RepositoryDamaged, RepositoryVersionError
from cutru.journal import canonical

FORMAT_VERSION = 1
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
_FIELDS = {"chunker", "created_at", "id", "pack_size", "version"}


@dataclass(frozen=True, slots=True)
class RepoConfig:
    id: str  # 32 hex digits
    created_at: str
    chunker: ChunkerParams
    chunker_seed: bytes  # 32 bytes, secret
    pack_size: int = DEFAULT_PACK_SIZE
    version: int = FORMAT_VERSION

    @classmethod
    def new(cls, chunker: ChunkerParams, pack_size: int = DEFAULT_PACK_SIZE) -> RepoConfig:
        if not 1024 <= pack_size <= 1 << 30:
            raise InputError("the pack size must be between 1 KiB and 1 GiB",
                             field="pack_size", rule="backup.pack_size")
        return cls(os.urandom(16).hex(), naming.format_time(naming.now_us()), chunker,
                   os.urandom(32), pack_size)

    def to_bytes(self) -> bytes:
        return canonical.encode({
            "chunker": {
                "avg": self.chunker.avg_size,
                "max": self.chunker.max_size,
                "min": self.chunker.min_size,
                "seed": self.chunker_seed.hex(),
            },
            "created_at": self.created_at,
            "id": self.id,
            "pack_size": self.pack_size,
            "version": self.version,
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> RepoConfig:
        try:
            doc = canonical.decode(data)
        except InputError:
            raise RepositoryDamaged("config is not canonical JSON", object="config") from None
        version = doc.get("version") if isinstance(doc, dict) else None
        if type(version) is int and version != FORMAT_VERSION:
            raise RepositoryVersionError(
                f"the repository has format version {version}; this build reads "
                f"version {FORMAT_VERSION}",
                version=version,
            )
        try:
            return cls._parse(doc)
        except (InputError, KeyError, TypeError, ValueError):
            raise RepositoryDamaged("config does not have the fields of version "
                                    f"{FORMAT_VERSION}", object="config") from None

    @classmethod
    def _parse(cls, doc: Any) -> RepoConfig:
        if set(doc) != _FIELDS:
            raise ValueError("fields")
        chunker = doc["chunker"]
        if set(chunker) != {"avg", "max", "min", "seed"}:
            raise ValueError("chunker fields")
        seed = bytes.fromhex(chunker["seed"])
        repo_id = doc["id"]
        if len(seed) != 32 or len(bytes.fromhex(repo_id)) != 16 or repo_id != repo_id.lower():
            raise ValueError("seed or id")
        naming.parse_time(doc["created_at"])
        params = ChunkerParams(chunker["min"], chunker["avg"], chunker["max"])
        if type(doc["pack_size"]) is not int or doc["pack_size"] < 1024:
            raise ValueError("pack size")
        return cls(repo_id, doc["created_at"], params, seed, doc["pack_size"])
