"""Incidents, surgical revert, scoped restore and rebuild (docs/operations.md).

Every recovery belongs to an **incident**: what triggered it (the data destroyed, a
cyber-attack, unauthorised access: Decree 62/2021 Art. 14(3)), the fault (an error, damage, an
improper adjustment), when it was discovered -- which starts the 72-hour notification clock of
Decree 13/2023/NĐ-CP Art. 23 -- and a trail of events: points chosen, requests, approvals, what
changed.

A revert or scoped restore is requested (the preview is computed and its digest stored), then
approved by a *different* person, who signs in to approve; the plan is recomputed at approval
and must be the one previewed. Applying writes **one** compensating journal entry, in one
transaction with the request's status and the incident's event: after a crash it is either all
there or not at all. The improper entries stay in the journal as evidence.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from cutru.access.principals import Principal, PrincipalKind
from cutru.domain.rules import LAW, violation
from cutru.errors import ConfigError, InputError, NotFound, RevertConflict, RuleViolation
from cutru.journal.entry import Entry, format_ts, parse_ts
from cutru.recovery.locate import Query, find, local_time, parse_moment
from cutru.recovery.revert import (
    Compensation,
    Plan,
    Resolution,
    Scope,
    plan_revert,
    plan_scoped,
    subjects_of,
)
from cutru.services import households as hh_ops
from cutru.services.registry import Registry
from cutru.services.unit import Tx
from cutru.store.schema import (
    PROJECTION_BY_NAME,
    household_members,
    incident_events,
    incidents,
    recovery_requests,
    residences,
)
from cutru.store.schema import (
    households as hh_table,
)

TRIGGERS = ("destroyed", "cyber_attack", "unauthorised_access")
FAULTS = ("error", "damage", "improper_adjustment")
NOTIFY_HOURS = 72
#: Who may approve a recovery: the commune-police head and the registry's administrator.
APPROVERS = frozenset({PrincipalKind.COMMUNE_POLICE_HEAD, PrincipalKind.ADMINISTRATOR})
ARTICLE = "Decree 62/2021/NĐ-CP Art. 14(3)"
MAX_SELECTION = 100_000


# --- incidents -------------------------------------------------------------------------------


def _choice(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise InputError(f"{field} must be one of {', '.join(allowed)}", field=field,
                         rule=f"incident.{field}")
    return value


def notification_clock(discovered_at: str, now: datetime) -> dict[str, Any]:
    """The 72-hour clock from discovery: deadline, hours left (negative: overdue)."""
    deadline = parse_ts(discovered_at) + timedelta(hours=NOTIFY_HOURS)
    left = (deadline - now).total_seconds() / 3600
    return {"deadline": format_ts(deadline), "deadline_local": local_time(format_ts(deadline)),
            "hours_left": round(left, 1), "overdue": left < 0}


def open_incident(conn: Connection, *, trigger: str, fault: str, discovered_at: str,
                  summary: str, opened_by: str, now: datetime) -> str:
    _choice(trigger, TRIGGERS, "trigger")
    _choice(fault, FAULTS, "fault")
    found = parse_moment(discovered_at, field="discovered_at")
    if found > format_ts(now):
        raise InputError("discovered_at is in the future", field="discovered_at",
                         rule="incident.discovered_not_future")
    if not summary.strip():
        raise InputError("summary is required", field="summary", rule="required")
    ident = f"INC-{now.strftime('%Y%m%d')}-{secrets.token_hex(3)}"
    conn.execute(insert(incidents).values(
        id=ident, trigger=trigger, fault=fault, discovered_at=found, opened_at=format_ts(now),
        opened_by=opened_by, summary=summary.strip(), status="open"))
    add_event(conn, ident, actor=opened_by, kind="opened", now=now,
              detail={"trigger": trigger, "fault": fault, "discovered_at": found})
    return ident


def add_event(conn: Connection, incident_id: str, *, actor: str, kind: str, now: datetime,
              detail: dict[str, Any]) -> None:
    conn.execute(insert(incident_events).values(
        incident_id=incident_id, ts=format_ts(now), actor=actor, kind=kind,
        detail=json.dumps(detail, sort_keys=True, ensure_ascii=False)))


def require_open(conn: Connection, incident_id: str) -> dict[str, Any]:
    row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).mappings().first()
    if row is None:
        raise NotFound(f"no incident {incident_id}: open one with `cutru incident open`",
                       field="incident", rule="incident.exists")
    if row["status"] != "open":
        raise RuleViolation(f"incident {incident_id} is closed", rule="incident.open",
                            article=ARTICLE)
    return dict(row)


def set_point(conn: Connection, incident_id: str, seq: int) -> None:
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(point_seq=seq))


def close_incident(conn: Connection, incident_id: str, *, actor: str, now: datetime,
                   note: str) -> None:
    require_open(conn, incident_id)
    pending = conn.execute(select(recovery_requests.c.id).where(
        recovery_requests.c.incident_id == incident_id,
        recovery_requests.c.status == "pending")).scalars().all()
    if pending:
        raise RuleViolation(f"incident {incident_id} still has pending requests: "
                            f"{', '.join(pending)}", rule="incident.no_pending",
                            article=ARTICLE)
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(
        status="closed", closed_at=format_ts(now), closed_by=actor))
    add_event(conn, incident_id, actor=actor, kind="closed", now=now, detail={"note": note})


def list_incidents(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    rows = conn.execute(select(incidents).order_by(incidents.c.opened_at.desc())).mappings()
    return [_incident_dict(dict(r), now) for r in rows]


def _incident_dict(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {**row, "discovered_local": local_time(row["discovered_at"]),
            "notification": notification_clock(row["discovered_at"], now)}


def incident_report(conn: Connection, incident_id: str, now: datetime) -> dict[str, Any]:
    """The whole incident: record, 72-hour clock, events, requests (no row images)."""
    row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).mappings().first()
    if row is None:
        raise NotFound(f"no incident {incident_id}", field="incident", rule="incident.exists")
    events = [{**dict(e), "detail": json.loads(e["detail"])} for e in conn.execute(
        select(incident_events).where(incident_events.c.incident_id == incident_id)
        .order_by(incident_events.c.id)).mappings()]
    requests = [_request_dict(dict(r)) for r in conn.execute(
        select(recovery_requests).where(recovery_requests.c.incident_id == incident_id)
        .order_by(recovery_requests.c.requested_at)).mappings()]
    return {"incident": _incident_dict(dict(row), now), "events": events,
            "requests": requests}


def _request_dict(row: dict[str, Any]) -> dict[str, Any]:
    params = json.loads(row["params"])
    params.pop("resolutions", None)  # stated values may hold personal data
    return {**row, "params": params,
            "result": json.loads(row["result"]) if row["result"] else None}


def render_report(report: dict[str, Any]) -> str:
    """The incident report as Markdown, for the notification and the file."""
    inc, clock = report["incident"], report["incident"]["notification"]
    lines = [f"# Incident {inc['id']}", "",
             f"- Trigger: {inc['trigger']}", f"- Fault: {inc['fault']}",
             f"- Discovered: {inc['discovered_local']} ({inc['discovered_at']})",
             f"- Opened by: {inc['opened_by']} at {local_time(inc['opened_at'])}",
             f"- Status: {inc['status']}",
             f"- Restore point chosen: "
             f"{inc['point_seq'] if inc['point_seq'] is not None else 'none yet'}",
             f"- 72-hour notification deadline (Decree 13/2023 Art. 23): "
             f"{clock['deadline_local']}"
             + (" (OVERDUE)" if clock["overdue"] else f" ({clock['hours_left']} h left)"),
             "", "## Summary", "", inc["summary"], "", "## Events", ""]
    for e in report["events"]:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(e["detail"].items()))
        lines.append(f"- {local_time(e['ts'])} {e['actor']}: {e['kind']} ({detail})")
    lines += ["", "## Recovery requests", ""]
    for r in report["requests"]:
        lines.append(f"- {r['id']} {r['kind']} requested by {r['requested_by']}, "
                     f"{r['status']}" + (f", approved by {r['approved_by']}"
                                         if r["approved_by"] else "")
                     + f"; legal basis: {r['legal_basis']}")
        if r["result"]:
            lines.append(f"  - result: {json.dumps(r['result'], sort_keys=True)}")
    return "\n".join(lines) + "\n"


# --- revert and scoped restore ----------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    id: str
    kind: str
    plan: Plan


def select_entries(conn: Connection, query: Query) -> list[int]:
    found = find(conn, query, limit=MAX_SELECTION + 1)
    if len(found) > MAX_SELECTION:
        raise InputError(f"the selection matches more than {MAX_SELECTION} entries; narrow it",
                         field="select", rule="recovery.selection_size")
    return [m.seq for m in found]


def _resolutions(raw: dict[str, Any]) -> dict[str, Resolution]:
    out = {}
    for name, r in raw.items():
        table, _, key = name.partition(":")
        out[name] = Resolution.parse(json.dumps(r) if isinstance(r, dict) else str(r),
                                     table, key)
    return out


def compute_plan(conn: Connection, kind: str, params: dict[str, Any]) -> Plan:
    """The plan of a request from its stored parameters (at request and at approval)."""
    if kind == "revert":
        return plan_revert(conn, params["positions"], _resolutions(params.get("resolutions",
                                                                              {})))
    if kind == "scoped":
        return plan_scoped(conn, Scope.parse(params["scope"]), int(params["point"]))
    raise InputError(f"unknown recovery kind {kind!r}", field="kind", rule="recovery.kind")


class Recovery:
    """Requests, approvals and their application over one registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def preview(self, kind: str, params: dict[str, Any]) -> Plan:
        with self.registry.db.read() as conn:
            return compute_plan(conn, kind, params)

    def request(self, kind: str, params: dict[str, Any], *, incident: str, requested_by: str,
                legal_basis: str) -> Request:
        """Store a pending request with the digest of its preview. A plan with unresolved
        conflicts is refused (:class:`RevertConflict` lists them)."""
        if not legal_basis.strip():
            raise InputError("a recovery needs its legal basis", field="legal_basis",
                             rule="recovery.legal_basis")
        now = self.registry.clock()
        with self.registry.db.begin() as conn:
            require_open(conn, incident)
            _principal(conn, requested_by, "requested_by")
            plan = compute_plan(conn, kind, params)
            if not plan.applicable:
                raise RevertConflict(
                    f"{len(plan.conflicts)} row(s) were changed again after the entries to "
                    "revert; resolve each with --resolve TABLE:KEY=skip|before|<json>",
                    conflicts=[c.row for c in plan.conflicts])
            ident = f"R-{now.strftime('%Y%m%d')}-{secrets.token_hex(3)}"
            conn.execute(insert(recovery_requests).values(
                id=ident, incident_id=incident, kind=kind, requested_by=requested_by,
                requested_at=format_ts(now), legal_basis=legal_basis.strip(),
                params=json.dumps(params, sort_keys=True, ensure_ascii=False),
                plan_digest=plan.digest(), status="pending"))
            add_event(conn, incident, actor=requested_by, kind=f"{kind}_requested", now=now,
                      detail={"request": ident, "rows": len(plan.compensations),
                              "entries": len(plan.selected), "plan_digest": plan.digest(),
                              **({"point": plan.point} if plan.point is not None else {})})
            if plan.point is not None:
                set_point(conn, incident, plan.point)
        return Request(ident, kind, plan)

    def pending(self) -> list[dict[str, Any]]:
        with self.registry.db.read() as conn:
            return [_request_dict(dict(r)) for r in conn.execute(
                select(recovery_requests).where(recovery_requests.c.status == "pending")
                .order_by(recovery_requests.c.requested_at)).mappings()]

    def approve(self, request_id: str, approver: Principal) -> dict[str, Any]:
        """Apply a pending request as its approver (authenticated by the caller)."""
        with self.registry.db.read() as conn:
            req = _load_request(conn, request_id)
            require_open(conn, req["incident_id"])
        self.check_approver(approver, req["requested_by"])
        params = json.loads(req["params"])
        result: dict[str, Any] = {}
        now = self.registry.clock()

        def finish(conn: Connection, entries: list[Entry]) -> None:
            seqs = [e.seq for e in entries]
            result.update({"journal_seq": seqs[-1] if seqs else None})
            body = json.dumps(result, sort_keys=True)
            done = conn.execute(update(recovery_requests).where(
                recovery_requests.c.id == request_id,
                recovery_requests.c.status == "pending").values(
                status="applied", approved_by=approver.id, decided_at=format_ts(now),
                result=body))
            if done.rowcount != 1:
                raise RuleViolation(f"request {request_id} was decided meanwhile",
                                    rule="recovery.pending", article=ARTICLE)
            add_event(conn, req["incident_id"], actor=approver.id,
                      kind=f"{req['kind']}_applied", now=now,
                      detail={"request": request_id, **result})

        def fn(tx: Tx) -> None:
            plan = compute_plan(tx.conn, req["kind"], params)
            if plan.digest() != req["plan_digest"]:
                raise RevertConflict(
                    "the registry changed since this request was previewed: the plan is no "
                    "longer the one requested; preview and request again",
                    request=request_id)
            apply_compensations(tx, plan.compensations)
            result.update({"rows": len(plan.compensations), "entries": len(plan.selected),
                           "plan_digest": plan.digest()})

        purpose = (f"{req['legal_basis']} [incident {req['incident_id']}; request {request_id};"
                   f" requested by {req['requested_by']}; approved by {approver.id}]")
        try:
            self.registry.run(approver.id, purpose, f"recovery.{req['kind']}", fn, finish)
        except IntegrityError as exc:
            raise violation("recovery.consistent", f"{LAW} Art. 10",
                            "applying the plan would break a uniqueness rule of the registry "
                            f"({str(exc.orig).splitlines()[0]}); resolve the rows differently"
                            ) from None
        return result

    def refuse(self, request_id: str, actor: str, reason: str) -> None:
        now = self.registry.clock()
        with self.registry.db.begin() as conn:
            req = _load_request(conn, request_id)
            conn.execute(update(recovery_requests).where(recovery_requests.c.id == request_id)
                         .values(status="refused", approved_by=actor,
                                 decided_at=format_ts(now),
                                 result=json.dumps({"reason": reason})))
            add_event(conn, req["incident_id"], actor=actor, kind=f"{req['kind']}_refused",
                      now=now, detail={"request": request_id, "reason": reason})

    def authenticate(self, principal_id: str, password: str) -> Principal:
        """Check an approver's password (a session is opened and closed at once, both
        audited as a sign-in)."""
        from cutru.access import identities

        with self.registry.db.begin() as conn:
            login = identities.login(conn, principal_id, password, now=self.registry.clock(),
                                     ttl=timedelta(minutes=1))
            identities.logout(conn, login.token)
        return login.principal

    def check_approver(self, approver: Principal, requested_by: str) -> None:
        if approver.id == requested_by:
            raise violation("recovery.four_eyes", ARTICLE,
                            "the approver must be a different person from the requester",
                            requester=requested_by)
        if approver.kind not in APPROVERS:
            raise violation("recovery.approver_role", ARTICLE,
                            f"a {approver.kind.value} may not approve a recovery; "
                            "ask the commune-police head or the administrator")

    def swap_in(self, restored_url: str, *, incident: str, requested_by: str,
                approver: Principal, legal_basis: str, generation: int | None = None
                ) -> dict[str, Any]:
        """Make a restored database the live one (see :mod:`cutru.services.restore`)."""
        from cutru.services import restore as rs
        from cutru.store.engine import Database

        self.check_approver(approver, requested_by)
        rs.require_not_serving(self.registry.settings)
        if not legal_basis.strip():
            raise InputError("a restore needs its legal basis", field="legal_basis",
                             rule="recovery.legal_basis")
        live_ok = True
        try:
            with self.registry.db.read() as conn:
                require_open(conn, incident)
                _principal(conn, requested_by, "requested_by")
                old_head = rs.head_of(conn)
        except ConfigError:  # the live database is damaged or gone: nothing to carry over
            live_ok = False
            old_head = (0, "")
        restored = Database(restored_url)
        try:
            head = rs.check_restored(restored)
        finally:
            restored.dispose()
        carried = rs.carry_over(self.registry.db, restored_url) if live_ok else 0
        now = self.registry.clock()
        restored = Database(restored_url)
        try:
            with restored.begin() as conn:
                require_open(conn, incident)
                detail = {"position": head[0], "state_digest": head[2],
                          "replaced_head": old_head[0], "legal_basis": legal_basis,
                          "requested_by": requested_by, "carried_rows": carried}
                add_event(conn, incident, actor=approver.id, kind="restore_swapped", now=now,
                          detail=detail)
                set_point(conn, incident, head[0])
                rs.record_restored_from(conn, generation, head[0], head[1])
        finally:
            restored.dispose()
        rs.intent(self.registry.settings, restored_url=restored_url, head=head,
                  incident=incident, now=now)
        self.registry.db.dispose()
        kept = rs.swap_files(self.registry.settings.url, restored_url, now)
        outcome = self.registry.finish_swap() or {}
        return {"position": head[0], "state_digest": head[2], "kept_as": kept,
                "replaced_head": old_head[0], "dropped_entries": max(0, old_head[0] - head[0]),
                "carried_rows": carried, "outcome": outcome.get("outcome", "swapped")}

    def rebuild(self, incident: str, actor: str) -> str:
        """Rebuild the projection from the journal, as part of an incident."""
        with self.registry.db.read() as conn:
            require_open(conn, incident)
        digest = self.registry.rebuild()
        with self.registry.db.begin() as conn:
            add_event(conn, incident, actor=actor, kind="rebuilt",
                      now=self.registry.clock(), detail={"digest": digest})
        return digest


