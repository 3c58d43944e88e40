"""The inbound mail policy on real .eml fixtures, through the real `maildesk ingest` CLI.

tests/data/policy/ holds one message per rule, ordinary and hostile, written for this
project. They go through one `maildesk ingest` call, in file-name order, into one data
dir, so ticket numbers are fixed: #1 is the request from gb1 that the others try to
write into. Each test then reads the outcome back as an operator would
(`tickets show N --json`, `quarantine list --json`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA
from tests.test_cli import maildesk, write_config

FIXTURES = sorted((DATA / "policy").glob("*.eml"))
GB1 = "ГБУЗС «Городская больница № 1»"
_LINE = re.compile(r"^(?P<file>\S+\.eml): (?P<outcome>\w+) (?P<where>ticket #\d+|quarantine \d+|-)"
                   r" \((?P<rule>[^)]*)\)$")


class Desk:
    """The data dir after ingesting every fixture: outcomes by fixture name, and the CLI to ask."""

    def __init__(self, config: Path, stdout: str) -> None:
        self.config = config
        self.outcomes: dict[str, dict[str, str]] = {}
        for line in stdout.splitlines():
            match = _LINE.match(line)
            if match:
                self.outcomes[Path(match["file"]).stem] = match.groupdict()
        self._tickets: dict[int, dict[str, Any]] = {}
        self._listed: dict[int, dict[str, Any]] = {}

    def summary(self, number: int) -> dict[str, Any]:
        """The ticket as `tickets list --json` shows it (one call for all: the CLI is slow to start)."""
        if not self._listed:
            out = maildesk(self.config, "tickets", "list", "--json").stdout
            self._listed = {t["number"]: t for t in json.loads(out)}
        return self._listed[number]

    def ticket(self, number: int) -> dict[str, Any]:
        if number not in self._tickets:
            out = maildesk(self.config, "tickets", "show", str(number), "--json").stdout
            self._tickets[number] = json.loads(out)
        return self._tickets[number]

    def quarantine(self) -> list[dict[str, Any]]:
        return json.loads(maildesk(self.config, "quarantine", "list", "--json").stdout)

    def number(self, fixture: str) -> int:
        where = self.outcomes[fixture]["where"]
        assert where.startswith("ticket #"), f"{fixture}: {self.outcomes[fixture]}"
        return int(where.removeprefix("ticket #"))


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Desk:
    config = write_config(tmp_path_factory.mktemp("policy"))
    maildesk(config, "db", "upgrade")
    proc = maildesk(config, "ingest", *map(str, FIXTURES))  # exit 0: every message ended in an outcome
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return Desk(config, proc.stdout.decode())


def test_every_fixture_ends_in_exactly_one_recorded_outcome(desk: Desk) -> None:
    assert sorted(desk.outcomes) == [f.stem for f in FIXTURES]


def test_an_ordinary_request_fills_the_contact_from_the_form(desk: Desk) -> None:
    ticket = desk.summary(desk.number("01_request_gb1"))
    assert (ticket["number"], ticket["status"], ticket["organisation"]) == (1, "new", GB1)
    assert ticket["requester_name"] == "Иванова Мария Петровна"


def test_an_outsider_using_a_tag_gets_a_new_linked_ticket(desk: Desk) -> None:
    outcome = desk.outcomes["02_outsider_tag"]
    assert (outcome["outcome"], outcome["rule"]) == ("created", "thread.not_permitted")
    assert desk.summary(desk.number("02_outsider_tag"))["linked_ticket"] == 1


def test_claiming_an_organisation_in_the_form_does_not_open_its_tickets(desk: Desk) -> None:
    assert desk.summary(desk.number("03_claim_organisation"))["organisation"] == GB1  # shown as typed
    outcome = desk.outcomes["04_reply_after_claim"]
    assert (outcome["outcome"], outcome["rule"]) == ("created", "thread.not_permitted")
    assert desk.summary(desk.number("04_reply_after_claim"))["linked_ticket"] == 1
    senders = [m["sender"] for m in desk.ticket(1)["messages"]]
    assert "evil@gb7.sev.gov.ru" not in senders


def test_a_colleague_from_the_same_mail_domain_writes_into_the_ticket(desk: Desk) -> None:
    assert desk.outcomes["05_colleague_reply"]["where"] == "ticket #1"
    assert [m["sender"] for m in desk.ticket(1)["messages"]] == ["ivanova@gb1.sev.gov.ru", "petrova@gb1.sev.gov.ru"]


def test_an_auto_reply_from_a_refused_domain_is_ignored_not_recorded(desk: Desk) -> None:
    outcome = desk.outcomes["06_auto_reply_refused_domain"]
    assert (outcome["outcome"], outcome["where"], outcome["rule"]) == ("ignored", "-", "automatic.auto_reply")
    assert all("evil.example" not in m["sender"] for m in desk.ticket(1)["messages"])
    assert all(q["sender"] != "attacker@evil.example" for q in desk.quarantine())


def test_a_nested_forward_bomb_is_a_refused_file_not_a_crash(desk: Desk) -> None:
    ticket = desk.ticket(desk.number("07_nested_forward_bomb"))
    [att] = ticket["attachments"]
    assert (att["filename"], att["state"]) == ("Ошибка.eml", "refused")
    assert "not opened" in att["reason"] and "deeper than" in att["reason"]
    assert any(q["ticket"] == ticket["number"] for q in desk.quarantine())


def test_forwarded_screenshots_count_once(desk: Desk) -> None:
    ticket = desk.ticket(desk.number("08_forwarded_screenshots"))
    assert [(a["filename"], a["state"]) for a in ticket["attachments"]] == [
        ("Скриншоты ошибки.eml", "kept"), ("screen1.png", "kept"), ("screen2.png", "kept"), ("screen3.png", "kept"),
    ]


def test_too_many_loose_images_are_refused_the_text_kept(desk: Desk) -> None:
    ticket = desk.ticket(desk.number("09_too_many_images"))
    assert [a["state"] for a in ticket["attachments"]] == ["refused"] * 6
    assert all(a["reason"].startswith("attachment.too_many_images") for a in ticket["attachments"])
    assert "слоты" in ticket["messages"][0]["text"]


def test_an_executable_disguised_as_jpg_is_refused_and_not_stored(desk: Desk) -> None:
    ticket = desk.ticket(desk.number("10_exe_as_jpg"))
    [att] = ticket["attachments"]
    assert (att["filename"], att["state"], att["sha256"]) == ("photo.jpg", "refused", "")
    assert att["reason"].startswith("attachment.executable") and att["size"] > 0


def test_a_document_only_mail_is_not_a_request(desk: Desk) -> None:
    outcome = desk.outcomes["11_document_only"]
    assert (outcome["outcome"], outcome["rule"]) == ("quarantined", "request.invalid")
    [entry] = [q for q in desk.quarantine() if q["subject"] == "Заявка"]
    assert entry["reason"] == "attachment.document_only" and entry["ticket"] is None


def test_a_form_without_a_phone_puts_the_ticket_in_feedback(desk: Desk) -> None:
    ticket = desk.ticket(desk.number("12_form_missing_phone"))
    assert ticket["status"] == "feedback"
    [event] = [e for e in ticket["events"] if e["action"] == "form_incomplete"]
    assert event["detail"]["missing"] == ["phone"]
    assert ticket["organisation"] == GB1  # «Место работы», a variant label
