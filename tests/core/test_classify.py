from __future__ import annotations

from typing import Any

import pytest

from maildesk.core import msgid
from maildesk.core.classify import ClassifyPolicy, bounced_message_ids, classify
from maildesk.core.model import MailKind
from maildesk.core.parse import parse
from tests.core.mailfactory import envelope, file, mail

POLICY = ClassifyPolicy(message_id_domain="desk.test", desk_addresses=("help@miac.sev.gov.ru",))
MINTED = msgid.mint(12, "0123456789abcdef", b"secret", "desk.test")
NORMAL, OWN, BOUNCE, AUTO = MailKind.NORMAL, MailKind.OWN_MAIL, MailKind.BOUNCE, MailKind.AUTO_REPLY
DSN = 'multipart/report; report-type=delivery-status; boundary="b1"'


def h(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"headers": pairs}


CASES = [
    # (id, mail kwargs, envelope sender, kind, reason code)
    ("plain request", {}, "ivanova@sev.gov.ru", NORMAL, None),
    ("request via imap", {}, None, NORMAL, None),
    ("auto-submitted no", h(("Auto-Submitted", "no")), "ivanova@sev.gov.ru", NORMAL, None),
    ("auto-submitted No, upper", h(("Auto-Submitted", " No ")), "ivanova@sev.gov.ru", NORMAL, None),
    ("precedence first-class", h(("Precedence", "first-class")), "ivanova@sev.gov.ru", NORMAL, None),
    ("suppress without oof", h(("X-Auto-Response-Suppress", "DR, RN, NRN")), "a@sev.gov.ru", NORMAL, None),
    ("forged Return-Path over smtp", h(("Return-Path", "<>")), "ivanova@sev.gov.ru", NORMAL, None),
    # own mail
    ("minted Message-ID", {"message_id": f"<{MINTED}>"}, "", OWN, "own.message_id"),
    ("minted-looking id, other domain", {"message_id": "<md.1.0123456789abcdef.0123456789abcdef0123@x.ru>"},
     "a@sev.gov.ru", NORMAL, None),
    ("X-Maildesk-Ticket", h(("X-Maildesk-Ticket", "12")), "a@sev.gov.ru", OWN, "own.header"),
    ("x-maildesk lower", h(("x-maildesk", "1")), "a@sev.gov.ru", OWN, "own.header"),
    ("from our desk", {"from_header": "СТП <help@miac.sev.gov.ru>"}, "help@miac.sev.gov.ru", OWN, "own.desk_address"),
    ("from our desk, upper", {"from_header": "HELP@MIAC.SEV.GOV.RU"}, "x@y", OWN, "own.desk_address"),
    ("own beats bounce", {"from_header": "help@miac.sev.gov.ru"}, "", OWN, "own.desk_address"),
    # bounces
    ("null sender", {}, "", BOUNCE, "bounce.null_sender"),
    ("imap Return-Path <>", h(("Return-Path", "<>")), None, BOUNCE, "bounce.null_sender"),
    ("dsn", h(("Content-Type", DSN)), "x@mx.sev.gov.ru", BOUNCE, "bounce.dsn"),
    ("dsn quoted, mixed case", h(("Content-Type", 'Multipart/Report; boundary="x";\r\n Report-Type="Delivery-Status"')),
     "x@mx.sev.gov.ru", BOUNCE, "bounce.dsn"),
    ("mailer-daemon", {"from_header": "Mail Delivery System <MAILER-DAEMON@mx.sev.gov.ru>"}, None, BOUNCE,
     "bounce.mailer_daemon"),
    ("postmaster", {"from_header": "postmaster@sev.gov.ru"}, "postmaster@sev.gov.ru", BOUNCE, "bounce.mailer_daemon"),
    ("exim failed recipients", h(("X-Failed-Recipients", "a@sev.gov.ru")), "x@mx.ru", BOUNCE,
     "bounce.failed_recipients"),
    ("bounce beats auto-reply", h(("Auto-Submitted", "auto-replied")), "", BOUNCE, "bounce.null_sender"),
    ("postmaster-ish localpart is a person", {"from_header": "postmaster.ivanov@sev.gov.ru"}, "x@sev.gov.ru",
     NORMAL, None),
    # auto-replies
    ("auto-submitted auto-replied", h(("Auto-Submitted", "auto-replied")), "a@sev.gov.ru", AUTO,
     "auto.auto_submitted"),
    ("auto-submitted with params", h(("Auto-Submitted", "auto-generated; owner-email=x@y")), "a@sev.gov.ru", AUTO,
     "auto.auto_submitted"),
    ("auto-submitted second field", h(("Auto-Submitted", "no"), ("Auto-Submitted", "auto-notified")), "a@b.ru", AUTO,
     "auto.auto_submitted"),
    ("X-Autoreply", h(("X-Autoreply", "yes")), "a@sev.gov.ru", AUTO, "auto.x_autoreply"),
    ("X-Autorespond", h(("X-Autorespond", "Out of office")), "a@sev.gov.ru", AUTO, "auto.x_autoreply"),
    ("suppress OOF", h(("X-Auto-Response-Suppress", "OOF")), "a@sev.gov.ru", AUTO, "auto.suppress"),
    ("suppress All", h(("X-Auto-Response-Suppress", "All")), "a@sev.gov.ru", AUTO, "auto.suppress"),
    ("suppress list", h(("X-Auto-Response-Suppress", "DR, RN, NRN, OOF, AutoReply")), "a@sev.gov.ru", AUTO,
     "auto.suppress"),
    ("precedence bulk", h(("Precedence", "bulk")), "a@sev.gov.ru", AUTO, "auto.precedence"),
    ("precedence junk", h(("Precedence", "Junk")), "a@sev.gov.ru", AUTO, "auto.precedence"),
    ("precedence list", h(("Precedence", "list")), "a@sev.gov.ru", AUTO, "auto.precedence"),
    ("precedence auto_reply", h(("Precedence", "auto_reply")), "a@sev.gov.ru", AUTO, "auto.precedence"),
    ("List-Id", h(("List-Id", "<news.sev.gov.ru>")), "a@sev.gov.ru", AUTO, "auto.list"),
    ("List-Unsubscribe", h(("List-Unsubscribe", "<mailto:u@x>")), "a@sev.gov.ru", AUTO, "auto.list"),
    ("List-Post", h(("List-Post", "<mailto:l@x>")), "a@sev.gov.ru", AUTO, "auto.list"),
    ("read receipt", h(("Content-Type", "multipart/report; report-type=disposition-notification; boundary=x")),
     "a@sev.gov.ru", AUTO, "auto.read_receipt"),
]

