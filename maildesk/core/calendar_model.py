"""The production calendar as validated, frozen data: which dates are worked, off, or shortened."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

STATUSES = ("official", "draft")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DATE_KEYS = ("holidays", "days_off", "working", "shortened")
YEAR_KEYS = frozenset({"status", "basis", *DATE_KEYS})
BASE_KEYS = frozenset({"format", "weekend", "support_hours", "shortened_minutes", "years"})
# the overlay changes dates only: hours and the weekend are the base file's business
OVERLAY_KEYS = frozenset({"format", "years"})


class CalendarError(ValueError):
    """A calendar problem, worded for the admin: which year and key, what is wrong."""


@dataclass(frozen=True)
class YearRules:
    """One year's exceptions to the plain weekday rule."""

    status: str
    basis: str = ""
    holidays: frozenset[date] = frozenset()
    days_off: frozenset[date] = frozenset()
    working: frozenset[date] = frozenset()
    shortened: frozenset[date] = frozenset()
    non_working: frozenset[date] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # one precomputed set keeps the per-date check to two lookups
        object.__setattr__(self, "non_working", self.holidays | self.days_off)


@dataclass(frozen=True)
class Calendar:
    """Known years and the weekend; a year not in `years` is unknown, never guessed.

    A "draft" year is used as written (better than weekdays only); `status()` lets
    the caller flag it until an admin confirms it against the published decree.
    """

    years: Mapping[int, YearRules]
    weekend: frozenset[int] = frozenset({5, 6})

    def is_known(self, year: int) -> bool:
        return year in self.years

    def status(self, year: int) -> str | None:
        rules = self.years.get(year)
        return rules.status if rules else None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], overlay: Mapping[str, Any] | None = None) -> Calendar:
        """Build from parsed TOML; the overlay (an admin's local file) is merged over the base.

        Overlay rules: its lists are added to the base year's lists; where the two
        disagree the overlay wins, so a date in overlay `working` leaves the base
        `holidays`/`days_off`, and a date in overlay `holidays`/`days_off` leaves the
        base `working`/`shortened`. Its `status` replaces the base's when given, its
        `basis` is appended. An overlay year absent from the base adds a whole year
        and then needs a `status`. The overlay holds only `format` and `years`.
        """
        _check_top(data, BASE_KEYS, "calendar")
        weekend = _parse_weekend(data)
        years = _parse_years(data, "calendar", partial=False)
        if overlay is not None:
            _check_top(overlay, OVERLAY_KEYS, "calendar overlay")
            for year, extra in _parse_years(overlay, "calendar overlay", partial=True).items():
                years[year] = _merge(years.get(year), extra, year)
        for year, rules in years.items():
            _check_shortened(year, rules, weekend)
        return cls(years=MappingProxyType(dict(sorted(years.items()))), weekend=weekend)


def _check_top(data: Mapping[str, Any], allowed: frozenset[str], source: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CalendarError(f"{source}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    if data.get("format", 1) != 1:
        raise CalendarError(f"{source} format: {data['format']!r} is not supported, expected 1")


def _parse_weekend(data: Mapping[str, Any]) -> frozenset[int]:
    names = data.get("weekend", ["sat", "sun"])
    if not isinstance(names, list) or any(name not in DAY_NAMES for name in names):
        raise CalendarError(f"calendar weekend: {names!r} must be a list of {', '.join(DAY_NAMES)}")
    return frozenset(DAY_NAMES.index(name) for name in names)


def _parse_years(data: Mapping[str, Any], source: str, partial: bool) -> dict[int, YearRules]:
    raw_years = data.get("years", {})
    if not isinstance(raw_years, Mapping):
        raise CalendarError(f"{source} years: must be a table of [years.YYYY] sections")
    years: dict[int, YearRules] = {}
    for key, raw in raw_years.items():
        if not str(key).isdigit() or not isinstance(raw, Mapping):
            raise CalendarError(f"{source} years.{key}: expected a [years.YYYY] section")
        years[int(key)] = _parse_year(int(key), raw, f"{source} years.{key}", partial)
    return years


def _parse_year(year: int, raw: Mapping[str, Any], where: str, partial: bool) -> YearRules:
    unknown = sorted(set(raw) - YEAR_KEYS)
    if unknown:
        raise CalendarError(f"{where}: unknown key {unknown[0]!r}")
    status = raw.get("status", "" if partial else None)
    if status not in STATUSES and not (partial and status == ""):
        raise CalendarError(f"{where}.status: {status!r} must be one of {', '.join(STATUSES)}")
    dates = {key: _parse_dates(year, raw.get(key, []), f"{where}.{key}") for key in DATE_KEYS}
    clash = sorted(dates["working"] & (dates["holidays"] | dates["days_off"]))
    if clash:
        raise CalendarError(f"{where}.working: {clash[0]} is also listed in holidays or days_off")
    basis = raw.get("basis", "")
    if not isinstance(basis, str):
        raise CalendarError(f"{where}.basis: must be a string")
    return YearRules(status=status, basis=basis, **dates)


def _parse_dates(year: int, value: Any, where: str) -> frozenset[date]:
    if not isinstance(value, list):
        raise CalendarError(f"{where}: must be a list of dates")
    for item in value:
        # datetime is a date subclass: a time of day here is a typo, not a date
        if not isinstance(item, date) or isinstance(item, datetime):
            raise CalendarError(f"{where}: {item!r} is not a date (write 2025-01-01, unquoted)")
        if item.year != year:
            raise CalendarError(f"{where}: {item} does not belong to {year}")
    return frozenset(value)


def _merge(base: YearRules | None, extra: YearRules, year: int) -> YearRules:
    if base is None:
        if not extra.status:
            raise CalendarError(f"calendar overlay years.{year}.status: a year not in the base calendar needs one")
        return extra
    off = extra.holidays | extra.days_off
    return YearRules(
        status=extra.status or base.status,
        basis="; ".join(part for part in (base.basis, extra.basis) if part),
        holidays=(base.holidays - extra.working) | extra.holidays,
        days_off=(base.days_off - extra.working) | extra.days_off,
        working=(base.working - off) | extra.working,
        shortened=(base.shortened - off) | extra.shortened,
    )


def _check_shortened(year: int, rules: YearRules, weekend: frozenset[int]) -> None:
    for day in sorted(rules.shortened):
        worked = day in rules.working or (day.weekday() not in weekend and day not in rules.non_working)
        if not worked:
            raise CalendarError(f"calendar years.{year}.shortened: {day} is not a working day")
