"""``cutru``: Vietnam's residence database on the command line.

Exit codes: 0 success, 1 internal error, 2 usage, 3 bad input, 4 rule violated, 5 not found,
6 verification failed, 7 conflict, 9 configuration/keys/database unavailable.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cutru.cli import admin, backup, recover, transactions
from cutru.cli.common import cli_actor, console, emit, progress_bar, registry
from cutru.cli.errors import handled
from cutru.config import load_settings
from cutru.journal.entry import format_ts
from cutru.services import importer
from cutru.services.unit import KeyFactory

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None)
demo_app = typer.Typer(help="Synthetic demo registry.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")
app.add_typer(transactions.app, name="tx")
app.add_typer(admin.users, name="users")
app.add_typer(admin.apikeys, name="apikeys")
app.add_typer(admin.datakeys, name="datakeys")
app.add_typer(admin.policy, name="policy")
app.add_typer(backup.app, name="backup")
app.add_typer(recover.restore_app, name="restore")
app.add_typer(recover.recover_app, name="recover")
app.add_typer(recover.incident_app, name="incident")
app.command()(admin.serve)


@app.callback()
def main_options(
    ctx: typer.Context,
    policy: Annotated[Path | None, typer.Option(help="Access policy file (TOML).",
                                                envvar="CUTRU_POLICY_PATH")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (SQLite file).",
                                                  envvar="CUTRU_DATA_DIR")] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (PostgreSQL).",
                                                     envvar="CUTRU_DATABASE_URL")] = None,
    key_dir: Annotated[Path | None, typer.Option(help="Signing keys, outside the data dir.",
                                                 envvar="CUTRU_KEY_DIR")] = None,
) -> None:
    """Settings are read once here and handed down."""
    with handled():
        ctx.obj = load_settings(data_dir=data_dir, database_url=database_url, key_dir=key_dir,
                                policy_path=policy)


@app.command()
def init(ctx: typer.Context) -> None:
    """Create (or upgrade) the database, the journal and the checkpoint signing key."""
    with handled(), registry(ctx, upgrading=True) as reg:
        key_id = reg.init()
        console.print(f"registry ready at {reg.settings.url.split('://')[0]}; "
                      f"checkpoint key {key_id}")


def _moment(text: str | None) -> str | None:
    """Accept ``2026-11-27``, ``2026-11-27T09:00`` (local time, UTC+7) or a UTC ``...Z``."""
    if text is None:
        return None
    from cutru.errors import InputError
    from cutru.services.unit import VIETNAM_TZ

    try:
        if text.endswith("Z"):
            moment = datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text)
            if len(text) == 10:  # a date: the end of that local day
                moment = moment.replace(hour=23, minute=59, second=59, microsecond=999999)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=VIETNAM_TZ)
    except ValueError:
        raise InputError("--as-of must be a date or date-time (ISO 8601)", field="as_of",
                         rule="datetime.format") from None
    return format_ts(moment)


@app.command()
def show(
    ctx: typer.Context,
    id_number: Annotated[str | None, typer.Option(help="Personal ID number.")] = None,
    person: Annotated[str | None, typer.Option(help="Internal person key.")] = None,
    household: Annotated[str | None, typer.Option(help="Internal household key.")] = None,
    as_of: Annotated[str | None, typer.Option(help="The record as it was at this moment.")]
    = None,
    history: Annotated[bool, typer.Option(help="List the changes instead.")] = False,
    purpose: Annotated[str, typer.Option(help="Why you read it (recorded in the audit log).")]
    = "registry administration",
    as_json: Annotated[bool, typer.Option("--json", help="Plain JSON output.")] = False,
) -> None:
    """Show a person's or a household's record, now or --as-of a past moment, or its history."""
    with handled(), registry(ctx) as reg:
        moment = _moment(as_of)
        if household:
            data: Any = (reg.history(household) if history
                         else reg.household(household, as_of=moment))
            subjects = [household] + ([m["person_key"] for m in data["members"]]
                                      if isinstance(data, dict) else [])
        else:
            key = person or (reg.find(id_number) if id_number else None)
            if key is None:
                from cutru.errors import InputError
                raise InputError("give --id-number, --person or --household", field="id_number",
                                 rule="required")
            data = reg.history(key) if history else reg.person(key, as_of=moment)
            subjects = [key]
        _audit_cli_read(reg, subjects, data, purpose)
        emit(data, as_json)


def _audit_cli_read(reg: Any, subjects: list[str], data: Any, purpose: str) -> None:
    """A read on the command line is accounted for like any other (as ``cli:<os user>``)."""
    from cutru.services.guard import system_event

    fields = tuple(data.get("person", {})) if isinstance(data, dict) else ()
    with reg.db.begin() as conn:
        system_event(conn, cli_actor(), "read", {"via": "cutru show"},
                     now=reg.clock(), subjects=tuple(subjects), fields=fields, purpose=purpose)


def _count_lines(path: Path) -> int:
    """Lines that are not blank, for the progress bar (bytes: no decoding, no error)."""
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="JSON Lines file (docs/import.md); - for stdin.")],
    batch_lines: Annotated[int, typer.Option(help="Lines per transaction; 0 = the whole file "
                                                  "is one batch.")] = 0,
    actor: Annotated[str, typer.Option(help="Who imports.")] = "importer",
) -> None:
    """Load residents through the same rules as the transactions; a bad line rejects its batch."""
    with handled(), registry(ctx) as reg:
        stdin = str(path) == "-"
        stream = sys.stdin.buffer if stdin else path.open("rb")
        total = None if stdin else _count_lines(path)
        with stream, progress_bar("importing lines", total) as advance:
            result = importer.import_records(
                reg.runner, importer.parse_lines(stream), actor=actor,
                batch_lines=batch_lines, progress=lambda lines, _p: advance(lines))
        reg.checkpoint()
        console.print(f"imported {result.lines} lines: {result.persons} persons, "
                      f"{result.households} households, {result.entries} journal entries")


@demo_app.command("seed")
def demo_seed(
    ctx: typer.Context,
    persons: Annotated[int, typer.Option(min=1, help="How many persons to create.")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same registry.")] = 0,
    today: Annotated[str | None, typer.Option(help="Reference date (default: today).")] = None,
    batch_lines: Annotated[int, typer.Option(min=0, help="Lines per transaction; 0 = the whole "
                                                        "run is one batch.")] = 0,
) -> None:
    """Create realistic synthetic residents (deterministic for a given seed)."""
    import random

    from cutru.services import synthetic

    with handled(), registry(ctx) as reg:
        reg.init()
        ref = date.fromisoformat(today) if today else date.today()
        rng = random.Random(seed)
        reg.runner.new_key = KeyFactory(rng.getrandbits)
        lines = enumerate(synthetic.generate_ahead(persons, seed=seed, today=ref), start=1)
        with progress_bar("seeding persons", persons) as advance:
            result = importer.import_records(
                reg.runner, lines, actor="demo-seed", batch_lines=batch_lines,
                progress=lambda _lines, p: advance(p))
        reg.checkpoint()
        console.print(f"seeded {result.persons} persons in {result.households} households "
                      f"({result.lines} records, {result.entries} journal entries)")


@demo_app.command("accounts")
def demo_accounts(ctx: typer.Context) -> None:
    """Create one demo account per role (idempotent) and print how to sign in."""
    from sqlalchemy import func, select

    from cutru.access import identities
    from cutru.access.principals import Principal, PrincipalKind, Unit
    from cutru.store.schema import residences

    with handled(), registry(ctx) as reg:
        with reg.db.read() as conn:
            busiest = conn.execute(
                select(residences.c.commune_code).where(residences.c.status == "active")
                .group_by(residences.c.commune_code)
                .order_by(func.count().desc(), residences.c.commune_code).limit(1)).scalar()
            citizen = conn.execute(select(residences.c.person_key)
                                   .where(residences.c.commune_code == busiest)
                                   .order_by(residences.c.person_key).limit(1)).scalar()
            known = {str(r["id"]) for r in identities.list_principals(conn)}
        if busiest is None or citizen is None:
            from cutru.errors import NotFound
            raise NotFound("seed the registry first: cutru demo seed", field="registry",
                           rule="seeded")
        commune = Unit.commune(str(busiest))
        province = Unit.province(str(commune.province_code))
        accounts = [
            Principal("demo-officer", PrincipalKind.OFFICER, commune, "cán bộ đăng ký"),
            Principal("demo-head", PrincipalKind.COMMUNE_POLICE_HEAD, commune, "trưởng CA xã"),
            Principal("demo-investigator", PrincipalKind.AGENCY_PROCEDURAL, Unit.national(),
                      "điều tra viên", frozenset({"investigation"})),
            Principal("demo-tax", PrincipalKind.AGENCY_STATE, province, "cán bộ thuế",
                      frozenset({"tax"})),
            Principal("demo-citizen", PrincipalKind.CITIZEN, None, "công dân",
                      person_key=str(citizen)),
            Principal("demo-operator", PrincipalKind.OPERATOR, Unit.national(), "vận hành"),
            Principal("demo-auditor", PrincipalKind.AUDITOR, Unit.national(), "kiểm toán"),
            Principal("demo-admin", PrincipalKind.ADMINISTRATOR, Unit.national(), "quản trị"),
        ]
        with reg.db.begin() as conn:
            for p in accounts:
                if p.id not in known:
                    identities.create_principal(conn, p, password=DEMO_PASSWORD,
                                                now=reg.clock())
        from rich.table import Table

        table = Table("account", "kind", "unit", title=f"demo accounts (password: "
                      f"{DEMO_PASSWORD})")
        for p in accounts:
            table.add_row(p.id, p.kind.value, str(p.unit or f"own record {p.person_key}"))
        console.print(table)


#: The one password of the demo accounts (a demo registry holds synthetic people only).
DEMO_PASSWORD = "cutru-demo-2026"


@app.command()
def verify(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Report as JSON.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="The scheduled check: the chain since "
                                        "the newest checkpoint and the live tables against "
                                        "the running digest (no full replay).")] = False,
    backup_repo: Annotated[str | None, typer.Option(
        envvar="CUTRU_BACKUP_REPO", help="Also compare the journal with this backup "
        "repository's archive (a journal cut back or rewritten).")] = None,
    backup_key_file: Annotated[Path | None, typer.Option(
        envvar="CUTRU_BACKUP_KEY_FILE", help="Repository key file (else "
        "CUTRU_BACKUP_PASSPHRASE).")] = None,
) -> None:
    """Check the journal chain, the signed checkpoints and the projection against the digest;
    pinpoint rows that differ and since which entry. Exit code 6 when anything is wrong."""
    with handled(), registry(ctx) as reg:
        total = reg.journal_length()
        with progress_bar("verifying", None) as advance:
            report = reg.quick_check(progress=advance) if quick else reg.verify(progress=advance)
        if backup_repo:
            from cutru.cli.backup import _repository
            from cutru.services.restore import check_against_archive

            with _repository(backup_repo, backup_key_file) as r, r.lock():
                report.problems.extend(check_against_archive(reg.db, r, reg.public_keys()))
        data = {"ok": report.ok, "entries": report.entries, "rows": report.rows,
                "checkpoints": report.checkpoints, "digest": report.digest,
                "page_groups": report.groups, "page_groups_read": report.groups_read,
                "pinpointed_by_groups": report.pinpointed_by_groups,
                "problems": [p.__dict__ for p in report.problems]}
        if as_json:
            emit(data, True)
        else:
            for p in report.problems:
                console.print(f"[red]✗[/red] {p.kind}: {p.message}"
                              + (f" (since entry {p.since_seq})" if p.since_seq else ""))
            mark = "[green]✓ verified[/green]" if report.ok else "[red]✗ verification failed"
            console.print(f"{mark}: {report.entries}/{total} entries, {report.rows} rows, "
                          f"{report.checkpoints} checkpoints; state digest {report.digest}")
            if report.groups:
                console.print(f"  summed by {report.groups} page groups, "
                              f"{report.groups_read} of them read as rows (the rest sealed)")
            if report.pinpointed_by_groups:
                console.print("  rows pinpointed among the groups read and the keys written "
                              "since the seal")
        if not report.ok:
            raise typer.Exit(6)


@app.command()
def rebuild(ctx: typer.Context) -> None:
    """Rebuild the projection from the journal alone; it must match the recorded digest."""
    with handled(), registry(ctx) as reg:
        with progress_bar("replaying journal", reg.journal_length()) as advance:
            digest = reg.rebuild(progress=advance)
        console.print(f"projection rebuilt; state digest {digest} matches the journal")


@app.command()
def checkpoint(ctx: typer.Context) -> None:
    """Sign a checkpoint of the current journal head now."""
    with handled(), registry(ctx) as reg:
        reg.checkpoint()
        console.print(f"checkpoint signed at entry {reg.journal_length()}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
