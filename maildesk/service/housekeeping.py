"""Scheduled passes over tickets: stale reminders and closes, acceptance warnings and breaches."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, Sequence

from maildesk.core.decision import Notice

log = logging.getLogger("maildesk.housekeeping")

JOBS = ("stale_close", "stale_remind", "sla_warning", "sla_breach")


@dataclass(frozen=True)
class DueTicket:
    """A ticket some due time of which has passed, with the version it was read at."""

    number: int
    version: int
    status: str
    due_at: datetime
    close_at: datetime | None = None  # the stale close, which a reminder announces


@dataclass(frozen=True)
class DueChange:
    """What a pass does to one ticket; applied only if the ticket is still at `version`."""

    job: str
    marks: dict[str, Any] = field(default_factory=dict)  # columns to set (reminded_at, accept_warned_at …)
    new_status: str | None = None
    close_reason: str | None = None
    event: tuple[str, dict[str, Any]] = ("", {})
    notices: tuple[Notice, ...] = ()


class HousekeepingStore(Protocol):
    def due(self, job: str, now: datetime, limit: int) -> Sequence[DueTicket]: ...
    def apply_due(self, item: DueTicket, change: DueChange, now: datetime, composer: Any) -> bool: ...


@dataclass(frozen=True)
class HousekeepingPolicy:
    close_resolved_on_silence: bool = True
    timezone: str = "Europe/Simferopol"


def change_for(job: str, item: DueTicket, now: datetime, policy: HousekeepingPolicy) -> DueChange | None:
    """The pure rule: what falling due means for a ticket."""
    from zoneinfo import ZoneInfo

    def local(moment: datetime | None) -> str:
        return moment.astimezone(ZoneInfo(policy.timezone)).strftime("%d.%m.%Y %H:%M") if moment else ""

    if job == "stale_close":
        if item.status == "resolved" and policy.close_resolved_on_silence:
            reason = "resolved"  # nobody disputed the fix (002): closed as resolved
        elif item.status == "resolved":
            return None
        else:
            reason = "no_response"
        return DueChange(job, new_status="closed", close_reason=reason,
                         event=("auto_closed", {"reason": reason, "waited_until": item.due_at.isoformat()}),
                         notices=(Notice("closed", "requester", {"reason": reason}),))
    if job == "stale_remind":
        return DueChange(job, marks={"reminded_at": now}, event=("reminded", {}),
                         notices=(Notice("reminder", "requester", {"close_date": local(item.close_at)}),))
    if job == "sla_warning":
        return DueChange(job, marks={"accept_warned_at": now}, event=("sla_warning", {"due": item.due_at.isoformat()}),
                         notices=(Notice("sla_warning", "agents", {"deadline": local(item.due_at)}),))
    if job == "sla_breach":
        return DueChange(job, marks={"accept_breached_at": now}, event=("sla_breach", {"due": item.due_at.isoformat()}),
                         notices=(Notice("sla_breach", "supervisor", {"deadline": local(item.due_at)}),))
    raise ValueError(f"unknown job {job!r}")


def run_job(job: str, store: HousekeepingStore, composer: Any, now: datetime, policy: HousekeepingPolicy,
            *, dry_run: bool = False, limit: int = 10_000) -> list[dict[str, Any]]:
    """One pass of a job as of `now`; returns what it did (or, dry, would do). Safe to run anywhere, twice."""
    done: list[dict[str, Any]] = []
    for item in store.due(job, now, limit):
        change = change_for(job, item, now, policy)
        if change is None:
            continue
        if dry_run or store.apply_due(item, change, now, composer):
            done.append({"job": job, "ticket": item.number, "due_at": item.due_at.isoformat(),
                         "status": change.new_status or item.status})
    if done and not dry_run:
        log.info("%s: %d ticket(s)", job, len(done))
    return done


def run_all(store: HousekeepingStore, composer: Any, now: datetime, policy: HousekeepingPolicy) -> list[dict[str, Any]]:
    """Every job in order: a close makes a pending reminder moot, so closes go first."""
    return [entry for job in JOBS for entry in run_job(job, store, composer, now, policy)]
