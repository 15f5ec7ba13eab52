"""Abuse detection: what an attack or an unauthorised access looks like in an audit trail.

Two rules, both counted from the audit log itself (so nothing can read around them):

* **rate**: at most ``rate_per_minute`` audited requests per principal per minute;
* **breadth**: at most ``DISTINCT_PER_HOUR[kind]`` distinct persons read per principal per
  hour, relative to what the role normally needs (an officer registers a commune, an
  investigation reads widely, a citizen reads one record).

Crossing either throttles the principal for the window and raises an alert that is recorded
(``alerts`` table), listable, and exported as a Prometheus metric.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, distinct, func, insert, select

from cutru.access.principals import Principal, PrincipalKind
from cutru.errors import Throttled
from cutru.journal.entry import format_ts
from cutru.store.schema import alerts, audit_log, audit_subjects

WINDOW = timedelta(hours=1)
#: Distinct persons a principal of each kind may read per hour before it is throttled.
DISTINCT_PER_HOUR = {
    PrincipalKind.OFFICER: 300,
    PrincipalKind.COMMUNE_POLICE_HEAD: 300,
    PrincipalKind.AGENCY_PROCEDURAL: 1000,
    PrincipalKind.AGENCY_STATE: 2000,
    PrincipalKind.THIRD_PARTY: 20,
    PrincipalKind.CITIZEN: 5,
}
READ_ACTIONS = ("read", "search", "export")


def throttled_until(conn: Connection, principal: str, now: datetime) -> str | None:
    found = conn.execute(select(func.max(alerts.c.throttled_until))
                         .where(alerts.c.principal == principal)).scalar()
    return str(found) if found and str(found) > format_ts(now) else None


def check(conn: Connection, principal: Principal, *, subjects: list[str], now: datetime,
          rate_per_minute: int) -> tuple[str, dict[str, Any]] | None:
    """The rule (and its figures) that serving ``subjects`` would cross, if any (persons
    already read in the window do not count again). A principal already throttled is
    refused outright."""
    until = throttled_until(conn, principal.id, now)
    if until is not None:
        raise Throttled(f"throttled until {until} after an abuse alert", reason="denied.throttled")
    minute = format_ts(now - timedelta(minutes=1))
    recent = conn.execute(select(func.count()).select_from(audit_log)
                          .where(audit_log.c.principal == principal.id)
                          .where(audit_log.c.ts >= minute)).scalar() or 0
    if recent + 1 > rate_per_minute:
        return "rate", {"requests_last_minute": recent + 1, "limit": rate_per_minute}
    limit = DISTINCT_PER_HOUR.get(principal.kind)
    if limit is None or not subjects:
        return None
    hour = format_ts(now - WINDOW)
    seen = {str(r[0]) for r in conn.execute(
        select(audit_subjects.c.subject).distinct()
        .select_from(audit_subjects.join(audit_log, audit_log.c.seq == audit_subjects.c.seq))
        .where(audit_log.c.principal == principal.id).where(audit_log.c.ts >= hour)
        .where(audit_log.c.outcome == "allowed")
        .where(audit_log.c.action.in_(READ_ACTIONS)))}
    total = len(seen | set(subjects))
    if total > limit:
        return "distinct_persons", {"distinct_persons_last_hour": total, "limit": limit}
    return None


def raise_alert(conn: Connection, principal: Principal, rule: str, detail: dict[str, Any],
                now: datetime) -> Throttled:
    """Record the alert and throttle the principal for the window; returns the error to
    raise once the caller has committed."""
    until = format_ts(now + WINDOW)
    conn.execute(insert(alerts).values(ts=format_ts(now), principal=principal.id, rule=rule,
                                       detail=json.dumps(detail), throttled_until=until))
    return Throttled(f"abuse rule {rule!r} crossed; throttled until {until}",
                     reason=f"denied.throttled.{rule}")


def list_alerts(conn: Connection, limit: int = 200) -> list[dict[str, Any]]:
    rows = conn.execute(select(alerts).order_by(alerts.c.id.desc()).limit(limit)).mappings()
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


def counts(conn: Connection, now: datetime) -> dict[str, Any]:
    """Figures for the metrics endpoint."""
    by_rule = {str(r[0]): int(r[1]) for r in conn.execute(
        select(alerts.c.rule, func.count()).group_by(alerts.c.rule))}
    throttled = conn.execute(select(func.count(distinct(alerts.c.principal)))
                             .where(alerts.c.throttled_until > format_ts(now))).scalar() or 0
    return {"alerts_by_rule": by_rule, "throttled_principals": int(throttled)}
