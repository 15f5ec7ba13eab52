"""The application factory: settings in, a FastAPI app out (no import-time globals)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query
from fastapi.responses import PlainTextResponse

from cutru import __version__
from cutru.access import identities
from cutru.access.policy import Policy
from cutru.api import errors
from cutru.api.deps import CallerDep, GuardDep, PurposeDep, bearer
from cutru.api.metrics import render_metrics
from cutru.api.schemas import (
    AccessLogPublic,
    AuditPublic,
    BackupStatusPublic,
    GrantCreate,
    GrantDecisionCreate,
    GrantPublic,
    GrantQueuePublic,
    HistoryPublic,
    HouseholdPublic,
    IncidentCreate,
    IncidentPublic,
    IncidentsPublic,
    LoginCreate,
    LoginPublic,
    LookupCreate,
    ProofPublic,
    RecordPublic,
    RestorePlanPublic,
    SearchCreate,
    SearchPublic,
    TransactionCreate,
    TransactionPublic,
    VerifyPublic,
)
from cutru.backup.schedule import BackupSchedule
from cutru.config import Settings
from cutru.journal.audit_record import record_object
from cutru.services.guard import Guard, Read, load_policy_audited
from cutru.services.registry import Registry
from cutru.services.watch import IntegrityWatch


def create_app(settings: Settings, *, registry: Registry | None = None,
               policy: Policy | None = None, backup: BackupSchedule | None = None,
               watch: IntegrityWatch | None = None) -> FastAPI:
    app = FastAPI(title="cutru", version=__version__,
                  description="Vietnam's residence database: every call declares its purpose, "
                              "returns only the fields it allows, and is audited.")
    reg = registry or Registry(settings)
    identities.refusal_hash()  # now, not in the first refused login
    app.state.guard = Guard(reg, policy or load_policy_audited(reg))
    app.state.backup = backup
    app.state.watch = watch
    if backup is not None:
        app.state.guard.backup_repository = backup.open_repository
    errors.install(app)
    _routes(app)
    return app


def _record(read: Read) -> RecordPublic:
    return RecordPublic(record=read.data, fields=sorted(read.decision.fields),
                        reason=read.decision.reason)


def _routes(app: FastAPI) -> None:
    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.post("/api/v1/auth/login", response_model=LoginPublic)
    def login(body: LoginCreate, g: GuardDep) -> LoginPublic:
        done = g.login(body.principal_id, body.password)
        return LoginPublic(token=done.token, expires_at=done.expires_at,
                           principal_id=done.principal.id, kind=done.principal.kind.value)

    @app.post("/api/v1/auth/logout", status_code=204)
    def logout(who: CallerDep, g: GuardDep, token: Annotated[str | None, Depends(bearer)]
               ) -> None:
        if token:
            g.logout(who, token)

    @app.post("/api/v1/persons/lookup", response_model=RecordPublic)
    def lookup(body: LookupCreate, who: CallerDep, why: PurposeDep, g: GuardDep
               ) -> RecordPublic:
        return _record(g.lookup(who, why, body.id_number))

    @app.post("/api/v1/persons/search", response_model=SearchPublic)
    def search(body: SearchCreate, who: CallerDep, why: PurposeDep, g: GuardDep
               ) -> SearchPublic:
        return SearchPublic(results=g.search(who, why, full_name=body.full_name,
                                             birth_year=body.birth_year))

    @app.get("/api/v1/persons/{person_key}", response_model=RecordPublic)
    def person(person_key: str, who: CallerDep, why: PurposeDep, g: GuardDep,
               as_of: Annotated[str | None, Query(max_length=32)] = None) -> RecordPublic:
        return _record(g.read_person(who, why, person_key, as_of=as_of))

    @app.get("/api/v1/persons/{person_key}/history", response_model=HistoryPublic)
    def person_history(person_key: str, who: CallerDep, why: PurposeDep, g: GuardDep
                       ) -> HistoryPublic:
        return HistoryPublic(changes=g.history(who, why, person_key))

    @app.get("/api/v1/households/{household_key}", response_model=HouseholdPublic)
    def household(household_key: str, who: CallerDep, why: PurposeDep, g: GuardDep,
                  as_of: Annotated[str | None, Query(max_length=32)] = None
                  ) -> HouseholdPublic:
        return HouseholdPublic(household=g.household(who, why, household_key, as_of=as_of))

    @app.post("/api/v1/transactions/{operation}", response_model=TransactionPublic)
    def transaction(operation: str, body: TransactionCreate, who: CallerDep, why: PurposeDep,
                    g: GuardDep) -> TransactionPublic:
        result = g.transact(who, why, operation, **body.arguments)
        return TransactionPublic(operation=operation, result=_jsonable(result))

    @app.post("/api/v1/grants", response_model=GrantPublic, status_code=201)
    def grant_request(body: GrantCreate, who: CallerDep, g: GuardDep) -> GrantPublic:
        return GrantPublic(grant=g.request_grant(who, **body.model_dump()))

    @app.get("/api/v1/grants/pending", response_model=GrantQueuePublic)
    def grant_queue(who: CallerDep, why: PurposeDep, g: GuardDep) -> GrantQueuePublic:
        return GrantQueuePublic(pending=g.grant_queue(who, why))

    @app.post("/api/v1/grants/{key}/decision", response_model=GrantPublic)
    def grant_decide(key: str, body: GrantDecisionCreate, who: CallerDep, why: PurposeDep,
                     g: GuardDep) -> GrantPublic:
        return GrantPublic(grant=g.decide_grant(who, why, key, approve=body.approve,
                                                days=body.days, reason=body.reason))

    @app.get("/api/v1/audit", response_model=AuditPublic)
    def audit(who: CallerDep, why: PurposeDep, g: GuardDep,
              principal: Annotated[str | None, Query(max_length=64)] = None,
              subject: Annotated[str | None, Query(max_length=64)] = None,
              purpose_kind: Annotated[str | None, Query(max_length=48)] = None,
              since: Annotated[str | None, Query(max_length=32)] = None,
              until: Annotated[str | None, Query(max_length=32)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> AuditPublic:
        found = g.audit_search(who, why, principal=principal, subject=subject,
                               purpose_kind=purpose_kind, since=since, until=until,
                               limit=limit)
        return AuditPublic(records=[record_object(r) for r in found])

    @app.get("/api/v1/audit/verify", response_model=VerifyPublic)
    def audit_verify(who: CallerDep, why: PurposeDep, g: GuardDep) -> VerifyPublic:
        records, heads, problems = g.audit_verify(who, why)
        return VerifyPublic(ok=not problems, records=records, heads=heads,
                            problems=[asdict(p) for p in problems])

    @app.get("/api/v1/audit/{seq}/proof", response_model=ProofPublic)
    def audit_proof(seq: Annotated[int, Path(ge=1, le=2**62)], who: CallerDep,
                    why: PurposeDep, g: GuardDep) -> ProofPublic:
        return ProofPublic(**g.audit_proof(who, why, seq))

    @app.get("/api/v1/backup/status", response_model=BackupStatusPublic)
    def backup_status(who: CallerDep, why: PurposeDep, g: GuardDep) -> BackupStatusPublic:
        schedule = app.state.backup
        report = schedule.report() if schedule is not None else None
        return BackupStatusPublic(status={"running": report is not None,
                                          **g.backup_status(who, why, report)})

    @app.get("/api/v1/restore/plan", response_model=RestorePlanPublic)
    def restore_plan(who: CallerDep, why: PurposeDep, g: GuardDep,
                     to: Annotated[str, Query(min_length=1, max_length=40)],
                     before: bool = False,
                     generation: Annotated[str | None, Query(max_length=16)] = None
                     ) -> RestorePlanPublic:
        """The restore plan for a position or a time; touches nothing (operators)."""
        return RestorePlanPublic(plan=g.restore_plan(who, why, to=to, before=before,
                                                     generation=generation))

    @app.get("/api/v1/incidents", response_model=IncidentsPublic)
    def incidents(who: CallerDep, why: PurposeDep, g: GuardDep) -> IncidentsPublic:
        return IncidentsPublic(incidents=g.incidents(who, why))

    @app.post("/api/v1/incidents", response_model=IncidentPublic, status_code=201)
    def incident_open(body: IncidentCreate, who: CallerDep, why: PurposeDep, g: GuardDep
                      ) -> IncidentPublic:
        return IncidentPublic(incident=g.open_incident(who, why, **body.model_dump()))

    @app.get("/api/v1/alerts", response_model=AuditPublic)
    def alerts(who: CallerDep, why: PurposeDep, g: GuardDep) -> AuditPublic:
        return AuditPublic(records=g.alerts(who, why))

    @app.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
    def metrics(g: GuardDep) -> str:
        """Prometheus text format; no personal data."""
        figures = g.metrics()
        if app.state.backup is not None:
            figures |= app.state.backup.figures()
        if app.state.watch is not None:
            figures |= app.state.watch.figures()
        return render_metrics(figures)

    @app.get("/api/v1/me/access-log", response_model=AccessLogPublic)
    def access_log(who: CallerDep, g: GuardDep) -> AccessLogPublic:
        return AccessLogPublic(entries=g.access_log(who))



def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)
