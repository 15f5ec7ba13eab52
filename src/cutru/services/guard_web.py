"""What the web interface needs from the guard beyond the API's reads: the vocabulary of its
forms, the purposes a principal may declare, the commune-police head's queue of corrections
and its decision, the declaration of a new person where they live, and the backup
repository's snapshots for operators. Each read or write of personal data is decided and
audited exactly as the guard's other methods are."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from cutru.access.decision import Declaration, Resource
from cutru.access.policy import ResourceKind
from cutru.access.principals import Principal
from cutru.backup.archive import list_segments
from cutru.backup.repository import Repository
from cutru.backup.service import last_restore_test
from cutru.backup.snapshot import list_snapshots
from cutru.domain import enums, units
from cutru.domain.dates import add_working_days
from cutru.domain.fields import PERSON_FIELDS
from cutru.domain.person import ADJUSTABLE, CORRECTABLE
from cutru.domain.rules import LAW
from cutru.errors import InputError
from cutru.journal.entry import format_ts
from cutru.services.guard_core import GuardCore
from cutru.services.recovery import FAULTS, TRIGGERS
from cutru.services.registry import OPERATIONS
from cutru.services.unit import VIETNAM_TZ, local_date
from cutru.store.schema import corrections

#: The registration authority adjusts residence information within 3 working days of a
#: complete file (Law 68/2020 Art. 26(3)); the web shows it as a correction's deadline.
CORRECTION_WORKING_DAYS = 3
CORRECTION_DEADLINE_BASIS = f"{LAW} Art. 26(3)"

_ENUMS = {
    "sex": enums.Sex, "marital_status": enums.MaritalStatus,
    "relationship": enums.Relationship, "residence_basis": enums.ResidenceBasis,
    "absence_category": enums.AbsenceCategory,
    "permanent_reason": enums.PermanentDeregistrationReason,
    "temporary_reason": enums.TemporaryDeregistrationReason,
}


class WebViewsMixin(GuardCore):
    # -- vocabulary (no personal data) -----------------------------------------------------
    def catalogue(self) -> dict[str, Any]:
        """Field labels and classes, closed vocabularies and transaction names, for forms."""
        return {
            "fields": {f.name: {"vi": f.label_vi, "en": f.label_en,
                                "class": f.field_class.value, "basis": f.basis}
                       for f in PERSON_FIELDS},
            "enums": {name: [m.value for m in cls] for name, cls in _ENUMS.items()},
            "operations": sorted(OPERATIONS),
            "adjustable": sorted(ADJUSTABLE), "correctable": sorted(CORRECTABLE),
            "incident_triggers": list(TRIGGERS), "incident_faults": list(FAULTS),
        }

    def purposes_for(self, principal: Principal) -> list[dict[str, Any]]:
        """The purposes this principal may declare, with what a declaration must carry."""
        out = []
        for name, p in sorted(self.policy.purposes.items()):
            if principal.kind not in p.principals:
                continue
            if p.functions and not principal.functions & p.functions:
                continue
            out.append({"name": name, "title": p.title, "title_vi": p.title_vi,
                        "basis": p.basis, "requires": sorted(str(r) for r in p.requires),
                        "actions": sorted(p.actions)})
        return out

    @staticmethod
    def place_name(code: str | None) -> str:
        """``Phường Hoàn Kiếm, Thành phố Hà Nội`` for a commune code (the code if unknown)."""
        if not code:
            return ""
        try:
            place = units.commune(str(code))
        except InputError:
            return str(code)
        return f"{place.name}, {units.province(place.province_code).name}"

    @staticmethod
    def communes_near(principal: Principal) -> list[tuple[str, str]]:
        """The communes of the principal's province (for address inputs), by name."""
        province = principal.unit.province_code if principal.unit else None
        if province is None:
            return []
        return sorted(((c.code, c.name) for c in units.communes_of(province)),
                      key=lambda c: c[1])

    @staticmethod
    def moment(text: str, field: str = "as_of") -> str:
        """A local date (end of that day) or date-time (Vietnam time) as a journal time."""
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise InputError(f"{field} must be a date or a date-time", field=field,
                             rule="datetime.format") from None
        if len(text.strip()) == 10:
            when = when.replace(hour=23, minute=59, second=59, microsecond=999999)
        if when.tzinfo is None:
            when = when.replace(tzinfo=VIETNAM_TZ)
        return format_ts(when)

    # -- corrections (Decree 62/2021 Art. 12): the head's four eyes -------------------------
    def correction_queue(self, head: Principal, purpose: Declaration) -> list[dict[str, Any]]:
        """Pending corrections the head may decide, oldest first, with their deadlines; the
        proposed values only of the fields this purpose may see."""
        probe = self._decide(head, purpose, "approve_correction", Resource(ResourceKind.PERSON))
        if probe.refused_for_every_record:
            self._require(head, purpose, probe, "approve_correction", [])
        with self.registry.db.read() as conn:
            pending = [dict(r) for r in conn.execute(
                select(corrections).where(corrections.c.status == "pending")
                .order_by(corrections.c.requested_at, corrections.c.key)).mappings()]
        today = local_date(self.clock())
        out, shown = [], probe
        for row in pending:
            decision = self._decide(head, purpose, "approve_correction",
                                    self._person_resource(row["person_key"]))
            if not decision.allowed:
                continue
            shown = decision
            asked = json.loads(row["changes"])
            deadline = add_working_days(datetime.fromisoformat(row["requested_at"]).date(),
                                        CORRECTION_WORKING_DAYS)
            name = self.registry.person(row["person_key"])["person"].get("full_name") \
                if "full_name" in decision.fields else None
            out.append({**{k: row[k] for k in ("key", "person_key", "doc_number", "doc_date",
                                               "doc_issuer", "reason", "requested_by",
                                               "requested_at")},
                        "full_name": name,
                        "changes": {k: (v if k in decision.fields else None)
                                    for k, v in sorted(asked.items())},
                        "deadline": deadline.isoformat(), "overdue": deadline < today,
                        "deadline_basis": CORRECTION_DEADLINE_BASIS})
        subjects = [r["person_key"] for r in out]
        self._screen(head, subjects)
        self._audit_read(head, purpose, shown, "read", subjects, {"view": "correction_queue"},
                         fields={"full_name"} if out else set())
        return out

    def decide_correction(self, head: Principal, purpose: Declaration, correction_key: str,
                          *, approve: bool) -> None:
        """Approve or reject a correction (``approve_correction``); the approver must not be
        its requester (the four-eyes rule is the registry's)."""
        with self.registry.db.read() as conn:
            row = conn.execute(select(corrections.c.person_key)
                               .where(corrections.c.key == correction_key)).first()
        person_key = str(row[0]) if row is not None else None
        resource = self._person_resource(person_key) if person_key else \
            Resource.absent(ResourceKind.PERSON)
        operation = "correction.approve" if approve else "correction.reject"
        self._write(head, purpose, "approve_correction", resource, operation,
                    subjects=[person_key] if person_key else [],
                    correction_key=correction_key)

    # -- declaring a person (Law 68/2020 Art. 26: declaring residence information) ----------
    def declare_person(self, officer: Principal, purpose: Declaration,
                       person: dict[str, Any]) -> str:
        """Record a person where they live now: the declaration acts in the commune of the
        declared current place of living, so an officer declares only in their commune."""
        place = person.get("current_living_place")
        code = place.get("commune_code") if isinstance(place, dict) else None
        if not code:
            raise InputError("give the current place of living (commune and street)",
                             field="current_living_place.commune_code", rule="required")
        resource = Resource(ResourceKind.PERSON, None, frozenset({str(code)}))
        return str(self._write(officer, purpose, "person.declare", resource, "person.declare",
                               subjects=[], person=person))

    # -- the backup repository (operators; no personal data) --------------------------------
    def backup_snapshots(self, operator: Principal, purpose: Declaration,
                         open_repository: Callable[[], Repository]) -> dict[str, Any]:
        """Snapshots, journal archive generations and the last restore test: names, positions,
        sizes and times only."""
        self._operator(operator, purpose, "backup_verify", "backup_snapshots")
        repo = open_repository()
        try:
            keys = self.registry.public_keys()
            snaps = list_snapshots(repo, keys)
            segments = list_segments(repo)
            tested = last_restore_test(repo, keys)
        finally:
            repo.target.close()
        generations: dict[int, list[int]] = {}
        for seg in segments:
            span = generations.setdefault(seg.generation, [seg.first, seg.last, 0])
            span[0], span[1], span[2] = min(span[0], seg.first), max(span[1], seg.last), \
                span[2] + 1
        return {
            "snapshots": [{"name": s.name, "created_at": s.created_at, "seq": s.position.seq,
                           "ts": s.position.ts, "rows": s.rows, "layout": s.layout,
                           "pages": s.pages, "bytes": s.bytes,
                           "new_bytes": s.new_bytes, "duration_ms": s.duration_ms}
                          for s in reversed(snaps)],
            "generations": [{"generation": f"{g:016x}", "first": v[0], "last": v[1],
                             "segments": v[2]} for g, v in sorted(generations.items())],
            "last_restorable": None if tested is None else {
                "seq": tested.position.seq, "ts": tested.position.ts,
                "verified_at": tested.verified_at, "snapshot": tested.snapshot,
                "age_seconds": tested.age_seconds()},
            "listed_at": format_ts(self.clock()),
        }
