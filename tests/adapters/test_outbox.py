"""Outbox delivery through a real SMTP relay on loopback: retries, permanent failures, caps, no doubles."""

from __future__ import annotations

import email
import itertools
import email.policy
import socket
import threading
from datetime import datetime, timedelta
from typing import Any, Iterator

import pytest
from aiosmtpd.controller import Controller

from maildesk.adapters.mailer import SmtpTransport
from maildesk.adapters.outbox import OutboxWorker
from maildesk.adapters.outbox_admin import list_outbox, retry_outbox
from maildesk.adapters.queries import show_ticket
from tests.conftest import AGENT, AGENT2, DESK, REQUESTER, ingest_bytes
from tests.mailmaker import make_mail


class Sink:
    """An SMTP relay that records what it accepts (and on which connection), or answers with a chosen code."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.sessions: list[int] = []  # id of the session each accepted message came on
        self.answer: str | None = None  # e.g. "451 4.3.0 try later"; None accepts
        self.hang_up_after: int | None = None  # close the connection after this many messages on it
        self.lock = threading.Lock()
        self.numbers = itertools.count(1)

    def _number(self, session: Any) -> int:
        """A connection's own number (an id() could be reused once a closed session is freed)."""
        if not hasattr(session, "sink_number"):
            session.sink_number = next(self.numbers)
        return session.sink_number

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answer:
            return self.answer
        with self.lock:
            msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
            self.sessions.append(self._number(session))
        return "250 2.0.0 queued"

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.hang_up_after is not None and self.sessions.count(self._number(session)) >= self.hang_up_after:
            server.transport.close()  # enough on this connection: dropped without a word, as relays do
        envelope.mail_from = address
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def requests(app: Any, count: int, clock: Any = None) -> None:
    """`count` new requests from the same requester (two notices each), a second apart when a clock is given."""
    for i in range(count):
        ingest_bytes(app, make_mail(subject=f"Заявка {i}", body=f"Текст {i}. Телефон: 55-11-2{i}"))
        if clock is not None:
            clock.advance(seconds=1)


def worker(app: Any, port: int, cap: int = 40) -> OutboxWorker:
    return OutboxWorker(app.engine, SmtpTransport("127.0.0.1", port, timeout=5), DESK, cap_per_day=cap,
                        composer=app.composer)


