"""Load and validate OHLCV bars.

Ways to get a :class:`~simbroker.bars.Bars` panel (the generator lives in
:mod:`simbroker.synthetic`):

- :func:`load_bars` reads long-form bars (one row per symbol and bar) from a CSV or
  Parquet file, a pandas DataFrame, or passes an existing ``Bars`` through, validates every
  row (:func:`validate_bars`) and pivots them to wide arrays;
- :func:`~simbroker.synthetic.synthetic_bars` generates a seeded geometric-Brownian-motion
  panel of any size, daily or intraday, with overnight gaps, jumps and wicks;
- :func:`sample_bars` loads the bundled real daily sample (AAPL, FB, GOOG, IBM, MSFT,
  2008-2013, unadjusted, public domain; see ``data/README.md``).

Long form has the columns ``timestamp, symbol, open, high, low, close, volume`` (names
are case-insensitive; ``date``/``datetime``/``time`` mean ``timestamp`` and ``ticker``
means ``symbol``; other columns are ignored). Two columns that mean the same field
(``Close`` and ``close``, ``Date`` and ``timestamp``, a name repeated) are refused as
ambiguous in every input format, never resolved by picking one. Naive timestamps are
taken as UTC, aware ones are converted to UTC.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from simbroker.bars import FIELDS, Bars, infer_interval
from simbroker.errors import DataError

__all__ = [
    "REQUIRED_COLUMNS",
    "SAMPLE_DATA_PATH",
    "load_bars",
    "sample_bars",
    "validate_bars",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", *FIELDS)
"""The long-form columns :func:`load_bars` needs, in their canonical names."""

SAMPLE_DATA_PATH: Path = Path(__file__).resolve().parents[1] / "data" / "sample_daily.csv"
"""Where :func:`sample_bars` reads the bundled sample (``data/sample_daily.csv``)."""

TimeLike: TypeAlias = "datetime | pd.Timestamp | np.datetime64 | str"
IntervalLike: TypeAlias = "str | timedelta | pd.Timedelta | np.timedelta64"
Source: TypeAlias = "str | Path | pd.DataFrame | Bars"

_ALIASES: dict[str, str] = {
    "date": "timestamp",
    "datetime": "timestamp",
    "time": "timestamp",
    "ticker": "symbol",
}
_CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz")
_PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
_MAX_PROBLEMS = 10
_NS_PER_DAY = 86_400_000_000_000
_NAT = np.iinfo(np.int64).min

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
) -> Bars:
    """Load long-form OHLCV bars, validate them and pivot them to a :class:`Bars` panel.

    Parameters
    ----------
    source : str, pathlib.Path, pandas.DataFrame or Bars
        A CSV file (``.csv``, ``.csv.gz``), a Parquet file (``.parquet``, ``.pq``, read
        with pyarrow), a long-form DataFrame, or an existing ``Bars`` (returned as is,
        or subset; it is not validated again).
    symbol : str, optional
        The symbol of every row, for a frame or file without a ``symbol`` column. With a
        ``symbol`` column present, every row must carry this symbol.
    interval : str or timedelta, optional
        The bar length as a pandas Timedelta string (``"1min"``, ``"1D"``). Default:
        inferred as the smallest spacing between bar times
        (:func:`simbroker.bars.infer_interval`). It may not exceed that spacing.
    symbols : iterable of str, optional
        Keep only these symbols (each must be present).
    start, end : datetime, str or Timestamp, optional
        Keep bars with ``start <= timestamp < end``; naive values are UTC.

    Returns
    -------
    Bars
        Symbols in alphabetical order, timestamps the sorted union over the symbols,
        ``NaN`` where a symbol has no bar. The whole source is validated before subsetting.

    Raises
    ------
    DataError
        The file is missing or has an unknown suffix, a required column is missing, or
        rows fail validation (see :func:`validate_bars`; the message shows the first
        10 bad rows).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({
    ...     "Date": ["2024-01-02", "2024-01-03"], "Ticker": ["ABC", "ABC"],
    ...     "Open": [10.0, 10.5], "High": [11.0, 10.9], "Low": [9.8, 10.1],
    ...     "Close": [10.6, 10.2], "Volume": [1000, 1200]})
    >>> bars = load_bars(frame)
    >>> bars.symbols, bars.close[:, 0].tolist(), str(pd.Timedelta(bars.interval))
    (('ABC',), [10.6, 10.2], '1 days 00:00:00')
    """
    wanted = _symbol_list(symbols)
    if isinstance(source, Bars):
        if symbol is not None:
            raise ValueError(f"symbol={symbol!r} applies to frames and files, not to Bars")
        return _subset_bars(source, wanted, start, end, interval)
    if isinstance(source, (str, Path)):
        frame, name = _read_file(Path(source)), str(source)
    elif isinstance(source, pd.DataFrame):
        frame, name = source, "DataFrame"
    else:
        raise TypeError(
            f"load_bars needs a CSV/Parquet path, a pandas DataFrame or Bars, "
            f"got {type(source).__name__}"
        )
    long = _normalize(frame, symbol=symbol, source=name)
    _raise_problems(long, name)
    return _pivot(long, name, interval=interval, symbols=wanted, start=start, end=end)


def validate_bars(frame: pd.DataFrame | Bars, *, symbol: str | None = None) -> None:
    """Check long-form bars; raise :class:`~simbroker.errors.DataError` on the first 10 bad rows.

    The rules, checked with array operations over all rows at once:

    - the columns ``timestamp, symbol, open, high, low, close, volume`` are present
      (see :func:`load_bars` for accepted names; ``symbol`` may be given instead);
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

    Raises
    ------
    DataError
        With the summary ``"N bad rows in DataFrame"`` and ``problems``: one dict per bad
        row (the first 10) with ``row`` (0-based position in ``frame``), ``symbol``,
        ``timestamp`` (ISO 8601, UTC), ``field`` and ``reason`` (with the numbers, e.g.
        ``"high 9.5 < close 10.1"``).
    """
    if isinstance(frame, Bars):
        frame = frame.to_frame()
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"validate_bars needs a pandas DataFrame or Bars, got {type(frame).__name__}"
        )
    _raise_problems(_normalize(frame, symbol=symbol, source="DataFrame"), "DataFrame")


def sample_bars() -> Bars:
    """The bundled real daily sample: AAPL, FB, GOOG, IBM and MSFT, 2008-01-02..2013-03-01.

    Unadjusted daily OHLCV from the public-domain Quandl WIKI set (via the
    ``bokeh-sampledata`` package); FB starts at its IPO on 2012-05-18 and is ``NaN``
    before. Timestamps label the trading day at 00:00 UTC; the interval is one day. See
    ``data/README.md`` for provenance and how the file is regenerated.

    Returns
    -------
    Bars
        1,300 bars x 5 symbols (read once, then cached; ``Bars`` is immutable).

    Raises
    ------
    DataError
        If ``data/sample_daily.csv`` is not next to the package (see ``SAMPLE_DATA_PATH``).

    Examples
    --------
    >>> bars = sample_bars()
    >>> bars.symbols
    ('AAPL', 'FB', 'GOOG', 'IBM', 'MSFT')
    """
    return _sample_bars_cached()


@functools.lru_cache(maxsize=1)
def _sample_bars_cached() -> Bars:
    if not SAMPLE_DATA_PATH.is_file():
        raise DataError(
            f"the sample data file is missing: looked for {SAMPLE_DATA_PATH} (it ships in "
            "the repository's data/ folder; regenerate it with data/make_sample.py)"
        )
    return load_bars(SAMPLE_DATA_PATH)


# ------------------------------------------------------------------ normalizing input
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

    def __len__(self) -> int:
        return len(self.ts)


def _read_file(path: Path) -> pd.DataFrame:
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
            return _read_csv(path)
        import pyarrow.parquet as pq

        mapping, clashes = _map_columns(pq.read_schema(path).names)
        _refuse_clashes(clashes, str(path))
        columns = list(mapping.values()) if "timestamp" in mapping else None
        frame: pd.DataFrame = pq.read_table(path, columns=columns).to_pandas()
        return frame
    except DataError:
        raise
    except Exception as exc:  # a parser's own error, shown with the file's name
        raise DataError(f"cannot read bars from {path}: {exc}") from exc


def _read_csv(path: Path) -> pd.DataFrame:
    """Read the needed columns with pyarrow's parser (fast, exact floats, native ISO times).

    Falls back to pandas' parser when pyarrow refuses a value, so that validation can
    point at the row.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # The header as written: pandas would rename a second "close" to "close.1" and the
    # column would be dropped unseen.
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    mapping, clashes = _map_columns(header.iloc[0].tolist() if len(header) else [])
    _refuse_clashes(clashes, str(path))
    keep = [str(c) for c in mapping.values()]
    sym = mapping.get("symbol")
    frame: pd.DataFrame
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            include_columns=keep,
            column_types={str(sym): pa.string()} if sym is not None else None,
        ))
    except pa.ArrowInvalid:
        frame = pd.read_csv(path, usecols=keep, dtype={sym: "str"} if sym is not None else None)
        return frame
    ts = mapping.get("timestamp")
    if ts is not None and pa.types.is_date(table.schema.field(str(ts)).type):
        i = table.schema.get_field_index(str(ts))
        table = table.set_column(i, str(ts), table.column(i).cast(pa.timestamp("s")))
    frame = table.to_pandas()
    return frame


