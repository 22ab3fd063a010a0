"""Clocks: one interface, a simulated clock for backtests and a wall clock for live.

``now()`` is always a timezone-aware UTC ``datetime``. The simulated clock keeps time as
integer nanoseconds since the epoch and builds the ``datetime`` only when asked (once
per move: later reads return the same immutable ``datetime``), so a backtest that never
reads the clock pays nothing for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from simbroker.errors import ClockError

__all__ = ["Clock", "SimulatedClock", "WallClock", "to_utc"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def to_utc(value: datetime | pd.Timestamp | np.datetime64 | str) -> datetime:
    """Return ``value`` as a tz-aware UTC ``datetime``; naive input is taken as UTC."""
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ClockError(f"not a time: {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    out: datetime = ts.to_pydatetime()
    return out


def _to_ns(value: datetime | pd.Timestamp | np.datetime64 | str | int) -> int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ClockError(f"not a time: {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the time."""

    def now(self) -> datetime:
        """The current time, tz-aware UTC."""
        ...


class SimulatedClock:
    """A clock that moves only when told to, and never backwards.

    Parameters
    ----------
    start
        The initial time (naive values are taken as UTC). ``None`` leaves the clock unset
        until :meth:`set` is called; reading an unset clock raises ``ClockError``.

    Examples
    --------
    >>> clock = SimulatedClock("2024-01-02 14:30")
    >>> clock.advance(timedelta(minutes=1)).isoformat()
    '2024-01-02T14:31:00+00:00'
    """

    __slots__ = ("_now", "_ns")

    def __init__(self, start: datetime | pd.Timestamp | np.datetime64 | str | None = None):
        self._ns: int | None = None if start is None else _to_ns(start)
        self._now: datetime | None = None  # now() of the current _ns, built on first read

    def now(self) -> datetime:
        """The current simulated time, tz-aware UTC."""
        now = self._now
        if now is None:
            if self._ns is None:
                raise ClockError("the simulated clock has not been set yet; call set() first")
            # a constant timedelta times an int: the same datetime as building
            # timedelta(microseconds=...) and cheaper (no constructor call)
            now = self._now = _EPOCH + _MICROSECOND * (self._ns // 1000)
        return now

    @property
    def ns(self) -> int:
        """The current time as integer nanoseconds since the epoch (UTC)."""
        if self._ns is None:
            raise ClockError("the simulated clock has not been set yet; call set() first")
        return self._ns

    def set(self, when: datetime | pd.Timestamp | np.datetime64 | str | int) -> datetime:
        """Move the clock to ``when`` (an int is nanoseconds since the epoch).

        Raises ``ClockError`` if ``when`` is earlier than the current time.
        """
        ns = _to_ns(when)
        if self._ns is not None and ns < self._ns:
            raise ClockError(
                f"the simulated clock cannot go backwards: it reads {self.now().isoformat()}, "
                f"asked for {_EPOCH + timedelta(microseconds=ns // 1000):%Y-%m-%dT%H:%M:%S%z}"
            )
        self._ns, self._now = ns, None
        return self.now()

    def _set_ns_unchecked(self, ns: int) -> None:
        # The backtest loop walks sorted bar times, so the check above is already proven.
        if ns != self._ns:
            self._ns, self._now = ns, None

    def advance(self, delta: timedelta | pd.Timedelta | np.timedelta64) -> datetime:
        """Move the clock forward by ``delta`` (must be >= 0)."""
        step = int(pd.Timedelta(delta).value)
        if step < 0:
            raise ClockError(f"cannot advance the simulated clock by a negative amount ({delta})")
        return self.set(self.ns + step)

    def __repr__(self) -> str:
        return f"SimulatedClock({'unset' if self._ns is None else self.now().isoformat()})"


class WallClock:
    """The real time, tz-aware UTC."""

    __slots__ = ()

    def now(self) -> datetime:
        """The current wall-clock time, tz-aware UTC."""
        return datetime.now(timezone.utc)

    def __repr__(self) -> str:
        return "WallClock()"
