"""The idempotency key of an incoming message: same message, same key, whatever the route."""

from __future__ import annotations

import hashlib
import re

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_IDENTITY = re.compile(rb"^(from|date|subject):[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def idempotency_key(raw: bytes) -> str:
    """sha256 over the Message-ID and the body with line endings normalised.

    Trace headers that relays and mailbox servers prepend (Received, Return-Path,
    Delivered-To) do not change the key, so one message fetched by IMAP after it came
    by SMTP, or delivered to two help addresses, is processed once. Without a
    Message-ID, From/Date/Subject stand in for it.
    """
    match = _HEADER_END.search(raw)
    head, body = (raw[: match.start()], raw[match.end():]) if match else (raw, b"")
    body = body.replace(b"\r\n", b"\n").rstrip(b"\n")
    found = _MESSAGE_ID.search(head)
    if found:
        identity = b"mid:" + b" ".join(found.group(1).split())
    else:
        fields = sorted(m.group(1).lower() + b":" + b" ".join(m.group(2).split()) for m in _IDENTITY.finditer(head))
        identity = b"hdr:" + b"\n".join(fields)
    digest = hashlib.sha256()
    digest.update(identity)
    digest.update(b"\0")
    digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()
