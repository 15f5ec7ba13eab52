"""``cutru backup …``: the backup repository, snapshots, journal archiving, verification.

The repository is ``--repo`` (or ``CUTRU_BACKUP_REPO``): a directory, or
``s3://bucket/prefix`` (endpoint in ``CUTRU_BACKUP_S3_ENDPOINT`` for MinIO/Ceph; credentials
from the usual AWS variables). Its key: the passphrase in ``CUTRU_BACKUP_PASSPHRASE``, or
``--key-file`` (``CUTRU_BACKUP_KEY_FILE``). Manifests are signed with the registry's
checkpoint key, and checked against the public keys in the key directory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cutru.backup import KeyFile, Passphrase, Repository, generate_key_file, naming
from cutru.backup.archive import Archiver, archive_once, list_segments
from cutru.backup.copy import copy_all
from cutru.backup.keys import Credential
from cutru.backup.lock import Lock
from cutru.backup.prune import forget_by_policy, prune
from cutru.backup.retention import Policy
from cutru.backup.service import (
    RestoreTest,
    last_restore_test,
    open_target,
    restore_drill,
    verify_repository,
)
from cutru.backup.snapshot import (
    ManifestKey,
    SnapshotInfo,
    list_snapshots,
    read_checkpoint_file,
    take_snapshot,
)
from cutru.backup.targets import Kind
from cutru.cli.common import console, emit, registry
from cutru.cli.errors import handled
from cutru.errors import ConfigError
from cutru.journal.signing import SigningKey
from cutru.services.registry import Registry

app = typer.Typer(help="Backups: snapshots, continuous journal archiving, verification and "
                  "restore drills, in an encrypted, deduplicated repository.",
                  no_args_is_help=True)
key_app = typer.Typer(help="Keys that open the repository (passphrases, key files).",
                      no_args_is_help=True)
app.add_typer(key_app, name="key")

RepoOption = Annotated[str | None, typer.Option(
    "--repo", envvar="CUTRU_BACKUP_REPO", show_envvar=True,
    help="The repository: a directory or s3://bucket/prefix.")]
KeyFileOption = Annotated[Path | None, typer.Option(
    "--key-file", envvar="CUTRU_BACKUP_KEY_FILE", show_envvar=True,
    help="Repository key file (else the passphrase in CUTRU_BACKUP_PASSPHRASE).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Plain JSON output.")]


# --- plumbing -------------------------------------------------------------------------------


def _location(repo: str | None) -> str:
    if not repo:
        raise ConfigError("give the backup repository with --repo or CUTRU_BACKUP_REPO",
                          field="repo", rule="backup.repo_required")
    return repo


def _credential(key_file: Path | None, *, env: str = "CUTRU_BACKUP_PASSPHRASE") -> Credential:
    if key_file is not None:
        return KeyFile.load(key_file)
    passphrase = os.environ.get(env)
    if passphrase:
        return Passphrase(passphrase)
    raise ConfigError(f"give the repository passphrase in {env} or a key file with "
                      "--key-file", field="credential", rule="backup.credential_required")


@contextmanager
def _repository(repo: str | None, key_file: Path | None) -> Iterator[Repository]:
    target = open_target(_location(repo), s3_endpoint=os.environ.get("CUTRU_BACKUP_S3_ENDPOINT"))
    try:
        yield Repository.open(target, _credential(key_file))
    finally:
        target.close()


def open_repository_from(repo: str, key_file: Path | None) -> Repository:
    """An open repository whose target stays open (for the long-running schedule)."""
    target = open_target(_location(repo), s3_endpoint=os.environ.get("CUTRU_BACKUP_S3_ENDPOINT"))
    return Repository.open(target, _credential(key_file))


def _signing_key(reg: Registry) -> SigningKey:
    if reg.signing_key is None:
        raise ConfigError(f"no checkpoint signing key in {reg.settings.key_dir}: run "
                          "`cutru init`", field="key_dir", rule="keys.missing")
    return reg.signing_key


@contextmanager
def _bar(description: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on stderr; yields ``advance(n, total)`` (total may become known late)."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=None)

        def advance(n: int, total: int | None = None) -> None:
            if total is not None:
                bar.update(task, total=total)
            bar.advance(task, n)

        yield advance


def _refreshing(lock: Lock, advance: Callable[[int, int | None], None]
                ) -> Callable[[int, int | None], None]:
    """``advance``, refreshing the repository lock as it ages (a long snapshot or drill
    must not look stale to other processes)."""

    def step(n: int, total: int | None = None) -> None:
        if lock.needs_refresh():
            lock.refresh()
        advance(n, total)

    return step


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


# --- commands -------------------------------------------------------------------------------


@app.command("init")
def init(repo: RepoOption = None, key_file: KeyFileOption = None) -> None:
    """Create a repository. With --key-file PATH for a file that does not exist yet, a new
    key file is written there (mode 0600): keep it apart from the repository."""
    with handled():
        location = _location(repo)
        if key_file is not None and not key_file.exists():
            generate_key_file(key_file)
            console.print(f"new repository key file {key_file}: keep a copy apart from the "
                          "repository; without it the backups cannot be read")
        target = open_target(location, create=True,
                             s3_endpoint=os.environ.get("CUTRU_BACKUP_S3_ENDPOINT"))
        try:
            created = Repository.init(target, _credential(key_file))
        finally:
            target.close()
        console.print(f"backup repository {created.config.id} created at {location}")


@app.command("snapshot")
def snapshot(ctx: typer.Context, repo: RepoOption = None, key_file: KeyFileOption = None,
             layout: Annotated[str, typer.Option(
                 help="auto: the database file of a SQLite registry (pages), the rows of a "
                      "PostgreSQL one; pages; or rows (also proves the state digest while "
                      "it reads)")] = "auto",
             as_json: JsonOption = False) -> None:
    """Snapshot the registry online (officers keep writing) into the repository."""
    with handled(), registry(ctx) as reg, _repository(repo, key_file) as r, \
            r.lock() as lock:
        external = read_checkpoint_file(reg.settings.external_checkpoint_path)
        with _bar("snapshot: pages, or rows and entries") as advance:
            info = take_snapshot(reg.db, r, _signing_key(reg), external_checkpoint=external,
                                 progress=_refreshing(lock, advance), layout=layout)
        if as_json:
            emit(_snapshot_dict(info), True)
            return
        console.print(f"snapshot {info.name} ({info.layout}): entry {info.position.seq}, "
                      f"{_extent(info)}, {_mib(info.bytes)} of data; {info.new_blobs} new blobs "
                      f"({_mib(info.new_bytes)} before compression) in "
                      f"{info.duration_ms / 1000:.1f} s")


def _snapshot_dict(info: SnapshotInfo) -> dict[str, Any]:
    return {"bytes": info.bytes, "created_at": info.created_at,
            "duration_ms": info.duration_ms, "generation": info.generation,
            "layout": info.layout, "name": info.name, "new_blobs": info.new_blobs,
            "new_bytes": info.new_bytes, "pages": info.pages,
            "position": info.position.to_dict(), "registry": info.registry, "rows": info.rows}


def _extent(info: SnapshotInfo) -> str:
    """What a snapshot holds: its rows, or the pages of its database file."""
    return f"{info.pages:,} pages" if info.layout == "pages" else f"{info.rows:,} rows"


@app.command("list")
def list_(ctx: typer.Context, repo: RepoOption = None, key_file: KeyFileOption = None,
          as_json: JsonOption = False) -> None:
    """List snapshots, journal archive generations and the last restore test."""
    with handled(), registry(ctx) as reg, _repository(repo, key_file) as r:
        keys = reg.public_keys()
        snaps = list_snapshots(r, keys)
        segments = list_segments(r)
        generations: dict[int, list[int]] = {}
        for seg in segments:
            span = generations.setdefault(seg.generation, [seg.first, seg.last, 0])
            span[0], span[1] = min(span[0], seg.first), max(span[1], seg.last)
            span[2] += 1
        tested = last_restore_test(r, keys)
        if as_json:
            emit({"snapshots": [_snapshot_dict(s) for s in snaps],
                  "generations": [{"generation": g, "first": v[0], "last": v[1],
                                   "segments": v[2]} for g, v in sorted(generations.items())],
                  "last_restorable": tested.to_dict() if tested else None}, True)
            return
        table = Table("snapshot", "created (UTC)", "entry", "holds", "data", "new")
        for s in snaps:
            table.add_row(s.name, s.created_at[:19], str(s.position.seq), _extent(s),
                          _mib(s.bytes), _mib(s.new_bytes))
        console.print(table)
        for g, (first, last, count) in sorted(generations.items()):
            began = naming.format_time(g)[:19]
            console.print(f"journal generation {g:016x} (began {began}): entries "
                          f"{first}..{last} in {count} segments")
        _print_restorable(tested)


def _print_restorable(tested: RestoreTest | None) -> None:
    if tested is None:
        console.print("no restore test yet: run `cutru backup verify --restore-test`")
        return
    console.print(f"last verified restorable point: entry {tested.position.seq} at "
                  f"{tested.position.ts} ({_ago(tested.age_seconds())} ago), proven by the "
                  f"restore test of {tested.verified_at}")


@app.command("show")
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Manifest name.")],
         repo: RepoOption = None, key_file: KeyFileOption = None) -> None:
    """Show one signed manifest (snapshot or restore test), its signature checked."""
    with handled(), registry(ctx) as reg, _repository(repo, key_file) as r:
        m = r.load_manifest(name, reg.public_keys())
        emit({"name": m.name, "kind": m.kind, "created_at": m.created_at,
              "repository": m.repository, "key_id": m.key_id, "body": m.body}, True)


@app.command("verify")
def verify(
    ctx: typer.Context, repo: RepoOption = None, key_file: KeyFileOption = None,
    read_data: Annotated[bool, typer.Option(
        "--read-data", help="Read and authenticate every blob and segment.")] = False,
    restore_test: Annotated[bool, typer.Option(
        "--restore-test", help="Restore the newest snapshot and the archive after it into "
        "a scratch database and prove it against the signed digest.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Check the repository; report how long ago the last verified restorable point was.
    Exit code 6 when anything is wrong."""
    with handled(), registry(ctx) as reg, _repository(repo, key_file) as r, \
            r.lock() as lock:
        keys = reg.public_keys()
        with _bar("verify: objects") as advance:
            step = _refreshing(lock, advance)
            report = verify_repository(r, keys, read_data=read_data,
                                       progress=lambda n: step(n, None))
        if restore_test and report.ok:
            with _bar("restore test: rows and entries") as advance:
                step = _refreshing(lock, advance)
                report.restore, _record = restore_drill(
                    r, keys, signer=reg.signing_key, progress=lambda n: step(n, None))
            report.last_restorable = last_restore_test(r, keys) or report.last_restorable
        if as_json:
            emit(report.to_dict(), True)
        else:
            for p in report.problems:
                console.print(f"[red]✗[/red] {p.check} {p.object}: {p.message}")
            for note in report.notes:
                console.print(f"note: {note}")
            if report.restore is not None:
                res = report.restore
                console.print(f"restore test: snapshot {res.snapshot} + {len(res.segments)} "
                              f"segments → entry {res.position.seq}, {res.rows:,} rows, state "
                              f"digest {res.digest} matches ({res.duration_ms / 1000:.1f} s)")
            mark = "[green]✓ repository verified[/green]" if report.ok else \
                "[red]✗ repository verification failed[/red]"
            console.print(f"{mark}: {report.packs} packs ({_mib(report.bytes)}), "
                          f"{report.blobs} blobs{' read' if read_data else ''}, "
                          f"{report.snapshots} snapshots, {report.segments} journal segments "
                          f"in {report.generations} generations")
            _print_restorable(report.last_restorable)
        if not report.ok:
            raise typer.Exit(6)


