"""The store side of scheduled passes: indexed due-time queries and version-guarded updates."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from maildesk.adapters.database import session_scope
from maildesk.adapters.db_models import EventRow, Ticket
from maildesk.adapters.store import emit, role_recipients, set_waiting, ticket_snapshot
from maildesk.core.deadlines import WorkClock
from maildesk.core.lifecycle import WAITING_STATUSES
from maildesk.service.housekeeping import DueChange, DueTicket
from maildesk.service.ports import Composer, NoticeTarget

_ACTIVE_UNACCEPTED = sa.and_(Ticket.accepted_at.is_(None), Ticket.status.in_(("new", "assigned", "in_progress")))

# job → (due-time column, extra condition); each pair is served by an index on the tickets table
_QUERIES = {
    "stale_close": (Ticket.stale_close_at, Ticket.status.in_(WAITING_STATUSES)),
    "stale_remind": (Ticket.remind_at, sa.and_(Ticket.status.in_(WAITING_STATUSES), Ticket.reminded_at.is_(None))),
    "sla_warning": (Ticket.accept_warn_at, sa.and_(_ACTIVE_UNACCEPTED, Ticket.accept_warned_at.is_(None))),
    "sla_breach": (Ticket.accept_due_at, sa.and_(_ACTIVE_UNACCEPTED, Ticket.accept_breached_at.is_(None))),
}


class SqlHousekeepingStore:
    def __init__(self, engine: Engine, work: WorkClock | None = None) -> None:
        self.engine = engine
        self.work = work

    def due(self, job: str, now: datetime, limit: int) -> Sequence[DueTicket]:
        column, condition = _QUERIES[job]
        with session_scope(self.engine) as s:
            rows = s.exec(
                select(Ticket.id, Ticket.version, Ticket.status, column, Ticket.stale_close_at)
                .where(condition, column.is_not(None), column <= now).order_by(column).limit(limit)
            ).all()
            return [DueTicket(*row) for row in rows]

    def explain(self, job: str, now: datetime) -> list[str]:
        """The database's plan for a job's query (to show that it uses an index)."""
        column, condition = _QUERIES[job]
        moment = sa.literal_column(f"'{now.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}'")
        query = select(Ticket.id).where(condition, column.is_not(None), column <= moment)
        with self.engine.connect() as conn:
            sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
            prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
            rows = conn.exec_driver_sql(prefix + sql).fetchall()
            return [" ".join(str(c) for c in row) for row in rows]

    def apply_due(self, item: DueTicket, change: DueChange, now: datetime, composer: Composer) -> bool:
        """Apply one change if the ticket is still as it was read; False when someone got there first."""
        values: dict[str, Any] = {**change.marks, "version": item.version + 1, "updated_at": now}
        with session_scope(self.engine) as s:
            claimed = s.execute(
                sa.update(Ticket).where(Ticket.id == item.number, Ticket.version == item.version).values(**values)
            ).rowcount == 1
            if not claimed:
                return False
            ticket = s.get(Ticket, item.number)
            assert ticket is not None
            s.refresh(ticket)
            if change.new_status is not None:
                ticket.status = change.new_status
                set_waiting(ticket, change.new_status, now, self.work)
                if change.new_status == "closed":
                    ticket.close_reason, ticket.closed_at = change.close_reason, now
            action, detail = change.event
            s.add(EventRow(ticket_id=item.number, at=now, actor="system", action=action, detail=detail))
            s.flush()
            snapshot = ticket_snapshot(s, ticket)
            for notice in change.notices:
                emit(s, ticket, NoticeTarget(notice, role_recipients(s, notice, snapshot), snapshot), composer, now)
            return True
