"""Outgoing transports: an SMTP relay, or a local folder of .eml files (the embedded default)."""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence


class PermanentFailure(Exception):
    """The relay refused the message for good (5xx): retrying will not help."""


class TemporaryDeliveryFailure(Exception):
    """The relay is down or answered 4xx: try again later."""


class Transport(Protocol):
    def send(self, sender: str, recipients: Sequence[str], raw: bytes, name: str) -> None: ...


class DirectoryTransport:
    """Writes each message as `<name>.eml`; the same name twice overwrites, so a retry never doubles."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def send(self, sender: str, recipients: Sequence[str], raw: bytes, name: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            envelope = f"X-Maildesk-Envelope-From: {sender}\r\nX-Maildesk-Envelope-To: {', '.join(recipients)}\r\n"
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(envelope.encode("ascii") + raw)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / f"{name}.eml")
        except OSError as exc:
            raise TemporaryDeliveryFailure(f"cannot write to {self.directory}: {exc.strerror}") from exc


@dataclass
class SmtpTransport:
    host: str
    port: int = 25
    security: str = "none"  # none / starttls / ssl
    verify: bool = True
    user: str = ""
    password: str = ""
    timeout: float = 30.0

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context())
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            client.starttls(context=self._context())
        return client

    def send(self, sender: str, recipients: Sequence[str], raw: bytes, name: str) -> None:
        try:
            with self._connect() as client:
                if self.user:
                    client.login(self.user, self.password)
                refused = client.sendmail(sender, list(recipients), raw)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise (PermanentFailure if all(c >= 500 for c in codes) else TemporaryDeliveryFailure)(str(exc.recipients)) from exc
        except smtplib.SMTPResponseException as exc:
            kind = PermanentFailure if exc.smtp_code >= 500 else TemporaryDeliveryFailure
            raise kind(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryDeliveryFailure(f"relay {self.host}:{self.port}: {exc}") from exc
        if refused:
            raise PermanentFailure(f"refused recipients: {refused}")