@app.command("archive")
def archive(
    ctx: typer.Context, repo: RepoOption = None, key_file: KeyFileOption = None,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between rounds.")] = 1.0,
) -> None:
    """Archive new journal entries to the repository continuously (Ctrl-C stops), or once."""
    with handled(), registry(ctx) as reg, _repository(repo, key_file) as r:
        key = _signing_key(reg)
        path = reg.settings.external_checkpoint_path
        if once:
            with r.lock():
                rep = archive_once(reg.db, r, key, public_keys=reg.public_keys(),
                                   external_checkpoint_path=path)
            if rep.continuity is not None:
                console.print(f"new journal generation: {rep.continuity.message}; began with "
                              f"snapshot {rep.snapshot}")
            where = rep.position.seq if rep.position else 0
            console.print(f"archived {rep.entries} entries in {len(rep.segments)} segments; "
                          f"the archive reaches entry {where}")
            return
        archiver = Archiver(reg.db, r, key, public_keys=reg.public_keys(),
                            external_checkpoint_path=path)
        archiver.start(interval)
        console.print(f"archiving the journal every {interval} s; Ctrl-C stops")
        reported = 0
        try:
            while True:
                time.sleep(0.2)
                if archiver.rounds != reported and archiver.last_report is not None:
                    reported = archiver.rounds
                    last = archiver.last_report
                    if last.entries:
                        console.print(f"archived {last.entries} entries, up to entry "
                                      f"{last.position.seq if last.position else 0}")
        except KeyboardInterrupt:
            archiver.stop()
            console.print("archiver stopped")


