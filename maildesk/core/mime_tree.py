"""Split raw message bytes into a tree of MIME entities, keeping each one's exact bytes.

Why not the stdlib feed parser: it recurses once per nesting level (hostile mail
with thousands of nested multiparts ends in RecursionError), it gives up on a
header block at the first line that is not a header (a stray base64 line, a
broken fold, a banner before the headers), and it re-parses `message/rfc822`
parts so that the forwarded message's own bytes are gone.  This splitter walks
the bytes iteratively with hard caps, is lenient where mail clients are, and
only hands single header blocks to the stdlib `Message` for MIME parameters
(RFC 2231 continuations and all).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import errors
from email.message import Message
from email.utils import collapse_rfc2231_value

from mailparser.utils import decode_base64_payload

_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_MIME_FIELDS = {"content-type", "content-disposition", "content-transfer-encoding", "content-id"}
_MESSAGE_TYPES = {"message/rfc822", "message/global"}
_UUENCODE = {"x-uuencode", "uuencode", "uue", "x-uue"}

Ranges = list[tuple[int, int]]


@dataclass
class Entity:
    """One MIME entity: its header fields, its body's place in `buf`, and its children."""

    buf: bytes
    fields: list[tuple[str, bytes]]
    mime: Message
    start: int
    end: int
    depth: int
    kind: str = "leaf"  # leaf, multipart, message
    children: list[Entity] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    forced_type: str | None = None

    @property
    def content_type(self) -> str:
        return self.forced_type or self.mime.get_content_type()

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    @property
    def subtype(self) -> str:
        return self.content_type.partition("/")[2]

    @property
    def cte(self) -> str:
        return str(self.mime.get("content-transfer-encoding", "")).strip().lower()

    @property
    def disposition(self) -> str | None:
        return self.mime.get_content_disposition()

    def param(self, name: str, header: str = "content-type") -> str | tuple[str, str, str] | None:
        try:
            return self.mime.get_param(name, header=header)
        except (ValueError, IndexError, TypeError):  # the stdlib trips on some broken parameter lists
            return None

    @property
    def charset(self) -> str | None:
        value = self.param("charset")
        return collapse_rfc2231_value(value) if value else None

    def body(self) -> bytes:
        """The body with its transfer encoding undone."""
        return decode_transfer(self.buf[self.start : self.end], self.cte)


@dataclass
class Shape:
    """What building the tree saw: how many parts, how deep, and whether a cap cut it short."""

    parts: int = 0
    depth: int = 0
    too_deep: bool = False
    too_many_parts: bool = False


def _uudecode(data: bytes) -> bytes:
    out = bytearray()
    lines = data.splitlines()
    begin = next((i for i, line in enumerate(lines) if line.startswith(b"begin ")), -1)
    for line in lines[begin + 1 :]:  # some encoders leave out the begin line
        if line.strip() in (b"end", b""):
            if line.strip() == b"end":
                break
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            # Broken encoders pad lines oddly; decode only the bytes the length byte promises.
            count = (((line[0] - 32) & 63) * 4 + 5) // 3
            try:
                out += binascii.a2b_uu(line[:count])
            except binascii.Error:
                continue
    return bytes(out)


def decode_transfer(data: bytes, cte: str) -> bytes:
    """Undo a Content-Transfer-Encoding.

    7bit and 8bit bodies are lines by definition (RFC 2045 §2.7-2.8), so their line
    breaks are a transport detail: they come out as LF, and the same message gives
    the same bytes whether it arrived by SMTP (CRLF) or from a file (LF).
    """
    if cte == "base64":
        return decode_base64_payload(data.decode("ascii", "ignore"))
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    if cte in _UUENCODE:
        return _uudecode(data)
    if cte == "binary":
        return data
    return data.replace(b"\r\n", b"\n")


