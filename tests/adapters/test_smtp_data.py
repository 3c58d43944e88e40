"""DATA read in large pieces: the end found wherever the bytes are split, dot-stuffing undone, size bounded."""

from __future__ import annotations

import asyncio

import pytest

from maildesk.adapters.smtp_data import read_data


async def _read(stream: bytes, splits: list[int], limit: int | None = None, reader_limit: int = 64):
    """Feed `stream` in pieces cut at `splits` while read_data runs; return its result and what stays unread."""
    reader = asyncio.StreamReader(limit=reader_limit)
    task = asyncio.ensure_future(read_data(reader, limit))
    last = 0
    for cut in [*splits, len(stream)]:
        reader.feed_data(stream[last:cut])
        last = cut
        await asyncio.sleep(0)
    result = await asyncio.wait_for(task, 5)
    reader.feed_eof()
    return result, await reader.read()


CASES = [
    # (what the client sends after DATA, the message it means)
    (b".\r\n", b""),
    (b"\r\n.\r\n", b"\r\n"),
    (b"a\r\n.\r\n", b"a\r\n"),
    (b"Subject: x\r\n\r\nbody\r\n.\r\n", b"Subject: x\r\n\r\nbody\r\n"),
    (b"..starts with a dot\r\n.\r\n", b".starts with a dot\r\n"),
    (b"x\r\n..\r\n...\r\n.\r\n", b"x\r\n.\r\n..\r\n"),
    (b"line\n.\nnot the end\r\n.\r\n", b"line\n.\nnot the end\r\n"),  # only CRLF ends a line
    (b"bare\r.\rcr\r\n.\r\n", b"bare\r.\rcr\r\n"),
    (b"\r\r\n.\r\n", b"\r\r\n"),
    (b"x" * 700 + b"\r\n" + b"y" * 300 + b"\r\n.\r\n", b"x" * 700 + b"\r\n" + b"y" * 300 + b"\r\n"),
]


@pytest.mark.parametrize("stream, message", CASES)
def test_the_end_is_found_however_the_bytes_arrive(stream: bytes, message: bytes) -> None:
    for cut in range(len(stream) + 1):
        result, rest = asyncio.run(_read(stream + b"QUIT\r\n", [cut]))
        assert result.content == message, f"split at {cut}"
        assert rest == b"QUIT\r\n", "what follows DATA is left for the next command"
    byte_by_byte, _ = asyncio.run(_read(stream, list(range(1, len(stream)))))
    assert byte_by_byte.content == message


def test_a_long_message_in_many_pieces() -> None:
    lines = [f"строка {i} ".encode() * 9 + b"\r\n" for i in range(3000)] + [".точка\r\n".encode()]
    stream = b"".join(b"." + line if line.startswith(b".") else line for line in lines) + b".\r\n"
    result, _ = asyncio.run(_read(stream, list(range(0, len(stream), 997)), reader_limit=4096))
    assert result.content == b"".join(lines)


def test_over_the_limit_the_rest_is_read_and_dropped() -> None:
    stream = b"z" * 5000 + b"\r\n.\r\nQUIT\r\n"
    result, rest = asyncio.run(_read(stream, list(range(0, len(stream), 100)), limit=1000))
    assert result.content is None and result.size == 5002
    assert rest == b"QUIT\r\n"
    exact, _ = asyncio.run(_read(b"z" * 998 + b"\r\n.\r\n", [], limit=1000))
    assert exact.content == b"z" * 998 + b"\r\n", "a message of exactly the limit is taken"
