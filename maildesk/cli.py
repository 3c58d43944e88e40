"""The `maildesk` command: parse arguments, build the app, run one command, map outcomes to exit codes."""

from __future__ import annotations

import argparse
import json
import logging
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
    print(f"  created: {data['created_at']}  acceptance due: {data['accept_due_at'] or '-'}")
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
    print(f"released {args.id}: {result.outcome.value}"
          + (f" ticket #{result.ticket}" if result.ticket else "") + f" ({result.rule})")
    return EX_OK


def cmd_templates_preview(args: argparse.Namespace) -> int:
    from maildesk.adapters.templates import EVENTS, sample_context

    if args.event not in EVENTS:
        raise CommandError(f"unknown event {args.event!r}; known: {', '.join(EVENTS)}")
    app = _app(args)
    rendered = app.renderer.render(args.event, sample_context(args.event))
    print(f"Subject: {rendered.subject}\n\n{rendered.text}")
    if args.html:
        print("\n--- HTML ---\n" + rendered.html)
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

    templates = cmds.add_parser("templates", help="notification templates").add_subparsers(dest="t_command", required=True)
    p = _sub(templates, "preview", cmd_templates_preview, "render a template with sample data")
    p.add_argument("event")
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


if __name__ == "__main__":
    sys.exit(main())
