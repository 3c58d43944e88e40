from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from maildesk.core.authorize import SenderPolicy, authorize, sender_address
from maildesk.core.model import Address, Reason
from maildesk.core.parse import parse
from maildesk.core.triage import TriagePolicy, triage
from tests.core.mailfactory import envelope, mail

POLICY = SenderPolicy(agents=("Petrov@SevMiac.ru",))
SUB = replace(POLICY, allow_subdomains=True)
ME = "ivanova@sev.gov.ru"


def one(name: str, address: str) -> tuple[Address, ...]:
    return (Address(name, address),)


FROM_CASES: list[tuple[str, dict[str, Any], SenderPolicy, str | None, str | None]] = [
    # (id, mail kwargs, policy, normalised address when allowed, reason code when refused)
    ("display name and address", {}, POLICY, ME, None),
    ("bare address", {"from_header": ME}, POLICY, ME, None),
    ("angle address only", {"from_header": f"<{ME}>"}, POLICY, ME, None),
    ("upper case normalised", {"from_header": "Иванова <IVANOVA@SEV.GOV.RU>"}, POLICY, ME, None),
    ("quoted name with comma", {"from_header": f'"Иванова, Мария" <{ME}>'}, POLICY, ME, None),
    ("quoted name with parens", {"from_header": f'"Иванова (ГБ 1)" <{ME}>'}, POLICY, ME, None),
    ("name is the address itself", {"from_header": f"\"'{ME}'\" <{ME}>"}, POLICY, ME, None),
    ("unquoted name is the address", {"from_header": f"{ME} <{ME}>", "from_": one(ME, ME)}, POLICY, ME, None),
    ("escaped quote in name", {"from_header": f'"Иванова \\"ГБ\\"" <{ME}>'}, POLICY, ME, None),
    ("subdomain when allowed", {"from_header": "a@mo1.sev.gov.ru"}, SUB, "a@mo1.sev.gov.ru", None),
    ("deep subdomain when allowed", {"from_header": "a@x.mo1.sev.gov.ru"}, SUB, "a@x.mo1.sev.gov.ru", None),
    ("agent from another domain", {"from_header": "Петров <petrov@sevmiac.ru>"}, POLICY, "petrov@sevmiac.ru", None),
    # the From field itself
    ("no From field", {"from_header": None}, POLICY, None, "sender.no_from"),
    ("empty From", {"from_header": ""}, POLICY, None, "sender.no_from"),
    ("two From fields", {"from_header": [ME, "evil@x.com"]}, POLICY, None, "sender.multiple_from"),
    ("two identical From fields", {"from_header": [ME, ME]}, POLICY, None, "sender.multiple_from"),
    ("two mailboxes", {"from_header": f"{ME}, b@sev.gov.ru"}, POLICY, None, "sender.several_mailboxes"),
    ("comma hidden from parser", {"from_header": f"{ME}, <evil@x.com>", "from_": one("", ME)}, POLICY, None,
     "sender.several_mailboxes"),
    ("group", {"from_header": f"Отдел: {ME};", "from_": one("", ME)}, POLICY, None, "sender.group"),
    ("group with angle", {"from_header": f"Отдел: Иванова <{ME}>;", "from_": one("Иванова", ME)}, POLICY, None,
     "sender.group"),
    ("empty group", {"from_header": "undisclosed-recipients:;"}, POLICY, None, "sender.no_from"),
    ("comment after address", {"from_header": f"{ME} (Иванова)"}, POLICY, None, "sender.comment"),
    ("comment hiding a real domain", {"from_header": "evil@x.com (admin@sev.gov.ru)"}, POLICY, None,
     "sender.comment"),
    ("comment inside angle", {"from_header": "<ivanova(x)@sev.gov.ru>", "from_": one("", ME)}, POLICY, None,
     "sender.comment"),
    ("address in quoted name, other domain", {"from_header": '"admin@sev.gov.ru" <evil@x.com>'}, POLICY, None,
     "sender.display_name_address"),
    ("address in quoted name, same domain", {"from_header": f'"admin@sev.gov.ru" <{ME}>'}, POLICY, None,
     "sender.display_name_address"),
    ("unquoted address-like name, parser took the name", {"from_header": "admin@sev.gov.ru <evil@x.com>",
     "from_": one("", "admin@sev.gov.ru")}, POLICY, None, "sender.ambiguous"),
    ("unquoted address-like name, parser took the angle", {"from_header": "admin@sev.gov.ru <evil@x.com>",
     "from_": one("admin@sev.gov.ru", "evil@x.com")}, POLICY, None, "sender.display_name_address"),
    ("parser defect in From", {"from_header": "admin@sev.gov.ru", "from_": one("", "admin@sev.gov.ru"),
     "defects": ("From: InvalidHeaderDefect: invalid address in address-list",)}, POLICY, None,
     "sender.header_defect"),
    ("defect elsewhere is not ours", {"defects": ("Subject: NonASCIILocalPartDefect",)}, POLICY, ME, None),
    ("two angle addresses", {"from_header": f"<{ME}> <evil@x.com>", "from_": one("", ME)}, POLICY, None,
     "sender.ambiguous"),
    ("text after angle", {"from_header": f"<{ME}> evil", "from_": one("", ME)}, POLICY, None, "sender.trailing_text"),
    ("unbalanced angle", {"from_header": f"Иванова <{ME}", "from_": one("Иванова", ME)}, POLICY, None,
     "sender.malformed"),
    ("stray closing angle", {"from_header": f"{ME}>", "from_": one("", ME)}, POLICY, None, "sender.malformed"),
    ("unbalanced quote", {"from_header": f'"Иванова <{ME}>', "from_": one("Иванова", ME)}, POLICY, None,
     "sender.malformed"),
    ("parser disagrees", {"from_header": f"<{ME}>", "from_": one("", "other@sev.gov.ru")}, POLICY, None,
     "sender.ambiguous"),
    # the address
    ("encoded-word in address", {"from_header": "<=?utf-8?q?admin?=@sev.gov.ru>",
     "from_": one("", "admin@sev.gov.ru")}, POLICY, None, "sender.encoded_word"),
    ("quoted local part", {"from_header": 'Иванова <"ivanova"@sev.gov.ru>',
     "from_": one("Иванова", '"ivanova"@sev.gov.ru')}, POLICY, None, "sender.quoted_local_part"),
    ("quoted local part, bare", {"from_header": '"iva nova"@sev.gov.ru', "from_": one("", '"iva nova"@sev.gov.ru')},
     POLICY, None, "sender.quoted_local_part"),
    ("cyrillic е in domain", {"from_header": "ivanova@sеv.gov.ru"}, POLICY, None, "sender.non_ascii"),
    ("cyrillic о in domain", {"from_header": "ivanova@sev.gоv.ru"}, POLICY, None, "sender.non_ascii"),
    ("cyrillic ѕ in domain", {"from_header": "ivanova@ѕev.gov.ru"}, POLICY, None, "sender.non_ascii"),
    ("mixed look-alikes", {"from_header": "Admin <admin@ѕеv.gоv.ru>"}, POLICY, None, "sender.non_ascii"),
    ("cyrillic р in local part", {"from_header": "рetrov@sevmiac.ru"}, POLICY, None, "sender.non_ascii"),
    ("cyrillic а in local part", {"from_header": "ivаnova@sev.gov.ru"}, POLICY, None, "sender.non_ascii"),
    ("fullwidth domain", {"from_header": "ivanova@ｓｅｖ.ｇｏｖ.ｒｕ"}, POLICY, None, "sender.non_ascii"),
    ("zero-width space", {"from_header": "iva\u200bnova@sev.gov.ru"}, POLICY, None, "sender.non_ascii"),
    ("punycode look-alike", {"from_header": "ivanova@xn--sv-jlc.gov.ru"}, POLICY, None, "sender.domain_not_allowed"),
    ("trailing dot", {"from_header": "ivanova@sev.gov.ru."}, POLICY, None, "sender.trailing_dot"),
    ("trailing dot in angle", {"from_header": "Иванова <ivanova@sev.gov.ru.>",
     "from_": one("Иванова", "ivanova@sev.gov.ru.")}, POLICY, None, "sender.trailing_dot"),
    ("two at signs", {"from_header": "<ivanova@sev.gov.ru@evil.com>",
     "from_": one("", "ivanova@sev.gov.ru@evil.com")}, POLICY, None, "sender.malformed"),
    ("ip literal", {"from_header": "<ivanova@[10.0.0.1]>", "from_": one("", "ivanova@[10.0.0.1]")}, POLICY, None,
     "sender.malformed"),
    ("empty label", {"from_header": "ivanova@sev..gov.ru", "from_": one("", "ivanova@sev..gov.ru")}, POLICY, None,
     "sender.malformed"),
    ("leading dot local", {"from_header": "<.ivanova@sev.gov.ru>", "from_": one("", ".ivanova@sev.gov.ru")},
     POLICY, None, "sender.malformed"),
    ("no at sign", {"from_header": "<ivanova>", "from_": one("", "ivanova")}, POLICY, None, "sender.malformed"),
    ("source route", {"from_header": "<@relay:ivanova@sev.gov.ru>", "from_": one("", "ivanova@sev.gov.ru")},
     POLICY, None, "sender.malformed"),
    ("bidi override in name", {"from_header": f"\u202eанавонИ <{ME}>"}, POLICY, None, "sender.display_name_control"),
    # the domain
    ("other domain", {"from_header": "a@mail.ru"}, POLICY, None, "sender.domain_not_allowed"),
    ("domain as prefix", {"from_header": "a@sev.gov.ru.evil.com"}, POLICY, None, "sender.domain_not_allowed"),
    ("domain as suffix of a label", {"from_header": "a@evil-sev.gov.ru"}, SUB, None, "sender.domain_not_allowed"),
    ("xsev never", {"from_header": "a@xsev.gov.ru"}, SUB, None, "sender.domain_not_allowed"),
    ("subdomain when not allowed", {"from_header": "a@mo1.sev.gov.ru"}, POLICY, None, "sender.domain_not_allowed"),
    ("parent domain", {"from_header": "a@gov.ru"}, SUB, None, "sender.domain_not_allowed"),
    ("agent with trailing dot", {"from_header": "petrov@sevmiac.ru."}, POLICY, None, "sender.trailing_dot"),
]


