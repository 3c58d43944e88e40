"""Composing outgoing mail: round-trips, threading headers, and no way to inject a header."""

from __future__ import annotations

import email
import email.policy
import io
import random
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from email.generator import BytesGenerator
from email.header import Header
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from maildesk.core import msgid, outgoing
from maildesk.core.outgoing import (
    AUTO_SUBMITTED,
    MAX_REFERENCES,
    Rendered,
    _extra_name,
    _msg_id,
    _text_body,
    check_address,
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
    return compose(rendered, **_arguments(**overrides))


def _arguments(**overrides: Any) -> dict[str, Any]:
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
    return kwargs


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


# --- The email package as the reference --------------------------------------------------
#
# compose() writes the message itself. The implementation below is the one it replaced,
# built on EmailMessage and the SMTP policy; it stays here as the oracle that every
# composed message is compared with, parsed, header by header and body by body.


def _reference_clean_header_text(value: str, limit: int = 200) -> str:
    value = " ".join(value.split())
    value = "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    value = " ".join(value.split())
    value = value.replace("=?", "= ?")
    if len(value) > limit:
        end = max(limit - 1, 0)
        while end > 0 and unicodedata.combining(value[end]):
            end -= 1
        value = value[:end].rstrip() + "…"
    return value


def _reference_encoded_words(text: str, width: int = 68) -> str:
    if text.isascii():
        return text
    most = (width - len("=?utf-8?b??=")) // 4 * 3
    chunks, chunk = [], ""
    for word in re.findall(r"\S+\s*", text):
        if chunk and len((chunk + word).encode()) > most:
            chunks.append(chunk)
            chunk = ""
        chunk += word
    chunks.append(chunk)
    return " ".join(" ".join(Header(c, "utf-8").encode(maxlinelen=width + 1).split()) for c in chunks)


def _reference_mailbox(name: str, address: str) -> str:
    if not name:
        return address
    if name.isascii():
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{address}>'
    return f"{_reference_encoded_words(name, width=72)} <{address}>"


class _ReferencePrepared:
    max_count = None

    @classmethod
    def parse(cls, value: str, kwds: dict[str, object]) -> None:
        kwds["parse_tree"] = None
        kwds["decoded"] = " ".join(_reference_encoded_words(value).split())

    def fold(self, *, policy: email.policy.Policy) -> str:
        name = self.name  # type: ignore[attr-defined]
        lines, line = [], f"{name}:"
        for token in str(self).split():
            if len(line) + 1 + len(token) > (policy.max_line_length or 78) and line != f"{name}:":
                lines.append(line)
                line = ""
            line += " " + token
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


def _reference_registry() -> HeaderRegistry:
    registry = HeaderRegistry(default_class=_ReferencePrepared)
    for name in ("subject", "from", "to", "cc", "reply-to"):
        registry.map_to_type(name, _ReferencePrepared)
    return registry


_REFERENCE_POLICY = email.policy.SMTP.clone(cte_type="7bit", header_factory=_reference_registry())


def _compose_reference(
    rendered: Rendered,
    *,
    from_name: str,
    from_address: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    reply_to: str,
    message_id: str,
    in_reply_to: str | None,
    references: Sequence[str],
    auto_submitted: str,
    date: datetime,
    ticket_number: int | None = None,
    extra_headers: Mapping[str, str] = MappingProxyType({}),
) -> bytes:
    if auto_submitted not in AUTO_SUBMITTED:
        raise ValueError(f"auto_submitted must be one of {AUTO_SUBMITTED}, not {auto_submitted!r}")
    if date.tzinfo is None:
        raise ValueError("date must carry its time zone")
    if not to:
        raise ValueError("a message needs at least one recipient")
    own_id = _msg_id(message_id)
    if own_id is None or "@" not in own_id:
        raise ValueError(f"not a Message-ID: {message_id!r}")
    parent = _msg_id(in_reply_to) if in_reply_to else None

    msg = EmailMessage(policy=_REFERENCE_POLICY)
    msg["From"] = _reference_mailbox(_reference_clean_header_text(from_name), check_address(from_address))
    msg["To"] = ", ".join(check_address(a) for a in to)
    if cc:
        msg["Cc"] = ", ".join(check_address(a) for a in cc)
    msg["Reply-To"] = check_address(reply_to)
    msg["Subject"] = _reference_clean_header_text(rendered.subject)
    msg["Date"] = date
    msg["Message-ID"] = f"<{own_id}>"
    if parent:
        msg["In-Reply-To"] = f"<{parent}>"
    thread = trim_references([*references, *([in_reply_to] if in_reply_to else [])])
    if thread:
        msg["References"] = " ".join(f"<{ident}>" for ident in thread)
    msg["Auto-Submitted"] = auto_submitted
    msg["X-Auto-Response-Suppress"] = "All"
    if ticket_number is not None:
        msg["X-Maildesk-Ticket"] = str(int(ticket_number))
    for name, value in extra_headers.items():
        if name.lower() in msg:
            raise ValueError(f"extra header {name!r} is already set")
        msg[_extra_name(name)] = _reference_clean_header_text(value, limit=900)
    msg.set_content(_text_body(rendered.text), subtype="plain", charset="utf-8")
    msg.add_alternative(_text_body(rendered.html), subtype="html", charset="utf-8")
    for part in msg.iter_parts():
        del part["MIME-Version"]
    return msg.as_bytes()


def _meaning(raw: bytes) -> dict[str, Any]:
    """Everything a reader gets from the message, decoded; the boundary left out."""
    msg = _parse(raw)
    headers = []
    for name, value in msg.items():
        if name.lower() == "content-type":
            params = {k: v for k, v in value.params.items() if k != "boundary"}
            headers.append((name, value.content_type, params))
            continue
        addresses = getattr(value, "addresses", None)
        headers.append((
            name,
            str(value),
            [(a.display_name, a.addr_spec) for a in addresses] if addresses is not None else None,
            getattr(value, "datetime", None),
            [type(d).__name__ for d in value.defects],
        ))
    parts = [
        (
            list(part.keys()),
            part.get_content_type(),
            part.get_content_charset(),
            part["Content-Transfer-Encoding"],
            part.get_content(),
            [type(d).__name__ for d in part.defects],
        )
        for part in msg.iter_parts()
    ]
    return {
        "headers": headers,
        "defects": [type(d).__name__ for d in msg.defects],
        "type": msg.get_content_type(),
        "parts": parts,
        "plain": msg.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
        "html": msg.get_body(("html",)).get_content(),  # type: ignore[union-attr]
    }


def _assert_folded_where_it_can_be(raw: bytes) -> None:
    """Like _assert_well_formed, for any input: a line past 78 holds one token that cannot be split."""
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if len(line) > 78:
            tokens = line.split()
            assert len(tokens) == 1 or (len(tokens) == 2 and tokens[0].endswith(b":")), line


def _boundary_of(raw: bytes) -> bytes:
    return _parse(raw).get_boundary().encode("ascii")  # type: ignore[union-attr]


CYRILLIC_TEXT = ("Здравствуйте, Мария Петровна!\nВаша заявка № 12 зарегистрирована и передана специалисту.\n" * 30)[:2048]
CYRILLIC_HTML = (
    "<p>Здравствуйте, Мария Петровна!</p>\n<p>Ваша заявка № 12 зарегистрирована и передана специалисту.</p>\n" * 40
)[:4096]
LATIN_TEXT = "Café au lait, s'il vous plaît.\nÇa coûte 3 €.\n"
LONG_IDS = [f"<{'x' * 150}.{i}@mail.example.org>" for i in range(40)]
SUBJECTS = [
    SUBJECT,
    "Printer on floor 3 is out of toner",
    "Re: " + "very long ascii subject words " * 12,
    "A" * 250,
    "Т" * 150,
    "Очень длинное слово" + "ё" * 90 + " и хвост",
    "Café crème brûlée — naïve façade",
    "Ошибка 😀 в МИС 🚑 срочно",
    "系统错误 无法登录",
    "שלום עולם مرحبا",
    "и\u0306" * 120,
    "",
    "   ",
    "tab\tinside\tsubject",
    *INJECTIONS,
]
NAMES = ["СТП ГБУЗС «МИАЦ»", "Help Desk", 'Smith, "J." <x@evil.com>', "Back\\slash (comment)", "",
         "Государственное бюджетное учреждение здравоохранения Севастополя «Медицинский информационно-аналитический центр»",
         "Тема\r\nBcc: evil@x.com", "Ñandú Pérez"]
BODIES = [
    (RENDERED.text, RENDERED.html),
    (CYRILLIC_TEXT, CYRILLIC_HTML),
    ("Plain ASCII.\nShort lines only.\n", "<p>Plain</p>"),
    ("x" * 300 + "\n" + "y" * 100, "<p>" + "z " * 200 + "</p>"),
    (LATIN_TEXT, "<p>" + LATIN_TEXT + "</p>"),
    (LATIN_TEXT * 8, "<p>" + LATIN_TEXT * 8 + "</p>"),
    ("", ""),
    ("\r\n\r\n", "\r"),
    ("line\r\nwith\rmixed\nends\r\n\n\n", "trailing spaces   \nand tabs\t\n"),
    ("--=_md_0\n--=_md_0--\n--===============0==\nFrom the start\n.\n", "<p>\x0b\x0c\x00\x7f</p>"),
    ("Ошибка\u2028строка\u2029абзац\x85next", "<p>😀" * 100 + "</p>"),
]
DATES = [
    datetime(2025, 3, 12, 9, 41, tzinfo=MSK),
    datetime(2025, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
    datetime(2024, 2, 29, 0, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    datetime(2025, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/Simferopol")),
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-12))),
    datetime(2025, 3, 12, 9, 41, tzinfo=timezone(timedelta(hours=3, seconds=17))),
]
MESSAGE_IDS = [OUR_ID, "a@b", "x" * 60 + "@example.org", "x" * 70 + "@y", "x" * 200 + "@example.org",
               "=?utf-8?q?x?=@y", "a@[192.0.2.1]", "a(b)@x", "a.b!#$%&'*+/=?^_`{|}~-@x.y"]


def _varied_cases() -> list[dict[str, Any]]:
    rng = random.Random(2025)
    cases = []
    for i in range(60):
        subject = SUBJECTS[i % len(SUBJECTS)]
        text, html = BODIES[i % len(BODIES)]
        extra: dict[str, str] = {}
        if i % 3 == 0:
            extra["X-Maildesk-Event"] = rng.choice(SUBJECTS)
        if i % 7 == 0:
            extra["X-" + "Long-Name" * 7] = rng.choice(SUBJECTS)
        refs = rng.choice([[], ["<root.1@mail.sev.gov.ru>"], [f"<m{j}@mail.sev.gov.ru>" for j in range(30)],
                           LONG_IDS, ["<ok@x>", "bad\r\nid", "<a<b@x>", "<ok@x>"]])
        cases.append(dict(
            rendered=Rendered(subject=subject, text=text, html=html),
            from_name=NAMES[i % len(NAMES)],
            from_address="help@sevmiac.ru",
            to=rng.choice([["m.ivanova@sev.gov.ru"], ["m.ivanova@sev.gov.ru", "p.petrov@sev.gov.ru"],
                           [f"user{j}.with.a.long.name@department{j}.sev.gov.ru" for j in range(8)]]),
            cc=rng.choice([(), ["it@gb1.sev.gov.ru"], [f"c{j}@sev.gov.ru" for j in range(12)]]),
            reply_to="help@sevmiac.ru",
            message_id=MESSAGE_IDS[i % len(MESSAGE_IDS)],
            in_reply_to=rng.choice([None, "<CAF=abc+123@mail.sev.gov.ru>", "garbage with spaces", LONG_IDS[-1]]),
            references=refs,
            auto_submitted=AUTO_SUBMITTED[i % len(AUTO_SUBMITTED)],
            date=DATES[i % len(DATES)],
            ticket_number=rng.choice([None, 0, 12, 10**11]),
            extra_headers=extra,
        ))
    return cases


VARIED = _varied_cases()


@pytest.mark.parametrize("case", VARIED, ids=[f"case{i}" for i in range(len(VARIED))])
def test_compose_means_what_the_email_package_wrote(case: dict[str, Any]) -> None:
    kwargs = dict(case)
    rendered = kwargs.pop("rendered")
    raw = compose(rendered, **kwargs)
    reference = _compose_reference(rendered, **kwargs)
    _assert_folded_where_it_can_be(raw)
    assert _meaning(raw) == _meaning(reference)
    # Beyond meaning: the very bytes, but for the boundary.
    assert raw.replace(_boundary_of(raw), _boundary_of(reference)) == reference


def test_typical_notification_means_what_the_email_package_wrote() -> None:
    kwargs = _arguments(to=["m.ivanova@sev.gov.ru", "p.petrov@sev.gov.ru"], cc=())
    rendered = Rendered(SUBJECT, CYRILLIC_TEXT, CYRILLIC_HTML)
    raw = compose(rendered, **kwargs)
    assert _meaning(raw) == _meaning(_compose_reference(rendered, **kwargs))
    assert [p["Content-Transfer-Encoding"] for p in _parse(raw).iter_parts()] == ["base64", "base64"]


@pytest.mark.parametrize("message_id", ["[a]@x", "a(b)@x", "a@b(c", 'a"b@x'])
def test_ids_the_email_package_cannot_parse_come_out_as_before(message_id: str) -> None:
    def outcome(fn: Any) -> Any:
        try:
            return _meaning(fn(RENDERED, **_arguments(message_id=message_id)))
        except Exception as exc:  # the very failure is what is compared
            return type(exc)

    assert outcome(compose) == outcome(_compose_reference)


def _regenerated(raw: bytes, policy: email.policy.Policy) -> bytes:
    out = io.BytesIO()
    BytesGenerator(out, policy=policy).flatten(_parse(raw))
    return out.getvalue()


def _fits(raw: bytes) -> bool:
    return all(len(line) <= 78 for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))


