"""``Bars``: a validated OHLCV panel held as wide numpy arrays.

Every engine in simbroker reads bars from this one shape: ``T`` timestamps (the union over
all symbols, strictly increasing) by ``N`` symbols, one float64 array per field, ``NaN``
where a symbol has no bar at a timestamp. Build it with :func:`simbroker.load_bars`
(which validates) or :func:`simbroker.synthetic_bars`.

A bar's timestamp labels its **open**; it closes ``interval`` later. A strategy sees a
bar only after its close.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from simbroker.errors import DataError

if TYPE_CHECKING:
    from simbroker.actions import CorporateActions
    from simbroker.sessions import Sessions

__all__ = ["FIELDS", "Bars"]

FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _timestamps(src: Any) -> np.ndarray:
    """``src`` as a read-only datetime64[ns] array, without a copy when it already is one
    no caller can write to (int64 nanoseconds are taken as such, by a view)."""
    if isinstance(src, np.ndarray) and src.dtype == np.int64:
        src = src.view("datetime64[ns]")
    ts = np.asarray(src, dtype="datetime64[ns]")
    if ts.ndim == 1 and not ts.flags.c_contiguous:
        ts = np.ascontiguousarray(ts)
    shared = ts is src or ts.base is not None  # else converted here: nobody else holds it
    if ts.flags.writeable and shared:  # never share memory a caller can still write to
        ts = ts.copy()
    return _readonly(ts)


# Elements per comparison in _increasing: its only temporary is this many bytes.
_CHECK_CHUNK = 2**20


def _increasing(v: np.ndarray) -> bool:
    """Whether ``v`` is strictly increasing, compared a chunk at a time (no ``np.diff``
    of the whole array: at 20M bars that was 0.4x the panel of transient int64)."""
    n = len(v)
    for lo in range(0, n - 1, _CHECK_CHUNK):
        hi = min(lo + _CHECK_CHUNK, n - 1)
        if not bool(np.all(v[lo + 1:hi + 1] > v[lo:hi])):
            return False
    return True


@dataclass(frozen=True, eq=False)
class Bars:
    """An OHLCV panel: ``T`` bar times by ``N`` symbols.

    Attributes
    ----------
    timestamps : ndarray of datetime64[ns], shape (T,)
        Bar open times in UTC (stored naive, meaning UTC), strictly increasing.
    symbols : tuple of str, length N
    open, high, low, close, volume : ndarray of float64, shape (T, N)
        ``NaN`` where the symbol has no bar at that time. Read-only.
    interval : numpy.timedelta64
        The bar length; a bar opened at ``t`` closes at ``t + interval``.
    volume_known : bool
        ``True`` (the default) when ``volume`` is what traded: a bar with zero volume
        cannot fill. ``False`` for sources that do not report volume (an index, a quote
        feed; ``load_bars(..., volume="unknown")``): every bar with a close is tradable
        whatever ``volume`` holds, and results say fills were assumed tradable.
    actions : CorporateActions or None
        Splits and dividends the engines apply (see :func:`simbroker.actions.attach_actions`);
        ``None``: none.
    sessions : Sessions or None
        Regular hours and trading days from exchange calendars (see
        :func:`simbroker.sessions.with_calendar`); ``None``: every bar is regular hours
        and a trading day is a calendar date in the broker's ``session_tz``.
    """

    timestamps: np.ndarray
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    interval: np.timedelta64
    volume_known: bool = True
    actions: CorporateActions | None = None
    sessions: Sessions | None = None
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _pd_index: pd.DatetimeIndex | None = field(init=False, repr=False, compare=False,
                                               default=None)

    def __post_init__(self) -> None:
        ts = _timestamps(self.timestamps)
        object.__setattr__(self, "timestamps", ts)
        object.__setattr__(self, "symbols", tuple(str(s) for s in self.symbols))
        shape = (len(ts), len(self.symbols))
        for name in FIELDS:
            arr = np.ascontiguousarray(getattr(self, name), dtype=np.float64)
            if arr.shape != shape:
                raise DataError(f"bars field {name!r} has shape {arr.shape}, expected {shape}")
            if arr.flags.writeable:  # never share memory a caller can still write to
                arr = arr.copy()
            object.__setattr__(self, name, _readonly(arr))
        if len(set(self.symbols)) != len(self.symbols):
            raise DataError("bars have duplicate symbols")
        if not _increasing(ts.view(np.int64)):
            raise DataError("bar timestamps must be strictly increasing")
        interval = np.timedelta64(self.interval, "ns")
        if interval <= np.timedelta64(0, "ns"):
            raise DataError(f"bar interval must be positive, got {self.interval}")
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "volume_known", bool(self.volume_known))
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(self.symbols)})
        if self.sessions is not None and (self.sessions.n_bars, self.sessions.n_symbols) != shape:
            raise DataError(f"bars sessions cover {self.sessions.n_bars} bars x "
                            f"{self.sessions.n_symbols} symbols, expected {shape}")

    # ------------------------------------------------------------------ shape
    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def n_symbols(self) -> int:
        """Number of symbols ``N``."""
        return len(self.symbols)

    @property
    def n_bars(self) -> int:
        """Number of bar times ``T``."""
        return len(self.timestamps)

    @property
    def ts_ns(self) -> np.ndarray:
        """Bar open times as int64 nanoseconds since the epoch (UTC)."""
        return self.timestamps.view(np.int64)

    @property
    def close_ns(self) -> np.ndarray:
        """Bar close times (open + interval) as int64 nanoseconds since the epoch."""
        return self.ts_ns + int(self.interval.astype(np.int64))

    @property
    def index(self) -> pd.DatetimeIndex:
        """Bar open times as a tz-aware UTC ``DatetimeIndex`` named ``timestamp``."""
        idx = self._pd_index
        if idx is None:  # built once: 5 ms for 500,000 bars, and asked for often
            idx = pd.DatetimeIndex(self.timestamps, name="timestamp").tz_localize("UTC")
            object.__setattr__(self, "_pd_index", idx)
        out: pd.DatetimeIndex = idx.view()  # a new object (its name is the caller's to set)
        return out

    def symbol_index(self, symbol: str) -> int:
        """Column of ``symbol``; ``KeyError`` naming it if absent."""
        try:
            return self._index[symbol]
        except KeyError:
            raise KeyError(f"symbol {symbol!r} is not in the bars") from None

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._index

    def field(self, name: str) -> np.ndarray:
        """The ``(T, N)`` array of one field: open, high, low, close or volume."""
        if name not in FIELDS:
            raise KeyError(f"unknown bar field {name!r}; fields are {', '.join(FIELDS)}")
        arr: np.ndarray = getattr(self, name)
        return arr

    # ------------------------------------------------------------ conversions
    def frame(self, name: str = "close") -> pd.DataFrame:
        """One field as a wide DataFrame: UTC timestamps by symbols."""
        wide: pd.DataFrame = pd.DataFrame(self.field(name), index=self.index,
                                          columns=pd.Index(self.symbols, name="symbol"))
        return wide

    def to_frame(self) -> pd.DataFrame:
        """The panel in long form: ``timestamp, symbol, open, high, low, close, volume``.

        Rows where a symbol has no bar are left out; sorted by symbol, then time.
        """
        n = self.n_symbols
        present = ~np.isnan(self.close)
        ti, si = np.nonzero(present.T)[::-1]  # symbol-major order
        cols: dict[str, object] = {
            "timestamp": pd.DatetimeIndex(self.timestamps[ti]).tz_localize("UTC"),
            "symbol": np.asarray(self.symbols, dtype=object)[si] if n else np.array([], object),
        }
        for name in FIELDS:
            cols[name] = self.field(name)[ti, si]
        long: pd.DataFrame = pd.DataFrame(cols)
        return long

    def select(
        self,
        symbols: Iterable[str] | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
    ) -> Bars:
        """A sub-panel: some symbols and/or a time window (``start <= t < end``)."""
        cols = (list(range(self.n_symbols)) if symbols is None
                else [self.symbol_index(s) for s in symbols])
        lo = 0 if start is None else int(np.searchsorted(self.timestamps, _np_utc(start)))
        hi = len(self) if end is None else int(np.searchsorted(self.timestamps, _np_utc(end)))
        rows = slice(lo, hi)
        names = tuple(self.symbols[c] for c in cols)
        return Bars(
            timestamps=self.timestamps[rows],
            symbols=names,
            interval=self.interval,
            actions=None if self.actions is None else self.actions.for_symbols(names),
            sessions=None if self.sessions is None else self.sessions.take(rows, cols),
            **{name: self.field(name)[rows][:, cols] for name in FIELDS},
            volume_known=self.volume_known,
        )

    def rows(self, start: int, stop: int) -> Bars:
        """Bars ``start <= i < stop`` by position (all symbols); arrays are views."""
        rows = slice(start, stop)
        return Bars(timestamps=self.timestamps[rows], symbols=self.symbols,
                    interval=self.interval, actions=self.actions,
                    sessions=None if self.sessions is None else self.sessions.take(rows),
                    **{name: self.field(name)[rows] for name in FIELDS},
                    volume_known=self.volume_known)

    @classmethod
    def from_arrays(
        cls,
        timestamps: Sequence[object] | np.ndarray | pd.DatetimeIndex,
        symbols: Sequence[str],
        *,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        interval: np.timedelta64 | pd.Timedelta | str | None = None,
        volume_known: bool = True,
        actions: CorporateActions | None = None,
        sessions: Sessions | None = None,
    ) -> Bars:
        """Build from wide arrays without validating prices (see :func:`simbroker.load_bars`).

        ``timestamps`` may be tz-aware (converted to UTC) or naive (taken as UTC).
        ``interval=None`` infers the bar length as the smallest spacing of the timestamps.
        ``volume_known=False`` marks a source without real volume (see the class).
        ``actions`` are attached as given (:func:`simbroker.actions.attach_actions` checks
        them against the prices).
        ``sessions`` attaches calendar sessions built for these rows and symbols.
        """
        idx = pd.DatetimeIndex(cast(Any, timestamps))
        if idx.tz is not None:
            idx = idx.tz_convert("UTC").tz_localize(None)
        ts = idx.as_unit("ns").values
        return cls(
            timestamps=ts, symbols=tuple(symbols), open=open, high=high, low=low, close=close,
            volume=volume, interval=infer_interval(ts) if interval is None
            else np.timedelta64(pd.Timedelta(interval).value, "ns"), actions=actions,
            volume_known=volume_known, sessions=sessions,
        )

    def __repr__(self) -> str:
        if len(self) == 0:
            return f"Bars(0 bars x {self.n_symbols} symbols)"
        first = pd.Timestamp(self.timestamps[0]).isoformat()
        last = pd.Timestamp(self.timestamps[-1]).isoformat()
        syms = ", ".join(self.symbols[:5]) + (", ..." if self.n_symbols > 5 else "")
        return (f"Bars({len(self)} bars x {self.n_symbols} symbols [{syms}], "
                f"{first} .. {last} UTC, interval {pd.Timedelta(self.interval)}"
                f"{'' if self.volume_known else ', volume unknown'})")


def infer_interval(ts: np.ndarray) -> np.timedelta64:
    """The smallest positive spacing of ``ts`` (one day when there are fewer than 2)."""
    if len(ts) < 2:
        return np.timedelta64(86_400_000_000_000, "ns")
    d = np.diff(np.asarray(ts, dtype="datetime64[ns]").view(np.int64))
    d = d[d > 0]
    if len(d) == 0:
        return np.timedelta64(86_400_000_000_000, "ns")
    return np.timedelta64(int(d.min()), "ns")


def _np_utc(value: datetime | str) -> np.datetime64:
    ts = pd.Timestamp(value)
    ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    out: np.datetime64 = np.datetime64(ts.as_unit("ns").value, "ns")
    return out
