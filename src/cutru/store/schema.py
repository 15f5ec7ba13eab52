"""The database schema (SQLAlchemy Core).

Two kinds of tables:

* the **projection** (current state): every table has a text primary key ``key`` and only
  scalar columns (text, integer, boolean), so that a row is exactly its image in the journal;
* the **journal** and its bookkeeping (``journal``, ``journal_subjects``, ``journal_head``,
  ``checkpoints``, ``meta``). ``journal`` and ``checkpoints`` are append-only: the database
  refuses UPDATE and DELETE on them (triggers created by the migrations).

Migrations live in ``cutru/store/migrations``; this module is their reference.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from cutru.domain.fields import PERSON_FIELDS

metadata = MetaData()


def _key() -> Column[str]:
    return Column("key", String(64), primary_key=True)


persons = Table(
    "persons",
    metadata,
    _key(),
    *[
        Column(f.name, Text, nullable=True)
        for f in PERSON_FIELDS
        if f.name not in {"id_number", "full_name", "birth_date", "sex"}
    ],
    # encrypted at rest (cutru.access.fieldcrypto); found by its keyed blind index
    Column("id_number", Text, nullable=True),
    Column("id_number_bidx", String(32), nullable=True),
    Column("full_name", Text, nullable=False),
    Column("birth_date", String(10), nullable=False),
    Column("birth_year", Integer, nullable=False),
    Column("sex", String(8), nullable=False),
    Column("secret_label", Boolean, nullable=False, default=False),
    Index("ix_persons_id_number_bidx", "id_number_bidx", unique=True),
    Index("ix_persons_name_year", "full_name", "birth_year"),
)

id_numbers = Table(
    "id_numbers",
    metadata,
    _key(),
    Column("person_key", String(64), nullable=False, index=True),
    Column("id_number", Text, nullable=False),
    Column("id_number_bidx", String(32), nullable=False, index=True),
    Column("valid_from", String(10), nullable=False),
    Column("valid_to", String(10), nullable=True),
    Column("reason", Text, nullable=True),
)

households = Table(
    "households",
    metadata,
    _key(),
    Column("residence_file_no", String(32), nullable=False),
    Column("head_key", String(64), nullable=False),
    Column("commune_code", String(5), nullable=False, index=True),
    Column("street", Text, nullable=False),
    Column("registered_on", String(10), nullable=False),
)

household_members = Table(
    "household_members",
    metadata,
    _key(),
    Column("household_key", String(64), nullable=False, index=True),
    Column("person_key", String(64), nullable=False, unique=True),
    Column("relationship", String(24), nullable=False),
    Column("joined_on", String(10), nullable=False),
)

residences = Table(
    "residences",
    metadata,
    _key(),
    Column("person_key", String(64), nullable=False, index=True),
    Column("kind", String(10), nullable=False),
    Column("commune_code", String(5), nullable=False, index=True),
    Column("street", Text, nullable=False),
    Column("household_key", String(64), nullable=True),
    Column("basis", String(24), nullable=True),
    Column("start_date", String(10), nullable=False),
    Column("term_end", String(10), nullable=True),
    Column("extensions", Integer, nullable=False, default=0),
    Column("status", String(14), nullable=False),
    Column("dereg_reason", String(32), nullable=True),
    Column("dereg_date", String(10), nullable=True),
)

stays = Table(
    "stays",
    metadata,
    _key(),
    Column("person_key", String(64), nullable=True, index=True),
    Column("full_name", Text, nullable=False),
    Column("document_number", String(32), nullable=False),
    Column("commune_code", String(5), nullable=False),
    Column("street", Text, nullable=False),
    Column("arrival", String(10), nullable=False),
    Column("departure", String(10), nullable=False),
    Column("reason", Text, nullable=False),
    Column("notified_at", String(32), nullable=False),
)

absences = Table(
    "absences",
    metadata,
    _key(),
    Column("person_key", String(64), nullable=False, index=True),
    Column("category", String(16), nullable=False),
    Column("start_date", String(10), nullable=False),
    Column("end_date", String(10), nullable=False),
    Column("destination", Text, nullable=False),
    Column("reason", Text, nullable=False),
)

corrections = Table(
    "corrections",
    metadata,
    _key(),
    Column("person_key", String(64), nullable=False, index=True),
    Column("changes", Text, nullable=False),
    Column("doc_number", String(64), nullable=False),
    Column("doc_date", String(10), nullable=False),
    Column("doc_issuer", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("requested_at", String(32), nullable=False),
    Column("status", String(10), nullable=False),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", String(32), nullable=True),
)

confirmations = Table(
    "confirmations",
    metadata,
    _key(),
    Column("person_key", String(64), nullable=False, index=True),
    Column("issued_on", String(10), nullable=False),
    Column("valid_until", String(10), nullable=False),
    Column("content", Text, nullable=False),
)

#: Projection tables in a fixed order (the order rebuild and digests iterate them).
PROJECTION = (
    persons,
    id_numbers,
    households,
    household_members,
    residences,
    stays,
    absences,
    corrections,
    confirmations,
)
PROJECTION_BY_NAME = {t.name: t for t in PROJECTION}

journal = Table(
    "journal",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", String(27), nullable=False, index=True),
    Column("actor", String(64), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("operation", String(48), nullable=False),
    Column("subjects", Text, nullable=False),
    Column("changes", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("prev", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    # "the first change by this account after 09:00" (cutru.recovery.locate); also serves
    # lookups by actor alone, which had an index of their own before migration 0006
    Index("ix_journal_actor_ts", "actor", "ts"),
)

journal_subjects = Table(
    "journal_subjects",
    metadata,
    Column("subject", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
)

journal_head = Table(
    "journal_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("ts", String(27), nullable=False),
    Column("lthash", LargeBinary, nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("chain_head", String(64), nullable=False),
    Column("state_digest", String(64), nullable=False),
    Column("created_at", String(27), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(128), nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# -- identities (cutru.access.identities): not residence data, so not in the journal; every
# change to them is written to the audit log instead.
principals = Table(
    "principals",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("unit", String(24), nullable=True),
    Column("role", String(64), nullable=False, default=""),
    Column("functions", Text, nullable=False, default="[]"),
    Column("person_key", String(64), nullable=True),
    Column("clearance", Boolean, nullable=False, default=False),
    Column("display_name", Text, nullable=False, default=""),
    Column("agency", Text, nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", String(27), nullable=False),
)

credentials = Table(
    "credentials",
    metadata,
    Column("principal_id", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("failed_count", Integer, nullable=False, default=0),
    Column("locked_until", String(27), nullable=True),
    Column("changed_at", String(27), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("principal_id", String(64), nullable=False, index=True),
    Column("created_at", String(27), nullable=False),
    Column("expires_at", String(27), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("principal_id", String(64), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", String(27), nullable=False),
    Column("revoked_at", String(27), nullable=True),
)

# -- third-party requests (Decree 62/2021 Art. 13(4)): consent, the head's decision, the grant
grants = Table(
    "grants",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("requester", String(64), nullable=False, index=True),
    Column("person_key", String(64), nullable=False, index=True),
    Column("purpose", Text, nullable=False),
    Column("fields", Text, nullable=False),
    Column("consent_by", Text, nullable=False),
    Column("consent_relation", String(24), nullable=False),
    Column("consent_document", Text, nullable=False),
    Column("submitted_at", String(27), nullable=False),
    Column("deadline", String(10), nullable=False),
    Column("status", String(10), nullable=False),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", String(27), nullable=True),
    Column("refusal_reason", Text, nullable=True),
    Column("valid_from", String(27), nullable=True),
    Column("valid_until", String(27), nullable=True),
)

# -- abuse detection: alerts raised when a principal reads far more persons than its role does
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", String(27), nullable=False, index=True),
    Column("principal", String(64), nullable=False, index=True),
    Column("rule", String(48), nullable=False),
    Column("detail", Text, nullable=False),
    Column("throttled_until", String(27), nullable=True),
)

# -- the audit log (docs/audit.md): records of every read, denial, write, login and policy
# change, leaves of a Merkle tree whose signed heads make it tamper-evident.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", String(27), nullable=False, index=True),
    Column("principal", String(64), nullable=False, index=True),
    Column("action", String(32), nullable=False),
    Column("outcome", String(8), nullable=False),
    Column("purpose_kind", String(48), nullable=True, index=True),
    Column("record", Text, nullable=False),
    Column("leaf", String(64), nullable=False),
)

audit_subjects = Table(
    "audit_subjects",
    metadata,
    Column("subject", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
)

audit_state = Table(
    "audit_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", Integer, nullable=False),
    Column("ts", String(27), nullable=False),
    Column("frontier", LargeBinary, nullable=False),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("size", Integer, primary_key=True, autoincrement=False),
    Column("root", String(64), nullable=False),
    Column("ts", String(27), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(128), nullable=False),
)

# -- incidents and recovery (cutru.services.recovery, docs/operations.md): not residence data,
# so not in the journal; the compensating entries a recovery writes are, and name the incident.
incidents = Table(
    "incidents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("trigger", String(24), nullable=False),  # destroyed | cyber_attack | unauthorised
    Column("fault", String(24), nullable=False),  # error | damage | improper_adjustment
    Column("discovered_at", String(27), nullable=False),
    Column("opened_at", String(27), nullable=False),
    Column("opened_by", String(64), nullable=False),
    Column("summary", Text, nullable=False),
    Column("status", String(10), nullable=False),  # open | closed
    Column("point_seq", Integer, nullable=True),  # the restore point chosen
    Column("closed_at", String(27), nullable=True),
    Column("closed_by", String(64), nullable=True),
)

incident_events = Table(
    "incident_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(32), nullable=False, index=True),
    Column("ts", String(27), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False),
)

recovery_requests = Table(
    "recovery_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("incident_id", String(32), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # revert | scoped
    Column("requested_by", String(64), nullable=False),
    Column("requested_at", String(27), nullable=False),
    Column("legal_basis", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("plan_digest", String(64), nullable=False),
    Column("status", String(10), nullable=False),  # pending | applied | refused | cancelled
    Column("approved_by", String(64), nullable=True),
    Column("decided_at", String(27), nullable=True),
    Column("result", Text, nullable=True),
)

#: Tables that are not residence data and not in snapshots' projection: a restored database
#: takes them over from the one it replaces (accounts, audit trail, incidents).
OPERATIONAL = (principals, credentials, sessions, api_keys, grants, alerts, audit_log,
               audit_subjects, audit_heads, incidents, incident_events, recovery_requests)

APPEND_ONLY = (journal, checkpoints, audit_log, audit_heads)
