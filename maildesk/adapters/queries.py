"""Read-only views of the store for the command line: ticket lists, a ticket's thread, quarantine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from maildesk.adapters.database import session_scope
from maildesk.adapters.db_models import (
    AttachmentRow, Contact, EventRow, MessageRow, Organisation, OutboxRow, ProcessedMail, QuarantineEntry, Ticket,
)
from maildesk.adapters.store import ticket_snapshot


@dataclass(frozen=True)
class TicketFilter:
    status: tuple[str, ...] = ()
    requester: str = ""
    organisation: str = ""
    text: str = ""
    owner: str = ""
    unassigned: bool = False
    overdue_at: datetime | None = None  # past the acceptance deadline at this moment, not taken
    limit: int = 200


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) for k, v in row.items()}


def list_tickets(engine: Engine, f: TicketFilter) -> list[dict[str, Any]]:
    with session_scope(engine) as s:
        q = select(Ticket).join(Contact, Contact.id == Ticket.requester_id)
        if f.status:
            q = q.where(Ticket.status.in_(f.status))
        if f.requester:
            q = q.where(Contact.email == f.requester.lower())
        if f.organisation:
            q = q.join(Organisation, Organisation.id == Ticket.organisation_id).where(
                _icontains(s, Organisation.name, f.organisation))
        if f.owner:
            q = q.where(Ticket.owner == f.owner.lower())
        if f.unassigned:
            q = q.where(Ticket.owner.is_(None), Ticket.status != "closed")
        if f.overdue_at is not None:
            q = q.where(Ticket.accepted_at.is_(None), Ticket.accept_due_at <= f.overdue_at,
                        Ticket.status.in_(("new", "assigned", "in_progress")))
        if f.text:
            in_messages = select(MessageRow.ticket_id).where(_icontains(s, MessageRow.text, f.text))
            q = q.where(sa.or_(_icontains(s, Ticket.subject, f.text), Ticket.id.in_(in_messages)))
        rows = s.exec(q.order_by(Ticket.id.desc()).limit(f.limit)).all()
        return [_plain(ticket_snapshot(s, t)) for t in rows]


def _casefold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _icontains(s: Session, column: Any, text: str) -> Any:
    """`column` contains `text` ignoring case in any alphabet, `%` and `_` taken literally.

    SQLite's LIKE and lower() fold ASCII letters only, so «принтер» would miss «Принтер»: there the
    comparison goes through Python's casefold, registered on the connection in use. PostgreSQL's
    ILIKE folds by the database's locale.
    """
    conn = s.connection()
    if conn.dialect.name != "sqlite":
        return column.icontains(text, autoescape=True)
    conn.connection.driver_connection.create_function("maildesk_casefold", 1, _casefold, deterministic=True)
    return sa.func.maildesk_casefold(column).contains(text.casefold(), autoescape=True)


def show_ticket(engine: Engine, number: int) -> dict[str, Any] | None:
    with session_scope(engine) as s:
        ticket = s.get(Ticket, number)
        if ticket is None:
            return None
        data = _plain(ticket_snapshot(s, ticket))
        messages = s.exec(select(MessageRow).where(MessageRow.ticket_id == number).order_by(MessageRow.id)).all()
        data["messages"] = [_plain({
            "id": m.id, "direction": m.direction, "visibility": m.visibility, "kind": m.kind,
            "message_id": m.message_id, "sender": m.sender, "sender_name": m.sender_name, "subject": m.subject,
            "text": m.text, "created_at": m.created_at, "source": m.source, "raw_sha256": m.raw_sha256,
            "decision": _decision_of(s, m.id),
        }) for m in messages]
        atts = s.exec(select(AttachmentRow).where(AttachmentRow.ticket_id == number).order_by(AttachmentRow.id)).all()
        data["attachments"] = [{
            "id": a.id, "message": a.message_row_id, "filename": a.filename, "content_type": a.content_type,
            "size": a.size, "sha256": a.sha256, "state": a.state, "reason": a.reason,
        } for a in atts]
        events = s.exec(select(EventRow).where(EventRow.ticket_id == number).order_by(EventRow.id)).all()
        data["events"] = [_plain({"at": e.at, "actor": e.actor, "action": e.action, "detail": e.detail,
                                  "message": e.message_row_id}) for e in events]
        sent = s.exec(select(OutboxRow).where(OutboxRow.ticket_id == number).order_by(OutboxRow.id)).all()
        data["notifications"] = [_plain({"event": o.event, "to": o.recipients, "state": o.state,
                                         "message_id": o.message_id, "sent_at": o.sent_at}) for o in sent]
        return data


def _decision_of(s: Any, message_row_id: int | None) -> dict[str, Any] | None:
    row = s.exec(select(ProcessedMail).where(ProcessedMail.message_row_id == message_row_id)).first()
    return None if row is None else {"outcome": row.outcome, **row.decision}


def _quarantine_dict(q: QuarantineEntry) -> dict[str, Any]:
    return _plain({
        "id": q.id, "at": q.at, "reason": q.reason_code, "detail": q.detail, "state": q.state, "source": q.source,
        "mail_from": q.mail_from, "rcpt_tos": q.rcpt_tos, "peer": q.peer, "sender": q.sender, "subject": q.subject,
        "message_id": q.message_id, "ticket": q.ticket_id, "raw_sha256": q.raw_sha256, "released_at": q.released_at,
    })


def list_quarantine(engine: Engine, state: str | None = "held", limit: int = 200) -> list[dict[str, Any]]:
    with session_scope(engine) as s:
        q = select(QuarantineEntry)
        if state:
            q = q.where(QuarantineEntry.state == state)
        return [_quarantine_dict(e) for e in s.exec(q.order_by(QuarantineEntry.id.desc()).limit(limit)).all()]


def show_quarantine(engine: Engine, entry_id: int) -> dict[str, Any] | None:
    with session_scope(engine) as s:
        entry = s.get(QuarantineEntry, entry_id)
        if entry is None:
            return None
        data = _quarantine_dict(entry)
        processed = s.exec(select(ProcessedMail).where(ProcessedMail.quarantine_id == entry_id)).first()
        data["decision"] = None if processed is None else {"outcome": processed.outcome, **processed.decision}
        files = s.exec(select(AttachmentRow).where(AttachmentRow.quarantine_id == entry_id)).all()
        data["files"] = [{"filename": a.filename, "size": a.size, "reason": a.reason, "sha256": a.sha256} for a in files]
        return data
