"""The composition root: settings → adapters → services. Nothing else wires things together."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sqlalchemy.engine import Engine

from maildesk.adapters.archive import MailArchive
from maildesk.adapters.calendar_file import work_clock
from maildesk.adapters.database import make_engine
from maildesk.adapters.store import SqlTicketStore
from maildesk.adapters.templates import TemplateRenderer
from maildesk.config import Settings, secret_value
from maildesk.core.attachments import AttachmentPolicy
from maildesk.core.authorize import SenderPolicy
from maildesk.core.classify import ClassifyPolicy
from maildesk.core.commands import AgentRef
from maildesk.core.deadlines import WorkClock
from maildesk.core.decide import DecidePolicy
from maildesk.core.form import FormPolicy
from maildesk.core.ticketref import ThreadPolicy
from maildesk.core.triage import TriagePolicy
from maildesk.service.ingest import Deps, Policy
from maildesk.service.notify import AgentInfo, DeskInfo, NoticeComposer


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


@dataclass
class App:
    """Everything a command needs, built once from the settings."""

    settings: Settings
    engine: Engine
    store: SqlTicketStore
    archive: MailArchive
    composer: NoticeComposer
    renderer: TemplateRenderer
    deps: Deps
    work: WorkClock
    pipeline: Any = None  # the daemon's shared IngestPipeline while serving

    def start_pipeline(self) -> Any:
        from maildesk.service.pipeline import IngestPipeline

        self.pipeline = IngestPipeline(self.deps, self.store.transaction, self.settings.maildesk.ingest_workers)
        return self.pipeline

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
        self.engine.dispose()


def load_secret(settings: Settings) -> bytes:
    """The key for minted Message-IDs: configured, or generated once under data_dir."""
    configured = secret_value(settings, settings.maildesk.secret, settings.maildesk.secret_file, "", "maildesk.secret")
    if configured:
        return configured.encode()
    path = settings.data_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def policy_from(settings: Settings, secret: bytes) -> Policy:
    s = settings
    agents = tuple(a.address.lower() for a in s.agents)
    triage = TriagePolicy(
        classify=ClassifyPolicy(message_id_domain=s.maildesk.message_id_domain, desk_addresses=s.desk_addresses),
        sender=SenderPolicy(
            allowed_domains=s.senders.allowed_domains, allow_subdomains=s.senders.allow_subdomains, agents=agents,
            authentication=s.senders.authentication, authserv_id=s.senders.authserv_id,
            require_envelope_match=s.senders.require_envelope_match,
        ),
        thread=ThreadPolicy(tag=s.maildesk.ticket_tag, secret=secret, message_id_domain=s.maildesk.message_id_domain),
        attachments=AttachmentPolicy(
            max_total_bytes=int(s.attachments.max_total_mb * 1024 * 1024), max_images=s.attachments.max_images,
        ),
        form=FormPolicy(required=s.form.required),
    )
    decide = DecidePolicy(
        closed_reply=s.tickets.closed_reply, same_organisation_may_write=s.senders.same_organisation_may_write,
        notify_refused=s.senders.notify_refused, shared_domains=s.senders.allowed_domains,
        agents=tuple(AgentRef(a.address.lower(), a.login or a.address.split("@")[0], a.line, a.role) for a in s.agents),
    )
    return Policy(triage, decide)


def build(settings: Settings, *, clock: object | None = None, nonce: Callable[[], str] | None = None) -> App:
    engine = make_engine(settings.database_url)
    work = work_clock(settings)
    store = SqlTicketStore(engine, work, settings.senders.allowed_domains)
    archive = MailArchive(settings.data_dir / "mail")
    secret = load_secret(settings)
    overrides = settings.maildesk.templates_dir
    renderer = TemplateRenderer(override_dir=settings.path(overrides) if overrides else None)
    composer = NoticeComposer(
        renderer=renderer,
        desks=tuple(DeskInfo(d.address, d.name, d.phone, d.hours, d.site, d.team_address) for d in settings.desks),
        agents=tuple(AgentInfo(a.address, a.name, a.login, a.role) for a in settings.agents),
        tag=settings.maildesk.ticket_tag, secret=secret, domain=settings.maildesk.message_id_domain,
        timezone=settings.maildesk.timezone, supervisor=settings.sla.supervisor,
        stale_days=settings.stale.close_after_days, acceptance_hours=settings.sla.acceptance_hours,
        allowed_domains=settings.senders.allowed_domains, max_images=settings.attachments.max_images,
        max_total_mb=settings.attachments.max_total_mb,
    )
    if nonce is not None:
        composer.nonce = nonce
    deps = Deps(store, archive, clock or SystemClock(), composer, policy_from(settings, secret))  # type: ignore[arg-type]
    return App(settings, engine, store, archive, composer, renderer, deps, work)


def outgoing_dir(settings: Settings) -> Path:
    return settings.path(settings.outgoing.directory) if settings.outgoing.directory else settings.data_dir / "outgoing"


def make_transport(settings: Settings):  # type: ignore[no-untyped-def]
    """The configured outgoing transport: a relay, or a folder of .eml files."""
    from maildesk.adapters.mailer import DirectoryTransport, SmtpTransport

    out = settings.outgoing
    if out.transport == "directory":
        return DirectoryTransport(outgoing_dir(settings))
    password = secret_value(settings, out.password, out.password_file, out.password_env, "outgoing.password")
    return SmtpTransport(out.host, out.port, out.security, out.verify_certificates, out.user, password)