def _load_request(conn: Connection, request_id: str) -> dict[str, Any]:
    row = conn.execute(select(recovery_requests).where(recovery_requests.c.id == request_id)
                       ).mappings().first()
    if row is None:
        raise NotFound(f"no recovery request {request_id}", field="request",
                       rule="recovery.request_exists")
    if row["status"] != "pending":
        raise RuleViolation(f"request {request_id} is {row['status']}, not pending",
                            rule="recovery.pending", article=ARTICLE)
    return dict(row)


def _principal(conn: Connection, principal_id: str, field: str) -> None:
    from cutru.access import identities

    try:
        identities.get_principal(conn, principal_id)
    except NotFound:
        raise NotFound(f"no account {principal_id!r}", field=field,
                       rule="principal.exists") from None


def apply_compensations(tx: Tx, compensations: list[Compensation]) -> None:
    """Write a plan's rows (deletes, then updates, then inserts, so uniqueness holds in
    between), then re-check the invariants of every person and household it touched."""
    order = {"delete": 0, "update": 1, "insert": 2}

    def step(c: Compensation) -> str:
        return "insert" if c.current is None else "delete" if c.target is None else "update"

    for c in sorted(compensations, key=lambda c: order[step(c)]):
        table = PROJECTION_BY_NAME[c.table]
        what = step(c)
        if what == "insert":
            assert c.target is not None
            tx.rows.insert(table, c.target)
        elif what == "delete":
            tx.rows.delete(table, c.key)
        else:
            assert c.target is not None
            tx.rows.update(table, c.key, **{k: v for k, v in c.target.items() if k != "key"})
    tx.rows.flush()
    people, households = subjects_of(compensations)
    tx.touch(*sorted(people), *sorted(households))
    for hk in sorted(households):
        if tx.rows.get(hh_table, hk) is None and tx.select(household_members, household_key=hk):
            raise violation("household.exists", f"{LAW} Art. 10",
                            "the result would leave members in a household that no longer "
                            "exists", household_key=hk)
        hh_ops.check_invariants(tx, hk)
    for pk in sorted(people):
        check_person(tx, pk)


