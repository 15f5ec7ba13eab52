"""The access-controlled face of the registry: every read and write by a principal passes
the one decision function, returns only the fields it allows, and is written to the audit
log (a write's audit record in the same transaction as the write).

The API and the web interface call only this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from cutru.access import abuse, grants, identities
from cutru.access.decision import AccessRequest, Decision, Declaration, Resource, decide
from cutru.access.policy import Policy, ResourceKind
from cutru.access.principals import Principal, PrincipalKind
from cutru.errors import AccessDenied, NotAuthenticated, NotFound, Throttled
from cutru.journal.audit_record import AuditProblem, AuditRecord, record_object, verify_log
from cutru.journal.entry import Entry
from cutru.services.registry import Registry
from cutru.store import audit_store
from cutru.store.schema import audit_log, households, persons, residences

#: Record sections and the person field whose permission they follow.
SECTIONS = {"residences": "residence_file_no", "stays": "residence_file_no",
            "absences": "residence_file_no", "household": "residence_file_no",
            "id_numbers": "id_number", "corrections": "full_name"}


@dataclass(frozen=True)
class Read:
    """A filtered record and the decision that filtered it."""

    data: dict[str, Any]
    decision: Decision


class Guard:
    def __init__(self, registry: Registry, policy: Policy) -> None:
        self.registry = registry
        self.policy = policy
        self.clock = registry.clock

    # -- identities ---------------------------------------------------------------------
    def login(self, principal_id: str, password: str) -> identities.Login:
        ttl = timedelta(minutes=self.registry.settings.session_ttl_minutes)
        try:
            with self.registry.db.begin() as conn:
                login = identities.login(conn, principal_id, password, now=self.clock(),
                                         ttl=ttl)
                self._audit(conn, login.principal, "login", "allowed", "allowed.login")
            return login
        except NotAuthenticated as exc:
            with self.registry.db.begin() as conn:
                self._audit_raw(conn, principal_id, "unknown", "login_failed", "denied",
                                exc.reason)
            raise

    def caller(self, *, token: str | None = None, api_key: str | None = None
               ) -> tuple[Principal, frozenset[str] | None]:
        """The authenticated principal, and for an API key the purposes it is scoped to."""
        with self.registry.db.read() as conn:
            if api_key:
                return identities.authenticate_api_key(conn, api_key)
            if token:
                return identities.authenticate(conn, token, now=self.clock()), None
        raise NotAuthenticated("sign in, or present an API key", reason="denied.no_credentials")

    def check_scope(self, principal: Principal, scopes: frozenset[str] | None,
                    purpose: Declaration) -> None:
        """An API key may declare only the purposes it was issued for (audited if not)."""
        if scopes is None or purpose.kind in scopes:
            return
        with self.registry.db.begin() as conn:
            self._audit(conn, principal, "deny", "denied", "denied.api_key_scope",
                        purpose=purpose, detail={"scopes": ",".join(sorted(scopes))})
        raise AccessDenied(f"this API key is not issued for purpose {purpose.kind!r}",
                           reason="denied.api_key_scope")

    def logout(self, principal: Principal, token: str) -> None:
        with self.registry.db.begin() as conn:
            identities.logout(conn, token)
            self._audit(conn, principal, "logout", "allowed", "allowed.logout")

    # -- reading ------------------------------------------------------------------------
    def read_person(self, principal: Principal, purpose: Declaration, person_key: str, *,
                    as_of: str | None = None) -> Read:
        decision = self._decide(principal, purpose, "read", self._person_resource(person_key))
        self._require(principal, purpose, decision, "read", [person_key])
        self._screen(principal, [person_key])
        record = self.registry.person(person_key, as_of=as_of)
        data = filter_record(record, decision.fields)
        self._audit_read(principal, purpose, decision, "read", [person_key],
                         {"as_of": as_of} if as_of else {})
        return Read(data, decision)

    def history(self, principal: Principal, purpose: Declaration, person_key: str
                ) -> list[dict[str, Any]]:
        """The changes to a person's record: when, by whom, which operation and which
        allowed fields changed (never values)."""
        decision = self._decide(principal, purpose, "read", self._person_resource(person_key))
        self._require(principal, purpose, decision, "read", [person_key])
        self._screen(principal, [person_key])
        changes = self.registry.history(person_key)
        for entry in changes:
            for ch in entry["changes"]:
                ch["fields"] = [f for f in ch["fields"] if f in decision.fields
                                or ch["table"] != "persons"]
        self._audit_read(principal, purpose, decision, "read", [person_key],
                         {"view": "history"}, fields=set())
        return changes

    def household(self, principal: Principal, purpose: Declaration, household_key: str, *,
                  as_of: str | None = None) -> dict[str, Any]:
        """A household with its members, each member decided on their own record."""
        try:
            hh = self.registry.household(household_key, as_of=as_of)
        except NotFound:
            raise _absent() from None
        resource = Resource(ResourceKind.HOUSEHOLD, None, frozenset({hh["commune_code"]}))
        decision = self._decide(principal, purpose, "read", resource)
        self._require(principal, purpose, decision, "read", [])
        members = []
        for m in hh["members"]:
            seen = self._decide(principal, purpose, "read",
                                self._person_resource(m["person_key"]))
            if seen.allowed:
                members.append({k: v for k, v in m.items()
                                if k in seen.fields or k in {"person_key", "relationship",
                                                             "joined_on", "key"}})
        subjects = [m["person_key"] for m in members]
        self._screen(principal, subjects)
        self._audit_read(principal, purpose, decision, "read", subjects,
                         {"view": "household"})
        return {**{k: v for k, v in hh.items() if k != "members"}, "members": members}

    def lookup(self, principal: Principal, purpose: Declaration, id_number: str) -> Read:
        """Find by ID number: a missing and a hidden record give the same answer."""
        try:
            key = self.registry.find(id_number)
        except NotFound:
            decision = self._decide(principal, purpose, "read",
                                    Resource.absent(ResourceKind.PERSON))
            self._require(principal, purpose, decision, "read", [])
            self._audit_read(principal, purpose, decision, "read", [], {"query": "id_number"},
                             outcome="denied", reason="not_found")
            raise _absent() from None
        return self.read_person(principal, purpose, key)

    def search(self, principal: Principal, purpose: Declaration, *, full_name: str,
               birth_year: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Persons by name (and birth year) that this principal may see; the others are not
        reported, so the result leaks nothing about records outside the caller's reach."""
        stmt = select(persons.c.key).where(persons.c.full_name == full_name.strip())
        if birth_year is not None:
            stmt = stmt.where(persons.c.birth_year == birth_year)
        with self.registry.db.read() as conn:
            keys = [str(r[0]) for r in conn.execute(stmt.order_by(persons.c.key).limit(1000))]
        probe = self._decide(principal, purpose, "search", Resource(ResourceKind.PERSON))
        if probe.refused_for_every_record:
            self._require(principal, purpose, probe, "search", [])
        found: list[dict[str, Any]] = []
        fields: set[str] = set()
        shown = probe  # the decision recorded: the last that let a person through
        for key in keys:
            decision = self._decide(principal, purpose, "search", self._person_resource(key))
            if decision.allowed:
                shown = decision
                person = self.registry.person(key)["person"]
                found.append({k: v for k, v in person.items() if k in decision.fields
                              or k == "key"})
                fields |= decision.fields
            if len(found) >= limit:
                break
        self._screen(principal, [f["key"] for f in found])
        self._audit_read(principal, purpose, shown, "search", [f["key"] for f in found],
                         {"query": "name_birth_year"}, fields=fields)
        return found

    # -- writing ------------------------------------------------------------------------
    def transact(self, principal: Principal, purpose: Declaration, operation: str,
                 **arguments: Any) -> Any:
        """Run a transaction if the policy allows ``operation`` for this purpose in the
        commune(s) it touches; its audit record commits with it."""
        resource = self._write_resource(operation, arguments)
        decision = self._decide(principal, purpose, operation, resource)
        subjects = sorted({v for k, v in arguments.items() if k.endswith("person_key")
                           and isinstance(v, str)})
        self._require(principal, purpose, decision, operation, subjects)

        def audit(conn: Connection, entries: list[Entry]) -> None:
            touched = sorted({s for e in entries for s in e.subjects if s.startswith("P")})
            self._audit(conn, principal, "write", "allowed", decision.reason, purpose=purpose,
                        subjects=touched, journal_seq=entries[-1].seq if entries else None,
                        detail={"operation": operation, "checks": ",".join(decision.checks)})

        basis = purpose.legal_basis or purpose.kind
        return self.registry.transact(principal.id, basis, operation, before_commit=audit,
                                      **arguments)

    # -- third-party requests (Art. 13(4)) ----------------------------------------------
    def declare(self, kind: str, *, legal_basis: str | None = None,
                case_number: str | None = None, grant_key: str | None = None) -> Declaration:
        """A purpose declaration; a third party names its grant by key."""
        grant = None
        if grant_key:
            with self.registry.db.read() as conn:
                grant = grants.as_grant(grants.get(conn, grant_key))
        return Declaration(kind, legal_basis=legal_basis, case_number=case_number, grant=grant)

    def request_grant(self, requester: Principal, *, id_number: str, purpose: str,
                      fields: list[str], consent_by: str, consent_relation: str,
                      consent_document: str) -> dict[str, Any]:
        """A third party asks for a citizen's information, with the recorded consent."""
        if requester.kind is not PrincipalKind.THIRD_PARTY:
            raise AccessDenied("requests under Art. 13(4) are made by third parties",
                               reason="denied.not_third_party")
        key = self.registry.find(id_number)
        with self.registry.db.read() as conn:
            person = conn.execute(select(persons.c.key, persons.c.birth_date,
                                         persons.c.death_date, persons.c.missing_date)
                                  .where(persons.c.key == key)).mappings().one()
        from cutru.services.unit import local_date

        with self.registry.db.begin() as conn:
            gkey = grants.request(conn, requester=requester.id, person=dict(person),
                                  purpose=purpose, fields=fields, consent_by=consent_by,
                                  consent_relation=consent_relation,
                                  consent_document=consent_document, now=self.clock(),
                                  today=local_date(self.clock()))
            self._audit(conn, requester, "grant.request", "allowed", "allowed.request",
                        subjects=[key], detail={"grant": gkey})
            return _public_grant(grants.get(conn, gkey))

    def grant_queue(self, head: Principal, purpose: Declaration) -> list[dict[str, Any]]:
        """Pending requests the head may decide, oldest first, with their deadlines."""
        from cutru.services.unit import local_date

        probe = self._decide(head, purpose, "decide_third_party", Resource(ResourceKind.PERSON))
        if probe.refused_for_every_record:
            self._require(head, purpose, probe, "decide_third_party", [])
        with self.registry.db.read() as conn:
            pending = grants.queue(conn)
        today = local_date(self.clock()).isoformat()
        out, shown = [], probe
        for row in pending:
            decision = self._decide(head, purpose, "decide_third_party",
                                    self._person_resource(row["person_key"]))
            if decision.allowed:
                shown = decision
                out.append({**_public_grant(row), "overdue": row["deadline"] < today})
        self._audit_read(head, purpose, shown, "read", [r["person_key"] for r in out],
                         {"view": "grant_queue"}, fields=set())
        return out

    def decide_grant(self, head: Principal, purpose: Declaration, key: str, *, approve: bool,
                     days: int = 30, reason: str | None = None) -> dict[str, Any]:
        with self.registry.db.read() as conn:
            row = grants.get(conn, key)
        decision = self._decide(head, purpose, "decide_third_party",
                                self._person_resource(row["person_key"]))
        self._require(head, purpose, decision, "decide_third_party", [row["person_key"]])
        with self.registry.db.begin() as conn:
            done = grants.decide(conn, key, head=head.id, approve=approve, now=self.clock(),
                                 days=days, reason=reason)
            self._audit(conn, head, "grant.decide", "allowed", decision.reason,
                        purpose=purpose, subjects=[row["person_key"]],
                        detail={"grant": key, "status": done["status"]})
        return _public_grant(done)

    # -- the audit log ------------------------------------------------------------------
    def audit_search(self, auditor: Principal, purpose: Declaration,
                     **criteria: Any) -> list[AuditRecord]:
        """Search by ``principal``, ``subject``, ``purpose_kind``, ``since``, ``until``."""
        decision = self._decide(auditor, purpose, "audit_read", Resource(ResourceKind.AUDIT))
        self._require(auditor, purpose, decision, "audit_read", [])
        with self.registry.db.read() as conn:
            return audit_store.search(conn, **criteria)

    def audit_verify(self, principal: Principal, purpose: Declaration
                     ) -> tuple[int, int, list[AuditProblem]]:
        """Verify the whole audit log against its signed heads (signing the current head
        first, so the newest records are covered): (records, heads, problems)."""
        decision = self._decide(principal, purpose, "audit_read", Resource(ResourceKind.AUDIT))
        self._require(principal, purpose, decision, "audit_read", [])
        key = self.registry.signing_key
        if key is not None:
            with self.registry.db.begin() as conn:
                audit_store.sign_current_head(conn, key, now=self.clock())
        with self.registry.db.read() as conn:
            heads = audit_store.heads(conn)
            records = list(audit_store.iter_records(conn))
        return len(records), len(heads), verify_log(records, heads,
                                                    self.registry.public_keys())

    def audit_proof(self, auditor: Principal, purpose: Declaration, seq: int
                    ) -> dict[str, Any]:
        """One record, the newest signed head that covers it, and the RFC 9162 inclusion
        proof that ties them: checkable without the rest of the log."""
        decision = self._decide(auditor, purpose, "audit_read", Resource(ResourceKind.AUDIT))
        self._require(auditor, purpose, decision, "audit_read", [])
        key = self.registry.signing_key
        if key is not None:
            with self.registry.db.begin() as conn:
                audit_store.sign_current_head(conn, key, now=self.clock())
        with self.registry.db.read() as conn:
            heads = [h for h in audit_store.heads(conn) if h.head.size >= seq]
            found = audit_store.search(conn, limit=1, since=None, until=None,
                                       seq=seq)
            if not heads or not found:
                raise NotFound(f"no audit record {seq} under a signed head", field="seq",
                               rule="exists")
            head = heads[-1]
            proof = audit_store.inclusion_proof(conn, seq, head.head.size)
        return {"record": record_object(found[0]), "head": head.to_dict(),
                "proof": [p.hex() for p in proof]}

    def access_log(self, citizen: Principal) -> list[dict[str, Any]]:
        """Who read the citizen's record, when, for what, which fields (hidden entries of
        investigations stay hidden until their date)."""
        from cutru.journal.audit_record import citizen_can_see
        from cutru.services.unit import local_date

        purpose = Declaration("own_information")
        resource = Resource(ResourceKind.AUDIT, citizen.person_key)
        decision = self._decide(citizen, purpose, "access_log_read", resource)
        self._require(citizen, purpose, decision, "access_log_read", [])
        today = local_date(self.clock())
        assert citizen.person_key is not None
        with self.registry.db.read() as conn:
            rows = audit_store.search(conn, subject=citizen.person_key, limit=1000)
        return [{"ts": r.ts, "principal": r.principal, "agency": r.agency,
                 "purpose": r.purpose_kind, "legal_basis": r.legal_basis,
                 "fields": list(r.fields), "action": r.action}
                for r in rows if citizen_can_see(r, citizen.person_key, today)
                and r.principal != citizen.id]

    def alerts(self, auditor: Principal, purpose: Declaration) -> list[dict[str, Any]]:
        decision = self._decide(auditor, purpose, "audit_read", Resource(ResourceKind.AUDIT))
        self._require(auditor, purpose, decision, "audit_read", [])
        with self.registry.db.read() as conn:
            return abuse.list_alerts(conn)

    def metrics(self) -> dict[str, Any]:
        """Figures without personal data, for the Prometheus endpoint."""
        with self.registry.db.read() as conn:
            figures = abuse.counts(conn, self.clock())
            figures["audit_records"] = int(conn.execute(
                select(func.count()).select_from(audit_log)).scalar() or 0)
        figures["journal_entries"] = self.registry.journal_length()
        return figures

    # -- internals ----------------------------------------------------------------------
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
            raise _absent()
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
                 now: Any) -> None:
    """Audit an administrative act done outside a session (the command line, start-up):
    account and key management, policy changes."""
    record = AuditRecord(seq=0, ts="", principal=actor, principal_kind="administrator",
                         agency=None, action=action, outcome="allowed",
                         reason="allowed.administration", purpose_kind=None, legal_basis=None,
                         case_number=None, subjects=(), fields=(), journal_seq=None,
                         hidden_until=None, detail=detail)
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


def _public_grant(row: dict[str, Any]) -> dict[str, Any]:
    """A request as its parties see it (the consent document reference included)."""
    return {k: (json.loads(v) if k == "fields" else v) for k, v in row.items()}


def _absent() -> NotFound:
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

