"""The pure triage pipeline: an ordered table of named steps, each adding its verdict."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from maildesk.core import lifecycle
from maildesk.core.attachments import AttachmentPolicy, check_attachments
from maildesk.core.authorize import SenderPolicy, authorize
from maildesk.core.classify import ClassifyPolicy, bounced_message_ids, classify
from maildesk.core.decision import Triage
from maildesk.core.form import FormPolicy, read_form
from maildesk.core.model import Envelope, InboundMail, MailKind
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
        sender_is_agent=verdict.is_agent, sender_authenticated=verdict.authenticated, sender_reason=verdict.reason,
    )


def strip_history(t: Triage, policy: TriagePolicy, release: bool) -> Triage:
    return replace(t, text=strip_quoted(t.mail.text))


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


# the order is the policy: automatic mail first, before any lookup or write (RFC 3834)
STEPS: tuple[Step, ...] = (
    classify_automatic,
    authorize_sender,
    strip_history,
    find_ticket_refs,
    check_files,
    read_request_form,
    stated_impact,
)
# what automatic or refused mail still needs: the refs to record it on its ticket
SHORT_STEPS: tuple[Step, ...] = (classify_automatic, authorize_sender, strip_history, find_ticket_refs)


def triage(mail: InboundMail, envelope: Envelope, policy: TriagePolicy, *, release: bool = False) -> Triage:
    t = Triage(mail=mail, envelope=envelope)
    ran: list[str] = []
    for step in STEPS:
        if step not in SHORT_STEPS and (t.kind is not MailKind.NORMAL or not t.sender_allowed):
            continue
        t = step(t, policy, release)
        ran.append(step.__name__)
    return replace(t, rules=tuple(ran))
