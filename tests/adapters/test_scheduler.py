"""Deadlines end to end on the production calendar, with the clock injected."""

from __future__ import annotations

import hashlib
import threading
import logging
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from maildesk.adapters.housekeeping_store import SqlHousekeepingStore
from maildesk.adapters.queries import show_ticket
from maildesk.adapters.scheduler import calendar_check, housekeeping, housekeeping_pass, retention_pass
from tests.conftest import AGENT, REQUESTER, SUPERVISOR, deliver, ingest_bytes
from tests.mailmaker import make_mail

MSK = ZoneInfo("Europe/Simferopol")


def at(clock: Any, *args: int) -> None:
    clock.current = datetime(*args, tzinfo=MSK).astimezone(timezone.utc)


def events(app: Any, number: int) -> list[str]:
    return [e["action"] for e in show_ticket(app.engine, number)["events"]]


def feedback_ticket(app: Any) -> int:
    """A request without a phone: created waiting for the requester."""
    result = ingest_bytes(app, make_mail(subject="Не печатает принтер", body="Не печатает принтер в кабинете 12."))
    assert show_ticket(app.engine, result.ticket)["status"] == "feedback"
    return result.ticket


def test_feedback_before_the_may_holidays_is_reminded_and_closed_on_the_right_minute(app: Any, clock: Any) -> None:
    at(clock, 2026, 4, 30, 10, 0)  # Thursday, a shortened pre-holiday day; May 1–3 and 9–11 are off
    number = feedback_ticket(app)
    deliver(app)
    at(clock, 2026, 5, 6, 11, 0)
    ooo = make_mail(subject=f"Автоответ: [СТП #{number}] Не печатает принтер", body="Я в отпуске.",
                    headers=[("Auto-Submitted", "auto-replied")])
    ingest_bytes(app, ooo)  # an out-of-office reply does not reset the clock
    at(clock, 2026, 5, 7, 11, 0)
    bare = make_mail(subject=f"Re: [СТП #{number}] Не печатает принтер", body="Меня нет на месте до 20.05.")
    ingest_bytes(app, bare)  # nor does one without any auto header
    assert [m["kind"] for m in show_ticket(app.engine, number)["messages"]].count("auto_reply") == 2

    at(clock, 2026, 5, 13, 9, 59)  # the 7th working day after: May 4–8, 12, 13
    assert housekeeping_pass(app) == []
    at(clock, 2026, 5, 13, 10, 0)
    assert [e["job"] for e in housekeeping_pass(app)] == ["stale_remind"]
    reminders = [m for m in deliver(app) if "Напоминание" in str(m["Subject"]) or m["Auto-Submitted"] == "auto-generated"]
    assert len(reminders) == 1 and REQUESTER in reminders[0]["To"]
    text = reminders[0].get_body(("plain",)).get_content()
    assert "18.05.2026 10:00" in text and "«Закрыта из-за отсутствия ответа»" in text
    assert housekeeping_pass(app) == [], "reminded once"

    at(clock, 2026, 5, 18, 9, 59)  # the 10th working day: Monday May 18
    assert housekeeping_pass(app) == []
    at(clock, 2026, 5, 18, 10, 0)
    assert [e["job"] for e in housekeeping_pass(app)] == ["stale_close"]
    ticket = show_ticket(app.engine, number)
    assert (ticket["status"], ticket["close_reason"]) == ("closed", "no_response")
    closed = deliver(app)[-1]
    assert REQUESTER in closed["To"]
    assert "закрыта: мы не получили от Вас ответа в установленный срок" in closed.get_body(("plain",)).get_content()
    assert events(app, number).count("auto_closed") == 1


def test_a_real_reply_saves_the_ticket(app: Any, clock: Any) -> None:
    at(clock, 2026, 4, 30, 10, 0)
    number = feedback_ticket(app)
    at(clock, 2026, 5, 12, 9, 0)
    ingest_bytes(app, make_mail(subject=f"Re: [СТП #{number}] Не печатает", body="Телефон: 55-12-34"))
    at(clock, 2026, 5, 18, 10, 0)
    jobs = {e["job"] for e in housekeeping_pass(app)}
    assert not jobs & {"stale_close", "stale_remind"}
    assert jobs == {"sla_breach"}, "untaken, the acceptance clock runs again after the reply; past it, no warning"
    assert show_ticket(app.engine, number)["status"] == "in_progress"


