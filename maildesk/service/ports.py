"""The service layer's view of the edges: what it needs from store, archive, clock and mail out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, Sequence

from maildesk.core.decision import Context, Decision, Notice, TicketView, Triage
from maildesk.core.model import Envelope, InboundMail, Outcome, Reason


class StoreUnavailable(Exception):
    """The ticket store cannot be reached or written: the mail must be retried later."""


@dataclass(frozen=True)
class IngestResult:
    """What happened to one incoming message; adapters turn it into SMTP replies, moves, exit codes."""

    outcome: Outcome
    rule: str
    ticket: int | None = None
    quarantine: int | None = None
    reasons: tuple[Reason, ...] = ()
    key: str = ""


@dataclass(frozen=True)
class Incoming:
    """Everything store.apply() writes for one message, in one transaction."""

    key: str
    raw_sha256: str
    envelope: Envelope
    mail: InboundMail | None
    triage: Triage | None
    decision: Decision
    attachment_shas: Sequence[str] = ()
    replace_key: bool = False  # a released quarantine entry is processed again under its key
    actor: str = ""  # who acts when there is no mail (an agent at the terminal)


@dataclass(frozen=True)
class Outgoing:
    """A composed notification ready for the outbox."""

    event: str
    recipients: tuple[str, ...]
    message_id: str
    raw: bytes
    automatic: bool = True


@dataclass(frozen=True)
class NoticeTarget:
    """What the composer knows when it turns a Notice into mail: the ticket as committed."""

    notice: Notice
    recipients: tuple[str, ...]
    ticket: dict[str, Any] | None
    thread_ids: tuple[str, ...] = ()
    trigger: InboundMail | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Composer(Protocol):
    def compose(self, target: NoticeTarget, now: datetime) -> Outgoing | None: ...


class Archive(Protocol):
    def put(self, data: bytes) -> str: ...
    def get(self, digest: str) -> bytes: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class TicketStore(Protocol):
    def processed(self, key: str) -> IngestResult | None: ...
    def context(self, triage: Triage) -> Context: ...
    def apply(self, incoming: Incoming, now: datetime, composer: Composer) -> IngestResult: ...
    def quarantine_entry(self, entry_id: int) -> dict[str, Any] | None: ...
    def ticket_view(self, number: int) -> TicketView | None: ...
