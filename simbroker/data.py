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
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from simbroker._data_columns import (
    ColumnMap,
    canonical,
    describe_header,
    map_columns,
    rename_hint,
)
from simbroker._data_time import NAT, ParsedTimes, check_tz, parse_times
from simbroker.bars import FIELDS, Bars, infer_interval
from simbroker.errors import ConfigError, DataError, DataWarning

__all__ = [
    "REQUIRED_COLUMNS",
    "SAMPLE_DATA_PATH",
    "ZERO_VOLUME_WARN_SHARE",
    "load_bars",
    "sample_bars",
    "validate_bars",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", *FIELDS)
"""The long-form columns :func:`load_bars` needs, in their canonical names."""

_SAMPLE_RESOURCE = ("simbroker", "sample_data/sample_daily.csv")
SAMPLE_DATA_PATH: Path = Path(__file__).resolve().parent / "sample_data" / "sample_daily.csv"
"""Where :func:`sample_bars` reads the bundled sample (inside the installed package)."""

ZERO_VOLUME_WARN_SHARE = 0.5
"""A symbol with zero volume on more than this share of its bars gets a DataWarning."""

TimeLike: TypeAlias = "datetime | pd.Timestamp | np.datetime64 | str"
IntervalLike: TypeAlias = "str | timedelta | pd.Timedelta | np.timedelta64"
Source: TypeAlias = "str | Path | pd.DataFrame | Bars"
BarTime: TypeAlias = Literal["open", "close"]
VolumeMode: TypeAlias = Literal["reported", "unknown"]

_CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".txt")
_PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
_MAX_PROBLEMS = 10
_NAT = NAT
_NS_PER_DAY = 86_400_000_000_000
_HEADERLESS: dict[int, tuple[str, ...]] = {
    5: ("timestamp", "open", "high", "low", "close"),
    6: ("timestamp", "open", "high", "low", "close", "volume"),
}

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


# ---------------------------------------------------------------------------- loading
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


# ------------------------------------------------------------------ normalizing input
@dataclass
class _Options:
    tz: str | None
    bar_time: str
    dayfirst: bool | None
    volume: str
    close: str | None
    columns: dict[str, str]
    report_unused: bool = True
    from_file: bool = False  # a file with a header and no rows is an error (a frame: empty)


@dataclass
class _Long:
    """Long-form bars as parsed arrays, one entry per input row."""

    ts: I64  # ns since epoch, naive UTC; _NAT where missing or unparsable
    codes: I64  # index into symbols; -1 where missing
    symbols: tuple[str, ...]  # sorted
    values: dict[str, F64]
    unparsed: dict[str, tuple[BoolArray, pd.Series]]  # field -> (rows, raw values)
    tcodes: I64  # index into times
    times: I64  # the sorted unique values of ts
    time_reasons: dict[int, str] = field(default_factory=dict)  # bad timestamp rows
    day_stamps: bool = False  # naive dates: each names a whole day
    extras: dict[str, F64] = field(default_factory=dict)  # dividend, split per row

    def __len__(self) -> int:
        return len(self.ts)


def _read_file(path: Path, renames: dict[str, str]) -> tuple[pd.DataFrame, list[Any]]:
    """The frame (only the columns the loader reads, renamed) and the whole header,
    renamed."""
    name = path.name.lower()
    is_csv = name.endswith(_CSV_SUFFIXES)
    if not is_csv and not name.endswith(_PARQUET_SUFFIXES):
        raise DataError(
            f"cannot load bars from {path}: unknown file type; use a CSV "
            f"({', '.join(_CSV_SUFFIXES)}) or Parquet ({', '.join(_PARQUET_SUFFIXES)}) file"
        )
    if not path.is_file():
        raise DataError(f"bar file not found: {path}")
    try:
        if is_csv:
            return _read_csv(path, renames)
        import pyarrow.parquet as pq

        written = list(pq.read_schema(path).names)
        header = _renamed(written, renames, str(path))
        mapping = map_columns(header)
        _refuse_clashes(mapping.clashes, str(path))
        keep = [written[header.index(c)] for c in mapping.read_labels()] \
            if "timestamp" in mapping.fields or mapping.date_time else None
        frame: pd.DataFrame = pq.read_table(path, columns=keep).to_pandas()
        frame.columns = pd.Index(_renamed(list(frame.columns), renames, str(path), strict=False))
        return frame, header
    except DataError:
        raise
    except Exception as exc:  # a parser's own error, shown with the file's name
        raise DataError(f"cannot read bars from {path}: {exc}") from exc


