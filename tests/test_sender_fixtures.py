"""The sender and automatic-mail rules on the project's own .eml fixtures, through the real `maildesk ingest`.

tests/data/senders/ holds one message per From-field and Authentication-Results rule
(hostile ones included), tests/data/classify/ one per bounce, auto-reply and list rule.
All of them go into one data directory with one `maildesk ingest` call, as an MTA pipe
would deliver them (no envelope sender: the Return-Path and the headers speak); the
two in classify/envelope/ need the envelope sender the pipe passes (`--sender`).
The desk runs in `trusted-relay` mode with authserv-id mx.sev.gov.ru, so every
fixture a person sent carries that relay's Authentication-Results.

Each outcome is read back from the store (`quarantine list --json`, `tickets list
--json`, `tickets show --json`); the rule that classified an ignored message is
checked on the same bytes with the pure core, since an ignored message leaves no row.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from maildesk.core.classify import ClassifyPolicy, classify
from maildesk.core.model import Envelope
from maildesk.core.parse import parse
from maildesk.core.triage import NO_TEXT
from tests.conftest import DATA
from tests.test_cli import maildesk, write_config

SENDERS = DATA / "senders"
CLASSIFY = DATA / "classify"
ENVELOPE = CLASSIFY / "envelope"

CREATED, IGNORED = "created", "ignored"
# file → the quarantine reason, or CREATED
SENDER_RULES: dict[str, str] = {
    "allowed_plain.eml": CREATED,
    "allowed_name_split_mid_character.eml": CREATED,
    "allowed_raw_cp1251_name.eml": CREATED,
    "allowed_attachment_only.eml": CREATED,
    "control_byte_in_domain.eml": "sender.header_defect",
    "del_in_domain.eml": "sender.header_defect",
    "latin1_c1_byte_in_domain.eml": "sender.header_defect",
    "utf8_lookalike_domain.eml": "sender.header_defect",
    "encoded_word_local_part.eml": "sender.encoded_word",
    "two_from_fields.eml": "sender.multiple_from",
    "two_mailboxes.eml": "sender.several_mailboxes",
    "group_syntax.eml": "sender.group",
    "comment_after_address.eml": "sender.comment",
    "quoted_local_part.eml": "sender.quoted_local_part",
    "trailing_dot.eml": "sender.trailing_dot",
    "display_name_shows_other_address.eml": "sender.display_name_address",
    "bidi_override_in_name.eml": "sender.display_name_control",
    "other_domain.eml": "sender.domain_not_allowed",
    "domain_as_prefix.eml": "sender.domain_not_allowed",
    "from_after_garbage_line.eml": "sender.no_from",
    "no_from.eml": "sender.no_from",
    "auth_forged_encoded_word.eml": "sender.auth_unparseable",
    "auth_forged_control_byte.eml": "sender.auth_unparseable",
    "auth_only_foreign.eml": "sender.auth_missing",
    "auth_duplicated.eml": "sender.auth_duplicated",
    "auth_dmarc_fail.eml": "sender.auth_failed",
    "auth_header_from_mismatch.eml": "sender.auth_mismatch",
}
# file → (outcome, the classify rule that fired); a person's mail is CREATED with no rule
CLASSIFY_RULES: dict[str, tuple[str, str | None]] = {
    "bounce_return_path_null.eml": (IGNORED, "bounce.null_sender"),
    "bounce_return_path_spaced.eml": (IGNORED, "bounce.null_sender"),
    "bounce_dsn.eml": (IGNORED, "bounce.dsn"),
    "bounce_mailer_daemon.eml": (IGNORED, "bounce.mailer_daemon"),
    "bounce_mailer_daemon_no_domain.eml": (IGNORED, "bounce.mailer_daemon"),
    "bounce_mailer_daemon_angle_no_domain.eml": (IGNORED, "bounce.mailer_daemon"),
    "bounce_postmaster.eml": (IGNORED, "bounce.mailer_daemon"),
    "bounce_failed_recipients.eml": (IGNORED, "bounce.failed_recipients"),
    "auto_submitted_auto_replied.eml": (IGNORED, "auto.auto_submitted"),
    "auto_submitted_with_comment.eml": (IGNORED, "auto.auto_submitted"),
    "person_auto_submitted_no_with_comment.eml": (CREATED, None),
    "x_autoreply.eml": (IGNORED, "auto.x_autoreply"),
    "suppress_all.eml": (IGNORED, "auto.suppress"),
    "person_suppress_receipts_only.eml": (CREATED, None),
    "precedence_bulk_with_comment.eml": (IGNORED, "auto.precedence"),
    "precedence_second_field.eml": (IGNORED, "auto.precedence"),
    "list_id.eml": (IGNORED, "auto.list"),
    "list_help.eml": (IGNORED, "auto.list"),
    "list_subscribe.eml": (IGNORED, "auto.list"),
    "list_unsubscribe.eml": (IGNORED, "auto.list"),
    "list_post.eml": (IGNORED, "auto.list"),
    "list_owner.eml": (IGNORED, "auto.list"),
    "list_archive.eml": (IGNORED, "auto.list"),
    "read_receipt.eml": (IGNORED, "auto.read_receipt"),
}
# file → the envelope sender Postfix pipe(8) passes for a null sender
ENVELOPE_RULES: dict[str, str] = {
    "pipe_sender_mailer_daemon.eml": "MAILER-DAEMON",  # pipe(8)'s default for ${sender}
    "pipe_sender_empty.eml": "",  # with null_sender= (the README's master.cf)
}
_LINE = re.compile(r"^(?P<file>\S+): (?P<outcome>\w+) (?P<where>.+) \((?P<rule>[^()]*)\)$")


def _subject(path: Path) -> str:
    return parse(path.read_bytes()).subject


def _ingest(config: Path, files: list[Path], *options: str) -> dict[str, tuple[str, str]]:
    out = maildesk(config, "ingest", *options, *map(str, files)).stdout.decode()
    found = {}
    for line in out.splitlines():
        match = _LINE.match(line)
        assert match, line
        found[Path(match["file"]).name] = (match["outcome"], match["rule"])
    return found


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One data directory with every fixture ingested; what the CLI printed and listed."""
    tmp = tmp_path_factory.mktemp("fixtures")
    config = write_config(tmp, senders={"allowed_domains": ["sev.gov.ru"], "allow_subdomains": True,
                                        "authentication": "trusted-relay", "authserv_id": "mx.sev.gov.ru"})
    maildesk(config, "db", "upgrade")
    printed = _ingest(config, sorted(SENDERS.glob("*.eml")) + sorted(CLASSIFY.glob("*.eml")))
    for name, sender in ENVELOPE_RULES.items():
        printed.update(_ingest(config, [ENVELOPE / name], f"--sender={sender}"))
    return {
        "config": config,
        "printed": printed,
        "quarantine": json.loads(maildesk(config, "quarantine", "list", "--json").stdout),
        "tickets": json.loads(maildesk(config, "tickets", "list", "--json").stdout),
    }


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in SENDERS.glob("*.eml")) == sorted(SENDER_RULES)
    assert sorted(p.name for p in CLASSIFY.glob("*.eml")) == sorted(CLASSIFY_RULES)
    assert sorted(p.name for p in ENVELOPE.glob("*.eml")) == sorted(ENVELOPE_RULES)
    subjects = [_subject(p) for p in [*SENDERS.glob("*.eml"), *CLASSIFY.rglob("*.eml")]]
    assert len(set(subjects)) == len(subjects), "the store's lists are matched to fixtures by subject"


