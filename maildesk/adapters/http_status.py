"""/metrics (Prometheus text format) and /health over HTTP, served from a daemon thread beside the daemon."""

from __future__ import annotations

import asyncio
import logging
import socket
import socketserver
import threading
import time
import weakref
from collections import defaultdict
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from maildesk.adapters.archive import MailArchive
from maildesk.adapters.db_models import EventRow, OutboxRow, QuarantineEntry, Ticket
from maildesk.core.lifecycle import STATUS_LABELS
from maildesk.core.model import Envelope
from maildesk.service.ports import Clock, IngestResult

log = logging.getLogger("maildesk.http")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTBOX_STATES = ("pending", "failed", "held")
LATENCY_WINDOW = timedelta(hours=1)
Samples = Iterable[tuple[dict[str, str], float]]


class Metrics:
    """Counters the daemon's parts feed as they work, and gauges read from the store when scraped."""

    def __init__(self, engine: Engine, archive: MailArchive, clock: Clock, cache_seconds: float = 5.0) -> None:
        self.engine, self.archive, self.clock, self.cache_seconds = engine, archive, clock, cache_seconds
        self._lock = threading.Lock()  # ingest runs in several threads; scrapes in others
        self._messages: dict[tuple[str, str], int] = defaultdict(int)
        self._bytes: dict[str, int] = defaultdict(int)
        self._imap_lag: dict[str, float] = {}
        self._components: dict[str, tuple[bool, str]] = {}
        self._probes: dict[str, Callable[[], bool]] = {}  # parts asked at each health check
        self._store: tuple[float, list[str]] | None = None  # (monotonic time, lines) of the last store read

    # -- fed by the daemon ----------------------------------------------------------------
    def on_result(self, result: IngestResult, envelope: Envelope, size: int) -> None:
        """The ingest hook (`Deps.on_result`): one message in, by source and outcome."""
        with self._lock:
            self._messages[(envelope.source, result.outcome.value)] += 1
            self._bytes[envelope.source] += size

    def watch(self, name: str, probe: Callable[[], bool]) -> None:
        """Ask `probe()` at every health check; False makes `name` a failing part."""
        with self._lock:
            self._probes[name] = probe

    def set_imap_lag(self, account: str, seconds: float) -> None:
        with self._lock:
            self._imap_lag[account] = seconds

    def set_component(self, name: str, ok: bool, detail: str = "") -> None:
        with self._lock:
            self._components[name] = (ok, detail)

    # -- read by the endpoint -------------------------------------------------------------
    def render(self) -> str:
        """Every metric in the Prometheus text exposition format."""
        with self._lock:
            messages, sizes = dict(self._messages), dict(self._bytes)
            lag, components = dict(self._imap_lag), dict(self._components)
        lines = [
            *family("maildesk_messages_total", "counter", "incoming messages by source and outcome",
                    [({"source": s, "outcome": o}, n) for (s, o), n in sorted(messages.items())]),
            *family("maildesk_message_bytes_total", "counter", "bytes of incoming messages by source",
                    [({"source": s}, n) for s, n in sorted(sizes.items())]),
            *family("maildesk_imap_lag_seconds", "gauge", "how far each IMAP account's polling is behind",
                    [({"account": a}, v) for a, v in sorted(lag.items())]),
            *family("maildesk_component_up", "gauge", "1 while a part of the daemon reports itself working",
                    [({"component": c}, ok) for c, (ok, _) in sorted(components.items())]),
        ]
        return "\n".join(lines + self._store_lines()) + "\n"

    def health(self) -> list[str]:
        """The failing parts, one line each; empty when maildesk is ready."""
        failing = []
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # any fault of the driver means the same: no database
            failing.append(f"database: {_first_line(exc)}")
        try:
            self.archive.check_writable()
        except OSError as exc:
            failing.append(f"archive: {exc}")
        with self._lock:
            failing += [f"{name}: {detail or 'failing'}" for name, (ok, detail) in sorted(self._components.items())
                        if not ok]
            probes = dict(self._probes)
        failing += [f"{name}: not running" for name, probe in sorted(probes.items()) if not probe()]
        return failing

    def _store_lines(self) -> list[str]:
        # scrapes come every few seconds from each scraper: the aggregates are reused briefly
        cached = self._store
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            with self.engine.connect() as conn:
                lines = store_families(conn, self.clock.now())
            up = 1
        except Exception as exc:
            log.warning("metrics: the store cannot be read: %s", _first_line(exc))
            lines, up = [], 0
        lines += family("maildesk_database_up", "gauge", "1 when the store answered the last scrape", [({}, up)])
        self._store = (time.monotonic(), lines)
        return lines


