"""What long bulk work asks of the Python runtime itself."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a block of bulk work.

    Bulk work (a chunk of an import, a restore's replay) allocates many small objects (rows,
    changes, decoded entries) that live for a while and form no cycles; the collector scans
    them again and again all the same: 10-15% of an import's time here, 20% of a replay's.
    Reference counting still frees them. The collector runs again, as it was, after the
    block."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
