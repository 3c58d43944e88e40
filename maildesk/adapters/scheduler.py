"""APScheduler inside `maildesk serve`: housekeeping passes, calendar coverage warning."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from maildesk.adapters.housekeeping_store import SqlHousekeepingStore
from maildesk.service.housekeeping import HousekeepingPolicy, run_all

log = logging.getLogger("maildesk.scheduler")

HOUSEKEEPING_SECONDS = 60


def housekeeping_pass(app: Any) -> list[dict[str, Any]]:
    """Every due job as of now: catches up whatever fell due while the daemon was stopped."""
    store = SqlHousekeepingStore(app.engine, app.work)
    policy = HousekeepingPolicy(app.settings.stale.close_resolved_on_silence, app.settings.maildesk.timezone)
    return run_all(store, app.composer, app.deps.clock.now(), policy)


def calendar_coverage(app: Any) -> None:
    """From December on, warn every day until next year's production calendar is in place."""
    now = app.deps.clock.now()
    if now.month == 12 and not app.work.calendar.is_known(now.year + 1):
        log.warning("the production calendar has no year %d yet: add it to %s before January",
                    now.year + 1, app.settings.calendar.file or "config/calendar/ru.toml")


def retention_pass(app: Any) -> int:
    from maildesk.adapters.retention import purge_quarantine

    return purge_quarantine(app.engine, app.archive, app.deps.clock.now(), app.settings.retention.quarantine_days)


async def run_scheduler(app: Any, stop: asyncio.Event) -> None:
    scheduler = AsyncIOScheduler(timezone=app.settings.maildesk.timezone)
    defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    start = datetime.now(timezone.utc)
    scheduler.add_job(housekeeping_pass, "interval", seconds=HOUSEKEEPING_SECONDS, args=(app,),
                      id="housekeeping", next_run_time=start, **defaults)
    scheduler.add_job(calendar_coverage, "interval", hours=24, args=(app,), id="calendar", next_run_time=start,
                      **defaults)
    scheduler.add_job(retention_pass, "interval", hours=6, args=(app,), id="retention", next_run_time=start,
                      **defaults)
    scheduler.start()
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