@pytest.mark.parametrize("case", VARIED, ids=[f"case{i}" for i in range(len(VARIED))])
def test_bytes_generator_round_trip_keeps_the_meaning(case: dict[str, Any]) -> None:
    kwargs = dict(case)
    rendered = kwargs.pop("rendered")
    raw = compose(rendered, **kwargs)
    # Kept as folded: every message.
    again = _regenerated(raw, email.policy.SMTP.clone(refold_source="none"))
    assert again.isascii() and _boundary_of(again) == _boundary_of(raw)
    assert _meaning(again) == _meaning(raw)
    # Refolded by the email package where it sees a line past 78. Its folder mangles
    # encoded-words behind a very long header name (the reason compose() folds for itself),
    # so this holds for the messages whose every header line fits, the usual notification.
    if _fits(raw):
        again = _regenerated(raw, email.policy.SMTP)
        assert again.isascii() and _boundary_of(again) == _boundary_of(raw)
        assert _meaning(again) == _meaning(raw)


def test_typical_notification_survives_a_bytes_generator_round_trip() -> None:
    raw = _compose(Rendered(SUBJECT, CYRILLIC_TEXT, CYRILLIC_HTML), to=["m.ivanova@sev.gov.ru", "p.petrov@sev.gov.ru"])
    assert _fits(raw)
    for policy in (email.policy.SMTP, email.policy.default):
        again = _regenerated(raw, policy)
        assert _meaning(again) == _meaning(raw)
    assert _regenerated(raw, email.policy.SMTP) == raw


