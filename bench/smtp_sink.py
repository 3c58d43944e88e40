"""`python -m bench.smtp_sink PORT`: a loopback SMTP server (aiosmtpd) that takes every message and keeps only a count.

Prints `READY` once listening; on SIGTERM prints `{"messages": N, "bytes": B}` and exits.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


class Sink:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        self.bytes += len(envelope.original_content or b"")
        return "250 2.0.0 OK"


def main(port: int) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sink = Sink()
    controller = Controller(sink, hostname=HOST, port=port, ready_timeout=30)
    controller.start()
    print("READY", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()
    print(json.dumps({"messages": sink.messages, "bytes": sink.bytes}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
