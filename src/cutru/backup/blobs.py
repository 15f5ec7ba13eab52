"""Cutting a stream into data blobs and sealing the new ones, here or in a helper process;
and, restoring a database file, opening blobs and writing them into place.

Chunking (Cython), content ids (HMAC-SHA-256), compression (zstd) and encryption (AES-GCM)
are most of what saving a snapshot's streams costs. :class:`BlobSealer` does all four for one
stream at a time and hands back, for each chunk in order, its id, its length and its sealed
bytes (None for a chunk the repository already holds). A snapshot runs one in the helper
process (:mod:`cutru.journal.helper`) through the module-level ``helper_*`` functions while
it reads the database, and adds the sealed blobs to its packs itself; a small snapshot runs
one here. Either way the blobs are exactly those :meth:`Repository.save_blob` would make.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import cast

from cutru.backup.chunker import Chunker, ChunkerParams, Cutter
from cutru.backup.crypto import RepoKeys
from cutru.backup.pack import BlobType, PackEntry, blob_ad, open_blob
from cutru.errors import RepositoryDamaged

#: (blob id, plaintext length, sealed blob or None when it needs no storing)
Cut = tuple[bytes, int, bytes | None]

_DATA = BlobType.DATA


class BlobSealer:
    """Chunks streams (several at once, each by its name) and seals every chunk ``known``
    does not hold and this sealer has not sealed before."""

    def __init__(self, keys: RepoKeys, chunker: Chunker, known: Callable[[bytes], bool]
                 ) -> None:
        self.keys = keys
        self.chunker = chunker
        self._known = known
        self._sealed: set[bytes] = set()
        self._cutters: dict[str, Cutter] = {}

    def start(self, stream: str) -> None:
        """Begin stream ``stream`` (at a chunk boundary)."""
        self._cutters[stream] = Cutter(self.chunker)

    def feed(self, stream: str, data: bytes) -> list[Cut]:
        """The chunks of ``stream`` that ``data`` completes."""
        return [self._cut(chunk) for chunk in self._cutters[stream].feed(data)]

    def finish(self, stream: str) -> list[Cut]:
        """The last chunks of ``stream``."""
        return [self._cut(chunk) for chunk in self._cutters.pop(stream).finish()]

    def _cut(self, chunk: bytes) -> Cut:
        blob_id = self.keys.content_id(_DATA.label, chunk)
        if blob_id in self._sealed or self._known(blob_id):
            return blob_id, len(chunk), None
        self._sealed.add(blob_id)
        return blob_id, len(chunk), self.keys.seal(chunk, blob_ad(_DATA, blob_id),
                                                    compress=True)


# --- in the helper process --------------------------------------------------------------------

_SEALER: list[BlobSealer] = []


def helper_init(master: bytes, min_size: int, avg_size: int, max_size: int, seed: bytes,
                known: frozenset[bytes]) -> None:
    """Set up this process's sealer: the repository's keys and chunker, and the ids of the
    blobs it holds."""
    chunker = Chunker(ChunkerParams(min_size, avg_size, max_size), seed)
    _SEALER[:] = [BlobSealer(RepoKeys.from_master(master), chunker, known.__contains__)]


def helper_sealer() -> BlobSealer:
    """This process's sealer (set up by :func:`helper_init`)."""
    return _SEALER[0]


def helper_start(stream: str) -> None:
    _SEALER[0].start(stream)


def helper_feed(stream: str, data: bytes) -> list[Cut]:
    return _SEALER[0].feed(stream, data)


def helper_finish(stream: str) -> list[Cut]:
    return _SEALER[0].finish(stream)


# --- a database file's regions (cutru.backup.pages), in a helper process ----------------------

_READ = 1024 * 1024  # bytes read from the file at a time


