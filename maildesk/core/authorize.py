"""Decide whether a message's sender may write to the desk (001 §3.3), refusing anything ambiguous.

The From field is never best-effort matched: it must hold exactly one plain mailbox,
and the address must read the same to us, to the organisation's MTA and to a person.
Domains are compared as exact ASCII, lower-cased; nothing is IDNA- or NFKC-normalised,
because that is what turns a look-alike (Cyrillic `ѕеv.gоv.ru`, fullwidth letters)
into the real domain. A trailing dot (`sev.gov.ru.`) is refused rather than
normalised: no mail client writes one, so it is a probe, not a typo.

`Authentication-Results` is read as written (parse keeps that field undecoded): a
value holding an encoded-word, a control character or a non-ASCII byte was not
written by our relay. It is ignored when its authserv-id is plainly someone else's;
when decoding or dropping those characters would make it read as ours, the check
fails closed (`sender.auth_unparseable`), because some other reader might take it so.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from maildesk.core.headers_decode import decode_header_text
from maildesk.core.model import Envelope, InboundMail, Reason


@dataclass(frozen=True)
class SenderPolicy:
    allowed_domains: tuple[str, ...] = ("sev.gov.ru",)
    allow_subdomains: bool = False  # mo1.sev.gov.ru counts only when True; xsev.gov.ru never
    agents: tuple[str, ...] = ()  # always allowed (any domain), still strictly parsed and authenticated
    authentication: Literal["none", "trusted-relay"] = "none"
    authserv_id: str = ""  # the authserv-id our own MTA writes into Authentication-Results
    require_envelope_match: bool = False  # envelope MAIL FROM domain == From domain, when known


@dataclass(frozen=True)
class Authorization:
    allowed: bool
    address: str | None  # the normalised (lower-case ASCII) From address, when it parsed
    is_agent: bool = False
    authenticated: bool = False  # only a dmarc=pass from our trusted relay vouches for the sender
    reason: Reason | None = None


_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_DOMAIN = re.compile(r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z")
_ADDRESS_LIKE = re.compile(r"[^\s<>\"'()@,;]+@[^\s<>\"'()@,;]+")
_FROM_DEFECT = re.compile(r"^\s*from\b", re.I)


def authorize(mail: InboundMail, envelope: Envelope, policy: SenderPolicy) -> Authorization:
    """Allowed or refused, with the first reason; identity checks run even for refused domains."""
    parsed = sender_address(mail)
    if isinstance(parsed, Reason):
        return Authorization(False, None, reason=parsed)
    domain = parsed.rpartition("@")[2]
    is_agent = parsed in {a.strip().lower() for a in policy.agents}
    auth = _authentication(mail, domain, policy)
    # `authenticated` is reported even when the domain is refused: a refusal notice may go
    # only where it cannot be backscatter, that is to a vouched-for address.
    authenticated = policy.authentication == "trusted-relay" and auth is None
    reason = (None if is_agent else _domain_check(domain, policy)) or auth or _envelope_check(envelope, domain, policy)
    return Authorization(reason is None, parsed, is_agent, authenticated, reason)


def sender_address(mail: InboundMail) -> str | Reason:
    """The one From address, lower-cased, or why the From field is not acceptable."""
    values = mail.header_all("From")
    if not values or not mail.from_:
        return Reason("sender.no_from", "no From mailbox")
    if len(values) > 1:
        return Reason("sender.multiple_from", f"{len(values)} From header fields")
    if "from.after-broken-header-line" in mail.defects:
        return Reason("sender.no_from", "the From field follows a broken header line: a mail server reads it as body")
    if any(_FROM_DEFECT.match(d) for d in mail.defects):
        return Reason("sender.header_defect", "the parser reported a defect in the From field")
    if len(mail.from_) > 1:
        return Reason("sender.several_mailboxes", f"From lists {len(mail.from_)} mailboxes")
    if "=?" in mail.from_[0].email:  # the field as written is decoded text: the word shows only here
        return Reason("sender.encoded_word", "encoded-word inside the address")
    split = _split_mailbox(values[0])
    if isinstance(split, Reason):
        return split
    display, address = split
    problem = _address_problem(address)
    if problem is not None:
        return problem
    if mail.from_[0].email.strip().lower() != address.lower():
        return Reason("sender.ambiguous", "the parsed address differs from the From field as written")
    return _display_problem(display + " " + mail.from_[0].name, address.lower()) or address.lower()


def _split_mailbox(value: str) -> tuple[str, str] | Reason:
    """(display name, address) from one From value, refusing groups, lists, comments and extra text."""
    quoted = escaped = False
    start = end = -1
    for i, ch in enumerate(value):
        if quoted:
            escaped, quoted = (False, True) if escaped else (ch == "\\", ch != '"')
            continue
        inside = start >= 0 and end < 0
        if ch == '"':
            if inside:
                return Reason("sender.quoted_local_part", "quoted local part in the address")
            quoted = True
        elif ch in "()":
            return Reason("sender.comment", "comment in the From field")
        elif ch in ",":
            return Reason("sender.several_mailboxes", "comma outside a quoted display name")
        elif ch in ":;" and not inside:
            return Reason("sender.group", "group syntax in the From field")
        elif ch == "<":
            if start >= 0:
                return Reason("sender.ambiguous", "more than one angle address")
            start = i
        elif ch == ">":
            if not inside:
                return Reason("sender.malformed", "unbalanced angle brackets")
            end = i
        elif end >= 0 and not ch.isspace():
            return Reason("sender.trailing_text", "text after the angle address")
    if quoted or (start >= 0 and end < 0):
        return Reason("sender.malformed", "unbalanced quotes or angle brackets")
    if start < 0:
        return "", value.strip()
    return value[:start], value[start + 1:end].strip()


def _address_problem(address: str) -> Reason | None:
    if "=?" in address:
        return Reason("sender.encoded_word", "encoded-word inside the address")
    if not address.isascii():
        return Reason("sender.non_ascii", "non-ASCII characters in the address")
    if '"' in address or "\\" in address:
        return Reason("sender.quoted_local_part", "quoted local part in the address")
    local, at, domain = address.rpartition("@")
    if not at or "@" in local or not _LOCAL.match(local):
        return Reason("sender.malformed", "the address is not a plain local@domain")
    if domain.endswith("."):
        return Reason("sender.trailing_dot", "the domain ends with a dot")
    if not _DOMAIN.match(domain):
        return Reason("sender.malformed", "the domain is not a plain DNS name")
    return None


def _display_problem(display: str, address: str) -> Reason | None:
    """Display names may not show another address or hide text direction tricks."""
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in display):
        return Reason("sender.display_name_control", "control or bidi characters in the display name")
    for shown in _ADDRESS_LIKE.findall(display):
        if shown.strip(".").lower() != address:
            return Reason("sender.display_name_address", "the display name shows a different address")
    return None


def _domain_check(domain: str, policy: SenderPolicy) -> Reason | None:
    for allowed in policy.allowed_domains:
        allowed = allowed.strip().lower().rstrip(".")
        if domain == allowed or (policy.allow_subdomains and domain.endswith("." + allowed)):
            return None
    return Reason("sender.domain_not_allowed", f"domain {domain} is not allowed")


def _envelope_check(envelope: Envelope, domain: str, policy: SenderPolicy) -> Reason | None:
    if not policy.require_envelope_match or envelope.mail_from is None:
        return None
    env_domain = envelope.mail_from.strip().strip("<>").rpartition("@")[2].lower()
    if env_domain != domain:
        return Reason("sender.envelope_mismatch", f"envelope sender domain {env_domain or '(null)'} is not {domain}")
    return None


def _authentication(mail: InboundMail, domain: str, policy: SenderPolicy) -> Reason | None:
    """None when the trusted relay vouches for the From domain (or no check is configured).

    Only headers carrying our authserv-id count; others may have come with the message
    from outside. Our MTA should strip forged ones; if it did not, two headers with our
    id appear and we fail closed rather than pick one.
    """
    if policy.authentication == "none":
        return None
    serv = policy.authserv_id.strip().lower()
    if policy.authentication != "trusted-relay" or not serv:
        return Reason("sender.auth_misconfigured", "authentication mode or authserv-id not configured")
    ours = []
    for value in mail.header_all("Authentication-Results"):
        value = _FOLD.sub("", value)
        if _plain(value):
            if _authserv(value) == serv:
                ours.append(value)
        elif serv in _readings(value):
            return Reason("sender.auth_unparseable", f"Authentication-Results that could pass for {serv} "
                          "holds encoded-words, control or non-ASCII characters")
    if not ours:
        return Reason("sender.auth_missing", f"no Authentication-Results from {serv}")
    if len(ours) > 1:
        return Reason("sender.auth_duplicated", f"{len(ours)} Authentication-Results from {serv}")
    dmarc = _dmarc_results(ours[0])
    if dmarc is None:
        return Reason("sender.auth_unparseable", f"Authentication-Results from {serv} does not parse")
    if len(dmarc) != 1:
        code = "sender.auth_no_dmarc" if not dmarc else "sender.auth_ambiguous"
        return Reason(code, f"{len(dmarc)} dmarc results, expected one")
    result, header_from = dmarc[0]
    if result != "pass":
        return Reason("sender.auth_failed", f"dmarc={result}")
    if header_from != domain:
        return Reason("sender.auth_mismatch", f"dmarc passed for {header_from or '(none)'}, not {domain}")
    return None


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_PLAIN = re.compile(r"[\t\x20-\x7e]*\Z")


def _plain(value: str) -> bool:
    """Printable ASCII (and tabs) only, and no encoded-word: what an MTA writes into this field."""
    return bool(_PLAIN.match(value)) and "=?" not in value


def _readings(value: str) -> set[str]:
    """The authserv-ids a lenient reader could see in a value that is not plain."""
    decoded = decode_header_text(value.encode("latin-1", "replace"))
    texts = (
        value,
        re.sub(r"[^\x21-\x7e \t]", "", value),  # controls and non-ASCII dropped
        decoded,
        unicodedata.normalize("NFKC", decoded),
    )
    return {_authserv(t) for t in texts}


def _authserv(value: str) -> str:
    head = value.strip().split(";", 1)[0].split()
    return head[0].lower() if head else ""


def _dmarc_results(value: str) -> list[tuple[str, str]] | None:
    """[(result, header.from)] of each dmarc resinfo, or None when the field does not parse."""
    text = _strip_comments(value)
    if text is None or ";" not in text:
        return None
    found = []
    for resinfo in text.split(";")[1:]:
        tokens = resinfo.split()
        if not tokens or tokens[0].lower() == "none":
            continue
        method, eq, result = tokens[0].partition("=")
        if not eq or not result:
            return None
        if method.split("/")[0].lower() == "dmarc":
            props = dict(t.partition("=")[::2] for t in tokens[1:])
            found.append((result.lower(), props.get("header.from", "").strip('"').lower()))
    return found


def _strip_comments(value: str) -> str | None:
    out, depth = [], 0
    for ch in value:
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                return None
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return None if depth else "".join(out)
