"""The config loader: the example file, defaults, and errors that name the key."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from maildesk.config import ConfigError, Settings, load, parse_settings, secret_value

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "maildesk.example.toml"
MINIMAL = {"desks": [{"address": "help@miac.sev.gov.ru"}]}


def test_example_config_loads_and_shows_the_defaults() -> None:
    settings = load(EXAMPLE)
    defaults = Settings()
    for section in ("senders", "smtp", "outgoing", "tickets", "form", "attachments", "sla", "stale", "calendar"):
        assert getattr(settings, section) == getattr(defaults, section), section
    shown = {k for k in vars(settings.maildesk) if k != "data_dir"}
    assert all(getattr(settings.maildesk, k) == getattr(defaults.maildesk, k) for k in shown - {"data_dir"})


def test_example_config_shows_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    table = tomllib.loads(text)
    for section in ("maildesk", "database", "senders", "smtp", "outgoing", "tickets", "form", "attachments",
                    "sla", "stale", "calendar", "retention", "http"):
        cls = type(getattr(Settings(), section))
        missing = {f.name for f in dataclasses.fields(cls)} - set(table[section])
        assert not missing, f"[{section}] lacks {missing}"
    for key in ("name", "host", "port", "security", "user", "folder", "processed_folder", "quarantine_folder"):
        assert f"# {key} = " in text, f"[[imap]] {key} not shown"


def test_minimal_config_has_sevastopol_defaults(tmp_path: Path) -> None:
    settings = parse_settings(MINIMAL, str(tmp_path))
    assert settings.maildesk.timezone == "Europe/Simferopol"
    assert settings.maildesk.ticket_tag == "СТП"
    assert settings.senders.allowed_domains == ("sev.gov.ru",)
    assert settings.senders.allow_subdomains is False
    assert settings.smtp.listen == ("127.0.0.1:2525",)
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'maildesk.db'}"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({**MINIMAL, "smtp": {"listen": ["nonsense"]}}, "smtp.listen"),
        ({**MINIMAL, "smtp": {"max_message_size": "big"}}, "smtp.max_message_size: expected int"),
        ({**MINIMAL, "smtp": {"mode": "open"}}, "smtp.mode: 'open' is not one of"),
        ({**MINIMAL, "senders": {"allowed_domain": ["x"]}}, "senders.allowed_domain: unknown key"),
        ({**MINIMAL, "senders": {"authentication": "trusted-relay"}}, "senders.authserv_id: required"),
        ({**MINIMAL, "maildesk": {"timezone": "Mars/Olympus"}}, "maildesk.timezone: unknown time zone"),
        ({**MINIMAL, "agents": [{"address": "a@b.ru"}]}, "agents[0].name: required"),
        ({**MINIMAL, "agents": [{"address": "a@b.ru", "name": "A", "line": 3}]}, "agents[0].line"),
        ({"desks": [{"address": "not an address"}]}, "desks[0].address"),
        ({}, "desks: at least one"),
        ({**MINIMAL, "stale": {"remind_before_days": 10}}, "stale.remind_before_days"),
        ({**MINIMAL, "sla": {"warn_share": 1.5}}, "sla.warn_share"),
        ({**MINIMAL, "unknown": {}}, "unknown: unknown key"),
    ],
)
def test_errors_name_the_key(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_settings(table)


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[maildesk\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load(path)


def test_secrets_come_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = parse_settings(MINIMAL, str(tmp_path))
    (tmp_path / "pw").write_text("from-file\n")
    monkeypatch.setenv("MD_PW", "from-env")
    assert secret_value(settings, "inline", "", "", "outgoing.password") == "inline"
    assert secret_value(settings, "", "pw", "", "outgoing.password") == "from-file"
    assert secret_value(settings, "", "pw", "MD_PW", "outgoing.password") == "from-env"
    with pytest.raises(ConfigError, match="outgoing.password_env: environment variable NOPE"):
        secret_value(settings, "", "", "NOPE", "outgoing.password")