@key_app.command("list")
def key_list(repo: RepoOption = None, key_file: KeyFileOption = None) -> None:
    """List the key objects (the one in use is marked)."""
    with handled(), _repository(repo, key_file) as r:
        for item in r.target.list(Kind.KEYS):
            mark = " (in use)" if item.handle.name == r.key_name else ""
            console.print(f"{item.handle.name}{mark}")


def _new_credential(new_key_file: Path | None) -> Credential:
    if new_key_file is not None and not new_key_file.exists():
        generate_key_file(new_key_file)
        console.print(f"new repository key file {new_key_file}")
    return _credential(new_key_file, env="CUTRU_BACKUP_NEW_PASSPHRASE")


NewKeyFileOption = Annotated[Path | None, typer.Option(
    "--new-key-file", help="The new key file (created if missing); else the passphrase in "
    "CUTRU_BACKUP_NEW_PASSPHRASE.")]


@key_app.command("add")
def key_add(repo: RepoOption = None, key_file: KeyFileOption = None,
            new_key_file: NewKeyFileOption = None) -> None:
    """Add a key for the same master key (a second passphrase or key file)."""
    with handled(), _repository(repo, key_file) as r, r.lock():
        console.print(f"key {r.add_key(_new_credential(new_key_file))} added")


@key_app.command("remove")
def key_remove(name: Annotated[str, typer.Argument(help="Key object name.")],
               repo: RepoOption = None, key_file: KeyFileOption = None) -> None:
    """Remove a key object (never the one in use, never the last)."""
    with handled(), _repository(repo, key_file) as r, r.lock(exclusive=True):
        r.remove_key(name)
        console.print(f"key {name} removed")


