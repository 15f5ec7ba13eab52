"""Sensitive fields encrypted at rest, with envelope encryption and keys outside the database.

The keyring lives in the key directory (never in the data directory):

* ``master.key``: the key-encryption key (KEK), 32 random bytes as hex, mode 0600;
* ``keyring.json``: data-encryption keys (DEKs) by version, each wrapped (AES-256-GCM) by the
  KEK, plus the wrapped blind-index key; the newest DEK encrypts new values.

A field value is stored as ``enc:v<version>:<base64url(nonce || ciphertext+tag)>``: AES-256-GCM
with a random 96-bit nonce and, as associated data, ``table/column/row key``, so a ciphertext
moved to another row or column does not decrypt. Row images in the journal carry the same
ciphertext, so journal payloads are encrypted too, and the state digest covers ciphertext.

Lookup by ID number uses a keyed **blind index**: HMAC-SHA256 of the number under the
blind-index key, truncated to 32 hex digits, stored beside the ciphertext.

Rotation (docs/access.md): ``rotate_data_key`` adds a DEK version used for new writes (old
values stay readable under their version); ``rewrap`` replaces the KEK and re-wraps every DEK
without touching the data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cutru.errors import ConfigError, IntegrityFailure

PREFIX = "enc:v"
MASTER = "master.key"
KEYRING = "keyring.json"
#: Person fields encrypted at rest: the sensitive class, and the ID number (found by blind index).
ENCRYPTED_PERSON_FIELDS = (
    "id_number", "ethnicity", "religion", "criminal_record", "violation_record",
    "preventive_measures", "expunged_convictions", "wanted_decisions",
)


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _wrap(kek: bytes, key: bytes, label: str) -> str:
    nonce = secrets.token_bytes(12)
    return (nonce + AESGCM(kek).encrypt(nonce, key, label.encode())).hex()


def _unwrap(kek: bytes, wrapped: str, label: str) -> bytes:
    raw = bytes.fromhex(wrapped)
    try:
        return AESGCM(kek).decrypt(raw[:12], raw[12:], label.encode())
    except InvalidTag:
        raise ConfigError("the master key does not open the keyring (wrong master.key?)",
                          field="key_dir", rule="keys.master_mismatch") from None


@dataclass
class Keyring:
    """Unwrapped keys in memory: DEKs by version, the current version, the blind-index key."""

    deks: dict[int, AESGCM]
    current: int
    bidx_key: bytes
    #: the current DEK's bytes, for :meth:`sealing_material` (empty: not available)
    current_dek: bytes = field(default=b"", repr=False)

    @staticmethod
    def exists(key_dir: Path) -> bool:
        return (key_dir / KEYRING).exists()

    @classmethod
    def missing(cls, key_dir: Path) -> Keyring:
        """A keyring that refuses every use, for an installation not yet initialised."""
        return _MissingKeyring(key_dir)

    @classmethod
    def open(cls, key_dir: Path, *, create: bool = False) -> Keyring:
        master, ring = key_dir / MASTER, key_dir / KEYRING
        if not master.exists() or not ring.exists():
            if not create:
                raise ConfigError(f"no data keys in {key_dir}: run `cutru init`",
                                  field="key_dir", rule="keys.present")
            _create(key_dir)
        data = json.loads(ring.read_text())
        kek = _find_kek(key_dir, data)
        raw = {int(v): _unwrap(kek, w, f"dek:{v}") for v, w in data["deks"].items()}
        current = max(raw)
        return cls({v: AESGCM(k) for v, k in raw.items()}, current,
                   _unwrap(kek, data["bidx"], "bidx"), raw[current])

    def sealing_material(self) -> tuple[int, bytes, bytes] | None:
        """What sealing new values takes (the current DEK's version and bytes, the
        blind-index key), for a helper process of this program (:func:`sealing_keyring`);
        None when this keyring cannot give it. The helper gets neither the older DEKs nor
        the master key, so it can seal but not open older values; the material travels
        over the pipe to the child process and is never written anywhere."""
        if not self.current_dek:
            return None
        return self.current, self.current_dek, self.bidx_key

    def encrypt(self, value: str | None, *, table: str, column: str, key: str) -> str | None:
        if value is None:
            return None
        nonce = secrets.token_bytes(12)
        ct = self.deks[self.current].encrypt(nonce, value.encode(), _ad(table, column, key))
        return f"{PREFIX}{self.current}:{base64.urlsafe_b64encode(nonce + ct).decode()}"

    def decrypt(self, value: str | None, *, table: str, column: str, key: str) -> str | None:
        if value is None or not value.startswith(PREFIX):
            return value
        version, _, body = value[len(PREFIX):].partition(":")
        aead = self.deks.get(int(version))
        if aead is None:
            raise ConfigError(f"data key version {version} is not in the keyring",
                              field="key_dir", rule="keys.version_missing")
        raw = base64.urlsafe_b64decode(body)
        try:
            return aead.decrypt(raw[:12], raw[12:], _ad(table, column, key)).decode()
        except InvalidTag:
            raise IntegrityFailure(f"{table}.{column} of {key} does not decrypt: altered or "
                                   "moved ciphertext", field=column, rule="crypto.tag") from None

    def blind_index(self, id_number: str) -> str:
        return hmac.new(self.bidx_key, id_number.encode(), hashlib.sha256).hexdigest()[:32]


class _MissingKeyring(Keyring):
    def __init__(self, key_dir: Path) -> None:
        super().__init__({}, 0, b"")
        self._dir = key_dir

    def _refuse(self) -> ConfigError:
        return ConfigError(f"no data keys in {self._dir}: run `cutru init`", field="key_dir",
                           rule="keys.present")

    def encrypt(self, value: str | None, *, table: str, column: str, key: str) -> str | None:
        raise self._refuse()

    def decrypt(self, value: str | None, *, table: str, column: str, key: str) -> str | None:
        raise self._refuse()

    def blind_index(self, id_number: str) -> str:
        raise self._refuse()


def sealing_keyring(material: tuple[int, bytes, bytes]) -> Keyring:
    """A keyring that seals as the one that gave ``material`` (:meth:`Keyring.sealing_material`)."""
    version, dek, bidx = material
    return Keyring({version: AESGCM(dek)}, version, bidx, dek)


def _ad(table: str, column: str, key: str) -> bytes:
    return f"{table}/{column}/{key}".encode()


def _create(key_dir: Path) -> None:
    kek = secrets.token_bytes(32)
    ring = {"deks": {"1": _wrap(kek, secrets.token_bytes(32), "dek:1")},
            "bidx": _wrap(kek, secrets.token_bytes(32), "bidx")}
    _write_secret(key_dir / MASTER, kek.hex().encode() + b"\n")
    _write_secret(key_dir / KEYRING, json.dumps(ring, indent=1).encode())


def _find_kek(key_dir: Path, data: dict[str, Any]) -> bytes:
    """The master key that opens this keyring: ``master.key``, or, after a rewrap that was
    interrupted, ``master.key.new`` / ``master.key.old`` (see :func:`rewrap`)."""
    for name in (MASTER, MASTER + ".new", MASTER + ".old"):
        path = key_dir / name
        if path.exists():
            kek = bytes.fromhex(path.read_text().strip())
            try:
                _unwrap(kek, data["bidx"], "bidx")
            except ConfigError:
                continue
            return kek
    raise ConfigError(f"no master key in {key_dir} opens the keyring", field="key_dir",
                      rule="keys.master_mismatch")


def rotate_data_key(key_dir: Path) -> int:
    """Add a new DEK version; new values use it, old ones stay readable. Returns the version."""
    data = json.loads((key_dir / KEYRING).read_text())
    kek = _find_kek(key_dir, data)
    version = max(int(v) for v in data["deks"]) + 1
    data["deks"][str(version)] = _wrap(kek, secrets.token_bytes(32), f"dek:{version}")
    _write_secret(key_dir / KEYRING, json.dumps(data, indent=1).encode())
    return version


def rewrap(key_dir: Path) -> None:
    """Replace the master key and re-wrap every DEK and the blind-index key under it."""
    data = json.loads((key_dir / KEYRING).read_text())
    old = _find_kek(key_dir, data)
    new = secrets.token_bytes(32)
    data["deks"] = {v: _wrap(new, _unwrap(old, w, f"dek:{v}"), f"dek:{v}")
                    for v, w in data["deks"].items()}
    data["bidx"] = _wrap(new, _unwrap(old, data["bidx"], "bidx"), "bidx")
    # Two files cannot be swapped atomically, so every step leaves a master key that opens
    # the keyring in place: new master beside the old, keyring swapped, then the masters.
    _write_secret(key_dir / (MASTER + ".new"), new.hex().encode() + b"\n")
    _write_secret(key_dir / KEYRING, json.dumps(data, indent=1).encode())
    os.replace(key_dir / MASTER, key_dir / (MASTER + ".old"))
    os.replace(key_dir / (MASTER + ".new"), key_dir / MASTER)
    (key_dir / (MASTER + ".old")).unlink()
