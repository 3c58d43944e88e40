"""Ingest end to end: bytes in, ticket and quarantine state, notifications out."""

from __future__ import annotations

import email.policy
from email import message_from_bytes
from typing import Any

from maildesk.adapters.queries import TicketFilter, list_quarantine, list_tickets, show_ticket
from maildesk.core.model import Outcome
from tests.conftest import AGENT, DESK, REQUESTER, deliver, eml, ingest_bytes
from tests.mailmaker import make_mail


def _to(msgs: list[Any], address: str) -> list[Any]:
    return [m for m in msgs if address in m["To"]]


def test_new_request_creates_a_ticket_and_answers_the_requester(app: Any) -> None:
    result = ingest_bytes(app, eml("new_request.eml"))
    assert result.outcome is Outcome.CREATED
    ticket = show_ticket(app.engine, result.ticket)
    assert ticket["subject"] == "Не открывается карта пациента в МИС"
    assert ticket["status"] == "new"
    assert ticket["requester_email"] == REQUESTER
    assert ticket["requester_name"] == "Иванова Мария Петровна"
    assert ticket["organisation"] == "ГБУЗС «Городская больница № 1»"
    assert "Ошибка доступа к данным" in ticket["messages"][0]["text"]
    assert ticket["messages"][0]["decision"]["rule"] == "ticket.new"

    sent = deliver(app)
    to_requester = _to(sent, REQUESTER)
    assert len(to_requester) == 1
    reply = to_requester[0]
    assert reply["Subject"].startswith(f"[СТП #{result.ticket}]")
    assert reply["In-Reply-To"] == "<0f3c2a1b9e8d4c7b@gb1.sev.gov.ru>"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["X-Auto-Response-Suppress"] == "All"
    assert reply["Reply-To"] == DESK
    assert f"№ {result.ticket}" in reply.get_body(("plain",)).get_content()
    assert _to(sent, AGENT), "agents are told about the new ticket"


def test_the_same_bytes_twice_change_nothing(app: Any) -> None:
    raw = eml("new_request.eml")
    first = ingest_bytes(app, raw)
    second = ingest_bytes(app, raw)
    assert second.outcome is Outcome.DUPLICATE
    assert second.ticket == first.ticket
    assert len(list_tickets(app.engine, TicketFilter())) == 1
    assert len(deliver(app)) == 2  # requester + agents, once


def test_same_message_via_smtp_and_imap_is_one_ticket(app: Any) -> None:
    raw = eml("new_request.eml")
    via_imap = b"Return-Path: <ivanova@gb1.sev.gov.ru>\r\nDelivered-To: help@miac.sev.gov.ru\r\n" + raw
    assert ingest_bytes(app, raw, "smtp").outcome is Outcome.CREATED
    assert ingest_bytes(app, via_imap, "imap:main").outcome is Outcome.DUPLICATE
    assert len(list_tickets(app.engine, TicketFilter())) == 1


def test_a_reply_to_our_notification_threads_into_the_ticket(app: Any) -> None:
    created = ingest_bytes(app, eml("new_request.eml"))
    notice = _to(deliver(app), REQUESTER)[0]
    reply = make_mail(
        subject="RE: " + notice["Subject"], body="Проблема повторилась после перезагрузки.\n\nТелефон: 55-12-34",
        in_reply_to=notice["Message-ID"].strip("<>"), references=[notice["Message-ID"].strip("<>")],
    )
    result = ingest_bytes(app, reply)
    assert result.outcome is Outcome.APPENDED
    assert result.ticket == created.ticket
    ticket = show_ticket(app.engine, created.ticket)
    assert ticket["messages"][1]["decision"]["signal"]["signal"] == "minted"


def test_subject_tag_threads_without_headers(app: Any) -> None:
    created = ingest_bytes(app, eml("new_request.eml"))
    reply = make_mail(subject=f"Ответ: [СТП #{created.ticket}] Не открывается карта", body="Дополняю: код 403.")
    result = ingest_bytes(app, reply)
    assert (result.outcome, result.ticket) == (Outcome.APPENDED, created.ticket)


