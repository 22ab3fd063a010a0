"""Load and validate OHLCV bars.

Ways to get a :class:`~simbroker.bars.Bars` panel (the generator lives in
:mod:`simbroker.synthetic`):

- :func:`load_bars` reads long-form bars (one row per symbol and bar) from a CSV or
  Parquet file, a pandas DataFrame, or passes an existing ``Bars`` through, validates every
  row (:func:`validate_bars`) and pivots them to wide arrays;
- :func:`~simbroker.synthetic.synthetic_bars` generates a seeded geometric-Brownian-motion
  panel of any size, daily or intraday, with overnight gaps, jumps and wicks;
- :func:`sample_bars` loads the bundled real daily sample (AAPL, FB, GOOG, IBM, MSFT,
  2008-2013, unadjusted, public domain), shipped inside the package.

Long form has the columns ``timestamp, symbol, open, high, low, close, volume`` (names
are case-insensitive, spaces and ``<>`` ignored; ``date``/``datetime``/``time`` mean
``timestamp``, separate ``date`` and ``time`` columns are joined, ``ticker`` means
``symbol``). Optional columns: ``adj_close`` (``Adj Close``, ``adjclose``), ``dividend``
(``dividends``) and ``split`` (``stock splits``, ``split_factor``). Any other column is
reported in a :class:`~simbroker.errors.DataWarning`, never dropped unseen. Two columns
that mean the same field (``Close`` and ``close``) are refused as ambiguous. A CSV may use
``,``, ``;`` or tabs, and may lack a header when its rows are ``timestamp, open, high,
low, close, volume`` (NinjaTrader's ``yyyyMMdd HHmmss;o;h;l;c;v``).

Timestamps are read with intent: aware values keep their offset; naive ones need
``tz=`` (``tz="UTC"`` when they are UTC); ``dd/mm`` vs ``mm/dd`` needs ``dayfirst=``;
``bar_time="close"`` says a timestamp marks the bar's close (see :func:`load_bars`).

This module orchestrates; the parts are one module each: reading and normalizing the
input (:mod:`simbroker._data_read`), the validation rules (:mod:`simbroker._data_rules`),
the panel layout (:mod:`simbroker._data_panel`), what they share
(:mod:`simbroker._data_base`), column names (:mod:`simbroker._data_columns`), timestamps
(:mod:`simbroker._data_time`) and the Parquet fast path (:mod:`simbroker._data_parquet`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd

# The "X as X" imports are re-exports: simbroker.synthetic and the Parquet fast path
# (_data_parquet.py, _data_parquet_keys.py) reach these names through this module.
from simbroker._data_base import _NAT, IntervalLike
from simbroker._data_base import _NS_PER_DAY as _NS_PER_DAY
from simbroker._data_base import I64 as I64
from simbroker._data_base import TimeLike as TimeLike
from simbroker._data_base import _frozen as _frozen
from simbroker._data_base import _interval as _interval
from simbroker._data_base import _utc_ns as _utc_ns
from simbroker._data_base import _utc_timestamp as _utc_timestamp
from simbroker._data_panel import _panel_bars as _panel_bars
from simbroker._data_panel import _pivot, _subset_bars
from simbroker._data_read import (
    _PARQUET_SUFFIXES,
    REQUIRED_COLUMNS,
    ZERO_VOLUME_WARN_SHARE,
    _attach,
    _index_to_columns,
    _normalize,
    _Options,
    _read_file,
    _row_actions,
    _warn_zero_volume,
)
from simbroker._data_read import _renamed as _renamed
from simbroker._data_read import _warn_unused as _warn_unused
from simbroker._data_read import _warn_zero_counts as _warn_zero_counts
from simbroker._data_rules import _raise_problems
from simbroker._data_rules import _values_good as _values_good
from simbroker._data_time import check_tz
from simbroker.bars import Bars, infer_interval
from simbroker.errors import DataError

__all__ = [
    "REQUIRED_COLUMNS",
    "SAMPLE_DATA_PATH",
    "ZERO_VOLUME_WARN_SHARE",
    "load_bars",
    "sample_bars",
    "validate_bars",
]

_SAMPLE_RESOURCE = ("simbroker", "sample_data/sample_daily.csv")

SAMPLE_DATA_PATH: Path = Path(__file__).resolve().parent / "sample_data" / "sample_daily.csv"
"""Where :func:`sample_bars` reads the bundled sample (inside the installed package)."""

Source: TypeAlias = "str | Path | pd.DataFrame | Bars"
BarTime: TypeAlias = Literal["open", "close"]
VolumeMode: TypeAlias = Literal["reported", "unknown"]


def load_bars(
    source: Source,
    *,
    symbol: str | None = None,
    interval: IntervalLike | None = None,
    symbols: Iterable[str] | str | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    tz: str | None = None,
    bar_time: BarTime = "open",
    dayfirst: bool | None = None,
    volume: VolumeMode = "reported",
    close: Literal["close", "adj_close"] | None = None,
    columns: Mapping[str, str] | None = None,
    calendar: str | Mapping[str, str] | None = None,
    actions: Any = None,
    prices: Literal["raw", "adjusted"] | None = None,
    adjust: Literal["splits", "all"] | None = None,
) -> Bars:
    """Load long-form OHLCV bars, validate them and pivot them to a :class:`Bars` panel.

    Parameters
    ----------
    source : str, pathlib.Path, pandas.DataFrame or Bars
        A CSV file (``.csv``, ``.csv.gz``, ``.txt``; ``,``/``;``/tab separated, with a
        header, or without one when rows are ``timestamp, open, high, low, close[,
        volume]``), a Parquet file (``.parquet``, ``.pq``), a long-form DataFrame (a
        timestamp index counts as the column), or an existing ``Bars`` (returned as is,
        or subset; not validated again).
    symbol : str, optional
        The symbol of every row, for a frame or file without a ``symbol`` column (most
        single-instrument exports). With a ``symbol`` column present, every row must
        carry this symbol.
    interval : str or timedelta, optional
        The bar length as a pandas Timedelta string (``"1min"``, ``"1D"``). Default:
        inferred as the smallest spacing between bar times
        (:func:`simbroker.bars.infer_interval`). It may not exceed that spacing.
    symbols : iterable of str, optional
        Keep only these symbols (each must be present).
    start, end : datetime, str or Timestamp, optional
        Keep bars opening at ``start <= t < end``; naive values are UTC.
    tz : str, optional
        The zone naive timestamps are written in (``"America/Chicago"`` for CME
        exchange-local minutes, ``"UTC"`` when they are UTC). **Required** when the
        timestamps are naive, dates included: a naive value has no meaning without one,
        and guessing UTC put US exchange times 5 hours off. Aware values keep their own
        offset and ignore ``tz``. Local times that do not exist in ``tz`` (the
        spring-forward gap) or occur twice (the fall-back hour, unless the rows' order
        settles it) are bad rows.
    bar_time : {"open", "close"}
        What a timestamp marks. ``"open"`` (default): the bar opens then and closes
        ``interval`` later. ``"close"``: it closes then (NinjaTrader, many vendors' daily
        bars stamped 16:00); the bar opens at ``timestamp - interval``, so a strategy
        sees it at the stamped time, not one bar later. **Dates** (naive timestamps all at
        midnight) name a day: the bar is that day under either setting (opens at its
        00:00 in ``tz``, closes at the next 00:00), never the day before.
    dayfirst : bool, optional
        ``True`` for ``dd/mm/yyyy``, ``False`` for ``mm/dd/yyyy``. Dates written day and
        month first are refused without it (the message says which order the rows
        allow). ISO dates (``2024-01-02``) need nothing.
    volume : {"reported", "unknown"}
        ``"unknown"`` for sources without real volume (index levels, FX quotes): every
        bar with a close is tradable whatever its volume says
        (``Bars.volume_known`` False; results note the assumption), and the volume
        column may be absent (read as 0). With ``"reported"`` (default) a bar with zero
        volume fills nothing, and a :class:`~simbroker.errors.DataWarning` names each
        symbol with zero volume on more than half its bars.
    close : {"close", "adj_close"}, optional
        Which close the bars use when the source has an adjusted close (``Adj Close``):
        ``"close"`` the raw close (fills at traded prices); ``"adj_close"`` the adjusted
        one, with open, high and low scaled by ``adj_close / close`` (volume kept). Left
        unset with an ``Adj Close`` column present, the raw close is used and a
        ``DataWarning`` says so.
    columns : mapping, optional
        Renames before matching, e.g. ``{"timestamp_utc": "timestamp"}``.
    calendar : str or mapping, optional
        An exchange calendar (``"XNYS"``, ``"CMES"``, or ``{symbol: name}``), attached
        with :func:`simbroker.sessions.with_calendar`.
    actions, prices, adjust : optional
        Corporate actions (a :class:`simbroker.actions.CorporateActions`, a path or a
        frame) and how the prices relate to them, passed to
        :func:`simbroker.actions.attach_actions`. ``dividend`` and ``split`` columns in
        the source become actions the same way.

    Returns
    -------
    Bars
        Symbols in alphabetical order, timestamps (bar opens, UTC) the sorted union over
        the symbols, ``NaN`` where a symbol has no bar. The whole source is validated
        before subsetting.

    Raises
    ------
    DataError
        The file is missing, has an unknown suffix or no rows; a required column is
        missing (the message shows the whole header, what each column was read as, and
        a "did you mean" for near misses); timestamps are naive without ``tz``, mix
        naive and aware values, or are ambiguous day/month; or rows fail validation (see
        :func:`validate_bars`; the message shows the first 10 bad rows).
    ValueError
        An argument is malformed (an unknown ``tz``, ``bar_time`` or ``volume``).

    Warns
    -----
    DataWarning
        Columns not used, an ``Adj Close`` next to the raw close with ``close`` unset,
        a symbol with zero volume on most bars.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({
    ...     "Date": ["2024-01-02", "2024-01-03"], "Ticker": ["ABC", "ABC"],
    ...     "Open": [10.0, 10.5], "High": [11.0, 10.9], "Low": [9.8, 10.1],
    ...     "Close": [10.6, 10.2], "Volume": [1000, 1200]})
    >>> bars = load_bars(frame, tz="UTC")
    >>> bars.symbols, bars.close[:, 0].tolist(), str(pd.Timedelta(bars.interval))
    (('ABC',), [10.6, 10.2], '1 days 00:00:00')
    """
    tz = check_tz(tz)
    if bar_time not in ("open", "close"):
        raise ValueError(f"bar_time must be 'open' or 'close', got {bar_time!r}")
    if volume not in ("reported", "unknown"):
        raise ValueError(f"volume must be 'reported' or 'unknown', got {volume!r}")
    if close not in (None, "close", "adj_close"):
        raise ValueError(f"close must be 'close' or 'adj_close', got {close!r}")
    if dayfirst is not None and not isinstance(dayfirst, bool):
        raise TypeError(f"dayfirst must be True, False or None, got {dayfirst!r}")
    wanted = _symbol_list(symbols)
    if isinstance(source, Bars):
        if symbol is not None:
            raise ValueError(f"symbol={symbol!r} applies to frames and files, not to Bars")
        bars = _subset_bars(source, wanted, start, end, interval)
        if volume == "unknown" and bars.volume_known:
            bars = replace(bars, volume_known=False)
        return _attach(bars, None, calendar=calendar, actions=actions, prices=prices,
                       adjust=adjust, source="the bars", subset=wanted is not None)
    renames = dict(columns or {})
    if isinstance(source, (str, Path)) and str(source).lower().endswith(_PARQUET_SUFFIXES) \
            and Path(source).is_file():
        from simbroker._data_parquet import load_parquet

        fast = load_parquet(Path(source), renames=renames, symbol=symbol, interval=interval,
                            opts=_Options(tz=tz, bar_time=bar_time, dayfirst=dayfirst,
                                          volume=volume, close=close, columns={}),
                            symbols=wanted, start=start, end=end)
        if fast is not None:
            if volume == "unknown":
                fast = replace(fast, volume_known=False)
            return _attach(fast, None, calendar=calendar, actions=actions, prices=prices,
                           adjust=adjust, source=str(source), tz=tz,
                           subset=wanted is not None)
    if isinstance(source, (str, Path)):
        frame, header, name = *_read_file(Path(source), renames), str(source)
    elif isinstance(source, pd.DataFrame):
        frame, name = _index_to_columns(source), "DataFrame"
        header = list(frame.columns)
    else:
        raise TypeError(
            f"load_bars needs a CSV/Parquet path, a pandas DataFrame or Bars, "
            f"got {type(source).__name__}"
        )
    opts = _Options(tz=tz, bar_time=bar_time, dayfirst=dayfirst, volume=volume, close=close,
                    columns=renames if isinstance(source, pd.DataFrame) else {},
                    from_file=not isinstance(source, pd.DataFrame))
    long = _normalize(frame, symbol=symbol, source=name, header=header, opts=opts)
    _raise_problems(long, name)
    if bar_time == "close" and not long.day_stamps and len(long.times):
        step = infer_interval(long.times) if interval is None else _interval(interval)
        shift = int(step.astype(np.int64))
        long.ts = np.where(long.ts != _NAT, long.ts - shift, _NAT)
        long.times = long.times - shift
    if volume == "reported":
        _warn_zero_volume(long, name)
    bars, kept = _pivot(long, name, interval=interval, symbols=wanted, start=start, end=end)
    if volume == "unknown":
        bars = replace(bars, volume_known=False)
    return _attach(bars, _row_actions(long, kept), calendar=calendar, actions=actions,
                   prices=prices, adjust=adjust, source=name, tz=tz,
                   subset=wanted is not None)


def validate_bars(frame: pd.DataFrame | Bars, *, symbol: str | None = None,
                  tz: str | None = None, dayfirst: bool | None = None,
                  volume: VolumeMode = "reported") -> None:
    """Check long-form bars; raise :class:`~simbroker.errors.DataError` on the first 10 bad rows.

    The rules, checked with array operations over all rows at once:

    - the columns ``timestamp, symbol, open, high, low, close, volume`` are present
      (see :func:`load_bars` for accepted names; ``symbol`` may be given instead);
    - there is at least one row;
    - timestamps are all naive (then ``tz`` is required) or all aware;
    - no field is missing (``NaN``/``NaT``/empty) or unparsable;
    - ``open, high, low, close`` are finite and ``> 0``; ``volume`` is finite and ``>= 0``;
    - ``high >= max(open, close)`` and ``low <= min(open, close)`` (so ``high >= low``);
    - no two rows share a ``(symbol, timestamp)``. Rows need not be sorted.

    Parameters
    ----------
    frame : pandas.DataFrame or Bars
        Long-form bars (a ``Bars`` panel is checked through :meth:`Bars.to_frame`).
    symbol : str, optional
        The symbol of every row, for a frame without a ``symbol`` column.
    tz, dayfirst, volume : optional
        As for :func:`load_bars`.

    Raises
    ------
    DataError
        With the summary ``"N bad rows in DataFrame"`` and ``problems``: one dict per bad
        row (the first 10) with ``row`` (0-based position in ``frame``), ``symbol``,
        ``timestamp`` (ISO 8601, UTC), ``field`` and ``reason`` (with the numbers, e.g.
        ``"high 9.5 < close 10.1"``).
    """
    if isinstance(frame, Bars):
        volume = "reported" if frame.volume_known else "unknown"
        frame = frame.to_frame()
        if not len(frame):
            return  # an empty panel has no rows to be wrong
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"validate_bars needs a pandas DataFrame or Bars, got {type(frame).__name__}"
        )
    frame = _index_to_columns(frame)
    opts = _Options(tz=check_tz(tz), bar_time="open", dayfirst=dayfirst, volume=volume,
                    close="close", columns={}, report_unused=False)
    _raise_problems(_normalize(frame, symbol=symbol, source="DataFrame",
                               header=list(frame.columns), opts=opts), "DataFrame")


def sample_bars() -> Bars:
    """The bundled real daily sample: AAPL, FB, GOOG, IBM and MSFT, 2008-01-02..2013-03-01.

    Unadjusted daily OHLCV from the public-domain Quandl WIKI set (via the
    ``bokeh-sampledata`` package); FB starts at its IPO on 2012-05-18 and is ``NaN``
    before. The file ships inside the package (``simbroker/sample_data/``, read with
    :mod:`importlib.resources`, so it works from a wheel); its timestamps are written in
    UTC (``2008-01-02T00:00:00Z``): each bar labels the trading day at 00:00 UTC, and
    the interval is one day. Provenance: ``data/README.md`` in the repository.

    Returns
    -------
    Bars
        1,300 bars x 5 symbols (read once, then cached; ``Bars`` is immutable).

    Raises
    ------
    DataError
        If the sample file is missing from the installed package.

    Examples
    --------
    >>> bars = sample_bars()
    >>> bars.symbols
    ('AAPL', 'FB', 'GOOG', 'IBM', 'MSFT')
    """
    return _sample_bars_cached()


@functools.lru_cache(maxsize=1)
def _sample_bars_cached() -> Bars:
    package, name = _SAMPLE_RESOURCE
    resource = importlib.resources.files(package).joinpath(name)
    if not resource.is_file():
        raise DataError(
            f"the sample data file is missing: looked for {name} in the {package} package "
            f"({resource}); reinstall simbroker, or regenerate it with data/make_sample.py"
        )
    with importlib.resources.as_file(resource) as path:
        return load_bars(path)


def _symbol_list(symbols: Iterable[str] | str | None) -> list[str] | None:
    if symbols is None:
        return None
    if isinstance(symbols, str):
        return [symbols]
    out = list(symbols)
    for s in out:
        if not isinstance(s, str):
            raise TypeError(f"symbols must be strings, got {s!r}")
    return out
