"""Retention: mail that never became ticket mail (refused, or ignored as automatic) is purged after a while."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from maildesk.adapters.archive import MailArchive
from maildesk.adapters.database import session_scope
from maildesk.adapters.db_models import AttachmentRow, MessageRow, ProcessedMail, QuarantineEntry
from maildesk.core.model import Outcome
from maildesk.core.parse import check_limits, parse

log = logging.getLogger("maildesk.retention")

PURGED_MARK = "raw_purged_at"  # set in an ignored message's decision record once its files are gone


@dataclass(frozen=True)
class Purge:
    quarantined: int = 0  # held entries without a ticket, now "purged"
    ignored: int = 0  # automatic mail recorded without a ticket
    files: int = 0  # archive files deleted (raw mail and the attachments ingest stored from it)

    @property
    def entries(self) -> int:
        return self.quarantined + self.ignored


def purge_expired(engine: Engine, archive: MailArchive, now: datetime, days: int, *, dry_run: bool = False) -> Purge:
    """Purge refused and ignored mail without a ticket older than `days`, with its files unless still referenced."""
    if days <= 0:
        return Purge()
    before = now - timedelta(days=days)
    with session_scope(engine) as s:
        entries = s.exec(select(QuarantineEntry).where(
            QuarantineEntry.state == "held", QuarantineEntry.ticket_id.is_(None), QuarantineEntry.at < before)).all()
        ignored = s.exec(select(ProcessedMail).where(
            ProcessedMail.outcome == Outcome.IGNORED.value, ProcessedMail.ticket_id.is_(None),
            ProcessedMail.quarantine_id.is_(None), ProcessedMail.at < before,
            ProcessedMail.decision[PURGED_MARK].as_string().is_(None))).all()
        if dry_run:
            return Purge(len(entries), len(ignored))
        raws = {e.raw_sha256 for e in entries} | {p.raw_sha256 for p in ignored}
        digests = raws | {d for raw in raws for d in _attachment_digests(archive, raw)}
        for entry in entries:
            entry.state, entry.released_at = "purged", now
        for row in ignored:
            row.decision = {**row.decision, PURGED_MARK: now.isoformat()}
        s.flush()
        kept = _still_named(s, digests)
    # after the commit: a crash in between leaves a file nobody names, never a name without its file
    gone = digests - kept
    for digest in gone:
        archive.delete(digest)
    if entries or ignored:
        log.info("purged %d quarantine entr%s and %d ignored message(s) older than %d days, %d file(s)",
                 len(entries), "y" if len(entries) == 1 else "ies", len(ignored), days, len(gone))
    return Purge(len(entries), len(ignored), len(gone))


def purge_quarantine(engine: Engine, archive: MailArchive, now: datetime, days: int, *, dry_run: bool = False) -> int:
    """The number of entries `purge_expired` purges (or, dry, would purge)."""
    return purge_expired(engine, archive, now, days, dry_run=dry_run).entries


def _attachment_digests(archive: MailArchive, raw_sha256: str) -> set[str]:
    """The attachment files ingest stored from a raw message: it stores every part of a message it parses."""
    try:
        raw = archive.get(raw_sha256)
    except KeyError:
        return set()
    if check_limits(raw) is not None:
        return set()  # never parsed, so nothing was stored from it
    return {hashlib.sha256(a.data).hexdigest() for a in parse(raw).attachments}


def _still_named(s: Session, digests: set[str]) -> set[str]:
    """Digests a kept ticket message, attachment, quarantine entry or unpurged ignored message names."""
    if not digests:
        return set()
    kept = set(s.exec(select(MessageRow.raw_sha256).where(MessageRow.raw_sha256.in_(digests))).all())
    kept |= set(s.exec(select(AttachmentRow.sha256).where(AttachmentRow.sha256.in_(digests))).all())
    kept |= set(s.exec(select(QuarantineEntry.raw_sha256).where(
        QuarantineEntry.raw_sha256.in_(digests), QuarantineEntry.state != "purged")).all())
    kept |= set(s.exec(select(ProcessedMail.raw_sha256).where(
        ProcessedMail.raw_sha256.in_(digests), ProcessedMail.outcome == Outcome.IGNORED.value,
        ProcessedMail.decision[PURGED_MARK].as_string().is_(None))).all())
    return kept
