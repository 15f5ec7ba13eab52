"""``cutru restore``, ``cutru recover`` and ``cutru incident``: restore to the moment before
(docs/operations.md is the runbook these commands follow)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cutru.cli.backup import KeyFileOption, RepoOption, _bar, _refreshing, _repository
from cutru.cli.common import cli_actor, console, emit, registry
from cutru.cli.errors import handled
from cutru.errors import ConfigError, InputError, RevertConflict
from cutru.recovery.locate import Query, audit_events, local_time, parse_moment
from cutru.recovery.revert import Plan
from cutru.services.registry import Registry

restore_app = typer.Typer(help="Point-in-time restore from the backup repository into a new "
                          "database, and swapping it in.", no_args_is_help=True)
recover_app = typer.Typer(help="Find the moment; surgical revert and scoped restore with four "
                          "eyes; rebuild.", no_args_is_help=True)
incident_app = typer.Typer(help="Incident records: trigger, fault, the 72-hour clock, what "
                           "was done.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Plain JSON output.")]
IncidentOption = Annotated[str, typer.Option("--incident", help="The incident this belongs to "
                                             "(`cutru incident open`).")]
LegalBasisOption = Annotated[str, typer.Option("--legal-basis", help="The legal basis "
                                               "(document number, date, issuer).")]
ToOption = Annotated[str, typer.Option("--to", help="A journal position, or a time "
                                       "(2026-11-27T09:00 is Vietnam time; Z for UTC).")]
BeforeOption = Annotated[bool, typer.Option("--before", help="The state just before that "
                                            "position or time, not after it.")]



def _password(principal_id: str) -> str:
    env = os.environ.get("CUTRU_APPROVER_PASSWORD")
    if env:
        return env
    return str(typer.prompt(f"password of {principal_id}", hide_input=True))


# --- find the moment ---------------------------------------------------------------------------


@recover_app.command("find")
def find_(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option(help="Account that made the changes.")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (inclusive).")] = None,
    until: Annotated[str | None, typer.Option(help="Until this time (exclusive).")] = None,
    subject: Annotated[str | None, typer.Option(help="A person or household key.")] = None,
    operation: Annotated[str | None, typer.Option(help="e.g. person.adjust")] = None,
    first: Annotated[int | None, typer.Option("--from", help="From position.")] = None,
    last: Annotated[int | None, typer.Option("--to", help="To position (inclusive).")] = None,
    newest: Annotated[bool, typer.Option(help="Newest first.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 50,
    audit: Annotated[bool, typer.Option(help="Also the audit log's records of the account "
                                        "in the window (sign-ins, reads).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Journal positions matching every condition given, with what happened there:
    "the first change by this account after 09:00" is --actor X --since 09:00 --limit 1."""
    from cutru.recovery.locate import find

    with handled(), registry(ctx) as reg:
        q = Query(actor=actor, since=parse_moment(since, field="since") if since else None,
                  until=parse_moment(until, field="until") if until else None,
                  subject=subject, operation=operation, first=first, last=last)
        with reg.db.read() as conn:
            found = find(conn, q, limit=limit, newest_first=newest)
            events = audit_events(conn, principal=actor, since=q.since, until=q.until) \
                if audit else []
        data: dict[str, Any] = {"query": q.describe(), "entries": [m.to_dict() for m in found]}
        if audit:
            data["audit"] = events
        if as_json:
            emit(data, True)
            return
        table = Table("position", "time (ICT)", "actor", "operation", "subjects", "rows",
                      title=f"journal: {q.describe()}")
        for m in found:
            table.add_row(str(m.seq), local_time(m.ts), m.actor, m.operation,
                          " ".join(m.subjects[:4]) + (" …" if len(m.subjects) > 4 else ""),
                          str(m.rows))
        console.print(table)
        if not found:
            console.print("no journal entry matches")
        for e in events:
            console.print(f"audit {e['seq']}: {local_time(e['ts'])} {e['principal']} "
                          f"{e['action']} {e['outcome']} {' '.join(e['subjects'][:4])}")


# --- revert and scoped restore -----------------------------------------------------------------


