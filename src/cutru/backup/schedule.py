"""Backup as a standing duty inside ``cutru serve``: continuous journal archiving and
snapshots on a schedule, each in a thread with a repository of its own, and the figures the
metrics endpoint reports (last snapshot time and size, archiving lag).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutru.backup.archive import Archiver
from cutru.backup.repository import Repository
from cutru.backup.service import restore_drill
from cutru.backup.snapshot import read_checkpoint_file, take_snapshot
from cutru.errors import CutruError
from cutru.journal.signing import SigningKey
from cutru.store import journal_store
from cutru.store.engine import Database

log = logging.getLogger("cutru.backup")

DRILL_HISTORY = 20


@dataclass
class BackupStatus:
    """What the schedule has done, for the metrics endpoint and the operator pages."""

    last_snapshot_at: float | None = None  # Unix time
    last_snapshot_name: str | None = None
    last_snapshot_bytes: int = 0
    last_snapshot_new_bytes: int = 0
    snapshots: int = 0
    last_verified_at: float | None = None  # the last restore drill that proved its digest
    last_verified_snapshot: str | None = None
    last_drill_ms: int = 0
    drills: int = 0
    last_error: str | None = None
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: the newest drills, passed or failed: when, point restored, duration
    drill_history: list[dict[str, Any]] = field(default_factory=list)


class BackupSchedule:
    """Archive the journal every ``archive_interval`` seconds and snapshot every
    ``snapshot_interval`` seconds (one at start). ``open_repository`` gives each thread a
    repository of its own: a repository is not shared between threads."""

    def __init__(self, db: Database, open_repository: Callable[[], Repository],
                 signer: SigningKey, *, public_keys: dict[str, bytes],
                 external_checkpoint_path: Path | None, snapshot_interval: float,
                 archive_interval: float) -> None:
        self.db = db
        self.open_repository = open_repository
        self.signer = signer
        self.external_checkpoint_path = external_checkpoint_path
        self.snapshot_interval = snapshot_interval
        self.public_keys = public_keys
        self.status = BackupStatus()
        self.archiver = Archiver(db, open_repository(), signer, public_keys=public_keys,
                                 external_checkpoint_path=external_checkpoint_path)
        self._archive_interval = archive_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()

    def start(self) -> None:
        self.archiver.start(self._archive_interval)
        self._thread = threading.Thread(target=self._snapshots, name="cutru-snapshots",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.archiver.stop()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def snapshot_now(self, repo: Repository) -> None:
        external = read_checkpoint_file(self.external_checkpoint_path) \
            if self.external_checkpoint_path else None
        with repo.lock():
            info = take_snapshot(self.db, repo, self.signer, external_checkpoint=external)
        self.status.last_snapshot_at = time.time()
        self.status.last_snapshot_name = info.name
        self.status.last_snapshot_bytes = info.bytes
        self.status.last_snapshot_new_bytes = info.new_bytes
        self.status.snapshots += 1
        log.info("snapshot %s at entry %s", info.name, info.position.seq)

    def drill_now(self, repo: Repository) -> None:
        """Restore the newest snapshot and the archive after it, to a random recent point,
        into a scratch database and prove it against the signed digest: the last *verified
        restorable* point. Every drill, passed or failed, is recorded with its duration."""
        started = time.time()
        try:
            with repo.lock():
                result, _ = restore_drill(repo, self.public_keys, signer=self.signer,
                                          rng=self._rng)
        except Exception as exc:
            self._record_drill({"at": started, "ok": False, "duration_ms":
                                int((time.time() - started) * 1000),
                                "error": exc.message if isinstance(exc, CutruError)
                                else type(exc).__name__})
            raise
        self.status.last_verified_at = time.time()
        self.status.last_verified_snapshot = result.snapshot
        self.status.last_drill_ms = result.duration_ms
        self.status.drills += 1
        self._record_drill({"at": started, "ok": True, "snapshot": result.snapshot,
                            "position": result.position.seq, "rows": result.rows,
                            "duration_ms": result.duration_ms})

    def _record_drill(self, drill: dict[str, Any]) -> None:
        self.status.drill_history.append(drill)
        del self.status.drill_history[:-DRILL_HISTORY]

    def _snapshots(self) -> None:
        while not self._stop.is_set():
            # a fresh repository each round: the archiver writes to the same repository
            # from its own thread, and the drill must see the index files it added
            repo = None
            try:
                repo = self.open_repository()
                self.snapshot_now(repo)
                self.drill_now(self.open_repository())
                self.status.last_error = None
            except Exception as exc:  # a standing duty keeps going; the error is kept
                self.status.errors += 1
                self.status.last_error = exc.message if isinstance(exc, CutruError) \
                    else type(exc).__name__
                log.error("scheduled snapshot failed: %s", self.status.last_error)
            finally:
                if repo is not None:
                    repo.target.close()
            self._stop.wait(self.snapshot_interval)

    def report(self) -> dict[str, Any]:
        """The operator's view: no personal data, only what the duty did and when."""
        st = self.status
        return {"snapshots": st.snapshots, "last_snapshot": st.last_snapshot_name,
                "last_snapshot_at": st.last_snapshot_at, "last_snapshot_bytes":
                st.last_snapshot_bytes, "restore_drills": st.drills,
                "last_verified_restorable_at": st.last_verified_at,
                "last_verified_snapshot": st.last_verified_snapshot,
                "last_drill_ms": st.last_drill_ms, "drills": list(st.drill_history),
                "errors": st.errors,
                "last_error": st.last_error, **self.figures()}

    def figures(self) -> dict[str, Any]:
        """Last snapshot time and size, and how far the archive is behind the journal."""
        with self.db.read() as conn:
            head = journal_store.read_head(conn)
        archived = self.archiver.position.seq if self.archiver.position else 0
        verified = self.status.last_verified_at
        return {
            "backup_last_verified_restorable_timestamp": verified or 0,
            "backup_last_verified_restorable_age_seconds":
                time.time() - verified if verified else -1,
            "backup_restore_drills": self.status.drills,
            "backup_last_snapshot_timestamp": self.status.last_snapshot_at or 0,
            "backup_last_snapshot_bytes": self.status.last_snapshot_bytes,
            "backup_snapshots": self.status.snapshots,
            "backup_errors": self.status.errors + (1 if self.archiver.last_error else 0),
            "backup_archive_lag_entries": max(0, head.seq - archived),
        }
