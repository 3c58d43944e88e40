"""The SMTP receiver on loopback: smtplib and raw sockets against a real app, a real database and real faults."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

from maildesk.adapters.queries import TicketFilter, list_quarantine, list_tickets, show_quarantine, show_ticket
from maildesk.adapters.smtp_runner import threaded_quarantine, threaded_submit
from maildesk.adapters.smtp_server import SmtpReceiver, has_bare_line_ending
from maildesk.core.model import Envelope, Outcome
from maildesk.service.ingest import ingest
from maildesk.service.ports import IngestResult
from tests.conftest import DESK, REQUESTER
from tests.mailmaker import make_mail

WAIT = 30.0  # upper bound for anything the tests wait on; normally milliseconds


class LoopThread:
    """The daemon's single event loop, run in a background thread so that tests can be blocking clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="smtp-test-loop", daemon=True)
        self.thread.start()

    def call(self, coro: Any, timeout: float = WAIT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def soon(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.call(_drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


async def _drain() -> None:
    """Let the tasks of closed sessions finish, so that the loop closes with nothing pending."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if tasks:
        await asyncio.wait(tasks, timeout=5)


@dataclass
class Running:
    receiver: SmtpReceiver
    app: Any
    host: str
    port: int

    def client(self, **kw: Any) -> smtplib.SMTP:
        return smtplib.SMTP(self.host, self.port, timeout=WAIT, **kw)


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


@pytest.fixture
def serve(loop_thread: LoopThread) -> Iterator[Callable[..., Running]]:
    """serve(app, submit=None, quarantine=None) → a started receiver; ingest on a real thread pool by default."""
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-smtp")
    started: list[SmtpReceiver] = []

    def start(app: Any, submit: Any = None, quarantine: Any = None) -> Running:
        receiver = SmtpReceiver(app.settings, submit or threaded_submit(app.deps, executor),
                                quarantine or threaded_quarantine(app.deps, executor))
        loop_thread.call(receiver.start())
        started.append(receiver)
        host, port = receiver.addresses[0]
        return Running(receiver, app, host, port)

    yield start
    for receiver in started:
        loop_thread.call(receiver.stop(2.0))
    executor.shutdown(wait=True)


def send(running: Running, raw: bytes, sender: str = REQUESTER, rcpts: tuple[str, ...] = (DESK,)) -> tuple[int, str]:
    """One transaction; the reply to the final dot (or to the step that refused)."""
    smtp = running.client()
    try:
        smtp.ehlo("relay.sev.gov.ru")
        code, text = smtp.mail(sender)
        if code != 250:
            return code, text.decode()
        for rcpt in rcpts:
            code, text = smtp.rcpt(rcpt)
            if code != 250:
                return code, text.decode()
        code, text = smtp.data(raw)
        return code, text.decode()
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()  # a stopping server has already said 421 instead
        smtp.close()


def number_in(text: str) -> int:
    found = re.search(r"#(\d+)", text)
    assert found, text
    return int(found.group(1))


def tickets(app: Any) -> list[dict[str, Any]]:
    return list_tickets(app.engine, TicketFilter())


class RawClient:
    """A socket speaking SMTP by hand: for smuggling and pipelining, which smtplib will not send."""

    def __init__(self, running: Running) -> None:
        self.sock = socket.create_connection((running.host, running.port), timeout=WAIT)
        self.file = self.sock.makefile("rb")

    def reply(self) -> str:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError(f"closed after {lines!r}")
            lines.append(line.decode().rstrip("\r\n"))
            if line[3:4] != b"-":
                return "\n".join(lines)

    def replies(self, count: int) -> list[str]:
        return [self.reply() for _ in range(count)]

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def raw_client() -> Iterator[Callable[[Running], RawClient]]:
    clients: list[RawClient] = []

    def connect(running: Running) -> RawClient:
        clients.append(RawClient(running))
        return clients[-1]

    yield connect
    for c in clients:
        c.close()


# -- the normal paths --------------------------------------------------------------------------------

def test_new_request_is_answered_with_its_ticket_number_after_the_commit(
        app: Any, serve: Callable[..., Running], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="maildesk.smtp")
    running = serve(app)
    code, text = send(running, make_mail(message_id="first@gb1.sev.gov.ru"))
    assert code == 250 and text.startswith("2.0.0 Ticket #")
    ticket = show_ticket(app.engine, number_in(text))
    assert ticket is not None and ticket["subject"] == "Не открывается карта пациента в МИС"
    assert [m["message_id"] for m in ticket["messages"] if m["direction"] == "in"] == ["first@gb1.sev.gov.ru"]
    assert ticket["messages"][0]["source"] == "smtp"
    line = next(r for r in caplog.records if r.name == "maildesk.smtp" and "outcome=" in r.getMessage())
    assert line.outcome == "created" and line.ticket == number_in(text) and line.mail_from == REQUESTER
    assert line.peer == "127.0.0.1" and line.rcpt == DESK and line.size > 0 and line.ms >= 0


def test_the_same_message_again_is_a_duplicate_and_changes_nothing(app: Any, serve: Callable[..., Running]) -> None:
    running = serve(app)
    raw = make_mail()
    first = send(running, raw)
    again = send(running, raw)
    assert first[0] == again[0] == 250
    assert again[1].startswith("2.0.0 Already received") and number_in(again[1]) == number_in(first[1])
    assert len(tickets(app)) == 1
    assert [m["direction"] for m in show_ticket(app.engine, number_in(first[1]))["messages"]].count("in") == 1


def test_a_reply_is_added_to_its_ticket(app: Any, serve: Callable[..., Running]) -> None:
    running = serve(app)
    number = number_in(send(running, make_mail(message_id="q1@gb1.sev.gov.ru"))[1])
    code, text = send(running, make_mail(subject=f"Re: [СТП #{number}] Не открывается карта пациента в МИС",
                                         body="Ошибка повторилась.\n", in_reply_to="q1@gb1.sev.gov.ru"))
    assert (code, text) == (250, f"2.0.0 Added to ticket #{number}")
    assert len(tickets(app)) == 1


def test_the_envelope_reaches_the_pipeline(app: Any, serve: Callable[..., Running]) -> None:
    seen: list[tuple[bytes, Envelope]] = []

    async def submit(raw: bytes, envelope: Envelope) -> IngestResult:
        seen.append((raw, envelope))
        return IngestResult(Outcome.IGNORED, "bounce", 12)

    running = serve(app, submit=submit)
    raw = make_mail(body="строка\n.начинается с точки\n.\nи одна точка\n")
    assert send(running, raw, sender="<>", rcpts=("HELP@miac.sev.gov.ru",)) == (
        250, "2.0.0 Automatic mail recorded (ticket #12)")
    assert seen == [(raw, Envelope("smtp", "", ("HELP@miac.sev.gov.ru",), "127.0.0.1"))], "dots unstuffed, bytes as sent"


def test_ehlo_offers_size_and_no_auth(app: Any, serve: Callable[..., Running]) -> None:
    with serve(app).client() as smtp:
        code, text = smtp.ehlo("relay.sev.gov.ru")
    assert code == 250 and b"SIZE 15728640" in text and b"8BITMIME" in text and b"AUTH" not in text


# -- envelope limits ---------------------------------------------------------------------------------

def test_only_desk_addresses_are_accepted_never_a_relay(app: Any, serve: Callable[..., Running]) -> None:
    running = serve(app)
    for rcpt in ("other@miac.sev.gov.ru", "someone@example.com", "help@miac.sev.gov.ru.evil.test", "help@[127.0.0.1]"):
        code, text = send(running, make_mail(), rcpts=(rcpt,))
        assert (code, text[:5]) == (550, "5.1.1"), rcpt
    assert send(running, make_mail(), rcpts=("Help@MIAC.sev.gov.ru",))[0] == 250, "case does not matter"
    assert len(tickets(app)) == 1


def test_too_many_recipients(make_app: Callable[..., Any], serve: Callable[..., Running]) -> None:
    running = serve(make_app(smtp={"max_recipients": 2}))
    with running.client() as smtp:
        smtp.ehlo("relay.sev.gov.ru")
        smtp.mail(REQUESTER)
        assert [smtp.rcpt(DESK)[0] for _ in range(2)] == [250, 250]
        code, text = smtp.rcpt(DESK)
        assert (code, text[:5]) == (452, b"4.5.3")
        assert smtp.data(make_mail())[0] == 250, "the recipients already accepted still get the message"


def test_announced_size_over_the_limit_is_refused_at_mail(make_app: Callable[..., Any],
                                                          serve: Callable[..., Running]) -> None:
    running = serve(make_app(smtp={"max_message_size": 20_000}))
    with running.client() as smtp:
        smtp.ehlo("relay.sev.gov.ru")
        assert smtp.has_extn("size") and smtp.esmtp_features["size"] == "20000"
        code, text = smtp.mail(REQUESTER, options=["SIZE=20001"])
        assert (code, text[:5]) == (552, b"5.3.4")
        assert smtp.mail(REQUESTER, options=["SIZE=19000"])[0] == 250


def test_data_over_the_limit_is_refused_and_the_session_goes_on(make_app: Callable[..., Any],
                                                                serve: Callable[..., Running]) -> None:
    app = make_app(smtp={"max_message_size": 20_000})
    running = serve(app)
    big = make_mail(body="Большой текст заявки.\n" * 2000)
    assert len(big) > 20_000
    with running.client() as smtp:
        smtp.ehlo("relay.sev.gov.ru")
        smtp.mail(REQUESTER)  # no SIZE announced: the limit is enforced while receiving
        smtp.rcpt(DESK)
        code, text = smtp.data(big)
        assert (code, text[:5]) == (552, b"5.3.4")
        smtp.mail(REQUESTER)
        smtp.rcpt(DESK)
        assert smtp.data(make_mail())[0] == 250
    assert len(tickets(app)) == 1


# -- outcomes by mode ----------------------------------------------------------------------------------

def test_refused_sender_in_direct_mode_gets_550_and_is_kept(make_app: Callable[..., Any],
                                                            serve: Callable[..., Running]) -> None:
    app = make_app(smtp={"mode": "direct"})
    code, text = send(serve(app), make_mail(sender="m.ivanova@mail.ru"), sender="m.ivanova@mail.ru")
    assert (code, text[:5]) == (550, "5.7.1")
    [held] = list_quarantine(app.engine)
    assert held["reason"] == "sender.domain_not_allowed" and held["source"] == "smtp"
    assert tickets(app) == []


def test_refused_sender_behind_a_relay_gets_250_and_is_quarantined(app: Any, serve: Callable[..., Running]) -> None:
    code, text = send(serve(app), make_mail(sender="m.ivanova@mail.ru"), sender="m.ivanova@mail.ru")
    assert code == 250 and text.startswith("2.0.0 Held for review as quarantine #")
    entry = show_quarantine(app.engine, number_in(text))
    assert entry is not None and entry["reason"] == "sender.domain_not_allowed" and entry["source"] == "smtp"
    assert tickets(app) == []


# -- line endings: SMTP smuggling ------------------------------------------------------------------------

SMUGGLED = (b"MAIL FROM:<director@miac.sev.gov.ru>\r\nRCPT TO:<" + DESK.encode() + b">\r\nDATA\r\n"
            + make_mail(sender="director@miac.sev.gov.ru", subject="Срочно: отключить МИС", message_id="evil@x")
            + b"\r\n")
ENDINGS = {
    "lf-dot-crlf": b"\n.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "lf-dot-lf": b"\n.\n",
    "cr-dot-cr": b"\r.\r",
    "crlf-dot-cr": b"\r\n.\r",
    "cr-dot-crlf": b"\r.\r\n",
}


def smuggled_data(ending: bytes) -> bytes:
    """A message with a fake end of data and a second transaction inside it."""
    return make_mail(message_id="cover@gb1.sev.gov.ru").rstrip(b"\r\n") + ending + SMUGGLED


def smuggle(client: RawClient, data: bytes) -> str:
    """DATA sent as is, then QUIT in the same write; the reply after the real end of data."""
    assert client.reply().startswith("220")
    client.write(f"EHLO relay.sev.gov.ru\r\nMAIL FROM:<{REQUESTER}>\r\nRCPT TO:<{DESK}>\r\nDATA\r\n".encode())
    assert [r[:3] for r in client.replies(4)] == ["250", "250", "250", "354"]
    client.write(data + b".\r\nQUIT\r\n")
    return client.reply()


def unstuffed(data: bytes) -> bytes:
    """What a receiver keeps of DATA: lines split at CRLF only, one leading dot removed (RFC 5321 4.5.2)."""
    lines = data.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_bare_line_endings_are_refused_in_direct_mode(make_app: Callable[..., Any], serve: Callable[..., Running],
                                                      raw_client: Callable[[Running], RawClient],
                                                      ending: bytes) -> None:
    app = make_app(smtp={"mode": "direct"})
    client = raw_client(serve(app))
    reply = smuggle(client, smuggled_data(ending))
    assert reply.startswith("550 5.6.0")
    assert client.reply().startswith("221"), "the smuggled commands were data, never run"
    assert tickets(app) == [] and list_quarantine(app.engine) == []


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_bare_line_endings_behind_a_relay_are_quarantined_whole(app: Any, serve: Callable[..., Running],
                                                                raw_client: Callable[[Running], RawClient],
                                                                ending: bytes) -> None:
    client = raw_client(serve(app))
    data = smuggled_data(ending)
    reply = smuggle(client, data)
    assert reply.startswith("250 2.0.0 Held for review as quarantine #")
    assert client.reply().startswith("221")
    entry = show_quarantine(app.engine, number_in(reply))
    assert entry is not None and entry["reason"] == "smtp.bare_line_ending" and entry["mail_from"] == REQUESTER
    kept = app.archive.get(entry["raw_sha256"])
    assert kept == unstuffed(data), "one message, kept byte for byte"
    assert tickets(app) == [] and len(list_quarantine(app.engine)) == 1


def test_a_bare_cr_inside_a_line_is_quarantined_once(app: Any, serve: Callable[..., Running]) -> None:
    running = serve(app)
    raw = make_mail().replace(b"\r\n\r\n", b"\r\n\r\nline\rwith a bare CR\r\n", 1)
    first, again = send(running, raw), send(running, raw)
    assert first[0] == 250 and "quarantine #" in first[1]
    assert again == (250, f"2.0.0 Already received (quarantine #{number_in(first[1])})")
    assert tickets(app) == [] and len(list_quarantine(app.engine)) == 1


@pytest.mark.parametrize(("data", "bare"), [
    (b"a\r\nb\r\n", False), (b"", False), (b"a\nb\r\n", True), (b"a\r\rb\r\n", True), (b"a\r\n\n", True),
    (b"a\r", True), (b"\n", True), (b"a\r\n.\r\n", False),
])
def test_has_bare_line_ending(data: bytes, bare: bool) -> None:
    assert has_bare_line_ending(data) is bare


def test_pipelined_commands_are_answered_in_order(app: Any, serve: Callable[..., Running],
                                                  raw_client: Callable[[Running], RawClient]) -> None:
    client = raw_client(serve(app))
    assert client.reply().startswith("220")
    client.write(f"EHLO relay.sev.gov.ru\r\nMAIL FROM:<{REQUESTER}>\r\nRCPT TO:<nobody@example.com>\r\n"
                 f"RCPT TO:<{DESK}>\r\nDATA\r\n".encode())
    assert [r[:9] for r in client.replies(5)][1:] == ["250 2.1.0", "550 5.1.1", "250 2.1.5", "354 End d"]
    client.write(make_mail(message_id="p1@gb1.sev.gov.ru") + b".\r\n"
                 + f"MAIL FROM:<{REQUESTER}>\r\nRCPT TO:<{DESK}>\r\nDATA\r\n".encode())
    replies = client.replies(4)
    assert replies[0].startswith("250 2.0.0 Ticket #") and [r[:3] for r in replies[1:]] == ["250", "250", "354"]
    client.write(make_mail(message_id="p2@gb1.sev.gov.ru", subject="Принтер не печатает") + b".\r\nQUIT\r\n")
    assert client.reply().startswith("250 2.0.0 Ticket #") and client.reply().startswith("221")
    assert len(tickets(app)) == 2


# -- faults: 451 and nothing lost ----------------------------------------------------------------------

def _database_files(app: Any) -> list[Path]:
    db = Path(app.settings.database_url.split("///", 1)[1])
    return [p for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")) if p.exists()]


@pytest.mark.sqlite_only
def test_database_unavailable_answers_451_then_the_retry_is_taken(app: Any, serve: Callable[..., Running],
                                                                  tmp_path: Path) -> None:
    running = serve(app)
    raw = make_mail(message_id="retry@gb1.sev.gov.ru")
    app.engine.dispose()  # no open connection keeps the old file alive
    files = _database_files(app)
    aside = tmp_path / "aside"
    aside.mkdir()
    for f in files:
        f.rename(aside / f.name)
    files[0].mkdir()  # the database path now names a directory: SQLite cannot open it
    try:
        code, text = send(running, raw)
        assert (code, text[:5]) == (451, "4.3.0")
    finally:
        files[0].rmdir()
        for f in files:
            (aside / f.name).rename(f)
    code, text = send(running, raw)
    assert code == 250 and text.startswith("2.0.0 Ticket #")
    assert len(tickets(app)) == 1


def test_any_internal_error_answers_451_never_5xx(app: Any, serve: Callable[..., Running],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    async def broken(raw: bytes, envelope: Envelope) -> IngestResult:
        raise RuntimeError("a bug in the pipeline")

    code, text = send(serve(app, submit=broken), make_mail())
    assert (code, text[:5]) == (451, "4.3.0")
    assert any(r.name == "maildesk.smtp" and r.levelname == "ERROR" and r.exc_info for r in caplog.records)


def test_a_slow_message_does_not_stall_other_sessions(app: Any, serve: Callable[..., Running],
                                                      loop_thread: LoopThread) -> None:
    slow_started, release = threading.Event(), threading.Event()

    def work(raw: bytes, envelope: Envelope, deps: Any) -> IngestResult:
        if b"slow@" in raw:
            slow_started.set()
            assert release.wait(WAIT)
        return ingest(raw, envelope, deps)

    with ThreadPoolExecutor(max_workers=2) as executor:
        running = serve(app, submit=threaded_submit(app.deps, executor, work))
        with ThreadPoolExecutor(max_workers=1) as clients:
            slow = clients.submit(send, running, make_mail(message_id="slow@gb1.sev.gov.ru"))
            assert slow_started.wait(WAIT)
            fast = send(running, make_mail(message_id="fast@gb1.sev.gov.ru", subject="Принтер не печатает"))
            assert fast[0] == 250 and not slow.done()
            release.set()
            assert slow.result(WAIT)[0] == 250
        loop_thread.call(running.receiver.stop(5.0))
    assert len(tickets(app)) == 2


# -- connections -------------------------------------------------------------------------------------

def _wait_for(predicate: Callable[[], bool], loop_thread: LoopThread) -> None:
    """Wait until the receiver's state (read on its own loop) satisfies `predicate`."""
    async def until() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    loop_thread.call(asyncio.wait_for(until(), WAIT))


@pytest.mark.parametrize(("limits", "expected"), [
    ({"max_connections_per_client": 2}, "4.7.0 Too many connections from your host"),
    ({"max_connections": 2}, "4.7.0 Too many connections, try again"),
])
def test_connection_limits(make_app: Callable[..., Any], serve: Callable[..., Running], loop_thread: LoopThread,
                           limits: dict[str, int], expected: str) -> None:
    running = serve(make_app(smtp=limits))
    first, second = running.client(), running.client()
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        running.client()
    assert refused.value.smtp_code == 421 and refused.value.smtp_error.decode().startswith(expected)
    second.quit()
    _wait_for(lambda: len(running.receiver.sessions) == 1, loop_thread)
    with running.client() as third:
        assert third.noop()[0] == 250
    first.quit()


def test_clients_outside_the_allow_list_are_refused_at_connect(make_app: Callable[..., Any],
                                                               serve: Callable[..., Running]) -> None:
    outside = serve(make_app(smtp={"allowed_clients": ["192.0.2.0/24", "2001:db8::/32"]}))
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        outside.client()
    assert refused.value.smtp_code == 554
    inside = serve(make_app(smtp={"allowed_clients": ["192.0.2.1", "127.0.0.0/8"]}))
    assert send(inside, make_mail())[0] == 250


def test_an_idle_session_is_closed_after_the_timeout(make_app: Callable[..., Any], serve: Callable[..., Running],
                                                     raw_client: Callable[[Running], RawClient]) -> None:
    client = raw_client(serve(make_app(smtp={"timeout_seconds": 1})))
    assert client.reply().startswith("220")
    assert client.file.readline() == b"", "closed by the server"


def test_a_dripping_client_is_cut_off_after_the_session_cap(make_app: Callable[..., Any],
                                                            serve: Callable[..., Running],
                                                            raw_client: Callable[[Running], RawClient]) -> None:
    client = raw_client(serve(make_app(smtp={"timeout_seconds": 60, "max_session_seconds": 1})))
    assert client.reply().startswith("220")
    client.write(f"EHLO drip.example\r\nMAIL FROM:<{REQUESTER}>\r\nRCPT TO:<{DESK}>\r\nDATA\r\n".encode())
    assert client.replies(4)[-1].startswith("354")
    stop = threading.Event()

    def drip() -> None:  # a byte every 0.2 s, each well inside the idle timeout, for up to 10 s
        for _ in range(50):
            if stop.wait(0.2):
                return
            try:
                client.write(b"a")
            except OSError:
                return

    dripping = threading.Thread(target=drip, daemon=True)
    dripping.start()
    try:
        assert client.reply().startswith("421"), "told why, then closed, however busy the client keeps it"
        assert client.file.readline() == b""
    finally:
        stop.set()
        dripping.join(5)


def test_long_lines_behind_a_relay_are_taken_not_refused(app: Any, serve: Callable[..., Running]) -> None:
    # a 5xx here would make the relay bounce to a possibly forged sender; the parser has its own bound
    body = "Текст одной строкой: " + "ошибка при сохранении, " * 400 + "\nТелефон: 55-12-34\n"
    code, text = send(serve(app), make_mail(body=body))
    assert code == 250 and "Ticket #" in text
    assert "ошибка при сохранении" in show_ticket(app.engine, number_in(text))["messages"][0]["text"]


def test_a_client_that_hangs_up_before_its_reply_does_not_stop_the_daemon(
        app: Any, serve: Callable[..., Running], raw_client: Callable[[Running], RawClient]) -> None:
    from maildesk.adapters.smtp_runner import pipeline_submit
    from maildesk.service.pipeline import IngestPipeline

    pipeline = IngestPipeline(app.deps, app.store.transaction, workers=2)
    try:
        running = serve(app, submit=pipeline_submit(pipeline))
        client = raw_client(running)
        assert client.reply().startswith("220")
        client.write(f"EHLO gone.example\r\nMAIL FROM:<{REQUESTER}>\r\nRCPT TO:<{DESK}>\r\nDATA\r\n".encode())
        assert client.replies(4)[-1].startswith("354")
        client.write(make_mail(subject="Отправил и ушёл") + b".\r\n")
        client.close()  # before the 250
        code, text = send(running, make_mail(subject="Следующий", body="Текст.\nТелефон: 55-11-00"))
        assert code == 250, text
        assert pipeline.alive
        assert {t["subject"] for t in tickets(app)} == {"Отправил и ушёл", "Следующий"}
    finally:
        pipeline.close()


def _certificate(folder: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_starttls_when_required(make_app: Callable[..., Any], serve: Callable[..., Running], tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    app = make_app(smtp={"tls_cert": str(cert), "tls_key": str(key), "require_starttls": True})
    running = serve(app)
    with running.client() as smtp:
        code, features = smtp.ehlo("relay.sev.gov.ru")
        assert b"STARTTLS" in features
        code, text = smtp.mail(REQUESTER)
        assert (code, text[:5]) == (530, b"5.7.0")
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        assert smtp.starttls(context=context)[0] == 220
        code, features = smtp.ehlo("relay.sev.gov.ru")
        assert b"STARTTLS" not in features and b"AUTH" not in features
        assert smtp.mail(REQUESTER)[0] == 250 and smtp.rcpt(DESK)[0] == 250
        code, text = smtp.data(make_mail())
        assert code == 250 and text.startswith(b"2.0.0 Ticket #")


def test_a_failed_tls_handshake_ends_only_that_session(make_app: Callable[..., Any], serve: Callable[..., Running],
                                                       raw_client: Callable[[Running], RawClient],
                                                       loop_thread: LoopThread, tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    running = serve(make_app(smtp={"tls_cert": str(cert), "tls_key": str(key)}))
    client = raw_client(running)
    assert client.reply().startswith("220")
    client.write(b"EHLO scanner.example\r\nSTARTTLS\r\n")
    assert [r[:3] for r in client.replies(2)] == ["250", "220"]
    client.write(b"this is not a TLS handshake\r\n" * 10)
    assert client.file.readline() == b""
    _wait_for(lambda: not running.receiver.sessions, loop_thread)
    assert send(running, make_mail())[0] == 250


def test_settings_the_receiver_cannot_use_are_refused_with_their_key(make_app: Callable[..., Any]) -> None:
    from maildesk.config import ConfigError

    async def unused(*args: Any) -> IngestResult:
        raise AssertionError

    cases = [({"require_starttls": True}, "smtp.require_starttls"),
             ({"allowed_clients": ["10.0.0.300"]}, "smtp.allowed_clients"),
             ({"tls_cert": "missing.pem"}, "smtp.tls_cert")]
    for smtp, key in cases:
        with pytest.raises(ConfigError, match=key):
            SmtpReceiver(make_app(smtp=smtp).settings, unused, unused)


# -- stopping --------------------------------------------------------------------------------------

def test_stop_lets_a_message_in_data_finish_and_closes_the_rest(app: Any, serve: Callable[..., Running],
                                                                loop_thread: LoopThread,
                                                                raw_client: Callable[[Running], RawClient]) -> None:
    in_data, release = threading.Event(), threading.Event()

    def work(raw: bytes, envelope: Envelope, deps: Any) -> IngestResult:
        in_data.set()
        assert release.wait(WAIT)
        return ingest(raw, envelope, deps)

    with ThreadPoolExecutor(max_workers=1) as executor, ThreadPoolExecutor(max_workers=1) as clients:
        running = serve(app, submit=threaded_submit(app.deps, executor, work))
        idle = raw_client(running)
        assert idle.reply().startswith("220")
        sending = clients.submit(send, running, make_mail())
        assert in_data.wait(WAIT)
        stopping = loop_thread.soon(running.receiver.stop(WAIT))
        assert idle.reply().startswith("421 4.3.2") and idle.file.readline() == b"", "told and closed at once"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((running.host, running.port), timeout=WAIT).close()
        assert not stopping.done()
        release.set()
        code, text = sending.result(WAIT)
        assert code == 250 and text.startswith("2.0.0 Ticket #")
        stopping.result(WAIT)
    assert len(tickets(app)) == 1


def test_stop_closes_a_session_still_in_data_after_the_grace(app: Any, serve: Callable[..., Running],
                                                              loop_thread: LoopThread) -> None:
    stuck = threading.Event()

    async def never(raw: bytes, envelope: Envelope) -> IngestResult:
        stuck.set()
        await asyncio.Event().wait()
        raise AssertionError("not reached")

    running = serve(app, submit=never)
    with ThreadPoolExecutor(max_workers=1) as clients:
        sending = clients.submit(send, running, make_mail())
        assert stuck.wait(WAIT)
        loop_thread.call(running.receiver.stop(0.1))
        code, text = sending.result(WAIT)
        assert (code, text[:5]) == (421, "4.3.2"), "no 250: the sending MTA keeps the message"
    assert running.receiver.sessions == set()


def test_run_receiver_serves_until_stopped(app: Any, loop_thread: LoopThread) -> None:
    from maildesk.adapters.smtp_runner import run_receiver

    ready = threading.Event()
    receivers: list[SmtpReceiver] = []

    def started(receiver: SmtpReceiver) -> None:
        receivers.append(receiver)
        ready.set()

    async def make_stop() -> asyncio.Event:
        return asyncio.Event()

    stop = loop_thread.call(make_stop())
    running = loop_thread.soon(run_receiver(app, stop, workers=2, grace=5.0, started=started))
    assert ready.wait(WAIT)
    host, port = receivers[0].addresses[0]
    assert send(Running(receivers[0], app, host, port), make_mail())[0] == 250
    loop_thread.loop.call_soon_threadsafe(stop.set)
    running.result(WAIT)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=WAIT).close()
    assert len(tickets(app)) == 1


# -- a crash while clients send ------------------------------------------------------------------------

DAEMON_SCRIPT = Path(__file__).with_name("smtp_daemon_script.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Daemon:
    """The receiver in a process of its own, built from a config file as `maildesk serve` would."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with self.log.open("a") as err:
            self.process = subprocess.Popen([sys.executable, str(DAEMON_SCRIPT), str(self.config)],
                                            stdout=subprocess.PIPE, stderr=err, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until the receiver listens, or the process dies
        assert line.startswith("READY"), f"daemon did not start: {line!r}\n{self.log.read_text()}"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(WAIT)
        assert self.process.stdout is not None
        self.process.stdout.close()


def _write_config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "maildesk.toml"
    config.write_text(f"""
[maildesk]
data_dir = "{tmp_path / 'data'}"
secret = "crash-test"

[[desks]]
address = "{DESK}"

[senders]
allow_subdomains = true

[smtp]
listen = ["127.0.0.1:{port}"]

[outgoing]
transport = "directory"
""", encoding="utf-8")
    return config


def _accepted(port: int, raw: bytes) -> bool:
    """True only for a 250 to the final dot; anything else (refused, reset, 4xx) means send again."""
    try:
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=WAIT)
    except (OSError, smtplib.SMTPException):
        return False
    try:
        smtp.ehlo("relay.sev.gov.ru")
        smtp.mail(REQUESTER)
        smtp.rcpt(DESK)
        return smtp.data(raw)[0] == 250
    except (OSError, smtplib.SMTPException):
        return False
    finally:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.quit()
        smtp.close()


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_sigkill_while_clients_send_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    port = free_port()
    daemon = Daemon(_write_config(tmp_path, port), tmp_path / "daemon.log")
    messages = {f"crash-{i}@gb1.sev.gov.ru": make_mail(message_id=f"crash-{i}@gb1.sev.gov.ru",
                                                        subject=f"Заявка {i}: не работает МИС") for i in range(30)}
    ids = list(messages)
    accepted: set[str] = set()
    lock, enough = threading.Lock(), threading.Event()

    def client(share: list[str]) -> None:
        for mid in share:
            if _accepted(port, messages[mid]):
                with lock:
                    accepted.add(mid)
                    if len(accepted) >= 8:
                        enough.set()

    daemon.start()
    clients = [threading.Thread(target=client, args=(ids[i::4],)) for i in range(4)]
    for t in clients:
        t.start()
    assert enough.wait(WAIT)
    daemon.kill()  # mid-way: other sessions are in DATA or in their commit
    for t in clients:
        t.join(WAIT)
    before_crash = set(accepted)
    assert 8 <= len(before_crash) < 30

    daemon.start()
    try:
        for mid in ids:
            if mid not in before_crash:
                assert _accepted(port, messages[mid]), mid  # the sending MTA's retry
    finally:
        daemon.kill(signal.SIGTERM)

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'maildesk.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT message_id, count(*) FROM messages WHERE direction = 'in' "
                                        "GROUP BY message_id")).all()
            ticket_count = conn.execute(sa.text("SELECT count(*) FROM tickets")).scalar_one()
    finally:
        engine.dispose()
    assert dict(rows) == {mid: 1 for mid in ids}, "every message once, none twice"
    assert ticket_count == 30
