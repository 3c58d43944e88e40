from __future__ import annotations

import pytest

from maildesk.core import msgid
from maildesk.core.model import TicketRef
from maildesk.core.ticketref import ThreadPolicy, find_refs, strip_tag_and_prefixes, subject_tag
from tests.core.mailfactory import mail

SECRET = b"test-secret"
POLICY = ThreadPolicy(message_id_domain="desk.test", secret=SECRET)
M12 = msgid.mint(12, "0123456789abcdef", SECRET, "desk.test")
M13 = msgid.mint(13, "fedcba9876543210", SECRET, "desk.test")
FORGED = M12.replace("md.12.", "md.99.")
FOREIGN_KEY = msgid.mint(12, "0123456789abcdef", b"other-secret", "desk.test")
OTHER_DOMAIN = msgid.mint(12, "0123456789abcdef", SECRET, "elsewhere.test")


def refs(**kwargs: object) -> tuple[TicketRef, ...]:
    text = kwargs.pop("stripped", None)
    kwargs.setdefault("subject", "Вопрос")
    kwargs.setdefault("text", "")
    return find_refs(mail(**kwargs), POLICY, text=text)  # type: ignore[arg-type]


HEADER_CASES = [
    ("minted in In-Reply-To", {"in_reply_to": (f"<{M12}>",)}, [(12, "minted", M12)]),
    ("minted, brackets already gone", {"in_reply_to": (M12,)}, [(12, "minted", M12)]),
    ("minted in References", {"references": (f"<a@sev.gov.ru> <{M12}>",)},
     [(12, "minted", M12), (None, "references", "a@sev.gov.ru")]),
    ("In-Reply-To before References", {"in_reply_to": (f"<{M13}>",), "references": (f"<{M12}> <{M13}>",)},
     [(13, "minted", M13), (12, "minted", M12)]),
    ("forged mac", {"in_reply_to": (f"<{FORGED}>",)}, [(None, "in_reply_to", FORGED)]),
    ("other key", {"in_reply_to": (f"<{FOREIGN_KEY}>",)}, [(None, "in_reply_to", FOREIGN_KEY)]),
    ("other domain", {"in_reply_to": (f"<{OTHER_DOMAIN}>",)}, [(None, "in_reply_to", OTHER_DOMAIN)]),
    ("raw ids, newest reference first", {"in_reply_to": ("<c@x>",), "references": ("<a@x> <b@x> <c@x>",)},
     [(None, "in_reply_to", "c@x"), (None, "references", "b@x"), (None, "references", "a@x")]),
    ("references split over values", {"references": ("<a@x>", "<b@x>")},
     [(None, "references", "b@x"), (None, "references", "a@x")]),
    ("garbage in In-Reply-To", {"in_reply_to": ("Your message of Monday",)}, []),
    ("id with comment", {"in_reply_to": ("<a@x> (Иванова's message)",)}, [(None, "in_reply_to", "a@x")]),
    ("no headers", {}, []),
]


