"""The keys of a Parquet file of bars: where each row lands in the panel.

Step 1 and 2 of the Parquet fast path (:mod:`simbroker._data_parquet`). The timestamp
and symbol columns are read one at a time in batches, each batch encoded at once and
dropped (the symbol batch to 32-bit codes, the timestamps into one int64 array), so no
key column ever exists whole as Arrow buffers beside its encoded copy. The int64 array
then becomes, in place, each row's time code and is narrowed into the symbol codes'
buffer as each row's cell: at the end of this step the resident keys are 4 bytes a row
(none when every cell is filled and rows are in panel order or symbol-major, as
``Bars.to_frame`` writes them), against the 28 that int64 times, time codes and symbol
codes took side by side.

Like the rest of the fast path it decides nothing of its own: any key the general path
would refuse or warn about (a missing value, a blank symbol, a repeated (symbol,
timestamp), an interval longer than the spacing, an absent symbol) makes it return
``None``, and :func:`simbroker.data.load_bars` reads the file the general way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from simbroker import data as _data
from simbroker._data_time import parse_times

__all__ = ["CHUNK", "SYMBOL_RUN", "Cells", "read_cells"]

CHUNK = 1 << 20
"""Rows per step of the in-place passes over the keys (bounds their temporaries)."""

SYMBOL_RUN = 64
"""Fewest bars a symbol for symbol-major rows to be written run by run, without a cell
index (each run is one strided copy, so short runs cost more than the index saves)."""

_DAY = np.timedelta64(86_400_000_000_000, "ns")
_I32_MAX = np.iinfo(np.int32).max

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Index = npt.NDArray[np.signedinteger[Any]]


@dataclass
class Cells:
    """Where each row of the file lands in the (T, N) panel.

    ``flat`` is each file row's cell, row-major (``time * N + symbol``), int32 when the
    panel has fewer than 2**31 cells, ``-1`` for a row the subset drops; ``None`` when
    every cell is filled and the rows are in panel order (row ``i`` is cell ``i``) or,
    with ``by_symbol``, symbol-major (row ``i`` is time ``i % T`` of symbol ``i // T``).
    """

    times: I64  # the panel's bar opens, ns UTC, strictly increasing
    names: tuple[str, ...]  # the panel's symbols, sorted
    step: np.timedelta64
    flat: Index | None
    dense: bool  # every cell of the panel gets a row
    subset: bool  # some file rows are dropped (symbols=, start=, end=)
    file_symbols: tuple[str, ...]  # every symbol of the file, sorted
    rows_per_symbol: I64  # file rows of each of file_symbols
    codes: I32 | None  # file symbol of each row, kept only when ``flat`` cannot give it
    by_symbol: bool = False

    @property
    def size(self) -> int:
        """Cells in the panel (T x N)."""
        return len(self.times) * len(self.names)

    def scatter(self, out: npt.NDArray[np.float64], values: npt.NDArray[np.float64],
                start: int) -> None:
        """Write the values of file rows ``start:start + len(values)`` into ``out``."""
        stop = start + len(values)
        if self.flat is None and self.by_symbol:  # a strided run per symbol
            n_times = len(self.times)
            wide = out.reshape(n_times, len(self.names))
            for s in range(start // n_times, (stop - 1) // n_times + 1):
                lo, hi = max(start, s * n_times), min(stop, (s + 1) * n_times)
                wide[lo - s * n_times:hi - s * n_times, s] = values[lo - start:hi - start]
            return
        if self.flat is None:
            out[start:stop] = values
            return
        cells = self.flat[start:stop]
        if self.subset:
            kept = cells >= 0
            out[cells[kept]] = values[kept]
        else:
            out[cells] = values

    def symbol_codes(self, start: int, stop: int) -> Index | None:
        """The file symbol of rows ``start:stop`` of a subset; ``None`` when the file has
        one symbol (without a subset the panel's columns are the file's symbols)."""
        return None if self.codes is None else self.codes[start:stop]


def read_cells(pf: Any, *, n: int, time_label: str, symbol_label: str | None,
               symbol: str | None, opts: Any, interval: Any, symbols: list[str] | None,
               start: Any, end: Any, batch_rows: int, source: str) -> Cells | None:
    """Read and check the keys of ``pf`` (a ``pyarrow.parquet.ParquetFile`` of ``n``
    rows) and lay out the panel; ``None`` when the general path must load the file.

    ``symbol_label`` is the symbol column (``None``: every row is ``symbol``); the other
    arguments as :func:`simbroker.data.load_bars` takes them (``opts`` its ``_Options``).
    """
    read = _read_times(pf, time_label, n, opts, batch_rows, source)
    if read is None:
        return None
    ns, strict, ordered, day_stamps = read
    if symbol_label is None:
        codes: I32 | None = None
        names: tuple[str, ...] = (str(symbol),)
        rows_per = np.array([n], dtype=np.int64)
    else:
        coded = _read_symbols(pf, symbol_label, n, batch_rows)
        if coded is None:
            return None
        codes, names, rows_per = coded
        if symbol is not None and names != (symbol,):
            return None
    if strict:  # one row a time, in time order: the times are the rows' own
        times, tcodes = ns, None
    else:
        times = _to_time_codes(ns, ordered)
        tcodes = ns  # now each row's index into times
    spacing = _spacing(times)
    step = spacing if interval is None else _data._interval(interval)
    if interval is not None and len(times) > 1 and step > spacing:
        return None  # bars would overlap: the general path says so
    if opts.bar_time == "close" and not day_stamps:
        times -= int(step.astype(np.int64))  # in place: tcodes index it unchanged
    n_sym = len(names)
    if _has_duplicates(tcodes, codes, len(times), n_sym, n):
        return None
    if symbols is not None or start is not None or end is not None:
        return _subset(times, tcodes, codes, names, rows_per, step=step, symbols=symbols,
                       start=start, end=end)
    flat = _cells(tcodes, codes, len(times), n_sym)
    dense = len(times) * n_sym == n
    by_symbol = False
    if flat is not None and dense and _in_panel_order(flat):
        flat = None
    elif flat is not None and dense and len(times) >= SYMBOL_RUN and _in_symbol_order(
            flat, len(times), n_sym):
        flat, by_symbol = None, True
    return Cells(times=times, names=names, step=step, flat=flat, dense=dense, subset=False,
                 file_symbols=names, rows_per_symbol=rows_per, codes=None,
                 by_symbol=by_symbol)


# ------------------------------------------------------------------------- reading
def _read_times(pf: Any, label: str, n: int, opts: Any, batch_rows: int,
                source: str) -> tuple[I64, bool, bool, bool] | None:
    """(ns UTC of each row, strictly increasing, non-decreasing, day stamps)."""
    import pyarrow as pa

    kind = pf.schema_arrow.field(label).type
    if kind.tz is None and opts.tz is None:
        return None  # naive without tz: the general path's error
    ns = np.empty(n, dtype=np.int64)
    row = 0
    strict = ordered = True
    last: int | None = None
    for batch in pf.iter_batches(batch_size=batch_rows, columns=[label], use_threads=False):
        column = batch.column(0)
        if column.null_count:
            return None
        if column.type.unit != "ns":
            column = column.cast(pa.timestamp("ns", kind.tz))  # safe: overflow raises
        part = np.asarray(column.to_numpy(zero_copy_only=False)).view(np.int64)
        m = len(part)
        if row + m > n:
            return None
        ns[row:row + m] = part
        if m and ordered:
            strict, ordered = _order(part, last, strict)
            last = int(part[-1])
        row += m
        del batch, column, part
    if row != n:
        return None
    if kind.tz is not None:  # Arrow stores aware times as UTC
        return ns, strict, ordered, False
    parsed = parse_times(pd.Series(ns.view("datetime64[ns]"), copy=False), source,
                         tz=opts.tz, dayfirst=opts.dayfirst)
    del ns
    if parsed.bad is not None:
        return None
    ns = np.asarray(parsed.ns, dtype=np.int64)
    strict = ordered = True
    last = None
    for a in range(0, n, CHUNK):
        if not ordered:
            break
        strict, ordered = _order(ns[a:a + CHUNK], last, strict)
        last = int(ns[min(a + CHUNK, n) - 1])
    return ns, strict, ordered, parsed.day_stamps


def _order(part: I64, last: int | None, strict: bool) -> tuple[bool, bool]:
    """(strictly increasing, non-decreasing) so far, after one more run of times."""
    if last is not None:
        if part[0] < last:
            return False, False
        strict = strict and bool(part[0] > last)
    if len(part) > 1:
        if not bool((part[1:] >= part[:-1]).all()):
            return False, False
        strict = strict and bool((part[1:] != part[:-1]).all())
    return strict, True


def _read_symbols(pf: Any, label: str, n: int,
                  batch_rows: int) -> tuple[I32 | None, tuple[str, ...], I64] | None:
    """(sorted symbol code of each row or ``None`` when there is one, the symbols, rows
    of each); ``None`` when a row has no symbol or a blank one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids: dict[str, int] = {}  # a written name -> its code in order of appearance
    codes: I32 | None = None  # allocated when a second name appears
    dictionary: Any = None
    local = np.zeros(0, dtype=np.int32)
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=[label], use_threads=False):
        column = batch.column(0)
        if column.null_count:
            return None
        if not pa.types.is_dictionary(column.type):
            column = pc.dictionary_encode(column)
        if dictionary is None or not column.dictionary.equals(dictionary):
            dictionary = column.dictionary
            written = dictionary.to_pylist()
            if any(w is None for w in written):
                return None
            local = np.array([ids.setdefault(w, len(ids)) for w in written], dtype=np.int32)
        indices = np.asarray(column.indices.to_numpy(zero_copy_only=False))
        m = len(indices)
        if row + m > n:
            return None
        part = local[indices]
        if codes is None and m and int(part.max()) > 0:
            codes = np.zeros(n, dtype=np.int32)  # the rows before all had code 0
        if codes is not None:
            codes[row:row + m] = part
        row += m
        del batch, column, indices, part
    if row != n or not ids:
        return None
    written_names = list(ids)
    counts = np.bincount(codes, minlength=len(ids)) if codes is not None \
        else np.array([n], dtype=np.int64)
    used = np.flatnonzero(counts)
    stripped = np.array([str(written_names[i]).strip() for i in used], dtype=object)
    unique, inverse = np.unique(stripped, return_inverse=True)
    if unique[0] == "":
        return None  # a blank symbol is a bad row
    remap = np.zeros(len(ids), dtype=np.int32)
    remap[used] = np.asarray(inverse, dtype=np.int32).ravel()
    rows_per = np.zeros(len(unique), dtype=np.int64)
    np.add.at(rows_per, remap[used], counts[used])
    names = tuple(str(s) for s in unique)
    if codes is not None and len(names) == 1:
        codes = None
    elif codes is not None and not np.array_equal(remap, np.arange(len(ids))):
        for a in range(0, n, CHUNK):
            codes[a:a + CHUNK] = remap[codes[a:a + CHUNK]]
    return codes, names, rows_per


