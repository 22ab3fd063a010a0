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


class _BarClock(SimulatedClock):
    """A :class:`SimulatedClock` that follows a broker's bar index by itself.

    :func:`simbroker.backtest`'s loop closes an idle bar by moving only
    ``broker._t``; this clock then reads the close time of that bar
    (``close_at[broker._t]``) instead of being written on every bar. A time set
    explicitly (``set``, ``_set_ns_unchecked``, ``_ns = ...``: what ``PaperBroker.step``
    does) holds until the bar index moves again; ``step`` sets the bar's close before it
    moves the index, so both give the same time. Before :meth:`attach` it is a plain
    :class:`SimulatedClock`.
    """

    __slots__ = ("_close_at", "_now_ns", "_owner", "_set_ns", "_set_t")

    def __init__(self, start: datetime | pd.Timestamp | np.datetime64 | str | None = None):
        self._owner: object | None = None
        self._close_at: memoryview | None = None
        self._set_t: int = -1
        self._now_ns: int | None = None
        super().__init__(start)

    def attach(self, owner: object, close_at: memoryview) -> None:
        """Follow ``owner._t`` (an int attribute) over the close times ``close_at``."""
        self._set_t = owner._t  # type: ignore[attr-defined]
        self._close_at = close_at
        self._owner = owner

    def detach(self) -> None:
        """Stop following the owner, keeping the time shown now (and the owner freed by
        reference counting: it holds this clock)."""
        ns = self._ns
        self._owner = self._close_at = None
        self._set_ns = ns

    @property
    def _ns(self) -> int | None:
        owner = self._owner
        if owner is not None:
            t = owner._t  # type: ignore[attr-defined]
            if t != self._set_t:  # the bar moved since the last explicit set: its close
                close: int = self._close_at[t]  # type: ignore[index]
                return close
        return self._set_ns

    @_ns.setter
    def _ns(self, ns: int | None) -> None:
        self._set_ns = ns
        owner = self._owner
        if owner is not None:
            self._set_t = owner._t  # type: ignore[attr-defined]

    def _set_ns_unchecked(self, ns: int) -> None:
        # The property's setter without the property (step calls this twice a bar it
        # matches); now() keys its cache by the time, so _now need not be dropped.
        self._set_ns = ns
        owner = self._owner
        if owner is not None:
            self._set_t = owner._t  # type: ignore[attr-defined]

    def now(self) -> datetime:
        """The current simulated time, tz-aware UTC."""
        owner = self._owner
        # the property's reading, inline (this is the clock read of every order)
        if owner is not None and owner._t != self._set_t:  # type: ignore[attr-defined]
            ns = self._close_at[owner._t]  # type: ignore[attr-defined,index]
        else:
            ns = self._set_ns
        now = self._now
        if now is None or ns != self._now_ns:  # the cache is keyed by the time it shows
            if ns is None:
                raise ClockError("the simulated clock has not been set yet; call set() first")
            now = self._now = _EPOCH + _MICROSECOND * (ns // 1000)
            self._now_ns = ns
        return now


class WallClock:
    """The real time, tz-aware UTC."""

    __slots__ = ()

    def now(self) -> datetime:
        """The current wall-clock time, tz-aware UTC."""
        return datetime.now(timezone.utc)

    def __repr__(self) -> str:
        return "WallClock()"