def test_an_outsider_cannot_write_into_a_ticket_by_its_tag(app: Any) -> None:
    created = ingest_bytes(app, eml("new_request.eml"))
    deliver(app)
    intruder = make_mail(sender="someone@gb7.sev.gov.ru", sender_name="Чужой",
                         subject=f"Re: [СТП #{created.ticket}] Не открывается карта",
                         body="Закройте заявку, всё работает.\nТелефон: 12345")
    result = ingest_bytes(app, intruder)
    assert result.outcome is Outcome.CREATED
    assert result.ticket != created.ticket
    assert show_ticket(app.engine, result.ticket)["linked_ticket"] == created.ticket
    assert len(show_ticket(app.engine, created.ticket)["messages"]) == 1
    new_mail = deliver(app)
    assert not [m for m in new_mail[2:] if REQUESTER in m["To"]], "nothing reaches the original requester"


def test_refused_sender_is_quarantined_without_any_mail(app: Any) -> None:
    raw = make_mail(sender="attacker@evil.example", subject="Срочно", body="Откройте вложение")
    result = ingest_bytes(app, raw)
    assert result.outcome is Outcome.QUARANTINED
    [entry] = list_quarantine(app.engine)
    assert entry["reason"].startswith("sender.")
    assert entry["sender"] == "attacker@evil.example"
    assert app.archive.get(entry["raw_sha256"]) == raw
    assert deliver(app) == []


def test_lookalike_domain_is_refused(app: Any) -> None:
    lookalike = "ivanova@sev.gоv.ru".encode()  # Cyrillic «о», as an SMTPUTF8 client writes it
    raw = make_mail(sender="ivanova@sev.gov.ru", sender_name="", subject="Помогите").replace(
        b"From: ivanova@sev.gov.ru", b"From: " + lookalike)
    assert lookalike in raw
    assert ingest_bytes(app, raw).outcome is Outcome.QUARANTINED
    assert list_tickets(app.engine, TicketFilter()) == []


def test_auto_reply_is_recorded_but_changes_nothing(app: Any) -> None:
    created = ingest_bytes(app, eml("new_request.eml"))
    before = len(deliver(app))
    ooo = make_mail(subject=f"Автоответ: [СТП #{created.ticket}] Не открывается карта",
                    body="Я в отпуске до 30 ноября.", headers=[("Auto-Submitted", "auto-replied")])
    result = ingest_bytes(app, ooo)
    assert result.outcome is Outcome.IGNORED
    ticket = show_ticket(app.engine, created.ticket)
    assert ticket["status"] == "new"
    assert ticket["messages"][-1]["kind"] == "auto_reply"
    assert ticket["messages"][-1]["visibility"] == "internal"
    assert len(deliver(app)) == before, "no answer to an auto-reply"


def test_bounce_of_our_notification_is_recorded_on_its_ticket(app: Any) -> None:
    created = ingest_bytes(app, eml("new_request.eml"))
    notice = _to(deliver(app), REQUESTER)[0]
    original = notice.as_bytes()
    bounce = make_mail(
        sender="MAILER-DAEMON@mx.sev.gov.ru", sender_name="Mail Delivery System",
        subject="Undelivered Mail Returned to Sender", body="The mail system: user unknown",
        attachments=[("original.eml", "message/rfc822", original)],
    )
    result = ingest_bytes(app, bounce, mail_from="")
    assert result.outcome is Outcome.IGNORED
    assert result.ticket == created.ticket
    assert show_ticket(app.engine, created.ticket)["messages"][-1]["kind"] == "bounce"


def test_missing_phone_puts_the_ticket_in_feedback_and_asks(app: Any) -> None:
    raw = make_mail(body="Не печатает принтер в кабинете 12.\n")
    result = ingest_bytes(app, raw)
    ticket = show_ticket(app.engine, result.ticket)
    assert ticket["status"] == "feedback"
    asked = [m for m in _to(deliver(app), REQUESTER) if "Обратная связь" in m.get_body(("plain",)).get_content()
             or "телефон" in m.get_body(("plain",)).get_content().lower()]
    assert asked, "the requester is told what to add"


def test_an_executable_is_refused_but_the_text_is_kept(app: Any) -> None:
    pe = b"MZ" + b"\x90" * 58 + b"\x80\x00\x00\x00" + b"\x00" * 64 + b"PE\x00\x00" + b"\x00" * 200
    raw = make_mail(attachments=[("photo.jpg", "image/jpeg", pe)])
    result = ingest_bytes(app, raw)
    assert result.outcome is Outcome.CREATED
    ticket = show_ticket(app.engine, result.ticket)
    [att] = ticket["attachments"]
    assert att["state"] == "refused" and "executable" in att["reason"]
    [entry] = list_quarantine(app.engine)
    assert entry["ticket"] == result.ticket
    notices = [m for m in _to(deliver(app), REQUESTER) if "photo.jpg" in m.get_body(("plain",)).get_content()]
    assert notices, "the requester learns which file was refused"


