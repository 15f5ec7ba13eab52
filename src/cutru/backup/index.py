"""Indexes: which pack holds each blob, at which offset, and how long it is.

::

    index_plain = b"CTIX" || u8(1) || u32be(s) || s × superseded index id (32)
                  || u32be(p) || p × (pack id (32) || u32be(m) || m × blob)
    blob        = u8(type) || id (32) || u32be(offset) || u32be(sealed length)
                  || u32be(plain length)
    index id    = content_id("index", index_plain)

An index is stored sealed and zstd-compressed under ``index/<index id>``. docs/design.md,
"Indexes", is the specification.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from cutru.backup.pack import MAX_PLAIN, BlobType, PackEntry
from cutru.errors import RepositoryDamaged

MAGIC = b"CTIX"
VERSION = 1
_HEAD = struct.Struct(">4sBI")
_COUNT = struct.Struct(">I")
_PACK = struct.Struct(">32sI")
_BLOB = struct.Struct(">B32sIII")


@dataclass(frozen=True, slots=True)
class IndexFile:
    packs: Mapping[bytes, Sequence[PackEntry]]  # pack id → its blobs
    supersedes: Sequence[bytes] = ()


def encode_index(index: IndexFile) -> bytes:
    parts = [_HEAD.pack(MAGIC, VERSION, len(index.supersedes)), *index.supersedes]
    parts.append(_COUNT.pack(len(index.packs)))
    for pack_id, entries in index.packs.items():
        parts.append(_PACK.pack(pack_id, len(entries)))
        parts.extend(
            _BLOB.pack(e.type, e.id, e.offset, e.length, e.plain_length) for e in entries
        )
    return b"".join(parts)


def decode_index(plain: bytes, where: str) -> IndexFile:
    """Parse an index, or :class:`RepositoryDamaged` if it is not one."""
    try:
        return _decode(memoryview(plain), where)
    except (struct.error, ValueError):
        raise RepositoryDamaged(f"{where} is not a well-formed index", object=where) from None


def _decode(view: memoryview, where: str) -> IndexFile:
    magic, version, superseded = _HEAD.unpack_from(view)
    if magic != MAGIC or version != VERSION:
        raise RepositoryDamaged(f"{where} is not a version {VERSION} index", object=where)
    pos = _HEAD.size
    supersedes = [bytes(view[pos + 32 * i : pos + 32 * i + 32]) for i in range(superseded)]
    pos += 32 * superseded
    if pos > len(view):
        raise ValueError("truncated")
    (pack_count,) = _COUNT.unpack_from(view, pos)
    pos += _COUNT.size
    packs: dict[bytes, list[PackEntry]] = {}
    for _ in range(pack_count):
        pack_id, blob_count = _PACK.unpack_from(view, pos)
        pos += _PACK.size
        end = pos + blob_count * _BLOB.size
        if end > len(view):
            raise ValueError("truncated")
        packs[pack_id] = [_entry(*row) for row in _BLOB.iter_unpack(view[pos:end])]
        pos = end
    if pos != len(view):
        raise ValueError("trailing bytes")
    return IndexFile(packs, supersedes)


def _entry(type_code: int, blob_id: bytes, offset: int, length: int, plain: int) -> PackEntry:
    if plain > MAX_PLAIN:
        raise ValueError("blob too large")
    return PackEntry(BlobType(type_code), blob_id, offset, length, plain)


@dataclass
class MasterIndex:
    """Every blob the repository's indexes know, by id."""

    _blobs: dict[bytes, tuple[bytes, PackEntry]] = field(default_factory=dict)
    index_ids: set[bytes] = field(default_factory=set)

    def add(self, index_id: bytes, index: IndexFile) -> None:
        self.index_ids.add(index_id)
        for pack_id, entries in index.packs.items():
            self.add_pack(pack_id, entries)

    def add_pack(self, pack_id: bytes, entries: Iterable[PackEntry]) -> None:
        for entry in entries:
            self._blobs.setdefault(entry.id, (pack_id, entry))  # any copy will do

    def lookup(self, blob_id: bytes) -> tuple[bytes, PackEntry] | None:
        return self._blobs.get(blob_id)

    def __contains__(self, blob_id: object) -> bool:
        return blob_id in self._blobs

    def __len__(self) -> int:
        return len(self._blobs)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._blobs)