@pytest.mark.parametrize("name, kwargs, expected", HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_reply_headers(name: str, kwargs: dict[str, object], expected: list[tuple[object, str, str]]) -> None:
    assert [(r.number, r.signal, r.value) for r in refs(**kwargs)] == expected


def test_minted_ids_not_trusted_without_a_secret() -> None:
    found = find_refs(mail(in_reply_to=(f"<{M12}>",)), ThreadPolicy(message_id_domain="desk.test"))
    assert [(r.number, r.signal) for r in found] == [(None, "in_reply_to")]


def test_references_are_capped_to_the_newest() -> None:
    many = " ".join(f"<r{i}@x>" for i in range(200))
    found = find_refs(mail(references=(many,)), ThreadPolicy(max_references=3))
    assert [r.value for r in found] == ["r199@x", "r198@x", "r197@x"]


TAGGED = [
    ("[СТП #123] Не работает МИС", 123),
    ("Re: [СТП #123] Не работает МИС", 123),
    ("RE: RE: [СТП #123] Не работает МИС", 123),
    ("Fwd: [СТП #123] x", 123),
    ("Fw: [СТП #123] x", 123),
    ("FW: [СТП #123] x", 123),
    ("AW: [СТП #123] x", 123),
    ("Ответ: [СТП #123] x", 123),
    ("Отв: [СТП #123] x", 123),
    ("Пересл: [СТП #123] x", 123),
    ("Re[2]: [СТП #123] x", 123),
    ("Автоответ: Re: [СТП #123] x", 123),
    ("[стп #123]", 123),
    ("[Стп #123]", 123),
    ("[ стп  # 123 ]", 123),
    ("[СТП#123]", 123),
    ("[СТП № 123]", 123),
    ("x [СТП #7] y", 7),
    ("[СТП #000123]", 123),
    ("[СТП #999999999]", 999999999),
]

UNTAGGED = [
    "[СТП #]",
    "[СТП #0]",
    "[СТП #1234567890]",
    "[СТП #١٢٣]",  # Arabic-Indic digits
    "[СТП #１２３]",  # fullwidth digits
    "[СТП #12a]",
    "[СТП #-12]",
    "СТП #12",
    "[STP #12]",
    "[CTП #12]",  # Latin C and T
    "[СТП 12]",
    "Заявка №12",  # a body reference, not a tag
]


@pytest.mark.parametrize("subject, number", TAGGED)
def test_subject_tag_found(subject: str, number: int) -> None:
    assert [(r.number, r.signal) for r in refs(subject=subject)] == [(number, "subject_tag")]


@pytest.mark.parametrize("subject", UNTAGGED)
def test_subject_without_a_valid_tag(subject: str) -> None:
    assert refs(subject=subject) == ()


def test_several_tags_in_order_without_duplicates() -> None:
    found = refs(subject="Re: [СТП #5] Fwd: [СТП #3] [СТП #5]")
    assert [r.number for r in found] == [5, 3]


def test_configured_tag() -> None:
    policy = ThreadPolicy(tag="HELP")
    assert [r.number for r in find_refs(mail(subject="Re: [help #42] x", text=""), policy)] == [42]
    assert find_refs(mail(subject="[СТП #42] x", text=""), policy) == ()


BODY = [
    ("Заявка №123", 123),
    ("по заявке № 123 ничего не сделано", 123),
    ("заявка #123", 123),
    ("по заявке N 123", 123),
    ("По заявке N123", 123),
    ("прошу закрыть заявку №77", 77),
    ("в заявке №45 ошибка", 45),
    ("заявки № 8 и 9", 8),
    ("Обращение №5", 5),
    ("см. [СТП #9]", 9),
    ("ЗАЯВКА №11", 11),
]
NOT_BODY = [
    "заявки 5 штук",
    "заявка 123",
    "заявка №1234567890",
    "перезаявка №5",
    "заявка №0",
    "Заявка № ٣",
]


@pytest.mark.parametrize("text, number", BODY)
def test_body_reference(text: str, number: int) -> None:
    assert [(r.number, r.signal) for r in refs(text=text)][:1] == [(number, "body")]


@pytest.mark.parametrize("text", NOT_BODY)
def test_no_body_reference(text: str) -> None:
    assert refs(text=text) == ()


def test_body_reference_only_in_new_text() -> None:
    full = "Спасибо, всё работает.\n\n> Заявка №5 решена.\n"
    assert refs(text=full, stripped="Спасибо, всё работает.") == ()
    assert [r.number for r in refs(text=full)] == [5]


def test_order_of_strength() -> None:
    found = refs(
        in_reply_to=(f"<{M12}>",), references=("<orig@sev.gov.ru>",), subject="Re: [СТП #12] x", text="заявка №4",
    )
    assert [r.signal for r in found] == ["minted", "references", "subject_tag", "body"]
    assert [r.number for r in found] == [12, None, 12, 4]


@pytest.mark.parametrize("number, tag, expected", [(123, "СТП", "[СТП #123]"), (1, "HELP", "[HELP #1]")])
def test_subject_tag(number: int, tag: str, expected: str) -> None:
    assert subject_tag(number, tag) == expected


def test_subject_tag_round_trip() -> None:
    found = refs(subject=f"Re: {subject_tag(314)} Не печатается талон")
    assert [r.number for r in found] == [314]


STRIP = [
    ("Re: [СТП #12] Не работает МИС", "Не работает МИС"),
    ("RE: Fwd: Ответ: тема", "тема"),
    ("[СТП #12] Re: тема", "тема"),
    ("Re[3]: тема", "тема"),
    ("Re(2): тема", "тема"),
    ("  Re :  тема   письма ", "тема письма"),
    ("Отв: Пересл: тема", "тема"),
    ("AW: WG: тема", "тема"),
    ("FW: тема [ стп # 5 ]", "тема"),
    ("Тема без префикса", "Тема без префикса"),
    ("Regarding: отчёт", "Regarding: отчёт"),
    ("Ответственный: Иванов", "Ответственный: Иванов"),
    ("Fwd:", ""),
    ("", ""),
]


@pytest.mark.parametrize("subject, expected", STRIP)
def test_strip_tag_and_prefixes(subject: str, expected: str) -> None:
    assert strip_tag_and_prefixes(subject) == expected