def test_same_input_same_bytes_and_the_boundary_is_never_in_a_body() -> None:
    hostile = "\n".join(f"--=_md_{'0' * n}" for n in range(40))
    raw = _compose(Rendered(SUBJECT, hostile, hostile))
    assert raw == _compose(Rendered(SUBJECT, hostile, hostile))
    boundary = _boundary_of(raw)
    body = raw.split(b"\r\n\r\n", 1)[1]
    delimiters = [line for line in body.split(b"\r\n") if line.startswith(b"--" + boundary)]
    assert delimiters == [b"--" + boundary] * 2 + [b"--" + boundary + b"--"]
    assert _parse(raw).get_body(("plain",)).get_content() == hostile.replace("\n", "\r\n") + "\r\n"  # type: ignore[union-attr]
    assert raw.count(b"MIME-Version") == 1


def test_mime_structure() -> None:
    raw = _compose(Rendered(SUBJECT, CYRILLIC_TEXT, "<p>ascii</p>"))
    msg = _parse(raw)
    assert msg["MIME-Version"] == "1.0"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all("MIME-Version" not in p for p in parts)
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["base64", "7bit"]
    b64 = raw.split(b"Content-Transfer-Encoding: base64\r\n\r\n", 1)[1].split(b"\r\n\r\n", 1)[0]
    assert {len(line) for line in b64.split(b"\r\n")[:-1]} == {76}


