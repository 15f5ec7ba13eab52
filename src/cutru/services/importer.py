"""Bulk import of JSON Lines (docs/import.md) through the same rules as the transactions.

Lines are applied in batches, each one database transaction: a rejected line rejects its whole
batch, and the error names the line number, the field and the rule. ``demo seed`` feeds the
synthetic generator through the same path.

A batch is applied a chunk of :data:`SPILL_LINES` lines at a time. On two CPUs or more, a
large import has two helper processes (:mod:`cutru.journal.helper`): one computes each
chunk's state digests while its rows are written, the other prepares the next chunk's persons
(:class:`_Ahead`) while this one is applied (a batch's first chunk is prepared here). Neither
changes what is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from sqlalchemy import select

from cutru.access.fieldcrypto import Keyring, sealing_keyring
from cutru.domain.enums import Relationship
from cutru.domain.rules import check_household, violation
from cutru.domain.units import Address, map_pre2025_address
from cutru.errors import CutruError, ImportLineError, InputError, RuleViolation
from cutru.journal.helper import Helper, HelperFailed, helper_process
from cutru.runtime import collector_paused
from cutru.services import households as hh_ops
from cutru.services import people, residence
from cutru.services.unit import Batch, Tx, UnitRunner
from cutru.store.bulk import deferred_indexes
from cutru.store.schema import persons, residences

KINDS = ("household", "temporary", "stay", "absence")
#: Lines in a batch from which an import starts a helper process (cutru.journal.helper).
HELPER_LINES = 500
#: Lines applied between two spills of a batch (cutru.services.unit.Batch.spill): a batch of
#: any length, the whole file by default, holds at most this many lines' rows in memory.
SPILL_LINES = 2000
#: Secondary indexes that none of an import's reads go by (those go by a row's key, its
#: ``person_key`` or ``household_key``, or a person's ID number). A large import into a
#: registry with no person yet, a first load, drops them and builds them again once its rows
#: are in, inside its transaction (:func:`cutru.store.bulk.deferred_indexes`): each is built
#: by one sort instead of a B-tree walk per row at a random place.
DEFERRED_INDEXES = {"persons": "ix_persons_name_year",
                    "households": "ix_households_commune_code",
                    "residences": "ix_residences_commune_code",
                    "id_numbers": "ix_id_numbers_id_number_bidx"}
IMPORT_PURPOSE = "Law on Residence 68/2020/QH14 Art. 36: residence data collection (import)"


@dataclass
class ImportResult:
    lines: int = 0
    persons: int = 0
    households: int = 0
    entries: int = 0


def parse_lines(stream: Iterable[bytes | str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The records of a JSON Lines stream with their line numbers, blank lines skipped.

    A binary stream (what the CLI opens) is parsed as it is read, with no decoding step of
    its own: a line that is not UTF-8 is reported with its number like any other bad line."""
    for n, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if isinstance(line, bytes) and not _utf8(line):
                raise ImportLineError("not valid UTF-8 text", line=n, field="(line)",
                                      rule="jsonl.utf8") from None
            raise ImportLineError(f"not valid JSON ({exc.msg})", line=n, field="(line)",
                                  rule="jsonl.syntax") from None
        if not isinstance(obj, dict):
            raise ImportLineError("each line is a JSON object", line=n, field="(line)",
                                  rule="jsonl.object")
        yield n, obj


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _Context:
    """Per-chunk lookups: ID numbers declared in the chunk and their person keys (earlier
    chunks of the batch are written, and found in the database)."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.ids: dict[str, str] = {}
        #: blind indexes of the ID numbers declared so far in the chunk (one number may be
        #: spelled two ways, " 001..." and "001...": its blind index is of the number as read)
        self.declared: set[str] = set()

    def person_key(self, tx: Tx, id_number: Any) -> str:
        if not isinstance(id_number, str) or not id_number.strip():
            raise InputError("id_number is required", field="id_number", rule="required")
        id_number = id_number.strip()  # as a person's is read (cutru.domain.person)
        if id_number in self.ids:
            return self.ids[id_number]
        tx.rows.flush()
        bidx = tx.keys.blind_index(id_number)
        found = tx.conn.execute(select(persons.c.key).where(persons.c.id_number_bidx == bidx)
                                ).first()
        if found is None:
            raise InputError(f"no person with ID number {id_number}", field="id_number",
                             rule="person.exists")
        return str(found[0])

    def taken(self, bidxs: set[str]) -> set[str]:
        """Which of these blind indexes of ID numbers already belong to persons in the
        database."""
        self.batch.rows.flush()
        out: set[str] = set()
        ordered = sorted(bidxs)
        for i in range(0, len(ordered), 500):
            chunk = ordered[i:i + 500]
            out.update(str(r[0]) for r in self.batch.conn.execute(
                select(persons.c.id_number_bidx).where(persons.c.id_number_bidx.in_(chunk))))
        return out


def _household(tx: Tx, ctx: _Context, rec: dict[str, Any], taken: set[str],
               ahead: Ahead | None) -> int:
    members = rec.get("members")
    if not isinstance(members, list) or not members:
        raise InputError("members must be a non-empty list", field="members", rule="required")
    on = rec.get("registered_on") or tx.today.isoformat()
    if rec.get("old_province_code") is not None:
        # a pre-2025 address: accepted where it maps to a current unit (domain.md §5)
        addr = map_pre2025_address(str(rec["old_province_code"]),
                                   str(rec.get("commune_code", "")), str(rec.get("street", "")))
    else:
        addr = Address(commune_code=str(rec.get("commune_code", "")),
                       street=str(rec.get("street", "")).strip())
    addr.validate()
    # _Ahead drew the keys of every household record whose members are a list
    assert ahead is not None
    hh = ahead[0]
    keys: list[tuple[str, Relationship]] = []
    people_rows: dict[str, dict[str, Any]] = {}
    for i, m in enumerate(members):
        if not isinstance(m, dict) or not isinstance(m.get("person"), dict):
            raise InputError("each member is {relationship, person}", field=f"members[{i}]",
                             rule="members.shape")
        rel = hh_ops.relationship(m.get("relationship"), f"members[{i}].relationship")
        idn = m["person"].get("id_number")
        bidx = _blind_index(tx.keys, ahead[1][i], str(idn)) if idn else None
        if bidx is not None and (bidx in ctx.declared or bidx in taken):
            raise violation("person.id_number_unique", "Decree 137/2015 Art. 13",
                            f"ID number {idn} already belongs to another person",
                            field=f"members[{i}].person.id_number")
        try:
            # prepared by _Ahead from the person with the household's file number
            key = people.declare_person(tx, m["person"], check_unique=False,
                                        prepared=_made(ahead, i))
        except InputError as exc:
            raise InputError(exc.message, field=f"members[{i}].person.{exc.field}",
                             rule=exc.rule) from None
        if idn:
            ctx.ids[str(idn).strip()] = key
        if bidx is not None:
            ctx.declared.add(bidx)
        keys.append((key, rel))
        people_rows[key] = {"birth_date": m["person"].get("birth_date"), "key": key}
    fake_members = [{"person_key": k, "relationship": r.value} for k, r in keys]
    check_household(fake_members, people_rows, tx.today)
    head_key = next(k for k, r in keys if r is Relationship.HEAD)
    hh_ops.new_household(tx, head_key, addr.commune_code, addr.street, on, key=hh)
    for k, r in keys:
        if r is not Relationship.HEAD:
            hh_ops.join(tx, hh, k, r, on)
        tx.rows.insert(residences, {
            "key": tx.new_key("R"), "person_key": k, "kind": "permanent",
            "commune_code": addr.commune_code, "street": addr.street, "household_key": hh,
            "basis": "own_residence" if r is Relationship.HEAD else "relative",
            "start_date": on, "term_end": None, "extensions": 0, "status": "active"})
    return len(keys)


#: A person prepared ahead: its key, and the rows made (or what making them raised).
Made = tuple[str, people.Prepared | Exception]
#: A household record's keys drawn ahead, and its members prepared ahead (None for a member
#: not in the shape ``{relationship, person}``: the record is refused at that member).
Ahead = tuple[str, list[Made | None]]


def _made(ahead: Ahead, i: int) -> tuple[str, people.Prepared]:
    made = ahead[1][i]
    assert made is not None  # the member's shape was checked first
    key, done = made
    if isinstance(done, Exception):
        raise done  # what preparing the person raised, raised in its turn
    return key, done


def _prepare(keys: Keyring | tuple[int, bytes, bytes], today: date,
             jobs: list[tuple[str, dict[str, Any]]]) -> list[people.Prepared | Exception]:
    """:func:`cutru.services.people.prepare_person` for each job, in the helper (given the
    keyring's sealing material) or here."""
    if isinstance(keys, tuple):
        keys = sealing_keyring(keys)
    out: list[people.Prepared | Exception] = []
    for key, data in jobs:
        try:
            out.append(people.prepare_person(keys, data, key=key, today=today,
                                              encode=True))
        except Exception as exc:  # raised in the caller when the import reaches this person
            out.append(exc)
    return out


class _Ahead:
    """A chunk's household records with their keys drawn and their persons sent to a helper
    process to be prepared (validated, their rows built and sealed), while this process
    applies the chunk before. Without a helper they are prepared here when the chunk's turn
    comes, from the same keys drawn at the same moment: the journal is the same either way.
    """

    def __init__(self, helper: Helper | None, b: Batch,
                 chunk: list[tuple[int, dict[str, Any]]]) -> None:
        self.keys: dict[int, tuple[str, list[str | None]]] = {}
        jobs: list[tuple[str, dict[str, Any]]] = []
        for n, rec in chunk:
            members = rec.get("members")
            if rec.get("kind") != "household" or not isinstance(members, list):
                continue
            hh = b.new_key("H")
            file_no = hh_ops.file_number(hh)
            drawn: list[str | None] = []
            for m in members:
                if isinstance(m, dict) and isinstance(m.get("person"), dict):
                    key = b.new_key("P")
                    drawn.append(key)
                    jobs.append((key, {**m["person"], "residence_file_no": file_no}))
                else:
                    drawn.append(None)
            self.keys[n] = (hh, drawn)
        self._jobs, self._keyring, self._today = jobs, b.keys, b.today
        self._made: Future[list[people.Prepared | Exception]] | None = None
        material = b.keys.sealing_material()
        if jobs and helper is not None and material is not None:
            with suppress(HelperFailed):  # then result() prepares them here
                self._made = helper.submit(_prepare, material, b.today, jobs)

    def result(self) -> dict[int, Ahead]:
        done: list[people.Prepared | Exception] | None = None
        if self._made is not None:
            with suppress(HelperFailed):  # the helper died: prepare them here after all
                done = self._made.result()
        if done is None:
            done = _prepare(self._keyring, self._today, self._jobs)
        made = iter(done)
        return {n: (hh, [None if k is None else (k, next(made)) for k in drawn])
                for n, (hh, drawn) in self.keys.items()}


def _apply(tx: Tx, ctx: _Context, rec: dict[str, Any], taken: set[str],
           ahead: Ahead | None) -> int:
    kind = rec.get("kind")
    if kind == "household":
        return _household(tx, ctx, rec, taken, ahead)
    body = {k: v for k, v in rec.items() if k not in {"kind", "id_number"}}
    if kind == "temporary":
        residence.register_temporary(tx, ctx.person_key(tx, rec.get("id_number")), **body)
    elif kind == "stay":
        pk = ctx.person_key(tx, rec.get("id_number")) if rec.get("id_number") else None
        body.setdefault("document_number", rec.get("id_number", ""))
        body.setdefault("notified_at", body.get("arrival"))
        if pk is not None and "full_name" not in body:
            body["full_name"] = tx.get(persons, pk, "person")["full_name"]
        residence.notify_stay(tx, person_key=pk, **body)
    elif kind == "absence":
        residence.declare_absence(tx, ctx.person_key(tx, rec.get("id_number")), **body)
    else:
        raise InputError(f"kind must be one of {list(KINDS)}", field="kind", rule="enum")
    return 0


_OPERATION = {"household": "household.register", "temporary": "temporary.register",
              "stay": "stay.notify", "absence": "absence.declare"}


def import_records(runner: UnitRunner, records: Iterable[tuple[int, dict[str, Any]]], *,
                   actor: str, batch_lines: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Apply records; ``batch_lines`` lines per transaction (0: everything in one)."""
    with ExitStack() as stack:
        return _import(runner, iter(records), actor, batch_lines, progress, stack)


def _import(runner: UnitRunner, it: Iterator[tuple[int, dict[str, Any]]], actor: str,
            batch_lines: int, progress: Callable[[int, int], None] | None,
            stack: ExitStack) -> ImportResult:
    result = ImportResult()
    helper: Helper | None = None
    preparer: Helper | None = None
    started = False
    while True:
        chunk, error = _take(it, min(batch_lines, SPILL_LINES) if batch_lines else SPILL_LINES)
        if not chunk:
            if error is not None:
                raise error
            return result
        if not started and len(chunk) >= HELPER_LINES:
            # a large import: a helper process computes each batch's state digests
            # (cutru.services.unit), started once for every batch that follows; None on
            # one CPU or when it does not start
            helper = stack.enter_context(helper_process())
            # and a second one prepares the persons of each chunk ahead (_Ahead)
            if helper is not None and runner.keys.sealing_material() is not None:
                preparer = stack.enter_context(helper_process())
            started = True
        left = batch_lines - len(chunk) if batch_lines else -1  # lines the batch may add
        with runner.batch(helper=helper, bulk=True) as b, ExitStack() as first_load:
            if len(chunk) >= HELPER_LINES and _no_person(b):
                first_load.enter_context(deferred_indexes(
                    b.conn, DEFERRED_INDEXES, only=DEFERRED_INDEXES.values()))
            # a batch's first chunk is prepared here: waiting for the helper to prepare it
            # (and, the first time, to import what it needs) would leave this process idle,
            # while the helper starts on the following chunk meanwhile
            ahead = _Ahead(None, b, chunk)
            while chunk:
                persons_before = result.persons
                # the collector runs between chunks only: reading, preparing, applying and
                # writing a chunk make no cycles (runtime.collector_paused)
                with collector_paused():
                    following: list[tuple[int, dict[str, Any]]] = []
                    following_error = None
                    if left != 0 and error is None:
                        following, following_error = _take(
                            it, SPILL_LINES if left < 0 else min(SPILL_LINES, left))
                    if left > 0:
                        left -= len(following)
                    # the following chunk's persons are prepared in the helper while this
                    # one is applied and written here
                    following_ahead = _Ahead(preparer, b, following)
                    _apply_chunk(b, chunk, ahead.result(), actor, result)
                    if error is not None:
                        # an unreadable line, after the lines before it passed: the batch
                        # is rejected on the first bad line
                        raise error
                    # rows and entries written inside the batch's transaction: memory stays
                    # bounded by a chunk however long the batch is
                    b.spill()
                result.lines += len(chunk)
                if progress is not None:
                    progress(len(chunk), result.persons - persons_before)
                chunk, ahead, error = following, following_ahead, following_error
            if error is not None:  # the first line of a batch is unreadable
                raise error


def _no_person(b: Batch) -> bool:
    return b.conn.execute(select(persons.c.key).limit(1)).first() is None


def _declared_ids(b: Batch, chunk: list[tuple[int, dict[str, Any]]],
                  aheads: dict[int, Ahead]) -> set[str]:
    """The blind indexes of the ID numbers the chunk's household members declare."""
    out: set[str] = set()
    for n, rec in chunk:
        members = rec.get("members")
        if rec.get("kind") != "household" or not isinstance(members, list):
            continue
        made = aheads[n][1]  # _Ahead drew keys for this record: one per member
        for m, done in zip(members, made, strict=True):
            if done is not None and m["person"].get("id_number"):
                out.add(_blind_index(b.keys, done, str(m["person"]["id_number"])))
    return out


def _blind_index(keys: Keyring, made: Made | None, number: str) -> str:
    """The blind index of a member's ID number: the one its person was prepared with
    (ahead, maybe in the helper: of the number as read and checked), or, for a person whose
    preparing failed, computed here from the line's text, read as a person's is (stripped)."""
    prepared = None if made is None else made[1]
    if isinstance(prepared, tuple) and prepared[1] is not None:
        return str(prepared[0]["id_number_bidx"])
    return keys.blind_index(number.strip())


def _apply_chunk(b: Batch, chunk: list[tuple[int, dict[str, Any]]],
                 aheads: dict[int, Ahead], actor: str, result: ImportResult) -> None:
    ctx = _Context(b)
    # in the database, earlier chunks of this batch included
    taken = ctx.taken(_declared_ids(b, chunk, aheads))
    for n, rec in chunk:
        with b.unit(actor, IMPORT_PURPOSE, _OPERATION.get(str(rec.get("kind")),
                                                          "import")) as tx:
            try:
                result.persons += _apply(tx, ctx, rec, taken, aheads.get(n))
            except ImportLineError:
                raise
            except (InputError, RuleViolation) as exc:
                raise _line_error(n, exc) from None
            except CutruError as exc:
                raise ImportLineError(exc.message, line=n, field="(line)",
                                      rule=exc.code) from None
        result.households += rec.get("kind") == "household"
    result.entries += sum(1 for d in b.drafts if d.changes)


def _line_error(n: int, exc: InputError | RuleViolation) -> ImportLineError:
    if isinstance(exc, InputError):
        return ImportLineError(exc.message, line=n, field=exc.field, rule=exc.rule)
    return ImportLineError(f"{exc.message} ({exc.article})", line=n,
                           field=str(exc.details.get("field") or "(record)"), rule=exc.rule,
                           article=exc.article)


def _take(it: Iterator[tuple[int, dict[str, Any]]], n: int
          ) -> tuple[list[tuple[int, dict[str, Any]]], CutruError | None]:
    """The next ``n`` records (all that are left with ``n`` 0), and the error of an unreadable
    line that ended them early: the caller raises it once the lines before it are applied."""
    out: list[tuple[int, dict[str, Any]]] = []
    try:
        for item in it:
            out.append(item)
            if n and len(out) >= n:
                break
    except CutruError as exc:
        return out, exc
    return out, None
