"""ingest(raw, envelope, deps): one incoming message from bytes to its committed outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from maildesk.core.decide import DecidePolicy, decide
from maildesk.core.decision import Decision, Triage
from maildesk.core.dedupe import idempotency_key
from maildesk.core.model import Envelope, Outcome, Reason
from maildesk.core.parse import check_limits, parse
from maildesk.core.triage import TriagePolicy, triage
from maildesk.service.ports import Archive, Clock, Composer, IngestResult, Incoming, StoreUnavailable, TicketStore

log = logging.getLogger("maildesk.ingest")


class TemporaryFailure(Exception):
    """The message was not taken (store or archive down): the sender must retry."""


@dataclass(frozen=True)
class Policy:
    triage: TriagePolicy
    decide: DecidePolicy


@dataclass
class Deps:
    store: TicketStore
    archive: Archive
    clock: Clock
    composer: Composer
    policy: Policy
    on_result: Callable[[IngestResult, Envelope, int], None] | None = None


def ingest(raw: bytes, envelope: Envelope, deps: Deps, *, release: bool = False,
           quarantine: Reason | None = None) -> IngestResult:
    """Parse, triage, decide and commit one message; safe to call again with the same bytes.

    Raises TemporaryFailure when nothing could be committed; then nothing was changed
    and the caller keeps the mail (SMTP 451, IMAP leaves it in the folder, exit 75).
    `release` processes a quarantined message again with the sender check waived;
    `quarantine` holds the message for that reason without parsing it (e.g. SMTP smuggling).
    """
    key = idempotency_key(raw)
    try:
        if not release:
            prior = deps.store.processed(key)
            if prior is not None:
                result = IngestResult(Outcome.DUPLICATE, "duplicate", prior.ticket, prior.quarantine, (), key)
                if deps.on_result is not None:
                    deps.on_result(result, envelope, len(raw))
                return result
        if quarantine is not None:
            incoming = Incoming(key, deps.archive.put(raw), envelope, None, None, _quarantine(quarantine))
        else:
            incoming = _prepare(raw, key, envelope, deps, release)
        result = deps.store.apply(incoming, deps.clock.now(), deps.composer)
    except (StoreUnavailable, OSError) as exc:
        log.error("message not taken, will be retried: %s", exc)
        raise TemporaryFailure(str(exc)) from exc
    if deps.on_result is not None:
        deps.on_result(result, envelope, len(raw))
    return result


def _prepare(raw: bytes, key: str, envelope: Envelope, deps: Deps, release: bool) -> Incoming:
    limit = check_limits(raw)
    if limit is not None:
        return Incoming(key, deps.archive.put(raw), envelope, None, None, _quarantine(limit), replace_key=release)
    mail = parse(raw)
    triaged = triage(mail, envelope, deps.policy.triage, release=release)
    context = deps.store.context(triaged)
    decision = decide(triaged, context, deps.policy.decide)
    raw_sha = deps.archive.put(raw)
    shas = tuple(deps.archive.put(a.data) for a in mail.attachments)
    return Incoming(key, raw_sha, envelope, mail, triaged, decision, shas, replace_key=release)


def _quarantine(reason: Reason) -> Decision:
    return Decision(Outcome.QUARANTINED, reason.code, (reason,), quarantine=reason, record={"rule": reason.code})


def triage_only(raw: bytes, envelope: Envelope, policy: Policy) -> Triage | Reason:
    """The pure part alone (for benchmarks and `maildesk check-mail`)."""
    limit = check_limits(raw)
    return limit if limit is not None else triage(parse(raw), envelope, policy.triage)
