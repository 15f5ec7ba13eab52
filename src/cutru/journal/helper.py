"""One helper process for CPU-bound work that holds the GIL.

BLAKE3 (the state digest), the chunker and zstd each run in native code, but the first holds
the GIL and the others need it between calls, so on a server with two cores a second
*process* is the way to use the second one. :class:`Helper` is that process: a fresh
interpreter (``python -c``, started with :mod:`subprocess`) that runs module-level functions
sent to it, one at a time in the order submitted, and answers each with a
:class:`concurrent.futures.Future`. Calls and results travel pickled over its stdin and
stdout, between two processes of the same program.

Unlike :mod:`multiprocessing`'s spawn and forkserver methods it never imports the caller's
``__main__`` (a script without a ``__main__`` guard would run again), and unlike fork it
inherits no database connection or thread. When this process dies, the helper reads the end
of its input and exits; when the helper dies, every pending future fails with
:class:`HelperFailed`.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from queue import SimpleQueue
from typing import IO, Any

from cutru.errors import CutruError
from cutru.runtime import collector_paused

_LENGTH = struct.Struct(">Q")
_BOOT = "from cutru.journal.helper import _serve; _serve()"
_START_TIMEOUT = 60.0  # seconds for a helper to answer its first call


class HelperFailed(CutruError):
    """The helper process ended before answering. Every caller carries on without it where it
    can (the work is then done in the calling process); one that cannot, such as a snapshot
    whose blobs the helper was sealing, fails with this error (exit code 1, HTTP 500)."""

    code = "helper_failed"


def helper_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Helper:
    """A helper process; ``submit(fn, *args)`` runs ``fn(*args)`` there."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env, close_fds=True)
        self._outbox: SimpleQueue[bytes | None] = SimpleQueue()
        self._pending: deque[Future[Any]] = deque()
        self._lock = threading.Lock()
        self._failed: HelperFailed | None = None
        self._writer = threading.Thread(target=self._write, name="helper-writer", daemon=True)
        self._reader = threading.Thread(target=self._read, name="helper-reader", daemon=True)
        self._writer.start()
        self._reader.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` in the helper after everything submitted before."""
        payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        future: Future[Any] = Future()
        with self._lock:
            if self._failed is not None:
                raise self._failed
            self._pending.append(future)
        self._outbox.put(payload)
        return future

    def close(self) -> None:
        """Let the helper finish what was submitted, then end it."""
        self._outbox.put(None)
        self._writer.join()
        self._reader.join()
        self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def _write(self) -> None:
        stream = self._proc.stdin
        assert stream is not None
        try:
            while (payload := self._outbox.get()) is not None:
                stream.write(_LENGTH.pack(len(payload)))
                stream.write(payload)
                stream.flush()
        except OSError:
            pass  # the helper is gone: the reader fails the pending futures
        finally:
            with suppress(OSError):
                stream.close()

    def _read(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        try:
            while (data := _read_frame(stream)) is not None:
                ok, value = pickle.loads(data)
                with self._lock:
                    future = self._pending.popleft()
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        except Exception as exc:  # a broken frame: treat as the helper's end
            reason: str = f"unreadable answer ({exc!r})"
            # and make it so: nobody reads its answers any more, and a helper blocked
            # writing one would never read the end of its input (close() would wait forever)
            with suppress(OSError):
                self._proc.kill()
        else:
            reason = "it exited"
        with self._lock:
            self._failed = HelperFailed(f"the helper process ended: {reason}")
            pending = list(self._pending)
            self._pending.clear()
        for future in pending:
            future.set_exception(self._failed)


def _read_frame(stream: IO[bytes]) -> bytes | None:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


@contextmanager
def helper_process() -> Iterator[Helper | None]:
    """A :class:`Helper` for the block, or None (do the work here) when this process may
    use one CPU only or the helper does not start."""
    if helper_cpus() < 2:
        yield None
        return
    with own_helper() as helper:
        yield helper


@contextmanager
def own_helper() -> Iterator[Helper | None]:
    """A :class:`Helper` of its own for the block, however many CPUs there are, for work
    that must run in a process other than this one (see
    :func:`cutru.store.page_groups.group_snapshot`); None when it does not start."""
    helper = Helper()
    try:
        helper.submit(int).result(timeout=_START_TIMEOUT)
    except (HelperFailed, TimeoutError):
        helper._proc.kill()
        helper.close()
        yield None
        return
    try:
        yield helper
    finally:
        helper.close()


def _serve() -> None:
    """The helper's loop: read a call, run it, write its result, until the input ends."""
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the answers
    # Ctrl-C reaches the whole process group: the caller decides, and closing our input ends us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while (data := _read_frame(source)) is not None:
        try:
            # a call's objects (a chunk's rows, its persons to prepare) live until it
            # answers and make no cycles: the collector runs between calls
            with collector_paused():
                fn, args = pickle.loads(data)
                answer = pickle.dumps((True, fn(*args)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # sent back to the caller, whatever it is
            try:
                answer = pickle.dumps((False, exc), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                answer = pickle.dumps((False, HelperFailed(repr(exc))))
        try:
            sink.write(_LENGTH.pack(len(answer)))
            sink.write(answer)
            sink.flush()
        except BrokenPipeError:  # the caller is gone
            return
