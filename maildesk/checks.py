"""`maildesk check`: every part the daemon needs, tested once, reported readably."""

from __future__ import annotations

from typing import Callable

from maildesk.config import Settings

Result = tuple[str, bool, str]


def _database(settings: Settings) -> str:
    from maildesk.adapters.database import head_revision, make_engine, schema_revision

    engine = make_engine(settings.database_url)
    try:
        current, head = schema_revision(engine), head_revision(settings.database_url)
    finally:
        engine.dispose()
    if current != head:
        raise RuntimeError(f"schema at {current or 'nothing'}, expected {head}: run `maildesk db upgrade`")
    return f"schema {current}"


def _archive(settings: Settings) -> str:
    from maildesk.adapters.archive import MailArchive

    archive = MailArchive(settings.data_dir / "mail")
    archive.check_writable()
    return f"{archive.root} writable"


def _templates(settings: Settings) -> str:
    from maildesk.adapters.templates import EVENTS, TemplateRenderer, sample_context

    overrides = settings.maildesk.templates_dir
    renderer = TemplateRenderer(override_dir=settings.path(overrides) if overrides else None)
    for event in EVENTS:
        renderer.render(event, sample_context(event))
    return f"{len(EVENTS)} events render"


def _relay(settings: Settings) -> str:
    from maildesk.bootstrap import make_transport

    out = settings.outgoing
    if out.transport == "directory":
        from maildesk.bootstrap import outgoing_dir

        folder = outgoing_dir(settings)
        folder.mkdir(parents=True, exist_ok=True)
        return f"directory {folder}"
    transport = make_transport(settings)  # the password as the daemon reads it (env, file or inline)
    transport.timeout = 10.0
    # the very connection set-up the outbox uses: TLS as configured, certificates checked, login
    client = transport._connect()
    try:
        code, reply = client.noop()
        if code != 250:
            answer = reply.decode(errors="replace")
            raise RuntimeError(f"relay {out.host}:{out.port} answered NOOP with {code} {answer}")
        client.quit()
    finally:
        client.close()
    login = f", logged in as {out.user}" if out.user else ""
    return f"relay {out.host}:{out.port} ({out.security}{login}) answers"


def _calendar(settings: Settings) -> str:
    from maildesk.cli_time import calendar_health

    return calendar_health(settings)  # fails without this year; next year missing or draft: a WARN line


def _imap(settings: Settings) -> str:
    if not settings.imap:
        return "no accounts"
    from maildesk.adapters.imap_poller import check_accounts
    from maildesk.bootstrap import build

    app = build(settings)
    try:
        reports = check_accounts(app)
    finally:
        app.close()
    failing = [f"{r['account']}: {r.get('error')}" for r in reports if not r["ok"]]
    if failing:
        raise RuntimeError("; ".join(failing))
    return f"{len(reports)} account(s) answer"


CHECKS: tuple[tuple[str, Callable[[Settings], str]], ...] = (
    ("calendar", _calendar),
    ("database", _database),
    ("archive", _archive),
    ("templates", _templates),
    ("outgoing", _relay),
    ("imap", _imap),
)


def run_checks(settings: Settings, extra: tuple[tuple[str, Callable[[Settings], str]], ...] = ()) -> list[Result]:
    results: list[Result] = [("config", True, "valid")]
    for name, check in CHECKS + extra:
        try:
            results.append((name, True, check(settings)))
        except Exception as exc:  # every failure is reported, none stops the others
            results.append((name, False, f"{type(exc).__name__}: {exc}"))
    return results
