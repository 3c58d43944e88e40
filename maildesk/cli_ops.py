"""Operator commands of `maildesk`: serve, outbox, check."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

EX_OK, EX_ERROR = 0, 1


def cmd_serve(args: argparse.Namespace) -> int:
    from maildesk.adapters.database import head_revision, make_engine, schema_revision
    from maildesk.daemon import run

    settings = args.settings
    engine = make_engine(settings.database_url)
    current, head = schema_revision(engine), head_revision(settings.database_url)
    engine.dispose()
    if current != head:
        print(f"maildesk: database schema is at {current or 'nothing'}, expected {head}: "
              f"run `maildesk db upgrade` first", file=sys.stderr)
        return EX_ERROR
    from maildesk import config as config_mod

    return run(settings, str(args.config or config_mod.default_config_path()))


def cmd_outbox_list(args: argparse.Namespace) -> int:
    from maildesk.adapters.outbox_admin import list_outbox

    from maildesk.cli import _app, _print_json

    rows = list_outbox(_app(args).engine, args.state)
    if args.json:
        _print_json(rows)
        return EX_OK
    for r in rows:
        print(f"{r['id']:<6} {r['state']:<8} {r['event']:<24} #{r['ticket'] or '-':<6} attempts={r['attempts']} "
              f"{', '.join(r['to'])} {r['last_error'][:60]}")
    if not rows:
        print("outbox is empty")
    return EX_OK


def cmd_outbox_show(args: argparse.Namespace) -> int:
    from maildesk.adapters.outbox_admin import show_outbox
    from maildesk.cli import CommandError, _app

    raw = show_outbox(_app(args).engine, args.id)
    if raw is None:
        raise CommandError(f"outbox message {args.id} not found")
    sys.stdout.buffer.write(raw)
    return EX_OK


def cmd_outbox_retry(args: argparse.Namespace) -> int:
    from maildesk.adapters.outbox_admin import retry_outbox
    from maildesk.cli import CommandError, _app

    if args.force and args.id is None:
        raise CommandError("--force needs the ID of one message (see `maildesk outbox list --state held`)")
    app = _app(args)
    count = retry_outbox(app.engine, args.id, app.deps.clock.now(), force=args.force)
    if args.id is not None and count == 0:
        raise CommandError(f"outbox message {args.id} is not failed or held")
    print(f"{count} message(s) queued again" + (", past the daily cap on automatic mail" if args.force else ""))
    return EX_OK


def cmd_check(args: argparse.Namespace) -> int:
    from maildesk.checks import run_checks

    results = run_checks(args.settings)
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return EX_OK if all(ok for _, ok, _ in results) else EX_ERROR


# -- backup and restore ---------------------------------------------------------------------
def cmd_backup(args: argparse.Namespace) -> int:
    from maildesk.adapters.backup import BackupError, backup
    from maildesk.cli import CommandError

    try:
        manifest = backup(args.settings, args.dest)
    except (BackupError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    counts = manifest["counts"]
    print(f"backup in {args.dest}: {manifest['database']} at schema {manifest['schema_revision'] or 'nothing'}, "
          f"{counts['tickets']} tickets, {counts['messages']} messages, {counts['attachments']} attachments, "
          f"{counts['quarantine']} quarantined, {counts['archive_files']} archive files")
    return EX_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from maildesk.adapters.backup import BackupError, restore
    from maildesk.adapters.database import head_revision
    from maildesk.cli import CommandError

    try:
        report = restore(args.settings, args.src, force=args.force)
    except (BackupError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    c = report.counts
    print(f"restored {args.src} (taken {report.manifest['created_at']}): {c['tickets']} tickets, "
          f"{c['messages']} messages, {c['attachments']} attachments, {c['quarantine']} quarantined")
    for digest in report.damaged:
        print(f"damaged or absent in the backup, not restored: {digest}", file=sys.stderr)
    for digest in report.missing:
        print(f"named by the database but missing from the archive: {digest}", file=sys.stderr)
    expected = {k: v for k, v in report.manifest["counts"].items() if k in c}
    if c != expected:
        print(f"counts differ from the manifest: expected {expected}, found {c}", file=sys.stderr)
    if report.revision != head_revision(args.settings.database_url):
        print(f"schema is at {report.revision}: run `maildesk db upgrade`")
    return EX_OK if report.ok else EX_ERROR


def cmd_imap_check(args: argparse.Namespace) -> int:
    from maildesk.adapters.imap_poller import check_accounts
    from maildesk.cli import _app, _print_json

    reports = check_accounts(_app(args))
    if args.json:
        _print_json(reports)
    for r in [] if args.json else reports:
        state = "ok  " if r["ok"] else "FAIL"
        unverified = "" if r.get("verify_certificates", True) else ", certificates NOT verified"
        print(f"{state} {r['account']} {r['user']}@{r['host']}:{r['port']} ({r['security']}{unverified}) "
              f"move={r.get('move_method')} idle={r.get('idle')} {r.get('error') or ''}")
        for role, folder in (r.get("folders") or {}).items():
            print(f"       {role}: {folder.get('name')} exists={folder.get('exists')} "
                  f"messages={folder.get('messages')} unseen={folder.get('unseen')}")
    if not reports:
        print("no [[imap]] accounts configured")
    return EX_OK if all(r["ok"] for r in reports) else EX_ERROR


def cmd_imap_poll_once(args: argparse.Namespace) -> int:
    from maildesk.adapters.imap_poller import poll_once
    from maildesk.cli import _app, _print_json

    app = _app(args)
    app.start_pipeline()  # as the daemon drains: parsing on every core, commits grouped
    try:
        report = poll_once(app)
    finally:
        app.close()
    if args.json:
        _print_json(report)
    else:
        for r in report["accounts"]:
            print(f"{r['account']}: fetched {r['fetched']}, {r['outcomes']}, processed {r['to_processed']}, "
                  f"quarantine {r['to_quarantine']}" + (f", error {r['error']}" if r.get("error") else "")
                  + (f", skipped: {r['skipped']}" if r.get("skipped") else ""))
    return EX_OK if report["ok"] else 75  # EX_TEMPFAIL: a cron job tries again


def register(cmds: Any, sub: Callable[..., argparse.ArgumentParser]) -> None:
    imap = cmds.add_parser("imap", help="IMAP mailboxes").add_subparsers(dest="i_command", required=True)
    p = sub(imap, "check", cmd_imap_check, "log in to every account and report folders and counts")
    p.add_argument("--json", action="store_true")
    p = sub(imap, "poll-once", cmd_imap_poll_once, "drain every account once and exit (cron, tests)")
    p.add_argument("--json", action="store_true")
    from maildesk import cli_time

    cli_time.register(cmds, sub)
    sub(cmds, "serve", cmd_serve, "run the daemon: receiver, pollers, outbox, scheduler")
    sub(cmds, "check", cmd_check, "check config, calendar, templates, database and every connection")
    outbox = cmds.add_parser("outbox", help="outgoing notifications").add_subparsers(dest="o_command", required=True)
    p = sub(outbox, "list", cmd_outbox_list, "notifications, newest first")
    p.add_argument("--state", choices=("pending", "sent", "failed", "held"))
    p.add_argument("--json", action="store_true")
    p = sub(outbox, "show", cmd_outbox_show, "the raw message as it is (or was) sent")
    p.add_argument("id", type=int)
    p = sub(outbox, "retry", cmd_outbox_retry, "queue failed or held notifications again")
    p.add_argument("id", type=int, nargs="?", help="one message (default: every failed one)")
    p.add_argument("--force", action="store_true",
                   help="send this one held message even though its recipient is over the daily cap")
    # backup and restore
    p = sub(cmds, "backup", cmd_backup, "copy database, mail archive and key into a new folder, consistently")
    p.add_argument("dest", type=Path, help="a new or empty folder")
    p = sub(cmds, "restore", cmd_restore, "put a backup back into an empty store and data dir")
    p.add_argument("src", type=Path, help="a folder written by `maildesk backup`")
    p.add_argument("--force", action="store_true", help="overwrite a store that holds tickets or mail")
