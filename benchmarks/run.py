"""Measure cutru against bare peers, side by side, in one run.

    python benchmarks/run.py --persons 100000 --persons 1000000 [--skip-postgres]
                             [--out docs/benchmarks.md]

For each size: bulk import on SQLite (``cutru demo seed`` and ``cutru import``) against a bare
``executemany`` of the same projection rows; the same on PostgreSQL against ``COPY``; rebuild
from the journal; lookup by ID number and ``--as-of``; sizes; and how cost grows between
sizes. Writes docs/benchmarks.md and benchmarks/results.json. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from time import perf_counter
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
try:
    import cutru  # noqa: F401
except ImportError:  # not installed (no ./dev venv): use the source tree
    sys.path.insert(0, str(ROOT / "src"))

import bench_pg  # noqa: E402
import bench_report  # noqa: E402
import bench_sqlite  # noqa: E402
import psycopg  # noqa: E402
import sqlalchemy  # noqa: E402
from bench_common import TODAY, Steps, console, cpu_model, rate  # noqa: E402
from bench_ours import (  # noqa: E402
    as_of_point,
    counts,
    open_registry,
    persons_existing_at,
    sample_id_numbers,
    timed_as_of,
    timed_import,
    timed_lookups,
    timed_rebuild,
)

from cutru.services import synthetic  # noqa: E402
from cutru.store.schema import PROJECTION, journal, journal_subjects  # noqa: E402

DEFAULT_PG_URL = os.environ.get("CUTRU_BENCH_PG_URL",
                                "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WITH_JOURNAL = (*PROJECTION, journal, journal_subjects)


# -- the machine ------------------------------------------------------------------------------
def _ram_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _commit() -> str | None:
    """HEAD's short hash, marked ``+changes`` when src/ differs from it (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "src"], cwd=ROOT,
                               capture_output=True).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+changes in src/" if dirty else head


def machine(pg_version: str | None) -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "ram_bytes": _ram_bytes(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
        "commit": _commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
    }


# -- one size ---------------------------------------------------------------------------------
def write_jsonl(path: Path, persons: int, seed: int, steps: Steps) -> dict[str, Any]:
    """The synthetic registry as JSON Lines, as ``cutru demo seed`` would import it."""
    records = 0
    with steps.task(f"{persons:,}: writing the JSONL file", persons) as advance:
        t0 = perf_counter()
        with path.open("w", encoding="utf-8") as out:
            for rec in synthetic.generate(persons, seed=seed, today=TODAY):
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                records += 1
                if rec.get("kind") == "household":
                    advance(len(rec["members"]))
        seconds = perf_counter() - t0
    return {"seconds": seconds, "records": records, "bytes": path.stat().st_size,
            "persons_per_s": rate(persons, seconds)}


def _per_person(bare: dict[str, Any], persons: int) -> dict[str, Any]:
    return {**bare, "persons_per_s": rate(persons, bare["seconds"])}


def _say(steps: Steps, what: str, r: dict[str, Any]) -> None:
    steps.note(f"  {what}: {r['seconds']:,.2f} s, {r['persons_per_s']:,.0f} persons/s")


def _lat(steps: Steps, what: str, r: dict[str, Any]) -> None:
    steps.note(f"  {what}: median {r['median_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms")


def _queries(reg: Any, jsonl: Path, res: dict[str, Any], args: argparse.Namespace,
             steps: Steps, label: str) -> None:
    """Lookups now and as of the middle of the journal (ours)."""
    ids = sample_id_numbers(jsonl, args.lookups, args.seed)
    res["lookup"] = timed_lookups(reg, ids, steps=steps, description=f"{label}: lookups")
    _lat(steps, "lookup find+person", res["lookup"]["find_and_person"])
    seq, ts = as_of_point(reg)
    keys = persons_existing_at(reg, seq, args.as_of_lookups, args.seed)
    res["as_of"] = {"seq": seq, "ts": ts, **timed_as_of(
        reg, keys, ts, steps=steps, description=f"{label}: --as-of lookups")}
    _lat(steps, f"--as-of entry {seq:,}", res["as_of"])


