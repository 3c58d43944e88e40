"""Find the ticket a message refers to: minted reply ids, reply headers, subject tag, body reference."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from maildesk.core import msgid
from maildesk.core.model import InboundMail, TicketRef


@dataclass(frozen=True)
class ThreadPolicy:
    tag: str = "СТП"  # the subject tag reads [СТП #123]
    message_id_domain: str = "maildesk.localhost"
    secret: bytes = b""  # key of minted Message-IDs; empty: minted ids are not trusted
    max_references: int = 50  # newest References ids looked at; long threads carry hundreds


_ANGLE_ID = re.compile(r"<([^<>\s]+)>")
# Only ASCII digits: \d would accept Arabic-Indic and other digits int() understands.
_NUMBER = r"([0-9]{1,9})(?![0-9])"
_BODY_REF = re.compile(
    r"(?<!\w)(?:заявк(?:а|е|и|у|ой|ою)|обращени(?:е|я|ю|и|ем))\s*(?:№|#|N[°º]?|No\.?|номер)\s*" + _NUMBER,
    re.I,
)
_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|tr|antw|ответ|отв|пересл|пересылка|переслано)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*:\s*)+",
    re.I,
)


def find_refs(mail: InboundMail, policy: ThreadPolicy, text: str | None = None) -> tuple[TicketRef, ...]:
    """Every threading signal in the message, strongest first.

    Minted ids prove the ticket; other reply ids are for the store to look up; the
    subject tag and body references are only claims. `text` is the new text of the
    message with quoted history removed; without it the whole text is searched.
    """
    minted: list[TicketRef] = []
    looked_up: list[TicketRef] = []
    for signal, value in _reply_ids(mail, policy.max_references):
        number = msgid.verify(value, policy.secret, policy.message_id_domain) if policy.secret else None
        if number is not None:
            minted.append(TicketRef(number, "minted", value))
        else:
            looked_up.append(TicketRef(None, signal, value))
    tags = [TicketRef(n, "subject_tag", v) for n, v in _tags(mail.subject, policy.tag)]
    body_text = mail.text if text is None else text
    body = [TicketRef(n, "body", v) for n, v in _body_refs(body_text, policy.tag)]
    return (
        _unique(minted, by_number=True) + _unique(looked_up, by_number=False)
        + _unique(tags, by_number=True) + _unique(body, by_number=True)
    )


def subject_tag(number: int, tag: str = "СТП") -> str:
    """The tag maildesk puts in every subject: `[СТП #123]`."""
    return f"[{tag} #{int(number)}]"


def strip_tag_and_prefixes(subject: str, tag: str = "СТП") -> str:
    """The subject without reply/forward prefixes and our tags, for a clean ticket subject."""
    tag_re = _tag_pattern(tag)
    previous = None
    while subject != previous:
        previous = subject
        subject = _REPLY_PREFIX.sub("", tag_re.sub(" ", subject))
        subject = " ".join(subject.split())
    return subject


def _reply_ids(mail: InboundMail, limit: int) -> list[tuple[str, str]]:
    """(signal, id) from In-Reply-To, then References newest first; ids without angle brackets."""
    found = [("in_reply_to", i) for v in mail.in_reply_to for i in _ids(v)]
    refs = [i for v in mail.references for i in _ids(v)]
    found += [("references", i) for i in reversed(refs[-limit:] if limit > 0 else [])]
    return found


def _ids(value: str) -> list[str]:
    inside = _ANGLE_ID.findall(value)
    if inside:
        return inside
    bare = value.strip()
    # Some parsers hand over ids already stripped of their brackets.
    return [bare] if bare and "@" in bare and not any(c.isspace() for c in bare) else []


@lru_cache(maxsize=8)
def _tag_pattern(tag: str) -> re.Pattern[str]:
    spaced = r"\s*".join(re.escape(ch) for ch in tag.strip())
    return re.compile(r"\[\s*" + spaced + r"\s*[#№]\s*" + _NUMBER + r"\s*\]", re.I)


def _tags(text: str, tag: str) -> list[tuple[int, str]]:
    return [(int(m.group(1)), m.group(0)) for m in _tag_pattern(tag).finditer(text) if int(m.group(1)) > 0]


def _body_refs(text: str, tag: str) -> list[tuple[int, str]]:
    found = [(m.start(), int(m.group(1)), m.group(0)) for m in _BODY_REF.finditer(text)]
    found += [(m.start(), int(m.group(1)), m.group(0)) for m in _tag_pattern(tag).finditer(text)]
    return [(number, value) for _, number, value in sorted(found) if number > 0]


def _unique(refs: list[TicketRef], by_number: bool) -> tuple[TicketRef, ...]:
    seen: set[object] = set()
    out: list[TicketRef] = []
    for ref in refs:
        key = ref.number if by_number else ref.value.lower()
        if key not in seen:
            seen.add(key)
            out.append(ref)
    return tuple(out)