# -------------------------------------------------------------------------- layout
def _to_time_codes(ns: I64, ordered: bool) -> I64:
    """The sorted unique times; ``ns`` is overwritten with each row's index into them."""
    n = len(ns)
    if ordered:  # a linear pass: a new time wherever a row's differs from the last
        new = np.empty(n, dtype=bool)
        new[0] = True
        np.not_equal(ns[1:], ns[:-1], out=new[1:])
        times = ns[new]
        np.cumsum(new, out=ns)
        ns -= 1
        return times
    times = np.sort(np.asarray(pd.unique(ns), dtype=np.int64))
    for a in range(0, n, CHUNK):
        ns[a:a + CHUNK] = np.searchsorted(times, ns[a:a + CHUNK])
    return times


def _spacing(times: I64) -> np.timedelta64:
    """:func:`simbroker.bars.infer_interval` of strictly increasing times, in chunks."""
    if len(times) < 2:
        return _DAY
    least = min(int(np.diff(times[a:a + CHUNK + 1]).min())
                for a in range(0, len(times) - 1, CHUNK))
    return np.timedelta64(least, "ns")


def _has_duplicates(tcodes: I64 | None, codes: I32 | None, n_times: int, n_sym: int,
                    n: int) -> bool:
    """Whether two rows share a (symbol, time) cell."""
    if tcodes is None:
        return False  # one row a time
    if codes is None:
        return n_times != n  # one symbol: a cell a time
    size = n_times * n_sym
    if _by_marks(size, n):  # mark the cells: a byte each
        seen = np.zeros(size, dtype=bool)
        for a in range(0, n, CHUNK):
            key = tcodes[a:a + CHUNK] * n_sym
            key += codes[a:a + CHUNK]
            seen[key] = True
        return int(np.count_nonzero(seen)) != n
    key = tcodes * n_sym
    key += codes
    key.sort()
    return bool((key[1:] == key[:-1]).any())


