"""Agents at work by mail and at the terminal, end to end: mail in, ticket changes, mail out."""

from __future__ import annotations

from typing import Any

import pytest

from maildesk.adapters.queries import show_ticket
from maildesk.core.commands import AgentRef
from maildesk.core.model import Outcome
from maildesk.service.agent_actions import ActionError, act
from tests.conftest import AGENT, AGENT2, REQUESTER, deliver, ingest_bytes
from tests.mailmaker import make_mail

PETROV = AgentRef(AGENT, "petrov", 1)


def body(msg: Any) -> str:
    return msg.get_body(("plain",)).get_content()


def new_ticket(app: Any) -> tuple[int, list[Any]]:
    result = ingest_bytes(app, make_mail())
    assert result.outcome is Outcome.CREATED
    return result.ticket, deliver(app)


def agent_mail(app: Any, number: int, text: str, sender: str = AGENT, notice: Any = None) -> Any:
    msgid = notice["Message-ID"].strip("<>") if notice is not None else None
    return ingest_bytes(app, make_mail(sender=sender, sender_name="Петров Пётр", body=text, in_reply_to=msgid,
                                       subject=f"Re: [СТП #{number}] Не открывается карта пациента в МИС"))


def requester_mail(app: Any, number: int, text: str) -> Any:
    return ingest_bytes(app, make_mail(subject=f"Re: [СТП #{number}] Не открывается карта", body=text))


def sent_since(app: Any, before: int) -> list[Any]:
    return deliver(app)[before:]


def test_the_whole_life_of_a_ticket_by_mail(app: Any) -> None:
    number, sent = new_ticket(app)
    to_agents = [m for m in sent if AGENT in m["To"]][0]
    assert "/assign me" in body(to_agents), "agents are shown the commands"

    agent_mail(app, number, "/assign me\n/status in_progress\n\nДобрый день! Проверяем доступ.", notice=to_agents)
    ticket = show_ticket(app.engine, number)
    assert (ticket["status"], ticket["owner"]) == ("in_progress", AGENT)
    [answer] = sent_since(app, len(sent))
    assert REQUESTER in answer["To"] and AGENT not in answer["To"]
    assert "Петров Пётр" in answer["From"] and answer["From"].addresses[0].addr_spec == "help@miac.sev.gov.ru"
    assert "Проверяем доступ" in body(answer)
    assert answer["Auto-Submitted"] == "no"
    count = len(deliver(app))

    agent_mail(app, number, "/feedback Уточните, пожалуйста, номер кабинета.")
    assert show_ticket(app.engine, number)["status"] == "feedback"
    [question] = sent_since(app, count)
    assert "номер кабинета" in body(question)
    count += 1

    requester_mail(app, number, "Кабинет 214.")
    assert show_ticket(app.engine, number)["status"] == "in_progress"
    count = len(deliver(app))

    agent_mail(app, number, "/status resolved\n\nПрава доступа восстановлены.")
    ticket = show_ticket(app.engine, number)
    assert ticket["status"] == "resolved"
    [resolved] = sent_since(app, count)
    assert "Права доступа восстановлены" in body(resolved) and "подтверждаю" in body(resolved).lower()
    count += 1

    requester_mail(app, number, "Подтверждаю, ошибок нет. Спасибо!")
    ticket = show_ticket(app.engine, number)
    assert (ticket["status"], ticket["close_reason"]) == ("closed", "resolved")
    history = [e["action"] for e in ticket["events"]]
    for action in ("created", "owner", "agent_reply", "info_needed", "requester_replied", "confirmed"):
        assert action in history, action


def test_a_reply_to_a_resolved_ticket_reopens_it(app: Any) -> None:
    number, _ = new_ticket(app)
    agent_mail(app, number, "/status resolved\n\nИсправлено.")
    count = len(deliver(app))
    requester_mail(app, number, "Ошибка осталась, карта не открывается.")
    assert show_ticket(app.engine, number)["status"] == "in_progress"
    reopened = [m for m in sent_since(app, count) if REQUESTER in m["To"]]
    assert any("возобновлены" in body(m) for m in reopened)


