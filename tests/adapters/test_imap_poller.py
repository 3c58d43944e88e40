"""The IMAP poller against a real server: pymap on loopback, or Dovecot when MAILDESK_TEST_IMAP is set."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

from maildesk.adapters.db_models import Lease, QuarantineEntry, Ticket
from maildesk.adapters.imap_lease import MailboxLease, pid_scope
from maildesk.adapters.imap_mailbox import batches
from maildesk.adapters.imap_poller import ImapPoller, check_accounts, lease_name, poll_once, start_pollers
from maildesk.config import ConfigError
from maildesk.service.ports import StoreUnavailable
from tests.imapserver import ImapServer, self_signed_certificate, start_pymap, start_server, unique_prefix, wait_until
from tests.mailmaker import make_mail

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[ImapServer]:
    imap = start_server()
    yield imap
    imap.stop()


@pytest.fixture
def box(server: ImapServer) -> Mailbox:
    return Mailbox(server, unique_prefix())


class Mailbox:
    """One test's folders on the shared server: <prefix>/inbox, /processed, /quarantine."""

    def __init__(self, server: ImapServer, prefix: str) -> None:
        self.server, self.prefix = server, prefix
        self.inbox, self.processed, self.quarantine = (f"{prefix}/{n}" for n in ("inbox", "processed", "quarantine"))
        server.create(self.inbox)

    def account(self, name: str = "help", **extra: Any) -> dict[str, Any]:
        return self.server.account(name, self.prefix, **extra)

    def counts(self) -> tuple[int, int, int]:
        """Messages not flagged \\Deleted in inbox, processed and quarantine."""
        inbox, processed, quarantine = (self.server.count(f) for f in (self.inbox, self.processed, self.quarantine))
        return inbox, processed, quarantine


def rows(app: Any, table: type) -> int:
    with app.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def mails(n: int, tag: str = "") -> list[bytes]:
    return [make_mail(subject=f"Не печатает принтер в кабинете {i} {tag}".rstrip())
            for i in range(n)]


def poller(app: Any, name: str = "help", deps: Any = None, owner: str | None = None) -> ImapPoller:
    found = ImapPoller.from_app(app, next(a for a in app.settings.imap if a.name == name), owner)
    if deps is not None:
        found.deps = deps
    return found


def report_of(result: dict[str, Any], name: str = "help") -> dict[str, Any]:
    return next(r for r in result["accounts"] if r["account"] == name)


class ExplodingStore:
    """The real store, except that it breaks on messages whose Message-ID contains `marker`."""

    def __init__(self, store: Any, marker: str) -> None:
        self.store, self.marker = store, marker

    def context(self, triage: Any) -> Any:
        if self.marker in (triage.mail.message_id or ""):
            raise RuntimeError("index out of range in a store bug")
        return self.store.context(triage)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class Crash(BaseException):
    """The process dies at this point (kill -9): nothing after it runs."""


def test_backlog_of_twenty_becomes_twenty_tickets(make_app: Callable[..., Any], box: Mailbox) -> None:
    backlog = mails(20)
    box.server.append(box.inbox, backlog[:1], flags=[b"\\Seen"])  # read by a person: changes nothing
    box.server.append(box.inbox, backlog[1:])
    app = make_app(imap=[box.account()])

    result = poll_once(app)

    report = report_of(result)
    assert result["ok"] and report["outcomes"] == {"created": 20} and report["to_processed"] == 20
    assert rows(app, Ticket) == 20
    assert box.counts() == (0, 20, 0)
    moved = box.server.messages(box.processed)
    assert sum(b"\\Seen" in m["flags"] for m in moved) == 1  # fetched with PEEK: nobody else marked read
    assert sorted(m["raw"] for m in moved) == sorted(backlog)
    assert poll_once(app)["accounts"][0]["fetched"] == 0


