"""`maildesk check`'s relay test: the outbox's own connection set-up (TLS, login), NOOP, QUIT."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
from aiosmtpd.controller import Controller

from maildesk.checks import run_checks
from maildesk.config import Settings
from tests.imapserver import free_port


class Relay:
    """A relay that asks for nothing (no TLS, no AUTH) and records the commands it was given."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
        self.commands.append("NOOP")
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.commands.append("QUIT")
        return "221 Bye"


@pytest.fixture
def relay() -> Iterator[tuple[Relay, int]]:
    handler, port = Relay(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def outgoing_result(settings: Settings) -> tuple[bool, str]:
    [(ok, detail)] = [(ok, detail) for name, ok, detail in run_checks(settings) if name == "outgoing"]
    return ok, detail


def test_a_relay_that_needs_nothing_answers(make_settings: Callable[..., Settings], relay: tuple[Relay, int]) -> None:
    handler, port = relay
    ok, detail = outgoing_result(make_settings(outgoing={"transport": "smtp", "host": "127.0.0.1", "port": port}))
    assert ok, detail
    assert detail == f"relay 127.0.0.1:{port} (none) answers"
    assert handler.commands == ["NOOP", "QUIT"]


def test_a_closed_port_fails(make_settings: Callable[..., Settings]) -> None:
    port = free_port()  # nothing listens there
    ok, detail = outgoing_result(make_settings(outgoing={"transport": "smtp", "host": "127.0.0.1", "port": port}))
    assert not ok and "ConnectionRefusedError" in detail, detail


@pytest.mark.parametrize(
    ("outgoing", "error"),
    [
        ({"security": "starttls"}, "STARTTLS extension not supported by server"),
        ({"user": "desk", "password": "secret"}, "SMTP AUTH extension not supported by server"),
        ({"security": "ssl"}, "SSL"),
        ({"user": "desk", "password_env": "MAILDESK_TEST_NO_SUCH_VARIABLE"},
         "outgoing.password_env: environment variable MAILDESK_TEST_NO_SUCH_VARIABLE is not set"),
    ],
)
def test_security_and_login_are_not_ignored(make_settings: Callable[..., Settings], relay: tuple[Relay, int],
                                            outgoing: dict[str, Any], error: str) -> None:
    handler, port = relay
    settings = make_settings(outgoing={"transport": "smtp", "host": "127.0.0.1", "port": port, **outgoing})
    ok, detail = outgoing_result(settings)
    assert not ok and error in detail, detail
    assert "NOOP" not in handler.commands, "a relay that refuses the set-up is not reported as answering"
