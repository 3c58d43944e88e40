"""The ticket store's tables (SQLModel), shared by SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in Python; SQLite keeps them naive, PostgreSQL as timestamptz."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@sa.event.listens_for(sa.orm.Mapper, "before_insert")
@sa.event.listens_for(sa.orm.Mapper, "before_update")
def _clip_strings(mapper: Any, connection: Any, target: Any) -> None:
    """Cut text taken from mail to its column's length: PostgreSQL would refuse the row, SQLite keep it whole.

    A 1,200-character Message-ID or a form field pasted into the ФИО line must not make a
    message fail on every retry, nor behave differently on the two databases.
    """
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        length = getattr(column.type, "length", None)  # String and SQLModel's AutoString (a TypeDecorator)
        if length:
            value = getattr(target, attr.key, None)
            if isinstance(value, str) and len(value) > length:
                setattr(target, attr.key, value[:length])


def _ts(**kw: Any) -> Any:
    return Field(default=None, sa_type=UTCDateTime, **kw)


def _json(**kw: Any) -> Any:
    return Field(default_factory=dict, sa_type=sa.JSON, **kw)


class Organisation(SQLModel, table=True):
    __tablename__ = "organisations"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=300, unique=True)


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    name: str = Field(default="", max_length=300)
    position: str = Field(default="", max_length=300)
    phone: str = Field(default="", max_length=100)
    organisation_id: int | None = Field(default=None, foreign_key="organisations.id", index=True)
    created_at: datetime | None = _ts()


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        sa.Index("ix_tickets_remind", "status", "remind_at"),
        sa.Index("ix_tickets_stale", "status", "stale_close_at"),
        sa.Index("ix_tickets_accept_warn", "accepted_at", "accept_warn_at"),
        sa.Index("ix_tickets_accept_due", "accepted_at", "accept_due_at"),
        sa.Index("ix_tickets_resolve_warn", "resolve_warned_at", "resolve_warn_at"),
        sa.Index("ix_tickets_resolve_due", "resolve_breached_at", "resolve_due_at"),
        {"sqlite_autoincrement": True},
    )
    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=1000)
    desk: str = Field(max_length=320)
    requester_id: int = Field(foreign_key="contacts.id", index=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisations.id", index=True)
    status: str = Field(default="new", max_length=20)
    close_reason: str | None = Field(default=None, max_length=20)
    impact: str | None = Field(default=None, max_length=20)
    priority: int = Field(default=3)
    priority_source: str = Field(default="default", max_length=20)
    owner: str | None = Field(default=None, max_length=320, index=True)
    line: int = Field(default=1)
    linked_ticket_id: int | None = Field(default=None, foreign_key="tickets.id")
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    accepted_at: datetime | None = _ts()
    accept_warn_at: datetime | None = _ts()  # when to warn agents (a share of the acceptance time)
    accept_due_at: datetime | None = _ts()  # acceptance deadline; moved on while the ticket waits
    accept_warned_at: datetime | None = _ts()
    accept_breached_at: datetime | None = _ts()
    resolve_warn_at: datetime | None = _ts()  # the resolution target of the ticket's priority ([sla] resolution_hours)
    resolve_due_at: datetime | None = _ts()
    resolve_warned_at: datetime | None = _ts()
    resolve_breached_at: datetime | None = _ts()
    resolve_paused_hours: float = Field(default=0.0)  # working hours spent waiting for the requester
    waiting_since: datetime | None = _ts()  # in feedback/resolved: since when the requester is awaited
    remind_at: datetime | None = _ts()  # due times of the stale-ticket reminder and close
    stale_close_at: datetime | None = _ts()
    reminded_at: datetime | None = _ts()
    closed_at: datetime | None = _ts()
    version: int = Field(default=1)


class Participant(SQLModel, table=True):
    __tablename__ = "participants"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "email"),)
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    email: str = Field(max_length=320)


class MessageRow(SQLModel, table=True):
    __tablename__ = "messages"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    direction: str = Field(max_length=3)  # "in" / "out"
    visibility: str = Field(default="public", max_length=10)  # "public" / "internal"
    kind: str = Field(default="normal", max_length=20)  # normal, bounce, auto_reply, note, notice
    message_id: str | None = Field(default=None, max_length=998, index=True)
    in_reply_to: str | None = Field(default=None, max_length=998)
    references: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    sender: str = Field(default="", max_length=320)
    sender_name: str = Field(default="", max_length=300)
    recipients: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    subject: str = Field(default="", max_length=1000)
    text: str = Field(default="", sa_type=sa.Text)
    raw_sha256: str | None = Field(default=None, max_length=64)
    source: str = Field(default="", max_length=100)
    created_at: datetime | None = _ts()


class AttachmentRow(SQLModel, table=True):
    __tablename__ = "attachments"
    id: int | None = Field(default=None, primary_key=True)
    message_row_id: int | None = Field(default=None, foreign_key="messages.id", index=True)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    quarantine_id: int | None = Field(default=None, foreign_key="quarantine.id", index=True)
    filename: str = Field(max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=255)
    size: int = 0
    sha256: str = Field(max_length=64)
    state: str = Field(default="kept", max_length=10)  # kept / refused
    reason: str = Field(default="", max_length=500)


class EventRow(SQLModel, table=True):
    __tablename__ = "events"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    at: datetime | None = _ts()
    actor: str = Field(default="", max_length=320)
    action: str = Field(max_length=50)
    detail: dict[str, Any] = _json()
    message_row_id: int | None = Field(default=None, foreign_key="messages.id")


class QuarantineEntry(SQLModel, table=True):
    __tablename__ = "quarantine"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime | None = _ts(index=True)
    reason_code: str = Field(max_length=100, index=True)
    detail: str = Field(default="", sa_type=sa.Text)
    source: str = Field(default="", max_length=100)
    mail_from: str | None = Field(default=None, max_length=998)
    rcpt_tos: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    peer: str | None = Field(default=None, max_length=100)
    raw_sha256: str = Field(max_length=64)
    message_id: str | None = Field(default=None, max_length=998)
    sender: str = Field(default="", max_length=998)
    subject: str = Field(default="", max_length=1000)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id")
    state: str = Field(default="held", max_length=10)  # held / released / purged
    released_at: datetime | None = _ts()


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_due", "state", "next_attempt_at"),
        sa.Index("ix_outbox_sent", "state", "sent_at"),  # the day's automatic mail per recipient (the cap)
    )
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    event: str = Field(max_length=50)
    recipients: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    message_id: str = Field(max_length=998, unique=True)
    raw: bytes = Field(sa_type=sa.LargeBinary)
    automatic: bool = True
    state: str = Field(default="pending", max_length=10)  # pending / sent / failed / held
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = _ts()
    created_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    last_error: str = Field(default="", sa_type=sa.Text)


class ProcessedMail(SQLModel, table=True):
    """One row per distinct incoming message: its idempotency key and recorded decision."""

    __tablename__ = "processed_mail"
    key: str = Field(primary_key=True, max_length=64)
    message_id: str | None = Field(default=None, max_length=998, index=True)
    raw_sha256: str = Field(max_length=64)
    outcome: str = Field(max_length=20)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    quarantine_id: int | None = Field(default=None, foreign_key="quarantine.id")
    message_row_id: int | None = Field(default=None, foreign_key="messages.id")
    source: str = Field(default="", max_length=100)
    at: datetime | None = _ts()
    decision: dict[str, Any] = _json()


class Lease(SQLModel, table=True):
    """A named lease (IMAP mailbox, scheduler job) held by one instance until it expires."""

    __tablename__ = "leases"
    name: str = Field(primary_key=True, max_length=200)
    owner: str = Field(max_length=100)
    until: datetime | None = _ts()
    state: dict[str, Any] = _json()
