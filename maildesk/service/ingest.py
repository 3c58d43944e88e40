"""ingest(raw, envelope, deps): one incoming message from bytes to its committed outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from maildesk.core.attachments import never_stored
from maildesk.core.decide import DecidePolicy, decide
from maildesk.core.decision import Decision, Triage
from maildesk.core.dedupe import idempotency_key
from maildesk.core.model import Envelope, InboundMail, Outcome, Reason
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
    Any other failure caused by the message itself (a bug a hostile message found) does
    not escape: the message is quarantined with the failure as its reason.
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
        result = _apply(incoming, deps, release)
    except (StoreUnavailable, OSError) as exc:
        log.error("message not taken, will be retried: %s", exc)
        raise TemporaryFailure(str(exc)) from exc
    if deps.on_result is not None:
        deps.on_result(result, envelope, len(raw))
    return result


def _apply(incoming: Incoming, deps: Deps, release: bool) -> IngestResult:
    """Commit the decision; when that fails on the message's own account, hold it in quarantine instead.

    Store and disk trouble stays temporary (the sender retries); a failure the message
    itself causes would come back on every retry, so it is set aside with its reason.
    """
    try:
        return deps.store.apply(incoming, deps.clock.now(), deps.composer)
    except (StoreUnavailable, OSError):
        raise
    except Exception as exc:
        if incoming.triage is None and incoming.decision.quarantine is not None:
            raise  # not even a bare quarantine entry could be written: nothing to fall back to
        log.exception("message %s could not be applied; holding it in quarantine", incoming.key[:12])
        held = Incoming(incoming.key, incoming.raw_sha256, incoming.envelope, incoming.mail, None,
                        _quarantine(internal_failure("apply", exc)), replace_key=release)
        return deps.store.apply(held, deps.clock.now(), deps.composer)


def _prepare(raw: bytes, key: str, envelope: Envelope, deps: Deps, release: bool) -> Incoming:
    limit = check_limits(raw)
    if limit is not None:
        return Incoming(key, deps.archive.put(raw), envelope, None, None, _quarantine(limit), replace_key=release)
    try:
        mail = parse(raw)
        triaged = triage(mail, envelope, deps.policy.triage, release=release)
    except Exception as exc:  # parse() never raises by design; a hostile message found a bug
        log.exception("message %s could not be triaged; quarantined", key[:12])
        return Incoming(key, deps.archive.put(raw), envelope, None, None,
                        _quarantine(internal_failure("triage", exc)), replace_key=release)
    context = deps.store.context(triaged)
    try:
        decision = decide(triaged, context, deps.policy.decide)
    except Exception as exc:
        log.exception("message %s could not be decided; quarantined", key[:12])
        return Incoming(key, deps.archive.put(raw), envelope, mail, None,
                        _quarantine(internal_failure("decide", exc)), replace_key=release)
    raw_sha = deps.archive.put(raw)
    shas = archive_files(mail, triaged, deps.archive)
    return Incoming(key, raw_sha, envelope, mail, triaged, decision, shas, replace_key=release)


def archive_files(mail: InboundMail, triaged: Triage, archive: Archive) -> tuple[str, ...]:
    """Store the files' bytes, but never an executable's (nor a forwarded message holding one).

    Those get no digest (""): the raw message in the archive holds them, for an admin to
    recover; `tickets show` and `quarantine show` still list them with name, size, reason.
    """
    skip = never_stored(mail, triaged.refused_files)
    return tuple("" if i in skip else archive.put(a.data) for i, a in enumerate(mail.attachments))


def internal_failure(step: str, exc: Exception) -> Reason:
    """The reason a message is held when a step failed on it: which step, which error."""
    first = str(exc).splitlines()[0][:300] if str(exc) else ""
    return Reason("ingest.failed", f"{step}: {type(exc).__name__}: {first}".rstrip(": "))


def _quarantine(reason: Reason) -> Decision:
    return Decision(Outcome.QUARANTINED, reason.code, (reason,), quarantine=reason, record={"rule": reason.code})


def triage_only(raw: bytes, envelope: Envelope, policy: Policy) -> Triage | Reason:
    """The pure part alone (for benchmarks and `maildesk check-mail`)."""
    limit = check_limits(raw)
    return limit if limit is not None else triage(parse(raw), envelope, policy.triage)
