"""Tests for maildesk.core.parse: raw bytes to InboundMail, the limits guard, quotes and HTML text."""

from __future__ import annotations

import base64
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest

from maildesk.core import parse as parse_module
from maildesk.core import triage as triage_module
from maildesk.core.authorize import SenderPolicy
from maildesk.core.decide import DecidePolicy, decide
from maildesk.core.decision import Context
from maildesk.core.headers_decode import decode_header_text, parse_address_list
from maildesk.core.model import Address, Envelope, InboundMail, MailKind, Outcome, Reason
from maildesk.core.parse import ParseLimits, check_limits, format_address_list, html_to_text, parse, strip_quoted
from maildesk.core.triage import TriagePolicy, triage

DATA = Path(__file__).resolve().parent.parent / "data" / "parse"
FIXTURES = sorted(p.name for p in DATA.glob("*.eml"))


def load(name: str) -> InboundMail:
    return parse((DATA / name).read_bytes())


def nested_multiparts(depth: int) -> bytes:
    """A message whose every part is another multipart, `depth` levels down."""
    head = b"From: a@b.ru\nSubject: nested\nContent-Type: multipart/mixed; boundary=b0\n\n"
    opening = b"".join(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1) for i in range(depth))
    closing = b"".join(b"\n--b%d--\n" % i for i in reversed(range(depth + 1)))
    return head + opening + b"--b%d\n\ninnermost\n" % depth + closing


def many_parts(count: int) -> bytes:
    parts = b"".join(b"--p\nContent-Type: text/plain\n\npart %d\n" % i for i in range(count))
    return b"From: a@b.ru\nContent-Type: multipart/mixed; boundary=p\n\n" + parts + b"--p--\n"


# --- names, subjects, ids, dates --------------------------------------------------------


def test_a_name_split_over_encoded_words_has_no_stray_space() -> None:
    mail = load("utf8_thunderbird_reply_flowed.eml")
    assert mail.from_ == (Address("Иванов Иван", "Ivanov@Gb1.Sev.Gov.Ru"),)
    assert mail.sender == mail.from_[0]


def test_a_folded_subject_keeps_the_space_after_the_tag() -> None:
    assert load("utf8_thunderbird_reply_flowed.eml").subject == "Re: [СТП #12] Не работает ЕМИАС"


def test_message_ids_are_bare() -> None:
    mail = load("utf8_thunderbird_reply_flowed.eml")
    assert mail.message_id == "0f3c2a1b-7d2e-4c55-9a10-3b1f2e4d5c6a@gb1.sev.gov.ru"
    assert mail.in_reply_to == ("md.12.0123456789abcdef.0123456789abcdef0123@miac.sev.gov.ru",)
    assert mail.references == ("first@gb1.sev.gov.ru", "md.12.0123456789abcdef.0123456789abcdef0123@miac.sev.gov.ru")


def test_date_is_aware() -> None:
    assert load("utf8_thunderbird_reply_flowed.eml").date == datetime(2024, 3, 12, 7, 15, tzinfo=timezone.utc)


def test_an_unreadable_date_is_none_with_a_defect() -> None:
    mail = load("odd_address_headers.eml")
    assert mail.date is None
    assert "date.invalid-date-syntax" in mail.defects


def test_headers_keep_every_field_in_order_decoded() -> None:
    mail = load("utf8_thunderbird_reply_flowed.eml")
    assert [name for name, _ in mail.headers][:3] == ["From", "To", "Subject"]
    assert mail.header("subject") == mail.subject
    assert mail.header("user-agent") == (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.8.1"
    )


def test_outlook_windows_1251_headers() -> None:
    mail = load("cp1251_outlook_reply.eml")
    assert mail.subject == "RE: [СТП #345] Заявка зарегистрирована"
    assert mail.from_ == (Address("Петрова Анна Сергеевна", "petrova@gb3.sev.gov.ru"),)
    assert mail.to == (Address("help@miac.sev.gov.ru", "help@miac.sev.gov.ru"),)
    assert mail.cc == (
        Address("Иванов Иван", "ivanov@gb3.sev.gov.ru"),
        Address("Сидоров, Пётр", "sidorov@gb3.sev.gov.ru"),
    )
    assert mail.header("thread-topic") == "[СТП #345] Заявка зарегистрирована"  # raw 8-bit, read as windows-1251


def test_raw_koi8r_headers_are_read_in_the_charset_the_body_declares() -> None:
    mail = load("koi8r_raw_8bit_headers.eml")
    assert mail.subject == "Не печатает принтер в регистратуре"
    assert mail.from_ == (Address("Сергеев Олег", "sergeev@gb5.sev.gov.ru"),)
    assert mail.text.startswith("Здравствуйте. Принтер HP")