@key_app.command("change")
def key_change(repo: RepoOption = None, key_file: KeyFileOption = None,
               new_key_file: NewKeyFileOption = None) -> None:
    """Replace the key in use by a new passphrase or key file."""
    with handled(), _repository(repo, key_file) as r, r.lock(exclusive=True):
        old = r.key_name
        console.print(f"key {old} replaced by {r.change_key(_new_credential(new_key_file))}")



# --- retention, prune and copy ----------------------------------------------------------------

DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Say what would be removed; "
                                            "remove nothing.")]


def _prune_now(r: Repository, keys: dict[str, bytes], dry_run: bool, as_json: bool
               ) -> dict[str, Any]:
    with _bar("prune: packs") as advance:
        report = prune(r, keys, dry_run=dry_run, progress=lambda n: advance(n, None))
    if not as_json:
        verb = "would remove" if dry_run else "removed"
        console.print(f"prune {verb} {report.packs_removed} of {report.packs_before} packs "
                      f"(repacking {report.packs_repacked} into {report.packs_written} new); "
                      f"{_mib(report.bytes_before)} → {_mib(report.bytes_after)}; "
                      f"{report.blobs_used} blobs in use")
    return report.to_dict()


@app.command("forget")
def forget_(
    ctx: typer.Context, repo: RepoOption = None, key_file: KeyFileOption = None,
    keep_last: Annotated[int, typer.Option("--keep-last", min=0,
                                           help="Keep the N newest snapshots.")] = 0,
    keep_hourly: Annotated[int, typer.Option("--keep-hourly", min=0, help="Keep the newest "
                                             "of each of the last N hours.")] = 0,
    keep_daily: Annotated[int, typer.Option("--keep-daily", min=0, help="… days.")] = 0,
    keep_weekly: Annotated[int, typer.Option("--keep-weekly", min=0, help="… ISO weeks.")] = 0,
    keep_monthly: Annotated[int, typer.Option("--keep-monthly", min=0, help="… months.")] = 0,
    keep_yearly: Annotated[int, typer.Option("--keep-yearly", min=0, help="… years.")] = 0,
    and_prune: Annotated[bool, typer.Option("--prune", help="Then remove the data no "
                                            "snapshot needs any more.")] = False,
    dry_run: DryRunOption = False, as_json: JsonOption = False,
) -> None:
    """Forget the snapshots a retention policy does not keep (restic's --keep-* rules), and
    the journal segments no kept snapshot needs; with --prune, remove their data too."""
    policy = Policy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
    with handled(), registry(ctx) as reg, _repository(repo, key_file) as r, \
            r.lock(exclusive=True):
        keys = reg.public_keys()
        result = forget_by_policy(r, policy, public_keys=keys, dry_run=dry_run)
        out: dict[str, Any] = {"forget": result.to_dict(), "policy": policy.to_dict()}
        if not as_json:
            verb = "would forget" if dry_run else "forgot"
            for c, why in result.decision.keep if result.decision else []:
                console.print(f"keep   {c.name}  ({', '.join(why)})")
            for name in result.forgotten:
                console.print(f"forget {name}")
            console.print(f"{verb} {len(result.forgotten)} snapshots and "
                          f"{len(result.segments)} journal segments")
        if and_prune:
            out["prune"] = _prune_now(r, keys, dry_run, as_json)
        if as_json:
            emit(out, True)


