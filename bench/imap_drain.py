"""`python -m bench.imap_drain CONFIG`: one timed `maildesk imap poll-once`, printed as JSON with peak RSS.

It is exactly the command: `build(settings)`, the shared ingest pipeline started (as
`maildesk serve` and `imap poll-once` both do), then `poll_once`.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from maildesk.adapters.imap_poller import poll_once
from maildesk.bootstrap import build
from maildesk.config import load
from maildesk.logs import setup_logging


def main(config_path: str) -> None:
    settings = load(config_path)
    setup_logging(settings.maildesk.log_format)
    app = build(settings)
    app.start_pipeline()
    began = time.perf_counter()
    report = poll_once(app)
    seconds = time.perf_counter() - began
    app.close()
    hwm = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # largest reaped child, if any
    print(json.dumps({"seconds": seconds, "report": report, "vmhwm": hwm, "children_maxrss": children}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
