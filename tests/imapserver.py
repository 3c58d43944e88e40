"""A real IMAP server for tests: pymap on loopback, or the server named by MAILDESK_TEST_IMAP (Dovecot in CI).

MAILDESK_TEST_IMAP="host:port:user:password" points the tests at a running server
(`.ci/start-dovecot.sh` prints such a line); without it each server here is a pymap
process ("dict" backend, in memory) on a free loopback port, plaintext, or with STARTTLS
on a self-signed certificate for the tests of certificate checks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from imapclient import IMAPClient

EXTERNAL = os.environ.get("MAILDESK_TEST_IMAP", "")
USER, PASSWORD = "maildesk", "secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `condition` every 0.1 s until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


# pymap hashes the demo password with 500,000 PBKDF2 rounds, 0.3 s per login; a test
# server stores it in clear instead
_PYMAP = ("from pysasl.hashing import Cleartext; from pymap.config import IMAPConfig; "
          "IMAPConfig._get_hash_context = classmethod(lambda cls, cfg: Cleartext()); "
          "from pymap.main import main; main()")


def _pymap_command(port: int, tls: tuple[str, str] | None) -> list[str]:
    security = ["--cert", tls[0], "--key", tls[1]] if tls else ["--no-tls"]
    return [sys.executable, "-c", _PYMAP, "--host", "127.0.0.1", "--port", str(port), *security,
            "dict", "--demo-user", USER, "--demo-password", PASSWORD]


def self_signed_certificate(folder: Path) -> tuple[str, str]:
    """(cert, key) files for CN=localhost that no trust store knows; needs the openssl command."""
    cert, key = folder / "imap-cert.pem", folder / "imap-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


@dataclass
class ImapServer:
    """A server the tests talk to with their own imapclient connections."""

    host: str
    port: int
    user: str = USER
    password: str = PASSWORD
    process: subprocess.Popen[bytes] | None = None
    tls: tuple[str, str] | None = None  # (cert, key): pymap offers STARTTLS with them
    _delimiter: str | None = field(default=None, repr=False)

    # -- process control (pymap only) --------------------------------------------------
    def start(self) -> ImapServer:
        self.process = subprocess.Popen(_pymap_command(self.port, self.tls), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_until(self._answers, 15, f"pymap on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                return sock.recv(4).startswith(b"* OK")
        except OSError:
            return False

    # -- talking to it -----------------------------------------------------------------
    def client(self) -> IMAPClient:
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def name(self, folder: str) -> str:
        """A config folder name ("a/b") as this server spells it."""
        if self._delimiter is None:
            with self.session() as client:
                listed = client.list_folders("", "")
                self._delimiter = (listed[0][1] or b"/").decode() if listed else "/"
        return folder.replace("/", self._delimiter)

    def session(self) -> _Session:
        return _Session(self)

    def create(self, folder: str) -> None:
        with self.session() as client:
            if not client.folder_exists(self.name(folder)):
                client.create_folder(self.name(folder))

    def delete(self, folder: str) -> None:
        with self.session() as client:
            if client.folder_exists(self.name(folder)):
                client.delete_folder(self.name(folder))

    def append(self, folder: str, messages: Iterable[bytes], flags: Iterable[bytes] = ()) -> None:
        with self.session() as client:
            for raw in messages:
                client.append(self.name(folder), raw, flags=tuple(flags))

    def messages(self, folder: str) -> list[dict[str, Any]]:
        """Every message in `folder`: uid, flags and bytes (fetched with PEEK); [] when missing."""
        with self.session() as client:
            name = self.name(folder)
            if not client.folder_exists(name):
                return []
            client.select_folder(name, readonly=True)
            found = client.fetch(client.search("ALL"), ["FLAGS", "BODY.PEEK[]"])
            return [{"uid": uid, "flags": set(data[b"FLAGS"]), "raw": data[b"BODY[]"]}
                    for uid, data in sorted(found.items())]

    def count(self, folder: str, deleted: bool = False) -> int:
        """Messages in `folder`; those flagged \\Deleted only when asked."""
        return sum(1 for m in self.messages(folder) if deleted or b"\\Deleted" not in m["flags"])

    def uidvalidity(self, folder: str) -> int:
        with self.session() as client:
            return client.folder_status(self.name(folder), [b"UIDVALIDITY"])[b"UIDVALIDITY"]

    def account(self, name: str, prefix: str, **extra: Any) -> dict[str, Any]:
        """An [[imap]] table for a mailbox under `prefix` on this server, polled every 60 s."""
        return {"name": name, "host": self.host, "port": self.port, "security": "none", "user": self.user,
                "password": self.password, "folder": f"{prefix}/inbox", "processed_folder": f"{prefix}/processed",
                "quarantine_folder": f"{prefix}/quarantine", **extra}


class _Session:
    def __init__(self, server: ImapServer) -> None:
        self.server = server

    def __enter__(self) -> IMAPClient:
        self.client = self.server.client()
        return self.client

    def __exit__(self, *exc: object) -> None:
        try:
            self.client.logout()
        except Exception:
            self.client.shutdown()


def start_server() -> ImapServer:
    """The server named by MAILDESK_TEST_IMAP, or a new pymap process."""
    if EXTERNAL:
        host, port, user, password = EXTERNAL.split(":", 3)
        return ImapServer(host, int(port), user, password)
    return ImapServer("127.0.0.1", free_port()).start()


def start_pymap(tls: tuple[str, str] | None = None) -> ImapServer:
    """Always a pymap process of our own (for tests that restart the server, or need STARTTLS)."""
    return ImapServer("127.0.0.1", free_port(), tls=tls).start()


def unique_prefix() -> str:
    """A folder prefix no other test uses, so that tests share one server."""
    return f"t{uuid.uuid4().hex[:10]}"