def test_notifications_go_through_the_relay(app: Any, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    number = ingest_bytes(app, make_mail()).ticket
    assert worker(app, port).deliver_due(app.deps.clock.now()) == 2
    by_rcpt = {tuple(rcpts): msg for _, rcpts, msg in handler.messages}
    reply = by_rcpt[(REQUESTER,)]
    assert reply["Subject"].startswith(f"[СТП #{number}]")
    assert reply.get_body(("plain",)).get_content().startswith("Здравствуйте")
    assert {mail_from for mail_from, _, _ in handler.messages} == {DESK}
    assert [n["state"] for n in show_ticket(app.engine, number)["notifications"]] == ["sent", "sent"]
    assert worker(app, port).deliver_due(app.deps.clock.now()) == 0, "nothing sent twice"


def test_relay_down_then_retried_and_delivered_once(app: Any, sink: tuple[Sink, int], clock: Any) -> None:
    handler, port = sink
    ingest_bytes(app, make_mail())
    down = OutboxWorker(app.engine, SmtpTransport("127.0.0.1", free_port(), timeout=2), DESK)
    assert down.deliver_due(clock.now()) == 0
    assert "relay 127.0.0.1" in down.relay_error, "what /health reports for the outbox"
    rows = list_outbox(app.engine)
    assert {r["state"] for r in rows} == {"pending"} and all(r["attempts"] == 1 for r in rows)
    assert all("relay" in r["last_error"] for r in rows)
    assert worker(app, port).deliver_due(clock.now()) == 0, "not due again before the backoff"
    handler.answer = "451 4.3.0 try later"
    clock.advance(seconds=31)
    assert worker(app, port).deliver_due(clock.now()) == 0
    assert all(r["attempts"] == 2 for r in list_outbox(app.engine))
    handler.answer = None
    clock.advance(minutes=2)
    assert worker(app, port).deliver_due(clock.now()) == 2
    assert len(handler.messages) == 2
    clock.advance(hours=2)
    assert worker(app, port).deliver_due(clock.now()) == 0


def test_permanent_refusal_is_recorded_on_the_ticket(app: Any, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    handler.answer = "550 5.1.1 no such user"
    number = ingest_bytes(app, make_mail()).ticket
    worker(app, port).deliver_due(app.deps.clock.now())
    assert {r["state"] for r in list_outbox(app.engine)} == {"failed"}
    assert "mail_failed" in [e["action"] for e in show_ticket(app.engine, number)["events"]]
    handler.answer = None
    assert retry_outbox(app.engine, None, app.deps.clock.now()) == 2
    assert worker(app, port).deliver_due(app.deps.clock.now()) == 2


def test_per_recipient_cap_holds_automatic_mail(app: Any, sink: tuple[Sink, int], clock: Any) -> None:
    handler, port = sink
    requests(app, 3, clock)
    worker(app, port, cap=2).deliver_due(clock.now())
    to_requester = [rcpts for _, rcpts, _ in handler.messages if rcpts == [REQUESTER]]
    assert len(to_requester) == 2
    held = [r for r in list_outbox(app.engine) if r["state"] == "held"]
    assert [r["to"] for r in held] == [[REQUESTER]]
    assert "cap" in held[0]["last_error"]
    clock.advance(days=1, seconds=1)
    retry_outbox(app.engine, held[0]["id"], clock.now())
    worker(app, port, cap=2).deliver_due(clock.now())
    assert len([1 for _, rcpts, _ in handler.messages if rcpts == [REQUESTER]]) == 3


def test_two_workers_never_send_one_row_twice(app: Any, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    requests(app, 10)
    workers = [worker(app, port, cap=100), worker(app, port, cap=100)]
    workers[1].owner = "other-instance"
    barrier = threading.Barrier(2)

    def run(w: OutboxWorker) -> None:
        barrier.wait()
        w.deliver_due(app.deps.clock.now())

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = [msg["Message-ID"] for _, _, msg in handler.messages]
    assert len(ids) == 20 and len(set(ids)) == 20


def test_hostile_subject_and_name_cannot_inject_headers(app: Any, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    raw = make_mail(subject="Ошибка", sender_name="Иванова")
    raw = raw.replace(b"Subject: ", b"Subject: =?utf-8?q?=D0=9E=D1=88=0D=0ABcc:_evil@x.example?= ", 1)
    number = ingest_bytes(app, raw).ticket
    worker(app, port).deliver_due(app.deps.clock.now())
    for _, rcpts, msg in handler.messages:
        assert "evil@x.example" not in rcpts
        assert msg["Bcc"] is None
        assert "\n" not in str(msg["Subject"])
    assert number is not None


def test_held_mail_alerts_the_agents_once_a_day(app: Any, sink: tuple[Sink, int], clock: Any) -> None:
    handler, port = sink
    requests(app, 4, clock)
    worker(app, port, cap=2).deliver_due(clock.now())
    held = [r for r in list_outbox(app.engine) if r["state"] == "held"]
    assert len(held) == 2, "the third and fourth notices to the requester wait"
    alerts = [r for r in list_outbox(app.engine) if r["event"] == "outbox_held"]
    assert len(alerts) == 1, "one alert for the recipient, not one per held message"
    assert alerts[0]["to"] == [AGENT, AGENT2] and not alerts[0]["automatic"]
    worker(app, port, cap=2).deliver_due(clock.now())
    alert = next(msg for _, rcpts, msg in handler.messages if msg["Subject"] and AGENT in rcpts
                 and "задержаны" in msg.get_body(("plain",)).get_content())
    text = alert.get_body(("plain",)).get_content()
    assert REQUESTER in text and "2 автоматических письма" in text
    events = show_ticket(app.engine, held[0]["ticket"])["events"]
    assert "mail_held" in [e["action"] for e in events]

    requests(app, 1, clock)  # held too, the same day: no second alert
    worker(app, port, cap=2).deliver_due(clock.now())
    assert [r["event"] for r in list_outbox(app.engine)].count("outbox_held") == 1
    clock.advance(days=1, minutes=1)  # a new day: two go out, the third is held and told of again
    requests(app, 3, clock)
    worker(app, port, cap=2).deliver_due(clock.now())
    assert [r["event"] for r in list_outbox(app.engine)].count("outbox_held") == 2


def test_one_connection_carries_a_pass(app: Any, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    requests(app, 5)
    assert worker(app, port).deliver_due(app.deps.clock.now()) == 10
    assert len(set(handler.sessions)) == 1


def test_relay_that_hangs_up_mid_pass_loses_and_doubles_nothing(app: Any, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    handler.hang_up_after = 3
    requests(app, 4)
    assert worker(app, port).deliver_due(app.deps.clock.now()) == 8
    ids = [msg["Message-ID"] for _, _, msg in handler.messages]
    assert len(ids) == 8 and len(set(ids)) == 8
    assert len(set(handler.sessions)) == 3, "a new connection after each hang-up"
    assert {r["state"] for r in list_outbox(app.engine)} == {"sent"}


def test_relay_down_ends_the_pass_after_one_try(app: Any, clock: Any) -> None:
    accepted = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hang_up() -> None:  # a relay that accepts the connection and drops it at once
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    requests(app, 5)
    try:
        assert worker(app, port).deliver_due(clock.now()) == 0
    finally:
        listener.close()
    assert len(accepted) == 1, "the other nine wait for the next pass instead of each trying the relay"
    rows = list_outbox(app.engine)
    assert len(rows) == 10 and {r["state"] for r in rows} == {"pending"}
    assert all(r["attempts"] == 1 and datetime.fromisoformat(r["next_attempt_at"]) > clock.now() for r in rows)


def test_a_stop_ends_the_pass_and_lets_the_rest_go(app: Any, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    requests(app, 3)
    stop = threading.Event()
    stop.set()  # as SIGTERM does while a pass runs
    assert worker(app, port).deliver_due(app.deps.clock.now(), stop=stop) == 0
    rows = list_outbox(app.engine)
    assert {r["state"] for r in rows} == {"pending"} and all(r["attempts"] == 0 for r in rows)
    assert worker(app, port).deliver_due(app.deps.clock.now()) == 6, "taken at once by the next pass, no lease to wait out"
