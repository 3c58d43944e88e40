"""Scenario 2, IMAP drain: a backlog appended to a pymap server, drained by `poll_once` in a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

from imapclient import IMAPClient

from bench.daemon_proc import REPO
from bench.plan import TARGETS, Context
from bench.procstat import MB, PeakSampler
from bench.report import Row, share
from bench.sandbox import DESK, HOST, free_port, make_sandbox

USER, PASSWORD = "maildesk", "secret"
PREFIX = "bench"
BATCH = 50  # messages per MULTIAPPEND
# pymap (as tests/imapserver.py starts it): the in-memory "dict" backend, the password kept in clear
# instead of 500,000 PBKDF2 rounds per login
PYMAP = ("from pysasl.hashing import Cleartext; from pymap.config import IMAPConfig; "
         "IMAPConfig._get_hash_context = classmethod(lambda cls, cfg: Cleartext()); "
         "from pymap.main import main; main()")


class Pymap:
    """A pymap process on a free loopback port, stopped on exit."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Pymap:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PYMAP, "--host", HOST, "--port", str(self.port), "--no-tls", "dict",
             "--demo-user", USER, "--demo-password", PASSWORD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self._answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.__exit__()
                raise RuntimeError("pymap did not start")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                return sock.recv(4).startswith(b"* OK")
        except OSError:
            return False

    def client(self) -> IMAPClient:
        client = IMAPClient(HOST, self.port, ssl=False, timeout=120)
        client.login(USER, PASSWORD)
        return client


def folders(client: IMAPClient) -> dict[str, str]:
    delimiter = (client.list_folders("", "")[0][1] or b"/").decode()
    return {role: f"{PREFIX}{delimiter}{role}" for role in ("inbox", "processed", "quarantine")}


def account(server: Pymap) -> dict[str, Any]:
    return {"name": "bench", "host": HOST, "port": server.port, "security": "none", "user": USER,
            "password": PASSWORD, "desk": DESK, "folder": f"{PREFIX}/inbox", "processed_folder": f"{PREFIX}/processed",
            "quarantine_folder": f"{PREFIX}/quarantine"}


def fill(ctx: Context, server: Pymap, count: int) -> int:
    """Append `count` corpus messages to the inbox (MULTIAPPEND batches); bounded by count and time."""
    ctx.progress.phase(f"IMAP: appending a backlog of {count}", count)
    deadline = time.monotonic() + ctx.sizes.imap_seconds
    appended = 0
    client = server.client()
    try:
        names = folders(client)
        for name in names.values():
            if not client.folder_exists(name):
                client.create_folder(name)
        while appended < count and time.monotonic() < deadline:
            batch = [ctx.corpus[i].raw for i in range(appended, min(appended + BATCH, count))]
            client.multiappend(names["inbox"], batch)
            appended += len(batch)
            ctx.progress.advance(len(batch))
    finally:
        client.logout()
    return appended


def put_back(server: Pymap) -> int:
    """Move the drained mail back into the inbox, for the next drain into a fresh store."""
    client = server.client()
    try:
        names = folders(client)
        for role in ("processed", "quarantine"):
            client.select_folder(names[role])
            if client.search("ALL"):
                client.move("1:*", names["inbox"])
        return client.folder_status(names["inbox"], [b"MESSAGES"])[b"MESSAGES"]
    finally:
        client.logout()


def drain(ctx: Context, server: Pymap, backend: str, pg_url: str, pipeline: bool, count: int) -> dict[str, Any]:
    box = make_sandbox(f"imap-{backend}", pg_url, imap=[account(server)])
    command = [sys.executable, "-m", "bench.imap_drain", str(box.config_path)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}
    ctx.progress.phase(f"IMAP: draining {count} ({backend}{', pipeline' if pipeline else ''})")
    try:
        with open(box.root / "drain.log", "wb") as log:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, cwd=REPO, env=env)
            with PeakSampler(proc.pid, 0.2) as sampler:
                try:
                    out, _ = proc.communicate(timeout=ctx.sizes.imap_seconds)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    out, _ = proc.communicate()
        if proc.returncode != 0 or not out.strip():
            tail = (box.root / "drain.log").read_text(errors="replace").splitlines()[-10:]
            raise RuntimeError(f"drain exited with {proc.returncode}: " + "\n".join(tail))
        result = json.loads(out.decode().strip().splitlines()[-1])
        result["tree_peak_pss"] = sampler.peak
        return result
    finally:
        box.remove()


def run(ctx: Context) -> None:
    count = ctx.sizes.imap_backlog
    # `maildesk imap poll-once` and `serve` drain alike, through the ingest pipeline; the full run
    # does it on every backend, the quick one on SQLite
    variants = [(name, url, True) for name, url in ctx.backends()] if ctx.sizes.imap_pipeline else [("sqlite", "", True)]
    with Pymap() as server:
        appended = fill(ctx, server, count)
        for index, (backend, pg_url, pipeline) in enumerate(variants):
            if index:
                put_back(server)
            result = drain(ctx, server, backend, pg_url, pipeline, appended)
            ctx.add(_row(ctx, backend, pipeline, appended, result))


def _row(ctx: Context, backend: str, pipeline: bool, count: int, result: dict[str, Any]) -> Row:
    [report] = result["report"]["accounts"]
    seconds = result["seconds"]
    rate = report["fetched"] / seconds if seconds else 0.0
    target_rate = 10_000 / TARGETS["imap_seconds_10k"]
    parse, commit = ctx.limits.get("parse"), ctx.limits.get(f"commit:{backend}")
    if pipeline:
        limit = min(parse * (os.cpu_count() or 1), commit) if parse and commit else None
    else:  # one message at a time: parse, then commit
        limit = 1 / (1 / parse + 1 / commit) if parse and commit else None
    how = "poll_once with the pipeline (as `maildesk imap poll-once`)"
    text = (f"{rate:6.1f} msg/s  {seconds:6.1f} s  peak RSS {result['vmhwm'] / MB:5.0f} MB"
            + (f" (with workers {result['tree_peak_pss'] / MB:.0f} MB PSS)" if pipeline else ""))
    if report.get("error") or report["fetched"] != count:
        text += f"  fetched {report['fetched']} of {count}"
        text += f", error {report['error']}" if report.get("error") else ""
    return Row("2 IMAP drain", backend, f"{how} × {count}", text,
               f"10,000 in < {TARGETS['imap_seconds_10k']:.0f} s (>= {target_rate:.0f} msg/s)", rate >= target_rate,
               share(rate, limit), data={**result, "rate": rate, "limit": limit})
