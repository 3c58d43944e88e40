"""Outgoing mail, composed purely: rendered parts and header values in, RFC 5322 bytes out."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.header import Header
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
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

    msg = EmailMessage(policy=POLICY)
    msg["From"] = _mailbox(clean_header_text(from_name), check_address(from_address))
    msg["To"] = ", ".join(check_address(a) for a in to)
    if cc:
        msg["Cc"] = ", ".join(check_address(a) for a in cc)
    msg["Reply-To"] = check_address(reply_to)
    msg["Subject"] = clean_header_text(rendered.subject)
    msg["Date"] = date
    msg["Message-ID"] = f"<{own_id}>"
    if parent:
        msg["In-Reply-To"] = f"<{parent}>"
    thread = trim_references([*references, *([in_reply_to] if in_reply_to else [])])
    if thread:
        msg["References"] = " ".join(f"<{ident}>" for ident in thread)
    msg["Auto-Submitted"] = auto_submitted
    # Out-of-office notices, read and delivery receipts: the desk can do nothing with them.
    msg["X-Auto-Response-Suppress"] = "All"
    if ticket_number is not None:
        # A hint for recognising our own mail; the minted Message-ID is the proof.
        msg["X-Maildesk-Ticket"] = str(int(ticket_number))
    for name, value in extra_headers.items():
        if name.lower() in msg:
            raise ValueError(f"extra header {name!r} is already set")
        msg[_extra_name(name)] = clean_header_text(value, limit=900)
    msg.set_content(_text_body(rendered.text), subtype="plain", charset="utf-8")
    msg.add_alternative(_text_body(rendered.html), subtype="html", charset="utf-8")
    for part in msg.iter_parts():
        del part["MIME-Version"]  # belongs to the top level only
    return msg.as_bytes()


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
    The legacy `Header` class is used on purpose: the modern folder of Python 3.11 now and
    then loses a space there, and can write out line breaks it decoded from look-alike
    encoded-words in plain text.
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
    return " ".join(" ".join(Header(c, "utf-8").encode(maxlinelen=width + 1).split()) for c in chunks)


def _extra_name(name: str) -> str:
    if not _FIELD_NAME.fullmatch(name) or name.lower() in _OWN_HEADERS or name.lower().startswith("content-"):
        raise ValueError(f"extra header not allowed: {name!r}")
    return name


def _text_body(value: str) -> str:
    """Line endings normalised; one final newline."""
    return value.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n") + "\n"


class _Prepared:
    """A header maildesk encodes itself: one line of ASCII tokens, folded only between tokens.

    Used for every header compose() writes except Date, Message-ID and the MIME ones. Msg-ids
    stay whole (the email package would RFC 2047-encode an id longer than a line, which
    breaks threading), and encoded-words keep their spaces inside them.
    """

    max_count = None

    @classmethod
    def parse(cls, value: str, kwds: dict[str, object]) -> None:
        kwds["parse_tree"] = None
        kwds["decoded"] = " ".join(_encoded_words(value).split())

    def fold(self, *, policy: email_policy.Policy) -> str:
        name = self.name  # type: ignore[attr-defined]
        lines, line = [], f"{name}:"
        for token in str(self).split():
            if len(line) + 1 + len(token) > (policy.max_line_length or 78) and line != f"{name}:":
                lines.append(line)
                line = ""
            line += " " + token
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


def _header_registry() -> HeaderRegistry:
    registry = HeaderRegistry(default_class=_Prepared)  # References, In-Reply-To, X-*, extras
    for name in ("subject", "from", "to", "cc", "reply-to"):
        registry.map_to_type(name, _Prepared)
    return registry


# CRLF, lines folded at 78, and 7-bit bodies (base64 or quoted-printable, whichever is
# shorter) so that any relay takes the message, 8BITMIME or not.
POLICY = email_policy.SMTP.clone(cte_type="7bit", header_factory=_header_registry())
