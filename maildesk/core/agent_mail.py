"""An agent's mail into a ticket: commands applied all or nothing, the rest answered to the requester."""

from __future__ import annotations

from typing import Any, Sequence

from maildesk.core import commands
from maildesk.core.commands import AgentRef
from maildesk.core.decision import Decision, Notice, TicketView
from maildesk.core.model import Outcome

# status → the requester's notice when an agent moves the ticket there
STATUS_NOTICES = {"resolved": "resolved", "closed": "closed", "in_progress": "status_changed",
                  "assigned": "status_changed"}


def agent_decision(text: str, ticket: TicketView, actor: AgentRef, agents: Sequence[AgentRef]) -> Decision:
    plan = commands.plan(text, ticket.status, ticket.impact, ticket.priority, actor, agents)
    if plan.errors:
        errors = [{"line": e.line, "error": e.error} for e in plan.errors]
        return Decision(
            Outcome.APPENDED, "agent.command_error", ticket=ticket.number, visibility="internal",
            events=(("command_error", {"errors": errors}),),
            notices=(Notice("agent_command_error", "sender", {"errors": errors}),),
        )
    changes = dict(plan.changes)
    status = changes.pop("status", None)
    reason = changes.pop("close_reason", None)
    if status is None and ticket.status == "new" and (plan.reply or "owner" in changes):
        status = "in_progress" if plan.reply else "assigned"  # answering or assigning takes the ticket
    if "impact" in changes or "priority" in changes:
        changes["priority"] = commands.resolved_priority(changes, ticket.impact, ticket.priority)
    events: list[tuple[str, dict[str, Any]]] = [("command", {"line": line}) for line in plan.commands]
    events += [(key, {"from": getattr(ticket, key, None), "to": value}) for key, value in changes.items()]
    if status and status != ticket.status:
        events.append(("status", {"from": ticket.status, "to": status, "reason": reason}))
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
    if plan.note:
        events.append(("note", {}))
    public = bool(plan.reply or plan.question)
    return Decision(
        Outcome.APPENDED, "agent.commands" if plan.commands else "agent.reply", ticket=ticket.number,
        new_status=status if status != ticket.status else None, close_reason=reason,
        visibility="public" if public else "internal", events=tuple(events), notices=tuple(notices),
        changes=changes, link_to=plan.link_to, accepted=bool(status and status not in ("new",)) or "owner" in changes,
        text="\n\n".join(x for x in (plan.reply, plan.question, plan.note) if x),
    )
