"""Retention: which snapshots a policy keeps, and why. Pure: no repository, no clock.

The semantics are restic's ``forget`` policy: ``keep_last`` keeps the ``n`` newest snapshots;
``keep_hourly`` (daily, weekly, monthly, yearly) keeps, for each of the last ``n`` hours
(days, ISO weeks, months, years) *that have a snapshot*, the newest snapshot in it. A
snapshot kept by any rule is kept, with every rule that keeps it as its reasons. Buckets are
in UTC. docs/design.md, "Retention, prune and copy", is the specification.

>>> day = 86_400_000_000
>>> snaps = [Candidate(f"s{i}", i * day // 2) for i in range(6)]   # two a day, three days
>>> d = apply_policy(snaps, Policy(daily=2))
>>> [c.name for c, _ in d.keep], [c.name for c in d.forget]
(['s5', 's3'], ['s4', 's2', 's1', 's0'])
>>> d.keep[0][1]
('daily 1970-01-03',)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cutru.errors import InputError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Policy:
    """How many of each bucket to keep; 0 turns a rule off."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self) -> None:
        for rule, n in self.rules():
            if type(n) is not int or n < 0:
                raise InputError(f"keep-{rule} must be a whole number ≥ 0, not {n!r}",
                                 field=f"keep_{rule}", rule="backup.retention")

    def rules(self) -> list[tuple[str, int]]:
        return [("last", self.last), ("hourly", self.hourly), ("daily", self.daily),
                ("weekly", self.weekly), ("monthly", self.monthly), ("yearly", self.yearly)]

    @property
    def empty(self) -> bool:
        return not any(n for _, n in self.rules())

    def to_dict(self) -> dict[str, int]:
        return dict(self.rules())


@dataclass(frozen=True, slots=True)
class Candidate:
    """A snapshot as retention sees it: its name and creation time (µs since 1970, UTC)."""

    name: str
    created_us: int


@dataclass(frozen=True)
class Decision:
    """Snapshots to keep (newest first, each with its reasons) and to forget (newest first)."""

    keep: list[tuple[Candidate, tuple[str, ...]]]
    forget: list[Candidate]

    def reasons(self) -> dict[str, tuple[str, ...]]:
        return {c.name: why for c, why in self.keep}


def _time(c: Candidate) -> datetime:
    return _EPOCH + timedelta(microseconds=c.created_us)


def _bucket(rule: str) -> Callable[[Candidate], str]:
    def key(c: Candidate) -> str:
        t = _time(c)
        if rule == "hourly":
            return t.strftime("%Y-%m-%dT%H")
        if rule == "daily":
            return t.strftime("%Y-%m-%d")
        if rule == "weekly":
            year, week, _ = t.isocalendar()
            return f"{year}-W{week:02d}"
        if rule == "monthly":
            return t.strftime("%Y-%m")
        if rule == "yearly":
            return t.strftime("%Y")
        return c.name  # last: every snapshot is a bucket of its own

    return key


def apply_policy(snapshots: Sequence[Candidate], policy: Policy) -> Decision:
    """Split ``snapshots`` into kept (with reasons) and forgotten, newest first.

    An empty policy is refused: forgetting every snapshot is never what was meant."""
    if policy.empty:
        raise InputError("a retention policy needs at least one --keep-… rule above 0",
                         field="policy", rule="backup.retention_empty")
    ordered = sorted(snapshots, key=lambda c: (c.created_us, c.name), reverse=True)
    reasons: dict[str, list[str]] = {c.name: [] for c in ordered}
    for rule, n in policy.rules():
        if n == 0:
            continue
        key = _bucket(rule)
        seen: str | None = None
        left = n
        for c in ordered:
            if left == 0:
                break
            bucket = key(c)
            if bucket == seen:
                continue  # an older snapshot of a bucket already served
            seen = bucket
            left -= 1
            reasons[c.name].append("last" if rule == "last" else f"{rule} {bucket}")
    keep = [(c, tuple(reasons[c.name])) for c in ordered if reasons[c.name]]
    forget = [c for c in ordered if not reasons[c.name]]
    return Decision(keep, forget)
