"""Message-IDs that maildesk mints for its own mail and can later recognise unforgeably.

A minted id reads `md.<ticket>.<nonce>.<mac>@<domain>`: the MAC is an HMAC of the
ticket number and nonce under a secret, so a reply quoting it proves which ticket it
answers without a database lookup, and nobody can make one up for another ticket.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_MINTED = re.compile(r"^md\.(\d{1,12})\.([0-9a-f]{16})\.([0-9a-f]{20})@(.+)$")


def _mac(secret: bytes, number: int, nonce: str) -> str:
    return hmac.new(secret, f"{number}.{nonce}".encode(), hashlib.sha256).hexdigest()[:20]


def mint(number: int, nonce: str, secret: bytes, domain: str) -> str:
    """A Message-ID (without angle brackets) for mail about ticket `number`.

    `nonce` is 16 hex digits chosen by the caller (random in production, fixed in tests).
    """
    if not re.fullmatch(r"[0-9a-f]{16}", nonce):
        raise ValueError("nonce must be 16 lowercase hex digits")
    return f"md.{number}.{nonce}.{_mac(secret, number, nonce)}@{domain}"


def verify(message_id: str, secret: bytes, domain: str) -> int | None:
    """The ticket number a minted id names, or None when it is not ours or is forged."""
    match = _MINTED.match(message_id.strip().strip("<>"))
    if not match or match.group(4).lower() != domain.lower():
        return None
    number, nonce, mac = int(match.group(1)), match.group(2), match.group(3)
    if not hmac.compare_digest(mac, _mac(secret, number, nonce)):
        return None
    return number


def is_ours(message_id: str, domain: str) -> bool:
    """True when an id looks minted under our domain (MAC not checked)."""
    match = _MINTED.match(message_id.strip().strip("<>"))
    return bool(match) and match.group(4).lower() == domain.lower()
