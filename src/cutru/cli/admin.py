"""``cutru users …``, ``cutru apikeys …``, ``cutru datakeys …`` and ``cutru serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cutru.access import fieldcrypto, identities
from cutru.access.policy import load_policy
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.cli.common import cli_actor, console, registry, settings
from cutru.cli.errors import handled
from cutru.services.guard import load_policy_audited, system_event

users = typer.Typer(help="Accounts: officers, heads, agencies, citizens, operators, auditors.",
                    no_args_is_help=True)
apikeys = typer.Typer(help="API keys for agency systems (stored hashed, scoped, revocable).",
                      no_args_is_help=True)
datakeys = typer.Typer(help="Keys that encrypt sensitive fields at rest.", no_args_is_help=True)
policy = typer.Typer(help="The access policy: purposes and their field sets, as data.",
                     no_args_is_help=True)



@users.command("add")
def users_add(
    ctx: typer.Context, principal_id: Annotated[str, typer.Argument(help="Account id.")],
    kind: Annotated[PrincipalKind, typer.Option(help="Kind of principal.")],
    unit: Annotated[str | None, typer.Option(help="commune:CODE, province:CODE or national.")]
    = None,
    role: str = "", function: Annotated[list[str] | None, typer.Option(
        "--function", help="An agency's function (repeat).")] = None,
    person: Annotated[str | None, typer.Option(help="A citizen's own person key.")] = None,
    clearance: Annotated[bool, typer.Option(help="State-secret clearance.")] = False,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          confirmation_prompt=True)] = "",
) -> None:
    """Add an account (the password is asked for, never echoed)."""
    with handled(), registry(ctx) as reg, reg.db.begin() as conn:
        p = Principal(principal_id, kind, Unit.parse(unit) if unit else None, role,
                      frozenset(function or []), person, clearance)
        identities.create_principal(conn, p, password=password, now=reg.clock())
        system_event(conn, cli_actor(), "principal.create",
                     {"principal": principal_id, "kind": kind.value}, now=reg.clock())
        console.print(f"account {principal_id} ({kind.value}) created")


@users.command("update")
def users_update(
    ctx: typer.Context, principal_id: str,
    role: Annotated[str | None, typer.Option(help="New role label.")] = None,
    unit: Annotated[str | None, typer.Option(help="commune:CODE, province:CODE, national.")]
    = None,
    clearance: Annotated[bool | None, typer.Option("--clearance/--no-clearance")] = None,
    function: Annotated[list[str] | None, typer.Option("--function")] = None,
) -> None:
    """Change an account's role, unit, clearance or functions (audited)."""
    with handled(), registry(ctx) as reg, reg.db.begin() as conn:
        p = identities.update_principal(conn, principal_id, role=role,
                              unit=Unit.parse(unit) if unit else None, clearance=clearance,
                              functions=function)
        system_event(conn, cli_actor(), "principal.update",
                     {"principal": principal_id, "role": p.role, "unit": str(p.unit or ""),
                      "clearance": str(p.clearance)}, now=reg.clock())
        console.print(f"account {principal_id} updated")


@users.command("list")
def users_list(ctx: typer.Context) -> None:
    """List accounts (no secrets)."""
    with handled(), registry(ctx) as reg, reg.db.read() as conn:
        table = Table("id", "kind", "unit", "role", "clearance", "disabled")
        for r in identities.list_principals(conn):
            table.add_row(str(r["id"]), str(r["kind"]), str(r["unit"] or ""), str(r["role"]),
                          "yes" if r["clearance"] else "", "yes" if r["disabled"] else "")
        console.print(table)


@users.command("disable")
def users_disable(ctx: typer.Context, principal_id: str) -> None:
    """Disable an account and end its sessions."""
    with handled(), registry(ctx) as reg, reg.db.begin() as conn:
        identities.disable(conn, principal_id)
        system_event(conn, cli_actor(), "principal.disable", {"principal": principal_id},
                     now=reg.clock())
        console.print(f"account {principal_id} disabled")


@users.command("passwd")
def users_passwd(ctx: typer.Context, principal_id: str,
                 password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                                       confirmation_prompt=True)] = "") -> None:
    """Set a new password (clears a lockout)."""
    with handled(), registry(ctx) as reg, reg.db.begin() as conn:
        identities.get_principal(conn, principal_id)
        identities.set_password(conn, principal_id, password, now=reg.clock())
        system_event(conn, cli_actor(), "principal.password", {"principal": principal_id},
                     now=reg.clock())
        console.print("password changed")


@apikeys.command("create")
def apikeys_create(ctx: typer.Context, principal_id: str,
                   scope: Annotated[list[str], typer.Option("--scope")]) -> None:
    """Create an API key for an agency account; it is shown once."""
    with handled(), registry(ctx) as reg, reg.db.begin() as conn:
        raw = identities.create_api_key(conn, principal_id, scope, now=reg.clock())
        system_event(conn, cli_actor(), "api_key.create",
                     {"principal": principal_id, "key_id": raw.split("_")[1]}, now=reg.clock())
        console.print(raw, markup=False)