def _first_line(path: Path) -> str:
    import gzip

    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        return str(fh.readline()).lstrip("\ufeff").rstrip("\r\n")


def _delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _headerless_names(cells: list[str]) -> tuple[str, ...] | None:
    """Field names for a file whose first line is already data, or None if it is a header.

    A header never starts with a digit; a data row starts with its timestamp, and the
    rest are numbers (one symbol allowed second).
    """
    cells = [c.strip().strip('"') for c in cells]
    if not cells or not re.match(r"^\d", cells[0]) or (_is_number(cells[0]) and len(cells[0]) < 8):
        return None
    rest = cells[1:]
    if len(cells) == 7 and not _is_number(rest[0]):
        return ("timestamp", "symbol", "open", "high", "low", "close", "volume")
    if len(cells) == 7 and re.fullmatch(r"\d{1,2}:?\d{2}(?::?\d{2})?", rest[0]):
        return ("date", "time", "open", "high", "low", "close", "volume")
    if not all(_is_number(c) for c in rest):
        return None
    return _HEADERLESS.get(len(cells), ())


def _read_csv(path: Path, renames: dict[str, str]) -> tuple[pd.DataFrame, list[Any]]:
    """Read the needed columns with pyarrow's parser (fast, exact floats, native ISO times).

    Falls back to pandas' parser when pyarrow refuses a value, so that validation can
    point at the row.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    line = _first_line(path)
    sep = _delimiter(line)
    import csv

    cells = next(csv.reader([line], delimiter=sep)) if line else []
    names = _headerless_names(cells)
    if names == ():
        raise DataError(
            f"{path} has no header row and {len(cells)} fields a row ({line[:80]!r}); add a "
            f"header naming the columns (timestamp, symbol, open, high, low, close, volume)"
        )
    # The header as written: pandas would rename a second "close" to "close.1" and the
    # column would be dropped unseen.
    written: list[Any] = list(names) if names else list(cells)
    header = _renamed(written, renames, str(path))
    mapping = map_columns(header)
    _refuse_clashes(mapping.clashes, str(path))
    original = {c: written[header.index(c)] for c in mapping.read_labels()}
    keep = [str(original[c]) for c in mapping.read_labels()]
    text_cols = [str(original[c]) for c in (mapping.fields.get("symbol"),
                                            *(mapping.date_time or ())) if c is not None]
    if names:  # times like "20240102 093000" stay text for the timestamp parser
        text_cols.append(str(original.get(mapping.fields.get("timestamp"), names[0])))
    read = pacsv.ReadOptions(column_names=list(names) if names else None)
    parse = pacsv.ParseOptions(delimiter=sep)
    frame: pd.DataFrame
    try:
        table = pacsv.read_csv(path, read_options=read, parse_options=parse,
                               convert_options=pacsv.ConvertOptions(
            include_columns=keep,
            column_types={c: pa.string() for c in text_cols} or None,
        ))
    except pa.ArrowInvalid:
        frame = pd.read_csv(path, usecols=keep, sep=sep, header=None if names else "infer",
                            names=list(names) if names else None,
                            dtype={c: "str" for c in text_cols} or None)
        frame.columns = pd.Index(_renamed(list(frame.columns), renames, str(path),
                                          strict=False))
        return frame, header
    table = table.rename_columns(_renamed(list(table.column_names), renames, str(path),
                                          strict=False))
    ts = mapping.fields.get("timestamp")
    if ts is not None and pa.types.is_date(table.schema.field(str(ts)).type):
        i = table.schema.get_field_index(str(ts))
        table = table.set_column(i, str(ts), table.column(i).cast(pa.timestamp("s")))
    frame = table.to_pandas()
    return frame, header


def _refuse_clashes(clashes: list[str], source: str) -> None:
    """Two columns meaning the same field (``Close`` and ``close``): refuse, never pick one."""
    if clashes:
        raise DataError(f"ambiguous columns in {source}: {'; '.join(clashes)}")


def _renamed(labels: list[Any], renames: dict[str, str], source: str, *,
             strict: bool = True) -> list[Any]:
    """``labels`` with ``columns=`` applied; ``strict``: each renamed column must exist."""
    if not renames:
        return labels
    if not strict:
        return [renames.get(str(c), c) for c in labels]
    have = {str(c) for c in labels}
    absent = [k for k in renames if k not in have]
    if absent:
        raise DataError(f"columns= renames {', '.join(map(repr, absent))}, but {source} has "
                        f"no such column (its columns: {', '.join(map(str, labels[:30]))})")
    return [renames.get(str(c), c) for c in labels]


def _normalize(frame: pd.DataFrame, *, symbol: str | None, source: str, header: list[Any],
               opts: _Options) -> _Long:
    if symbol is not None and (not isinstance(symbol, str) or not symbol):
        raise TypeError(f"symbol must be a non-empty str, got {symbol!r}")
    frame = _index_to_columns(frame)  # a Parquet file's pandas index comes back as one
    if "timestamp" in map_columns(frame.columns).fields and not any(
            canonical(c) == "timestamp" for c in header):
        header = list(frame.columns)
    written = list(header)
    if opts.columns:
        frame = frame.set_axis(_renamed(list(frame.columns), opts.columns, source), axis=1)
        header = _renamed(header, opts.columns, source)
    mapping = map_columns(frame.columns)
    _refuse_clashes(mapping.clashes, source)
    full = map_columns(header)
    if mapping.date_time is not None:
        frame = _join_date_time(frame, mapping)
    optional = {"symbol"} if symbol is not None else set()
    if opts.volume == "unknown":
        optional.add("volume")
    missing = [c for c in REQUIRED_COLUMNS if c not in mapping.fields and c not in optional]
    if missing:
        hint = (" (a single-symbol file: pass --symbol XYZ on the command line, "
                "symbol='XYZ' in Python)") if "symbol" in missing else ""
        if "volume" in missing:
            hint += (" (a source without volume, such as an index: volume='unknown', "
                     "--volume unknown on the command line)")
        raise DataError(
            f"{source} is missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}{hint}{rename_hint(header, missing)}; its header: "
            f"{describe_header(header, full)}"
        )
    if not len(frame) and opts.from_file:
        raise DataError(f"{source} has no rows (a header alone): nothing to load; its "
                        f"header: {describe_header(written, full)}")
    if opts.report_unused and full.unused:
        _warn_unused(full.unused, source, stacklevel=4)
    parsed = parse_times(frame[mapping.fields["timestamp"]], source, tz=opts.tz,
                         dayfirst=opts.dayfirst)
    if "symbol" in mapping.fields:
        codes, symbols = _symbol_codes(frame[mapping.fields["symbol"]])
        if symbol is not None and symbols not in ((), (symbol,)):
            others = [s for s in symbols if s != symbol][:5]
            raise DataError(
                f"symbol={symbol!r} was given but {source} has other symbols in its "
                f"'symbol' column: {', '.join(others)}; use symbols=[...] to select"
            )
    else:
        codes = np.zeros(len(frame), dtype=np.int64)
        symbols = (str(symbol),)
    unparsed: dict[str, tuple[BoolArray, pd.Series]] = {}
    values: dict[str, F64] = {}
    for name in FIELDS:
        if name not in mapping.fields:  # volume with volume="unknown"
            values[name] = np.zeros(len(frame))
            continue
        col = frame[mapping.fields[name]]
        values[name], bad = _numeric(col)
        if bad is not None:
            unparsed[name] = (bad, col)
    _choose_close(frame, mapping, values, unparsed, opts, source)
    extras: dict[str, F64] = {}
    for name in ("dividend", "split"):
        if name in mapping.fields:
            col = frame[mapping.fields[name]]
            extras[name], bad = _numeric(col)
            if bad is not None:
                unparsed[name] = (bad, col)
    tcodes, times = _timestamp_codes(parsed.ns)
    return _Long(ts=parsed.ns, codes=codes, symbols=symbols, values=values, unparsed=unparsed,
                 tcodes=tcodes, times=times, time_reasons=_time_reasons(parsed),
                 day_stamps=parsed.day_stamps, extras=extras)


def _warn_unused(unused: list[Any], source: str, *, stacklevel: int) -> None:
    warnings.warn(DataWarning(
        f"{source}: column{'s' if len(unused) > 1 else ''} "
        f"{', '.join(repr(str(c)) for c in unused)} not used (simbroker reads "
        f"timestamp, symbol, open, high, low, close, volume, adj_close, dividend, "
        f"split; rename one with columns={{...}} to use it)"), stacklevel=stacklevel)


def _time_reasons(parsed: ParsedTimes) -> dict[int, str]:
    return dict(parsed.reasons) if parsed.bad is not None else {}


def _join_date_time(frame: pd.DataFrame, mapping: ColumnMap) -> pd.DataFrame:
    """``Date`` + ``Time`` columns (``20240102``, ``093000`` or ``2024-01-02``, ``09:30``)
    as one ``timestamp`` text column."""
    assert mapping.date_time is not None
    d_label, t_label = mapping.date_time
    day = _as_text(frame[d_label], digits=8)
    tod = _as_text(frame[t_label], digits=6)
    day = day.str.replace(r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3", regex=True)
    tod = tod.str.replace(r"^(\d{2})(\d{2})(\d{2})$", r"\1:\2:\3", regex=True)
    tod = tod.str.replace(r"^(\d{2})(\d{2})$", r"\1:\2", regex=True)
    # Element by element on plain objects: the two columns may hold different string
    # dtypes (pandas' str and object), which refuse to be added as Series.
    joined = pd.Series([None if d is None or t is None or d != d or t != t else f"{d} {t}"
                        for d, t in zip(day.astype(object), tod.astype(object), strict=True)],
                       index=frame.index, dtype=object)
    out = frame.drop(columns=[d_label, t_label])
    out.insert(0, "timestamp", joined.astype(object))
    mapping.fields["timestamp"] = "timestamp"
    mapping.date_time = None
    joined_frame: pd.DataFrame = out
    return joined_frame


def _as_text(col: pd.Series, *, digits: int) -> pd.Series:
    out: pd.Series
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        out = col.dt.strftime("%Y-%m-%d").astype(object)
        return out
    if pd.api.types.is_numeric_dtype(col.dtype):
        return pd.Series([f"{int(v):0{digits}d}" if math.isfinite(v) else None
                          for v in col.astype(np.float64)], index=col.index, dtype=object)
    text = col.map(lambda v: None if v is None or v != v else str(v).strip())
    short = text.str.fullmatch(r"\d+") & (text.str.len() < digits)
    out = text.where(~short.fillna(False).astype(bool), text.str.zfill(digits))
    return out


def _choose_close(frame: pd.DataFrame, mapping: ColumnMap, values: dict[str, F64],
                  unparsed: dict[str, tuple[BoolArray, pd.Series]], opts: _Options,
                  source: str) -> None:
    """Raw or adjusted close (``close=``), with open/high/low scaled to match."""
    label = mapping.fields.get("adj_close")
    if opts.close == "adj_close":
        if label is None:
            raise DataError(f"close='adj_close' but {source} has no adjusted close column "
                            f"(Adj Close, adj_close or adjclose)")
        adj, bad = _numeric(frame[label])
        if bad is not None:
            unparsed["close"] = (bad, frame[label])
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = adj / values["close"]
        for name in ("open", "high", "low"):
            values[name] = values[name] * factor
        values["close"] = adj
    elif label is not None and opts.close is None and opts.report_unused:
        warnings.warn(DataWarning(
            f"{source} has an adjusted close ({label!r}); the bars use the raw close, so "
            f"fills are at traded prices. Pass close='adj_close' (--close adj_close) for "
            f"adjusted prices, or close='close' (--close close) to say raw is meant"),
            stacklevel=4)


def _warn_zero_volume(long: _Long, source: str) -> None:
    """A DataWarning per symbol with zero volume on most of its bars."""
    n_sym = len(long.symbols)
    if not n_sym or not len(long):
        return
    ok = long.codes >= 0
    rows = np.bincount(long.codes[ok], minlength=n_sym)
    zero = np.bincount(long.codes[ok], weights=(long.values["volume"][ok] == 0),
                       minlength=n_sym)
    _warn_zero_counts(long.symbols, rows, zero, source, stacklevel=4)


def _warn_zero_counts(symbols: tuple[str, ...], rows: npt.NDArray[Any],
                      zero: npt.NDArray[Any], source: str, *, stacklevel: int) -> None:
    """The zero-volume warning from per-symbol bar and zero-volume counts."""
    flagged = np.flatnonzero(zero > ZERO_VOLUME_WARN_SHARE * np.maximum(rows, 1))
    if len(flagged):
        named = ", ".join(f"{symbols[i]} ({int(zero[i])} of {int(rows[i])} bars)"
                          for i in flagged[:10])
        warnings.warn(DataWarning(
            f"{source}: zero volume on most bars of {named}; such bars fill nothing. If the "
            f"source does not report volume (an index, quotes), load with "
            f"volume='unknown' (--volume unknown) to trade every bar with a close"),
            stacklevel=stacklevel)


def _row_actions(long: _Long, kept: BoolArray | None) -> dict[str, Any] | None:
    """The dividend/split columns as per-row arrays for CorporateActions.from_rows."""
    if not long.extras:
        return None
    keep = np.ones(len(long), dtype=bool) if kept is None else kept
    names = np.asarray(long.symbols, dtype=object)
    return {"symbols": names[long.codes[keep]], "timestamps_ns": long.ts[keep],
            **{k: v[keep] for k, v in long.extras.items()}}


def _attach(bars: Bars, rows: dict[str, Any] | None, *, calendar: Any, actions: Any,
            prices: Any, adjust: Any, source: str, tz: str | None = None,
            subset: bool = False) -> Bars:
    """Hand corporate actions and a calendar to their modules (imported only when used).

    The source's ``dividend``/``split`` rows become actions dated in the source's zone
    (``tz``, else UTC), joined with ``actions=`` when both are given (an action given
    twice is refused). With ``symbols=`` chosen, actions of the other symbols are dropped.
    """
    if rows is not None or actions is not None or prices is not None or adjust is not None:
        module = _optional_module("simbroker.actions", "corporate actions (actions=, "
                                  "prices=, adjust=, dividend/split columns)")
        table = module.CorporateActions
        if isinstance(actions, (str, Path)):
            actions = table.read(actions, tz=tz or "UTC")
        elif isinstance(actions, pd.DataFrame):
            actions = table.from_frame(actions, tz=tz or "UTC")
        if rows is not None:
            zone = actions.tz if actions is not None else (tz or "UTC")
            from_columns = table.from_rows(rows.pop("symbols"), rows.pop("timestamps_ns"),
                                           tz=zone, **rows)
            actions = from_columns if actions is None else table.concat([actions,
                                                                         from_columns])
        bars = module.attach_actions(bars, actions, prices=prices, adjust=adjust,
                                     unknown_symbols="drop" if subset else "raise")
    if calendar is not None:
        module = _optional_module("simbroker.sessions", "exchange calendars (calendar=)")
        bars = module.with_calendar(bars, calendar)
    return bars


def _optional_module(name: str, what: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if getattr(exc, "name", None) != name:
            raise
        raise ConfigError(f"this simbroker has no {what}: module {name} is missing") from None


def _index_to_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Move index levels that hold timestamps or symbols into columns."""
    have = {canonical(c) for c in frame.columns}
    wanted = [n for n in frame.index.names if n is not None
              and canonical(n) in ("timestamp", "symbol") and canonical(n) not in have]
    out: pd.DataFrame
    if wanted:
        out = frame.reset_index(level=wanted)
        return out
    if "timestamp" not in have and isinstance(frame.index, pd.DatetimeIndex):
        out = frame.copy(deep=False)
        out.insert(0, "timestamp", frame.index)
        out = out.reset_index(drop=True)
        return out
    return frame


