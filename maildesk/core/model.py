"""Plain values that flow through the pure core: incoming mail, envelopes, verdicts."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime


@dataclass(frozen=True)
class Address:
    """One mailbox as the sender's client showed it: display name and address."""

    name: str
    email: str

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


@dataclass(frozen=True)
class Attachment:
    """A decoded MIME leaf that is not the message text."""

    filename: str
    content_type: str
    data: bytes
    inline: bool = False
    content_id: str | None = None
    stored_size: int | None = None  # set when `data` was dropped after archiving

    @property
    def size(self) -> int:
        return self.stored_size if self.stored_size is not None else len(self.data)

    def without_data(self) -> Attachment:
        """The same attachment with its bytes left in the archive (cheap to pass between processes)."""
        return replace(self, data=b"", stored_size=self.size)


@dataclass(frozen=True)
class InboundMail:
    """A parsed message. Header values are decoded text; `headers` keeps every field in order."""

    message_id: str | None
    subject: str
    from_: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date: datetime | None
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...]
    defects: tuple[str, ...] = ()
    content_type: str = "text/plain"

    def header(self, name: str) -> str | None:
        """The first value of a header field, or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def header_all(self, name: str) -> tuple[str, ...]:
        lname = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == lname)

    @property
    def sender(self) -> Address | None:
        """The single From mailbox, or None when there is not exactly one."""
        return self.from_[0] if len(self.from_) == 1 else None


@dataclass(frozen=True)
class Envelope:
    """How a message reached maildesk: SMTP envelope, IMAP account, or a pipe."""

    source: str  # "smtp", "imap:<account>", "cli"
    mail_from: str | None = None  # None when unknown (IMAP, pipe); "" is the null path
    rcpt_tos: tuple[str, ...] = ()
    peer: str | None = None


class MailKind(enum.StrEnum):
    """What classify() says a message is."""

    NORMAL = "normal"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    OWN_MAIL = "own_mail"


class Outcome(enum.StrEnum):
    """The one recorded end of an incoming message."""

    CREATED = "created"
    APPENDED = "appended"
    QUARANTINED = "quarantined"
    IGNORED = "ignored"  # automatic mail recorded, nothing else
    DUPLICATE = "duplicate"  # seen before: nothing changed


@dataclass(frozen=True)
class Reason:
    """Why a rule fired: a stable code for scripts and a sentence for people."""

    code: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


@dataclass(frozen=True)
class TicketRef:
    """A threading signal found in a message: which ticket, and how it was found."""

    number: int | None
    signal: str  # "minted", "in_reply_to", "references", "subject_tag", "body"
    value: str = ""


@dataclass(frozen=True)
class Verdicts:
    """Everything the pure triage steps concluded about one message."""

    kind: MailKind = MailKind.NORMAL
    refused: tuple[Reason, ...] = ()
    refs: tuple[TicketRef, ...] = ()
    notes: tuple[Reason, ...] = field(default_factory=tuple)
