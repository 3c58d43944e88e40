"""`maildesk serve`: one process running the receiver, pollers, outbox worker and scheduler."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import signal
import socket
import threading
from datetime import timedelta
from typing import Any, Awaitable, Callable

from maildesk.bootstrap import App, build, make_transport
from maildesk.config import Settings

log = logging.getLogger("maildesk.serve")

Component = Callable[[App, asyncio.Event], Awaitable[None]]


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about readiness and liveness; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify systemd: %s", exc)


async def outbox_loop(app: App, stop: asyncio.Event, interval: float = 2.0) -> None:
    """Deliver due notifications until stopped; a failing pass is logged and retried, the relay's state reported."""
    from maildesk.adapters.http_status import metrics_for
    from maildesk.adapters.outbox import OutboxWorker

    limit = 100
    worker = OutboxWorker(app.engine, make_transport(app.settings), app.settings.desks[0].address,
                          app.settings.outgoing.auto_cap_per_day, composer=app.composer)
    loop = asyncio.get_running_loop()
    metrics = metrics_for(app)
    halt = threading.Event()  # the pass in the executor sees the stop between two messages
    watcher = asyncio.ensure_future(stop.wait())
    watcher.add_done_callback(lambda _: halt.set())
    try:
        while not stop.is_set():
            try:
                await loop.run_in_executor(None, worker.deliver_due, app.deps.clock.now(), limit, halt)
                metrics.set_component("outbox", not worker.relay_error, worker.relay_error or "delivering")
            except Exception as exc:
                log.exception("outbox pass failed; retrying")
                metrics.set_component("outbox", False, f"pass failed: {exc}"[:300])
                worker.claimed = 0
            if worker.claimed < limit:  # a full pass means more are due: go on at once
                await _wait(stop, interval)
    finally:
        watcher.cancel()  # restarted by its supervisor, the loop leaves no waiter behind


async def watchdog_loop(app: App, stop: asyncio.Event) -> None:
    """Keep systemd's watchdog fed while the ingest writer lives; without it systemd restarts maildesk."""
    usec = int(os.environ.get("WATCHDOG_USEC", "0"))
    if not usec:
        return
    while not stop.is_set():
        if app.pipeline is None or app.pipeline.alive:
            sd_notify("WATCHDOG=1")
        else:
            log.critical("the ingest writer has stopped; no mail can be committed: leaving it to systemd's watchdog")
        await _wait(stop, usec / 2e6)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


async def _supervise(name: str, component: Component, app: App, stop: asyncio.Event) -> None:
    """Run a component; when it fails, log and restart it after a pause, leaving the others running."""
    from maildesk.adapters.http_status import metrics_for

    metrics = metrics_for(app)
    delay = 1.0
    while not stop.is_set():
        try:
            metrics.set_component(name, True, "running")
            await component(app, stop)
            return
        except Exception as exc:
            log.exception("%s failed; restarting in %.0f s", name, delay)
            metrics.set_component(name, False, f"failed: {exc}; restarting")
            await _wait(stop, delay)
            delay = min(delay * 2, 60.0)


def components(settings: Settings) -> dict[str, Component]:
    found: dict[str, Component] = {"outbox": outbox_loop, "watchdog": watchdog_loop}
    if settings.smtp.enabled:
        from maildesk.adapters.smtp_runner import run_receiver

        found["smtp"] = run_receiver
    if settings.imap:
        from maildesk.adapters.imap_poller import run_pollers

        found["imap"] = run_pollers
    from maildesk.adapters.scheduler import run_scheduler

    found["scheduler"] = run_scheduler
    if settings.http.listen:
        from maildesk.adapters.http_status import run_http

        found["http"] = run_http
    return found


# What SIGHUP applies from the config file (README, "Running as a service"); anything else needs a restart.
RELOADED = {
    "maildesk": ("templates_dir",),
    "calendar": ("file", "local_file", "start", "end"),
    "sla": ("acceptance_hours", "warn_share", "resolution_hours"),
    "stale": ("close_after_days", "remind_before_days", "close_resolved_on_silence"),
}


def checked_renderer(settings: Settings) -> tuple[Any, list[str]]:
    """Templates read once and rendered for every event with sample data; the problems found, if any.

    The renderer keeps what it read (no auto-reload): a template edited on disk changes nothing
    until SIGHUP has checked it, so a broken edit never reaches a notification.
    """
    from maildesk.adapters.templates import TemplateRenderer

    overrides = settings.maildesk.templates_dir
    renderer = TemplateRenderer(override_dir=settings.path(overrides) if overrides else None, auto_reload=False)
    return renderer, renderer.check()


def _use_renderer(app: App, renderer: Any) -> None:
    app.renderer = app.composer.renderer = renderer  # the composer renders for the store and the outbox


def reload(app: App, config_path: str | None) -> bool:
    """SIGHUP: templates, calendar and deadlines read again and checked; on any error the running ones stay."""
    from maildesk import config as config_mod
    from maildesk.adapters.calendar_file import work_clock

    try:
        settings = config_mod.load(config_path) if config_path else app.settings
        work = work_clock(settings)
    except config_mod.ConfigError as exc:
        log.error("reload refused, keeping the running configuration: %s", exc)
        return False
    renderer, problems = checked_renderer(settings)
    if problems:
        log.error("reload refused, keeping the running templates and calendar: %s", "; ".join(problems))
        return False
    _use_renderer(app, renderer)
    app.work = app.store.work = work
    app.composer.acceptance_hours = settings.sla.acceptance_hours  # the notifications quote these
    app.composer.stale_days = settings.stale.close_after_days
    log.info("reloaded templates and calendar (years %s)", ", ".join(map(str, sorted(work.calendar.years))))
    unapplied = _restart_needed(app.settings, settings)
    if unapplied:
        log.warning("changed settings that need a restart to apply: %s", ", ".join(unapplied))
    # what was applied is what the running daemon now goes by (the scheduler reads these settings)
    app.settings = dataclasses.replace(app.settings, **{
        section: dataclasses.replace(getattr(app.settings, section), **{k: getattr(getattr(settings, section), k)
                                                                        for k in keys})
        for section, keys in RELOADED.items()})
    return True


