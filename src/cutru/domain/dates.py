"""Dates as the registry holds them: full, or partial (year, year-month) for old records."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

import holidays

from cutru.errors import InputError

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


@dataclass(frozen=True, order=True)
class PartialDate:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``; old records may know only the year.

    >>> PartialDate.parse("1957").year
    1957
    >>> str(PartialDate.parse("2001-02-03"))
    '2001-02-03'
    """

    year: int
    month: int | None = None
    day: int | None = None

    @classmethod
    def parse(cls, text: str, field: str = "birth_date") -> PartialDate:
        m = _PARTIAL.match(text or "")
        if not m:
            raise InputError(
                f"{field} must be YYYY, YYYY-MM or YYYY-MM-DD, got {text!r}",
                field=field,
                rule="date.format",
            )
        year, month, day = int(m[1]), m[2], m[3]
        try:
            if day is not None:
                date(year, int(month or 0), int(day))
            elif month is not None and not 1 <= int(month) <= 12:
                raise ValueError("month")
        except ValueError:
            raise InputError(
                f"{field} {text!r} is not a calendar date", field=field, rule="date.calendar"
            ) from None
        return cls(year, int(month) if month else None, int(day) if day else None)

    @property
    def is_full(self) -> bool:
        return self.day is not None

    def earliest(self) -> date:
        """The first calendar day this partial date may denote."""
        return date(self.year, self.month or 1, self.day or 1)

    def __str__(self) -> str:
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


def parse_date(text: str, field: str) -> date:
    """A full ISO date (``YYYY-MM-DD``), or an :class:`InputError` naming ``field``."""
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InputError(
            f"{field} must be a date YYYY-MM-DD, got {text!r}", field=field, rule="date.format"
        ) from None


@cache
def _calendar(year: int) -> holidays.HolidayBase:
    """Vietnam's public holidays in ``year`` and the days off given for them: New Year, the
    Lunar New Year (Tết), the Hùng Kings' day, 30 April, 1 May, National Day (Labour Code
    45/2019/QH14 Art. 112), days off in lieu when a holiday falls on a weekend, and the
    days off the government moves each year, with the Saturdays worked in exchange. The
    calendar, lunar dates included, is the ``holidays`` package's."""
    return holidays.country_holidays("VN", years=year)


def is_working_day(day: date) -> bool:
    """Monday to Friday except the days off of :func:`_calendar`, and the Saturdays the
    government makes working days in exchange for a day off moved next to a holiday."""
    return bool(_calendar(day.year).is_working_day(day))


def add_working_days(start: date, days: int) -> date:
    """The date ``days`` working days after ``start`` (the authority's deadlines of the Law
    on Residence and of Decree 62/2021 count working days).

    >>> add_working_days(date(2026, 11, 27), 2)  # Friday: Monday, then Tuesday
    datetime.date(2026, 12, 1)
    >>> add_working_days(date(2026, 4, 29), 2)  # 30 April and 1 May are days off
    datetime.date(2026, 5, 5)
    """
    day = start
    while days > 0:
        day += timedelta(days=1)
        if is_working_day(day):
            days -= 1
    return day
