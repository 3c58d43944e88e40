"""`maildesk serve` as admins run it: a real subprocess with SMTP, IMAP, outbox, scheduler and health."""

from __future__ import annotations

import email
import email.policy
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import DESK
from tests.imapserver import ImapServer, free_port, start_server, unique_prefix, wait_until
from tests.mailmaker import make_mail
from tests.test_cli import maildesk, write_config

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]


class Daemon:
    """One `maildesk serve` process on a config; start, stop, kill, restart."""

    def __init__(self, config: Path, smtp_port: int, http_port: int) -> None:
        self.config, self.smtp_port, self.http_port = config, smtp_port, http_port
        self.proc: subprocess.Popen | None = None
        self.log = config.parent / "daemon.log"

    def start(self, *flags: str) -> Daemon:
        with self.log.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "maildesk", "--config", str(self.config), *flags, "serve"],
                                         stdout=subprocess.DEVNULL, stderr=log)
        wait_until(self.healthy, timeout=60, what="maildesk serve ready")
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=2) as reply:
                smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=5).quit()
                return reply.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as reply:
            return reply.read().decode()

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(60)


@pytest.fixture
def imap() -> Iterator[ImapServer]:
    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def daemon(tmp_path: Path, imap: ImapServer) -> Iterator[Daemon]:
    smtp_port, http_port = free_port(), free_port()
    prefix = unique_prefix()
    imap.create(f"{prefix}/inbox")
    config = write_config(tmp_path, smtp={"listen": [f"127.0.0.1:{smtp_port}"]}, http={"listen": f"127.0.0.1:{http_port}"},
                          imap=[imap.account("help", prefix, desk=DESK, poll_seconds=2)],
                          maildesk={"data_dir": str(tmp_path / "data"), "message_id_domain": "desk.test",
                                    "secret": "test-secret", "ingest_workers": 2})
    maildesk(config, "db", "upgrade")
    d = Daemon(config, smtp_port, http_port)
    d.imap, d.inbox = imap, f"{prefix}/inbox"  # type: ignore[attr-defined]
    yield d.start()
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def db(daemon: Daemon) -> sqlite3.Connection:
    return sqlite3.connect(daemon.config.parent / "data" / "maildesk.db", timeout=30)


def message_ids(daemon: Daemon) -> list[str]:
    with db(daemon) as conn:
        return [r[0] for r in conn.execute("SELECT message_id FROM messages WHERE direction = 'in'")]


def send(port: int, raws: list[bytes], acked: list[bytes], clients: int = 4) -> None:
    """Send every message once from `clients` threads; record those answered 250."""
    lock = threading.Lock()
    queue = list(raws)

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                raw = queue.pop(0)
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                    client.sendmail("ivanova@gb1.sev.gov.ru", [DESK], raw)
                with lock:
                    acked.append(raw)
            except (OSError, smtplib.SMTPException):
                pass  # not acknowledged: the sender keeps it and tries again later

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


def burst(n: int, tag: str) -> list[bytes]:
    return [make_mail(subject=f"{tag} {i}", body=f"Текст {i}.\nТелефон: 55-11-{i:02d}",
                      message_id=f"{tag}-{i}@gb1.sev.gov.ru") for i in range(n)]


def test_mail_in_by_smtp_and_imap_and_notifications_out(daemon: Daemon) -> None:
    acked: list[bytes] = []
    send(daemon.smtp_port, burst(12, "smtp"), acked)
    assert len(acked) == 12
    daemon.imap.append(daemon.inbox, burst(4, "imap"))  # type: ignore[attr-defined]
    wait_until(lambda: len(message_ids(daemon)) == 16, timeout=60, what="16 messages stored")
    outgoing = daemon.config.parent / "data" / "outgoing"
    wait_until(lambda: len(list(outgoing.glob("*.eml"))) >= 32, timeout=60, what="notifications delivered")
    assert daemon.imap.count(daemon.inbox) == 0  # type: ignore[attr-defined]
    metrics = daemon.metrics()
    assert 'maildesk_messages_total{source="smtp",outcome="created"} 12' in metrics
    assert 'maildesk_tickets{status="new"} 16' in metrics
    for component in ("smtp", "imap", "outbox", "scheduler"):
        assert f'maildesk_component_up{{component="{component}"}} 1' in metrics
    assert daemon.signal(signal.SIGTERM) == 0


