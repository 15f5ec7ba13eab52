"""Sealing: compression, then AES-256-GCM with the item's name as associated data.

``sealed = 0x01 || nonce (12) || AES-256-GCM(enc_key, nonce, codec || body, ad)`` with
``ad = b"cutru-backup-v1\\n" || kind || b"/" || name``. ``codec`` is 0x00 (body as is) or 0x01
(one zstd frame). Content ids are ``HMAC-SHA-256(id_key, label || b"\\n" || data)``. Both keys
come from the 32-byte master key by HKDF-SHA-256. docs/design.md, "Cryptography", is the
specification; this module is the only one that touches ciphers.

>>> keys = RepoKeys.from_master(bytes(32))
>>> sealed = keys.seal(b"hello", associated_data("index", "ab"), compress=True)
>>> keys.unseal(sealed, associated_data("index", "ab"), what="index/ab")
b'hello'
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cutru.errors import RepositoryDamaged

AD_PREFIX = b"cutru-backup-v1\n"
ENVELOPE_VERSION = 0x01
NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE
CODEC_NONE = 0x00
CODEC_ZSTD = 0x01
#: zstd's fastest regular level: 1.5x the speed of level 3 on registry streams, which it
#: leaves at most 2% larger. Readers accept any level.
ZSTD_LEVEL = 1
KEY_SIZE = 32


def associated_data(kind: str, name: str) -> bytes:
    """The associated data that binds a sealed item to its kind and name."""
    return AD_PREFIX + f"{kind}/{name}".encode("ascii")


def hkdf(secret: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    """32 bytes of HKDF-SHA-256 (RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=info).derive(secret)


def seal_with(aead: AESGCM, plaintext: bytes, ad: bytes) -> bytes:
    """The envelope of ``plaintext`` (which already starts with its codec byte)."""
    nonce = os.urandom(NONCE_SIZE)
    return bytes([ENVELOPE_VERSION]) + nonce + aead.encrypt(nonce, plaintext, ad)


def unseal_with(aead: AESGCM, sealed: bytes, ad: bytes, what: str) -> bytes:
    """The plaintext of an envelope, or :class:`RepositoryDamaged` naming ``what``."""
    if len(sealed) < OVERHEAD + 1:
        raise RepositoryDamaged(f"{what} is truncated ({len(sealed)} bytes)", object=what)
    if sealed[0] != ENVELOPE_VERSION:
        raise RepositoryDamaged(
            f"{what} has envelope version {sealed[0]}, not {ENVELOPE_VERSION}: damaged",
            object=what,
        )
    nonce = sealed[1 : 1 + NONCE_SIZE]
    try:
        return aead.decrypt(nonce, sealed[1 + NONCE_SIZE :], ad)
    except InvalidTag:
        raise RepositoryDamaged(
            f"{what} fails authentication: it was damaged, altered or stored under another name",
            object=what,
        ) from None


class RepoKeys:
    """The keys derived from a repository's master key, and the operations that use them."""

    def __init__(self, enc_key: bytes, id_key: bytes) -> None:
        self._aead = AESGCM(enc_key)
        self._id_key = id_key
        # zstd (de)compressor objects may not be shared between threads: one per thread
        self._local = threading.local()

    @classmethod
    def from_master(cls, master: bytes) -> RepoKeys:
        if len(master) != KEY_SIZE:
            raise ValueError("the master key is 32 bytes")
        return cls(
            hkdf(master, b"cutru-backup-v1 encryption"),
            hkdf(master, b"cutru-backup-v1 content-id"),
        )

    @property
    def _compressor(self) -> zstandard.ZstdCompressor:
        made = getattr(self._local, "compressor", None)
        if made is None:
            made = self._local.compressor = zstandard.ZstdCompressor(
                level=ZSTD_LEVEL, write_content_size=True)
        return made

    @property
    def _decompressor(self) -> zstandard.ZstdDecompressor:
        made = getattr(self._local, "decompressor", None)
        if made is None:
            made = self._local.decompressor = zstandard.ZstdDecompressor()
        return made

    def content_id(self, label: str, data: bytes) -> bytes:
        """``HMAC-SHA-256(id_key, label || b"\\n" || data)``: 32 bytes."""
        mac = hmac.new(self._id_key, label.encode("ascii") + b"\n", hashlib.sha256)
        mac.update(data)
        return mac.digest()

    def seal(self, body: bytes, ad: bytes, *, compress: bool) -> bytes:
        """Compress ``body`` if asked and if that makes it smaller, then encrypt."""
        return seal_with(self._aead, self.encode_body(body, compress), ad)

    def unseal(self, sealed: bytes, ad: bytes, *, what: str, limit: int = 1 << 30) -> bytes:
        """Decrypt and decompress; the plaintext may not exceed ``limit`` bytes."""
        return self.decode_body(unseal_with(self._aead, sealed, ad, what), what, limit)

    def encode_body(self, body: bytes, compress: bool) -> bytes:
        if compress and body:
            packed = self._compressor.compress(body)
            if len(packed) < len(body):
                return bytes([CODEC_ZSTD]) + packed
        return bytes([CODEC_NONE]) + body

    def decode_body(self, plain: bytes, what: str, limit: int) -> bytes:
        codec, body = plain[0], memoryview(plain)[1:]
        if codec == CODEC_NONE:
            out = bytes(body)
        elif codec == CODEC_ZSTD:
            out = self._decompress(body, what, limit)
        else:  # authenticated, so written this way: by a newer cutru, or a bug
            raise RepositoryDamaged(f"{what} uses unknown codec {codec}", object=what)
        if len(out) > limit:
            raise RepositoryDamaged(f"{what} is larger than {limit} bytes", object=what)
        return out

    def _decompress(self, body: memoryview, what: str, limit: int) -> bytes:
        try:
            size = zstandard.frame_content_size(body)
            if size < 0 or size > limit:
                raise RepositoryDamaged(f"{what}: compressed frame of bad size {size}",
                                        object=what)
            out = self._decompressor.decompress(body)
        except zstandard.ZstdError as exc:
            raise RepositoryDamaged(f"{what} does not decompress: {exc}", object=what) from None
        if len(out) != size:
            raise RepositoryDamaged(f"{what} decompresses to the wrong size", object=what)
        return out
