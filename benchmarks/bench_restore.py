"""Measure restoring to the moment before, against restic, borg and SQLite's ``.restore``.

    python benchmarks/bench_restore.py --persons 100000 [--persons 1000000] [--out ...]

For each size N: seed a SQLite registry through the library (as ``cutru demo seed`` does),
begin the archive with a snapshot (``archive_once``), then write more journal after it: an
import of ``--extra`` persons, ``--rogue`` improper adjustments by one account inside a window
and as many legitimate ones, archived as segments. Then, side by side in one run:

1. **Restoring the newest snapshot** into a new database, its digest recomputed and proved
   (``restore_snapshot`` without segments) against ``restic restore`` and ``borg extract`` of
   the same database file and ``sqlite3 NEW .restore BACKUP``; the peers' backups are made
   first and not timed. Ours twice: the snapshot taken after a quick check, which carries
   its seal of the page groups (as ``cutru serve``'s are), and the one taken before any
   check (every row read). restic is timed before ours and after (its figure is the mean),
   and the disk's rate for writing and syncing 1 GiB is measured in the same run: the
   floor of a restore that returns with its file on disk.
2. **Point-in-time replay**: the same snapshot plus every archived entry after it, to the
   newest entry (``cutru restore apply``'s work); the replay rate is the archived entries
   over the time spent loading, checking and applying them (``RestoreResult.replay_ms``).
3. **Locating a restore point** by actor and window: "the first change by this account after
   T" and "its changes between T1 and T2" (``cutru recover find``), median of repeats.
4. **Verify**: the quick check (``cutru verify --quick``) and the live digest alone against
   ``PRAGMA quick_check``; the quick check three times: with no seal (every row read, then
   sealed), with nothing changed since, and after ``SCATTERED`` adjustments spread over
   ``persons`` (the figure held against the target); pinpointing after a direct edit, in
   projection rows per second: among every row (``pinpoint``, which compares every live
   row with the journal's last image of it, in two processes: ``cutru verify`` where there
   is no seal), by page groups after a seal (``pinpoint_sealed``: ``cutru verify`` once it
   has read every row), and within the quick check that finds the edit.

restic, borg and sqlite3 come from Debian's packages: ``apt-get install restic borgbackup
sqlite3``. Writes docs/benchmarks-restore.md and benchmarks/results-restore.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from time import perf_counter
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
try:
    import cutru  # noqa: F401
except ImportError:  # not installed (no ./dev venv): use the source tree
    sys.path.insert(0, str(ROOT / "src"))

from bench_backup import (  # noqa: E402
    PASSPHRASE,
    adjust,
    check_tools,
    load,
    machine,
    person_keys,
    run,
    size,
    wal_checkpoint,
)
from bench_common import Steps, console  # noqa: E402
from bench_ours import open_registry, timed_import  # noqa: E402
from sqlalchemy import text  # noqa: E402

from cutru.backup import (  # noqa: E402
    Passphrase,
    Repository,
    pages,
)
from cutru.backup.archive import archive_once  # noqa: E402
from cutru.backup.restore import restore_snapshot  # noqa: E402
from cutru.backup.snapshot import list_snapshots, take_snapshot  # noqa: E402
from cutru.backup.targets import LocalTarget  # noqa: E402
from cutru.journal.entry import format_ts  # noqa: E402
from cutru.journal.helper import helper_cpus  # noqa: E402
from cutru.journal.lthash import key_elements, sum_expansions, table_prefix  # noqa: E402
from cutru.recovery import integrity  # noqa: E402
from cutru.recovery.locate import Query, find  # noqa: E402
from cutru.services import people  # noqa: E402
from cutru.services import restore as rs  # noqa: E402
from cutru.services.registry import Registry  # noqa: E402
from cutru.store import journal_store, seals  # noqa: E402
from cutru.store.engine import Database  # noqa: E402
from cutru.store.projection import encoded_rows, projection_state  # noqa: E402
from cutru.store.schema import persons  # noqa: E402

ROGUE, OFFICER, BASIS = "officer-rogue", "officer-bench", "Law on Residence 68/2020/QH14"
#: Adjustments between the quick check's seal and the check measured against the target.
SCATTERED = 50
TARGETS = {"replay_entries_per_s": 20_000, "locate_s": 1.0, "quick_rows_per_s": 1_000_000,
           "pinpoint_rows_per_s": 200_000}


def now_ts(reg: Registry) -> str:
    return format_ts(reg.clock())


def after_snapshot(reg: Registry, args: argparse.Namespace, steps: Steps
                   ) -> dict[str, Any]:
    """Journal written after the snapshot: ``--extra`` adjustments by a batch job (one entry
    each, 2,000 per transaction), then a rogue window among legitimate work."""
    keys = person_keys(reg, args.extra)
    with steps.task("adjustments after the snapshot", len(keys)) as advance:
        for start in range(0, len(keys), 2000):
            with reg.runner.batch() as batch:
                for i, key in enumerate(keys[start:start + 2000], start=start):
                    with batch.unit("officer-batch", BASIS, "person.adjust") as tx:
                        people.adjust_information(tx, key, {"occupation": f"đợt {i}"})
            advance(len(keys[start:start + 2000]))
    keys = person_keys(reg, 2 * args.rogue)
    window_start = now_ts(reg)
    with steps.task("improper and legitimate adjustments", 2 * args.rogue) as advance:
        for i in range(args.rogue):
            reg.adjust_information(ROGUE, BASIS, keys[2 * i], {"occupation": f"sửa {i}"})
            reg.adjust_information(OFFICER, BASIS, keys[2 * i + 1],
                                   {"occupation": f"hợp lệ {i}"})
            advance(2)
    return {"window_start": window_start, "window_end": now_ts(reg)}


def settled() -> None:
    """Let the disk catch up before a timed restore: every tool starts with nothing of
    another's writing still to flush (the peers' backups just wrote some 11 GB at
    1,000,000 persons, and a restore that syncs its file would otherwise wait for them)."""
    os.sync()


def durable(seconds: float) -> dict[str, float]:
    """A peer's restore time, and the time until what it wrote is on disk (a ``sync`` right
    after it): cutru's restore syncs its file before it returns, restic and borg do not."""
    t0 = perf_counter()
    os.sync()
    return {"seconds": seconds, "synced_seconds": seconds + perf_counter() - t0}


