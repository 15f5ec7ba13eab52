"""Prometheus exposition of cutru's figures (``prometheus_client``'s text format)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest


def render_metrics(figures: dict[str, Any]) -> str:
    """A fresh registry per scrape: the figures come from the database, not process state."""
    reg = CollectorRegistry()
    alerts = Gauge("cutru_abuse_alerts", "Abuse alerts raised, by rule", ["rule"], registry=reg)
    for rule, count in sorted(figures.get("alerts_by_rule", {}).items()):
        alerts.labels(rule=rule).set(count)
    Gauge("cutru_throttled_principals", "Principals throttled now",
          registry=reg).set(figures.get("throttled_principals", 0))
    Gauge("cutru_audit_records", "Records in the audit log",
          registry=reg).set(figures.get("audit_records", 0))
    Gauge("cutru_journal_entries", "Entries in the journal",
          registry=reg).set(figures.get("journal_entries", 0))
    for name, doc in (("backup_last_snapshot_timestamp", "Unix time of the last snapshot"),
                      ("backup_last_snapshot_bytes", "Bytes in the last snapshot"),
                      ("backup_snapshots", "Snapshots taken by this server"),
                      ("backup_errors", "Backup rounds that failed"),
                      ("backup_archive_lag_entries", "Journal entries not yet archived"),
                      ("backup_last_verified_restorable_timestamp",
                       "Unix time of the last restore drill that proved its digest"),
                      ("backup_last_verified_restorable_age_seconds",
                       "Age of the last verified restorable point (-1: none yet)"),
                      ("backup_restore_drills", "Restore drills passed by this server"),
                      ("integrity_ok", "1 when the last scheduled integrity check passed"),
                      ("integrity_last_check_timestamp",
                       "Unix time of the last scheduled integrity check"),
                      ("integrity_checks_total", "Scheduled integrity checks run")):
        if name in figures:
            Gauge(f"cutru_{name}", doc, registry=reg).set(figures[name])
    return generate_latest(reg).decode()
