"""The results: one row per figure, printed as a table and written as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

MARKS = {True: "yes", False: "NO", None: ""}


@dataclass
class Row:
    scenario: str
    backend: str
    measure: str
    result: str
    target: str = ""
    met: bool | None = None
    share: float | None = None  # of the limit measured in the same run
    data: dict[str, Any] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100), nearest rank; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def share(value: float | None, limit: float | None) -> float | None:
    if not value or not limit or math.isnan(limit) or math.isnan(value):
        return None
    return value / limit


def table(rows: Sequence[Row]) -> str:
    heads = ("scenario", "backend", "measure", "result", "target", "met", "of limit")
    cells = [(r.scenario, r.backend, r.measure, r.result, r.target, MARKS[r.met],
              f"{r.share:.0%}" if r.share is not None else "") for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(heads)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)), line]
    previous = None
    for row in cells:
        if previous is not None and row[0] != previous:
            out.append("")
        previous = row[0]
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(out)


def write_json(path: Path, rows: Sequence[Row], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**meta, "rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(body, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