@apikeys.command("revoke")
def apikeys_revoke(ctx: typer.Context, key_id: str) -> None:
    """Revoke an API key by its id (the part after ``ck_``)."""
    with handled(), registry(ctx) as reg, reg.db.begin() as conn:
        identities.revoke_api_key(conn, key_id, now=reg.clock())
        system_event(conn, cli_actor(), "api_key.revoke", {"key_id": key_id}, now=reg.clock())
        console.print(f"API key {key_id} revoked")


@datakeys.command("rotate")
def datakeys_rotate(ctx: typer.Context) -> None:
    """Start a new data-key version for new writes (old values stay readable)."""
    with handled():
        console.print(f"data key version {fieldcrypto.rotate_data_key(settings(ctx).key_dir)}")


@datakeys.command("rewrap")
def datakeys_rewrap(ctx: typer.Context) -> None:
    """Replace the master key and re-wrap every data key (no data is rewritten)."""
    with handled():
        fieldcrypto.rewrap(settings(ctx).key_dir)
        console.print("master key replaced; data keys re-wrapped")


@policy.command("check")
def policy_check(path: Annotated[Path, typer.Argument(help="A policy file (TOML).")]) -> None:
    """Validate a policy file; errors name the line and the problem (exit code 9)."""
    with handled():
        loaded = load_policy(path.read_text(encoding="utf-8"), str(path))
        console.print(f"{path}: valid, {len(loaded.purposes)} purposes")


@policy.command("show")
def policy_show(ctx: typer.Context) -> None:
    """The purposes in force: who may use each, and what it returns."""
    with handled(), registry(ctx) as reg:
        current = load_policy_audited(reg)
        table = Table("purpose", "principals", "requires", "jurisdiction", "sensitive")
        for name, p in sorted(current.purposes.items()):
            table.add_row(name, ", ".join(sorted(str(k) for k in p.principals)),
                          ", ".join(sorted(str(r) for r in p.requires)),
                          str(p.jurisdiction), "yes" if p.sensitive else "")
        console.print(table)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    backup_repo: Annotated[str | None, typer.Option(
        envvar="CUTRU_BACKUP_REPO", help="Back up to this repository while serving.")] = None,
    backup_key_file: Annotated[Path | None, typer.Option(
        envvar="CUTRU_BACKUP_KEY_FILE", help="Repository key file (else the passphrase in "
        "CUTRU_BACKUP_PASSPHRASE).")] = None,
    snapshot_minutes: Annotated[float, typer.Option(
        envvar="CUTRU_SNAPSHOT_MINUTES", min=0.1, help="Minutes between snapshots.")] = 60.0,
    archive_seconds: Annotated[float, typer.Option(
        envvar="CUTRU_ARCHIVE_SECONDS", min=0.05, help="Seconds between journal segments.")]
    = 1.0,
    verify_minutes: Annotated[float, typer.Option(
        envvar="CUTRU_VERIFY_MINUTES", min=0.0, help="Minutes between quick integrity checks "
        "(0: none); a failure raises an alert.")] = 10.0,
) -> None:
    """Run the web interface (at /), the HTTP API (OpenAPI at /docs) and, with a backup
    repository, the standing backup duty: continuous journal archiving and scheduled
    snapshots."""
    import uvicorn

    from cutru import web
    from cutru.api.app import create_app
    from cutru.backup.schedule import BackupSchedule
    from cutru.cli.backup import open_repository_from

    with handled(), registry(ctx) as reg:
        schedule = None
        if backup_repo:
            if reg.signing_key is None:
                from cutru.errors import ConfigError
                raise ConfigError("run `cutru init` first (no checkpoint key)",
                                  field="key_dir", rule="keys.present")
            schedule = BackupSchedule(
                reg.db, lambda: open_repository_from(backup_repo, backup_key_file),
                reg.signing_key, public_keys=reg.public_keys(),
                external_checkpoint_path=reg.settings.external_checkpoint_path,
                snapshot_interval=snapshot_minutes * 60, archive_interval=archive_seconds)
            schedule.start()
            console.print(f"backing up to {backup_repo}: journal every {archive_seconds} s, "
                          f"snapshots every {snapshot_minutes} min")
        watch = None
        if verify_minutes > 0:
            from cutru.services.watch import IntegrityWatch

            watch = IntegrityWatch(reg, verify_minutes * 60)
            watch.start()
        app = create_app(reg.settings, registry=reg, backup=schedule, watch=watch)
        web.install(app, guard=app.state.guard, backup=schedule, settings=reg.settings)
        console.print(f"cutru on http://{host}:{port}: the web interface at /, the API "
                      f"under /api/v1 (OpenAPI at /docs)")
        from cutru.services.restore import serving

        try:
            with serving(reg.settings):
                uvicorn.run(app, host=host, port=port, log_level="warning")
        finally:
            if watch is not None:
                watch.stop()
            if schedule is not None:
                schedule.stop()
