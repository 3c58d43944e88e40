"""Which parts of a MIME tree are the message's text and which are its attachments."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from maildesk.core.charset_guess import Hints, decode_bytes
from maildesk.core.headers_decode import clean_header_text, decode_header_text
from maildesk.core.mime_text import html_to_text, unflow
from maildesk.core.mime_tree import Entity
from maildesk.core.model import Attachment

_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_BODY_TYPES = ("text/plain", "text/html")
# html.parser reads about a megabyte a second: past this, the text is read from the start only
# (the whole HTML is still kept in InboundMail.html).
_MAX_HTML_TO_TEXT = 4 * 1024 * 1024
_META_CHARSET = re.compile(rb"<meta[^>]*charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)
# Names for attachments that come without one, so that the same mail always names them the same.
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


@dataclass
class Piece:
    """One run of body text and, when it came from HTML, that HTML."""

    text: str
    html: str | None
    source: str


@dataclass
class Found:
    """What a walk over the entity tree collected."""

    pieces: list[Piece] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


def clean_text(text: str) -> str:
    """LF line breaks and no control characters: they break storage and display."""
    return _TEXT_CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _declared_charset(entity: Entity, data: bytes) -> str | None:
    """The part's charset parameter, or for HTML the one its <meta> tag names."""
    if entity.charset or entity.content_type != "text/html":
        return entity.charset
    meta = _META_CHARSET.search(data, 0, 4096)
    return meta.group(1).decode("ascii") if meta else None


def _decoded_text(entity: Entity, found: Found) -> str:
    data = entity.body()
    declared = _declared_charset(entity, data)
    text, clean = decode_bytes(data, declared)
    if not clean:
        found.defects.append("charset.decode-error" if declared else "charset.undeclared-8bit")
    return clean_text(text)


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


def _attach(entity: Entity, found: Found, hint: Hints) -> None:
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


def _alternative(entity: Entity, found: Found, role: str, hint: Hints) -> None:
    """Text from the first plain branch with words in it, HTML from the last HTML branch."""
    branches = []
    for child in entity.children:
        branch = Found()
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
    found.pieces.append(Piece(text, html, "text/plain" if chosen is plain else "text/html"))


def _piece(entity: Entity, text: str, found: Found) -> Piece:
    if entity.content_type == "text/html":
        if len(text) > _MAX_HTML_TO_TEXT:
            found.defects.append("html.text-truncated")
        return Piece(html_to_text(text[:_MAX_HTML_TO_TEXT]), text, "text/html")
    if str(entity.param("format") or "").lower() == "flowed":
        text = unflow(text, str(entity.param("delsp") or "").lower() == "yes")
    return Piece(text, None, "text/plain")


def _words(pieces: list[Piece]) -> bool:
    return any(p.text.strip() for p in pieces)


def _collect(entity: Entity, found: Found, role: str, hint: Hints) -> None:
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
            found.pieces.append(_piece(entity, _decoded_text(entity, found), found))
    else:
        _attach(entity, found, hint)


def collect(root: Entity, hint: Hints) -> Found:
    """The text pieces and attachments of a message, in document order."""
    found = Found()
    _collect(root, found, "body", hint)
    return found
