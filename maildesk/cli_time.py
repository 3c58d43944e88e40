"""Time commands of `maildesk`: the production calendar and the scheduled jobs."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any, Callable

MONTHS = ("январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь", "октябрь",
          "ноябрь", "декабрь")


def cmd_calendar_show(args: argparse.Namespace) -> int:
    from maildesk.adapters.calendar_file import load_calendar
    from maildesk.cli import CommandError
    from maildesk.core.workdays import CalendarError, month_summary

    calendar, _ = load_calendar(args.settings)
    try:
        summary = month_summary(calendar, args.year)
    except CalendarError as exc:
        raise CommandError(str(exc)) from exc
    print(f"{args.year} ({summary.status}): {summary.working_days} working days, {summary.working_hours:g} h")
    print(f"  basis: {summary.basis}")
    for m in summary.months:
        print(f"  {MONTHS[m.month - 1]:<9} {m.working_days:>3} days {m.working_hours:>6g} h")
    for label, dates in (("holidays", summary.holidays), ("days off (transfers)", summary.days_off),
                         ("working weekend days", summary.working_weekend_days), ("shortened", summary.shortened)):
        print(f"  {label}: {', '.join(d.strftime('%d.%m') for d in sorted(dates)) or '-'}")
    return 0


def cmd_calendar_check(args: argparse.Namespace) -> int:
    from maildesk.adapters.calendar_file import load_calendar
    from maildesk.core.workdays import covered_years

    calendar, hours = load_calendar(args.settings)  # raises ConfigError (exit 78) with the key on any problem
    years = covered_years(calendar)
    this_year = datetime.now(timezone.utc).year
    print(f"calendar valid: years {', '.join(f'{y} ({calendar.status(y)})' for y in years)}; "
          f"support {hours.start:%H:%M}–{hours.end:%H:%M} {hours.timezone}")
    missing = [y for y in (this_year, this_year + 1) if not calendar.is_known(y)]
    if missing:
        print(f"missing years: {', '.join(map(str, missing))} — deadlines there count Monday to Friday only")
        return 1
    return 0


def _as_of(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("--as-of needs a time zone, e.g. 2026-12-01T09:00+03:00")
    return moment


def cmd_jobs_list(args: argparse.Namespace) -> int:
    from maildesk.service.housekeeping import JOBS

    descriptions = {
        "stale_close": "close tickets awaiting the requester past the stale limit",
        "stale_remind": "remind requesters before the stale close",
        "sla_warning": "warn agents of tickets nearing the acceptance deadline",
        "sla_breach": "tell the supervisor of tickets past the acceptance deadline",
    }
    for job in JOBS:
        print(f"{job:<14} every minute  {descriptions[job]}")
    print(f"{'outbox':<14} every 2 s     deliver due notifications (maildesk outbox …)")
    return 0


def cmd_jobs_run(args: argparse.Namespace) -> int:
    from maildesk.adapters.housekeeping_store import SqlHousekeepingStore
    from maildesk.cli import CommandError, _app, _print_json
    from maildesk.service.housekeeping import JOBS, HousekeepingPolicy, run_job

    jobs = JOBS if args.name == "all" else (args.name,)
    if args.name != "all" and args.name not in JOBS:
        raise CommandError(f"unknown job {args.name!r}; known: all, {', '.join(JOBS)}")
    try:
        now = _as_of(args.as_of)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    app = _app(args)
    store = SqlHousekeepingStore(app.engine, app.work)
    policy = HousekeepingPolicy(app.settings.stale.close_resolved_on_silence, app.settings.maildesk.timezone)
    done = [e for job in jobs for e in run_job(job, store, app.composer, now, policy, dry_run=args.dry_run)]
    if args.json:
        _print_json(done)
        return 0
    verb = "would act on" if args.dry_run else "acted on"
    for entry in done:
        print(f"{entry['job']:<14} #{entry['ticket']:<6} due {entry['due_at']} → {entry['status']}")
    print(f"{verb} {len(done)} ticket(s) as of {now.isoformat()}")
    return 0


def register(cmds: Any, sub: Callable[..., argparse.ArgumentParser]) -> None:
    calendar = cmds.add_parser("calendar", help="production calendar").add_subparsers(dest="c_command", required=True)
    p = sub(calendar, "show", cmd_calendar_show, "working days and hours per month, holidays, transfers")
    p.add_argument("year", type=int)
    sub(calendar, "check", cmd_calendar_check, "the calendar file is valid and covers this year and the next")
    jobs = cmds.add_parser("jobs", help="scheduled jobs").add_subparsers(dest="j_command", required=True)
    sub(jobs, "list", cmd_jobs_list, "the scheduled jobs")
    p = sub(jobs, "run", cmd_jobs_run, "run a job now, or see what it would do by a given moment")
    p.add_argument("name", help="a job name or 'all'")
    p.add_argument("--as-of", help="ISO time with zone (default: now)")
    p.add_argument("--dry-run", action="store_true", help="show, change nothing")
    p.add_argument("--json", action="store_true")