@pytest.mark.parametrize("name, kwargs, policy, address, code", FROM_CASES, ids=[c[0] for c in FROM_CASES])
def test_from_field(name: str, kwargs: dict[str, Any], policy: SenderPolicy, address: str | None,
                    code: str | None) -> None:
    result = authorize(mail(**kwargs), envelope(None), policy)
    assert (result.allowed, result.reason.code if result.reason else None) == (code is None, code)
    if code is None:
        assert result.address == address
    assert not result.authenticated
    if result.reason:
        assert result.reason.detail.isascii()


def test_agent_is_recognised() -> None:
    result = authorize(mail(from_header="PETROV@sevmiac.ru"), envelope(None), POLICY)
    assert (result.allowed, result.is_agent, result.address) == (True, True, "petrov@sevmiac.ru")


def test_requester_is_not_an_agent() -> None:
    assert authorize(mail(), envelope(None), POLICY).is_agent is False


def test_sender_address_returns_reason_or_address() -> None:
    assert sender_address(mail()) == ME
    assert isinstance(sender_address(mail(from_header=[ME, ME])), Reason)


RELAY = SenderPolicy(authentication="trusted-relay", authserv_id="mx.sev.gov.ru", agents=("petrov@sevmiac.ru",))
PASS = "mx.sev.gov.ru; spf=pass smtp.mailfrom=sev.gov.ru; dkim=pass header.d=sev.gov.ru; " \
       "dmarc=pass (p=reject dis=none) header.from=sev.gov.ru"

