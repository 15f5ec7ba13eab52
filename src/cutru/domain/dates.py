"""Dates as the registry holds them: full, or partial (year, year-month) for old records."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

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