OOF_SUBJECTS = [
    "Автоответ: Re: [СТП #12] Не открывается карта",
    "автоответ",
    "Автоматический ответ: [СТП #12] Не открывается карта",
    "Automatic reply: [СТП #12] Не открывается карта",
    "Auto-reply: your message",
    "Auto reply: your message",
    "Autoreply: your message",
    "Auto-Response",
    "Out of Office: [СТП #12]",
    "Out of the office",
    "Нет на месте",
    "Нет на месте: Re: заявка",
    "Вне офиса: до 20.07",
    "В отпуске до 15.07",
    "В отпуске!",
    "На больничном",
    "Отсутствую на рабочем месте",
    "Отсутствую на рабочем месте: Re: [СТП #12] Не открывается карта",
    "Отсутствую в офисе до 20.07",
    "Отсутствую",
    "Нет на рабочем месте до 20.07",
    "В командировке до 20.07",
    "I am out of the office",
    "I'm out of office until 20 July",
    "I am on vacation",
    "Away from the office: Re: [СТП #12]",
    "Away: Re: [СТП #12]",
    "On vacation until 20.07",
    "On leave",
    "Absent: Re: [СТП #12]",
    "Прочитано: [СТП #12] Не открывается карта",
    "Не прочитано: [СТП #12]",
    "Read: [СТП #12]",
]

