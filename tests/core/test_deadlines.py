"""Due times of the regulation on the shipped production calendar: acceptance, stale, resume, coverage."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from maildesk.core.calendar_model import Calendar
from maildesk.core.deadlines import DeadlinePolicy, WorkClock, calendar_coverage
from maildesk.core.workdays import WorkingHours

CALENDAR_FILE = Path(__file__).resolve().parents[2] / "config" / "calendar" / "ru.toml"
TZ = ZoneInfo("Europe/Simferopol")
DATA: dict[str, Any] = tomllib.loads(CALENDAR_FILE.read_text(encoding="utf-8"))
CAL = Calendar.from_mapping(DATA)
CLOCK = WorkClock(CAL, WorkingHours.from_mapping(DATA), DeadlinePolicy())


def at(text: str) -> datetime:
    """A Sevastopol wall-clock moment from 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.mark.parametrize(
    ("arrived", "warn", "due"),
    [
        ("2026-11-27 16:30", "2026-11-30 13:30", "2026-11-30 15:30"),  # Friday: 0.5 h, then Monday
        ("2026-11-30 09:00", "2026-11-30 15:00", "2026-11-30 17:00"),  # a whole working day
        ("2026-11-28 12:00", "2026-11-30 14:00", "2026-11-30 16:00"),  # Saturday: the clock starts Monday 08:00
    ],
)
def test_acceptance(arrived: str, warn: str, due: str) -> None:
    assert CLOCK.acceptance(at(arrived)) == (at(warn), at(due))


@pytest.mark.parametrize(
    ("since", "remind", "close"),
    [
        ("2026-04-30 10:00", "2026-05-13 10:00", "2026-05-18 10:00"),  # across May 1–3 and May 9–11
        ("2025-12-30 11:00", "2026-01-20 11:00", "2026-01-23 11:00"),  # Dec 31 to Jan 11 off, then two weeks
        ("2026-11-30 10:00", "2026-12-09 10:00", "2026-12-14 10:00"),  # plain weeks
    ],
)
def test_stale_reminder_and_close(since: str, remind: str, close: str) -> None:
    assert CLOCK.stale(at(since)) == (at(remind), at(close))
    assert CLOCK.stale(at(since), "resolved") == (at(remind), at(close)), "resolved tickets close on silence too"


def test_stale_nothing_falls_due_for_resolved_tickets_silence_does_not_close() -> None:
    keep = WorkClock(CLOCK.calendar, CLOCK.hours, DeadlinePolicy(close_resolved_on_silence=False))
    assert keep.stale(at("2026-11-30 10:00"), "resolved") == (None, None)
    assert keep.stale(at("2026-11-30 10:00"), "feedback") == (at("2026-12-09 10:00"), at("2026-12-14 10:00"))


def test_stale_follows_the_policy() -> None:
    short = WorkClock(CLOCK.calendar, CLOCK.hours, DeadlinePolicy(stale_days=5, remind_days=1))
    assert short.stale(at("2026-04-30 10:00")) == (at("2026-05-07 10:00"), at("2026-05-08 10:00"))


@pytest.mark.parametrize(
    ("due", "paused_since", "now", "resumed"),
    [
        # the requester answered a day later: the 8 hours left move on from the answer
        ("2026-12-01 09:00", "2026-11-30 10:00", "2026-12-01 10:00", "2026-12-02 09:00"),
        # paused 3 hours before the due time on a shortened day, answered after the May holidays
        ("2026-04-30 15:00", "2026-04-30 12:00", "2026-05-12 09:00", "2026-05-12 12:00"),
        # paused outside hours: only the 2 working hours of Monday morning were left
        ("2026-11-30 10:00", "2026-11-27 18:00", "2026-12-01 16:00", "2026-12-02 09:00"),
        # answered in the evening: the 2 hours left start with the next working day
        ("2026-12-01 09:00", "2026-11-30 16:00", "2026-12-01 19:00", "2026-12-02 10:00"),
    ],
)
def test_resume_moves_the_due_time_by_the_time_spent_waiting(due: str, paused_since: str, now: str,
                                                              resumed: str) -> None:
    assert CLOCK.resume(at(due), at(paused_since), at(now)) == at(resumed)


@pytest.mark.parametrize("paused_since", ["2026-12-01 09:00", "2026-12-01 12:00"])
def test_resume_does_not_excuse_a_due_time_passed_before_the_pause(paused_since: str) -> None:
    assert CLOCK.resume(at("2026-12-01 09:00"), at(paused_since), at("2026-12-03 10:00")) == at("2026-12-01 09:00")


DRAFT_2027 = Calendar.from_mapping(DATA, {"years": {"2027": {"status": "draft"}}})


@pytest.mark.parametrize(
    ("calendar", "today", "expected"),
    [
        (CAL, date(2026, 6, 1), []),
        (CAL, date(2026, 12, 1), []),  # 2027 is official
        (CAL, date(2027, 6, 1), [(2028, "missing", False)]),  # a warning before December
        (CAL, date(2027, 11, 30), [(2028, "missing", False)]),
        (CAL, date(2027, 12, 1), [(2028, "missing", True)]),  # due now: deadlines soon reach it
        (CAL, date(2028, 3, 1), [(2028, "missing", True), (2029, "missing", False)]),
        (DRAFT_2027, date(2026, 12, 1), [(2027, "draft", False)]),
        (DRAFT_2027, date(2027, 2, 1), [(2027, "draft", False), (2028, "missing", False)]),
    ],
)
def test_calendar_coverage(calendar: Calendar, today: date, expected: list[tuple[int, str, bool]]) -> None:
    notes = calendar_coverage(calendar, today)
    assert [(n.year, n.problem, n.failing) for n in notes] == expected
    assert all(str(n.year) in n.text for n in notes)
