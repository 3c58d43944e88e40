"""Agents at the terminal: the same commands, validation and history as by mail."""

from __future__ import annotations

from dataclasses import dataclass

from maildesk.core.agent_mail import agent_decision
from maildesk.core.commands import AgentRef
from maildesk.core.model import Envelope, Outcome
from maildesk.service.ingest import Deps
from maildesk.service.ports import Incoming, IngestResult


class ActionError(Exception):
    """The action was refused as a whole; the message says which command and why."""


@dataclass(frozen=True)
class ActionResult:
    ticket: int
    rule: str
    errors: tuple[str, ...] = ()


def act(deps: Deps, number: int, agent: AgentRef, text: str) -> IngestResult:
    """Apply an agent's command text (`/status resolved`, a reply, `/note …`) to ticket `number`."""
    view = deps.store.ticket_view(number)
    if view is None:
        raise ActionError(f"ticket #{number} not found")
    decision = agent_decision(text, view, agent, deps.policy.decide.agents)
    if decision.rule == "agent.command_error":
        errors = [f"{e['line']}: {e['error']}" for _, detail in decision.events for e in detail.get("errors", [])]
        raise ActionError("nothing applied: " + "; ".join(errors))
    if not decision.events and not decision.changes and not decision.new_status:
        raise ActionError("nothing to do: give a reply text or a command")
    incoming = Incoming("", "", Envelope("cli"), None, None, decision, actor=agent.address)
    result = deps.store.apply(incoming, deps.clock.now(), deps.composer)
    assert result.outcome is Outcome.APPENDED
    return result