def _symbol_codes(col: pd.Series) -> tuple[I64, tuple[str, ...]]:
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    names = np.array([str(u).strip() for u in uniques], dtype=object)
    if len(names) == 0:
        return np.full(len(col), -1, dtype=np.int64), ()
    symbols, inverse = np.unique(names, return_inverse=True)
    remap = np.asarray(inverse, dtype=np.int64).ravel()
    if symbols[0] == "":  # blank symbols count as missing
        remap -= 1
        symbols = symbols[1:]
    out = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1).astype(np.int64, copy=False)
    return out, tuple(str(s) for s in symbols)


def _numeric(col: pd.Series) -> tuple[F64, BoolArray | None]:
    if pd.api.types.is_numeric_dtype(col.dtype):
        if col.dtype == np.float64:
            return np.asarray(col.to_numpy(), dtype=np.float64), None
        return np.asarray(col.to_numpy(dtype=np.float64, na_value=np.nan)), None
    coerced = pd.to_numeric(col, errors="coerce")
    values = np.asarray(coerced.to_numpy(dtype=np.float64, na_value=np.nan))
    bad = np.isnan(values) & col.notna().to_numpy(dtype=bool)
    return values, (bad if bad.any() else None)


# ------------------------------------------------------------------------ validation
Reason = Callable[[int], str]


