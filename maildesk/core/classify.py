"""Tell automatic mail (our own, bounces, auto-replies) from mail a person wrote."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from maildesk.core import msgid
from maildesk.core.model import Envelope, InboundMail, MailKind, Reason


@dataclass(frozen=True)
class ClassifyPolicy:
    message_id_domain: str = "maildesk.localhost"  # the domain of the Message-IDs we mint
    desk_addresses: tuple[str, ...] = ()  # our help addresses: mail from them is our own
    own_headers: tuple[str, ...] = ("X-Maildesk-Ticket", "X-Maildesk")  # stamped on the mail we send
    bounce_localparts: tuple[str, ...] = ("mailer-daemon", "postmaster")


Rule = Callable[[InboundMail, Envelope, ClassifyPolicy], Reason | None]

_DSN = re.compile(r"^\s*multipart/report\b.*\breport-type\s*=\s*\"?delivery-status\"?", re.I | re.S)
_MDN = re.compile(r"^\s*multipart/report\b.*\breport-type\s*=\s*\"?disposition-notification\"?", re.I | re.S)
_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_SUPPRESS = frozenset({"oof", "all", "autoreply"})
_LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post")
# Markers no person puts at the start of a request.
_OOF_CLEAR = re.compile(
    r"^\s*((автоответ|автоматический\s+ответ|automatic\s+reply|auto[\s-]?reply|auto[\s-]?response"
    r"|out\s+of\s+(the\s+)?office)\b|(прочитано|не\s+прочитано|read)\s*:)",
    re.I,
)
# Phrases a real request may begin with ("В отпуске не видно врача"): only as a whole
# subject or followed by punctuation or a date ("В отпуске до 15.07").
_OOF_PHRASE = re.compile(
    r"^\s*(нет\s+на\s+месте|вне\s+офиса|в\s+отпуске|на\s+больничном)\s*([:!.,(\-–—]|до\s|с\s|$)", re.I
)
_MESSAGE_ID = re.compile(r"^[ \t>]*message-id:\s*<([^<>\s]+)>", re.I | re.M)
_ORIGINAL_TYPES = frozenset({
    "message/rfc822", "text/rfc822-headers", "message/rfc822-headers", "message/global",
    "message/global-headers",
})


def classify(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> tuple[MailKind, Reason | None]:
    """The kind of a message and the first rule that said so; NORMAL with None otherwise."""
    for kind, rule in RULES:
        reason = rule(mail, envelope, policy)
        if reason is not None:
            return kind, reason
    return MailKind.NORMAL, None


def bounced_message_ids(mail: InboundMail) -> tuple[str, ...]:
    """Message-IDs (without angle brackets) of the message a bounce reports on.

    Taken from the returned message or its headers when the bounce attaches them, and
    from `Message-ID: <...>` lines quoted in the bounce text, which is all some MTAs give.
    """
    found: list[str] = []
    for attachment in mail.attachments:
        if attachment.content_type.lower() in _ORIGINAL_TYPES:
            head = re.split(r"\r?\n\r?\n", attachment.data.decode("utf-8", "replace"), maxsplit=1)[0]
            found.extend(_MESSAGE_ID.findall(head))
    found.extend(_MESSAGE_ID.findall(mail.text))
    own = (mail.message_id or "").strip().strip("<>")
    return tuple(dict.fromkeys(i for i in found if i != own))


def _addresses(mail: InboundMail) -> tuple[str, ...]:
    return tuple(a.email.lower() for a in mail.from_)


def _own_message_id(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    if mail.message_id and msgid.is_ours(mail.message_id, policy.message_id_domain):
        return Reason("own.message_id", f"Message-ID {mail.message_id} was minted by maildesk")
    return None


def _own_header(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    # Anyone can write this header, but all it can do is get their own mail ignored.
    name = next((h for h in policy.own_headers if mail.header(h) is not None), None)
    return Reason("own.header", f"carries our {name} header") if name else None


def _own_desk(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    desks = {d.lower() for d in policy.desk_addresses}
    hit = next((a for a in _addresses(mail) if a in desks), None)
    return Reason("own.desk_address", f"sent from our help address {hit}") if hit else None


def _null_sender(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    if envelope.mail_from == "":
        return Reason("bounce.null_sender", "empty envelope sender")
    # Without an envelope (IMAP, pipe) the delivering server's Return-Path stands in for it.
    if envelope.mail_from is None and any(v.strip() == "<>" for v in mail.header_all("Return-Path")):
        return Reason("bounce.null_sender", "Return-Path is <>")
    return None


def _dsn(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    if _DSN.match(mail.header("Content-Type") or ""):
        return Reason("bounce.dsn", "multipart/report delivery-status notification")
    return None


def _failed_recipients(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    if mail.header("X-Failed-Recipients") is not None:
        return Reason("bounce.failed_recipients", "X-Failed-Recipients header")
    return None


def _mailer_daemon(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    daemons = {p.lower() for p in policy.bounce_localparts}
    hit = next((a for a in _addresses(mail) if a.partition("@")[0] in daemons), None)
    return Reason("bounce.mailer_daemon", f"From is {hit}") if hit else None


def _auto_submitted(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    for value in mail.header_all("Auto-Submitted"):
        token = value.split(";")[0].strip().lower()
        if token != "no":
            return Reason("auto.auto_submitted", f"Auto-Submitted: {token or '(empty)'}")
    return None


def _x_autoreply(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    for name in ("X-Autoreply", "X-Autorespond", "X-Autogenerated"):
        if mail.header(name) is not None:
            return Reason("auto.x_autoreply", f"{name} header")
    return None


def _suppress(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    # Exchange marks the mail it generates itself with these values.
    for value in mail.header_all("X-Auto-Response-Suppress"):
        tokens = {t.strip().lower() for t in value.split(",")}
        if tokens & _SUPPRESS:
            return Reason("auto.suppress", f"X-Auto-Response-Suppress: {value.strip()}")
    return None


def _precedence(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    value = (mail.header("Precedence") or "").strip().lower()
    return Reason("auto.precedence", f"Precedence: {value}") if value in _PRECEDENCE else None


def _mailing_list(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    name = next((h for h in _LIST_HEADERS if mail.header(h) is not None), None)
    return Reason("auto.list", f"{name} header") if name else None


def _read_receipt(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    if _MDN.match(mail.header("Content-Type") or ""):
        return Reason("auto.read_receipt", "multipart/report disposition notification")
    return None


def _oof_subject(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    if _OOF_CLEAR.match(mail.subject) or _OOF_PHRASE.match(mail.subject):
        return Reason("auto.subject", "out-of-office or receipt subject")
    return None


# Own mail first (never answer ourselves), then bounces, then auto-replies (RFC 3834).
RULES: tuple[tuple[MailKind, Rule], ...] = (
    (MailKind.OWN_MAIL, _own_message_id),
    (MailKind.OWN_MAIL, _own_header),
    (MailKind.OWN_MAIL, _own_desk),
    (MailKind.BOUNCE, _null_sender),
    (MailKind.BOUNCE, _dsn),
    (MailKind.BOUNCE, _failed_recipients),
    (MailKind.BOUNCE, _mailer_daemon),
    (MailKind.AUTO_REPLY, _auto_submitted),
    (MailKind.AUTO_REPLY, _x_autoreply),
    (MailKind.AUTO_REPLY, _suppress),
    (MailKind.AUTO_REPLY, _precedence),
    (MailKind.AUTO_REPLY, _mailing_list),
    (MailKind.AUTO_REPLY, _read_receipt),
    (MailKind.AUTO_REPLY, _oof_subject),
)