def check_person(tx: Tx, person_key: str) -> None:
    """The residence invariants of domain.md §3 for one person."""
    active = [r for r in tx.select(residences, person_key=person_key)
              if r["status"] == "active"]
    perm = [r for r in active if r["kind"] == "permanent"]
    temp = [r for r in active if r["kind"] == "temporary"]
    if len(perm) > 1:
        raise violation("permanent.already_registered", f"{LAW} Art. 20",
                        "the result would give the person two active permanent residences",
                        person_key=person_key)
    if len(temp) > 1:
        raise violation("temporary.one_active", f"{LAW} Art. 27",
                        "the result would give the person two active temporary residences",
                        person_key=person_key)
    if perm and temp and perm[0]["commune_code"] == temp[0]["commune_code"]:
        raise violation("temporary.outside_permanent_commune", f"{LAW} Art. 27(1)",
                        "the result would put a temporary residence in the commune of the "
                        "permanent one", person_key=person_key)
    if perm and perm[0].get("household_key"):
        member = tx.select(household_members, person_key=person_key)
        if not member or member[0]["household_key"] != perm[0]["household_key"]:
            raise violation("household.member_of_permanent", f"{LAW} Art. 10",
                            "the result would leave the person outside the household of "
                            "their permanent residence", person_key=person_key)
