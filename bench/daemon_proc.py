"""The daemon under test in a process of its own (`bench.serve_daemon`), so that its CPU and memory are its own."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0
STOP_TIMEOUT = 45.0  # `maildesk serve` finishes its work within 30 s of SIGTERM


class DaemonProcess:
    """`with DaemonProcess(box) as daemon:` starts `maildesk serve` on the sandbox's config and stops it after."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = box.root / "daemon.log"
        self.exit_code: int | None = None
        self.stop_seconds: float | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> DaemonProcess:
        log = self.log_path.open("wb")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WATCHDOG_USEC", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.serve_daemon", str(self.box.config_path)],
                                     stdout=subprocess.PIPE, stderr=log, cwd=REPO, env=env)
        log.close()
        line = self._read_line(START_TIMEOUT)
        if not line.startswith("READY"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the daemon did not start ({line or 'no answer'}); see {self.log_path}:\n"
                               + self.log_tail())
        return self

    def _read_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(0.2):
                return self.proc.stdout.readline().decode(errors="replace").strip()
            if self.proc.poll() is not None:
                return f"exited with {self.proc.returncode}"
        return ""

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.exit_code = self.proc.returncode if self.proc else None
            return
        self.proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        try:
            self.exit_code = self.proc.wait(STOP_TIMEOUT)
            self.stop_seconds = time.monotonic() - began
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_errors(self) -> list[str]:
        """ERROR lines and tracebacks the daemon logged: a benchmark of a failing daemon means nothing."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in text if " ERROR " in line or line.startswith("Traceback")]
