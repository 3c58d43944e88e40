"""The concurrent ingest pipeline: worker processes parse, one writer commits in batches."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Iterator

import pytest

from maildesk.adapters.queries import TicketFilter, list_quarantine, list_tickets, show_ticket
from maildesk.core.model import Envelope, Outcome
from maildesk.service import pipeline as pipeline_mod
from maildesk.service.ingest import TemporaryFailure
from maildesk.service.pipeline import IngestPipeline
from tests.mailmaker import make_mail


@pytest.fixture
def pipe(app: Any) -> Iterator[IngestPipeline]:
    p = IngestPipeline(app.deps, app.store.transaction, workers=2)
    yield p
    p.close()


def test_concurrent_messages_become_tickets_once_each(app: Any, pipe: IngestPipeline) -> None:
    mails = [make_mail(subject=f"Заявка {i}", body=f"Текст {i}.\nТелефон: 55-11-{i:02d}") for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda raw: pipe.ingest(raw, Envelope("smtp"), timeout=60), mails + mails[:6]))
    created = [r for r in results if r.outcome is Outcome.CREATED]
    duplicates = [r for r in results if r.outcome is Outcome.DUPLICATE]
    assert (len(created), len(duplicates)) == (24, 6)
    assert len({r.ticket for r in created}) == 24
    assert len(list_tickets(app.engine, TicketFilter())) == 24
    assert {d.ticket for d in duplicates} <= {r.ticket for r in created}


def test_a_reply_in_the_same_batch_threads_into_its_ticket(app: Any, pipe: IngestPipeline) -> None:
    first = pipe.submit(make_mail(message_id="root-1@gb1.sev.gov.ru"), Envelope("smtp"))
    reply = pipe.submit(make_mail(subject="Re: карта", body="Дополнение.", in_reply_to="root-1@gb1.sev.gov.ru"),
                        Envelope("smtp"))
    wait([first, reply], timeout=60)
    assert first.result().outcome is Outcome.CREATED
    assert (reply.result().outcome, reply.result().ticket) == (Outcome.APPENDED, first.result().ticket)


def test_limits_and_refusals_are_quarantined(app: Any, pipe: IngestPipeline) -> None:
    huge_header = b"X-Junk: " + b"a" * 400_000 + b"\r\n" + make_mail()
    outsider = make_mail(sender="x@evil.example")
    results = [pipe.ingest(raw, Envelope("smtp"), timeout=60) for raw in (huge_header, outsider)]
    assert [r.outcome for r in results] == [Outcome.QUARANTINED, Outcome.QUARANTINED]
    assert {e["reason"].split(".")[0] for e in list_quarantine(app.engine)} == {"limits", "sender"}


def test_one_failing_message_does_not_sink_its_batch(app: Any, pipe: IngestPipeline,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real = pipeline_mod.decide
    gate = threading.Event()

    def decide(triage: Any, context: Any, policy: Any) -> Any:
        gate.wait(10)  # hold the writer so the three messages share one batch
        if triage.mail.subject == "Сбой":
            raise RuntimeError("a bug met by one message")
        return real(triage, context, policy)

    monkeypatch.setattr(pipeline_mod, "decide", decide)  # a bug cannot be caused without planting one
    futures = [pipe.submit(make_mail(subject=s, body="Текст.\nТелефон: 55-11-22"), Envelope("smtp"))
               for s in ("Первая", "Сбой", "Третья")]
    gate.set()
    wait(futures, timeout=60)
    assert futures[0].result().outcome is Outcome.CREATED
    held = futures[1].result()  # the message's own fault: held, so that no retry meets the bug again
    assert held.outcome is Outcome.QUARANTINED
    assert futures[2].result().outcome is Outcome.CREATED
    subjects = sorted(t["subject"] for t in list_tickets(app.engine, TicketFilter()))
    assert subjects == ["Первая", "Третья"]
    entry = list_quarantine(app.engine)[0]
    assert (entry["id"], entry["reason"], entry["subject"]) == (held.quarantine, "ingest.failed", "Сбой")
    assert "RuntimeError: a bug met by one message" in entry["detail"]


def test_store_down_is_a_temporary_failure_then_success(make_app: Any) -> None:
    app = make_app()
    broken = IngestPipeline(app.deps, _failing_transaction, workers=1)
    raw = make_mail()
    with pytest.raises(TemporaryFailure):
        broken.ingest(raw, Envelope("smtp"), timeout=60)
    broken.close()
    working = IngestPipeline(app.deps, app.store.transaction, workers=1)
    result = working.ingest(raw, Envelope("smtp"), timeout=60)
    working.close()
    assert result.outcome is Outcome.CREATED
    assert show_ticket(app.engine, result.ticket)["subject"] == "Не открывается карта пациента в МИС"


def _failing_transaction() -> Any:
    import sqlalchemy as sa

    from maildesk.adapters.store import SqlTicketStore

    return SqlTicketStore(sa.create_engine("postgresql+psycopg://maildesk@127.0.0.1:1/none")).transaction()


def test_a_caller_that_gives_up_does_not_stop_the_writer(app: Any, pipe: IngestPipeline) -> None:
    import asyncio

    async def give_up() -> None:  # what aiosmtpd does to a session whose client hangs up before its 250
        waiting = asyncio.ensure_future(asyncio.wrap_future(pipe.submit(make_mail(subject="Брошено"), Envelope("smtp"))))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(give_up())
    after = pipe.ingest(make_mail(subject="Следующее", body="Текст.\nТелефон: 55-11-99"), Envelope("smtp"), timeout=60)
    assert after.outcome is Outcome.CREATED and pipe.alive
    subjects = {t["subject"] for t in list_tickets(app.engine, TicketFilter())}
    assert subjects == {"Брошено", "Следующее"}, "the abandoned message is committed too: its sender's retry is a duplicate"


def test_a_killed_parser_process_is_replaced(app: Any, pipe: IngestPipeline) -> None:
    import os
    import signal

    assert pipe.ingest(make_mail(subject="Первое"), Envelope("smtp"), timeout=60).outcome is Outcome.CREATED
    for pid in list(pipe.pool._processes):  # type: ignore[attr-defined]  # as the OOM killer would
        os.kill(pid, signal.SIGKILL)
    results = [pipe.ingest(make_mail(subject=f"После {i}", body=f"Текст {i}.\nТелефон: 55-11-0{i}"),
                           Envelope("smtp"), timeout=60) for i in range(3)]
    assert [r.outcome for r in results] == [Outcome.CREATED] * 3
    assert len(list_tickets(app.engine, TicketFilter())) == 4


def test_a_message_that_parses_too_long_is_held_and_the_rest_flows(app: Any, pipe: IngestPipeline) -> None:
    big = make_mail(subject="Огромное", attachments=[("scan.pdf", "application/pdf", b"%PDF-1.4\n" + os.urandom(6_000_000))])
    pipe.prepare_timeout = 0.001  # far below what parsing 8 MB takes
    held = pipe.ingest(big, Envelope("smtp"), timeout=60)
    pipe.prepare_timeout = 60.0
    after = pipe.ingest(make_mail(subject="Обычное"), Envelope("smtp"), timeout=60)
    assert held.outcome is Outcome.QUARANTINED and after.outcome is Outcome.CREATED
    entry = list_quarantine(app.engine)[0]
    assert entry["reason"] == "parse.timeout" and entry["raw_sha256"]
    assert app.archive.get(entry["raw_sha256"]) == big, "the raw mail is kept for release"
