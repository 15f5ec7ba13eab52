"""A target in memory: the test double of every other target, and the reference for the
conformance suite (``tests/backup/test_targets.py``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from cutru.backup.targets.base import Handle, Kind, ObjectInfo, check_range
from cutru.errors import ObjectExists, ObjectNotFound


class MemoryTarget:
    """Objects in a dict, guarded by a lock so that concurrent saves behave as on storage."""

    def __init__(self) -> None:
        self._objects: dict[Handle, bytes] = {}
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return f"memory:{id(self):x}"

    def save(self, handle: Handle, data: bytes) -> None:
        with self._lock:
            if handle in self._objects:
                raise ObjectExists(f"{handle} already exists in {self.location}",
                                   object=handle.path)
            self._objects[handle] = bytes(data)

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        data = self._get(handle)
        end = check_range(handle, len(data), offset, length)
        return data[offset:end]

    def stat(self, handle: Handle) -> ObjectInfo:
        return ObjectInfo(handle, len(self._get(handle)))

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        with self._lock:
            found = [ObjectInfo(h, len(d)) for h, d in self._objects.items() if h.kind is kind]
        return iter(sorted(found, key=lambda info: info.handle.name))

    def remove(self, handle: Handle) -> None:
        with self._lock:
            self._objects.pop(handle, None)

    def close(self) -> None:
        pass

    def local_file(self, handle: Handle) -> str | None:
        return None

    # --- for tests: storage that goes wrong under the repository ---------------------------

    def corrupt(self, handle: Handle, position: int, xor: int = 0x01) -> None:
        """Flip bits of one stored byte, as a failing disk or an attacker would."""
        with self._lock:
            data = bytearray(self._objects[handle])
            data[position] ^= xor
            self._objects[handle] = bytes(data)

    def replace(self, handle: Handle, data: bytes) -> None:
        """Overwrite an object behind the write-once rule (an attacker with storage access)."""
        with self._lock:
            self._objects[handle] = bytes(data)

    def _get(self, handle: Handle) -> bytes:
        with self._lock:
            data = self._objects.get(handle)
        if data is None:
            raise ObjectNotFound(f"{handle} does not exist in {self.location}",
                                 object=handle.path)
        return data
