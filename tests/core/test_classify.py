from __future__ import annotations

from typing import Any

import pytest

from maildesk.core import msgid
from maildesk.core.classify import ClassifyPolicy, bounced_message_ids, classify
from maildesk.core.model import MailKind
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


def test_default_policy_still_sees_our_header() -> None:
    assert classify(mail(headers=(("X-Maildesk-Ticket", "5"),)), envelope(), ClassifyPolicy())[0] is OWN


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
