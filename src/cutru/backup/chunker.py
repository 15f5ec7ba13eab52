"""Content-defined chunking: FastCDC with a 32-bit gear hash and normalised chunking.

Xia et al., "FastCDC: a Fast and Efficient Content-Defined Chunking Approach for Data
Deduplication" (USENIX ATC 2016). The gear hash at byte ``p`` is
``h(p) = Σ_{j<32} gear[data[p-j]] · 2^j mod 2^32``: it depends only on the 32 bytes ending at
``p``, so it is computed for a whole buffer at once (five shifted additions in numpy) rather
than byte by byte. From a chunk start, the chunk ends at the first byte where

* the length ``L`` is in ``[min, avg)`` and ``h & mask_s == 0`` (``log2(avg)+2`` top bits), or
* ``L`` is in ``[avg, max)`` and ``h & mask_l == 0`` (``log2(avg)-2`` top bits), or
* ``L == max``.

The harder mask before ``avg`` and the easier one after it pull chunk sizes towards ``avg``.
The gear table comes from a per-repository secret seed, so boundaries reveal nothing about
contents to someone who does not hold the repository key. docs/design.md, "Chunking", is the
specification.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from cutru.errors import InputError

KiB = 1024
MAX_BLOB = 16 * 1024 * KiB  # no blob's plaintext is larger (docs/design.md, "Blobs and packs")
_WINDOW = 32  # bytes the 32-bit gear hash depends on
_BLOCK = 1024 * KiB  # bytes read at a time from a stream
_PIECE = 64 * KiB  # bytes hashed at a time (the passes' arrays stay in the cache)


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    """Chunk size bounds in bytes; ``avg`` is a power of two, ``64 <= min < avg < max``."""

    min_size: int = 16 * KiB
    avg_size: int = 64 * KiB
    max_size: int = 256 * KiB

    def __post_init__(self) -> None:
        ok = (
            2 * _WINDOW <= self.min_size < self.avg_size < self.max_size <= MAX_BLOB
            and self.avg_size & (self.avg_size - 1) == 0
            and 8 <= self.avg_size.bit_length() - 1 <= 28
        )
        if not ok:
            raise InputError(
                f"chunk sizes min={self.min_size} avg={self.avg_size} max={self.max_size} need "
                f"64 <= min < avg < max <= {MAX_BLOB}, avg a power of two >= 256",
                field="chunker",
                rule="backup.chunker_params",
            )


def gear_table(seed: bytes) -> npt.NDArray[np.uint32]:
    """The 256 gear values: SHAKE128(b"cutru-gear-v1\\n" || seed, 1024) as u32 big-endian."""
    raw = hashlib.shake_128(b"cutru-gear-v1\n" + seed).digest(1024)
    return np.frombuffer(raw, dtype=">u4").astype(np.uint32)


class Chunker:
    """Splits data into content-defined chunks.

    >>> chunker = Chunker(ChunkerParams(64, 256, 1024), bytes(32))
    >>> data = bytes(range(256)) * 40
    >>> b"".join(chunker.split(data)) == data
    True
    """

    def __init__(self, params: ChunkerParams, seed: bytes) -> None:
        if len(seed) != 32:
            raise InputError("the chunker seed is 32 bytes", field="seed", rule="backup.seed")
        self.params = params
        self._gear = gear_table(seed)
        bits = params.avg_size.bit_length() - 1
        self._below_s = np.uint32(1 << (32 - (bits + 2)))  # h & mask_s == 0 ⟺ h < this
        self._below_l = np.uint32(1 << (32 - (bits - 2)))

    def split(self, data: bytes) -> Iterator[bytes]:
        """The chunks of ``data``; joined, they are ``data``."""
        view = memoryview(data)
        return self._chunks(view[i:i + _BLOCK] for i in range(0, len(view), _BLOCK))

    def read(self, stream: BinaryIO, block_size: int = _BLOCK) -> Iterator[bytes]:
        """The chunks of everything ``stream`` yields until EOF, read ``block_size`` bytes at
        a time (the chunks do not depend on it)."""
        return self._chunks(iter(lambda: stream.read(block_size), b""))

    def _chunks(self, blocks: Iterable[bytes | memoryview]) -> Iterator[bytes]:
        cutter = Cutter(self)
        for block in blocks:
            yield from cutter.feed(block)
        yield from cutter.finish()

    def cut_points(self, buf: bytes, *, final: bool) -> list[int]:
        """End offsets of the chunks of ``buf``, which starts at a chunk boundary. Unless
        ``final``, a tail whose end depends on bytes not yet seen is left out."""
        p = self.params
        n = len(buf)
        loose, at = self._candidates(buf)
        strict = loose[at < self._below_s].tolist()  # mask_s ⊇ mask_l's bits
        loose_list = loose.tolist()
        ends: list[int] = []
        start = 0
        while start < n:
            lo, mid, hi = start + p.min_size - 1, start + p.avg_size - 1, start + p.max_size - 1
            i = bisect_left(strict, lo)
            if i < len(strict) and strict[i] < mid:
                cut = strict[i]
            elif mid > n:
                break  # a strict cut point may still come in bytes not seen yet
            else:
                j = bisect_left(loose_list, mid)
                if j < len(loose_list) and loose_list[j] < hi:
                    cut = loose_list[j]
                elif hi < n:
                    cut = hi
                else:
                    break
            ends.append(cut + 1)
            start = cut + 1
        if final and start < n:
            ends.append(n)
        return ends

    def hashes(self, buf: bytes) -> npt.NDArray[np.uint32]:
        """The gear hash at every byte of ``buf`` (bytes before ``buf`` taken as absent)."""
        return np.concatenate([h for _, h in self._pieces(buf)] or [np.empty(0, np.uint32)])

    def _candidates(self, buf: bytes) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint32]]:
        """The offsets where ``h & mask_l == 0`` and the hashes there. ``h & mask == 0`` for
        a mask of the top k bits is ``h < 2**(32-k)``: one comparison per byte."""
        offsets, hashes = [], []
        for start, h in self._pieces(buf):
            found = np.flatnonzero(h < self._below_l)
            offsets.append(found + start)
            hashes.append(h[found])
        if not offsets:
            return np.empty(0, np.intp), np.empty(0, np.uint32)
        return np.concatenate(offsets), np.concatenate(hashes)

    def _pieces(self, buf: bytes) -> Iterator[tuple[int, npt.NDArray[np.uint32]]]:
        """(offset, gear hashes of the :data:`_PIECE` bytes there), piece by piece, each
        computed from the piece and the 31 bytes before it, so that the arrays of the five
        passes stay in the CPU cache."""
        data = np.frombuffer(buf, dtype=np.uint8)
        tmp = np.empty(_PIECE + _WINDOW, dtype=np.uint32)
        for start in range(0, len(data), _PIECE):
            lo = max(0, start - (_WINDOW - 1))
            h = np.take(self._gear, data[lo:start + _PIECE])
            n = len(h)
            step = 1
            while step < min(n, _WINDOW):  # h_2k(p) = h_k(p) + h_k(p-k)·2^k: 5 steps to 32
                np.left_shift(h[:n - step], step, out=tmp[:n - step])
                np.add(h[step:], tmp[:n - step], out=h[step:])
                step *= 2
            yield start, h[start - lo:]


class Cutter:
    """A chunker's state over one stream: feed it bytes, get the chunks that are complete."""

    def __init__(self, chunker: Chunker) -> None:
        self.chunker = chunker
        self._pending = b""  # always starts at a chunk boundary

    def feed(self, block: bytes | memoryview) -> list[bytes]:
        """The chunks completed by ``block`` (the rest waits for more bytes)."""
        buf = self._pending + bytes(block)
        start = 0
        chunks = []
        for end in self.chunker.cut_points(buf, final=False):
            chunks.append(buf[start:end])
            start = end
        self._pending = buf[start:]
        return chunks

    def finish(self) -> list[bytes]:
        """The last chunks, at the end of the stream."""
        buf, self._pending = self._pending, b""
        start = 0
        chunks = []
        for end in self.chunker.cut_points(buf, final=True):
            chunks.append(buf[start:end])
            start = end
        return chunks
