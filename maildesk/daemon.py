"""`maildesk serve`: one process running the receiver, pollers, outbox worker and scheduler."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
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
    """Deliver due notifications until stopped; a failing pass is logged and retried."""
    from maildesk.adapters.outbox import OutboxWorker

    limit = 100
    worker = OutboxWorker(app.engine, make_transport(app.settings), app.settings.desks[0].address,
                          app.settings.outgoing.auto_cap_per_day, composer=app.composer)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            await loop.run_in_executor(None, worker.deliver_due, app.deps.clock.now(), limit)
        except Exception:
            log.exception("outbox pass failed; retrying")
            worker.claimed = 0
        if worker.claimed < limit:  # a full pass means more are due: go on at once
            await _wait(stop, interval)


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


def reload(app: App, config_path: str | None) -> None:
    """SIGHUP: read templates and the calendar again; structural settings need a restart."""
    from maildesk import config as config_mod
    from maildesk.adapters.calendar_file import work_clock

    try:
        settings = config_mod.load(config_path) if config_path else app.settings
        work = work_clock(settings)
    except config_mod.ConfigError as exc:
        log.error("reload refused, keeping the running configuration: %s", exc)
        return
    app.renderer.reload()
    app.work = app.store.work = work
    log.info("reloaded templates and calendar (years %s)", ", ".join(map(str, sorted(work.calendar.years))))


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
    parts = components(settings)
    log.info("maildesk starting: database %s, desks %s, components %s", _safe(settings.database_url),
             ", ".join(settings.desk_addresses), ", ".join(parts))
    tasks = [asyncio.create_task(_supervise(name, comp, app, stop), name=name) for name, comp in parts.items()]
    sd_notify("READY=1")
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


def _safe(url: str) -> str:
    return url.split("@", 1)[1] if "@" in url else url


def run(settings: Settings, config_path: str | None = None) -> int:
    asyncio.run(serve(settings, config_path=config_path))
    return 0
