"""The outbox worker: claims due rows under a lease, sends them once, backs off while the relay is down."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from maildesk.adapters.database import session_scope
from maildesk.adapters.db_models import EventRow, OutboxRow
from maildesk.adapters.mailer import PermanentFailure, TemporaryDeliveryFailure, Transport

log = logging.getLogger("maildesk.outbox")

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 30


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min … capped at one hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


@dataclass
class OutboxWorker:
    engine: Engine
    transport: Transport
    sender: str  # envelope sender of our notifications
    cap_per_day: int = 40
    owner: str = f"{socket.gethostname()}:{os.getpid()}"

    def deliver_due(self, now: datetime, limit: int = 100) -> int:
        """Send what is due; returns how many were sent. Safe to run on several instances at once."""
        sent = 0
        for row_id in self._due_ids(now, limit):
            if not self._claim(row_id, now):
                continue  # another instance has it
            sent += self._deliver(row_id, now)
        return sent

    def _due_ids(self, now: datetime, limit: int) -> list[int]:
        with session_scope(self.engine) as s:
            q = (select(OutboxRow.id).where(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now)
                 .order_by(OutboxRow.id).limit(limit))
            return list(s.exec(q).all())

    def _claim(self, row_id: int, now: datetime) -> bool:
        with session_scope(self.engine) as s:
            result = s.execute(
                sa.update(OutboxRow)
                .where(OutboxRow.id == row_id, OutboxRow.state == "pending",
                       sa.or_(OutboxRow.lease_until.is_(None), OutboxRow.lease_until < now))
                .values(lease_owner=self.owner, lease_until=now + LEASE)
            )
            return result.rowcount == 1

    def _deliver(self, row_id: int, now: datetime) -> int:
        with session_scope(self.engine) as s:
            row = s.get(OutboxRow, row_id)
            assert row is not None
            recipients, raw, automatic, event = list(row.recipients), row.raw, row.automatic, row.event
            over = self._over_cap(s, recipients, now) if automatic else []
        if over:
            self._finish(row_id, "held", now, f"automatic mail cap reached for {', '.join(over)}")
            log.warning("outbox %s held: automatic mail cap reached for %s", row_id, ", ".join(over))
            return 0
        try:
            self.transport.send(self.sender, recipients, raw, f"{row_id:08d}-{event}")
        except PermanentFailure as exc:
            self._finish(row_id, "failed", now, str(exc))
            log.error("outbox %s failed permanently: %s", row_id, exc)
            return 0
        except TemporaryDeliveryFailure as exc:
            self._retry(row_id, now, str(exc))
            return 0
        self._finish(row_id, "sent", now, "")
        return 1

    def _over_cap(self, s: sa.orm.Session, recipients: list[str], now: datetime) -> list[str]:
        since = now - timedelta(days=1)
        rows = s.exec(select(OutboxRow.recipients).where(
            OutboxRow.automatic.is_(True), OutboxRow.state == "sent", OutboxRow.sent_at >= since)).all()
        counts: dict[str, int] = {}
        for rcpts in rows:
            for r in rcpts:
                counts[r] = counts.get(r, 0) + 1
        return [r for r in recipients if counts.get(r, 0) >= self.cap_per_day]

    def _finish(self, row_id: int, state: str, now: datetime, error: str) -> None:
        with session_scope(self.engine) as s:
            row = s.get(OutboxRow, row_id)
            assert row is not None
            row.state, row.lease_owner, row.lease_until, row.last_error = state, None, None, error[:2000]
            row.attempts += 1
            if state == "sent":
                row.sent_at = now
            elif row.ticket_id is not None:
                s.add(EventRow(ticket_id=row.ticket_id, at=now, actor="system", action=f"mail_{state}",
                               detail={"event": row.event, "to": row.recipients, "error": error[:500]}))

    def _retry(self, row_id: int, now: datetime, error: str) -> None:
        with session_scope(self.engine) as s:
            row = s.get(OutboxRow, row_id)
            assert row is not None
            row.attempts += 1
            row.lease_owner, row.lease_until, row.last_error = None, None, error[:2000]
            if row.attempts >= MAX_ATTEMPTS:
                row.state = "failed"
                log.error("outbox %s failed after %d attempts: %s", row_id, row.attempts, error)
            else:
                row.next_attempt_at = now + backoff(row.attempts)
                log.warning("outbox %s will be retried at %s: %s", row_id, row.next_attempt_at, error)
