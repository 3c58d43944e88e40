"""Admin views of the outbox: list, show the raw message, queue again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from maildesk.adapters.database import session_scope
from maildesk.adapters.db_models import EventRow, OutboxRow


def list_outbox(engine: Engine, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with session_scope(engine) as s:
        q = select(OutboxRow)
        if state:
            q = q.where(OutboxRow.state == state)
        rows = s.exec(q.order_by(OutboxRow.id.desc()).limit(limit)).all()
        return [{
            "id": r.id, "ticket": r.ticket_id, "event": r.event, "to": r.recipients, "state": r.state,
            "attempts": r.attempts, "message_id": r.message_id, "automatic": r.automatic,
            "created_at": r.created_at.isoformat() if r.created_at else None,
            "sent_at": r.sent_at.isoformat() if r.sent_at else None,
            "next_attempt_at": r.next_attempt_at.isoformat() if r.next_attempt_at else None,
            "last_error": r.last_error,
        } for r in rows]


def show_outbox(engine: Engine, row_id: int) -> bytes | None:
    with session_scope(engine) as s:
        row = s.get(OutboxRow, row_id)
        return None if row is None else row.raw


def retry_outbox(engine: Engine, row_id: int | None, now: datetime, force: bool = False) -> int:
    """Queue failed (or held) messages again: the same bytes and Message-ID, sent once.

    `force` (one row only) lets the row past the per-recipient cap on automatic mail: the
    worker caps only rows marked automatic, so the row loses that mark, and the ticket's
    history records who let it through.
    """
    if force and row_id is None:
        raise ValueError("a forced retry names one message")
    with session_scope(engine) as s:
        values: dict[str, Any] = {"state": "pending", "next_attempt_at": now, "attempts": 0, "lease_until": None}
        if force:
            values["automatic"] = False
        q = sa.update(OutboxRow).values(**values)
        if row_id is None:
            q = q.where(OutboxRow.state == "failed")
        else:
            q = q.where(OutboxRow.id == row_id, OutboxRow.state.in_(("failed", "held")))
        count = s.execute(q).rowcount
        row = s.get(OutboxRow, row_id) if force and count else None
        if row is not None and row.ticket_id is not None:
            s.add(EventRow(ticket_id=row.ticket_id, at=now, actor="admin", action="mail_forced",
                           detail={"outbox": row.id, "event": row.event, "to": list(row.recipients)}))
        return count
