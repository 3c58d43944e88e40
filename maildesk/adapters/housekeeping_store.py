"""The store side of scheduled passes: indexed due-time queries and version-guarded updates."""

from __future__ import annotations

import logging
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

log = logging.getLogger("maildesk.housekeeping")

_ACTIVE = Ticket.status.in_(("new", "assigned", "in_progress"))  # in feedback and resolved the clocks stand
_ACTIVE_UNACCEPTED = sa.and_(Ticket.accepted_at.is_(None), _ACTIVE)


def _query(job: str, now: Any, close_resolved: bool) -> tuple[Any, Any, Any]:
    """(due-time column, extra condition, the due time it forewarns of); each served by a tickets index."""
    # resolved tickets that silence does not close are never due: neither reminded nor closed
    waiting = Ticket.status.in_([w for w in WAITING_STATUSES if close_resolved or w != "resolved"])
    if job == "stale_close":
        return Ticket.stale_close_at, waiting, None
    if job == "stale_remind":
        return Ticket.remind_at, sa.and_(waiting, Ticket.reminded_at.is_(None)), Ticket.stale_close_at
    if job == "sla_warning":  # past the deadline itself only the breach is due
        return (Ticket.accept_warn_at, sa.and_(_ACTIVE_UNACCEPTED, Ticket.accept_warned_at.is_(None),
                                               Ticket.accept_due_at > now), Ticket.accept_due_at)
    if job == "sla_breach":
        return Ticket.accept_due_at, sa.and_(_ACTIVE_UNACCEPTED, Ticket.accept_breached_at.is_(None)), None
    if job == "resolve_warning":
        return (Ticket.resolve_warn_at, sa.and_(_ACTIVE, Ticket.resolve_warned_at.is_(None),
                                                Ticket.resolve_due_at > now), Ticket.resolve_due_at)
    if job == "resolve_breach":
        return Ticket.resolve_due_at, sa.and_(_ACTIVE, Ticket.resolve_breached_at.is_(None)), None
    raise KeyError(job)


class SqlHousekeepingStore:
    def __init__(self, engine: Engine, work: WorkClock | None = None, *, close_resolved: bool = True) -> None:
        self.engine = engine
        self.work = work
        self.close_resolved = close_resolved  # [stale] close_resolved_on_silence

    def due(self, job: str, now: datetime, limit: int) -> Sequence[DueTicket]:
        column, condition, forewarned = _query(job, now, self.close_resolved)
        with session_scope(self.engine) as s:
            rows = s.exec(
                select(Ticket.id, Ticket.version, Ticket.status, column,
                       forewarned if forewarned is not None else sa.null())
                .where(condition, column.is_not(None), column <= now).order_by(column).limit(limit)
            ).all()
            return [DueTicket(*row) for row in rows]

    def explain(self, job: str, now: datetime) -> list[str]:
        """The database's plan for a job's query (to show that it uses an index)."""
        moment = sa.literal_column(f"'{now.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}'")
        column, condition, _ = _query(job, moment, self.close_resolved)
        query = select(Ticket.id).where(condition, column.is_not(None), column <= moment)
        with self.engine.connect() as conn:
            sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
            prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
            rows = conn.exec_driver_sql(prefix + sql).fetchall()
            return [" ".join(str(c) for c in row) for row in rows]

    def apply_due(self, changes: Sequence[tuple[DueTicket, DueChange]], now: datetime,
                  composer: Composer) -> list[bool]:
        """Apply changes in one transaction, each where the ticket is still as it was read (else False).

        One commit for the lot: a pass that closes a thousand tickets pays for one fsync, not a thousand.
        """
        with session_scope(self.engine) as s:
            applied = []
            for item, change in changes:
                try:
                    with s.begin_nested():
                        applied.append(self._apply_one(s, item, change, now, composer))
                except sa.exc.OperationalError:
                    raise  # the store's trouble: the whole pass is tried again later
                except Exception:  # this ticket's own (a template that fails on it): the others go on
                    log.exception("%s of ticket %s not applied; tried again on the next pass", change.job, item.number)
                    applied.append(False)
            return applied

    def _apply_one(self, s: Any, item: DueTicket, change: DueChange, now: datetime, composer: Composer) -> bool:
        values: dict[str, Any] = {**change.marks, "version": item.version + 1, "updated_at": now}
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
