"""Bytes of unknown or doubtful charset to text: label aliases, sibling charsets, a Russian-first guess."""

from __future__ import annotations

import codecs
import functools
import re

# Charsets declared elsewhere in the message: the first guesses for undeclared 8-bit bytes.
Hints = str | tuple[str, ...] | None

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


@functools.lru_cache(maxsize=256)
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
        return data.decode("ascii"), True
    text = _strict(data, "utf-8")
    if text is not None:
        return text, declared is None
    if codec:
        lossy = data.decode(codec, "replace")
        if lossy.count("\ufffd") * 20 <= sum(b >= 0x80 for b in data):
            return lossy, False
    return _guess(data, _as_tuple(hint)), False