def _map_columns(columns: Iterable[object]) -> tuple[dict[str, Any], list[str]]:
    """Canonical name -> the frame's column label, and the ambiguities found."""
    mapping: dict[str, Any] = {}
    clashes: list[str] = []
    for label in columns:
        canon = _canonical(label)
        if canon not in REQUIRED_COLUMNS:
            continue
        if canon in mapping:
            clashes.append(f"{mapping[canon]!r} and {label!r} both mean {canon!r}")
        else:
            mapping[canon] = label
    return mapping, clashes


def _refuse_clashes(clashes: list[str], source: str) -> None:
    """Two columns meaning the same field (``Close`` and ``close``): refuse, never pick one."""
    if clashes:
        raise DataError(f"ambiguous columns in {source}: {'; '.join(clashes)}")


def _normalize(frame: pd.DataFrame, *, symbol: str | None, source: str) -> _Long:
    frame = _index_to_columns(frame)
    mapping, clashes = _map_columns(frame.columns)
    _refuse_clashes(clashes, source)
    if symbol is not None and (not isinstance(symbol, str) or not symbol):
        raise TypeError(f"symbol must be a non-empty str, got {symbol!r}")
    missing = [c for c in REQUIRED_COLUMNS if c not in mapping
               and not (c == "symbol" and symbol is not None)]
    if missing:
        found = [str(c) for c in frame.columns]
        shown = ", ".join(found[:20]) + (", ..." if len(found) > 20 else "")
        hint = " (or pass symbol='XYZ' for a single symbol)" if "symbol" in missing else ""
        raise DataError(
            f"{source} is missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}{hint}; found columns: {shown or '(none)'}"
        )
    unparsed: dict[str, tuple[BoolArray, pd.Series]] = {}
    ts, bad_ts = _parse_timestamps(frame[mapping["timestamp"]], source)
    if bad_ts is not None:
        unparsed["timestamp"] = (bad_ts, frame[mapping["timestamp"]])
    if "symbol" in mapping:
        codes, symbols = _symbol_codes(frame[mapping["symbol"]])
        if symbol is not None and symbols not in ((), (symbol,)):
            others = [s for s in symbols if s != symbol][:5]
            raise DataError(
                f"symbol={symbol!r} was given but {source} has other symbols in its "
                f"'symbol' column: {', '.join(others)}; use symbols=[...] to select"
            )
    else:
        codes = np.zeros(len(frame), dtype=np.int64)
        symbols = (str(symbol),)
    values: dict[str, F64] = {}
    for name in FIELDS:
        col = frame[mapping[name]]
        values[name], bad = _numeric(col)
        if bad is not None:
            unparsed[name] = (bad, col)
    tcodes, times = _timestamp_codes(ts)
    return _Long(ts=ts, codes=codes, symbols=symbols, values=values, unparsed=unparsed,
                 tcodes=tcodes, times=times)


