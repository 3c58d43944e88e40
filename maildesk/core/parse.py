"""Raw message bytes to `InboundMail`, never raising, plus the cheap size and shape guard run before it.

Who does what:
- `mime_tree` splits the bytes into MIME entities itself (iterative, capped, lenient
  header blocks, exact bytes of forwarded messages); the stdlib `email.message.Message`
  parses each entity's MIME parameters (RFC 2231 included).
- `headers_decode` decodes header values, charsets and address lists; its docstring
  says why neither `email.policy.default` nor mail-parser is used for that.
- mail-parser does what it does best: RFC 5322 dates with obsolete syntax and
  diagnostics (`parse_mail_date`), and base64 bodies repaired the way mail clients
  repair them (`decode_base64_payload`).  Its `MailParser` object is not used for
  the message as a whole: it names unnamed attachments at random (not pure),
  logs, applies NFC to text, re-serialises attached messages (so their bytes
  change), and recurses through the stdlib parser on nested multiparts.
"""

from __future__ import annotations

import email.utils
import functools
import re
from dataclasses import dataclass, field
from datetime import datetime

from mailparser.dates import parse_mail_date

from maildesk.core.headers_decode import (
    Hints,
    clean_header_text,
    decode_bytes,
    decode_header_text,
    format_address_list,
    parse_address_list,
    parse_message_ids,
    resolve_charset,
)
from maildesk.core.mime_text import html_to_text, strip_quoted
from maildesk.core.mime_tree import Entity, build_tree, read_head, walk
from maildesk.core.model import Address, Attachment, InboundMail, Reason

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

_HEAD_END = re.compile(rb"\n\r?\n")
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_BODY_TYPES = ("text/plain", "text/html")
_MESSAGE_TYPES = ("message/rfc822", "message/global")
_EXTENSIONS = {
    "text/plain": ".txt",
    "text/html": ".html",
    "text/csv": ".csv",
    "text/calendar": ".ics",
    "text/rfc822-headers": ".txt",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/pgp-signature": ".asc",
    "application/pgp-encrypted": ".asc",
    "application/pkcs7-signature": ".p7s",
    "application/pkcs7-mime": ".p7m",
    "application/x-pkcs7-signature": ".p7s",
    "application/x-pkcs7-mime": ".p7m",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/pjpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
}


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


# --- body and attachments -------------------------------------------------------------


@dataclass
class _Piece:
    """One run of body text and, when it came from HTML, that HTML."""

    text: str
    html: str | None
    source: str


@dataclass
class _Found:
    """What a walk over the entity tree collected."""

    pieces: list[_Piece] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


def _clean_text(text: str) -> str:
    """LF line breaks and no control characters: they break storage and display."""
    return _TEXT_CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _decoded_text(entity: Entity, found: _Found) -> str:
    text, clean = decode_bytes(entity.body(), entity.charset)
    if not clean:
        found.defects.append("charset.decode-error")
    return _clean_text(text)


def _filename(entity: Entity, hint: Hints) -> str | None:
    """The decoded file name: RFC 2231, RFC 2047 or raw 8-bit, from Content-Disposition or Content-Type."""
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        value = entity.param(param, header)
        if isinstance(value, tuple):
            charset, _, text = value
            name = decode_bytes(text.encode("latin-1", "replace"), charset or None, hint)[0]
        elif value:
            name = decode_header_text(value.encode("latin-1", "replace"), hint)
        else:
            continue
        name = clean_header_text(name).strip()
        if name:
            return name
    if entity.cte in ("x-uuencode", "uuencode", "uue", "x-uue"):
        begin = re.search(rb"^begin [0-7]+ ([^\r\n]+)", entity.buf[entity.start : entity.end], re.M)
        if begin:
            return decode_bytes(begin.group(1).strip(), None, hint)[0]
    return None


def _subject_of(entity: Entity, hint: Hints) -> str:
    for name, value in entity.fields:
        if name.lower() == "subject":
            return decode_header_text(value, hint)
    return ""


def _default_name(entity: Entity, number: int, hint: Hints) -> str:
    if entity.kind == "message" and entity.children:
        subject = re.sub(r"[\\/]+", " ", _subject_of(entity.children[0], hint)).strip()
        return f"{subject or 'message'}.eml"
    return f"attachment-{number}{_EXTENSIONS.get(entity.content_type, '')}"


def _attach(entity: Entity, found: _Found, hint: Hints) -> None:
    content_id = str(entity.mime.get("content-id") or "").strip().strip("<>").strip() or None
    disposition = entity.disposition
    found.attachments.append(
        Attachment(
            filename=_filename(entity, hint) or _default_name(entity, len(found.attachments) + 1, hint),
            content_type=entity.content_type,
            data=entity.body(),
            inline=disposition == "inline" or (disposition is None and content_id is not None),
            content_id=content_id,
        )
    )


