"""The `maildesk` command as an MTA pipe and as people use it: real subprocesses, real store."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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


def test_text_and_organisation_filters_ignore_case_in_cyrillic(config: Path) -> None:
    maildesk(config, "ingest", stdin=make_mail(subject="ПРИНТЕР в регистратуре",
                                               body="Не печатает.\nМО: ГБУЗС «Городская больница № 1»\n"
                                                    "Телефон: 12345"))
    maildesk(config, "ingest", stdin=make_mail(subject="Монитор", body="Мерцает ЭКРАН. Телефон: 12345",
                                               message_id="second@gb1.sev.gov.ru"))
    maildesk(config, "ingest", stdin=make_mail(subject="Скидка 100%", body="Телефон: 12345",
                                               message_id="third@gb1.sev.gov.ru"))

    def numbers(*filters: str) -> list[int]:
        return [t["number"] for t in json.loads(maildesk(config, "tickets", "list", *filters, "--json").stdout)]

    assert numbers("--text", "принтер") == [1], "subject, upper case stored"
    assert numbers("--text", "Принтер") == numbers("--text", "ПРИНТЕР") == [1]
    assert numbers("--text", "экран") == [2], "message text"
    assert numbers("--text", "100%") == [3] and numbers("--text", "0%") == [3]
    assert numbers("--text", "%") == [3], "% is a character, not a wildcard"
    assert numbers("--text", "_") == []
    # the form's МО field names the requester's organisation, which her later tickets carry too
    assert numbers("--organisation", "городская БОЛЬНИЦА") == [3, 2, 1]
    assert numbers("--organisation", "ГОРОДСКАЯ больница № 1") == [3, 2, 1]
    assert numbers("--organisation", "поликлиника") == []


def test_quarantine_release_as_json(config: Path) -> None:
    maildesk(config, "ingest", stdin=make_mail(sender="x@evil.example", subject="Спам", body="Телефон: 1"))
    [entry] = json.loads(maildesk(config, "quarantine", "list", "--json").stdout)
    released = json.loads(maildesk(config, "quarantine", "release", str(entry["id"]), "--json").stdout)
    assert released == {"id": entry["id"], "outcome": "created", "rule": "ticket.new", "ticket": 1,
                        "quarantine": None, "reasons": []}
    assert json.loads(maildesk(config, "tickets", "show", "1", "--json").stdout)["subject"] == "Спам"
    again = maildesk(config, "quarantine", "release", str(entry["id"]), "--json", check=False)
    assert again.returncode == 1 and b"is released, not held" in again.stderr


def test_a_database_that_is_down_gives_one_line_not_a_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path, database={"url": "postgresql+psycopg://maildesk:s3cret@127.0.0.1:1/none"})
    for command, code in ((("tickets", "list"), 1), (("serve",), 1), (("quarantine", "list"), 1),
                          (("db", "upgrade"), 1)):
        proc = maildesk(config, *command, check=False)
        err = proc.stderr.decode()
        assert proc.returncode == code, (command, err)
        assert err.startswith("maildesk: database postgresql+psycopg://***@127.0.0.1:1/none unavailable: "), err
        assert "Traceback" not in err and "s3cret" not in err and len(err.strip().splitlines()) == 1, err
    ingest = maildesk(config, "ingest", str(DATA / "new_request.eml"), check=False)
    assert ingest.returncode == 75 and b"s3cret" not in ingest.stderr


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


def test_ingest_exits_75_on_an_unexpected_error_so_the_mta_keeps_the_mail(config: Path) -> None:
    # A failure the message causes is quarantined by the service; what is left to escape is the
    # unexpected, e.g. a row this version cannot read (written by a newer maildesk, then downgraded).
    from maildesk.config import load

    maildesk(config, "ingest", str(DATA / "new_request.eml"))
    engine = sa.create_engine(load(config).database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE processed_mail SET outcome = 'from-a-newer-version'"))
    proc = maildesk(config, "ingest", str(DATA / "new_request.eml"), str(DATA / "new_request.eml"), check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 75, err
    assert err.count("new_request.eml: not taken, try again later: ValueError: 'from-a-newer-version'") == 2, \
        "each message is reported and the next one still tried"
    assert "Traceback (most recent call last)" in err, "the admin gets the traceback in the log"
    with engine.begin() as conn:  # the admin repairs the row; the MTA delivers again
        conn.execute(sa.text("UPDATE processed_mail SET outcome = 'created'"))
    engine.dispose()
    assert b": duplicate " in maildesk(config, "ingest", str(DATA / "new_request.eml")).stdout


@pytest.mark.slow
def test_sigkill_during_ingest_leaves_nothing_or_a_whole_ticket(config: Path, tmp_path: Path) -> None:
    from maildesk.config import load

    settings = load(config)
    engine = sa.create_engine(settings.database_url)
    eml_path = tmp_path / "request.eml"
    eml_path.write_bytes(make_mail(message_id="kill-test@gb1.sev.gov.ru",
                                   attachments=[("скан.pdf", "application/pdf", b"%PDF-1.4\n" + b"x" * 300_000)]))
    cmd = [sys.executable, "-m", "maildesk", "--config", str(config), "ingest", str(eml_path)]
    archive = settings.data_dir / "mail"

    def start_afresh() -> None:
        """An empty store and an empty archive, so that every run writes every file and row anew."""
        with engine.begin() as conn:
            for table in ("events", "attachments", "outbox", "processed_mail", "messages", "participants",
                          "quarantine", "tickets", "contacts", "organisations"):
                conn.execute(sa.text(f"DELETE FROM {table}"))
        shutil.rmtree(archive, ignore_errors=True)

    start = time.monotonic()
    subprocess.run(cmd, capture_output=True, check=True)
    full = time.monotonic() - start

    outcomes = []
    for step in range(10):
        start_afresh()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * (0.5 + step * 0.06))  # spread the kills over import, parse, archive and commit
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with engine.connect() as conn:
            tickets = conn.execute(sa.text("SELECT count(*) FROM tickets")).scalar()
            processed = conn.execute(sa.text("SELECT count(*) FROM processed_mail")).scalar()
            messages = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar()
            outbox = conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar()
            named = [d for q in ("SELECT raw_sha256 FROM messages", "SELECT sha256 FROM attachments",
                                 "SELECT raw_sha256 FROM processed_mail") for (d,) in conn.execute(sa.text(q))]
        assert tickets in (0, 1)
        assert (processed, messages) == (tickets, tickets), "a ticket is whole or absent"
        assert (outbox > 0) == (tickets == 1), "notifications are committed with their ticket"
        for digest in named:  # the files are written and synced before the commit that names them
            path = archive / digest[:2] / digest[2:4] / digest
            assert path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest, digest
        outcomes.append(tickets)
    assert 0 in outcomes, f"no kill landed before the commit ({outcomes}): the runs prove nothing"
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


@pytest.mark.parametrize(
    ("today", "code", "expected"),
    [
        ("2026-06-01", 0, []),
        ("2027-06-01", 0, ["warning: no year 2028"]),  # next year missing: a warning before December
        ("2027-12-01", 1, ["missing: no year 2028"]),  # and a failure in December
        ("2028-06-01", 1, ["missing: no year 2028", "warning: no year 2029"]),  # this year: a failure any time
    ],
)
def test_calendar_check_on_a_given_day(config: Path, today: str, code: int, expected: list[str]) -> None:
    checked = maildesk(config, "calendar", "check", "--today", today, check=False)
    lines = checked.stdout.decode().splitlines()
    assert checked.returncode == code and lines[0].startswith("calendar valid: years 2024 (official)")
    assert [line.split(" in the")[0] for line in lines[1:]] == expected


def test_calendar_check_warns_of_a_draft_next_year(tmp_path: Path) -> None:
    overlay = tmp_path / "calendar.local.toml"
    overlay.write_text('[years.2027]\nstatus = "draft"\n', encoding="utf-8")
    checked = maildesk(write_config(tmp_path, calendar={"local_file": str(overlay)}), "calendar", "check",
                       "--today", "2026-12-01")
    assert "2027 (draft)" in checked.stdout.decode()
    assert "warning: year 2027 of the production calendar is a draft" in checked.stdout.decode()


def test_jobs_dry_run_shows_what_would_close(config: Path) -> None:
    from datetime import datetime, timedelta, timezone

    maildesk(config, "ingest", stdin=make_mail(subject="Принтер", body="Не печатает принтер."))  # no phone: feedback
    later = (datetime.now(timezone.utc) + timedelta(days=60)).isoformat()  # the ticket is created now
    dry = maildesk(config, "jobs", "run", "stale_close", "--as-of", later, "--dry-run", "--json")
    [planned] = json.loads(dry.stdout)
    assert (planned["ticket"], planned["status"]) == (1, "closed")
    everything = json.loads(maildesk(config, "jobs", "run", "all", "--as-of", later, "--dry-run", "--json").stdout)
    assert [e["job"] for e in everything if e.get("ticket") == 1] == ["stale_close"], "no reminder for a ticket closed"
    refused = maildesk(config, "jobs", "run", "all", "--as-of", later, check=False)
    assert refused.returncode == 1 and "in the future" in refused.stderr.decode()
    [ticket] = json.loads(maildesk(config, "tickets", "list", "--json").stdout)
    assert ticket["status"] == "feedback", "a dry run changes nothing, a future one does not run"


def test_jobs_list_names_every_scheduled_job(config: Path) -> None:
    listed = maildesk(config, "jobs", "list").stdout.decode()
    names = [line.split()[0] for line in listed.splitlines()]
    assert names == ["housekeeping", "stale_close", "stale_remind", "sla_warning", "sla_breach", "resolve_warning",
                     "resolve_breach", "calendar_check", "retention", "outbox"]
    ran = maildesk(config, "jobs", "run", "retention", "--dry-run").stdout.decode()
    assert ran.startswith("would act on 0 ticket(s)")


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
