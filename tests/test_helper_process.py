"""The helper process (cutru.journal.helper): an answer this process cannot read ends the
helper, and closing it then returns instead of waiting for a process blocked writing."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cutru.journal.helper import Helper, HelperFailed, helper_cpus


def _refuse_here() -> None:
    raise RuntimeError("this answer cannot be read here")


class _Unreadable:
    """Pickled in the helper; unpickling it (in the caller) raises."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _refuse_here, ()


def unreadable() -> _Unreadable:
    return _Unreadable()


def large(size: int) -> bytes:
    return b"x" * size


pytestmark = pytest.mark.skipif(helper_cpus() < 2, reason="a helper process needs two CPUs")


def test_an_unreadable_answer_ends_the_helper_and_close_returns() -> None:
    helper = Helper()
    try:
        assert helper.submit(large, 3).result(timeout=60) == b"xxx"
        broken = helper.submit(unreadable)
        # an answer far larger than a pipe holds: the helper blocks writing it, since
        # nobody reads its answers once one could not be read
        after = [helper.submit(large, 8 << 20) for _ in range(3)]
        with pytest.raises(HelperFailed, match="unreadable answer"):
            broken.result(timeout=60)
        for future in after:
            with pytest.raises(HelperFailed):
                future.result(timeout=60)
        with pytest.raises(HelperFailed):
            helper.submit(large, 1)
    finally:
        closing = threading.Thread(target=helper.close, daemon=True)
        closing.start()
        closing.join(timeout=60)
    assert not closing.is_alive(), "close() waited for a helper that will never end"
    assert helper._proc.poll() is not None
