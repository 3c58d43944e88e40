"""Bytes to text for mail: charsets and their guessing, RFC 2047 words, address lists, message ids.

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
import codecs
import re
from collections.abc import Iterable

from maildesk.core.model import Address

# Labels seen in the wild that Python does not know, or knows as a smaller charset
# than the one senders really use (WHATWG maps them the same way).
_ALIASES = {
    "iso-gb2312": "gb18030",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "cn-gb": "gb18030",
    "win-1251": "cp1251",
    "win1251": "cp1251",
    "cp-1251": "cp1251",
    "x-cp1251": "cp1251",
    "koi8r": "koi8_r",
    "x-mac-cyrillic": "mac_cyrillic",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "iso-8859-8-i": "iso8859_8",
    "tis-620": "cp874",
}
# Labels that name no charset at all: the bytes must be guessed.
_UNKNOWN = {"unknown-8bit", "x-unknown", "unknown", "x-user-defined", "default", "charset"}
# Codecs that are not a character set a mail could be written in.
_NOT_CHARSETS = {"undefined", "idna", "punycode", "unicode-escape", "raw-unicode-escape", "mbcs"}
# When the declared charset fails, the bytes usually come from its bigger sibling.
_SIBLINGS = {
    "iso2022_jp": ("iso2022_jp_2", "iso2022_jp_ext", "cp932", "euc_jp"),
    "euc_jp": ("cp932",),
    "cp1252": ("latin-1",),
    "cp949": ("euc_kr",),
}
# Russian mail first: the guess picks among these when nothing is declared.
_GUESSES = ("cp1251", "koi8_r", "cp1252")
_WORD = re.compile(r"[^\W\d_]+")
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


def resolve_charset(label: str | None) -> str | None:
    """The Python codec for a charset label, or None when it names nothing usable."""
    if not label:
        return None
    name = label.strip().strip("\"'").split("*", 1)[0].lower()
    if not name or name in _UNKNOWN:
        return None
    name = _ALIASES.get(name, _ALIASES.get(name.replace("_", "-"), name))
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def _strict(data: bytes, codec: str) -> str | None:
    try:
        text = data.decode(codec)
    except (UnicodeError, LookupError, ValueError):
        return None
    # Some codecs (UTF-7, UTF-16) can produce lone surrogates, which are not text.
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return None
    return text


def _case_ok(word: str) -> bool:
    return word.islower() or word.isupper() or (word[0].isupper() and word[1:].islower())


def _word_score(word: str) -> int:
    """How plausible one decoded word is, weighted by its non-ASCII characters.

    Cyrillic read as Latin-1 gives long runs of accented letters, Latin-1 read as
    Cyrillic gives words mixing both alphabets, KOI8-R and windows-1251 read as each
    other give inverted case.  Caseless scripts (CJK) count double: two bytes a character.
    """
    weight = sum(2 if not (ch.isupper() or ch.islower()) else 1 for ch in word if not ch.isascii())
    if not weight:
        return 0
    cyrillic = any("\u0400" <= ch <= "\u04ff" for ch in word)
    ascii_letters = any(ch.isascii() for ch in word)
    cased = any(ch.isupper() or ch.islower() for ch in word)
    if cyrillic and ascii_letters or cased and not _case_ok(word):
        return -weight
    if cased and not cyrillic and not ascii_letters and weight > 2:
        return -weight  # accented letters only: Cyrillic bytes read as Latin-1
    return weight


def _plausibility(text: str) -> int:
    return sum(_word_score(w) for w in _WORD.findall(text)) - 5 * text.count("\ufffd")


def _guess(data: bytes, hints: tuple[str, ...]) -> str:
    """Decode 8-bit text of unknown charset: the charsets the message declares elsewhere,
    then windows-1251, KOI8-R and windows-1252, whichever reads best (earlier wins ties)."""
    candidates: list[str] = []
    for hint in hints:
        codec = resolve_charset(hint)
        if codec and codec not in ("ascii", "utf-8", "utf-7", "utf-16", "utf-32"):
            candidates += [codec, *_SIBLINGS.get(codec, ())]
    best, best_score = "", None
    for codec in dict.fromkeys([*candidates, *_GUESSES]):
        strict = _strict(data, codec)
        if strict is None and codec in candidates:
            continue  # a declared multibyte charset that fails is the wrong one
        text = strict if strict is not None else data.decode(codec, "replace")
        score = _plausibility(text)
        if best_score is None or score > best_score:
            best, best_score = text, score
    return best


Hints = str | tuple[str, ...] | None


def _as_tuple(hint: Hints) -> tuple[str, ...]:
    return (hint,) if isinstance(hint, str) else hint or ()


def decode_bytes(data: bytes, declared: str | None = None, hint: Hints = None) -> tuple[str, bool]:
    """Text of `data` and whether it decoded cleanly in the charset it claims; never raises.

    Order: the declared charset and its siblings, plain ASCII, UTF-8, and then the
    best reading among the charsets the rest of the message declares (`hint`) and
    the Russian-first guesses.  A declared charset that fails on a few bytes only
    is kept, with replacement characters.
    """
    codec = resolve_charset(declared)
    for name in (codec, *_SIBLINGS.get(codec or "", ())):
        if name and (text := _strict(data, name)) is not None:
            return text, True
    if data.isascii():
        return data.decode("ascii"), codec is not None or declared is None
    text = _strict(data, "utf-8")
    if text is not None:
        return text, declared is None
    if codec:
        lossy = data.decode(codec, "replace")
        if lossy.count("\ufffd") * 20 <= sum(b >= 0x80 for b in data):
            return lossy, False
    return _guess(data, _as_tuple(hint)), False


def clean_header_text(text: str) -> str:
    """Drop control characters: they have no display form and CR/LF could split a header when echoed."""
    return _CONTROLS.sub("", text)


# RFC 2047 encoded-word.  The text may hold spaces: broken mailers write them and
# every client still decodes the word.
_EW = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?]*?)\?=")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_NEWLINES = re.compile(rb"[\r\n]+")


def unfold(raw: bytes) -> bytes:
    """RFC 5322 unfolding: remove the line break, keep the whitespace after it."""
    return _NEWLINES.sub(b"", _FOLD.sub(b"", raw))


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
_ROUTE = re.compile(r"^(?:@[^,:]+,?)+:")
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
    """A display name from phrase tokens: quotes removed, encoded-words decoded and joined."""
    parts: list[str] = []
    last_was_word = False
    for tok in tokens:
        text = _unescape(tok.text) if tok.kind in ("quoted", "comment") else _source(tok)
        is_word = bool(_TEXT_EW.fullmatch(text.strip()))
        if _TEXT_EW.search(text) and (is_word or tok.kind != "atom"):
            text = _decode_words(text.encode("utf-8", "surrogateescape"), hint)
        if parts and tok.space_before and not (is_word and last_was_word):
            parts.append(" ")
        parts.append(text)
        last_was_word = is_word
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


def parse_address_list(raw: bytes, hint: Hints = None) -> tuple[tuple[Address, ...], tuple[str, ...]]:
    """Every mailbox in an address header, and defect codes for members that hold none."""
    value = decode_bytes(unfold(raw), None, hint)[0] if not raw.isascii() else unfold(raw).decode("ascii")
    tokens, closed = _tokens(value)
    found: list[Address] = []
    defects: list[str] = [] if closed else ["unbalanced"]
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