def _all_good(long: _Long) -> bool:
    """The fast path: True when no rule fails (one pass of a few comparisons per field)."""
    if long.unparsed or long.time_reasons or (len(long) and int(long.codes.min()) < 0):
        return False
    if bool((long.ts == _NAT).any()):
        return False
    v = long.values
    return _values_good(v["open"], v["high"], v["low"], v["close"], v["volume"]) \
        and not _duplicates(long).any()


def _values_good(o: F64, h: F64, low: F64, c: F64, volume: F64) -> bool:
    """No price or volume rule fails on these rows (NaN fails every comparison)."""
    good = low > 0
    good &= h < np.inf
    good &= volume >= 0
    good &= volume < np.inf
    for x in (o, c):
        good &= h >= x
        good &= low <= x
    return bool(good.all())


def _duplicates(long: _Long) -> BoolArray:
    """Rows repeating an earlier row's (symbol, timestamp)."""
    n_sym = max(len(long.symbols), 1)
    key = long.tcodes * n_sym + long.codes
    ok = (long.codes >= 0) & (long.ts != _NAT)
    dup = np.zeros(len(key), dtype=bool)
    size = len(long.times) * n_sym
    if size <= 4 * len(key) + (1 << 20):  # dense enough to count cells
        counts = np.bincount(key[ok], minlength=size)
        if counts.max(initial=0) <= 1:
            return dup
    rows = np.flatnonzero(ok)
    order = rows[np.argsort(key[rows], kind="stable")]
    k = key[order]
    dup[order[1:][k[1:] == k[:-1]]] = True
    return dup


