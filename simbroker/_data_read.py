"""Reading and normalizing the input of :func:`~simbroker.data.load_bars`.

A CSV or Parquet file is read to a frame (the delimiter sniffed, a headerless NinjaTrader
layout recognized), its columns mapped to the canonical names, timestamps parsed and
values made numeric, giving the long-form rows (:class:`~simbroker._data_base._Long`);
unused columns and mostly-zero volume are warned about, and corporate actions and a
calendar attached to the finished panel.
"""

from __future__ import annotations

import importlib
import importlib.resources
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from simbroker._data_base import F64, I64, BoolArray, _Long
from simbroker._data_columns import (
    ColumnMap,
    canonical,
    describe_header,
    map_columns,
    rename_hint,
)
from simbroker._data_rules import _timestamp_codes
from simbroker._data_time import ParsedTimes, parse_times
from simbroker.bars import FIELDS, Bars
from simbroker.errors import ConfigError, DataError, DataWarning

REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", *FIELDS)
"""The long-form columns :func:`~simbroker.data.load_bars` needs, in their canonical names."""

ZERO_VOLUME_WARN_SHARE = 0.5
"""A symbol with zero volume on more than this share of its bars gets a DataWarning."""

_CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".txt")
_PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")

_HEADERLESS: dict[int, tuple[str, ...]] = {
    5: ("timestamp", "open", "high", "low", "close"),
    6: ("timestamp", "open", "high", "low", "close", "volume"),
}


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
