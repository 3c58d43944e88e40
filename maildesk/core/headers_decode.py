"""Header bytes to text: RFC 2047 words, address lists and message ids, read as mail clients show them.

Why not `email.policy.default` or mail-parser for this: both decode each encoded-word
on its own and then parse the decoded text.  That loses what Russian mail depends on:
a name split over several encoded-words gets a stray space (CPython issue #128110),
a multibyte character split between two words is lost, raw 8-bit headers are read
as UTF-8 only, and encoded-words inside quoted names (written by many Russian
mailers and decoded by every client) stay undecoded.  Here the structure of a
header is read first, on the raw text, and only then are the words decoded, the
way a mail client shows them.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable

from maildesk.core.charset_guess import Hints, decode_bytes, resolve_charset
from maildesk.core.model import Address

_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_header_text(text: str) -> str:
    """Drop control characters: they have no display form and CR/LF could split a header when echoed."""
    return _CONTROLS.sub("", text)


# RFC 2047 encoded-word.  The text may hold spaces: broken mailers write them and
# every client still decodes the word.
_EW = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?]*?)\?=")
FOLD = re.compile(rb"\r?\n(?=[ \t])")  # the line break of a folded header field
_NEWLINES = re.compile(rb"[\r\n]+")


def unfold(raw: bytes) -> bytes:
    """RFC 5322 unfolding: remove the line break, keep the whitespace after it."""
    return _NEWLINES.sub(b"", FOLD.sub(b"", raw))


def _ew_bytes(encoding: bytes, text: bytes) -> bytes:
    if encoding in (b"b", b"B"):
        data = re.sub(rb"[^A-Za-z0-9+/]", b"", text)
        if len(data) % 4 == 1:
            data = data[:-1]
        try:
            return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
        except binascii.Error:
            return b""
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text.replace(b"_", b" "))


def _decode_words(raw: bytes, hint: Hints) -> str:
    """Decode encoded-words in an unfolded value; whitespace between adjacent words is dropped."""
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset: str | None = None
    pos = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending:
            out.append(decode_bytes(b"".join(pending), pending_charset, hint)[0])
        pending, pending_charset = [], None

    for match in _EW.finditer(raw):
        between = raw[pos : match.start()]
        if between.strip(b" \t") or not pending:
            flush()
            if between:
                out.append(decode_bytes(between, None, hint)[0])
        charset = match.group(1).decode("ascii", "replace")
        if pending and (resolve_charset(charset) or charset) != (
            resolve_charset(pending_charset) or pending_charset
        ):
            flush()
        pending.append(_ew_bytes(match.group(2), match.group(3)))
        pending_charset = charset
        pos = match.end()
    flush()
    if pos < len(raw):
        out.append(decode_bytes(raw[pos:], None, hint)[0])
    return "".join(out)


def decode_header_text(raw: bytes, hint: Hints = None) -> str:
    """An unstructured header value (Subject and the like) as the sender's client showed it."""
    return clean_header_text(_decode_words(unfold(raw).strip(b" \t"), hint))


_MSGID = re.compile(rb"<([^<>]*)>")


def parse_message_ids(raw: bytes) -> tuple[str, ...]:
    """Bare ids from Message-ID / In-Reply-To / References, without brackets or whitespace."""
    value = unfold(raw)
    found = [b"".join(m.split()) for m in _MSGID.findall(value)]
    if not _MSGID.search(value):
        found = [w for w in value.split() if b"@" in w]
    return tuple(dict.fromkeys(i.decode("ascii", "replace") for i in found if i))


# --- address lists -------------------------------------------------------------------

_ATOM_STOP = set(' \t()<>,;:"[]\\')
_ADDR_SPEC = re.compile(
    r'(?:[^\s"(),:;<>@\[\]\\]+|"(?:[^"\\]|\\.)*")'  # local part: dot-atom (lenient) or quoted
    r'@(?:[^\s"(),:;<>@\[\]\\.][^\s"(),:;<>@\[\]\\]*|\[[^\[\]\\]*\])'  # domain or literal
)
_ROUTE = re.compile(r"^(?:@[^,:@]+,?)+:")  # obsolete source route; `@` excluded so it cannot backtrack
_TEXT_EW = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?]*?\?=")


