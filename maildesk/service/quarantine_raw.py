"""quarantine_raw(raw, envelope, reason, deps): hold a message unparsed, for a fault found before parsing."""

from __future__ import annotations

from maildesk.core.model import Envelope, Reason
from maildesk.service.ingest import Deps, ingest
from maildesk.service.ports import IngestResult


def quarantine_raw(raw: bytes, envelope: Envelope, reason: Reason, deps: Deps) -> IngestResult:
    """Archive the bytes and commit a quarantine entry with `reason`; no parsing, no ticket, no notice.

    Used where the way a message arrived is itself suspect (e.g. bare line endings in
    SMTP DATA): an admin looks at it and may release it into the pipeline. Same
    guarantees as ingest(): a second call with the same bytes changes nothing, and
    TemporaryFailure means nothing was committed.
    """
    return ingest(raw, envelope, deps, quarantine=reason)
