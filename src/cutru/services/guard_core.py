"""The core of the guard: the one decision call, refusals, resources, abuse screening and
audit records. :mod:`cutru.services.guard` builds the reads, writes, grants and audit views
on it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, select

from cutru.access import abuse
from cutru.access.decision import AccessRequest, Decision, Declaration, Resource, decide
from cutru.access.policy import Policy, ResourceKind
from cutru.access.principals import Principal
from cutru.errors import AccessDenied, NotFound, Throttled
from cutru.journal.audit_record import AuditRecord
from cutru.journal.entry import Entry
from cutru.services.registry import Registry
from cutru.store import audit_store
from cutru.store.schema import households, persons, residences

#: Record sections and the person field whose permission they follow.
SECTIONS = {"residences": "residence_file_no", "stays": "residence_file_no",
            "absences": "residence_file_no", "household": "residence_file_no",
            "id_numbers": "id_number", "corrections": "full_name"}


class GuardCore:
    """State and internals shared by the guard's parts."""

    def __init__(self, registry: Registry, policy: Policy) -> None:
        self.registry = registry
        self.policy = policy
        self.clock = registry.clock

    def _screen(self, principal: Principal, subjects: list[str]) -> None:
        """Abuse rules before personal data leaves: a crossing throttles and alerts."""
        error: Throttled | None = None
        with self.registry.db.begin() as conn:
            try:
                hit = abuse.check(conn, principal, subjects=subjects, now=self.clock(),
                                  rate_per_minute=self.registry.settings.rate_per_minute)
                if hit is not None:
                    error = abuse.raise_alert(conn, principal, hit[0], hit[1], self.clock())
            except Throttled as exc:
                error = exc
            if error is not None:
                self._audit(conn, principal, "deny", "denied", error.reason,
                            detail={"rule": error.reason})
        if error is not None:
            raise error

    def _decide(self, principal: Principal, purpose: Declaration, action: str,
                resource: Resource) -> Decision:
        return decide(principal, AccessRequest(action, purpose), resource, self.policy,
                      now=self.clock())

    def _require(self, principal: Principal, purpose: Declaration, decision: Decision,
                 action: str, subjects: list[str]) -> None:
        if decision.allowed:
            return
        hidden = decision.reason == "not_found"  # not even the audit trail names the record
        with self.registry.db.begin() as conn:
            self._audit(conn, principal, "deny", "denied", decision.reason, purpose=purpose,
                        subjects=[] if hidden else subjects,
                        detail={"action": action, "checks": ",".join(decision.checks)})
        if hidden:
            raise absent()
        raise AccessDenied(decision.message, reason=decision.reason)

    def _person_resource(self, person_key: str) -> Resource:
        with self.registry.db.read() as conn:
            row = conn.execute(select(persons.c.secret_label).where(persons.c.key == person_key)
                               ).first()
            if row is None:
                return Resource.absent(ResourceKind.PERSON, person_key)
            communes = {str(r[0]) for r in conn.execute(
                select(residences.c.commune_code).where(residences.c.person_key == person_key)
                .where(residences.c.status == "active"))}
        return Resource(ResourceKind.PERSON, person_key, frozenset(communes), bool(row[0]))

    def _write_resource(self, operation: str, arguments: dict[str, Any]) -> Resource:
        """Where a transaction acts: the address it registers at, else the person's
        communes, else the household's."""
        communes: set[str] = set()
        for name in ("commune_code", "old_commune_code", "new_commune_code"):
            if arguments.get(name):
                communes.add(str(arguments[name]))
        key = arguments.get("person_key")
        if isinstance(key, str):
            res = self._person_resource(key)
            if not res.exists:
                return res
            communes |= res.commune_codes
            return Resource(ResourceKind.PERSON, key, frozenset(communes), res.secret_label)
        hh = arguments.get("household_key")
        if isinstance(hh, str):
            with self.registry.db.read() as conn:
                row = conn.execute(select(households.c.commune_code)
                                   .where(households.c.key == hh)).first()
            if row is not None:
                communes.add(str(row[0]))
        kind = ResourceKind.HOUSEHOLD if operation.startswith("household.") else \
            ResourceKind.PERSON
        return Resource(kind, None, frozenset(communes))

    def _write(self, principal: Principal, purpose: Declaration, action: str,
               resource: Resource, operation: str, *, subjects: list[str],
               **arguments: Any) -> Any:
        """Decide, then run ``operation`` with its audit record in the same transaction."""
        decision = self._decide(principal, purpose, action, resource)
        self._require(principal, purpose, decision, action, subjects)

        def audit(conn: Connection, entries: list[Entry]) -> None:
            touched = sorted({s for e in entries for s in e.subjects if s.startswith("P")})
            self._audit(conn, principal, "write", "allowed", decision.reason, purpose=purpose,
                        subjects=touched, journal_seq=entries[-1].seq if entries else None,
                        detail={"operation": operation, "checks": ",".join(decision.checks)})

        basis = purpose.legal_basis or purpose.kind
        return self.registry.transact(principal.id, basis, operation, before_commit=audit,
                                      **arguments)

    def _operator(self, principal: Principal, purpose: Declaration, action: str,
                  view: str) -> None:
        """Decide an operator's view of the backups (no personal data) and audit it."""
        decision = self._decide(principal, purpose, action, Resource(ResourceKind.BACKUP))
        self._require(principal, purpose, decision, action, [])
        with self.registry.db.begin() as conn:
            self._audit(conn, principal, "read", "allowed", decision.reason, purpose=purpose,
                        detail={"view": view})

    def _audit_read(self, principal: Principal, purpose: Declaration, decision: Decision,
                    action: str, subjects: list[str], detail: dict[str, str], *,
                    outcome: str = "allowed", reason: str | None = None,
                    fields: set[str] | None = None) -> None:
        with self.registry.db.begin() as conn:
            self._audit(conn, principal, action, outcome, reason or decision.reason,
                        purpose=purpose, subjects=subjects,
                        fields=sorted(fields if fields is not None else decision.fields),
                        detail={**{k: str(v) for k, v in detail.items()},
                                "checks": ",".join(decision.checks)})

    def _audit(self, conn: Connection, principal: Principal, action: str, outcome: str,
               reason: str, *, purpose: Declaration | None = None,
               subjects: list[str] | None = None, fields: list[str] | None = None,
               journal_seq: int | None = None, detail: dict[str, str] | None = None) -> None:
        hidden = None
        if purpose is not None and purpose.kind == "proceedings" and purpose.case_number:
            hidden = self._hidden_until()
        record = AuditRecord(
            seq=0, ts="", principal=principal.id, principal_kind=principal.kind.value,
            agency=str(principal.unit) if principal.unit else None, action=action,
            outcome=outcome, reason=reason, purpose_kind=purpose.kind if purpose else None,
            legal_basis=purpose.legal_basis if purpose else None,
            case_number=purpose.case_number if purpose else None,
            subjects=tuple(sorted(set(subjects or []))), fields=tuple(sorted(set(fields or []))),
            journal_seq=journal_seq, hidden_until=hidden, detail=dict(detail or {}))
        self._append(conn, record)

    def _append(self, conn: Connection, record: AuditRecord) -> None:
        stored = audit_store.append(conn, record, now=self.clock())
        key = self.registry.signing_key
        if key is not None and stored.seq % self.registry.settings.audit_head_interval == 0:
            audit_store.sign_current_head(conn, key, now=self.clock())

    def _audit_raw(self, conn: Connection, principal_id: str, kind: str, action: str,
                   outcome: str, reason: str) -> None:
        record = AuditRecord(seq=0, ts="", principal=principal_id, principal_kind=kind,
                             agency=None, action=action, outcome=outcome, reason=reason,
                             purpose_kind=None, legal_basis=None, case_number=None,
                             subjects=(), fields=(), journal_seq=None, hidden_until=None,
                             detail={})
        self._append(conn, record)

    def _hidden_until(self) -> str:
        """Investigative lookups stay out of the citizen's access log for a period."""
        from cutru.services.unit import local_date

        days = self.registry.settings.investigation_hidden_days
        return (local_date(self.clock()) + timedelta(days=days)).isoformat()