@pytest.mark.parametrize("method", ["move", "copy-expunge", "copy-flag"])
def test_each_move_method_moves_once_and_spares_others_deleted_mail(
        make_app: Callable[..., Any], box: Mailbox, method: str) -> None:
    box.server.append(box.inbox, mails(2, method))
    box.server.append(box.inbox, mails(1, "удалено коллегой"), flags=[b"\\Deleted"])
    app = make_app(imap=[box.account(move_method=method)])

    assert report_of(poll_once(app))["to_processed"] == 2
    assert report_of(poll_once(app))["fetched"] == 0  # nothing taken twice, whatever the method

    left = box.server.messages(box.inbox)
    ours = [m for m in left if b"$MaildeskDone" in m["flags"] or b"\\Deleted" in m["flags"]]
    assert len(left) == (3 if method == "copy-flag" else 1)  # a colleague's \Deleted mail is never expunged
    assert len(ours) == len(left) and all(b"\\Deleted" in m["flags"] for m in ours)
    assert box.server.count(box.processed) == 2 and rows(app, Ticket) == 2


def test_refused_sender_lands_in_the_quarantine_folder(make_app: Callable[..., Any], box: Mailbox) -> None:
    box.server.append(box.inbox, [make_mail(sender="boss@evil.example", sender_name="Начальник")])
    box.server.append(box.inbox, mails(1))
    app = make_app(imap=[box.account()])

    report = report_of(poll_once(app))

    assert report["outcomes"] == {"quarantined": 1, "created": 1}
    assert box.counts() == (0, 1, 1)
    assert rows(app, QuarantineEntry) == 1 and rows(app, Ticket) == 1


def test_mail_over_the_smtp_cap_goes_to_quarantine_unread_and_the_rest_flows(
        make_app: Callable[..., Any], box: Mailbox, caplog: pytest.LogCaptureFixture) -> None:
    scan = ("journal.pdf", "application/pdf", os.urandom(60_000))
    huge = make_mail(subject="Скан журнала", attachments=[scan])
    box.server.append(box.inbox, mails(1, "до"))
    box.server.append(box.inbox, [huge])
    box.server.append(box.inbox, mails(1, "после"))
    app = make_app(imap=[box.account()], smtp={"max_message_size": 50_000})

    report = report_of(poll_once(app))

    assert report["ok"] and report["outcomes"] == {"created": 2} and report["fetched"] == 2
    assert (report["too_large"], report["to_quarantine"], report["to_processed"]) == (1, 1, 2)
    assert box.counts() == (0, 2, 1)
    [kept] = box.server.messages(box.quarantine)
    assert kept["raw"] == huge and b"\\Seen" not in kept["flags"]  # set aside as it came, unread
    assert rows(app, Ticket) == 2 and rows(app, QuarantineEntry) == 0  # never reached the pipeline
    [alert] = [r for r in caplog.records if getattr(r, "alert", None) == "imap_message_too_large"]
    assert alert.levelno == logging.ERROR and alert.account == "help" and alert.size > 50_000
    assert f"UID {alert.uid}" in alert.getMessage() and str(alert.size) in alert.getMessage()


def test_bodies_are_fetched_in_windows_bounded_by_count_and_bytes() -> None:
    assert list(batches([(1, 10), (2, 10), (3, 25), (4, 5), (5, 40), (6, 1)], 3, 30)) == [[1, 2], [3, 4], [5], [6]]
    assert list(batches([(uid, 1) for uid in range(1, 8)], 3, 30)) == [[1, 2, 3], [4, 5, 6], [7]]
    assert list(batches([], 3, 30)) == []


def test_a_message_that_breaks_ingest_is_retried_then_set_aside(
        make_app: Callable[..., Any], box: Mailbox, caplog: pytest.LogCaptureFixture) -> None:
    box.server.append(box.inbox, [make_mail(message_id="poison-1@gb1.sev.gov.ru")] + mails(2))
    app = make_app(imap=[box.account(max_attempts=2)])
    deps = dataclasses.replace(app.deps, store=ExplodingStore(app.store, "poison"))

    first = poller(app, deps=deps).poll_once()
    assert (first.failed, first.to_processed, first.gave_up) == (1, 2, 0)  # the rest keeps flowing
    assert box.counts() == (1, 2, 0)
    assert b"\\Seen" not in box.server.messages(box.inbox)[0]["flags"]

    second = poller(app, deps=deps).poll_once()  # a new poller: the count lives in the database

    assert (second.failed, second.gave_up, second.to_quarantine) == (0, 1, 1)
    assert box.counts() == (0, 2, 1)
    alerts = [r for r in caplog.records if getattr(r, "alert", None) == "imap_message_failed"]
    assert len(alerts) == 1 and alerts[0].levelno == logging.ERROR and "RuntimeError" in caplog.text