def test_acceptance_warning_and_breach_over_a_weekend(app: Any, clock: Any) -> None:
    at(clock, 2026, 11, 27, 16, 30)  # Friday 16:30: half an hour left that day
    number = ingest_bytes(app, make_mail()).ticket
    ticket = show_ticket(app.engine, number)
    assert ticket["accept_due_at"] == datetime(2026, 11, 30, 15, 30, tzinfo=MSK).astimezone(timezone.utc).isoformat()
    deliver(app)
    at(clock, 2026, 11, 30, 13, 29)
    assert housekeeping_pass(app) == []
    at(clock, 2026, 11, 30, 13, 30)  # 75 % of 8 working hours
    assert [e["job"] for e in housekeeping_pass(app)] == ["sla_warning"]
    warning = deliver(app)[-1]
    assert AGENT in warning["To"] and f"#{number}" in str(warning["Subject"])
    assert "прошло 6 ч рабочего времени" in warning.get_body(("plain",)).get_content()
    at(clock, 2026, 11, 30, 15, 30)
    assert [e["job"] for e in housekeeping_pass(app)] == ["sla_breach"]
    breach = deliver(app)[-1]
    assert SUPERVISOR in breach["To"]
    assert "прошло 8 ч рабочего времени" in breach.get_body(("plain",)).get_content()
    assert housekeeping_pass(app) == []
    assert events(app, number).count("sla_breach") == 1


def test_taking_the_ticket_stops_the_acceptance_clock(app: Any, clock: Any) -> None:
    at(clock, 2026, 11, 30, 9, 0)
    number = ingest_bytes(app, make_mail()).ticket
    at(clock, 2026, 11, 30, 10, 0)
    ingest_bytes(app, make_mail(sender=AGENT, sender_name="Петров Пётр", subject=f"Re: [СТП #{number}] Карта",
                                body="/assign me\n\nЗанимаюсь, перезвоню."))
    at(clock, 2026, 12, 2, 9, 0)
    assert housekeeping_pass(app) == []
    assert show_ticket(app.engine, number)["owner"] == AGENT


def test_time_in_feedback_does_not_count_against_acceptance(app: Any, clock: Any) -> None:
    at(clock, 2026, 11, 30, 10, 0)  # Monday: due Tuesday 09:00 (8 working hours) if never paused
    number = feedback_ticket(app)
    at(clock, 2026, 12, 1, 10, 0)  # the requester answers a day later: 8 hours were spent waiting
    ingest_bytes(app, make_mail(subject=f"Re: [СТП #{number}] Принтер", body="Телефон: 55-12-34"))
    due = show_ticket(app.engine, number)["accept_due_at"]
    assert due == datetime(2026, 12, 2, 9, 0, tzinfo=MSK).astimezone(timezone.utc).isoformat()  # Tue 10:00 + 8 h


def test_dry_run_shows_without_changing(app: Any, clock: Any) -> None:
    from maildesk.service.housekeeping import HousekeepingPolicy, run_job

    at(clock, 2026, 4, 30, 10, 0)
    number = feedback_ticket(app)
    store = SqlHousekeepingStore(app.engine, app.work)
    as_of = datetime(2026, 5, 18, 10, 0, tzinfo=MSK)
    planned = run_job("stale_close", store, app.composer, as_of, HousekeepingPolicy(), dry_run=True)
    assert [(p["ticket"], p["status"]) for p in planned] == [(number, "closed")]
    assert show_ticket(app.engine, number)["status"] == "feedback"


def test_two_schedulers_close_once_and_notify_once(make_app: Any, clock: Any) -> None:
    first = make_app()
    from maildesk.bootstrap import build

    second = build(first.settings, clock=clock)  # a second instance on the same store
    at(clock, 2026, 4, 30, 10, 0)
    numbers = [feedback_ticket(first) for _ in range(5)]
    deliver(first)
    at(clock, 2026, 5, 18, 10, 0)
    results: list[list[dict]] = [[], []]
    barrier = threading.Barrier(2)

    def run(index: int, app: Any) -> None:
        barrier.wait()
        results[index] = housekeeping_pass(app)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    closed = sorted(e["ticket"] for r in results for e in r if e["job"] == "stale_close")
    assert closed == numbers, "each ticket closed by exactly one instance"
    for number in numbers:
        sent = show_ticket(first.engine, number)["notifications"]
        assert [n["event"] for n in sent].count("closed") == 1
    second.close()