def _index_to_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Move index levels that hold timestamps or symbols into columns."""
    have = {_canonical(c) for c in frame.columns}
    wanted = [n for n in frame.index.names if n is not None
              and _canonical(n) in ("timestamp", "symbol") and _canonical(n) not in have]
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


def _canonical(label: object) -> str:
    key = str(label).strip().lower()
    return _ALIASES.get(key, key)


def _parse_timestamps(col: pd.Series, source: str) -> tuple[I64, BoolArray | None]:
    """Int64 ns (naive UTC, ``_NAT`` where missing), and the rows that failed to parse."""
    if pd.api.types.is_numeric_dtype(col.dtype):
        raise DataError(
            f"the timestamps of {source} are numbers ({col.dtype}); convert them first, "
            "e.g. with pandas.to_datetime(values, unit='s')"
        )
    with warnings.catch_warnings():
        # pandas warns when it falls back to parsing element by element ("Could not infer
        # format"); bad rows are reported as DataError, and under -W error (pytest's
        # filterwarnings = error) the warning would escape load_bars as an exception.
        warnings.simplefilter("ignore", UserWarning)
        return _parse_timestamps_quietly(col, source)


def _parse_timestamps_quietly(col: pd.Series, source: str) -> tuple[I64, BoolArray | None]:
    numbers = _numbers_among_objects(col)
    if numbers is not None:  # as a numeric column is refused: a number is not a time
        col = col.where(~numbers, None)
    parsed_ns, bad = _parse_timestamp_values(col, source)
    if numbers is not None:
        bad = numbers if bad is None else bad | numbers
    return parsed_ns, bad


def _numbers_among_objects(col: pd.Series) -> BoolArray | None:
    """Rows of an object column that hold a number or a bool, or None if there are none.

    pandas would read them as nanoseconds since 1970 (and warns that this will change).
    """
    if col.dtype != object or pd.api.types.infer_dtype(col, skipna=True) in (
            "string", "datetime", "datetime64", "date", "empty"):
        return None
    def is_number(v: object) -> bool:
        return isinstance(v, (int, float, np.number, np.bool_)) and v == v  # NaN is missing

    mask: BoolArray = np.fromiter((is_number(v) for v in col), dtype=np.bool_, count=len(col))
    return mask if mask.any() else None


def _parse_timestamp_values(col: pd.Series, source: str) -> tuple[I64, BoolArray | None]:
    bad: BoolArray | None = None
    try:
        parsed = pd.to_datetime(col, utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        try:  # ISO 8601 strings that mix forms ("2024-01-02", "2024-01-02 09:30")
            parsed = pd.to_datetime(col, utc=True, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            parsed, bad = min(
                (_coerce_timestamps(col, fmt) for fmt in (None, "ISO8601")),
                key=lambda pair: int(np.count_nonzero(pair[1])),
            )
            if not bad.any():
                raise DataError(f"cannot parse the timestamps of {source}: {exc}") from exc
    idx = pd.DatetimeIndex(parsed).tz_convert("UTC").tz_localize(None)
    try:
        idx = idx.as_unit("ns")
    except (OverflowError, ValueError) as exc:  # OutOfBoundsDatetime is a ValueError
        raise DataError(
            f"timestamps of {source} fall outside 1677-09-21..2262-04-11: {exc}"
        ) from exc
    return np.asarray(idx.asi8, dtype=np.int64), bad


def _coerce_timestamps(col: pd.Series, fmt: str | None) -> tuple[pd.Series, BoolArray]:
    parsed = pd.to_datetime(col, utc=True, errors="coerce", format=fmt)
    return parsed, (parsed.isna() & col.notna()).to_numpy(dtype=bool)


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
    if long.unparsed or (len(long) and int(long.codes.min()) < 0):
        return False
    if bool((long.ts == _NAT).any()):
        return False
    v = long.values
    o, h, low, c = v["open"], v["high"], v["low"], v["close"]
    good = low > 0  # also False for NaN
    good &= h < np.inf
    good &= v["volume"] >= 0
    good &= v["volume"] < np.inf
    for x in (o, c):
        good &= h >= x
        good &= low <= x
    return bool(good.all()) and not _duplicates(long).any()


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
    if "timestamp" in long.unparsed:
        bad, raw = long.unparsed["timestamp"]
        rules.append((bad, "timestamp", lambda i: f"cannot parse timestamp {raw.iloc[i]!r}"))
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
) -> Bars:
    tcodes, times = long.tcodes, long.times
    spacing = infer_interval(times)
    step = spacing if interval is None else _interval(interval)
    if interval is not None and len(times) > 1 and step > spacing:
        raise DataError(
            f"interval {pd.Timedelta(step)} is longer than the smallest spacing between "
            f"bars in {source} ({pd.Timedelta(spacing)}): bars would overlap"
        )
    codes, names, values = long.codes, long.symbols, long.values
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
        values = {k: x[keep] for k, x in values.items()}
        used = np.bincount(tcodes, minlength=len(times)) > 0
        times = times[used]
        tcodes = (np.cumsum(used) - 1)[tcodes]
    n_t, n_s = len(times), len(names)
    flat = tcodes * n_s + codes
    dense = len(flat) == n_t * n_s  # every cell gets a bar: no NaN fill needed
    wide: dict[str, F64] = {}
    for name in FIELDS:
        a = np.empty(n_t * n_s) if dense else np.full(n_t * n_s, np.nan)
        a[flat] = values[name]
        wide[name] = _frozen(a.reshape(n_t, n_s))
    return Bars(
        timestamps=times.view("datetime64[ns]"), symbols=names, interval=step,
        open=wide["open"], high=wide["high"], low=wide["low"], close=wide["close"],
        volume=wide["volume"],
    )


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
            out = Bars(timestamps=out.timestamps[rows], symbols=out.symbols,
                       interval=out.interval,
                       actions=out.actions,
                       **cast("dict[str, Any]", {f: _frozen(out.field(f)[rows]) for f in FIELDS}))
    if interval is not None:
        out = Bars(timestamps=out.timestamps, symbols=out.symbols, interval=_interval(interval),
                   actions=out.actions, **cast("dict[str, Any]", {f: out.field(f) for f in FIELDS}))
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
