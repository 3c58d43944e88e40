"""The pure triage pipeline: an ordered table of named steps, each adding its verdict.

Two outcomes come before the table and around it (SPEC §3.1: unparseable mail is
quarantined, never a ticket): a message parse() could read only partly (a `parse.*`
defect) is held as `parse.failed`, and a step that raises holds the message as
`triage.failed` instead of taking the daemon, the pipeline or the CLI down.  Both are
expressed as a refused sender with that reason, which decide() turns into quarantine.

The text steps look at the first `MAX_TRIAGE_TEXT` characters only: quote stripping
and form reading are not linear on every input, and the request a person writes is
at the top.  The whole message stays in the archive (and in `InboundMail.text`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from maildesk.core import lifecycle
from maildesk.core.attachments import AttachmentPolicy, check_attachments
from maildesk.core.authorize import SenderPolicy, authorize
from maildesk.core.classify import ClassifyPolicy, bounced_message_ids, classify
from maildesk.core.decision import Triage
from maildesk.core.form import FormPolicy, read_form
from maildesk.core.model import Envelope, InboundMail, MailKind, Reason
from maildesk.core.parse import strip_quoted
from maildesk.core.ticketref import ThreadPolicy, find_refs


@dataclass(frozen=True)
class TriagePolicy:
    classify: ClassifyPolicy = ClassifyPolicy()
    sender: SenderPolicy = SenderPolicy()
    thread: ThreadPolicy = ThreadPolicy()
    attachments: AttachmentPolicy = AttachmentPolicy()
    form: FormPolicy = FormPolicy()


Step = Callable[[Triage, TriagePolicy, bool], Triage]

# How much of the mail's text the text steps (quoted history, refs, form, impact) read.
MAX_TRIAGE_TEXT = 256 * 1024
TRUNCATED_NOTE = "[…] (текст письма сокращён; полностью письмо сохранено в архиве)"
NO_TEXT = "(письмо без текста)"


def classify_automatic(t: Triage, policy: TriagePolicy, release: bool) -> Triage:
    kind, reason = classify(t.mail, t.envelope, policy.classify)
    bounced = bounced_message_ids(t.mail) if kind is MailKind.BOUNCE else ()
    return replace(t, kind=kind, kind_reason=reason, bounced_ids=bounced)


def authorize_sender(t: Triage, policy: TriagePolicy, release: bool) -> Triage:
    verdict = authorize(t.mail, t.envelope, policy.sender)
    sender = t.mail.sender
    allowed = verdict.allowed
    address = verdict.address
    if release and not allowed and sender is not None:
        # an admin released this message: the sender check is waived, the address kept as written
        allowed, address = True, sender.email.strip().lower()
    return replace(
        t, sender=address, sender_name=sender.name if sender else "", sender_allowed=allowed,
        # a released mail is let in as a requester's: only a sender that passed every check
        # (authentication included) may run agent commands
        sender_is_agent=verdict.is_agent and verdict.allowed,
        sender_authenticated=verdict.authenticated, sender_reason=verdict.reason,
    )


def triage_text(text: str) -> tuple[str, bool]:
    """The head of `text` the text steps read (cut at a line end when there is one), and whether it was cut."""
    if len(text) <= MAX_TRIAGE_TEXT:
        return text, False
    head = text[:MAX_TRIAGE_TEXT]
    line_end = head.rfind("\n")
    return (head[:line_end] if line_end > MAX_TRIAGE_TEXT // 2 else head), True


def strip_history(t: Triage, policy: TriagePolicy, release: bool) -> Triage:
    head, cut = triage_text(t.mail.text)
    text = strip_quoted(head)
    return replace(t, text=f"{text}\n\n{TRUNCATED_NOTE}" if cut and text else text)


def find_ticket_refs(t: Triage, policy: TriagePolicy, release: bool) -> Triage:
    return replace(t, refs=find_refs(t.mail, policy.thread, text=t.text))


def check_files(t: Triage, policy: TriagePolicy, release: bool) -> Triage:
    verdict = check_attachments(t.mail, policy.attachments, text=t.text)
    return replace(t, refused_files=verdict.refused, request_invalid=verdict.request_reason)


def read_request_form(t: Triage, policy: TriagePolicy, release: bool) -> Triage:
    form = read_form(t.text, t.mail.subject, policy.form)
    return replace(t, form_fields=form.fields, form_missing=form.missing)


def stated_impact(t: Triage, policy: TriagePolicy, release: bool) -> Triage:
    return replace(t, stated_impact=lifecycle.stated_impact(t.mail.subject, t.text))


def placeholder_text(t: Triage, policy: TriagePolicy, release: bool) -> Triage:
    """A mail with no text (attachments only) is shown with a placeholder; the checks above saw it empty."""
    if t.text.strip() or t.sender_is_agent:  # an agent's empty text must not become an answer
        return t
    return replace(t, text=NO_TEXT)


# the order is the policy: automatic mail first, before any lookup or write (RFC 3834)
STEPS: tuple[Step, ...] = (
    classify_automatic,
    authorize_sender,
    strip_history,
    find_ticket_refs,
    check_files,
    read_request_form,
    stated_impact,
    placeholder_text,
)
# what automatic or refused mail still needs: the refs to record it on its ticket
SHORT_STEPS: tuple[Step, ...] = (classify_automatic, authorize_sender, strip_history, find_ticket_refs)


def parse_failure(mail: InboundMail) -> Reason | None:
    """Why parse() could not read the whole message (its `parse.*` defects), or None."""
    failures = [d for d in mail.defects if d.startswith("parse.")]
    return Reason("parse.failed", ", ".join(failures)) if failures else None


def _held(mail: InboundMail, envelope: Envelope, reason: Reason, ran: list[str]) -> Triage:
    """A verdict decide() quarantines: a normal message whose sender is refused for `reason`."""
    return Triage(mail=mail, envelope=envelope, sender_allowed=False, sender_reason=reason, rules=tuple(ran))


def triage(mail: InboundMail, envelope: Envelope, policy: TriagePolicy, *, release: bool = False) -> Triage:
    """Run the steps in order; unreadable mail and a failing step end in quarantine, never in a raise.

    An admin's release waives `parse.failed` (they have seen the message; it becomes a
    ticket from what could be read), not `triage.failed`.
    """
    failed = parse_failure(mail)
    if failed is not None and not release:
        return _held(mail, envelope, failed, ["parse_failure"])
    t = Triage(mail=mail, envelope=envelope)
    ran: list[str] = []
    for step in STEPS:
        if step not in SHORT_STEPS and (t.kind is not MailKind.NORMAL or not t.sender_allowed):
            continue
        try:
            t = step(t, policy, release)
        except Exception as exc:  # a bug on one message must not stop the others; it is held for a person
            return _held(mail, envelope, Reason("triage.failed", f"{step.__name__}: {type(exc).__name__}"),
                         [*ran, step.__name__])
        ran.append(step.__name__)
    return replace(t, rules=tuple(ran))
