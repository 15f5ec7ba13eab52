"""Surgical revert and scoped restore, computed from the journal (docs/operations.md).

Both produce a :class:`Plan`: for each projection row, what it is now and what it becomes.
Nothing is written here; :mod:`cutru.services.recovery` applies a plan as compensating journal
entries (the improper entries stay in the journal as evidence).

* **Revert** a set ``S`` of entries. For every row an entry of ``S`` changed, the row goes back
  to its image just before the first entry of ``S`` that touched it -- unless an entry *not* in
  ``S`` changed the row after that: then the row is a :class:`Conflict`, shown with both
  versions, and the plan cannot be applied until each conflict is resolved (``skip``: leave the
  row as it is now; ``before``: restore the before-image anyway, undoing the later change to
  that row; or a stated row image). Without conflicts, the result equals replaying the journal
  without ``S``.
* **Scoped restore** of one person, household or commune to position ``p``: every row in scope
  that changed after ``p`` goes back to its image at ``p``; changes out of scope stay.

A plan is computed against the journal's latest images. Each row's live image must equal it;
a row edited behind the journal's back refuses the plan (verify and rebuild first).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from cutru.errors import InputError, NotFound, ProjectionMismatch
from cutru.journal import canonical
from cutru.journal.entry import Row
from cutru.store import journal_store
from cutru.store.rows import RowWriter, complete_row
from cutru.store.schema import PROJECTION_BY_NAME

RowId = tuple[str, str]  # (table, key)


@dataclass(frozen=True)
class Compensation:
    """One row: its image now and the image the plan gives it (None: absent)."""

    table: str
    key: str
    current: Row | None
    target: Row | None
    reverts: tuple[int, ...]  # the journal positions whose change to this row is undone
    how: str = "revert"  # revert | before | stated (how a conflict was resolved)

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "current": self.current,
                "target": self.target, "reverts": list(self.reverts), "how": self.how,
                "columns": changed_columns(self.current, self.target)}


@dataclass(frozen=True)
class Conflict:
    """A row a reverted entry changed and a later, kept entry changed again."""

    table: str
    key: str
    reverted: tuple[int, ...]  # entries of the revert that touched the row
    later: tuple[int, ...]  # kept entries that touched it after the first of those
    before: Row | None  # what reverting would restore
    current: Row | None  # what the row is now, with the later change

    @property
    def row(self) -> str:
        return f"{self.table}:{self.key}"

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "table": self.table, "key": self.key,
                "reverted": list(self.reverted), "later": list(self.later),
                "before": self.before, "current": self.current,
                "columns": changed_columns(self.current, self.before)}


@dataclass(frozen=True)
class Resolution:
    """How to settle a conflict: ``skip``, ``before``, or ``stated`` with ``value``."""

    how: str
    value: Row | None = None

    @classmethod
    def parse(cls, text: str, table: str, key: str) -> Resolution:
        """``skip`` | ``before`` | ``absent`` | a JSON row image (the stated value)."""
        word = text.strip()
        if word in {"skip", "before"}:
            return cls(word)
        if word == "absent":
            return cls("stated", None)
        try:
            value = canonical.decode(word.encode())
        except InputError:
            raise InputError(f"the resolution of {table}:{key} must be skip, before, absent "
                             "or a JSON row image", field="resolve",
                             rule="recovery.resolution_form") from None
        if not isinstance(value, dict):
            raise InputError(f"the stated value for {table}:{key} must be a JSON object",
                             field="resolve", rule="recovery.resolution_form")
        return cls("stated", stated_row(table, key, value))


def stated_row(table: str, key: str, value: dict[str, Any]) -> Row:
    if table not in PROJECTION_BY_NAME:
        raise InputError(f"no table {table!r}", field="resolve", rule="recovery.row_known")
    if value.get("key", key) != key:
        raise InputError(f"the stated value for {table}:{key} names another key",
                         field="resolve", rule="recovery.resolution_key")
    try:
        return complete_row(PROJECTION_BY_NAME[table], {**value, "key": key})
    except KeyError as exc:
        raise InputError(f"the stated value for {table}:{key}: {exc.args[0]}",
                         field="resolve", rule="recovery.resolution_columns") from None


def changed_columns(a: Row | None, b: Row | None) -> list[str]:
    if a is None or b is None:
        return sorted((a or b or {}).keys())
    return sorted(c for c in set(a) | set(b) if a.get(c) != b.get(c))


@dataclass
class Plan:
    """What applying would do. ``conflicts`` must be empty to apply."""

    kind: str  # revert | scoped
    selected: list[int]  # entries reverted (revert) or after the point (scoped)
    head: int  # the journal position the plan was computed at
    compensations: list[Compensation] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # conflicts resolved by "skip"
    point: int | None = None  # scoped: the position restored to

    @property
    def applicable(self) -> bool:
        return not self.conflicts

    def digest(self) -> str:
        """What an approver approves: the same plan recomputed later must give this digest,
        or the registry changed in between and the plan must be shown again."""
        body = {"kind": self.kind, "selected": self.selected, "point": self.point,
                "skipped": self.skipped,
                "rows": [c.to_dict() for c in self.compensations],
                "conflicts": [c.to_dict() for c in self.conflicts]}
        return hashlib.sha256(canonical.encode(body)).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "selected": self.selected, "head": self.head,
                "point": self.point, "applicable": self.applicable,
                "rows": [c.to_dict() for c in self.compensations],
                "conflicts": [c.to_dict() for c in self.conflicts],
                "skipped": self.skipped, "plan_digest": self.digest()}


@dataclass
class _Track:
    first_before: Row | None
    reverts: list[int] = field(default_factory=list)
    later: list[int] = field(default_factory=list)


def plan_revert(conn: Connection, selected: Iterable[int],
                resolutions: dict[str, Resolution] | None = None) -> Plan:
    """Compensations that undo the entries ``selected``, keeping every other entry's
    changes; rows a later kept entry also changed are conflicts unless resolved
    (``resolutions`` by ``"table:key"``)."""
    chosen = sorted(set(selected))
    head = journal_store.last_seq(conn)
    if not chosen:
        raise InputError("no journal entry selected to revert", field="select",
                         rule="recovery.selection_empty")
    missing = [s for s in chosen if s < 1 or s > head]
    if missing:
        raise NotFound(f"the journal has no entry {missing[0]} (it holds 1..{head})",
                       field="positions", rule="journal.position_exists")
    wanted = set(chosen)
    tracks: dict[RowId, _Track] = {}
    current: dict[RowId, Row | None] = {}
    for entry in journal_store.iter_entries(conn, start=chosen[0]):
        for ch in entry.changes:
            rid = (ch.table, ch.key)
            track = tracks.get(rid)
            if entry.seq in wanted:
                if track is None:
                    tracks[rid] = track = _Track(ch.before)
                track.reverts.append(entry.seq)
            elif track is not None:
                track.later.append(entry.seq)
            current[rid] = ch.after
    plan = Plan("revert", chosen, head)
    resolutions = resolutions or {}
    used = set()
    for rid in sorted(tracks):
        track, now = tracks[rid], current[rid]
        later = [s for s in track.later if s > track.reverts[0]]
        name = f"{rid[0]}:{rid[1]}"
        if later:
            res = resolutions.get(name)
            if res is None:
                plan.conflicts.append(Conflict(rid[0], rid[1], tuple(track.reverts),
                                               tuple(later), track.first_before, now))
                continue
            used.add(name)
            if res.how == "skip":
                plan.skipped.append(name)
                continue
            target = track.first_before if res.how == "before" else res.value
            how = res.how
        else:
            target, how = track.first_before, "revert"
        if target != now:
            plan.compensations.append(Compensation(rid[0], rid[1], now, target,
                                                   tuple(track.reverts), how))
    unknown = sorted(set(resolutions) - used)
    if unknown:
        raise InputError(f"{unknown[0]} is not a conflict of this revert", field="resolve",
                         rule="recovery.resolution_unknown")
    check_live(conn, plan.compensations)
    return plan


@dataclass(frozen=True)
class Scope:
    """One person, one household or one commune."""

    kind: str  # person | household | commune
    value: str

    @classmethod
    def parse(cls, text: str) -> Scope:
        kind, _, value = text.partition(":")
        if kind not in {"person", "household", "commune"} or not value:
            raise InputError("a scope is person:<key>, household:<key> or commune:<code>",
                             field="scope", rule="recovery.scope_form")
        return cls(kind, value)

    def matcher(self) -> Callable[[str, Row | None], bool]:
        v = self.value
        if self.kind == "person":
            return lambda table, row: row is not None and (
                (table == "persons" and row.get("key") == v) or row.get("person_key") == v)
        if self.kind == "household":
            return lambda table, row: row is not None and (
                (table == "households" and row.get("key") == v) or row.get("household_key") == v)
        return lambda table, row: row is not None and row.get("commune_code") == v

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def plan_scoped(conn: Connection, scope: Scope, point: int) -> Plan:
    """Compensations bringing every row in ``scope`` back to its image at position
    ``point``. A commune's scope also takes the memberships of its households."""
    head = journal_store.last_seq(conn)
    if point < 0 or point > head:
        raise NotFound(f"position {point} is outside the journal (0..{head})", field="to",
                       rule="restore.point_reachable")
    match = scope.matcher()
    first: dict[RowId, Row | None] = {}
    current: dict[RowId, Row | None] = {}
    touched: dict[RowId, list[int]] = {}
    in_scope: set[RowId] = set()
    households: set[str] = set()
    for entry in journal_store.iter_entries(conn, start=point + 1):
        for ch in entry.changes:
            rid = (ch.table, ch.key)
            first.setdefault(rid, ch.before)
            current[rid] = ch.after
            touched.setdefault(rid, []).append(entry.seq)
            if match(ch.table, ch.before) or match(ch.table, ch.after):
                in_scope.add(rid)
                if scope.kind == "commune" and ch.table == "households":
                    households.add(ch.key)
    if households:
        for rid in touched:
            if rid[0] == "household_members" and any(
                    (img or {}).get("household_key") in households
                    for img in (first[rid], current[rid])):
                in_scope.add(rid)
    plan = Plan("scoped", sorted({s for rid in in_scope for s in touched[rid]}), head,
                point=point)
    for rid in sorted(in_scope):
        if first[rid] != current[rid]:
            plan.compensations.append(Compensation(rid[0], rid[1], current[rid], first[rid],
                                                   tuple(touched[rid]), "restore"))
    check_live(conn, plan.compensations)
    return plan


def check_live(conn: Connection, compensations: list[Compensation]) -> None:
    """Every row a plan changes must be, live, what the journal says it is."""
    reader = RowWriter(conn)
    for c in compensations:
        live = reader.get(PROJECTION_BY_NAME[c.table], c.key)
        if live != c.current:
            raise ProjectionMismatch(
                f"{c.table} row {c.key} differs from the journal (edited outside cutru): "
                "run `cutru verify`, then `cutru recover rebuild`, before reverting",
                expected=canonical.encode(c.current).hex()[:16] if c.current else "absent",
                got=canonical.encode(live).hex()[:16] if live else "absent")


def subjects_of(compensations: list[Compensation]) -> tuple[set[str], set[str]]:
    """Person keys and household keys a plan touches (for the entry's subjects and the
    invariant checks after applying)."""
    people: set[str] = set()
    households: set[str] = set()
    for c in compensations:
        for img in (c.current, c.target):
            if img is None:
                continue
            if c.table == "persons":
                people.add(str(img["key"]))
            if c.table == "households":
                households.add(str(img["key"]))
            if img.get("person_key"):
                people.add(str(img["person_key"]))
            if img.get("household_key"):
                households.add(str(img["household_key"]))
    return people, households