def store_families(conn: Connection, now: datetime) -> list[str]:
    """The gauges derived from the store, each from one aggregate query."""
    def grouped(column: Any, *where: Any) -> dict[str, int]:
        return dict(conn.execute(sa.select(column, sa.func.count()).where(*where).group_by(column)).all())

    tickets = grouped(Ticket.status)
    held = grouped(QuarantineEntry.reason_code, QuarantineEntry.state == "held")
    outbox = grouped(OutboxRow.state, OutboxRow.state.in_(OUTBOX_STATES))
    sla = grouped(EventRow.action, EventRow.action.in_(("sla_warning", "sla_breach")))
    sent = conn.execute(sa.select(OutboxRow.created_at, OutboxRow.sent_at).where(
        OutboxRow.state == "sent", OutboxRow.sent_at >= now - LATENCY_WINDOW)).all()
    latencies = [max((s - c).total_seconds(), 0.0) for c, s in sent if c is not None and s is not None]
    return [
        *family("maildesk_tickets", "gauge", "tickets by status",
                [({"status": s}, tickets.get(s, 0)) for s in STATUS_LABELS]),
        *family("maildesk_quarantine_held", "gauge", "messages held in quarantine by reason",
                [({"reason": r}, n) for r, n in sorted(held.items())]),
        *family("maildesk_outbox_messages", "gauge", "outgoing notifications not sent, by state",
                [({"state": s}, outbox.get(s, 0)) for s in OUTBOX_STATES]),
        *family("maildesk_outbox_sent_last_hour", "gauge", "notifications sent in the last hour", [({}, len(sent))]),
        *family("maildesk_outbox_delivery_avg_seconds", "gauge", "average queue-to-sent time over the last hour",
                [({}, sum(latencies) / len(latencies) if latencies else 0)]),
        *family("maildesk_outbox_delivery_max_seconds", "gauge", "longest queue-to-sent time over the last hour",
                [({}, max(latencies, default=0))]),
        *family("maildesk_sla_warnings_total", "counter", "acceptance-deadline warnings given",
                [({}, sla.get("sla_warning", 0))]),
        *family("maildesk_sla_breaches_total", "counter", "acceptance deadlines missed",
                [({}, sla.get("sla_breach", 0))]),
    ]


def family(name: str, kind: str, help: str, samples: Samples) -> list[str]:
    """One metric family: its HELP and TYPE lines, then a line per sample."""
    lines = [f"# HELP {name} {help}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}")
    return lines


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# -- the HTTP side ------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: StatusServer

    def do_GET(self) -> None:  # noqa: N802 (the name http.server looks for)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, self.server.metrics.render(), CONTENT_TYPE)
        elif path == "/health":
            failing = self.server.metrics.health()
            self._reply(503 if failing else 200, "\n".join(failing) + "\n" if failing else "ready\n")
        else:
            self._reply(404, "not found: try /metrics or /health\n")

    def _reply(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)


class StatusServer(ThreadingHTTPServer):
    """The endpoint on its own thread; `port` is the bound one (useful with port 0)."""

    daemon_threads = True

    def __init__(self, listen: str, metrics: Metrics) -> None:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.metrics = metrics
        super().__init__((host, int(port)), _Handler)
        # a short poll interval makes stop() quick
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="maildesk-http",
                                        daemon=True)
        self._thread.start()

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on a resolver
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    @property
    def port(self) -> int:
        return self.server_port

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()


_registry: dict[int, Metrics] = {}


def metrics_for(app: Any) -> Metrics:
    """The one Metrics of an app, made on first use, so that every part of the daemon reports into it."""
    key = id(app)
    if key not in _registry:
        _registry[key] = Metrics(app.engine, app.archive, app.deps.clock)
        weakref.finalize(app, _registry.pop, key, None)
    return _registry[key]


async def run_http(app: Any, stop: asyncio.Event, *, started: Callable[[StatusServer], Any] | None = None) -> None:
    """Serve /metrics and /health until `stop` is set, when `[http] listen` is configured."""
    if not app.settings.http.listen:
        return
    server = StatusServer(app.settings.http.listen, metrics_for(app))
    log.info("metrics and health on http://%s:%d/", server.server_name, server.port)
    if started is not None:
        started(server)
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(server.stop)
