"""Agents' commands of `maildesk tickets`: reply, note, status, assign, priority, impact, merge, close."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

# command → (mail command it stands for, what the argument is)
ACTIONS = {
    "status": ("/status", "STATUS"),
    "assign": ("/assign", "AGENT"),
    "priority": ("/priority", "PRIORITY"),
    "impact": ("/impact", "IMPACT"),
    "merge": ("/merge", "INTO"),
    "close": ("/close", "REASON"),
}


def _agent(args: argparse.Namespace) -> Any:
    from maildesk.cli import CommandError
    from maildesk.core.commands import AgentRef

    who = (args.as_agent or os.environ.get("MAILDESK_AGENT", "")).lower()
    if not who:
        raise CommandError("say who acts: --as LOGIN (or set MAILDESK_AGENT)")
    for agent in args.settings.agents:
        login = agent.login or agent.address.split("@")[0]
        if who in (login.lower(), agent.address.lower()):
            return AgentRef(agent.address.lower(), login, agent.line)
    raise CommandError(f"{who!r} is not a configured agent")


def _text(args: argparse.Namespace) -> str:
    """The text from an argument, a file (`-` for stdin), or $EDITOR."""
    if args.text:
        return " ".join(args.text)
    if args.file:
        return sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    editor = os.environ.get("EDITOR", "vi")
    with tempfile.NamedTemporaryFile("w+", suffix=".txt", encoding="utf-8") as fh:
        subprocess.run([editor, fh.name], check=False)
        fh.seek(0)
        return fh.read()


def _run(args: argparse.Namespace, text: str) -> int:
    from maildesk.cli import CommandError, _app
    from maildesk.service.agent_actions import ActionError, act

    app = _app(args)
    try:
        result = act(app.deps, args.number, _agent(args), text)
    except ActionError as exc:
        raise CommandError(str(exc)) from exc
    print(f"ticket #{result.ticket}: {result.rule}")
    return 0


def cmd_reply(args: argparse.Namespace) -> int:
    text = _text(args).strip()
    if text.startswith("/"):
        text = "\n" + text  # a reply that starts with a slash is text, not a command
    return _run(args, text)


def cmd_note(args: argparse.Namespace) -> int:
    return _run(args, "/note " + _text(args).strip())


def _action(command: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        line = f"{command} {' '.join(args.value)}"
        return _run(args, line + ("\n\n" + " ".join(args.text) if getattr(args, "text", None) else ""))

    return run


def register(tickets: Any, sub: Callable[..., argparse.ArgumentParser]) -> None:
    for name, func, help in (("reply", cmd_reply, "answer the requester (mail goes out)"),
                             ("note", cmd_note, "an internal note, never sent to the requester")):
        p = sub(tickets, name, func, help)
        p.add_argument("number", type=int)
        p.add_argument("text", nargs="*", help="the text (else --file, else $EDITOR)")
        p.add_argument("--file", "-f", help="read the text from a file ('-' for stdin)")
        p.add_argument("--as", dest="as_agent", help="agent login or address (default $MAILDESK_AGENT)")
    for name, (command, metavar) in ACTIONS.items():
        p = sub(tickets, name, _action(command), f"same as `{command} {metavar}` in a mail")
        p.add_argument("number", type=int)
        p.add_argument("value", nargs="+", metavar=metavar)
        p.add_argument("--as", dest="as_agent", help="agent login or address (default $MAILDESK_AGENT)")
