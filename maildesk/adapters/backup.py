"""Consistent backups of the store, the mail archive and the key, and their restore into an empty place."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import NullPool

from maildesk.adapters.archive import MailArchive, fsync_dir, write_atomic
from maildesk.adapters.db_models import AttachmentRow, MessageRow, ProcessedMail, QuarantineEntry
from maildesk.adapters.retention import PURGED_MARK
from maildesk.config import Settings

MANIFEST, SQLITE_FILE, PG_FILE = "manifest.json", "maildesk.db", "maildesk.pgdump"
ARCHIVE_DIR, SECRET = "mail", "secret.key"  # as under data_dir
COUNTED = ("tickets", "messages", "attachments", "quarantine")
CONTENT_TABLES = ("tickets", "messages", "quarantine", "processed_mail", "outbox")  # rows here: the store is in use


def _references() -> tuple[sa.Select, ...]:
    """Queries for every archive file the database names and promises to keep.

    Retention (adapters/retention.py) purges old refused and ignored mail: it marks the quarantine
    entry 'purged' (an ignored message's processed_mail decision gets PURGED_MARK) and deletes the
    file unless something kept still names it. The rows stay behind, so that a redelivery is still
    a duplicate, but their files are gone on purpose: they are not expected in a backup.
    """
    purged = sa.select(QuarantineEntry.id).where(QuarantineEntry.state == "purged")
    return (
        sa.select(MessageRow.raw_sha256).where(MessageRow.raw_sha256.is_not(None)),
        sa.select(AttachmentRow.sha256).where(AttachmentRow.sha256 != ""),  # "": a file never stored
        sa.select(QuarantineEntry.raw_sha256).where(QuarantineEntry.state != "purged"),
        sa.select(ProcessedMail.raw_sha256).where(
            sa.or_(ProcessedMail.quarantine_id.is_(None), ProcessedMail.quarantine_id.not_in(purged)),
            ProcessedMail.decision[PURGED_MARK].as_string().is_(None)),
    )


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message tells the operator why."""


@dataclass(frozen=True)
class RestoreReport:
    manifest: dict[str, Any]
    revision: str | None  # the restored schema revision
    counts: dict[str, int]  # as found in the restored database
    damaged: tuple[str, ...] = ()  # listed in the manifest but absent from the backup or not matching their name
    missing: tuple[str, ...] = ()  # named by the restored database but not in the restored archive

    @property
    def ok(self) -> bool:
        expected = {k: v for k, v in self.manifest["counts"].items() if k in COUNTED}
        return not self.damaged and not self.missing and self.counts == expected


# -- backup -------------------------------------------------------------------------------
def backup(settings: Settings, dest: Path, now: datetime | None = None) -> dict[str, Any]:
    """Snapshot the database, then copy archive and key into `dest` (new or empty); return the manifest."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: back up into a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    url = make_url(settings.database_url)
    # the snapshot comes first: archive files are written before the commits that name
    # them, so every file the snapshot refers to is already on disk when we copy
    if url.get_backend_name() == "sqlite":
        kind, (revision, counts) = "sqlite", _sqlite_backup(_sqlite_path(url), dest / SQLITE_FILE)
    else:
        kind, (revision, counts) = "postgresql", _pg_backup(url, dest / PG_FILE)
    digests = _copy_archive(settings.data_dir / ARCHIVE_DIR, dest / ARCHIVE_DIR)
    secret = settings.data_dir / SECRET
    if secret.exists():
        write_atomic(dest / SECRET, secret)
    manifest = {
        "format": 1, "created_at": (now or datetime.now(timezone.utc)).isoformat(), "database": kind,
        "schema_revision": revision, "counts": {**counts, "archive_files": len(digests)},
        "secret_key": secret.exists(), "archive": digests,
    }
    # written last: a folder with a manifest is a complete backup
    write_atomic(dest / MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


def _sqlite_backup(source: Path, target: Path) -> tuple[str | None, dict[str, int]]:
    if not source.exists():
        raise BackupError(f"no SQLite database at {source}")
    src, dst = sqlite3.connect(source, timeout=30), sqlite3.connect(target)
    try:
        src.backup(dst)  # the online backup API: a consistent copy while writers go on
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()
    fsync_dir(target)
    with _connect(URL.create("sqlite", database=str(target))) as conn:
        return _describe(conn)


def _pg_backup(url: URL, target: Path) -> tuple[str | None, dict[str, int]]:
    pg_dump = pg_tool("pg_dump")
    with _connect(url) as conn:
        conn.execution_options(isolation_level="REPEATABLE READ")
        # pg_dump reads the very snapshot the counts come from, so the manifest matches the dump
        snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
        described = _describe(conn)
        _run([pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--file={target}"], url)
        conn.rollback()
    fsync_dir(target)
    return described


def _copy_archive(source: Path, target: Path) -> list[str]:
    digests = []
    for path in sorted(source.glob("??/??/*")):
        if _is_digest(path.name):  # leaves out .tmp- files of writes in flight
            _place(path, target / path.relative_to(source))
            digests.append(path.name)
    _fsync_dirs(target)
    return digests


# -- restore ------------------------------------------------------------------------------
def restore(settings: Settings, src: Path, *, force: bool = False) -> RestoreReport:
    """Put a backup back into the configured store and data dir; refuses a store in use unless `force`."""
    src = Path(src)
    manifest = read_manifest(src)
    url = make_url(settings.database_url)
    kind = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
    if manifest["database"] != kind:
        raise BackupError(f"the backup holds a {manifest['database']} database but the store is {kind}")
    if not (src / (SQLITE_FILE if kind == "sqlite" else PG_FILE)).is_file():
        raise BackupError(f"{src} lacks its database file")
    in_use = None if force else _in_use(settings, url)
    if in_use:
        raise BackupError(f"{in_use}: restore needs an empty store (--force overwrites it)")
    archive = MailArchive(settings.data_dir / ARCHIVE_DIR)
    good, damaged = _verify_archive(src / ARCHIVE_DIR, manifest["archive"])
    # archive first, as in normal work: the database never names a file not yet there
    for digest in good:
        _place(_file(src / ARCHIVE_DIR, digest), _file(archive.root, digest))
    _fsync_dirs(archive.root)
    if (src / SECRET).exists():
        write_atomic(settings.data_dir / SECRET, src / SECRET)
    if kind == "sqlite":
        _sqlite_restore(src / SQLITE_FILE, _sqlite_path(url))
    else:
        _run([pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
              str(src / PG_FILE)], url)
    with _connect(url) as conn:
        revision, counts = _describe(conn)
        missing = _unarchived(conn, archive) if revision else ()
    return RestoreReport(manifest, revision, counts, tuple(damaged), missing)


def _unarchived(conn: Connection, archive: MailArchive) -> tuple[str, ...]:
    """Digests the database names that the archive does not hold."""
    named = {digest for query in _references() for (digest,) in conn.execute(query)}
    return tuple(sorted(d for d in named if not archive.has(d)))


def read_manifest(src: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BackupError(f"{src} has no {MANIFEST}: not a maildesk backup, or an unfinished one") from exc
    except ValueError as exc:
        raise BackupError(f"{src / MANIFEST} is damaged: {exc}") from exc
    if manifest.get("format") != 1:
        raise BackupError(f"{src / MANIFEST}: unknown backup format {manifest.get('format')!r}")
    return manifest


def _in_use(settings: Settings, url: URL) -> str | None:
    archive = MailArchive(settings.data_dir / ARCHIVE_DIR)
    if archive.digests():
        return f"the mail archive {archive.root} holds files"
    if url.get_backend_name() == "sqlite" and not _sqlite_path(url).exists():
        return None
    with _connect(url) as conn:
        tables = set(sa.inspect(conn).get_table_names())
        if any(conn.execute(sa.text(f"SELECT 1 FROM {t} LIMIT 1")).first() for t in CONTENT_TABLES if t in tables):
            return f"the database {url.render_as_string(hide_password=True)} holds tickets or mail"
    return None


def _verify_archive(folder: Path, listed: list[str]) -> tuple[list[str], list[str]]:
    """Split the manifest's files into those whose bytes hash to their name and the rest."""
    good, damaged = [], []
    for digest in listed:
        path = _file(folder, digest)
        ok = _is_digest(digest) and path.is_file() and _sha256(path) == digest
        (good if ok else damaged).append(digest)
    return good, damaged


def _sqlite_restore(source: Path, target: Path) -> None:
    # a -wal left from the old file would be replayed into the restored one
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    write_atomic(target, source)


# -- helpers ------------------------------------------------------------------------------
def _describe(conn: Connection) -> tuple[str | None, dict[str, int]]:
    """The schema revision and row counts, read on `conn` (inside its snapshot)."""
    tables = set(sa.inspect(conn).get_table_names())
    counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() if t in tables else 0
              for t in COUNTED}
    if "alembic_version" not in tables:
        return None, counts
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar(), counts


