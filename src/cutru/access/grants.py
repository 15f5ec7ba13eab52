"""Third-party requests for a citizen's information (Decree 62/2021 Art. 13(4); Decree
154/2024 Art. 13(5)).

A request states its purpose and the fields it wants; the citizen's verified written consent
is recorded (their legal representative's for a person under 14 or without civil-act
capacity, an heir's or representative's for a person dead or missing). The head of the
commune police where the citizen lives decides within **2 working days**; a refusal gives
its reasons. An approval is a :class:`~cutru.access.decision.Grant`: limited to the fields
asked (never sensitive ones) and to a period, and each use of it is audited.
"""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cutru.access.decision import Grant
from cutru.domain.dates import add_working_days
from cutru.domain.fields import FIELDS_BY_NAME, SENSITIVE_FIELDS
from cutru.domain.person import age_on
from cutru.domain.rules import violation
from cutru.errors import InputError, NotFound
from cutru.journal.entry import format_ts, parse_ts
from cutru.store.schema import grants

DECREE = "Decree 62/2021/NĐ-CP Art. 13(4)"
WORKING_DAYS = 2
MAX_GRANT_DAYS = 90
RELATIONS = ("self", "legal_representative", "heir")


def consent_rule(person: dict[str, Any], relation: str, today: date) -> None:
    """Who must consent: the citizen, or their legal representative (under 14, without
    capacity), or an heir or representative (dead or missing)."""
    if relation not in RELATIONS:
        raise InputError(f"consent_relation must be one of {list(RELATIONS)}",
                         field="consent_relation", rule="enum")
    gone = bool(person.get("death_date") or person.get("missing_date"))
    young = age_on(person["birth_date"], today) < 14
    if relation == "self" and (gone or young):
        raise violation("grant.consent_by", DECREE,
                        "this person cannot consent themself (under 14, dead or missing): "
                        "the legal representative or heir consents", field="consent_relation")
    if relation == "heir" and not gone:
        raise violation("grant.consent_by", DECREE, "an heir consents only for a person who "
                        "is dead or missing", field="consent_relation")


def request(conn: Connection, *, requester: str, person: dict[str, Any], purpose: str,
            fields: list[str], consent_by: str, consent_relation: str,
            consent_document: str, now: datetime, today: date) -> str:
    """Record a third party's request; returns its key. Nothing is granted yet."""
    if not purpose.strip():
        raise InputError("a request states its purpose", field="purpose", rule="required")
    if not fields:
        raise InputError("a request names the fields it asks for", field="fields",
                         rule="required")
    for name in fields:
        if name not in FIELDS_BY_NAME:
            raise InputError(f"unknown field {name!r}", field="fields", rule="field.unknown")
        if name in SENSITIVE_FIELDS:
            raise violation("grant.no_sensitive", DECREE, f"{name} is sensitive and is never "
                            "given to a third party", field="fields")
    if not consent_by.strip() or not consent_document.strip():
        raise InputError("the consent (who, and the document) is required",
                         field="consent_document", rule="grant.consent_required")
    consent_rule(person, consent_relation, today)
    key = f"G{secrets.token_hex(8)}"
    conn.execute(insert(grants).values(
        key=key, requester=requester, person_key=person["key"], purpose=purpose.strip(),
        fields=json.dumps(sorted(set(fields))), consent_by=consent_by.strip(),
        consent_relation=consent_relation, consent_document=consent_document.strip(),
        submitted_at=format_ts(now), deadline=add_working_days(today, WORKING_DAYS).isoformat(),
        status="pending"))
    return key


def get(conn: Connection, key: str) -> dict[str, Any]:
    row = conn.execute(select(grants).where(grants.c.key == key)).mappings().first()
    if row is None:
        raise NotFound("no such request", field="grant", rule="exists")
    return dict(row)


def decide(conn: Connection, key: str, *, head: str, approve: bool, now: datetime,
           days: int = 30, reason: str | None = None) -> dict[str, Any]:
    row = get(conn, key)
    if row["status"] != "pending":
        raise violation("grant.pending", DECREE, f"the request is already {row['status']}")
    if not approve and not (reason or "").strip():
        raise InputError("a refusal is written, with reasons", field="reason",
                         rule="grant.refusal_reason")
    if approve and not 1 <= days <= MAX_GRANT_DAYS:
        raise InputError(f"a grant lasts 1 to {MAX_GRANT_DAYS} days", field="days",
                         rule="grant.period")
    values: dict[str, Any] = {"status": "approved" if approve else "refused",
                              "decided_by": head, "decided_at": format_ts(now),
                              "refusal_reason": None if approve else reason}
    if approve:
        values |= {"valid_from": format_ts(now), "valid_until": format_ts(now +
                                                                        timedelta(days=days))}
    conn.execute(update(grants).where(grants.c.key == key).values(**values))
    return {**row, **values}


def queue(conn: Connection, person_keys: set[str] | None = None) -> list[dict[str, Any]]:
    """Pending requests, oldest first (a head sees those of persons in their commune)."""
    rows = [dict(r) for r in conn.execute(select(grants).where(grants.c.status == "pending")
                                          .order_by(grants.c.submitted_at)).mappings()]
    return [r for r in rows if person_keys is None or r["person_key"] in person_keys]


def as_grant(row: dict[str, Any]) -> Grant:
    """The decision function's view of an approved request."""
    if row["status"] != "approved":
        start = parse_ts(row["submitted_at"])
        return Grant(row["key"], row["person_key"], frozenset(json.loads(row["fields"])),
                     start, start + timedelta(microseconds=1), False, row["requester"])
    return Grant(row["key"], row["person_key"], frozenset(json.loads(row["fields"])),
                 parse_ts(row["valid_from"]), parse_ts(row["valid_until"]), True,
                 row["requester"])
