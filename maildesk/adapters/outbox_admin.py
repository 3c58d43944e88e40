"""Admin views of the outbox: list, show the raw message, queue again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from maildesk.adapters.database import session_scope
from maildesk.adapters.db_models import OutboxRow


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


def retry_outbox(engine: Engine, row_id: int | None, now: datetime) -> int:
    """Queue failed (or held) messages again: the same bytes and Message-ID, sent once."""
    with session_scope(engine) as s:
        q = sa.update(OutboxRow).values(state="pending", next_attempt_at=now, attempts=0, lease_until=None)
        if row_id is None:
            q = q.where(OutboxRow.state == "failed")
        else:
            q = q.where(OutboxRow.id == row_id, OutboxRow.state.in_(("failed", "held")))
        return s.execute(q).rowcount
