"""Outgoing transports: an SMTP relay, or a local folder of .eml files (the embedded default)."""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence


class PermanentFailure(Exception):
    """The relay refused the message for good (5xx): retrying will not help."""


class TemporaryDeliveryFailure(Exception):
    """The relay is down or answered 4xx: try again later."""


class RelayUnavailable(TemporaryDeliveryFailure):
    """No relay to talk to (refused, timed out, dropped): nothing else can be sent in this pass either."""


class Transport(Protocol):
    """`send` one message; `with transport:` around several lets it keep its connection for them."""

    def __enter__(self) -> Transport: ...

    def __exit__(self, *exc: object) -> None: ...

    def send(self, sender: str, recipients: Sequence[str], raw: bytes, name: str) -> None: ...


class DirectoryTransport:
    """Writes each message as `<name>.eml`; the same name twice overwrites, so a retry never doubles."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def __enter__(self) -> DirectoryTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

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
    """Sends through the relay; inside `with transport:` one connection carries every message of the block."""

    host: str
    port: int = 25
    security: str = "none"  # none / starttls / ssl
    verify: bool = True
    user: str = ""
    password: str = ""
    timeout: float = 30.0
    _client: smtplib.SMTP | None = field(default=None, init=False, repr=False, compare=False)
    _held: bool = field(default=False, init=False, repr=False, compare=False)

    def __enter__(self) -> SmtpTransport:
        self._held = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._held = False
        self._drop(quit=True)

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                client.starttls(context=self._context())
            if self.user:
                client.login(self.user, self.password)
        except BaseException:
            client.close()
            raise
        return client

    def _drop(self, quit: bool = False) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if quit:
                client.quit()
        except (OSError, smtplib.SMTPException):
            pass
        client.close()

    def _sendmail(self, sender: str, recipients: Sequence[str], raw: bytes) -> dict:
        reused = self._client is not None
        if self._client is None:
            try:
                self._client = self._connect()
            except (OSError, smtplib.SMTPException) as exc:
                raise RelayUnavailable(f"relay {self.host}:{self.port}: {exc}") from exc
        try:
            return self._client.sendmail(sender, list(recipients), raw)
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as exc:
            closing = not isinstance(exc, smtplib.SMTPResponseException) or exc.smtp_code == 421
            if not (reused and closing):
                raise
            # the relay closed (or is closing) a connection kept from an earlier message: once more on a new one
            self._drop()
            return self._sendmail(sender, recipients, raw)

    def send(self, sender: str, recipients: Sequence[str], raw: bytes, name: str) -> None:
        try:
            refused = self._sendmail(sender, recipients, raw)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise (PermanentFailure if all(c >= 500 for c in codes) else TemporaryDeliveryFailure)(str(exc.recipients)) from exc
        except smtplib.SMTPResponseException as exc:
            self._drop()
            kind = PermanentFailure if exc.smtp_code >= 500 else TemporaryDeliveryFailure
            raise kind(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise RelayUnavailable(f"relay {self.host}:{self.port}: {exc}") from exc
        finally:
            if not self._held:
                self._drop(quit=True)
        if refused:
            raise PermanentFailure(f"refused recipients: {refused}")
