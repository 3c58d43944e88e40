"""SMTP load: N smtplib clients on loopback, one reused connection each, timing every sendmail()."""

from __future__ import annotations

import queue
import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from bench.corpus import DESK, Corpus, Mail
from bench.progress import Progress
from bench.sandbox import HOST

Source = Callable[[], "Mail | None"]


@dataclass
class Phase:
    """What one load phase did: accepted messages, wall time, and per-message latency (s)."""

    clients: int
    sent: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    cut_short: bool = False  # the time bound ended it before the count

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def from_list(mails: Sequence[Mail]) -> Source:
    """A thread-safe source over pre-built messages (timed phases build them before the clock starts)."""
    lock, position = threading.Lock(), [0]

    def take() -> Mail | None:
        with lock:
            if position[0] >= len(mails):
                return None
            position[0] += 1
            return mails[position[0] - 1]

    return take


class Stream:
    """The corpus in order, built ahead by a thread into a bounded queue: for long runs that cannot be held."""

    def __init__(self, corpus: Corpus, start: int, count: int, ahead: int = 256) -> None:
        self.queue: queue.Queue[Mail | None] = queue.Queue(ahead)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._fill, args=(corpus, start, count), daemon=True)
        self.thread.start()

    def _fill(self, corpus: Corpus, start: int, count: int) -> None:
        for index in range(start, start + count):
            while not self.stopped.is_set():
                try:
                    self.queue.put(corpus[index], timeout=0.5)
                    break
                except queue.Full:
                    continue
        self.queue.put(None)

    def take(self) -> Mail | None:
        item = self.queue.get()
        if item is None:
            self.queue.put(None)  # the end, for every other client too
        return item

    def close(self) -> None:
        self.stopped.set()


def send(port: int, source: Source, clients: int, seconds: float, progress: Progress | None = None,
         on_sent: Callable[[], None] | None = None) -> Phase:
    """Run `clients` connections until the source is empty or `seconds` have passed."""
    phase = Phase(clients)
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline = [float("inf")]  # set once every client is connected

    def client() -> None:
        connection = None
        try:
            connection = smtplib.SMTP(HOST, port, timeout=120)
            connection.ehlo("bench.localhost")
        except (OSError, smtplib.SMTPException) as exc:
            with lock:
                phase.errors[f"connect: {type(exc).__name__}"] += 1
        start.wait()
        if connection is None:
            return
        try:
            _session(connection, source, deadline, phase, lock, progress, on_sent)
        finally:
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                pass

    threads = [threading.Thread(target=client, name=f"smtp-client-{i}", daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()  # connection set-up is outside the clock
    began = time.perf_counter()
    deadline[0] = began + seconds
    for thread in threads:
        thread.join(seconds + 180)
    phase.seconds = time.perf_counter() - began
    return phase


def _session(connection: smtplib.SMTP, source: Source, deadline: list[float], phase: Phase, lock: threading.Lock,
             progress: Progress | None, on_sent: Callable[[], None] | None) -> None:
    while True:
        if time.perf_counter() > deadline[0]:
            with lock:
                phase.cut_short = True
            return
        mail = source()
        if mail is None:
            return
        began = time.perf_counter()
        try:
            connection.sendmail(mail.sender, [DESK], mail.raw)
        except smtplib.SMTPResponseException as exc:  # 451 and the like: the connection stays usable
            with lock:
                phase.errors[f"{exc.smtp_code}"] += 1
            continue
        except (OSError, smtplib.SMTPException) as exc:
            with lock:
                phase.errors[type(exc).__name__] += 1
            return
        elapsed = time.perf_counter() - began
        with lock:
            phase.sent += 1
            phase.latencies.append(elapsed)
        if progress is not None:
            progress.advance()
        if on_sent is not None:
            on_sent()


def chunks(total: int, size: int) -> Iterator[int]:
    """Sizes of the steps that add up to `total`."""
    while total > 0:
        yield min(size, total)
        total -= size