def seal_region(sealer: BlobSealer, path: str, offset: int, length: int) -> list[Cut]:
    """Chunk and seal bytes ``offset`` .. ``offset + length`` of the file ``path`` (a region,
    chunked on its own)."""
    stream = f"region-{offset}"
    cuts: list[Cut] = []
    sealer.start(stream)
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left:
            data = f.read(min(_READ, left))
            if not data:
                raise RepositoryDamaged(f"{path} ended while it was read", object=path)
            left -= len(data)
            cuts += sealer.feed(stream, data)
    return cuts + sealer.finish(stream)


def helper_seal_region(path: str, offset: int, length: int) -> list[Cut]:
    """:func:`seal_region` with this process's sealer (set up by :func:`helper_init`). The
    helper opens the file itself: this module imports nothing of the database layer, so a
    helper starts quickly."""
    return seal_region(_SEALER[0], path, offset, length)


# --- restoring a database file (cutru.backup.pages), in a helper process ----------------------

_OPENER: list[RepoKeys] = []


def helper_open_init(master: bytes) -> None:
    """Set up this process to open the repository's blobs (:func:`helper_write_run`)."""
    _OPENER[:] = [RepoKeys.from_master(master)]


def write_run(keys: RepoKeys, path: str, at: int, run: list[PackEntry], sealed: bytes,
              where: str) -> int:
    """Open each blob of ``run`` (blobs that lie one after the other in a pack; ``sealed``
    is their bytes, from ``run[0].offset`` on), checked against its seal, length and id,
    and write the plaintexts one after the other into the file ``path`` from byte ``at``
    on. The number of bytes written."""
    view = memoryview(sealed)
    start = run[0].offset
    fd = os.open(path, os.O_WRONLY)
    try:
        pos = at
        for entry in run:  # each written at once: its memory is reused for the next
            piece = bytes(view[entry.offset - start:entry.offset - start + entry.length])
            plain = memoryview(open_blob(keys, entry, piece, where))
            while plain:
                written = os.pwrite(fd, plain, pos)
                pos += written
                plain = plain[written:]
        start_writeback(fd, at, pos - at)
    finally:
        os.close(fd)
    return pos - at


def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """``sync_file_range(2)`` from the C library, where there is one (Linux)."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], fn)


_SYNC_FILE_RANGE = _libc_sync_file_range()
#: ``SYNC_FILE_RANGE_WRITE`` (linux/fs.h): start writing the range out, without waiting.
_SFR_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing ``length`` bytes of ``fd`` from ``offset`` to disk now,
    without waiting for it to finish (``sync_file_range(2)`` with ``SYNC_FILE_RANGE_WRITE``;
    nothing where the C library has no such call). A restore syncs its file before it
    renames it into place: started as each run is written, the disk works while the next
    runs are decrypted, instead of after the last one (a file under the kernel's dirty
    threshold, about a tenth of the memory, would otherwise wait in the page cache until
    the sync). A failure (a file system that does not support it) changes nothing: the
    sync still writes everything."""
    if _SYNC_FILE_RANGE is not None and length > 0:
        _SYNC_FILE_RANGE(fd, offset, length, _SFR_WRITE)


def read_run(pack: str, run: list[PackEntry], where: str) -> bytes:
    """The sealed bytes of ``run`` from the pack file ``pack`` (a local repository's), read
    here: :meth:`cutru.backup.repository.Repository.load_run` without sending them from
    the caller to this process."""
    start, end = run[0].offset, run[-1].offset + run[-1].length
    try:
        with open(pack, "rb") as f:
            data = os.pread(f.fileno(), end - start, start)
    except FileNotFoundError:
        data = b""
    if len(data) != end - start:
        raise RepositoryDamaged(f"{where}: a blob is indexed in {pack}, which is missing or "
                                "too short", object=pack)
    return data


def helper_write_run(path: str, at: int, run: list[PackEntry], sealed: bytes | str,
                     where: str) -> int:
    """:func:`write_run` with this process's keys (set up by :func:`helper_open_init`);
    ``sealed`` is the run's bytes, or the name of the local pack file to read them from
    (:func:`read_run`)."""
    data = read_run(sealed, run, where) if isinstance(sealed, str) else sealed
    return write_run(_OPENER[0], path, at, run, data, where)