def test_each_sender_rule_gives_its_quarantine_reason_or_a_ticket(desk: dict[str, Any]) -> None:
    held = {entry["subject"]: entry["reason"] for entry in desk["quarantine"]}
    tickets = {t["subject"] for t in desk["tickets"]}
    for name, expected in SENDER_RULES.items():
        subject = _subject(SENDERS / name)
        outcome, _ = desk["printed"][name]
        if expected == CREATED:
            assert (outcome, subject in tickets, held.get(subject)) == (CREATED, True, None), name
        else:
            assert (outcome, held.get(subject), subject in tickets) == ("quarantined", expected, False), name


def test_each_automatic_mail_rule_is_ignored_and_a_person_gets_a_ticket(desk: dict[str, Any]) -> None:
    held = {entry["subject"] for entry in desk["quarantine"]}
    tickets = {t["subject"] for t in desk["tickets"]}
    policy = ClassifyPolicy(message_id_domain="desk.test", desk_addresses=("help@miac.sev.gov.ru",))
    cases = [(CLASSIFY / n, Envelope("cli"), e) for n, e in CLASSIFY_RULES.items()]
    cases += [(ENVELOPE / n, Envelope("cli", mail_from=s), (IGNORED, "bounce.null_sender"))
              for n, s in ENVELOPE_RULES.items()]
    for path, envelope, (outcome, code) in cases:
        subject = _subject(path)
        printed, rule = desk["printed"][path.name]
        assert (printed, subject in tickets, subject in held) == (outcome, outcome == CREATED, False), path.name
        if outcome == IGNORED:
            assert rule == ("automatic.bounce" if code.startswith("bounce.") else "automatic.auto_reply"), path.name
        _, reason = classify(parse(path.read_bytes()), envelope, policy)
        assert (reason.code if reason else None) == code, path.name


