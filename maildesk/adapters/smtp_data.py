"""Reading SMTP DATA in large pieces: up to the CRLF.CRLF that ends it, dot-stuffing undone, size bounded.

aiosmtpd reads DATA one line at a time (an await, checks and a copy for every line: some
1,300 of them in a 100 KB message), which makes the receiver's event loop the daemon's
busiest part. Here the stream is searched for the terminator by `StreamReader.readuntil`,
in C, a piece of up to the reader's limit at a time. Only CRLF ends a line, as in aiosmtpd
(≥ 1.4.5): bare CR and LF reach the handler as they came, for the smuggling check.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

TERMINATOR = b"\r\n.\r\n"
PIECE = 1 << 20  # bytes the reader may buffer while looking for the terminator


def _advance(state: int, byte: int) -> int:
    """How much of TERMINATOR the data now ends with, after `byte`, given it ended with `state` bytes of it."""
    text = TERMINATOR[:state] + bytes((byte,))
    for length in range(min(len(text), len(TERMINATOR)), 0, -1):
        if text.endswith(TERMINATOR[:length]):
            return length
    return 0


@dataclass
class DataRead:
    content: bytes | None  # the message, dot-stuffing removed; None when it was over the size limit
    size: int  # bytes received, the terminator left out


async def read_data(reader: asyncio.StreamReader, limit: int | None) -> DataRead:
    """Everything up to the end of DATA; past `limit` bytes the rest is read and thrown away."""
    pieces: list[bytes] = []
    size = 0
    # DATA starts on a new line: the data ends with CRLF so far, and ".\r\n" alone would end it.
    # Byte by byte while the data read ends with part of the terminator (a few bytes at most),
    # then a piece at a time: readuntil finds any terminator that starts in what is still unread.
    state = 2
    while True:
        if state:
            byte = (await reader.readexactly(1))[0]
            state = _advance(state, byte)
            piece = bytes((byte,))
        else:
            try:
                piece = await reader.readuntil(TERMINATOR)
                state = len(TERMINATOR)
            except asyncio.LimitOverrunError as exc:
                # no terminator yet: take what cannot hold its start (the last 4 bytes stay buffered)
                piece = await reader.readexactly(exc.consumed)
        size += len(piece)
        if limit is None or size - 3 <= limit:
            pieces.append(piece)
        elif pieces:
            pieces.clear()  # over the limit: keep nothing, go on reading to the end
        if state == len(TERMINATOR):
            break
    size -= 3  # ".\r\n"; the CRLF before it ends the message's last line
    if limit is not None and size > limit:
        return DataRead(None, size)
    data = b"".join(pieces)[:-3]
    # a line that starts with a dot came with one more (RFC 5321 4.5.2)
    if b"\r\n." in data or data.startswith(b"."):
        data = (b"\r\n" + data).replace(b"\r\n.", b"\r\n")[2:]
    return DataRead(data, size)
