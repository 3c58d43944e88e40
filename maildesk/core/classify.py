"""Tell automatic mail (our own, bounces, auto-replies) from mail a person wrote.

Header signals, read the way the MTA hands them over:
- Null sender: an empty envelope sender, `<>`, or `MAILER-DAEMON` in any case (what
  Postfix pipe(8) writes for `${sender}` unless `null_sender=` is set); without an
  envelope, a `Return-Path: <>` (also `< >`).
- Mailer-daemon: the local part of the From field as written, also where it holds no
  mailbox (`MAILER-DAEMON (Mail Delivery System)`, `Mail Delivery Subsystem <MAILER-DAEMON>`).
- Any `List-*` field (RFC 2369, 2919, 8058) is list mail; every `Precedence` field
  counts; comments are taken out of `Precedence` and `Auto-Submitted` (`no (x)` is no).
- `X-Auto-Response-Suppress` (Microsoft, MS-OXCMAIL 2.1.3.2.20) is a sender's request
  that others not auto-answer it.  Only `All`, `OOF` or `AutoReply` make a message
  automatic: that is what automatic senders write (Exchange's own notifications, and
  helpdesks and notifiers like Zammad: the one message in the Zammad corpus carrying it
  is a Zammad notification with `All`, beside `Precedence: bulk` and `Auto-Submitted`;
  none of the 20-odd Outlook and Exchange mails people wrote there has it).  `DR`, `NDR`,
  `RN`, `NRN` alone only turn off delivery and read receipts, which a person may ask
  for, so such mail is a person's; so is `None`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from maildesk.core import msgid
from maildesk.core.mime_text import strip_quoted
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
_LIST_PREFIX = "list-"  # RFC 2369 / 2919 / 8058: List-Id, -Help, -Subscribe, -Unsubscribe, -Post, -Owner, -Archive
# What pipe(8) writes for ${sender} when the envelope sender is null (unless null_sender= is set).
_NULL_ENVELOPE = frozenset({"", "<>", "mailer-daemon", "<mailer-daemon>"})
_NULL_PATH = re.compile(r"<\s*>")
# Markers no person puts at the start of a request.
_OOF_CLEAR = re.compile(
    r"^\s*((автоответ|автоматический\s+ответ|automatic\s+reply|auto[\s-]?reply|auto[\s-]?response"
    r"|out\s+of\s+(the\s+)?office|отсутствую\s+(на\s+рабочем\s+месте|в\s+офисе)"
    r"|i\s*(am|'m|’m)\s+(currently\s+)?(out\s+of\s+(the\s+)?office|on\s+(vacation|holiday|leave)|away)"
    r"|away\s+from\s+(the\s+|my\s+)?(office|desk))\b|(прочитано|не\s+прочитано|read)\s*:)",
    re.I,
)
# Phrases a real request may begin with ("В отпуске не видно врача"): only as a whole
# subject or followed by punctuation or a date ("В отпуске до 15.07").
_OOF_GUARD = r"\s*([:!.,;(…\-–—]|до\s|с\s|по\s|until\s|till\s|from\s|$)"
_OOF_PHRASE = re.compile(
    r"^\s*(нет\s+на\s+(рабочем\s+)?месте|вне\s+офиса|в\s+отпуске|в\s+командировке|на\s+больничном|отсутствую"
    r"|on\s+(vacation|holiday|leave)|away|absent)" + _OOF_GUARD, re.I
)
# An out-of-office answer without auto headers: a short answer (to some mail: a new
# request that starts "В командировке до 20.07, не работает…" is a request) whose text
# opens, after a greeting or a thank-you, with "I am away". A reply that mentions a
# holiday further on, or runs longer than a few lines, is a person's reply.
OOF_BODY_MAX_CHARS = 600
_OOF_END = r"[ \t]*(?:[\r\n:!.,;(…\-–—]|до\s|с\s|по\s|until\s|till\s|from\s|$)"
_REPLY_SUBJECT = re.compile(r"^\s*(re|ответ|отв|aw|sv|автоответ)\s*(\[\d+\]|\(\d+\))?\s*:|#\d", re.I)
_OOF_OPENING = (
    r"^\s*(?:(?:добр(?:ый|ое|ого)\s+(?:день|утро|вечер|времени\s+суток)|здравствуйте|приветствую|уважаем\w*[^\n!.,]{0,60}"
    r"|hello|hi|dear[^\n!.,]{0,60}|good\s+(?:morning|afternoon|day)|спасибо(?:\s+за\s+(?:ваше\s+)?(?:письмо|сообщение))?"
    r"|благодарю\s+за\s+(?:ваше\s+)?(?:письмо|сообщение)|thank\s+you(?:\s+for\s+your\s+(?:e-?mail|message))?)"
    r"\s*[!.,]*\s*){0,3}(?:(?:в\s+настоящее\s+время|сейчас|к\s+сожалению|currently|unfortunately),?\s+)?"
)
_OOF_BODY = re.compile(
    _OOF_OPENING + r"(?:"
    r"(?:я\s+)?(?:сейчас\s+|в\s+настоящее\s+время\s+)?(?:нахожусь|буду)\s+(?:в\s+(?:отпуске|командировке)|на\s+больничном"
    r"|вне\s+офиса)"
    r"|меня\s+(?:нет|не\s+будет)\s+(?:на\s+(?:рабочем\s+)?месте|в\s+офисе)"
    r"|(?:я\s+)?отсутствую(?:\s+на\s+рабочем\s+месте|\s+в\s+офисе|" + _OOF_END + r")"
    r"|(?:я\s+)?(?:в\s+(?:отпуске|командировке)|на\s+больничном|вне\s+офиса)" + _OOF_END +
    r"|i\s*(?:am|'m|’m)\s+(?:currently\s+)?(?:out\s+of\s+(?:the\s+)?office|on\s+(?:vacation|holiday|leave|annual\s+leave"
    r"|sick\s+leave|a\s+business\s+trip)|away\s+from\s+(?:the\s+|my\s+)?(?:office|desk)|away" + _OOF_END + r")"
    r"|i\s*(?:will|'ll|’ll)\s+be\s+(?:out\s+of\s+(?:the\s+)?office|away|on\s+(?:vacation|holiday|leave))"
    r"|out\s+of\s+(?:the\s+)?office" + _OOF_END + r")",
    re.I,
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
    if envelope.mail_from is not None and "".join(envelope.mail_from.split()).lower() in _NULL_ENVELOPE:
        return Reason("bounce.null_sender", "null envelope sender")
    # Without an envelope (IMAP, pipe) the delivering server's Return-Path stands in for it.
    if envelope.mail_from is None and any(_NULL_PATH.fullmatch(v.strip()) for v in mail.header_all("Return-Path")):
        return Reason("bounce.null_sender", "Return-Path is <>")
    return None


def _uncommented(value: str) -> str:
    """A header value with its (nested) comments taken out; linear, and an unclosed comment runs to the end."""
    out, depth, escaped = [], 0, False
    for ch in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
        elif ch == "\\":
            escaped = True
        elif ch == "(":
            if depth == 0:
                out.append(" ")
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(" " if ch == ")" else ch)
    return "".join(out)


def _from_localparts(mail: InboundMail) -> tuple[str, ...]:
    """The local part of each From field as written, also where it holds no mailbox (`MAILER-DAEMON`)."""
    found = []
    for value in mail.header_all("From"):
        text = _uncommented(re.sub(r'"(?:[^"\\]|\\.)*"', " ", value))
        angle = re.search(r"<([^<>]*)>", text)
        spec = (angle.group(1) if angle else text).strip()
        found.append(spec.rpartition("@")[0] if "@" in spec else spec)
    return tuple(p.lower() for p in found)


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
    # `MAILER-DAEMON (Mail Delivery System)`, `<MAILER-DAEMON>`: no domain, so no parsed mailbox
    hit = hit or next((p for p in _from_localparts(mail) if p in daemons), None)
    return Reason("bounce.mailer_daemon", f"From is {hit}") if hit else None


def _auto_submitted(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    for value in mail.header_all("Auto-Submitted"):
        token = _uncommented(value).split(";")[0].strip().lower()
        if token != "no":
            return Reason("auto.auto_submitted", f"Auto-Submitted: {token or '(empty)'}")
    return None


def _x_autoreply(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    for name in ("X-Autoreply", "X-Autorespond", "X-Autogenerated"):
        if mail.header(name) is not None:
            return Reason("auto.x_autoreply", f"{name} header")
    return None


def _suppress(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    # Automatic senders ask for no OOF / auto-reply (see the module docstring); receipts only is a person.
    for value in mail.header_all("X-Auto-Response-Suppress"):
        tokens = set(re.split(r"[\s,;]+", _uncommented(value).strip().lower()))
        if tokens & _SUPPRESS:
            return Reason("auto.suppress", f"X-Auto-Response-Suppress: {', '.join(sorted(tokens & _SUPPRESS))}")
    return None


def _precedence(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    for value in mail.header_all("Precedence"):
        words = _uncommented(value).split()
        token = words[0].lower() if words else ""
        if token in _PRECEDENCE:
            return Reason("auto.precedence", f"Precedence: {token}")
    return None


def _mailing_list(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    name = next((n for n, _ in mail.headers if n.lower().startswith(_LIST_PREFIX)), None)
    return Reason("auto.list", f"{name[:60]} header") if name else None


def _read_receipt(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    if _MDN.match(mail.header("Content-Type") or ""):
        return Reason("auto.read_receipt", "multipart/report disposition notification")
    return None


def _oof_subject(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    if _OOF_CLEAR.match(mail.subject) or _OOF_PHRASE.match(mail.subject):
        return Reason("auto.subject", "out-of-office or receipt subject")
    return None


def _oof_body(mail: InboundMail, envelope: Envelope, policy: ClassifyPolicy) -> Reason | None:
    if not (mail.in_reply_to or mail.references or _REPLY_SUBJECT.search(mail.subject)):
        return None
    # the head is enough: an own text longer than the bound is no out-of-office note, whatever it quotes
    text = strip_quoted(mail.text[:64 * 1024])
    if len(text.strip()) <= OOF_BODY_MAX_CHARS and _OOF_BODY.match(text):
        return Reason("auto.oof_body", "short text that opens with an out-of-office phrase")
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
    (MailKind.AUTO_REPLY, _oof_body),
)