def test_sigterm_during_a_burst_loses_nothing(daemon: Daemon) -> None:
    mails = burst(40, "term")
    acked: list[bytes] = []
    sender = threading.Thread(target=send, args=(daemon.smtp_port, mails, acked))
    sender.start()
    wait_until(lambda: len(acked) >= 8, timeout=60, what="first acknowledgements")
    assert daemon.signal(signal.SIGTERM) == 0, daemon.log.read_text()[-3000:]
    sender.join(120)
    stored = message_ids(daemon)
    for raw in acked:
        assert _mid(raw) in stored, "every message answered 250 is stored"
    daemon.start()
    rest = [raw for raw in mails if raw not in acked]
    again: list[bytes] = []
    send(daemon.smtp_port, rest, again)
    assert len(again) == len(rest)
    stored = message_ids(daemon)
    assert sorted(stored) == sorted(_mid(raw) for raw in mails), "each message exactly once"


def test_sigkill_and_restart_lose_and_double_nothing(daemon: Daemon) -> None:
    mails = burst(40, "kill")
    acked: list[bytes] = []
    sender = threading.Thread(target=send, args=(daemon.smtp_port, mails, acked))
    sender.start()
    wait_until(lambda: len(acked) >= 8, timeout=60, what="first acknowledgements")
    daemon.signal(signal.SIGKILL)
    sender.join(120)
    daemon.start()
    stored = message_ids(daemon)
    assert all(_mid(raw) in stored for raw in acked)
    retry: list[bytes] = []
    send(daemon.smtp_port, [raw for raw in mails if raw not in acked], retry)  # senders retry the unacknowledged
    stored = message_ids(daemon)
    assert sorted(stored) == sorted(_mid(raw) for raw in mails)
    with db(daemon) as conn:
        tickets = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]
    assert tickets == len(set(mails)) == 40, "one ticket per distinct message sent"
    # what actually went out: two notifications per ticket (the requester's, the agents'), none twice.
    # Each outbox row is its own file, so a doubled row would show as a second file for the same
    # (ticket, event, recipients); a row delivered again after the kill overwrites its own file.
    outgoing = daemon.config.parent / "data" / "outgoing"

    def all_out() -> bool:
        with db(daemon) as conn:
            unsent = conn.execute("SELECT count(*) FROM outbox WHERE state <> 'sent'").fetchone()[0]
        return unsent == 0 and len(list(outgoing.glob("*.eml"))) >= 2 * tickets

    wait_until(all_out, timeout=60, what="every notification out")
    written = [_notification(path) for path in sorted(outgoing.glob("*.eml"))]
    assert len(written) == len(set(written)) == 2 * tickets, "two notifications per message, none doubled"
    assert sorted({number for number, _, _ in written}) == list(range(1, tickets + 1))
    assert sorted(event for _, event, _ in written) == sorted(["agent_new_ticket", "ticket_created"] * tickets)


def _notification(path: Path) -> tuple[int, str, str]:
    """(ticket number, event, envelope recipients) of a file the directory transport wrote."""
    import re

    raw = path.read_bytes()
    to = re.search(rb"^X-Maildesk-Envelope-To: (.*)\r?$", raw, re.M)
    tag = re.search(r"\[СТП #(\d+)\]", email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
    assert to and tag, path
    return int(tag.group(1)), path.stem.split("-", 1)[1], to.group(1).decode()


def _mid(raw: bytes) -> str:
    start = raw.index(b"Message-ID: <") + len(b"Message-ID: <")
    return raw[start:raw.index(b">", start)].decode()


def test_a_broken_config_is_refused_at_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[desks]]\naddress = "help@miac.sev.gov.ru"\n[smtp]\nlisten = ["nowhere"]\n')
    proc = subprocess.run([sys.executable, "-m", "maildesk", "--config", str(config), "serve"],
                          capture_output=True, timeout=60)
    assert proc.returncode == 78 and b"smtp.listen" in proc.stderr