def test_raw_windows_1251_headers_are_guessed_when_nothing_is_declared() -> None:
    mail = load("cp1251_raw_headers_undeclared.eml")
    assert mail.subject == "Заявка: сбой в модуле Регистратура"
    assert mail.from_ == (Address("Кузнецова Мария", "kuznetsova@gb2.sev.gov.ru"),)
    assert mail.text == "Не открывается модуль."
    assert "charset.undeclared-8bit" in mail.defects


def test_every_from_mailbox_is_kept_and_several_from_headers_are_a_defect() -> None:
    mail = load("odd_address_headers.eml")
    assert [a.email for a in mail.from_] == ["boss@sev.gov.ru", "check@evil.example"]
    assert mail.sender is None
    assert "from.multiple-headers" in mail.defects


def test_groups_comments_and_members_without_a_mailbox() -> None:
    mail = load("odd_address_headers.eml")
    assert mail.to == ()
    assert mail.cc == (
        Address("Иванов", "ivanov@gb1.sev.gov.ru"),
        Address("Петров, П.", "petrov@gb9.sev.gov.ru."),
        Address("", "one@gb1.sev.gov.ru"),
        Address("", "two@gb1.sev.gov.ru"),
    )
    assert {"cc.unparseable", "cc.empty"} <= set(mail.defects)
    assert mail.reply_to == (Address("Справка", "spravka@miac.sev.gov.ru"),)


def test_charset_aliases_seen_in_the_wild() -> None:
    assert load("odd_address_headers.eml").subject == "Привет / 中文 / Réclamation"


def test_no_from_header() -> None:
    mail = parse(b"To: help@miac.sev.gov.ru\nSubject: x\n\nbody\n")
    assert mail.from_ == ()
    assert "from.missing" in mail.defects


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"=?UTF-8?B?0JjQstCw0L3QvtCy?= =?UTF-8?B?INCY0LLQsNC9?=", "Иванов Иван"),
        (b"=?utf-8?B?0J/RgNC40LI=?=\r\n =?utf-8?B?0LXRgg==?=", "Привет"),
        (b"=?utf-8?B?0J/R?= =?utf-8?B?gNC40LLQtdGC?=", "Привет"),  # a character split between words
        (b"Re: =?koi8-r?B?8NLJ18XU?= again", "Re: Привет again"),
        (b"=?windows-1251?Q?=CF=F0=E8=E2=E5=F2_=EC=E8=F0?=", "Привет мир"),
        (b"=?UTF-8*ru?B?0J/RgNC40LLQtdGC?=", "Привет"),  # RFC 2231 language suffix
        (b"=?utf-8?B?0J/RgNC40LLQtdGC?", "=?utf-8?B?0J/RgNC40LLQtdGC?"),  # not closed: left as written
        (b"=?x-no-such-charset?Q?=CF=F0=E8=E2=E5=F2?=", "Привет"),  # unknown label: guessed
        (b"=?utf-8?B?0J/RgNC40LLQtdGC?=", "Привет"),
        (b"=?utf-8?B?0J/RgNC40LLQtdGC==?=", "Привет"),  # too much padding
        (b"  plain  ", "plain"),
        (b"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", "Привет"),  # raw UTF-8 (RFC 6532)
        (b"A\x00B\rC", "ABC"),
    ],
)
def test_decode_header_text(raw: bytes, text: str) -> None:
    assert decode_header_text(raw) == text


@pytest.mark.parametrize(
    ("raw", "addresses"),
    [
        (b"=?UTF-8?B?0JjQstCw0L3QvtCy?= =?UTF-8?B?INCY0LLQsNC9?= <a@b.ru>", [("Иванов Иван", "a@b.ru")]),
        (b'"=?windows-1251?B?0e/w4OLq4A==?=" <a@b.ru>', [("Справка", "a@b.ru")]),
        (b"a@b.ru (Mail Delivery System)", [("Mail Delivery System", "a@b.ru")]),
        (b"<A@B.RU>", [("", "A@B.RU")]),
        (b"  <  a@b.ru >  ", [("", "a@b.ru")]),
        (b'"Lastname, First" <a@b.ru>, c@d.ru', [("Lastname, First", "a@b.ru"), ("", "c@d.ru")]),
        (b"Mr. Smith <a@b.ru>", [("Mr. Smith", "a@b.ru")]),
        (b"'Outlook Name' <a@b.ru>", [("'Outlook Name'", "a@b.ru")]),
        (b'"john smith"@b.ru', [("", '"john smith"@b.ru')]),
        (b"boss@sev.gov.ru <evil@x.example>", [("boss@sev.gov.ru", "evil@x.example")]),
        (b"undisclosed-recipients:;", []),
        (b"Test test@example.com", []),
        (b'"Lottery"@example.com>', []),
        (b"<a@b.ru> <c@d.ru>", []),
        (b"MAILER-DAEMON (Mail Delivery System)", []),
        (b"<power quadrant system@example.com>", []),
        (b"", []),
    ],
)
def test_parse_address_list(raw: bytes, addresses: list[tuple[str, str]]) -> None:
    assert [(a.name, a.email) for a in parse_address_list(raw)[0]] == addresses


