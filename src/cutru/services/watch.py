"""The integrity watch inside ``cutru serve``: the quick check on a schedule, an alert when it
fails (the alerts auditors read, a log line, the metrics ``integrity_ok`` and
``integrity_last_check_timestamp``).

The quick check (:func:`cutru.recovery.integrity.quick_check`) covers the chain since the
newest signed checkpoint, the checkpoints themselves (a journal cut back below one), and the
live tables against the journal's running digest; ``cutru verify`` does the full replay.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import insert

from cutru.errors import CutruError
from cutru.journal.entry import format_ts
from cutru.recovery import integrity
from cutru.services.registry import Registry
from cutru.store.schema import alerts

log = logging.getLogger("cutru.integrity")

#: The principal the watch's alerts are raised under.
WATCH = "system:integrity-watch"


class IntegrityWatch:
    def __init__(self, registry: Registry, interval: float) -> None:
        self.registry = registry
        self.interval = interval
        self.last_ok: bool | None = None
        self.last_at: float | None = None
        self.last_problems: list[dict[str, Any]] = []
        self.checks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_now(self) -> integrity.Report:
        reg = self.registry
        report = reg.quick_check()
        self.checks += 1
        self.last_at = time.time()
        self.last_problems = [{"kind": p.kind, "message": p.message, "seq": p.seq,
                               "table": p.table, "key": p.key, "change": p.change,
                               "since_seq": p.since_seq} for p in report.problems]
        if not report.ok and self.last_ok is not False:  # one alert per failure, not per round
            with reg.db.begin() as conn:
                conn.execute(insert(alerts).values(
                    ts=format_ts(reg.clock()), principal=WATCH, rule="integrity.mismatch",
                    detail=json.dumps({"problems": len(report.problems),
                                       "first": report.problems[0].message[:200]}),
                    throttled_until=None))
            log.error("integrity check failed: %s (and %d more); run `cutru verify`",
                      report.problems[0].message, len(report.problems) - 1)
        self.last_ok = report.ok
        return report

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cutru-integrity", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_now()
            except CutruError as exc:  # a standing duty keeps going; the error is logged
                log.error("integrity check could not run: %s", exc.message)
            self._stop.wait(self.interval)

    def figures(self) -> dict[str, Any]:
        return {"integrity_ok": 1 if self.last_ok else 0,
                "integrity_last_check_timestamp": self.last_at or 0,
                "integrity_checks_total": self.checks}
