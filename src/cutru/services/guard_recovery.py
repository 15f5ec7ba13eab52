"""Restore planning and incidents as the guard serves them (operators; no personal data).

A plan names journal positions, times, digests, snapshots and segments, and who made the
entries around the point (account and operation): never a row image or a person's key.
Applying a restore or a revert stays on the command line, with four eyes
(docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cutru.access.decision import Declaration
from cutru.access.principals import Principal
from cutru.backup.repository import Repository
from cutru.errors import ConfigError
from cutru.recovery import locate
from cutru.services import recovery
from cutru.services import restore as rs
from cutru.services.guard_core import GuardCore
from cutru.store import journal_store


class RecoveryViewsMixin(GuardCore):
    #: opens the backup repository (set by whoever runs the backup schedule)
    backup_repository: Callable[[], Repository] | None = None

    def restore_plan(self, principal: Principal, purpose: Declaration, *, to: str,
                     before: bool = False, generation: str | None = None) -> dict[str, Any]:
        """The restore plan for ``to`` (a position or a time): what ``cutru restore plan``
        prints. Touches nothing."""
        self._operator(principal, purpose, "restore", "restore_plan")
        if self.backup_repository is None:
            raise ConfigError("no backup repository is configured for this server: start it "
                              "with --backup-repo", field="backup_repo",
                              rule="backup.repo_required")
        repo = self.backup_repository()
        try:
            with repo.lock():
                plan = rs.plan(repo, self.registry.public_keys(), to, before=before,
                               generation=generation, live=self.registry.db)
        finally:
            repo.target.close()
        data = plan.to_dict()
        with self.registry.db.read() as conn:
            live = journal_store.last_seq(conn)
            nxt = locate.at(conn, plan.seq + 1) if plan.seq < live else None
        data["live_head"] = live
        data["entries_not_restored"] = max(0, live - plan.seq)
        data["next"] = {"position": nxt.seq, "local_time": locate.local_time(nxt.ts),
                        "actor": nxt.actor, "operation": nxt.operation} if nxt else None
        return data

    def incidents(self, principal: Principal, purpose: Declaration) -> list[dict[str, Any]]:
        """Every incident with its 72-hour clock (summaries are written without personal
        data, as the runbook asks)."""
        self._operator(principal, purpose, "backup_verify", "incidents")
        with self.registry.db.read() as conn:
            return recovery.list_incidents(conn, self.clock())

    def incident(self, principal: Principal, purpose: Declaration, incident_id: str
                 ) -> dict[str, Any]:
        self._operator(principal, purpose, "backup_verify", "incident")
        with self.registry.db.read() as conn:
            return recovery.incident_report(conn, incident_id, self.clock())

    def open_incident(self, principal: Principal, purpose: Declaration, *, trigger: str,
                      fault: str, discovered_at: str, summary: str) -> dict[str, Any]:
        self._operator(principal, purpose, "restore", "incident_open")
        with self.registry.db.begin() as conn:
            ident = recovery.open_incident(conn, trigger=trigger, fault=fault,
                                           discovered_at=discovered_at, summary=summary,
                                           opened_by=principal.id, now=self.clock())
        with self.registry.db.read() as conn:
            return dict(recovery.incident_report(conn, ident, self.clock())["incident"])