class _Token:
    """One lexical piece of an address header."""

    __slots__ = ("kind", "text", "space_before")

    def __init__(self, kind: str, text: str, space_before: bool) -> None:
        self.kind = kind  # atom, quoted, comment, angle, literal, special
        self.text = text
        self.space_before = space_before


def _read_delimited(value: str, pos: int, opener: str, closer: str) -> tuple[str, int, bool]:
    """Text up to the matching closer (nesting for comments, escapes honoured) and the next index."""
    depth, out, i = 1, [], pos + 1
    while i < len(value):
        ch = value[i]
        if ch == "\\" and closer != ">" and i + 1 < len(value):
            out.append(ch + value[i + 1])
            i += 2
            continue
        if ch == opener and opener == "(":
            depth += 1
        elif ch == closer:
            depth -= 1
            if depth == 0:
                return "".join(out), i + 1, True
        out.append(ch)
        i += 1
    return "".join(out), i, False


def _tokens(value: str) -> tuple[list[_Token], bool]:
    """Split an address header into tokens; the flag says whether everything was closed."""
    tokens: list[_Token] = []
    closed_all, space, i = True, False, 0
    pairs = {"(": ("comment", ")"), '"': ("quoted", '"'), "<": ("angle", ">"), "[": ("literal", "]")}
    while i < len(value):
        ch = value[i]
        if ch in " \t":
            space, i = True, i + 1
            continue
        if ch in pairs:
            kind, closer = pairs[ch]
            text, i, closed = _read_delimited(value, i, ch, closer)
            closed_all &= closed
            tokens.append(_Token(kind, text, space))
        elif ch in ",;:>\\)]":
            closed_all &= ch in ",;:"
            tokens.append(_Token("special", ch, space))
            i += 1
        else:
            ew = _TEXT_EW.match(value, i)
            end = ew.end() if ew else i
            while not ew and end < len(value) and value[end] not in _ATOM_STOP:
                end += 1
            tokens.append(_Token("atom", value[i:end], space))
            i = end
        space = False
    return tokens, closed_all


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _source(tok: _Token) -> str:
    """A token as it was written (quotes and brackets back on)."""
    if tok.kind == "quoted":
        return '"' + tok.text + '"'
    if tok.kind == "literal":
        return "[" + tok.text + "]"
    return tok.text


def _phrase(tokens: Iterable[_Token], hint: Hints) -> str:
    """A display name from phrase tokens: quotes removed, encoded-words decoded and joined.

    A run of tokens that are each one whole encoded-word is decoded as one value, so
    that adjacent words of one charset are joined before decoding (as for Subject):
    a character whose bytes the sender's mailer split over two words comes out whole.
    """
    parts: list[str] = []
    run: list[str] = []  # source texts of consecutive encoded-word tokens, not yet decoded

    def flush() -> None:
        if run:
            parts.append(_decode_words(" ".join(run).encode("utf-8", "surrogateescape"), hint))
            run.clear()

    for tok in tokens:
        text = _unescape(tok.text) if tok.kind in ("quoted", "comment") else _source(tok)
        if _TEXT_EW.fullmatch(text.strip()):
            if parts and tok.space_before and not run:
                parts.append(" ")
            run.append(text.strip())
            continue
        flush()
        if _TEXT_EW.search(text) and tok.kind != "atom":
            text = _decode_words(text.encode("utf-8", "surrogateescape"), hint)
        if parts and tok.space_before:
            parts.append(" ")
        parts.append(text)
    flush()
    return clean_header_text("".join(parts)).strip()


def _squeeze(spec: str) -> str:
    """Drop the obsolete whitespace around `.` and `@` of an addr-spec, outside quoted parts."""
    pieces = re.split(r'("(?:[^"\\]|\\.)*")', spec.strip())
    return "".join(p if i % 2 else re.sub(r"\s*([.@])\s*", r"\1", p) for i, p in enumerate(pieces))


