"""`maildesk serve`'s SMTP component: the receiver with ingest running on a thread pool."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Callable

from maildesk.adapters.smtp_server import Quarantine, SmtpReceiver, Submit
from maildesk.core.model import Envelope, Reason
from maildesk.service.ingest import Deps, ingest
from maildesk.service.ports import IngestResult
from maildesk.service.quarantine_raw import quarantine_raw

WORKERS = 4  # messages processed at once; SQLite serialises the commits anyway
STOP_GRACE = 20.0  # seconds for messages in DATA at stop; `maildesk serve` waits 30 for all components


def threaded_submit(deps: Deps, executor: Executor,
                    work: Callable[[bytes, Envelope, Deps], IngestResult] = ingest) -> Submit:
    """An async submit running the blocking pipeline off the event loop, so one slow message stalls no session."""

    async def submit(raw: bytes, envelope: Envelope) -> IngestResult:
        return await asyncio.get_running_loop().run_in_executor(executor, work, raw, envelope, deps)

    return submit


def pipeline_submit(pipeline: Any) -> Submit:
    """An async submit through the daemon's IngestPipeline (parsing on every core, group commit)."""

    async def submit(raw: bytes, envelope: Envelope) -> IngestResult:
        return await asyncio.wrap_future(pipeline.submit(raw, envelope))

    return submit


def threaded_quarantine(deps: Deps, executor: Executor) -> Quarantine:
    async def quarantine(raw: bytes, envelope: Envelope, reason: Reason) -> IngestResult:
        call = functools.partial(quarantine_raw, raw, envelope, reason, deps)
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    return quarantine


async def run_receiver(app: Any, stop: asyncio.Event, *, workers: int = WORKERS, grace: float = STOP_GRACE,
                       started: Callable[[SmtpReceiver], None] | None = None) -> None:
    """Receive until `stop` is set, then finish messages in flight and wait for their commits."""
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maildesk-smtp")
    loop = asyncio.get_running_loop()
    try:
        pipeline = getattr(app, "pipeline", None)
        submit = pipeline_submit(pipeline) if pipeline is not None else threaded_submit(app.deps, executor)
        receiver = SmtpReceiver(app.settings, submit, threaded_quarantine(app.deps, executor))
        await receiver.start()
        if started is not None:
            started(receiver)
        try:
            await stop.wait()
        finally:
            await receiver.stop(grace)
    finally:
        # a session closed after the grace may still have its commit running: let it end
        await loop.run_in_executor(None, functools.partial(executor.shutdown, wait=True))
