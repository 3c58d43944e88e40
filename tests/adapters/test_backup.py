"""Backup and restore: a store with tickets, attachments and quarantine comes back whole in a new place."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest

from maildesk.adapters.archive import MailArchive
from maildesk.adapters.backup import BackupError, backup, restore
from maildesk.adapters.database import make_engine
from maildesk.adapters.queries import TicketFilter, list_quarantine, list_tickets, show_ticket
from maildesk.cli import main
from maildesk.config import Settings, parse_settings
from maildesk.core.model import Outcome
from tests.conftest import PG_URL, _fresh_pg_database, base_config, deliver, ingest_bytes
from tests.mailmaker import make_mail
from tests.test_cli import write_config

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(64)
LOG = "ошибка 403 при входе\n".encode() * 50


@pytest.fixture
def filled(make_app: Callable[..., Any]) -> Any:
    """An app with two tickets (one answered), kept and refused attachments and a quarantined message."""
    app = make_app(maildesk={"secret": ""})  # a generated key, so that there is one to back up
    first = ingest_bytes(app, make_mail(attachments=[("report.pdf", "application/pdf", PDF),
                                                      ("screen.png", "image/png", PNG)]))
    assert first.outcome is Outcome.CREATED
    second = ingest_bytes(app, make_mail(subject="Не печатает принтер", attachments=[("log.txt", "text/plain", LOG)]))
    assert second.outcome is Outcome.CREATED
    reply = ingest_bytes(app, make_mail(subject=f"Re: [СТП #{first.ticket}] Не открывается карта",
                                        body="Дополняю: код 403.\n\nТелефон: 55-12-34"))
    assert (reply.outcome, reply.ticket) == (Outcome.APPENDED, first.ticket)
    pe = b"MZ" + b"\x90" * 58 + b"\x80\x00\x00\x00" + b"\x00" * 64 + b"PE\x00\x00" + b"\x00" * 200
    assert ingest_bytes(app, make_mail(attachments=[("setup.jpg", "image/jpeg", pe)])).outcome is Outcome.CREATED
    outsider = ingest_bytes(app, make_mail(sender="doctor@gmail.com", body="Телефон: 55-11-22"))
    assert outsider.outcome is Outcome.QUARANTINED
    deliver(app)
    return app


def target_settings(tmp_path: Path, name: str) -> Settings:
    """Settings for a brand-new data dir and, on PostgreSQL, a brand-new empty database."""
    table = base_config(tmp_path / name)
    if PG_URL:
        table["database"] = {"url": _fresh_pg_database()}
    return parse_settings(table, str(tmp_path))


def filed(root: Path, digest: str) -> Path:
    """Where the archive keeps a file."""
    return root / digest[:2] / digest[2:4] / digest


def everything(url: str) -> tuple[dict[int, Any], list[Any]]:
    engine = make_engine(url)
    try:
        tickets = {t["number"]: show_ticket(engine, t["number"]) for t in list_tickets(engine, TicketFilter())}
        return tickets, list_quarantine(engine, None)
    finally:
        engine.dispose()


def test_a_restored_backup_has_every_ticket_message_and_attachment(filled: Any, tmp_path: Path) -> None:
    tickets, quarantine = everything(filled.settings.database_url)
    manifest = backup(filled.settings, tmp_path / "backup")
    assert manifest["counts"] == {"tickets": 3, "messages": 4, "attachments": 4, "quarantine": 2,
                                  "archive_files": len(filled.archive.digests())}
    assert manifest["database"] == ("postgresql" if PG_URL else "sqlite") and manifest["schema_revision"]

    target = target_settings(tmp_path, "restored")
    report = restore(target, tmp_path / "backup")

    assert report.ok, report
    assert everything(target.database_url) == (tickets, quarantine)
    archive = MailArchive(target.data_dir / "mail")
    kept = {a["filename"]: archive.get(a["sha256"]) for t in tickets.values() for a in t["attachments"]
            if a["state"] == "kept"}
    assert (kept["report.pdf"], kept["screen.png"], kept["log.txt"]) == (PDF, PNG, LOG)
    refused = [a for t in tickets.values() for a in t["attachments"] if a["state"] == "refused"]
    assert refused and all(a["sha256"] == "" for a in refused), "a refused executable is not stored on its own"
    assert all(archive.has(m["raw_sha256"]) for t in tickets.values() for m in t["messages"] if m["raw_sha256"])
    assert all(archive.has(q["raw_sha256"]) for q in quarantine)
    assert (target.data_dir / "secret.key").read_bytes() == (filled.settings.data_dir / "secret.key").read_bytes()


def test_archive_files_are_hard_linked_on_one_filesystem_and_copied_across(filled: Any, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    digest = filled.archive.digests()[0]
    live = filed(filled.settings.data_dir / "mail", digest)
    backup(filled.settings, tmp_path / "linked")
    assert os.path.samefile(live, filed(tmp_path / "linked/mail", digest))

    def cross_device(*_: Any) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    backup(filled.settings, tmp_path / "copied")
    copied = filed(tmp_path / "copied/mail", digest)
    assert not os.path.samefile(live, copied) and copied.read_bytes() == live.read_bytes()
    assert restore(target_settings(tmp_path, "restored"), tmp_path / "copied").ok


def test_restore_refuses_a_store_in_use_unless_forced(filled: Any, tmp_path: Path) -> None:
    backup(filled.settings, tmp_path / "backup")
    with pytest.raises(BackupError, match="restore needs an empty store"):
        restore(filled.settings, tmp_path / "backup")
    with pytest.raises(BackupError, match="not empty"):
        backup(filled.settings, tmp_path / "backup")
    target = target_settings(tmp_path, "other")
    MailArchive(target.data_dir / "mail").put(b"left over from an earlier life")
    with pytest.raises(BackupError, match="mail archive .* holds files"):
        restore(target, tmp_path / "backup")
    assert restore(target, tmp_path / "backup", force=True).ok


def test_a_damaged_archive_file_is_reported_and_left_out(filled: Any, tmp_path: Path) -> None:
    tickets, _ = everything(filled.settings.database_url)
    backup(filled.settings, tmp_path / "backup")
    sha = next(a["sha256"] for t in tickets.values() for a in t["attachments"] if a["filename"] == "report.pdf")
    damaged = filed(tmp_path / "backup/mail", sha)
    damaged.unlink()  # a hard link to the live file: replace it, do not write through it
    damaged.write_bytes(PDF[:-1])

    report = restore(target_settings(tmp_path, "restored"), tmp_path / "backup")

    assert (report.damaged, report.missing, report.ok) == ((sha,), (sha,), False)


def test_backup_after_a_retention_purge_restores_cleanly(filled: Any, tmp_path: Path) -> None:
    from datetime import timedelta

    from maildesk.adapters.retention import purge_quarantine

    import sqlalchemy as sa

    auto = make_mail(subject="Автоответ: Не открывается карта", headers=[("Auto-Submitted", "auto-replied")])
    ignored = ingest_bytes(filled, auto)
    assert ignored.outcome is Outcome.IGNORED
    [outsider] = [q for q in list_quarantine(filled.engine, None) if q["ticket"] is None]
    later = filled.deps.clock.now() + timedelta(days=91)
    assert purge_quarantine(filled.engine, filled.archive, later, 90) >= 1
    assert not filled.archive.has(outsider["raw_sha256"]), "retention deleted the refused mail's bytes"
    tickets, quarantine = everything(filled.settings.database_url)
    assert {q["id"]: q["state"] for q in quarantine}[outsider["id"]] == "purged"

    manifest = backup(filled.settings, tmp_path / "backup")
    assert outsider["raw_sha256"] not in manifest["archive"]
    target = target_settings(tmp_path, "restored")
    report = restore(target, tmp_path / "backup")

    assert (report.missing, report.damaged, report.ok) == ((), (), True), report
    assert everything(target.database_url) == (tickets, quarantine), "the purged entry's row comes back as it was"
    engine = make_engine(target.database_url)
    try:  # the purged mail's idempotency rows came back, so a redelivery is still a duplicate
        with engine.connect() as conn:
            keys = {k for (k,) in conn.execute(sa.text("SELECT key FROM processed_mail"))}
    finally:
        engine.dispose()
    assert ignored.key in keys and len(keys) == 6


def test_backup_and_restore_commands(filled: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # in-process for speed; the command would otherwise take over the root logger for later tests
    monkeypatch.setattr("maildesk.logs.setup_logging", lambda *_: None)
    (tmp_path / "b").mkdir()
    source = write_config(tmp_path, maildesk={"data_dir": str(filled.settings.data_dir)},
                          database={"url": filled.settings.database_url})
    target = write_config(tmp_path / "b")

    assert main(["--config", str(source), "backup", str(tmp_path / "backup")]) == 0
    assert "3 tickets, 4 messages, 4 attachments, 2 quarantined" in capsys.readouterr().out
    assert json.loads((tmp_path / "backup/manifest.json").read_text())["counts"]["tickets"] == 3
    assert main(["--config", str(target), "restore", str(tmp_path / "backup")]) == 0
    assert "restored" in capsys.readouterr().out
    assert main(["--config", str(target), "restore", str(tmp_path / "backup")]) == 1
    assert "restore needs an empty store" in capsys.readouterr().err