def _rules(long: _Long) -> list[tuple[BoolArray, str, Reason]]:
    """(bad-row mask, field, reason of row i) per rule, in the order rows report them."""
    v = long.values
    rules: list[tuple[BoolArray, str, Reason]] = [
        (long.codes < 0, "symbol", lambda i: "missing symbol"),
    ]
    if long.time_reasons:
        bad = np.zeros(len(long), dtype=bool)
        bad[list(long.time_reasons)] = True
        rules.append((bad, "timestamp", lambda i: long.time_reasons[i]))
    rules.append((long.ts == _NAT, "timestamp", lambda i: "missing timestamp"))
    for name in FIELDS:
        x = v[name]
        if name in long.unparsed:
            bad, raw = long.unparsed[name]
            rules.append((bad, name, _reason_not_number(name, raw)))
        rules.append((np.isnan(x), name, _reason_missing(name)))
        rules.append((np.isinf(x), name, _reason_value(name, x, "is not finite")))
        if name == "volume":
            rules.append((x < 0, name, _reason_value(name, x, "< 0")))
        else:
            rules.append((x <= 0, name, _reason_value(name, x, "<= 0")))
    for name, x in long.extras.items():  # dividend, split: numbers where given
        if name in long.unparsed:
            bad, raw = long.unparsed[name]
            rules.append((bad, name, _reason_not_number(name, raw)))
        rules.append((np.isinf(x), name, _reason_value(name, x, "is not finite")))
        rules.append((x < 0, name, _reason_value(name, x, "< 0")))
    o, h, low, c = v["open"], v["high"], v["low"], v["close"]
    rules += [
        (h < o, "high", _reason_pair("high", h, "<", "open", o)),
        (h < c, "high", _reason_pair("high", h, "<", "close", c)),
        (low > o, "low", _reason_pair("low", low, ">", "open", o)),
        (low > c, "low", _reason_pair("low", low, ">", "close", c)),
    ]

    def dup_reason(i: int) -> str:
        same = (long.codes == long.codes[i]) & (long.ts == long.ts[i])
        first = int(np.flatnonzero(same)[0])
        return f"duplicate bar: row {first} has the same symbol and timestamp"

    rules.append((_duplicates(long), "timestamp", dup_reason))
    return rules


