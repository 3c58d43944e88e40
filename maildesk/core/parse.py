"""Raw message bytes to `InboundMail`, never raising, plus the cheap size and shape guard run before it.

Who does what:
- `mime_tree` splits the bytes into MIME entities itself (iterative, capped, lenient
  header blocks, exact bytes of forwarded messages); the stdlib `email.message.Message`
  parses each entity's MIME parameters (RFC 2231 included).  Its docstring says why
  the stdlib feed parser is not used.
- `mime_body` sorts the entities into text and attachments; `mime_text` turns HTML
  into text and finds quoted history.
- `headers_decode` (with `charset_guess`) decodes header values and address lists;
  its docstring says why neither `email.policy.default` nor mail-parser does that.
- mail-parser does what it does best: RFC 5322 dates with obsolete syntax and
  diagnostics (`parse_mail_date`), and base64 bodies repaired the way mail clients
  repair them (`decode_base64_payload`).  Its `MailParser` object is not used for
  the message as a whole: it names unnamed attachments at random (not pure),
  logs, applies NFC to text, re-serialises attached messages (so their bytes
  change), and recurses through the stdlib parser on nested multiparts.

Header values in `InboundMail.headers` are decoded text, with one exception:
`Authentication-Results` is kept as written (folds removed, each byte one Latin-1
character, no RFC 2047 decoding, no control characters dropped).  Decoding is what
let `=?us-ascii?q?mx.sev.gov.ru=3B_dmarc=3Dpass…?=` or `m\x01x.sev.gov.ru; …` pass
for our relay's stamp; `authorize` now sees what the relay and a person would see.

The From field is strict where a mail server is: a From field that follows a line
which is neither a field nor a fold is read (for display, and for an admin's release)
but marked `from.after-broken-header-line`, and authorize treats it as no From: an MTA
takes that line as the start of the body.  An addr-spec holding control, DEL or 8-bit
bytes is marked `from.address-bytes` (the decoded text would have hidden them).

TNEF (`winmail.dat`, application/ms-tnef) is not unpacked: the one Python library,
tnefparse, has had no release since 1.4.0 (January 2021), and parsing an undocumented
binary format from strangers inside the daemon needs a maintained parser.  The file is
kept as an ordinary attachment; the attachment rules judge it like any other file.
"""

from __future__ import annotations

import email.utils
import functools
import re
from dataclasses import dataclass
from datetime import datetime

from mailparser.dates import parse_mail_date

from maildesk.core.charset_guess import Hints, resolve_charset
from maildesk.core.headers_decode import (
    FOLD,
    decode_header_text,
    format_address_list,
    parse_address_list,
    parse_message_ids,
)
from maildesk.core.mime_body import Found, clean_text, collect
from maildesk.core.mime_text import html_to_text, strip_quoted
from maildesk.core.mime_tree import Entity, build_tree, read_head, walk
from maildesk.core.model import Address, InboundMail, Reason

__all__ = [
    "ParseLimits",
    "check_limits",
    "format_address_list",
    "html_to_text",
    "parse",
    "strip_quoted",
]

# parse() is a safety net on its own: far above the limits an admin would set.
_HARD_MAX_DEPTH = 50
_HARD_MAX_PARTS = 10_000

# parse() bounds its own work on hostile input (check_limits refuses such mail first):
# a header value is read up to this size, an address list up to its last comma before it.
_MAX_FIELD = 64 * 1024
_MAX_DATE_FIELD = 1024
_ADDRESS_FIELDS = {"from", "to", "cc", "reply-to"}

_HEAD_END = re.compile(rb"\n\r?\n")
_FIELD_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_FROM_FIELD = re.compile(rb"from[ \t]*:", re.I)
_AUTH_RESULTS = "authentication-results"


