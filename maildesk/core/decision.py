"""The values decide() works on and returns: triage results, ticket context, the decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from maildesk.core.model import Envelope, InboundMail, MailKind, Outcome, Reason, TicketRef


@dataclass(frozen=True)
class Triage:
    """What the pure steps concluded about a message, before any lookup."""

    mail: InboundMail
    envelope: Envelope
    kind: MailKind = MailKind.NORMAL
    kind_reason: Reason | None = None
    sender: str | None = None  # normalised address when authorized
    sender_name: str = ""
    sender_allowed: bool = False
    sender_is_agent: bool = False
    sender_authenticated: bool = False
    sender_reason: Reason | None = None
    refs: tuple[TicketRef, ...] = ()
    text: str = ""  # the new text of the message, quoted history stripped
    refused_files: tuple[tuple[int, Reason], ...] = ()  # index into mail.attachments, why
    request_invalid: Reason | None = None
    form_fields: Mapping[str, str] = field(default_factory=dict)
    form_missing: tuple[str, ...] = ()
    bounced_ids: tuple[str, ...] = ()
    stated_impact: str | None = None
    rules: tuple[str, ...] = ()  # names of the steps that ran, for the decision record


@dataclass(frozen=True)
class TicketView:
    """The parts of a stored ticket that decide() needs."""

    number: int
    status: str
    subject: str
    requester: str
    participants: tuple[str, ...] = ()
    owner: str | None = None
    impact: str | None = None
    priority: int = 3


@dataclass(frozen=True)
class Context:
    """What the store knows about the message's sender and the ticket it refers to."""

    ticket: TicketView | None = None
    signal: TicketRef | None = None
    bounced_ticket: int | None = None
    message_id_reused: bool = False  # another message with this Message-ID was seen


@dataclass(frozen=True)
class Notice:
    """A notification to send; `to` is a role (requester, agents, owner, sender) or an address."""

    event: str
    to: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewTicket:
    subject: str
    status: str = "new"
    impact: str | None = None
    priority: int = 3
    priority_source: str = "default"
    link_to: int | None = None


@dataclass(frozen=True)
class Decision:
    """One message's recorded end: what to write, whom to tell, and why."""

    outcome: Outcome
    rule: str
    reasons: tuple[Reason, ...] = ()
    ticket: int | None = None  # existing ticket the message goes to
    create: NewTicket | None = None
    new_status: str | None = None
    close_reason: str | None = None
    message_kind: str = "normal"
    visibility: str = "public"
    add_participants: tuple[str, ...] = ()
    events: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    notices: tuple[Notice, ...] = ()
    quarantine: Reason | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)  # owner, priority, impact, line
    link_to: int | None = None  # /merge, /close duplicate N
    accepted: bool = False  # an agent took the ticket into work (acceptance deadline met)
    text: str | None = None  # the text to record when it is not the mail's own (commands removed)
    record: Mapping[str, Any] = field(default_factory=dict)
