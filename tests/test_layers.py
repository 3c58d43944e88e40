"""The architecture rule: core is pure, service never reaches into adapters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "maildesk"
IO_LIBRARIES = {
    # the adapters' libraries
    "aiosmtpd", "imapclient", "sqlmodel", "sqlalchemy", "alembic", "apscheduler", "jinja2", "psycopg",
    # the standard library's network, process, file, clock and randomness modules
    "smtplib", "imaplib", "poplib", "ftplib", "ssl", "socket", "selectors", "select", "http", "urllib",
    "asyncio", "threading", "multiprocessing", "concurrent", "subprocess", "signal", "sqlite3",
    "os", "io", "pathlib", "shutil", "tempfile", "glob", "fcntl", "mmap", "importlib",
    "logging", "time", "random", "secrets",
    # the impure layers above core
    "maildesk.adapters", "maildesk.service", "maildesk.bootstrap", "maildesk.cli", "maildesk.daemon",
    "maildesk.checks", "maildesk.config",
}
# Pure path arithmetic (no file system) is fine in core: only these names of a forbidden module.
PURE_EXCEPTIONS = {"pathlib.PurePath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath"}


def _package_of(path: Path) -> str:
    """The dotted package a module file belongs to, for resolving its relative imports."""
    try:
        parts = path.resolve().relative_to(PACKAGE.parent).with_suffix("").parts
    except ValueError:  # outside maildesk/ (a test's scratch file): treat it as a core module
        return "maildesk.core"
    return ".".join(parts[:-1])  # maildesk/core/parse.py and maildesk/core/__init__.py: maildesk.core


def imports_of(path: Path, package: str | None = None) -> set[str]:
    """Every module (or module.name) a file imports: plain, from-imports, relative ones and __import__ calls."""
    package = package or _package_of(path)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x / from ..adapters import store
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from maildesk import adapters` imports maildesk.adapters: record module.name, which also
            # names a plain attribute harmlessly (`from maildesk.core.model import Outcome`)
            names.update(base if alias.name == "*" else f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def _hits(name: str, forbidden: set[str]) -> bool:
    if any(name == e or name.startswith(e + ".") for e in PURE_EXCEPTIONS):
        return False
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
    bad.write_text("import sqlalchemy\nfrom maildesk.adapters.store import SqlTicketStore\n"
                   "from maildesk import adapters\nfrom .. import service\nfrom ..adapters import archive\n"
                   "from . import model\nimport ssl, http.client\nfrom urllib import request\nimport threading\n"
                   "from io import BytesIO\nfrom pathlib import Path, PurePosixPath\n"
                   "def late():\n    import jinja2\n    return __import__('socket'), importlib.import_module('smtplib')\n")
    assert {n for n in imports_of(bad) if _hits(n, IO_LIBRARIES)} == {
        "sqlalchemy", "maildesk.adapters.store.SqlTicketStore", "maildesk.adapters", "maildesk.service",
        "maildesk.adapters.archive", "ssl", "http.client", "urllib.request", "threading", "io.BytesIO",
        "pathlib.Path", "jinja2", "socket", "smtplib",
    }, "PurePosixPath and core's own `from . import model` pass"


def test_pure_pathlib_is_allowed_in_core(tmp_path: Path) -> None:
    ok = tmp_path / "ok.py"
    ok.write_text("from pathlib import PurePosixPath\nfrom . import model\nfrom maildesk.core.model import Outcome\n")
    assert not {n for n in imports_of(ok) if _hits(n, IO_LIBRARIES)}


def test_relative_imports_resolve_from_the_module_s_package() -> None:
    assert _package_of(PACKAGE / "core" / "parse.py") == "maildesk.core"
    assert _package_of(PACKAGE / "core" / "__init__.py") == "maildesk.core"
    service = PACKAGE / "service" / "ingest.py"
    assert "maildesk.core.parse.parse" in imports_of(service)
