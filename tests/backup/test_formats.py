"""Byte formats: the envelope, pack headers and indexes, checked against docs/design.md."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from cutru.backup.chunker import Chunker, ChunkerParams, gear_key
from cutru.backup.crypto import (
    CODEC_NONE,
    CODEC_ZSTD,
    OVERHEAD,
    RepoKeys,
    associated_data,
    hkdf,
)
from cutru.backup.index import IndexFile, decode_index, encode_index
from cutru.backup.pack import (
    BlobType,
    PackBuilder,
    PackEntry,
    open_blob,
    parse_header,
    read_header,
)
from cutru.errors import RepositoryDamaged

KEYS = RepoKeys.from_master(bytes(32))
AD = associated_data("index", "ab")


def test_envelope_layout() -> None:
    sealed = KEYS.seal(b"x" * 1000, AD, compress=True)
    assert sealed[0] == 0x01
    plain = KEYS._aead.decrypt(sealed[1:13], sealed[13:], AD)
    assert plain[0] == CODEC_ZSTD
    assert zstandard.ZstdDecompressor().decompress(plain[1:]) == b"x" * 1000
    assert len(KEYS.seal(b"abc", AD, compress=False)) == OVERHEAD + 1 + 3


def test_incompressible_bodies_are_stored_as_is() -> None:
    body = os.urandom(500)
    sealed = KEYS.seal(body, AD, compress=True)
    assert KEYS._aead.decrypt(sealed[1:13], sealed[13:], AD) == bytes([CODEC_NONE]) + body


def test_subkeys_are_hkdf_of_the_master() -> None:
    master = bytes(range(32))
    keys = RepoKeys.from_master(master)
    assert keys._id_key == hkdf(master, b"cutru-backup-v1 content-id")
    expected = hmac.new(keys._id_key, b"blob/data\nabc", hashlib.sha256).digest()
    assert keys.content_id("blob/data", b"abc") == expected


@pytest.mark.parametrize("other_ad", [associated_data("index", "ac"),
                                      associated_data("data", "ab"), b""])
def test_the_name_is_bound(other_ad: bytes) -> None:
    sealed = KEYS.seal(b"payload", AD, compress=False)
    with pytest.raises(RepositoryDamaged, match="fails authentication"):
        KEYS.unseal(sealed, other_ad, what="x")


def test_decompression_is_bounded() -> None:
    sealed = KEYS.seal(bytes(1 << 20), AD, compress=True)
    assert len(sealed) < 1000
    with pytest.raises(RepositoryDamaged, match="bad size"):
        KEYS.unseal(sealed, AD, what="bomb", limit=1 << 19)


def test_truncated_and_unknown_envelopes() -> None:
    sealed = KEYS.seal(b"payload", AD, compress=False)
    with pytest.raises(RepositoryDamaged, match="truncated"):
        KEYS.unseal(sealed[:OVERHEAD], AD, what="x")
    with pytest.raises(RepositoryDamaged, match="envelope version"):
        KEYS.unseal(b"\x02" + sealed[1:], AD, what="x")


entries = st.lists(
    st.tuples(st.sampled_from(list(BlobType)), st.binary(min_size=32, max_size=32),
              st.integers(0, 2**32 - 1), st.integers(0, 16 * 1024 * 1024)),
    max_size=20,
)


@given(st.dictionaries(st.binary(min_size=32, max_size=32), entries, max_size=5),
       st.lists(st.binary(min_size=32, max_size=32), max_size=3))
def test_index_round_trip(packs: dict[bytes, list[tuple[BlobType, bytes, int, int]]],
                          supersedes: list[bytes]) -> None:
    index = IndexFile(
        {pid: [PackEntry(t, bid, 7 * i, length, plain) for i, (t, bid, length, plain)
               in enumerate(rows)] for pid, rows in packs.items()},
        supersedes,
    )
    decoded = decode_index(encode_index(index), "index/x")
    assert {k: list(v) for k, v in decoded.packs.items()} == index.packs
    assert list(decoded.supersedes) == supersedes


def test_index_layout() -> None:
    entry = PackEntry(BlobType.TREE, b"\x11" * 32, 5, 6, 7)
    data = encode_index(IndexFile({b"\x22" * 32: [entry]}))
    assert data == (b"CTIX\x01" + struct.pack(">I", 0) + struct.pack(">I", 1) + b"\x22" * 32
                    + struct.pack(">I", 1) + b"\x01" + b"\x11" * 32
                    + struct.pack(">III", 5, 6, 7))


@pytest.mark.parametrize("cut", [1, 5, 44, 60])
def test_truncated_indexes_are_refused(cut: int) -> None:
    data = encode_index(IndexFile({b"\x22" * 32: [PackEntry(BlobType.DATA, bytes(32), 0, 1, 1)]}))
    with pytest.raises(RepositoryDamaged):
        decode_index(data[:-cut], "index/x")
    with pytest.raises(RepositoryDamaged):
        decode_index(data + b"\x00", "index/x")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(BlobType)), st.binary(max_size=300)),
                min_size=1, max_size=8))
def test_pack_round_trip(blobs: list[tuple[BlobType, bytes]]) -> None:
    builder = PackBuilder(KEYS)
    for blob_type, data in blobs:
        builder.add(blob_type, KEYS.content_id(blob_type.label, data), data)
    name, pack = builder.finish()
    header = read_header(KEYS, name, len(pack), lambda o, n: pack[o:o + n])
    assert header == builder.entries
    (length,) = struct.unpack(">I", pack[-4:])
    assert sum(e.length for e in header) + length + 4 == len(pack)


def test_pack_header_layout() -> None:
    builder = PackBuilder(KEYS)
    builder.add(BlobType.DATA, b"\x33" * 32, b"abc")
    name, pack = builder.finish()
    (length,) = struct.unpack(">I", pack[-4:])
    sealed = pack[-4 - length:-4]
    plain = KEYS.unseal(sealed, associated_data("data", name), what="h")
    assert plain[:5] == b"CTPK\x01" and struct.unpack(">I", plain[21:25]) == (1,)
    assert bytes.fromhex(name) == KEYS.content_id("pack", plain)
    assert parse_header(plain, "h")[0].id == b"\x33" * 32


def test_a_resealed_header_must_still_hash_to_the_pack_name() -> None:
    """Even a holder of the key cannot make a pack's header say something else."""
    builder = PackBuilder(KEYS)
    builder.add(BlobType.DATA, KEYS.content_id("blob/data", b"abc"), b"abc")
    name, pack = builder.finish()
    (length,) = struct.unpack(">I", pack[-4:])
    plain = KEYS.unseal(pack[-4 - length:-4], associated_data("data", name), what="h")
    forged_plain = plain[:5] + bytes(16) + plain[21:]  # another salt: another content id
    forged = KEYS.seal(forged_plain, associated_data("data", name), compress=False)
    body = pack[:-4 - length] + forged + struct.pack(">I", len(forged))
    with pytest.raises(RepositoryDamaged, match="does not match its name"):
        read_header(KEYS, name, len(body), lambda o, n: body[o:o + n])


