"""Agents' command lines (`/status resolved`, `/назначить petrov` …): parsed and validated all together."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from maildesk.core import lifecycle

ALIASES = {
    "status": "status", "статус": "status",
    "assign": "assign", "назначить": "assign", "исполнитель": "assign",
    "priority": "priority", "приоритет": "priority",
    "impact": "impact", "влияние": "impact",
    "line": "line", "линия": "line",
    "close": "close", "закрыть": "close",
    "merge": "merge", "объединить": "merge",
    "note": "note", "заметка": "note", "примечание": "note",
    "feedback": "feedback", "запрос": "feedback", "уточнить": "feedback",
}

STATUS_WORDS = {
    **{k: k for k in lifecycle.STATUS_LABELS},
    **{v.lower(): k for k, v in lifecycle.STATUS_LABELS.items()},
    "в работе": "in_progress", "в работу": "in_progress", "решено": "resolved", "закрыто": "closed",
    "inprogress": "in_progress", "in progress": "in_progress",
}
REASON_WORDS = {
    **{k: k for k in lifecycle.CLOSE_REASON_LABELS},
    "решена": "resolved", "дубликат": "duplicate", "дубль": "duplicate", "невыполнимо": "infeasible",
    "отменено": "cancelled", "отмена": "cancelled", "нет ответа": "no_response",
}
IMPACT_WORDS = {
    **{k: k for k in lifecycle.IMPACT_LABELS},
    **{v.lower(): k for k, v in lifecycle.IMPACT_LABELS.items()},
    "текст": "text", "опечатка": "text", "блокирующее": "block", "критическое": "critical",
}

_COMMAND = re.compile(r"^\s*/(?P<name>[a-zа-яё]+)(?:\s+(?P<arg>.*?))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class CommandError:
    line: str
    error: str


@dataclass(frozen=True)
class Plan:
    """What an agent's commands do to a ticket; empty when the mail had no commands."""

    changes: Mapping[str, Any] = field(default_factory=dict)  # status, close_reason, owner, priority, impact, line
    link_to: int | None = None
    note: str | None = None  # internal note, never sent to the requester
    question: str | None = None  # /feedback: sent to the requester, the ticket waits
    reply: str = ""  # what remains of the text: the answer to the requester
    errors: tuple[CommandError, ...] = ()
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentRef:
    address: str
    login: str
    line: int = 1


def split_commands(text: str) -> tuple[list[str], str]:
    """Command lines at the top of the body (blank lines between them allowed), and the text after."""
    lines = text.splitlines()
    commands: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if line.startswith("/") and _COMMAND.match(line):
            commands.append(line)
        elif line:
            break
        index += 1
    return commands, "\n".join(lines[index:]).strip()


def plan(text: str, status: str, impact: str | None, priority: int, actor: AgentRef,
         agents: Sequence[AgentRef]) -> Plan:
    """Validate every command against the ticket; any error means none is applied."""
    commands, rest = split_commands(text)
    if not commands:
        return Plan(reply=rest)
    changes: dict[str, Any] = {}
    errors: list[CommandError] = []
    link_to: int | None = None
    note = question = None
    for line in commands:
        match = _COMMAND.match(line)
        assert match is not None
        name, arg = ALIASES.get(match.group("name").lower()), (match.group("arg") or "").strip()
        if name is None:
            errors.append(CommandError(line, f"неизвестная команда /{match.group('name')}"))
            continue
        if name in ("note", "feedback"):
            body = "\n".join(x for x in (arg, rest) if x).strip()
            if not body:
                errors.append(CommandError(line, "после команды нужен текст"))
            elif name == "note":
                note, rest = body, ""
            else:
                question, rest = body, ""
                changes["status"] = "feedback"
            continue
        error = _apply(name, arg, changes, actor, agents)
        if isinstance(error, int):
            link_to = error
        elif error:
            errors.append(CommandError(line, error))
    errors.extend(_check_together(changes, status, impact, priority, actor))
    if errors:
        return Plan(errors=tuple(errors), commands=tuple(commands))
    return Plan(changes, link_to, note, question, rest, (), tuple(commands))


