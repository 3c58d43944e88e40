"""An agent's mail into a ticket: commands applied all or nothing, the rest answered to the requester."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

from maildesk.core import commands
from maildesk.core.commands import AgentRef
from maildesk.core.decision import Decision, Notice, TicketView
from maildesk.core.model import Outcome

# status → the requester's notice when an agent moves the ticket there
STATUS_NOTICES = {"resolved": "resolved", "closed": "closed", "in_progress": "status_changed",
                  "assigned": "status_changed"}
# statuses that mean the ticket was taken into work (001 §4.6); feedback only pauses the acceptance clock
ACCEPTING = frozenset({"assigned", "in_progress", "resolved", "closed"})


def agent_decision(text: str, ticket: TicketView, actor: AgentRef, agents: Sequence[AgentRef], *,
                   targets: Mapping[int, str] | None = None) -> Decision:
    """`targets`: the status of the tickets /merge and /close duplicate name, when the caller knows them."""
    plan = commands.plan(text, ticket, actor, agents, targets=targets)
    if plan.errors:
        return command_error(ticket.number, [{"line": e.line, "error": e.error} for e in plan.errors])
    changes = dict(plan.changes)
    status = changes.pop("status", None)
    reason = changes.pop("close_reason", None)
    if status is None and ticket.status == "new" and (plan.reply or "owner" in changes):
        status = "in_progress" if plan.reply else "assigned"  # answering or assigning takes the ticket
    if "impact" in changes or "priority" in changes:
        changes["priority"] = commands.priority_after(changes, ticket.impact, ticket.priority)
    changes = {key: value for key, value in changes.items() if getattr(ticket, key, None) != value}
    events: list[tuple[str, dict[str, Any]]] = [("command", {"line": line}) for line in plan.commands]
    events += [(key, {"from": getattr(ticket, key, None), "to": value}) for key, value in changes.items()]
    if "impact" in changes or "priority" in changes:
        changes["priority_source"] = "agent"  # no longer the requester's word nor the default
        events.append(("priority_source", {"to": "agent", "impact": changes.get("impact", ticket.impact),
                                           "priority": changes.get("priority", ticket.priority)}))
    if status and status != ticket.status:
        events.append(("status", {"from": ticket.status, "to": status, "reason": reason}))
    if plan.link_to is not None:
        events.append(("link", {"to": plan.link_to, "line": plan.link_line, "merge": plan.merge}))
    notices: list[Notice] = []
    moved = bool(status and status != ticket.status)
    carries_text = moved and status in ("resolved", "closed")  # one mail: the answer inside the status notice
    if plan.reply and not carries_text:
        notices.append(Notice("agent_reply", "requester", {"agent": actor.address, "text": plan.reply}))
    if plan.reply:
        events.append(("agent_reply", {}))
    if plan.question:
        notices.append(Notice("info_needed", "requester", {"agent": actor.address, "text": plan.question}))
        events.append(("info_needed", {}))
    elif moved and status in STATUS_NOTICES and (carries_text or not plan.reply):
        extra = {"reason": reason or "", "old_status": ticket.status, "new_status": status,
                 "text": plan.reply if carries_text else ""}
        notices.append(Notice(STATUS_NOTICES[status], "requester", extra))
    public = "\n\n".join(x for x in (plan.reply, plan.question) if x)
    if plan.note:  # beside a public answer the note is a message of its own, internal (see separate_note)
        events.append(("note", {"text": plan.note} if public else {}))
    return Decision(
        Outcome.APPENDED, "agent.commands" if plan.commands else "agent.reply", ticket=ticket.number,
        new_status=status if status != ticket.status else None, close_reason=reason,
        visibility="public" if public else "internal", events=tuple(events), notices=tuple(notices),
        changes=changes, link_to=plan.link_to, accepted=status in ACCEPTING or "owner" in changes,
        text=public or plan.note or "",
    )


def command_error(number: int, errors: list[dict[str, str]]) -> Decision:
    """Wrong commands: nothing applies, the agent gets the list of lines and why, the mail is kept internal."""
    return Decision(
        Outcome.APPENDED, "agent.command_error", ticket=number, visibility="internal",
        events=(("command_error", {"errors": errors}),),
        notices=(Notice("agent_command_error", "sender", {"errors": errors}),),
    )


def separate_note(decision: Decision) -> str | None:
    """The internal note to store as its own message, when the decision's message is the public answer."""
    return next((str(d["text"]) for action, d in decision.events if action == "note" and d.get("text")), None)


def check_link(decision: Decision, target_status: str | None) -> Decision | None:
    """The store's check of /merge N, /close duplicate N against ticket N as it is (None: no ticket N).

    None when the link holds; else the command error that replaces the decision.
    """
    link = next((d for action, d in decision.events if action == "link"), None)
    if decision.link_to is None or link is None or decision.ticket is None:
        return None
    error = commands.link_error(decision.link_to, decision.ticket, target_status, bool(link.get("merge")))
    if error is None:
        return None
    refused = command_error(decision.ticket, [{"line": str(link.get("line", "")), "error": error}])
    return replace(refused, record={**decision.record, "rule": refused.rule})
