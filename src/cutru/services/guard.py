"""The access-controlled face of the registry: every read and write by a principal passes
the one decision function, returns only the fields it allows, and is written to the audit
log (a write's audit record in the same transaction as the write).

The API and the web interface call only this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from cutru.access import identities
from cutru.access.decision import Decision, Declaration, Resource
from cutru.access.policy import ResourceKind
from cutru.access.principals import Principal
from cutru.errors import AccessDenied, NotAuthenticated, NotFound
from cutru.services.guard_audit import AuditViewsMixin
from cutru.services.guard_core import absent, filter_record, load_policy_audited, system_event
from cutru.services.guard_grants import GrantsMixin
from cutru.services.guard_recovery import RecoveryViewsMixin
from cutru.services.guard_web import WebViewsMixin
from cutru.store.schema import persons

__all__ = ["Guard", "Read", "filter_record", "load_policy_audited", "system_event"]


@dataclass(frozen=True)
class Read:
    """A filtered record and the decision that filtered it."""

    data: dict[str, Any]
    decision: Decision

class Guard(GrantsMixin, AuditViewsMixin, WebViewsMixin, RecoveryViewsMixin):
    """Reads, writes, grants and audit views, each decided, filtered and audited."""

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
            raise absent() from None
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
            raise absent() from None
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
        if operation == "person.declare" and set(arguments) == {"person"}:
            return self.declare_person(principal, purpose, arguments["person"])
        resource = self._write_resource(operation, arguments)
        subjects = sorted({v for k, v in arguments.items() if k.endswith("person_key")
                           and isinstance(v, str)})
        return self._write(principal, purpose, operation, resource, operation,
                           subjects=subjects, **arguments)

