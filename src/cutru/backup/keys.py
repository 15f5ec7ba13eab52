"""Key objects: the master key wrapped by a key derived from a passphrase or a key file.

A key object is canonical JSON, readable before any key is known::

    {"created_at": ..., "host": ..., "kdf": {...}, "version": 1, "wrapped": "<hex>"}

``wrapped`` seals ``0x00 || master`` under the key-encryption key with associated data
``b"cutru-backup-v1\\nkeys/<name>\\n" || canonical(the other four fields)``, so that no
field can be altered unnoticed. A passphrase gives that key through Argon2id (RFC 9106),
after Unicode NFC normalisation; a key file (32 random bytes as 64 hex digits) through
HKDF-SHA-256. docs/design.md, "Key objects", is the specification.
"""

from __future__ import annotations

import os
import socket
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from cutru.backup import naming
from cutru.backup.crypto import KEY_SIZE, associated_data, hkdf, seal_with, unseal_with
from cutru.backup.targets import Kind
from cutru.errors import (
    ConfigError,
    InputError,
    RepositoryDamaged,
    RepositoryVersionError,
)
from cutru.journal import canonical

KEY_VERSION = 1
KEY_FILE_INFO = b"cutru-backup-v1 key-file"
_MAX_MEMORY_KIB = 4 * 1024 * 1024
_FIELDS = {"created_at", "host", "kdf", "version", "wrapped"}


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """Argon2id cost; the defaults are RFC 9106's second recommended option."""

    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4

    def __post_init__(self) -> None:
        ok = (
            all(type(v) is int for v in (self.memory_kib, self.iterations, self.lanes))
            and 1 <= self.lanes <= 16
            and 1 <= self.iterations <= 64
            and 8 * self.lanes <= self.memory_kib <= _MAX_MEMORY_KIB
        )
        if not ok:
            raise InputError(
                f"Argon2id parameters {self} are outside 1 <= lanes <= 16, "
                "1 <= iterations <= 64, 8*lanes <= memory_kib <= 4 GiB",
                field="kdf",
                rule="backup.kdf_params",
            )


@dataclass(frozen=True, slots=True)
class Passphrase:
    text: str = field(repr=False)

    kind = "passphrase"


@dataclass(frozen=True, slots=True)
class KeyFile:
    """The 32-byte secret of a key file; see :func:`generate_key_file`."""

    secret: bytes = field(repr=False)

    kind = "keyfile"

    @classmethod
    def load(cls, path: Path) -> KeyFile:
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"repository key file {path} cannot be read ({exc})",
                              field="key_file", rule="backup.key_file") from None
        raw = text.strip()
        if len(raw) != 2 * KEY_SIZE or any(c not in "0123456789abcdef" for c in raw):
            raise ConfigError(f"repository key file {path} is not 64 lower-case hex digits",
                              field="key_file", rule="backup.key_file")
        return cls(bytes.fromhex(raw))


Credential = Passphrase | KeyFile


def generate_key_file(path: Path) -> KeyFile:
    """Write a new key file (mode 0600); refuses to replace an existing file."""
    secret = os.urandom(KEY_SIZE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create repository key file {path}: {exc.strerror}",
                          field="key_file", rule="backup.key_file") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secret.hex() + "\n")
        out.flush()
        os.fsync(out.fileno())
    return KeyFile(secret)


def make_key_object(
    name: str, master: bytes, credential: Credential, params: Argon2Params, created_us: int
) -> bytes:
    """The bytes of a new key object named ``name`` that wraps ``master``."""
    if isinstance(credential, Passphrase):
        kdf: dict[str, Any] = {
            "name": "argon2id",
            "memory_kib": params.memory_kib,
            "iterations": params.iterations,
            "lanes": params.lanes,
            "salt": os.urandom(16).hex(),
        }
    else:
        kdf = {"name": "hkdf-sha256", "salt": os.urandom(32).hex()}
    doc: dict[str, Any] = {
        "created_at": naming.format_time(created_us),
        "host": socket.gethostname(),
        "kdf": kdf,
        "version": KEY_VERSION,
    }
    wrapped = seal_with(AESGCM(_derive(kdf, credential)), b"\x00" + master, _ad(name, doc))
    return canonical.encode({**doc, "wrapped": wrapped.hex()})


