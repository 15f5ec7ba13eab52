"""The retrying wrapper, against an in-memory target that fails a set number of times, and the
translation of real S3 and file-system failures into the errors that it retries (or not)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cutru.backup.targets import Handle, Kind, LocalTarget, MemoryTarget, ObjectInfo, RetryingTarget
from cutru.backup.targets.s3 import S3Target
from cutru.errors import (
    ObjectExists,
    ObjectNotFound,
    TargetUnavailable,
    TransientTargetError,
)

from .conftest import connect_s3

H = Handle(Kind.DATA, "0a")


class FlakyTarget(MemoryTarget):
    """Fails the next ``failures`` calls with a transient error; with ``after=True`` a failing
    save first stores the object (the store wrote it, but the reply was lost)."""

    def __init__(self, failures: int, *, after: bool = False) -> None:
        super().__init__()
        self.failures = failures
        self.after = after
        self.calls = 0

    def _fail(self) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise TransientTargetError("simulated timeout")

    def save(self, handle: Handle, data: bytes) -> None:
        if self.after and self.failures > 0:
            super().save(handle, data)
        self._fail()
        super().save(handle, data)

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        self._fail()
        return super().load(handle, offset, length)

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        self._fail()
        return super().list(kind)


def retrying(inner: FlakyTarget, attempts: int = 5) -> tuple[RetryingTarget, list[float]]:
    pauses: list[float] = []
    target = RetryingTarget(inner, attempts=attempts, sleep=pauses.append, uniform=lambda: 1.0)
    return target, pauses


def test_transient_failures_are_retried_with_growing_pauses() -> None:
    inner = FlakyTarget(failures=3)
    target, pauses = retrying(inner)
    target.save(H, b"x")
    assert inner.calls == 4
    assert pauses == [0.2, 0.4, 0.8]  # base · 2^k, at the top of the jitter range
    assert target.load(H) == b"x"


def test_pauses_are_capped_and_jittered() -> None:
    target = RetryingTarget(MemoryTarget(), base_delay=1.0, max_delay=5.0, uniform=lambda: 0.5)
    assert [target.delay(k) for k in range(5)] == [0.5, 1.0, 2.0, 2.5, 2.5]
    real = RetryingTarget(MemoryTarget(), base_delay=1.0, max_delay=5.0)
    samples = {real.delay(3) for _ in range(50)}
    assert len(samples) > 1 and all(0 <= s < 5.0 for s in samples)


def test_gives_up_after_the_last_attempt() -> None:
    inner = FlakyTarget(failures=10)
    target, pauses = retrying(inner, attempts=3)
    with pytest.raises(TransientTargetError) as caught:
        target.load(H)
    assert inner.calls == 3 and len(pauses) == 2
    assert caught.value.details["attempts"] == 3


def test_other_errors_are_not_retried() -> None:
    inner = FlakyTarget(failures=0)
    target, pauses = retrying(inner)
    with pytest.raises(ObjectNotFound):
        target.load(H)
    assert inner.calls == 1 and pauses == []


def test_listing_is_retried_whole() -> None:
    inner = FlakyTarget(failures=0)
    MemoryTarget.save(inner, H, b"x")
    inner.failures = 2
    target, _ = retrying(inner)
    assert [i.handle for i in target.list(Kind.DATA)] == [H]


def test_a_save_that_landed_before_its_timeout_is_accepted() -> None:
    inner = FlakyTarget(failures=1, after=True)
    target, _ = retrying(inner)
    target.save(H, b"payload")  # attempt 1 stored it and "timed out"; attempt 2 sees it exists
    assert inner.load(H) == b"payload"


def test_a_different_object_under_the_name_is_still_refused() -> None:
    inner = FlakyTarget(failures=0)
    MemoryTarget.save(inner, H, b"someone else's")
    inner.failures = 1
    target, _ = retrying(inner)
    with pytest.raises(ObjectExists):
        target.save(H, b"mine")
    calm = FlakyTarget(failures=0)
    MemoryTarget.save(calm, H, b"mine")
    with pytest.raises(ObjectExists):  # no earlier attempt failed: an exact copy is refused too
        retrying(calm)[0].save(H, b"mine")


# --- translation at the boundary -----------------------------------------------------------


def test_s3_unreachable_is_transient() -> None:
    with socket_closed_port() as port:
        target = connect_s3(f"http://127.0.0.1:{port}", "nobucket")
        with pytest.raises(TransientTargetError):
            target.load(H)
        with pytest.raises(TransientTargetError):
            target.save(H, b"x")
        target.close()


def test_s3_missing_bucket_is_unavailable_not_transient(s3_endpoint: str) -> None:
    target = connect_s3(s3_endpoint, "no-such-bucket-here")
    with pytest.raises(TargetUnavailable) as caught:
        target.save(H, b"x")
    assert not isinstance(caught.value, TransientTargetError)
    with pytest.raises(TargetUnavailable):
        list(target.list(Kind.DATA))
    target.close()


def test_local_unwritable_directory_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "data").write_bytes(b"a file where a directory should be")
    target = LocalTarget(tmp_path)
    with pytest.raises(TargetUnavailable) as caught:
        target.save(H, b"x")
    assert not isinstance(caught.value, TransientTargetError)


class socket_closed_port:
    """A port on 127.0.0.1 that nothing listens on (bound, never listening)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        port: int = self.sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_a_local_object_is_named_through_the_retrying_wrapper(
        tmp_path: Path, s3_target: S3Target) -> None:
    """A restore's writer processes read packs straight from a directory repository, which
    `open_target` always wraps for retries: the wrapper names the file the directory holds;
    an object in S3 (a real HTTP endpoint) and one in memory have no file here."""
    handle = Handle(Kind.DATA, "ab" * 32)
    local = LocalTarget(tmp_path)
    local.save(handle, b"pack")
    named = RetryingTarget(local).local_file(handle)
    assert named is not None and Path(named).read_bytes() == b"pack"
    s3_target.save(handle, b"pack")
    assert RetryingTarget(s3_target).local_file(handle) is None
    assert RetryingTarget(MemoryTarget()).local_file(handle) is None
