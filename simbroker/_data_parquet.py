"""The Parquet fast path of :func:`simbroker.data.load_bars`: Arrow columns to the panel.

The general loader reads a file into a pandas frame, normalizes it to per-row arrays and
pivots them: about 118 bytes resident per cell at its peak, and most of its time in
``to_pandas`` (object symbols), pandas' time-zone round trip and factorizing strings. For
the common Parquet file (an Arrow timestamp column, string symbols, numeric OHLCV) this
path stays in Arrow and numpy instead, one column at a time, so that at its peak little
more than the panel is resident:

1. the keys (:mod:`simbroker._data_parquet_keys`): the timestamp, then the symbol
   column, streamed in batches into int64 times and int32 symbol codes (each distinct
   name converted once), checked (no missing value, no blank symbol, no repeated
   (symbol, timestamp)) and turned in place into each row's cell of the panel;
2. the values: each OHLCV column streamed alone and scattered straight from Arrow's
   buffers into its preallocated (T, N) array, refusing missing and NaN values batch by
   batch; the rules across fields (``low <= open, close <= high``, positive prices,
   finite non-negative volume) are then checked on the filled cells, which are the
   file's rows. With ``symbols``/``start``/``end`` the dropped rows must pass too, so a
   subset streams batches of all five columns and checks each batch whole instead.

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
import numpy.typing as npt

from simbroker import data as _data
from simbroker._data_columns import map_columns
from simbroker._data_parquet_keys import Cells, read_cells
from simbroker.bars import FIELDS
from simbroker.errors import DataError

if TYPE_CHECKING:
    from simbroker.bars import Bars

__all__ = ["BATCH_ROWS", "CELLS_CHUNK", "READ_BUFFER", "load_parquet"]

BATCH_ROWS = 1 << 18
"""Rows decoded at a time (a float64 column's batch is 2 MiB)."""

READ_BUFFER = 1 << 20
"""Bytes Arrow reads from the file at a time; without it, it reads each column chunk of
a row group whole (8 MiB a column for a million rows) before decoding it."""

CELLS_CHUNK = 1 << 18
"""Panel cells checked at a time (bounds the temporaries of the checks)."""

F64 = npt.NDArray[np.float64]


def load_parquet(path: Path, *, renames: dict[str, str], symbol: str | None,
                 opts: Any, interval: Any, symbols: list[str] | None, start: Any,
                 end: Any) -> Bars | None:
    """The panel of a Parquet file of valid rows, or ``None`` to load it the general way.

    Arguments as :func:`simbroker.data.load_bars` takes them (``opts`` its ``_Options``).
    Warnings (unused columns, zero volume) are the general path's, issued only once the
    whole file has passed.
    """
    import pyarrow as pa

    try:
        return _load(path, renames=renames, symbol=symbol, opts=opts, interval=interval,
                     symbols=symbols, start=start, end=end)
    except (DataError, ValueError, TypeError, OverflowError, OSError, pa.ArrowException):
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
                        pre_buffer=False, buffer_size=READ_BUFFER)
    n = pf.metadata.num_rows
    if n == 0:
        return None
    cells = read_cells(pf, n=n, time_label=label["timestamp"], symbol_label=sym_label,
                       symbol=symbol, opts=opts, interval=interval, symbols=symbols,
                       start=start, end=end, batch_rows=BATCH_ROWS, source=str(path))
    if cells is None:
        return None
    pa.default_memory_pool().release_unused()  # the keys' pages, before the panel
    values = {f: label[f] for f in FIELDS if f in label}
    filled = _fill_rows(pf, cells, values, n) if cells.subset \
        else _fill_columns(pf, cells, values, n)
    if filled is None:
        return None
    wide, zero = filled
    full = map_columns(header)
    if full.unused:
        _data._warn_unused(full.unused, str(path), stacklevel=5)
    if opts.volume == "reported":
        _data._warn_zero_counts(cells.file_symbols, cells.rows_per_symbol, zero,
                                str(path), stacklevel=5)
    return _data._panel_bars(cells.times, cells.names, cells.step, wide)


Filled = tuple[dict[str, F64], npt.NDArray[np.int64]]
"""The panel's arrays by field, and the zero-volume rows of each file symbol."""