@pytest.mark.parametrize("width", [68, 72])
def test_encoded_words_are_the_ones_header_writes(width: int) -> None:
    rng = random.Random(width)
    alphabet = (string.ascii_letters + string.digits + "     .,:;!?=_-()[]\"'\\" + "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
                + "АБВГДЕЁЖЗИЙ" + "éèçñüß€«»№—" + "中文字" + "😀🚑" + "\u0306\u0301")
    samples = [rng.choices(alphabet, k=rng.randint(1, 300)) for _ in range(300)]
    samples += [["ж"] * n for n in range(1, 120)] + [["a"] * n + ["é"] for n in range(40, 120)]
    for chars in samples:
        text = "".join(chars)
        assert outgoing._header_words(text, width) == Header(text, "utf-8").encode(maxlinelen=width + 1).split()
        assert outgoing._encoded_words(text, width) == _reference_encoded_words(text, width)


def test_clean_header_text_is_unchanged() -> None:
    rng = random.Random(7)
    alphabet = "ab Ж\t\r\n\x00\x1b\x7f\x85\xa0\u2028\u2029\u200b\u200f\u202e\u2066\ufeff\ud800\ue000\u0378=?й\u0306…"
    for _ in range(2000):
        value = "".join(rng.choices(alphabet, k=rng.randint(0, 60)))
        limit = rng.randint(0, 70)
        assert clean_header_text(value, limit) == _reference_clean_header_text(value, limit)
    for evil in INJECTIONS:
        assert clean_header_text(evil) == _reference_clean_header_text(evil)


