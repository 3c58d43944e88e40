"""Concurrent ingest for the receivers: parse in worker processes, commit in batches from one writer.

Parsing and triage are pure and CPU-bound, so they run in a process pool over every
core; archiving the raw bytes (fsync) happens there too. Commits stay in one writer
thread, in arrival order: it takes whatever messages are ready and applies them in one
transaction (group commit), each inside its own savepoint so that one failing message
is undone alone. A message's future resolves only after that transaction committed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Any

from maildesk.core.decide import decide
from maildesk.core.decision import Decision, Triage
from maildesk.core.dedupe import idempotency_key
from maildesk.core.model import Envelope, InboundMail, Outcome, Reason
from maildesk.core.parse import check_limits, parse
from maildesk.core.triage import triage
from maildesk.service.ingest import Deps, Policy, TemporaryFailure, archive_files, internal_failure
from maildesk.service.ports import Archive, Incoming, IngestResult, StoreUnavailable

log = logging.getLogger("maildesk.pipeline")

MAX_BATCH = 64
PREPARE_TIMEOUT = 60.0  # seconds one message may take to parse before it is held and its worker replaced
PARSE_TIMEOUT = Reason("parse.timeout", f"parsing took longer than {PREPARE_TIMEOUT:.0f} s")
PARSER_DIED = Reason("parse.crashed", "the parser process died on this message twice")


@dataclass(frozen=True)
class Prepared:
    """A message parsed, triaged and archived, waiting for its commit."""

    key: str
    raw_sha256: str
    envelope: Envelope
    mail: InboundMail | None
    triage: Triage | None
    limit: Reason | None
    attachment_shas: tuple[str, ...]
    size: int


def prepare(raw: bytes, envelope: Envelope, policy: Policy, archive: Archive) -> Prepared:
    """The pure half of ingest plus the archive writes; runs in a worker process."""
    key = idempotency_key(raw)
    limit = check_limits(raw)
    raw_sha = archive.put(raw)
    if limit is not None:
        return Prepared(key, raw_sha, envelope, None, None, limit, (), len(raw))
    try:
        mail = parse(raw)
        triaged = triage(mail, envelope, policy.triage)
    except Exception as exc:  # a hostile message found a bug: it is quarantined, never retried forever
        log.exception("message %s could not be triaged; quarantined", key[:12])
        return Prepared(key, raw_sha, envelope, None, None, internal_failure("triage", exc), (), len(raw))
    shas = archive_files(mail, triaged, archive)  # never an executable's bytes
    # the bytes stay in the archive: only what the commit needs travels back to the writer
    lean = replace(mail, attachments=tuple(a.without_data() for a in mail.attachments))
    return Prepared(key, raw_sha, envelope, lean, replace(triaged, mail=lean), None, shas, len(raw))


@dataclass
class _Job:
    """A submitted message: its preparation under way in a worker, its result once committed."""

    raw: bytes
    envelope: Envelope
    preparing: Future
    done: Future = field(default_factory=Future)
    prepared: Prepared | None = None  # set by the writer once the preparation is in
    retried: bool = False  # sent to a new worker once already, after its worker process died
    generation: int = 0  # which set of worker processes it went to

    def __post_init__(self) -> None:
        # running from the start: a caller that gives up (a dropped SMTP session cancels its
        # await) cannot cancel it, so the writer can always resolve it
        self.done.set_running_or_notify_cancel()


def _executor(workers: int) -> Executor:
    if workers <= 1:
        return ThreadPoolExecutor(max_workers=2, thread_name_prefix="maildesk-parse")
    # forkserver: workers never inherit the daemon's threads or open sockets
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))


def _key(job: _Job) -> str:
    return idempotency_key(job.raw)[:12]


def _as_failure(error: BaseException) -> BaseException:
    """Store and disk trouble is temporary (retry later); anything else is this message's own fault."""
    if isinstance(error, (TemporaryFailure, StoreUnavailable, OSError)):
        return error if isinstance(error, TemporaryFailure) else TemporaryFailure(str(error))
    return error


