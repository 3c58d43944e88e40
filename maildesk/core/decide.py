"""(triaged mail, ticket context, policy) → the one Decision for an incoming message.

Who may write into a ticket is decided on keys the sender cannot type: the address
the sender check let through, and its exact lower-case mail domain as the
organisation (gb1.sev.gov.ru). The organisation named in the request form («МО:»)
is display data only. A domain that many organisations share (the umbrella domain
itself, sev.gov.ru) makes no one a colleague.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from maildesk.core import lifecycle
from maildesk.core.agent_mail import agent_decision
from maildesk.core.commands import AgentRef
from maildesk.core.decision import Context, Decision, NewTicket, Notice, Triage
from maildesk.core.model import MailKind, Outcome, Reason


@dataclass(frozen=True)
class DecidePolicy:
    closed_reply: Literal["new", "reopen", "refuse"] = "new"
    same_organisation_may_write: bool = True
    notify_refused: bool = False
    agents: tuple[AgentRef, ...] = ()
    # mail domains that no single organisation owns: never an organisation key
    shared_domains: tuple[str, ...] = ("sev.gov.ru",)


def decide(triage: Triage, context: Context, policy: DecidePolicy) -> Decision:
    """The decision for one message; the first rule that applies wins."""
    decision = _decide(triage, context, policy)
    record = {
        "rule": decision.rule,
        "reasons": [str(r) for r in decision.reasons],
        "kind": triage.kind.value,
        "steps": list(triage.rules),
        "signal": None if context.signal is None else {
            "signal": context.signal.signal, "value": context.signal.value, "ticket": context.signal.number,
        },
        "message_id_reused": context.message_id_reused,
        "refused_files": [{"index": i, "reason": str(r)} for i, r in triage.refused_files],
    }
    return replace(decision, record=record)


def _decide(t: Triage, c: Context, policy: DecidePolicy) -> Decision:
    if t.kind is not MailKind.NORMAL:
        return _automatic(t, c, policy)
    if not t.sender_allowed:
        notices = ()
        if policy.notify_refused and t.sender_authenticated and t.sender:
            notices = (Notice("sender_refused", t.sender),)
        reason = t.sender_reason or Reason("sender.refused")
        return Decision(Outcome.QUARANTINED, "sender.refused", (reason,), quarantine=reason, notices=notices)
    if c.ticket is None and _asks_for_list(t.mail.subject):
        return Decision(Outcome.IGNORED, "requester.my_tickets", notices=(Notice("my_tickets", "sender"),))
    if c.ticket is not None:
        if _may_write(t, c, policy):
            return _into_ticket(t, c, policy)
        return _new_ticket(t, link_to=c.ticket.number, rule="thread.not_permitted")
    return _new_ticket(t, link_to=None, rule="ticket.new")


_LIST_SUBJECTS = re.compile(r"^\s*((re|fwd?|ответ|отв)\s*:\s*)*(мои\s+заявки|список\s+(моих\s+)?заявок)\s*[.!]?\s*$",
                            re.IGNORECASE)


def _asks_for_list(subject: str) -> bool:
    """«Мои заявки» as the subject: the requester wants their open tickets (the portal view, by mail)."""
    return bool(_LIST_SUBJECTS.match(subject))


def _automatic(t: Triage, c: Context, policy: DecidePolicy) -> Decision:
    """Bounces and auto-replies never create tickets, never get answers, never reset clocks.

    They are recorded on a ticket only when they prove which one (a bounce of mail we
    sent, a reply to a Message-ID we minted) or come from someone who may write into it;
    anything else, a tag in the subject included, is ignored with the decision recorded.
    """
    reasons = (t.kind_reason,) if t.kind_reason else ()
    if t.kind is MailKind.OWN_MAIL:
        return Decision(Outcome.IGNORED, f"automatic.{t.kind.value}", reasons)
    ticket = _automatic_ticket(t, c, policy)
    if ticket is None:
        if c.ticket is not None:
            why = f"no reference to mail maildesk sent, and the sender may not write into #{c.ticket.number}"
            reasons += (Reason("automatic.not_recorded", why),)
        return Decision(Outcome.IGNORED, f"automatic.{t.kind.value}", reasons)
    return Decision(
        Outcome.IGNORED, f"automatic.{t.kind.value}.recorded", reasons, ticket=ticket,
        message_kind=t.kind.value, visibility="internal",
        events=((t.kind.value, {"reason": str(t.kind_reason or "")}),),
    )


def _automatic_ticket(t: Triage, c: Context, policy: DecidePolicy) -> int | None:
    if t.kind is MailKind.BOUNCE and c.bounced_ticket is not None:
        return c.bounced_ticket  # the returned mail is one we sent (the store matched our outbox)
    if c.ticket is None:
        return None
    if c.signal is not None and c.signal.signal == "minted":
        return c.ticket.number  # a MAC-verified Message-ID of our own notification
    if t.sender_allowed and _may_write(t, c, policy):
        return c.ticket.number
    return None


def organisation_key(address: str | None, shared_domains: tuple[str, ...]) -> str | None:
    """The organisation an authorized address belongs to: its mail domain, unless one no single organisation owns."""
    domain = (address or "").rpartition("@")[2].lower()
    if not domain or domain in {d.lower() for d in shared_domains}:
        return None
    return domain


def _may_write(t: Triage, c: Context, policy: DecidePolicy) -> bool:
    ticket = c.ticket
    assert ticket is not None
    if t.sender_is_agent or t.sender == ticket.requester or t.sender in ticket.participants:
        return True
    if not policy.same_organisation_may_write:
        return False
    # the requester's address passed the sender check when the ticket was filed; the form's МО never counts
    own = organisation_key(t.sender, policy.shared_domains)
    return own is not None and own == organisation_key(ticket.requester, policy.shared_domains)


def _refusal_notices(t: Triage) -> tuple[Notice, ...]:
    if not t.refused_files:
        return ()
    return (Notice("attachment_refused", "sender", {"refused": [i for i, _ in t.refused_files]}),)


def _new_ticket(t: Triage, link_to: int | None, rule: str) -> Decision:
    if t.request_invalid is not None:
        reason = t.request_invalid
        return Decision(
            Outcome.QUARANTINED, "request.invalid", (reason,), quarantine=reason,
            notices=(Notice("request_rejected", "sender", {"reason": reason.code}),),
        )
    impact = t.stated_impact
    status = "feedback" if t.form_missing else "new"
    create = NewTicket(
        subject=t.mail.subject.strip(), status=status, impact=impact,
        priority=lifecycle.default_priority(impact),
        priority_source="requester" if impact else "default", link_to=link_to,
    )
    notices = [Notice("ticket_created", "requester")]
    if t.form_missing:
        notices.append(Notice("info_requested", "requester", {"missing": list(t.form_missing)}))
    notices.extend(_refusal_notices(t))
    notices.append(Notice("agent_new_ticket", "agents"))
    events = [("created", {"status": status, "link_to": link_to})]
    if impact:
        events.append(("impact_stated", {"impact": impact, "priority": create.priority}))
    if t.form_missing:
        events.append(("form_incomplete", {"missing": list(t.form_missing)}))
    cc = tuple(a.email.lower() for a in t.mail.cc if a.email and a.email.lower() != t.sender)
    reasons = tuple(r for _, r in t.refused_files)
    return Decision(
        Outcome.CREATED, rule, reasons, create=create, add_participants=cc,
        events=tuple(events), notices=tuple(notices),
    )


def _into_ticket(t: Triage, c: Context, policy: DecidePolicy) -> Decision:
    ticket = c.ticket
    assert ticket is not None
    base = Decision(
        Outcome.APPENDED, "ticket.append", tuple(r for _, r in t.refused_files), ticket=ticket.number,
        notices=_refusal_notices(t),
    )
    if t.sender_is_agent:
        actor = next((a for a in policy.agents if a.address == t.sender), AgentRef(t.sender or "", ""))
        return agent_decision(t.text, ticket, actor, policy.agents)
    replied = Notice("agent_requester_replied", "owner")
    if ticket.status in ("feedback", "resolved") and not (t.sender == ticket.requester or t.sender in ticket.participants):
        # a colleague may add to the ticket, but only its requester or a participant answers the
        # question, confirms or disputes the fix: the status and its clocks stay as they are
        return replace(base, rule="reply.colleague", events=(("colleague_wrote", {}),), notices=base.notices + (replied,))
    if ticket.status == "feedback":
        return replace(
            base, rule="reply.feedback", new_status="in_progress",
            events=(("requester_replied", {}), ("status", {"from": "feedback", "to": "in_progress"})),
            notices=base.notices + (replied,),
        )
    if ticket.status == "resolved":
        if lifecycle.is_confirmation(t.text):
            return replace(
                base, rule="reply.confirmed", new_status="closed", close_reason="resolved",
                events=(("confirmed", {}), ("status", {"from": "resolved", "to": "closed"})),
                notices=base.notices + (Notice("closed", "requester", {"reason": "resolved"}),),
            )
        return _reopen(base, "resolved", replied)
    if ticket.status == "closed":
        return _closed_reply(t, base, policy, replied)
    return replace(base, rule="reply.open", events=(("requester_replied", {}),), notices=base.notices + (replied,))


def _reopen(base: Decision, old: str, replied: Notice) -> Decision:
    return replace(
        base, rule=f"reply.reopen_{old}", new_status="in_progress",
        events=(("reopened", {}), ("status", {"from": old, "to": "in_progress"})),
        notices=base.notices + (Notice("reopened", "requester"), replied),
    )


def _closed_reply(t: Triage, base: Decision, policy: DecidePolicy, replied: Notice) -> Decision:
    assert base.ticket is not None
    if policy.closed_reply == "reopen":
        return _reopen(base, "closed", replied)
    if policy.closed_reply == "refuse":
        return replace(
            base, rule="reply.closed_refused", visibility="internal",
            events=(("closed_reply_refused", {}),),
            notices=base.notices + (Notice("closed_reply", "sender", {"policy": "refuse"}),),
        )
    new = _new_ticket(t, link_to=base.ticket, rule="reply.closed_new")
    if new.create is None:
        return new
    notices = tuple(n for n in new.notices if n.event != "ticket_created")
    return replace(new, notices=(Notice("closed_reply", "requester", {"policy": "new"}),) + notices)