def _reason_not_number(name: str, raw: pd.Series) -> Reason:
    return lambda i: f"{name} {raw.iloc[i]!r} is not a number"


def _reason_missing(name: str) -> Reason:
    return lambda i: f"missing {name}"


def _reason_value(name: str, x: F64, what: str) -> Reason:
    return lambda i: f"{name} {_num(x[i])} {what}"


def _reason_pair(a: str, xa: F64, op: str, b: str, xb: F64) -> Reason:
    return lambda i: f"{a} {_num(xa[i])} {op} {b} {_num(xb[i])}"


def _num(x: float) -> str:
    x = float(x)
    if math.isfinite(x) and x == math.floor(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _iso(ns: int) -> str | None:
    if ns == _NAT:
        return None
    iso: str = pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()
    return iso


def _timestamp_codes(ts: I64) -> tuple[I64, I64]:
    """Codes into the sorted unique timestamps, and those timestamps."""
    codes, uniques = pd.factorize(ts, sort=True)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=np.int64)


def _raise_problems(long: _Long, source: str) -> None:
    if _all_good(long):
        return
    rules = _rules(long)
    bad_any = np.zeros(len(long), dtype=bool)
    for mask, _, _ in rules:
        bad_any |= mask
    n_bad = int(np.count_nonzero(bad_any))
    if n_bad == 0:
        return
    problems: list[dict[str, Any]] = []
    for row in np.flatnonzero(bad_any)[:_MAX_PROBLEMS]:
        i = int(row)
        mask, field, reason = next(r for r in rules if r[0][i])
        code = int(long.codes[i])
        problems.append({
            "row": i,
            "symbol": long.symbols[code] if code >= 0 else None,
            "timestamp": _iso(int(long.ts[i])),
            "field": field,
            "reason": reason(i),
        })
    shown = f" (first {_MAX_PROBLEMS} shown)" if n_bad > _MAX_PROBLEMS else ""
    raise DataError(
        f"{n_bad} bad row{'s' if n_bad != 1 else ''} in {source}{shown}", problems=problems
    )


