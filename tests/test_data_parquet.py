"""The Parquet fast path (``simbroker._data_parquet``) gives the general loader's panel.

Each case loads the same rows twice: from a Parquet file (the fast path) and from the
same rows as a DataFrame (the general path), and asserts the panels are identical bit for
bit; files the fast path does not take, or with a bad row, must give the general path's
error word for word.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import simbroker._data_parquet as fast_module
import simbroker._data_parquet_keys as keys_module
from simbroker.bars import FIELDS, Bars
from simbroker.data import load_bars
from simbroker.errors import DataError, DataWarning
from simbroker.synthetic import synthetic_bars


def same(a: Bars, b: Bars) -> None:
    assert a.symbols == b.symbols
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert a.interval == b.interval
    assert a.volume_known == b.volume_known
    for name in FIELDS:
        np.testing.assert_array_equal(a.field(name), b.field(name), strict=True)


def frame(order: str = "symbol", n_symbols: int = 3, n_bars: int = 40) -> pd.DataFrame:
    long = synthetic_bars(n_symbols, n_bars, seed=7).to_frame()
    if order == "time":
        long = long.sort_values(["timestamp", "symbol"], kind="stable")
    elif order == "shuffled":
        long = long.sample(frac=1.0, random_state=3)
    out: pd.DataFrame = long.reset_index(drop=True)
    return out


def through_both(tmp_path: Path, long: pd.DataFrame, monkeypatch: pytest.MonkeyPatch,
                 **kwargs: Any) -> tuple[Bars, Bars]:
    """(fast path panel, general path panel); asserts the fast path was taken."""
    path = tmp_path / "bars.parquet"
    long.to_parquet(path, index=False)
    taken: list[bool] = []
    real = fast_module._load

    def spy(*args: Any, **kw: Any) -> Any:
        out = real(*args, **kw)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(fast_module, "_load", spy)
    with warnings.catch_warnings(record=True) as fast_w:
        warnings.simplefilter("always")
        fast = load_bars(path, **kwargs)
    assert taken == [True]
    with warnings.catch_warnings(record=True) as slow_w:
        warnings.simplefilter("always")
        slow = load_bars(long, **kwargs)
    fast_msgs = [str(w.message).replace(str(path), "SRC") for w in fast_w]
    slow_msgs = [str(w.message).replace("DataFrame", "SRC") for w in slow_w]
    assert fast_msgs == slow_msgs
    return fast, slow


@pytest.mark.parametrize("order", ["symbol", "time", "shuffled"])
def test_fast_path_equals_general_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       order: str) -> None:
    same(*through_both(tmp_path, frame(order), monkeypatch))


def test_small_batches_give_the_same_panel(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_module, "BATCH_ROWS", 7)
    long = frame("shuffled")
    same(*through_both(tmp_path, long, monkeypatch))
    same(*through_both(tmp_path, long, monkeypatch, symbols=["SYM001", "SYM002"],
                       start=long["timestamp"].min() + pd.Timedelta("5D")))


def test_symbol_major_rows_are_written_run_by_run(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Bars.to_frame's order (each symbol's bars in one run) needs no cell index."""
    monkeypatch.setattr(fast_module, "BATCH_ROWS", 150)  # runs of 100 cut across batches
    kinds: list[bool] = []
    real = keys_module.read_cells

    def spy(*args: Any, **kw: Any) -> Any:
        cells = real(*args, **kw)
        assert cells is not None
        kinds.append(cells.flat is None and cells.by_symbol)
        return cells

    monkeypatch.setattr(fast_module, "read_cells", spy)
    same(*through_both(tmp_path, frame("symbol", n_symbols=4, n_bars=100), monkeypatch))
    assert kinds == [True]


@pytest.mark.parametrize("kwargs", [
    {"symbols": ["SYM002"]},
    {"start": "2015-01-10", "end": "2015-02-01"},
    {"bar_time": "close"},
    {"interval": "12h"},
    {"volume": "unknown"},
])
def test_options_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       kwargs: dict[str, Any]) -> None:
    same(*through_both(tmp_path, frame("time"), monkeypatch, **kwargs))


def test_naive_times_with_tz_ragged_symbols_and_int_volume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long = frame("time").iloc[1:-4].reset_index(drop=True)  # NaN cells in the panel
    long["timestamp"] = long["timestamp"].dt.tz_localize(None)
    long["volume"] = long["volume"].round().astype(np.int64)
    long.loc[long["symbol"] == "SYM001", "volume"] = 0  # the zero-volume warning
    long["note"] = "x"  # an unused column, reported
    fast, slow = through_both(tmp_path, long, monkeypatch, tz="America/New_York")
    same(fast, slow)
    assert np.isnan(fast.close).any()


def test_single_symbol_file_with_symbol_argument(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    long = frame("time", n_symbols=1).drop(columns="symbol")
    same(*through_both(tmp_path, long, monkeypatch, symbol="XYZ"))


def test_dictionary_encoded_symbols(tmp_path: Path) -> None:
    long = frame("time")
    table = pa.Table.from_pandas(long, preserve_index=False)
    i = table.schema.get_field_index("symbol")
    table = table.set_column(i, "symbol", table.column(i).dictionary_encode())
    path = tmp_path / "bars.parquet"
    pq.write_table(table, path, row_group_size=17)
    same(load_bars(path), load_bars(long))


def test_categories_no_row_has_are_not_symbols(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    long = frame("symbol", n_symbols=2)
    long["symbol"] = pd.Categorical(long["symbol"], categories=["SYM000", "SYM001", "ZZZ"])
    fast, slow = through_both(tmp_path, long, monkeypatch)
    same(fast, slow)
    assert fast.symbols == ("SYM000", "SYM001")


@pytest.mark.parametrize("spoil", ["high", "nan", "dup", "blank"])
def test_bad_rows_give_the_general_error(tmp_path: Path, spoil: str) -> None:
    long = frame("time")
    if spoil == "high":
        long.loc[5, "high"] = float(long["low"].iloc[5]) / 2
    elif spoil == "nan":
        long.loc[7, "close"] = np.nan
    elif spoil == "dup":
        long = pd.concat([long, long.iloc[[3]]], ignore_index=True)
    else:
        long.loc[2, "symbol"] = " "
    path = tmp_path / "bars.parquet"
    long.to_parquet(path, index=False)
    with pytest.raises(DataError) as from_file:
        load_bars(path)
    with pytest.raises(DataError) as from_frame:
        load_bars(long)
    assert str(from_file.value).replace(str(path), "SRC") == \
        str(from_frame.value).replace("DataFrame", "SRC")
    assert from_file.value.problems == from_frame.value.problems


def test_fallback_leaves_no_duplicate_warning(tmp_path: Path) -> None:
    long = frame("time")
    long["note"] = "x"
    long.loc[4, "open"] = -1.0
    path = tmp_path / "bars.parquet"
    long.to_parquet(path, index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match="open -1 <= 0"):
            load_bars(path)
    assert sum(isinstance(w.message, DataWarning) for w in caught) == 1
