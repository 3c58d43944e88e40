"""A named lease in the database, so that two maildesk instances never work one mailbox at the same time."""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from maildesk.adapters.database import session_scope
from maildesk.adapters.db_models import Lease

TTL = timedelta(seconds=120)


def wall_clock() -> datetime:
    # leases measure how long a process may stay silent, so they run on real time, not on the desk clock
    return datetime.now(timezone.utc)


def new_owner() -> str:
    """host:pid:token: unique per poller, readable for the admin who wonders who holds a mailbox."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class MailboxLease:
    """Claim, renew and release one row of `leases`; every write is conditional on still holding it.

    A claim is a conditional UPDATE (free, expired or already ours) and, when the row does not
    exist yet, an INSERT whose primary key makes concurrent claimers lose: the same on SQLite
    and PostgreSQL. The row's `state` keeps what must survive restarts (UIDVALIDITY, attempts).
    """

    def __init__(self, engine: Engine, name: str, owner: str | None = None, ttl: timedelta = TTL,
                 now: Callable[[], datetime] = wall_clock) -> None:
        self.engine, self.name, self.ttl, self.now = engine, name, ttl, now
        self.owner = owner or new_owner()
        self.until: datetime | None = None

    def claim(self) -> bool:
        now = self.now()
        if self._update(sa.or_(Lease.owner == self.owner, Lease.until.is_(None), Lease.until < now),
                        owner=self.owner, until=now + self.ttl):
            self.until = now + self.ttl
            return True
        try:
            with session_scope(self.engine) as s:
                s.add(Lease(name=self.name, owner=self.owner, until=now + self.ttl, state={}))
        except sa.exc.IntegrityError:
            return False  # someone else holds it, or inserted it a moment before us
        self.until = now + self.ttl
        return True

    def keep(self) -> bool:
        """Renew when half the term is gone; False when the lease was lost (expired and taken)."""
        now = self.now()
        if self.until is not None and self.until - now > self.ttl / 2:
            return True
        if not self._update(Lease.owner == self.owner, until=now + self.ttl):
            self.until = None
            return False
        self.until = now + self.ttl
        return True

    def release(self) -> None:
        self._update(Lease.owner == self.owner, until=None)
        self.until = None

    def state(self) -> dict[str, Any]:
        with session_scope(self.engine) as s:
            row = s.get(Lease, self.name)
            return dict(row.state or {}) if row is not None else {}

    def save_state(self, state: dict[str, Any]) -> bool:
        """Store `state` if the lease is still ours; False otherwise."""
        return self._update(Lease.owner == self.owner, state=state)

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lease and until when (None when nobody does)."""
        with session_scope(self.engine) as s:
            row = s.get(Lease, self.name)
            if row is None or row.until is None or row.until < self.now():
                return None
            return {"owner": row.owner, "until": row.until.isoformat()}

    def _update(self, condition: Any, **values: Any) -> bool:
        with session_scope(self.engine) as s:
            result = s.execute(sa.update(Lease).where(Lease.name == self.name, condition).values(**values))
            return result.rowcount == 1