def test_imap_commands(tmp_path: Path, imap: ImapServer) -> None:
    prefix = unique_prefix()
    imap.create(f"{prefix}/inbox")
    imap.append(f"{prefix}/inbox", burst(3, "cron"))
    config = write_config(tmp_path, imap=[imap.account("help", prefix, desk=DESK)])
    maildesk(config, "db", "upgrade")
    checked = maildesk(config, "imap", "check").stdout.decode()
    assert checked.startswith("ok   help") and "messages=3" in checked
    polled = maildesk(config, "imap", "poll-once").stdout.decode()
    assert "fetched 3" in polled and "{'created': 3}" in polled
    assert b"ok   imap" in maildesk(config, "check").stdout
    wrong = write_config(tmp_path, imap=[imap.account("help", prefix, password="wrong")])
    assert maildesk(wrong, "imap", "poll-once", check=False).returncode == 75


def test_sighup_reloads_and_json_logs_parse(daemon: Daemon) -> None:
    import json

    assert daemon.signal(signal.SIGTERM) == 0
    daemon.log.write_bytes(b"")
    daemon.start("--log-json")
    acked: list[bytes] = []
    send(daemon.smtp_port, burst(1, "json"), acked)
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "reloaded templates and calendar" in daemon.log.read_text(), timeout=30, what="reload logged")
    assert daemon.healthy(), "still serving after the reload"
    assert daemon.signal(signal.SIGTERM) == 0
    records = [json.loads(line) for line in daemon.log.read_text().splitlines() if line.strip()]
    received = [r for r in records if r["logger"] == "maildesk.smtp" and "outcome" in r]
    assert received and received[0]["outcome"] == "created" and received[0]["ticket"] == 1
    summary = "\n".join(r["msg"] for r in records if r["logger"] == "maildesk.serve")
    assert f"smtp: listening on 127.0.0.1:{daemon.smtp_port}" in summary
    assert f"http: /metrics and /health on http://127.0.0.1:{daemon.http_port}/" in summary
    assert "imap help: " in summary and "outgoing: .eml files in " in summary and "database: sqlite:///" in summary
    assert summary.index(f"smtp: bound to 127.0.0.1:{daemon.smtp_port}") < summary.index("maildesk ready")


# -- in-process: READY after the sockets are bound, summary, SIGHUP's checks ----------------------------
def _serve_in_process(settings: Any, body: Any) -> None:
    """Run `serve` on this thread's event loop while `body(stop)` (a coroutine function) does its part."""
    import asyncio

    from maildesk.daemon import serve

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(settings, stop=stop))
        try:
            await body(stop)
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)

    asyncio.run(main())


