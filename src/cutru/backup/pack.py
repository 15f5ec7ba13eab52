"""Packs: many sealed blobs in one object, followed by a sealed header that lists them.

::

    pack         = blob_1 || … || blob_n || header || u32be(len(header))
    header_plain = b"CTPK" || u8(1) || salt (16) || u32be(n) || entry_1 || … || entry_n
    entry_i      = u8(type) || id (32) || u32be(sealed length) || u32be(plain length)
    pack id      = content_id("pack", header_plain)

Each blob is sealed with ``ad = "blob/<type>/<id>"``; the header with ``ad = "data/<pack id>"``.
The layout follows restic's pack format (blobs first, header last, its length at the end),
so a pack is written in one pass. docs/design.md, "Blobs and packs", is the specification.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from cutru.backup import naming
from cutru.backup.crypto import OVERHEAD, RepoKeys, associated_data
from cutru.backup.targets import Kind
from cutru.errors import RepositoryDamaged

MAGIC = b"CTPK"
VERSION = 1
MAX_BLOBS = 1 << 20
MAX_PLAIN = 16 * 1024 * 1024  # no blob's plaintext is larger
_HEAD = struct.Struct(">4sB16sI")
_ENTRY = struct.Struct(">B32sII")
_LENGTH = struct.Struct(">I")


class BlobType(IntEnum):
    DATA = 0  # a chunk of data
    TREE = 1  # a list of other blobs (defined by the snapshot step)

    @property
    def label(self) -> str:
        """The content-id label and associated-data prefix: ``blob/data`` or ``blob/tree``."""
        return f"blob/{self.name.lower()}"


@dataclass(frozen=True, slots=True)
class PackEntry:
    """Where one blob lies in its pack."""

    type: BlobType
    id: bytes
    offset: int  # of the sealed blob in the pack
    length: int  # of the sealed blob
    plain_length: int  # of the plaintext


def blob_ad(blob_type: BlobType, blob_id: bytes) -> bytes:
    return associated_data("blob", f"{blob_type.name.lower()}/{naming.format_id(blob_id)}")


def blob_name(blob_type: BlobType, blob_id: bytes) -> str:
    """``blob/data/<hex id>``, for messages."""
    return f"{blob_type.label}/{blob_id.hex()}"


class PackBuilder:
    """Accumulates sealed blobs until :meth:`finish` gives the pack's name and bytes."""

    def __init__(self, keys: RepoKeys) -> None:
        self._keys = keys
        self._parts: list[bytes] = []
        self.entries: list[PackEntry] = []
        self.size = 0

    def add(self, blob_type: BlobType, blob_id: bytes, plaintext: bytes) -> PackEntry:
        sealed = self._keys.seal(plaintext, blob_ad(blob_type, blob_id), compress=True)
        return self.add_sealed(blob_type, blob_id, sealed, len(plaintext))

    def add_sealed(self, blob_type: BlobType, blob_id: bytes, sealed: bytes,
                   plain_length: int) -> PackEntry:
        """Add a blob already sealed under ``blob_ad(blob_type, blob_id)`` (by
        :class:`cutru.backup.blobs.BlobSealer`, perhaps in a helper process)."""
        entry = PackEntry(blob_type, blob_id, self.size, len(sealed), plain_length)
        self._parts.append(sealed)
        self.entries.append(entry)
        self.size += len(sealed)
        return entry

    def sealed_blob(self, position: int) -> bytes:
        """The sealed bytes of the ``position``-th blob added (not yet written)."""
        return self._parts[position]

    def finish(self) -> tuple[str, bytes]:
        """The pack's name (its id in hex) and its bytes."""
        head = _HEAD.pack(MAGIC, VERSION, os.urandom(16), len(self.entries))
        rows = [_ENTRY.pack(e.type, e.id, e.length, e.plain_length) for e in self.entries]
        header_plain = head + b"".join(rows)
        name = naming.format_id(self._keys.content_id("pack", header_plain))
        header = self._keys.seal(header_plain, associated_data(Kind.DATA, name), compress=False)
        return name, b"".join([*self._parts, header, _LENGTH.pack(len(header))])


def read_header(keys: RepoKeys, name: str, size: int,
                load: Callable[[int, int], bytes]) -> list[PackEntry]:
    """The entries of pack ``name`` (``size`` bytes; ``load(offset, length)`` reads it),
    after checking the header's seal, its id and that the blobs fill the pack exactly."""
    where = f"data/{name}"
    if size < _LENGTH.size + OVERHEAD + 1:
        raise RepositoryDamaged(f"{where} is too short to be a pack ({size} bytes)", object=where)
    (header_length,) = _LENGTH.unpack(load(size - _LENGTH.size, _LENGTH.size))
    if not OVERHEAD < header_length <= size - _LENGTH.size:
        raise RepositoryDamaged(f"{where} has a bad header length {header_length}", object=where)
    sealed = load(size - _LENGTH.size - header_length, header_length)
    plain = keys.unseal(sealed, associated_data(Kind.DATA, name), what=where)
    if keys.content_id("pack", plain) != naming.parse_id(name):
        raise RepositoryDamaged(f"{where}: its header does not match its name", object=where)
    entries = parse_header(plain, where)
    if sum(e.length for e in entries) != size - _LENGTH.size - header_length:
        raise RepositoryDamaged(f"{where}: blob lengths do not fill the pack", object=where)
    return entries


def parse_header(plain: bytes, where: str) -> list[PackEntry]:
    try:
        magic, version, _salt, count = _HEAD.unpack_from(plain)
    except struct.error:
        raise RepositoryDamaged(f"{where}: the header is truncated", object=where) from None
    if magic != MAGIC or version != VERSION or count > MAX_BLOBS:
        raise RepositoryDamaged(f"{where}: not a version {VERSION} pack header", object=where)
    if len(plain) != _HEAD.size + count * _ENTRY.size:
        raise RepositoryDamaged(f"{where}: the header has the wrong length", object=where)
    entries, offset = [], 0
    for type_code, blob_id, length, plain_length in _ENTRY.iter_unpack(plain[_HEAD.size:]):
        if type_code not in BlobType._value2member_map_ or plain_length > MAX_PLAIN:
            raise RepositoryDamaged(f"{where}: a header entry is malformed", object=where)
        entries.append(PackEntry(BlobType(type_code), blob_id, offset, length, plain_length))
        offset += length
    return entries


def open_blob(keys: RepoKeys, entry: PackEntry, sealed: bytes, where: str) -> bytes:
    """The plaintext of a sealed blob, checked against its seal, length and id."""
    what = f"{blob_name(entry.type, entry.id)} in {where}"
    plain = keys.unseal(sealed, blob_ad(entry.type, entry.id), what=what,
                        limit=entry.plain_length)
    if len(plain) != entry.plain_length:
        raise RepositoryDamaged(f"{what} has the wrong length", object=what)
    if keys.content_id(entry.type.label, plain) != entry.id:
        raise RepositoryDamaged(f"{what} does not hash to its id", object=what)
    return plain
