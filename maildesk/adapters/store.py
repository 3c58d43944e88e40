"""The ticket store: threading lookups and the one transaction that applies a decision."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from maildesk.adapters.database import session_scope
from maildesk.adapters.db_models import (
    AttachmentRow, Contact, EventRow, MessageRow, Organisation, OutboxRow, Participant,
    ProcessedMail, QuarantineEntry, Ticket,
)
from maildesk.core.deadlines import WorkClock
from maildesk.core.decide import organisation_key
from maildesk.core.decision import Context, Notice, TicketView, Triage
from maildesk.core.lifecycle import WAITING_STATUSES
from maildesk.core.model import MailKind, Outcome, Reason
from maildesk.service.ports import Composer, Incoming, IngestResult, NoticeTarget, Outgoing, StoreUnavailable


class SqlTicketStore:
    """TicketStore over SQLAlchemy: SQLite by default, PostgreSQL in production."""

    def __init__(self, engine: Engine, work: WorkClock | None = None, shared_domains: tuple[str, ...] = ()) -> None:
        self.engine = engine
        self.work = work  # computes due times; None leaves them unset
        self.shared_domains = shared_domains  # mail domains of no one organisation (sev.gov.ru itself)

    @contextmanager
    def transaction(self) -> Iterator[StoreTx]:
        """One database transaction for several messages (group commit); committed on exit."""
        with session_scope(self.engine) as s:
            yield StoreTx(s, self.work, self.shared_domains)

    def processed(self, key: str) -> IngestResult | None:
        with self.transaction() as tx:
            return tx.processed(key)

    def context(self, triage: Triage) -> Context:
        with self.transaction() as tx:
            return tx.context(triage)

    def ticket_view(self, number: int) -> TicketView | None:
        with session_scope(self.engine) as s:
            row = s.get(Ticket, number)
            return _view(s, row) if row is not None else None

    def quarantine_entry(self, entry_id: int) -> dict[str, Any] | None:
        from maildesk.adapters.queries import show_quarantine

        return show_quarantine(self.engine, entry_id)

    def apply(self, incoming: Incoming, now: datetime, composer: Composer) -> IngestResult:
        try:
            with self.transaction() as tx:
                return tx.apply(incoming, now, composer)
        except sa.exc.IntegrityError:
            # the same message committed meanwhile by another session or instance
            prior = self.processed(incoming.key)
            if prior is None:
                raise
            return IngestResult(Outcome.DUPLICATE, "duplicate", prior.ticket, prior.quarantine, (), incoming.key)


class StoreTx:
    """The store's reads and the decision's write inside one open transaction."""

    def __init__(self, s: Session, work: WorkClock | None, shared_domains: tuple[str, ...] = ()) -> None:
        self.s, self.work, self.shared_domains = s, work, shared_domains

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: a failing message is undone alone, the batch goes on.

        Database faults come out as StoreUnavailable: they are the store's, not the message's.
        """
        try:
            with self.s.begin_nested():
                yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise StoreUnavailable(str(exc).splitlines()[0]) from exc

    def processed(self, key: str) -> IngestResult | None:
        row = self.s.get(ProcessedMail, key)
        if row is None:
            return None
        return IngestResult(Outcome(row.outcome), row.decision.get("rule", ""), row.ticket_id, row.quarantine_id, (), key)

    def context(self, triage: Triage) -> Context:
        s = self.s
        # The contact's organisation is what a form said («МО:»): display data that anyone can
        # type, so it is no key for write permission. decide() compares mail domains instead.
        ticket, signal = None, None
        for ref in triage.refs:
            number = ref.number if ref.number is not None else _ticket_of_message_id(s, ref.value)
            # locked from here to the commit (PostgreSQL): the decision is made on the ticket as the
            # scheduler or another instance will find it, never on a status they change meanwhile
            row = s.get(Ticket, number, with_for_update=True) if number is not None else None
            if row is not None:
                ticket, signal = _view(s, row), ref
                break
        bounced = None
        if triage.kind is MailKind.BOUNCE:
            # only mail we sent: a Message-ID a requester sent us is known to anyone in the thread
            sent = (s.exec(select(OutboxRow.ticket_id).where(OutboxRow.message_id == i)).first()
                    for i in triage.bounced_ids[:20] if i)
            bounced = next((n for n in sent if n), None)
        reused = False
        if triage.mail.message_id:
            found = s.exec(select(ProcessedMail.key).where(ProcessedMail.message_id == triage.mail.message_id)).first()
            reused = found is not None
        return Context(ticket, signal, bounced_ticket=bounced, message_id_reused=reused)

    def apply(self, incoming: Incoming, now: datetime, composer: Composer) -> IngestResult:
        return _Apply(self.s, incoming, now, composer, self.work, self.shared_domains).run()


