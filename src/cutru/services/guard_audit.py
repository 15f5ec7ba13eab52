"""The audit log, alerts and metrics as the guard serves them (auditors; citizens' log)."""


from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from cutru.access import abuse
from cutru.access.decision import Declaration, Resource
from cutru.access.policy import ResourceKind
from cutru.access.principals import Principal
from cutru.errors import NotFound
from cutru.journal.audit_record import AuditProblem, AuditRecord, record_object, verify_log
from cutru.services.guard_core import GuardCore
from cutru.store import audit_store
from cutru.store.schema import audit_log


class AuditViewsMixin(GuardCore):
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


    def backup_status(self, operator: Principal, purpose: Declaration,
                      status: dict[str, Any] | None) -> dict[str, Any]:
        """What the standing backup duty has done (operators; no personal data)."""
        self._operator(operator, purpose, "backup_verify", "backup_status")
        return status or {"running": False}