def test_format_address_list() -> None:
    addresses = [
        Address("", "a@b.ru"),
        Address("Ivan Ivanov", "i@b.ru"),
        Address("Иванов Иван", "ii@b.ru"),
        Address('Smith, "J"', "s@b.ru"),
    ]
    assert format_address_list(addresses) == (
        'a@b.ru, Ivan Ivanov <i@b.ru>, "Иванов Иван" <ii@b.ru>, "Smith, \\"J\\"" <s@b.ru>'
    )


# --- bodies and attachments ---------------------------------------------------------------


def test_flowed_text_is_unflowed() -> None:
    mail = load("utf8_thunderbird_reply_flowed.eml")
    assert "прикладываю текст ошибки ещё раз." in mail.text
    assert mail.content_type == "text/plain"
    assert mail.html is None


def test_alternative_takes_text_from_plain_and_keeps_html() -> None:
    mail = load("cp1251_outlook_reply.eml")
    assert mail.text.startswith("Добрый день.\n\nПрошу восстановить доступ к МИС, пользователь petrova.")
    assert mail.content_type == "text/plain"
    assert mail.html is not None and "MsoNormal" in mail.html


def test_rfc2231_cyrillic_file_name_and_exact_bytes() -> None:
    (attachment,) = load("cp1251_outlook_reply.eml").attachments
    assert attachment.filename == "Скриншот ошибки.txt"
    assert attachment.content_type == "text/plain"
    assert attachment.data == "Ошибка 0x80070005: доступ запрещён".encode("windows-1251")
    assert not attachment.inline


def test_html_only_mail_becomes_readable_text() -> None:
    mail = load("mailru_html_only_reply.eml")
    assert mail.content_type == "text/html"
    assert mail.html is not None and "<blockquote" in mail.html
    assert mail.text.startswith(
        "Добрый день!\nПроблема решена, спасибо. Инструкция: здесь (https://miac.sev.gov.ru/help?id=5&x=1)\n"
        "- перезапустили службу\n- обновили клиент"
    )
    assert "var x" not in mail.text and "font-family" not in mail.text
    assert "> Ваша заявка [СТП #77] решена." in mail.text


def test_mail_with_no_text_part_keeps_its_attachment() -> None:
    mail = load("attachment_only_no_text.eml")
    assert (mail.text, mail.html, mail.subject) == ("", None, "Акт")
    (attachment,) = mail.attachments
    assert attachment.filename == "Акт выполненных работ.pdf"  # RFC 2231 continuations
    assert attachment.data.startswith(b"%PDF-1.4")


def test_a_forwarded_message_is_kept_as_eml_and_its_attachments_are_found() -> None:
    mail = load("thunderbird_forward_rfc822.eml")
    assert mail.text == "Пересылаю письмо от коллег."
    eml, image = mail.attachments
    assert (eml.filename, eml.content_type) == ("Ошибка ЕГИСЗ.eml", "message/rfc822")
    assert eml.data.startswith(b"From: Orlov <orlov@gb6.sev.gov.ru>\n")
    assert "Внутренний текст пересланного письма.".encode() in eml.data
    assert parse(eml.data).subject == "Ошибка ЕГИСЗ"
    assert (image.filename, image.content_type) == ("screen.png", "image/png")
    assert image.data.startswith(b"\x89PNG")


def test_inline_image_of_a_related_html_body() -> None:
    mail = load("outlook_related_inline_image.eml")
    assert mail.text.startswith("Скриншот ниже:")
    (image,) = mail.attachments
    assert image.filename == "скриншот.png"  # an RFC 2047 name folded over two words
    assert image.inline and image.content_id == "image001.png@01DA7400.12345670"


def test_x_uuencode() -> None:
    mail = load("x_uuencode_attachment.eml")
    assert mail.text == "see log"
    assert [(a.filename, a.data) for a in mail.attachments] == [("error.log", b"Hello Maildesk")]


def test_a_missing_close_boundary_keeps_every_part() -> None:
    mail = load("missing_close_boundary.eml")
    assert mail.text == "Текст без закрывающей границы."
    assert [(a.filename, a.data) for a in mail.attachments] == [("data.bin", bytes(range(6)))]
    assert "CloseBoundaryNotFoundDefect" in mail.defects