def _ticket_of_message_id(s: Session, message_id: str) -> int | None:
    if not message_id:
        return None
    found = s.exec(select(MessageRow.ticket_id).where(MessageRow.message_id == message_id)).first()
    if found is None:
        found = s.exec(select(OutboxRow.ticket_id).where(OutboxRow.message_id == message_id)).first()
    return found


def _view(s: Session, row: Ticket) -> TicketView:
    requester = s.get(Contact, row.requester_id)
    participants = s.exec(select(Participant.email).where(Participant.ticket_id == row.id)).all()
    return TicketView(
        row.id or 0, row.status, row.subject, requester.email if requester else "",
        tuple(participants), row.owner, row.impact, row.priority,
    )


def ticket_snapshot(s: Session, ticket: Ticket) -> dict[str, Any]:
    """The committed ticket as plain values for templates and JSON output."""
    requester = s.get(Contact, ticket.requester_id)
    org = s.get(Organisation, ticket.organisation_id) if ticket.organisation_id else None
    return {
        "number": ticket.id, "subject": ticket.subject, "status": ticket.status,
        "close_reason": ticket.close_reason, "impact": ticket.impact, "priority": ticket.priority,
        "priority_source": ticket.priority_source, "line": ticket.line, "owner": ticket.owner,
        "desk": ticket.desk, "requester_email": requester.email if requester else "",
        "requester_name": requester.name if requester else "", "organisation": org.name if org else "",
        "created_at": ticket.created_at, "updated_at": ticket.updated_at,
        "accept_due_at": ticket.accept_due_at, "resolve_due_at": ticket.resolve_due_at,
        "waiting_since": ticket.waiting_since,
        "closed_at": ticket.closed_at, "linked_ticket": ticket.linked_ticket_id,
    }


AGENT_ROLES = ("agents", "owner", "supervisor")


def thread_ids(s: Session, ticket_id: int, seen_by: Iterable[str] | None = None) -> tuple[str, ...]:
    """Message-IDs of a ticket's mail in order, for References: the first and the latest.

    With `seen_by`, only mail those addresses have seen: what they sent and what we sent them.
    A requester never saw an agent's mail to the desk nor our notices to the agents.
    """
    incoming = s.exec(
        select(MessageRow.message_id, MessageRow.sender)
        .where(MessageRow.ticket_id == ticket_id, MessageRow.message_id.is_not(None)).order_by(MessageRow.id)
    ).all()
    sent = s.exec(select(OutboxRow.message_id, OutboxRow.recipients).where(OutboxRow.ticket_id == ticket_id)
                  .order_by(OutboxRow.id)).all()
    if seen_by is not None:
        seen = {a.lower() for a in seen_by}
        incoming = [(i, who) for i, who in incoming if (who or "").lower() in seen]
        sent = [(i, to) for i, to in sent if seen & {r.lower() for r in to}]
    got = [i for i, _ in incoming if i]
    ids = got[:1] + got[1:][-5:] + [i for i, _ in sent][-5:]
    return tuple(dict.fromkeys(ids))


def visible_thread(s: Session, ticket_id: int, notice: Notice, recipients: tuple[str, ...]) -> tuple[str, ...]:
    """The thread a notice may name: all of it for the agents, what they saw for anyone else."""
    return thread_ids(s, ticket_id, None if notice.to in AGENT_ROLES else recipients)


