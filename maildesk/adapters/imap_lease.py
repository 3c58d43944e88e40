"""A named lease in the database, so that two maildesk instances never work one mailbox at the same time."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets
import socket
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from maildesk.adapters.database import session_scope
from maildesk.adapters.db_models import Lease

log = logging.getLogger("maildesk.imap")

TTL = timedelta(seconds=120)


def wall_clock() -> datetime:
    # leases measure how long a process may stay silent, so they run on real time, not on the desk clock
    return datetime.now(timezone.utc)


@functools.cache  # a process never changes boot or PID namespace
def pid_scope() -> str:
    """Names the set of processes whose pids this one can check: this boot of this machine, this PID namespace.

    Two hosts may share a hostname (cloned VMs) and two containers a host, so a hostname
    alone cannot say that a pid means the same process here. Empty where /proc does not
    tell (not Linux): then a lease is only ever taken after its term.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return hashlib.sha256(f"{boot} {namespace}".encode()).hexdigest()[:8]


def new_owner() -> str:
    """host:pid:scope:token: unique per poller, readable for the admin who wonders who holds a mailbox."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{pid_scope()}:{secrets.token_hex(3)}"


def is_dead_here(owner: str) -> bool:
    """True when `owner` is a process of our boot and PID namespace that no longer runs (killed, crashed).

    False whenever in doubt: another machine or namespace, an owner string of another form,
    a pid that is alive (ours included: two pollers of one process stay apart) or not ours to signal.
    """
    parts = owner.split(":")
    scope = pid_scope()
    if len(parts) != 4 or not scope or parts[2] != scope or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:
        return False  # PermissionError: alive, under another user
    return False  # alive; or its pid was reused since, and then the term decides


class MailboxLease:
    """Claim, renew and release one row of `leases`; every write is conditional on still holding it.

    A claim is a conditional UPDATE (free, expired or already ours) and, when the row does not
    exist yet, an INSERT whose primary key makes concurrent claimers lose: the same on SQLite
    and PostgreSQL. A holder that died on this machine (SIGKILL, crash) is taken over at once,
    by an UPDATE conditional on that holder, so that of two restarted instances one wins.
    The row's `state` keeps what must survive restarts (UIDVALIDITY, attempts).
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
        if self._take_from_dead(now):
            return True
        try:
            with session_scope(self.engine) as s:
                s.add(Lease(name=self.name, owner=self.owner, until=now + self.ttl, state={}))
        except sa.exc.IntegrityError:
            return False  # someone else holds it, or inserted it a moment before us
        self.until = now + self.ttl
        return True

    def _take_from_dead(self, now: datetime) -> bool:
        with session_scope(self.engine) as s:
            row = s.get(Lease, self.name)
            dead = row.owner if row is not None and is_dead_here(row.owner) else None
        if dead is None or not self._update(Lease.owner == dead, owner=self.owner, until=now + self.ttl):
            return False
        log.warning("lease %s: holder %s no longer runs on this host: taken over by %s", self.name, dead, self.owner)
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
