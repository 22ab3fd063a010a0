"""The link between records: each one names the checksum of the line before it."""

from __future__ import annotations

import hashlib

__all__ = ["line_digest"]


def line_digest(line: bytes) -> str:
    """The chain checksum of one record line (its bytes without the newline).

    The first 16 hex digits (64 bits) of its SHA-256: enough to tell any two lines apart
    by accident; the chain guards against lost, repeated and shuffled lines, not forgery.
    """
    return hashlib.sha256(line).hexdigest()[:16]
