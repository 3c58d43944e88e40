"""TOML configuration → validated, frozen settings; every error names its key."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A configuration problem, worded for the admin: which key, what is wrong."""


@dataclass(frozen=True)
class MaildeskSection:
    data_dir: str = "var"
    timezone: str = "Europe/Simferopol"
    ticket_tag: str = "СТП"
    message_id_domain: str = "maildesk.localhost"
    secret: str = ""  # key for minted Message-IDs; generated under data_dir when empty
    secret_file: str = ""
    templates_dir: str = ""  # admin overrides of templates/, looked up first
    ingest_workers: int = 0  # processes parsing incoming mail; 0: one per core, 1: no process pool
    log_format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class DatabaseSection:
    url: str = ""  # empty: SQLite file under data_dir


@dataclass(frozen=True)
class Desk:
    address: str
    name: str = "Служба технической поддержки"
    phone: str = ""
    hours: str = "пн–пт 08:00–17:00"
    site: str = ""
    team_address: str = ""  # where new-ticket notices for agents go; empty: every agent


@dataclass(frozen=True)
class SendersSection:
    allowed_domains: tuple[str, ...] = ("sev.gov.ru",)
    allow_subdomains: bool = False
    authentication: Literal["none", "trusted-relay"] = "none"
    authserv_id: str = ""
    require_envelope_match: bool = False
    notify_refused: bool = False
    same_organisation_may_write: bool = True


@dataclass(frozen=True)
class Agent:
    address: str
    name: str
    login: str = ""
    line: int = 1
    role: Literal["agent", "supervisor", "admin"] = "agent"


@dataclass(frozen=True)
class SmtpSection:
    enabled: bool = True
    listen: tuple[str, ...] = ("127.0.0.1:2525",)
    mode: Literal["behind-relay", "direct"] = "behind-relay"
    max_message_size: int = 15 * 1024 * 1024
    max_recipients: int = 20
    max_connections: int = 64
    max_connections_per_client: int = 16
    timeout_seconds: int = 60
    max_session_seconds: int = 1800
    allowed_clients: tuple[str, ...] = ()
    tls_cert: str = ""
    tls_key: str = ""
    require_starttls: bool = False


@dataclass(frozen=True)
class OutgoingSection:
    transport: Literal["smtp", "directory"] = "directory"
    directory: str = ""  # empty: <data_dir>/outgoing
    host: str = "localhost"
    port: int = 25
    security: Literal["none", "starttls", "ssl"] = "none"
    verify_certificates: bool = True
    user: str = ""
    password: str = ""
    password_file: str = ""
    password_env: str = ""
    auto_cap_per_day: int = 40


@dataclass(frozen=True)
class TicketsSection:
    closed_reply: Literal["new", "reopen", "refuse"] = "new"


@dataclass(frozen=True)
class FormSection:
    required: tuple[str, ...] = ("subject", "text", "phone")


@dataclass(frozen=True)
class AttachmentsSection:
    max_total_mb: float = 10.0
    max_images: int = 5


@dataclass(frozen=True)
class SlaSection:
    acceptance_hours: float = 8.0
    warn_share: float = 0.75
    supervisor: str = ""  # address for breach notices; empty: agents with role supervisor
    # working hours to resolve a ticket of priority 1, 2, 3, 4 (0: no target); empty: no resolution targets
    resolution_hours: tuple[float, ...] = ()


@dataclass(frozen=True)
class StaleSection:
    close_after_days: int = 10
    remind_before_days: int = 3
    close_resolved_on_silence: bool = True


@dataclass(frozen=True)
class RetentionSection:
    quarantine_days: int = 90  # refused mail held this long, then purged with its raw bytes; 0: keep


@dataclass(frozen=True)
class CalendarSection:
    file: str = ""  # empty: config/calendar/ru.toml shipped with maildesk
    local_file: str = ""
    start: str = "08:00"
    end: str = "17:00"


