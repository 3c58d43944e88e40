"""The idempotency key of an incoming message: same message, same key, whatever the route."""

from __future__ import annotations

import hashlib
import re

_HEADER_END = re.compile(rb"\r?\n\r?\n")
# The fields that say what a message is and who wrote it to whom. Not the trace fields
# (Received, Return-Path, Delivered-To, X-Original-To, Authentication-Results) that each
# relay and mailbox server adds: the same message by SMTP and by IMAP must get one key.
_IDENTITY = re.compile(rb"^(message-id|from|to|cc|subject|date)[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)",
                       re.IGNORECASE | re.MULTILINE)


def idempotency_key(raw: bytes) -> str:
    """sha256 over the identity fields (Message-ID, From, To, Cc, Subject, Date) and the body.

    Header values are compared unfolded with runs of white space made one space, line
    endings are normalised, so that one message fetched by IMAP after it came by SMTP,
    or delivered to two help addresses, is processed once. Two messages that share a
    Message-ID and a body but differ in sender, recipients, subject or date are two
    messages (the store flags the reused Message-ID).
    """
    match = _HEADER_END.search(raw)
    head, body = (raw[: match.start()], raw[match.end():]) if match else (raw, b"")
    body = body.replace(b"\r\n", b"\n").rstrip(b"\n")
    fields = [m.group(1).lower() + b":" + b" ".join(m.group(2).split()) for m in _IDENTITY.finditer(head)]
    digest = hashlib.sha256()
    digest.update(b"v2\n" + b"\n".join(sorted(fields)))  # sorted: the same fields in another order are the same
    digest.update(b"\0")
    digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()
