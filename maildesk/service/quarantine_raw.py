"""quarantine_raw(raw, envelope, reason, deps): hold a message unparsed, for a fault found before parsing."""

from __future__ import annotations

import logging

from maildesk.core.decision import Decision
from maildesk.core.dedupe import idempotency_key
from maildesk.core.model import Envelope, Outcome, Reason
from maildesk.service.ingest import Deps, TemporaryFailure
from maildesk.service.ports import IngestResult, Incoming, StoreUnavailable

log = logging.getLogger("maildesk.ingest")


def quarantine_raw(raw: bytes, envelope: Envelope, reason: Reason, deps: Deps) -> IngestResult:
    """Archive the bytes and commit a quarantine entry with `reason`; no parsing, no ticket, no notice.

    Used where the way a message arrived is itself suspect (e.g. bare line endings in
    SMTP DATA): an admin looks at it and may release it into the pipeline. Same
    guarantees as ingest(): a second call with the same bytes changes nothing, and
    TemporaryFailure means nothing was committed.
    """
    key = idempotency_key(raw)
    try:
        prior = deps.store.processed(key)
        if prior is not None:
            return IngestResult(Outcome.DUPLICATE, "duplicate", prior.ticket, prior.quarantine, (), key)
        decision = Decision(Outcome.QUARANTINED, reason.code, (reason,), quarantine=reason, record={"rule": reason.code})
        incoming = Incoming(key, deps.archive.put(raw), envelope, None, None, decision)
        result = deps.store.apply(incoming, deps.clock.now(), deps.composer)
    except (StoreUnavailable, OSError) as exc:
        log.error("message not taken, will be retried: %s", exc)
        raise TemporaryFailure(str(exc)) from exc
    if deps.on_result is not None:
        deps.on_result(result, envelope, len(raw))
    return result
