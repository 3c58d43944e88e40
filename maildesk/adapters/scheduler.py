"""APScheduler inside `maildesk serve`, run from one table of jobs that `maildesk jobs` lists and runs too."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence
from zoneinfo import ZoneInfo

from maildesk.adapters.housekeeping_store import SqlHousekeepingStore
from maildesk.adapters.retention import purge_expired
from maildesk.core.deadlines import calendar_coverage
from maildesk.service.housekeeping import JOBS as HOUSEKEEPING_JOBS, HousekeepingPolicy, run_all

log = logging.getLogger("maildesk.scheduler")

HOUSEKEEPING_SECONDS = 60
Entry = dict[str, Any]


@dataclass(frozen=True)
class ScheduledJob:
    """One thing the daemon does on its own; `maildesk jobs run NAME` does it by hand, or shows it (dry)."""

    name: str
    seconds: int  # how often `maildesk serve` runs it
    summary: str
    run: Callable[[Any, datetime, bool], list[Entry]]  # (app, as of, dry run) → what it did or would do
    part_of: str = ""  # runs inside that job's pass, in its order, rather than on a timer of its own


def housekeeping(app: Any, now: datetime, dry_run: bool = False,
                 jobs: Sequence[str] = HOUSEKEEPING_JOBS) -> list[Entry]:
    """The ticket passes as of `now`, closes first; catches up whatever fell due while the daemon was stopped."""
    settings = app.settings
    store = SqlHousekeepingStore(app.engine, app.work, close_resolved=settings.stale.close_resolved_on_silence)
    policy = HousekeepingPolicy(settings.stale.close_resolved_on_silence, settings.maildesk.timezone,
                                settings.sla.acceptance_hours, settings.sla.warn_share)
    return run_all(store, app.composer, now, policy, dry_run=dry_run, jobs=jobs)


def _one(job: str) -> Callable[[Any, datetime, bool], list[Entry]]:
    return lambda app, now, dry_run: housekeeping(app, now, dry_run, (job,))


def calendar_check(app: Any, now: datetime, dry_run: bool = False) -> list[Entry]:
    """From December on, warn every day while next year's calendar is missing or a draft; this year's, always."""
    today = now.astimezone(ZoneInfo(app.work.hours.timezone)).date()
    notes = [n for n in calendar_coverage(app.work.calendar, today) if n.year == today.year or today.month == 12]
    where = app.settings.calendar.file or "config/calendar/ru.toml"
    if not dry_run:
        for note in notes:
            log.warning("%s (%s or [calendar] local_file)", note.text, where)
    # no mail: no notice reaches admins without a ticket yet (it needs its own template and event)
    return [{"job": "calendar_check", "year": n.year, "problem": n.problem, "detail": n.text} for n in notes]


def retention(app: Any, now: datetime, dry_run: bool = False) -> list[Entry]:
    done = purge_expired(app.engine, app.archive, now, app.settings.retention.quarantine_days, dry_run=dry_run)
    if not done.entries:
        return []
    files = "" if dry_run else f", {done.files} archive file(s) deleted"
    return [{"job": "retention", "quarantined": done.quarantined, "ignored": done.ignored, "files": done.files,
             "detail": f"{done.quarantined} refused and {done.ignored} ignored message(s) without a ticket{files}"}]


SCHEDULE: tuple[ScheduledJob, ...] = (
    ScheduledJob("housekeeping", HOUSEKEEPING_SECONDS, "the six passes below, in this order", housekeeping),
    ScheduledJob("stale_close", HOUSEKEEPING_SECONDS, "close tickets awaiting the requester past the stale limit",
                 _one("stale_close"), part_of="housekeeping"),
    ScheduledJob("stale_remind", HOUSEKEEPING_SECONDS, "remind requesters before the stale close",
                 _one("stale_remind"), part_of="housekeeping"),
    ScheduledJob("sla_warning", HOUSEKEEPING_SECONDS, "warn agents of tickets nearing the acceptance deadline",
                 _one("sla_warning"), part_of="housekeeping"),
    ScheduledJob("sla_breach", HOUSEKEEPING_SECONDS, "tell the supervisor of tickets past the acceptance deadline",
                 _one("sla_breach"), part_of="housekeeping"),
    ScheduledJob("resolve_warning", HOUSEKEEPING_SECONDS, "warn agents of tickets nearing their resolution target",
                 _one("resolve_warning"), part_of="housekeeping"),
    ScheduledJob("resolve_breach", HOUSEKEEPING_SECONDS, "tell the supervisor of tickets past their resolution target",
                 _one("resolve_breach"), part_of="housekeeping"),
    ScheduledJob("calendar_check", 24 * 3600, "warn while next year's production calendar is missing (December)",
                 calendar_check),
    ScheduledJob("retention", 6 * 3600, "purge refused and ignored mail without a ticket past [retention]",
                 retention),
)
TIMED = tuple(job for job in SCHEDULE if not job.part_of)  # what the daemon starts, and `jobs run all` runs


def scheduled(name: str) -> ScheduledJob | None:
    return next((job for job in SCHEDULE if job.name == name), None)


def housekeeping_pass(app: Any) -> list[Entry]:
    """Every due ticket pass as of now."""
    return housekeeping(app, app.deps.clock.now())


def retention_pass(app: Any) -> int:
    """The number of messages purged as of now."""
    return sum(e["quarantined"] + e["ignored"] for e in retention(app, app.deps.clock.now()))


def _tick(job: ScheduledJob, app: Any) -> None:
    job.run(app, app.deps.clock.now(), False)


async def run_scheduler(app: Any, stop: asyncio.Event) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    scheduler = AsyncIOScheduler(timezone=app.settings.maildesk.timezone)
    defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    start = datetime.now(timezone.utc)
    for job in TIMED:
        scheduler.add_job(_tick, "interval", seconds=job.seconds, args=(job, app), id=job.name,
                          next_run_time=start, **defaults)
    scheduler.start()
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