def test_a_multipart_without_boundary_lines_is_read_as_text() -> None:
    mail = load("missing_start_boundary.eml")
    assert mail.text == "Текст без границ"
    assert "StartBoundaryNotFoundDefect" in mail.defects


def test_mbox_line_and_a_broken_fold_are_tolerated() -> None:
    mail = load("mbox_from_line_broken_fold.eml")
    # the From field comes after the line that lost its fold: a mail server's header block
    # ends at that line; it is read, but marked, and authorize takes it as no From
    assert mail.from_ == (Address("", "ivanov@gb1.sev.gov.ru"),)
    assert "from.after-broken-header-line" in mail.defects
    assert mail.subject == "mbox"
    assert mail.header("x-broken") == "first half this line lost its fold"
    assert mail.header("x-scanner") == "scanned by gateway"
    assert mail.text == "Body.\nFrom the desk of Ivanov."
    assert "header.broken-fold" in mail.defects


def test_a_banner_line_before_the_headers_is_skipped() -> None:
    mail = parse(b"---- Original email message ----\nFrom: a@b.ru\nSubject: s\n\nbody")
    assert (mail.subject, mail.text) == ("s", "body")
    assert "header.leading-garbage" in mail.defects


def test_gmail_reply_without_its_quote() -> None:
    assert strip_quoted(load("gmail_ru_reply_alternative.eml").text) == "Спасибо, всё работает."


@pytest.mark.parametrize("name", FIXTURES)
def test_crlf_and_lf_give_the_same_mail(name: str) -> None:
    raw = (DATA / name).read_bytes().replace(b"\r\n", b"\n")
    assert parse(raw) == parse(raw.replace(b"\n", b"\r\n"))


@pytest.mark.parametrize("name", FIXTURES)
def test_fixtures_are_within_limits_and_parse_cleanly(name: str) -> None:
    raw = (DATA / name).read_bytes()
    assert check_limits(raw) is None
    assert not any(d.startswith("parse.") for d in parse(raw).defects)


# --- limits and hostile input --------------------------------------------------------------


def test_check_limits_refuses_100000_nested_multiparts_quickly() -> None:
    raw = nested_multiparts(100_000)
    started = time.perf_counter()
    reason = check_limits(raw)
    assert time.perf_counter() - started < 3.0
    assert reason is not None and reason.code == "limits.depth"


def test_parse_survives_10000_nested_multiparts() -> None:
    started = time.perf_counter()
    mail = parse(nested_multiparts(10_000))
    assert time.perf_counter() - started < 5.0
    assert mail.subject == "nested"
    assert "mime.too-deep" in mail.defects


def test_depth_limit_boundary() -> None:
    assert check_limits(nested_multiparts(19)) is None
    reason = check_limits(nested_multiparts(20))
    assert reason is not None and reason.code == "limits.depth"


def test_nested_forwarded_messages() -> None:
    raw = b"From: a@b.ru\nSubject: s\n" + b"Content-Type: message/rfc822\n\n" * 500 + b"Subject: inner\n\nx\n"
    assert check_limits(raw).code == "limits.depth"  # type: ignore[union-attr]
    assert "mime.too-deep" in parse(raw).defects


def test_part_count_limit() -> None:
    assert check_limits(many_parts(500)) is None
    reason = check_limits(many_parts(501))
    assert reason is not None and reason.code == "limits.parts"
    assert parse(many_parts(501)).text.startswith("part 0\n\npart 1")


def test_a_300_kb_header_is_refused_but_still_parses() -> None:
    junk = b"".join(b"X-Junk-%d: %s\n" % (i, b"j" * 70) for i in range(4000))
    raw = b"From: a@b.ru\nSubject: big\n" + junk + b"\nbody\n"
    reason = check_limits(raw)
    assert reason is not None and reason.code == "limits.header"
    mail = parse(raw)
    assert (mail.subject, mail.text) == ("big", "body")


def test_line_and_size_limits() -> None:
    def code(raw: bytes, limits: ParseLimits = ParseLimits()) -> str | None:
        reason = check_limits(raw, limits)
        return reason.code if reason else None

    assert code(b"From: a@b.ru\n\n" + b"x" * (2 * 1024 * 1024) + b"\n") == "limits.line"
    assert code(b"From: a@b.ru\n\n" + b"y" * 100, ParseLimits(max_line_bytes=50)) == "limits.line"
    assert code(b"From: a@b.ru\n\n" + b"y" * 40, ParseLimits(max_line_bytes=50)) is None
    assert code(b"From: a@b.ru\n\n" + b"z\n" * 600, ParseLimits(max_bytes=1000)) == "limits.size"


