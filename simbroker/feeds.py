"""Bar feeds for the real-time runner.

A feed hands the runner one :class:`BarEvent` per completed bar time: every symbol's bar
that opened at ``timestamp`` (``NaN`` where a symbol had none), delivered only after the
bar has closed. Three kinds:

- :class:`ReplayFeed` plays historical :class:`~simbroker.Bars` on the wall clock, at real
  or accelerated speed, so the whole real-time path runs without a network.
- :class:`QueueFeed` is the base of live feeds: a network thread pushes
  per-symbol bars with :meth:`QueueFeed.push_bar`; the feed assembles them into complete
  bar times and releases each once every symbol has reported or a grace period after the
  bar's close has passed, so one silent symbol never stalls the strategy.
- Anything else that satisfies :class:`BarFeed`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

import numpy as np

from simbroker.bars import Bars
from simbroker.errors import DataError

__all__ = ["OHLCV", "BarEvent", "BarFeed", "FeedClosed", "PolledFeed", "QueueFeed",
           "ReplayFeed"]

_log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _to_ns(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError(f"bar time {when!r} is naive; feeds need tz-aware times")
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000


def _from_ns(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


class FeedClosed(Exception):
    """Raised by :meth:`BarFeed.next_bar` once a feed has no more bars (ended or closed)."""


@dataclass(frozen=True, eq=False)
class BarEvent:
    """Every symbol's bar for one bar time, delivered after the bar closed.

    Attributes
    ----------
    timestamp : datetime
        The bar's open time (tz-aware UTC), like :attr:`simbroker.Bars.timestamps`.
    interval : timedelta
        Bar length; the bar closed at ``timestamp + interval``.
    symbols : tuple of str
    open, high, low, close, volume : ndarray of float64, shape (N,)
        In ``symbols`` order; ``NaN`` where a symbol had no bar.
    """

    timestamp: datetime
    interval: timedelta
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @property
    def close_time(self) -> datetime:
        """When the bar closed: ``timestamp + interval``."""
        return self.timestamp + self.interval

    def __repr__(self) -> str:
        have = int(np.count_nonzero(~np.isnan(self.close)))
        return (f"BarEvent({self.timestamp.isoformat()}, {have}/{len(self.symbols)} "
                f"symbols)")


@runtime_checkable
class BarFeed(Protocol):
    """What the real-time runner reads bars from."""

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols every :class:`BarEvent` covers, in order."""
        ...

    @property
    def interval(self) -> timedelta:
        """The bar length."""
        ...

    def warmup(self) -> Bars | None:
        """Completed bars before the first live one (to warm up indicators), or ``None``."""
        ...

    def next_bar(self, timeout: float | None = None) -> BarEvent | None:
        """Block until the next completed bar time; ``None`` after ``timeout`` seconds.

        Raises :class:`FeedClosed` when the feed has ended or was closed.
        """
        ...

    def close(self) -> None:
        """Stop the feed; a blocked :meth:`next_bar` returns promptly. Idempotent."""
        ...