def run_sqlite(work: Path, jsonl: Path, n: int, args: argparse.Namespace,
               steps: Steps) -> dict[str, Any]:
    label = f"{n:,} SQLite"
    res: dict[str, Any] = {}
    seed_reg = open_registry(work, "seed", seed=args.seed)
    res["import_seed"] = timed_import(seed_reg, persons=n, seed=args.seed, actor="demo-seed",
                                      batch_lines=args.batch_lines, steps=steps,
                                      description=f"{label}: demo seed")
    _say(steps, "demo seed", res["import_seed"])
    res["counts"] = counts(seed_reg)
    db = bench_sqlite.db_file(seed_reg)
    seed_reg.db.dispose()
    res["size"] = bench_sqlite.file_sizes(db)

    import_reg = open_registry(work, "import", seed=args.seed)
    res["import_jsonl"] = timed_import(import_reg, persons=n, seed=args.seed, actor="importer",
                                       batch_lines=args.batch_lines, steps=steps,
                                       description=f"{label}: import JSONL", jsonl=jsonl)
    _say(steps, "import JSONL", res["import_jsonl"])
    other = counts(import_reg)
    res["same_projection"] = other["projection"] == res["counts"]["projection"]
    res["same_digest"] = other["state_digest"] == res["counts"]["state_digest"]
    import_reg.close()
    shutil.rmtree(work / "import-data")

    bare = work / "bare" / "bare.db"
    res["bare"] = _per_person(bench_sqlite.bare_load(
        db, bare, PROJECTION, steps=steps, description=f"{label}: bare executemany"), n)
    _say(steps, "bare executemany", res["bare"])
    res["bare_size"] = bench_sqlite.file_sizes(bare)
    with_journal = work / "bare-journal" / "bare.db"
    res["bare_with_journal"] = _per_person(bench_sqlite.bare_load(
        db, with_journal, WITH_JOURNAL, steps=steps,
        description=f"{label}: bare executemany incl. journal"), n)
    _say(steps, "bare executemany incl. journal", res["bare_with_journal"])
    shutil.rmtree(with_journal.parent)

    _queries(seed_reg, jsonl, res, args, steps, label)
    res["lookup_bare"] = bench_sqlite.bare_lookups(bare, args.lookups, args.seed, steps=steps,
                                                   description=f"{label}: bare lookups")
    _lat(steps, "bare SELECT", res["lookup_bare"])

    res["rebuild"] = timed_rebuild(seed_reg, entries=res["counts"]["journal"], persons=n,
                                   steps=steps, description=f"{label}: rebuild")
    steps.note(f"  rebuild: {res['rebuild']['seconds']:,.1f} s, "
               f"{res['rebuild']['entries_per_s']:,.0f} entries/s")
    seed_reg.close()
    res["size_after_rebuild"] = bench_sqlite.file_sizes(db)
    return res


def run_postgres(work: Path, jsonl: Path, n: int, args: argparse.Namespace, steps: Steps,
                 sqlite_counts: dict[str, Any]) -> dict[str, Any]:
    label = f"{n:,} PostgreSQL"
    res: dict[str, Any] = {}
    with bench_pg.scratch_databases(args.pg_url, "ours", "bare", "barej") as urls:
        reg = open_registry(work, "pg", seed=args.seed, database_url=urls["ours"])
        try:
            res["import_jsonl"] = timed_import(
                reg, persons=n, seed=args.seed, actor="importer", batch_lines=args.batch_lines,
                steps=steps, description=f"{label}: import JSONL", jsonl=jsonl)
            _say(steps, "import JSONL", res["import_jsonl"])
            res["counts"] = counts(reg)
            res["same_projection"] = res["counts"]["projection"] == sqlite_counts["projection"]
            res["same_digest"] = res["counts"]["state_digest"] == sqlite_counts["state_digest"]
            res["size"] = bench_pg.sizes(urls["ours"])
            res["bare"] = _per_person(bench_pg.bare_copy(
                urls["ours"], urls["bare"], PROJECTION, steps=steps,
                description=f"{label}: bare COPY"), n)
            _say(steps, "bare COPY", res["bare"])
            res["bare_size"] = bench_pg.sizes(urls["bare"])
            res["bare_with_journal"] = _per_person(bench_pg.bare_copy(
                urls["ours"], urls["barej"], WITH_JOURNAL, steps=steps,
                description=f"{label}: bare COPY incl. journal"), n)
            _say(steps, "bare COPY incl. journal", res["bare_with_journal"])
            bench_pg.analyze(urls["ours"])
            bench_pg.analyze(urls["bare"])
            _queries(reg, jsonl, res, args, steps, label)
            res["lookup_bare"] = bench_pg.bare_lookups(
                urls["bare"], args.lookups, args.seed, steps=steps,
                description=f"{label}: bare lookups")
            _lat(steps, "bare SELECT", res["lookup_bare"])
            res["rebuild"] = timed_rebuild(reg, entries=res["counts"]["journal"], persons=n,
                                           steps=steps, description=f"{label}: rebuild")
            steps.note(f"  rebuild: {res['rebuild']['seconds']:,.1f} s, "
                       f"{res['rebuild']['entries_per_s']:,.0f} entries/s")
            res["size_after_rebuild"] = bench_pg.sizes(urls["ours"])
        finally:
            reg.close()
    return res


def run_size(n: int, args: argparse.Namespace, steps: Steps, pg: bool) -> dict[str, Any]:
    work = args.work_dir / f"{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    steps.note(f"[bold]{n:,} persons[/bold]")
    out: dict[str, Any] = {"persons": n, "load_average": {"start": _load()}}
    try:
        jsonl = work / "registry.jsonl"
        out["generator"] = write_jsonl(jsonl, n, args.seed, steps)
        out["sqlite"] = run_sqlite(work, jsonl, n, args, steps)
        if pg:
            out["postgresql"] = run_postgres(work, jsonl, n, args, steps,
                                             out["sqlite"]["counts"])
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    out["load_average"]["end"] = _load()
    return out


