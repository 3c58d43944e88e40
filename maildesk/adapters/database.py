"""Engine creation for SQLite (WAL, durable commits) and PostgreSQL, and schema upgrades."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from maildesk.service.ports import StoreUnavailable

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine whose SQLite connections use WAL, full fsync on commit and foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # the driver's own transaction handling is switched off so that BEGIN IMMEDIATE
    # (below) takes the write lock at the start: no upgrade deadlocks between writers
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(conn) -> None:  # type: ignore[no-untyped-def]
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision` with the shipped Alembic migrations."""
    from alembic import command
    from alembic.config import Config

    command.upgrade(alembic_config(url), revision)


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def schema_revision(engine: Engine) -> str | None:
    """The schema version the database is at, or None before the first upgrade."""
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session committed on success; database faults become StoreUnavailable."""
    try:
        with Session(engine, expire_on_commit=False) as session:
            yield session
            session.commit()
    except sa.exc.IntegrityError:
        raise
    except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DatabaseError) as exc:
        raise StoreUnavailable(str(exc).splitlines()[0]) from exc
