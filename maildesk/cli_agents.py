"""Agents' commands of `maildesk tickets`: reply, note, status, assign, priority, impact, merge, close."""

from __future__ import annotations

import argparse
import os
import shlex
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
            return AgentRef(agent.address.lower(), login, agent.line, agent.role)
    raise CommandError(f"{who!r} is not a configured agent")


def _text(args: argparse.Namespace) -> str:
    """The text from an argument, a file (`-` for stdin), or $EDITOR; never empty."""
    from maildesk.cli import CommandError

    if args.text:
        text = " ".join(args.text)
    elif args.file:
        text = _read_file(args.file)
    else:
        text = _edit()
    if not text.strip():
        raise CommandError("the text is empty: nothing done")
    return text.strip()


def _comment(args: argparse.Namespace) -> str:
    """An action's optional comment: --text, --file, or none."""
    from maildesk.cli import CommandError

    if args.text is not None and args.file:
        raise CommandError("give the comment with --text or --file, not both")
    text = args.text if args.text is not None else (_read_file(args.file) if args.file else "")
    if (args.text is not None or args.file) and not text.strip():
        raise CommandError("the comment is empty: nothing done")
    return text.strip()


def _read_file(name: str) -> str:
    from maildesk.cli import CommandError

    try:
        return sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {name}: {exc}") from exc


def _edit() -> str:
    """What the agent writes in $EDITOR (default vi); any failure of the editor aborts."""
    from maildesk.cli import CommandError

    editor = os.environ.get("EDITOR") or "vi"
    try:
        argv = shlex.split(editor)  # EDITOR="code --wait", EDITOR="'/opt/my editor/ed'"
    except ValueError as exc:
        raise CommandError(f"cannot read $EDITOR {editor!r}: {exc}") from exc
    if not argv:
        raise CommandError("$EDITOR is blank: set it, or give the text as an argument or with --file")
    with tempfile.TemporaryDirectory(prefix="maildesk-") as folder:
        path = Path(folder) / "text.txt"
        path.write_text("", encoding="utf-8")
        try:
            code = subprocess.run([*argv, str(path)], check=False).returncode
        except OSError as exc:
            raise CommandError(f"cannot run the editor {argv[0]!r} ($EDITOR): {exc.strerror or exc}") from exc
        if code != 0:
            raise CommandError(f"the editor {argv[0]!r} exited with {code}: nothing done")
        try:  # by name: an editor that saves by rename leaves a new file under the old name
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read what the editor saved: {exc}") from exc


def _run(args: argparse.Namespace, text: str, links: tuple[int, ...] = ()) -> int:
    from maildesk.cli import CommandError, _app
    from maildesk.service.agent_actions import ActionError, act

    app = _app(args)
    agent = _agent(args)
    try:
        if links:
            _check_links(app.deps, args.number, agent, text, links)
        result = act(app.deps, args.number, agent, text)
    except ActionError as exc:
        raise CommandError(str(exc)) from exc
    if result.rule == "agent.command_error":  # the store found the ticket named by /merge changed meanwhile
        raise CommandError("nothing applied: the reason was mailed to you")
    print(f"ticket #{result.ticket}: {result.rule}")
    return 0


def _check_links(deps: Any, number: int, agent: Any, text: str, links: tuple[int, ...]) -> None:
    """/merge N, /close duplicate N: ticket N must exist (and for merge be open), checked before anything applies."""
    from maildesk.core.agent_mail import agent_decision
    from maildesk.service.agent_actions import ActionError

    view = deps.store.ticket_view(number)
    if view is None:
        return  # act() says so
    targets = {n: found.status for n in links if (found := deps.store.ticket_view(n)) is not None}
    decision = agent_decision(text, view, agent, deps.policy.decide.agents, targets=targets)
    errors = [f"{e['line']}: {e['error']}" for _, detail in decision.events for e in detail.get("errors", [])]
    if errors:
        raise ActionError("nothing applied: " + "; ".join(errors))


def cmd_reply(args: argparse.Namespace) -> int:
    from maildesk.core.commands import literal

    return _run(args, literal(_text(args)))  # the text as written: a line starting with / is no command


def cmd_note(args: argparse.Namespace) -> int:
    from maildesk.core.commands import literal

    return _run(args, literal(_text(args), "/note"))


def _action(command: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from maildesk.cli import CommandError
        from maildesk.core.commands import STATUS_WORDS, literal

        value = " ".join(args.value)
        line = f"{command} {value}"
        comment = _comment(args)
        target = "closed" if command in ("/close", "/merge") else STATUS_WORDS.get(value.lower().replace("ё", "е"))
        if command == "/status" and target == "feedback" and not comment:
            raise CommandError(f"nothing applied: {line}: the requester needs a question: add --text '…' or --file "
                               "(by mail: /feedback <question>)")
        if not comment:
            text = line
        elif command == "/status" and target == "feedback":
            text = literal(comment, line)  # the comment is the question to the requester
        elif target in ("resolved", "closed"):
            text = literal(comment, line)  # the comment goes to the requester in the resolved/closed notice
        else:
            text = literal(comment, line, "/note")  # an internal note beside the change
        numbers = value.replace("#", " ").replace("№", " ").split()
        links = tuple(int(n) for n in numbers if n.isdigit()) if command in ("/close", "/merge") else ()
        return _run(args, text, links)

    return run


COMMENT_HELP = ("a comment, kept as an internal note; for resolved, closed and merge it is instead the specialist's "
                "comment in the requester's notice, for feedback the question to the requester")


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
        p.add_argument("--text", help=COMMENT_HELP)
        p.add_argument("--file", "-f", help="read the comment from a file ('-' for stdin)")
        p.add_argument("--as", dest="as_agent", help="agent login or address (default $MAILDESK_AGENT)")
