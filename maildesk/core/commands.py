"""Agents' command lines (`/status resolved`, `/назначить petrov` …): parsed and validated all together."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from maildesk.core import lifecycle
from maildesk.core.decision import TicketView

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
    "text": "text", "текст": "text",
}
TEXT_TAKING = ("note", "feedback")  # the text after the command lines belongs to the last of these
END = "/text"  # ends the command lines: everything below is text as written, even a line starting with /

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
    line: str  # the line as the agent typed it
    error: str


@dataclass(frozen=True)
class Plan:
    """What an agent's commands do to a ticket; empty when the mail had no commands."""

    changes: Mapping[str, Any] = field(default_factory=dict)  # status, close_reason, owner, priority, impact, line
    link_to: int | None = None  # /merge N, /close duplicate N
    link_line: str = ""  # the line that named it
    merge: bool = False
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
    role: str = "agent"  # agent, supervisor, admin

    @property
    def may_raise(self) -> bool:
        """The 1st line may only lower impact and priority (001 §4.9, §4.10); the others set any fitting pair."""
        return self.line == 2 or self.role in ("supervisor", "admin")


def split_commands(text: str) -> tuple[list[str], str]:
    """Command lines at the top of the body (blank lines between them allowed), and the text after.

    A `/text` line ends the commands: what follows is text as written, whatever it starts with.
    """
    lines = text.splitlines()
    commands: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        match = _COMMAND.match(line) if line.startswith("/") else None
        if match and ALIASES.get(match.group("name").lower()) == "text" and not match.group("arg"):
            index += 1
            break
        if match:
            commands.append(line)
        elif line:
            break
        index += 1
    return commands, "\n".join(lines[index:]).strip()


def literal(text: str, *commands: str) -> str:
    """Command lines, then `text` taken as written: no line of it is read as a command."""
    return "\n".join((*commands, END, text))


def link_error(number: int, this: int, target_status: str | None, merge: bool) -> str | None:
    """Why `/merge N` or `/close duplicate N` on ticket `this` cannot name ticket N; None when it can.

    `target_status` is N's status, None when there is no ticket N.
    """
    if number == this:
        return f"№ {number} — это сама эта заявка; укажите номер другой заявки"
    if target_status is None:
        return f"заявки № {number} нет"
    if merge and target_status == "closed":
        return f"заявка № {number} закрыта: объединить можно только с открытой заявкой"
    return None


@dataclass
class _Draft:
    """The changes as the lines set them, with the line that set each: errors quote it, conflicts name it."""

    changes: dict[str, Any] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    errors: list[CommandError] = field(default_factory=list)
    merge: bool = False

    def set(self, key: str, value: Any, line: str) -> None:
        if key in self.changes and self.changes[key] != value:
            self.errors.append(CommandError(line, f"противоречит строке «{self.source[key]}»"))
        else:
            self.changes[key] = value
            self.source.setdefault(key, line)


def plan(text: str, ticket: TicketView, actor: AgentRef, agents: Sequence[AgentRef], *,
         targets: Mapping[int, str] | None = None) -> Plan:
    """Validate every command against the ticket; any error means none is applied.

    `targets` gives the status of the tickets that /merge and /close duplicate name, where the
    caller knows them (a number missing from it does not exist); None leaves that check to the store.
    """
    commands, rest = split_commands(text)
    if not commands:
        return Plan(reply=rest)
    draft = _Draft()
    texts: dict[str, list[str]] = {"note": [], "feedback": []}
    parsed = [_parse(line) for line in commands]
    owner_of_rest = max((i for i, (name, _, _) in enumerate(parsed) if name in TEXT_TAKING), default=None)
    for index, (line, (name, typed, arg)) in enumerate(zip(commands, parsed)):
        if name is None:
            draft.errors.append(CommandError(line, f"неизвестная команда /{typed}"))
        elif name == "text":
            draft.errors.append(CommandError(line, f"/{typed} пишут отдельной строкой: всё ниже неё — текст"))
        elif name in TEXT_TAKING:
            body = "\n".join(x for x in (arg, rest if index == owner_of_rest else "") if x).strip()
            if not body:
                draft.errors.append(CommandError(line, "после команды нужен текст"))
            texts[name].append(body)
            if name == "feedback":
                draft.set("status", "feedback", line)
        else:
            error = _read(name, arg, line, draft, ticket, actor, agents, targets)
            if error:
                draft.errors.append(CommandError(line, error))
    if owner_of_rest is not None:
        rest = ""
    if draft.changes.get("status") == "feedback" and not any(texts["feedback"]):
        if rest:
            texts["feedback"], rest = [rest], ""  # `/status feedback` and a text: the text is the question
        else:
            draft.errors.append(CommandError(draft.source["status"], "заявителю нужен вопрос: напишите "
                                             "«/feedback <вопрос заявителю>»"))
    if draft.changes.get("status") == "closed":
        draft.changes.setdefault("close_reason", "resolved")
    draft.errors.extend(_check_together(draft, ticket, actor))
    if draft.errors:
        return Plan(errors=tuple(draft.errors), commands=tuple(commands))
    changes = dict(draft.changes)
    link_to = changes.pop("link_to", None)
    return Plan(
        changes, link_to=link_to, link_line=draft.source.get("link_to", ""), merge=draft.merge,
        note="\n\n".join(texts["note"]) or None, question="\n\n".join(texts["feedback"]) or None, reply=rest,
        commands=tuple(commands),
    )