def _mailbox(item: list[_Token], hint: Hints) -> tuple[Address | None, str | None]:
    """One list member as an Address, or a defect code when it holds no mailbox."""
    angles = [t for t in item if t.kind == "angle"]
    if len(angles) > 1 or any(t.kind == "special" for t in item):
        return None, "ambiguous"
    if angles:
        index = item.index(angles[0])
        spec = _ROUTE.sub("", re.sub(r"\([^()]*\)", "", angles[0].text).strip())
        name_tokens = [t for t in item[:index] if t.kind != "comment"]
        if not name_tokens:
            name_tokens = [t for t in item if t.kind == "comment"]
    else:
        words = [t for t in item if t.kind != "comment"]
        spec = "".join((" " if i and t.space_before else "") + _source(t) for i, t in enumerate(words))
        name_tokens = [t for t in item if t.kind == "comment"]
    spec = _squeeze(spec)
    if not spec:
        return None, "empty"
    if not _ADDR_SPEC.fullmatch(spec):
        return None, "unparseable"
    return Address(name=_phrase(name_tokens, hint), email=clean_header_text(spec)), None


def _items(tokens: list[_Token]) -> list[list[_Token]]:
    """List members, with group names (`Team: a, b;`) dropped."""
    items: list[list[_Token]] = [[]]
    for tok in tokens:
        if tok.kind == "special" and tok.text in ",;":
            items.append([])
        elif tok.kind == "special" and tok.text == ":" and not any(t.kind == "angle" for t in items[-1]):
            items[-1] = []
        else:
            items[-1].append(tok)
    return [item for item in items if item]


# In an addr-spec as written: bytes that no address has and that the decoded text would lose
# (controls, DEL) or turn into something else (8-bit bytes read in a guessed charset).
_UNSAFE_SPEC = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\xff]")


def _unsafe_spec_bytes(raw: bytes) -> bool:
    """Whether an addr-spec in the field, as written, holds control, DEL or 8-bit bytes.

    Read on the raw bytes (folds removed, nothing else; Latin-1 maps each byte to one
    character) because the decoded value has control characters dropped:
    `a@sev.gov.r\x01u` must not become `a@sev.gov.ru`.  The addr-spec is the angle
    text of a member, or the whole member without comments when it has no angle.
    """
    if not _UNSAFE_SPEC.search(raw.decode("latin-1")):
        return False
    tokens, _ = _tokens(FOLD.sub(b"", raw).decode("latin-1"))
    for item in _items(tokens):
        angles = [t for t in item if t.kind == "angle"]
        spec = angles if angles else [t for t in item if t.kind != "comment"]
        if any(_UNSAFE_SPEC.search(t.text) for t in spec):
            return True
    return False


def parse_address_list(raw: bytes, hint: Hints = None) -> tuple[tuple[Address, ...], tuple[str, ...]]:
    """Every mailbox in an address header, and defect codes for members that hold none.

    `address-bytes` says an addr-spec as written holds control, DEL or 8-bit bytes
    (see `_unsafe_spec_bytes`); the address is still returned as decoded, for display.
    """
    value = decode_bytes(unfold(raw), None, hint)[0] if not raw.isascii() else unfold(raw).decode("ascii")
    tokens, closed = _tokens(value)
    found: list[Address] = []
    defects: list[str] = [] if closed else ["unbalanced"]
    if _unsafe_spec_bytes(raw):
        defects.append("address-bytes")
    for item in _items(tokens):
        address, defect = _mailbox(item, hint)
        if address is not None:
            found.append(address)
        elif defect:
            defects.append(defect)
    return tuple(found), tuple(defects)


def format_address(address: Address) -> str:
    """One mailbox as a display string; names with specials or non-ASCII are quoted."""
    if not address.name:
        return address.email
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ \t]+", address.name):
        return f"{address.name} <{address.email}>"
    quoted = address.name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address.email}>'


def format_address_list(addresses: Iterable[Address]) -> str:
    """Addresses joined for display: `Name <a@b>, "Фамилия Имя" <c@d>, e@f`."""
    return ", ".join(format_address(a) for a in addresses)
