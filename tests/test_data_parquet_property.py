"""Property: on any valid Parquet file the fast path gives the general path's Bars.

Hypothesis writes random valid long-form files (1 to many symbols, missing cells,
rows in symbol, time or random order, one to many row groups, several timestamp units
and zones, string, large-string or dictionary symbols or none, float or integer volume)
and loads each twice from the same file: through the fast path
(:mod:`simbroker._data_parquet`, with small batches and chunks so every loop turns) and
through the general path (the fast path switched off). Values, timestamps, symbols,
interval and warnings must be identical, bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import simbroker._data_parquet as fast_module
import simbroker._data_parquet_keys as keys_module
from simbroker.bars import FIELDS, Bars
from simbroker.data import load_bars

PROPERTY = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "80")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

NAMES = ["AAA", "BB", "C", "DDDD", "E.X", "FF-1", "gg", "HH"]
SPACINGS = {"1min": 60, "1h": 3_600, "1D": 86_400}
ORIGIN = np.datetime64("2021-03-01T00:00:00", "s")


@st.composite
def files(draw: st.DrawFn) -> dict[str, Any]:
    """A valid long-form table, how to write it and how to load it."""
    n_symbols = draw(st.integers(1, 6))
    names = draw(st.permutations(NAMES))[:n_symbols]
    n_times = draw(st.integers(1, 25))
    spacing = draw(st.sampled_from(sorted(SPACINGS)))
    grid = ORIGIN + np.arange(n_times) * np.timedelta64(SPACINGS[spacing], "s")
    rows: list[tuple[np.datetime64, str]] = []
    full = draw(st.booleans())  # every cell, or missing cells
    for name in names:  # each symbol on a non-empty subset of the grid
        have = [True] * n_times if full else draw(
            st.lists(st.booleans(), min_size=n_times, max_size=n_times))
        have[draw(st.integers(0, n_times - 1))] = True
        rows += [(grid[i], name) for i in range(n_times) if have[i]]
    order = draw(st.sampled_from(["as drawn", "symbol", "time", "shuffled"]))
    if order == "symbol":
        rows.sort(key=lambda r: (r[1], r[0]))
    elif order == "time":
        rows.sort(key=lambda r: (r[0], r[1]))
    elif order == "shuffled":
        rows = [rows[i] for i in draw(st.permutations(range(len(rows))))]
    n = len(rows)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    o = np.round(rng.uniform(1.0, 200.0, n), 2)
    c = np.round(o * rng.uniform(0.95, 1.05, n), 2)
    h = np.maximum(o, c) + np.round(rng.uniform(0.0, 2.0, n), 2)
    low = np.minimum(o, c) - np.round(rng.uniform(0.0, 0.5, n), 2)
    zero_share = draw(st.sampled_from([0.0, 0.3, 1.0]))
    vol = np.where(rng.uniform(size=n) < zero_share, 0, rng.integers(1, 10_000, n))
    return {
        "times": np.array([r[0] for r in rows], dtype="datetime64[ns]"),
        "symbols": [r[1] for r in rows],
        "open": o, "high": h, "low": low, "close": c, "volume": vol,
        "names": sorted(names),
        "grid": grid,
        "spacing": spacing,
        "stamps": draw(st.sampled_from(["utc-ns", "utc-us", "ny-ms", "naive-utc",
                                        "naive-dates"])),
        "symbol_type": draw(st.sampled_from(
            ["string", "large_string", "dictionary", "unused categories", "padded"]
            + (["absent"] if n_symbols == 1 else []))),
        "volume_type": draw(st.sampled_from(["float", "int", "absent"])),
        "extra": draw(st.booleans()),
        "row_group": draw(st.integers(1, max(1, n))),
        "batch": draw(st.integers(1, 40)),
        "chunk": draw(st.integers(1, 40)),
        "marks": draw(st.booleans()),
        "run": draw(st.sampled_from([1, 3, 64])),
        "bar_time": draw(st.sampled_from(["open", "close"])),
        "interval": draw(st.booleans()),
        "subset": draw(st.sampled_from(["none", "symbols", "window", "both"])),
        "subset_names": draw(st.lists(st.sampled_from(sorted(names)), min_size=1,
                                      unique=True)),
        "cut": sorted(draw(st.lists(st.integers(0, n_times), min_size=2, max_size=2))),
    }


SPOILS = ["duplicate", "high below low", "nan", "inf", "negative", "null time",
          "null price", "null symbol", "blank symbol"]


def write(spec: dict[str, Any], path: Path, spoil: tuple[str, int] | None = None
          ) -> dict[str, Any]:
    """Write the file, with one bad row when ``spoil`` is (kind, row); returns the
    load_bars keyword arguments that read it."""
    kwargs: dict[str, Any] = {"bar_time": spec["bar_time"]}
    times = spec["times"]
    stamps = spec["stamps"]
    if stamps == "naive-dates":  # dates at midnight: day stamps, whatever the spacing
        times = ORIGIN.astype("datetime64[ns]") + (times - times.min()) // np.timedelta64(
            SPACINGS[spec["spacing"]], "s") * np.timedelta64(1, "D")
    symbols = list(spec["symbols"])
    values = {name: np.array(spec[name], dtype=np.float64) for name in FIELDS}
    n = len(symbols)
    null = {name: np.zeros(n, dtype=bool) for name in ("time", "symbol", *FIELDS)}
    kind, row = spoil if spoil is not None else ("", 0)
    row %= n
    price = FIELDS[row % 4]
    if kind == "duplicate":  # row again, somewhere later
        at = (row * 7) % n + 1
        times = np.insert(times, at, times[row])
        symbols.insert(at, symbols[row])
        values = {k: np.insert(v, at, v[row]) for k, v in values.items()}
        null = {k: np.insert(v, at, False) for k, v in null.items()}
    elif kind == "high below low":
        values["high"][row] = values["low"][row] / 2
    elif kind in ("nan", "inf", "negative"):
        values[price][row] = {"nan": np.nan, "inf": np.inf, "negative": -1.0}[kind]
    elif kind == "null time":
        null["time"][row] = True
    elif kind == "null price":
        null[price][row] = True
    elif kind == "null symbol":
        null["symbol"][row] = True
    elif kind == "blank symbol":
        symbols[row] = "  "
    ns = times.view(np.int64)
    if stamps == "utc-ns":
        column = pa.array(ns, pa.timestamp("ns", "UTC"), mask=null["time"])
    elif stamps == "utc-us":
        column = pa.array(ns // 1000, pa.timestamp("us", "UTC"), mask=null["time"])
    elif stamps == "ny-ms":
        column = pa.array(ns // 10**6, pa.timestamp("ms", "America/New_York"),
                          mask=null["time"])
    else:
        column = pa.array(ns, pa.timestamp("ns"), mask=null["time"])
        kwargs["tz"] = "UTC" if stamps == "naive-utc" else "America/New_York"
    table: dict[str, Any] = {"Date": column}
    kind = spec["symbol_type"]
    if kind == "absent":
        kwargs["symbol"] = spec["names"][0]
    else:
        if kind == "padded":
            symbols = [f" {s} " for s in symbols]
        array = pa.array(symbols, pa.large_string() if kind == "large_string" else pa.string(),
                         mask=null["symbol"])
        if kind == "dictionary":
            array = array.dictionary_encode()
        elif kind == "unused categories":  # names no row has (a pandas Categorical's)
            written = array.to_pylist()
            categories = NAMES + sorted({w for w in written if w is not None} - set(NAMES))
            array = pa.DictionaryArray.from_arrays(
                pa.array([None if w is None else categories.index(w) for w in written],
                         pa.int32()), pa.array(categories))
        table["Ticker"] = array
    for name in ("open", "high", "low", "close"):
        table[name.capitalize()] = pa.array(values[name], mask=null[name])
    if spec["volume_type"] == "absent":
        kwargs["volume"] = "unknown"
    else:
        vol = values["volume"]
        if spec["volume_type"] == "int":
            vol = np.nan_to_num(vol, nan=0.0, posinf=0.0).astype(np.int64)
        table["Volume"] = pa.array(vol, mask=null["volume"])
    if spec["extra"]:
        table["note"] = pa.array(["x"] * len(symbols))
    pq.write_table(pa.table(table), path, row_group_size=spec["row_group"])
    if spec["interval"] and stamps != "naive-dates":
        kwargs["interval"] = spec["spacing"]
    if spec["subset"] in ("symbols", "both"):
        kwargs["symbols"] = spec["subset_names"]
    if spec["subset"] in ("window", "both"):
        lo, hi = spec["cut"]
        grid = spec["grid"]
        if lo < len(grid):
            kwargs["start"] = pd.Timestamp(grid[lo]).tz_localize("UTC")
        if hi < len(grid):
            kwargs["end"] = pd.Timestamp(grid[hi]).tz_localize("UTC")
    return kwargs


@contextlib.contextmanager
def fast_path(batch: int, chunk: int, marks: bool, run: int) -> Iterator[list[bool]]:
    """The fast path with tiny batches, chunks and symbol runs, finding repeated cells by
    marks or by sorting; yields whether each load took it."""
    taken: list[bool] = []
    real = fast_module._load

    def spy(*args: Any, **kw: Any) -> Any:
        out = real(*args, **kw)
        taken.append(out is not None)
        return out

    real_cells = keys_module.read_cells

    def cells_spy(*args: Any, **kw: Any) -> Any:
        cells = real_cells(*args, **kw)
        if cells is not None:
            event("subset" if cells.subset else "rows scattered" if cells.flat is not None
                  else "rows symbol-major" if cells.by_symbol else "rows in panel order")
            event("dense" if cells.dense else "missing cells")
        return cells

    with mock.patch.object(fast_module, "_load", spy), \
            mock.patch.object(fast_module, "read_cells", cells_spy), \
            mock.patch.object(fast_module, "BATCH_ROWS", batch), \
            mock.patch.object(fast_module, "CELLS_CHUNK", chunk), \
            mock.patch.object(keys_module, "CHUNK", chunk), \
            mock.patch.object(keys_module, "SYMBOL_RUN", run), \
            mock.patch.object(keys_module, "_by_marks", return_value=marks):
        yield taken


def load(path: Path, kwargs: dict[str, Any]) -> tuple[Any, list[tuple[type, str]]]:
    """(the bars, or the error's type and message; the warnings raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out: Any = load_bars(path, **kwargs)
        except Exception as exc:  # compared with the other path's, word for word
            out = (type(exc), str(exc))
    return out, [(type(w.message), str(w.message)) for w in caught]


def assert_same(a: Bars, b: Bars) -> None:
    assert a.symbols == b.symbols
    np.testing.assert_array_equal(a.timestamps, b.timestamps, strict=True)
    assert a.interval == b.interval
    assert a.volume_known == b.volume_known
    for name in FIELDS:
        np.testing.assert_array_equal(a.field(name), b.field(name), strict=True)


def both(spec: dict[str, Any], spoil: tuple[str, int] | None = None
         ) -> tuple[Any, Any, list[Any], list[Any], list[bool]]:
    """(general result, fast result, their warnings, whether the fast path took it)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.parquet"
        kwargs = write(spec, path, spoil)
        with mock.patch.object(fast_module, "_load", return_value=None):
            slow, slow_warnings = load(path, kwargs)
        with fast_path(spec["batch"], spec["chunk"], spec["marks"], spec["run"]) as taken:
            fast, fast_warnings = load(path, kwargs)
    return slow, fast, slow_warnings, fast_warnings, taken


@PROPERTY
@given(spec=files())
def test_fast_path_gives_the_general_paths_bars(spec: dict[str, Any]) -> None:
    slow, fast, slow_warnings, fast_warnings, taken = both(spec)
    assert fast_warnings == slow_warnings
    if not isinstance(slow, Bars):  # nothing left to keep, say: the same error
        event(f"both refuse: {slow[0].__name__}")
        assert fast == slow
        return
    assert taken == [True]
    assert_same(fast, slow)


@PROPERTY
@given(spec=files(), kind=st.sampled_from(SPOILS), row=st.integers(0, 10**6))
def test_a_bad_row_gives_the_general_paths_error(spec: dict[str, Any], kind: str,
                                                 row: int) -> None:
    assume(spec["symbol_type"] != "absent" or "symbol" not in kind)
    slow, fast, slow_warnings, fast_warnings, taken = both(spec, (kind, row))
    assert taken == [False]  # refused before warning: the general path reports it
    assert fast_warnings == slow_warnings
    assert not isinstance(slow, Bars), f"{kind} row {row} was not refused"
    event(f"{kind}: {slow[0].__name__}")
    assert fast == slow
