"""Reads the production calendar file (and an admin's local additions) into a Calendar."""

from __future__ import annotations

import logging
import tomllib
from datetime import time
from pathlib import Path

from maildesk.config import ConfigError, Settings
from maildesk.core.calendar_model import Calendar, CalendarError
from maildesk.core.deadlines import DeadlinePolicy, WorkClock
from maildesk.core.workdays import WorkingHours

log = logging.getLogger("maildesk.calendar")

DEFAULT_CALENDAR = Path(__file__).resolve().parents[2] / "config" / "calendar" / "ru.toml"


def _read(path: Path, key: str) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{key}: {path} is not valid TOML: {exc}") from exc


def load_calendar(settings: Settings) -> tuple[Calendar, WorkingHours]:
    """The configured calendar and support hours; errors name the file and the key."""
    path = settings.path(settings.calendar.file) if settings.calendar.file else DEFAULT_CALENDAR
    data = _read(path, "calendar.file")
    overlay = _read(settings.path(settings.calendar.local_file), "calendar.local_file") if settings.calendar.local_file else None
    try:
        calendar = Calendar.from_mapping(data, overlay)
        base = WorkingHours.from_mapping(data, settings.maildesk.timezone)
        hours = WorkingHours(start=_clock(settings.calendar.start, "calendar.start"),
                             end=_clock(settings.calendar.end, "calendar.end"),
                             timezone=settings.maildesk.timezone, shortened_minutes=base.shortened_minutes)
    except CalendarError as exc:
        raise ConfigError(f"calendar ({path.name}): {exc}") from exc
    return calendar, hours


def _clock(value: str, key: str) -> time:
    try:
        hour, minute = value.split(":")
        return time(int(hour), int(minute))
    except ValueError as exc:
        raise ConfigError(f"{key}: {value!r} is not HH:MM") from exc


class _UnknownYearWarning:
    """Logs each year missing from the calendar once per process, not once per computation."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def __call__(self, year: int) -> None:
        if year not in self.seen:
            self.seen.add(year)
            log.warning("the production calendar has no year %d: counting Monday to Friday without holidays; "
                        "add the year to the calendar file", year)


def work_clock(settings: Settings) -> WorkClock:
    calendar, hours = load_calendar(settings)
    policy = DeadlinePolicy(settings.sla.acceptance_hours, settings.sla.warn_share,
                            settings.stale.close_after_days, settings.stale.remind_before_days,
                            settings.stale.close_resolved_on_silence, settings.sla.resolution_hours)
    return WorkClock(calendar, hours, policy, _UnknownYearWarning())
