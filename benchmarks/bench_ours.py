"""cutru's own side of each measurement, the same on SQLite and PostgreSQL: import through
the importer, rebuild from the journal, lookups now and ``--as-of``, row counts."""

from __future__ import annotations

import json
import random
from pathlib import Path
from time import perf_counter
from typing import Any

from bench_common import TODAY, BenchClock, Steps, latency, rate
from sqlalchemy import func, select

from cutru.config import Settings
from cutru.services import importer, synthetic
from cutru.services.registry import Registry
from cutru.services.unit import KeyFactory
from cutru.store.schema import PROJECTION, checkpoints, journal, journal_subjects


def open_registry(work: Path, label: str, *, seed: int,
                  database_url: str | None = None) -> Registry:
    """A registry as ``cutru demo seed`` builds it: keys drawn from ``random.Random(seed)``."""
    settings = Settings(data_dir=work / f"{label}-data", key_dir=work / f"{label}-keys",
                        database_url=database_url)
    return Registry(settings, clock=BenchClock(),
                    new_key=KeyFactory(random.Random(seed).getrandbits))


def timed_import(reg: Registry, *, persons: int, seed: int, actor: str, batch_lines: int,
                 steps: Steps, description: str, jsonl: Path | None = None) -> dict[str, Any]:
    """``init`` (timed apart), then the import and the closing checkpoint, as the CLI does.

    With ``jsonl`` the records are parsed from that file (``cutru import``), otherwise they
    come straight from the generator (``cutru demo seed``); either way inside the timing.
    """
    t0 = perf_counter()
    reg.init()
    init_seconds = perf_counter() - t0
    with steps.task(description, persons) as advance:
        t0 = perf_counter()
        if jsonl is not None:
            with jsonl.open("rb") as stream:  # as the CLI opens it
                result = importer.import_records(
                    reg.runner, importer.parse_lines(stream), actor=actor,
                    batch_lines=batch_lines, progress=lambda _lines, p: advance(p))
        else:
            lines = enumerate(synthetic.generate_ahead(persons, seed=seed, today=TODAY),
                              start=1)
            result = importer.import_records(
                reg.runner, lines, actor=actor, batch_lines=batch_lines,
                progress=lambda _lines, p: advance(p))
        t1 = perf_counter()
        reg.checkpoint()
        seconds = perf_counter() - t0
    return {"seconds": seconds, "checkpoint_seconds": seconds - (t1 - t0),
            "persons": result.persons, "lines": result.lines,
            "households": result.households, "entries": result.entries,
            "persons_per_s": rate(result.persons, seconds), "init_seconds": init_seconds,
            "batch_lines": batch_lines}


def counts(reg: Registry) -> dict[str, Any]:
    with reg.db.read() as conn:
        def n(table: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

        projection = {t.name: n(t) for t in PROJECTION}
        last = conn.execute(select(journal.c.digest).order_by(journal.c.seq.desc()).limit(1)
                            ).scalar()
        return {"journal": n(journal), "journal_subjects": n(journal_subjects),
                "checkpoints": n(checkpoints), "projection": projection,
                "projection_total": sum(projection.values()), "state_digest": last}


def timed_rebuild(reg: Registry, *, entries: int, persons: int, steps: Steps,
                  description: str) -> dict[str, Any]:
    with steps.task(description, entries) as advance:
        t0 = perf_counter()
        reg.rebuild(progress=advance)
        seconds = perf_counter() - t0
    return {"seconds": seconds, "entries": entries, "entries_per_s": rate(entries, seconds),
            "persons_per_s": rate(persons, seconds)}


def sample_id_numbers(jsonl: Path, n: int, seed: int) -> list[str]:
    """Up to ``n`` random ID numbers of imported persons, taken from the import file (the
    database may hold them only encrypted)."""
    ids: list[str] = []
    with jsonl.open(encoding="utf-8") as stream:
        for line in stream:
            rec = json.loads(line)
            if rec.get("kind") == "household":
                ids += [m["person"]["id_number"] for m in rec["members"]
                        if m["person"].get("id_number")]
    ids.sort()
    return random.Random(seed).sample(ids, min(n, len(ids)))


WARMUP = 20


def timed_lookups(reg: Registry, ids: list[str], *, steps: Steps,
                  description: str) -> dict[str, Any]:
    """``find(id_number)`` then ``person(key)`` per ID number, each timed."""
    for id_number in ids[:WARMUP]:
        reg.person(reg.find(id_number))
    total: list[float] = []
    find: list[float] = []
    with steps.task(description, len(ids)) as advance:
        for id_number in ids:
            t0 = perf_counter()
            key = reg.find(id_number)
            t1 = perf_counter()
            reg.person(key)
            t2 = perf_counter()
            total.append(t2 - t0)
            find.append(t1 - t0)
            advance(1)
    return {"find_and_person": latency(total), "find": latency(find)}


def as_of_point(reg: Registry) -> tuple[int, str]:
    """The journal position in the middle of the journal and its time."""
    last = reg.journal_length()
    mid = max(1, last // 2)
    with reg.db.read() as conn:
        ts = conn.execute(select(journal.c.ts).where(journal.c.seq == mid)).scalar_one()
    return mid, str(ts)


def persons_existing_at(reg: Registry, seq: int, n: int, seed: int) -> list[str]:
    """Up to ``n`` random person keys whose first journal entry is at or before ``seq``."""
    subject = journal_subjects.c.subject
    with reg.db.read() as conn:
        keys = sorted(str(r[0]) for r in conn.execute(
            select(subject).where(subject.like("P%")).group_by(subject)
            .having(func.min(journal_subjects.c.seq) <= seq)))
    return random.Random(seed).sample(keys, min(n, len(keys)))


def timed_as_of(reg: Registry, keys: list[str], ts: str, *, steps: Steps,
                description: str) -> dict[str, Any]:
    for key in keys[:WARMUP]:
        reg.person(key, as_of=ts)
    samples: list[float] = []
    with steps.task(description, len(keys)) as advance:
        for key in keys:
            t0 = perf_counter()
            reg.person(key, as_of=ts)
            samples.append(perf_counter() - t0)
            advance(1)
    return latency(samples)
