"""Due times of the regulation: acceptance (with its warning), stale-ticket reminder and close."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from maildesk.core.calendar_model import Calendar
from maildesk.core.workdays import OnUnknownYear, WorkingHours, add_working_days, add_working_hours, working_time_between


@dataclass(frozen=True)
class DeadlinePolicy:
    acceptance_hours: float = 8.0  # 001 §4.6
    warn_share: float = 0.75
    stale_days: int = 10  # 002: closed after 10 working days without the requester's reply
    remind_days: int = 3  # reminder this many working days before the close
    close_resolved_on_silence: bool = True  # else a resolved ticket waits for an agent to close it
    resolution_hours: tuple[float, ...] = ()  # targets for priorities 1–4 (0: none); empty: none


@dataclass(frozen=True)
class WorkClock:
    """Working-time arithmetic bound to one calendar, support hours and policy."""

    calendar: Calendar
    hours: WorkingHours
    policy: DeadlinePolicy = DeadlinePolicy()
    on_unknown_year: OnUnknownYear = None

    def add_hours(self, moment: datetime, hours: float | timedelta) -> datetime:
        return add_working_hours(self.calendar, self.hours, moment, hours, self.on_unknown_year)

    def add_days(self, moment: datetime, days: int) -> datetime:
        return add_working_days(self.calendar, self.hours, moment, days, self.on_unknown_year)

    def between(self, start: datetime, end: datetime) -> timedelta:
        return working_time_between(self.calendar, self.hours, start, end, self.on_unknown_year)

    def acceptance(self, arrived: datetime) -> tuple[datetime, datetime]:
        """(warn at, due at) for a ticket that arrived at `arrived`."""
        total = self.policy.acceptance_hours
        return self.add_hours(arrived, total * self.policy.warn_share), self.add_hours(arrived, total)

    def resolution(self, created: datetime, priority: int, paused_hours: float) -> tuple[datetime | None, datetime | None]:
        """(warn at, due at) for resolving a ticket of `priority`, later by the working time it has waited."""
        targets = self.policy.resolution_hours
        hours = targets[priority - 1] if targets and 1 <= priority <= len(targets) else 0
        if not hours:
            return None, None
        return (self.add_hours(created, hours * self.policy.warn_share + paused_hours),
                self.add_hours(created, hours + paused_hours))

    def stale(self, waiting_since: datetime, status: str = "feedback") -> tuple[datetime | None, datetime | None]:
        """(remind at, close at) for a ticket in `status` that has awaited its requester since `waiting_since`.

        Both None for a resolved ticket that silence does not close: nothing falls due for it.
        """
        if status == "resolved" and not self.policy.close_resolved_on_silence:
            return None, None
        close = self.add_days(waiting_since, self.policy.stale_days)
        remind = self.add_days(waiting_since, self.policy.stale_days - self.policy.remind_days)
        return remind, close

    def resume(self, due: datetime, paused_since: datetime, now: datetime) -> datetime:
        """A due time moved on by the working time spent waiting for the requester (002)."""
        if due <= paused_since:
            return due  # already due before the pause: waiting does not excuse it
        return self.add_hours(now, self.between(paused_since, due))


@dataclass(frozen=True)
class CoverageNote:
    """A year the deadlines around `today` need that the calendar lacks or holds as a draft."""

    year: int
    problem: str  # "missing" or "draft"
    failing: bool  # deadlines are being counted, or soon will be, on weekdays only
    text: str


def calendar_coverage(calendar: Calendar, today: date) -> tuple[CoverageNote, ...]:
    """This year must be in the calendar; next year by December, when its deadlines begin to fall due."""
    notes = []
    for year in (today.year, today.year + 1):
        status = calendar.status(year)
        if status is None:
            failing = year == today.year or today.month == 12
            notes.append(CoverageNote(year, "missing", failing, f"no year {year} in the production calendar: "
                                      "deadlines there count Monday to Friday only; add it from the Government's decree"))
        elif status != "official":
            notes.append(CoverageNote(year, "draft", False, f"year {year} of the production calendar is a draft: "
                                      "check it against the published decree and set status = \"official\""))
    return tuple(notes)
