"""The IMAP poller: fetch by UID, hand each message to ingest(), move it out only after its commit."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from maildesk.adapters.imap_lease import MailboxLease
from maildesk.adapters.imap_mailbox import (
    IDLE_SLICE, WAITING, Mailbox, batches, check_account, close, connect, expunge_leftovers, open_mailbox, sizes_of,
    transfer, wait_for_mail,
)
from maildesk.config import ImapAccount, Settings
from maildesk.core.model import Envelope, Outcome
from maildesk.service.ingest import Deps, TemporaryFailure, ingest
from maildesk.service.ports import IngestResult

log = logging.getLogger("maildesk.imap")

Submit = Callable[[bytes, Envelope], Future]

WINDOW = 16  # messages fetched at once (two windows in flight): enough to keep the pipeline busy
WINDOW_BYTES = 32 * 1024 * 1024  # announced size of one window's bodies: memory stays bounded with large mail
IDLE_RENEW = 25 * 60  # RFC 2177: a server may end an IDLE after 30 minutes
BACKOFF_MAX = 60.0
LAG_REPORT_SECONDS = 5.0  # how often the daemon's metrics learn each account's lag


def lease_name(account: ImapAccount) -> str:
    return f"imap:{account.name}:{account.folder}"


class LeaseLost(Exception):
    """Another instance took the mailbox over: stop touching it."""


@dataclass
class Report:
    """What one pass over a mailbox did; `poll_once` and the logs show it."""

    account: str
    folder: str = ""
    uidvalidity: int | None = None
    fetched: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    to_processed: int = 0
    to_quarantine: int = 0
    failed: int = 0  # ingest raised; the message stays for the next pass
    gave_up: int = 0  # failed max_attempts times: moved to the quarantine folder
    too_large: int = 0  # over smtp.max_message_size: moved to the quarantine folder unread
    temporary_failure: bool = False  # the store was down: this pass stopped, nothing moved
    skipped: str | None = None  # the mailbox is leased to another instance
    error: str | None = None  # connection, login or server error

    @property
    def ok(self) -> bool:
        return not (self.temporary_failure or self.error)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def goes_to_quarantine(result: IngestResult) -> bool:
    if result.outcome is Outcome.QUARANTINED:
        return True
    # seen before (a crash between commit and move): follow where it went the first time
    return result.outcome is Outcome.DUPLICATE and result.ticket is None and result.quarantine is not None


class ImapPoller:
    """One mailbox: a pass hands every waiting message to ingest(); `run` repeats it until stopped."""

    def __init__(self, account: ImapAccount, settings: Settings, deps: Deps, lease: MailboxLease,
                 submit: Submit | None = None) -> None:
        self.account, self.settings, self.deps, self.lease = account, settings, deps, lease
        self.submit = submit or self._ingest_now
        self.envelope = Envelope(f"imap:{account.name}", rcpt_tos=(account.desk,) if account.desk else ())
        self.phase = "starting"  # starting, draining, idle, waiting, backoff, stopped: for tests and check
        self.idle_slice = IDLE_SLICE
        self.last_pass = time.monotonic()  # when a pass last finished (or the poller started)
        self.trouble = ""  # why the last connection or pass failed; "" once a pass has gone through (health)

    def lag(self) -> float:
        """Seconds since the last finished pass: about poll_seconds at most while all is well."""
        return time.monotonic() - self.last_pass

    def _ingest_now(self, raw: bytes, envelope: Envelope) -> Future:
        done: Future = Future()
        try:
            done.set_result(ingest(raw, envelope, self.deps))
        except BaseException as exc:  # handed back through the future, as the pipeline does
            done.set_exception(exc)
        return done

    @classmethod
    def from_app(cls, app: Any, account: ImapAccount, owner: str | None = None) -> ImapPoller:
        lease = MailboxLease(app.engine, lease_name(account), owner)
        pipeline = getattr(app, "pipeline", None)  # the daemon's shared pipeline, when serving
        return cls(account, app.settings, app.deps, lease, pipeline.submit if pipeline is not None else None)

    def poll_once(self, stop: threading.Event | None = None) -> Report:
        """Claim the mailbox, drain it once, release it; errors end up in the report."""
        report = Report(self.account.name, self.account.folder)
        try:
            if not self.lease.claim():
                report.skipped = f"leased to {(self.lease.holder() or {}).get('owner', 'another instance')}"
                return report
            try:
                client = connect(self.account, self.settings)
                try:
                    return self.drain(client, open_mailbox(client, self.account), stop or threading.Event())
                finally:
                    close(client)
            finally:
                self.lease.release()
        except Exception as exc:  # the report says what went wrong; the caller decides the exit code
            log.error("IMAP %s: poll failed: %s", self.account.name, exc)
            report.error = f"{type(exc).__name__}: {exc}"
            return report

    def drain(self, client: IMAPClient, box: Mailbox, stop: threading.Event) -> Report:
        """One pass: every waiting message to ingest(), then out of the folder after its commit.

        Sizes come first (RFC822.SIZE): mail over the SMTP cap is set aside unread, the rest is
        fetched in windows bounded in count and announced bytes.
        """
        self.phase = "draining"
        selected = client.select_folder(box.folder)
        report = Report(self.account.name, box.folder, int(selected[b"UIDVALIDITY"]))
        state = self._state(report.uidvalidity)
        expunge_leftovers(client, box)
        sized = sorted(sizes_of(client, sorted(client.search(WAITING))).items())
        cap = self.settings.smtp.max_message_size  # the limit SMTP enforces, so both doors take the same mail
        for uid, size in sized:
            if size > cap and not stop.is_set():
                self._set_aside_too_large(client, box, report, uid, size)
        # two windows in flight: the next one parses while the last one's messages are moved
        in_flight: deque[list[tuple[int, Future]]] = deque()
        for window in batches([(uid, size) for uid, size in sized if size <= cap], WINDOW, WINDOW_BYTES):
            if stop.is_set() or report.temporary_failure:
                break
            self._keep_lease()
            # one round trip fetches the window; PEEK leaves \Seen as it was
            bodies = client.fetch(window, ["BODY.PEEK[]"])
            in_flight.append([(uid, self.submit(bodies[uid][b"BODY[]"], self.envelope))
                              for uid in window if b"BODY[]" in bodies.get(uid, {})])  # absent: expunged meanwhile
            if len(in_flight) > 1:
                self._finish_window(client, box, state, report, in_flight.popleft())
        while in_flight:
            self._finish_window(client, box, state, report, in_flight.popleft())
        if report.fetched:
            log.info("IMAP %s: %s", self.account.name, report.as_dict())
        if report.temporary_failure:
            self.trouble = "store unavailable: messages stay in the mailbox"
        else:
            self.last_pass, self.trouble = time.monotonic(), ""
        return report

    def _set_aside_too_large(self, client: IMAPClient, box: Mailbox, report: Report, uid: int, size: int) -> None:
        """Past the cap SMTP enforces: to the quarantine folder without reading it (no ticket, no entry)."""
        self._keep_lease()
        log.error("ALERT IMAP %s: message UID %s in %s is %d bytes, over smtp.max_message_size (%d): moved unread "
                  "to %s, no ticket and no quarantine entry", self.account.name, uid, box.folder, size,
                  self.settings.smtp.max_message_size, box.quarantine,
                  extra={"alert": "imap_message_too_large", "account": self.account.name, "uid": uid, "size": size})
        transfer(client, [uid], box.quarantine, box.method)
        report.too_large += 1
        report.to_quarantine += 1

    def _finish_window(self, client: IMAPClient, box: Mailbox, state: dict[str, Any], report: Report,
                       submitted: list[tuple[int, Future]]) -> None:
        """Wait for a window's commits, then move its messages out, one command per folder."""
        targets: dict[str, list[int]] = {box.processed: [], box.quarantine: []}
        for uid, future in submitted:
            report.fetched += 1
            target = self._finish(box, state, report, uid, future)
            if target is not None:
                targets[target].append(uid)
        for target, uids in targets.items():
            transfer(client, uids, target, box.method)

    def _finish(self, box: Mailbox, state: dict[str, Any], report: Report, uid: int, future: Future) -> str | None:
        """Where one message goes once its commit is known; None (it stays) when the store is down."""
        try:
            result = future.result()
        except TemporaryFailure as exc:
            if not report.temporary_failure:
                log.warning("IMAP %s: store unavailable, messages stay in %s: %s", self.account.name, box.folder, exc)
            report.temporary_failure = True
            return None
        except Exception:
            if self._give_up(uid, state, report):
                report.to_quarantine += 1
                return box.quarantine
            return None
        self._forget(uid, state)
        report.outcomes[result.outcome.value] = report.outcomes.get(result.outcome.value, 0) + 1
        to_quarantine = goes_to_quarantine(result)
        report.to_quarantine += to_quarantine
        report.to_processed += not to_quarantine
        return box.quarantine if to_quarantine else box.processed

    def _state(self, uidvalidity: int) -> dict[str, Any]:
        """Attempt counters for this UIDVALIDITY; a new one makes old UIDs meaningless."""
        state = self.lease.state()
        if state.get("uidvalidity") != uidvalidity:
            if "uidvalidity" in state:
                log.warning("IMAP %s: UIDVALIDITY of %s changed (%s → %s): rescanning; seen mail is recognised "
                            "by its key", self.account.name, self.account.folder, state["uidvalidity"], uidvalidity)
            state = {"uidvalidity": uidvalidity, "attempts": {}}
            self._save(state)
        return state

    def _give_up(self, uid: int, state: dict[str, Any], report: Report) -> bool:
        """Count a failure of one message; True when it has failed max_attempts times."""
        attempts = state["attempts"].get(str(uid), 0) + 1
        limit = self.account.max_attempts
        if attempts < limit:
            log.warning("IMAP %s: message UID %s failed (attempt %d of %d); retried on the next pass",
                        self.account.name, uid, attempts, limit, exc_info=True)
            state["attempts"][str(uid)] = attempts
            self._save(state)
            report.failed += 1
            return False
        log.error("ALERT IMAP %s: message UID %s failed %d times; moved to %s for an admin to look at",
                  self.account.name, uid, attempts, self.account.quarantine_folder, exc_info=True,
                  extra={"alert": "imap_message_failed", "account": self.account.name, "uid": uid})
        self._forget(uid, state)
        report.gave_up += 1
        return True

    def _forget(self, uid: int, state: dict[str, Any]) -> None:
        if state["attempts"].pop(str(uid), None) is not None:
            self._save(state)

    def _save(self, state: dict[str, Any]) -> None:
        if not self.lease.save_state(state):
            raise LeaseLost(self.lease.name)

    def _keep_lease(self) -> None:
        if not self.lease.keep():
            raise LeaseLost(self.lease.name)

    def run(self, stop: threading.Event) -> None:
        """Drain, wait for mail (IDLE or a pause), repeat; reconnect with backoff; return only on stop."""
        delay = 1.0
        while not stop.is_set():
            started = time.monotonic()
            try:
                if not self._session(stop):
                    self.phase = "waiting"  # leased to another instance
                    stop.wait(self.account.poll_seconds)
            except Exception as exc:
                self.trouble = f"{type(exc).__name__}: {exc}"[:300]
                if self.last_pass > started:
                    delay = 1.0  # the connection worked for a while: back off from the start again
                self._log_failure(exc, delay)
                self.phase = "backoff"
                stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        self.phase = "stopped"

    def _log_failure(self, exc: Exception, delay: float) -> None:
        name = self.account.name
        if isinstance(exc, LoginError):
            log.error("IMAP %s: login as %s at %s failed: %s; retrying in %.0f s", name, self.account.user,
                      self.account.host, exc, delay)
        elif isinstance(exc, LeaseLost):
            log.warning("IMAP %s: lease %s taken over by another instance", name, exc)
        elif isinstance(exc, (IMAPClientError, OSError)):
            log.warning("IMAP %s: %s: %s; reconnecting in %.0f s", name, self.account.host, exc, delay)
        else:
            log.exception("IMAP %s: poller failed; restarting in %.0f s", name, delay)

    def _session(self, stop: threading.Event) -> bool:
        """One connection's life; False when another instance holds the mailbox."""
        if not self.lease.claim():
            return False
        try:
            client = connect(self.account, self.settings)
            try:
                box = open_mailbox(client, self.account)
                while not stop.is_set():
                    report = self.drain(client, box, stop)
                    if not report.to_processed + report.to_quarantine:  # else look again: more may have come
                        phase = "idle" if box.idle else "waiting"
                        wait_for_mail(client, box, stop, min(self.account.poll_seconds, IDLE_RENEW),
                                      lambda: self._tick(phase), self.idle_slice)
            finally:
                close(client)
        finally:
            with suppress(Exception):
                self.lease.release()
        return True

    def _tick(self, phase: str) -> None:
        self.phase = phase
        self._keep_lease()


