"""Signed checkpoints: the message, signing and verification, and keys on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from cutru.errors import CheckpointInvalid, ConfigError, InputError
from cutru.journal import canonical
from cutru.journal.signing import (
    Checkpoint,
    SignedCheckpoint,
    SigningKey,
    generate_signing_key,
    key_id_of,
    load_signing_key,
    load_verify_key,
    public_key_path,
    verify_checkpoint,
)

# RFC 8032 §7.1, TEST 1: a published Ed25519 key pair.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")

KEY = SigningKey(Ed25519PrivateKey.from_private_bytes(RFC8032_SEED))
OTHER = SigningKey.generate()
KEYS = {KEY.key_id: KEY.public_key_bytes, OTHER.key_id: OTHER.public_key_bytes}

hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
timestamps = st.datetimes(datetime(2000, 1, 1)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def checkpoint(key: SigningKey = KEY, **changes: Any) -> Checkpoint:
    cp = Checkpoint(42, "a" * 64, "b" * 64, "2026-11-27T09:00:00.123456Z", key.key_id)
    return dataclasses.replace(cp, **changes)


def test_key_id_is_a_prefix_of_the_sha256_of_the_raw_public_key() -> None:
    assert KEY.public_key_bytes == RFC8032_PUBLIC
    assert (
        KEY.key_id == hashlib.sha256(RFC8032_PUBLIC).hexdigest()[:16] == key_id_of(RFC8032_PUBLIC)
    )


def test_the_signed_message_byte_for_byte() -> None:
    assert checkpoint().message() == (
        b"cutru-checkpoint-v1\n"
        b'{"chain_head":"' + b"a" * 64 + b'","created_at":"2026-11-27T09:00:00.123456Z",'
        b'"key_id":"' + KEY.key_id.encode() + b'","seq":42,"state_digest":"' + b"b" * 64 + b'"}'
    )


def test_signature_is_ed25519_over_the_message() -> None:
    signed = KEY.sign(checkpoint())
    public = Ed25519PrivateKey.from_private_bytes(RFC8032_SEED).public_key()
    public.verify(bytes.fromhex(signed.signature), checkpoint().message())  # raises if not
    assert len(signed.signature) == 128


@given(st.integers(1, 2**63 - 1), hex64, hex64, timestamps)
def test_sign_then_verify(seq: int, head: str, digest: str, created_at: str) -> None:
    signed = KEY.sign(Checkpoint(seq, head, digest, created_at, KEY.key_id))
    verify_checkpoint(signed, KEYS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 43),
        ("chain_head", "c" * 64),
        ("state_digest", "0" * 64),
        ("created_at", "2026-11-27T09:00:00.123457Z"),
    ],
)
def test_a_tampered_field_is_detected(field: str, value: Any) -> None:
    signed = KEY.sign(checkpoint())
    forged = SignedCheckpoint(
        dataclasses.replace(signed.checkpoint, **{field: value}), signed.signature
    )
    with pytest.raises(CheckpointInvalid, match="does not verify"):
        verify_checkpoint(forged, KEYS)


@given(st.integers(0, 511))
def test_a_flipped_signature_bit_is_detected(bit: int) -> None:
    signed = KEY.sign(checkpoint())
    raw = bytearray(bytes.fromhex(signed.signature))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CheckpointInvalid):
        verify_checkpoint(SignedCheckpoint(signed.checkpoint, raw.hex()), KEYS)


def test_a_signature_by_another_key_is_detected() -> None:
    # Claims to be OTHER's checkpoint but was signed with KEY.
    cp = checkpoint(OTHER)
    forged = SignedCheckpoint(cp, KEY._private.sign(cp.message()).hex())
    with pytest.raises(CheckpointInvalid, match=f"signature by key {OTHER.key_id} does not"):
        verify_checkpoint(forged, KEYS)


def test_an_unknown_key_is_detected() -> None:
    signed = KEY.sign(checkpoint())
    with pytest.raises(CheckpointInvalid, match=f"unknown key {KEY.key_id}"):
        verify_checkpoint(signed, {OTHER.key_id: OTHER.public_key_bytes})
    with pytest.raises(CheckpointInvalid, match="known keys: none"):
        verify_checkpoint(signed, {})


def test_a_mislabelled_public_key_is_a_configuration_error() -> None:
    signed = KEY.sign(checkpoint())
    with pytest.raises(ConfigError):
        verify_checkpoint(signed, {KEY.key_id: OTHER.public_key_bytes})


def test_sign_refuses_a_checkpoint_naming_another_key() -> None:
    with pytest.raises(InputError) as caught:
        KEY.sign(checkpoint(OTHER))
    assert caught.value.rule == "checkpoint.key_id"


MALFORMED = [
    ("seq", 0),
    ("seq", True),
    ("seq", "42"),
    ("chain_head", "A" * 64),
    ("chain_head", "a" * 63),
    ("state_digest", None),
    ("created_at", "2026-11-27T09:00:00Z"),
    ("created_at", "2026-11-27T09:00:00.123456+00:00"),
    ("created_at", "2026-02-30T09:00:00.000000Z"),
    ("key_id", "x" * 16),
]


@pytest.mark.parametrize(("field", "value"), MALFORMED)
def test_malformed_checkpoints_are_refused(field: str, value: Any) -> None:
    cp = checkpoint(**{field: value})
    with pytest.raises(InputError) as caught:
        KEY.sign(cp)
    assert (caught.value.field, caught.value.rule) == (field, "checkpoint.format")
    signature = KEY.sign(checkpoint()).signature
    with pytest.raises(CheckpointInvalid, match=f"malformed: {field}"):
        verify_checkpoint(SignedCheckpoint(cp, signature), KEYS)


@pytest.mark.parametrize("signature", ["", "00" * 63, "AB" * 64, "zz" * 64])
def test_a_malformed_signature_is_refused(signature: str) -> None:
    with pytest.raises(CheckpointInvalid, match="signature must be"):
        verify_checkpoint(SignedCheckpoint(checkpoint(), signature), KEYS)


def test_stored_form_round_trips_through_json() -> None:
    signed = KEY.sign(checkpoint())
    stored = json.loads(canonical.encode(signed.to_dict()))
    assert set(stored) == {"seq", "chain_head", "state_digest", "created_at", "key_id", "signature"}
    again = SignedCheckpoint.from_dict(stored)
    assert again == signed
    verify_checkpoint(again, KEYS)


@pytest.mark.parametrize("change", ["drop", "add"])
def test_stored_form_needs_exactly_its_fields(change: str) -> None:
    stored = KEY.sign(checkpoint()).to_dict()
    if change == "drop":
        del stored["key_id"]
    else:
        stored["note"] = "x"
    with pytest.raises(CheckpointInvalid):
        SignedCheckpoint.from_dict(stored)


# --- keys on disk ---------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000, 0o077, 0o277], ids=["022", "000", "077", "277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_generate_writes_both_halves_with_tight_permissions(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "outer" / "keys" / "checkpoint.key"
    key_id = generate_signing_key(path)
    pub = public_key_path(path)
    assert pub == tmp_path / "outer" / "keys" / "checkpoint.key.pub"
    assert mode(path) == 0o600
    assert mode(path.parent) == mode(path.parent.parent) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    loaded = load_signing_key(path)
    assert loaded.key_id == key_id
    assert pub.read_text() == loaded.public_key_bytes.hex() + "\n"
    assert load_verify_key(pub) == (key_id, loaded.public_key_bytes)
    signed = loaded.sign(checkpoint(loaded))
    verify_checkpoint(signed, dict([load_verify_key(pub)]))


def test_generate_leaves_existing_directories_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    generate_signing_key(tmp_path / "checkpoint.key")
    assert mode(tmp_path) == 0o755


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.key"
    generate_signing_key(path)
    before = path.read_bytes(), public_key_path(path).read_bytes()
    with pytest.raises(ConfigError) as caught:
        generate_signing_key(path)
    assert caught.value.details["rule"] == "keys.exists"
    assert (path.read_bytes(), public_key_path(path).read_bytes()) == before


def test_generate_refuses_when_only_the_public_half_exists(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.key"
    public_key_path(path).write_text("stale\n")
    with pytest.raises(ConfigError):
        generate_signing_key(path)
    assert not path.exists()


def test_load_reports_a_missing_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_signing_key(tmp_path / "nope.key")
    assert caught.value.details["rule"] == "keys.missing"


def test_load_reports_an_unreadable_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_signing_key(tmp_path)  # a directory


def pem(key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey, password: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@pytest.mark.parametrize(
    "content",
    [
        b"not a key",
        b"",
        pem(ec.generate_private_key(ec.SECP256R1()), None),
        pem(Ed25519PrivateKey.generate(), b"secret"),
    ],
    ids=["garbage", "empty", "ecdsa", "encrypted"],
)
def test_load_refuses_what_is_not_an_ed25519_key(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "checkpoint.key"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"Ed25519|PEM") as caught:
        load_signing_key(path)
    assert caught.value.details["rule"] == "keys.not_ed25519"


@pytest.mark.parametrize("content", ["", "ab" * 31, "AB" * 32, "zz" * 32, "ab" * 33])
def test_load_verify_key_refuses_malformed_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "k.pub"
    path.write_text(content + "\n")
    with pytest.raises(ConfigError) as caught:
        load_verify_key(path)
    assert caught.value.details["rule"] == "keys.public_key_format"


def test_load_verify_key_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_verify_key(tmp_path / "k.pub")


def test_the_design_documents_example_checkpoint() -> None:
    cp = Checkpoint(
        1,
        "5d13a0147ffb8c45c963330de07a2b914dc9f58634c389669ccdcd3abc8cf5cc",
        "d1119dcfe0a40641240a093857ed15c3e9e6f6730438d6795d794fd7c9d9ac02",
        "2026-01-05T08:30:00.000000Z",
        "21fe31dfa154a261",
    )
    assert KEY.sign(cp).signature == (
        "d2b5255dd3451609173192832d104f9167bf52452cf8b511cb999cf32689e0c2"
        "657451ad23232d2f5e612fc69ee36cb4971aa7c48aa3619bc6c4cc50f655210b"
    )