def test_store_down_stops_the_pass_and_leaves_everything(make_app: Callable[..., Any], box: Mailbox) -> None:
    class DownStore(ExplodingStore):
        def processed(self, key: str) -> Any:
            raise StoreUnavailable("database is locked")

    box.server.append(box.inbox, mails(3))
    app = make_app(imap=[box.account(max_attempts=1)])
    report = poller(app, deps=dataclasses.replace(app.deps, store=DownStore(app.store, ""))).poll_once()

    # the window was fetched in one round trip; none was counted, moved or given up
    assert report.temporary_failure and not report.ok and (report.fetched, report.gave_up) == (3, 0)
    assert box.counts() == (3, 0, 0)
    assert report_of(poll_once(app))["to_processed"] == 3  # the store is back: nothing was lost or counted


def test_uidvalidity_change_rescans_without_duplicates(make_app: Callable[..., Any], box: Mailbox) -> None:
    first, second, new = mails(3, "UIDVALIDITY")
    box.server.append(box.inbox, [first, second])
    app = make_app(imap=[box.account()])
    assert report_of(poll_once(app))["outcomes"] == {"created": 2}
    old = box.server.uidvalidity(box.inbox)

    box.server.delete(box.inbox)  # the server rebuilt the mailbox: every UID is new
    box.server.create(box.inbox)
    box.server.append(box.inbox, [first, second, new])
    assert box.server.uidvalidity(box.inbox) != old

    report = report_of(poll_once(app))

    assert report["outcomes"] == {"duplicate": 2, "created": 1} and report["uidvalidity"] != old
    assert rows(app, Ticket) == 3
    assert box.counts() == (0, 5, 0)
    with app.engine.connect() as conn:
        state = conn.execute(sa.select(Lease.state).where(Lease.name == f"imap:help:{box.inbox}")).scalar_one()
    assert state["uidvalidity"] == report["uidvalidity"]


def test_crash_between_commit_and_move_gives_one_ticket(make_app: Callable[..., Any], box: Mailbox) -> None:
    box.server.append(box.inbox, mails(1, "сбой"))
    app = make_app(imap=[box.account()])

    def die(*_: Any) -> None:
        raise Crash()

    with pytest.raises(Crash):
        poller(app, deps=dataclasses.replace(app.deps, on_result=die)).poll_once()
    assert rows(app, Ticket) == 1 and box.counts() == (1, 0, 0)  # committed, not moved

    report = report_of(poll_once(app))  # the restarted poller

    assert report["outcomes"] == {"duplicate": 1}
    assert rows(app, Ticket) == 1 and box.counts() == (0, 1, 0)


def test_mail_appended_while_idling_is_taken_within_seconds(
        make_app: Callable[..., Any], server: ImapServer) -> None:
    boxes = [Mailbox(server, unique_prefix()) for _ in range(2)]
    app = make_app(imap=[b.account(f"desk{i}") for i, b in enumerate(boxes)])
    group = start_pollers(app)
    try:
        wait_until(lambda: all(p.phase == "idle" for p in group.pollers), 15, "both pollers idling")
        for i, b in enumerate(boxes):  # two requesters: one new contact per account
            b.server.append(b.inbox, [make_mail(sender=f"user{i}@gb{i}.sev.gov.ru", subject=b.prefix)])
        wait_until(lambda: rows(app, Ticket) == 2, 10, "two tickets")
        wait_until(lambda: all(b.counts() == (0, 1, 0) for b in boxes), 5, "both moved")
    finally:
        started = time.monotonic()
        group.stop()
    assert time.monotonic() - started < 5 and not any(t.is_alive() for t in group.threads)
    assert all(p.phase == "stopped" for p in group.pollers)