def test_the_queries_use_indexes(app: Any, clock: Any) -> None:
    store = SqlHousekeepingStore(app.engine, app.work)
    for job in ("stale_close", "stale_remind", "sla_warning", "sla_breach"):
        plan = " ".join(store.explain(job, clock.now())).lower()
        assert "index" in plan, f"{job}: {plan}"


def test_refused_mail_is_purged_after_retention_ticket_mail_kept(app: Any, clock: Any) -> None:
    from maildesk.adapters.queries import list_quarantine

    refused = ingest_bytes(app, make_mail(sender="x@evil.example", subject="Спам"))
    kept = ingest_bytes(app, make_mail())
    [entry] = list_quarantine(app.engine)
    ticket_raw = show_ticket(app.engine, kept.ticket)["messages"][0]["raw_sha256"]
    clock.advance(days=89)
    assert retention_pass(app) == 0
    clock.advance(days=2)
    assert retention_pass(app) == 1
    assert list_quarantine(app.engine, state="purged")[0]["id"] == refused.quarantine
    assert not app.archive.has(entry["raw_sha256"])
    assert app.archive.has(ticket_raw)
    assert retention_pass(app) == 0


def resolved_ticket(app: Any) -> int:
    number = ingest_bytes(app, make_mail()).ticket
    ingest_bytes(app, make_mail(sender=AGENT, sender_name="Петров Пётр", subject=f"Re: [СТП #{number}] Карта",
                                body="/status resolved\n\nПрава восстановлены."))
    assert show_ticket(app.engine, number)["status"] == "resolved"
    return number


def test_a_resolved_ticket_is_reminded_of_a_close_as_resolved(app: Any, clock: Any) -> None:
    at(clock, 2026, 11, 30, 10, 0)
    number = resolved_ticket(app)
    deliver(app)
    at(clock, 2026, 12, 10, 10, 0)  # 7 working days on
    assert [e["job"] for e in housekeeping_pass(app)] == ["stale_remind"]
    text = deliver(app)[-1].get_body(("plain",)).get_content()
    assert "закрыта как решённая" in text and "«Закрыта из-за отсутствия ответа»" not in text
    at(clock, 2026, 12, 15, 10, 0)
    assert [e["job"] for e in housekeeping_pass(app)] == ["stale_close"]
    assert show_ticket(app.engine, number)["close_reason"] == "resolved"


def test_resolved_tickets_silence_does_not_close_are_never_due(make_app: Any, clock: Any) -> None:
    app = make_app(stale={"close_resolved_on_silence": False})
    at(clock, 2026, 11, 30, 10, 0)
    number = resolved_ticket(app)
    feedback = feedback_ticket(app)
    deliver(app)
    at(clock, 2027, 3, 1, 10, 0)  # months later
    store = SqlHousekeepingStore(app.engine, app.work, close_resolved=app.settings.stale.close_resolved_on_silence)
    assert [t.number for t in store.due("stale_remind", clock.now(), 10)] == [feedback]
    assert [t.number for t in store.due("stale_close", clock.now(), 10)] == [feedback], "not crowding the limit"
    done = housekeeping_pass(app)
    assert number not in {e["ticket"] for e in done}
    assert show_ticket(app.engine, number)["status"] == "resolved"
    assert "reminder" not in [n["event"] for n in show_ticket(app.engine, number)["notifications"]]


def test_after_downtime_the_breach_comes_without_the_warning(app: Any, clock: Any) -> None:
    at(clock, 2026, 11, 30, 9, 0)
    number = ingest_bytes(app, make_mail()).ticket
    deliver(app)
    at(clock, 2026, 12, 2, 9, 0)  # the daemon was down past warning and deadline
    assert [e["job"] for e in housekeeping_pass(app)] == ["sla_breach"]
    assert [m["To"] for m in deliver(app)][-1:] == [SUPERVISOR]
    assert "sla_warning" not in events(app, number)
    assert housekeeping_pass(app) == []