def _is_body_text(entity: Entity, hint: Hints) -> bool:
    return (
        entity.kind == "leaf"
        and entity.content_type in _BODY_TYPES
        and entity.disposition != "attachment"
        and _filename(entity, hint) is None
    )


def _related_root(entity: Entity) -> int:
    start = entity.param("start")
    if isinstance(start, str):
        wanted = start.strip().strip("<>")
        for i, child in enumerate(entity.children):
            if str(child.mime.get("content-id") or "").strip().strip("<>") == wanted:
                return i
    return 0


def _alternative(entity: Entity, found: _Found, role: str, hint: Hints) -> None:
    """Text from the first plain branch with words in it, HTML from the last HTML branch."""
    branches = []
    for child in entity.children:
        branch = _Found()
        _collect(child, branch, role, hint)
        found.attachments.extend(branch.attachments)
        found.defects.extend(branch.defects)
        branches.append(branch.pieces)
    if role != "body":
        return
    plain = next((b for b in branches if all(p.source == "text/plain" for p in b) and _words(b)), None)
    rich = next((b for b in reversed(branches) if any(p.html for p in b)), None)
    chosen = plain or rich or next((b for b in branches if _words(b)), [])
    html = "\n".join(p.html for p in rich if p.html) if rich else None
    text = "\n\n".join(p.text for p in chosen if p.text.strip())
    found.pieces.append(_Piece(text, html, "text/plain" if chosen is plain else "text/html"))


def _words(pieces: list[_Piece]) -> bool:
    return any(p.text.strip() for p in pieces)


def _collect(entity: Entity, found: _Found, role: str, hint: Hints) -> None:
    """Sort an entity into body text and attachments.

    role "body": text parts are the message text; "attach": everything is a file;
    "forwarded": inside an attached message, whose text lives in its .eml.
    """
    found.defects.extend(entity.defects)
    if entity.kind == "message":
        _attach(entity, found, hint)
        for child in entity.children:
            _collect(child, found, "forwarded", hint)
    elif entity.kind == "multipart":
        subtype, children = entity.subtype, entity.children
        if role != "attach" and subtype == "alternative":
            _alternative(entity, found, role, hint)
        elif role != "attach" and subtype in ("related", "signed", "report") and children:
            root = _related_root(entity) if subtype == "related" else 0
            for i, child in enumerate(children):
                _collect(child, found, role if i == root else "attach", hint)
        else:
            inner = "attach" if subtype == "encrypted" else role
            for child in children:
                _collect(child, found, inner, hint)
    elif role != "attach" and _is_body_text(entity, hint):
        if role == "body":
            text = _decoded_text(entity, found)
            if entity.content_type == "text/html":
                found.pieces.append(_Piece(html_to_text(text), text, "text/html"))
            else:
                found.pieces.append(_Piece(text, None, "text/plain"))
    else:
        _attach(entity, found, hint)


# --- headers -------------------------------------------------------------------------


def _charset_hint(root: Entity) -> tuple[str, ...]:
    """The charsets the message's parts declare, in order: the best guesses for raw 8-bit header bytes."""
    found = (entity.charset for entity in walk(root) if entity is root or entity.maintype == "text")
    return tuple(dict.fromkeys(c for c in found if c and resolve_charset(c) not in (None, "ascii", "utf-8")))


def _date(values: list[bytes], defects: list[str]) -> datetime | None:
    if not values:
        return None
    text = decode_header_text(values[0])
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


def _mail(fields: list[tuple[str, bytes]], hint: Hints, found: _Found, defects: list[str]) -> InboundMail:
    by_name: dict[str, list[bytes]] = {}
    for name, value in fields:
        by_name.setdefault(name.lower(), []).append(value)
    if len(by_name.get("from", [])) > 1:
        defects.append("from.multiple-headers")
    elif "from" not in by_name:
        defects.append("from.missing")
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
        html=_clean_text(html) if html else None,
        attachments=tuple(found.attachments),
        headers=tuple((name, decode_header_text(value, hint)) for name, value in fields),
        defects=tuple(dict.fromkeys(defects + found.defects)),
        content_type="text/html" if any(p.source == "text/html" for p in pieces) else "text/plain",
    )


def _parse(raw: bytes) -> InboundMail:
    root, _ = build_tree(raw, _HARD_MAX_DEPTH, _HARD_MAX_PARTS)
    hint = _charset_hint(root)
    found = _Found()
    _collect(root, found, "body", hint)
    return _mail(root.fields, hint, found, [])


def _degraded(raw: bytes, failure: str) -> InboundMail:
    """Headers only, when the body could not be taken apart."""
    try:
        fields, _, defects = read_head(raw, 0, len(raw), True)
        return _mail(fields, (), _Found(), [failure, *defects])
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