def _fill_columns(pf: Any, cells: Cells, labels: dict[str, str], n: int) -> Filled | None:
    """Fill the panel one column at a time, then check the rules across fields on it.

    Every file row is a cell (no subset), so the panel holds every row: the rules that
    tie fields together (``low <= open <= high``...) are checked on the filled cells
    once the five arrays are complete, and each column streams through alone (Arrow
    holds one column's batch and pages, not five).
    """
    import pyarrow as pa

    wide: dict[str, F64] = {}
    for name in FIELDS:
        if name not in labels:
            continue
        out = np.empty(cells.size) if cells.dense else np.full(cells.size, np.nan)
        row = 0
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[labels[name]],
                                     use_threads=False):
            values = _floats(batch.column(0))
            if values is None or row + len(values) > n:
                return None
            cells.scatter(out, values, row)
            row += len(values)
            del batch, values
        if row != n:
            return None
        wide[name] = out
        pa.default_memory_pool().release_unused()  # mimalloc keeps a pass's pages else
    if "volume" not in wide:  # volume="unknown" without a column: 0 on every bar
        wide["volume"] = np.zeros(cells.size) if cells.dense else _zeros_where(wide["close"])
    if not _panel_good(wide, cells.dense):
        return None
    return wide, _zero_volume_by_column(wide["volume"], len(cells.names))


def _fill_rows(pf: Any, cells: Cells, labels: dict[str, str], n: int) -> Filled | None:
    """Fill a subset panel from batches of rows, each checked whole before it is cut.

    The rows the subset drops must pass the rules too (the general path validates the
    whole file before subsetting), so each batch carries every value column.
    """
    wide = {name: np.empty(cells.size) if cells.dense else np.full(cells.size, np.nan)
            for name in FIELDS}
    zero = np.zeros(len(cells.file_symbols), dtype=np.int64)
    columns = list(labels.values())
    row = 0
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=True):
        size = batch.num_rows
        if row + size > n:
            return None
        values: dict[str, F64] = {}
        for name in FIELDS:
            got = _floats(batch.column(columns.index(labels[name]))) if name in labels \
                else np.zeros(size)
            if got is None:
                return None
            values[name] = got
        if not _data._values_good(values["open"], values["high"], values["low"],
                                  values["close"], values["volume"]):
            return None
        codes = cells.symbol_codes(row, row + size)
        is_zero = values["volume"] == 0
        if codes is None:
            zero[0] += int(np.count_nonzero(is_zero))
        else:
            zero += np.bincount(codes, weights=is_zero,
                                minlength=len(zero)).astype(np.int64)
        for name in FIELDS:
            cells.scatter(wide[name], values[name], row)
        row += size
        del batch, values
    return (wide, zero) if row == n else None


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _floats(column: Any) -> F64 | None:
    """One numeric batch as float64 (a view of Arrow's buffer when it is float64
    already); ``None`` when a value is missing or NaN (a bad row)."""
    if column.null_count:
        return None
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    if np.isnan(values).any():
        return None
    return values


def _zeros_where(close: F64) -> F64:
    """0 on the filled cells (a close), ``NaN`` on the empty ones."""
    out = np.full(len(close), np.nan)
    for a in range(0, len(close), CELLS_CHUNK):
        part = out[a:a + CELLS_CHUNK]
        part[~np.isnan(close[a:a + CELLS_CHUNK])] = 0.0
    return out


def _panel_good(wide: dict[str, F64], dense: bool) -> bool:
    """No filled cell breaks a rule (empty cells are ``NaN`` in every field, a filled
    one in none: missing and NaN values were refused batch by batch)."""
    o, h, low, c, v = (wide[name] for name in FIELDS)
    for a in range(0, len(c), CELLS_CHUNK):
        cut = slice(a, a + CELLS_CHUNK)
        parts = [o[cut], h[cut], low[cut], c[cut], v[cut]]
        if not dense:
            filled = ~np.isnan(parts[3])
            if not filled.all():
                parts = [p[filled] for p in parts]
        if not _data._values_good(*parts):
            return False
    return True


def _zero_volume_by_column(volume: F64, n_symbols: int) -> npt.NDArray[np.int64]:
    """Bars of each symbol with zero volume (an empty cell is NaN, never zero)."""
    wide = volume.reshape(-1, n_symbols)
    step = max(1, CELLS_CHUNK // n_symbols)
    zero = np.zeros(n_symbols, dtype=np.int64)
    for a in range(0, len(wide), step):
        zero += np.count_nonzero(wide[a:a + step] == 0, axis=0)
    return zero
