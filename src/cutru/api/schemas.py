"""Request and response bodies (``XCreate`` / ``XPublic`` naming, as the template does)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginCreate(Strict):
    principal_id: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginPublic(BaseModel):
    token: str
    expires_at: str
    principal_id: str
    kind: str


class LookupCreate(Strict):
    id_number: str = Field(min_length=1, max_length=32)


class SearchCreate(Strict):
    full_name: str = Field(min_length=1, max_length=200)
    birth_year: int | None = Field(None, ge=1800, le=2400)


class RecordPublic(BaseModel):
    record: dict[str, Any]
    fields: list[str]
    reason: str


class SearchPublic(BaseModel):
    results: list[dict[str, Any]]


class TransactionCreate(Strict):
    arguments: dict[str, Any] = Field(default_factory=dict)


class TransactionPublic(BaseModel):
    operation: str
    result: Any


class AuditPublic(BaseModel):
    records: list[dict[str, Any]]


class VerifyPublic(BaseModel):
    ok: bool
    records: int
    heads: int
    problems: list[dict[str, Any]]


class AccessLogPublic(BaseModel):
    entries: list[dict[str, Any]]


class GrantCreate(Strict):
    id_number: str = Field(min_length=1, max_length=32)
    purpose: str = Field(min_length=1, max_length=500)
    fields: list[str] = Field(min_length=1, max_length=40)
    consent_by: str = Field(min_length=1, max_length=200)
    consent_relation: str = Field("self", max_length=24)
    consent_document: str = Field(min_length=1, max_length=200)


class GrantDecisionCreate(Strict):
    approve: bool
    days: int = Field(30, ge=1, le=90)
    reason: str | None = Field(None, max_length=1000)


class GrantPublic(BaseModel):
    grant: dict[str, Any]


class GrantQueuePublic(BaseModel):
    pending: list[dict[str, Any]]


class HistoryPublic(BaseModel):
    changes: list[dict[str, Any]]


class HouseholdPublic(BaseModel):
    household: dict[str, Any]


class ProofPublic(BaseModel):
    record: dict[str, Any]
    head: dict[str, Any]
    proof: list[str]


class BackupStatusPublic(BaseModel):
    status: dict[str, Any]


class RestorePlanPublic(BaseModel):
    plan: dict[str, Any]


class IncidentCreate(Strict):
    trigger: str = Field(max_length=24, description="destroyed | cyber_attack | "
                         "unauthorised_access")
    fault: str = Field(max_length=24, description="error | damage | improper_adjustment")
    discovered_at: str = Field(max_length=40, description="When it was discovered (ISO 8601; "
                               "without an offset: Vietnam time)")
    summary: str = Field(min_length=1, max_length=2000)


class IncidentPublic(BaseModel):
    incident: dict[str, Any]


class IncidentsPublic(BaseModel):
    incidents: list[dict[str, Any]]