@dataclass(frozen=True)
class ImapAccount:
    name: str
    host: str
    user: str
    # one of the [[desks]] addresses; empty: each message's first To: address names the ticket's
    # desk, and replies come from the [[desks]] entry with that address, else from the first one
    desk: str = ""
    port: int = 993
    security: Literal["ssl", "starttls", "none"] = "ssl"  # "none": plaintext, for a loopback host only
    verify_certificates: bool = True
    password: str = ""
    password_file: str = ""
    password_env: str = ""
    folder: str = "INBOX"  # "/" in folder names stands for the server's hierarchy separator
    processed_folder: str = "maildesk/processed"
    quarantine_folder: str = "maildesk/quarantine"
    poll_seconds: int = 60
    max_attempts: int = 3
    # "auto": MOVE, else COPY + UID EXPUNGE (UIDPLUS), else COPY + \Deleted left for the owner;
    # naming a weaker method works around a server whose MOVE or UIDPLUS is broken
    move_method: Literal["auto", "move", "copy-expunge", "copy-flag"] = "auto"

    def __post_init__(self) -> None:
        if self.security == "none" and self.host.strip("[]").lower() not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"imap.security: 'none' sends the password in clear and is allowed only with host "
                              f"127.0.0.1, localhost or ::1 (account {self.name!r} has host {self.host!r})")
        for key in ("poll_seconds", "max_attempts"):
            if getattr(self, key) < 1:
                raise ConfigError(f"imap.{key}: must be at least 1 (account {self.name!r})")


# -- [http]: metrics and health endpoint --
@dataclass(frozen=True)
class HttpSection:
    listen: str = ""  # HOST:PORT for /metrics and /health, e.g. "127.0.0.1:9187"; empty: off


