"""Working-time arithmetic, table-tested against the shipped Russian production calendar."""

from __future__ import annotations

import copy
import tomllib
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from maildesk.core.workdays import (
    Calendar,
    CalendarError,
    WorkingHours,
    add_working_days,
    add_working_hours,
    covered_years,
    day_span,
    is_working_day,
    is_working_time,
    month_summary,
    next_working_moment,
    working_time_between,
)

CALENDAR_FILE = Path(__file__).resolve().parents[2] / "config" / "calendar" / "ru.toml"
TZ = ZoneInfo("Europe/Simferopol")
DATA: dict[str, Any] = tomllib.loads(CALENDAR_FILE.read_text(encoding="utf-8"))
CAL = Calendar.from_mapping(DATA)
HOURS = WorkingHours.from_mapping(DATA)


def at(text: str) -> datetime:
    """A Sevastopol wall-clock moment from 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2025-12-30", True),   # last working day of 2025
        ("2025-12-31", False),  # from Sun 05.01 (Decree No. 1335)
        ("2026-01-08", False),  # New Year holidays
        ("2026-01-09", False),  # from Sat 03.01 (Decree No. 1466)
        ("2026-01-12", True),   # first working day of 2026
        ("2025-05-02", False),  # Friday off by transfer
        ("2025-05-08", False),  # Thursday off by transfer
        ("2025-11-01", True),   # worked Saturday
        ("2025-11-03", False),  # its Monday off
        ("2025-02-24", True),   # no automatic Monday: Feb 23's day off went to May 8
        ("2024-12-28", True),   # worked Saturday
        ("2024-12-30", False),
        ("2026-03-09", False),  # Mar 8 on Sunday, art. 112 part 2
        ("2026-05-11", False),  # May 9 on Saturday, art. 112 part 2
        ("2026-11-07", False),  # plain Saturday
        ("2026-11-08", False),  # plain Sunday
        ("2026-11-05", True),   # plain Thursday
        ("2027-05-03", False),  # May 1 on Saturday, art. 112 part 2
    ],
)
def test_is_working_day(day: str, working: bool) -> None:
    assert is_working_day(CAL, d(day)) is working


@pytest.mark.parametrize(
    ("day", "span"),
    [
        ("2026-11-03", ("08:00", "16:00")),  # before Nov 4
        ("2025-11-01", ("08:00", "16:00")),  # worked Saturday before Nov 4
        ("2026-05-08", ("08:00", "16:00")),  # before May 9, a Saturday holiday
        ("2025-12-30", ("08:00", "17:00")),  # Dec 31 is a day off, not a holiday
        ("2024-12-28", ("08:00", "17:00")),  # worked Saturday, not shortened
        ("2026-11-05", ("08:00", "17:00")),
        ("2026-05-09", None),
        ("2026-11-07", None),
    ],
)
def test_day_span(day: str, span: tuple[str, str] | None) -> None:
    expected = None if span is None else (at(f"{day} {span[0]}"), at(f"{day} {span[1]}"))
    assert day_span(CAL, HOURS, d(day)) == expected


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (at("2026-11-05 07:59"), False),
        (at("2026-11-05 08:00"), True),
        (at("2026-11-05 16:59"), True),
        (at("2026-11-05 17:00"), False),  # the end of the day is already outside
        (at("2026-11-03 15:59"), True),
        (at("2026-11-03 16:00"), False),  # shortened day
        (at("2026-11-07 10:00"), False),  # Saturday
        (at("2026-11-04 10:00"), False),  # holiday
        (datetime(2026, 11, 5, 5, 0, tzinfo=timezone.utc), True),    # 08:00 in Sevastopol
        (datetime(2026, 11, 5, 4, 59, tzinfo=timezone.utc), False),  # 07:59 in Sevastopol
    ],
)
def test_is_working_time(moment: datetime, inside: bool) -> None:
    assert is_working_time(CAL, HOURS, moment) is inside


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2025-12-30 12:00", "2025-12-30 12:00"),  # open: the moment itself
        ("2025-12-30 07:00", "2025-12-30 08:00"),  # before hours
        ("2025-12-30 17:00", "2026-01-12 08:00"),  # after hours, across the New Year break
        ("2025-12-30 23:30", "2026-01-12 08:00"),
        ("2025-10-31 17:30", "2025-11-01 08:00"),  # Friday evening → worked Saturday
        ("2026-11-03 16:00", "2026-11-05 08:00"),  # after a shortened day, over the holiday
        ("2025-04-30 16:30", "2025-05-05 08:00"),  # May holidays
        ("2026-11-07 10:00", "2026-11-09 08:00"),  # weekend
    ],
)
def test_next_working_moment(moment: str, expected: str) -> None:
    assert next_working_moment(CAL, HOURS, at(moment)) == at(expected)


@pytest.mark.parametrize(
    ("arrival", "amount", "deadline"),
    [
        ("2026-02-06 16:30", 8, "2026-02-09 15:30"),  # Friday 16:30: 0.5 h + 7.5 h on Monday
        ("2025-10-31 16:30", 8, "2025-11-01 15:30"),  # Friday 16:30, then a worked, shortened Saturday
        ("2026-02-20 16:30", 8, "2026-02-24 15:30"),  # Monday Feb 23 is a holiday
        ("2025-12-30 16:30", 8, "2026-01-12 15:30"),  # year end
        ("2026-11-03 15:00", 2, "2026-11-05 09:00"),  # shortened day, then the holiday
        ("2026-02-06 16:30", 0.5, "2026-02-06 17:00"),  # landing on the end of the day stays there
        ("2026-02-07 12:00", 0, "2026-02-09 08:00"),  # zero hours from a Saturday: when the desk opens
        ("2026-02-07 12:00", timedelta(minutes=90), "2026-02-09 09:30"),
        ("2026-03-02 08:00", 80, "2026-03-13 16:00"),  # 80 h: 5 × 9 h, Mar 9 off, 3 × 9 h, then 8 h on Friday
    ],
)
def test_add_working_hours(arrival: str, amount: float | timedelta, deadline: str) -> None:
    assert add_working_hours(CAL, HOURS, at(arrival), amount) == at(deadline)


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        ("2025-04-28 10:00", 10, "2025-05-16 10:00"),  # across May 1–4 and May 8–11, 2025
        ("2026-04-30 10:00", 10, "2026-05-18 10:00"),  # across May 1–3 and May 9–11, 2026
        ("2025-12-30 11:00", 1, "2026-01-12 11:00"),  # across the New Year break
        ("2026-10-30 16:30", 2, "2026-11-03 16:00"),  # clamped to the shortened day's end
        ("2026-02-07 12:00", 1, "2026-02-10 08:00"),  # Saturday counts from Monday 08:00
        ("2026-02-06 18:00", 1, "2026-02-10 08:00"),  # after hours likewise
        ("2026-02-07 12:00", 0, "2026-02-09 08:00"),
    ],
)
def test_add_working_days(start: str, days: int, expected: str) -> None:
    assert add_working_days(CAL, HOURS, at(start), days) == at(expected)


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        ("2025-12-30 08:00", "2026-01-12 17:00", 18),  # two working days around the break
        ("2025-04-30 12:00", "2025-05-05 12:00", 8),  # 4 h of a shortened day + 4 h
        ("2026-11-03 08:00", "2026-11-05 08:00", 8),  # shortened day, holiday
        ("2026-11-05 10:00", "2026-11-05 11:30", 1.5),
        ("2026-11-07 00:00", "2026-11-09 00:00", 0),  # weekend only
        ("2026-11-05 12:00", "2026-11-05 10:00", 0),  # end before start
        ("2025-01-01 00:00", "2026-01-01 00:00", 247 * 9 - 4),  # a whole year of support hours
    ],
)
def test_working_time_between(start: str, end: str, hours: float) -> None:
    assert working_time_between(CAL, HOURS, at(start), at(end)) == timedelta(hours=hours)


def test_working_time_between_converts_other_zones() -> None:
    start = datetime(2026, 11, 5, 5, 0, tzinfo=timezone.utc)  # 08:00 local
    end = datetime(2026, 11, 5, 7, 0, tzinfo=timezone.utc)  # 10:00 local
    assert working_time_between(CAL, HOURS, start, end) == timedelta(hours=2)


def test_results_are_in_the_support_zone() -> None:
    result = add_working_hours(CAL, HOURS, datetime(2026, 11, 5, 5, 0, tzinfo=timezone.utc), 1)
    assert result.tzinfo == TZ and result == at("2026-11-05 09:00")


@pytest.mark.parametrize(
    "call",
    [
        lambda: next_working_moment(CAL, HOURS, datetime(2026, 11, 5, 10, 0)),
        lambda: add_working_hours(CAL, HOURS, at("2026-11-05 10:00"), -1),
        lambda: add_working_days(CAL, HOURS, at("2026-11-05 10:00"), -1),
    ],
    ids=["naive", "negative-hours", "negative-days"],
)
def test_rejects_bad_arguments(call: Any) -> None:
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------- unknown years


def test_unknown_year_falls_back_to_weekdays_and_reports_once() -> None:
    met: list[int] = []
    # Dec 30, 2027: 16:00–17:00; Dec 31 off by decree; 2028 unknown, so Jan 3 is a plain Monday
    result = add_working_hours(CAL, HOURS, at("2027-12-30 16:00"), 10, on_unknown_year=met.append)
    assert result == at("2028-01-03 17:00")
    assert met == [2028]


@pytest.mark.parametrize(
    ("call", "years"),
    [
        (lambda cb: is_working_day(CAL, d("2028-01-03"), on_unknown_year=cb), [2028]),
        (lambda cb: is_working_day(CAL, d("2026-01-05"), on_unknown_year=cb), []),
        (lambda cb: day_span(CAL, HOURS, d("2030-01-01"), on_unknown_year=cb), [2030]),
        (lambda cb: add_working_days(CAL, HOURS, at("2027-12-29 10:00"), 300, on_unknown_year=cb), [2028, 2029]),
        (lambda cb: working_time_between(CAL, HOURS, at("2023-12-29 08:00"), at("2024-01-10 08:00"), cb), [2023]),
        (lambda cb: next_working_moment(CAL, HOURS, at("2031-06-07 10:00"), on_unknown_year=cb), [2031]),
    ],
)
def test_unknown_year_callback(call: Any, years: list[int]) -> None:
    met: list[int] = []
    call(met.append)
    assert met == years


def test_unknown_year_fallback_values() -> None:
    assert is_working_day(CAL, d("2028-01-03"))  # a holiday in truth, but never guessed
    assert not is_working_day(CAL, d("2028-01-01"))  # Saturday
    assert day_span(CAL, HOURS, d("2028-01-03")) == (at("2028-01-03 08:00"), at("2028-01-03 17:00"))
    assert not CAL.is_known(2028) and CAL.is_known(2026)


def test_month_summary_refuses_an_unknown_year() -> None:
    with pytest.raises(CalendarError, match=r"years\.2030"):
        month_summary(CAL, 2030)


# ---------------------------------------------------------------- validation


def _mutated(year: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(DATA)
    data["years"][year].update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_mutated("2025", holidays=[date(2024, 12, 31)]), r"years\.2025\.holidays: 2024-12-31 does not belong to 2025"),
        (_mutated("2025", working=[date(2025, 5, 2)]), r"years\.2025\.working: 2025-05-02 is also listed"),
        (_mutated("2025", shortened=[date(2025, 5, 2)]), r"years\.2025\.shortened: 2025-05-02 is not a working day"),
        (_mutated("2025", shortened=[date(2025, 5, 3)]), r"years\.2025\.shortened: 2025-05-03 is not a working day"),
        (_mutated("2025", status="final"), r"years\.2025\.status"),
        (_mutated("2025", days_off=["2025-05-02"]), r"years\.2025\.days_off: '2025-05-02' is not a date"),
        (_mutated("2025", days_off=[datetime(2025, 5, 2, 9, 0)]), r"years\.2025\.days_off: .* is not a date"),
        (_mutated("2025", days_off=date(2025, 5, 2)), r"years\.2025\.days_off: must be a list"),
        (_mutated("2025", day_off=[]), r"years\.2025: unknown key 'day_off'"),
        ({**DATA, "format": 2}, r"format: 2"),
        ({**DATA, "weekend": ["saturday"]}, r"weekend"),
        ({**DATA, "year": {}}, r"unknown key 'year'"),
        ({**DATA, "years": {"next": {"status": "draft"}}}, r"years\.next"),
    ],
)
def test_calendar_validation_names_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        Calendar.from_mapping(data)


def test_missing_status_is_an_error() -> None:
    data = copy.deepcopy(DATA)
    del data["years"]["2026"]["status"]
    with pytest.raises(CalendarError, match=r"years\.2026\.status"):
        Calendar.from_mapping(data)


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"years": {"2030": {"days_off": [date(2030, 3, 18)]}}}, r"calendar overlay years\.2030\.status"),
        ({"weekend": ["sun"], "years": {}}, r"calendar overlay: unknown key 'weekend'"),
        ({"years": {"2025": {"days_off": [date(2026, 3, 18)]}}}, r"calendar overlay years\.2025\.days_off"),
        ({"years": {"2025": {"shortened": [date(2025, 3, 15)]}}}, r"years\.2025\.shortened: 2025-03-15"),
    ],
)
def test_overlay_validation_names_the_key(overlay: dict[str, Any], message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        Calendar.from_mapping(DATA, overlay)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"support_hours": {"start": "8am"}}, r"support_hours\.start"),
        ({"support_hours": {"start": "18:00"}}, r"support_hours: start 18:00:00 must be before end"),
        ({"shortened_minutes": 600}, r"shortened_minutes"),
        ({"shortened_minutes": "60"}, r"shortened_minutes"),
    ],
)
def test_working_hours_validation_names_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        WorkingHours.from_mapping(data)


def test_working_hours_rejects_an_unknown_zone() -> None:
    with pytest.raises(CalendarError, match="timezone"):
        WorkingHours(timezone="Europe/Sevastopol")


def test_working_hours_accepts_toml_local_times() -> None:
    hours = WorkingHours.from_mapping({"support_hours": {"start": time(9), "end": time(18)}})
    assert (hours.start, hours.end) == (time(9), time(18))


# ---------------------------------------------------------------- overlay

REGIONAL = {"format": 1, "years": {"2025": {"basis": "regional law", "days_off": [date(2025, 3, 18)]}}}


def test_overlay_adds_a_regional_day_off() -> None:
    cal = Calendar.from_mapping(DATA, REGIONAL)
    assert not is_working_day(cal, d("2025-03-18"))
    assert is_working_day(CAL, d("2025-03-18"))  # the base calendar is untouched
    # the eve of a regional day off keeps its full length: art. 95 speaks of federal holidays
    assert day_span(cal, HOURS, d("2025-03-17")) == (at("2025-03-17 08:00"), at("2025-03-17 17:00"))
    assert working_time_between(cal, HOURS, at("2025-03-17 08:00"), at("2025-03-20 08:00")) == timedelta(hours=18)
    assert add_working_hours(cal, HOURS, at("2025-03-17 16:00"), 2) == at("2025-03-19 09:00")
    assert cal.years[2025].basis.endswith("; regional law")
    assert month_summary(cal, 2025).working_days == 246


@pytest.mark.parametrize(
    ("overlay", "day", "working", "shortened"),
    [
        ({"2025": {"working": [date(2025, 12, 31)]}}, "2025-12-31", True, False),  # overlay working beats base days_off
        ({"2025": {"days_off": [date(2025, 11, 1)]}}, "2025-11-01", False, False),  # beats base working and shortened
        ({"2025": {"shortened": [date(2025, 12, 30)]}}, "2025-12-30", True, True),
    ],
)
def test_overlay_wins_over_the_base(overlay: dict[str, Any], day: str, working: bool, shortened: bool) -> None:
    cal = Calendar.from_mapping(DATA, {"years": overlay})
    assert is_working_day(cal, d(day)) is working
    assert (d(day) in cal.years[d(day).year].shortened) is shortened


def test_overlay_can_change_a_year_status_or_add_one() -> None:
    overlay = {"years": {"2027": {"status": "draft"}, "2028": {"status": "draft", "holidays": [date(2028, 1, 3)]}}}
    cal = Calendar.from_mapping(DATA, overlay)
    assert cal.status(2027) == "draft"
    assert covered_years(cal) == (2024, 2025, 2026, 2027, 2028)
    assert not is_working_day(cal, d("2028-01-03"))


# ---------------------------------------------------------------- the shipped calendar


def test_shipped_calendar_covers_2024_to_2027() -> None:
    assert covered_years(CAL) == (2024, 2025, 2026, 2027)
    assert [CAL.status(year) for year in covered_years(CAL)] == ["official"] * 4
    assert "№ 1187" in CAL.years[2027].basis and "17.09.2026" in CAL.years[2027].basis
    assert HOURS == WorkingHours()  # the file states the defaults: 08:00–17:00, one hour shorter


@pytest.mark.parametrize(
    ("year", "days", "hours_40", "hours_36"),
    [
        (2024, 248, 1979, 1780.6),
        (2025, 247, 1972, 1774.4),
        (2026, 247, 1972, 1774.4),
        (2027, 247, 1972, 1774.4),
    ],
)
def test_shipped_calendar_annual_norms(year: int, days: int, hours_40: float, hours_36: float) -> None:
    summary = month_summary(CAL, year)
    assert summary.working_days == days
    assert summary.working_hours == hours_40
    assert month_summary(CAL, year, week_hours=36).working_hours == hours_36


@pytest.mark.parametrize(
    ("year", "month", "days", "hours"),
    [
        (2024, 11, 21, 167),  # worked Sat Nov 2, shortened
        (2024, 12, 21, 168),  # worked Sat Dec 28, full length
        (2025, 1, 17, 136),
        (2025, 5, 18, 144),
        (2025, 11, 19, 151),
        (2026, 1, 15, 120),
        (2026, 5, 19, 151),
    ],
)
def test_shipped_calendar_months(year: int, month: int, days: int, hours: float) -> None:
    summary = month_summary(CAL, year).months[month - 1]
    assert (summary.month, summary.working_days, summary.working_hours) == (month, days, hours)


def test_shipped_calendar_lists() -> None:
    summary = month_summary(CAL, 2024)
    assert summary.working_weekend_days == (d("2024-04-27"), d("2024-11-02"), d("2024-12-28"))
    assert d("2024-12-28") not in summary.shortened
    assert "1314" in summary.basis
    assert month_summary(CAL, 2025).days_off == tuple(
        d(x) for x in ("2025-05-02", "2025-05-08", "2025-06-13", "2025-11-03", "2025-12-31")
    )


@pytest.mark.parametrize("year", [2024, 2025, 2026, 2027])
def test_shipped_calendar_follows_labour_code(year: int) -> None:
    rules = CAL.years[year]
    statutory = {date(year, 1, n) for n in range(1, 9)} | {
        date(year, *md) for md in ((2, 23), (3, 8), (5, 1), (5, 9), (6, 12), (11, 4))
    }
    assert rules.holidays == statutory
    assert all(day.weekday() < 5 for day in rules.days_off)  # a day off on a weekend would be a no-op
    assert all(day.weekday() >= 5 for day in rules.working)  # only weekend days need to be declared worked
    assert date(year, 12, 31) in rules.days_off  # every year 2024–2027 moves a January day to Dec 31
    assert date(year, 12, 30) not in rules.shortened  # Dec 31 is not a holiday (art. 95)
