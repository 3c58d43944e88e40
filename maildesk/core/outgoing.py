"""Outgoing mail, composed purely: rendered parts and header values in, RFC 5322 bytes out.

compose() runs inside the ingest transaction, twice per incoming mail, so it writes the
message out directly rather than building an `EmailMessage` and flattening it: that cost
several milliseconds a message, spent in the header registry, the content manager and the
generator redoing work this module does itself. The result is what the email package wrote
with the SMTP policy and 7-bit bodies: the same fields in the same order, folded and encoded
the same way, transfer encodings chosen by the same rule, CRLF line ends. Only the boundary
differs: it is derived from the bodies, so the same input always gives the same bytes.
Date and Message-ID values out of the ordinary are still left to the email package.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import base64mime, quoprimime
from email import policy as email_policy
from email.utils import format_datetime
from types import MappingProxyType

AUTO_SUBMITTED = ("auto-replied", "auto-generated", "no")
MAX_REFERENCES = 11  # the root and the last ten: enough for every threading client
MAX_REFERENCES_CHARS = 2000

# Headers compose() owns; extra_headers may not replace them.
_OWN_HEADERS = frozenset({
    "from", "sender", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id",
    "in-reply-to", "references", "auto-submitted", "x-auto-response-suppress",
    "mime-version", "return-path",
})
_ADDR_SPEC = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_MSG_ID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]{1,250}")  # printable ASCII without < and >
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]{1,76}")
_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|tr|antw|ответ|отв|пересл|пересылка)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*)+",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Rendered:
    """One notification as its template made it: subject line, plain text and HTML."""

    subject: str
    text: str
    html: str


class RenderError(Exception):
    """A notification could not be rendered (missing template, missing context key)."""


def clean_header_text(value: str, limit: int = 200) -> str:
    """A value from mail made safe for a header: one line, no controls, at most `limit` characters."""
    # Every line break, Unicode's included, becomes a space before anything else, so words stay apart.
    value = " ".join(value.split())
    # Cc: controls; Cf: bidi overrides, zero-width and other invisible formatting; Cs: lone surrogates.
    if not value.isprintable():  # a printable string has none of them: skip the slow look at each
        value = "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
        value = " ".join(value.split())
    # The email package decodes RFC 2047 syntax found in plain text and would write what it
    # decodes (line breaks included) back into the header: an "=?" never survives as one.
    value = value.replace("=?", "= ?")
    if len(value) > limit:
        end = max(limit - 1, 0)
        while end > 0 and unicodedata.combining(value[end]):
            end -= 1  # never part a letter from its combining marks: cut before the letter
        value = value[:end].rstrip() + "…"
    return value


def check_address(address: str) -> str:
    """The address itself when it is one plain ASCII addr-spec; ValueError otherwise."""
    if not isinstance(address, str) or len(address) > 254 or not _ADDR_SPEC.fullmatch(address):
        raise ValueError(f"not a plain mail address: {address!r}")
    return address


def reply_subject(tag: str, subject: str) -> str:
    """The tag first, then the subject without reply prefixes or any tag of the same kind."""
    rest = _same_kind_tags(tag).sub(" ", subject) if tag.strip() else subject
    previous = None
    while previous != rest:
        previous, rest = rest, _REPLY_PREFIX.sub("", rest).strip()
    return clean_header_text(f"{tag} {rest}" if rest else tag)


def _same_kind_tags(tag: str) -> re.Pattern[str]:
    """A pattern for the tag with any ticket number, tolerant of case and spacing."""
    parts = [r"\s*\d+" if part.isdigit() else re.escape(part) for part in re.split(r"(\d+)", tag.strip())]
    flexible = "".join(parts).replace(r"\ ", r"\s*")
    flexible = re.sub(r"^\\\[", r"\\[\\s*", flexible)
    return re.compile(re.sub(r"\\\]$", r"\\s*\\]", flexible), re.IGNORECASE)


def compose(
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
    """A multipart/alternative message (text and HTML, UTF-8) ready for SMTP, with CRLF endings."""
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

    fields: list[str] = []  # folded, each with its CRLF
    names: set[str] = set()

    def add(name: str, value: str) -> None:
        fields.append(_field(name, value))
        names.add(name.lower())

    add("From", _mailbox(clean_header_text(from_name), check_address(from_address)))
    add("To", ", ".join(check_address(a) for a in to))
    if cc:
        add("Cc", ", ".join(check_address(a) for a in cc))
    add("Reply-To", check_address(reply_to))
    add("Subject", clean_header_text(rendered.subject))
    fields.append(_date_field(date))
    fields.append(_message_id_field(own_id))
    names.update(("date", "message-id"))
    if parent:
        add("In-Reply-To", f"<{parent}>")
    thread = trim_references([*references, *([in_reply_to] if in_reply_to else [])])
    if thread:
        add("References", " ".join(f"<{ident}>" for ident in thread))
    add("Auto-Submitted", auto_submitted)
    # Out-of-office notices, read and delivery receipts: the desk can do nothing with them.
    add("X-Auto-Response-Suppress", "All")
    if ticket_number is not None:
        # A hint for recognising our own mail; the minted Message-ID is the proof.
        add("X-Maildesk-Ticket", str(int(ticket_number)))
    for name, value in extra_headers.items():
        if name.lower() in names:
            raise ValueError(f"extra header {name!r} is already set")
        value = clean_header_text(value, limit=900)
        add(_extra_name(name), value)
    text = _text_part("plain", _text_body(rendered.text))
    html = _text_part("html", _text_body(rendered.html))
    boundary = _boundary(text, html)
    return "".join((
        *fields,
        "MIME-Version: 1.0\r\n",  # at the top level only
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n',
        "\r\n",
        f"--{boundary}\r\n", text,
        f"\r\n--{boundary}\r\n", html,
        f"\r\n--{boundary}--\r\n",
    )).encode("ascii")


def trim_references(ids: Sequence[str]) -> list[str]:
    """Valid, distinct ids (no brackets) in order: the root and the last ten, within a sane length."""
    seen: dict[str, None] = {}
    for raw in ids:
        ident = _msg_id(raw)
        if ident is not None:
            seen.pop(ident, None)  # a repeated id keeps its latest place: the parent must stay last
            seen[ident] = None
    kept = list(seen)
    if len(kept) > MAX_REFERENCES:
        kept = kept[:1] + kept[-(MAX_REFERENCES - 1):]
    while len(kept) > 2 and sum(len(i) + 3 for i in kept) > MAX_REFERENCES_CHARS:
        del kept[1]  # the middle of a thread matters least
    return kept


def _msg_id(value: str | None) -> str | None:
    """The id without angle brackets, or None when it is not a printable ASCII token."""
    if not isinstance(value, str):
        return None
    ident = value.strip()
    if ident.startswith("<") and ident.endswith(">"):
        ident = ident[1:-1]
    return ident if _MSG_ID.fullmatch(ident) else None


def _mailbox(name: str, address: str) -> str:
    """`"Name" <address>`, the name quoted when ASCII and RFC 2047-encoded otherwise."""
    if not name:
        return address
    if name.isascii():
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{address}>'
    return f"{_encoded_words(name, width=72)} <{address}>"  # "From: " and a 72-character word fit in 78


def _encoded_words(text: str, width: int = 68) -> str:
    """RFC 2047 encoded-words of at most `width` characters (68: "Subject: " and one fit in 78).

    Words are kept whole where they fit, each carrying its following space inside, because
    readers drop the space between encoded-words (and some put one back in the wrong place).
    Each chunk is encoded the way the legacy `Header` class encodes it (see `_header_words`),
    not by the modern folder: that one, in Python 3.11, now and then loses a space there, and
    can write out line breaks it decoded from look-alike encoded-words in plain text.
    """
    if text.isascii():
        return text
    most = (width - len("=?utf-8?b??=")) // 4 * 3  # UTF-8 bytes whose base64 fits the width
    chunks, chunk = [], ""
    for word in re.findall(r"\S+\s*", text):
        if chunk and len((chunk + word).encode()) > most:
            chunks.append(chunk)
            chunk = ""
        chunk += word
    chunks.append(chunk)
    return " ".join(" ".join(_header_words(c, width)) for c in chunks)


# "=?utf-8?b?" and "?=": what an encoded-word adds to its encoded text
_CHROME = len("=?utf-8?b??=")
# The length of every octet in the Q encoding of a header (1 or 3), as quoprimime counts it.
_Q_LENGTHS = bytes(quoprimime.header_length(bytes([octet])) for octet in range(256))


def _header_words(text: str, width: int) -> list[str]:
    """The encoded-words `Header(text, "utf-8").encode(maxlinelen=width + 1)` writes, in order.

    Same choice (B when its text is strictly shorter than Q's, for the whole chunk), same
    split (as many characters as fit: width + 1 on the first line, width on the next ones,
    chrome included) and the same encoders. `Header` finds each split by re-encoding the line
    after every character, which made a Cyrillic subject cost 0.4 ms; the lengths only add
    up, so they are counted here as they grow.
    """
    data = text.encode("utf-8")
    if not data:
        return []
    b_length, q_length = base64mime.header_length(data), sum(data.translate(_Q_LENGTHS))
    b_encoding = b_length < q_length
    encode = base64mime.header_encode if b_encoding else quoprimime.header_encode
    room = width + 1 - _CHROME
    if (b_length if b_encoding else q_length) <= room:
        return [encode(data, charset="utf-8")]  # the usual case: the chunk was cut to fit
    words: list[str] = []
    start = octets = q_length = 0
    for index, char in enumerate(text):
        char_data = char.encode("utf-8")
        octets += len(char_data)
        q_length += sum(char_data.translate(_Q_LENGTHS))
        if ((octets + 2) // 3 * 4 if b_encoding else q_length) > room:
            words.append(encode(text[start:index].encode("utf-8"), charset="utf-8"))
            start, octets, q_length = index, len(char_data), sum(char_data.translate(_Q_LENGTHS))
            room = width - _CHROME
    words.append(encode(text[start:].encode("utf-8"), charset="utf-8"))
    return words


def _extra_name(name: str) -> str:
    if not _FIELD_NAME.fullmatch(name) or name.lower() in _OWN_HEADERS or name.lower().startswith("content-"):
        raise ValueError(f"extra header not allowed: {name!r}")
    return name


def _text_body(value: str) -> str:
    """Line endings normalised; one final newline."""
    return value.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n") + "\n"


def _field(name: str, value: str) -> str:
    """A header maildesk encodes itself: one line of ASCII tokens, folded only between tokens.

    Used for every header compose() writes except Date, Message-ID and the MIME ones. Msg-ids
    stay whole (the email package would RFC 2047-encode an id longer than a line, which
    breaks threading), and encoded-words keep their spaces inside them. Lines are folded at
    78 where a token allows it; a longer token has a line of its own.
    """
    lines, line = [], f"{name}:"
    for token in _encoded_words(value).split():
        if len(line) + 1 + len(token) > 78 and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + token
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


# RFC 5322 dot-atom-text: what a msg-id's halves are in every id maildesk mints or keeps
_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_PLAIN_MSG_ID = re.compile(f"{_DOT_ATOM}@{_DOT_ATOM}")
_PLAIN_DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}")
# The email package's own folding, kept for the Date and Message-ID values that are not plain.
_STDLIB_POLICY = email_policy.SMTP.clone(cte_type="7bit")


def _date_field(date: datetime) -> str:
    value = format_datetime(date)
    if _PLAIN_DATE.fullmatch(value):
        return f"Date: {value}\r\n"
    # An offset in seconds, or a zone without one: whatever the email package makes of it.
    return str(_STDLIB_POLICY.header_factory("Date", date).fold(policy=_STDLIB_POLICY))


def _message_id_field(own_id: str) -> str:
    line = f"Message-ID: <{own_id}>"
    if len(line) <= 78 and _PLAIN_MSG_ID.fullmatch(own_id):
        return line + "\r\n"
    # A long id goes on a line of its own when that makes it fit, and an id that is not
    # dot-atom@dot-atom is written however the package's parser reads it: both are left to
    # the package, so that they come out exactly as when it wrote the whole message.
    return str(_STDLIB_POLICY.header_factory("Message-ID", f"<{own_id}>").fold(policy=_STDLIB_POLICY))


# Bodies as the email package's content manager writes text with the SMTP policy and 7-bit
# transfer encodings: lines at most 78 octets, so that any relay takes the message,
# 8BITMIME or not.
_MAX_LINE = 78


def _text_part(subtype: str, text: str) -> str:
    """One text/* body part in UTF-8, headers and body, CRLF line ends, the body ending in CRLF."""
    cte, body = _transfer_encoded(text)
    return f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}'


def _transfer_encoded(text: str) -> tuple[str, str]:
    """The transfer encoding and the encoded body, chosen as the email package chooses them.

    7bit when the text is ASCII in short lines; otherwise quoted-printable or base64, whichever
    encodes the first ten lines shorter (so Cyrillic travels as base64, a Latin text with a
    few accents as quoted-printable).
    """
    lines = text.encode("utf-8").splitlines()
    if text.isascii() and max((len(x) for x in lines), default=0) <= _MAX_LINE:
        return "7bit", b"\r\n".join(lines).decode("ascii") + "\r\n"
    sniff = b"\r\n".join(lines[:10]) + b"\r\n"
    sniff_b64 = (len(sniff) + 2) // 3 * 4 + 1  # what binascii.b2a_base64(sniff) would make, newline included
    # Quoted-printable is never shorter than its characters' own lengths, so when those alone
    # lose (any Cyrillic text), the sniff need not be encoded to know that base64 wins.
    sniff_qp = None if sum(sniff.translate(_QP_BODY_LENGTHS)) > sniff_b64 else _qp(sniff)
    if sniff_qp is None or len(sniff_qp) > sniff_b64:
        # The canonical CRLF form, 57 octets (76 characters, no padding) a line.
        encoded = binascii.b2a_base64(b"\r\n".join(lines) + b"\r\n", newline=False).decode("ascii")
        return "base64", "".join(encoded[i:i + 76] + "\r\n" for i in range(0, len(encoded), 76))
    if len(lines) > 10:
        sniff_qp = _qp(b"\n".join(lines) + b"\n")
    return "quoted-printable", sniff_qp.replace("\n", "\r\n")


def _qp(data: bytes) -> str:
    return quoprimime.body_encode(data.decode("latin-1"), _MAX_LINE)


# The length of every octet in a quoted-printable body (1 or 3), a CRLF counting as the one
# newline it becomes.
_QP_BODY_LENGTHS = bytes(
    0 if octet == ord("\r") else 1 if octet == ord("\n") else quoprimime.body_length(bytes([octet]))
    for octet in range(256)
)


def _boundary(*parts: str) -> str:
    """A boundary derived from the parts; "=_" never occurs in base64 or quoted-printable text.

    A 7bit part could hold anything, so the delimiter is searched for anyway (finding it would
    take a part that contains a hash of itself) and the hash taken again until it is absent.
    """
    digest = hashlib.blake2b("".join(parts).encode("ascii"), digest_size=15)
    while True:
        boundary = "=_md_" + digest.hexdigest()
        if not any(f"--{boundary}" in part for part in parts):
            return boundary
        digest.update(b"again")
