"""Working-time arithmetic over the production calendar: support-hour spans, deadlines and durations.

Every function takes aware datetimes, converts them into the support zone and
returns datetimes in that zone. Days are classified by the `Calendar`; a year it
does not cover is never guessed: such days count as plain weekdays (no holidays,
no transfers, no shortened days) and the optional `on_unknown_year` callback is
called once per unknown year that one call meets, so the caller can log or alert.
Loops run per day, never per minute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maildesk.core.calendar_model import Calendar, CalendarError, YearRules

__all__ = [
    "Calendar", "CalendarError", "MonthSummary", "OnUnknownYear", "WorkingHours", "YearSummary",
    "add_working_days", "add_working_hours", "covered_years", "day_span", "is_working_day",
    "is_working_time", "month_summary", "next_working_moment", "working_time_between",
]

OnUnknownYear = Callable[[int], None] | None
Span = tuple[datetime, datetime]
ONE_DAY = timedelta(days=1)
PRE_HOLIDAY_NORM_HOURS = 1  # Labour Code art. 95: the norm loses one hour whatever the support hours


@dataclass(frozen=True)
class WorkingHours:
    """The support day's clock hours in one zone; pre-holiday days end `shortened_minutes` early."""

    start: time = time(8)
    end: time = time(17)
    timezone: str = "Europe/Simferopol"
    shortened_minutes: int = 60
    tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise CalendarError(f"support_hours: start {self.start} must be before end {self.end}")
        length = (self.end.hour - self.start.hour) * 60 + self.end.minute - self.start.minute
        if not 0 <= self.shortened_minutes < length:
            raise CalendarError(f"shortened_minutes: {self.shortened_minutes} must be 0..{length - 1}")
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CalendarError(f"timezone: unknown time zone {self.timezone!r}") from exc
        object.__setattr__(self, "tz", zone)  # resolved once, not per call

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], timezone: str = "Europe/Simferopol") -> WorkingHours:
        """Read `support_hours` and `shortened_minutes` from a parsed calendar file."""
        support = data.get("support_hours", {})
        minutes = data.get("shortened_minutes", 60)
        if not isinstance(minutes, int) or isinstance(minutes, bool):
            raise CalendarError(f"shortened_minutes: {minutes!r} must be a whole number of minutes")
        return cls(
            start=_parse_clock(support.get("start", "08:00"), "support_hours.start"),
            end=_parse_clock(support.get("end", "17:00"), "support_hours.end"),
            timezone=timezone,
            shortened_minutes=minutes,
        )


def _parse_clock(value: Any, key: str) -> time:
    # TOML may hold a quoted "08:00" or a bare local time 08:00:00
    clock = value if isinstance(value, time) else None
    if isinstance(value, str):
        try:
            clock = time.fromisoformat(value)
        except ValueError:
            clock = None
    if clock is None or clock.tzinfo is not None:
        raise CalendarError(f"{key}: {value!r} must be a local time like \"08:00\"")
    return clock


class _Days:
    """One call's view of the calendar: classifies dates, reports each unknown year once."""

    __slots__ = ("cal", "hours", "on_unknown_year", "reported")

    def __init__(self, cal: Calendar, hours: WorkingHours | None, on_unknown_year: OnUnknownYear) -> None:
        self.cal, self.hours, self.on_unknown_year = cal, hours, on_unknown_year
        self.reported: set[int] = set()

    def rules(self, year: int) -> YearRules | None:
        rules = self.cal.years.get(year)
        if rules is None and year not in self.reported:
            self.reported.add(year)
            if self.on_unknown_year is not None:
                self.on_unknown_year(year)
        return rules

    def is_working(self, day: date) -> bool:
        rules = self.rules(day.year)
        if rules is not None and day in rules.working:
            return True
        if day.weekday() in self.cal.weekend:
            return False
        return rules is None or day not in rules.non_working

    def span(self, day: date) -> Span | None:
        if not self.is_working(day):
            return None
        hours = self.hours
        assert hours is not None, "spans need working hours"
        start = datetime.combine(day, hours.start, hours.tz)
        end = datetime.combine(day, hours.end, hours.tz)
        rules = self.cal.years.get(day.year)
        if rules is not None and day in rules.shortened:
            end -= timedelta(minutes=hours.shortened_minutes)
        return start, end

    def first_span_after(self, day: date) -> Span:
        # terminates: unknown years fall back to weekdays, so a working day always comes
        day += ONE_DAY
        while (span := self.span(day)) is None:
            day += ONE_DAY
        return span

    def next_moment(self, local: datetime) -> datetime:
        span = self.span(local.date())
        if span is not None and local < span[1]:
            return max(local, span[0])
        return self.first_span_after(local.date())[0]


def _local(moment: datetime, hours: WorkingHours) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"working-time arithmetic needs an aware datetime, got {moment!r}")
    return moment.astimezone(hours.tz)


def is_working_day(cal: Calendar, day: date, on_unknown_year: OnUnknownYear = None) -> bool:
    """Whether `day` is worked: a transferred working day, or a weekday that is not off."""
    return _Days(cal, None, on_unknown_year).is_working(day)


def day_span(cal: Calendar, hours: WorkingHours, day: date, on_unknown_year: OnUnknownYear = None) -> Span | None:
    """Start and end of support on `day` (earlier end on pre-holiday days); None on days off."""
    return _Days(cal, hours, on_unknown_year).span(day)