def test_requester_reply_in_feedback_moves_the_ticket_on(app: Any) -> None:
    created = ingest_bytes(app, make_mail(body="Не печатает принтер."))
    assert show_ticket(app.engine, created.ticket)["status"] == "feedback"
    ingest_bytes(app, make_mail(subject=f"Re: [СТП #{created.ticket}] Не печатает", body="Телефон: 55-12-34"))
    assert show_ticket(app.engine, created.ticket)["status"] == "in_progress"


def test_release_from_quarantine_creates_the_ticket_once(app: Any) -> None:
    from maildesk.service.release import release

    raw = make_mail(sender="doctor@gmail.com", subject="Не работает ЭЦП", body="Телефон: 55-11-22")
    quarantined = ingest_bytes(app, raw)
    result = release(app.deps, quarantined.quarantine)
    assert result.outcome is Outcome.CREATED
    assert list_quarantine(app.engine) == []
    assert ingest_bytes(app, raw).outcome is Outcome.DUPLICATE
    assert len(list_tickets(app.engine, TicketFilter())) == 1


def test_oversized_header_is_quarantined_quickly(app: Any) -> None:
    raw = b"X-Junk: " + b"a" * 400_000 + b"\r\n" + make_mail()
    result = ingest_bytes(app, raw)
    assert result.outcome is Outcome.QUARANTINED
    [entry] = list_quarantine(app.engine)
    assert entry["reason"].startswith("limits.")
    assert app.archive.get(entry["raw_sha256"]) == raw


def test_notifications_parse_as_mail_clients_see_them(app: Any) -> None:
    ingest_bytes(app, eml("new_request.eml"))
    for msg in deliver(app):
        reparsed = message_from_bytes(msg.as_bytes(), policy=email.policy.default)
        assert reparsed.get_body(("plain",)) is not None
        assert reparsed.get_body(("html",)) is not None
        assert reparsed["Message-ID"].endswith("@desk.test>")


def test_two_messages_with_one_message_id_are_both_kept_and_flagged(app: Any) -> None:
    first = ingest_bytes(app, make_mail(message_id="same@gb1.sev.gov.ru", subject="Принтер", body="Текст. Тел. 55-11-22"))
    second = ingest_bytes(app, make_mail(message_id="same@gb1.sev.gov.ru", subject="Сканер", body="Другой. Тел. 55-11-23"))
    assert {first.outcome, second.outcome} == {Outcome.CREATED}
    assert first.ticket != second.ticket
    decision = show_ticket(app.engine, second.ticket)["messages"][0]["decision"]
    assert decision["message_id_reused"] is True
    assert show_ticket(app.engine, first.ticket)["messages"][0]["decision"]["message_id_reused"] is False


def test_one_mail_to_two_help_addresses_is_one_ticket(make_app: Any) -> None:
    app = make_app(desks=[{"address": DESK, "name": "СТП"}, {"address": "it@miac.sev.gov.ru", "name": "ИТ"}])
    raw = make_mail(to=(DESK, "it@miac.sev.gov.ru"))
    assert ingest_bytes(app, raw, "imap:help").outcome is Outcome.CREATED
    assert ingest_bytes(app, b"Delivered-To: it@miac.sev.gov.ru\r\n" + raw, "imap:it").outcome is Outcome.DUPLICATE
    assert len(list_tickets(app.engine, TicketFilter())) == 1


# --- audit findings: organisation, automatic mail, hostile files, idempotency -------------------


GB1 = "ГБУЗС «Городская больница № 1»"


def _reply(number: int, sender: str, body: str = "Закройте заявку, всё работает.", **kw: Any) -> bytes:
    return make_mail(sender=sender, sender_name="Чужой", subject=f"Re: [СТП #{number}] Не открывается карта",
                     body=body, **kw)


def test_an_organisation_typed_in_the_form_gives_no_right_to_write(app: Any) -> None:
    created = ingest_bytes(app, eml("new_request.eml"))
    assert show_ticket(app.engine, created.ticket)["organisation"] == GB1
    own = ingest_bytes(app, make_mail(sender="evil@gb7.sev.gov.ru", sender_name="Чужой", subject="Принтер",
                                      body=f"Не печатает принтер.\nМО: {GB1}\nТелефон: +7 978 000 00 00"))
    assert show_ticket(app.engine, own.ticket)["organisation"] == GB1, "the form's МО stays display data"
    attack = ingest_bytes(app, _reply(created.ticket, "evil@gb7.sev.gov.ru"))
    assert attack.outcome is Outcome.CREATED and attack.rule == "thread.not_permitted"
    assert show_ticket(app.engine, attack.ticket)["linked_ticket"] == created.ticket
    assert len(show_ticket(app.engine, created.ticket)["messages"]) == 1