def system_event(conn: Connection, actor: str, action: str, detail: dict[str, str], *,
                 now: Any, subjects: tuple[str, ...] = (), fields: tuple[str, ...] = (),
                 purpose: str | None = None) -> None:
    """Audit an act done outside a session (the command line, start-up): account and key
    management, policy changes, and a registry administrator's reads on the command line."""
    record = AuditRecord(seq=0, ts="", principal=actor, principal_kind="administrator",
                         agency=None, action=action, outcome="allowed",
                         reason="allowed.administration", purpose_kind=None,
                         legal_basis=purpose, case_number=None,
                         subjects=tuple(sorted(set(subjects))), fields=tuple(sorted(set(fields))),
                         journal_seq=None, hidden_until=None, detail=detail)
    audit_store.append(conn, record, now=now)


def load_policy_audited(registry: Registry) -> Policy:
    """The policy in force (the configured file, else the shipped default); a policy that
    differs from the last one recorded is written to the audit log as a policy change."""
    import hashlib

    from cutru.access.policy import default_policy, load_policy

    path = registry.settings.policy_path
    if path is None:
        policy, text, source = default_policy(), "(shipped default)", "default"
    else:
        text, source = path.read_text(encoding="utf-8"), str(path)
        policy = load_policy(text, source)
    digest = hashlib.sha256(text.encode()).hexdigest()
    with registry.db.begin() as conn:
        last = audit_store.search(conn, action="policy_change", limit=1)
        if not last or last[0].detail.get("sha256") != digest:
            system_event(conn, "system", "policy_change", {"sha256": digest, "source": source},
                         now=registry.clock())
    return policy


def absent() -> NotFound:
    """The one answer for a record that is not there or may not be known to exist."""
    return NotFound("no such person", field="person", rule="exists")


def filter_record(record: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    """Only the allowed fields of a person's record; sections follow :data:`SECTIONS`."""
    out: dict[str, Any] = {"person": {k: v for k, v in record["person"].items()
                                      if k in fields or k == "key"}}
    for section, needs in SECTIONS.items():
        if needs in fields and section in record:
            value = record[section]
            if section == "household" and value:
                value = {**value, "members": [
                    {k: v for k, v in m.items() if k != "id_number" or "id_number" in fields}
                    for m in value["members"]]}
            out[section] = value
    return out