# ---------------------------------------------------------------------------- pivoting
def _pivot(
    long: _Long,
    source: str,
    *,
    interval: IntervalLike | None,
    symbols: list[str] | None,
    start: TimeLike | None,
    end: TimeLike | None,
) -> tuple[Bars, BoolArray | None]:
    """The wide panel, and the input rows it kept (``None``: all of them)."""
    layout = _layout(long, source, interval=interval, symbols=symbols, start=start, end=end)
    wide = layout.empty()
    for name in FIELDS:
        layout.scatter(wide[name], long.values[name])
    return layout.bars(wide), layout.keep


@dataclass
class _Layout:
    """Where each kept input row lands in the (T, N) panel: one scatter per field."""

    times: I64
    names: tuple[str, ...]
    step: np.timedelta64
    flat: I64  # cell of each kept row, row-major in (T, N)
    keep: BoolArray | None  # the input rows kept (None: all)

    @property
    def dense(self) -> bool:
        """Every cell gets a bar (rows are unique cells): no NaN fill needed."""
        return len(self.flat) == len(self.times) * len(self.names)

    def empty(self) -> dict[str, F64]:
        """One preallocated (T, N) array per field (``NaN`` where no bar lands)."""
        size = len(self.times) * len(self.names)
        return {name: np.empty(size) if self.dense else np.full(size, np.nan)
                for name in FIELDS}

    def scatter(self, out: F64, values: F64, rows: slice = slice(None)) -> None:
        """Write input rows ``rows`` of one field into ``out`` (flat (T*N,))."""
        if self.keep is None:
            out[self.flat[rows]] = values
            return
        keep = self.keep[rows]
        start = int(np.count_nonzero(self.keep[:rows.start])) if rows.start else 0
        n = int(np.count_nonzero(keep))
        out[self.flat[start:start + n]] = values[keep]

    def bars(self, wide: dict[str, F64]) -> Bars:
        """The panel over the filled arrays (taken read-only, without a copy)."""
        return _panel_bars(self.times, self.names, self.step, wide)


def _panel_bars(times: I64, names: tuple[str, ...], step: np.timedelta64,
                wide: dict[str, F64]) -> Bars:
    """``Bars`` over filled flat (T*N,) arrays, taken read-only without a copy."""
    shape = (len(times), len(names))
    a = {name: _frozen(wide[name].reshape(shape)) for name in FIELDS}
    return Bars(timestamps=times.view("datetime64[ns]"), symbols=names, interval=step,
                open=a["open"], high=a["high"], low=a["low"], close=a["close"],
                volume=a["volume"])