class _Apply:
    """Writes one decision: ticket, message, attachments, events, outbox, processed key."""

    def __init__(self, s: Session, incoming: Incoming, now: datetime, composer: Composer,
                 work: WorkClock | None, shared_domains: tuple[str, ...] = ()) -> None:
        self.s, self.inc, self.now, self.composer, self.work = s, incoming, now, composer, work
        self.shared_domains = shared_domains
        self.d = incoming.decision
        self.t = incoming.triage
        self.ticket: Ticket | None = None
        self.message: MessageRow | None = None
        self.quarantine: QuarantineEntry | None = None

    def run(self) -> IngestResult:
        if self.inc.replace_key:
            old = self.s.get(ProcessedMail, self.inc.key)
            if old is not None:
                held = self.s.get(QuarantineEntry, old.quarantine_id) if old.quarantine_id else None
                if held is not None:  # released in the same transaction that processes it again
                    held.state, held.released_at = "released", self.now
                self.s.delete(old)
                self.s.flush()
        if self.d.quarantine is not None:
            self._quarantine(self.d.quarantine, None)
        if self.d.create is not None:
            self._create()
        elif self.d.ticket is not None:
            self.ticket = self.s.get(Ticket, self.d.ticket, with_for_update=True)
        if self.ticket is not None:
            self._message()
            self._attachments()
            self._change_status()
            self._participants()
            self._events()
        self._notices()
        self._processed()
        return IngestResult(
            self.d.outcome, self.d.rule, self.ticket.id if self.ticket else None,
            self.quarantine.id if self.quarantine else None, self.d.reasons, self.inc.key,
        )

    def _quarantine(self, reason: Reason, ticket_id: int | None) -> QuarantineEntry:
        mail, env = self.inc.mail, self.inc.envelope
        sender = ", ".join(a.email for a in mail.from_) if mail else ""
        entry = QuarantineEntry(
            at=self.now, reason_code=reason.code, detail=reason.detail, source=env.source,
            mail_from=env.mail_from, rcpt_tos=list(env.rcpt_tos), peer=env.peer, raw_sha256=self.inc.raw_sha256,
            message_id=mail.message_id if mail else None, sender=sender[:998],
            subject=(mail.subject if mail else "")[:1000], ticket_id=ticket_id,
        )
        self.s.add(entry)
        self.s.flush()
        if self.quarantine is None:
            self.quarantine = entry
        return entry

    def _contact(self) -> Contact:
        assert self.t is not None and self.t.sender
        fields = self.t.form_fields
        contact = self._get_or_add(Contact, Contact.email == self.t.sender,
                                   lambda: Contact(email=self.t.sender, created_at=self.now))
        contact.name = fields.get("applicant_name") or contact.name or self.t.sender_name
        contact.position = fields.get("position") or contact.position
        contact.phone = fields.get("phone") or contact.phone
        org_name = (fields.get("organisation") or "").strip()[:300]
        if org_name:
            org = self._get_or_add(Organisation, Organisation.name == org_name, lambda: Organisation(name=org_name))
            contact.organisation_id = org.id
        self.s.flush()
        return contact

    def _get_or_add(self, model: Any, where: Any, make: Any) -> Any:
        """The row, or a new one; when another instance adds it at the same moment, theirs."""
        row = self.s.exec(select(model).where(where)).first()
        if row is not None:
            return row
        try:
            with self.s.begin_nested():
                row = make()
                self.s.add(row)
                self.s.flush()
        except sa.exc.IntegrityError:
            row = self.s.exec(select(model).where(where)).one()
        return row

    def _create(self) -> None:
        create = self.d.create
        assert create is not None and self.t is not None
        contact = self._contact()
        desk = next(iter(self.inc.envelope.rcpt_tos), "") or _first_desk(self.t)
        self.ticket = Ticket(
            subject=create.subject[:1000], desk=desk, requester_id=contact.id or 0,
            organisation_id=contact.organisation_id, status=create.status, impact=create.impact,
            priority=create.priority, priority_source=create.priority_source, linked_ticket_id=create.link_to,
            created_at=self.now, updated_at=self.now,
        )
        if self.work is not None:
            self.ticket.accept_warn_at, self.ticket.accept_due_at = self.work.acceptance(self.now)
            set_resolution(self.ticket, self.work)
        set_waiting(self.ticket, create.status, self.now, self.work)
        self.s.add(self.ticket)
        self.s.flush()

    def _message(self) -> None:
        mail, t = self.inc.mail, self.t
        assert self.ticket is not None
        if mail is None or t is None:
            self._action_message()
            return
        sender = mail.sender
        self.message = MessageRow(
            ticket_id=self.ticket.id or 0, direction="in", visibility=self.d.visibility, kind=self.d.message_kind,
            message_id=mail.message_id, in_reply_to=next(iter(mail.in_reply_to), None),
            references=list(mail.references)[-20:], sender=t.sender or (sender.email if sender else ""),
            sender_name=(sender.name if sender else "")[:300], recipients=[a.email for a in mail.to + mail.cc][:50],
            subject=mail.subject[:1000], text=self.d.text if self.d.text is not None else (t.text or mail.text),
            raw_sha256=self.inc.raw_sha256,
            source=self.inc.envelope.source, created_at=self.now,
        )
        self.s.add(self.message)
        self.s.flush()

    def _action_message(self) -> None:
        """What an agent wrote at the terminal: a reply (public) or a note (internal)."""
        assert self.ticket is not None
        if not self.d.text:
            return
        self.message = MessageRow(
            ticket_id=self.ticket.id or 0, direction="out", visibility=self.d.visibility, kind="normal",
            sender=self.inc.actor, subject=self.ticket.subject, text=self.d.text, source=self.inc.envelope.source,
            created_at=self.now,
        )
        self.s.add(self.message)
        self.s.flush()

    def _attachments(self) -> None:
        mail, t = self.inc.mail, self.t
        if mail is None or t is None or self.message is None:
            return
        assert self.ticket is not None
        refused = dict(t.refused_files)
        entry = None
        for index, (att, sha) in enumerate(zip(mail.attachments, self.inc.attachment_shas)):
            reason = refused.get(index)
            if reason is not None and entry is None:
                entry = self._quarantine(reason, self.ticket.id)
            self.s.add(AttachmentRow(
                message_row_id=self.message.id, ticket_id=self.ticket.id,
                quarantine_id=entry.id if reason is not None and entry else None,
                filename=_safe_name(att.filename, index)[:255], content_type=att.content_type[:255],
                size=att.size, sha256=sha, state="refused" if reason else "kept", reason=str(reason or "")[:500],
            ))

    def _change_status(self) -> None:
        from maildesk.core.agent_mail import check_link, separate_note

        ticket, new = self.ticket, self.d.new_status
        assert ticket is not None
        if self.d.link_to is not None:  # /merge N, /close duplicate N: ticket N as it is now
            target = self.s.get(Ticket, self.d.link_to)
            refused = check_link(self.d, target.status if target is not None else None)
            if refused is not None:  # nothing changes; the agent is told, as for any wrong command
                self.d = refused
                if self.message is not None:
                    self.message.visibility = "internal"
                    self.message.text = (self.t.text if self.t else "") or self.message.text
                return
            ticket.linked_ticket_id = self.d.link_to
        note = separate_note(self.d)
        if note:  # beside a public answer an internal note is a message of its own
            self.s.add(MessageRow(
                ticket_id=ticket.id or 0, direction=self.message.direction if self.message else "out",
                visibility="internal", kind="note", sender=self.inc.actor or (self.t.sender if self.t else "") or "",
                subject=ticket.subject, text=note, raw_sha256=self.inc.raw_sha256 or None,
                source=self.inc.envelope.source, created_at=self.now,
            ))
        ticket.updated_at = self.now
        for key, value in self.d.changes.items():
            setattr(ticket, key, value)
        if "priority" in self.d.changes:
            set_resolution(ticket, self.work)  # the new priority's target, from the ticket's arrival
        if self.d.accepted and ticket.accepted_at is None:
            ticket.accepted_at = self.now
        if ticket.status == "feedback" and any(n.event == "info_needed" for n in self.d.notices):
            set_waiting(ticket, "feedback", self.now, self.work)  # a new question: the requester's 10 days start again
        if new is None or new == ticket.status:
            return
        old = ticket.status
        ticket.status = new
        ticket.version += 1
        if old in WAITING_STATUSES and new not in WAITING_STATUSES:
            resume_clocks(ticket, self.now, self.work)
        set_waiting(ticket, new, self.now, self.work)
        if new == "closed":
            ticket.close_reason, ticket.closed_at = self.d.close_reason, self.now
        else:
            ticket.close_reason, ticket.closed_at = None, None

    def _participants(self) -> None:
        assert self.ticket is not None
        if not self.d.add_participants:
            return
        known = set(self.s.exec(select(Participant.email).where(Participant.ticket_id == self.ticket.id)).all())
        for email in dict.fromkeys(self.d.add_participants):
            if email not in known:
                self.s.add(Participant(ticket_id=self.ticket.id or 0, email=email[:320]))

    def _events(self) -> None:
        assert self.ticket is not None
        actor = self.inc.actor or (self.t.sender if self.t else None) or "system"
        for action, detail in self.d.events:
            self.s.add(EventRow(
                ticket_id=self.ticket.id or 0, at=self.now, actor=actor, action=action, detail=dict(detail),
                message_row_id=self.message.id if self.message else None,
            ))

    def _notices(self) -> None:
        if not self.d.notices:
            return
        snapshot = ticket_snapshot(self.s, self.ticket) if self.ticket else None
        opened = (self.inc.mail.message_id,) if self.inc.mail and self.inc.mail.message_id else ()
        for notice in self.d.notices:
            extra: dict[str, Any] = {"refused": self._refused_info(notice)}
            if notice.event == "my_tickets" and self.t is not None and self.t.sender:
                extra.update(open_tickets_of(self.s, self.t.sender, self.t.sender_name, self.shared_domains))
            recipients = self._recipients(notice, snapshot)
            if self.d.create is not None:  # a new ticket's thread is the message that opened it
                ids = opened
            else:
                ids = visible_thread(self.s, self.ticket.id, notice, recipients) if self.ticket and self.ticket.id else ()
            target = NoticeTarget(notice, recipients, snapshot, ids, self.inc.mail, extra)
            emit(self.s, self.ticket, target, self.composer, self.now, find_thread=False)

    def _recipients(self, notice: Notice, snapshot: dict[str, Any] | None) -> tuple[str, ...]:
        if notice.to == "sender":
            sender = self.inc.actor or (self.t.sender if self.t else None)
            return (sender,) if sender else ()
        return role_recipients(self.s, notice, snapshot)

    def _refused_info(self, notice: Notice) -> list[dict[str, Any]]:
        if notice.event != "attachment_refused" or self.inc.mail is None or self.t is None:
            return []
        atts = self.inc.mail.attachments
        return [{"name": _safe_name(atts[i].filename, i), "size": atts[i].size, "reason": r.code} for i, r in self.t.refused_files]

    def _processed(self) -> None:
        if not self.inc.key:
            return  # an action at the terminal: no incoming message to remember
        mail = self.inc.mail
        self.s.add(ProcessedMail(
            key=self.inc.key, message_id=mail.message_id if mail else None, raw_sha256=self.inc.raw_sha256,
            outcome=self.d.outcome.value, ticket_id=self.ticket.id if self.ticket else None,
            quarantine_id=self.quarantine.id if self.quarantine else None,
            message_row_id=self.message.id if self.message else None, source=self.inc.envelope.source,
            at=self.now, decision=dict(self.d.record) or {"rule": self.d.rule},
        ))
        # flushed with the savepoint it runs in: nothing reads it back first


