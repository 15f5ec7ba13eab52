"""Third-party requests (Decree 62/2021 Art. 13(4)) as the guard serves them."""


from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from cutru.access import grants
from cutru.access.decision import Declaration, Resource
from cutru.access.policy import ResourceKind
from cutru.access.principals import Principal, PrincipalKind
from cutru.errors import AccessDenied
from cutru.services.guard_core import GuardCore
from cutru.store.schema import persons


class GrantsMixin(GuardCore):
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


def _public_grant(row: dict[str, Any]) -> dict[str, Any]:
    """A request as its parties see it (the consent document reference included)."""
    return {k: (json.loads(v) if k == "fields" else v) for k, v in row.items()}


