"""InboundMail and Envelope values for the pure core's tests, built directly (no parsing)."""

from __future__ import annotations

from email.utils import getaddresses
from typing import Iterable, Sequence

from maildesk.core.model import Address, Attachment, Envelope, InboundMail

REQUESTER = "ivanova@sev.gov.ru"
DEFAULT_FROM = f"Иванова Мария Петровна <{REQUESTER}>"
_UNSET = object()


def mail(
    *,
    from_header: str | Sequence[str] | None = DEFAULT_FROM,
    from_: Iterable[Address] | object = _UNSET,
    subject: str = "Не открывается карта пациента в МИС",
    text: str = "Добрый день!\n\nПри открытии карты пациента появляется ошибка.\n\nТелефон: +7 (8692) 55-12-34\n",
    html: str | None = None,
    message_id: str | None = "<req-1@sev.gov.ru>",
    in_reply_to: Sequence[str] = (),
    references: Sequence[str] = (),
    headers: Sequence[tuple[str, str]] = (),
    attachments: Sequence[Attachment] = (),
    defects: Sequence[str] = (),
    content_type: str = "text/plain",
) -> InboundMail:
    """A parsed message as parse() would hand it over.

    `from_header` is the From field as written (a list for several From fields, None for
    none); `from_` is what the parser made of it, by default a lenient parse of it.
    """
    froms = [] if from_header is None else [from_header] if isinstance(from_header, str) else list(from_header)
    if from_ is _UNSET:
        parsed = tuple(Address(n, e) for n, e in getaddresses(froms) if e)
    else:
        parsed = tuple(from_)  # type: ignore[arg-type]
    all_headers = [("From", v) for v in froms] + [("Subject", subject)]
    if message_id:
        all_headers.append(("Message-ID", message_id))
    all_headers += list(headers)
    return InboundMail(
        message_id=message_id, subject=subject, from_=parsed,
        to=(Address("", "help@miac.sev.gov.ru"),), cc=(), reply_to=(),
        in_reply_to=tuple(in_reply_to), references=tuple(references), date=None,
        text=text, html=html, attachments=tuple(attachments), headers=tuple(all_headers),
        defects=tuple(defects), content_type=content_type,
    )


def envelope(mail_from: str | None = REQUESTER, source: str = "smtp") -> Envelope:
    return Envelope(source=source, mail_from=mail_from, rcpt_tos=("help@miac.sev.gov.ru",))


def file(filename: str, data: bytes, content_type: str = "application/octet-stream", *,
         inline: bool = False, content_id: str | None = None) -> Attachment:
    return Attachment(filename, content_type, data, inline=inline, content_id=content_id)
