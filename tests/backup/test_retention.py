"""Retention policy: restic's keep-last/hourly/daily/weekly/monthly/yearly semantics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cutru.backup.retention import Candidate, Policy, apply_policy
from cutru.errors import InputError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(text: str, name: str | None = None) -> Candidate:
    t = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return Candidate(name or text, int((t - EPOCH).total_seconds() * 1_000_000))


def names(cs: list[Candidate]) -> list[str]:
    return [c.name for c in cs]


def test_daily_keeps_the_newest_of_each_of_the_last_days_that_have_a_snapshot() -> None:
    snaps = [at("2026-11-01T08:00"), at("2026-11-01T20:00"), at("2026-11-03T09:00"),
             at("2026-11-07T01:00"), at("2026-11-07T23:00")]
    d = apply_policy(snaps, Policy(daily=3))
    assert [c.name for c, _ in d.keep] == ["2026-11-07T23:00", "2026-11-03T09:00",
                                           "2026-11-01T20:00"]
    assert names(d.forget) == ["2026-11-07T01:00", "2026-11-01T08:00"]
    assert d.reasons()["2026-11-03T09:00"] == ("daily 2026-11-03",)


def test_rules_combine_and_every_rule_that_keeps_a_snapshot_is_a_reason() -> None:
    snaps = [at("2025-06-30T10:00"), at("2026-10-31T10:00"), at("2026-11-26T10:00"),
             at("2026-11-27T10:00"), at("2026-11-27T11:00")]
    d = apply_policy(snaps, Policy(last=2, monthly=2, yearly=2))
    why = d.reasons()
    assert why["2026-11-27T11:00"] == ("last", "monthly 2026-11", "yearly 2026")
    assert why["2026-11-27T10:00"] == ("last",)
    assert why["2026-10-31T10:00"] == ("monthly 2026-10",)
    assert why["2025-06-30T10:00"] == ("yearly 2025",)
    assert names(d.forget) == ["2026-11-26T10:00"]


def test_weekly_uses_iso_weeks_and_hourly_hours() -> None:
    # 2026-01-04 is a Sunday (ISO week 1 of 2026); 2026-01-05 a Monday (week 2)
    snaps = [at("2026-01-03T12:00"), at("2026-01-04T12:00"), at("2026-01-05T12:00")]
    assert names([c for c, _ in apply_policy(snaps, Policy(weekly=5)).keep]) == [
        "2026-01-05T12:00", "2026-01-04T12:00"]
    hours = [at("2026-01-05T12:10"), at("2026-01-05T12:50"), at("2026-01-05T13:05")]
    assert names([c for c, _ in apply_policy(hours, Policy(hourly=5)).keep]) == [
        "2026-01-05T13:05", "2026-01-05T12:50"]


def test_an_empty_policy_is_refused() -> None:
    with pytest.raises(InputError):
        apply_policy([at("2026-01-01T00:00")], Policy())
    with pytest.raises(InputError):
        Policy(daily=-1)


times = st.lists(st.integers(min_value=0, max_value=4 * 366 * 86_400 * 10**6 // 7),
                 min_size=1, max_size=40)
policies = st.builds(Policy, *(st.integers(0, 4) for _ in range(6))).filter(
    lambda p: not p.empty)


@settings(max_examples=200, deadline=None)
@given(times, policies)
def test_policy_properties(stamps: list[int], policy: Policy) -> None:
    # several snapshots per hour, day, week, month and year over ~7 months of µs
    snaps = [Candidate(f"s{i:03d}", t * 7) for i, t in enumerate(stamps)]
    d = apply_policy(snaps, policy)
    newest = max(snaps, key=lambda c: (c.created_us, c.name))
    assert newest.name in d.reasons()  # never forgets the newest
    assert all(why for _, why in d.keep)  # every kept snapshot has a reason
    assert {c.name for c, _ in d.keep} | set(names(d.forget)) == {c.name for c in snaps}
    assert not {c.name for c, _ in d.keep} & set(names(d.forget))
    again = apply_policy([c for c, _ in d.keep], policy)  # idempotent
    assert again.forget == []
    assert again.reasons() == d.reasons()