def test_a_colleague_at_the_same_mail_domain_may_write(app: Any) -> None:
    created = ingest_bytes(app, eml("new_request.eml"))
    result = ingest_bytes(app, _reply(created.ticket, "petrova@gb1.sev.gov.ru", "Дополняю: код ошибки 403."))
    assert (result.outcome, result.ticket) == (Outcome.APPENDED, created.ticket)


def test_same_domain_writes_only_when_configured(make_app: Any) -> None:
    app = make_app(senders={"same_organisation_may_write": False})
    created = ingest_bytes(app, eml("new_request.eml"))
    result = ingest_bytes(app, _reply(created.ticket, "petrova@gb1.sev.gov.ru", "Дополняю: код ошибки 403."))
    assert result.outcome is Outcome.CREATED and result.ticket != created.ticket


def test_the_shared_umbrella_domain_makes_no_colleagues(app: Any) -> None:
    created = ingest_bytes(app, make_mail(sender="ivanova@sev.gov.ru"))
    result = ingest_bytes(app, _reply(created.ticket, "petrov@sev.gov.ru"))
    assert result.outcome is Outcome.CREATED and result.ticket != created.ticket


def test_an_auto_reply_from_a_refused_domain_is_not_recorded_on_the_ticket(app: Any) -> None:
    created = ingest_bytes(app, eml("new_request.eml"))
    ooo = make_mail(sender="attacker@evil.example", sender_name="Evil", subject=f"Автоответ: [СТП #{created.ticket}] x",
                    body="Перейдите по ссылке http://evil.example/login", headers=[("Auto-Submitted", "auto-replied")])
    result = ingest_bytes(app, ooo)
    assert (result.outcome, result.ticket, result.rule) == (Outcome.IGNORED, None, "automatic.auto_reply")
    assert "automatic.not_recorded" in [r.code for r in result.reasons]
    assert len(show_ticket(app.engine, created.ticket)["messages"]) == 1
    assert list_quarantine(app.engine) == []


def test_an_auto_reply_from_an_outsider_with_a_tag_is_not_recorded(app: Any) -> None:
    created = ingest_bytes(app, eml("new_request.eml"))
    ooo = _reply(created.ticket, "evil@gb7.sev.gov.ru", "Я в отпуске.", headers=[("Auto-Submitted", "auto-replied")])
    assert ingest_bytes(app, ooo).ticket is None
    assert len(show_ticket(app.engine, created.ticket)["messages"]) == 1


def test_an_auto_reply_to_our_minted_message_id_is_recorded(app: Any) -> None:
    created = ingest_bytes(app, eml("new_request.eml"))
    notice = _to(deliver(app), REQUESTER)[0]
    ooo = make_mail(sender="deputy@gb7.sev.gov.ru", subject="Автоответ: " + notice["Subject"], body="В отпуске.",
                    in_reply_to=notice["Message-ID"].strip("<>"), headers=[("Auto-Submitted", "auto-replied")])
    result = ingest_bytes(app, ooo)
    assert (result.outcome, result.ticket) == (Outcome.IGNORED, created.ticket)
    assert show_ticket(app.engine, created.ticket)["messages"][-1]["kind"] == "auto_reply"


def test_a_bounce_quoting_a_requesters_message_id_is_not_recorded(app: Any) -> None:
    created = ingest_bytes(app, eml("new_request.eml"))
    bounce = make_mail(sender="MAILER-DAEMON@mx.evil.example", sender_name="Mail Delivery System",
                       subject="Undelivered Mail", body="Message-ID: <0f3c2a1b9e8d4c7b@gb1.sev.gov.ru>\nuser unknown")
    result = ingest_bytes(app, bounce, mail_from="")
    assert (result.outcome, result.ticket) == (Outcome.IGNORED, None)
    assert len(show_ticket(app.engine, created.ticket)["messages"]) == 1


def test_same_message_id_and_body_from_another_sender_is_another_message(app: Any) -> None:
    body = "Не печатает принтер.\nТелефон: +7 978 111 22 33\n"
    first = ingest_bytes(app, make_mail(message_id="same@gb1.sev.gov.ru", subject="Принтер", body=body))
    second = ingest_bytes(app, make_mail(message_id="same@gb1.sev.gov.ru", subject="Сканер", body=body,
                                         sender="petrova@gb2.sev.gov.ru", sender_name="Петрова"))
    assert (first.outcome, second.outcome) == (Outcome.CREATED, Outcome.CREATED)
    assert show_ticket(app.engine, second.ticket)["messages"][0]["decision"]["message_id_reused"] is True


