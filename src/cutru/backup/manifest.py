"""Signed manifests: the root of a snapshot, signed with Ed25519 (RFC 8032).

A manifest is canonical JSON with the fields ``body, created_at, key_id, kind, name,
repository, signature, version``; the signature covers
``b"cutru-backup-manifest-v1\\n" || canonical(manifest without "signature")``. Key pairs and
key ids are those of the journal's checkpoints (:mod:`cutru.journal.signing`), so one
verifier's key list serves both. docs/design.md, "Manifests", is the specification.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from cutru.backup import naming
from cutru.errors import ConfigError, InputError, ManifestInvalid, RepositoryDamaged
from cutru.journal import canonical
from cutru.journal.signing import key_id_of

MESSAGE_PREFIX = b"cutru-backup-manifest-v1\n"
VERSION = 1
_FIELDS = {"body", "created_at", "key_id", "kind", "name", "repository", "signature", "version"}
_KIND = re.compile(r"[a-z][a-z0-9-]{0,31}")
_HEX = re.compile(r"[0-9a-f]*")


class ManifestSigner(Protocol):
    """What :meth:`Repository.save_manifest` needs of a signing key."""

    @property
    def key_id(self) -> str: ...

    def sign_message(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        ...


class Ed25519Signer:
    """An Ed25519 private key that signs manifests; its key id is the journal's."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.public_key_bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id_of(self.public_key_bytes)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_pem(cls, path: Path) -> Ed25519Signer:
        """The PEM (PKCS #8, unencrypted) key file that the journal's signing key uses."""
        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigError(f"cannot load signing key {path}: {exc}", field="key_dir",
                              rule="keys.unreadable") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"signing key {path} is not Ed25519", field="key_dir",
                              rule="keys.not_ed25519")
        return cls(key)

    def sign_message(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"<Ed25519Signer {self.key_id}>"


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    kind: str
    created_at: str
    repository: str
    body: dict[str, Any]
    key_id: str
    signature: str


def sign(name: str, kind: str, repository: str, body: dict[str, Any],
         signer: ManifestSigner) -> bytes:
    """The canonical bytes of a signed manifest named ``name`` (which fixes its time)."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise InputError(f"manifest kind {kind!r} must be lower-case letters, digits and -",
                         field="kind", rule="backup.manifest_kind")
    if not isinstance(body, dict):
        raise InputError("a manifest body is an object", field="body", rule="backup.manifest")
    created = naming.parse_manifest_name(name).created_us
    doc: dict[str, Any] = {
        "body": body,
        "created_at": naming.format_time(created),
        "key_id": signer.key_id,
        "kind": kind,
        "name": name,
        "repository": repository,
        "version": VERSION,
    }
    doc["signature"] = signer.sign_message(MESSAGE_PREFIX + canonical.encode(doc)).hex()
    return canonical.encode(doc)


def verify(data: bytes, name: str, repository: str, public_keys: Mapping[str, bytes]
           ) -> Manifest:
    """Check a stored manifest's format, name, repository and signature."""
    where = f"snapshots/{name}"
    manifest = _parse(data, where)
    if manifest.name != name or naming.parse_time(manifest.created_at) != (
        naming.parse_manifest_name(name).created_us
    ):
        raise RepositoryDamaged(f"{where} is stored under another manifest's name", object=where)
    if manifest.repository != repository:
        raise RepositoryDamaged(f"{where} belongs to repository {manifest.repository}",
                                object=where)
    raw = public_keys.get(manifest.key_id)
    if raw is None:
        known = ", ".join(sorted(public_keys)) or "none"
        raise ManifestInvalid(f"{where} is signed by unknown key {manifest.key_id} "
                              f"(known keys: {known})", object=where, key_id=manifest.key_id)
    unsigned = {k: v for k, v in _fields(manifest).items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(
            bytes.fromhex(manifest.signature), MESSAGE_PREFIX + canonical.encode(unsigned)
        )
    except (InvalidSignature, ValueError):
        raise ManifestInvalid(f"{where}: the signature by key {manifest.key_id} does not "
                              "verify", object=where, key_id=manifest.key_id) from None
    return manifest


def _fields(m: Manifest) -> dict[str, Any]:
    return {"body": m.body, "created_at": m.created_at, "key_id": m.key_id, "kind": m.kind,
            "name": m.name, "repository": m.repository, "signature": m.signature,
            "version": VERSION}


def _parse(data: bytes, where: str) -> Manifest:
    try:
        doc = canonical.decode(data)
        if not isinstance(doc, dict) or set(doc) != _FIELDS or doc["version"] != VERSION:
            raise InputError("fields", field="manifest", rule="backup.manifest")
        strings = [doc[k] for k in ("created_at", "key_id", "kind", "name", "repository")]
        if not all(isinstance(s, str) for s in strings) or not isinstance(doc["body"], dict):
            raise InputError("types", field="manifest", rule="backup.manifest")
        signature = doc["signature"]
        if not isinstance(signature, str) or len(signature) != 128 or not _HEX.fullmatch(
            signature
        ):
            raise InputError("signature", field="signature", rule="backup.manifest")
        naming.parse_time(doc["created_at"])
    except InputError:
        raise RepositoryDamaged(f"{where} is not a well-formed version {VERSION} manifest",
                                object=where) from None
    return Manifest(doc["name"], doc["kind"], doc["created_at"], doc["repository"],
                    doc["body"], doc["key_id"], signature)
