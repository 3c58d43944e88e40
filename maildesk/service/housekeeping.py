"""Scheduled passes over tickets: stale reminders and closes, acceptance warnings and breaches."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, Sequence

from maildesk.core.decision import Notice

log = logging.getLogger("maildesk.housekeeping")

JOBS = ("stale_close", "stale_remind", "sla_warning", "sla_breach", "resolve_warning", "resolve_breach")


@dataclass(frozen=True)
class DueTicket:
    """A ticket some due time of which has passed, with the version it was read at."""

    number: int
    version: int
    status: str
    due_at: datetime
    next_due: datetime | None = None  # what this one forewarns of: the stale close, the acceptance deadline


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
    def apply_due(self, changes: Sequence[tuple[DueTicket, DueChange]], now: datetime,
                  composer: Any) -> list[bool]: ...


@dataclass(frozen=True)
class HousekeepingPolicy:
    close_resolved_on_silence: bool = True
    timezone: str = "Europe/Simferopol"
    acceptance_hours: float = 8.0  # the acceptance deadline in working hours, and the share warned at
    warn_share: float = 0.75


def _hours(hours: float) -> str:
    """Working time as people write it: «6 ч», «7 ч 30 мин»."""
    minutes = round(hours * 60)
    return f"{minutes // 60} ч" + (f" {minutes % 60} мин" if minutes % 60 else "")


def close_reason_for(status: str, policy: HousekeepingPolicy) -> str | None:
    """How a ticket awaiting its requester is closed by silence; None when silence does not close it."""
    if status == "resolved":
        # nobody disputed the fix (002): closed as resolved, or left for an agent to close
        return "resolved" if policy.close_resolved_on_silence else None
    return "no_response"


def change_for(job: str, item: DueTicket, now: datetime, policy: HousekeepingPolicy) -> DueChange | None:
    """The pure rule: what falling due means for a ticket."""
    from zoneinfo import ZoneInfo

    def local(moment: datetime | None) -> str:
        return moment.astimezone(ZoneInfo(policy.timezone)).strftime("%d.%m.%Y %H:%M") if moment else ""

    if job == "stale_close":
        reason = close_reason_for(item.status, policy)
        if reason is None:
            return None
        return DueChange(job, new_status="closed", close_reason=reason,
                         event=("auto_closed", {"reason": reason, "waited_until": item.due_at.isoformat()}),
                         notices=(Notice("closed", "requester", {"reason": reason}),))
    if job == "stale_remind":
        reason = close_reason_for(item.status, policy)
        if reason is None:
            return None  # a reminder of a close that never comes
        extra = {"close_date": local(item.next_due), "close_reason": reason}
        return DueChange(job, marks={"reminded_at": now}, event=("reminded", {"close_reason": reason}),
                         notices=(Notice("reminder", "requester", extra),))
    if job == "sla_warning":
        if item.next_due is not None and item.next_due <= now:
            return None  # the deadline passed too while nobody ran the pass: the breach notice says it all
        deadline = item.next_due or item.due_at
        return DueChange(job, marks={"accept_warned_at": now}, event=("sla_warning", {"due": deadline.isoformat()}),
                         notices=(Notice("sla_warning", "agents", {
                             "deadline": local(deadline), "elapsed": _hours(policy.acceptance_hours * policy.warn_share)}),))
    if job == "sla_breach":
        return DueChange(job, marks={"accept_breached_at": now}, event=("sla_breach", {"due": item.due_at.isoformat()}),
                         notices=(Notice("sla_breach", "supervisor", {
                             "deadline": local(item.due_at), "elapsed": _hours(policy.acceptance_hours)}),))
    if job == "resolve_warning":
        if item.next_due is not None and item.next_due <= now:
            return None  # past the target itself only the breach is due
        deadline = item.next_due or item.due_at
        return DueChange(job, marks={"resolve_warned_at": now}, event=("resolve_warning", {"due": deadline.isoformat()}),
                         notices=(Notice("sla_warning", "agents", {"deadline": local(deadline), "stage": "resolution"}),))
    if job == "resolve_breach":
        return DueChange(job, marks={"resolve_breached_at": now}, event=("resolve_breach", {"due": item.due_at.isoformat()}),
                         notices=(Notice("sla_breach", "supervisor", {"deadline": local(item.due_at),
                                                                      "stage": "resolution"}),))
    raise ValueError(f"unknown job {job!r}")


APPLY_BATCH = 100  # changes committed together, each in its own savepoint


def run_job(job: str, store: HousekeepingStore, composer: Any, now: datetime, policy: HousekeepingPolicy,
            *, dry_run: bool = False, limit: int = 10_000) -> list[dict[str, Any]]:
    """One pass of a job as of `now`; returns what it did (or, dry, would do). Safe to run anywhere, twice."""
    done: list[dict[str, Any]] = []
    due = [(item, change) for item in store.due(job, now, limit)
           if (change := change_for(job, item, now, policy)) is not None]
    for start in range(0, len(due), APPLY_BATCH):
        chunk = due[start:start + APPLY_BATCH]
        applied = [True] * len(chunk) if dry_run else store.apply_due(chunk, now, composer)
        done += [{"job": job, "ticket": item.number, "due_at": item.due_at.isoformat(),
                  "status": change.new_status or item.status}
                 for (item, change), ok in zip(chunk, applied) if ok]
    if done and not dry_run:
        log.info("%s: %d ticket(s)", job, len(done))
    return done


def run_all(store: HousekeepingStore, composer: Any, now: datetime, policy: HousekeepingPolicy,
            *, dry_run: bool = False, jobs: Sequence[str] = JOBS) -> list[dict[str, Any]]:
    """Jobs in order: closes go first, and a ticket a pass closes gets nothing else from it.

    A real close moves the ticket out of the later queries; a dry run changes nothing,
    so what it shows for a ticket after that ticket's close is left out here.
    """
    done: list[dict[str, Any]] = []
    closed: set[int] = set()
    for job in jobs:
        for entry in run_job(job, store, composer, now, policy, dry_run=dry_run):
            if entry["ticket"] in closed:
                continue
            if entry["status"] == "closed":
                closed.add(entry["ticket"])
            done.append(entry)
    return done