class IngestPipeline:
    """submit(raw, envelope) → Future[IngestResult], resolved after the commit; TemporaryFailure when not taken."""

    def __init__(self, deps: Deps, transaction: Any, workers: int = 0,
                 prepare_timeout: float = PREPARE_TIMEOUT) -> None:
        self.deps = deps
        self.transaction = transaction  # () -> context manager yielding a StoreTx
        self.workers = workers or os.cpu_count() or 1
        self.prepare_timeout = prepare_timeout
        self.pool = _executor(self.workers)
        self.generation = 0  # counts the pools; a job on the one we killed ourselves is not to blame
        self.killed_generation = -1
        self._pool_lock = threading.Lock()
        self.queue: queue.Queue[_Job | None] = queue.Queue()
        self.writer = threading.Thread(target=self._write_loop, name="maildesk-writer", daemon=True)
        self.writer.start()

    @property
    def alive(self) -> bool:
        """False once the writer has stopped: nothing submitted would be committed (health checks)."""
        return self.writer.is_alive()

    def submit(self, raw: bytes, envelope: Envelope) -> Future:
        # queued at once, in arrival order: the writer commits in that order whatever finishes parsing first
        preparing, generation = self._prepare(raw, envelope)
        job = _Job(raw, envelope, preparing, generation=generation)
        self.queue.put(job)
        return job.done

    def _prepare(self, raw: bytes, envelope: Envelope) -> tuple[Future, int]:
        with self._pool_lock:
            try:
                return self.pool.submit(prepare, raw, envelope, self.deps.policy, self.deps.archive), self.generation
            except BrokenProcessPool:  # a worker died (killed, out of memory): carry on with new ones
                self._renew_pool()
                return self.pool.submit(prepare, raw, envelope, self.deps.policy, self.deps.archive), self.generation

    def _renew_pool(self, kill: bool = False) -> None:
        """Replace the workers; with `kill`, stop the old ones first (one of them is stuck)."""
        old, self.pool = self.pool, _executor(self.workers)
        if kill:
            self.killed_generation = self.generation
        self.generation += 1
        if kill:  # ProcessPoolExecutor cannot cancel a running call: its processes are stopped instead
            for process in list((getattr(old, "_processes", None) or {}).values()):
                process.kill()
        old.shutdown(wait=False, cancel_futures=False)

    def ingest(self, raw: bytes, envelope: Envelope, timeout: float | None = None) -> IngestResult:
        return self.submit(raw, envelope).result(timeout)

    def _ready(self, job: _Job) -> bool:
        """Wait for a job's preparation; a failed one is answered at once and left out.

        A message that parses for too long, or whose worker process dies twice, is held in
        quarantine unparsed (its raw bytes archived here) instead of stalling the queue.
        """
        while True:
            finished, _ = wait([job.preparing], timeout=self.prepare_timeout)
            if not finished:
                log.error("message %s took over %.0f s to parse: held in quarantine, parser processes replaced",
                          _key(job), self.prepare_timeout)
                with self._pool_lock:
                    self._renew_pool(kill=True)
                return self._hold(job, PARSE_TIMEOUT)
            error = job.preparing.exception()
            if error is None:
                job.prepared = job.preparing.result()
                return True
            if isinstance(error, BrokenProcessPool):
                if job.generation == self.killed_generation:  # stopped with a stuck neighbour: not its fault
                    job.preparing, job.generation = self._prepare(job.raw, job.envelope)
                    continue
                if job.retried:
                    log.error("message %s: the parser process died on it twice; held in quarantine", _key(job))
                    return self._hold(job, PARSER_DIED)
                log.warning("a parser process died; message %s goes to a new one", _key(job))
                job.retried = True
                job.preparing, job.generation = self._prepare(job.raw, job.envelope)
                continue
            log.error("message not taken, will be retried: %s", error)
            job.done.set_exception(_as_failure(error))
            return False

    def _hold(self, job: _Job, reason: Reason) -> bool:
        try:
            raw_sha = self.deps.archive.put(job.raw)
        except OSError as exc:
            job.done.set_exception(TemporaryFailure(str(exc)))
            return False
        job.prepared = Prepared(idempotency_key(job.raw), raw_sha, job.envelope, None, None, reason, (), len(job.raw))
        return True

    def _write_loop(self) -> None:
        """Commit in arrival order: the oldest message (waited for), then every one after it already parsed.

        Taking only what is ready keeps the workers parsing while a batch commits, instead of
        the writer waiting for a whole queue to parse and the workers then waiting for the commit.
        """
        waiting: deque[_Job] = deque()
        stopping = False
        while waiting or not stopping:
            if not waiting:
                item = self.queue.get()
                if item is None:
                    return
                waiting.append(item)
            while not stopping:  # whatever has arrived meanwhile, without waiting
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                else:
                    waiting.append(item)
            batch: list[_Job] = []
            try:
                first = waiting.popleft()
                if self._ready(first):
                    batch.append(first)
                while waiting and len(batch) < MAX_BATCH and waiting[0].preparing.done():
                    job = waiting.popleft()
                    if self._ready(job):
                        batch.append(job)
                if batch:
                    self._commit(batch)
            except Exception as exc:  # the writer must outlive any fault: answer what it holds, go on
                log.exception("ingest writer fault; %d message(s) will be retried", len(batch))
                for job in batch:
                    if not job.done.done():
                        job.done.set_exception(TemporaryFailure(str(exc)))

    def _commit(self, batch: list[_Job]) -> None:
        outcomes: list[IngestResult | BaseException] = []
        try:
            with self.transaction() as tx:
                now = self.deps.clock.now()
                for job in batch:
                    assert job.prepared is not None
                    try:
                        with tx.savepoint():
                            outcomes.append(self._apply(tx, job.prepared, now))
                    except StoreUnavailable as exc:  # undone alone; the sender retries it
                        outcomes.append(exc)
                    except Exception as exc:  # this message's own: held, so that no retry meets it again
                        log.exception("message %s could not be applied; holding it in quarantine", job.prepared.key[:12])
                        outcomes.append(self._set_aside(tx, job.prepared, exc, now))
        except Exception as exc:  # the commit itself failed: nothing of the batch was taken
            log.error("batch of %d not committed, will be retried: %s", len(batch), exc)
            outcomes = [TemporaryFailure(str(exc))] * len(batch)
        for job, outcome in zip(batch, outcomes):
            if isinstance(outcome, BaseException):
                job.done.set_exception(_as_failure(outcome))
            else:
                job.done.set_result(outcome)
                if self.deps.on_result is not None and job.prepared is not None:
                    self.deps.on_result(outcome, job.prepared.envelope, job.prepared.size)

    def _set_aside(self, tx: Any, p: Prepared, error: Exception, now: Any) -> IngestResult | BaseException:
        reason = internal_failure("apply", error)
        try:
            with tx.savepoint():
                return self._apply(tx, replace(p, triage=None, limit=reason, attachment_shas=()), now)
        except Exception as exc:  # not even a quarantine entry: the sender keeps the mail and retries
            log.exception("message %s could not be held either", p.key[:12])
            return exc

    def _apply(self, tx: Any, p: Prepared, now: Any) -> IngestResult:
        prior = tx.processed(p.key)
        if prior is not None:
            return IngestResult(Outcome.DUPLICATE, "duplicate", prior.ticket, prior.quarantine, (), p.key)
        if p.limit is not None or p.triage is None:
            reason = p.limit or Reason("parse.failed")
            decision = Decision(Outcome.QUARANTINED, reason.code, (reason,), quarantine=reason, record={"rule": reason.code})
        else:
            decision = decide(p.triage, tx.context(p.triage), self.deps.policy.decide)
        incoming = Incoming(p.key, p.raw_sha256, p.envelope, p.mail, p.triage, decision, p.attachment_shas)
        return tx.apply(incoming, now, self.deps.composer)

    def close(self) -> None:
        """Finish what was submitted, then stop the writer and the workers."""
        self.queue.put(None)
        self.writer.join()
        self.pool.shutdown(wait=True)
