"""Working days: the deadlines of the authority (Decree 62/2021 Art. 13(4), Law on Residence
Art. 26(3)) skip weekends and Vietnam's days off."""

from __future__ import annotations

from datetime import date

import pytest

from cutru.domain.dates import add_working_days, is_working_day


@pytest.mark.parametrize(("start", "days", "deadline"), [
    (date(2026, 11, 27), 2, date(2026, 12, 1)),   # Friday: Monday and Tuesday
    (date(2026, 11, 23), 2, date(2026, 11, 26)),  # 24 November, Vietnam Culture Day, is off
    (date(2026, 4, 29), 2, date(2026, 5, 5)),     # 30 April and 1 May
    (date(2026, 2, 13), 2, date(2026, 2, 24)),    # Tết: 16 to 20 February 2026
    (date(2026, 8, 28), 3, date(2026, 9, 7)),     # 31 August (swapped), 1 and 2 September
    (date(2026, 4, 24), 1, date(2026, 4, 28)),    # Hùng Kings' day on a Sunday: Monday off
    (date(2026, 12, 31), 1, date(2027, 1, 4)),    # New Year's Day, then the weekend
    (date(2026, 11, 27), 0, date(2026, 11, 27)),
])
def test_deadlines_count_working_days(start: date, days: int, deadline: date) -> None:
    assert add_working_days(start, days) == deadline


def test_working_days_are_weekdays_that_are_not_days_off() -> None:
    assert is_working_day(date(2026, 11, 30))          # a Monday
    assert not is_working_day(date(2026, 11, 28))      # a Saturday
    assert not is_working_day(date(2026, 9, 2))       # National Day, a Wednesday
    assert not is_working_day(date(2027, 2, 8))      # a Monday of Tết 2027 (lunar calendar)
    assert is_working_day(date(2027, 2, 11))          # the Thursday after it


def test_a_saturday_worked_for_a_moved_day_off_counts() -> None:
    # 31 August 2026 (Monday) is off, moved from Saturday 22 August, which is worked
    assert is_working_day(date(2026, 8, 22))
    assert add_working_days(date(2026, 8, 21), 1) == date(2026, 8, 22)
