"""An account's state as plain data: what the trade log carries across a restart.

A real-time run writes the account's :meth:`~simbroker.accounts.Account.snapshot` in
each ``bar`` record (and the broker's account writes one in its ``account`` record when
it binds); a resume hands the latest one and the fills logged after it to
:meth:`~simbroker.accounts.Account.restore`. Trading days are written as ``[date,
offset]`` (:func:`~simbroker.accounts._days.day_key`), so a state survives a panel
that starts on another bar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["LoggedFill", "StateError", "field_of", "number_of", "time_ns"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def time_ns(when: datetime) -> int:
    """Nanoseconds since the epoch of a tz-aware time (microsecond precision)."""
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000


class StateError(ValueError):
    """A saved account state (or a fill booked with it) that cannot be restored."""


@dataclass(frozen=True)
class LoggedFill:
    """A fill the trade log holds after the account state being restored.

    Attributes
    ----------
    timestamp : datetime
        The fill's time (the open of the bar it filled on).
    symbol, side : str
    qty, notional, fee : float
    position : float
        The symbol's position right after the fill.
    cash : float
        The cash right after the fill.
    """

    timestamp: datetime
    symbol: str
    side: str
    qty: float
    notional: float
    fee: float
    position: float
    cash: float


def field_of(state: Mapping[str, Any], key: str, kind: type | tuple[type, ...],
             default: Any) -> Any:
    """``state[key]`` checked to be of ``kind`` (``default`` when absent); ``ValueError``
    naming the field otherwise."""
    value = state.get(key, default)
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ValueError(f"account state field {key!r} must be {kind}, got {value!r:.60}")
    if not isinstance(value, kind):
        raise ValueError(f"account state field {key!r} has the wrong type: {value!r:.60}")
    return value


def number_of(value: Any, what: str) -> float:
    """A finite number from a state entry; ``ValueError`` naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ValueError(f"account state: {what} must be a finite number, got {value!r:.60}")
    return float(value)
