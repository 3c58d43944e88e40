"""Builds realistic raw test messages (bytes) the way common mail clients write them."""

from __future__ import annotations

import itertools
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from datetime import datetime, timezone
from typing import Iterable, Sequence

_counter = itertools.count(1)


def make_mail(
    *,
    sender: str = "ivanova@gb1.sev.gov.ru",
    sender_name: str = "Иванова Мария Петровна",
    to: Sequence[str] = ("help@miac.sev.gov.ru",),
    cc: Sequence[str] = (),
    subject: str = "Не открывается карта пациента в МИС",
    body: str = "Добрый день!\n\nПри открытии карты пациента появляется ошибка.\n\nТелефон: +7 (8692) 55-12-34\n",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: Iterable[str] = (),
    headers: Sequence[tuple[str, str]] = (),
    attachments: Sequence[tuple[str, str, bytes]] = (),
    html: str | None = None,
    date: datetime | None = None,
) -> bytes:
    """A message as bytes; `attachments` are (filename, mime type, data)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((sender_name, sender)) if sender_name else sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc))
    msg["Message-ID"] = f"<{message_id or f'test-{next(_counter)}-{id(msg)}@gb1.sev.gov.ru'}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    refs = list(references)
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    for name, value in headers:
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, mime, data in attachments:
        maintype, _, subtype = mime.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()