@dataclass(frozen=True)
class Settings:
    maildesk: MaildeskSection = field(default_factory=MaildeskSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    desks: tuple[Desk, ...] = ()
    senders: SendersSection = field(default_factory=SendersSection)
    agents: tuple[Agent, ...] = ()
    smtp: SmtpSection = field(default_factory=SmtpSection)
    outgoing: OutgoingSection = field(default_factory=OutgoingSection)
    tickets: TicketsSection = field(default_factory=TicketsSection)
    form: FormSection = field(default_factory=FormSection)
    attachments: AttachmentsSection = field(default_factory=AttachmentsSection)
    sla: SlaSection = field(default_factory=SlaSection)
    stale: StaleSection = field(default_factory=StaleSection)
    calendar: CalendarSection = field(default_factory=CalendarSection)
    retention: RetentionSection = field(default_factory=RetentionSection)
    imap: tuple[ImapAccount, ...] = ()
    http: HttpSection = field(default_factory=HttpSection)  # [http]
    base_dir: str = "."  # the config file's folder: relative paths are read from here

    def path(self, value: str) -> Path:
        """A configured path, relative ones taken from the config file's folder."""
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate

    @property
    def data_dir(self) -> Path:
        return self.path(self.maildesk.data_dir)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'maildesk.db'}"

    @property
    def desk_addresses(self) -> tuple[str, ...]:
        return tuple(desk.address.lower() for desk in self.desks)

    def agent_by_address(self, address: str) -> Agent | None:
        wanted = address.lower()
        return next((a for a in self.agents if a.address.lower() == wanted), None)


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(repr(c) for c in typing.get_args(hint))
            raise ConfigError(f"{key}: {value!r} is not one of {choices}")
        return value
    if origin is tuple:
        item_hint = typing.get_args(hint)[0]
        if isinstance(value, str) and item_hint is str:
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return tuple(_convert(item, item_hint, f"{key}[{i}]") for i, item in enumerate(value))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return _build(hint, value, key)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (str, int, bool, float) and (type(value) is not hint):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, table: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for unknown in sorted(set(table) - names):
        raise ConfigError(f"{prefix + '.' if prefix else ''}{unknown}: unknown key")
    values = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name in table:
            values[f.name] = _convert(table[f.name], hints[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required")
    return cls(**values)


# Numbers that must lie in a range: (section, key, least, greatest or None). A negative size,
# port, count or number of days would otherwise pass the type check and misbehave at run time.
RANGES: tuple[tuple[str, str, float, float | None], ...] = (
    ("maildesk", "ingest_workers", 0, None),
    ("smtp", "max_message_size", 1, None),
    ("smtp", "max_recipients", 1, None),
    ("smtp", "max_connections", 1, None),
    ("smtp", "max_connections_per_client", 1, None),
    ("smtp", "timeout_seconds", 1, None),
    ("smtp", "max_session_seconds", 1, None),
    ("outgoing", "port", 1, 65535),
    ("outgoing", "auto_cap_per_day", 1, None),
    ("attachments", "max_total_mb", 0.001, None),
    ("attachments", "max_images", 0, None),
    ("sla", "acceptance_hours", 0.01, None),
    ("stale", "close_after_days", 1, None),
    ("stale", "remind_before_days", 0, None),
    ("retention", "quarantine_days", 0, None),
)


def _check_ranges(settings: Settings) -> None:
    for section, name, least, greatest in RANGES:
        value = getattr(getattr(settings, section), name)
        if value < least or (greatest is not None and value > greatest):
            bounds = f"between {least:g} and {greatest:g}" if greatest is not None else f"at least {least:g}"
            raise ConfigError(f"{section}.{name}: must be {bounds}, got {value!r}")


def _check_listen(listen: str, key: str) -> None:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{key}: {listen!r} is not HOST:PORT")
    if int(port) > 65535:  # 0 is allowed: any free port (tests)
        raise ConfigError(f"{key}: port {port} in {listen!r} is not between 0 and 65535")


def _check(settings: Settings) -> None:
    _check_ranges(settings)
    if not settings.desks:
        raise ConfigError("desks: at least one [[desks]] with an address is required")
    for i, desk in enumerate(settings.desks):
        _check_address(desk.address, f"desks[{i}].address")
    for i, agent in enumerate(settings.agents):
        _check_address(agent.address, f"agents[{i}].address")
        if agent.line not in (1, 2):
            raise ConfigError(f"agents[{i}].line: must be 1 or 2, got {agent.line}")
    if settings.senders.authentication == "trusted-relay" and not settings.senders.authserv_id:
        raise ConfigError("senders.authserv_id: required when senders.authentication = 'trusted-relay'")
    if not 0 < settings.sla.warn_share < 1:
        raise ConfigError(f"sla.warn_share: must be between 0 and 1, got {settings.sla.warn_share}")
    targets = settings.sla.resolution_hours
    if targets and (len(targets) != 4 or any(h < 0 for h in targets)):
        raise ConfigError(f"sla.resolution_hours: four working-hour targets ≥ 0, for priorities 1 to 4, "
                          f"got {list(targets)}")
    if settings.stale.remind_before_days >= settings.stale.close_after_days:
        raise ConfigError("stale.remind_before_days: must be less than stale.close_after_days")
    _check_imap(settings)
    for listen in settings.smtp.listen:
        _check_listen(listen, "smtp.listen")
    if settings.http.listen:  # [http]
        _check_listen(settings.http.listen, "http.listen")
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(settings.maildesk.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"maildesk.timezone: unknown time zone {settings.maildesk.timezone!r}") from exc


def _check_imap(settings: Settings) -> None:
    """[[imap]] accounts: names unique (leases, logs and metrics go by them), desks among [[desks]]."""
    seen: dict[str, int] = {}
    for i, account in enumerate(settings.imap):
        if account.name in seen:
            raise ConfigError(f"imap[{i}].name: {account.name!r} is already the name of imap[{seen[account.name]}]")
        seen[account.name] = i
        if account.desk and account.desk.lower() not in settings.desk_addresses:
            raise ConfigError(f"imap[{i}].desk: {account.desk!r} is not one of the [[desks]] addresses "
                              f"({', '.join(settings.desk_addresses)})")


def _check_address(address: str, key: str) -> None:
    local, at, domain = address.partition("@")
    if not (local and at and "." in domain) or not address.isascii() or any(c.isspace() for c in address):
        raise ConfigError(f"{key}: {address!r} is not a plain mail address")


def parse_settings(table: dict[str, Any], base_dir: str = ".") -> Settings:
    """Validate a parsed TOML table into Settings."""
    settings = _build(Settings, {**table, "base_dir": base_dir}, "")
    _check(settings)
    return settings


def load(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a config file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_settings(table, str(path.resolve().parent))


def secret_value(settings: Settings, value: str, file: str, env: str, key: str) -> str:
    """A secret from the config, a file named in it, or an environment variable."""
    if env:
        if env not in os.environ:
            raise ConfigError(f"{key}_env: environment variable {env} is not set")
        return os.environ[env]
    if file:
        try:
            return settings.path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{key}_file: cannot read {file}: {exc.strerror}") from exc
    return value


def default_config_path() -> Path:
    return Path(os.environ.get("MAILDESK_CONFIG", "config/maildesk.toml"))

