"""Every reply the SMTP receiver sends, in one table, and the mapping from an ingest result to a reply."""

from __future__ import annotations

from maildesk.core.model import Outcome
from maildesk.service.ports import IngestResult

# at connect: the session is refused before the greeting
CLIENT_NOT_ALLOWED = "554 5.7.1 Your host is not allowed to send mail here"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TOO_MANY_FROM_CLIENT = "421 4.7.0 Too many connections from your host, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"

# envelope
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
MALFORMED_ADDRESS = "553 5.1.3 Malformed address"
NO_SUCH_RECIPIENT = "550 5.1.1 No such recipient: this server takes mail for its help desk addresses only"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"

# DATA
TOO_BIG = "552 5.3.4 Message too big for this service"
LINE_TOO_LONG = "500 5.6.0 Line too long (RFC 5321 4.5.3.1.6)"
BARE_LINE_ENDING = "550 5.6.0 Bare CR or LF in message data is not allowed (RFC 5321 2.3.8)"
MUST_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first"
SENDER_REFUSED = "550 5.7.1 Sender is not allowed to open requests at this help desk"
TRY_AGAIN = "451 4.3.0 Message not stored, please try again later"

# aiosmtpd answers these itself; the receiver rewrites them to carry enhanced status codes
BUILTIN: dict[str, str] = {
    "552 Error: message size exceeds fixed maximum message size": TOO_BIG,
    "552 Error: Too much mail data": TOO_BIG,
    "500 Line too long (see RFC5321 4.5.3.1.6)": LINE_TOO_LONG,
    "530 Must issue a STARTTLS command first": MUST_STARTTLS,
}


def accepted(result: IngestResult) -> str:
    """250 for a committed message, naming the ticket or quarantine entry it went to."""
    where = f"ticket #{result.ticket}" if result.ticket is not None else (
        f"quarantine #{result.quarantine}" if result.quarantine is not None else "no ticket")
    text = {
        Outcome.CREATED: f"Ticket #{result.ticket} created",
        Outcome.APPENDED: f"Added to ticket #{result.ticket}",
        Outcome.IGNORED: f"Automatic mail recorded ({where})",
        Outcome.DUPLICATE: f"Already received ({where})",
        Outcome.QUARANTINED: f"Held for review as quarantine #{result.quarantine}",
    }.get(result.outcome, f"Accepted ({where})")  # committed is committed: never a 5xx for a new outcome
    return f"250 2.0.0 {text}"


def reply_for(result: IngestResult, mode: str) -> str:
    """The reply once ingest has committed.

    Behind a relay every committed message gets 250: a 5xx there would make the relay
    bounce to an envelope sender that may be forged (backscatter). A sending MTA talking
    to us directly bounces to its own user, so a refused sender may be told there.
    """
    if mode == "direct" and result.outcome is Outcome.QUARANTINED and result.rule == "sender.refused":
        return SENDER_REFUSED
    return accepted(result)