def _load() -> float | None:
    """The 1-minute load average: other work on the machine skews every figure."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


# -- growth between sizes ---------------------------------------------------------------------
def _measures(size: dict[str, Any]) -> dict[str, float]:
    """Per-person costs (seconds or bytes per person, median latencies) of one size."""
    n = size["persons"]
    out: dict[str, float] = {}
    for backend, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        r = size.get(backend)
        if not isinstance(r, dict) or "skipped" in r:
            continue
        for key, what in (("import_seed", "demo seed"), ("import_jsonl", "import"),
                          ("bare", "bare insert"), ("rebuild", "rebuild")):
            if key in r:
                out[f"{name}: {what}, s/person"] = r[key]["seconds"] / n
        out[f"{name}: lookup, median"] = r["lookup"]["find_and_person"]["median_ms"]
        out[f"{name}: bare lookup, median"] = r["lookup_bare"]["median_ms"]
        out[f"{name}: --as-of lookup, median"] = r["as_of"]["median_ms"]
        out[f"{name}: bytes/person"] = r["size"]["total_bytes"] / n
    return out


def growth(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ordered = sorted(sizes, key=lambda s: s["persons"])
    out = []
    for small, large in pairwise(ordered):
        a, b = _measures(small), _measures(large)
        out += [{"measure": m, "from": small["persons"], "to": large["persons"],
                 "ratio": b[m] / a[m]} for m in a if m in b and a[m] > 0]
    return out


# -- output -----------------------------------------------------------------------------------
def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _display(path: Path) -> str:
    """A path relative to the repository when it lies inside it (never an absolute path)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return path.name


def write_outputs(results: dict[str, Any], args: argparse.Namespace) -> None:
    results["growth"] = growth(results["sizes"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(_rounded(results), indent=2, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(bench_report.render(results), encoding="utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--persons", type=int, action="append", metavar="N",
                   help="registry size; repeat for several (default: 100000 and 1000000)")
    p.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md",
                   help="Markdown report (default: docs/benchmarks.md)")
    p.add_argument("--no-out", dest="out", action="store_const", const=None,
                   help="write no Markdown report")
    p.add_argument("--json", type=Path, default=HERE / "results.json",
                   help="raw results (default: benchmarks/results.json)")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL,
                   help="PostgreSQL server (SQLAlchemy URL of an existing database to connect "
                   "to; scratch databases are created and dropped beside it; default "
                   "$CUTRU_BENCH_PG_URL or postgres@127.0.0.1:5432/test)")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument("--batch-lines", type=int, default=0,
                   help="import lines per transaction (default 0: the whole import is one "
                        "transaction, as `cutru import` and `cutru demo seed` do)")
    p.add_argument("--lookups", type=int, default=2000, help="ID-number lookups (2000)")
    p.add_argument("--as-of-lookups", type=int, default=500, help="--as-of lookups (500)")
    p.add_argument("--work-dir", type=Path, default=HERE / "work",
                   help="scratch files, deleted after each size (default benchmarks/work)")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch files")
    p.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                   help="measure nothing: rewrite the Markdown report from a results file")
    args = p.parse_args(argv)
    args.persons = sorted(set(args.persons or [100_000, 1_000_000]))
    if min(args.persons) < 100:
        p.error("--persons must be at least 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        results = json.loads(args.render.read_text(encoding="utf-8"))
        if args.out is None:
            sys.stdout.write(bench_report.render(results))
        else:
            args.out.write_text(bench_report.render(results), encoding="utf-8")
            console.print(f"wrote {_display(args.out)}")
        return 0
    pg_reason = None
    if args.skip_postgres:
        pg_reason = "skipped with --skip-postgres"
    else:
        pg_reason = bench_pg.unreachable_reason(args.pg_url)
        if pg_reason:
            console.print(f"[yellow]PostgreSQL unreachable, measuring SQLite only: {pg_reason}")
            pg_reason = f"server unreachable ({pg_reason})"
    pg = pg_reason is None
    command = ["python", "benchmarks/run.py", *[f"--persons={n}" for n in args.persons]]
    if args.skip_postgres:
        command.append("--skip-postgres")
    results: dict[str, Any] = {
        "machine": machine(bench_pg.server_version(args.pg_url) if pg else None),
        "parameters": {
            "command": shlex.join(command), "seed": args.seed, "today": TODAY.isoformat(),
            "batch_lines": args.batch_lines, "lookups": args.lookups,
            "as_of_lookups": args.as_of_lookups, "postgres_skipped": pg_reason,
            "targets": {"persons_per_s": bench_report.TARGET_RATE,
                        "ratio_to_bare": bench_report.TARGET_RATIO},
        },
        "sizes": [],
    }
    # A TERM (kill, CI timeout) unwinds like Ctrl-C: scratch files and databases are removed.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    with Steps() as steps:
        for n in args.persons:
            results["sizes"].append(run_size(n, args, steps, pg))
            write_outputs(results, args)
    written = [_display(args.json)] + ([_display(args.out)] if args.out else [])
    console.print(f"wrote {', '.join(written)}")
    return 0


def _interrupted(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:
        console.print(f"[red]interrupted ({exc or 'SIGINT'}); scratch files and databases "
                      "removed, finished sizes kept in the results")
        sys.exit(130)
