"""Retries of transient storage errors: exponential backoff with full jitter, bounded attempts.

Attempt ``k`` (from 0) that fails with :class:`~cutru.errors.TransientTargetError` is followed
by a pause drawn uniformly from ``[0, min(max_delay, base_delay * 2**k))`` ("full jitter", so
that many clients that failed together do not retry together). After ``attempts`` failures
the last error is raised. Other errors are not retried: a missing object stays missing.

A save is the one operation whose retry needs thought: if an attempt timed out after the
store had in fact written the object, the retry meets ``ObjectExists``. The wrapper then loads
the object and accepts it if it holds exactly the bytes being saved.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from cutru.backup.targets.base import Handle, Kind, ObjectInfo, Target
from cutru.errors import CutruError, ObjectExists, TransientTargetError

T = TypeVar("T")
log = logging.getLogger(__name__)


class RetryingTarget:
    """Wraps ``inner`` so that every operation is retried on transient errors."""

    def __init__(
        self,
        inner: Target,
        *,
        attempts: int = 5,
        base_delay: float = 0.2,
        max_delay: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.inner = inner
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._uniform = uniform

    @property
    def location(self) -> str:
        return self.inner.location

    def save(self, handle: Handle, data: bytes) -> None:
        failed = False

        def attempt() -> None:
            nonlocal failed
            try:
                self.inner.save(handle, data)
            except TransientTargetError:
                failed = True
                raise
            except ObjectExists:
                if not (failed and self._holds(handle, data)):
                    raise

        self._retry(f"save {handle}", attempt)

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        return self._retry(f"load {handle}", lambda: self.inner.load(handle, offset, length))

    def stat(self, handle: Handle) -> ObjectInfo:
        return self._retry(f"stat {handle}", lambda: self.inner.stat(handle))

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        # A listing is fetched whole, so that a failure half-way is retried from the start.
        return iter(self._retry(f"list {kind.value}", lambda: list(self.inner.list(kind))))

    def remove(self, handle: Handle) -> None:
        self._retry(f"remove {handle}", lambda: self.inner.remove(handle))

    def close(self) -> None:
        self.inner.close()

    def local_file(self, handle: Handle) -> str | None:
        return self.inner.local_file(handle)

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt ``attempt`` (0-based)."""
        return self._uniform() * min(self.max_delay, self.base_delay * 2.0**attempt)

    def _retry(self, what: str, operation: Callable[[], T]) -> T:
        for attempt in range(self.attempts):
            try:
                return operation()
            except TransientTargetError as exc:
                if attempt + 1 == self.attempts:
                    exc.details["attempts"] = self.attempts
                    raise
                pause = self.delay(attempt)
                log.warning("%s on %s failed (%s); retry %d/%d in %.2fs", what, self.location,
                            exc.message, attempt + 1, self.attempts - 1, pause)
                self._sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _holds(self, handle: Handle, data: bytes) -> bool:
        try:
            return self.inner.load(handle) == data
        except CutruError:
            return False
