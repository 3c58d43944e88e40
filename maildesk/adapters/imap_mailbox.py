"""The imapclient side of the poller: log in, name folders as the server does, size, fetch and move messages."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientError

from maildesk.config import ImapAccount, Settings, secret_value

log = logging.getLogger("maildesk.imap")

DONE = b"$MaildeskDone"  # our mark on a copied message that could not be expunged
DELETED = b"\\Deleted"
# \Deleted mail is someone's deletion in progress (or ours, where the server keeps no keywords): left alone
WAITING = ["UNDELETED", "UNKEYWORD", DONE]
METHODS = ("move", "copy-expunge", "copy-flag")  # strongest first
IDLE_SLICE = 2.0  # one idle_check() wait: bounds how long a stop takes
SIZE_CHUNK = 500  # UIDs per RFC822.SIZE fetch: keeps the command line short (Dovecot refuses lines over 64 KB)


@dataclass(frozen=True)
class Mailbox:
    """What a session learned about the server: folder names as it spells them, how to move, IDLE."""

    folder: str
    processed: str
    quarantine: str
    method: str
    idle: bool


def connect(account: ImapAccount, settings: Settings) -> IMAPClient:
    """A logged-in client; plaintext only where the config allows it (loopback)."""
    context = ssl.create_default_context()
    if not account.verify_certificates:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        if account.security != "none":
            log.warning("IMAP %s: certificate of %s:%s NOT verified (verify_certificates = false): anyone on the "
                        "path can pose as the server and read the password and the mail", account.name,
                        account.host, account.port)
    if account.security == "none":
        log.warning("IMAP %s: PLAINTEXT connection to %s:%s, password sent in clear (loopback only)",
                    account.name, account.host, account.port)
    client = IMAPClient(account.host, account.port, ssl=account.security == "ssl", ssl_context=context,
                        timeout=SocketTimeout(connect=15, read=120))
    try:
        if account.security == "starttls":
            client.starttls(context)
        key = f"imap.{account.name}.password"
        client.login(account.user, secret_value(settings, account.password, account.password_file,
                                                account.password_env, key))
    except BaseException:
        close(client)
        raise
    return client


def close(client: IMAPClient) -> None:
    with suppress(Exception):
        client.socket().settimeout(5)  # a server that stopped answering must not hold up a stop
        client.logout()
    with suppress(Exception):
        client.shutdown()


def server_name(name: str, delimiter: str | None) -> str:
    """Config folder names use "/"; Dovecot, Courier and Cyrus often separate with "."."""
    return name.replace("/", delimiter) if delimiter and delimiter != "/" else name


def delimiter_of(client: IMAPClient) -> str | None:
    for _flags, delimiter, _name in client.list_folders("", ""):
        return delimiter.decode() if isinstance(delimiter, bytes) else delimiter
    return None


def choose_method(client: IMAPClient, wanted: str) -> str:
    """The configured method, or the strongest one the server announces below it."""
    offered = {"move": client.has_capability("MOVE"), "copy-expunge": client.has_capability("UIDPLUS"),
               "copy-flag": True}
    start = 0 if wanted == "auto" else METHODS.index(wanted)
    return next(m for m in METHODS[start:] if offered[m])


def open_mailbox(client: IMAPClient, account: ImapAccount) -> Mailbox:
    """Learn the server's ways and create the target folders when missing."""
    delimiter = delimiter_of(client)
    names = [server_name(n, delimiter) for n in (account.folder, account.processed_folder, account.quarantine_folder)]
    for name in names[1:]:
        if not client.folder_exists(name):
            client.create_folder(name)
            with suppress(IMAPClientError):
                client.subscribe_folder(name)  # so that people see it in their mail client
            log.info("IMAP %s: created folder %s", account.name, name)
    method = choose_method(client, account.move_method)
    if method != "move":
        log.info("IMAP %s: server without MOVE%s: using %s", account.name,
                 "" if method == "copy-expunge" else " and UIDPLUS", method)
    return Mailbox(*names, method=method, idle=client.has_capability("IDLE"))


def transfer(client: IMAPClient, uids: list[int], target: str, method: str) -> None:
    """Move messages, one command for all; never a bare EXPUNGE, which would remove other clients' deleted mail."""
    if not uids:
        return
    if method == "move":
        client.move(uids, target)
        return
    client.copy(uids, target)
    client.add_flags(uids, [DELETED, DONE], silent=True)
    if method == "copy-expunge":
        client.uid_expunge(uids)


