"""Agents at work by mail and at the terminal, end to end: mail in, ticket changes, mail out."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from maildesk.adapters.queries import show_ticket
from maildesk.core.commands import AgentRef
from maildesk.core.model import Outcome
from maildesk.service.agent_actions import ActionError, act
from tests.conftest import AGENT, AGENT2, REQUESTER, base_config, deliver, ingest_bytes
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
    agent_mail(app, number, "/impact critical\n/priority 4", sender=AGENT2)
    assert show_ticket(app.engine, number)["impact"] is None
    agent_mail(app, number, "/impact critical", sender=AGENT2)
    ticket = show_ticket(app.engine, number)
    assert (ticket["impact"], ticket["priority"], ticket["priority_source"]) == ("critical", 1, "agent")


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
    original, _ = new_ticket(app)
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
    with pytest.raises(ActionError, match=f"/close duplicate {number}"):
        act(app.deps, number, PETROV, f"/close duplicate {number}")
    act(app.deps, number, PETROV, f"/close duplicate {original}")
    ticket = show_ticket(app.engine, number)
    assert (ticket["status"], ticket["close_reason"], ticket["linked_ticket"]) == ("closed", "duplicate", original)
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


# -- a requester's answer to a resolved ticket ---------------------------------------------------
def resolved_ticket(app: Any) -> tuple[int, Any, int]:
    """A ticket an agent resolved; the resolved notice the requester got; mail sent so far."""
    number, _ = new_ticket(app)
    agent_mail(app, number, "/status resolved\n\nПрава доступа восстановлены.")
    sent = deliver(app)
    notice = next(m for m in reversed(sent) if REQUESTER in m["To"])
    return number, notice, len(sent)


def quoted(msg: Any) -> str:
    return "\n".join("> " + line for line in body(msg).splitlines())


@pytest.mark.parametrize(("reply", "confirmed"), [
    ("Подтверждаю, ошибок нет.", True),
    ("Добрый день! Проверено, всё работает. Спасибо!", True),
    ("{quote}\n\nПодтверждаю, спасибо.", True),
    ("Пока не проверено", False),
    ("Проверено, но ошибка та же", False),
    ("Проверено: карта по-прежнему не открывается", False),
    ("{quote}\n\nПока не проверено.", False),  # bottom-posted: «подтверждаю» only in our quoted notice
    ("Спасибо! А когда обновят справочник?", False),
])
def test_only_a_real_confirmation_closes_a_resolved_ticket(app: Any, reply: str, confirmed: bool) -> None:
    number, notice, count = resolved_ticket(app)
    ingest_bytes(app, make_mail(subject=f"Re: [СТП #{number}] Не открывается карта",
                                in_reply_to=notice["Message-ID"].strip("<>"), body=reply.format(quote=quoted(notice))))
    ticket = show_ticket(app.engine, number)
    to_requester = [m for m in sent_since(app, count) if REQUESTER in m["To"]]
    if confirmed:
        assert (ticket["status"], ticket["close_reason"]) == ("closed", "resolved")
        assert "закрыта" in body(to_requester[0])
    else:
        assert ticket["status"] == "in_progress"
        assert "reopened" in [e["action"] for e in ticket["events"]]
        assert any("возобновлены" in body(m) for m in to_requester)


# -- /merge N, /close duplicate N -----------------------------------------------------------------
@pytest.mark.parametrize(("command", "why"), [
    ("/merge {self}", "сама эта заявка"),
    ("/close duplicate {self}", "сама эта заявка"),
    ("/merge 999", "заявки № 999 нет"),
    ("/закрыть дубликат 999", "заявки № 999 нет"),
    ("/merge {closed}", "закрыта"),
    ("/merge {other}\n/close cancelled", "противоречит"),
])
def test_a_bad_link_applies_nothing_and_tells_the_agent(app: Any, command: str, why: str) -> None:
    other, _ = new_ticket(app)
    closed, _ = new_ticket(app)
    agent_mail(app, closed, "/close cancelled")
    number, _ = new_ticket(app)
    count = len(deliver(app))
    text = command.format(self=number, other=other, closed=closed)
    agent_mail(app, number, text + "\n\nОбъединяю с основной заявкой.")
    ticket = show_ticket(app.engine, number)
    assert (ticket["status"], ticket["close_reason"], ticket["linked_ticket"]) == ("new", None, None)
    [error] = sent_since(app, count)
    assert AGENT in error["To"] and REQUESTER not in error["To"]
    assert text.splitlines()[-1] in body(error) and why in body(error)
    assert all(m["visibility"] == "internal" for m in ticket["messages"][1:])


def test_merge_closes_the_duplicate_and_links_it(app: Any) -> None:
    other, _ = new_ticket(app)
    number, sent = new_ticket(app)
    agent_mail(app, number, f"/merge {other}\n\nРаботы ведутся по основной заявке.")
    ticket = show_ticket(app.engine, number)
    assert (ticket["status"], ticket["close_reason"], ticket["linked_ticket"]) == ("closed", "duplicate", other)
    [notice] = sent_since(app, len(sent))
    assert REQUESTER in notice["To"] and "Работы ведутся по основной заявке" in body(notice)
    assert "link" in [e["action"] for e in ticket["events"]]


# -- /status feedback needs the question -----------------------------------------------------------
def test_status_feedback_without_a_question_is_refused_with_a_hint(app: Any) -> None:
    number, sent = new_ticket(app)
    agent_mail(app, number, "/status feedback")
    assert show_ticket(app.engine, number)["status"] == "new"
    [error] = sent_since(app, len(sent))
    assert AGENT in error["To"] and "/feedback" in body(error)
    count = len(sent) + 1
    agent_mail(app, number, "/status feedback\n\nУточните, пожалуйста, номер кабинета.")
    assert show_ticket(app.engine, number)["status"] == "feedback"
    [question] = sent_since(app, count)
    assert REQUESTER in question["To"] and "номер кабинета" in body(question) and "Обратная связь" in body(question)


# -- 1st line lowers, 2nd line and supervisors set any fitting pair ----------------------------------
def test_first_line_may_lower_but_not_raise(app: Any) -> None:
    number = ingest_bytes(app, make_mail(subject="АВАРИЯ: не работает МИС во всей больнице")).ticket
    count = len(deliver(app))
    agent_mail(app, number, "/влияние малое")
    ticket = show_ticket(app.engine, number)
    assert (ticket["impact"], ticket["priority"], ticket["priority_source"]) == ("minor", 2, "agent")
    assert any(e["action"] == "priority_source" and e["actor"] == AGENT for e in ticket["events"])
    count = len(deliver(app))
    agent_mail(app, number, "/приоритет 1")
    assert show_ticket(app.engine, number)["priority"] == 2
    [error] = sent_since(app, count)
    assert "/приоритет 1" in body(error) and "/priority 1" not in body(error), "the line as the agent typed it"
    count += 1
    agent_mail(app, number, "/влияние критический")
    assert show_ticket(app.engine, number)["impact"] == "minor"
    [error] = sent_since(app, count)
    assert "/влияние критический" in body(error) and "1-я линия" in body(error) and "/line 2" in body(error)
    agent_mail(app, number, "/влияние критический", sender=AGENT2)
    ticket = show_ticket(app.engine, number)
    assert (ticket["impact"], ticket["priority"]) == ("critical", 1)


# -- an internal note beside a public answer -------------------------------------------------------
def test_a_note_beside_a_question_is_its_own_internal_message(app: Any, tmp_path: Path) -> None:
    number, sent = new_ticket(app)
    agent_mail(app, number, "/feedback Уточните, пожалуйста, номер кабинета.\n/note Пароль администратора у Сидоровой.")
    out = sent_since(app, len(sent))
    assert out and all("Пароль администратора" not in m.as_string() and "Пароль администратора" not in body(m)
                       for m in out)
    shown = json.loads(cli(app, tmp_path, "tickets", "show", str(number), "--json").stdout)
    notes = [m for m in shown["messages"] if "Пароль администратора" in m["text"]]
    assert [(m["visibility"], m["text"]) for m in notes] == [("internal", "Пароль администратора у Сидоровой.")]
    question = [m for m in shown["messages"] if "номер кабинета" in m["text"]]
    assert [m["visibility"] for m in question] == ["public"]


# -- at the terminal --------------------------------------------------------------------------------
def write_config(app: Any, tmp_path: Path) -> Path:
    """The app's own settings as a config file, for the `maildesk` command."""
    table = base_config(app.settings.data_dir, database={"url": app.settings.database_url})
    lines: list[str] = []
    for section, values in table.items():
        for row in values if isinstance(values, list) else [values]:
            lines.append(f"[[{section}]]" if isinstance(values, list) else f"[{section}]")
            lines.extend(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in row.items())
    path = tmp_path / "maildesk.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cli(app: Any, tmp_path: Path, *args: str, editor: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EDITOR", "VISUAL", "MAILDESK_AGENT")}
    env["EDITOR"] = editor if editor is not None else "false"  # never a real editor in a test
    proc = subprocess.run([sys.executable, "-m", "maildesk", "--config", str(write_config(app, tmp_path)), *args],
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"maildesk {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    # the command ran on the real clock: the test's clock catches up, so that the mail it queued is due
    app.deps.clock.current = max(app.deps.clock.current, datetime.now(timezone.utc))
    return proc


def editor_script(tmp_path: Path, code: str) -> str:
    """$EDITOR for a test: a tiny program in a folder with a space, called with an extra argument."""
    folder = tmp_path / "my editor"
    folder.mkdir(exist_ok=True)
    script = folder / f"edit{len(list(folder.iterdir()))}.py"
    script.write_text(f"#!{sys.executable}\nimport os, sys\npath = sys.argv[-1]\n{code}\n", encoding="utf-8")
    script.chmod(0o755)
    return f"{shlex.quote(str(script))} --wait"


def test_a_reply_at_the_terminal_is_text_even_when_it_starts_with_a_slash(app: Any, tmp_path: Path) -> None:
    number, sent = new_ticket(app)
    cli(app, tmp_path, "tickets", "reply", str(number), "/status closed — так выглядит команда закрытия.",
        "--as", "petrov")
    note = tmp_path / "note.txt"
    note.write_text("/close cancelled\n/assign me\nзаявитель просил не закрывать\n", encoding="utf-8")
    cli(app, tmp_path, "tickets", "note", str(number), "--file", str(note), "--as", "petrov")
    ticket = show_ticket(app.engine, number)
    assert (ticket["status"], ticket["owner"]) == ("in_progress", None)
    [reply] = sent_since(app, len(sent))
    assert REQUESTER in reply["To"] and "/status closed — так выглядит" in body(reply)
    assert ticket["messages"][-1]["visibility"] == "internal"
    assert ticket["messages"][-1]["text"].startswith("/close cancelled\n/assign me")


def test_editor_that_saves_by_rename(app: Any, tmp_path: Path) -> None:
    number, sent = new_ticket(app)
    editor = editor_script(tmp_path, (
        "assert sys.argv[1] == '--wait'\n"
        "with open(path + '.new', 'w', encoding='utf-8') as fh:\n"
        "    fh.write('Перезагрузите, пожалуйста, компьютер.\\n')\n"
        "os.replace(path + '.new', path)"))
    cli(app, tmp_path, "tickets", "reply", str(number), "--as", "petrov", editor=editor)
    [reply] = sent_since(app, len(sent))
    assert "Перезагрузите, пожалуйста, компьютер." in body(reply)


@pytest.mark.parametrize(("editor", "says"), [
    ("missing", "cannot run the editor"),
    ("exit 3", "exited with 3"),
    ("empty", "empty"),
    ("deleted", "empty"),
])
def test_a_failing_editor_aborts_and_sends_nothing(app: Any, tmp_path: Path, editor: str, says: str) -> None:
    number, sent = new_ticket(app)
    command = {
        "missing": str(tmp_path / "no-such-editor"),
        "exit 3": editor_script(tmp_path, "open(path, 'w').write('half a reply')\nsys.exit(3)"),
        "empty": editor_script(tmp_path, "open(path, 'w').write('  \\n\\n')"),
        "deleted": editor_script(tmp_path, "os.remove(path)"),
    }[editor]
    before = len(show_ticket(app.engine, number)["messages"])
    result = cli(app, tmp_path, "tickets", "reply", str(number), "--as", "petrov", editor=command, check=False)
    assert result.returncode == 1 and says in result.stderr
    assert len(show_ticket(app.engine, number)["messages"]) == before
    assert sent_since(app, len(sent)) == []


def test_actions_at_the_terminal_take_a_comment(app: Any, tmp_path: Path) -> None:
    number, sent = new_ticket(app)
    cli(app, tmp_path, "tickets", "priority", str(number), "4", "--text", "Есть обходной путь через 2-й кабинет.",
        "--as", "petrov")
    ticket = show_ticket(app.engine, number)
    assert (ticket["priority"], ticket["priority_source"]) == (4, "agent")
    assert (ticket["messages"][-1]["visibility"], ticket["messages"][-1]["text"]) == \
        ("internal", "Есть обходной путь через 2-й кабинет.")
    count = len(deliver(app))
    assert all("обходной путь" not in body(m) for m in deliver(app))

    refused = cli(app, tmp_path, "tickets", "status", str(number), "feedback", "--as", "petrov", check=False)
    assert refused.returncode == 1 and "/feedback" in refused.stderr
    refused = cli(app, tmp_path, "tickets", "merge", str(number), "999", "--as", "petrov", check=False)
    assert refused.returncode == 1 and "999" in refused.stderr
    refused = cli(app, tmp_path, "tickets", "priority", str(number), "1", "--as", "petrov", check=False)
    assert refused.returncode == 1 and "1-я линия" in refused.stderr
    assert (show_ticket(app.engine, number)["status"], show_ticket(app.engine, number)["priority"]) == ("new", 4)
    assert sent_since(app, count) == [], "a refused action at the terminal mails no one"

    comment = tmp_path / "comment.txt"
    comment.write_text("Обновили драйвер принтера.\n", encoding="utf-8")
    cli(app, tmp_path, "tickets", "status", str(number), "resolved", "--file", str(comment), "--as", "petrov")
    [resolved] = sent_since(app, count)
    assert REQUESTER in resolved["To"] and "Обновили драйвер принтера." in body(resolved)
    assert show_ticket(app.engine, number)["status"] == "resolved"


def test_a_new_question_gives_the_requester_ten_days_again(app: Any, clock: Any) -> None:
    number, _ = new_ticket(app)
    agent_mail(app, number, "/feedback Уточните номер кабинета.")
    first = show_ticket(app.engine, number)
    clock.advance(days=5)
    agent_mail(app, number, "/feedback И ещё: какой браузер?")
    second = show_ticket(app.engine, number)
    assert second["status"] == "feedback"
    assert second["waiting_since"] > first["waiting_since"], "the stale clock restarts with the new question"


def test_a_colleague_adds_to_a_waiting_ticket_but_does_not_answer_for_the_requester(app: Any) -> None:
    number, _ = new_ticket(app)
    agent_mail(app, number, "/feedback Уточните номер кабинета.")
    colleague = ingest_bytes(app, make_mail(sender="petrova@gb1.sev.gov.ru", sender_name="Петрова Ольга",
                                            subject=f"Re: [СТП #{number}] Не открывается карта",
                                            body="Кабинет 12, Мария Петровна в отпуске."))
    ticket = show_ticket(app.engine, number)
    assert (colleague.outcome, colleague.ticket) == (Outcome.APPENDED, number)
    assert ticket["status"] == "feedback", "only the requester or a participant resumes the ticket"
    assert "Кабинет 12" in ticket["messages"][-1]["text"]
    requester_mail(app, number, "Кабинет 12.")
    assert show_ticket(app.engine, number)["status"] == "in_progress"


def test_a_question_is_not_taking_the_ticket_into_work(app: Any, clock: Any) -> None:
    from maildesk.adapters.scheduler import housekeeping_pass

    number, _ = new_ticket(app)
    due = show_ticket(app.engine, number)["accept_due_at"]
    agent_mail(app, number, "/feedback Уточните номер кабинета.")
    clock.advance(hours=2)
    requester_mail(app, number, "Кабинет 12.")
    ticket = show_ticket(app.engine, number)
    assert ticket["status"] == "in_progress" and ticket["accept_due_at"] > due, \
        "the 2 h in feedback move the acceptance deadline on: the ticket is not yet taken into work"
    clock.advance(days=3)
    assert "sla_breach" in [e["job"] for e in housekeeping_pass(app)]
