"""Due times of the regulation: acceptance (with its warning), stale-ticket reminder and close."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from maildesk.core.calendar_model import Calendar
from maildesk.core.workdays import OnUnknownYear, WorkingHours, add_working_days, add_working_hours, working_time_between


@dataclass(frozen=True)
class DeadlinePolicy:
    acceptance_hours: float = 8.0  # 001 §4.6
    warn_share: float = 0.75
    stale_days: int = 10  # 002: closed after 10 working days without the requester's reply
    remind_days: int = 3  # reminder this many working days before the close


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

    def stale(self, waiting_since: datetime) -> tuple[datetime, datetime]:
        """(remind at, close at) for a ticket that has awaited its requester since `waiting_since`."""
        close = self.add_days(waiting_since, self.policy.stale_days)
        remind = self.add_days(waiting_since, self.policy.stale_days - self.policy.remind_days)
        return remind, close

    def resume(self, due: datetime, paused_since: datetime, now: datetime) -> datetime:
        """A due time moved on by the working time spent waiting for the requester (002)."""
        if due <= paused_since:
            return due  # already due before the pause: waiting does not excuse it
        return self.add_hours(now, self.between(paused_since, due))