@app.command("prune")
def prune_(ctx: typer.Context, repo: RepoOption = None, key_file: KeyFileOption = None,
           dry_run: DryRunOption = False, as_json: JsonOption = False) -> None:
    """Remove the data no snapshot refers to (repacking packs that mix used and unused
    blobs); safe to interrupt at any moment."""
    with handled(), registry(ctx) as reg, _repository(repo, key_file) as r, \
            r.lock(exclusive=True):
        out = _prune_now(r, reg.public_keys(), dry_run, as_json)
        if as_json:
            emit(out, True)


@app.command("copy")
def copy(
    ctx: typer.Context,
    snapshot: Annotated[str | None, typer.Argument(
        help="The snapshot to copy (default: every snapshot the destination lacks).")] = None,
    to: Annotated[str | None, typer.Option(
        "--to", help="The destination repository: a directory or s3://bucket/prefix.")] = None,
    to_key_file: Annotated[Path | None, typer.Option(
        "--to-key-file", help="The destination's key file (else the passphrase in "
        "CUTRU_BACKUP_TO_PASSPHRASE).")] = None,
    repo: RepoOption = None, key_file: KeyFileOption = None, as_json: JsonOption = False,
) -> None:
    """Copy snapshots and the journal archive into a second repository (re-chunked under its
    keys, signed again with the checkpoint key)."""
    with handled(), registry(ctx) as reg, _repository(repo, key_file) as src, src.lock():
        if not to:
            raise ConfigError("give the destination repository with --to", field="to",
                              rule="backup.copy_destination")
        target = open_target(to, s3_endpoint=os.environ.get("CUTRU_BACKUP_S3_ENDPOINT"))
        try:
            dst = Repository.open(target, _credential(
                to_key_file, env="CUTRU_BACKUP_TO_PASSPHRASE"))
            with dst.lock(), _bar("copy: streams and segments") as advance:
                result = copy_all(src, dst, ManifestKey(_signing_key(reg)),
                                  public_keys=reg.public_keys(),
                                  names=None if snapshot is None else [snapshot],
                                  progress=lambda n: advance(n, None))
        finally:
            target.close()
        if as_json:
            emit(result.to_dict(), True)
            return
        console.print(f"copied {len(result.snapshots)} snapshots ({len(result.skipped)} "
                      f"already there) and {len(result.segments)} journal segments to {to}; "
                      f"{result.new_blobs} new blobs ({_mib(result.new_bytes)})")