def test_many_short_lines_are_checked_in_linear_time() -> None:
    raw = b"From: a@b.ru\n\n" + (b"x" * 1000 + b"\n") * 20_000
    started = time.perf_counter()
    assert check_limits(raw) is None
    assert time.perf_counter() - started < 2.0


def test_nul_bytes() -> None:
    raw = b"From: a\x00b <a@b.ru>\nSubject: nul\x00here\nContent-Type: text/plain\n\nbo\x00dy\x00\n"
    mail = parse(raw)
    assert (mail.subject, mail.text, mail.from_) == ("nulhere", "body", (Address("ab", "a@b.ru"),))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\n\n\n",
        b"no headers at all, just text",
        b"From: a@b.ru",  # headers only, no blank line
        b"Content-Type: multipart/mixed\n\n--x\n",  # no boundary parameter
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\n--x\n--x--\n",  # empty parts
        b"Content-Type: text/plain; charset=x-no-such\n\n\xcf\xf0\xe8\xe2\xe5\xf2",
        b"Content-Type: text/plain; charset=utf-16\n\n\xff",
        b"Content-Type: application/pdf; name*=utf-8''%ZZ%\nContent-Transfer-Encoding: base64\n\n!!!@@@",
        b"Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n=ZZ=\n=",
        b"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n%%%%",
        b"Content-Type: multipart/mixed; boundary=\"\"\n\n--\n",
        b"Content-Type: ;;;===\n\n",
        b"From: " + b"(" * 5000 + b"a@b.ru\n\n",
        b"Subject: " + b"=?utf-8?q?" * 5000 + b"\n\n",
    ],
)
def test_garbage_is_read_by_the_parser_itself(raw: bytes) -> None:
    # parse() never raises by construction (it falls back to headers only); what can fail is
    # the parser proper: the fallback's `parse.failed` defect must not be needed for garbage
    mail = parse(raw)
    assert not [d for d in mail.defects if d.startswith("parse.")]
    assert mail.sender is None or mail.sender.email == "a@b.ru"
    reason = check_limits(raw)
    assert reason is None or reason.code.startswith("limits.")


def test_random_bytes_are_read_without_the_fallback_and_never_give_a_clean_sender() -> None:
    rng = random.Random(20240312)
    pieces = [b"\n", b"\r\n", b"--b\n", b"Content-Type: multipart/mixed; boundary=b\n", b": ", b"=?utf-8?B?", b"\x00"]
    for _ in range(200):
        raw = b"".join(rng.choice(pieces) if rng.random() < 0.3 else bytes([rng.randrange(256)]) for _ in range(300))
        mail = parse(raw)
        assert not [d for d in mail.defects if d.startswith("parse.")], raw
        assert mail.defects or mail.sender is None, raw  # noise never passes for a clean From
        reason = check_limits(raw)
        assert reason is None or reason.code.startswith("limits."), raw


@pytest.mark.parametrize("name", FIXTURES)
def test_mutated_fixtures_are_read_without_the_fallback(name: str) -> None:
    rng = random.Random(name)
    original = (DATA / name).read_bytes()
    for _ in range(15):
        raw = bytearray(original)
        for _ in range(rng.randrange(1, 40)):
            raw[rng.randrange(len(raw))] = rng.choice([0, 10, 13, 32, 40, 41, 58, 60, 62, 61, 63, 34, rng.randrange(256)])
        mail = parse(bytes(raw))
        assert not [d for d in mail.defects if d.startswith("parse.")], name


def test_not_bytes_gives_an_empty_mail_with_a_defect() -> None:
    mail = parse("From: a@b.ru\n\nx")  # type: ignore[arg-type]
    assert mail.text == "" and mail.defects[0] == "parse.not-bytes:str"


def test_an_internal_failure_still_reads_the_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(parse_module, "build_tree", broken)
    mail = parse((DATA / "utf8_thunderbird_reply_flowed.eml").read_bytes())
    assert mail.subject == "Re: [СТП #12] Не работает ЕМИАС"
    assert mail.text == ""
    assert "parse.failed:RuntimeError" in mail.defects


def test_parse_is_deterministic() -> None:
    for name in FIXTURES:
        raw = (DATA / name).read_bytes()
        assert parse(raw) == parse(raw)


# --- quoted history --------------------------------------------------------------------------


FORWARDED = "См. ниже.\n\n-------- Пересылаемое сообщение --------\nОт: x"


