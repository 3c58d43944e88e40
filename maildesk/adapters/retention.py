"""Retention: refused mail held in quarantine is purged after a while; ticket mail is kept."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import select

from maildesk.adapters.archive import MailArchive
from maildesk.adapters.database import session_scope
from maildesk.adapters.db_models import AttachmentRow, MessageRow, QuarantineEntry

log = logging.getLogger("maildesk.retention")


def purge_quarantine(engine: Engine, archive: MailArchive, now: datetime, days: int, *, dry_run: bool = False) -> int:
    """Purge held entries without a ticket older than `days`; their raw mail goes unless still referenced."""
    if days <= 0:
        return 0
    before = now - timedelta(days=days)
    with session_scope(engine) as s:
        entries = s.exec(select(QuarantineEntry).where(
            QuarantineEntry.state == "held", QuarantineEntry.ticket_id.is_(None), QuarantineEntry.at < before)).all()
        if dry_run:
            return len(entries)
        digests = {e.raw_sha256 for e in entries}
        for entry in entries:
            entry.state, entry.released_at = "purged", now
        s.flush()
        kept = set(s.exec(select(MessageRow.raw_sha256).where(MessageRow.raw_sha256.in_(digests))).all())
        kept |= set(s.exec(select(QuarantineEntry.raw_sha256).where(
            QuarantineEntry.raw_sha256.in_(digests), QuarantineEntry.state != "purged")).all())
        kept |= set(s.exec(select(AttachmentRow.sha256).where(AttachmentRow.sha256.in_(digests))).all())
    # after the commit: a crash in between leaves a file nobody names, never a name without its file
    for digest in digests - kept:
        archive.delete(digest)
    if entries:
        log.info("purged %d quarantine entr%s older than %d days", len(entries), "y" if len(entries) == 1 else "ies", days)
    return len(entries)