AUTH_CASES: list[tuple[str, tuple[str, ...], str, SenderPolicy, bool, str | None]] = [
    # (id, Authentication-Results values, From, policy, authenticated, reason code)
    ("pass", (PASS,), ME, RELAY, True, None),
    ("pass with version", ("mx.sev.gov.ru 1; dmarc=pass header.from=sev.gov.ru",), ME, RELAY, True, None),
    ("case-insensitive", ("MX.SEV.GOV.RU; DMARC=Pass header.from=SEV.GOV.RU",), ME, RELAY, True, None),
    ("quoted header.from", ('mx.sev.gov.ru; dmarc=pass header.from="sev.gov.ru"',), ME, RELAY, True, None),
    ("folded", ("mx.sev.gov.ru;\r\n\tdmarc=pass\r\n\theader.from=sev.gov.ru",), ME, RELAY, True, None),
    ("foreign header ignored", ("mx.evil.com; dmarc=fail header.from=sev.gov.ru", PASS), ME, RELAY, True, None),
    ("agent must pass too", ("mx.sev.gov.ru; dmarc=pass header.from=sevmiac.ru",), "petrov@sevmiac.ru", RELAY,
     True, None),
    ("missing", (), ME, RELAY, False, "sender.auth_missing"),
    ("only foreign", ("mx.evil.com; dmarc=pass header.from=sev.gov.ru",), ME, RELAY, False, "sender.auth_missing"),
    ("authserv-id as a prefix", ("mx.sev.gov.ru.evil.com; dmarc=pass header.from=sev.gov.ru",), ME, RELAY, False,
     "sender.auth_missing"),
    ("duplicated (forged one came along)", (PASS, PASS), ME, RELAY, False, "sender.auth_duplicated"),
    ("duplicated, one fails", ("mx.sev.gov.ru; dmarc=fail header.from=sev.gov.ru", PASS), ME, RELAY, False,
     "sender.auth_duplicated"),
    ("dmarc fail", ("mx.sev.gov.ru; dmarc=fail header.from=sev.gov.ru",), ME, RELAY, False, "sender.auth_failed"),
    ("dmarc none", ("mx.sev.gov.ru; dmarc=none header.from=sev.gov.ru",), ME, RELAY, False, "sender.auth_failed"),
    ("dmarc temperror", ("mx.sev.gov.ru; dmarc=temperror header.from=sev.gov.ru",), ME, RELAY, False,
     "sender.auth_failed"),
    ("pass only in a comment", ("mx.sev.gov.ru; dmarc=fail (dmarc=pass) header.from=sev.gov.ru",), ME, RELAY, False,
     "sender.auth_failed"),
    ("header.from mismatch", ("mx.sev.gov.ru; dmarc=pass header.from=evil.com",), ME, RELAY, False,
     "sender.auth_mismatch"),
    ("header.from missing", ("mx.sev.gov.ru; dmarc=pass",), ME, RELAY, False, "sender.auth_mismatch"),
    ("organisational domain is not the From domain", ("mx.sev.gov.ru; dmarc=pass header.from=sev.gov.ru",),
     "a@mo1.sev.gov.ru", replace(RELAY, allow_subdomains=True), False, "sender.auth_mismatch"),
    ("spf and dkim only", ("mx.sev.gov.ru; spf=pass smtp.mailfrom=sev.gov.ru; dkim=pass header.d=sev.gov.ru",), ME,
     RELAY, False, "sender.auth_no_dmarc"),
    ("none", ("mx.sev.gov.ru; none",), ME, RELAY, False, "sender.auth_no_dmarc"),
    ("two dmarc results", ("mx.sev.gov.ru; dmarc=pass header.from=sev.gov.ru; dmarc=fail header.from=sev.gov.ru",),
     ME, RELAY, False, "sender.auth_ambiguous"),
    ("unbalanced comment", ("mx.sev.gov.ru; dmarc=pass (p=reject header.from=sev.gov.ru",), ME, RELAY, False,
     "sender.auth_unparseable"),
    ("stray parenthesis", ("mx.sev.gov.ru; dmarc=pass) header.from=sev.gov.ru",), ME, RELAY, False,
     "sender.auth_unparseable"),
    ("no resinfo", ("mx.sev.gov.ru",), ME, RELAY, False, "sender.auth_unparseable"),
    ("method without result", ("mx.sev.gov.ru; dmarc header.from=sev.gov.ru",), ME, RELAY, False,
     "sender.auth_unparseable"),
    ("no authserv-id configured", (PASS,), ME, replace(RELAY, authserv_id=""), False, "sender.auth_misconfigured"),
    ("domain refused, identity still vouched", ("mx.sev.gov.ru; dmarc=pass header.from=evil.com",), "a@evil.com",
     RELAY, True, "sender.domain_not_allowed"),
    ("domain refused before auth", (), "a@evil.com", RELAY, False, "sender.domain_not_allowed"),
    ("mode none never authenticates", (PASS,), ME, SenderPolicy(), False, None),
]