def sizes_of(client: IMAPClient, uids: list[int]) -> dict[int, int]:
    """RFC822.SIZE of each message, without its body; a message expunged meanwhile is absent."""
    found: dict[int, int] = {}
    for start in range(0, len(uids), SIZE_CHUNK):
        for uid, data in client.fetch(uids[start:start + SIZE_CHUNK], ["RFC822.SIZE"]).items():
            if b"RFC822.SIZE" in data:
                found[uid] = int(data[b"RFC822.SIZE"])
    return found


def batches(sized: Iterable[tuple[int, int]], max_count: int, max_bytes: int) -> Iterator[list[int]]:
    """(uid, size) pairs in order → UID lists of at most `max_count` messages and `max_bytes` announced bytes.

    A message larger than `max_bytes` on its own goes in a batch of its own.
    """
    batch: list[int] = []
    total = 0
    for uid, size in sized:
        if batch and (len(batch) == max_count or total + size > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


def expunge_leftovers(client: IMAPClient, box: Mailbox) -> None:
    """Finish moves that a crash cut between COPY and UID EXPUNGE (our keyword marks them)."""
    if box.method == "copy-expunge":
        leftovers = client.search(["DELETED", "KEYWORD", DONE])
        if leftovers:
            client.uid_expunge(leftovers)


def wait_for_mail(client: IMAPClient, box: Mailbox, stop: threading.Event, seconds: float,
                  tick: Callable[[], None], slice_seconds: float = IDLE_SLICE) -> None:
    """IDLE until new mail arrives (a pause where the server has no IDLE), `seconds` at most.

    Waits in short slices so that `stop` is noticed soon; `tick` runs once a slice (lease renewal).
    """
    deadline = time.monotonic() + seconds
    if not box.idle:
        while not stop.is_set() and time.monotonic() < deadline:
            tick()
            stop.wait(min(slice_seconds, max(deadline - time.monotonic(), 0)))
        client.noop()
        return
    client.idle()
    try:
        _idle(client, stop, deadline, tick, slice_seconds)
    finally:
        with suppress(IMAPClientError, OSError):
            client.idle_done()  # a dead connection shows on the next command


def _idle(client: IMAPClient, stop: threading.Event, deadline: float, tick: Callable[[], None],
          slice_seconds: float) -> None:
    early_empty = 0
    while not stop.is_set() and time.monotonic() < deadline:
        tick()
        wait = min(slice_seconds, max(deadline - time.monotonic(), 0.05))
        started = time.monotonic()
        responses = client.idle_check(timeout=wait)
        if any(r and r[0] == b"BYE" for r in responses):
            raise ConnectionError(f"server closed the connection: {responses}")
        if any(len(r) > 1 and r[1] == b"EXISTS" for r in responses):
            return
        # idle_check() swallows end-of-file: an empty answer long before the timeout, again and again
        early_empty = early_empty + 1 if not responses and time.monotonic() - started < wait / 2 else 0
        if early_empty >= 3:
            raise ConnectionError("connection closed during IDLE")


def check_account(account: ImapAccount, settings: Settings) -> dict[str, Any]:
    """Log in; capabilities, the move method that would be used, the three folders with their counts."""
    found: dict[str, Any] = {"account": account.name, "host": account.host, "port": account.port,
                             "security": account.security, "verify_certificates": account.verify_certificates,
                             "user": account.user, "ok": False, "error": None}
    try:
        client = connect(account, settings)
    except Exception as exc:
        return {**found, "error": f"{type(exc).__name__}: {exc}"}
    try:
        delimiter = delimiter_of(client)
        roles = {"folder": account.folder, "processed_folder": account.processed_folder,
                 "quarantine_folder": account.quarantine_folder}
        found["capabilities"] = sorted(c.decode() for c in client.capabilities())
        found["idle"] = client.has_capability("IDLE")
        found["move_method"] = choose_method(client, account.move_method)
        found["folders"] = {role: folder_status(client, server_name(name, delimiter)) for role, name in roles.items()}
        found["ok"] = found["folders"]["folder"]["exists"]
        found["error"] = None if found["ok"] else f"folder {account.folder} does not exist"
    except Exception as exc:
        found["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        close(client)
    return found


def folder_status(client: IMAPClient, name: str) -> dict[str, Any]:
    if not client.folder_exists(name):
        return {"name": name, "exists": False, "messages": None, "unseen": None, "uidvalidity": None}
    status = client.folder_status(name, [b"MESSAGES", b"UNSEEN", b"UIDVALIDITY"])
    return {"name": name, "exists": True, "messages": status[b"MESSAGES"], "unseen": status[b"UNSEEN"],
            "uidvalidity": status[b"UIDVALIDITY"]}
