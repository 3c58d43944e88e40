"""The outbox worker: claims due rows under a lease, sends them once, backs off while the relay is down."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from maildesk.adapters.database import session_scope
from maildesk.adapters.db_models import EventRow, OutboxRow, Ticket
from maildesk.adapters.mailer import PermanentFailure, RelayUnavailable, TemporaryDeliveryFailure, Transport
from maildesk.adapters.store import emit, ticket_snapshot
from maildesk.core.decision import Notice
from maildesk.service.ports import Composer, NoticeTarget

log = logging.getLogger("maildesk.outbox")

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 30
CAP_PERIOD = timedelta(days=1)
RECORD_EVERY = 25  # results written back per transaction: a crash re-sends at most this many (same Message-ID)
PASS_SECONDS = LEASE.total_seconds() / 2  # a pass stops taking rows in time for its leases to outlast the sends


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min … capped at one hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


@dataclass(frozen=True)
class _Due:
    """A claimed row, read once: what sending it needs."""

    id: int
    ticket_id: int | None
    event: str
    recipients: tuple[str, ...]
    raw: bytes
    automatic: bool
    attempts: int


@dataclass(frozen=True)
class _Result:
    row: _Due
    state: str  # sent / failed / held / retry / release (not tried)
    error: str = ""
    relay_down: bool = False  # no relay at all: the rest of the pass waits too
    over: tuple[str, ...] = ()  # held: the recipients over the cap, with their count
    count: int = 0


@dataclass
class OutboxWorker:
    engine: Engine
    transport: Transport
    sender: str  # envelope sender of our notifications
    cap_per_day: int = 40
    owner: str = f"{socket.gethostname()}:{os.getpid()}"
    composer: Composer | None = None  # alerts the agents when automatic mail is held; None: log only
    claimed: int = 0  # rows the last pass took: a full pass means more are waiting
    relay_error: str = ""  # why the last pass could not reach the relay; "" once a message went out (health)

    def deliver_due(self, now: datetime, limit: int = 100, stop: threading.Event | None = None) -> int:
        """Send what is due; returns how many were sent. Safe to run on several instances at once.

        One transaction claims the pass's rows and reads the day's automatic mail for the
        cap, and the results are written back every RECORD_EVERY messages, so that the
        database is touched a few times a pass rather than several times a message. When `stop`
        is set the pass ends after the message in hand; the rows it did not reach are let go.
        """
        rows, sent_today = self._claim(now, limit)
        self.claimed = len(rows)
        pending: list[_Result] = []
        sent = 0
        began = time.monotonic()
        try:
            with self.transport:
                for index, row in enumerate(rows):
                    if (stop is not None and stop.is_set()) or time.monotonic() - began > PASS_SECONDS:
                        # stopping, or the lease could run out before the rest is reached: let them go
                        pending += [_Result(r, "release") for r in rows[index:]]
                        break
                    result = self._attempt(row, sent_today)
                    pending.append(result)
                    if result.state == "sent":
                        sent += 1
                        self.relay_error = ""
                    if result.relay_down:
                        self.relay_error = result.error
                        pending += [_Result(r, "retry", result.error) for r in rows[index + 1:]]
                        break
                    if len(pending) >= RECORD_EVERY:
                        self._record(pending, now)
                        pending = []
        finally:  # what went out is recorded even when something unforeseen ends the pass
            self._record(pending, now)
        return sent

    def _claim(self, now: datetime, limit: int) -> tuple[list[_Due], Counter[str]]:
        token = f"{self.owner}/{secrets.token_hex(4)}"[:100]
        claimable = (OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now,
                     sa.or_(OutboxRow.lease_until.is_(None), OutboxRow.lease_until < now))
        with session_scope(self.engine) as s:
            due = select(OutboxRow.id).where(*claimable).order_by(OutboxRow.id).limit(limit)
            # the conditions again on the outer update: a row another instance took meanwhile is skipped
            s.execute(sa.update(OutboxRow).where(OutboxRow.id.in_(due.scalar_subquery()), *claimable)
                      .values(lease_owner=token, lease_until=now + LEASE))
            q = (select(OutboxRow.id, OutboxRow.ticket_id, OutboxRow.event, OutboxRow.recipients, OutboxRow.raw,
                        OutboxRow.automatic, OutboxRow.attempts)
                 .where(OutboxRow.lease_owner == token).order_by(OutboxRow.id))
            rows = [_Due(r[0], r[1], r[2], tuple(r[3]), r[4], r[5], r[6]) for r in s.execute(q).all()]
            return rows, (_sent_today(s, now) if any(r.automatic for r in rows) else Counter())

    def _attempt(self, row: _Due, sent_today: Counter[str]) -> _Result:
        if row.automatic:
            over = tuple(r for r in row.recipients if sent_today[r.lower()] >= self.cap_per_day)
            if over:
                log.warning("outbox %s held: automatic mail cap reached for %s", row.id, ", ".join(over))
                return _Result(row, "held", f"automatic mail cap reached for {', '.join(over)}", over=over,
                               count=sent_today[over[0].lower()])
        try:
            self.transport.send(self.sender, row.recipients, row.raw, f"{row.id:08d}-{row.event}")
        except PermanentFailure as exc:
            log.error("outbox %s failed permanently: %s", row.id, exc)
            return _Result(row, "failed", str(exc))
        except RelayUnavailable as exc:
            return _Result(row, "retry", str(exc), relay_down=True)
        except TemporaryDeliveryFailure as exc:
            return _Result(row, "retry", str(exc))
        except Exception as exc:  # a fault of this message's (or ours): tried again later, failed in the end
            log.exception("outbox %s could not be sent", row.id)
            return _Result(row, "retry", f"{type(exc).__name__}: {exc}")
        if row.automatic:
            sent_today.update(r.lower() for r in row.recipients)
        return _Result(row, "sent")

    def _record(self, results: Iterable[_Result], now: datetime) -> None:
        results = list(results)
        if not results:
            return
        with session_scope(self.engine) as s:
            for result in results:
                self._record_one(s, result, now)

    def _record_one(self, s: Session, result: _Result, now: datetime) -> None:
        row, error = result.row, result.error[:2000]
        if result.state == "release":  # not tried: free for the next pass, here or on another instance
            s.execute(sa.update(OutboxRow).where(OutboxRow.id == row.id).values(lease_owner=None, lease_until=None))
            return
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None, "last_error": error,
                                  "attempts": row.attempts + 1}
        state = result.state
        if state == "sent":
            values.update(state="sent", sent_at=now)
        elif state == "retry":
            if row.attempts + 1 >= MAX_ATTEMPTS:
                state = "failed"
                log.error("outbox %s failed after %d attempts: %s", row.id, row.attempts + 1, error)
            else:
                values["next_attempt_at"] = now + backoff(row.attempts + 1)
                log.warning("outbox %s will be retried at %s: %s", row.id, values["next_attempt_at"], error)
        if state in ("failed", "held"):
            values["state"] = state
        s.execute(sa.update(OutboxRow).where(OutboxRow.id == row.id).values(**values))
        if state in ("failed", "held") and row.ticket_id is not None:
            s.add(EventRow(ticket_id=row.ticket_id, at=now, actor="system", action=f"mail_{state}",
                           detail={"event": row.event, "to": list(row.recipients), "error": error[:500]}))
        if state == "held":
            self._alert_held(s, result, now)

    def _alert_held(self, s: Session, result: _Result, now: datetime) -> None:
        """Tell the agents once a day per recipient that automatic mail to it is being held."""
        if self.composer is None:
            return
        since = now - CAP_PERIOD
        earlier = s.exec(select(OutboxRow.recipients).where(
            OutboxRow.state == "held", OutboxRow.next_attempt_at >= since, OutboxRow.id != result.row.id)).all()
        already = {r.lower() for rcpts in earlier for r in rcpts}
        fresh = [r for r in result.over if r.lower() not in already]
        if not fresh:
            return
        ticket = s.get(Ticket, result.row.ticket_id) if result.row.ticket_id is not None else None
        snapshot = ticket_snapshot(s, ticket) if ticket is not None else None
        extra = {"recipient": ", ".join(fresh), "count": result.count, "period": "за сутки",
                 "held_subject": _subject(result.row.raw)}
        emit(s, ticket, NoticeTarget(Notice("outbox_held", "agents", extra), (), snapshot), self.composer, now)


def _sent_today(s: Session, now: datetime) -> Counter[str]:
    """Automatic messages sent to each recipient over the cap's period."""
    rows = s.exec(select(OutboxRow.recipients).where(
        OutboxRow.state == "sent", OutboxRow.sent_at >= now - CAP_PERIOD, OutboxRow.automatic.is_(True))).all()
    return Counter(r.lower() for rcpts in rows for r in rcpts)


def _subject(raw: bytes) -> str:
    from email.parser import BytesHeaderParser
    from email.policy import default

    try:
        return str(BytesHeaderParser(policy=default).parsebytes(raw).get("Subject", ""))[:200]
    except Exception:  # a subject for the alert only; the alert goes out without one
        return ""