@pytest.mark.parametrize("name, results, sender, policy, authenticated, code", AUTH_CASES,
                         ids=[c[0] for c in AUTH_CASES])
def test_authentication_results(name: str, results: tuple[str, ...], sender: str, policy: SenderPolicy,
                                authenticated: bool, code: str | None) -> None:
    headers = tuple(("Authentication-Results", r) for r in results)
    result = authorize(mail(from_header=sender, headers=headers), envelope(None), policy)
    assert (result.allowed, result.authenticated, result.reason.code if result.reason else None) == (
        code is None, authenticated, code)


STRICT_ENVELOPE = SenderPolicy(require_envelope_match=True)
ENVELOPE_CASES = [
    ("same domain", ME, STRICT_ENVELOPE, None),
    ("bracketed, upper case", "<IVANOVA@SEV.GOV.RU>", STRICT_ENVELOPE, None),
    ("other mailbox, same domain", "noreply@sev.gov.ru", STRICT_ENVELOPE, None),
    ("unknown (imap)", None, STRICT_ENVELOPE, None),
    ("other domain", "bounce@evil.com", STRICT_ENVELOPE, "sender.envelope_mismatch"),
    ("subdomain of From domain", "a@mx.sev.gov.ru", STRICT_ENVELOPE, "sender.envelope_mismatch"),
    ("null sender", "", STRICT_ENVELOPE, "sender.envelope_mismatch"),
    ("check off", "bounce@evil.com", SenderPolicy(), None),
]