REAL_SUBJECTS = [
    "В отпуске не отображается врач в расписании",
    "Нет на месте врача в расписании",
    "Автоответчик регистратуры не работает",
    "Вне офисного времени не работает МИС",
    "Re: [СТП #12] Прочитайте, пожалуйста",
    "Readmission report",
    "Не работает автоответ в почте",
    "Отсутствует связь с сервером МИС",
    "Отсутствуют записи в расписании",
    "В командировочном удостоверении ошибка",
    "Away mode of the kiosk is stuck",
    "Absent patients report is empty",
    "On leave requests are not saved",
]


@pytest.mark.parametrize("name, kwargs, sender, kind, code", CASES, ids=[c[0] for c in CASES])
def test_classify(name: str, kwargs: dict[str, Any], sender: str | None, kind: MailKind, code: str | None) -> None:
    got_kind, reason = classify(mail(**kwargs), envelope(sender), POLICY)
    assert got_kind is kind
    assert (reason.code if reason else None) == code
    if reason:
        assert reason.detail and reason.detail.isascii()


@pytest.mark.parametrize("subject", OOF_SUBJECTS)
def test_out_of_office_subjects(subject: str) -> None:
    kind, reason = classify(mail(subject=subject), envelope(), POLICY)
    assert kind is AUTO and reason is not None and reason.code == "auto.subject"


@pytest.mark.parametrize("subject", REAL_SUBJECTS)
def test_real_subjects_are_not_auto_replies(subject: str) -> None:
    assert classify(mail(subject=subject), envelope(), POLICY) == (NORMAL, None)


REPLY = {"subject": "Re: [СТП #12] Не открывается карта", "in_reply_to": ("<md.12.x@desk.test>",)}
# out-of-office answers without any auto header: a short text opening with the phrase
OOF_BODIES = [
    "Меня нет на месте до 20.07.",
    "Меня не будет на рабочем месте с 10.07 по 20.07. По срочным вопросам: Петров, 55-12-34.",
    "Добрый день!\n\nЯ нахожусь в отпуске до 20.07.2026. По срочным вопросам обращайтесь к Петрову.",
    "Здравствуйте. Нахожусь в отпуске, отвечу после 20 июля.",
    "Спасибо за письмо. В настоящее время я нахожусь в командировке.",
    "Я в командировке до 20.07",
    "Я в отпуске\nОтвечу после возвращения.",
    "В отпуске до 20.07.",
    "Отсутствую на рабочем месте до 20.07.",
    "Уважаемые коллеги! Отсутствую до понедельника.",
    "На больничном до 15.07.",
    "I am out of the office until July 20 with limited access to e-mail.",
    "Hello,\n\nI'm on vacation until 20.07. For urgent matters contact petrov@miac.sev.gov.ru.",
    "Thank you for your message. I am currently out of the office.",
    "I will be out of the office from 10 to 20 July.",
    "Я в отпуске до 20.07.\n\n-----Original Message-----\nFrom: help@miac.sev.gov.ru\n" + "Текст заявки. " * 100,
]
# a person's replies: the phrase later on, a phrase that only starts a sentence, or a long text
REAL_BODIES = [
    "Спасибо, проверю. Меня нет на месте до 20.07, потом отпишусь.",
    "В отпуске не отображается врач в расписании, посмотрите, пожалуйста.",
    "Я в отпуске был, поэтому не ответил. Проблема осталась: карта не открывается.",
    "Нет, на месте всё по-прежнему: принтер не печатает.",
    "Добрый день! Отсутствует связь с сервером, ошибка та же.",
    "Проблема решена, спасибо. Я в командировке до пятницы, коллеги подтвердили.",
    "В командировке до 20.07, но коллеги пишут: " + "карта пациента не открывается, ошибка 500. " * 20,
    "I am fine with the fix, thank you. I'm on vacation next week.",
    "Телефон: 55-12-34",
]


@pytest.mark.parametrize("text", OOF_BODIES)
def test_out_of_office_bodies_of_short_replies(text: str) -> None:
    kind, reason = classify(mail(text=text, **REPLY), envelope(), POLICY)
    assert kind is AUTO and reason is not None and reason.code == "auto.oof_body"


@pytest.mark.parametrize("text", REAL_BODIES)
def test_real_replies_are_not_out_of_office(text: str) -> None:
    assert classify(mail(text=text, **REPLY), envelope(), POLICY) == (NORMAL, None)


