"""Scenario 3, the scheduler: one `housekeeping_pass` over a store of many tickets, a few of them due.

The tickets are loaded with bulk SQL (one executemany transaction on SQLite, COPY on
PostgreSQL): 80 % closed, 10 % active (new, assigned, in progress; some not yet
accepted), 10 % waiting for the requester (feedback, resolved). About 1 % of the
waiting tickets are due for a reminder or the stale close, and about 2 % of the
unaccepted ones for an SLA warning or breach. A second pass right after finds nothing
due and shows the cost of the four indexed queries alone.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from bench.plan import TARGETS, Context
from bench.report import Row
from bench.sandbox import DESK, make_sandbox

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)  # a Wednesday, 12:00 in Sevastopol
CHUNK = 20_000
CONTACTS_PER_TICKET = 0.05
JOBS = ("stale_close", "stale_remind", "sla_warning", "sla_breach")

TICKET_COLUMNS = ("subject", "desk", "requester_id", "status", "close_reason", "priority", "priority_source", "line",
                  "owner", "created_at", "updated_at", "accepted_at", "accept_warn_at", "accept_due_at",
                  "accept_warned_at", "accept_breached_at", "waiting_since", "remind_at", "stale_close_at",
                  "reminded_at", "closed_at", "version")
TIMES = frozenset(c for c in TICKET_COLUMNS if c.endswith("_at") or c == "waiting_since")
SUBJECTS = ("Не открывается карта пациента в МИС", "Ошибка при выписке электронного рецепта",
            "Не печатается направление", "Нет доступа к модулю «Регистратура»", "Сбой выгрузки в ЕГИСЗ")


class FixedClock:
    def now(self) -> datetime:
        return NOW


def tickets(count: int, contacts: int, seed: int, expected: dict[str, int]) -> Iterator[dict[str, Any]]:
    """The ticket rows, with `expected` counting those each job should find due."""
    rng = random.Random(seed)
    hour = timedelta(hours=1)
    for _ in range(count):
        created = NOW - timedelta(minutes=rng.randrange(1, 3 * 365 * 24 * 60))
        row: dict[str, Any] = dict.fromkeys(TICKET_COLUMNS)
        row.update(subject=rng.choice(SUBJECTS), desk=DESK, requester_id=rng.randrange(1, contacts + 1),
                   priority=rng.choice((2, 3, 3, 3, 4)), priority_source="default", line=rng.choice((1, 1, 2)),
                   created_at=created, updated_at=created + hour, accept_warn_at=created + 6 * hour,
                   accept_due_at=created + 8 * hour, version=rng.randint(1, 6))
        roll = rng.random()
        if roll < 0.8:
            row.update(status="closed", close_reason="resolved", accepted_at=created + hour,
                       closed_at=created + timedelta(days=rng.randint(1, 20)), owner="petrov@miac.sev.gov.ru")
        elif roll < 0.9:
            _waiting(row, rng, expected)
        else:
            _active(row, rng, expected)
        yield row


def _waiting(row: dict[str, Any], rng: random.Random, expected: dict[str, int]) -> None:
    since = NOW - timedelta(hours=rng.uniform(1, 24 * 8))  # reminded after 9 days, closed after 14 (10 working)
    row.update(status=rng.choice(("feedback", "resolved", "resolved")), waiting_since=since, accepted_at=since,
               remind_at=since + timedelta(days=9), stale_close_at=since + timedelta(days=14), updated_at=since)
    due = rng.random()
    if due < 0.005:  # silent past the close: reminded earlier, now closed
        row.update(remind_at=NOW - timedelta(days=5), stale_close_at=NOW - timedelta(minutes=rng.randint(1, 600)),
                   reminded_at=NOW - timedelta(days=5))
        expected["stale_close"] += 1
    elif due < 0.01:  # reminder due
        row.update(remind_at=NOW - timedelta(minutes=rng.randint(1, 600)), stale_close_at=NOW + timedelta(days=4))
        expected["stale_remind"] += 1


def _active(row: dict[str, Any], rng: random.Random, expected: dict[str, int]) -> None:
    created = NOW - timedelta(hours=rng.uniform(0.1, 24 * 30))
    row.update(status=rng.choice(("new", "assigned", "in_progress", "in_progress")), created_at=created,
               updated_at=created, accept_warn_at=created + timedelta(hours=6),
               accept_due_at=created + timedelta(hours=8))
    if row["status"] != "new" or rng.random() < 0.5:
        row["accepted_at"] = created + timedelta(minutes=30)
        return
    due = rng.random()
    if due < 0.01:  # past the warning share of the acceptance time
        row.update(accept_warn_at=NOW - timedelta(minutes=rng.randint(1, 90)), accept_due_at=NOW + timedelta(hours=2))
        expected["sla_warning"] += 1
    elif due < 0.02:  # past the deadline, warned already
        row.update(accept_warn_at=NOW - timedelta(hours=6), accept_due_at=NOW - timedelta(minutes=rng.randint(1, 90)),
                   accept_warned_at=NOW - timedelta(hours=5))
        expected["sla_breach"] += 1
    else:  # not due yet
        row.update(accept_warn_at=NOW + timedelta(hours=rng.uniform(0.5, 6)), accept_due_at=NOW + timedelta(hours=8))


def load(engine: Any, count: int, seed: int) -> dict[str, int]:
    """Bulk-insert contacts and tickets; returns how many tickets each job should find due."""
    contacts = max(int(count * CONTACTS_PER_TICKET), 10)
    expected = dict.fromkeys(JOBS, 0)
    people = ((f"user{i}@gb{i % 9 + 1}.sev.gov.ru", f"Сотрудник {i}", "", "+7 (8692) 00-00-00", NOW)
              for i in range(contacts))
    rows = tickets(count, contacts, seed, expected)
    if engine.dialect.name == "postgresql":
        _copy(engine, people, rows)
    else:
        _executemany(engine, people, rows)
    return expected


def _executemany(engine: Any, people: Iterator[tuple], rows: Iterator[dict[str, Any]]) -> None:
    """SQLite: one transaction of executemany() chunks, times stored exactly as the ORM stores them."""
    from maildesk.adapters.db_models import UTCDateTime

    bind = UTCDateTime().bind_processor(engine.dialect)
    to_db = bind if bind is not None else (lambda v: v)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN")
        cur.executemany("INSERT INTO contacts (email, name, position, phone, created_at) VALUES (?, ?, ?, ?, ?)",
                        [(*p[:4], to_db(p[4])) for p in people])
        sql = f"INSERT INTO tickets ({', '.join(TICKET_COLUMNS)}) VALUES ({', '.join('?' * len(TICKET_COLUMNS))})"
        chunk: list[tuple] = []
        for row in rows:
            chunk.append(tuple(to_db(row[c]) if c in TIMES else row[c] for c in TICKET_COLUMNS))
            if len(chunk) >= CHUNK:
                cur.executemany(sql, chunk)
                chunk = []
        if chunk:
            cur.executemany(sql, chunk)
        cur.execute("COMMIT")
        cur.close()
    finally:
        raw.close()


def _copy(engine: Any, people: Iterator[tuple], rows: Iterator[dict[str, Any]]) -> None:
    """PostgreSQL: COPY … FROM STDIN, then ANALYZE, as autovacuum would after a load this size."""
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            with cur.copy("COPY contacts (email, name, position, phone, created_at) FROM STDIN") as copy:
                for person in people:
                    copy.write_row(person)
            with cur.copy(f"COPY tickets ({', '.join(TICKET_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(tuple(row[c] for c in TICKET_COLUMNS))
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE contacts")
            cur.execute("ANALYZE tickets")
        conn.autocommit = False
    finally:
        raw.close()


def run(ctx: Context) -> None:
    for count in ctx.sizes.ticket_counts:
        for backend, pg_url in ctx.backends():
            _one(ctx, backend, pg_url, count)


def _one(ctx: Context, backend: str, pg_url: str, count: int) -> None:
    from maildesk.adapters.housekeeping_store import SqlHousekeepingStore
    from maildesk.adapters.scheduler import housekeeping_pass
    from maildesk.bootstrap import build

    ctx.progress.phase(f"scheduler: loading {count:,} tickets ({backend})")
    box = make_sandbox(f"sched-{backend}", pg_url)
    try:
        app = build(box.settings, clock=FixedClock())
        began = time.perf_counter()
        expected = load(app.engine, count, ctx.corpus.seed)
        loaded = time.perf_counter() - began
        store = SqlHousekeepingStore(app.engine, app.work)
        plans = {job: store.explain(job, NOW) for job in JOBS}
        ctx.progress.phase(f"scheduler: housekeeping pass over {count:,} tickets ({backend})")
        began = time.perf_counter()
        done = housekeeping_pass(app)
        seconds = time.perf_counter() - began
        began = time.perf_counter()
        again = housekeeping_pass(app)
        idle = time.perf_counter() - began
        app.close()
    finally:
        box.remove()
    found = {job: sum(1 for d in done if d["job"] == job) for job in JOBS}
    ctx.extra.setdefault("query_plans", {})[f"{backend} {count}"] = plans
    target = TARGETS["scheduler_seconds_1m"]
    result = f"{seconds:6.2f} s, {sum(found.values())} changed ({', '.join(f'{k} {v}' for k, v in found.items())}); " \
             f"nothing due: {idle:.2f} s"
    if found != expected or again:
        result += f"  (expected {expected}, second pass {len(again)})"
    ctx.add(Row("3 scheduler", backend, f"housekeeping_pass, {count:,} tickets", result,
                f"1,000,000 in < {target:.0f} s" if count >= 1_000_000 else "",
                seconds < target if count >= 1_000_000 else None,
                data={"tickets": count, "seconds": seconds, "idle_seconds": idle, "changed": found,
                      "expected": expected, "load_seconds": loaded, "plans": plans}))
