"""maildesk's parser against the golden snapshots of Zammad's email parser (106 real-world mails).

The snapshots are Zammad's own output, not a statement of what is right; where
maildesk answers differently on purpose, EXCEPTIONS says why.  An excepted value
must still differ: when it starts to match, the entry is stale and the test says so.

Normalisation before comparing: a missing Subject is "" here and None in Zammad;
`to` and `cc` are rendered by `format_address_list`, which writes a mailbox the way
Zammad does (bare address without a name, `Name <a@b>`, the name quoted when it
holds specials or non-ASCII).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from pathlib import Path
from typing import Any

import yaml

from maildesk.core.model import InboundMail
from maildesk.core.parse import check_limits, format_address_list, parse

FIELDS = ("subject", "from_email", "from_display_name", "to", "cc")
EXPECTED_BOXES = 106  # the whole corpus: a folder with fewer is a broken copy, and must not pass as a smaller one

_NO_MAILBOX = "holds no RFC 5322 mailbox; maildesk yields no Address rather than guess one for the authorizer"
_REPLY_TO = "has no usable From mailbox; Zammad falls back to Reply-To, maildesk must not (authorization reads From)"
_LF_8BIT = (
    "the part is 8bit with CRLF lines; maildesk gives 7bit and 8bit bodies LF line ends alike "
    "(RFC 2045 makes both line-oriented), Zammad converts only 7bit ones; the content is the same"
)

EXCEPTIONS: dict[str, dict[str, str]] = {
    "mail006": {"to": "To is `=?…?= (hans@example.com)`: a word and a comment, " + _NO_MAILBOX},
    "mail075": {"to": "To is `=?…?= (hans@example.com)`: a word and a comment, " + _NO_MAILBOX},
    "mail016": {"from_email": "no From header at all; " + _REPLY_TO},
    "mail019": {"from_email": "From is `\"我\" <>`, an empty address; " + _REPLY_TO},
    "mail018": {
        "subject": "the encoded-word is in unicode-1-1-utf-7; maildesk decodes `+ANw-` to `Ü` "
        "(`Übermittlungsstatus`), Zammad leaves the UTF-7 undecoded",
    },
    "mail027": {
        "subject": "the encoded-word decodes to CR LF before the text; maildesk drops control characters "
        "from header values (no display form, and echoed in a notification they could split a header)",
    },
    "mail035": {"from_email": 'From is one quoted word `"finances8@…"`, no domain outside the quotes: ' + _NO_MAILBOX},
    "mail037": {
        "to": "the name `Max Kohl | [example.com]` holds `[` `]`, so maildesk quotes it; Zammad's "
        "mail library failed to parse the field and echoed it unquoted",
    },
    "mail046": {
        "from_display_name": "raw 8-bit GB2312 name; maildesk reads it in the charset the message declares "
        "(武兰成), Zammad's snapshot is mojibake (ÎäŔźłÉ)",
        "attachment 转发：整体提升企业服务水平.eml": _LF_8BIT,
    },
    "mail053": {
        "from_email": "From is `MAILER-DAEMON (Mail Delivery System)`: a local part without a domain; " + _NO_MAILBOX,
        "from_display_name": "follows from_email: no mailbox, so no name",
    },
    "mail065": {
        "from_display_name": "the encoded-word `=?iso-8859-1?Q?B=FCrling,=20Andreas?=` holds a comma; maildesk "
        "keeps the word whole (`Bürling, Andreas`), Zammad splits it at the comma (`=20Andreas?=`)",
    },
    "mail069": {"attachment Online-apotheke. Günstigster Preis. Ohne Rezepte.eml": _LF_8BIT},
    "mail071": {
        "from_email": "`power quadrant system@example.com` has spaces in the local part; " + _NO_MAILBOX,
        "from_display_name": "follows from_email: no mailbox, so no name",
    },
    "mail076": {
        "from_email": 'From is `"…"@example.com>` with a stray `>`; ' + _NO_MAILBOX,
        "from_display_name": "follows from_email: no mailbox, so no name",
    },
    "mail085": {
        "attachment document.html": "Apple Mail writes the body as multipart/mixed of two inline text/html parts "
        "(the reply, then signature and quote); maildesk reads both as body text, Zammad files the second",
    },
    "mail087": {
        "from_email": "From is `Test test@example.com` (a name without angle brackets); " + _NO_MAILBOX,
        "from_display_name": "follows from_email: no mailbox, so no name",
        "attachment file": "the untyped part with no disposition is text/plain by RFC 2045's default, so "
        "maildesk reads it as the mail's text; Zammad files it as an attachment",
    },
    "mail093": {
        "to": "the name is an encoded-word ending in a space (`駅北口 `); maildesk trims and quotes it, "
        "Zammad pastes the decoded word into the raw field",
    },
}


class _RubyYamlLoader(yaml.SafeLoader):
    """PyYAML loader for Psych output: Ruby hashes as dicts, `!binary` as bytes."""


_RubyYamlLoader.add_multi_constructor("!ruby/hash:", lambda loader, _, node: loader.construct_mapping(node, deep=True))
_RubyYamlLoader.add_constructor("!binary", lambda loader, node: base64.b64decode(loader.construct_scalar(node)))


def _expected(box: Path) -> dict[str, Any]:
    with box.with_suffix(".yml").open("rb") as stream:
        return yaml.load(stream, Loader=_RubyYamlLoader)  # a SafeLoader: no arbitrary objects


def _ours(mail: InboundMail) -> dict[str, str]:
    sender = mail.from_[0] if mail.from_ else None
    return {
        "subject": mail.subject,
        "from_email": sender.email if sender else "",
        "from_display_name": sender.name if sender else "",
        "to": format_address_list(mail.to),
        "cc": format_address_list(mail.cc),
    }


@functools.lru_cache(maxsize=4)
def _parsed(box: Path) -> InboundMail:
    return parse(box.read_bytes())


def _md5(data: bytes | str) -> str:
    return hashlib.md5(data if isinstance(data, bytes) else data.encode("utf-8"), usedforsecurity=False).hexdigest()


def test_parses_without_exception_in_a_few_seconds(box: Path) -> None:
    raw = box.read_bytes()
    started = time.perf_counter()
    mail = parse(raw)
    assert time.perf_counter() - started < 3.0
    assert isinstance(mail, InboundMail)
    assert "parse.failed" not in " ".join(mail.defects)


def test_is_within_the_default_limits(box: Path) -> None:
    assert check_limits(box.read_bytes()) is None


def test_fields_match_snapshot(box: Path) -> None:
    expected, ours = _expected(box), _ours(_parsed(box))
    excepted = EXCEPTIONS.get(box.stem, {})
    wrong, stale = {}, {}
    for key in (k for k in FIELDS if k in expected):
        want = expected[key] if expected[key] is not None else ""
        if key in excepted and ours[key] == want:
            stale[key] = excepted[key]
        elif key not in excepted and ours[key] != want:
            wrong[key] = (ours[key], want)
    assert not wrong, f"(maildesk, Zammad) differ: {wrong}"
    assert not stale, f"stale exceptions, maildesk now matches Zammad: {stale}"


def test_every_snapshot_attachment_is_found(box: Path) -> None:
    ours = {_md5(a.data) for a in _parsed(box).attachments}
    excepted = EXCEPTIONS.get(box.stem, {})
    for attachment in _expected(box).get("attachments") or []:
        if (attachment.get("preferences") or {}).get("content-alternative"):
            continue  # Zammad's copy of the HTML body: maildesk keeps it in InboundMail.html
        found = _md5(attachment["data"]) in ours
        reason = excepted.get(f"attachment {attachment['filename']}")
        if reason:
            assert not found, f"stale exception, maildesk now finds it: {reason}"
        else:
            assert found, f"missing attachment {attachment['filename']!r}"


def test_the_whole_corpus_is_there(corpus: Path) -> None:
    boxes = sorted(corpus.glob("*.box"))
    assert len(boxes) == EXPECTED_BOXES, f"{len(boxes)} .box files in {corpus}, expected {EXPECTED_BOXES}"
    assert [b.name for b in boxes if not b.with_suffix(".yml").is_file()] == [], "every box has its snapshot"


def test_exceptions_name_corpus_files(corpus: Path) -> None:
    assert [name for name in EXCEPTIONS if not (corpus / f"{name}.box").is_file()] == []


def test_exceptions_name_real_files_and_keys(box: Path) -> None:
    if box.stem not in EXCEPTIONS:
        return
    expected = _expected(box)
    names = {f"attachment {a['filename']}" for a in expected.get("attachments") or []}
    for key in EXCEPTIONS[box.stem]:
        assert key in FIELDS and key in expected or key in names, key