def test_the_warning_names_the_acceptance_deadline(app: Any, clock: Any) -> None:
    at(clock, 2026, 11, 30, 9, 0)  # due 17:00 the same day; warned at 15:00
    ingest_bytes(app, make_mail())
    deliver(app)
    at(clock, 2026, 11, 30, 15, 0)
    assert [e["job"] for e in housekeeping_pass(app)] == ["sla_warning"]
    assert "30.11.2026 17:00" in deliver(app)[-1].get_body(("plain",)).get_content()


def test_a_dry_run_of_every_job_shows_no_reminder_for_a_ticket_it_closes(app: Any, clock: Any) -> None:
    at(clock, 2026, 4, 30, 10, 0)
    number = feedback_ticket(app)
    planned = housekeeping(app, datetime(2026, 5, 18, 10, 0, tzinfo=MSK), dry_run=True)
    assert [(p["job"], p["ticket"]) for p in planned if p["ticket"] == number] == [("stale_close", number)]
    assert show_ticket(app.engine, number)["status"] == "feedback"


@pytest.mark.parametrize(
    ("today", "years"),
    [
        ((2027, 12, 1, 9, 0), [2028]),  # December: next year is missing
        ((2027, 11, 30, 9, 0), []),  # not yet December
        ((2026, 12, 1, 9, 0), []),  # 2027 is in place
    ],
)
def test_the_daily_calendar_check_warns_in_december(app: Any, clock: Any, caplog: Any,
                                                    today: tuple[int, ...], years: list[int]) -> None:
    at(clock, *today)
    with caplog.at_level(logging.WARNING, logger="maildesk.scheduler"):
        found = calendar_check(app, clock.now())
    assert [(e["year"], e["problem"]) for e in found] == [(y, "missing") for y in years]
    assert [r.getMessage().split(" in the")[0] for r in caplog.records] == [f"no year {y}" for y in years]


def test_a_draft_next_year_is_a_warning_everywhere(make_app: Any, clock: Any, tmp_path: Path) -> None:
    from maildesk.cli_time import calendar_health

    overlay = tmp_path / "calendar.local.toml"
    overlay.write_text('[years.2027]\nstatus = "draft"\n', encoding="utf-8")
    app = make_app(calendar={"local_file": str(overlay)})
    at(clock, 2026, 12, 1, 9, 0)
    assert [(e["year"], e["problem"]) for e in calendar_check(app, clock.now())] == [(2027, "draft")]
    at(clock, 2026, 11, 2, 9, 0)
    assert calendar_check(app, clock.now()) == [], "the daily warning waits for December"
    report = calendar_health(app.settings, today=date(2026, 11, 2)).splitlines()
    assert report[0].startswith("years 2024 (official)") and len(report) == 2
    assert report[1].startswith("WARN calendar: year 2027 of the production calendar is a draft")
    late = calendar_health(app.settings, today=date(2027, 12, 1)).splitlines()
    assert len(late) == 3 and "year 2027" in late[1] and late[2].startswith("WARN calendar: no year 2028 ")


def test_refused_mail_goes_with_its_attachments_a_shared_file_stays(app: Any, clock: Any) -> None:
    from maildesk.adapters.queries import list_quarantine

    logo, scan = b"%PDF-1.4 shared logo", b"%PDF-1.4 refused scan"
    refused = ingest_bytes(app, make_mail(sender="x@evil.example", subject="Спам",
                                          attachments=[("logo.pdf", "application/pdf", logo),
                                                       ("scan.pdf", "application/pdf", scan)]))
    ticket = ingest_bytes(app, make_mail(attachments=[("logo.pdf", "application/pdf", logo)]))
    [entry] = list_quarantine(app.engine)
    files = set(app.archive.digests())
    clock.advance(days=91)
    assert retention_pass(app) == 1 and refused.quarantine == entry["id"]
    gone = files - set(app.archive.digests())
    assert gone == {entry["raw_sha256"], hashlib.sha256(scan).hexdigest()}
    assert app.archive.has(hashlib.sha256(logo).hexdigest()), "a ticket's attachment too"
    assert app.archive.has(show_ticket(app.engine, ticket.ticket)["messages"][0]["raw_sha256"])