@pytest.mark.parametrize("name, mail_from, policy, code", ENVELOPE_CASES, ids=[c[0] for c in ENVELOPE_CASES])
def test_envelope_match(name: str, mail_from: str | None, policy: SenderPolicy, code: str | None) -> None:
    result = authorize(mail(), envelope(mail_from), policy)
    assert (result.allowed, result.reason.code if result.reason else None) == (code is None, code)


# --- through parse(): the From field and Authentication-Results as they arrive ---------------


def raw_mail(from_value: bytes, *results: bytes, extra: bytes = b"") -> bytes:
    fields = b"".join(b"Authentication-Results: " + r + b"\r\n" for r in results)
    return (b"Received: from mx.sev.gov.ru by desk\r\n" + fields + b"From: " + from_value + b"\r\n"
            b"To: help@miac.sev.gov.ru\r\nSubject: test\r\nMessage-ID: <t1@sev.gov.ru>\r\n" + extra +
            b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nbody\r\n")


RAW_FROM_CASES: list[tuple[str, bytes, str | None]] = [
    # (id, From value as written, reason code; None when allowed)
    ("plain", b"Ivanova <ivanova@sev.gov.ru>", None),
    ("encoded name split mid-character", b"=?UTF-8?B?0Jg=?= =?UTF-8?B?0LLQsNC90L7QstCw?= <ivanova@sev.gov.ru>", None),
    ("raw windows-1251 name", b"\xc8\xe2\xe0\xed\xee\xe2\xe0 <ivanova@sev.gov.ru>", None),
    ("control byte in the domain", b"a@sev.gov.r\x01u", "sender.header_defect"),
    ("control byte in the angle", b"Ivanova <a@sev.gov.r\x01u>", "sender.header_defect"),
    ("DEL in the domain", b"a@sev.gov\x7f.ru", "sender.header_defect"),
    ("8-bit byte read as a C1 control", b"a@sev.gov.r\x85u", "sender.header_defect"),
    ("NUL in the local part", b"iva\x00nova@sev.gov.ru", "sender.header_defect"),
    ("bare CR in the domain", b"a@sev.gov.r\ru", "sender.header_defect"),
    ("raw UTF-8 look-alike domain", b"ivanova@s\xd0\xb5v.gov.ru", "sender.header_defect"),
    ("encoded-word as the local part", b"<=?utf-8?q?admin?=@sev.gov.ru>", "sender.encoded_word"),
    ("encoded-word as the whole address", b"=?utf-8?q?admin=40sev.gov.ru?=", "sender.no_from"),
    ("encoded name showing an address", b"=?utf-8?q?admin=40sev.gov.ru?= <evil@x.example>",
     "sender.display_name_address"),
    ("encoded bidi override in the name", b"=?utf-8?b?4oCu0LDQvdCw0LLQvtC90Lg=?= <ivanova@sev.gov.ru>",
     "sender.display_name_control"),
    ("control byte in the name is dropped", b"Iva\x01nova <ivanova@sev.gov.ru>", None),
    ("comment", b"ivanova@sev.gov.ru (Ivanova)", "sender.comment"),
    ("group", b"Otdel: ivanova@sev.gov.ru;", "sender.group"),
]


@pytest.mark.parametrize("name, value, code", RAW_FROM_CASES, ids=[c[0] for c in RAW_FROM_CASES])
def test_from_field_through_parse(name: str, value: bytes, code: str | None) -> None:
    result = authorize(parse(raw_mail(value)), envelope(None), POLICY)
    assert (result.allowed, result.reason.code if result.reason else None) == (code is None, code)
    if code is None:
        assert result.address == ME


def test_from_after_a_broken_header_line_through_parse() -> None:
    raw = b"Subject: s\r\nGARBAGE\r\nFrom: ivanova@sev.gov.ru\r\n\r\nbody\r\n"
    result = authorize(parse(raw), envelope(None), POLICY)
    assert (result.allowed, result.reason.code if result.reason else None) == (False, "sender.no_from")


GOOD = b"mx.sev.gov.ru; dmarc=pass header.from=sev.gov.ru"
RAW_AUTH_CASES: list[tuple[str, tuple[bytes, ...], bool, str | None]] = [
    # (id, Authentication-Results values as written, authenticated, reason code)
    ("pass", (GOOD,), True, None),
    ("pass, folded", (b"mx.sev.gov.ru;\r\n\tdmarc=pass\r\n header.from=sev.gov.ru",), True, None),
    ("forged as one encoded-word", (b"=?us-ascii?q?mx.sev.gov.ru=3B_dmarc=3Dpass_header.from=3Dsev.gov.ru?=",),
     False, "sender.auth_unparseable"),
    ("forged encoded-word beside ours", (b"=?us-ascii?q?mx.sev.gov.ru=3B_dmarc=3Dpass_header.from=3Dsev.gov.ru?=",
                                         GOOD), False, "sender.auth_unparseable"),
    ("forged with a control byte in the id", (b"m\x01x.sev.gov.ru; dmarc=pass header.from=sev.gov.ru",), False,
     "sender.auth_unparseable"),
    ("forged with a control byte at the end", (b"mx.sev.gov.ru\x00; dmarc=pass header.from=sev.gov.ru",), False,
     "sender.auth_unparseable"),
    ("forged with a bare CR", (b"mx.sev.gov.ru; dmarc=pass\rheader.from=sev.gov.ru",), False,
     "sender.auth_unparseable"),
    ("encoded-word later in ours", (b"mx.sev.gov.ru; dmarc=pass header.from==?utf-8?q?sev.gov.ru?=",), False,
     "sender.auth_unparseable"),
    ("8-bit byte in ours", (b"mx.sev.gov.ru; dmarc=pass header.from=sev.gov.ru\xa0",), False,
     "sender.auth_unparseable"),
    ("fullwidth look-alike id", ("ｍｘ.sev.gov.ru; dmarc=pass header.from=sev.gov.ru".encode(),), False,
     "sender.auth_unparseable"),
    ("someone else's, with 8-bit bytes, ignored", (b"mx.evil.example; dkim=pass header.i=@\xd0\xb9.ru", GOOD), True,
     None),
    ("someone else's encoded-word, ignored", (b"=?utf-8?q?mx.evil.example=3B?= dmarc=pass", GOOD), True, None),
    ("only forged", (b"=?utf-8?q?mx.evil.example?=; dmarc=pass header.from=sev.gov.ru",), False,
     "sender.auth_missing"),
]


@pytest.mark.parametrize("name, results, authenticated, code", RAW_AUTH_CASES, ids=[c[0] for c in RAW_AUTH_CASES])
def test_authentication_results_through_parse(name: str, results: tuple[bytes, ...], authenticated: bool,
                                              code: str | None) -> None:
    result = authorize(parse(raw_mail(b"ivanova@sev.gov.ru", *results)), envelope(None), RELAY)
    assert (result.allowed, result.authenticated, result.reason.code if result.reason else None) == (
        code is None, authenticated, code)


def test_a_released_agent_mail_that_failed_authentication_is_not_an_agent_mail() -> None:
    forged = parse(raw_mail(b"Petrov <petrov@sevmiac.ru>", b"mx.sev.gov.ru; dmarc=fail header.from=sevmiac.ru",
                            extra=b"X-Note: forged\r\n"))
    policy = TriagePolicy(sender=RELAY)
    held = triage(forged, envelope(None), policy)
    assert (held.sender_allowed, held.sender_is_agent, held.sender_reason.code if held.sender_reason else None) == (
        False, False, "sender.auth_failed")
    released = triage(forged, envelope(None), policy, release=True)
    assert (released.sender_allowed, released.sender, released.sender_is_agent) == (True, "petrov@sevmiac.ru", False)
    genuine = parse(raw_mail(b"Petrov <petrov@sevmiac.ru>", b"mx.sev.gov.ru; dmarc=pass header.from=sevmiac.ru"))
    assert triage(genuine, envelope(None), policy, release=True).sender_is_agent
