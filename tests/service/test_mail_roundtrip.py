"""Mail round trips: a request in, its notice out through a real relay on loopback, and the replies
people build from that notice in their mail clients back into the same ticket."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Any

import pytest

from maildesk.adapters.outbox_admin import list_outbox, retry_outbox
from maildesk.adapters.queries import show_ticket
from maildesk.core import msgid
from maildesk.core.model import Outcome
from tests.adapters.test_outbox import Sink, sink, worker  # noqa: F401  (the relay on loopback and its fixture)
from tests.conftest import AGENT, AGENT2, DESK, REQUESTER, ingest_bytes
from tests.mailmaker import make_mail
from tests.test_cli import maildesk, write_config

DESK_NAME = "СТП ГБУЗС «МИАЦ»"
REQUEST = "Добрый день!\n\nПри открытии карты пациента появляется ошибка «Нет доступа».\n\nТелефон: +7 (8692) 55-12-34\n"
ORIGINAL_ID = "req-0001@gb1.sev.gov.ru"


def relay(app: Any, relay_sink: tuple[Sink, int], cap: int = 40) -> list[tuple[list[str], Any]]:
    """One pass of the outbox worker through the relay; what it delivered in that pass: (recipients, message)."""
    handler, port = relay_sink
    before = len(handler.messages)
    worker(app, port, cap=cap).deliver_due(app.deps.clock.now())
    assert all(mail_from == DESK for mail_from, _, _ in handler.messages[before:])
    return [(rcpts, msg) for _, rcpts, msg in handler.messages[before:]]


def only_to(sent: list[tuple[list[str], Any]], *recipients: str) -> Any:
    [msg] = [msg for rcpts, msg in sent if rcpts == list(recipients)]
    return msg


def ids(value: Any) -> list[str]:
    return [part.strip("<>") for part in str(value or "").split()]


def header(msg: Any, name: str) -> str:
    """A header decoded as RFC 2047 says (the email package's parser spaces out encoded words in names)."""
    [raw] = [value for key, value in msg.raw_items() if key.lower() == name.lower()]
    return str(make_header(decode_header(raw)))


def plain(msg: Any) -> str:
    return msg.get_body(("plain",)).get_content()


def client_reply(notice: Any, new_text: str, *, style: str = "quote", sender: str = REQUESTER,
                 name: str = "Иванова Мария Петровна") -> tuple[bytes, str]:
    """A reply as a mail client writes it: `Re:`, threading headers from the notice, the notice quoted below.

    style "quote": Thunderbird or Gmail, an attribution line and `> ` lines; "outlook": Outlook's
    «От: … Отправлено: … Кому: … Тема: …» block with the notice unquoted under it.
    """
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((name, sender))
    msg["To"] = str(notice["Reply-To"])
    msg["Subject"] = f"Re: {notice['Subject']}"
    msg["Date"] = format_datetime(datetime(2026, 11, 23, 8, 30, tzinfo=timezone.utc))
    own_id = make_msgid(domain=sender.split("@")[1])
    msg["Message-ID"] = own_id
    msg["In-Reply-To"] = str(notice["Message-ID"])
    msg["References"] = " ".join(f"<{i}>" for i in [*ids(notice["References"]), *ids(notice["Message-ID"])])
    quoted = plain(notice).rstrip("\n").splitlines()
    if style == "quote":
        history = [f"23.11.2026 10:05, {notice['From']} пишет:", *(f"> {line}" if line else ">" for line in quoted)]
    else:
        history = ["", "________________________________", f"От: {notice['From']}",
                   "Отправлено: 23 ноября 2026 г. 10:05", f"Кому: {sender}", f"Тема: {notice['Subject']}", "",
                   *quoted]
    msg.set_content(f"{new_text}\n\n" + "\n".join(history) + "\n")
    return msg.as_bytes(), own_id.strip("<>")


def stored_text(app: Any, number: int, message_id: str) -> str:
    [text] = [m["text"] for m in show_ticket(app.engine, number)["messages"]
              if (m["message_id"] or "").strip("<>") == message_id]
    return text


def open_ticket(app: Any, relay_sink: tuple[Sink, int]) -> tuple[int, Any, Any]:
    """A new request by mail: the ticket, the requester's notice and the agents' notice."""
    result = ingest_bytes(app, make_mail(body=REQUEST, message_id=ORIGINAL_ID))
    assert result.outcome is Outcome.CREATED
    sent = relay(app, relay_sink)
    assert sorted(rcpts for rcpts, _ in sent) == sorted([[AGENT, AGENT2], [REQUESTER]])
    return result.ticket, only_to(sent, REQUESTER), only_to(sent, AGENT, AGENT2)


def test_the_notice_of_a_new_request_as_the_requester_receives_it(app: Any, sink: tuple[Sink, int]) -> None:
    number, notice, _ = open_ticket(app, sink)
    assert notice["To"].addresses[0].addr_spec == REQUESTER and notice["Cc"] is None
    assert header(notice, "From") == f"{DESK_NAME} <{DESK}>"
    assert str(notice["Reply-To"]) == DESK
    own_id = ids(notice["Message-ID"])[0]
    assert own_id.endswith("@desk.test") and msgid.verify(own_id, b"test-secret", "desk.test") == number
    assert notice["Auto-Submitted"] == "auto-replied"
    assert notice["X-Auto-Response-Suppress"] == "All"
    assert ids(notice["In-Reply-To"]) == [ORIGINAL_ID] and ids(notice["References"]) == [ORIGINAL_ID]
    assert str(notice["Subject"]).startswith(f"[СТП #{number}] ")
    text, html = plain(notice), notice.get_body(("html",)).get_content()
    assert f"Номер заявки: № {number}." in text and "Ваше обращение зарегистрировано" in text
    assert f"№&nbsp;{number}" in html and "Ваше обращение зарегистрировано" in html
    assert "8 рабочих часов" in text and "не меняя тему" in text


@pytest.mark.parametrize("style", ["quote", "outlook"])
def test_a_client_reply_to_the_notice_threads_back_without_the_quote(
        app: Any, sink: tuple[Sink, int], style: str) -> None:
    number, notice, _ = open_ticket(app, sink)
    raw, reply_id = client_reply(notice, "Дополняю: ошибка появляется только у врача-терапевта.", style=style)
    result = ingest_bytes(app, raw)
    assert (result.outcome, result.ticket) == (Outcome.APPENDED, number)
    text = stored_text(app, number, reply_id)
    assert text == "Дополняю: ошибка появляется только у врача-терапевта."
    told = only_to(relay(app, sink), AGENT, AGENT2)  # the agents hear of it, the new words only
    assert "только у врача-терапевта" in plain(told) and "Ваше обращение зарегистрировано" not in plain(told)
    assert len(show_ticket(app.engine, number)["messages"]) == 2


def test_an_agent_reply_by_mail_reaches_the_requester_under_the_agents_name(
        app: Any, sink: tuple[Sink, int]) -> None:
    number, to_requester, to_agents = open_ticket(app, sink)
    raw, agent_id = client_reply(to_agents, "/assign me\n\nДобрый день! Проверьте, пожалуйста, вход под своим логином.",
                                 sender=AGENT, name="Петров Пётр")
    assert ingest_bytes(app, raw).ticket == number
    answer = only_to(relay(app, sink), REQUESTER)
    assert header(answer, "From") == f"Петров Пётр ({DESK_NAME}) <{DESK}>"
    assert str(answer["Reply-To"]) == DESK and answer["Auto-Submitted"] == "no"
    assert "вход под своим логином" in plain(answer)
    assert "/assign" not in plain(answer) and "Поступила новая заявка" not in plain(answer)
    # threaded under what the requester has: their request and our notice, never the agents' mail
    seen = {ORIGINAL_ID, ids(to_requester["Message-ID"])[0]}
    hidden = {agent_id, ids(to_agents["Message-ID"])[0]}
    assert ids(answer["In-Reply-To"]) == ids(to_requester["Message-ID"])
    assert set(ids(answer["References"])) <= seen and not hidden & set(ids(answer["References"]))
    assert not hidden & set(ids(answer["In-Reply-To"]))

    raw, reply_id = client_reply(answer, "Спасибо, под своим логином тоже ошибка.", style="outlook")
    assert ingest_bytes(app, raw).ticket == number
    assert stored_text(app, number, reply_id) == "Спасибо, под своим логином тоже ошибка."


def test_status_notices_caused_by_an_agent_do_not_reply_to_the_agents_mail(
        app: Any, sink: tuple[Sink, int]) -> None:
    number, to_requester, to_agents = open_ticket(app, sink)
    raw, agent_id = client_reply(to_agents, "/status resolved\n\nПрава доступа восстановлены.", sender=AGENT,
                                 name="Петров Пётр")
    ingest_bytes(app, raw)
    resolved = only_to(relay(app, sink), REQUESTER)
    assert "Права доступа восстановлены" in plain(resolved)
    assert ids(resolved["In-Reply-To"]) == ids(to_requester["Message-ID"])
    assert agent_id not in ids(resolved["References"])
    assert ids(to_agents["Message-ID"])[0] not in ids(resolved["References"])
    assert show_ticket(app.engine, number)["status"] == "resolved"


def test_a_command_error_answers_the_agents_own_mail(app: Any, sink: tuple[Sink, int]) -> None:
    number, _, to_agents = open_ticket(app, sink)
    raw, agent_id = client_reply(to_agents, "/status done", sender=AGENT, name="Петров Пётр")
    ingest_bytes(app, raw)
    error = only_to(relay(app, sink), AGENT)
    assert ids(error["In-Reply-To"]) == [agent_id]
    assert ids(error["References"])[-2:] == [ids(to_agents["Message-ID"])[0], agent_id]
    assert "неизвестный статус «done»" in plain(error)
    assert show_ticket(app.engine, number)["status"] == "new"


def test_a_duplicate_close_names_the_ticket_it_duplicates(app: Any, sink: tuple[Sink, int]) -> None:
    first, _, _ = open_ticket(app, sink)
    second = ingest_bytes(app, make_mail(subject="Снова не открывается карта", body=REQUEST)).ticket
    to_agents = only_to(relay(app, sink), AGENT, AGENT2)
    raw, _ = client_reply(to_agents, f"/close duplicate {first}", sender=AGENT, name="Петров Пётр")
    ingest_bytes(app, raw)
    closed = only_to(relay(app, sink), REQUESTER)
    assert str(closed["Subject"]).startswith(f"[СТП #{second}] Заявка закрыта")
    assert f"закрыта как дубликат заявки № {first}: работа по Вашему обращению продолжается в ней." in plain(closed)


# -- held mail let through by hand ------------------------------------------------------------
def _held_notice(app: Any, relay_sink: tuple[Sink, int]) -> dict[str, Any]:
    """Two requests with a cap of one: the second notice to the requester is held."""
    for i in range(2):
        ingest_bytes(app, make_mail(subject=f"Заявка {i}", body=f"Текст {i}. Телефон: 55-11-2{i}"))
    relay(app, relay_sink, cap=1)
    [held] = [r for r in list_outbox(app.engine) if r["state"] == "held"]
    assert held["to"] == [REQUESTER] and held["automatic"]
    return held


def test_a_held_notice_retried_plainly_is_held_again(app: Any, sink: tuple[Sink, int]) -> None:
    held = _held_notice(app, sink)
    assert retry_outbox(app.engine, held["id"], app.deps.clock.now()) == 1
    assert not [1 for rcpts, _ in relay(app, sink, cap=1) if rcpts == [REQUESTER]]
    assert {r["id"]: r["state"] for r in list_outbox(app.engine)}[held["id"]] == "held"


def test_a_forced_retry_passes_the_cap_once(app: Any, sink: tuple[Sink, int]) -> None:
    held = _held_notice(app, sink)
    assert retry_outbox(app.engine, held["id"], app.deps.clock.now(), force=True) == 1
    sent = relay(app, sink, cap=1)
    notice = only_to(sent, REQUESTER)
    assert ids(notice["Message-ID"]) == [held["message_id"]], "the same message, as it was composed"
    assert {r["id"]: r["state"] for r in list_outbox(app.engine)}[held["id"]] == "sent"
    assert "mail_forced" in [e["action"] for e in show_ticket(app.engine, held["ticket"])["events"]]
    # the cap still holds for the next automatic notice to that address
    ingest_bytes(app, make_mail(subject="Заявка 3", body="Текст 3. Телефон: 55-11-23"))
    assert not [1 for rcpts, _ in relay(app, sink, cap=1) if rcpts == [REQUESTER]]
    with pytest.raises(ValueError):
        retry_outbox(app.engine, None, app.deps.clock.now(), force=True)


def test_outbox_retry_force_on_the_command_line(app: Any, sink: tuple[Sink, int], tmp_path: Path) -> None:
    held = _held_notice(app, sink)
    (tmp_path / "cli").mkdir()
    config = write_config(tmp_path / "cli", database={"url": app.settings.database_url})
    plain_retry = maildesk(config, "outbox", "retry", "--force", check=False)
    assert plain_retry.returncode == 1 and b"--force needs the ID" in plain_retry.stderr
    out = maildesk(config, "outbox", "retry", str(held["id"]), "--force")
    assert b"1 message(s) queued again, past the daily cap" in out.stdout
    row = {r["id"]: r for r in list_outbox(app.engine)}[held["id"]]
    assert (row["state"], row["automatic"]) == ("pending", False)
    handler, port = sink
    worker(app, port, cap=1).deliver_due(datetime.now(timezone.utc) + timedelta(minutes=1))
    assert {r["id"]: r["state"] for r in list_outbox(app.engine)}[held["id"]] == "sent"


def test_a_reminder_names_only_mail_the_requester_has_seen(app: Any, sink: tuple[Sink, int]) -> None:
    from maildesk.adapters.scheduler import housekeeping_pass

    number, to_requester, to_agents = open_ticket(app, sink)
    raw, agent_id = client_reply(to_agents, "/feedback Уточните номер кабинета.", sender=AGENT, name="Петров Пётр")
    ingest_bytes(app, raw)
    question = only_to(relay(app, sink), REQUESTER)
    app.deps.clock.advance(days=10)  # 8 working days: past the reminder, before the close
    assert "stale_remind" in [e["job"] for e in housekeeping_pass(app)]
    reminder = only_to(relay(app, sink), REQUESTER)
    seen = {*ids(to_requester["Message-ID"]), *ids(question["Message-ID"]), ORIGINAL_ID}
    assert ids(reminder["In-Reply-To"])[0] in seen
    assert set(ids(reminder["References"])) <= seen, "no agent's mail, no notice to the agents"
    assert agent_id not in ids(reminder["References"]) and show_ticket(app.engine, number)["status"] == "feedback"
