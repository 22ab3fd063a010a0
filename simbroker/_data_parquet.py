"""The Parquet fast path of :func:`simbroker.data.load_bars`: Arrow columns to the panel.

The general loader reads a file into a pandas frame, normalizes it to per-row arrays and
pivots them: about 118 bytes resident per cell at its peak, and most of its time in
``to_pandas`` (object symbols), pandas' time-zone round trip and factorizing strings. For
the common Parquet file (an Arrow timestamp column, string symbols, numeric OHLCV) this
path stays in Arrow and numpy instead:

1. read only the timestamp and symbol columns (symbols dictionary-encoded, so each
   distinct name is converted once), and check them: no missing value, no blank
   symbol, no repeated (symbol, timestamp);
2. lay out the panel (times, symbols, the cell of each row) and preallocate it;
3. stream the OHLCV columns in batches: each batch is checked with the loader's rules
   and scattered into the panel, then dropped, so the long-form prices never exist
   whole beside the panel.

It takes no decision of its own. Whenever a file needs anything it does not do (adjusted
closes, dividend/split columns, date and time columns, text numbers, naive timestamps
without ``tz``) or any row fails a rule, it returns ``None`` before warning or raising,
and :func:`~simbroker.data.load_bars` loads the file the general way, so every error
and warning is the general path's, word for word.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simbroker import data as _data
from simbroker._data_columns import map_columns
from simbroker._data_time import parse_times
from simbroker.bars import FIELDS, infer_interval
from simbroker.errors import DataError

if TYPE_CHECKING:
    from simbroker.bars import Bars

__all__ = ["BATCH_ROWS", "load_parquet"]

BATCH_ROWS = 1 << 18
"""Rows of OHLCV decoded at a time (a batch's five columns are 10 MiB)."""


def load_parquet(path: Path, *, renames: dict[str, str], symbol: str | None,
                 opts: Any, interval: Any, symbols: list[str] | None, start: Any,
                 end: Any) -> Bars | None:
    """The panel of a Parquet file of valid rows, or ``None`` to load it the general way.

    Arguments as :func:`simbroker.data.load_bars` takes them (``opts`` its ``_Options``).
    Warnings (unused columns, zero volume) are the general path's, issued only once the
    whole file has passed.
    """
    try:
        return _load(path, renames=renames, symbol=symbol, opts=opts, interval=interval,
                     symbols=symbols, start=start, end=end)
    except (DataError, ValueError, TypeError, OverflowError):
        return None  # the general path raises its own message for it


def _load(path: Path, *, renames: dict[str, str], symbol: str | None, opts: Any,
          interval: Any, symbols: list[str] | None, start: Any, end: Any) -> Bars | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if symbol is not None and (not isinstance(symbol, str) or not symbol):
        return None
    schema = pq.read_schema(path)
    written = list(schema.names)
    if len(set(written)) != len(written):
        return None
    header = _data._renamed(written, renames, str(path))
    mapping = map_columns(header)
    if mapping.clashes or mapping.date_time is not None or any(
            f in mapping.fields for f in ("adj_close", "dividend", "split")):
        return None
    label = {f: str(written[header.index(c)]) for f, c in mapping.fields.items()}
    if "timestamp" not in label or ("symbol" not in label and symbol is None):
        return None
    if any(f not in label for f in FIELDS if f != "volume") or (
            "volume" not in label and opts.volume != "unknown"):
        return None
    if not pa.types.is_timestamp(schema.field(label["timestamp"]).type):
        return None
    for f in FIELDS:
        if f in label:
            kind = schema.field(label[f]).type
            if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
                return None
    if "symbol" in label and not _is_text(schema.field(label["symbol"]).type):
        return None
    sym_label = label.get("symbol")
    pf = pq.ParquetFile(path, read_dictionary=[sym_label] if sym_label else None,
                        pre_buffer=False)
    n = pf.metadata.num_rows
    if n == 0:
        return None

    keys = pf.read(columns=[label["timestamp"], *([sym_label] if sym_label else [])])
    parsed = _times(keys.column(0), str(path), opts)
    if parsed is None:
        return None
    ns, day_stamps = parsed
    if sym_label is not None:
        coded = _symbol_codes(keys.column(1))
        if coded is None:
            return None
        codes, names = coded
        if symbol is not None and names != (symbol,):
            return None
    else:
        codes, names = np.zeros(n, dtype=np.int64), (str(symbol),)
    del keys
    tcodes, times = _time_codes(ns)
    long = _data._Long(ts=ns, codes=codes, symbols=names, values={}, unparsed={},
                       tcodes=tcodes, times=times, day_stamps=day_stamps)
    if len(times) != n and _data._duplicates(long).any():  # one time a row: none repeat
        return None
    if opts.bar_time == "close" and not day_stamps:
        step = infer_interval(times) if interval is None else _data._interval(interval)
        shift = int(step.astype(np.int64))
        long.ts = ns - shift
        long.times = times - shift
    layout = _data._layout(long, str(path), interval=interval, symbols=symbols, start=start,
                           end=end)
    del tcodes, long, ns  # the layout holds each row's cell; free the times' buffer
    codes = codes.astype(np.int32) if len(names) < 2**31 else codes
    pool = pa.default_memory_pool()
    pool.release_unused()  # hand the keys' buffers back before the panel is touched
    wide = layout.empty()
    zero = np.zeros(len(names))
    value_labels = [label[f] for f in FIELDS if f in label]
    row = 0
    for batch in _batches(pf, value_labels):
        size = batch.num_rows
        rows = slice(row, row + size)
        values = {f: _floats(batch.column(value_labels.index(label[f])))
                  if f in label else np.zeros(size) for f in FIELDS}
        if not _data._values_good(values["open"], values["high"], values["low"],
                                  values["close"], values["volume"]):
            return None
        if opts.volume == "reported":
            zero += np.bincount(codes[rows], weights=values["volume"] == 0,
                                minlength=len(names))
        for f in FIELDS:
            layout.scatter(wide[f], values[f], rows)
        row += size
        del batch, values
        pool.release_unused()
    if row != n:
        return None
    full = map_columns(header)
    if full.unused:
        _data._warn_unused(full.unused, str(path), stacklevel=5)
    if opts.volume == "reported":
        _data._warn_zero_counts(names, np.bincount(codes, minlength=len(names)), zero,
                                str(path), stacklevel=5)
    return layout.bars(wide)


def _batches(pf: Any, columns: list[str]) -> Any:
    """The columns in batches of ``BATCH_ROWS``: a few MiB resident beside the panel."""
    yield from pf.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=True)


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _times(column: Any, source: str, opts: Any) -> tuple[Any, bool] | None:
    """int64 ns UTC and whether they are day stamps; ``None`` when any row is bad."""
    import pyarrow as pa

    if column.null_count:
        return None
    kind = column.type
    column = column.cast(pa.timestamp("ns", kind.tz))  # safe: overflow raises
    ns = np.asarray(column.to_numpy()).view(np.int64)
    if kind.tz is not None:  # Arrow stores aware times as UTC
        return ns, False
    if opts.tz is None:
        return None
    parsed = parse_times(pd.Series(ns.view("datetime64[ns]"), copy=False), source,
                         tz=opts.tz, dayfirst=opts.dayfirst)
    if parsed.bad is not None:
        return None
    return parsed.ns, parsed.day_stamps