class PollerGroup:
    """One thread per account; `stop()` returns within a few seconds."""

    def __init__(self, pollers: list[ImapPoller]) -> None:
        self.pollers = pollers
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for poller in self.pollers:
            thread = threading.Thread(target=poller.run, args=(self.stop_event,), name=f"imap-{poller.account.name}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        end = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(end - time.monotonic(), 0))


def start_pollers(app: Any) -> PollerGroup:
    group = PollerGroup([ImapPoller.from_app(app, account) for account in app.settings.imap])
    group.start()
    return group


async def run_pollers(app: Any, stop: asyncio.Event) -> None:
    """The `maildesk serve` component: pollers run until `stop` is set, then finish the message in hand."""
    from maildesk.adapters.http_status import metrics_for

    metrics = metrics_for(app)
    group = start_pollers(app)
    try:
        while not stop.is_set():
            for poller in group.pollers:
                metrics.set_imap_lag(poller.account.name, poller.lag())
                metrics.set_component(f"imap:{poller.account.name}", not poller.trouble,
                                      poller.trouble or f"{poller.account.user}@{poller.account.host}: {poller.phase}")
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), LAG_REPORT_SECONDS)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, group.stop)


def poll_once(app: Any) -> dict[str, Any]:
    """Drain every account once (`maildesk imap poll-once`)."""
    reports = [ImapPoller.from_app(app, account).poll_once().as_dict() for account in app.settings.imap]
    return {"ok": all(r["ok"] for r in reports), "accounts": reports}


def check_accounts(app: Any) -> list[dict[str, Any]]:
    """Log in to every account and report capabilities and folders, changing nothing (`maildesk imap check`)."""
    found = []
    for account in app.settings.imap:
        try:
            lease = MailboxLease(app.engine, lease_name(account)).holder()
        except Exception as exc:
            lease = {"error": f"{type(exc).__name__}: {exc}"}
        found.append({**check_account(account, app.settings), "lease": lease})
    return found