def _by_marks(size: int, n: int) -> bool:
    """Whether to find repeated cells with a byte a cell (else by sorting the rows)."""
    return size <= 4 * n + (1 << 20)


def _cells(tcodes: I64 | None, codes: I32 | None, n_times: int,
           n_sym: int) -> Index | None:
    """Each row's cell, int32 when it fits, reusing the key buffers; ``None`` when the
    rows are the times (one symbol, one row a time)."""
    if codes is None:
        if tcodes is None:
            return None
        return tcodes.astype(np.int32) if n_times <= _I32_MAX else tcodes
    n = len(codes)
    if tcodes is None:
        tcodes = np.arange(n, dtype=np.int64)
    if n_times * n_sym <= _I32_MAX:  # into the codes' own buffer, chunk by chunk
        for a in range(0, n, CHUNK):
            key = tcodes[a:a + CHUNK] * n_sym
            key += codes[a:a + CHUNK]
            codes[a:a + CHUNK] = key
        return codes
    tcodes *= n_sym
    tcodes += codes
    return tcodes


def _in_panel_order(flat: Index) -> bool:
    """Row ``i`` is cell ``i`` (time-major rows, symbols sorted within each time)."""
    return all(np.array_equal(flat[a:a + CHUNK], np.arange(a, min(a + CHUNK, len(flat))))
               for a in range(0, len(flat), CHUNK))


