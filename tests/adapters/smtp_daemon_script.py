"""A maildesk SMTP receiver in a process of its own, for the crash test: `python smtp_daemon_script.py CONFIG`.

Builds the app from the config file, upgrades the schema, starts the receiver, prints
`READY host:port` and runs until killed.
"""

from __future__ import annotations

import asyncio
import sys

from maildesk.adapters.database import upgrade
from maildesk.adapters.smtp_runner import run_receiver
from maildesk.adapters.smtp_server import SmtpReceiver
from maildesk.bootstrap import build
from maildesk.config import load


def announce(receiver: SmtpReceiver) -> None:
    print("READY", " ".join(f"{host}:{port}" for host, port in receiver.addresses), flush=True)


async def serve(config_path: str) -> None:
    settings = load(config_path)
    upgrade(settings.database_url)
    app = build(settings)
    try:
        await run_receiver(app, asyncio.Event(), started=announce)
    finally:
        app.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