@pytest.mark.parametrize(
    ("text", "new"),
    [
        (
            "Текст ответа.\n\nОт: Служба техподдержки <help@miac.sev.gov.ru>\nОтправлено: 11 марта 2024 г. 16:02\n"
            "Кому: Иванов\nТема: [СТП #1] Заявка\n\nстарое письмо",
            "Текст ответа.",
        ),
        (
            "Answer.\n\n________________________________\nFrom: Support <help@x.ru>\n"
            "Sent: Monday, March 11, 2024 4:02 PM\n"
            "To: Ivanov\nSubject: RE: test\n\nold",
            "Answer.",
        ),
        ("Ответ.\n\n-----Original Message-----\nFrom: x\nстарое", "Ответ."),
        ("Ответ.\n\n-----Исходное сообщение-----\nОт: x\nстарое", "Ответ."),
        ("Ответ.\n\n----- Original Message -----\nFrom: x", "Ответ."),
        ("Ok.\n\nOn Mon, 11 Mar 2024 at 16:02, Support <help@x.ru> wrote:\n> old\n> text", "Ok."),
        ("Ok.\n\nOn Mon, 11 Mar 2024 at 16:02, Support Service <\nhelp@x.ru> wrote:\n\n> old", "Ok."),
        ("Ответ.\n\n11.03.2024 16:02, Служба техподдержки пишет:\n> старое", "Ответ."),
        ("Ответ.\n\n11 марта 2024 г., в 16:02, Иван <i@x.ru> написал(а):\n\n> старое", "Ответ."),
        ("Ответ.\n\nпн, 11 мар. 2024 г. в 16:02, Служба <help@x.ru>:\n\n> старое", "Ответ."),
        ('Ответ.\n\n11.03.2024, 16:02, "Служба техподдержки" <help@x.ru>:\n> старое', "Ответ."),
        ("Ответ.\n\nПонедельник, 11 марта 2024, 16:02 +03:00 от Служба <help@x.ru>:\n> старое", "Ответ."),
        ("Ответ.\n\n> старое\n> письмо\n", "Ответ."),
        ("On Mon, 11 Mar 2024, Support <help@x.ru> wrote:\n> question\n\nmy answer", "my answer"),
        ("answer one\n> quoted\nanswer two", "answer one\n> quoted\nanswer two"),
        ("ФИО: Иванов\nОт: отдела кадров\nТелефон: 123", "ФИО: Иванов\nОт: отдела кадров\nТелефон: 123"),
        ("Добрый день.\nПользователь пишет:\n\nОшибка входа", "Добрый день.\nПользователь пишет:\n\nОшибка входа"),
        (FORWARDED, FORWARDED),  # a forward is not a quote: what is forwarded is the content
        ("Просто текст.\r\nВторая строка.", "Просто текст.\nВторая строка."),
        ("", ""),
    ],
)
def test_strip_quoted(text: str, new: str) -> None:
    assert strip_quoted(text) == new


def test_strip_quoted_on_converted_outlook_html() -> None:
    html = load("cp1251_outlook_reply.eml").html
    assert html is not None
    assert strip_quoted(html_to_text(html)) == (
        "Добрый день.\n\nПрошу восстановить доступ к МИС, пользователь petrova."
    )