@dataclass(frozen=True)
class ParseLimits:
    """Where a message stops being mail maildesk will read (all sizes in bytes)."""

    max_bytes: int = 40 * 1024 * 1024
    max_header_bytes: int = 256 * 1024
    # Base64 lines are 76 characters; a megabyte is far beyond any real mailer,
    # and still lets through the web forms that put a whole body on one line.
    max_line_bytes: int = 1024 * 1024
    max_parts: int = 500
    max_depth: int = 20


@functools.lru_cache(maxsize=8)
def _long_line(limit: int) -> re.Pattern[bytes]:
    # Anchored at line starts, so each byte is looked at a bounded number of times.
    return re.compile(rb"(?m)^[^\n]{%d}" % (limit + 1))


def check_limits(raw: bytes, limits: ParseLimits = ParseLimits()) -> Reason | None:
    """Why `raw` is too big or too deeply built to parse, or None; looks at bytes only, never raises."""
    try:
        if len(raw) > limits.max_bytes:
            return Reason("limits.size", f"{len(raw)} bytes, more than {limits.max_bytes}")
        head_end = _HEAD_END.search(raw)
        head = head_end.start() if head_end else len(raw)
        if head > limits.max_header_bytes:
            return Reason("limits.header", f"header block of {head} bytes, more than {limits.max_header_bytes}")
        if _long_line(limits.max_line_bytes).search(raw):
            return Reason("limits.line", f"a line longer than {limits.max_line_bytes} bytes")
        _, shape = build_tree(raw, limits.max_depth, limits.max_parts)
    except Exception as exc:  # a guard must answer, whatever it was given
        return Reason("limits.unreadable", type(exc).__name__)
    if shape.too_deep:
        return Reason("limits.depth", f"MIME parts nested deeper than {limits.max_depth}")
    if shape.too_many_parts:
        return Reason("limits.parts", f"more than {limits.max_parts} MIME parts")
    return None


# --- headers -------------------------------------------------------------------------


def _charset_hint(root: Entity) -> tuple[str, ...]:
    """The charsets the message's parts declare, in order: the best guesses for raw 8-bit header bytes."""
    found = (entity.charset for entity in walk(root) if entity is root or entity.maintype == "text")
    return tuple(dict.fromkeys(c for c in found if c and resolve_charset(c) not in (None, "ascii", "utf-8")))


def _date(values: list[bytes], defects: list[str]) -> datetime | None:
    if not values:
        return None
    text = decode_header_text(values[0][:_MAX_DATE_FIELD])
    result = parse_mail_date(text)
    defects.extend(f"date.{reason}" for reason in result.reasons)
    if result.value is not None:
        return result.value
    parsed = email.utils.parsedate_tz(text)
    if parsed is None or parsed[9] is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(text)
    except (ValueError, TypeError, OverflowError):
        return None


def _addresses(name: str, values: list[bytes], hint: Hints, defects: list[str]) -> tuple[Address, ...]:
    found: list[Address] = []
    for value in values:
        addresses, problems = parse_address_list(value, hint)
        found.extend(addresses)
        defects.extend(f"{name}.{problem}" for problem in problems)
    return tuple(found)


def _ids(values: list[bytes]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for value in values for i in parse_message_ids(value)))


def _bounded(fields: list[tuple[str, bytes]], defects: list[str]) -> list[tuple[str, bytes]]:
    out = []
    for name, value in fields:
        if len(value) > _MAX_FIELD:
            cut = value.rfind(b",", 0, _MAX_FIELD) + 1 if name.lower() in _ADDRESS_FIELDS else 0
            value = value[: cut or _MAX_FIELD]
            defects.append(f"{name.lower()}.truncated")
        out.append((name, value))
    return out


