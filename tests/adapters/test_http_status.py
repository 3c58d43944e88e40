"""The metrics and health endpoint: a real server on loopback, scraped with urllib while mail comes in."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from typing import Any, Callable, Iterator

import pytest

from maildesk.adapters.http_status import Metrics, StatusServer, metrics_for, run_http
from maildesk.adapters.scheduler import housekeeping_pass
from maildesk.bootstrap import build
from maildesk.config import ConfigError
from maildesk.core.model import Outcome
from tests.conftest import FakeClock, deliver, ingest_bytes
from tests.mailmaker import make_mail

UNREACHABLE = "postgresql+psycopg://maildesk@127.0.0.1:1/none"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with _opener.open(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, exc.read().decode()
        finally:
            exc.close()


def samples(text: str) -> dict[str, float]:
    """`name{labels}` → value, for every sample line of a scrape."""
    lines = [line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {key: float(value) for key, value in lines}


@pytest.fixture
def serve() -> Iterator[Callable[[Metrics], StatusServer]]:
    servers: list[StatusServer] = []

    def start(metrics: Metrics) -> StatusServer:
        servers.append(StatusServer("127.0.0.1:0", metrics))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_metrics_count_mail_and_read_the_store(app: Any, clock: FakeClock, serve: Any) -> None:
    metrics = Metrics(app.engine, app.archive, clock, cache_seconds=0)
    app.deps.on_result = metrics.on_result
    port = serve(metrics).port
    first, second = make_mail(), make_mail(subject="Не печатает принтер")
    assert ingest_bytes(app, first).outcome is Outcome.CREATED
    assert ingest_bytes(app, second, "smtp").outcome is Outcome.CREATED
    assert ingest_bytes(app, make_mail(sender="doctor@gmail.com")).outcome is Outcome.QUARANTINED
    clock.advance(seconds=30)
    sent = len(deliver(app))

    status, text = get(port, "/metrics")

    assert status == 200 and "# TYPE maildesk_messages_total counter" in text
    found = samples(text)
    assert found['maildesk_messages_total{source="cli",outcome="created"}'] == 1
    assert found['maildesk_messages_total{source="smtp",outcome="created"}'] == 1
    assert found['maildesk_messages_total{source="cli",outcome="quarantined"}'] == 1
    assert found['maildesk_message_bytes_total{source="smtp"}'] == len(second)
    assert found['maildesk_tickets{status="new"}'] == 2 and found['maildesk_tickets{status="closed"}'] == 0
    assert found['maildesk_quarantine_held{reason="sender.domain_not_allowed"}'] == 1
    assert found['maildesk_outbox_messages{state="pending"}'] == 0
    assert found["maildesk_outbox_sent_last_hour"] == sent > 0
    assert found["maildesk_outbox_delivery_avg_seconds"] == found["maildesk_outbox_delivery_max_seconds"] == 30
    assert found["maildesk_sla_warnings_total"] == 0 and found["maildesk_database_up"] == 1

    clock.advance(hours=7)  # past the warning share of the 8 working hours to accept
    housekeeping_pass(app)
    metrics.set_imap_lag("main", 12.5)
    found = samples(get(port, "/metrics")[1])
    assert found["maildesk_sla_warnings_total"] == 2 and found["maildesk_sla_breaches_total"] == 0
    assert found['maildesk_outbox_messages{state="pending"}'] > 0
    assert found['maildesk_imap_lag_seconds{account="main"}'] == 12.5


def test_store_figures_are_cached_between_close_scrapes(app: Any, clock: FakeClock, serve: Any) -> None:
    port = serve(Metrics(app.engine, app.archive, clock, cache_seconds=60)).port
    assert samples(get(port, "/metrics")[1])['maildesk_tickets{status="new"}'] == 0
    ingest_bytes(app, make_mail())
    assert samples(get(port, "/metrics")[1])['maildesk_tickets{status="new"}'] == 0


def test_health_is_ready_until_a_component_reports_a_failure(app: Any, clock: FakeClock, serve: Any) -> None:
    metrics = Metrics(app.engine, app.archive, clock)
    port = serve(metrics).port
    metrics.set_component("smtp", True, "listening on 127.0.0.1:2525")
    assert get(port, "/health") == (200, "ready\n")

    metrics.set_component("imap", False, "mail.sev.gov.ru: login refused")

    assert get(port, "/health") == (503, "imap: mail.sev.gov.ru: login refused\n")
    found = samples(get(port, "/metrics")[1])
    assert found['maildesk_component_up{component="imap"}'] == 0
    assert found['maildesk_component_up{component="smtp"}'] == 1
    assert get(port, "/nowhere")[0] == 404


def test_health_fails_once_the_ingest_writer_has_stopped(app: Any, clock: FakeClock, serve: Any) -> None:
    from maildesk.service.pipeline import IngestPipeline

    metrics = Metrics(app.engine, app.archive, clock)
    pipeline = IngestPipeline(app.deps, app.store.transaction, workers=1)
    metrics.watch("ingest", lambda: pipeline.alive)
    port = serve(metrics).port
    assert get(port, "/health") == (200, "ready\n")
    pipeline.close()
    assert get(port, "/health") == (503, "ingest: not running\n")


def test_health_fails_when_the_database_does_not_answer(make_settings: Any, clock: FakeClock, serve: Any) -> None:
    app = build(make_settings(database={"url": UNREACHABLE}), clock=clock)
    try:
        port = serve(metrics_for(app)).port
        status, text = get(port, "/health")
        assert status == 503 and text.startswith("database: ")
        status, text = get(port, "/metrics")  # still scraped: the counters and database_up 0
        assert status == 200 and samples(text)["maildesk_database_up"] == 0
    finally:
        app.close()


def test_run_http_serves_until_stopped(make_app: Callable[..., Any]) -> None:
    app = make_app(http={"listen": "127.0.0.1:0"})
    assert metrics_for(app) is metrics_for(app)
    bound: list[int] = []

    async def scenario() -> tuple[int, str]:
        stop = asyncio.Event()
        task = asyncio.create_task(run_http(app, stop, started=lambda server: bound.append(server.port)))
        while not bound:
            await asyncio.sleep(0.01)
        answer = await asyncio.to_thread(get, bound[0], "/health")
        stop.set()
        await task
        return answer

    assert asyncio.run(scenario()) == (200, "ready\n")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", bound[0]), timeout=2).close()


def test_run_http_does_nothing_when_not_configured(app: Any) -> None:
    asyncio.run(run_http(app, asyncio.Event()))


def test_listen_must_be_host_and_port(make_settings: Any) -> None:
    with pytest.raises(ConfigError, match="http.listen: '9187' is not HOST:PORT"):
        make_settings(http={"listen": "9187"})