@pytest.mark.parametrize(
    ("subject", "in_reply_to", "kind"),
    [
        ("Не печатает принтер", (), NORMAL),  # a new request may open "В командировке до …"
        ("Не печатает принтер", ("<md.12.x@desk.test>",), AUTO),
        ("Ответ: Не печатает принтер", (), AUTO),
        ("[СТП #12] Не печатает принтер", (), AUTO),
    ],
)
def test_out_of_office_body_only_in_answers(subject: str, in_reply_to: tuple[str, ...], kind: MailKind) -> None:
    text = "В командировке до 20.07, не работает принтер в кабинете 12."
    assert classify(mail(subject=subject, text=text, in_reply_to=in_reply_to), envelope(), POLICY)[0] is kind


def test_default_policy_still_sees_our_header() -> None:
    assert classify(mail(headers=(("X-Maildesk-Ticket", "5"),)), envelope(), ClassifyPolicy())[0] is OWN


HEADER_CASES = [
    # (id, header fields as written, envelope sender, kind, reason code), read through parse()
    ("pipe(8) default null sender", b"", "MAILER-DAEMON", BOUNCE, "bounce.null_sender"),
    ("pipe(8) null sender, lower case", b"", "mailer-daemon", BOUNCE, "bounce.null_sender"),
    ("bracketed null envelope", b"", "<>", BOUNCE, "bounce.null_sender"),
    ("Return-Path < >", b"Return-Path: < >\n", None, BOUNCE, "bounce.null_sender"),
    ("Return-Path <> folded", b"Return-Path:\n <>\n", None, BOUNCE, "bounce.null_sender"),
    ("mailer-daemon as a person's local part prefix", b"", "mailer-daemon.ivanov@sev.gov.ru", NORMAL, None),
    ("List-Help", b"List-Help: <mailto:help@lists.example>\n", "a@sev.gov.ru", AUTO, "auto.list"),
    ("List-Subscribe", b"List-Subscribe: <mailto:sub@lists.example>\n", "a@sev.gov.ru", AUTO, "auto.list"),
    ("List-Archive", b"List-Archive: <https://lists.example/arch>\n", "a@sev.gov.ru", AUTO, "auto.list"),
    ("List-Owner", b"List-Owner: <mailto:owner@lists.example>\n", "a@sev.gov.ru", AUTO, "auto.list"),
    ("List-Unsubscribe-Post", b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\n", "a@sev.gov.ru", AUTO,
     "auto.list"),
    ("list-id lower case", b"list-id: <news.example>\n", "a@sev.gov.ru", AUTO, "auto.list"),
    ("precedence with a comment", b"Precedence: bulk (newsletter)\n", "a@sev.gov.ru", AUTO, "auto.precedence"),
    ("second Precedence field", b"Precedence: first-class\nPrecedence: bulk\n", "a@sev.gov.ru", AUTO,
     "auto.precedence"),
    ("precedence comment first", b"Precedence: (x) junk\n", "a@sev.gov.ru", AUTO, "auto.precedence"),
    ("precedence first-class with comment", b"Precedence: first-class (bulk)\n", "a@sev.gov.ru", NORMAL, None),
    ("auto-submitted no with a comment", b"Auto-Submitted: no (sent by a person)\n", "a@sev.gov.ru", NORMAL, None),
    ("auto-submitted no, params", b"Auto-Submitted: No ; x=y\n", "a@sev.gov.ru", NORMAL, None),
    ("auto-submitted only a comment", b"Auto-Submitted: (no)\n", "a@sev.gov.ru", AUTO, "auto.auto_submitted"),
    ("auto-submitted folded", b"Auto-Submitted:\n auto-replied\n", "a@sev.gov.ru", AUTO, "auto.auto_submitted"),
    ("suppress receipts only", b"X-Auto-Response-Suppress: DR, RN, NRN\n", "a@sev.gov.ru", NORMAL, None),
    ("suppress None", b"X-Auto-Response-Suppress: None\n", "a@sev.gov.ru", NORMAL, None),
    ("suppress with semicolons", b"X-Auto-Response-Suppress: DR; OOF\n", "a@sev.gov.ru", AUTO, "auto.suppress"),
    ("suppress AutoReply", b"X-Auto-Response-Suppress: AutoReply\n", "a@sev.gov.ru", AUTO, "auto.suppress"),
]


