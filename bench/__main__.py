"""`python -m bench [--quick] [--only smtp,imap,…] [--pg-url URL]`: run the scenarios, print one table, write JSON."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench.corpus import Corpus
from bench.plan import FULL, QUICK, SCENARIOS, TARGETS, Context
from bench.procstat import OtherLoad
from bench.progress import Progress
from bench.report import table, write_json
from bench.sandbox import pg_reachable

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
PG_ENV = "MAILDESK_BENCH_PG_URL"
# scenario → module, in the order they run; smtp also runs memory (scenario 5 reuses scenario 1's daemon) and
# comes last, so that in the quick run the memory scenario can use exactly the time that is left
MODULES = {"limits": "bench.limits", "imap": "bench.imap", "scheduler": "bench.housekeeping",
           "outbox": "bench.outbox", "smtp": "bench.smtp"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute on 2 cores (CI)")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated scenarios to run (default: all of {','.join(SCENARIOS)})")
    parser.add_argument("--pg-url", default=os.environ.get(PG_ENV, ""),
                        help=f"PostgreSQL admin URL to create scratch databases on (default: ${PG_ENV}); "
                             "without it PostgreSQL is skipped")
    parser.add_argument("--seed", type=int, default=20261123, help="corpus seed")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default: {RESULTS})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    args.only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(args.only) - set(SCENARIOS))
    if unknown:
        parser.error(f"--only: unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the bench process's own maildesk calls stay quiet
    progress = Progress(enabled=not args.no_progress)
    pg_url, pg_note = args.pg_url, ""
    if pg_url:
        why = pg_reachable(pg_url)
        if why:
            pg_url, pg_note = "", f"PostgreSQL skipped: {why}"
    else:
        pg_note = f"PostgreSQL skipped: no --pg-url or ${PG_ENV}"
    if pg_note:
        progress.note(pg_note)
    ctx = Context(QUICK if args.quick else FULL, args.quick, args.only, pg_url, pg_note,
                  Corpus(args.seed), progress)
    began = time.monotonic()
    durations: dict[str, float] = {}
    failures: dict[str, str] = {}
    with OtherLoad(os.getpid()) as other:
        _run_all(ctx, durations, failures)
    progress.close()
    total = time.monotonic() - began
    print(table(sorted(ctx.rows, key=lambda row: row.scenario[:1])))  # by scenario number; stable within one
    print()
    print(f"{'quick' if args.quick else 'full'} run, {total:.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in durations.items())}); {os.cpu_count()} cores, "
          f"other processes took {other.share:.0%} of them" + (f"; {pg_note}" if pg_note else ""))
    for scenario, text in failures.items():
        print(f"\n{scenario} FAILED:\n{text}", file=sys.stderr)
    plans = ctx.extra.get("query_plans", {})
    if plans:
        print("\nquery plans of the housekeeping pass (SqlHousekeepingStore.explain):")
        for where, jobs in plans.items():
            for job, lines in jobs.items():
                print(f"  {where:<20} {job:<13} " + "\n  ".ljust(38).join(lines))
    write_json(args.output, sorted(ctx.rows, key=lambda row: row.scenario[:1]), {
        "mode": "quick" if args.quick else "full", "started": datetime.now(timezone.utc).isoformat(),
        "seconds": total, "durations": durations, "cores": os.cpu_count(), "seed": args.seed,
        "scenarios": list(args.only), "postgresql": bool(pg_url), "note": pg_note, "targets": TARGETS,
        "other_load_share": other.share, "other_load_core_seconds": other.other,
        "commit": _commit(), "limits": ctx.limits, "failures": failures, **ctx.extra,
    })
    print(f"results: {args.output}")
    return 1 if failures else 0


def _run_all(ctx: Context, durations: dict[str, float], failures: dict[str, str]) -> None:
    for scenario, module in MODULES.items():
        if not ctx.wants(scenario) and not (scenario == "smtp" and ctx.wants("memory")):
            continue
        started = time.monotonic()
        try:
            importlib.import_module(module).run(ctx)
        except Exception as exc:  # one broken scenario must not hide the others' figures
            failures[scenario] = "".join(traceback.format_exception(exc))
            ctx.progress.note(f"{scenario} failed: {type(exc).__name__}: {exc}")
        durations[scenario] = time.monotonic() - started


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


if __name__ == "__main__":
    sys.exit(main())
