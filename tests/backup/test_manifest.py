"""Signed manifests: a round trip, and every way a manifest can be wrong."""

from __future__ import annotations

import pytest

from cutru.backup import Ed25519Signer, Passphrase, Repository
from cutru.backup import manifest as manifests
from cutru.backup.crypto import associated_data
from cutru.backup.targets import Handle, Kind, MemoryTarget
from cutru.errors import InputError, ManifestInvalid, RepositoryDamaged
from cutru.journal import canonical
from cutru.journal.signing import SigningKey

from .conftest import CHEAP_KDF

SIGNER = Ed25519Signer.generate()
TRUSTED = {SIGNER.key_id: SIGNER.public_key_bytes}
BODY = {"journal_seq": 42, "roots": ["ab" * 32], "state_digest": "cd" * 32}


def repo() -> Repository:
    return Repository.init(MemoryTarget(), Passphrase("p"), kdf=CHEAP_KDF)


def resave(r: Repository, name: str, doc: dict[str, object]) -> None:
    """Store ``doc`` under ``name``, sealed correctly: an attacker holding the repository key."""
    sealed = r.keys.seal(canonical.encode(doc), associated_data(Kind.SNAPSHOTS, name),
                         compress=True)
    r.target.replace(Handle(Kind.SNAPSHOTS, name), sealed)  # type: ignore[attr-defined]


def test_round_trip() -> None:
    r = repo()
    name = r.save_manifest(BODY, SIGNER)
    loaded = r.load_manifest(name, TRUSTED)
    assert loaded.body == BODY and loaded.kind == "snapshot" and loaded.name == name
    assert loaded.repository == r.config.id and loaded.key_id == SIGNER.key_id
    assert r.list_manifests() == [name]


def test_key_ids_are_the_journals() -> None:
    journal_key = SigningKey.generate()
    signer = Ed25519Signer.generate()
    assert len(signer.key_id) == len(journal_key.key_id) == 16


def test_unknown_signer_is_refused() -> None:
    r = repo()
    name = r.save_manifest(BODY, SIGNER)
    with pytest.raises(ManifestInvalid, match="unknown key"):
        r.load_manifest(name, {})


def test_a_changed_body_fails_the_signature() -> None:
    r = repo()
    name = r.save_manifest(BODY, SIGNER)
    doc = canonical.decode(r.keys.unseal(r.target.load(Handle(Kind.SNAPSHOTS, name)),
                                         associated_data(Kind.SNAPSHOTS, name), what=name))
    doc["body"]["journal_seq"] = 41
    resave(r, name, doc)
    with pytest.raises(ManifestInvalid, match="does not verify"):
        r.load_manifest(name, TRUSTED)


def test_a_manifest_from_another_repository_is_refused() -> None:
    a, b = repo(), repo()
    name = a.save_manifest(BODY, SIGNER)
    doc = canonical.decode(a.keys.unseal(a.target.load(Handle(Kind.SNAPSHOTS, name)),
                                         associated_data(Kind.SNAPSHOTS, name), what=name))
    resave(b, name, doc)
    with pytest.raises(RepositoryDamaged, match="belongs to repository"):
        b.load_manifest(name, TRUSTED)


def test_a_manifest_under_another_name_is_refused() -> None:
    r = repo()
    first = r.save_manifest(BODY, SIGNER)
    second = r.save_manifest({"other": 1}, SIGNER)
    doc = canonical.decode(r.keys.unseal(r.target.load(Handle(Kind.SNAPSHOTS, first)),
                                         associated_data(Kind.SNAPSHOTS, first), what=first))
    resave(r, second, doc)  # an old, validly signed manifest replayed as a newer one
    with pytest.raises(RepositoryDamaged, match="another manifest's name"):
        r.load_manifest(second, TRUSTED)


def test_bad_kinds_and_bodies_are_refused() -> None:
    r = repo()
    with pytest.raises(InputError):
        r.save_manifest(BODY, SIGNER, kind="Snap Shot")
    with pytest.raises(InputError):
        r.save_manifest({"x": 1.5}, SIGNER)  # not canonical JSON


def test_save_manifest_flushes_first() -> None:
    r = repo()
    from cutru.backup import BlobType

    blob = r.save_blob(BlobType.DATA, b"row")
    r.save_manifest({"root": blob.hex()}, SIGNER)
    reopened = Repository.open(r.target, Passphrase("p"))
    assert reopened.load_blob(blob) == b"row"


def test_signed_message_is_domain_separated() -> None:
    data = manifests.sign("0" * 16 + "-" + "0" * 16, "snapshot", "ab" * 16, {}, SIGNER)
    doc = canonical.decode(data)
    sig = bytes.fromhex(doc.pop("signature"))
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(SIGNER.public_key_bytes).verify(
        sig, b"cutru-backup-manifest-v1\n" + canonical.encode(doc)
    )