def test_nothing_else_was_created_or_held(desk: dict[str, Any]) -> None:
    created = [n for n, e in SENDER_RULES.items() if e == CREATED]
    created += [n for n, (e, _) in CLASSIFY_RULES.items() if e == CREATED]
    held = [n for n, e in SENDER_RULES.items() if e != CREATED]
    assert len(desk["tickets"]) == len(created)
    assert len(desk["quarantine"]) == len(held)


def _show(desk: dict[str, Any], fixture: Path) -> dict[str, Any]:
    subject = _subject(fixture)
    [ticket] = [t for t in desk["tickets"] if t["subject"] == subject]
    return json.loads(maildesk(desk["config"], "tickets", "show", str(ticket["number"]), "--json").stdout)


def test_a_name_split_mid_character_and_a_raw_windows_1251_name_read_as_written(desk: dict[str, Any]) -> None:
    split = _show(desk, SENDERS / "allowed_name_split_mid_character.eml")
    assert split["messages"][0]["sender_name"] == "Иванова Мария Петровна"
    raw = _show(desk, SENDERS / "allowed_raw_cp1251_name.eml")
    assert raw["messages"][0]["sender_name"] == "Петрова Анна"


def test_mail_without_text_gets_a_placeholder_and_keeps_its_file(desk: dict[str, Any]) -> None:
    shown = _show(desk, SENDERS / "allowed_attachment_only.eml")
    assert shown["messages"][0]["text"] == NO_TEXT
    assert [(a["filename"], a["state"]) for a in shown["attachments"]] == [("akt.pdf", "kept")]


def test_a_released_forged_agent_mail_runs_no_agent_command(tmp_path: Path) -> None:
    config = write_config(tmp_path, senders={"allowed_domains": ["sev.gov.ru"], "allow_subdomains": True,
                                             "authentication": "trusted-relay", "authserv_id": "mx.sev.gov.ru"})
    maildesk(config, "db", "upgrade")
    maildesk(config, "ingest", str(SENDERS / "allowed_plain.eml"))
    [ticket] = json.loads(maildesk(config, "tickets", "list", "--json").stdout)
    forged = (
        "Received: from mail.evil.example by mx.sev.gov.ru; Tue, 12 Mar 2024 11:00:00 +0300\r\n"
        "Authentication-Results: mx.sev.gov.ru; spf=fail smtp.mailfrom=evil.example; "
        "dmarc=fail (p=reject) header.from=miac.sev.gov.ru\r\n"
        "From: =?utf-8?B?0J/QtdGC0YDQvtCyINCf0ZHRgtGA?= <petrov@miac.sev.gov.ru>\r\n"
        "To: help@miac.sev.gov.ru\r\n"
        f"Subject: Re: [СТП #{ticket['number']}] Не открывается карта пациента\r\n"
        "Message-ID: <forged-agent-1@evil.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "/status closed\r\nВсё исправлено.\r\n"
    ).encode()
    maildesk(config, "ingest", stdin=forged)
    [entry] = json.loads(maildesk(config, "quarantine", "list", "--json").stdout)
    assert entry["reason"] == "sender.auth_failed"
    released = json.loads(maildesk(config, "quarantine", "release", str(entry["id"]), "--json").stdout)
    assert not released["rule"].startswith("agent."), released
    shown = json.loads(maildesk(config, "tickets", "show", str(ticket["number"]), "--json").stdout)
    assert shown["status"] != "closed"
    assert "command" not in [e["action"] for e in shown["events"]]
