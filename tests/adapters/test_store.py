"""The store's schema: the migrations build exactly the tables the models describe; mail-sized values fit."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import maildesk.adapters.db_models  # noqa: F401  (registers the tables)
from maildesk.adapters.queries import show_ticket
from maildesk.core.model import Outcome
from tests.conftest import ingest_bytes
from tests.mailmaker import make_mail


def test_migrations_match_the_models(app: Any) -> None:
    with app.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], "a model changed without a migration (or the other way round)"


def test_overlong_values_from_mail_are_cut_to_fit_not_refused(app: Any) -> None:
    long_id = "a" * 1200 + "@gb1.sev.gov.ru"
    name = "Иванова " * 60
    raw = make_mail(message_id=long_id, body=f"Не работает печать.\nФИО: {name}\nТелефон: 55-12-34\n")
    result = ingest_bytes(app, raw)
    assert result.outcome is Outcome.CREATED, "PostgreSQL would refuse VARCHAR overflow on every retry"
    ticket = show_ticket(app.engine, result.ticket)
    assert ticket["messages"][0]["message_id"] == long_id[:998]
    assert ingest_bytes(app, raw).outcome is Outcome.DUPLICATE
