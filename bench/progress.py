"""A one-line text progress bar on stderr, safe to advance from several threads."""

from __future__ import annotations

import sys
import threading
import time

WIDTH = 28


class Progress:
    """`phase(label, total)` starts a bar; `advance()` moves it; redrawn at most ten times a second."""

    def __init__(self, stream=sys.stderr, enabled: bool = True) -> None:  # type: ignore[no-untyped-def]
        self.stream, self.enabled = stream, enabled
        self.tty = enabled and getattr(stream, "isatty", lambda: False)()
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.label, self.total, self.done = "", 0, 0
        self.phase_started = self.last_draw = 0.0

    def phase(self, label: str, total: int = 0) -> None:
        with self.lock:
            self._finish_line()
            self.label, self.total, self.done = label, total, 0
            self.phase_started = time.monotonic()
            self._draw(force=True)

    def advance(self, count: int = 1) -> None:
        with self.lock:
            self.done += count
            self._draw(force=self.done >= self.total > 0)

    def note(self, text: str) -> None:
        """A line of its own (a skipped scenario, a warning), above the bar."""
        with self.lock:
            if self.enabled:
                self._finish_line()
                self.stream.write(f"  {text}\n")
                self.stream.flush()

    def close(self) -> None:
        with self.lock:
            self._finish_line()

    def _finish_line(self) -> None:
        if self.enabled and self.tty and self.label:
            self.stream.write("\n")
            self.stream.flush()
        self.label = ""

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        # without a terminal, a line every few seconds is enough for a CI log
        if not force and now - self.last_draw < (0.1 if self.tty else 5.0):
            return
        self.last_draw = now
        if self.total:
            filled = int(WIDTH * min(self.done, self.total) / self.total)
            bar = f"[{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total}"
        else:
            bar = f"[{'.' * WIDTH}] {self.done}"
        line = f"{bar} {self.label}  {now - self.phase_started:5.1f} s  (total {now - self.started:5.0f} s)"
        if self.tty:
            self.stream.write("\r" + line[:150].ljust(110))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
