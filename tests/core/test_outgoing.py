"""Composing outgoing mail: round-trips, threading headers, and no way to inject a header."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from maildesk.core import msgid
from maildesk.core.outgoing import (
    MAX_REFERENCES,
    Rendered,
    clean_header_text,
    compose,
    reply_subject,
    trim_references,
)

MSK = timezone(timedelta(hours=3))
SUBJECT = "[СТП #12] Не работает МИС: «Ошибка 500» при записи к врачу-терапевту участковому"
RENDERED = Rendered(
    subject=SUBJECT,
    text="Здравствуйте!\nВаша заявка № 12 зарегистрирована.\n",
    html="<p>Здравствуйте!</p>\n<p>Ваша заявка № 12 зарегистрирована.</p>\n",
)
OUR_ID = msgid.mint(12, "0123456789abcdef", b"secret", "maildesk.sevmiac.ru")
EXPECTED_HEADERS = [
    "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
    "Auto-Submitted", "X-Auto-Response-Suppress", "X-Maildesk-Ticket", "MIME-Version", "Content-Type",
]


def _compose(rendered: Rendered = RENDERED, **overrides: Any) -> bytes:
    kwargs: dict[str, Any] = dict(
        from_name="СТП ГБУЗС «МИАЦ»",
        from_address="help@sevmiac.ru",
        to=["m.ivanova@sev.gov.ru"],
        cc=["it@gb1.sev.gov.ru"],
        reply_to="help@sevmiac.ru",
        message_id=OUR_ID,
        in_reply_to="<CAF=abc+123@mail.sev.gov.ru>",
        references=["<root.1@mail.sev.gov.ru>"],
        auto_submitted="auto-replied",
        date=datetime(2025, 3, 12, 9, 41, tzinfo=MSK),
        ticket_number=12,
    )
    kwargs.update(overrides)
    return compose(rendered, **kwargs)


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def _assert_well_formed(raw: bytes) -> None:
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    head = raw.split(b"\r\n\r\n", 1)[0]
    # 78 is a SHOULD: a msg-id is never split, and an extra header's long name may push its
    # first encoded-word past it.
    long_ok = (b"<", b"X-Maildesk-Event:")
    assert all(len(line) <= 78 or any(m in line for m in long_ok) for line in head.split(b"\r\n"))


def test_round_trip_keeps_both_parts_and_every_header() -> None:
    raw = _compose()
    _assert_well_formed(raw)
    msg = _parse(raw)
    assert list(msg.keys()) == EXPECTED_HEADERS
    assert msg.get_content_type() == "multipart/alternative"
    # Text travels in canonical form, CRLF line ends (RFC 2046 §4.1.1).
    assert msg.get_body(("plain",)).get_content() == RENDERED.text.replace("\n", "\r\n")  # type: ignore[union-attr]
    assert msg.get_body(("html",)).get_content() == RENDERED.html.replace("\n", "\r\n")  # type: ignore[union-attr]
    assert [p.get_content_charset() for p in msg.iter_parts()] == ["utf-8", "utf-8"]
    assert msg["Subject"] == SUBJECT
    assert msg["From"].addresses[0].display_name == "СТП ГБУЗС «МИАЦ»"
    assert msg["From"].addresses[0].addr_spec == "help@sevmiac.ru"
    assert [a.addr_spec for a in msg["To"].addresses] == ["m.ivanova@sev.gov.ru"]
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["it@gb1.sev.gov.ru"]
    assert msg["Reply-To"].addresses[0].addr_spec == "help@sevmiac.ru"
    assert msg["Message-ID"] == f"<{OUR_ID}>"
    assert msgid.verify(msg["Message-ID"], b"secret", "maildesk.sevmiac.ru") == 12
    assert msg["In-Reply-To"] == "<CAF=abc+123@mail.sev.gov.ru>"
    assert msg["References"] == "<root.1@mail.sev.gov.ru> <CAF=abc+123@mail.sev.gov.ru>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Maildesk-Ticket"] == "12"
    assert msg["Date"].datetime == datetime(2025, 3, 12, 9, 41, tzinfo=MSK)


def test_cyrillic_subject_is_rfc2047_encoded_and_decodes_exactly() -> None:
    raw = _compose()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    subject_lines = re.search(r"^Subject:.*?(?=\r\n\S)", head, re.M | re.S).group(0)  # type: ignore[union-attr]
    assert "=?utf-8?" in subject_lines
    assert _parse(raw)["Subject"] == SUBJECT


def test_optional_headers_are_left_out() -> None:
    msg = _parse(_compose(cc=(), in_reply_to=None, references=[], ticket_number=None, auto_submitted="no"))
    assert "Cc" not in msg and "In-Reply-To" not in msg and "References" not in msg
    assert "X-Maildesk-Ticket" not in msg
    assert msg["Auto-Submitted"] == "no"


INJECTIONS = [
    "Тема\r\nBcc: evil@x.com",
    "Тема\nBcc: evil@x.com",
    "Тема\rBcc: evil@x.com",
    "Тема\u2028Bcc: evil@x.com",
    "Тема\u2029Bcc: evil@x.com",
    "Тема\x85Bcc: evil@x.com",
    "Тема\x0bBcc: evil@x.com\x0cX-Evil: 1",
    "Тема\u202eлоп\u202c\u2066x\u2069\u200f",
    "=?utf-8?q?=D0=A2=0D=0ABcc:_evil@x.com?=",
    "Тема\x00\x1b[31m\x7f",
    "Т" * 5000,
    ("Очень длинная тема " * 300) + "\r\nBcc: evil@x.com",
]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_injection_in_subject_name_or_extra_header_adds_no_header(evil: str) -> None:
    raw = _compose(
        Rendered(subject=evil, text=evil, html=evil),
        from_name=evil,
        extra_headers={"X-Maildesk-Event": evil},
    )
    _assert_well_formed(raw)
    msg = _parse(raw)
    assert list(msg.keys()) == EXPECTED_HEADERS[:12] + ["X-Maildesk-Event"] + EXPECTED_HEADERS[12:]
    assert not msg.defects
    for name in ("Subject", "X-Maildesk-Event"):
        value = str(msg[name])
        assert value == clean_header_text(value, limit=10_000)  # nothing left to clean
    assert len(str(msg["Subject"])) <= 200
    assert len(msg["From"].addresses) == 1
    assert msg["From"].addresses[0].addr_spec == "help@sevmiac.ru"


@pytest.mark.parametrize(
    "name",
    ['Smith, "J." <x@evil.com>', "Back\\slash (comment)", "Иванова Мария Петровна", "ГБУЗС «МИАЦ»: СТП", ""],
)
def test_display_names_with_specials_stay_one_mailbox(name: str) -> None:
    msg = _parse(_compose(from_name=name))
    (mailbox,) = msg["From"].addresses
    assert mailbox.addr_spec == "help@sevmiac.ru"
    assert mailbox.display_name == name


@pytest.mark.parametrize(
    "address",
    [
        "evil@x.com\r\nBcc: other@x.com",
        "Имя <a@sev.gov.ru>",
        "a@sev.gov.ru, b@sev.gov.ru",
        "пользователь@sev.gov.ru",
        "a@домен.рф",
        "",
        "a@@sev.gov.ru",
        ".a@sev.gov.ru",
        "a..b@sev.gov.ru",
        "a@sev..gov.ru",
        "a@-sev.gov.ru",
        "a b@sev.gov.ru",
        "a@sev.gov.ru\u2028",
    ],
)
@pytest.mark.parametrize("field", ["from_address", "to", "cc", "reply_to"])
def test_addresses_must_be_plain_addr_specs(field: str, address: str) -> None:
    value: Any = [address] if field in ("to", "cc") else address
    with pytest.raises(ValueError):
        _compose(**{field: value})


@pytest.mark.parametrize(
    "overrides",
    [
        {"to": []},
        {"auto_submitted": "yes"},
        {"date": datetime(2025, 3, 12, 9, 41)},
        {"message_id": "no brackets or at sign"},
        {"message_id": "<a@b>\r\nBcc: x@y"},
        {"extra_headers": {"Subject": "другая тема"}},
        {"extra_headers": {"content-type": "text/plain"}},
        {"extra_headers": {"Bcc": "evil@x.com"}},
        {"extra_headers": {"X-Evil:\r\nBcc": "1"}},
        {"extra_headers": {"X Evil": "1"}},
        {"extra_headers": {"x-maildesk-ticket": "13"}},
    ],
)
def test_bad_arguments_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _compose(**overrides)


def test_ticket_header_may_come_as_an_extra_header() -> None:
    msg = _parse(_compose(ticket_number=None, extra_headers={"X-Maildesk-Ticket": "12"}))
    assert msg.get_all("X-Maildesk-Ticket") == ["12"]


def test_invalid_ids_from_mail_are_dropped_not_fatal() -> None:
    msg = _parse(_compose(in_reply_to="garbage with spaces", references=["<ok@x>", "bad\r\nid", "<a<b@x>"]))
    assert "In-Reply-To" not in msg
    assert msg["References"] == "<ok@x>"


def test_long_thread_keeps_the_root_and_the_last_ten() -> None:
    ids = [f"<m{i}@mail.sev.gov.ru>" for i in range(30)]
    msg = _parse(_compose(references=ids[:-1], in_reply_to=ids[-1]))
    kept = msg["References"].split()
    assert len(kept) == MAX_REFERENCES
    assert kept[0] == ids[0] and kept[1:] == ids[-10:]


def test_long_ids_are_folded_between_ids_never_encoded() -> None:
    ids = [f"<{'x' * 150}.{i}@mail.example.org>" for i in range(40)]
    raw = _compose(references=ids, in_reply_to=ids[-1])
    _assert_well_formed(raw)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?" not in head.split(b"\r\nReferences:", 1)[1].split(b"\r\nAuto-Submitted:")[0]
    msg = _parse(raw)
    assert msg["In-Reply-To"] == ids[-1]
    kept = msg["References"].split()
    assert kept[0] == ids[0] and kept[-1] == ids[-1]
    assert len(msg["References"]) <= 2100


def test_trim_references_dedupes_and_keeps_the_parent_last() -> None:
    assert trim_references(["<a@x>", "b@x", "<a@x>", "  <c@x> ", "<b@x>"]) == ["a@x", "c@x", "b@x"]
    assert trim_references([]) == []


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Не   работает\tМИС  ", "Не работает МИС"),
        ("Тема\r\nBcc: x", "Тема Bcc: x"),
        ("a\u2028b\u2029c\x85d\x0be\x0cf", "a b c d e f"),
        ("\u202eabc\u202c \u2066d\u2069\u200e\u200f\ufeff", "abc d"),
        ("a\x00b\x1bc\x7fd", "abcd"),
        ("=?utf-8?b?0KLQtdC80LA=?=", "= ?utf-8?b?0KLQtdC80LA= ?="),
        ("", ""),
    ],
)
def test_clean_header_text(raw: str, clean: str) -> None:
    assert clean_header_text(raw) == clean


def test_clean_header_text_caps_length_at_a_character_boundary() -> None:
    assert clean_header_text("Ж" * 5000) == "Ж" * 199 + "…"
    assert len(clean_header_text("слово " * 100, limit=50)) <= 50
    assert clean_header_text("й" * 10, limit=10) == "й" * 10
    decomposed = "и\u0306" * 10  # "й" as a letter and a combining breve
    assert clean_header_text(decomposed, limit=6) == "и\u0306и\u0306…"
    assert clean_header_text(decomposed, limit=7) == "и\u0306и\u0306и\u0306…"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Не работает МИС", "[СТП #12] Не работает МИС"),
        ("Re: [СТП #12] Не работает МИС", "[СТП #12] Не работает МИС"),
        ("RE: Fwd: [стп#12] Re[2]: Ответ: Не работает МИС", "[СТП #12] Не работает МИС"),
        ("AW: WG: Не работает МИС [СТП #12]", "[СТП #12] Не работает МИС"),
        ("Re: [СТП #7] Не работает МИС", "[СТП #12] Не работает МИС"),
        ("[ СТП  # 12 ] [СТП #12] Тема", "[СТП #12] Тема"),
        ("Тема про [СТП #123]", "[СТП #12] Тема про"),
        ("Re:", "[СТП #12]"),
        ("", "[СТП #12]"),
        ("Тема\r\nBcc: evil@x.com", "[СТП #12] Тема Bcc: evil@x.com"),
        ("Reply to all: тема", "[СТП #12] Reply to all: тема"),
    ],
)
def test_reply_subject(subject: str, expected: str) -> None:
    assert reply_subject("[СТП #12]", subject) == expected


def test_reply_subject_without_a_tag_only_drops_prefixes() -> None:
    assert reply_subject("", "Re: Fwd: Тема") == "Тема"