@pytest.mark.parametrize("name, fields, sender, kind, code", HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_header_rules_through_parse(name: str, fields: bytes, sender: str | None, kind: MailKind,
                                    code: str | None) -> None:
    raw = b"From: Ivanova <ivanova@sev.gov.ru>\nSubject: test\n" + fields + b"\nbody\n"
    got_kind, reason = classify(parse(raw), envelope(sender), POLICY)
    assert (got_kind, reason.code if reason else None) == (kind, code)
    if reason:
        assert reason.detail.isascii()


@pytest.mark.parametrize("from_value", [
    b"MAILER-DAEMON (Mail Delivery System)",
    b"Mail Delivery Subsystem <MAILER-DAEMON>",
    b"<mailer-daemon>",
    b"\"Mail Delivery System\" <MAILER-DAEMON@mx.sev.gov.ru>",
    b"postmaster",
    b"=?utf-8?b?0KHQuNGB0YLQtdC80LA=?= <Postmaster>",
])
def test_a_mailer_daemon_without_a_domain_is_a_bounce(from_value: bytes) -> None:
    mail_ = parse(b"From: " + from_value + b"\nSubject: Undelivered Mail Returned to Sender\n\nx\n")
    kind, reason = classify(mail_, envelope("x@mx.sev.gov.ru"), POLICY)
    assert (kind, reason.code if reason else None) == (BOUNCE, "bounce.mailer_daemon")


@pytest.mark.parametrize("from_value", [
    b"Postmaster Ivanov <ivanov@sev.gov.ru>",
    b"\"MAILER-DAEMON\" <ivanov@sev.gov.ru>",
    b"ivanov@sev.gov.ru (postmaster)",
])
def test_a_daemon_name_outside_the_address_is_a_person(from_value: bytes) -> None:
    mail_ = parse(b"From: " + from_value + b"\nSubject: test\n\nx\n")
    assert classify(mail_, envelope("ivanov@sev.gov.ru"), POLICY) == (NORMAL, None)


ORIGINAL = (
    f"Return-Path: <help@miac.sev.gov.ru>\r\nFrom: help@miac.sev.gov.ru\r\nMessage-ID: <{MINTED}>\r\n"
    "Subject: [СТП #12] Заявка зарегистрирована\r\n\r\n"
    "Message-ID: <not-this-one@body>\r\n"
).encode()
FOLDED = b"From: help@miac.sev.gov.ru\r\nMESSAGE-ID:\r\n <folded-1@desk.test>\r\nSubject: x\r\n"

BOUNCED = [
    ("rfc822 part", {"attachments": (file("", ORIGINAL, "message/rfc822"),)}, (MINTED,)),
    ("headers part, folded", {"attachments": (file("", FOLDED, "text/rfc822-headers"),)}, ("folded-1@desk.test",)),
    ("message/global", {"attachments": (file("", ORIGINAL, "message/global"),)}, (MINTED,)),
    ("quoted in bounce text", {"text": "Delivery failed.\n\nMessage-ID: <orig-7@desk.test>\nTo: a@b\n"},
     ("orig-7@desk.test",)),
    ("both, deduplicated", {"text": f"Message-ID: <{MINTED}>", "attachments": (file("", ORIGINAL, "message/rfc822"),)},
     (MINTED,)),
    ("other parts ignored", {"attachments": (file("report.txt", ORIGINAL, "text/plain"),)}, ()),
    ("bounce's own id excluded", {"message_id": "<own@mx>", "text": "Message-ID: <own@mx>"}, ()),
    ("nothing", {"text": "Undelivered mail"}, ()),
]


@pytest.mark.parametrize("name, kwargs, expected", BOUNCED, ids=[b[0] for b in BOUNCED])
def test_bounced_message_ids(name: str, kwargs: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert bounced_message_ids(mail(from_header="MAILER-DAEMON@mx.sev.gov.ru", **kwargs)) == expected
