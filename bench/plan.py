"""What a run measures: sizes and time bounds for the full and the quick mode, the targets, and the run's context."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.corpus import Corpus
from bench.progress import Progress
from bench.report import Row

SCENARIOS = ("limits", "smtp", "memory", "imap", "scheduler", "outbox")
QUICK_BUDGET = 53.0  # seconds: the quick run must end within a minute on 2 cores
HEAVY_RESERVE = 3.5  # seconds kept for the 10 MB messages after the memory scenario's fill

# The figures maildesk is meant to reach on the production machine (2 cores).
TARGETS = {
    "smtp_rate_8": 120.0,  # msg/s with 8 clients
    "smtp_p99_ms": 300.0,
    "imap_seconds_10k": 100.0,  # 10,000 messages drained
    "scheduler_seconds_1m": 2.0,  # one pass over 1,000,000 tickets
    "outbox_rate": 200.0,  # notifications per second
    "rss_mb": 250.0,  # while ingesting 10 MB of attachments
    "rss_growth": 0.10,  # "flat": RSS after N messages at most 10 % above RSS after the first 1,000
}


@dataclass(frozen=True)
class Sizes:
    """How much each scenario does; every loop is bounded by a count and by `*_seconds`."""

    limit_sample: int  # messages parsed / committed for the limits
    smtp_counts: tuple[tuple[int, int], ...]  # (clients, messages)
    pg_smtp_counts: tuple[tuple[int, int], ...]  # the same on PostgreSQL
    smtp_seconds: float  # per phase
    warmup: int
    memory_total: int  # messages through the daemon before the last RSS reading
    memory_seconds: float
    heavy: int  # messages with 10 MB of attachments
    imap_backlog: int
    imap_pipeline: bool  # also drain with the daemon's pipeline (a second backlog)
    imap_seconds: float
    ticket_counts: tuple[int, ...]
    outbox_mails: int  # ingested to fill the outbox
    outbox_seconds: float
    transport_sample: int  # messages sent by SmtpTransport alone, for the outbox's limit


FULL = Sizes(limit_sample=600, smtp_counts=((1, 200), (8, 1200), (32, 1200)),
             pg_smtp_counts=((1, 200), (8, 1200), (32, 1200)), smtp_seconds=180, warmup=16,
             memory_total=100_000, memory_seconds=3600, heavy=4, imap_backlog=10_000, imap_pipeline=True,
             imap_seconds=900, ticket_counts=(100_000, 1_000_000), outbox_mails=1000, outbox_seconds=300,
             transport_sample=500)
QUICK = Sizes(limit_sample=60, smtp_counts=((1, 25), (8, 120), (32, 160)), pg_smtp_counts=((8, 120),),
              smtp_seconds=20, warmup=6,
              memory_total=2000, memory_seconds=40, heavy=2, imap_backlog=300, imap_pipeline=False,
              imap_seconds=60, ticket_counts=(20_000,), outbox_mails=40, outbox_seconds=20,
              transport_sample=60)


@dataclass
class Context:
    """Everything a scenario needs: what to run, how much, where, and where its figures go."""

    sizes: Sizes
    quick: bool
    only: tuple[str, ...]
    pg_url: str
    pg_note: str
    corpus: Corpus
    progress: Progress
    rows: list[Row] = field(default_factory=list)
    limits: dict[str, float] = field(default_factory=dict)  # "parse", "commit:sqlite", "commit:postgresql", …
    extra: dict[str, Any] = field(default_factory=dict)  # query plans, outcome counts … for the JSON
    started: float = field(default_factory=time.monotonic)

    def time_for(self, wanted: float) -> float:
        """`wanted` seconds, or less in the quick run, so that the run still ends in its budget (it runs last)."""
        if not self.quick:
            return wanted
        left = self.started + QUICK_BUDGET - HEAVY_RESERVE - time.monotonic()
        return max(min(wanted, left), 1.0)

    def wants(self, scenario: str) -> bool:
        return scenario in self.only

    def backends(self) -> list[tuple[str, str]]:
        """(name, admin URL or '') for SQLite and, when reachable, PostgreSQL."""
        return [("sqlite", "")] + ([("postgresql", self.pg_url)] if self.pg_url else [])

    def add(self, row: Row) -> None:
        self.rows.append(row)