def test_ignored_automatic_mail_without_a_ticket_is_purged_after_retention(app: Any, clock: Any) -> None:
    import sqlalchemy as sa

    ooo = make_mail(subject="Автоответ: Вопрос", body="Я в отпуске.", headers=[("Auto-Submitted", "auto-replied")],
                    attachments=[("card.vcf", "text/vcard", b"BEGIN:VCARD\nEND:VCARD\n")])
    result = ingest_bytes(app, ooo)
    assert (result.outcome.value, result.ticket, result.quarantine) == ("ignored", None, None)
    on_ticket = ingest_bytes(app, make_mail())
    assert len(app.archive.digests()) == 3
    clock.advance(days=89)
    assert retention_pass(app) == 0
    clock.advance(days=2)
    assert retention_pass(app) == 1
    assert app.archive.digests() == [show_ticket(app.engine, on_ticket.ticket)["messages"][0]["raw_sha256"]]
    with app.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM processed_mail")).scalar() == 2, "the record stays"
    assert retention_pass(app) == 0, "purged once"


@pytest.mark.parametrize(
    ("status", "close_reason", "wording"),
    [
        ("resolved", "resolved", "закрыта как решённая"),
        ("feedback", "no_response", "«Закрыта из-за отсутствия ответа»"),
    ],
)
def test_the_reminder_words_the_coming_close(status: str, close_reason: str, wording: str) -> None:
    from maildesk.adapters.templates import TemplateRenderer, sample_context

    context = sample_context("reminder")
    context["ticket"] = {**context["ticket"], "status": status}
    context["close_reason"] = close_reason
    rendered = TemplateRenderer().render("reminder", context)
    for part in (rendered.text, rendered.html):
        assert wording in part and "26.03.2025" in part
        assert ("решённая" in part) is (wording == "закрыта как решённая")


def test_a_resolution_target_is_warned_breached_and_paused_in_feedback(make_app: Any, clock: Any) -> None:
    app = make_app(sla={"resolution_hours": [1.0, 0.0, 2.0, 0.0]})  # priority 3 (the default): 2 working hours
    at(clock, 2026, 11, 30, 10, 0)  # Monday
    number = ingest_bytes(app, make_mail()).ticket
    deliver(app)
    ingest_bytes(app, make_mail(sender=AGENT, subject=f"Re: [СТП #{number}] карта", body="/status in_progress"))
    at(clock, 2026, 11, 30, 11, 30)  # 75 % of the target
    assert [e["job"] for e in housekeeping_pass(app)] == ["resolve_warning"]
    warning = deliver(app)[-1]
    assert AGENT in warning["To"] and "Срок решения истекает 30.11.2026 12:00" in str(warning["Subject"])
    assert "с приоритетом «Обычный»" in warning.get_body(("plain",)).get_content()

    ingest_bytes(app, make_mail(sender=AGENT, subject=f"Re: [СТП #{number}] карта", body="/feedback Номер кабинета?"))
    at(clock, 2026, 11, 30, 16, 0)  # in feedback from 11:30: the clock stands
    assert housekeeping_pass(app) == []
    ingest_bytes(app, make_mail(subject=f"Re: [СТП #{number}] карта", body="Кабинет 12."))
    at(clock, 2026, 11, 30, 16, 29)  # 4 h 30 min paused: due 16:30
    assert housekeeping_pass(app) == []
    at(clock, 2026, 11, 30, 16, 30)
    assert [e["job"] for e in housekeeping_pass(app)] == ["resolve_breach"]
    breach = deliver(app)[-1]
    assert SUPERVISOR in breach["To"] and "Нарушен срок решения" in str(breach["Subject"])
    assert events(app, number).count("resolve_breach") == 1 and housekeeping_pass(app) == []


def test_a_priority_without_a_target_has_no_resolution_due(make_app: Any, clock: Any) -> None:
    app = make_app(sla={"resolution_hours": [1.0, 0.0, 2.0, 0.0]})
    at(clock, 2026, 11, 30, 10, 0)
    number = ingest_bytes(app, make_mail()).ticket
    ingest_bytes(app, make_mail(sender="sidorova@miac.sev.gov.ru", subject=f"Re: [СТП #{number}] карта",
                                body="/impact tweak\n/priority 4"))
    assert show_ticket(app.engine, number)["priority"] == 4
    at(clock, 2026, 12, 10, 10, 0)
    assert not {"resolve_warning", "resolve_breach"} & {e["job"] for e in housekeeping_pass(app)}
