"""`maildesk serve` as admins run it: a real subprocess with SMTP, IMAP, outbox, scheduler and health."""

from __future__ import annotations

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
        sent = conn.execute("SELECT count(*), count(DISTINCT message_id) FROM outbox").fetchone()
    assert sent[0] == sent[1] == 80, "two notifications per message, none doubled"


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