@pytest.mark.parametrize("date", DATES + [datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(minutes=m)))
                                          for m in (-720, -61, -1, 0, 1, 59, 840)])
def test_date_is_written_as_the_email_package_writes_it(date: datetime) -> None:
    policy = email.policy.SMTP.clone(cte_type="7bit")
    assert outgoing._date_field(date) == policy.header_factory("Date", date).fold(policy=policy)


@pytest.mark.parametrize("length", range(5, 251))
def test_message_id_is_written_as_the_email_package_writes_it(length: int) -> None:
    policy = email.policy.SMTP.clone(cte_type="7bit")
    for ident in ("x" * (length - 4) + "@a.b", ("ab." * length)[: length - 4].strip(".") + "@c.d"):
        expected = policy.header_factory("Message-ID", f"<{ident}>").fold(policy=policy)
        assert outgoing._message_id_field(ident) == expected


def test_bodies_are_encoded_as_the_content_manager_encodes_them() -> None:
    rng = random.Random(11)
    samples = [text for text, html in BODIES] + [html for text, html in BODIES]
    for _ in range(400):
        # From all ASCII to all Cyrillic, through the mixes where base64 and quoted-printable
        # come close; short and long lines, few and many.
        share = rng.random()

        def line() -> str:
            return "".join(
                rng.choice("жё€") if rng.random() < share else rng.choice(string.ascii_letters + " =\t.")
                for _ in range(rng.choice([0, 5, 40, 78, 79, 200]))
            )

        samples.append("\n".join(line() for _ in range(rng.randint(1, 25))))
    for sample in samples:
        text = _text_body(sample)
        part = EmailMessage(policy=email.policy.SMTP.clone(cte_type="7bit"))
        part.set_content(text, charset="utf-8")
        expected = part.as_bytes().split(b"\r\n\r\n", 1)[1].decode("ascii")
        assert outgoing._transfer_encoded(text) == (part["Content-Transfer-Encoding"], expected)
