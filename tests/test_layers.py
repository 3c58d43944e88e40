"""The architecture rule: core is pure, service never reaches into adapters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "maildesk"
IO_LIBRARIES = {
    "aiosmtpd", "imapclient", "sqlmodel", "sqlalchemy", "alembic", "apscheduler", "jinja2", "psycopg",
    "smtplib", "socket", "asyncio", "subprocess", "sqlite3", "os", "shutil", "tempfile", "logging", "time",
    "maildesk.adapters", "maildesk.service", "maildesk.bootstrap", "maildesk.cli", "maildesk.daemon",
}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _hits(name: str, forbidden: set[str]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_io(path: Path) -> None:
    bad = {name for name in imports_of(path) if _hits(name, IO_LIBRARIES)}
    assert not bad, f"core/{path.name} imports {bad}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "service").glob("*.py")), ids=lambda p: p.name)
def test_service_does_not_import_adapters(path: Path) -> None:
    bad = {name for name in imports_of(path) if _hits(name, {"maildesk.adapters", "maildesk.bootstrap"})}
    assert not bad, f"service/{path.name} imports {bad}"


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sqlalchemy\nfrom maildesk.adapters.store import SqlTicketStore\n")
    assert {n for n in imports_of(bad) if _hits(n, IO_LIBRARIES)} == {"sqlalchemy", "maildesk.adapters.store"}
