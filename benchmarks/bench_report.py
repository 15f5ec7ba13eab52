"""docs/benchmarks.md from the results (the same dictionary as benchmarks/results.json)."""

from __future__ import annotations

from typing import Any

TARGET_RATE = 50_000
TARGET_RATIO = 0.25

PEERS = {"sqlite": "bare sqlite3 `executemany`", "postgresql": "bare psycopg `COPY`"}
BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _n(x: float | int | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:,.2f}" if x < 100 else f"{x:,.0f}"


def _mb(x: int | None) -> str:
    return "–" if x is None else f"{x / 1e6:,.1f} MB"


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}×" if x < 1 else f"{x:,.2f}×"


def _mark(ok: bool | None) -> str:
    return "–" if ok is None else "met" if ok else "**not met**"


def _table(head: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """A Markdown table; the first ``left`` columns are text, the others figures."""
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---" if i < left else "--:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def _backends(size: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(b, size[b]) for b in ("sqlite", "postgresql")
            if isinstance(size.get(b), dict) and "skipped" not in size[b]]


def _import_rows(size: dict[str, Any], backend: str, res: dict[str, Any]) -> list[list[str]]:
    n = size["persons"]
    bare_rate = res["bare"]["persons_per_s"]
    rows = []
    for key, what in (("import_seed", "ours: `cutru demo seed` (generator → importer)"),
                      ("import_jsonl", "ours: `cutru import` (JSONL file → importer)")):
        if key in res:
            r = res[key]
            ratio = r["persons_per_s"] / bare_rate
            rows.append([f"{n:,}", what, _n(r["seconds"], 1),
                         _n(r.get("checkpoint_seconds"), 1), _n(r["persons_per_s"]),
                         _ratio(ratio), _mark(r["persons_per_s"] >= TARGET_RATE),
                         _mark(ratio >= TARGET_RATIO)])
    rows.append([f"{n:,}", f"peer: {PEERS[backend]}, projection tables",
                 _n(res["bare"]["seconds"], 2), "", _n(bare_rate), "1×", "", ""])
    if "bare_with_journal" in res:
        b = res["bare_with_journal"]
        rows.append([f"{n:,}", f"context: {PEERS[backend]}, projection + `journal` + "
                     f"`journal_subjects` ({_ratio(b['persons_per_s'] / bare_rate)} the peer)",
                     _n(b["seconds"], 2), "", _n(b["persons_per_s"]), "", "", ""])
    return rows


def _summary(results: dict[str, Any]) -> list[str]:
    rows = []
    for size in results["sizes"]:
        for backend, res in _backends(size):
            for key, what in (("import_seed", "demo seed"), ("import_jsonl", "import")):
                if key not in res:
                    continue
                r = res[key]
                ratio = r["persons_per_s"] / res["bare"]["persons_per_s"]
                rows.append([f"{size['persons']:,}", BACKENDS[backend], what,
                             _n(r["persons_per_s"]), _mark(r["persons_per_s"] >= TARGET_RATE),
                             _ratio(ratio), _mark(ratio >= TARGET_RATIO)])
    out = _table(["Persons", "Database", "Path", "Persons/s", f"≥ {TARGET_RATE:,}/s",
                  "Ours/bare", f"≥ {TARGET_RATIO}× bare"], rows, left=3)
    peers = [(res["bare"]["persons_per_s"], size["persons"], BACKENDS[backend])
             for size in results["sizes"] for backend, res in _backends(size) if "bare" in res]
    if peers:
        best, persons, where = max(peers)
        below = "below" if best < TARGET_RATE else "above"
        out += [f"The fastest peer here, {where} at {persons:,} persons, stored "
                f"{_n(best)} persons/s: {below} the absolute target, with no rule, hash, "
                "encryption or journal at all. Each peer's rate with the journal's rows too "
                "is in the *context* rows below.", ""]
    return out


def _machine(m: dict[str, Any]) -> list[str]:
    rows = [["CPU", m["cpu_model"]], ["CPUs (`nproc`)", str(m["nproc"])],
            ["RAM", f"{m['ram_bytes'] / 2**30:,.1f} GiB"], ["OS", m["platform"]],
            ["Python", m["python"]], ["SQLite", m["sqlite"]],
            ["PostgreSQL", m.get("postgresql") or "not measured"],
            ["SQLAlchemy / psycopg", f"{m['sqlalchemy']} / {m['psycopg']}"],
            ["cutru commit", m.get("commit") or "unknown"], ["Run at (UTC)", m["date"]]]
    return _table(["Item", "Value"], rows, left=2)


def _growth(results: dict[str, Any]) -> list[str]:
    rows = [[g["measure"], f"{g['from']:,} → {g['to']:,}", _ratio(g["ratio"])]
            for g in results.get("growth", [])]
    if not rows:
        return ["Needs two sizes in one run (e.g. `--persons 100000 --persons 1000000`); "
                "this run had one.", ""]
    return _table(["Measure", "Persons", "Per-person cost, larger ÷ smaller"], rows,
                  left=2)


def render(results: dict[str, Any]) -> str:
    p = results["parameters"]
    sizes = results["sizes"]
    out = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/run.py` (see [benchmarks/README.md]"
        "(../benchmarks/README.md) for what each figure means); the raw figures are in "
        "`benchmarks/results.json`. Do not edit by hand: rerun instead.",
        "",
        f"Command: `{p['command']}`. Synthetic registry: "
        f"`synthetic.generate(N, seed={p['seed']}, today={p['today']})`, "
        + (f"{p['batch_lines']:,} lines per transaction" if p["batch_lines"] else
           "each import one transaction (the CLI's default)")
        + ". Rates are persons per second of "
        "wall-clock time; latencies are per call on a warm cache, in milliseconds.",
        "",
        "## Machine",
        "",
        *_machine(results["machine"]),
        "## Targets (bulk import)",
        "",
        f"The issue asks for ≥ {TARGET_RATE:,} persons/s and ≥ {TARGET_RATIO}× the rate of a "
        "bare bulk insert of the same projection rows.",
        "",
        *_summary(results),
    ]
    loads = [f"{s['persons']:,}: {s['load_average']['start']:.2f} → "
             f"{s['load_average']['end']:.2f}" for s in sizes
             if s.get("load_average", {}).get("end") is not None]
    if loads:
        out += [f"Load average (1 min) of the machine at the start and end of each size, on "
                f"{results['machine']['nproc']} CPUs: " + "; ".join(loads) + ". Anything else "
                "running on the machine slows every figure here.", ""]
    if p.get("postgres_skipped"):
        out += [f"PostgreSQL was not measured: {p['postgres_skipped']}.", ""]

    out += ["## 1–2. Bulk import", ""]
    for backend in ("sqlite", "postgresql"):
        rows = [r for s in sizes if isinstance(s.get(backend), dict)
                and "skipped" not in s[backend] for r in _import_rows(s, backend, s[backend])]
        if rows:
            out += [f"### {BACKENDS[backend]}", ""]
            out += _table(["Persons", "What", "Seconds", "of which checkpoint", "Persons/s",
                           "Ours/bare",
                           f"≥ {TARGET_RATE:,}/s", f"≥ {TARGET_RATIO}×"], rows, left=2)
    gen_rows = [[f"{s['persons']:,}", _n(s["generator"]["seconds"], 1),
                 _n(s["generator"]["persons_per_s"]), _n(s["generator"]["records"]),
                 _mb(s["generator"]["bytes"])] for s in sizes]
    out += ["For reference, the generator alone writing the JSONL file (part of the demo "
            "seed time above, not of the import time):", ""]
    out += _table(["Persons", "Seconds", "Persons/s", "Lines", "File"], gen_rows)
    def check(r: dict[str, Any]) -> str:
        rows = "same rows per table" if r["same_projection"] else "**different row counts**"
        digest = r.get("same_digest")
        return rows + ("" if digest is None else
                       ", same state digest" if digest else ", different state digest")

    checks = [f"{s['persons']:,} persons, {BACKENDS[b]}: {check(r)}"
              for s in sizes for b, r in _backends(s) if "same_projection" in r]
    if checks:
        out += ["Sanity check, the projection each `cutru import` produced against the one "
                "`cutru demo seed` produced on SQLite: " + "; ".join(checks) + ". (The "
                "digests can only agree when no field is stored encrypted: encryption at "
                "rest uses random nonces.)", ""]

    out += ["## 3. Rebuild from the journal", ""]
    rows = [[f"{s['persons']:,}", BACKENDS[b], _n(r["rebuild"]["entries"]),
             _n(r["rebuild"]["seconds"], 1), _n(r["rebuild"]["entries_per_s"]),
             _n(r["rebuild"]["persons_per_s"])] for s in sizes for b, r in _backends(s)]
    out += _table(["Persons", "Database", "Journal entries", "Seconds", "Entries/s",
                   "Persons/s"], rows, left=2)

    out += ["## 4. Lookup by ID number", ""]
    rows = []
    for s in sizes:
        for b, r in _backends(s):
            lk, bare = r["lookup"], r["lookup_bare"]
            rows += [
                [f"{s['persons']:,}", BACKENDS[b], "ours: `find` + `person` (whole record)",
                 _n(lk["find_and_person"]["n"]), _ms(lk["find_and_person"]["median_ms"]),
                 _ms(lk["find_and_person"]["p99_ms"])],
                [f"{s['persons']:,}", BACKENDS[b], "ours: of which `find`",
                 _n(lk["find"]["n"]), _ms(lk["find"]["median_ms"]), _ms(lk["find"]["p99_ms"])],
                [f"{s['persons']:,}", BACKENDS[b], "peer: `SELECT * FROM persons WHERE "
                 f"{bare.get('column', 'id_number')} = ?`", _n(bare["n"]),
                 _ms(bare["median_ms"]), _ms(bare["p99_ms"])],
            ]
    out += _table(["Persons", "Database", "What", "Lookups", "Median ms", "p99 ms"], rows,
                  left=3)

    out += ["## 5. `--as-of` lookup", ""]
    rows = [[f"{s['persons']:,}", BACKENDS[b],
             f"entry {r['as_of']['seq']:,} of {r['counts']['journal']:,}",
             _n(r["as_of"]["n"]), _ms(r["as_of"]["median_ms"]), _ms(r["as_of"]["p99_ms"]),
             _ms(r["lookup"]["find_and_person"]["median_ms"])]
            for s in sizes for b, r in _backends(s)]
    out += _table(["Persons", "Database", "As of", "Lookups", "Median ms", "p99 ms",
                   "Now: median ms"], rows, left=3)

    out += ["## 6. Sizes", ""]
    rows = []
    for s in sizes:
        n = s["persons"]
        for b, r in _backends(s):
            size, parts = r["size"], r["size"].get("parts") or {}
            bare = r["bare_size"]
            rows.append([
                f"{n:,}", BACKENDS[b], _n(r["counts"]["journal"]),
                _n(r["counts"]["journal_subjects"]), _n(r["counts"]["projection_total"]),
                _mb(size["total_bytes"]), _mb(parts.get("journal")),
                _mb(parts.get("journal_subjects")), _mb(parts.get("projection")),
                _n(size["total_bytes"] / n), _mb(bare["total_bytes"]),
                _n(bare["total_bytes"] / n), _mb(r["size_after_rebuild"]["total_bytes"])])
    out += _table(["Persons", "Database", "Journal rows", "Subject rows", "Projection rows",
                   "Ours", "journal", "journal_subjects", "projection", "Bytes/person",
                   "Bare", "Bare bytes/person", "Ours after rebuild"], rows, left=2)
    out += ["SQLite: main file + WAL after `PRAGMA wal_checkpoint(TRUNCATE)`, parts from "
            "`dbstat` (tables with their indexes). PostgreSQL: `pg_total_relation_size` "
            "(heap, indexes, TOAST) summed over the tables; the bare database holds only the "
            "projection tables. MB = 10⁶ bytes.", ""]

    out += ["## 7. How cost grows", ""]
    out += _growth(results)
    out += ["1.00× means linear growth (the same cost per person at both sizes); above 1 the "
            "cost per person rises with the registry's size. For lookups the ratio is of "
            "median latencies, for sizes of bytes per person.", ""]
    out += SEE_ALSO
    return "\n".join(out).rstrip() + "\n"


#: The other benchmark documents, each written by its own command.
SEE_ALSO = [
    "## 8. Backups and restores", "",
    "- [benchmarks-backup.md](benchmarks-backup.md) (`python benchmarks/bench_backup.py`): "
    "full snapshot, protecting a 0.1% change, verify `--read-data` and archiving lag against "
    "restic, borg and `sqlite3 .backup`.",
    "- [benchmarks-restore.md](benchmarks-restore.md) (`python benchmarks/bench_restore.py`): "
    "restoring the newest snapshot against `restic restore`, `borg extract` and "
    "`sqlite3 .restore`; point-in-time replay rate; locating a restore point by actor and "
    "window; the quick check and pinpointing.", ""]