def test_serve_component_feeds_the_lag_metric_and_stops(make_app: Callable[..., Any], box: Mailbox) -> None:
    from maildesk.adapters.http_status import metrics_for
    from maildesk.adapters.imap_poller import run_pollers

    app = make_app(imap=[box.account()])
    box.server.append(box.inbox, mails(1, "serve"))

    async def serve_until_moved() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(run_pollers(app, stop))
        while box.counts() != (0, 1, 0) and not task.done():
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.1)  # one more round for the metrics
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, 10)
        return time.monotonic() - started

    assert asyncio.run(asyncio.wait_for(serve_until_moved(), 30)) < 5
    assert 'maildesk_imap_lag_seconds{account="help"}' in metrics_for(app).render()


def test_poller_reconnects_after_a_server_restart(make_app: Callable[..., Any]) -> None:
    own = start_pymap()  # restarted below: never the shared server
    try:
        prefix = unique_prefix()
        app = make_app(imap=[own.account("help", prefix, folder="INBOX")])
        group = start_pollers(app)
        try:
            wait_until(lambda: group.pollers[0].phase == "idle", 15, "poller idling")
            own.restart()  # the dict backend starts empty: the poller must create its folders again
            own.append("INBOX", mails(1, "после перезапуска"))
            wait_until(lambda: rows(app, Ticket) == 1, 20, "a ticket after the restart")
            wait_until(lambda: own.count(f"{prefix}/processed") == 1, 5, "the message moved")
        finally:
            group.stop()
    finally:
        own.stop()


def test_login_failure_is_logged_and_retried(make_app: Callable[..., Any], box: Mailbox,
                                             caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(imap=[box.account(password="wrong")])
    stop = threading.Event()
    worker = poller(app)
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: sum("login as" in r.getMessage() for r in caplog.records) >= 2, 10, "two login attempts")
        assert thread.is_alive()
        assert worker.trouble.startswith("LoginError"), "what /health reports for this account"
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert rows(app, Lease) == 1 and MailboxLease(app.engine, worker.lease.name).holder() is None  # released


def test_a_leased_mailbox_is_left_to_its_holder(make_app: Callable[..., Any], box: Mailbox) -> None:
    box.server.append(box.inbox, mails(1))
    app = make_app(imap=[box.account()])
    other = MailboxLease(app.engine, lease_name(app.settings.imap[0]), owner="other-host:4242:abc")
    assert other.claim()

    report = report_of(poll_once(app))
    assert report["skipped"] == "leased to other-host:4242:abc" and box.counts() == (1, 0, 0)

    other.release()
    assert report_of(poll_once(app))["to_processed"] == 1


