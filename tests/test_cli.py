"""The `maildesk` command as an MTA pipe and as people use it: real subprocesses, real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import DATA, PG_URL, base_config, _fresh_pg_database
from tests.mailmaker import make_mail


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    table = base_config(tmp_path / "data", **overrides)
    if PG_URL and "database" not in overrides:
        table["database"] = {"url": _fresh_pg_database()}
    lines: list[str] = []
    for section, values in table.items():
        rows = values if isinstance(values, list) else [values]
        for row in rows:
            lines.append(f"[[{section}]]" if isinstance(values, list) else f"[{section}]")
            lines.extend(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in row.items())
    path = tmp_path / "maildesk.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def maildesk(config: Path, *args: str, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "maildesk", "--config", str(config), *args],
        input=stdin, capture_output=True, timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"maildesk {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
    return proc


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    maildesk(path, "db", "upgrade")
    return path


def test_ingest_a_file_and_list_the_ticket_as_json(config: Path) -> None:
    out = maildesk(config, "ingest", str(DATA / "new_request.eml"))
    assert b"created ticket #1" in out.stdout
    [ticket] = json.loads(maildesk(config, "tickets", "list", "--json").stdout)
    assert ticket["number"] == 1
    assert ticket["subject"] == "Не открывается карта пациента в МИС"
    assert ticket["status"] == "new"
    assert ticket["requester_email"] == "ivanova@gb1.sev.gov.ru"
    shown = json.loads(maildesk(config, "tickets", "show", "1", "--json").stdout)
    assert shown["messages"][0]["decision"]["rule"] == "ticket.new"
    assert [e["action"] for e in shown["events"]][0] == "created"
    human = maildesk(config, "tickets", "show", "1").stdout.decode()
    assert "Заявка #1: Не открывается карта пациента в МИС" in human


def test_ingest_reads_stdin_like_an_mta_pipe(config: Path) -> None:
    out = maildesk(config, "ingest", "--sender", "ivanova@gb1.sev.gov.ru", stdin=make_mail())
    assert b"created" in out.stdout
    again = maildesk(config, "ingest", str(DATA / "new_request.eml"), str(DATA / "new_request.eml"))
    assert again.stdout.decode().count(": duplicate ") == 1


def test_filters_and_quarantine_commands(config: Path) -> None:
    maildesk(config, "ingest", stdin=make_mail(subject="Принтер", body="Не печатает. Телефон: 12345"))
    maildesk(config, "ingest", stdin=make_mail(sender="x@evil.example", subject="Спам"))
    listed = json.loads(maildesk(config, "tickets", "list", "--text", "Принтер", "--json").stdout)
    assert [t["subject"] for t in listed] == ["Принтер"]
    assert json.loads(maildesk(config, "tickets", "list", "--status", "closed", "--json").stdout) == []
    [entry] = json.loads(maildesk(config, "quarantine", "list", "--json").stdout)
    assert entry["sender"] == "x@evil.example"
    shown = json.loads(maildesk(config, "quarantine", "show", str(entry["id"]), "--json").stdout)
    assert shown["decision"]["rule"] == "sender.refused"
    released = maildesk(config, "quarantine", "release", str(entry["id"]))
    assert b"created" in released.stdout


def test_errors_are_clear_and_non_zero(config: Path, tmp_path: Path) -> None:
    missing = maildesk(config, "tickets", "show", "999", check=False)
    assert missing.returncode == 1 and b"ticket #999 not found" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[[desks]]\naddress = "help@miac.sev.gov.ru"\n[smtp]\nmode = "open"\n')
    broken = maildesk(bad, "tickets", "list", check=False)
    assert broken.returncode == 78 and b"smtp.mode" in broken.stderr


def test_ingest_exits_75_when_the_store_is_down(tmp_path: Path) -> None:
    config = write_config(tmp_path, database={"url": "postgresql+psycopg://maildesk@127.0.0.1:1/none"})
    proc = maildesk(config, "ingest", str(DATA / "new_request.eml"), check=False)
    assert proc.returncode == 75, proc.stderr
    assert b"try again later" in proc.stderr


@pytest.mark.slow
def test_sigkill_during_ingest_leaves_nothing_or_a_whole_ticket(config: Path, tmp_path: Path) -> None:
    from maildesk.config import load

    settings = load(config)
    engine = sa.create_engine(settings.database_url)
    eml_path = tmp_path / "request.eml"
    eml_path.write_bytes(make_mail(message_id="kill-test@gb1.sev.gov.ru",
                                   attachments=[("скан.pdf", "application/pdf", b"%PDF-1.4\n" + b"x" * 300_000)]))
    cmd = [sys.executable, "-m", "maildesk", "--config", str(config), "ingest", str(eml_path)]
    start = time.monotonic()
    subprocess.run(cmd, capture_output=True, check=True)
    full = time.monotonic() - start
    with engine.begin() as conn:  # start again from an empty store for the kill runs
        for table in ("events", "attachments", "outbox", "processed_mail", "messages", "participants", "quarantine",
                      "tickets", "contacts", "organisations"):
            conn.execute(sa.text(f"DELETE FROM {table}"))

    for step in range(10):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * (0.5 + step * 0.06))  # spread the kills over import, parse, archive and commit
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with engine.connect() as conn:
            tickets = conn.execute(sa.text("SELECT count(*) FROM tickets")).scalar()
            processed = conn.execute(sa.text("SELECT count(*) FROM processed_mail")).scalar()
            messages = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar()
            outbox = conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar()
        assert tickets in (0, 1)
        assert (processed, messages) == (tickets, tickets), "a ticket is whole or absent"
        assert (outbox > 0) == (tickets == 1), "notifications are committed with their ticket"
    subprocess.run(cmd, capture_output=True, check=True)
    subprocess.run(cmd, capture_output=True, check=True)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tickets")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM attachments")).scalar() == 1
    engine.dispose()


def test_check_passes_on_a_good_config_and_names_the_failure_on_a_bad_one(config: Path, tmp_path: Path) -> None:
    good = maildesk(config, "check")
    assert b"ok   database" in good.stdout and b"ok   templates" in good.stdout and b"ok   calendar" in good.stdout
    (tmp_path / "other").mkdir()
    stale = write_config(tmp_path / "other", outgoing={"transport": "smtp", "host": "127.0.0.1", "port": 1})
    bad = maildesk(stale, "check", check=False)
    assert bad.returncode == 1
    assert b"FAIL database" in bad.stdout, "schema not created: db upgrade was not run"
    assert b"FAIL outgoing" in bad.stdout


def test_templates_preview_and_calendar(config: Path) -> None:
    preview = maildesk(config, "templates", "preview", "ticket_created").stdout.decode()
    assert preview.startswith("Subject: [СТП #") and "Здравствуйте" in preview
    shown = maildesk(config, "calendar", "show", "2025").stdout.decode()
    assert "247 working days" in shown and "02.05" in shown
    assert maildesk(config, "calendar", "check").returncode == 0


def test_jobs_dry_run_shows_what_would_close(config: Path) -> None:
    maildesk(config, "ingest", stdin=make_mail(subject="Принтер", body="Не печатает принтер."))  # no phone: feedback
    dry = maildesk(config, "jobs", "run", "stale_close", "--as-of", "2027-03-01T09:00+03:00", "--dry-run", "--json")
    [planned] = json.loads(dry.stdout)
    assert (planned["ticket"], planned["status"]) == (1, "closed")
    [ticket] = json.loads(maildesk(config, "tickets", "list", "--json").stdout)
    assert ticket["status"] == "feedback", "a dry run changes nothing"


def test_agent_actions_at_the_terminal(config: Path) -> None:
    maildesk(config, "ingest", stdin=make_mail())
    maildesk(config, "tickets", "assign", "1", "me", "--as", "petrov")
    maildesk(config, "tickets", "note", "1", "позвонить", "после", "обеда", "--as", "petrov")
    refused = maildesk(config, "tickets", "priority", "1", "7", "--as", "petrov", check=False)
    assert refused.returncode == 1 and "приоритет" in refused.stderr.decode()
    maildesk(config, "tickets", "status", "1", "resolved", "--as", "petrov")
    shown = json.loads(maildesk(config, "tickets", "show", "1", "--json").stdout)
    assert (shown["status"], shown["owner"], shown["priority"]) == ("resolved", "petrov@miac.sev.gov.ru", 3)
    mine = json.loads(maildesk(config, "tickets", "list", "--mine", "--as", "petrov", "--json").stdout)
    assert [t["number"] for t in mine] == [1]
    assert json.loads(maildesk(config, "tickets", "list", "--waiting", "--json").stdout)[0]["number"] == 1
    nobody = maildesk(config, "tickets", "note", "1", "x", check=False)
    assert nobody.returncode == 1 and b"--as" in nobody.stderr