def test_ready_is_sent_only_once_the_receiver_has_bound(make_settings: Any, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import socket

    from maildesk.adapters.database import upgrade

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    squatter = socket.socket()  # the port is taken: the receiver cannot bind yet
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    settings = make_settings(smtp={"listen": [f"127.0.0.1:{port}"]}, maildesk={"ingest_workers": 1},
                             outgoing={"transport": "smtp", "host": "relay.test", "port": 587,
                                       "security": "starttls", "user": "desk", "password": "pw"},
                             database={"url": f"sqlite:///{tmp_path / 'md.db'}"})
    upgrade(settings.database_url)

    def received() -> list[str]:
        messages = []
        while True:
            try:
                messages.append(notify.recv(4096).decode())
            except BlockingIOError:
                return messages

    async def body(stop: Any) -> None:
        for _ in range(200):  # until the receiver has tried to bind and failed
            if any(r.getMessage().startswith("smtp failed") for r in caplog.records):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the receiver never tried the taken port")
        assert "READY=1" not in received(), "not ready while SMTP cannot listen"
        squatter.close()  # the receiver's next retry binds
        for _ in range(150):
            if "READY=1" in received():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no READY=1 after the port was freed")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"220 ")
        writer.close()

    with caplog.at_level("INFO", logger="maildesk.serve"):
        _serve_in_process(settings, body)
    notify.close()
    log = "\n".join(r.getMessage() for r in caplog.records if r.name == "maildesk.serve")
    assert f"smtp: listening on 127.0.0.1:{port}, mode behind-relay, desks {DESK}" in log
    assert "outgoing: relay relay.test:587 security starttls, user desk" in log and "pw" not in log.split("user desk")[1]
    assert "imap: no accounts" in log and "http: off" in log
    assert f"database: sqlite:///{tmp_path / 'md.db'}" in log
    assert log.index("smtp: bound to") < log.index("maildesk ready")


def test_summary_hides_the_database_password() -> None:
    from maildesk.config import parse_settings
    from maildesk.daemon import startup_summary

    settings = parse_settings({"desks": [{"address": DESK}], "database": {"url": "postgresql+psycopg://md:s3cret@db.local/md"},
                               "imap": [{"name": "main", "host": "mail.sev.gov.ru", "user": "help", "folder": "INBOX"}]})
    lines = startup_summary(settings, {"smtp": None, "imap": None})  # type: ignore[dict-item]
    assert "database: postgresql+psycopg://md:***@db.local/md" in lines
    assert "imap main: help@mail.sev.gov.ru:993 (ssl), folder 'INBOX' → 'maildesk/processed', desk by To:" in lines
    assert not any("s3cret" in line for line in lines)


def _subject(app: Any) -> str:
    from maildesk.adapters.templates import sample_context

    return app.composer.renderer.render("ticket_created", sample_context("ticket_created")).subject


def test_sighup_checks_templates_before_using_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from maildesk.bootstrap import build
    from maildesk.config import load
    from maildesk.daemon import reload

    overrides = tmp_path / "overrides"
    overrides.mkdir()
    config = write_config(tmp_path, maildesk={"data_dir": str(tmp_path / "data"), "secret": "s",
                                              "templates_dir": str(overrides)})
    app = build(load(config))
    try:
        assert reload(app, str(config)) and app.renderer is app.composer.renderer
        shipped = _subject(app)
        subject = overrides / "ticket_created.subject.j2"
        subject.write_text("{{ ticket.tag }} Принята: {{ ticket.subject }}\n", encoding="utf-8")
        assert _subject(app) == shipped, "an edit on disk waits for SIGHUP"
        assert reload(app, str(config))
        accepted = _subject(app)
        assert "Принята:" in accepted

        for broken in ("{{ ticket.no_such_key }}\n", "{% if ticket %}never closed\n"):
            subject.write_text(broken, encoding="utf-8")
            caplog.clear()
            with caplog.at_level("ERROR", logger="maildesk.serve"):
                assert reload(app, str(config)) is False
            assert "reload refused, keeping the running templates" in caplog.text
            assert "ticket_created.subject.j2" in caplog.text
            assert _subject(app) == accepted, "the running templates stay, unchanged by the file on disk"

        subject.write_text("{{ ticket.tag }} Снова: {{ ticket.subject }}\n", encoding="utf-8")
        assert reload(app, str(config)) and "Снова:" in _subject(app)
    finally:
        app.close()


def test_sighup_names_settings_that_need_a_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from maildesk.bootstrap import build
    from maildesk.config import load
    from maildesk.daemon import reload

    data = {"data_dir": str(tmp_path / "data"), "secret": "s"}
    config = write_config(tmp_path, maildesk=data)
    app = build(load(config))
    try:
        write_config(tmp_path, maildesk=data, smtp={"listen": ["127.0.0.1:2626"]}, sla={"acceptance_hours": 4.0},
                     calendar={"end": "16:00"})
        with caplog.at_level("INFO", logger="maildesk.serve"):
            assert reload(app, str(config))
        assert "changed settings that need a restart to apply: smtp.listen" in caplog.text
        assert "sla.acceptance_hours" not in caplog.text.split("restart to apply:")[1]
        assert app.work.policy.acceptance_hours == 4.0 and app.composer.acceptance_hours == 4.0
    finally:
        app.close()
