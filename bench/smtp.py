"""Scenario 1, SMTP ingest: `maildesk serve` in a subprocess, 1, 8 and 32 clients, rate and latency per backend."""

from __future__ import annotations

import os

from bench import memory
from bench.clients import Phase, from_list, send
from bench.daemon_proc import DaemonProcess
from bench.plan import TARGETS, Context
from bench.procstat import cpu_seconds, descendants
from bench.report import Row, percentile, share
from bench.sandbox import make_sandbox

# 32 clients from one address: the per-client connection limit (16 by default) must let them in
SMTP_SECTION = {"max_connections_per_client": 64}


def run(ctx: Context) -> None:
    # SQLite last: the memory scenario goes on with its daemon, for as long as the run's time allows
    for backend, pg_url in reversed(ctx.backends()):
        with_memory = backend == "sqlite" and ctx.wants("memory")
        if not ctx.wants("smtp") and not with_memory:
            continue
        ctx.progress.phase(f"SMTP {backend}: starting maildesk serve")
        box = make_sandbox(f"smtp-{backend}", pg_url, smtp=SMTP_SECTION)
        try:
            with DaemonProcess(box) as daemon:
                position = _warm_up(ctx, daemon)
                if ctx.wants("smtp"):
                    position = _phases(ctx, daemon, backend, position)
                if with_memory:
                    memory.run(ctx, daemon, position)
            errors = daemon.log_errors()
            if errors:
                ctx.extra.setdefault("daemon_errors", {})[backend] = errors[:20]
                ctx.progress.note(f"SMTP {backend}: the daemon logged {len(errors)} error line(s); see the JSON")
        finally:
            box.remove()


def _warm_up(ctx: Context, daemon: DaemonProcess) -> int:
    """A few messages first, so that the pipeline's worker processes are started and imported before the clock."""
    count = ctx.sizes.warmup
    ctx.progress.phase("SMTP warm-up", count)
    send(daemon.box.smtp_port, from_list(ctx.corpus.slice(0, count)), min(8, count), 120, ctx.progress)
    # how the receiver hands mail on, as observed: worker processes under the daemon mean the process pool
    ctx.extra["daemon_child_processes"] = len(descendants(daemon.pid)) - 1
    return count


def _phases(ctx: Context, daemon: DaemonProcess, backend: str, position: int) -> int:
    workers = daemon.box.settings.maildesk.ingest_workers or os.cpu_count() or 1
    limit = min(ctx.limits.get("parse", 0) * workers, ctx.limits.get(f"commit:{backend}", 0)) or None
    for clients, count in ctx.sizes.pg_smtp_counts if backend == "postgresql" else ctx.sizes.smtp_counts:
        mails = ctx.corpus.slice(position, count)  # built before the clock starts
        position += count
        ctx.progress.phase(f"SMTP {backend}, {clients} client(s)", count)
        cpu_before = cpu_seconds(daemon.pid)
        phase = send(daemon.box.smtp_port, from_list(mails), clients, ctx.sizes.smtp_seconds, ctx.progress)
        cpu = cpu_seconds(daemon.pid) - cpu_before
        ctx.add(_row(backend, phase, limit, cpu))
    return position


def _row(backend: str, phase: Phase, limit: float | None, cpu: float) -> Row:
    p50, p95, p99 = (percentile(phase.latencies, q) * 1000 for q in (50, 95, 99))
    target, met = "", None
    if phase.clients == 8:
        target = f">= {TARGETS['smtp_rate_8']:.0f} msg/s, p99 < {TARGETS['smtp_p99_ms']:.0f} ms"
        met = phase.rate >= TARGETS["smtp_rate_8"] and p99 < TARGETS["smtp_p99_ms"]
    elif phase.sent:
        target = f"p99 < {TARGETS['smtp_p99_ms']:.0f} ms"
        met = p99 < TARGETS["smtp_p99_ms"]
    result = f"{phase.rate:6.1f} msg/s  p50 {p50:4.0f}  p95 {p95:4.0f}  p99 {p99:4.0f} ms"
    if phase.errors:
        result += "  errors " + ", ".join(f"{k}×{v}" for k, v in phase.errors.items())
    if phase.cut_short:
        result += "  (time bound)"
    data = {"clients": phase.clients, "messages": phase.sent, "seconds": phase.seconds, "rate": phase.rate,
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "errors": dict(phase.errors),
            "daemon_cpu_seconds": cpu, "daemon_cpu_ms_per_message": cpu / phase.sent * 1000 if phase.sent else None,
            "pipeline_limit": limit}
    measure = f"{phase.clients} client{'s' if phase.clients > 1 else ''} × {phase.sent}"
    return Row("1 SMTP ingest", backend, measure, result, target, met, share(phase.rate, limit), data)