@pytest.mark.parametrize("policy", ["new", "reopen", "refuse"])
def test_reply_to_a_closed_ticket_follows_the_policy(make_app: Any, policy: str) -> None:
    app = make_app(tickets={"closed_reply": policy})
    number, _ = new_ticket(app)
    agent_mail(app, number, "/close cancelled")
    assert show_ticket(app.engine, number)["status"] == "closed"
    count = len(deliver(app))
    result = requester_mail(app, number, "Проблема снова появилась.")
    answer = [m for m in sent_since(app, count) if REQUESTER in m["To"]]
    if policy == "new":
        assert result.outcome is Outcome.CREATED and result.ticket != number
        assert show_ticket(app.engine, result.ticket)["linked_ticket"] == number
        assert f"№ {number}" in body(answer[0])
    elif policy == "reopen":
        assert result.ticket == number and show_ticket(app.engine, number)["status"] == "in_progress"
    else:
        assert result.ticket == number and show_ticket(app.engine, number)["status"] == "closed"
        assert f"№ {number}" in body(answer[0])


def test_a_wrong_command_applies_nothing_and_explains(app: Any) -> None:
    number, sent = new_ticket(app)
    agent_mail(app, number, "/assign me\n/priority 9\n/влияние огромное\n\nТекст ответа.")
    ticket = show_ticket(app.engine, number)
    assert (ticket["status"], ticket["owner"], ticket["priority"]) == ("new", None, 3)
    [error] = sent_since(app, len(sent))
    assert AGENT in error["To"] and REQUESTER not in error["To"]
    assert "/priority 9" in body(error) and "огромное" in body(error)


def test_priority_must_fit_the_impact(app: Any) -> None:
    number, sent = new_ticket(app)
    agent_mail(app, number, "/impact critical\n/priority 4")
    assert show_ticket(app.engine, number)["impact"] is None
    agent_mail(app, number, "/impact critical")
    ticket = show_ticket(app.engine, number)
    assert (ticket["impact"], ticket["priority"]) == ("critical", 1)


def test_an_internal_note_never_reaches_the_requester(app: Any) -> None:
    number, sent = new_ticket(app)
    agent_mail(app, number, "/note Похоже на сбой сервера МИС, звонил в 2 ЛТП.")
    assert sent_since(app, len(sent)) == []
    message = show_ticket(app.engine, number)["messages"][-1]
    assert message["visibility"] == "internal" and "2 ЛТП" in message["text"]


def test_a_non_agent_cannot_use_commands(app: Any) -> None:
    number, _ = new_ticket(app)
    requester_mail(app, number, "/status closed\n/assign me\nЗакрываю сам.")
    ticket = show_ticket(app.engine, number)
    assert (ticket["status"], ticket["owner"]) == ("new", None)
    assert ticket["messages"][-1]["text"].startswith("/status closed")


def test_requester_states_the_impact(app: Any) -> None:
    result = ingest_bytes(app, make_mail(subject="АВАРИЯ: не работает МИС во всей больнице"))
    ticket = show_ticket(app.engine, result.ticket)
    assert (ticket["impact"], ticket["priority"], ticket["priority_source"]) == ("critical", 1, "requester")


def test_agents_at_the_terminal(app: Any) -> None:
    number, sent = new_ticket(app)
    act(app.deps, number, PETROV, "/assign sidorova")
    ticket = show_ticket(app.engine, number)
    assert (ticket["owner"], ticket["status"]) == (AGENT2, "assigned")
    sent = deliver(app)  # the requester learns the ticket was taken
    act(app.deps, number, PETROV, "Перезагрузите, пожалуйста, компьютер.")
    [reply] = sent_since(app, len(sent))
    assert "Перезагрузите" in body(reply) and REQUESTER in reply["To"]
    with pytest.raises(ActionError, match="/status"):
        act(app.deps, number, PETROV, "/status nonsense")
    act(app.deps, number, PETROV, "/note звонил, не отвечает")
    assert len(deliver(app)) == len(sent) + 1
    act(app.deps, number, PETROV, "/close duplicate 1")
    ticket = show_ticket(app.engine, number)
    assert (ticket["status"], ticket["close_reason"]) == ("closed", "duplicate")
    actors = {e["actor"] for e in ticket["events"] if e["action"] in ("owner", "note", "status")}
    assert actors == {AGENT}


def test_my_tickets_by_mail(app: Any) -> None:
    first = ingest_bytes(app, make_mail(subject="Принтер", body="Не печатает.\nМО: ГБ № 1\nТелефон: 55-11-22")).ticket
    ingest_bytes(app, make_mail(sender="kolleg@gb1.sev.gov.ru", sender_name="Коллега",
                                subject="Сканер", body="Не сканирует.\nМО: ГБ № 1\nТелефон: 55-11-23"))
    count = len(deliver(app))
    result = ingest_bytes(app, make_mail(subject="Мои заявки", body=""))
    assert result.ticket is None
    [listing] = sent_since(app, count)
    text = body(listing)
    assert f"№ {first}" in text or f"#{first}" in text
    assert "Принтер" in text and "Сканер" in text