def _layout(
    long: _Long,
    source: str,
    *,
    interval: IntervalLike | None,
    symbols: list[str] | None,
    start: TimeLike | None,
    end: TimeLike | None,
) -> _Layout:
    """The panel's times, symbols and interval, and each kept row's cell."""
    tcodes, times = long.tcodes, long.times
    spacing = infer_interval(times)
    step = spacing if interval is None else _interval(interval)
    if interval is not None and len(times) > 1 and step > spacing:
        raise DataError(
            f"interval {pd.Timedelta(step)} is longer than the smallest spacing between "
            f"bars in {source} ({pd.Timedelta(spacing)}): bars would overlap"
        )
    codes, names = long.codes, long.symbols
    keep: BoolArray | None = None
    if symbols is not None:
        have = set(names)
        absent = [s for s in symbols if s not in have]
        if absent:
            raise DataError(
                f"symbols not in {source}: {', '.join(absent)} "
                f"(it has {', '.join(names[:20])}{', ...' if len(names) > 20 else ''})"
            )
        chosen = np.array(sorted(set(symbols)), dtype=object)
        column = np.searchsorted(np.array(names, dtype=object), chosen)
        remap = np.full(len(names), -1, dtype=np.int64)
        remap[column] = np.arange(len(chosen), dtype=np.int64)
        codes = remap[codes]
        names = tuple(str(s) for s in chosen)
        keep = codes >= 0
    if start is not None or end is not None:
        lo = _utc_ns(start) if start is not None else None
        hi = _utc_ns(end) if end is not None else None
        window = np.ones(len(long), dtype=bool)
        if lo is not None:
            window &= long.ts >= lo
        if hi is not None:
            window &= long.ts < hi
        keep = window if keep is None else keep & window
    if keep is not None:
        codes, tcodes = codes[keep], tcodes[keep]
        used = np.bincount(tcodes, minlength=len(times)) > 0
        times = times[used]
        tcodes = (np.cumsum(used) - 1)[tcodes]
    flat = tcodes * len(names)
    flat += codes
    return _Layout(times=times, names=names, step=step, flat=flat, keep=keep)


def _subset_bars(
    bars: Bars,
    symbols: list[str] | None,
    start: TimeLike | None,
    end: TimeLike | None,
    interval: IntervalLike | None,
) -> Bars:
    if symbols is not None:
        absent = [s for s in symbols if s not in bars]
        if absent:
            raise DataError(f"symbols not in the bars: {', '.join(absent)}")
    if symbols is None and start is None and end is None and interval is None:
        return bars
    wanted = None if symbols is None else set(symbols)
    cols = None if wanted is None else [s for s in bars.symbols if s in wanted]
    out = bars.select(cols, _maybe_utc(start), _maybe_utc(end))
    if cols is not None:
        rows = ~np.isnan(out.close).all(axis=1)
        if not rows.all():
            cut: dict[str, Any] = {f: _frozen(out.field(f)[rows]) for f in FIELDS}
            if out.sessions is not None:  # per-bar: cut the same rows
                cut["sessions"] = out.sessions.take(cast(Any, rows))
            out = replace(out, timestamps=out.timestamps[rows], **cut)
    if interval is not None:
        out = replace(out, interval=_interval(interval))
    return out


# ----------------------------------------------------------------------------- helpers
def _frozen(a: F64) -> F64:
    """Mark a fresh array read-only so ``Bars`` takes it without copying."""
    a.setflags(write=False)
    return a


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


def _interval(value: IntervalLike) -> np.timedelta64:
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"interval={value!r} is not a pandas Timedelta string such as '1min' or '1D'"
        ) from None
    if pd.isna(td) or td.value <= 0:
        raise ValueError(f"interval={value!r} must be a positive duration")
    return np.timedelta64(int(td.value), "ns")


def _utc_timestamp(value: TimeLike) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a timestamp") from None
    if pd.isna(ts):
        raise ValueError(f"{value!r} is not a timestamp")
    out: pd.Timestamp = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    return out


def _utc_ns(value: TimeLike) -> int:
    return int(_utc_timestamp(value).as_unit("ns").value)


def _maybe_utc(value: TimeLike | None) -> pd.Timestamp | None:
    return None if value is None else _utc_timestamp(value)