def _parse(line: str) -> tuple[str | None, str, str]:
    """A command line → (command, the name as typed, argument); command is None when unknown."""
    match = _COMMAND.match(line)
    assert match is not None  # split_commands keeps command lines only
    typed = match.group("name")
    return ALIASES.get(typed.lower()), typed, (match.group("arg") or "").strip()


def _read(name: str, arg: str, line: str, draft: _Draft, ticket: TicketView, actor: AgentRef,
          agents: Sequence[AgentRef], targets: Mapping[int, str] | None) -> str | None:
    """One command line into the draft; the error when it is wrong on its own."""
    word = arg.lower().replace("ё", "е")
    if name == "status":
        status = STATUS_WORDS.get(word)
        if status is None:
            return f"неизвестный статус «{arg}»; допустимо: {', '.join(lifecycle.STATUS_LABELS)}"
        draft.set("status", status, line)
    elif name == "assign":
        if word in ("me", "я", "себе", "мне"):
            draft.set("owner", actor.address, line)
        else:
            agent = next((a for a in agents if word in (a.login.lower(), a.address.lower())), None)
            if agent is None:
                return f"нет такого сотрудника «{arg}»"
            draft.set("owner", agent.address, line)
    elif name == "priority":
        if not (arg.isdigit() and int(arg) in lifecycle.PRIORITY_LABELS):
            return "приоритет — число от 1 (неотложный) до 4 (низкий)"
        draft.set("priority", int(arg), line)
    elif name == "impact":
        impact = IMPACT_WORDS.get(word)
        if impact is None:
            return f"неизвестное влияние «{arg}»; допустимо: {', '.join(lifecycle.IMPACT_LABELS)}"
        draft.set("impact", impact, line)
    elif name == "line":
        if arg not in ("1", "2"):
            return "линия — 1 или 2"
        draft.set("line", int(arg), line)
    elif name in ("close", "merge"):
        return _close(name == "merge", word, line, draft, ticket, targets)
    return None


def _close(merge: bool, word: str, line: str, draft: _Draft, ticket: TicketView,
           targets: Mapping[int, str] | None) -> str | None:
    parts = word.replace("#", " ").replace("№", " ").split()
    numbers = [int(p) for p in parts if p.isdigit()]
    reason = "duplicate" if merge else REASON_WORDS.get(" ".join(p for p in parts if not p.isdigit()) or "resolved")
    if reason is None:
        return f"неизвестная причина закрытия; допустимо: {', '.join(lifecycle.CLOSE_REASON_LABELS)}"
    if ticket.status == "closed":
        return "заявка уже закрыта"
    if reason == "duplicate" and len(numbers) != 1:
        return "укажите номер заявки, дубликатом которой является эта: /merge N"
    if reason != "duplicate" and numbers:
        return "номер другой заявки указывают только для дубликата: /close duplicate N"
    if numbers:
        number = numbers[0]
        if number == ticket.number or targets is not None:
            error = link_error(number, ticket.number, (targets or {}).get(number), merge)
            if error:
                return error
        draft.set("link_to", number, line)
        draft.merge = draft.merge or merge
    draft.set("status", "closed", line)
    draft.set("close_reason", reason, line)
    return None


def _check_together(draft: _Draft, ticket: TicketView, actor: AgentRef) -> list[CommandError]:
    changes, source = draft.changes, draft.source
    errors = []
    new_status = changes.get("status")
    if new_status and new_status != ticket.status and not lifecycle.can_move(ticket.status, new_status):
        errors.append(CommandError(source["status"], f"из статуса «{lifecycle.STATUS_LABELS[ticket.status]}» нельзя "
                                   f"перейти в «{lifecycle.STATUS_LABELS[new_status]}»"))
    if "impact" not in changes and "priority" not in changes:
        return errors
    new_impact = changes.get("impact", ticket.impact)
    new_priority = priority_after(changes, ticket.impact, ticket.priority)
    priority_line = source.get("priority") or source["impact"]  # a priority the impact brought along
    if not lifecycle.priority_allowed(new_impact, new_priority):
        label = lifecycle.IMPACT_LABELS.get(new_impact or "", "")
        errors.append(CommandError(priority_line, f"приоритет {new_priority} не соответствует влиянию «{label}»"))
    elif not actor.may_raise:
        errors.extend(_first_line(source, ticket, new_impact, new_priority, priority_line))
    return errors


def _first_line(source: Mapping[str, str], ticket: TicketView, new_impact: str | None, new_priority: int,
                priority_line: str) -> list[CommandError]:
    """1st line may lower impact and priority, never raise them (001 §4.9, §4.10)."""
    hint = "повысить может 2-я линия: передайте заявку командой /line 2"
    if "impact" in source and lifecycle.raises_impact(ticket.impact, new_impact):
        label = lifecycle.IMPACT_LABELS[ticket.impact or ""]
        return [CommandError(source["impact"], f"1-я линия может только понизить влияние (сейчас «{label}»); {hint}")]
    if new_priority < ticket.priority:
        label = lifecycle.PRIORITY_LABELS[ticket.priority]
        return [CommandError(priority_line, f"1-я линия может только понизить приоритет (сейчас {ticket.priority} — "
                                            f"{label}, стал бы {new_priority}); {hint}")]
    return []


def priority_after(changes: Mapping[str, Any], impact: str | None, priority: int) -> int:
    """The priority after the changes: an impact change brings a fitting priority along."""
    if "priority" in changes:
        return int(changes["priority"])
    new_impact = changes.get("impact", impact)
    return priority if lifecycle.priority_allowed(new_impact, priority) else lifecycle.default_priority(new_impact)
