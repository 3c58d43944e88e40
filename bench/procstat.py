"""Memory and CPU of a process and its descendants from /proc: VmRSS, VmHWM, PSS, and a sampler of the peak."""

from __future__ import annotations

import threading
from pathlib import Path

MB = 1024 * 1024


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid` in bytes; {} when it is gone."""
    found: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        return {}
    return found


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (the pipeline's forkserver and its workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children") if Path(f"/proc/{current}").exists() else ():
            try:
                todo += [int(child) for child in task.read_text().split()]
            except (OSError, ValueError):
                pass
    return found


def pss(pid: int) -> int:
    """Proportional set size: a page shared by k processes counts 1/k in each, so a tree's sum is what it costs."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def tree_pss(pid: int) -> int:
    return sum(pss(p) for p in descendants(pid))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its living descendants."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / tick


class PeakSampler:
    """Samples a process tree every `interval` seconds: `peak` is its largest PSS sum, `main_peak` the root's VmHWM."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.main_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss(self.pid))
            self.main_peak = max(self.main_peak, status(self.pid).get("VmHWM", 0))
            self._stop.wait(self.interval)




def _machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / _tick()


def _tick() -> int:
    import os

    return os.sysconf("SC_CLK_TCK")


def _own_cpu(root: int) -> dict[int, float]:
    """CPU seconds of the bench's own processes and of the database server it uses (postgres), by pid."""
    found: dict[int, float] = {}
    mine = set(descendants(root))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if pid not in mine and (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            found[pid] = (int(fields[11]) + int(fields[12])) / _tick()
        except (OSError, ValueError, IndexError):
            pass
    return found


class OtherLoad:
    """How much CPU other processes on the machine took while the benchmark ran (it shares 2 cores with them)."""

    def __init__(self, root: int, interval: float = 2.0) -> None:
        self.root, self.interval = root, interval
        self.other = 0.0  # core-seconds
        self.elapsed = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="other-load", daemon=True)

    def __enter__(self) -> OtherLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def share(self) -> float:
        """Of the machine's capacity (all cores) over the run."""
        import os

        return self.other / (self.elapsed * (os.cpu_count() or 1)) if self.elapsed else 0.0

    def _run(self) -> None:
        import time

        busy, own, at = _machine_busy(), _own_cpu(self.root), time.monotonic()
        while not self._stop.wait(self.interval):
            busy2, own2, at2 = _machine_busy(), _own_cpu(self.root), time.monotonic()
            ours = sum(v - own.get(pid, 0.0) for pid, v in own2.items())  # a process that ended is lost: small
            self.other += max(busy2 - busy - ours, 0.0)
            self.elapsed += at2 - at
            busy, own, at = busy2, own2, at2