def set_waiting(ticket: Ticket, status: str, now: datetime, work: WorkClock | None) -> None:
    """Entering feedback/resolved starts the stale-ticket clock; any other status stops it."""
    if status in WAITING_STATUSES:
        ticket.waiting_since, ticket.reminded_at = now, None
        ticket.remind_at, ticket.stale_close_at = work.stale(now, status) if work is not None else (None, None)
    else:
        ticket.waiting_since = ticket.remind_at = ticket.stale_close_at = ticket.reminded_at = None


def resume_clocks(ticket: Ticket, now: datetime, work: WorkClock | None) -> None:
    """Leaving a waiting status moves the acceptance deadline and the resolution target on by the time waited."""
    if work is None or ticket.waiting_since is None:
        return
    ticket.resolve_paused_hours = (ticket.resolve_paused_hours or 0.0) + work.between(
        ticket.waiting_since, now).total_seconds() / 3600
    set_resolution(ticket, work)
    if ticket.accepted_at is not None:
        return
    if ticket.accept_due_at is not None:
        ticket.accept_due_at = work.resume(ticket.accept_due_at, ticket.waiting_since, now)
    if ticket.accept_warn_at is not None and ticket.accept_warned_at is None:
        ticket.accept_warn_at = work.resume(ticket.accept_warn_at, ticket.waiting_since, now)