def _restart_needed(running: Settings, loaded: Settings) -> list[str]:
    changed = []
    for f in dataclasses.fields(running):
        old, new = getattr(running, f.name), getattr(loaded, f.name)
        if not dataclasses.is_dataclass(old) or not dataclasses.is_dataclass(new):
            changed += [f.name] if old != new and f.name != "base_dir" else []
            continue
        changed += [f"{f.name}.{k.name}" for k in dataclasses.fields(old) if k.name not in RELOADED.get(f.name, ())
                    and getattr(old, k.name) != getattr(new, k.name)]
    return changed


def startup_summary(settings: Settings, parts: dict[str, Component]) -> list[str]:
    """What the admin needs to see at start: what listens where, which accounts, where mail goes, which store."""
    out, smtp = settings.outgoing, settings.smtp
    lines = [f"components: {', '.join(parts)}"]
    if "smtp" in parts:
        lines.append(f"smtp: listening on {', '.join(smtp.listen)}, mode {smtp.mode}, "
                     f"desks {', '.join(settings.desk_addresses)}" + (", STARTTLS" if smtp.tls_cert else ""))
    else:
        lines.append("smtp: off")
    lines.append(f"http: /metrics and /health on http://{settings.http.listen}/" if "http" in parts else "http: off")
    for a in settings.imap:
        lines.append(f"imap {a.name}: {a.user}@{a.host}:{a.port} ({a.security}), folder {a.folder!r}"
                     f" → {a.processed_folder!r}, desk {a.desk or 'by To:'}")
    if not settings.imap:
        lines.append("imap: no accounts")
    if out.transport == "directory":
        from maildesk.bootstrap import outgoing_dir

        lines.append(f"outgoing: .eml files in {outgoing_dir(settings)}")
    else:
        lines.append(f"outgoing: relay {out.host}:{out.port} security {out.security}"
                     + (f", user {out.user}" if out.user else "")
                     + ("" if out.verify_certificates else ", certificates NOT verified"))
    lines.append(f"database: {_safe(settings.database_url)}")
    return lines


async def _until_bound(bound: dict[str, asyncio.Event], stop: asyncio.Event) -> bool:
    """Wait until every listening component has bound its sockets; False when told to stop first."""
    async def every_one() -> None:
        for event in bound.values():
            await event.wait()

    waiting, stopped = asyncio.ensure_future(every_one()), asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        stopped.cancel()
    return not stop.is_set()


async def serve(settings: Settings, *, ready: Callable[[App], Any] | None = None,
                stop: asyncio.Event | None = None, config_path: str | None = None) -> None:
    from maildesk.adapters.http_status import metrics_for

    app = build(settings)
    app.deps.on_result = metrics_for(app).on_result
    app.start_pipeline()  # shared by the receiver and the pollers; closed with the app
    metrics_for(app).watch("ingest", lambda: app.pipeline is None or app.pipeline.alive)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        loop.add_signal_handler(signal.SIGHUP, reload, app, config_path)
    except (NotImplementedError, RuntimeError):
        pass
    renderer, problems = checked_renderer(settings)
    _use_renderer(app, renderer)
    for problem in problems:  # `maildesk check` refuses these; the daemon runs and says so
        log.error("templates: %s", problem)
    parts = components(settings)
    log.info("maildesk starting")
    for line in startup_summary(settings, parts):  # one record each: readable in journalctl and as JSON
        log.info("%s", line)
    bound = {name: asyncio.Event() for name in ("smtp", "http") if name in parts}
    if "smtp" in parts:
        parts["smtp"] = functools.partial(parts["smtp"], started=functools.partial(_receiver_bound, bound["smtp"]))
    if "http" in parts:
        parts["http"] = functools.partial(parts["http"], started=lambda _server: bound["http"].set())
    tasks = [asyncio.create_task(_supervise(name, comp, app, stop), name=name) for name, comp in parts.items()]
    # READY only once mail can come in: systemd orders dependent units and `systemctl start` returns on it
    if await _until_bound(bound, stop):
        sd_notify("READY=1")
        log.info("maildesk ready")
        if ready is not None:
            ready(app)
    await stop.wait()
    sd_notify("STOPPING=1")
    log.info("maildesk stopping: finishing work in flight")
    done, pending = await asyncio.wait(tasks, timeout=timedelta(seconds=30).total_seconds())
    for task in pending:
        task.cancel()
    app.close()
    log.info("maildesk stopped")


def _receiver_bound(event: asyncio.Event, receiver: Any) -> None:
    log.info("smtp: bound to %s", ", ".join(f"{host}:{port}" for host, port in receiver.addresses))
    event.set()


def _safe(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy can read: show where it points, never what precedes @
        return url.rsplit("@", 1)[1] if "@" in url else url


def run(settings: Settings, config_path: str | None = None) -> int:
    asyncio.run(serve(settings, config_path=config_path))
    return 0
