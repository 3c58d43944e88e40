"""Deadlines end to end on the production calendar, with the clock injected."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from maildesk.adapters.housekeeping_store import SqlHousekeepingStore
from maildesk.adapters.queries import show_ticket
from maildesk.adapters.scheduler import housekeeping_pass
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

    at(clock, 2026, 5, 13, 9, 59)  # the 7th working day after: May 4–8, 12, 13
    assert housekeeping_pass(app) == []
    at(clock, 2026, 5, 13, 10, 0)
    assert [e["job"] for e in housekeeping_pass(app)] == ["stale_remind"]
    reminders = [m for m in deliver(app) if "Напоминание" in str(m["Subject"]) or m["Auto-Submitted"] == "auto-generated"]
    assert len(reminders) == 1 and REQUESTER in reminders[0]["To"]
    assert "18.05.2026 10:00" in reminders[0].get_body(("plain",)).get_content()
    assert housekeeping_pass(app) == [], "reminded once"

    at(clock, 2026, 5, 18, 9, 59)  # the 10th working day: Monday May 18
    assert housekeeping_pass(app) == []
    at(clock, 2026, 5, 18, 10, 0)
    assert [e["job"] for e in housekeeping_pass(app)] == ["stale_close"]
    ticket = show_ticket(app.engine, number)
    assert (ticket["status"], ticket["close_reason"]) == ("closed", "no_response")
    closed = deliver(app)[-1]
    assert REQUESTER in closed["To"]
    assert "Закрыта из-за отсутствия ответа" in closed.get_body(("plain",)).get_content()
    assert events(app, number).count("auto_closed") == 1


def test_a_real_reply_saves_the_ticket(app: Any, clock: Any) -> None:
    at(clock, 2026, 4, 30, 10, 0)
    number = feedback_ticket(app)
    at(clock, 2026, 5, 12, 9, 0)
    ingest_bytes(app, make_mail(subject=f"Re: [СТП #{number}] Не печатает", body="Телефон: 55-12-34"))
    at(clock, 2026, 5, 18, 10, 0)
    jobs = {e["job"] for e in housekeeping_pass(app)}
    assert not jobs & {"stale_close", "stale_remind"}
    assert jobs == {"sla_warning", "sla_breach"}, "untaken, the acceptance clock runs again after the reply"
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
    at(clock, 2026, 11, 30, 15, 30)
    assert [e["job"] for e in housekeeping_pass(app)] == ["sla_breach"]
    breach = deliver(app)[-1]
    assert SUPERVISOR in breach["To"]
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
    from maildesk.adapters.scheduler import retention_pass

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
