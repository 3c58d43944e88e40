"""Two `maildesk serve` processes on one PostgreSQL and one IMAP mailbox: nothing done twice."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from tests.conftest import DESK, _fresh_pg_database
from tests.imapserver import ImapServer, free_port, start_server, unique_prefix, wait_until
from tests.test_cli import maildesk, write_config
from tests.test_daemon import Daemon, burst, send

pytestmark = pytest.mark.slow


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Daemon, Daemon, sa.Engine, ImapServer, str]]:
    imap = start_server()
    prefix = unique_prefix()
    imap.create(f"{prefix}/inbox")
    url = _fresh_pg_database()
    daemons = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        smtp, http = free_port(), free_port()
        config = write_config(folder, database={"url": url}, outgoing={"auto_cap_per_day": 1000}, smtp={"listen": [f"127.0.0.1:{smtp}"]},
                              http={"listen": f"127.0.0.1:{http}"},
                              imap=[imap.account("help", prefix, desk=DESK, poll_seconds=1)])
        daemons.append(Daemon(config, smtp, http))
    maildesk(daemons[0].config, "db", "upgrade")
    engine = sa.create_engine(url)
    yield daemons[0], daemons[1], engine, imap, f"{prefix}/inbox"
    for d in daemons:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
    engine.dispose()
    imap.stop()


def test_two_daemons_share_the_work_without_doubles(pair: tuple[Daemon, Daemon, sa.Engine, ImapServer, str]) -> None:
    a, b, engine, imap, inbox = pair
    # tickets whose stale close is already due when both schedulers start
    maildesk(a.config, "ingest", *[], stdin=burst(1, "stale")[0])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE tickets SET status = 'feedback', waiting_since = now() - interval '30 days', "
                             "stale_close_at = now() - interval '1 day', remind_at = now() - interval '3 days', "
                             "reminded_at = now()"))
    a.start()
    b.start()
    imap.append(inbox, burst(20, "imap"))
    acked: list[bytes] = []
    senders = [threading.Thread(target=send, args=(d.smtp_port, burst(25, f"smtp{d.smtp_port}"), acked))
               for d in (a, b)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(180)
    assert len(acked) == 50

    def count(sql: str) -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()

    wait_until(lambda: count("SELECT count(*) FROM messages WHERE direction = 'in'") == 71, timeout=120,
               what="all mail stored")
    wait_until(lambda: count("SELECT count(*) FROM outbox WHERE state <> 'sent'") == 0, timeout=120,
               what="all notifications sent")
    assert count("SELECT count(DISTINCT message_id) FROM messages WHERE direction = 'in'") == 71
    assert count("SELECT count(*) FROM events WHERE action = 'auto_closed'") == 1, "one close, by one instance"
    assert count("SELECT count(*) FROM outbox WHERE event = 'closed'") == 1, "one notification of it"
    rows = count("SELECT count(*) FROM outbox")
    files = [p for d in (a, b) for p in (d.config.parent / "data" / "outgoing").glob("*.eml")]
    assert len(files) == rows, "every notification written once, by one of the two"
    assert imap.count(inbox) == 0
    for d in (a, b):
        assert d.signal(15) == 0
