"""Shared fixtures: a real maildesk app on a temporary data dir, SQLite by default.

Set MAILDESK_TEST_PG_URL (e.g. postgresql+psycopg://maildesk@127.0.0.1:55432/postgres)
to run the store-backed tests against PostgreSQL too: each test then gets a fresh
database created from that server.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from maildesk.config import Settings, parse_settings

DATA = Path(__file__).parent / "data"
PG_URL = os.environ.get("MAILDESK_TEST_PG_URL", "")

DESK = "help@miac.sev.gov.ru"
AGENT = "petrov@miac.sev.gov.ru"
AGENT2 = "sidorova@miac.sev.gov.ru"
SUPERVISOR = "boss@miac.sev.gov.ru"
REQUESTER = "ivanova@gb1.sev.gov.ru"


class FakeClock:
    """An injected clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)  # Monday 10:00 in Sevastopol

    def now(self) -> datetime:
        return self.current

    def advance(self, **kw: float) -> None:
        self.current += timedelta(**kw)


def base_config(data_dir: Path, **overrides: Any) -> dict[str, Any]:
    """The config table tests start from; sections in `overrides` are merged in."""
    table: dict[str, Any] = {
        "maildesk": {"data_dir": str(data_dir), "message_id_domain": "desk.test", "secret": "test-secret"},
        "desks": [{"address": DESK, "name": "СТП ГБУЗС «МИАЦ»", "phone": "+7 (8692) 00-00-00"}],
        "senders": {"allowed_domains": ["sev.gov.ru"], "allow_subdomains": True},
        "agents": [
            {"address": AGENT, "name": "Петров Пётр", "login": "petrov", "line": 1},
            {"address": AGENT2, "name": "Сидорова Анна", "login": "sidorova", "line": 2},
            {"address": SUPERVISOR, "name": "Начальник СТП", "login": "boss", "role": "supervisor"},
        ],
        "smtp": {"listen": ["127.0.0.1:0"]},
        "outgoing": {"transport": "directory", "directory": str(data_dir / "outgoing")},
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(table.get(section), dict):
            table[section] = {**table[section], **values}
        else:
            table[section] = values
    return table


def _fresh_pg_database() -> str:
    import sqlalchemy as sa

    name = f"md_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return PG_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """make_settings(**sections) → Settings on tmp_path; PostgreSQL when MAILDESK_TEST_PG_URL is set."""

    def make(**overrides: Any) -> Settings:
        table = base_config(tmp_path / "data", **overrides)
        if PG_URL and "database" not in overrides:
            table["database"] = {"url": _fresh_pg_database()}
        return parse_settings(table, str(tmp_path))

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(make_settings: Callable[..., Settings], clock: FakeClock) -> Iterator[Callable[..., Any]]:
    """make_app(**sections) → a built App with its schema created, on the fake clock."""
    from maildesk.adapters.database import upgrade
    from maildesk.bootstrap import build

    apps = []
    counter = iter(range(1, 10**9))

    def make(**overrides: Any) -> Any:
        settings = make_settings(**overrides)
        upgrade(settings.database_url)
        app = build(settings, clock=clock, nonce=lambda: f"{next(counter):016x}")
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


def eml(name: str) -> bytes:
    """A fixture message from tests/data."""
    return (DATA / name).read_bytes()


def outgoing_mail(settings: Settings) -> list[Any]:
    """Messages the directory transport wrote, parsed, oldest first."""
    import email
    import email.policy

    folder = Path(settings.outgoing.directory)
    files = sorted(folder.glob("*.eml")) if folder.exists() else []
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]


def deliver(app: Any) -> list[Any]:
    """Run the outbox worker once (directory transport) and return every message written so far."""
    from maildesk.adapters.outbox import OutboxWorker
    from maildesk.bootstrap import make_transport

    OutboxWorker(app.engine, make_transport(app.settings), app.settings.desks[0].address,
                 composer=app.composer).deliver_due(app.deps.clock.now())
    return outgoing_mail(app.settings)


def ingest_bytes(app: Any, raw: bytes, source: str = "cli", mail_from: str | None = None) -> Any:
    from maildesk.core.model import Envelope
    from maildesk.service.ingest import ingest

    return ingest(raw, Envelope(source, mail_from=mail_from), app.deps)
