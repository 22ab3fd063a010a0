"""The panel layout of :func:`~simbroker.data.load_bars`: long-form rows pivoted to the
wide arrays of a :class:`~simbroker.bars.Bars` (the time grid, the symbol columns, a
window or subset of symbols).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import pandas as pd

from simbroker._data_base import (
    F64,
    I64,
    BoolArray,
    IntervalLike,
    TimeLike,
    _frozen,
    _interval,
    _Long,
    _maybe_utc,
    _utc_ns,
)
from simbroker.bars import FIELDS, Bars, infer_interval
from simbroker.errors import DataError


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
