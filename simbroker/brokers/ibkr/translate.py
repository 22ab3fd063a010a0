"""IB <-> simbroker: statuses, order types, error codes, times."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

try:
    import ib_async as ib_lib
except ImportError:  # pragma: no cover - the older library, same API
    import ib_insync as ib_lib  # type: ignore[no-redef]

__all__ = ["LIVE_PORTS", "OPEN_STATES", "REJECTING", "TYPES", "TYPES_BACK", "ib_lib", "utc"]

LIVE_PORTS = frozenset({7496, 4001})
OPEN_STATES = {"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted", "PendingCancel"}
REJECTING = {200: "no security definition", 201: "order rejected", 103: "duplicate order id"}
TYPES = {"market": "MKT", "limit": "LMT", "stop": "STP", "stop_limit": "STP LMT"}
TYPES_BACK = {v: k for k, v in TYPES.items()}


def utc(t: Any) -> datetime:
    """``t`` as an aware UTC datetime (naive is taken as UTC; not a datetime: now)."""
    if isinstance(t, datetime):
        return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)
