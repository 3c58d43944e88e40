"""Scenario 5, memory: the daemon's RSS after 1,000 messages and after many more, and its peak on 10 MB attachments."""

from __future__ import annotations

import threading
from typing import Callable

from bench.clients import Phase, Stream, from_list, send
from bench.corpus import Mail, heavy
from bench.daemon_proc import DaemonProcess
from bench.plan import TARGETS, Context
from bench.procstat import MB, PeakSampler, status, tree_pss
from bench.report import Row

BASELINE = 1000  # messages through the daemon before the first reading
CLIENTS = 32  # the most the receiver takes at once from one relay in this run: the fill goes fastest
READINGS = 10  # RSS readings between the baseline and the end


def run(ctx: Context, daemon: DaemonProcess, position: int) -> None:
    """`position` messages have gone through the daemon already (scenario 1); go on to the baseline, then the end."""
    sizes, pid, port = ctx.sizes, daemon.pid, daemon.box.smtp_port
    total = max(sizes.memory_total, BASELINE)
    ctx.progress.phase(f"memory: up to {BASELINE} messages", max(BASELINE - position, 0))
    first = _feed(ctx, port, position, BASELINE - position, ctx.time_for(sizes.memory_seconds))
    position += first.sent
    base = _reading(pid, position)
    readings = [base]
    step = max((total - position) // READINGS, 1)
    lock, sent = threading.Lock(), [0]

    def on_sent() -> None:
        with lock:
            sent[0] += 1
            if sent[0] % step == 0:
                readings.append(_reading(pid, position + sent[0]))

    ctx.progress.phase(f"memory: messages {position}..{total}", total - position)
    phase = _feed(ctx, port, position, total - position, ctx.time_for(sizes.memory_seconds), on_sent)
    end = _reading(pid, position + phase.sent)
    if readings[-1]["messages"] != end["messages"]:
        readings.append(end)
    _flat_rows(ctx, base, end, phase.rate, phase.cut_short or first.cut_short)
    ctx.extra["rss_readings"] = readings
    _heavy(ctx, daemon)


def _feed(ctx: Context, port: int, start: int, count: int, seconds: float,
          on_sent: Callable[[], None] | None = None) -> Phase:
    stream = Stream(ctx.corpus, start, max(count, 0))
    try:
        return send(port, stream.take, CLIENTS, seconds, ctx.progress, on_sent)
    finally:
        stream.close()


def _reading(pid: int, messages: int) -> dict[str, float]:
    return {"messages": messages, "main_rss_mb": status(pid).get("VmRSS", 0) / MB, "tree_pss_mb": tree_pss(pid) / MB}


def _flat_rows(ctx: Context, base: dict[str, float], end: dict[str, float], rate: float, cut: bool) -> None:
    limit = TARGETS["rss_growth"]
    for key, label in (("main_rss_mb", "main process RSS"), ("tree_pss_mb", "with workers (PSS)")):
        growth = (end[key] - base[key]) / base[key] if base[key] else 0.0
        ctx.add(Row(
            "5 memory", "sqlite", f"{label} after {base['messages']:,} → {end['messages']:,}",
            f"{base[key]:6.1f} → {end[key]:6.1f} MB ({growth:+.1%})" + ("  (time bound)" if cut else ""),
            f"flat (<= +{limit:.0%})", growth <= limit,
            data={"baseline": base, "end": end, "growth": growth, "feed_rate": rate},
        ))


def _heavy(ctx: Context, daemon: DaemonProcess) -> None:
    count = ctx.sizes.heavy
    seed = ctx.corpus.seed
    mails = [Mail(10**9 + i, heavy(seed, i), f"heavy{i}@gb1.sev.gov.ru", "heavy", 1, f"heavy.{seed}.{i}")
             for i in range(count)]
    ctx.progress.phase(f"memory: {count} messages with 10 MB of attachments", count)
    with PeakSampler(daemon.pid, 0.05) as sampler:
        phase = send(daemon.box.smtp_port, from_list(mails), min(2, count), 300, ctx.progress)
    hwm = status(daemon.pid).get("VmHWM", 0)
    target = TARGETS["rss_mb"]
    size_mb = len(mails[0].raw) / MB
    ctx.add(Row(
        "5 memory", "sqlite", f"peak, {count} × {size_mb:.1f} MB mail (10 MB files), 2 clients",
        f"main {hwm / MB:6.1f} MB (VmHWM), with workers {sampler.peak / MB:6.1f} MB (PSS)",
        f"< {target:.0f} MB", sampler.peak / MB < target and hwm / MB < target,
        data={"main_vmhwm_mb": hwm / MB, "tree_peak_pss_mb": sampler.peak / MB, "accepted": phase.sent,
              "errors": dict(phase.errors), "latencies_s": phase.latencies},
    ))
