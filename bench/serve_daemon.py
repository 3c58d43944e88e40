"""`python -m bench.serve_daemon CONFIG`: `maildesk serve` for the benchmark, printing `READY <port>` once SMTP answers.

It runs `maildesk.daemon.serve` exactly as the `serve` command does (logging set up the
same way, to stderr); SIGTERM stops it the way systemd would.
"""

from __future__ import annotations

import asyncio
import sys
import time

from maildesk.config import load
from maildesk.daemon import serve
from maildesk.logs import setup_logging

READY_TIMEOUT = 60.0


async def announce(host: str, port: int) -> None:
    """Print READY when the receiver greets with 220: the end-to-end proof that a client can deliver."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            greeting = await asyncio.wait_for(reader.readline(), 5)
            writer.write(b"QUIT\r\n")
            await writer.drain()
            writer.close()
            if greeting.startswith(b"220"):
                print(f"READY {port}", flush=True)
                return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    print("FAILED receiver did not answer", flush=True)


async def main(config_path: str) -> None:
    settings = load(config_path)
    setup_logging(settings.maildesk.log_format)
    host, _, port = settings.smtp.listen[0].rpartition(":")
    tasks: list[asyncio.Task] = []

    def ready(_app: object) -> None:
        tasks.append(asyncio.get_running_loop().create_task(announce(host.strip("[]"), int(port))))

    await serve(settings, ready=ready, stop=asyncio.Event(), config_path=config_path)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
