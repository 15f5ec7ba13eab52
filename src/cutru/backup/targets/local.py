"""A target in a local directory (or any mounted file system with hard links).

Layout: ``<root>/config`` and ``<root>/<kind>/<name>``. A save writes a temporary file in the
object's directory, fsyncs it, hard-links it to its name (``link`` refuses an existing name,
so two writers cannot both win and nothing is ever replaced), unlinks the temporary name and
fsyncs the directory. A crash leaves at most a ``.tmp-*`` file, which listing skips.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cutru.backup.targets.base import Handle, Kind, ObjectInfo, check_range
from cutru.errors import (
    CutruError,
    InputError,
    ObjectExists,
    ObjectNotFound,
    TargetUnavailable,
    TransientTargetError,
)

# Errors a retry can cure: an interrupted call, a busy or briefly unreachable network mount.
_TRANSIENT = frozenset({errno.EINTR, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.ESTALE})
_TMP_PREFIX = ".tmp-"


class LocalTarget:
    """Objects as files under ``root``, which is created (mode 0700) if missing."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        with _translated(None, f"create {self.root}"):
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def location(self) -> str:
        return str(self.root)

    def save(self, handle: Handle, data: bytes) -> None:
        final = self._path(handle)
        with _translated(handle, "save"):
            self._ensure_dir(final.parent)
            tmp = final.parent / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
            _write_synced(tmp, data)
            try:
                os.link(tmp, final)
            except FileExistsError:
                raise ObjectExists(f"{handle} already exists in {self.location}",
                                   object=handle.path) from None
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(final.parent)

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        with _translated(handle, "load"), open(self._path(handle), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            end = check_range(handle, size, offset, length)
            f.seek(offset)
            data = f.read(end - offset)
        if len(data) != end - offset:  # the file shrank under us: storage is misbehaving
            raise TargetUnavailable(f"short read of {handle} in {self.location}")
        return data

    def stat(self, handle: Handle) -> ObjectInfo:
        with _translated(handle, "stat"):
            return ObjectInfo(handle, self._path(handle).stat().st_size)

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        if kind is Kind.CONFIG:
            return iter(self._list_config())
        directory = self.root / kind.value
        found = []
        with _translated(None, f"list {directory}"):
            if not directory.is_dir():
                return iter([])
            with os.scandir(directory) as entries:
                for entry in entries:
                    handle = _handle_or_none(kind, entry.name)
                    if handle is not None and entry.is_file(follow_symlinks=False):
                        found.append(ObjectInfo(handle, entry.stat().st_size))
        return iter(sorted(found, key=lambda info: info.handle.name))

    def remove(self, handle: Handle) -> None:
        path = self._path(handle)
        with _translated(handle, "remove"):
            try:
                path.unlink()
            except FileNotFoundError:
                return
            _fsync_dir(path.parent)

    def close(self) -> None:
        pass

    def local_file(self, handle: Handle) -> str | None:
        return str(self._path(handle))

    def _list_config(self) -> tuple[ObjectInfo, ...]:
        try:
            return (self.stat(Handle(Kind.CONFIG)),)
        except ObjectNotFound:
            return ()

    def _path(self, handle: Handle) -> Path:
        return self.root / handle.path

    def _ensure_dir(self, directory: Path) -> None:
        if directory.is_dir():
            return
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            return
        _fsync_dir(directory.parent)  # make the new directory entry itself durable


def _handle_or_none(kind: Kind, name: str) -> Handle | None:
    if name.startswith("."):
        return None
    try:
        return Handle(kind, name)
    except InputError:
        return None  # not ours (a stray file); never read


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _translated(handle: Handle | None, action: str) -> Iterator[None]:
    """The one place where this target's ``OSError`` becomes an error of cutru's tree."""
    try:
        yield
    except CutruError:
        raise
    except FileNotFoundError:
        if handle is None:
            raise TargetUnavailable(f"cannot {action}: a directory is missing") from None
        raise ObjectNotFound(f"{handle} does not exist", object=handle.path) from None
    except OSError as exc:
        what = f"cannot {action} {handle or ''}".rstrip()
        cls = TransientTargetError if exc.errno in _TRANSIENT else TargetUnavailable
        raise cls(f"{what}: {exc.strerror or exc}", errno=exc.errno) from None