class ReplayFeed:
    """Historical bars played on the wall clock.

    Parameters
    ----------
    bars
        The panel to play.
    speed
        How many times faster than real time: bar ``i`` is released when
        ``(close_i - close_first) / speed`` seconds have passed since the first
        :meth:`next_bar` call, where ``first`` is the first bar this feed releases (after
        ``start`` and any :meth:`skip_to`: a resumed replay releases its first new bar at
        once instead of waiting out the time already played). ``math.inf`` (default)
        releases bars as fast as they are read; ``1.0`` is real time.
    start
        Index of the first bar to play; bars before it are the :meth:`warmup`.
    time_source
        The monotonic clock in seconds (``time.monotonic``); replaceable in tests.
    """

    def __init__(self, bars: Bars, *, speed: float = math.inf, start: int = 0,
                 time_source: Callable[[], float] = time.monotonic):
        if not isinstance(bars, Bars):
            raise TypeError(f"ReplayFeed needs Bars, got {type(bars).__name__}")
        speed = float(speed)
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (math.inf for as fast as possible), "
                             f"got {speed!r}")
        if not 0 <= start <= len(bars):
            raise ValueError(f"start must be in [0, {len(bars)}], got {start!r}")
        self._bars = bars
        self._speed = speed
        self._next = int(start)
        self._start = int(start)
        self._t0: float | None = None
        self._time = time_source
        self._closed = threading.Event()
        self._interval = timedelta(microseconds=int(bars.interval.astype("timedelta64[us]")
                                                    .astype(np.int64)))

    @property
    def symbols(self) -> tuple[str, ...]:
        """The panel's symbols."""
        return self._bars.symbols

    @property
    def interval(self) -> timedelta:
        """The panel's bar length."""
        return self._interval

    @property
    def position(self) -> int:
        """Index of the next bar to be released."""
        return self._next

    def warmup(self) -> Bars | None:
        """Every bar before the next one to be released (``None`` when there is none).

        That is the bars before ``start``, plus those passed over by :meth:`skip_to`, so
        a resumed run sees the same history it would have had without the restart.
        """
        if self._next == 0:
            return None
        return self._bars.rows(0, self._next)

    def skip_to(self, when: datetime) -> int:
        """Skip every bar that closed at or before ``when`` (resuming); return how many."""
        ns = _to_ns(when)
        close_ns = self._bars.close_ns
        target = int(np.searchsorted(close_ns, ns, side="right"))
        skipped = max(0, target - self._next)
        self._next = max(self._next, target)
        if skipped:  # pace from the first bar still to come, not from the skipped ones
            self._start = min(self._next, len(self._bars) - 1) if len(self._bars) else 0
            self._t0 = None
        return skipped

    def seconds_until_next(self) -> float:
        """How long :meth:`next_bar` would wait now for the next bar (0 when it is due).

        The first call starts the replay's clock, like the first :meth:`next_bar`.
        """
        if not math.isfinite(self._speed) or self._next >= len(self._bars):
            return 0.0
        now = self._time()
        if self._t0 is None:
            self._t0 = now
        first_close = int(self._bars.close_ns[self._start])
        due = self._t0 + (int(self._bars.close_ns[self._next]) - first_close) / 1e9 / self._speed
        return max(0.0, due - now)

    def next_bar(self, timeout: float | None = None) -> BarEvent | None:
        """The next bar, released on schedule (see ``speed``)."""
        if self._closed.is_set() or self._next >= len(self._bars):
            raise FeedClosed("replay finished" if not self._closed.is_set() else "closed")
        i = self._next
        if math.isfinite(self._speed):
            wait = self.seconds_until_next()
            if wait > 0:
                if timeout is not None and timeout < wait:
                    self._closed.wait(timeout)
                    if self._closed.is_set():
                        raise FeedClosed("closed")
                    return None
                if self._closed.wait(wait):
                    raise FeedClosed("closed")
        self._next = i + 1
        b = self._bars
        return BarEvent(_from_ns(int(b.ts_ns[i])), self._interval, b.symbols,
                        b.open[i], b.high[i], b.low[i], b.close[i], b.volume[i])

    def close(self) -> None:
        """Stop the replay."""
        self._closed.set()

    def __repr__(self) -> str:
        speed = "max" if math.isinf(self._speed) else f"{self._speed:g}x"
        return f"ReplayFeed({len(self._bars)} bars, next={self._next}, speed={speed})"


