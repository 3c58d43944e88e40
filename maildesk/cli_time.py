"""Time commands of `maildesk`: the production calendar and the scheduled jobs."""

from __future__ import annotations

import argparse
from datetime import date, datetime, timezone
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


def calendar_health(settings: Any, today: date | None = None) -> str:
    """`maildesk check`'s calendar line: fails without this year; next year missing or draft is a warning."""
    from maildesk.core.deadlines import calendar_coverage

    calendar, _, today = _calendar_today(settings, today)
    years = ", ".join(f"{y} ({calendar.status(y)})" for y in sorted(calendar.years))
    if not calendar.is_known(today.year):
        raise RuntimeError(f"no year {today.year} in the calendar (has {years})")
    # `maildesk check` prints the detail after "ok   calendar: ", so each warning gets a line of its own
    return f"years {years}" + "".join(f"\nWARN calendar: {note.text}" for note in calendar_coverage(calendar, today))


def cmd_calendar_check(args: argparse.Namespace) -> int:
    from maildesk.core.deadlines import calendar_coverage
    from maildesk.core.workdays import covered_years

    calendar, hours, today = _calendar_today(args.settings, args.today)  # ConfigError (exit 78) names the key
    years = covered_years(calendar)
    print(f"calendar valid: years {', '.join(f'{y} ({calendar.status(y)})' for y in years)}; "
          f"support {hours.start:%H:%M}–{hours.end:%H:%M} {hours.timezone}")
    notes = calendar_coverage(calendar, today)  # next year missing fails only in December
    for note in notes:
        print(f"{'missing' if note.failing else 'warning'}: {note.text}")
    return 1 if any(note.failing for note in notes) else 0


def _calendar_today(settings: Any, today: date | None) -> tuple[Any, Any, date]:
    """The configured calendar and hours, and today's date where the desk is (unless given)."""
    from zoneinfo import ZoneInfo

    from maildesk.adapters.calendar_file import load_calendar

    calendar, hours = load_calendar(settings)
    return calendar, hours, today or datetime.now(ZoneInfo(hours.timezone)).date()


def _as_of(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("--as-of needs a time zone, e.g. 2026-12-01T09:00+03:00")
    return moment


def cmd_jobs_list(args: argparse.Namespace) -> int:
    from maildesk.adapters.scheduler import SCHEDULE

    for job in SCHEDULE:
        every = _every(job.seconds) + (f" ({job.part_of})" if job.part_of else "")
        print(f"{job.name:<15} {every:<28} {job.summary}")
    print(f"{'outbox':<15} {'every 2 s':<28} deliver due notifications (maildesk outbox …)")
    return 0


def _every(seconds: int) -> str:
    for unit, name in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % unit == 0:
            count = seconds // unit
            return f"every {name}" if count == 1 else f"every {count} {name}s"
    return f"every {seconds} s"


def cmd_jobs_run(args: argparse.Namespace) -> int:
    from maildesk.adapters.scheduler import SCHEDULE, TIMED, scheduled
    from maildesk.cli import CommandError, _app, _print_json

    job = scheduled(args.name)
    if args.name != "all" and job is None:
        raise CommandError(f"unknown job {args.name!r}; known: all, {', '.join(j.name for j in SCHEDULE)}")
    try:
        now = _as_of(args.as_of)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    if not args.dry_run and now > datetime.now(timezone.utc):
        # a real run would record the future: tickets closed, reminders sent "at" a moment still to come
        raise CommandError(f"--as-of {now.isoformat()} is in the future: add --dry-run to see what would happen then")
    app = _app(args)
    try:
        done = [e for j in (TIMED if job is None else (job,)) for e in j.run(app, now, args.dry_run)]
    finally:
        app.close()
    if args.json:
        _print_json(done)
        return 0
    for entry in done:
        if "ticket" in entry:
            print(f"{entry['job']:<15} #{entry['ticket']:<6} due {entry['due_at']} → {entry['status']}")
        else:
            print(f"{entry['job']:<15} {entry['detail']}")
    tickets = sum(1 for e in done if "ticket" in e)
    print(f"{'would act on' if args.dry_run else 'acted on'} {tickets} ticket(s) as of {now.isoformat()}")
    return 0


def register(cmds: Any, sub: Callable[..., argparse.ArgumentParser]) -> None:
    calendar = cmds.add_parser("calendar", help="production calendar").add_subparsers(dest="c_command", required=True)
    p = sub(calendar, "show", cmd_calendar_show, "working days and hours per month, holidays, transfers")
    p.add_argument("year", type=int)
    p = sub(calendar, "check", cmd_calendar_check, "the calendar file is valid and covers this year and the next")
    p.add_argument("--today", type=date.fromisoformat, help=argparse.SUPPRESS)  # the clock, for tests
    jobs = cmds.add_parser("jobs", help="scheduled jobs").add_subparsers(dest="j_command", required=True)
    sub(jobs, "list", cmd_jobs_list, "the scheduled jobs")
    p = sub(jobs, "run", cmd_jobs_run, "run a job now, or see what it would do by a given moment")
    p.add_argument("name", help="a job name or 'all'")
    p.add_argument("--as-of", help="ISO time with zone (default: now)")
    p.add_argument("--dry-run", action="store_true", help="show, change nothing")
    p.add_argument("--json", action="store_true")