# holds a lease as a running maildesk would, until it is killed
HOLDER = """
import sys
from maildesk.adapters.database import make_engine
from maildesk.adapters.imap_lease import MailboxLease
print(MailboxLease(make_engine(sys.argv[1]), sys.argv[2]).claim(), flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not pid_scope(), reason="needs /proc to tell which processes are alive")
def test_a_mailbox_held_by_a_killed_instance_is_taken_at_once(make_app: Callable[..., Any], box: Mailbox) -> None:
    box.server.append(box.inbox, mails(1, "после kill -9"))
    app = make_app(imap=[box.account()])
    command = [sys.executable, "-c", HOLDER, app.settings.database_url, lease_name(app.settings.imap[0])]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as holder:
        try:
            assert select.select([holder.stdout], [], [], 30)[0] and holder.stdout.readline() == b"True\n"
            skipped = report_of(poll_once(app))["skipped"]  # a live instance on this host: left alone
            assert skipped.startswith("leased to ") and skipped.split(":")[1] == str(holder.pid)
            assert box.counts() == (1, 0, 0)
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)

    report = report_of(poll_once(app))  # the restarted instance, long before the 120 s term ends

    assert report["skipped"] is None and report["to_processed"] == 1 and box.counts() == (0, 1, 0)


@pytest.mark.skipif(not pid_scope(), reason="needs /proc to tell which processes are alive")
def test_only_a_dead_holder_of_this_host_loses_its_lease(app: Any) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait(30)
    here = MailboxLease(app.engine, "imap:x:INBOX", f"{os.uname().nodename}:{finished.pid}:{pid_scope()}:dead01")
    assert here.claim()
    assert MailboxLease(app.engine, "imap:x:INBOX").claim()  # its pid is gone here: taken at once

    # the same hostname and pid on another machine (or container) says nothing about that process
    elsewhere = MailboxLease(app.engine, "imap:y:INBOX", f"{os.uname().nodename}:{finished.pid}:0000beef:dead02")
    assert elsewhere.claim()
    assert not MailboxLease(app.engine, "imap:y:INBOX").claim()
    live = MailboxLease(app.engine, "imap:z:INBOX")  # this very process: alive
    assert live.claim() and not MailboxLease(app.engine, "imap:z:INBOX").claim()


def test_lease_expires_and_changes_hands(app: Any) -> None:
    now = [datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)]
    first, second = (MailboxLease(app.engine, "imap:x:INBOX", owner, timedelta(seconds=60), lambda: now[0])
                     for owner in ("a", "b"))
    assert first.claim() and not second.claim()
    assert first.save_state({"uidvalidity": 7}) and second.state() == {"uidvalidity": 7}
    now[0] += timedelta(seconds=40)
    assert first.keep() and not second.claim()  # renewed after half its term
    now[0] += timedelta(seconds=61)
    assert second.claim()  # the first went silent past its term
    assert not first.keep() and not first.save_state({}) and second.state() == {"uidvalidity": 7}
    first.release()
    assert second.holder() == {"owner": "b", "until": (now[0] + timedelta(seconds=60)).isoformat()}


def test_check_accounts_reports_folders_without_changing_them(make_app: Callable[..., Any], box: Mailbox) -> None:
    box.server.append(box.inbox, mails(2))
    app = make_app(imap=[box.account(), box.account("bad", password="wrong")])

    good, bad = check_accounts(app)

    assert good["ok"] and good["error"] is None and good["lease"] is None
    assert good["folders"]["folder"]["messages"] == 2 and good["folders"]["folder"]["unseen"] == 2
    assert good["folders"]["processed_folder"]["exists"] is False  # created by the poller, not by check
    assert "IDLE" in good["capabilities"] and good["move_method"] in ("move", "copy-expunge")
    assert not bad["ok"] and "LoginError" in bad["error"]
    assert box.counts() == (2, 0, 0)


def test_unverified_certificates_are_warned_about_on_every_connect(
        make_app: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    own = start_pymap(tls=self_signed_certificate(tmp_path))
    try:
        prefix = unique_prefix()
        lax, strict = (own.account(name, prefix, folder="INBOX", security="starttls", verify_certificates=verify)
                       for name, verify in (("lax", False), ("strict", True)))
        own.append("INBOX", mails(1, "TLS"))
        app = make_app(imap=[lax, strict])

        first = poll_once(app)
        assert report_of(first, "lax")["to_processed"] == 1
        assert "CERTIFICATE_VERIFY_FAILED" in report_of(first, "strict")["error"]  # verified by default
        poll_once(app)
        checked = {r["account"]: r for r in check_accounts(app)}
    finally:
        own.stop()

    assert checked["lax"]["ok"] and checked["lax"]["verify_certificates"] is False
    assert checked["strict"]["verify_certificates"] is True
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "NOT verified" in r.getMessage()]
    assert len(warnings) == 3 and all(w.startswith("IMAP lax: ") for w in warnings)  # two polls and the check


def test_plaintext_only_on_loopback(make_settings: Callable[..., Any]) -> None:
    account = {"name": "main", "host": "mail.sev.gov.ru", "user": "help", "security": "none"}
    with pytest.raises(ConfigError, match="imap.security: 'none'"):
        make_settings(imap=[account])
    assert make_settings(imap=[{**account, "host": "::1"}]).imap[0].security == "none"