def synced_write_rate(path: Path, total: int = 1 << 30) -> float:
    """The disk's rate, in bytes per second, for writing ``total`` bytes into a new file and
    syncing it (a floor for a restore that returns with its file on disk)."""
    block = os.urandom(4 << 20)
    settled()
    t0 = perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(total // len(block)):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds = perf_counter() - t0
    path.unlink()
    return total / seconds


def restic_restore(work: Path, env: dict[str, str]) -> dict[str, float]:
    """``restic restore latest`` into ``work/restic-out`` (removed after), timed alone and
    with a ``sync`` after it."""
    settled()
    got = durable(run(["restic", "-r", str(work / "restic"), "restore", "latest", "--target",
                       str(work / "restic-out")], env))
    drop([work / "restic-out"])
    return got


def timed_restore(repo: Repository, keys: dict[str, bytes], snap: str, work: Path, label: str,
                  **kw: Any) -> tuple[float, Any]:
    db = Database(f"sqlite:///{work / label / 'cutru.db'}")
    try:
        settled()
        t0 = perf_counter()
        with repo.lock():
            result = restore_snapshot(repo, snap, db, public_keys=keys, **kw)
        return perf_counter() - t0, result
    finally:
        db.dispose()


def drop(paths: list[Path]) -> None:
    """Remove restored copies (files or directories) once they are measured."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def median_time(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = perf_counter()
        out = fn()
        times.append(perf_counter() - t0)
    return statistics.median(times), out


def one_size(persons: int, work: Path, steps: Steps, args: argparse.Namespace
             ) -> dict[str, Any]:
    work.mkdir(parents=True)
    res: dict[str, Any] = {"persons": persons, "load_start": load(), "extra": args.extra,
                           "rogue": args.rogue}
    env = {**os.environ, "RESTIC_PASSWORD": PASSPHRASE, "BORG_PASSPHRASE": PASSPHRASE,
           "RESTIC_CACHE_DIR": str(work / "restic-cache"),
           "BORG_BASE_DIR": str(work / "borg-base"), "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}
    reg = open_registry(work, "reg", seed=args.seed)
    try:
        seeded = timed_import(reg, persons=persons, seed=args.seed, actor="demo-seed",
                              batch_lines=2000, steps=steps,
                              description=f"{persons:,}: seeding the registry")
        res["seed_seconds"] = seeded["seconds"]
        signer = reg.signing_key
        assert signer is not None
        keys = {signer.key_id: signer.public_key_bytes}
        db_file = reg.settings.data_dir / "cutru.db"
        repo = Repository.init(LocalTarget(work / "ours"), Passphrase(PASSPHRASE))
        with repo.lock():
            archive_once(reg.db, repo, signer)  # the snapshot that begins the archive
        snap = list_snapshots(repo, keys)[-1]
        # cutru serve's quick check seals the registry's page groups; the snapshot taken
        # after it carries that seal, with which its restore proves the file by groups
        assert integrity.quick_check(reg.db, public_keys=keys, signer=signer).ok
        with repo.lock():
            sealed_snap = take_snapshot(reg.db, repo, signer)
        assert pages.SEALS_STREAM in sealed_snap.streams
        wal_checkpoint(db_file)
        res["db_bytes"] = size(db_file)[0]
        res["snapshot_layout"] = snap.layout

        # 1. the newest snapshot, restored ------------------------------------------------
        steps.note("  peers' backups (not timed)")
        run(["restic", "-r", str(work / "restic"), "init"], env)
        run(["restic", "-r", str(work / "restic"), "backup", "--quiet", str(db_file)], env)
        run(["borg", "init", "--encryption=repokey", str(work / "borg")], env)
        run(["borg", "create", "--compression", "zstd,3", f"{work / 'borg'}::full",
             str(db_file)], env)
        run(["sqlite3", str(db_file), f".backup '{work / 'sqlite-backup.db'}'"], env)
        restore: dict[str, Any] = {"disk_bytes_per_s": synced_write_rate(work / "disk-probe")}
        # restic before and after ours (its figure is the mean): neither tool runs only
        # right after the other's writing
        restic_runs = [restic_restore(work, env)]
        seconds, result = timed_restore(repo, keys, sealed_snap.name, work, "ours-snap",
                                        segments=False)
        restore["ours"] = {"seconds": seconds, "rows": result.rows,
                           "digest_ok": result.digest == snap.position.state_digest,
                           "page_groups": result.page_groups,
                           "page_groups_read": result.page_groups_read}
        res["snapshot_rows"] = result.rows
        steps.note(f"  restore_snapshot: {seconds:.2f} s")
        drop([work / "ours-snap"])
        seconds, result = timed_restore(repo, keys, snap.name, work, "ours-snap",
                                        segments=False)
        restore["ours_unsealed"] = {
            "seconds": seconds, "digest_ok": result.digest == snap.position.state_digest,
            "page_groups": result.page_groups, "page_groups_read": result.page_groups_read}
        steps.note(f"  restore_snapshot without a seal: {seconds:.2f} s")
        restic_runs.append(restic_restore(work, env))
        restore["restic"] = {
            "seconds": statistics.mean(r["seconds"] for r in restic_runs),
            "synced_seconds": statistics.mean(r["synced_seconds"] for r in restic_runs),
            "runs": restic_runs}
        (work / "borg-out").mkdir()
        settled()
        t0 = perf_counter()
        proc = subprocess.run(["borg", "extract", f"{work / 'borg'}::full"], env=env,
                              cwd=work / "borg-out", capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"borg extract failed: {proc.stderr[-300:]}")
        restore["borg"] = durable(perf_counter() - t0)
        settled()
        restore["sqlite3"] = durable(run(["sqlite3", str(work / "sqlite-restored.db"),
                                          f".restore '{work / 'sqlite-backup.db'}'"], env))
        res["restore"] = restore
        # the restored copies would otherwise push the live registry out of the page cache
        # (five copies of a 4.4 GB file at 1M on a 24 GiB machine), and the verify figures
        # below would measure the disk
        drop([work / "borg-out", work / "sqlite-restored.db",
              work / "ours-snap"])

        # 2. point-in-time replay ---------------------------------------------------------
        window = after_snapshot(reg, args, steps)
        with repo.lock():
            archive_once(reg.db, repo, signer, public_keys=keys)
        head = reg.journal_length()
        t0 = perf_counter()
        with repo.lock():
            plan = rs.plan(repo, keys, str(head))
        plan_seconds = perf_counter() - t0
        seconds, result = timed_restore(repo, keys, snap.name, work, "ours-pitr", upto=head)
        replayed = head - snap.position.seq
        extra = max(result.replay_ms / 1000, 1e-9)
        res["pitr"] = {"seconds": seconds, "entries": replayed, "plan_seconds": plan_seconds,
                       "segments": len(plan.segments), "replay_seconds": extra,
                       "entries_per_s": replayed / extra,
                       "digest_ok": result.digest == plan.state_digest}
        steps.note(f"  point-in-time: {replayed:,} entries replayed in {extra:.2f} s")
        drop([work / "ours-pitr"])

        # 3. locating a restore point ----------------------------------------------------
        with reg.db.read() as conn:
            total_entries = journal_store.last_seq(conn)
            first_s, first = median_time(lambda: find(conn, Query(
                actor=ROGUE, since=window["window_start"]), limit=1), args.repeats)
            window_s, found = median_time(lambda: find(conn, Query(
                actor=ROGUE, since=window["window_start"], until=window["window_end"]),
                limit=100_000), args.repeats)
        res["locate"] = {"first_seconds": first_s, "window_seconds": window_s,
                         "window_entries": len(found), "journal_entries": total_entries,
                         "first_seq": first[0].seq if first else None}

        # 4. verify ----------------------------------------------------------------------
        wal_checkpoint(db_file)
        t0 = perf_counter()
        with reg.db.read() as conn:
            _state, rows = projection_state(conn, beside=True)  # as verify reads
        digest_seconds = perf_counter() - t0
        seals.seal_path(str(db_file)).unlink(missing_ok=True)
        signer = reg.signing_key
        t0 = perf_counter()  # no seal yet: every row read, then sealed
        first = integrity.quick_check(reg.db, public_keys=keys, signer=signer)
        first_seconds = perf_counter() - t0
        t0 = perf_counter()  # nothing changed since the seal
        sealed = integrity.quick_check(reg.db, public_keys=keys, signer=signer)
        sealed_seconds = perf_counter() - t0
        adjust(reg, person_keys(reg, SCATTERED), "sau niêm phong")
        t0 = perf_counter()  # after changes scattered over the persons table
        quick = integrity.quick_check(reg.db, public_keys=keys, signer=signer)
        quick_seconds = perf_counter() - t0
        peer = run(["sqlite3", str(db_file), "PRAGMA quick_check;"], env)
        victim = person_keys(reg, 10)[3]
        with reg.db.engine.begin() as conn:
            conn.execute(text("UPDATE persons SET occupation = 'sửa thẳng' WHERE key = :k"),
                         {"k": victim})
        t0 = perf_counter()
        with reg.db.read() as conn:
            found_rows = integrity.pinpoint(conn)
        pin_seconds = perf_counter() - t0
        # cutru verify's pinpointing after a seal: it has read every row (``live``), then
        # sums the tables by page groups and pinpoints among the groups read
        wal_checkpoint(db_file)
        sealed_now = seals.load(str(db_file), keys)
        with reg.db.read() as conn:
            at = journal_store.read_head(conn)
            live, _rows = projection_state(conn, beside=True)
            t0 = perf_counter()
            by_seal = integrity.pinpoint_sealed(conn, str(db_file), sealed_now, at.seq,
                                                at.state, live)
            pin_sealed_seconds = perf_counter() - t0
        t0 = perf_counter()  # cutru serve's check: it finds the edit and pinpoints it
        caught = integrity.quick_check(reg.db, public_keys=keys, signer=signer)
        caught_seconds = perf_counter() - t0
        expand_us = expansion_cost(reg)
        res["verify"] = {"rows": rows, "digest_seconds": digest_seconds,
                         "expansion_us_per_row": expand_us, "cpus": helper_cpus(),
                         "digest_rows_per_s": rows / digest_seconds,
                         "quick_seconds": quick_seconds, "quick_ok": quick.ok,
                         "quick_rows_per_s": quick.rows / quick_seconds,
                         "quick_groups": quick.groups, "quick_groups_read": quick.groups_read,
                         "quick_scattered": SCATTERED,
                         "quick_first_seconds": first_seconds, "quick_first_ok": first.ok,
                         "quick_first_groups_read": first.groups_read,
                         "quick_sealed_seconds": sealed_seconds,
                         "quick_sealed_ok": sealed.ok,
                         "quick_sealed_groups_read": sealed.groups_read,
                         "quick_rows": quick.rows,
                         "sqlite_quick_check_seconds": peer,
                         "pinpoint_seconds": pin_seconds,
                         "pinpoint_rows_per_s": rows / pin_seconds,
                         "pinpoint_entries": total_entries,
                         "pinpoint_sealed_seconds": pin_sealed_seconds,
                         "pinpoint_sealed_by_groups": by_seal is not None,
                         "pinpoint_sealed_found": [(p.table, p.key) for p in by_seal or []]
                         == [("persons", victim)],
                         "pinpointed": [(p.table, p.key) for p in found_rows] ==
                         [("persons", victim)],
                         "caught_seconds": caught_seconds,
                         "caught_by_groups": caught.pinpointed_by_groups,
                         "caught_groups_read": caught.groups_read,
                         "caught_pinpointed": [(p.table, p.key) for p in caught.problems] ==
                         [("persons", victim)]}
        res["load_end"] = load()
        return res
    finally:
        reg.close()


def expansion_cost(reg: Registry, rows: int = 20_000) -> float:
    """Microseconds per row of the state digest's expansion alone (BLAKE3 to 2 KiB and the
    lane sum, :func:`sum_expansions`), on ``persons`` rows as stored, in this process: the
    floor under every full digest, the quick check's included. Best of three."""
    with reg.db.read() as conn:
        keys, encoded = next(encoded_rows(conn, persons, batch=rows, ordered=False))
    elements = key_elements(keys, encoded)
    prefix = table_prefix("persons")
    best = float("inf")
    for _ in range(3):
        t0 = perf_counter()
        sum_expansions(elements, prefix)
        best = min(best, perf_counter() - t0)
    return best / len(elements) * 1e6


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(results: list[dict[str, Any]], mach: dict[str, Any]) -> str:
    out = ["# Restore benchmarks", "",
           "Generated by `python benchmarks/bench_restore.py` (see its docstring); the raw "
           "figures are in `benchmarks/results-restore.json`. One run, one machine, every "
           "peer on the same data; each restore starts after a `sync`, with nothing of "
           "another tool's writing left to flush.", "",
           f"- Machine: {mach['cpu']}, {mach['nproc']} cores; {mach['platform']}; Python "
           f"{mach['python']}; SQLite {mach['sqlite_lib']}; {mach['date']}",
           f"- Peers: {mach['restic']}; {mach['borg']}; sqlite3 {mach['sqlite3']} "
           "(Debian's packages)", ""]
    for r in results:
        n, rest, p, loc, v = (r["persons"], r["restore"], r["pitr"], r["locate"],
                              r["verify"])
        out += [f"## {n:,} persons", "",
                f"Database file {r['db_bytes'] / 1e6:,.1f} MB, {r['snapshot_rows']:,} "
                f"projection rows in the snapshot; after it, {r['extra']:,} adjustments by a batch "
                f"job and {2 * r['rogue']:,} by officers (half by `{ROGUE}`). Load "
                f"{r['load_start']} → {r['load_end']}.", "",
                "### Restoring the newest snapshot into a new database", "",
                "| Tool | Time (s) | then `sync` (s) | ÷ restic | ÷ restic then `sync` |",
                "|---|---:|---:|---:|---:|"]
        sealed = "page_groups" in rest["ours"]
        for tool, label in (
                ("ours", "cutru `restore_snapshot` (digest recomputed and proved"
                 + (f": by page groups, {rest['ours']['page_groups_read']} of "
                    f"{rest['ours']['page_groups']} read as rows, the rest sealed)"
                    if sealed else ")")),
                ("ours_unsealed", "cutru `restore_snapshot` of a snapshot without a seal "
                 "(every row read)"),
                ("restic", "`restic restore latest`"),
                ("borg", "`borg extract`"), ("sqlite3", "`sqlite3 .restore`")):
            if tool not in rest:
                continue
            s = rest[tool]["seconds"]
            synced = rest[tool].get("synced_seconds")
            base = rest["restic"].get("synced_seconds")
            out.append(f"| {label} | {s:.2f} | "
                       + (f"{synced:.2f}" if synced is not None else "(synced)")
                       + f" | {s / rest['restic']['seconds']:.2f}× | "
                       + (f"{(synced or s) / base:.2f}×" if base else "") + " |")
        ok = rest["ours"]["seconds"] <= rest["restic"]["seconds"]
        durable_ok = ("synced_seconds" in rest["restic"]
                      and rest["ours"]["seconds"] <= rest["restic"]["synced_seconds"])
        layout = r.get("snapshot_layout", "rows")
        proof = v.get("digest_seconds")
        out += ["", f"Target: no slower than restic — {_met(ok)} against `restic restore` "
                "alone"
                + (f"; {_met(durable_ok)} against `restic restore` followed by `sync`, "
                   "when its file is on disk, as cutru's is when its restore returns "
                   "(cutru syncs the file before it renames it into place)"
                   if "synced_seconds" in rest["restic"] else "")
                + f". The digest proved: {rest['ours']['digest_ok']}.", ""]
        if "runs" in rest["restic"]:
            a, b = rest["restic"]["runs"]
            floor = r["db_bytes"] / rest["disk_bytes_per_s"]
            out += [f"restic ran twice, before cutru's restores and after them: "
                    f"{a['seconds']:.2f} s and {b['seconds']:.2f} s (then `sync`: "
                    f"{a['synced_seconds']:.2f} s and {b['synced_seconds']:.2f} s); its "
                    "figures above are the means. In the same run the disk wrote and synced "
                    f"1 GiB at {rest['disk_bytes_per_s'] / 1e6:,.0f} MB/s: at that rate the "
                    f"{r['db_bytes'] / 1e6:,.0f} MB file takes {floor:.2f} s to reach the disk, "
                    "a floor for a restore that returns with its file on disk, as cutru's "
                    f"does ({rest['ours']['seconds'] / floor:.2f}× that floor); "
                    "`restic restore` returns with part of its file still in the page "
                    "cache.", ""]
        if layout == "pages" and sealed:
            out += ["The snapshot is in the pages layout (the database file, docs/design.md "
                    "\"Pages snapshots\"): the restore writes the file from its blobs, each "
                    "checked, then proves the state digest by page groups. The snapshot "
                    "measured first was taken after a quick check (as `cutru serve` takes "
                    "them), and carries its signed seal: only the groups whose bytes the "
                    "seal does not hold are read as rows. The snapshot without a seal, taken "
                    "before any check, has every row read. On the live registry the digest "
                    f"from every row takes {proof:.2f} s (\"live digest alone\" below); "
                    "restic writes the file and proves nothing of its content.", ""]
        elif layout == "pages" and proof:
            out += ["The snapshot is in the pages layout (the database file, docs/design.md "
                    "\"Pages snapshots\"): the restore writes the file from its blobs, each "
                    "checked, then recomputes the state digest from every row and compares it "
                    "with the signed one. On the live registry that proof alone takes "
                    f"{proof:.2f} s (\"live digest alone\" below), "
                    f"{proof / rest['ours']['seconds']:.0%} of this restore's time; restic "
                    "writes the file and proves nothing of its content.", ""]
        out += [
                "### Point-in-time restore and the other targets", "",
                "| Measurement | Figure | Target | |", "|---|---:|---:|---|",
                f"| replay of {p['entries']:,} archived entries after the snapshot | "
                f"{p['entries_per_s']:,.0f} entries/s ({p['replay_seconds']:.2f} s; whole "
                f"restore {p['seconds']:.2f} s, plan {p['plan_seconds']:.2f} s) | ≥ 20,000 "
                f"entries/s | {_met(p['entries_per_s'] >= TARGETS['replay_entries_per_s'])} |",
                f"| locate: first change by an account after a time, {loc['journal_entries']:,}"
                f"-entry journal | {loc['first_seconds'] * 1000:.1f} ms | ≤ 1 s | "
                f"{_met(loc['first_seconds'] <= 1)} |",
                f"| locate: all {loc['window_entries']:,} changes of that account in the "
                f"window | {loc['window_seconds'] * 1000:.1f} ms | ≤ 1 s | "
                f"{_met(loc['window_seconds'] <= 1)} |",
                *_quick_rows(v),
                f"| live digest alone (`projection_state`) | {v['digest_rows_per_s']:,.0f} "
                f"rows/s ({v['digest_seconds']:.2f} s) | | |",
                f"| pinpointing one direct edit among every row (`integrity.pinpoint`, "
                f"as `cutru verify` does where there is no seal: every row against its last "
                f"image in the {v['pinpoint_entries']:,}-entry journal) | "
                f"{v['pinpoint_rows_per_s']:,.0f} rows/s ({v['pinpoint_seconds']:.2f} s; "
                f"found: {v['pinpointed']}) | ≥ 200,000 rows/s | "
                f"{_met(v['pinpoint_rows_per_s'] >= TARGETS['pinpoint_rows_per_s'])} |",
                *_sealed_pin_rows(v), *_caught_rows(v), "",
                "The replay time runs from the first archived segment's use to the last row "
                "written (`RestoreResult.replay_ms`); a helper process decodes each segment "
                "while this one writes the one before, and begins with the first while the "
                "snapshot's tables load, which the whole-restore time includes.", ""]
        if "expansion_us_per_row" in v:
            us, cpus = v["expansion_us_per_row"], v["cpus"]
            floor = cpus * 1e6 / us
            out += [f"The floor of a check that reads every row (the first quick check, "
                    f"before any seal; `cutru verify`; the proof of a restore): expanding one "
                    f"`persons` row (the largest rows) into its LtHash16 vector (BLAKE3, 2 KiB "
                    f"of output, and the lane sum) takes {us:.2f} µs here in one process. "
                    f"With all {cpus} CPUs doing nothing but that, a full digest of such rows "
                    f"could not pass {floor:,.0f} rows/s, before a single row is read, and "
                    "reading a row (SQLite writing its canonical JSON) costs about as much "
                    "as expanding it (docs/design.md, \"Rows from the driver\"). The sealed "
                    "quick check escapes that floor by not reading the rows of page groups "
                    "whose bytes a signed seal already sums (docs/design.md, \"Sealed page "
                    "groups\"): its cost is hashing the tables' pages, plus reading the "
                    "groups that changed.", ""]
    return "\n".join(out) + "\n"