def test_a_blob_must_hash_to_its_id() -> None:
    builder = PackBuilder(KEYS)
    entry = builder.add(BlobType.DATA, KEYS.content_id("blob/data", b"abc"), b"abd")
    with pytest.raises(RepositoryDamaged, match="does not hash to its id"):
        open_blob(KEYS, entry, builder.sealed_blob(0), "pack")


def test_the_worked_example_of_the_design_document() -> None:
    master = bytes(32)
    assert hkdf(master, b"cutru-backup-v1 encryption").hex() == (
        "7731b60d9ef45f8a5f307c85c6fb93a90399706fb8cdf518d024ca1dd3fb9523")
    assert hkdf(master, b"cutru-backup-v1 content-id").hex() == (
        "1e8e1c01a65ba2deee3091e3772851a9eea90e0026cfac03754710e8fef084ef")
    assert RepoKeys.from_master(master).content_id("blob/data", b"abc").hex() == (
        "a82a7f7384a9a06e9590bd143c61488d00297d567f5cfee30c573312affda871")
    assert gear_key(bytes(32)) == 0x1d49ae54aa4c087d
    data = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(2048))
    sizes = [len(c) for c in Chunker(ChunkerParams(64, 256, 1024), bytes(32)).split(data)]
    assert len(sizes) == 223 and sizes[:5] == [233, 288, 260, 218, 292]