class QueueFeed:
    """Base of live feeds: per-symbol bars pushed from a network thread, released whole.

    A subclass (or its owner) calls :meth:`push_bar` for every completed per-symbol bar
    and :meth:`finish` when the source ends; the runner calls :meth:`next_bar`. A bar time
    is released when every symbol has reported it, or when ``grace`` has passed since its
    close (missing symbols are ``NaN``), or when a later bar time is released. Bars that
    arrive for a time already released are dropped (late data must never rewrite what a
    strategy has seen). Thread-safe.

    Parameters
    ----------
    symbols
        Symbols in the order every :class:`BarEvent` uses.
    interval
        Bar length.
    grace
        How long after a bar's close to wait for stragglers, in seconds.
    warmup_bars
        Completed bars to hand out as :meth:`warmup`.
    """

    def __init__(self, symbols: Sequence[str], interval: timedelta, *, grace: float = 2.0,
                 warmup_bars: Bars | None = None):
        syms = tuple(symbols)
        if not syms or len(set(syms)) != len(syms):
            raise ValueError(f"symbols must be non-empty and unique, got {syms!r}")
        if interval <= timedelta(0):
            raise ValueError(f"interval must be positive, got {interval!r}")
        self._symbols = syms
        self._col = {s: i for i, s in enumerate(syms)}
        self._interval = interval
        self._interval_ns = interval // timedelta(microseconds=1) * 1000
        self._grace = float(grace)
        self._warmup = warmup_bars
        self._pending: dict[int, np.ndarray] = {}  # open ns -> (5, N) OHLCV
        self._seen: dict[int, set[int]] = {}
        self._released_ns = -1
        self._cond = threading.Condition()
        self._finished = False
        self._closed = False
        self.dropped_late = 0

    @property
    def symbols(self) -> tuple[str, ...]:
        """The feed's symbols."""
        return self._symbols

    @property
    def interval(self) -> timedelta:
        """The bar length."""
        return self._interval

    def warmup(self) -> Bars | None:
        """The warm-up bars given at construction (or set with :meth:`set_warmup`)."""
        return self._warmup

    def set_warmup(self, bars: Bars | None) -> None:
        """Replace the warm-up bars (e.g. once historical data has been fetched)."""
        self._warmup = bars

    def push_bar(self, symbol: str, timestamp: datetime, open: float, high: float,
                 low: float, close: float, volume: float) -> bool:
        """Add one completed bar of ``symbol`` opened at ``timestamp``.

        Returns False when it was dropped (its bar time was already released). Raises
        :class:`~simbroker.errors.DataError` naming the symbol and field for an unknown
        symbol or an impossible bar.
        """
        col = self._col.get(symbol)
        if col is None:
            raise DataError(f"feed got a bar for unknown symbol {symbol!r}",
                            problems=[{"symbol": symbol, "field": "symbol"}])
        vals = np.array([open, high, low, close, volume], np.float64)
        names = ("open", "high", "low", "close", "volume")
        for name, v in zip(names, vals, strict=True):
            if not math.isfinite(v) or (v <= 0 and name != "volume") or v < 0:
                raise DataError(f"feed bar for {symbol} at {timestamp.isoformat()}: "
                                f"{name}={v!r} is not valid",
                                problems=[{"symbol": symbol, "field": name, "value": v}])
        if vals[1] < max(vals[0], vals[3]) or vals[2] > min(vals[0], vals[3]):
            raise DataError(f"feed bar for {symbol} at {timestamp.isoformat()}: high/low "
                            f"do not contain open/close ({vals[:4].tolist()})",
                            problems=[{"symbol": symbol, "field": "high/low"}])
        ns = _to_ns(timestamp)
        with self._cond:
            if ns <= self._released_ns:
                self.dropped_late += 1
                return False
            row = self._pending.get(ns)
            if row is None:
                row = np.full((5, len(self._symbols)), np.nan)
                self._pending[ns] = row
                self._seen[ns] = set()
            row[:, col] = vals
            self._seen[ns].add(col)
            self._cond.notify_all()
        return True

    def finish(self) -> None:
        """The source has ended: release what is pending, then raise :class:`FeedClosed`."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the feed; pending bars are discarded."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _ready(self, now_ns: int) -> int | None:
        if not self._pending:
            return None
        first = min(self._pending)
        if len(self._seen[first]) == len(self._symbols) or self._finished:
            return first
        if now_ns >= first + self._interval_ns + int(self._grace * 1e9):
            return first
        if len(self._pending) > 1:  # a later bar time has started arriving
            later = sorted(self._pending)[1]
            if len(self._seen[later]) == len(self._symbols):
                return first
        return None

    def next_bar(self, timeout: float | None = None) -> BarEvent | None:
        """The next complete bar time (see the class docstring)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise FeedClosed("closed")
                ns = self._ready(self._wall_ns())
                if ns is not None:
                    row = self._pending.pop(ns)
                    del self._seen[ns]
                    self._released_ns = ns
                    return BarEvent(_from_ns(ns), self._interval, self._symbols,
                                    row[0], row[1], row[2], row[3], row[4])
                if self._finished:
                    raise FeedClosed("feed ended")
                wait = 0.25 if self._pending else None  # re-check the grace deadline
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def _wall_ns(self) -> int:
        """Now, in ns since the epoch (a hook so tests can drive the grace period)."""
        return time.time_ns()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self._symbols)} symbols, "
                f"interval={self._interval}, pending={len(self._pending)})")