# --- HTML to text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>a</p><p>b</p>", "a\n\nb"),
        ("a<br>b", "a\nb"),
        ("<ul><li>x</li><li>y</li></ul>", "- x\n- y"),
        ("<ol><li>x</li><li>y</li></ol>", "1. x\n2. y"),
        ('<a href="https://e.ru/x">ссылка</a>', "ссылка (https://e.ru/x)"),
        ('<a href="https://e.ru">https://e.ru</a>', "https://e.ru"),
        ('<a href="mailto:a@b.ru">a@b.ru</a>', "a@b.ru"),
        ('<a href="mailto:a@b.ru">написать</a>', "написать (a@b.ru)"),
        ('<a href="#top">наверх</a>', "наверх"),
        ("<script>alert(1)</script><style>p{}</style>ok", "ok"),
        ("&lt;&amp;&gt;&nbsp;&#1071;&quot;", '<&> Я"'),
        ("<blockquote>старое</blockquote>новое", "> старое\n\nновое"),
        ("<table><tr><td>ФИО:</td><td>Иванов</td></tr><tr><td>Тел</td><td>1</td></tr></table>", "ФИО:\tИванов\nТел\t1"),
        ('<div style="display: none">preheader</div>shown', "shown"),
        (
            "<p class=MsoNormal>one<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p><p class=MsoNormal>two</p>",
            "one\n\ntwo",
        ),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("<pre>  a\n b</pre>", "  a\n b"),
        ("<div>a<div>b</div>c</div>", "a\nb\nc"),
        ("<!--[if mso]>x<![endif]-->ok", "ok"),
        ("  spaced \n\n  words  ", "spaced words"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


# --- the From field and Authentication-Results as written ------------------------------------


def _b_word(data: bytes) -> bytes:
    return b"=?UTF-8?B?" + base64.b64encode(data) + b"?="


def _q_word(data: bytes) -> bytes:
    return b"=?utf-8?Q?" + b"".join(b"=%02X" % byte for byte in data) + b"?="


@pytest.mark.parametrize("encode", [_b_word, _q_word], ids=["base64", "quoted-printable"])
@pytest.mark.parametrize("fold", [b" ", b"\r\n ", b"\n\t"], ids=["space", "crlf-fold", "lf-tab-fold"])
def test_a_display_name_split_at_any_byte_comes_out_whole(encode: Callable[[bytes], bytes], fold: bytes) -> None:
    name = "Иванова Мария Петровна"
    data = name.encode("utf-8")
    for cut in range(1, len(data)):
        raw = b"From: " + encode(data[:cut]) + fold + encode(data[cut:]) + b" <ivanova@sev.gov.ru>\nSubject: s\n\nx\n"
        assert parse(raw).from_ == (Address(name, "ivanova@sev.gov.ru"),), cut


def test_a_display_name_split_in_three_and_quoted_names() -> None:
    data = "Иванова".encode()
    three = b" ".join(_b_word(data[i:j]) for i, j in ((0, 3), (3, 7), (7, len(data))))
    assert parse(b"From: " + three + b" <a@sev.gov.ru>\n\nx").from_[0].name == "Иванова"
    # words of different charsets are decoded each on its own, without the space between them
    mixed = _b_word("Ива".encode()) + b" =?koi8-r?B?" + base64.b64encode("нова".encode("koi8-r")) + b"?="
    assert parse(b"From: " + mixed + b" <a@sev.gov.ru>\n\nx").from_[0].name == "Иванова"
    # a plain word between encoded-words keeps its spaces
    between = _b_word("Иванова".encode()) + b" M. " + _b_word("Петровна".encode())
    assert parse(b"From: " + between + b" <a@sev.gov.ru>\n\nx").from_[0].name == "Иванова M. Петровна"


@pytest.mark.parametrize(
    "address",
    [
        b"ivanova@sev.gov.r\x01u",  # control byte: the decoded text would drop it
        b"ivanova@sev.gov\x7f.ru",  # DEL
        b"ivanova@sev.gov.r\x85u",  # 8-bit; read as Latin-1 it is a C1 control
        b"ivanova@s\xd0\xb5v.gov.ru",  # raw UTF-8 Cyrillic look-alike
        b"iva\x00nova@sev.gov.ru",
        b"ivanova@sev.gov.r\ru",  # a bare CR inside the line
    ],
)
@pytest.mark.parametrize("form", ["bare", "angle"])
def test_control_and_8bit_bytes_in_the_from_address_are_a_defect(address: bytes, form: str) -> None:
    value = address if form == "bare" else b"Ivanova <" + address + b">"
    mail = parse(b"From: " + value + b"\nContent-Type: text/plain; charset=iso-8859-1\nSubject: s\n\nx\n")
    assert "from.address-bytes" in mail.defects


@pytest.mark.parametrize(
    "value",
    [
        b"\xc8\xe2\xe0\xed\xee\xe2\xe0 <ivanova@sev.gov.ru>",  # raw windows-1251 name: common and harmless
        "Иванова <ivanova@sev.gov.ru>".encode(),
        b"=?utf-8?B?0JjQstCw0L3QvtCy0LA=?=\r\n <ivanova@sev.gov.ru>",
        b"<ivanova@sev.gov.ru\t>",
    ],
)
def test_8bit_names_and_folds_are_no_address_defect(value: bytes) -> None:
    mail = parse(b"From: " + value + b"\nSubject: s\n\nx\n")
    assert mail.sender is not None and mail.sender.email == "ivanova@sev.gov.ru"
    assert not [d for d in mail.defects if d.startswith("from.")]


@pytest.mark.parametrize(
    ("raw", "marked"),
    [
        (b"Subject: s\nGARBAGE\nFrom: a@sev.gov.ru\n\nbody", True),
        (b"---- Original email message ----\nSubject: s\nFrom: a@sev.gov.ru\n\nbody", True),
        (b"Subject: s\nFrom: a@sev.gov.ru\nTo: b@sev.gov.ru\nGARBAGE\nCc: c@sev.gov.ru\n\nbody", False),
        (b"From a@sev.gov.ru Tue Mar 12 10:15:00 2024\nFrom: a@sev.gov.ru\nSubject:\n folded\n\nbody", False),
    ],
)
def test_a_from_field_after_a_broken_header_line_is_marked(raw: bytes, marked: bool) -> None:
    mail = parse(raw)
    assert ("from.after-broken-header-line" in mail.defects) is marked
    assert mail.sender == Address("", "a@sev.gov.ru")  # still shown, for the admin who may release it


def test_authentication_results_are_kept_as_written() -> None:
    raw = (
        b"From: a@sev.gov.ru\nSubject: =?utf-8?q?s?=\n"
        b"Authentication-Results: =?us-ascii?q?mx.sev.gov.ru=3B_dmarc=3Dpass?=\n"
        b"Authentication-Results: m\x01x.sev.gov.ru;\n dmarc=pass\n"
        b"Authentication-Results: mx.sev.gov.ru; dkim=pass header.i=@\xd0\xb9.ru\n\nx"
    )
    mail = parse(raw)
    assert mail.header_all("Authentication-Results") == (
        " =?us-ascii?q?mx.sev.gov.ru=3B_dmarc=3Dpass?=",
        " m\x01x.sev.gov.ru; dmarc=pass",
        " mx.sev.gov.ru; dkim=pass header.i=@\xd0\xb9.ru",  # one Latin-1 character per byte
    )
    assert mail.subject == mail.header("Subject") == "s"  # every other field is decoded


# --- parse → triage: unreadable mail is held, big mail is cheap ------------------------------

SUBDOMAINS = TriagePolicy(sender=SenderPolicy(allow_subdomains=True))  # the fixtures write from gbN.sev.gov.ru


def test_a_message_parse_could_read_only_partly_is_quarantined(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(parse_module, "build_tree", broken)
    mail = parse((DATA / "utf8_thunderbird_reply_flowed.eml").read_bytes())
    triaged = triage(mail, Envelope("cli"), TriagePolicy())
    assert (triaged.sender_allowed, triaged.kind) == (False, MailKind.NORMAL)
    assert triaged.sender_reason == Reason("parse.failed", "parse.failed:RuntimeError")
    decision = decide(triaged, Context(), DecidePolicy())
    assert decision.outcome is Outcome.QUARANTINED and decision.quarantine == triaged.sender_reason
    # an admin who releases it gets a ticket from what could be read
    released = triage(mail, Envelope("cli"), TriagePolicy(), release=True)
    assert released.sender_allowed and released.text == triage_module.NO_TEXT


def test_a_step_that_raises_holds_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise ValueError("bug")

    monkeypatch.setattr(triage_module, "read_form", broken)
    mail = load("cp1251_outlook_reply.eml")
    triaged = triage(mail, Envelope("cli"), SUBDOMAINS)
    assert triaged.sender_reason == Reason("triage.failed", "read_request_form: ValueError")
    assert not triaged.sender_allowed and triaged.rules[-1] == "read_request_form"
    assert decide(triaged, Context(), DecidePolicy()).outcome is Outcome.QUARANTINED


def test_a_20_mb_text_body_is_triaged_on_its_head_only(monkeypatch: pytest.MonkeyPatch) -> None:
    line = "Строка длинного журнала ошибок, которую прислали в теле письма.\n"
    body = line * (20 * 1024 * 1024 // len(line.encode()))
    raw = ("From: a@sev.gov.ru\nSubject: журнал\nContent-Type: text/plain; charset=utf-8\n"
           "Content-Transfer-Encoding: 8bit\n\nТелефон: 12345\n" + body).encode()
    seen: list[int] = []
    real_strip, real_form = triage_module.strip_quoted, triage_module.read_form

    def strip(text: str) -> str:
        seen.append(len(text))
        return real_strip(text)

    def form(text: str, *args: object) -> object:
        seen.append(len(text))
        return real_form(text, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(triage_module, "strip_quoted", strip)
    monkeypatch.setattr(triage_module, "read_form", form)
    mail = parse(raw)
    triaged = triage(mail, Envelope("cli"), TriagePolicy())
    assert len(mail.text) > 10_000_000  # the whole text is parsed and archived
    assert seen and max(seen) <= triage_module.MAX_TRIAGE_TEXT + len(triage_module.TRUNCATED_NOTE) + 2
    assert triaged.text.endswith(triage_module.TRUNCATED_NOTE) and triaged.text.startswith("Телефон: 12345")
    assert triaged.form_fields.get("phone") == "12345"


def test_mail_without_text_gets_a_placeholder_after_the_checks() -> None:
    triaged = triage(load("attachment_only_no_text.eml"), Envelope("cli"), SUBDOMAINS)
    assert triaged.text == triage_module.NO_TEXT
    assert "text" in triaged.form_missing  # the form check saw no text
    assert triaged.mail.attachments
