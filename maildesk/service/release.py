"""Releasing a quarantined message: process its archived bytes again with the sender check waived.

Waived means let in as a requester's mail: a sender that did not pass every check (a
failed DMARC from an agent's address is the forgery case) is never taken for an agent,
so its command lines are not run (`triage.authorize_sender`).  A message held because
parse() could read it only partly (`parse.failed`) becomes a ticket from what was read.
"""

from __future__ import annotations

from maildesk.core.model import Envelope
from maildesk.service.ingest import Deps, IngestResult, ingest


class ReleaseError(Exception):
    pass


def release(deps: Deps, entry_id: int) -> IngestResult:
    entry = deps.store.quarantine_entry(entry_id)
    if entry is None:
        raise ReleaseError(f"quarantine entry {entry_id} not found")
    if entry["state"] != "held":
        raise ReleaseError(f"quarantine entry {entry_id} is {entry['state']}, not held")
    raw = deps.archive.get(entry["raw_sha256"])
    envelope = Envelope(entry["source"] or "release", entry["mail_from"], tuple(entry["rcpt_tos"]), entry["peer"])
    # the store marks the entry released in the same transaction that processes the mail
    return ingest(raw, envelope, deps, release=True)