def _lines(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(start, end without EOL, next) of each header line up to the blank line; a final blank marker."""
    lines = []
    pos = start
    while pos < end:
        nl = buf.find(b"\n", pos, end)
        nxt = end if nl < 0 else nl + 1
        stop = end if nl < 0 else nl
        if stop > pos and buf[stop - 1] == 13:
            stop -= 1
        lines.append((pos, stop, nxt))
        if stop == pos:
            break
        pos = nxt
    return lines


def read_head(buf: bytes, start: int, end: int, top: bool) -> tuple[list[tuple[str, bytes]], int, list[str]]:
    """Header fields of the entity at `start`, where its body begins, and header defects.

    A line that is neither a field nor a continuation is folded into the field above
    when more fields follow (a broken fold); otherwise it starts the body.  At the top
    of a message, an mbox `From ` line and banner lines before the first field are skipped.
    """
    defects: list[str] = []
    if top and buf.startswith(b"From ", start):
        nl = buf.find(b"\n", start, end)
        start = end if nl < 0 else nl + 1
    lines = _lines(buf, start, end)
    body_start = lines[-1][2] if lines and lines[-1][0] == lines[-1][1] else end
    content = [ln for ln in lines if ln[0] != ln[1]]
    kinds = [
        "field" if _HEADER_LINE.match(buf, s, e) else "cont" if buf[s] in b" \t" else "other"
        for s, e, _ in content
    ]
    last_field = max((i for i, k in enumerate(kinds) if k == "field"), default=-1)
    first = 0
    if top and kinds and kinds[0] != "field" and last_field > 0:
        first = kinds.index("field")
        defects.append("header.leading-garbage")
    fields: list[tuple[str, list[bytes]]] = []
    for i in range(first, len(content)):
        s, e, _ = content[i]
        if kinds[i] == "field":
            colon = buf.index(b":", s, e)
            fields.append((buf[s:colon].strip().decode("latin-1"), [buf[colon + 1 : e]]))
        elif fields and (kinds[i] == "cont" or i < last_field):
            if kinds[i] == "other" and "header.broken-fold" not in defects:
                defects.append("header.broken-fold")
            fields[-1][1].append((b"" if kinds[i] == "cont" else b" ") + buf[s:e])
        else:
            defects.append(errors.MissingHeaderBodySeparatorDefect.__name__)
            body_start = s
            break
    return [(name, b"\n".join(lines)) for name, lines in fields], body_start, defects


def _mime_view(fields: list[tuple[str, bytes]], default_type: str) -> Message:
    """A header-only stdlib Message carrying the MIME fields, for parameter parsing.

    Values are stored as Latin-1 text, one character per byte, so that the stdlib
    never sanitises them and every parameter maps back to its bytes losslessly.
    """
    mime = Message()
    mime.set_default_type(default_type)
    for name, value in fields:
        if name.lower() in _MIME_FIELDS:
            unfolded = re.sub(rb"\r?\n", b"", value).strip()
            mime[name] = unfolded.decode("latin-1")
    return mime


def make_entity(buf: bytes, start: int, end: int, depth: int, top: bool, default_type: str = "text/plain") -> Entity:
    fields, body_start, defects = read_head(buf, start, end, top)
    return Entity(buf, fields, _mime_view(fields, default_type), body_start, end, depth, defects=defects)


def _strip_eol_before(buf: bytes, pos: int, floor: int) -> int:
    if pos - 2 >= floor and buf[pos - 2 : pos] == b"\r\n":
        return pos - 2
    if pos - 1 >= floor and buf[pos - 1] == 10:
        return pos - 1
    return pos


_LINE_REST = re.compile(rb"[ \t]*\r?")


def _delimiters(buf: bytes, start: int, end: int, delimiter: bytes) -> Iterator[tuple[int, int, bool]]:
    """(line start, line end, is closing) of each boundary line; a plain byte search, no regex scan."""
    pos = start
    while (i := buf.find(delimiter, pos, end)) >= 0:
        pos = i + 1
        rest = i + len(delimiter)
        if i > 0 and buf[i - 1] != 10 or rest < end and buf[rest] not in b"- \t\r\n":
            continue  # not at a line start, or a longer boundary that begins the same way
        closing = buf.startswith(b"--", rest, end)
        rest += 2 if closing else 0
        line_end = buf.find(b"\n", rest, end)
        line_end = end if line_end < 0 else line_end
        if _LINE_REST.fullmatch(buf, rest, line_end):
            yield i, line_end, closing


def split_multipart(buf: bytes, start: int, end: int, boundary: bytes) -> tuple[Ranges | None, list[str]]:
    """Byte ranges of the body parts between boundary lines; None when no boundary line is there."""
    ranges: Ranges = []
    part_start: int | None = None
    for line_start, line_end, closing in _delimiters(buf, start, end, b"--" + boundary):
        if part_start is not None:
            ranges.append((part_start, _strip_eol_before(buf, line_start, part_start)))
        if closing:
            return ranges, []
        part_start = min(line_end + 1, end)
    if part_start is None:
        return None, [errors.StartBoundaryNotFoundDefect.__name__]
    ranges.append((part_start, end))
    return ranges, [errors.CloseBoundaryNotFoundDefect.__name__]


def _boundary(entity: Entity) -> bytes | None:
    value = entity.param("boundary")
    if not value:
        return None
    text = collapse_rfc2231_value(value)
    return text.encode("latin-1", "replace") if text else None


def _expand_multipart(entity: Entity, shape: Shape, max_parts: int) -> list[Entity]:
    boundary = _boundary(entity)
    if boundary is None:
        entity.defects.append(errors.NoBoundaryInMultipartDefect.__name__)
        entity.forced_type = "text/plain"
        return []
    ranges, defects = split_multipart(entity.buf, entity.start, entity.end, boundary)
    entity.defects.extend(defects)
    if ranges is None:
        entity.forced_type = "text/plain"  # what a client shows: the body as text
        return []
    entity.kind = "multipart"
    default = "message/rfc822" if entity.subtype == "digest" else "text/plain"
    for s, e in ranges:
        if shape.parts >= max_parts:
            shape.too_many_parts = True
            entity.defects.append("mime.too-many-parts")
            break
        shape.parts += 1
        entity.children.append(make_entity(entity.buf, s, e, entity.depth + 1, False, default))
    return entity.children


def _expand_message(entity: Entity) -> list[Entity]:
    entity.kind = "message"
    if entity.cte in ("base64", "quoted-printable") or entity.cte in _UUENCODE:
        inner = entity.body()
        child = make_entity(inner, 0, len(inner), entity.depth + 1, False)
    else:
        child = make_entity(entity.buf, entity.start, entity.end, entity.depth + 1, False)
    entity.children.append(child)
    return [child]


def build_tree(raw: bytes, max_depth: int, max_parts: int) -> tuple[Entity, Shape]:
    """The entity tree of a message, built without recursion and cut off at the caps."""
    shape = Shape()
    root = make_entity(raw, 0, len(raw), 0, True)
    stack = [root]
    while stack:
        entity = stack.pop()
        shape.depth = max(shape.depth, entity.depth)
        container = entity.maintype == "multipart" or entity.content_type in _MESSAGE_TYPES
        if not container:
            continue
        if entity.depth >= max_depth:
            shape.too_deep = True
            entity.defects.append("mime.too-deep")
            continue
        if entity.maintype == "multipart":
            stack.extend(reversed(_expand_multipart(entity, shape, max_parts)))
        else:
            stack.extend(_expand_message(entity))
        if shape.too_many_parts:
            break
    return root, shape


def walk(root: Entity) -> list[Entity]:
    """Every entity in document order, without recursion."""
    out, stack = [], [root]
    while stack:
        entity = stack.pop()
        out.append(entity)
        stack.extend(reversed(entity.children))
    return out
