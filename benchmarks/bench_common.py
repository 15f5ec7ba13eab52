"""Shared plumbing of the benchmark: progress display, the clock, timing statistics."""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cutru.store.schema import persons

#: The generator's reference date (the issue fixes it) and the journal clock's start on it:
#: 08:00 in Vietnam, so that a long run still stays inside that local day.
TODAY = date(2026, 11, 27)
CLOCK_START = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)

#: Rows per executemany / COPY chunk when peers copy tables (bounds memory at 1M persons).
CHUNK = 50_000

console = Console(stderr=True)

#: The column a bare lookup by ID number reads: the keyed blind index when the ID number is
#: stored encrypted, else the ID number itself. The peer queries it with stored values.
LOOKUP_COLUMN = "id_number_bidx" if "id_number_bidx" in persons.c else "id_number"


class BenchClock:
    """The journal's clock: real elapsed time, counted from :data:`CLOCK_START`.

    Transactions judge dates against the clock's local date; pinning it to :data:`TODAY`
    keeps the synthetic records (made relative to that date) valid on any day the benchmark
    runs, while entry times still advance as in a real import.
    """

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def __call__(self) -> datetime:
        return CLOCK_START + timedelta(seconds=time.monotonic() - self._t0)


class Steps:
    """A Rich progress display; on a non-terminal (nohup, CI) it prints progress lines."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=console, transient=True)
        self.lines = not console.is_terminal

    def __enter__(self) -> Steps:
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def note(self, message: str) -> None:
        self.progress.console.print(message)

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A bar for one phase; yields ``advance(n)``."""
        task_id = self.progress.add_task(description, total=total)
        done = 0
        started = last = time.monotonic()
        if self.lines:
            self.note(f"  {description} …")

        def advance(n: int = 1) -> None:
            nonlocal done, last
            done += n
            self.progress.advance(task_id, n)
            now = time.monotonic()
            if self.lines and now - last >= 30:
                last = now
                of = f"/{total:,}" if total else ""
                self.note(f"    {description}: {done:,}{of} after {now - started:,.0f} s")

        try:
            yield advance
        finally:
            self.progress.remove_task(task_id)


def latency(samples: list[float]) -> dict[str, float]:
    """Median, p99 (nearest rank), mean and max of durations in seconds, in milliseconds."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    n = len(ordered)
    p99 = ordered[min(n - 1, math.ceil(0.99 * n) - 1)]
    return {"n": n, "median_ms": statistics.median(ordered) * 1e3, "p99_ms": p99 * 1e3,
            "mean_ms": statistics.fmean(ordered) * 1e3, "max_ms": ordered[-1] * 1e3}


def cpu_model() -> str:
    """The processor's name, for the report's machine table."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf
