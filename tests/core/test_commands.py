"""Agents' command lines: validated all together, errors quote the line as typed, links and lines checked."""

from __future__ import annotations

from typing import Any

import pytest

from maildesk.core.agent_mail import agent_decision, check_link, separate_note
from maildesk.core.commands import AgentRef, literal, plan
from maildesk.core.decision import TicketView

FIRST = AgentRef("petrov@miac.sev.gov.ru", "petrov", 1)
SECOND = AgentRef("sidorova@miac.sev.gov.ru", "sidorova", 2)
BOSS = AgentRef("boss@miac.sev.gov.ru", "boss", 1, "supervisor")
AGENTS = (FIRST, SECOND, BOSS)


def ticket(**kw: Any) -> TicketView:
    values: dict[str, Any] = {"number": 5, "status": "in_progress", "subject": "Карта", "requester": "r@gb1.sev.gov.ru"}
    return TicketView(**{**values, **kw})


def errors(text: str, view: TicketView | None = None, actor: AgentRef = SECOND, **kw: Any) -> list[tuple[str, str]]:
    return [(e.line, e.error) for e in plan(text, view or ticket(), actor, AGENTS, **kw).errors]


# -- /merge N, /close duplicate N ------------------------------------------------------------
@pytest.mark.parametrize(("text", "targets", "wrong"), [
    ("/merge 5", None, "сама эта заявка"),
    ("/close duplicate #5", None, "сама эта заявка"),
    ("/merge 99", {}, "заявки № 99 нет"),
    ("/close duplicate 99", {3: "new"}, "заявки № 99 нет"),
    ("/merge 3", {3: "closed"}, "закрыта"),
    ("/merge", None, "укажите номер"),
    ("/close duplicate", None, "укажите номер"),
    ("/close cancelled 3", None, "только для дубликата"),
    ("/merge 3\n/close cancelled", None, "противоречит строке «/merge 3»"),
    ("/merge 3\n/merge 4", None, "противоречит строке «/merge 3»"),
    ("/merge 3\n/status resolved", None, "противоречит строке «/merge 3»"),
    ("/feedback Уточните кабинет\n/status resolved", None, "противоречит строке «/feedback Уточните кабинет»"),
])
def test_a_link_must_name_another_existing_ticket_and_agree(text: str, targets: Any, wrong: str) -> None:
    [(line, error)] = errors(text, targets=targets)
    assert line == text.splitlines()[-1]  # the line that is wrong (the later one, when two disagree)
    assert wrong in error


@pytest.mark.parametrize(("text", "targets", "merge"), [
    ("/merge 3", {3: "in_progress"}, True),
    ("/close duplicate 3", {3: "closed"}, False),  # a duplicate of a closed ticket is still a duplicate
    ("/закрыть дубликат №3", None, False),  # unknown to core: the store checks ticket 3 when applying
    ("/status closed\n/close duplicate 3", None, False),  # /status closed names no reason: no conflict
    ("/merge 3\n/close duplicate 3", None, True),
])
def test_a_good_link_closes_as_duplicate(text: str, targets: Any, merge: bool) -> None:
    result = plan(text, ticket(), SECOND, AGENTS, targets=targets)
    assert result.errors == ()
    assert (result.changes["status"], result.changes["close_reason"], result.link_to, result.merge) == \
        ("closed", "duplicate", 3, merge)


def test_the_store_check_turns_a_bad_link_into_a_command_error() -> None:
    decision = agent_decision("/merge 3\n\nОбъединяю с основной заявкой.", ticket(), SECOND, AGENTS)
    assert check_link(decision, "in_progress") is None
    refused = check_link(decision, "closed")
    assert refused is not None and refused.rule == "agent.command_error"
    assert (refused.new_status, refused.link_to, dict(refused.changes)) == (None, None, {})
    [notice] = refused.notices
    assert notice.to == "sender" and notice.extra["errors"][0]["line"] == "/merge 3"
    assert check_link(agent_decision("/close duplicate 3", ticket(), SECOND, AGENTS), None) is not None
    assert check_link(agent_decision("/close duplicate 3", ticket(), SECOND, AGENTS), "closed") is None


def test_a_closed_ticket_cannot_be_closed_again() -> None:
    [(_, error)] = errors("/close cancelled", ticket(status="closed"))
    assert "уже закрыта" in error


# -- /status feedback needs a question ----------------------------------------------------------
def test_status_feedback_without_a_question_is_refused() -> None:
    [(line, error)] = errors("/status feedback")
    assert line == "/status feedback" and "/feedback" in error
    [(line, _)] = errors("/статус обратная связь\n/assign me")
    assert line == "/статус обратная связь"


def test_status_feedback_with_a_text_asks_it() -> None:
    result = plan("/status feedback\n\nУточните номер кабинета.", ticket(), SECOND, AGENTS)
    assert (result.question, result.reply, result.changes["status"]) == ("Уточните номер кабинета.", "", "feedback")
    decision = agent_decision("/status feedback\n\nУточните номер кабинета.", ticket(), SECOND, AGENTS)
    assert [n.event for n in decision.notices] == ["info_needed"]


# -- who may set impact and priority ------------------------------------------------------------
@pytest.mark.parametrize(("actor", "impact", "priority", "text", "refused_line"), [
    (FIRST, "critical", 1, "/impact minor", None),  # lowering: the priority follows (2)
    (FIRST, "critical", 1, "/влияние малое\n/приоритет 3", None),
    (FIRST, "minor", 2, "/priority 3", None),
    (FIRST, None, 3, "/impact tweak", None),  # first triage that raises nothing
    (FIRST, None, 3, "/priority 4", None),
    (FIRST, "minor", 3, "/priority 2", "/priority 2"),
    (FIRST, "minor", 3, "/impact critical", "/impact critical"),
    (FIRST, None, 3, "/влияние критический", "/влияние критический"),  # would make it priority 1
    (FIRST, None, 3, "/приоритет 1", "/приоритет 1"),
    (FIRST, "tweak", 4, "/impact minor\n/priority 3", "/impact minor"),
    (SECOND, "minor", 3, "/impact critical", None),
    (SECOND, None, 3, "/priority 1", None),
    (BOSS, "text", 4, "/impact block", None),  # a supervisor sets any fitting pair
    (SECOND, None, 3, "/impact critical\n/priority 4", "/priority 4"),  # never a priority the impact refuses
])
def test_first_line_may_only_lower_impact_and_priority(actor: AgentRef, impact: str | None, priority: int,
                                                       text: str, refused_line: str | None) -> None:
    found = errors(text, ticket(impact=impact, priority=priority), actor)
    if refused_line is None:
        assert found == []
    else:
        [(line, error)] = found
        assert line == refused_line
        assert "1-я линия" in error or "не соответствует" in error


def test_an_agents_change_of_priority_is_recorded_as_the_agents() -> None:
    decision = agent_decision("/impact minor", ticket(impact="critical", priority=1), FIRST, AGENTS)
    assert dict(decision.changes) == {"impact": "minor", "priority": 2, "priority_source": "agent"}
    actions = [action for action, _ in decision.events]
    assert {"impact", "priority", "priority_source"} <= set(actions)
    same = agent_decision("/priority 3", ticket(), FIRST, AGENTS)  # unchanged: nothing recorded
    assert "priority_source" not in same.changes


# -- errors quote the agent's own line ------------------------------------------------------------
@pytest.mark.parametrize(("text", "view", "line"), [
    ("/приоритет 1", ticket(impact="minor", priority=3), "/приоритет 1"),
    ("/Влияние Критический\n/Приоритет 4", ticket(), "/Приоритет 4"),
    ("/статус назначена", ticket(status="resolved"), "/статус назначена"),
    ("/СТАТУС   решена  ", ticket(status="closed"), "/СТАТУС   решена"),
    ("/закрыть отменено", ticket(status="closed"), "/закрыть отменено"),
])
def test_errors_quote_the_line_as_typed(text: str, view: TicketView, line: str) -> None:
    [(quoted, _)] = errors(text, view, FIRST)
    assert quoted == line


# -- the text after the commands, and text taken as written ----------------------------------
def test_the_text_after_the_commands_belongs_to_the_last_text_command() -> None:
    result = plan("/feedback Уточните кабинет.\n/note Звонил, не отвечает.\n\nСпросить у заведующей.",
                  ticket(), SECOND, AGENTS)
    assert result.question == "Уточните кабинет."
    assert result.note == "Звонил, не отвечает.\nСпросить у заведующей."
    assert result.reply == ""


def test_a_note_beside_a_public_answer_is_kept_apart() -> None:
    decision = agent_decision("/feedback Уточните кабинет.\n/note секрет", ticket(), SECOND, AGENTS)
    assert decision.visibility == "public" and decision.text == "Уточните кабинет."
    assert separate_note(decision) == "секрет"
    alone = agent_decision("/note секрет", ticket(), SECOND, AGENTS)
    assert (alone.visibility, alone.text, separate_note(alone)) == ("internal", "секрет", None)


@pytest.mark.parametrize("text", ["/status closed", "\n/status closed\n/assign me", "/note x\n\nтекст"])
def test_literal_text_is_never_read_as_commands(text: str) -> None:
    reply = plan(literal(text), ticket(), SECOND, AGENTS)
    assert (reply.changes, reply.commands, reply.reply) == ({}, (), text.strip())
    note = plan(literal(text, "/note"), ticket(), SECOND, AGENTS)
    assert (note.changes, note.note, note.reply) == ({}, text.strip(), "")


def test_text_on_the_end_line_is_an_error() -> None:
    [(line, _)] = errors("/status resolved\n/text ответ")
    assert line == "/text ответ"
