"""The README's first-run demo, run as written: `make run`'s commands, then the demo block, on the example config.

The commands are read from README.md and the Makefile, so that a change there is tested here. The example
config is copied into a temporary folder with only `data_dir` changed, so that nothing is written to the
checkout's var/.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "config/maildesk.example.toml"
BIN = Path(sys.executable).parent  # the virtualenv the tests run in, which `make` calls .venv/bin

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]


def make_run_commands() -> list[list[str]]:
    """The recipe of the Makefile's `run` target, $(BIN) and $(CONFIG) expanded."""
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    assert recipe, "Makefile has no run target"
    lines = [line.strip() for line in recipe.group(1).splitlines()]
    return [shlex.split(line.replace("$(BIN)", ".venv/bin").replace("$(CONFIG)", EXAMPLE)) for line in lines]


def readme_demo_commands() -> list[list[str]]:
    """The sh block that follows "`make run` listens for mail" in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"`make run` listens for mail.*?```sh\n(.*?)```", text, re.S)
    assert block, "README lost its demo block"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


def localise(command: list[str], config: Path, data_dir: Path) -> list[str]:
    """The same command against the temporary config: our maildesk, our data dir."""
    out = []
    for word in command:
        if word == ".venv/bin/maildesk":
            word = str(BIN / "maildesk")
        elif word == EXAMPLE:
            word = str(config)
        elif word.startswith("var/"):
            word = str(data_dir / word.removeprefix("var/"))
        out.append(word)
    return out


@pytest.fixture
def config(tmp_path: Path) -> Path:
    text = (ROOT / EXAMPLE).read_text(encoding="utf-8")
    changed, count = re.subn(r'(?m)^data_dir = "\.\./var"', f'data_dir = "{tmp_path / "var"}"', text)
    assert count == 1, "the example's data_dir line changed: update this test"
    path = tmp_path / "maildesk.toml"
    path.write_text(changed, encoding="utf-8")
    return path


def test_the_readme_demo_creates_a_ticket_and_writes_its_notification(config: Path, tmp_path: Path) -> None:
    assert (BIN / "maildesk").exists(), "the maildesk console script is not installed beside this Python"
    data_dir = tmp_path / "var"
    *setup, serve = [localise(c, config, data_dir) for c in make_run_commands()]
    assert [c[-2:] for c in setup] == [["db", "upgrade"]] and serve[-1] == "serve"
    ingest, tickets, ls = [localise(c, config, data_dir) for c in readme_demo_commands()]
    assert ingest[-2:] == ["ingest", "tests/data/new_request.eml"] and tickets[-2:] == ["tickets", "list"]

    for command in setup:
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=120)
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        daemon = subprocess.Popen(serve, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
        taken = subprocess.run(ingest, cwd=ROOT, capture_output=True, timeout=120)
        assert taken.returncode == 0, taken.stderr.decode()
        assert b"created ticket #1" in taken.stdout, taken.stdout.decode()
        listed = subprocess.run(tickets, cwd=ROOT, capture_output=True, timeout=120, check=True).stdout.decode()
        row = r"^#1\s+Новая\s+ivanova@gb1\.sev\.gov\.ru\s+Не открывается карта пациента в МИС$"
        assert re.search(row, listed, re.M), listed
        outgoing = Path(ls[-1])
        deadline = time.monotonic() + 60
        while not list(outgoing.glob("*.eml")) and time.monotonic() < deadline:
            assert daemon.poll() is None, f"serve exited {daemon.returncode}: {log.read_text()[-3000:]}"
            time.sleep(0.2)
        written = sorted(outgoing.glob("*.eml"))
        assert written, f"no notification in {outgoing}: {log.read_text()[-3000:]}"
        shown = subprocess.run(ls, cwd=ROOT, capture_output=True, timeout=30, check=True).stdout.decode().split()
        assert set(shown) >= {p.name for p in written}
        to_requester = [p for p in written if b"X-Maildesk-Envelope-To: ivanova@gb1.sev.gov.ru" in p.read_bytes()]
        assert to_requester, "the requester is told that the ticket was created"
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text()[-3000:]
    assert (data_dir / "maildesk.db").exists(), "everything went to the temporary data_dir"
