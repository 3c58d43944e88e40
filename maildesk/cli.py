"""The `maildesk` command: parse arguments, build the app, run one command, map outcomes to exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from maildesk import config as config_mod
from maildesk.core.model import Envelope

EX_OK, EX_ERROR, EX_USAGE, EX_TEMPFAIL, EX_CONFIG = 0, 1, 2, 75, 78

log = logging.getLogger("maildesk")


class CommandError(Exception):
    """A user-facing failure: printed as is, exit code 1."""


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _app(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from maildesk.bootstrap import build

    return build(args.settings)


# -- commands -------------------------------------------------------------------------
def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from maildesk.adapters.database import upgrade

    upgrade(args.settings.database_url)
    print(f"database schema is up to date ({_safe_url(args.settings.database_url)})")
    return EX_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    from maildesk.service.ingest import TemporaryFailure, ingest

    sources: list[tuple[str, bytes]] = []
    if args.files:
        for name in args.files:
            try:
                sources.append((name, Path(name).read_bytes()))
            except OSError as exc:
                raise CommandError(f"cannot read {name}: {exc.strerror}") from exc
    else:
        sources.append(("<stdin>", sys.stdin.buffer.read()))
    try:
        app = _app(args)
    except Exception as exc:  # the store itself cannot be opened: the MTA must keep the mail
        print(f"maildesk ingest: store unavailable: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    code = EX_OK
    envelope = Envelope("cli", mail_from=args.sender, rcpt_tos=tuple(args.recipient or ()))
    for name, raw in sources:
        try:
            result = ingest(raw, envelope, app.deps)
        except TemporaryFailure as exc:
            print(f"{name}: not taken, try again later: {exc}", file=sys.stderr)
            code = EX_TEMPFAIL
            continue
        except Exception as exc:  # a bug, a row this version cannot read: exit 1 would make the MTA bounce it
            log.error("%s: not taken, unexpected error", name, exc_info=True)
            print(f"{name}: not taken, try again later: {type(exc).__name__}: {exc}", file=sys.stderr)
            code = EX_TEMPFAIL
            continue
        where = f"ticket #{result.ticket}" if result.ticket else (f"quarantine {result.quarantine}" if result.quarantine else "-")
        print(f"{name}: {result.outcome.value} {where} ({result.rule})")
    app.close()
    return code


def cmd_tickets_list(args: argparse.Namespace) -> int:
    from maildesk.adapters.queries import TicketFilter, list_tickets

    app = _app(args)
    owner = ""
    if args.mine:
        from maildesk.cli_agents import _agent

        owner = _agent(args).address
    status = tuple(args.status or ()) + (("feedback", "resolved") if args.waiting else ())
    f = TicketFilter(status=status, requester=args.requester or "", organisation=args.organisation or "",
                     text=args.text or "", owner=owner, unassigned=args.unassigned,
                     overdue_at=app.deps.clock.now() if args.overdue else None, limit=args.limit)
    rows = list_tickets(app.engine, f)
    if args.json:
        _print_json(rows)
        return EX_OK
    from maildesk.core.lifecycle import STATUS_LABELS

    for row in rows:
        print(f"#{row['number']:<6} {STATUS_LABELS[row['status']]:<16} {row['requester_email']:<32} {row['subject']}")
    if not rows:
        print("no tickets")
    return EX_OK


def cmd_tickets_show(args: argparse.Namespace) -> int:
    from maildesk.adapters.queries import show_ticket
    from maildesk.core.lifecycle import STATUS_LABELS

    data = show_ticket(_app(args).engine, args.number)
    if data is None:
        raise CommandError(f"ticket #{args.number} not found")
    if args.json:
        _print_json(data)
        return EX_OK
    print(f"Заявка #{data['number']}: {data['subject']}")
    print(f"  status: {STATUS_LABELS[data['status']]} ({data['status']})  priority: {data['priority']}  "
          f"impact: {data['impact'] or '-'}  owner: {data['owner'] or '-'}  line: {data['line']}")
    print(f"  requester: {data['requester_name']} <{data['requester_email']}>  organisation: {data['organisation'] or '-'}")
    print(f"  created: {data['created_at']}  acceptance due: {data['accept_due_at'] or '-'}"
          + (f"  resolution due: {data['resolve_due_at']}" if data.get("resolve_due_at") else ""))
    for m in data["messages"]:
        arrow = "→" if m["direction"] == "in" else "←"
        print(f"\n{arrow} {m['created_at']} {m['sender_name']} <{m['sender']}> [{m['kind']}, {m['visibility']}]")
        if m["decision"]:
            print(f"  decision: {m['decision'].get('rule')} signal={m['decision'].get('signal')}")
        print("  " + "\n  ".join(m["text"].splitlines() or [""]))
    for a in data["attachments"]:
        print(f"  📎 {a['filename']} {a['size']} B {a['content_type']} {a['state']} {a['reason']}")
    print("\nhistory:")
    for e in data["events"]:
        print(f"  {e['at']} {e['actor']}: {e['action']} {json.dumps(e['detail'], ensure_ascii=False)}")
    for n in data["notifications"]:
        print(f"  mail {n['event']} → {', '.join(n['to'])}: {n['state']}")
    return EX_OK


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    from maildesk.adapters.queries import list_quarantine

    rows = list_quarantine(_app(args).engine, None if args.all else "held")
    if args.json:
        _print_json(rows)
        return EX_OK
    for r in rows:
        print(f"{r['id']:<6} {r['at']} {r['reason']:<32} {r['sender'][:40]:<40} {r['subject'][:60]}")
    if not rows:
        print("quarantine is empty")
    return EX_OK


def cmd_quarantine_show(args: argparse.Namespace) -> int:
    from maildesk.adapters.queries import show_quarantine

    data = show_quarantine(_app(args).engine, args.id)
    if data is None:
        raise CommandError(f"quarantine entry {args.id} not found")
    if args.json:
        _print_json(data)
        return EX_OK
    for key in ("id", "at", "state", "reason", "detail", "source", "peer", "mail_from", "rcpt_tos", "sender",
                "subject", "message_id", "ticket", "raw_sha256", "decision", "files"):
        print(f"{key:>11}: {data[key]}")
    return EX_OK


def cmd_quarantine_release(args: argparse.Namespace) -> int:
    from maildesk.service.release import ReleaseError, release

    app = _app(args)
    try:
        result = release(app.deps, args.id)
    except ReleaseError as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        _print_json({"id": args.id, "outcome": result.outcome.value, "rule": result.rule, "ticket": result.ticket,
                     "quarantine": result.quarantine, "reasons": [r.code for r in result.reasons]})
        return EX_OK
    print(f"released {args.id}: {result.outcome.value}"
          + (f" ticket #{result.ticket}" if result.ticket else "") + f" ({result.rule})")
    return EX_OK


def cmd_templates_preview(args: argparse.Namespace) -> int:
    from maildesk.adapters.templates import EVENTS, sample_context

    if args.event not in EVENTS:
        raise CommandError(f"unknown event {args.event!r}; known: {', '.join(EVENTS)}")
    app = _app(args)
    if args.ticket is not None:
        return _preview_for_ticket(app, args.event, args.ticket, args.html)
    from maildesk.core.ticketref import subject_tag

    context = sample_context(args.event)
    context["desk"] = app.composer.desk_context()  # the sample ticket, but the desk and the tag as configured
    for item in [context["ticket"] or {}, *context.get("tickets", []), *context.get("organisation_tickets", [])]:
        if "tag" in item:
            item["tag"] = subject_tag(item["number"], app.composer.tag)
    rendered = app.renderer.render(args.event, context)
    print(f"Subject: {rendered.subject}\n\n{rendered.text}")
    if args.html:
        print("\n--- HTML ---\n" + rendered.html)
    return EX_OK


# who each event goes to, as the decisions name it (a command error goes back to the agent who wrote)
_PREVIEW_TO = {"agent_new_ticket": "agents", "agent_requester_replied": "owner", "sla_warning": "agents",
               "sla_breach": "supervisor", "outbox_held": "agents", "agent_command_error": "sender"}
_NOT_ABOUT_A_TICKET = ("sender_refused", "request_rejected", "my_tickets")
_SAMPLE_VALUES = ("text", "missing", "close_date", "errors", "elapsed")


def _preview_for_ticket(app: Any, event: str, number: int, html: bool) -> int:
    """The message `event` would send for ticket `number`, composed as the daemon would compose it.

    What the ticket does not hold (an agent's words not yet written, command errors, the
    time elapsed) is taken from the sample data.
    """
    import email
    import email.policy

    from sqlmodel import select

    from maildesk.adapters.database import session_scope
    from maildesk.adapters.db_models import EventRow, MessageRow, Ticket
    from maildesk.adapters.store import role_recipients, ticket_snapshot, visible_thread
    from maildesk.adapters.templates import sample_context
    from maildesk.core.decision import Notice
    from maildesk.core.ticketref import subject_tag
    from maildesk.service.ports import NoticeTarget

    if event in _NOT_ABOUT_A_TICKET:
        raise CommandError(f"{event} is not about one ticket: preview it without --ticket")
    sample = sample_context(event)
    given: dict[str, Any] = {k: sample[k] for k in _SAMPLE_VALUES if k in sample}
    with session_scope(app.engine) as s:
        ticket = s.get(Ticket, number)
        if ticket is None:
            raise CommandError(f"ticket #{number} not found")
        snapshot = ticket_snapshot(s, ticket)
        incoming = s.exec(select(MessageRow).where(MessageRow.ticket_id == number, MessageRow.direction == "in")
                          .order_by(MessageRow.id)).all()
        moves = s.exec(select(EventRow.detail).where(EventRow.ticket_id == number, EventRow.action == "status")
                       .order_by(EventRow.id.desc())).first()
        if event == "agent_new_ticket" and incoming:
            given["text"] = incoming[0].text
        replies = [m for m in incoming[1:] if m.sender == snapshot["requester_email"]] or incoming
        if event == "agent_requester_replied" and replies:
            given.update(text=replies[-1].text, author=replies[-1].sender_name or replies[-1].sender)
        given.update(agent=snapshot["owner"] or "", old_status=(moves or {}).get("from", "new"),
                     new_status=snapshot["status"], policy="new" if snapshot["linked_ticket"] else "refuse",
                     recipient=snapshot["requester_email"], count=app.settings.outgoing.auto_cap_per_day,
                     period="за сутки", deadline=app.composer.local_time(snapshot["accept_due_at"]),
                     held_subject=f"{subject_tag(number, app.composer.tag)} {snapshot['subject']}")
        notice = Notice(event, _PREVIEW_TO.get(event, "requester"), given)
        recipients = role_recipients(s, notice, snapshot)
        if notice.to == "sender":  # the agent who would have written: the owner, else the first agent
            agent = snapshot["owner"] or next((a.address for a in app.settings.agents), "")
            recipients = (agent,) if agent else ()
        target = NoticeTarget(notice, recipients, snapshot, visible_thread(s, number, notice, recipients),
                              extra={"refused": sample.get("refused", [])})
    out = app.composer.compose(target, app.deps.clock.now())
    if out is None:
        raise CommandError(f"{event} for ticket #{number} would go to nobody (no recipient configured)")
    msg = email.message_from_bytes(out.raw, policy=email.policy.default)
    for name in ("Subject", "From", "To", "Reply-To", "In-Reply-To", "References", "Auto-Submitted"):
        if msg[name] is not None:
            print(f"{name}: {msg[name]}")
    print("\n" + msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    if html:
        print("--- HTML ---\n" + msg.get_body(("html",)).get_content())  # type: ignore[union-attr]
    return EX_OK


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


# -- parser ---------------------------------------------------------------------------
def _sub(parent: Any, name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
    parser = parent.add_parser(name, help=help, description=help)
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maildesk", description="Email-driven service desk.")
    parser.add_argument("--config", type=Path, default=None,
                        help="config file (default: $MAILDESK_CONFIG, then config/maildesk.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line (else as configured)")
    cmds = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = cmds.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    _sub(db, "upgrade", cmd_db_upgrade, "create or upgrade the schema")

    p = _sub(cmds, "ingest", cmd_ingest, "take mail from files or stdin (exit 75 when the store is down)")
    p.add_argument("files", nargs="*", help=".eml files (stdin when none)")
    p.add_argument("--sender", default=None, help="envelope sender (MTA pipe: ${sender})")
    p.add_argument("--recipient", action="append", help="envelope recipient (repeatable)")

    tickets = cmds.add_parser("tickets", help="tickets").add_subparsers(dest="tickets_command", required=True)
    p = _sub(tickets, "list", cmd_tickets_list, "list tickets")
    p.add_argument("--status", action="append", help="status (repeatable)")
    p.add_argument("--requester", help="requester address")
    p.add_argument("--organisation", help="organisation name (part)")
    p.add_argument("--text", help="text in subject or messages")
    p.add_argument("--mine", action="store_true", help="owned by the agent given with --as / $MAILDESK_AGENT")
    p.add_argument("--as", dest="as_agent", help="agent login or address, for --mine")
    p.add_argument("--unassigned", action="store_true", help="open tickets nobody owns")
    p.add_argument("--overdue", action="store_true", help="past the acceptance deadline, not taken")
    p.add_argument("--waiting", action="store_true", help="waiting for the requester (feedback, resolved)")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--json", action="store_true")
    p = _sub(tickets, "show", cmd_tickets_show, "a ticket with its thread, attachments and history")
    p.add_argument("number", type=int)
    p.add_argument("--json", action="store_true")
    from maildesk import cli_agents

    cli_agents.register(tickets, _sub)

    quarantine = cmds.add_parser("quarantine", help="quarantined mail").add_subparsers(dest="q_command", required=True)
    p = _sub(quarantine, "list", cmd_quarantine_list, "held mail, newest first")
    p.add_argument("--all", action="store_true", help="released entries too")
    p.add_argument("--json", action="store_true")
    p = _sub(quarantine, "show", cmd_quarantine_show, "one entry with its reason and decision")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p = _sub(quarantine, "release", cmd_quarantine_release, "process a held message again, sender check waived")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")

    templates = cmds.add_parser("templates", help="notification templates").add_subparsers(dest="t_command", required=True)
    p = _sub(templates, "preview", cmd_templates_preview,
             "render an event with sample data, or as it would go out for a real ticket")
    p.add_argument("event")
    p.add_argument("--ticket", type=int, metavar="N", help="compose the event for ticket N (its requester, desk, thread)")
    p.add_argument("--html", action="store_true")

    from maildesk import cli_ops

    cli_ops.register(cmds, _sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from maildesk.logs import setup_logging

    try:
        args.settings = config_mod.load(args.config or config_mod.default_config_path())
    except config_mod.ConfigError as exc:
        print(f"maildesk: configuration error: {exc}", file=sys.stderr)
        return EX_TEMPFAIL if args.command == "ingest" else EX_CONFIG
    log_format = "json" if args.log_json else args.settings.maildesk.log_format
    setup_logging(log_format, logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.func(args)
    except CommandError as exc:
        print(f"maildesk: {exc}", file=sys.stderr)
        return EX_ERROR
    except config_mod.ConfigError as exc:
        print(f"maildesk: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    except Exception as exc:
        down = _store_down(exc)
        if down is None:
            raise
        print(f"maildesk: database {_safe_url(args.settings.database_url)} unavailable: {down}", file=sys.stderr)
        return EX_TEMPFAIL if args.command == "ingest" else EX_ERROR


def _store_down(exc: BaseException) -> str | None:
    """The first line of a database-is-down error, or None for any other exception."""
    import sqlalchemy.exc

    from maildesk.service.ports import StoreUnavailable

    if isinstance(exc, StoreUnavailable):
        text = str(exc)
    elif isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
        text = str(exc.orig if exc.orig is not None else exc)
    else:
        return None
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^\([\w.]+\) ", "", first)  # "(psycopg.OperationalError) connection failed: …"


if __name__ == "__main__":
    sys.exit(main())