def _parse_positions(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise InputError(f"positions are like 12,15-20, not {part!r}", field="positions",
                             rule="recovery.positions_form")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _parse_resolutions(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        row, sep, value = item.partition("=")
        if not sep or ":" not in row:
            raise InputError(f"--resolve takes TABLE:KEY=skip|before|absent|<json>, not "
                             f"{item!r}", field="resolve", rule="recovery.resolution_form")
        value = value.strip()
        out[row] = json.loads(value) if value.startswith("{") else value
    return out


def _show_plan(plan: Plan, as_json: bool) -> None:
    if as_json:
        emit(plan.to_dict(), True)
        return
    what = f"revert of {len(plan.selected)} entries" if plan.kind == "revert" else \
        f"scoped restore to position {plan.point} ({len(plan.selected)} later entries)"
    console.print(f"[bold]{what}[/bold], computed at journal position {plan.head}")
    for c in plan.compensations:
        verb = "re-create" if c.current is None else "remove" if c.target is None else "set"
        cols = c.to_dict()["columns"]
        console.print(f"  {verb} {c.table}:{c.key} (entries {', '.join(map(str, c.reverts))})"
                      + (f": {', '.join(cols)}" if verb == "set" else ""))
        if verb == "set" and c.current and c.target:
            for col in cols:
                console.print(f"      {col}: {c.current.get(col)!r} → {c.target.get(col)!r}",
                              markup=False)
    for name in plan.skipped:
        console.print(f"  keep {name} (conflict resolved: skip)")
    for k in plan.conflicts:
        console.print(f"[red]  conflict[/red] {k.row}: reverted by {list(k.reverted)}, changed "
                      f"again by {list(k.later)}")
        for col in k.to_dict()["columns"]:
            now = (k.current or {}).get(col)
            was = (k.before or {}).get(col)
            console.print(f"      {col}: now {now!r}, before {was!r}", markup=False)
    console.print(f"{len(plan.compensations)} row(s) to change, {len(plan.conflicts)} "
                  f"unresolved conflict(s); plan digest {plan.digest()}")


def _request(reg: Registry, kind: str, params: dict[str, Any], submit: bool, incident: str,
             requested_by: str | None, legal_basis: str | None, as_json: bool) -> None:
    from cutru.services.recovery import Recovery

    rec = Recovery(reg)
    plan = rec.preview(kind, params)
    _show_plan(plan, as_json)
    if not submit:
        if plan.conflicts:
            raise RevertConflict(f"{len(plan.conflicts)} unresolved conflict(s): resolve each "
                                 "with --resolve TABLE:KEY=skip|before|absent|<json>",
                                 conflicts=[c.row for c in plan.conflicts])
        console.print("preview only: add --submit to request it (then another person "
                      "approves with `cutru recover approve`)")
        return
    if not requested_by or not legal_basis:
        raise InputError("--submit needs --requested-by and --legal-basis",
                         field="requested_by" if not requested_by else "legal_basis",
                         rule="required")
    req = rec.request(kind, params, incident=incident, requested_by=requested_by,
                      legal_basis=legal_basis)
    console.print(f"request {req.id} pending: approve with `cutru recover approve {req.id} "
                  f"--approver <another account>`")


@recover_app.command("revert")
def revert(
    ctx: typer.Context,
    incident: IncidentOption,
    actor: Annotated[str | None, typer.Option(help="Select this account's entries...")] = None,
    since: Annotated[str | None, typer.Option(help="... from this time")] = None,
    until: Annotated[str | None, typer.Option(help="... until this time (exclusive)")] = None,
    positions: Annotated[str | None, typer.Option(help="Or these positions: 12,15-20.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only entries about this key.")] = None,
    resolve: Annotated[list[str] | None, typer.Option(
        help="Settle a conflict: TABLE:KEY=skip|before|absent|<json row>.")] = None,
    submit: Annotated[bool, typer.Option(help="Store the request for approval.")] = False,
    requested_by: Annotated[str | None, typer.Option(help="The requesting account.")] = None,
    legal_basis: Annotated[str | None, typer.Option(help="The legal basis.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Preview (and with --submit, request) compensating changes that undo improper entries
    and keep every later legitimate change. Conflicts: exit code 7 until each is resolved."""
    from cutru.services.recovery import select_entries

    with handled(), registry(ctx) as reg:
        if positions:
            chosen = _parse_positions(positions)
            query = f"positions {positions}"
        else:
            if not (actor or subject):
                raise InputError("select entries with --actor (and --since/--until), "
                                 "--subject or --positions", field="select",
                                 rule="recovery.selection_empty")
            q = Query(actor=actor, subject=subject,
                      since=parse_moment(since, field="since") if since else None,
                      until=parse_moment(until, field="until") if until else None)
            with reg.db.read() as conn:
                chosen = select_entries(conn, q)
            query = q.describe()
        params = {"positions": chosen, "query": query,
                  "resolutions": _parse_resolutions(resolve or [])}
        _request(reg, "revert", params, submit, incident, requested_by, legal_basis, as_json)


@recover_app.command("scoped")
def scoped(
    ctx: typer.Context,
    incident: IncidentOption,
    scope: Annotated[str, typer.Option(help="person:<key>, household:<key> or "
                                       "commune:<code>.")],
    to: ToOption,
    before: BeforeOption = False,
    submit: Annotated[bool, typer.Option(help="Store the request for approval.")] = False,
    requested_by: Annotated[str | None, typer.Option(help="The requesting account.")] = None,
    legal_basis: Annotated[str | None, typer.Option(help="The legal basis.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Bring one person, household or commune back to a moment, in the live database, as
    compensating entries (preview; --submit requests it for approval)."""
    from cutru.recovery.locate import resolve_point
    from cutru.recovery.revert import Scope

    with handled(), registry(ctx) as reg:
        Scope.parse(scope)
        with reg.db.read() as conn:
            point = resolve_point(conn, to, before=before)
        console.print(f"restoring {scope} to position {point.seq}"
                      + (f" ({local_time(point.ts)})" if point.ts else ""))
        params = {"scope": scope, "point": point.seq, "asked": point.asked}
        _request(reg, "scoped", params, submit, incident, requested_by, legal_basis, as_json)


@recover_app.command("approve")
def approve(
    ctx: typer.Context,
    request: Annotated[str, typer.Argument(help="Request id (R-...).")],
    approver: Annotated[str, typer.Option(help="The approving account; its password is "
                                          "asked (or CUTRU_APPROVER_PASSWORD).")],
) -> None:
    """Apply a pending revert or scoped restore as a second person: the plan is recomputed
    and must be the one previewed; one compensating journal entry is written."""
    from cutru.services.recovery import Recovery

    with handled(), registry(ctx) as reg:
        rec = Recovery(reg)
        who = rec.authenticate(approver, _password(approver))
        result = rec.approve(request, who)
        console.print(f"applied {request}: {result['rows']} row(s) restored by journal entry "
                      f"{result['journal_seq']}")


@recover_app.command("refuse")
def refuse(
    ctx: typer.Context,
    request: Annotated[str, typer.Argument(help="Request id.")],
    reason: Annotated[str, typer.Option(help="Why.")],
    by: Annotated[str | None, typer.Option(help="Who refuses.")] = None,
) -> None:
    """Refuse a pending request (recorded in its incident)."""
    from cutru.services.recovery import Recovery

    with handled(), registry(ctx) as reg:
        Recovery(reg).refuse(request, by or cli_actor(), reason)
        console.print(f"refused {request}")


@recover_app.command("requests")
def requests(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Pending recovery requests."""
    from cutru.services.recovery import Recovery

    with handled(), registry(ctx) as reg:
        pending = Recovery(reg).pending()
        if as_json:
            emit(pending, True)
            return
        table = Table("request", "incident", "kind", "requested by", "at", "legal basis")
        for r in pending:
            table.add_row(r["id"], r["incident_id"], r["kind"], r["requested_by"],
                          local_time(r["requested_at"]), r["legal_basis"])
        console.print(table)


@recover_app.command("rebuild")
def rebuild(ctx: typer.Context, incident: IncidentOption) -> None:
    """Rebuild a tampered projection from the journal alone (recorded in the incident)."""
    from cutru.cli.common import progress_bar
    from cutru.services.recovery import Recovery

    with handled(), registry(ctx) as reg:
        with progress_bar("replaying journal", reg.journal_length()):
            digest = Recovery(reg).rebuild(incident, cli_actor())
        console.print(f"projection rebuilt; state digest {digest} matches the journal")


# --- point-in-time restore ---------------------------------------------------------------------


@restore_app.command("plan")
def plan_(
    ctx: typer.Context,
    to: ToOption,
    before: BeforeOption = False,
    generation: Annotated[str | None, typer.Option(help="Archive generation (16 hex digits) "
                                                   "where histories part.")] = None,
    repo: RepoOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the restore plan (snapshot, segments, expected digest); touches nothing. An
    ambiguous target (exit 3) or one no backup reaches (exit 5) is refused with the reason."""
    from cutru.services import restore as rs

    with handled(), registry(ctx) as reg, _repository(repo, key_file) as r:
        keys = reg.public_keys()
        with r.lock():
            p = rs.plan(r, keys, to, before=before, generation=generation, live=reg.db)
        data = p.to_dict()
        try:
            with reg.db.read() as conn:
                from cutru.store import journal_store

                live = journal_store.last_seq(conn)
            data["live_head"] = live
            data["entries_not_restored"] = max(0, live - p.seq)
        except ConfigError:  # the live database may be gone: the plan needs only the backup
            data["live_head"] = None
        if as_json:
            emit(data, True)
            return
        console.print(f"[bold]restore to entry {p.seq}[/bold] ({data['local_time']}), asked: "
                      f"{p.asked}")
        console.print(f"  from snapshot {p.snapshot} (entry {p.snapshot_seq}), then "
                      f"{p.replay} archived entries from {len(p.segments)} segment(s)")
        console.print(f"  expected state digest {p.state_digest}")
        console.print(f"  authenticated by {p.signed_by}")
        if data.get("live_head") is not None:
            console.print(f"  the live journal is at {data['live_head']}: "
                          f"{data['entries_not_restored']} later entries are not in the "
                          "restored database (they stay in the kept one and the archive)")
        for o in p.others:
            console.print(f"  note: generation {o['generation']} holds another history here")


@restore_app.command("apply")
def apply_(
    ctx: typer.Context,
    to: ToOption,
    before: BeforeOption = False,
    generation: Annotated[str | None, typer.Option(help="Archive generation.")] = None,
    into: Annotated[str | None, typer.Option(help="New SQLite file or database URL (default: "
                                             "a new file in the data dir, or a new "
                                             "PostgreSQL schema).")] = None,
    swap: Annotated[bool, typer.Option(help="Then make it the live database (the old one "
                                       "is kept).")] = False,
    incident: Annotated[str | None, typer.Option(help="Incident (needed with --swap).")] = None,
    requested_by: Annotated[str | None, typer.Option(help="Requesting account (--swap).")]
    = None,
    approver: Annotated[str | None, typer.Option(help="Approving account, another person "
                                                 "(--swap; password asked).")] = None,
    legal_basis: Annotated[str | None, typer.Option(help="Legal basis (--swap).")] = None,
    repo: RepoOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore into a NEW database, recompute its digest and compare it with the signed one;
    with --swap (stop `cutru serve` first) it replaces the live database, which is kept."""
    from cutru.services import restore as rs
    from cutru.services.recovery import Recovery
    from cutru.store.engine import Database

    with handled(), registry(ctx) as reg:
        rec = Recovery(reg)
        who = None
        if swap:
            missing = [n for n, v in (("incident", incident), ("requested_by", requested_by),
                                      ("approver", approver), ("legal_basis", legal_basis))
                       if not v]
            if missing:
                raise InputError(f"--swap needs --{missing[0].replace('_', '-')}",
                                 field=missing[0], rule="required")
            assert approver and requested_by
            who = rec.authenticate(approver, _password(approver))
            rec.check_approver(who, requested_by)
        with _repository(repo, key_file) as r:
            keys = reg.public_keys()
            with r.lock() as lock:
                p = rs.plan(r, keys, to, before=before, generation=generation, live=reg.db)
                url = rs.new_target(reg.settings, reg.clock(), p.seq, into)
                target = Database(url)
                try:
                    with _bar("restoring rows and entries") as advance:
                        step = _refreshing(lock, advance)
                        result = rs.apply(r, keys, p, target, lambda n: step(n, None))
                finally:
                    target.dispose()
        shown = url if url.startswith("sqlite") else url.split("?")[0] + " (new schema)"
        data: dict[str, Any] = {"plan": p.to_dict(), "restored": result.to_dict(),
                                "into": shown}
        if not as_json:
            console.print(f"[green]✓[/green] restored entry {p.seq} into {shown}: "
                          f"{result.rows} rows, {result.entries} entries, digest "
                          f"{result.digest} = the signed digest ({result.duration_ms} ms)")
        if swap:
            assert incident and requested_by and legal_basis and who
            data["swap"] = rec.swap_in(url, incident=incident, requested_by=requested_by,
                                       approver=who, legal_basis=legal_basis,
                                       generation=p.generation)
            if not as_json:
                s = data["swap"]
                console.print(f"[green]✓[/green] the restored database is now live; the "
                              f"old one is kept as {s['kept_as']} ({s['dropped_entries']} "
                              f"later entries stay there and in the archive)")
        elif not as_json:
            console.print("not live yet: inspect it, then repeat with --swap")
        if as_json:
            emit(data, True)


# --- incidents ---------------------------------------------------------------------------------


@incident_app.command("open")
def incident_open(
    ctx: typer.Context,
    trigger: Annotated[str, typer.Option(help="destroyed | cyber_attack | "
                                         "unauthorised_access")],
    fault: Annotated[str, typer.Option(help="error | damage | improper_adjustment")],
    discovered_at: Annotated[str, typer.Option(help="When it was discovered (starts the "
                                               "72-hour clock).")],
    summary: Annotated[str, typer.Option(help="What happened, without personal data.")],
    by: Annotated[str | None, typer.Option(help="Who opens it (default: you).")] = None,
) -> None:
    """Open an incident record."""
    from cutru.services import recovery

    with handled(), registry(ctx) as reg:
        with reg.db.begin() as conn:
            ident = recovery.open_incident(conn, trigger=trigger, fault=fault,
                                           discovered_at=discovered_at, summary=summary,
                                           opened_by=by or cli_actor(), now=reg.clock())
            clock = recovery.notification_clock(parse_moment(discovered_at), reg.clock())
        console.print(f"incident {ident} opened; notify by {clock['deadline_local']} "
                      f"({clock['hours_left']} h left)")
        typer.echo(ident)


@incident_app.command("list")
def incident_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Incidents, newest first, with the 72-hour clock."""
    from cutru.services import recovery

    with handled(), registry(ctx) as reg:
        with reg.db.read() as conn:
            found = recovery.list_incidents(conn, reg.clock())
        if as_json:
            emit(found, True)
            return
        table = Table("incident", "trigger", "fault", "discovered", "status", "notify by")
        for i in found:
            n = i["notification"]
            table.add_row(i["id"], i["trigger"], i["fault"], i["discovered_local"],
                          i["status"], n["deadline_local"] + (" OVERDUE" if n["overdue"]
                                                              and i["status"] == "open"
                                                              else ""))
        console.print(table)


@incident_app.command("show")
def incident_show(
    ctx: typer.Context,
    incident: Annotated[str, typer.Argument(help="Incident id.")],
    output: Annotated[Path | None, typer.Option(help="Write the report (Markdown, or JSON "
                                                "with --json) to this file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The incident report: record, 72-hour clock, events, requests."""
    from cutru.services import recovery

    with handled(), registry(ctx) as reg:
        with reg.db.read() as conn:
            report = recovery.incident_report(conn, incident, reg.clock())
        body = json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True) if as_json \
            else recovery.render_report(report)
        if output is not None:
            output.write_text(body, encoding="utf-8")
            console.print(f"report written to {output}")
        else:
            typer.echo(body)


@incident_app.command("close")
def incident_close(
    ctx: typer.Context,
    incident: Annotated[str, typer.Argument(help="Incident id.")],
    note: Annotated[str, typer.Option(help="How it ended.")],
    by: Annotated[str | None, typer.Option(help="Who closes it.")] = None,
) -> None:
    """Close an incident (refused while a request is pending)."""
    from cutru.services import recovery

    with handled(), registry(ctx) as reg:
        with reg.db.begin() as conn:
            recovery.close_incident(conn, incident, actor=by or cli_actor(), now=reg.clock(),
                                    note=note)
        console.print(f"incident {incident} closed")