OHLCV = tuple[float, float, float, float, float]
"""One symbol's bar: open, high, low, close, volume."""


class PolledFeed(QueueFeed):
    """A live feed that reads recent bars from a broker's history endpoint every ``poll``.

    A subclass says how to :meth:`fetch` bars and what time the broker's clock reads
    (:meth:`server_now`); this class does the rest, the same way for every broker: at
    :meth:`start` it reads the history once (``warmup`` bars become :meth:`warmup`, and
    the newest bar already out marks where live bars begin), then a thread pushes each
    bar time once it has *closed* by the server's clock, whole (all symbols under one lock,
    so the runner never sees half of it) and never twice.
    """

    def __init__(self, symbols: Sequence[str], interval: timedelta, *, poll: float = 5.0,
                 grace: float = 2.0):
        super().__init__(symbols, interval, grace=grace)
        if not poll > 0:
            raise ValueError(f"poll must be > 0 seconds, got {poll!r}")
        self._poll = float(poll)
        self._last: datetime | None = None  # the newest bar time handed on
        self._live_from = _EPOCH
        self._stop_polling = threading.Event()
        self._thread: threading.Thread | None = None

    def fetch(self, since: datetime | None, n: int) -> dict[str, dict[datetime, OHLCV]]:
        """Bars per symbol keyed by their tz-aware open time, covering at least those
        opened after ``since`` and the latest ``n`` (more is fine: what was already
        pushed, or has not closed yet, is skipped)."""
        raise NotImplementedError(f"{type(self).__name__} must implement fetch()")

    def server_now(self) -> datetime:
        """The broker's clock (decides which bars have closed); this machine's by default."""
        return datetime.now(timezone.utc)

    def start(self, warmup: int = 0) -> None:
        """Read the history (``warmup`` bars for :meth:`warmup`) and start polling."""
        now = self.server_now()
        history = self.fetch(None, max(warmup, 1) + 1)  # + the bar still forming, if any
        times = sorted({t for rows in history.values() for t in rows
                        if t + self._interval <= now})
        if times:
            self._last = times[-1]
        else:  # no history at all: live bars are those that close from now on
            self._live_from = now
        if warmup > 0 and times:
            keep = times[-warmup:]
            row = {t: i for i, t in enumerate(keep)}
            arr = np.full((5, len(keep), len(self.symbols)), np.nan)
            for j, sym in enumerate(self.symbols):
                for t, bar in history.get(sym, {}).items():
                    i = row.get(t)
                    if i is not None:
                        arr[:, i, j] = bar
            self.set_warmup(Bars.from_arrays(
                [t.astimezone(timezone.utc).replace(tzinfo=None) for t in keep],
                self.symbols, open=arr[0], high=arr[1], low=arr[2], close=arr[3],
                volume=arr[4], interval=np.timedelta64(self._interval_ns, "ns")))
        self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}",
                                        daemon=True)
        self._thread.start()

    def poll_once(self) -> int:
        """Fetch bars newer than the last one pushed; push those that have closed."""
        now = self.server_now()
        # Enough bars to reach back past the last one pushed (a slow poll or a pause
        # may have let several close), plus the one still forming.
        n = 3 if self._last is None else max(3, (now - self._last) // self._interval + 2)
        bars = self.fetch(self._last, n)
        by_time: dict[datetime, list[tuple[str, OHLCV]]] = {}
        for sym, rows in bars.items():
            if sym not in self._col:
                continue
            for t, bar in rows.items():
                if t + self._interval <= now and (
                        t > self._last if self._last is not None
                        else t + self._interval > self._live_from):
                    by_time.setdefault(t, []).append((sym, bar))
        pushed = 0
        for t in sorted(by_time):
            with self._cond:  # one bar time whole: the condition's lock is re-entrant
                for sym, bar in by_time[t]:
                    pushed += self.push_bar(sym, t, *bar)
            self._last = t
        return pushed

    def _run(self) -> None:
        while not self._stop_polling.wait(self._poll):
            try:
                self.poll_once()
            except Exception as exc:  # a network hiccup must not end the feed
                _log.warning("%r: reading bars failed: %s", self, exc)

    def close(self) -> None:
        """Stop polling and close the feed."""
        self._stop_polling.set()
        super().close()