@contextmanager
def _connect(url: URL) -> Iterator[Connection]:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    except sa.exc.OperationalError as exc:
        raise BackupError(f"database {url.render_as_string(hide_password=True)}: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()


def pg_tool(name: str) -> str:
    """A PostgreSQL client program: on PATH, else the newest under /usr/lib/postgresql/*/bin."""
    installed = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    newest = max(installed, key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0, default=None)
    found = shutil.which(name) or newest
    if found is None:
        raise BackupError(f"{name} not found on PATH nor in /usr/lib/postgresql/*/bin: "
                          f"install the PostgreSQL client programs (Debian: postgresql-client)")
    return found


def _run(command: list[str], url: URL) -> None:
    # libpq reads the password from the environment: it never shows on a command line
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    conninfo = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    proc = subprocess.run([*command, "--no-password", f"--dbname={conninfo}"], capture_output=True, env=env)
    if proc.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {proc.stderr.decode(errors='replace').strip()}")


def _place(source: Path, target: Path) -> None:
    """Hard-link an archive file (they never change once written), else copy it durably."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed
        write_atomic(target, source)



def _fsync_dirs(root: Path) -> None:
    if root.exists():
        for folder in (root, *root.glob("??"), *root.glob("??/??")):
            fsync_dir(folder)


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _file(root: Path, digest: str) -> Path:
    return root / digest[:2] / digest[2:4] / digest


def _is_digest(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(url.database)