def _symbol_codes(column: Any) -> tuple[Any, tuple[str, ...]] | None:
    """Sorted symbol codes from a dictionary-encoded column; ``None`` if any is missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count or column.num_chunks == 0:
        return None
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    column = column.unify_dictionaries()
    dictionary = column.chunk(0).dictionary.to_pylist()
    if any(d is None for d in dictionary):
        return None
    stripped = np.array([str(d).strip() for d in dictionary] or [""], dtype=object)
    unique, inverse = np.unique(stripped, return_inverse=True)
    if unique[0] == "":
        return None  # a blank symbol is a bad row
    remap = np.asarray(inverse, dtype=np.int64).ravel()
    indices = [np.asarray(c.indices.to_numpy()) for c in column.chunks]
    codes = remap[indices[0] if len(indices) == 1 else np.concatenate(indices)]
    return codes, tuple(str(s) for s in unique)


def _time_codes(ns: Any) -> tuple[Any, Any]:
    """Codes into the sorted unique times: a linear pass when rows are time-ordered."""
    if len(ns) > 1 and bool((ns[1:] >= ns[:-1]).all()):
        new = np.empty(len(ns), dtype=bool)
        new[0] = True
        np.not_equal(ns[1:], ns[:-1], out=new[1:])
        times = ns[new]
        tcodes = np.cumsum(new, dtype=np.int64)
        tcodes -= 1
        return tcodes, times
    return _data._timestamp_codes(ns)


def _floats(column: Any) -> Any:
    """One numeric column as float64 (nulls as NaN, which fails the checks)."""
    values = column.to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)