def credential_kind(name: str, data: bytes) -> str:
    """``passphrase`` or ``keyfile``: what opens the key object (damage raises)."""
    kdf = _parse(name, data)["kdf"]
    return "passphrase" if kdf["name"] == "argon2id" else "keyfile"


def open_key_object(name: str, data: bytes, credential: Credential) -> bytes | None:
    """The master key if ``credential`` opens this key object, else ``None``.

    A wrong credential and a damaged ``wrapped`` field cannot be told apart (both fail
    authentication), so both give ``None``; other damage raises :class:`RepositoryDamaged`.
    """
    doc = _parse(name, data)
    kdf = doc["kdf"]
    if (kdf["name"] == "argon2id") != isinstance(credential, Passphrase):
        return None
    kek = _derive(kdf, credential)
    try:
        plain = unseal_with(AESGCM(kek), bytes.fromhex(doc["wrapped"]), _ad(name, doc),
                            f"keys/{name}")
    except RepositoryDamaged:
        return None
    if len(plain) != 1 + KEY_SIZE or plain[0] != 0:
        raise RepositoryDamaged(f"keys/{name} wraps a malformed master key", object=name)
    return plain[1:]


def _ad(name: str, doc: dict[str, Any]) -> bytes:
    """The name and every other field are authenticated with the wrapped key."""
    fields = {k: v for k, v in doc.items() if k != "wrapped"}
    return associated_data(Kind.KEYS, name) + b"\n" + canonical.encode(fields)


def _derive(kdf: dict[str, Any], credential: Credential) -> bytes:
    salt = bytes.fromhex(kdf["salt"])
    if isinstance(credential, Passphrase):
        params = Argon2Params(kdf["memory_kib"], kdf["iterations"], kdf["lanes"])
        secret = unicodedata.normalize("NFC", credential.text).encode("utf-8")
        return Argon2id(salt=salt, length=KEY_SIZE, iterations=params.iterations,
                        lanes=params.lanes, memory_cost=params.memory_kib).derive(secret)
    return hkdf(credential.secret, KEY_FILE_INFO, salt=salt)


def _parse(name: str, data: bytes) -> dict[str, Any]:
    """The fields of a key object, checked for shape (not for the credential)."""
    where = f"keys/{name}"
    try:
        doc = canonical.decode(data)
    except InputError:
        raise RepositoryDamaged(f"{where} is not canonical JSON", object=where) from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if type(version) is int and version > KEY_VERSION:
        raise RepositoryVersionError(
            f"{where} has key format {version}; this build reads {KEY_VERSION}", object=where
        )
    if not isinstance(doc, dict) or set(doc) != _FIELDS or doc["version"] != KEY_VERSION:
        raise RepositoryDamaged(f"{where} does not have the fields of a key object",
                                object=where)
    if not _kdf_ok(doc["kdf"]) or not _is_hex(doc["wrapped"]):
        raise RepositoryDamaged(f"{where} has a malformed kdf or wrapped key", object=where)
    return doc


def _kdf_ok(kdf: object) -> bool:
    if not isinstance(kdf, dict) or not _is_hex(kdf.get("salt")):
        return False
    if kdf.get("name") == "hkdf-sha256":
        return set(kdf) == {"name", "salt"} and len(kdf["salt"]) == 64
    if kdf.get("name") != "argon2id":
        return False
    if set(kdf) != {"name", "salt", "memory_kib", "iterations", "lanes"}:
        return False
    try:
        Argon2Params(kdf["memory_kib"], kdf["iterations"], kdf["lanes"])
    except InputError:
        return False  # refuse a planted key object that would exhaust the host
    return len(kdf["salt"]) == 32


def _is_hex(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) % 2 == 0
        and all(c in "0123456789abcdef" for c in value)
    )
