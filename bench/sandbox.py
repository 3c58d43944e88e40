"""A throwaway maildesk installation per scenario: data dir, TOML config, fresh database, free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maildesk.config import Settings, load

DESK = "help@miac.sev.gov.ru"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def base_table(data_dir: Path, **sections: Any) -> dict[str, Any]:
    """The production example's choices, on loopback, writing outgoing mail to a folder; `sections` merged in."""
    table: dict[str, Any] = {
        "maildesk": {"data_dir": str(data_dir), "message_id_domain": "desk.bench", "secret": "bench-secret"},
        "desks": [{"address": DESK, "name": "Служба технической поддержки ГБУЗС «МИАЦ»",
                   "phone": "+7 (8692) 00-00-00"}],
        "senders": {"allowed_domains": ["sev.gov.ru"], "allow_subdomains": True},
        "agents": [
            {"address": "petrov@miac.sev.gov.ru", "name": "Петров Пётр Петрович", "login": "petrov", "line": 1},
            {"address": "sidorova@miac.sev.gov.ru", "name": "Сидорова Анна", "login": "sidorova", "line": 2},
            {"address": "boss@miac.sev.gov.ru", "name": "Начальник СТП", "login": "boss", "role": "supervisor"},
        ],
        "smtp": {"listen": [f"{HOST}:{free_port()}"]},
        "outgoing": {"transport": "directory", "directory": str(data_dir / "outgoing")},
    }
    for name, values in sections.items():
        table[name] = {**table.get(name, {}), **values} if isinstance(values, dict) else values
    return table


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(table: dict[str, Any]) -> str:
    """The config table as TOML: sections of plain values, arrays of tables for [[desks]] and the like."""
    lines: list[str] = []
    for name, body in table.items():
        rows = body if isinstance(body, list) and body and isinstance(body[0], dict) else None
        for row in rows or [body]:
            lines.append(f"[[{name}]]" if rows is not None else f"[{name}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in row.items()]
            lines.append("")
    return "\n".join(lines)


@dataclass
class Sandbox:
    """A data dir with a config file in it; `database` is an SQLite file there or a fresh PostgreSQL database."""

    root: Path
    table: dict[str, Any]
    pg_admin_url: str = ""
    pg_database: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.root / "maildesk.toml"

    @property
    def settings(self) -> Settings:
        return load(self.config_path)

    @property
    def smtp_port(self) -> int:
        return int(self.table["smtp"]["listen"][0].rpartition(":")[2])

    def remove(self) -> None:
        if self.pg_database:
            drop_pg_database(self.pg_admin_url, self.pg_database)
        shutil.rmtree(self.root, ignore_errors=True)


def make_sandbox(name: str, pg_url: str = "", parent: Path | None = None, **sections: Any) -> Sandbox:
    """A new installation named `name`; on PostgreSQL when `pg_url` (an admin URL) is given."""
    root = Path(tempfile.mkdtemp(prefix=f"maildesk-bench-{name}-", dir=parent))
    table = base_table(root / "data", **sections)
    box = Sandbox(root, table)
    if pg_url:
        box.pg_admin_url, box.pg_database = pg_url, f"md_bench_{uuid.uuid4().hex[:10]}"
        create_pg_database(pg_url, box.pg_database)
        table["database"] = {"url": pg_url.rsplit("/", 1)[0] + "/" + box.pg_database}
    box.config_path.write_text(to_toml(table), encoding="utf-8")
    from maildesk.adapters.database import upgrade

    upgrade(box.settings.database_url)
    return box


def pg_reachable(url: str) -> str:
    """'' when a PostgreSQL server answers at `url`, else why not."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
        return ""
    except Exception as exc:  # any failure means: skip PostgreSQL, with the reason
        return str(exc).splitlines()[0][:160]


def create_pg_database(url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()


def drop_pg_database(url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


def disk_usage(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for file in files:
            try:
                total += os.lstat(os.path.join(folder, file)).st_size
            except OSError:
                pass
    return total