def _sealed_pin_rows(v: dict[str, Any]) -> list[str]:
    """``cutru verify``'s pinpointing of the same edit after a seal."""
    if "pinpoint_sealed_seconds" not in v:
        return []
    how = ("by page groups, among the groups read and the keys written since the seal"
           if v["pinpoint_sealed_by_groups"] else "(the seal could not be used)")
    return _pin_row(v, "the same edit pinpointed as `cutru verify` does after a seal "
                    f"(`integrity.pinpoint_sealed`, once every row has been read: {how})",
                    v["pinpoint_sealed_seconds"], v["pinpoint_sealed_found"],
                    v["pinpoint_sealed_by_groups"])


def _caught_rows(v: dict[str, Any]) -> list[str]:
    """The quick check that finds the direct edit and pinpoints it among the groups read."""
    if "caught_seconds" not in v:
        return []
    how = ("among the rows of the groups read and the keys written since the seal"
           if v["caught_by_groups"] else "among every row (the groups could not be used)")
    return _pin_row(v, "the quick check (`cutru serve`'s, after a seal) that finds that edit "
                    f"and pinpoints it {how} ({v['caught_groups_read']} group read), the "
                    "whole check timed", v["caught_seconds"], v["caught_pinpointed"], True)


def _pin_row(v: dict[str, Any], what: str, seconds: float, found: bool, counts: bool
             ) -> list[str]:
    """A pinpointing row of the targets table, in rows per second of the whole registry;
    met only where it ``counts`` (the way measured is the one named) and is fast enough."""
    rate = v["rows"] / seconds
    return [f"| {what} | {rate:,.0f} rows/s ({seconds:.2f} s; found: {found}) | "
            f"≥ 200,000 rows/s | "
            f"{_met(counts and rate >= TARGETS['pinpoint_rows_per_s'])} |"]