def set_resolution(ticket: Ticket, work: WorkClock | None) -> None:
    """The resolution target of the ticket's priority, counted from its arrival plus the time it waited."""
    if work is None or ticket.created_at is None:
        return
    ticket.resolve_warn_at, ticket.resolve_due_at = work.resolution(
        ticket.created_at, ticket.priority, ticket.resolve_paused_hours or 0.0)


def open_tickets_of(s: Session, email: str, name: str, shared_domains: tuple[str, ...] = ()) -> dict[str, Any]:
    """A requester's open tickets and their organisation's, for the «Мои заявки» answer.

    The organisation is the sender's mail domain (gb1.sev.gov.ru), as for write permission,
    never the МО a form names: anyone can type another hospital's name there.
    """
    contact = s.exec(select(Contact).where(Contact.email == email)).first()
    open_q = select(Ticket, Contact).join(Contact, Contact.id == Ticket.requester_id).where(Ticket.status != "closed")
    own = s.exec(open_q.where(Ticket.requester_id == (contact.id if contact else -1)).order_by(Ticket.id)).all()
    org = s.get(Organisation, contact.organisation_id) if contact and contact.organisation_id else None
    domain = organisation_key(email, shared_domains)  # as for write permission
    colleagues = s.exec(open_q.where(sa.func.lower(Contact.email).like(f"%@{domain}"), Contact.email != email)
                        .order_by(Ticket.id).limit(100)).all() if domain else []

    def row(ticket: Ticket, requester: Contact) -> dict[str, Any]:
        return {"number": ticket.id, "subject": ticket.subject, "status": ticket.status, "created_at": ticket.created_at,
                "requester_name": requester.name or requester.email}

    return {"requester_name": (contact.name if contact else "") or name or email, "organisation": org.name if org else "",
            "tickets": [row(t, c) for t, c in own], "organisation_tickets": [row(t, c) for t, c in colleagues]}


