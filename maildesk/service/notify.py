"""Turns a decided Notice into a composed message for the outbox: recipients, context, headers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Protocol
from zoneinfo import ZoneInfo

from maildesk.core import lifecycle, msgid
from maildesk.core.form import FIELD_LABELS, FORM_TEMPLATE
from maildesk.core.mime_text import strip_quoted
from maildesk.core.outgoing import Rendered, compose
from maildesk.core.ticketref import subject_tag
from maildesk.service.ports import NoticeTarget, Outgoing

# notices that answer a requester's own mail (RFC 3834 auto-replied) versus human answers
HUMAN_EVENTS = frozenset({"agent_reply", "info_needed"})
AGENT_EVENTS = frozenset({
    "agent_new_ticket", "agent_requester_replied", "agent_command_error", "sla_warning", "sla_breach", "outbox_held",
})


class Renderer(Protocol):
    def render(self, event: str, context: dict[str, Any]) -> Rendered: ...


@dataclass(frozen=True)
class DeskInfo:
    address: str
    name: str
    phone: str = ""
    hours: str = ""
    site: str = ""
    team_address: str = ""


@dataclass(frozen=True)
class AgentInfo:
    address: str
    name: str
    login: str = ""
    role: str = "agent"


@dataclass
class NoticeComposer:
    """Composer for the store: renders a notice with the templates and builds the message."""

    renderer: Renderer
    desks: tuple[DeskInfo, ...]
    agents: tuple[AgentInfo, ...]
    tag: str
    secret: bytes
    domain: str
    timezone: str = "Europe/Simferopol"
    supervisor: str = ""
    stale_days: int = 10
    acceptance_hours: float = 8.0
    allowed_domains: tuple[str, ...] = ("sev.gov.ru",)
    max_images: int = 5
    max_total_mb: float = 10.0
    nonce: Callable[[], str] = lambda: secrets.token_hex(8)

    def compose(self, target: NoticeTarget, now: datetime) -> Outgoing | None:
        notice, ticket = target.notice, target.ticket
        recipients = self._drop_own(self._recipients(target))
        if not recipients:
            return None
        desk = self._desk(ticket)
        context = {
            "desk": self.desk_context(ticket),
            "ticket": self._ticket_context(ticket),
            **self._extra(target),
        }
        rendered = self.renderer.render(notice.event, context)
        number = ticket["number"] if ticket else 0
        message_id = msgid.mint(number, self.nonce(), self.secret, self.domain)
        parent, refs = self._thread(target)
        human = notice.event in HUMAN_EVENTS
        from_name = desk.name
        if notice.event == "agent_reply":
            agent = self._agent(str(notice.extra.get("agent", "")))
            from_name = f"{agent.name} ({desk.name})" if agent else desk.name
        raw = compose(
            rendered, from_name=from_name, from_address=desk.address, to=recipients, reply_to=desk.address,
            message_id=message_id, in_reply_to=parent, references=refs,
            auto_submitted="no" if human else ("auto-replied" if target.trigger else "auto-generated"),
            date=now, ticket_number=number or None,
        )
        # the per-recipient cap breaks loops with outside mailboxes; the desk's own agents are not capped
        return Outgoing(notice.event, recipients, message_id, raw, automatic=not human and notice.event not in AGENT_EVENTS)

    def _thread(self, target: NoticeTarget) -> tuple[str | None, list[str]]:
        """In-Reply-To and References: only mail the recipients have seen, so that their client threads it.

        A requester never sees an agent's mail to the desk nor our notices to the agents: a
        notice to them never names those (it would also give away the agent's Message-ID).
        The store's thread is taken as what the recipients saw; an agent's mail that caused a
        requester's notice, and the mail it answered (our notice to the agents), are dropped here.
        """
        thread = list(target.thread_ids)
        mail = target.trigger
        if mail is None:
            return (thread[-1] if thread else None), thread
        sender = mail.sender.email if mail.sender else ""
        by_agent = bool(sender) and self._agent(sender) is not None
        if mail.message_id and by_agent == (target.notice.event in AGENT_EVENTS):
            # an answer to the recipient's own mail: chain as their client did (RFC 5322 3.6.4)
            chain = [i for i in (*mail.references, *mail.in_reply_to) if i != mail.message_id]
            return mail.message_id, _distinct([*(chain or thread), mail.message_id])
        if by_agent:
            hidden = {mail.message_id, *mail.in_reply_to}
            thread = [i for i in thread if i not in hidden]
        return (thread[-1] if thread else None), thread

    def _recipients(self, target: NoticeTarget) -> tuple[str, ...]:
        to = target.notice.to
        if to == "owner" and target.ticket and target.ticket.get("owner"):
            return (target.ticket["owner"],)
        if to in ("agents", "owner"):
            desk = self._desk(target.ticket)
            if desk.team_address:
                return (desk.team_address,)
            return tuple(a.address for a in self.agents if a.role != "supervisor")
        if to == "supervisor":
            return (self.supervisor,) if self.supervisor else tuple(a.address for a in self.agents if a.role == "supervisor")
        return target.recipients

    def _drop_own(self, recipients: tuple[str, ...]) -> tuple[str, ...]:
        own = {d.address.lower() for d in self.desks}
        return tuple(r for r in dict.fromkeys(x.lower() for x in recipients) if r not in own)

    def _desk(self, ticket: dict[str, Any] | None) -> DeskInfo:
        wanted = (ticket or {}).get("desk", "").lower()
        return next((d for d in self.desks if d.address.lower() == wanted), self.desks[0])

    def desk_context(self, ticket: dict[str, Any] | None = None) -> dict[str, str]:
        """The `desk` template value: the ticket's desk as configured (the first desk without a ticket)."""
        desk = self._desk(ticket)
        return {"name": desk.name, "address": desk.address, "phone": desk.phone, "hours": desk.hours, "site": desk.site}

    def local_time(self, moment: datetime | None) -> str:
        """A moment as templates show it: the desk's local time, `dd.mm.yyyy hh:mm`; "" for none."""
        return moment.astimezone(ZoneInfo(self.timezone)).strftime("%d.%m.%Y %H:%M") if moment else ""

    def _agent(self, address_or_login: str) -> AgentInfo | None:
        key = address_or_login.lower()
        return next((a for a in self.agents if key in (a.address.lower(), a.login.lower())), None)

    def _listed(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"number": row["number"], "tag": subject_tag(row["number"], self.tag), "subject": row["subject"],
                "status_label": lifecycle.STATUS_LABELS[row["status"]], "created_at": self.local_time(row["created_at"]),
                "requester_name": row["requester_name"]}

    def _ticket_context(self, ticket: dict[str, Any] | None) -> dict[str, Any]:
        if ticket is None:
            return {}
        owner = self._agent(ticket.get("owner") or "")
        impact = ticket.get("impact")
        return {
            "number": ticket["number"], "tag": subject_tag(ticket["number"], self.tag), "subject": ticket["subject"],
            "status": ticket["status"], "status_label": lifecycle.STATUS_LABELS[ticket["status"]],
            "requester_name": ticket.get("requester_name", ""), "requester_email": ticket.get("requester_email", ""),
            "organisation": ticket.get("organisation", ""), "priority": ticket["priority"],
            "priority_label": lifecycle.PRIORITY_LABELS.get(ticket["priority"], ""),
            "impact": impact or "", "impact_label": lifecycle.IMPACT_LABELS.get(impact, "") if impact else "",
            "line": ticket.get("line", 1), "owner_name": owner.name if owner else (ticket.get("owner") or ""),
            "created_at": self.local_time(ticket.get("created_at")), "due_at": self.local_time(ticket.get("accept_due_at")),
            "close_reason_label": lifecycle.CLOSE_REASON_LABELS.get(ticket.get("close_reason") or "", ""),
        }

    def _extra(self, target: NoticeTarget) -> dict[str, Any]:
        """Per-event template values (the contract is in templates/README.md)."""
        notice, mail, ticket = target.notice, target.trigger, target.ticket or {}
        given = notice.extra
        text = str(given.get("text", mail.text if mail is not None else ""))
        agent = self._agent(str(given.get("agent", "")))
        event = notice.event
        if event == "ticket_created":
            return {"acceptance_hours": _number(self.acceptance_hours)}
        if event == "info_requested":
            return {"missing": [FIELD_LABELS.get(k, k) for k in given.get("missing", ())], "form": FORM_TEMPLATE}
        if event == "attachment_refused":
            refused = [{**item, "reason": _refusal(item["reason"]), "reason_label": REFUSAL_LABELS.get(_refusal(item["reason"]), OTHER_REFUSAL)}
                       for item in target.extra.get("refused", [])]
            return {"refused": refused, "max_images": self.max_images, "max_total_mb": _number(self.max_total_mb)}
        if event in ("agent_reply", "info_needed"):
            return {"text": text, "agent_name": agent.name if agent else self._desk(ticket).name}
        if event == "status_changed":
            return {"old_status_label": lifecycle.STATUS_LABELS.get(given.get("old_status", ""), ""),
                    "new_status_label": lifecycle.STATUS_LABELS.get(given.get("new_status", ticket.get("status", "")), "")}
        if event == "resolved":
            return {"text": str(given.get("text", "")), "days": self.stale_days}
        if event == "reminder":
            return {"close_date": str(given.get("close_date", "")), "close_reason": str(given.get("close_reason", ""))}
        if event == "closed":
            reason = str(given.get("reason") or ticket.get("close_reason") or "")
            duplicate_of = ticket.get("linked_ticket") if reason == "duplicate" else None
            return {"text": str(given.get("text", "")), "close_reason": reason, "duplicate_of": duplicate_of}
        if event == "closed_reply":
            policy = given.get("policy", "new")
            old = ticket.get("linked_ticket") if policy == "new" else ticket.get("number")
            return {"policy": policy, "old_number": old, "new_number": ticket.get("number") if policy == "new" else None}
        if event == "sender_refused":
            sender = mail.sender.email if mail is not None and mail.sender else ""
            return {"sender": sender, "allowed_domains": list(self.allowed_domains),
                    "original_subject": mail.subject if mail is not None else ""}
        if event == "request_rejected":
            reason = _refusal(str(given.get("reason", "other")))
            return {"reason": reason, "reason_label": REJECTION_LABELS.get(reason, REJECTION_LABELS["other"]),
                    "original_subject": mail.subject if mail is not None else "", "form": FORM_TEMPLATE}
        if event == "my_tickets":
            lists = {key: [self._listed(row) for row in target.extra.get(key, [])]
                     for key in ("tickets", "organisation_tickets")}
            return {"requester_name": target.extra.get("requester_name", ""),
                    "organisation": target.extra.get("organisation", ""), **lists}
        if event == "agent_new_ticket":
            return {"text": text}
        if event == "agent_requester_replied":
            author = mail.sender.name or mail.sender.email if mail is not None and mail.sender else given.get("author", "")
            # the reply's new words, as the ticket keeps them: the quoted notice is no news to the agents
            new_text = strip_quoted(text) if "text" not in given else text
            return {"text": new_text or text, "author": author}
        if event == "agent_command_error":
            return {"errors": list(given.get("errors", []))}
        if event in ("sla_warning", "sla_breach"):
            return {"elapsed": str(given.get("elapsed", "")), "deadline": str(given.get("deadline", "")),
                    "stage": str(given.get("stage", "acceptance"))}
        if event == "outbox_held":
            return {key: given[key] for key in ("recipient", "count", "period", "held_subject")}
        return {}


# incoming reason codes → the template's refusal kinds, and their labels
_REFUSALS = {"too_large_total": "too_large", "empty_request": "document_only", "no_subject": "no_subject"}
REFUSAL_LABELS = {
    "too_many_images": "больше допустимого числа изображений без архива",
    "too_large": "общий размер вложений больше допустимого",
    "executable": "исполняемые файлы и сценарии не принимаются",
    "type_not_allowed": "тип файла не принимается",
    "document_only": "в обращении нет текста, только вложение",
}
OTHER_REFUSAL = "файл не принят"
REJECTION_LABELS = {
    "no_subject": "в письме нет темы",
    "no_text": "в письме нет текста обращения",
    "document_only": "обращение состоит только из вложенного документа или видео, без текста",
    "other": "письмо не удалось принять как обращение",
}


def _distinct(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in ids if i))


def _refusal(code: str) -> str:
    name = code.split(".", 1)[-1]
    return _REFUSALS.get(name, name)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
