"""Signed checkpoints: an Ed25519 signature over the journal's head at some sequence number.

A checkpoint binds a sequence number to the hash of that entry (which commits to every entry
before it through the chain) and to the state digest of the projection after it. Kept outside
the database, the newest signed checkpoint lets a verifier detect a journal cut back to a
valid prefix, which the chain alone cannot show.

The signed message is ``b"cutru-checkpoint-v1\\n" + canonical.encode(asdict(checkpoint))``.
A key is named by its *key id*: the first 16 hex digits of SHA-256 of the raw 32-byte public
key. On disk the private key is PEM (PKCS #8, unencrypted, mode 0600) and the public key lies
next to it as ``<name>.pub``: one line of 64 hex digits.

>>> key = SigningKey.generate()
>>> cp = Checkpoint(1, "ab" * 32, "cd" * 32, "2026-01-02T03:04:05.000006Z", key.key_id)
>>> verify_checkpoint(key.sign(cp), {key.key_id: key.public_key_bytes})
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from cutru.errors import CheckpointInvalid, ConfigError, InputError
from cutru.journal import canonical

MESSAGE_PREFIX = b"cutru-checkpoint-v1\n"
PUBLIC_KEY_SUFFIX = ".pub"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_HEX_FIELDS = (("chain_head", 64), ("state_digest", 64), ("key_id", 16))


def _is_hex(value: object, digits: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) == digits
        and value.isascii()
        and all(c in "0123456789abcdef" for c in value)
    )


@dataclass(frozen=True)
class Checkpoint:
    """The journal's head at ``seq``, as the signer saw it.

    The constructor does not validate, so that a damaged stored checkpoint can still be
    loaded and then reported as invalid by :func:`verify_checkpoint`.
    """

    seq: int
    chain_head: str  # hex SHA-256: the hash of entry ``seq``
    state_digest: str  # hex: the LtHash state digest after entry ``seq``
    created_at: str  # UTC, "YYYY-MM-DDTHH:MM:SS.ffffffZ"
    key_id: str  # 16 hex digits naming the signing key

    def message(self) -> bytes:
        """The bytes the signature covers (call only when :meth:`problems` is empty)."""
        return MESSAGE_PREFIX + canonical.encode(asdict(self))

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for each malformed field; empty when all are well formed."""
        found = []
        if type(self.seq) is not int or self.seq < 1:
            found.append(("seq", f"must be an integer >= 1, got {self.seq!r}"))
        for name, digits in _HEX_FIELDS:
            if not _is_hex(getattr(self, name), digits):
                found.append((name, f"must be {digits} lower-case hex digits"))
        if not _is_timestamp(self.created_at):
            found.append(("created_at", "must be UTC time as YYYY-MM-DDTHH:MM:SS.ffffffZ"))
        return found


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    signature: str  # hex: the 64-byte Ed25519 signature of checkpoint.message()

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's fields plus ``signature``: the form to store as JSON."""
        return {**asdict(self.checkpoint), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedCheckpoint:
        """Inverse of :meth:`to_dict`; :class:`CheckpointInvalid` if a field is missing or extra."""
        names = [f.name for f in fields(Checkpoint)]
        if set(data) != {*names, "signature"}:
            raise CheckpointInvalid(
                f"a stored checkpoint has the fields {sorted(data)}, "
                f"not {sorted({*names, 'signature'})}"
            )
        return cls(Checkpoint(**{name: data[name] for name in names}), data["signature"])


def key_id_of(public_key: bytes) -> str:
    """The key id: the first 16 hex digits of SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


class SigningKey:
    """An Ed25519 private key that signs checkpoints."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.public_key_bytes: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id: str = key_id_of(self.public_key_bytes)

    @classmethod
    def generate(cls) -> SigningKey:
        """A new key held in memory only (for tests; see :func:`generate_signing_key`)."""
        return cls(Ed25519PrivateKey.generate())

    def sign_message(self, message: bytes) -> str:
        """Hex Ed25519 signature of ``message``. Every message cutru signs begins with its
        own ``cutru-...-v1\n`` prefix, so one key may sign several kinds without any passing
        for another (checkpoints, audit tree heads, backup manifests)."""
        return self._private.sign(message).hex()

    def sign(self, checkpoint: Checkpoint) -> SignedCheckpoint:
        """Sign ``checkpoint``, whose ``key_id`` must be this key's."""
        if problems := checkpoint.problems():
            raise InputError(
                f"malformed checkpoint: {_describe(problems)}",
                field=problems[0][0],
                rule="checkpoint.format",
            )
        if checkpoint.key_id != self.key_id:
            raise InputError(
                f"checkpoint names key {checkpoint.key_id}, but this key is {self.key_id}",
                field="key_id",
                rule="checkpoint.key_id",
            )
        return SignedCheckpoint(checkpoint, self.sign_message(checkpoint.message()))

    def __repr__(self) -> str:
        return f"<SigningKey {self.key_id}>"


def verify_checkpoint(signed: SignedCheckpoint, public_keys: Mapping[str, bytes]) -> None:
    """Return if ``signed`` is well formed and signed by one of ``public_keys`` (key id → raw
    public key), else raise :class:`CheckpointInvalid` saying why."""
    cp = signed.checkpoint
    where = f"checkpoint at seq {cp.seq!r}"
    if problems := cp.problems():
        raise CheckpointInvalid(f"{where} is malformed: {_describe(problems)}")
    raw = public_keys.get(cp.key_id)
    if raw is None:
        known = ", ".join(sorted(public_keys)) or "none"
        raise CheckpointInvalid(
            f"{where} is signed by unknown key {cp.key_id} (known keys: {known})",
            key_id=cp.key_id,
        )
    if key_id_of(raw) != cp.key_id:
        raise ConfigError(
            f"the public key listed as {cp.key_id} has key id {key_id_of(raw)}",
            field="key_dir",
            rule="keys.key_id_mismatch",
        )
    if not _is_hex(signed.signature, 128):
        raise CheckpointInvalid(f"{where}: signature must be 128 lower-case hex digits")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ConfigError(
            f"the public key {cp.key_id} is not 32 bytes",
            field="key_dir",
            rule="keys.public_key_format",
        ) from None
    try:
        public_key.verify(bytes.fromhex(signed.signature), cp.message())
    except InvalidSignature:
        raise CheckpointInvalid(
            f"{where}: the signature by key {cp.key_id} does not verify; "
            "the checkpoint was altered or not signed by that key",
            key_id=cp.key_id,
        ) from None


# --- keys on disk -------------------------------------------------------------------------


def public_key_path(private_path: Path) -> Path:
    """Where the public key of ``private_path`` lives: the same name plus ``.pub``."""
    return private_path.with_name(private_path.name + PUBLIC_KEY_SUFFIX)


def generate_signing_key(path: Path) -> str:
    """Create a key: the private key at ``path`` (mode 0600; missing parent directories are
    made with mode 0700) and its public key at :func:`public_key_path`. Returns the key id.

    Refuses (:class:`ConfigError`) to replace either file if it exists: a lost signing key
    cannot be recovered, and a replaced one would orphan the checkpoints it signed.
    """
    pub_path = public_key_path(path)
    for target in (path, pub_path):
        if target.exists() or target.is_symlink():
            raise ConfigError(
                f"{target} already exists; refusing to overwrite a key",
                field="key_dir",
                rule="keys.exists",
            )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signing_key = SigningKey(key)
    _make_private_dirs(path.parent)
    _write_new(path, pem, 0o600)
    try:
        _write_new(pub_path, (signing_key.public_key_bytes.hex() + "\n").encode(), 0o644)
    except ConfigError:
        path.unlink()  # no private key without its public half
        raise
    _fsync_dir(path.parent)
    return signing_key.key_id


def load_signing_key(path: Path) -> SigningKey:
    """The Ed25519 private key in the PEM file at ``path``, or :class:`ConfigError`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _key_error(path, "does not exist", "keys.missing") from None
    except OSError as exc:
        raise _key_error(path, f"cannot be read ({exc.strerror})", "keys.unreadable") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise _key_error(
            path, "is not an unencrypted PEM private key", "keys.not_ed25519"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise _key_error(path, f"holds a {type(key).__name__}, not Ed25519", "keys.not_ed25519")
    return SigningKey(key)


def load_verify_key(path: Path) -> tuple[str, bytes]:
    """(key id, raw 32-byte public key) from a ``.pub`` file, or :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise _key_error(path, "does not exist", "keys.missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _key_error(path, f"cannot be read ({exc})", "keys.unreadable") from None
    if not _is_hex(text, 64):
        raise _key_error(path, "is not 64 lower-case hex digits", "keys.public_key_format")
    raw = bytes.fromhex(text)
    return key_id_of(raw), raw


def _describe(problems: list[tuple[str, str]]) -> str:
    return "; ".join(f"{name} {problem}" for name, problem in problems)


def _key_error(path: Path, problem: str, rule: str) -> ConfigError:
    return ConfigError(f"key file {path} {problem}", field="key_dir", rule=rule)


def _is_timestamp(value: object) -> bool:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        return False
    return True


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents with mode 0700; leave existing ones alone."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
            os.chmod(created, 0o700)  # mkdir's mode passes through the umask
        except FileExistsError:
            continue
        except OSError as exc:
            raise _key_error(created, f"cannot be created ({exc.strerror})", "keys.write") from None


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a file that must not exist yet (O_EXCL: no race, no overwrite), then fsync it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise _key_error(
            path, "already exists; refusing to overwrite a key", "keys.exists"
        ) from None
    except OSError as exc:
        raise _key_error(path, f"cannot be created ({exc.strerror})", "keys.write") from None
    try:
        os.fchmod(fd, mode)  # exactly this mode, whatever the umask
        with os.fdopen(fd, "wb", closefd=False) as out:
            out.write(data)
        os.fsync(fd)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise _key_error(path, f"cannot be written ({exc.strerror})", "keys.write") from None
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make the new directory entries durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _key_error(directory, f"cannot be synced ({exc.strerror})", "keys.write") from None