def role_recipients(s: Session, notice: Notice, snapshot: dict[str, Any] | None) -> tuple[str, ...]:
    """Addresses for a requester-side notice; agents' roles are left to the composer."""
    if notice.to == "requester":
        found = [snapshot["requester_email"]] if snapshot else []
        if snapshot is not None and notice.event in ("agent_reply", "info_needed", "resolved", "closed"):
            found += list(s.exec(select(Participant.email).where(Participant.ticket_id == snapshot["number"])).all())
        return tuple(dict.fromkeys(e for e in found if e))
    if notice.to in ("agents", "owner", "supervisor", "sender"):
        return ()
    return (notice.to,)


def emit(s: Session, ticket: Ticket | None, target: NoticeTarget, composer: Composer, now: datetime,
         find_thread: bool = True) -> None:
    """Compose one notice and queue it in the outbox, in the caller's transaction.

    With `find_thread` the notice's thread is read here when the caller brought none.
    """
    if not target.recipients and target.notice.to not in AGENT_ROLES:
        return
    if find_thread and ticket is not None and ticket.id and not target.thread_ids:
        target = replace(target, thread_ids=visible_thread(s, ticket.id, target.notice, target.recipients))
    out = composer.compose(target, now)
    if out is None:
        return
    s.add(OutboxRow(
        ticket_id=ticket.id if ticket else None, event=out.event, recipients=list(out.recipients),
        message_id=out.message_id, raw=out.raw, automatic=out.automatic, state="pending",
        next_attempt_at=now, created_at=now,
    ))
    # the outbox row is the record of the notification: `tickets show` lists it beside the history


def _first_desk(t: Triage) -> str:
    return next((a.email.lower() for a in t.mail.to), "")


def _safe_name(name: str, index: int) -> str:
    from maildesk.core.attachments import safe_filename

    return safe_filename(name) if name else f"attachment-{index + 1}"