def is_working_time(
    cal: Calendar, hours: WorkingHours, moment: datetime, on_unknown_year: OnUnknownYear = None
) -> bool:
    """Whether `moment` falls inside support hours; the end of the day is already outside."""
    local = _local(moment, hours)
    span = _Days(cal, hours, on_unknown_year).span(local.date())
    return span is not None and span[0] <= local < span[1]


def next_working_moment(
    cal: Calendar, hours: WorkingHours, moment: datetime, on_unknown_year: OnUnknownYear = None
) -> datetime:
    """`moment` itself if support is open then, else the start of the next support span."""
    return _Days(cal, hours, on_unknown_year).next_moment(_local(moment, hours))


def add_working_hours(
    cal: Calendar,
    hours: WorkingHours,
    moment: datetime,
    hours_count: float | timedelta,
    on_unknown_year: OnUnknownYear = None,
) -> datetime:
    """The moment `hours_count` of support time after `moment`.

    Counting starts at the next working moment. A result that lands exactly on the
    end of a support day stays there (17:00 Friday, not 08:00 Monday), so a deadline
    reads as "by the end of that day".
    """
    left = hours_count if isinstance(hours_count, timedelta) else timedelta(hours=hours_count)
    if left < timedelta(0):
        raise ValueError(f"hours_count must not be negative, got {hours_count!r}")
    days = _Days(cal, hours, on_unknown_year)
    current = days.next_moment(_local(moment, hours))
    span_end = days.span(current.date())[1]  # type: ignore[index]  # next_moment is inside a span
    while current + left > span_end:
        left -= span_end - current
        current, span_end = days.first_span_after(current.date())
    return current + left


def add_working_days(
    cal: Calendar, hours: WorkingHours, moment: datetime, days: int, on_unknown_year: OnUnknownYear = None
) -> datetime:
    """The same clock time `days` working days later, clamped into that day's support hours.

    `moment` is first moved to the next working moment (a Saturday mail counts from
    Monday 08:00); the result is that clock time on the `days`-th following working
    day, pulled back to the day's end when it is shorter (16:30 → 16:00 before a
    holiday). `days=0` gives the next working moment itself.
    """
    if days < 0:
        raise ValueError(f"days must not be negative, got {days!r}")
    view = _Days(cal, hours, on_unknown_year)
    current = view.next_moment(_local(moment, hours))
    if days == 0:
        return current
    span = (current, current)
    for _ in range(days):
        span = view.first_span_after(span[0].date())
    target = datetime.combine(span[0].date(), current.time(), hours.tz)
    return min(max(target, span[0]), span[1])


def working_time_between(
    cal: Calendar, hours: WorkingHours, start: datetime, end: datetime, on_unknown_year: OnUnknownYear = None
) -> timedelta:
    """Support time inside [start, end); zero when `end` is not after `start`."""
    low, high = _local(start, hours), _local(end, hours)
    view = _Days(cal, hours, on_unknown_year)
    total = timedelta(0)
    day = low.date()
    while low < high and day <= high.date():
        span = view.span(day)
        if span is not None:
            total += max(timedelta(0), min(span[1], high) - max(span[0], low))
        day += ONE_DAY
    return total


def covered_years(cal: Calendar) -> tuple[int, ...]:
    """The years the calendar knows, oldest first."""
    return tuple(sorted(cal.years))


@dataclass(frozen=True)
class MonthSummary:
    month: int
    working_days: int
    working_hours: float  # the norm, as printed in the official production calendar


@dataclass(frozen=True)
class YearSummary:
    """One known year as `maildesk calendar show YEAR` prints it."""

    year: int
    status: str
    basis: str
    months: tuple[MonthSummary, ...]
    holidays: tuple[date, ...]
    days_off: tuple[date, ...]
    working_weekend_days: tuple[date, ...]  # the Saturdays worked by transfer
    shortened: tuple[date, ...]

    @property
    def working_days(self) -> int:
        return sum(month.working_days for month in self.months)

    @property
    def working_hours(self) -> float:
        return round(sum(month.working_hours for month in self.months), 2)


def month_summary(cal: Calendar, year: int, week_hours: float = 40.0) -> YearSummary:
    """Per-month working days and hours norm for a `week_hours` week (Labour Code art. 91, 95)."""
    rules = cal.years.get(year)
    if rules is None:
        raise CalendarError(f"calendar years.{year}: this year is not in the calendar")
    view = _Days(cal, None, None)
    day_hours = week_hours / 5
    months = []
    for month in range(1, 13):
        worked = [day for day in _month_days(year, month) if view.is_working(day)]
        short = sum(1 for day in worked if day in rules.shortened)
        norm = len(worked) * day_hours - short * PRE_HOLIDAY_NORM_HOURS
        months.append(MonthSummary(month, len(worked), round(norm, 2)))
    return YearSummary(
        year=year,
        status=rules.status,
        basis=rules.basis,
        months=tuple(months),
        holidays=tuple(sorted(rules.holidays)),
        days_off=tuple(sorted(rules.days_off)),
        working_weekend_days=tuple(sorted(day for day in rules.working if day.weekday() in cal.weekend)),
        shortened=tuple(sorted(rules.shortened)),
    )


def _month_days(year: int, month: int) -> list[date]:
    day, days = date(year, month, 1), []
    while day.month == month:
        days.append(day)
        day += ONE_DAY
    return days
