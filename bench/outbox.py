"""Scenario 4, the outbox: notifications queued by ingesting mail, then delivered by `OutboxWorker` to a local sink."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from bench.daemon_proc import REPO
from bench.limits import envelope
from bench.plan import TARGETS, Context
from bench.report import Row, share
from bench.sandbox import DESK, HOST, free_port, make_sandbox

BATCH = 100  # rows per deliver_due() call, as the daemon's outbox loop asks for
CAP = 1_000_000  # the per-recipient daily cap on automatic mail would hold the agents' copies after 40


class SmtpSink:
    """`bench.smtp_sink` in a subprocess: its CPU is not the worker's."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.received: dict[str, int] = {}

    def __enter__(self) -> SmtpSink:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.smtp_sink", str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=REPO, env=env)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"READY":  # the sink prints it, or exits
            raise RuntimeError("the SMTP sink did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=15)
            self.received = json.loads(out.decode().strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            self.proc.kill()
            self.proc.wait()


def _pending(engine: Any) -> int:
    from maildesk.adapters.db_models import OutboxRow

    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(OutboxRow).where(OutboxRow.state == "pending")
        return conn.execute(query).scalar_one()


def run(ctx: Context) -> None:
    with SmtpSink() as sink:
        transport_rate = _transport_rate(ctx, sink.port)
        ctx.limits["transport"] = transport_rate
        ctx.add(Row("4 outbox", "-", f"SmtpTransport.send alone, one connection × {ctx.sizes.transport_sample}",
                    f"{transport_rate:6.1f} msg/s",
                    data={"rate": transport_rate}))
        for backend, pg_url in ctx.backends():
            _one(ctx, sink.port, backend, pg_url)
    ctx.extra["outbox_sink"] = sink.received


def _transport_rate(ctx: Context, port: int) -> float:
    """The limit: SmtpTransport on one connection, as a worker's pass sends, with no store around it."""
    from maildesk.adapters.mailer import SmtpTransport

    transport = SmtpTransport(HOST, port, timeout=30)
    raw = ctx.corpus[0].raw
    count = ctx.sizes.transport_sample
    ctx.progress.phase("outbox: transport alone", count)
    began = time.perf_counter()
    with transport:
        for index in range(count):
            transport.send(DESK, ["ivanova@gb1.sev.gov.ru"], raw, f"t{index}")
            ctx.progress.advance()
    return count / (time.perf_counter() - began)


def _one(ctx: Context, port: int, backend: str, pg_url: str) -> None:
    from maildesk.adapters.mailer import SmtpTransport
    from maildesk.adapters.outbox import OutboxWorker
    from maildesk.bootstrap import build
    from maildesk.service.ingest import ingest

    box = make_sandbox(f"outbox-{backend}", pg_url, outgoing={"auto_cap_per_day": CAP})
    try:
        app = build(box.settings)
        mails = ctx.corpus.slice(0, ctx.sizes.outbox_mails)
        ctx.progress.phase(f"outbox: queueing notifications by ingesting {len(mails)} messages ({backend})", len(mails))
        for mail in mails:
            ingest(mail.raw, envelope(mail), app.deps)
            ctx.progress.advance()
        queued = _pending(app.engine)
        worker = OutboxWorker(app.engine, SmtpTransport(HOST, port, timeout=30), DESK, CAP)
        ctx.progress.phase(f"outbox: delivering {queued} notifications ({backend})", queued)
        deadline = time.monotonic() + ctx.sizes.outbox_seconds
        sent, began = 0, time.perf_counter()
        while sent < queued and time.monotonic() < deadline:
            done = worker.deliver_due(datetime.now(timezone.utc), BATCH)
            if not done:
                break
            sent += done
            ctx.progress.advance(done)
        seconds = time.perf_counter() - began
        left = _pending(app.engine)
        app.close()
    finally:
        box.remove()
    rate = sent / seconds if seconds else 0.0
    target = TARGETS["outbox_rate"]
    result = f"{rate:6.1f} msg/s  ({sent} of {queued} in {seconds:.1f} s" + (f", {left} left)" if left else ")")
    ctx.add(Row("4 outbox", backend, f"OutboxWorker + SmtpTransport × {queued}", result, f">= {target:.0f} msg/s",
                rate >= target, share(rate, ctx.limits.get("transport")),
                data={"queued": queued, "sent": sent, "seconds": seconds, "rate": rate, "left": left,
                      "from_messages": len(mails)}))