def _in_symbol_order(flat: Index, n_times: int, n_sym: int) -> bool:
    """Row ``i`` is time ``i % T`` of symbol ``i // T`` (each symbol's bars in one run,
    in time order, symbols sorted: how ``Bars.to_frame`` writes a panel)."""
    for a in range(0, len(flat), CHUNK):
        rows = np.arange(a, min(a + CHUNK, len(flat)))
        expect = rows % n_times
        expect *= n_sym
        expect += rows // n_times
        if not np.array_equal(flat[a:a + CHUNK], expect):
            return False
    return True


def _subset(times: I64, tcodes: I64 | None, codes: I32 | None, names: tuple[str, ...],
            rows_per: I64, *, step: np.timedelta64, symbols: list[str] | None, start: Any,
            end: Any) -> Cells | None:
    """The cells of ``symbols`` over ``start <= t < end``, as the general path keeps."""
    n_file = len(names)
    n = len(tcodes) if tcodes is not None else len(times)
    column = np.arange(n_file, dtype=np.int64)
    kept_names = names
    if symbols is not None:
        if any(s not in set(names) for s in symbols):
            return None  # the general path names the absent ones
        chosen = np.array(sorted(set(symbols)), dtype=object)
        column = np.full(n_file, -1, dtype=np.int64)
        column[np.searchsorted(np.array(names, dtype=object), chosen)] = \
            np.arange(len(chosen), dtype=np.int64)
        kept_names = tuple(str(s) for s in chosen)
    in_window = np.ones(len(times), dtype=bool)
    if start is not None:
        in_window &= times >= _data._utc_ns(start)
    if end is not None:
        in_window &= times < _data._utc_ns(end)
    used = np.zeros(len(times), dtype=bool)
    for a in range(0, n, CHUNK):
        t, c = _keys(tcodes, codes, a, n)
        kept = in_window[t] & (column[c] >= 0)
        used[t[kept]] = True
    new_time = np.cumsum(used) - 1
    n_kept = len(kept_names)
    size = int(used.sum()) * n_kept
    flat: Index = np.empty(n, dtype=np.int32 if size <= _I32_MAX else np.int64)
    filled = 0
    for a in range(0, n, CHUNK):
        t, c = _keys(tcodes, codes, a, n)
        kept = in_window[t] & (column[c] >= 0)
        flat[a:a + len(t)] = np.where(kept, new_time[t] * n_kept + column[c], -1)
        filled += int(np.count_nonzero(kept))
    return Cells(times=times[used], names=kept_names, step=step, flat=flat,
                 dense=filled == size, subset=True, file_symbols=names,
                 rows_per_symbol=rows_per, codes=codes)


def _keys(tcodes: I64 | None, codes: I32 | None, a: int, n: int) -> tuple[I64, Index]:
    """Time and symbol codes of rows ``a:a + CHUNK``."""
    stop = min(a + CHUNK, n)
    t = np.arange(a, stop, dtype=np.int64) if tcodes is None else tcodes[a:stop]
    c = np.zeros(stop - a, dtype=np.int64) if codes is None else codes[a:stop]
    return t, c