def _apply(name: str, arg: str, changes: dict[str, Any], actor: AgentRef, agents: Sequence[AgentRef]) -> str | int | None:
    word = arg.lower().replace("ё", "е")
    if name == "status":
        status = STATUS_WORDS.get(word)
        if status is None:
            return f"неизвестный статус «{arg}»; допустимо: {', '.join(lifecycle.STATUS_LABELS)}"
        changes["status"] = status
        if status == "closed":
            changes.setdefault("close_reason", "resolved")
    elif name == "assign":
        if word in ("me", "я", "себе", "мне"):
            changes["owner"] = actor.address
        else:
            agent = next((a for a in agents if word in (a.login.lower(), a.address.lower())), None)
            if agent is None:
                return f"нет такого сотрудника «{arg}»"
            changes["owner"] = agent.address
    elif name == "priority":
        if not (arg.isdigit() and int(arg) in lifecycle.PRIORITY_LABELS):
            return "приоритет — число от 1 (неотложный) до 4 (низкий)"
        changes["priority"] = int(arg)
    elif name == "impact":
        impact = IMPACT_WORDS.get(word)
        if impact is None:
            return f"неизвестное влияние «{arg}»; допустимо: {', '.join(lifecycle.IMPACT_LABELS)}"
        changes["impact"] = impact
    elif name == "line":
        if arg not in ("1", "2"):
            return "линия — 1 или 2"
        changes["line"] = int(arg)
    elif name in ("close", "merge"):
        return _close(name, word, changes)
    return None


def _close(name: str, word: str, changes: dict[str, Any]) -> str | int | None:
    parts = word.replace("#", " ").replace("№", " ").split()
    number = next((int(p) for p in parts if p.isdigit()), None)
    reason = "duplicate" if name == "merge" else REASON_WORDS.get(" ".join(p for p in parts if not p.isdigit()) or "resolved")
    if reason is None:
        return f"неизвестная причина закрытия; допустимо: {', '.join(lifecycle.CLOSE_REASON_LABELS)}"
    if reason == "duplicate" and number is None:
        return "укажите номер заявки, дубликатом которой является эта"
    changes["status"], changes["close_reason"] = "closed", reason
    return number


def _check_together(changes: Mapping[str, Any], status: str, impact: str | None, priority: int,
                    actor: AgentRef) -> list[CommandError]:
    errors = []
    new_status = changes.get("status")
    if new_status and new_status != status and not lifecycle.can_move(status, new_status):
        errors.append(CommandError(f"/status {new_status}", f"из статуса «{lifecycle.STATUS_LABELS[status]}» нельзя "
                                   f"перейти в «{lifecycle.STATUS_LABELS[new_status]}»"))
    new_impact, new_priority = changes.get("impact", impact), changes.get("priority")
    if "impact" in changes and new_priority is None:
        new_priority = priority if lifecycle.priority_allowed(new_impact, priority) else lifecycle.default_priority(new_impact)
    if new_priority is not None and not lifecycle.priority_allowed(new_impact, new_priority):
        label = lifecycle.IMPACT_LABELS.get(new_impact or "", "")
        errors.append(CommandError(f"/priority {new_priority}",
                                   f"приоритет {new_priority} не соответствует влиянию «{label}»"))
    return errors


def resolved_priority(changes: Mapping[str, Any], impact: str | None, priority: int) -> int:
    """The priority after the changes: an impact change brings a fitting priority along."""
    if "priority" in changes:
        return int(changes["priority"])
    new_impact = changes.get("impact", impact)
    return priority if lifecycle.priority_allowed(new_impact, priority) else lifecycle.default_priority(new_impact)