def _quick_rows(v: dict[str, Any]) -> list[str]:
    """The quick check's rows of the targets table: sealed (the scheduled check) after
    scattered changes, against the target; with no change; and the first, which seals."""
    if "quick_groups" not in v:  # results from before sealed page groups
        return [f"| quick check (`cutru verify --quick`), {v['rows']:,} rows | "
                f"{v['quick_rows_per_s']:,.0f} rows/s ({v['quick_seconds']:.2f} s; "
                f"`PRAGMA quick_check` {v['sqlite_quick_check_seconds']:.2f} s) | ≥ 1,000,000 "
                f"rows/s | {_met(v['quick_rows_per_s'] >= TARGETS['quick_rows_per_s'])} |"]
    rows = v["quick_rows"]
    return [
        f"| quick check (`cutru verify --quick`), {rows:,} rows, after "
        f"{v['quick_scattered']} adjustments scattered over `persons` since its seal: "
        f"{v['quick_groups_read']} of {v['quick_groups']} page groups read | "
        f"{v['quick_rows_per_s']:,.0f} rows/s ({v['quick_seconds']:.2f} s; `PRAGMA "
        f"quick_check` {v['sqlite_quick_check_seconds']:.2f} s) | ≥ 1,000,000 rows/s | "
        f"{_met(v['quick_rows_per_s'] >= TARGETS['quick_rows_per_s'])} |",
        f"| quick check, nothing changed since its seal "
        f"({v['quick_sealed_groups_read']} groups read) | "
        f"{rows / v['quick_sealed_seconds']:,.0f} rows/s ({v['quick_sealed_seconds']:.2f} s) "
        "| | |",
        f"| quick check with no seal: every row read, then sealed | "
        f"{rows / v['quick_first_seconds']:,.0f} rows/s ({v['quick_first_seconds']:.2f} s) "
        "| | |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, action="append")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--extra", type=int, default=20_000,
                        help="adjustments after the snapshot (journal to replay)")
    parser.add_argument("--rogue", type=int, default=500,
                        help="improper adjustments (and as many legitimate ones)")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-restore.md")
    parser.add_argument("--json", type=Path, default=HERE / "results-restore.json")
    parser.add_argument("--work-dir", type=Path, default=HERE / "work")
    parser.add_argument("--render", action="store_true",
                        help="only write the report again from the JSON results")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(args.json.read_text(encoding="utf-8"))
        args.out.write_text(render(saved["results"], saved["machine"]), encoding="utf-8")
        console.print(f"wrote {args.out}")
        return
    sizes = args.persons or [100_000]
    mach = machine(check_tools())
    results: list[dict[str, Any]] = []
    with Steps() as steps:
        for persons in sizes:
            work = args.work_dir / f"restore-{persons}-{os.getpid()}"
            steps.note(f"{persons:,} persons (load {load()})")
            try:
                results.append(one_size(persons, work, steps, args))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            args.json.write_text(json.dumps({"machine": mach, "results": results}, indent=2),
                                 encoding="utf-8")
            args.out.write_text(render(results, mach), encoding="utf-8")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