def _from_after_broken_line(raw: bytes) -> bool:
    """Whether a From field of the top header block comes after a line that is neither a field nor a fold.

    `mime_tree.read_head` is lenient there (banner lines are skipped, a stray line is
    folded into the field above); a mail server is not: its header block ends at that
    line, and what follows, the From field included, is body text.
    """
    pos = raw.find(b"\n") + 1 if raw.startswith(b"From ") else 0  # mbox separator line
    broken = False
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        end = len(raw) if nl < 0 else nl
        line = raw[pos:end].rstrip(b"\r")
        if not line:
            return False
        if _FIELD_LINE.match(line):
            if broken and _FROM_FIELD.match(line):
                return True
        elif line[0] not in b" \t":
            broken = True
        pos = end + 1
    return False


def _header_value(name: str, value: bytes, hint: Hints) -> str:
    """A header value for `InboundMail.headers`: decoded text, or for Authentication-Results as written."""
    if name.lower() == _AUTH_RESULTS:
        return FOLD.sub(b"", value).decode("latin-1")
    return decode_header_text(value, hint)


def _mail(fields: list[tuple[str, bytes]], hint: Hints, found: Found, defects: list[str],
          from_trusted: bool = True) -> InboundMail:
    fields = _bounded(fields, defects)
    by_name: dict[str, list[bytes]] = {}
    for name, value in fields:
        by_name.setdefault(name.lower(), []).append(value)
    if len(by_name.get("from", [])) > 1:
        defects.append("from.multiple-headers")
    elif "from" not in by_name:
        defects.append("from.missing")
    elif not from_trusted:
        defects.append("from.after-broken-header-line")
    message_ids = _ids(by_name.get("message-id", [])[:1])
    pieces = [p for p in found.pieces if p.text.strip() or p.html]
    html = "\n".join(p.html for p in pieces if p.html) or None
    return InboundMail(
        message_id=message_ids[0] if message_ids else None,
        subject=decode_header_text(by_name["subject"][0], hint) if "subject" in by_name else "",
        from_=_addresses("from", by_name.get("from", []), hint, defects),
        to=_addresses("to", by_name.get("to", []), hint, defects),
        cc=_addresses("cc", by_name.get("cc", []), hint, defects),
        reply_to=_addresses("reply-to", by_name.get("reply-to", []), hint, defects),
        in_reply_to=_ids(by_name.get("in-reply-to", [])),
        references=_ids(by_name.get("references", [])),
        date=_date(by_name.get("date", []), defects),
        text="\n\n".join(p.text.strip("\n") for p in pieces if p.text.strip()),
        html=clean_text(html) if html else None,
        attachments=tuple(found.attachments),
        headers=tuple((name, _header_value(name, value, hint)) for name, value in fields),
        defects=tuple(dict.fromkeys(defects + found.defects)),
        content_type="text/html" if any(p.source == "text/html" for p in pieces) else "text/plain",
    )


def _parse(raw: bytes) -> InboundMail:
    root, _ = build_tree(raw, _HARD_MAX_DEPTH, _HARD_MAX_PARTS)
    hint = _charset_hint(root)
    found = collect(root, hint)
    return _mail(root.fields, hint, found, [], not _from_after_broken_line(raw))


def _degraded(raw: bytes, failure: str) -> InboundMail:
    """Headers only, when the body could not be taken apart."""
    try:
        fields, _, defects = read_head(raw, 0, len(raw), True)
        return _mail(fields, (), Found(), [failure, *defects], not _from_after_broken_line(raw))
    except Exception as exc:
        return InboundMail(
            message_id=None, subject="", from_=(), to=(), cc=(), reply_to=(), in_reply_to=(),
            references=(), date=None, text="", html=None, attachments=(), headers=(),
            defects=(failure, f"parse.headers-failed:{type(exc).__name__}"),
        )  # fmt: skip


def parse(raw: bytes) -> InboundMail:
    """Parse a raw message; garbage in gives an InboundMail with `defects` saying what went wrong."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        return _degraded(b"", f"parse.not-bytes:{type(raw).__name__}")
    data = bytes(raw)
    try:
        return _parse(data)
    except Exception as exc:  # never let one message take the daemon down
        return _degraded(data, f"parse.failed:{type(exc).__name__}")
