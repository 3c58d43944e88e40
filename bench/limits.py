"""Scenario 6, the limits: parse + triage alone (one process) and the pipeline's writer alone, on the same mail.

The receivers can go no faster than min(parse rate × worker processes, commit rate):
every other figure is shown as a share of that.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor, Future
from typing import Any

from bench.corpus import DESK, Mail
from bench.plan import Context
from bench.report import Row
from bench.sandbox import make_sandbox
from maildesk.bootstrap import build
from maildesk.core.model import Envelope
from maildesk.core.parse import parse
from maildesk.core.triage import triage

WRITER_TIMEOUT = 600.0
WARM_UP = 5  # messages handled before the clock starts: templates compiled, caches and connections filled


def envelope(mail: Mail, source: str = "smtp") -> Envelope:
    return Envelope(source, mail.sender, (DESK,), peer="127.0.0.1")


def run(ctx: Context) -> None:
    sample = ctx.corpus.slice(0, ctx.sizes.limit_sample)
    warm = ctx.corpus.slice(ctx.sizes.limit_sample, WARM_UP)
    box = make_sandbox("limits", "")
    try:
        app = build(box.settings)
        ctx.progress.phase("limits: parse + triage, one process", len(sample))
        _parse_rate(ctx, app, warm)
        rate = _parse_rate(ctx, app, sample)
        ctx.limits["parse"] = rate
        ctx.add(Row("6 limits", "-", f"parse + triage, 1 process × {len(sample)}", f"{rate:6.1f} msg/s",
                    data={"rate": rate, "messages": len(sample)}))
        ctx.progress.phase("limits: preparing messages for the writer", len(sample))
        prepared = _prepare_all(ctx, app, warm + sample)
        app.close()
    finally:
        box.remove()
    for backend, pg_url in ctx.backends():
        ctx.progress.phase(f"limits: writer alone, {backend}", len(sample))
        wbox = make_sandbox(f"commit-{backend}", pg_url)
        try:
            app = build(wbox.settings)
            rate, how = _commit_rate(ctx, app, warm, sample, prepared)
            app.close()
        finally:
            wbox.remove()
        ctx.limits[f"commit:{backend}"] = rate
        ctx.add(Row("6 limits", backend, f"commit only ({how}) × {len(sample)}", f"{rate:6.1f} msg/s",
                    data={"rate": rate, "messages": len(sample), "how": how}))


def _parse_rate(ctx: Context, app: Any, sample: list[Mail]) -> float:
    policy = app.deps.policy.triage
    envelopes = [envelope(m) for m in sample]
    began = time.perf_counter()
    for mail, env in zip(sample, envelopes):
        triage(parse(mail.raw), env, policy)
        ctx.progress.advance()
    return len(sample) / (time.perf_counter() - began)


def _prepare_all(ctx: Context, app: Any, sample: list[Mail]) -> dict[int, Any]:
    """Each message parsed, triaged and archived, as the pipeline's workers hand it to the writer."""
    from maildesk.service.pipeline import prepare

    found = {}
    for mail in sample:
        found[id(mail.raw)] = prepare(mail.raw, envelope(mail), app.deps.policy, app.deps.archive)
        ctx.progress.advance()
    return found


class _Prepared(Executor):
    """Stands in for the worker pool: every message comes back already prepared, so only the writer works."""

    def __init__(self, prepared: dict[int, Any]) -> None:
        self.prepared = prepared

    def submit(self, fn: Any, raw: bytes, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        future: Future = Future()
        future.set_result(self.prepared[id(raw)])
        return future


def _commit_rate(ctx: Context, app: Any, warm: list[Mail], sample: list[Mail],
                 prepared: dict[int, Any]) -> tuple[float, str]:
    from maildesk.service.pipeline import IngestPipeline

    try:
        pipeline = IngestPipeline(app.deps, app.store.transaction, 1)
        pipeline.pool.shutdown()
        pipeline.pool = _Prepared(prepared)
    except (TypeError, AttributeError):  # the pipeline changed shape: time its steps one message at a time
        _commit_rate_serial(ctx, app, warm, prepared)
        return _commit_rate_serial(ctx, app, sample, prepared), "one transaction per message"
    for future in [pipeline.submit(mail.raw, envelope(mail)) for mail in warm]:
        future.result(WRITER_TIMEOUT)
    began = time.perf_counter()
    futures = [pipeline.submit(mail.raw, envelope(mail)) for mail in sample]
    for future in futures:
        future.result(WRITER_TIMEOUT)
        ctx.progress.advance()
    seconds = time.perf_counter() - began
    pipeline.close()
    return len(sample) / seconds, "pipeline writer, group commit"


def _commit_rate_serial(ctx: Context, app: Any, sample: list[Mail], prepared: dict[int, Any]) -> float:
    from maildesk.core.decide import decide
    from maildesk.service.ports import Incoming

    began = time.perf_counter()
    for mail in sample:
        p = prepared[id(mail.raw)]
        if p.triage is not None:
            decision = decide(p.triage, app.store.context(p.triage), app.deps.policy.decide)
            incoming = Incoming(p.key, p.raw_sha256, p.envelope, p.mail, p.triage, decision, p.attachment_shas)
            app.store.apply(incoming, app.deps.clock.now(), app.deps.composer)
        ctx.progress.advance()
    return len(sample) / (time.perf_counter() - began)