def test_trace_headers_do_not_change_the_key(app: Any) -> None:
    raw = eml("new_request.eml")
    relayed = (b"Received: from mx2 by imap.sev.gov.ru; Mon, 23 Nov 2026 10:00:00 +0300\r\n"
               b"X-Original-To: help@miac.sev.gov.ru\r\nAuthentication-Results: mx; dmarc=pass\r\n"
               + raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    assert ingest_bytes(app, raw, "smtp").outcome is Outcome.CREATED
    assert ingest_bytes(app, relayed, "imap:main").outcome is Outcome.DUPLICATE


PE = b"MZ" + b"\x90" * 58 + b"\x80\x00\x00\x00" + b"\x00" * 64 + b"PE\x00\x00" + b"\x00" * 200


def test_a_refused_executable_is_listed_but_its_bytes_are_not_archived(app: Any) -> None:
    import hashlib

    result = ingest_bytes(app, make_mail(attachments=[("photo.jpg", "image/jpeg", PE)]))
    [att] = show_ticket(app.engine, result.ticket)["attachments"]
    assert (att["filename"], att["size"], att["state"], att["sha256"]) == ("photo.jpg", len(PE), "refused", "")
    assert "executable" in att["reason"]
    assert not app.archive.has(hashlib.sha256(PE).hexdigest())
    [entry] = list_quarantine(app.engine)
    shown = app.store.quarantine_entry(entry["id"])
    assert [(f["filename"], f["size"]) for f in shown["files"]] == [("photo.jpg", len(PE))]
    assert app.archive.get(entry["raw_sha256"]).count(b"photo.jpg") >= 1, "the raw message keeps it"


def test_a_forwarded_message_holding_an_executable_is_refused_whole(app: Any) -> None:
    inner = make_mail(sender="x@gb2.sev.gov.ru", subject="Программа", body="вот",
                      attachments=[("setup.exe", "application/x-msdownload", PE)])
    raw = make_mail(body="Пересылаю письмо коллеги.\nТелефон: +7 978 111 22 33",
                    attachments=[("fwd.eml", "message/rfc822", inner)])
    result = ingest_bytes(app, raw)
    atts = show_ticket(app.engine, result.ticket)["attachments"]
    assert [(a["state"], a["sha256"]) for a in atts] == [("refused", ""), ("refused", "")]


def test_a_forwarded_multipart_bomb_is_refused_not_a_crash(app: Any) -> None:
    bomb = b"From: a@b.c\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
    for i in range(3000):
        bomb += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    bomb += b"Content-Type: text/plain\r\n\r\nhi\r\n" + b"".join(b"--b%d--\r\n" % i for i in reversed(range(3000)))
    raw = make_mail(body="Пересылаю письмо.\nТелефон: +7 978 111 22 33",
                    attachments=[("fwd.eml", "application/octet-stream", bomb)])
    result = ingest_bytes(app, raw)
    assert result.outcome is Outcome.CREATED
    [att] = show_ticket(app.engine, result.ticket)["attachments"]
    assert att["state"] == "refused" and "not opened" in att["reason"]


def test_a_failure_in_the_pure_steps_quarantines_the_message(app: Any, monkeypatch: Any) -> None:
    import maildesk.service.ingest as ingest_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(ingest_module, "triage", broken)  # a bug a hostile message might find
    raw = make_mail()
    result = ingest_bytes(app, raw)
    assert result.outcome is Outcome.QUARANTINED
    [entry] = list_quarantine(app.engine)
    assert entry["reason"] == "ingest.failed" and "triage: RecursionError" in entry["detail"]
    assert app.archive.get(entry["raw_sha256"]) == raw


def test_a_failure_while_applying_quarantines_the_message(app: Any, monkeypatch: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("unreadable")

    monkeypatch.setattr(app.deps.composer, "compose", broken)
    result = ingest_bytes(app, make_mail())
    assert result.outcome is Outcome.QUARANTINED and result.ticket is None
    [entry] = list_quarantine(app.engine)
    assert entry["reason"] == "ingest.failed" and "apply: KeyError" in entry["detail"]
    assert list_tickets(app.engine, TicketFilter()) == []
