"""The data layer: loading, validation, the synthetic generator, the sample, the strategies."""

from __future__ import annotations

import runpy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import simbroker.data as data_module
from simbroker.bars import FIELDS, Bars
from simbroker.data import (
    SAMPLE_DATA_PATH,
    load_bars,
    sample_bars,
    validate_bars,
)
from simbroker.errors import DataError, DataWarning
from simbroker.synthetic import synthetic_bars
from simbroker.testing.strategies import bar_panels

ROOT = Path(__file__).resolve().parents[1]
DAY = np.timedelta64(86_400_000_000_000, "ns")
MINUTE = np.timedelta64(60_000_000_000, "ns")


def assert_same_bars(a: Bars, b: Bars) -> None:
    assert a.symbols == b.symbols
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert a.timestamps.dtype == np.dtype("datetime64[ns]") == b.timestamps.dtype
    assert a.interval == b.interval
    for name in FIELDS:  # exact equality, NaN where NaN
        np.testing.assert_array_equal(a.field(name), b.field(name), strict=True)


def hand_frame(n_days: int = 5, symbols: tuple[str, ...] = ("A", "B")) -> pd.DataFrame:
    """Time-major long form: row 2*d + k is day d (from 2024-01-01), symbol k."""
    days = pd.date_range("2024-01-01", periods=n_days, freq="D", tz="UTC")
    frame: pd.DataFrame = pd.DataFrame({
        "timestamp": days.repeat(len(symbols)),
        "symbol": list(symbols) * n_days,
        "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100.0,
    })
    return frame


@pytest.fixture
def panel() -> Bars:
    return synthetic_bars(3, 40, seed=5)


# ------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_csv_round_trip_is_exact(tmp_path: Path, panel: Bars, suffix: str) -> None:
    path = tmp_path / f"bars{suffix}"
    panel.to_frame().to_csv(path, index=False)
    assert_same_bars(load_bars(path), panel)
    assert_same_bars(load_bars(str(path)), panel)


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet_round_trip_is_exact(tmp_path: Path, panel: Bars, suffix: str) -> None:
    path = tmp_path / f"bars{suffix}"
    panel.to_frame().to_parquet(path, engine="pyarrow", index=False)
    assert_same_bars(load_bars(path), panel)


def test_parquet_with_timestamp_index(tmp_path: Path, panel: Bars) -> None:
    path = tmp_path / "bars.parquet"
    panel.to_frame().set_index("timestamp").to_parquet(path, engine="pyarrow")
    assert_same_bars(load_bars(path), panel)


def test_dataframe_input_unsorted_with_extra_columns(panel: Bars) -> None:
    frame = panel.to_frame().sample(frac=1.0, random_state=3)
    frame["adj_close"] = 1.0
    frame["note"] = "x"
    with pytest.warns(DataWarning) as caught:  # never dropped unseen
        bars = load_bars(frame)
    assert_same_bars(bars, panel)
    text = " ".join(str(w.message) for w in caught)
    assert "'note' not used" in text
    assert "adjusted close ('adj_close'); the bars use the raw close" in text


def test_existing_bars_are_returned_as_is(panel: Bars) -> None:
    assert load_bars(panel) is panel


def test_pivot_leaves_nan_where_a_symbol_has_no_bar() -> None:
    frame = hand_frame(4).drop(index=[0, 5]).reset_index(drop=True)  # A day 0, B day 2
    bars = load_bars(frame)
    assert bars.symbols == ("A", "B")
    assert len(bars) == 4
    assert np.isnan(bars.close[0, 0])
    assert np.isnan(bars.volume[2, 1])
    assert np.count_nonzero(np.isnan(bars.open)) == 2
    assert not bars.close.flags.writeable


def test_symbols_are_sorted_alphabetically() -> None:
    bars = load_bars(hand_frame(2, ("MSFT", "AAPL", "IBM")))
    assert bars.symbols == ("AAPL", "IBM", "MSFT")


# ---------------------------------------------------------------- names and timestamps
def test_column_names_are_case_insensitive_with_aliases(panel: Bars) -> None:
    frame = panel.to_frame().rename(columns={
        "timestamp": "Date", "symbol": "Ticker", "open": "OPEN", "high": "High",
        "low": " low ", "close": "Close", "volume": "VOLUME"})
    assert_same_bars(load_bars(frame), panel)


@pytest.mark.parametrize("name", ["date", "datetime", "time", "Timestamp"])
def test_timestamp_aliases(name: str) -> None:
    frame = hand_frame(3).rename(columns={"timestamp": name})
    assert len(load_bars(frame)) == 3


def test_ambiguous_columns_are_refused() -> None:
    frame = hand_frame(3)
    frame["date"] = frame["timestamp"]
    with pytest.raises(DataError, match="'timestamp' and 'date' both mean 'timestamp'"):
        load_bars(frame)


def test_frame_without_symbol_column_needs_symbol() -> None:
    frame = hand_frame(3, ("A",)).drop(columns="symbol")
    with pytest.raises(DataError, match=r"missing required column symbol.*symbol='XYZ'"):
        load_bars(frame)
    bars = load_bars(frame, symbol="XYZ")
    assert bars.symbols == ("XYZ",)
    assert len(bars) == 3


def test_symbol_keyword_must_match_symbol_column() -> None:
    assert load_bars(hand_frame(3, ("A",)), symbol="A").symbols == ("A",)
    with pytest.raises(DataError, match="symbol='A' was given but DataFrame has other"):
        load_bars(hand_frame(3), symbol="A")


def test_single_symbol_frame_indexed_by_date() -> None:
    frame = hand_frame(3, ("A",)).drop(columns="symbol").set_index("timestamp")
    frame.index.name = None
    bars = load_bars(frame, symbol="A")
    assert str(bars.index[0]) == "2024-01-01 00:00:00+00:00"


def test_naive_timestamps_are_utc() -> None:
    bars = load_bars(hand_frame(2))
    assert bars.timestamps[0] == np.datetime64("2024-01-01T00:00", "ns")
    assert str(bars.index.tz) == "UTC"


def test_aware_timestamps_are_converted_to_utc() -> None:
    frame = hand_frame(2, ("A",))
    frame["timestamp"] = (pd.DatetimeIndex(frame["timestamp"]).tz_localize(None)
                          + pd.Timedelta("9h30min")).tz_localize("America/New_York")
    bars = load_bars(frame)
    assert bars.timestamps[0] == np.datetime64("2024-01-01T14:30", "ns")


def test_iso_strings_with_offsets_are_converted_to_utc() -> None:
    frame = hand_frame(2, ("A",))
    frame["timestamp"] = ["2024-01-02T09:30:00-05:00", "2024-01-02T10:30:00-05:00"]
    bars = load_bars(frame)
    np.testing.assert_array_equal(bars.timestamps, np.array(
        ["2024-01-02T14:30", "2024-01-02T15:30"], dtype="datetime64[ns]"))
    assert bars.interval == np.timedelta64(3_600_000_000_000, "ns")


def test_mixed_iso_forms_parse_and_numbers_are_refused() -> None:
    frame = hand_frame(2, ("A",))
    frame["timestamp"] = ["2024-01-02", "2024-01-02 09:30"]
    assert load_bars(frame, tz="UTC").interval == np.timedelta64(34_200_000_000_000, "ns")
    frame["timestamp"] = [1, 2]
    with pytest.raises(DataError, match=r"timestamps of DataFrame are numbers \(int64\)"):
        load_bars(frame)


def test_empty_frame_gives_empty_bars() -> None:
    bars = load_bars(hand_frame().iloc[:0])
    assert (len(bars), bars.n_symbols) == (0, 0)


def test_microsecond_timestamps_become_nanoseconds() -> None:
    frame = hand_frame(3)
    frame["timestamp"] = frame["timestamp"].dt.tz_localize(None).astype("datetime64[us]")
    bars = load_bars(frame, tz="UTC")
    assert bars.timestamps.dtype == np.dtype("datetime64[ns]")
    assert bars.timestamps[1] == np.datetime64("2024-01-02", "ns")


# --------------------------------------------------------------------------- interval
def test_interval_is_inferred() -> None:
    assert load_bars(hand_frame(3)).interval == DAY
    minute = synthetic_bars(2, 30, freq="1min", seed=1)
    assert load_bars(minute.to_frame()).interval == MINUTE


def test_interval_override() -> None:
    minute = synthetic_bars(1, 30, freq="1min", seed=1).to_frame()
    assert load_bars(minute, interval="30s").interval == np.timedelta64(30_000_000_000, "ns")
    assert load_bars(hand_frame(1), interval="1h").interval == np.timedelta64(
        3_600_000_000_000, "ns")
    with pytest.raises(DataError, match="longer than the smallest spacing"):
        load_bars(minute, interval="5min")
    with pytest.raises(ValueError, match="interval='soon'"):
        load_bars(minute, interval="soon")


# --------------------------------------------------------------------------- subsetting
def test_subset_by_symbols_start_and_end(panel: Bars) -> None:
    frame = panel.to_frame()
    t = panel.timestamps
    start, end = pd.Timestamp(t[5]), pd.Timestamp(t[15])
    bars = load_bars(frame, symbols=["SYM002", "SYM000"], start=start, end=end)
    assert bars.symbols == ("SYM000", "SYM002")
    np.testing.assert_array_equal(bars.timestamps, t[5:15])  # start in, end out
    np.testing.assert_array_equal(bars.close, panel.close[5:15][:, [0, 2]])
    assert_same_bars(load_bars(panel, symbols=["SYM002", "SYM000"], start=start, end=end),
                     bars)
    assert_same_bars(load_bars(frame, symbols="SYM001"), panel.select(["SYM001"]))


def test_subset_keeps_the_union_of_the_selected_symbols_times() -> None:
    frame = hand_frame(4).drop(index=[2]).reset_index(drop=True)  # A has no day 1
    bars = load_bars(frame, symbols=["A"])
    assert len(bars) == 3
    assert not np.isnan(bars.close).any()
    assert_same_bars(load_bars(load_bars(frame), symbols=["A"]), bars)


def test_subset_accepts_aware_bounds(panel: Bars) -> None:
    start = pd.Timestamp(panel.timestamps[3]).tz_localize("UTC").tz_convert("Asia/Tokyo")
    assert load_bars(panel.to_frame(), start=start).timestamps[0] == panel.timestamps[3]


def test_subset_unknown_symbol(panel: Bars) -> None:
    with pytest.raises(DataError, match="symbols not in DataFrame: NOPE"):
        load_bars(panel.to_frame(), symbols=["SYM000", "NOPE"])
    with pytest.raises(DataError, match="NOPE"):
        load_bars(panel, symbols=["NOPE"])


# --------------------------------------------------------------------------- validation
def _problem(frame: pd.DataFrame) -> dict[str, Any]:
    with pytest.raises(DataError) as info:
        load_bars(frame, tz="UTC")
    err = info.value
    assert str(err).startswith("1 bad row in DataFrame\n")
    assert len(err.problems) == 1
    p = err.problems[0]
    assert set(p) == {"row", "symbol", "timestamp", "field", "reason"}
    assert f"row={p['row']}" in str(err)
    assert p["reason"] in str(err)
    with pytest.raises(DataError):
        validate_bars(frame)
    return p


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("open", np.nan, "missing open"),
    ("high", np.inf, "high inf is not finite"),
    ("low", -np.inf, "low -inf is not finite"),
    ("close", 0.0, "close 0 <= 0"),
    ("low", -1.5, "low -1.5 <= 0"),
    ("volume", -5.0, "volume -5 < 0"),
    ("volume", np.nan, "missing volume"),
    ("high", 10.2, "high 10.2 < close 10.5"),
    ("high", 9.9, "high 9.9 < open 10"),
    ("low", 10.2, "low 10.2 > open 10"),
    ("open", 8.5, "low 9 > open 8.5"),
    ("close", 11.25, "high 11 < close 11.25"),
])
def test_each_rule_names_row_symbol_timestamp_field(field: str, value: float,
                                                    reason: str) -> None:
    frame = hand_frame()
    frame.loc[7, field] = value  # day 3, symbol B
    p = _problem(frame)
    expected_field = reason.split()[0] if "missing" not in reason else field
    assert p == {"row": 7, "symbol": "B", "timestamp": "2024-01-04T00:00:00+00:00",
                 "field": expected_field, "reason": reason}


def test_high_below_low_is_caught() -> None:
    frame = hand_frame()
    frame.loc[4, ["open", "high", "low", "close"]] = [10.0, 9.0, 11.0, 10.0]
    assert _problem(frame)["field"] in ("high", "low")


def test_zero_volume_and_flat_bars_are_valid() -> None:
    frame = hand_frame()
    frame.loc[3, ["open", "high", "low", "close", "volume"]] = [10.0, 10.0, 10.0, 10.0, 0.0]
    validate_bars(frame)


def test_missing_symbol_and_bad_strings() -> None:
    frame = hand_frame()
    frame.loc[6, "symbol"] = None
    assert _problem(frame) == {"row": 6, "symbol": None,
                               "timestamp": "2024-01-04T00:00:00+00:00",
                               "field": "symbol", "reason": "missing symbol"}
    frame = hand_frame()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d").astype(object)
    frame.loc[6, "timestamp"] = "not a date"
    p = _problem(frame)
    assert (p["row"], p["symbol"], p["timestamp"], p["field"]) == (6, "A", None, "timestamp")
    assert p["reason"] == "cannot parse timestamp 'not a date'"
    frame = hand_frame()
    frame["close"] = frame["close"].astype(object)
    frame.loc[2, "close"] = "n/a!"
    assert _problem(frame)["reason"] == "close 'n/a!' is not a number"


def test_duplicates_are_errors_naming_the_first_row() -> None:
    frame = pd.concat([hand_frame(), hand_frame().iloc[[3]]], ignore_index=True)
    assert _problem(frame) == {"row": 10, "symbol": "B",
                               "timestamp": "2024-01-02T00:00:00+00:00",
                               "field": "timestamp",
                               "reason": "duplicate bar: row 3 has the same symbol and timestamp"}


def test_rows_are_numbered_as_given_in_unsorted_input() -> None:
    frame = hand_frame()
    frame.loc[7, "high"] = 10.0
    shuffled = frame.iloc[::-1]  # index labels stay, positions reverse
    p = _problem(shuffled)
    assert p["row"] == len(frame) - 1 - 7
    assert p["symbol"] == "B"


def test_at_most_ten_problems_in_row_order() -> None:
    frame = hand_frame(20)
    bad = [1, 4, 5, 8, 11, 13, 17, 19, 22, 23, 25, 30, 31, 36, 39]
    frame.loc[bad, "volume"] = -1.0
    with pytest.raises(DataError, match=r"^15 bad rows in DataFrame \(first 10 shown\)") as info:
        load_bars(frame)
    assert [p["row"] for p in info.value.problems] == bad[:10]
    assert str(info.value).count("\n  - ") == 10


def test_validation_error_names_the_file(tmp_path: Path) -> None:
    frame = hand_frame()
    frame.loc[1, "low"] = 12.0
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=f"1 bad row in {path}"):
        load_bars(path)


def test_bad_strings_in_a_csv_file_are_located(tmp_path: Path) -> None:
    frame = hand_frame()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d").astype(object)
    frame["close"] = frame["close"].astype(object)
    frame.loc[3, "timestamp"] = "2024-13-45"
    frame.loc[8, "close"] = "n/a!"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=f"2 bad rows in {path}") as info:
        load_bars(path, tz="UTC")
    assert [(p["row"], p["field"]) for p in info.value.problems] == [
        (3, "timestamp"), (8, "close")]


def test_short_and_unreadable_csv_files(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("timestamp,symbol,open,high,low,close,volume\n"
                    "2024-01-01,A,1,1,1,1,1\n2024-01-02,A,1,1\n")
    with pytest.raises(DataError, match="missing low"):
        load_bars(path, tz="UTC")
    path = tmp_path / "broken.csv.gz"
    path.write_text("not gzip")
    with pytest.raises(DataError, match="cannot read bars from"):
        load_bars(path)


def test_validate_bars_accepts_valid_frames_and_bars(panel: Bars) -> None:
    validate_bars(panel.to_frame())
    validate_bars(panel)
    validate_bars(panel.to_frame().drop(columns="symbol").iloc[:0], symbol="X")


def test_missing_columns_are_named_with_the_columns_found() -> None:
    frame = hand_frame().drop(columns=["high", "volume"])
    with pytest.raises(DataError) as info:
        load_bars(frame)
    msg = str(info.value)
    assert "missing required columns high, volume" in msg
    assert ("its header: timestamp (timestamp), symbol (symbol), open (open), low (low), "
            "close (close)") in msg


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"bar file not found: .*nope\.csv"):
        load_bars(tmp_path / "nope.csv")
    (tmp_path / "bars.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"cannot load bars from .*bars\.xlsx: unknown file"):
        load_bars(tmp_path / "bars.xlsx")
    with pytest.raises(TypeError, match="got int"):
        load_bars(42)  # type: ignore[arg-type]


def test_unreadable_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read bars from"):
        load_bars(path)


# ---------------------------------------------------------------------------- synthetic
def test_synthetic_is_deterministic_per_seed() -> None:
    a, b, c = synthetic_bars(4, 100, seed=1), synthetic_bars(4, 100, seed=1), synthetic_bars(
        4, 100, seed=2)
    assert_same_bars(a, b)
    assert not np.array_equal(a.close, c.close)
    assert len(set(a.close[0])) == 4  # symbols start at different prices


def test_synthetic_daily_shape_and_timestamps() -> None:
    bars = synthetic_bars()
    assert (len(bars), bars.n_symbols) == (2520, 10)
    assert bars.symbols[:2] == ("SYM000", "SYM001")
    assert bars.interval == DAY
    idx = bars.index
    assert idx[0] == pd.Timestamp("2015-01-02", tz="UTC")
    assert (idx.day_of_week < 5).all()
    assert (idx == idx.normalize()).all()
    assert set(np.diff(bars.ts_ns) // DAY.astype(np.int64)) == {1, 3}
    validate_bars(bars)


def test_synthetic_minute_bars_follow_the_us_session() -> None:
    bars = synthetic_bars(2, 780, freq="1min", start="2024-01-06", seed=3)  # a Saturday
    idx = bars.index
    assert bars.interval == MINUTE
    assert str(idx[0]) == "2024-01-08 14:30:00+00:00"  # rolls to Monday
    assert str(idx[389]) == "2024-01-08 20:59:00+00:00"
    assert str(idx[390]) == "2024-01-09 14:30:00+00:00"
    validate_bars(bars)
    big = synthetic_bars(1, 500_000, freq="1min")
    days = big.index.normalize().unique()
    assert len(days) == 1283
    assert (days.day_of_week < 5).all()


def test_synthetic_has_gaps_wicks_and_positive_volume() -> None:
    bars = synthetic_bars(5, 500, seed=4)
    o, h, lo, c, v = (bars.field(f) for f in FIELDS)
    assert (o[1:] != c[:-1]).mean() > 0.99
    jump = np.abs(np.log(o[1:] / c[:-1])) > 2 * 0.2 / np.sqrt(252)
    assert 0.005 < jump.mean() < 0.05  # about gap_probability = 2 %
    assert (h > np.maximum(o, c)).mean() > 0.99
    assert (lo < np.minimum(o, c)).mean() > 0.99
    assert (v > 0).all()
    assert (v == np.round(v)).all()
    flat = synthetic_bars(2, 50, gap_probability=0.0, wick_scale=0.0)
    np.testing.assert_array_equal(flat.high, np.maximum(flat.open, flat.close))


def test_synthetic_symbol_names_widen() -> None:
    assert synthetic_bars(1001, 2).symbols[-1] == "SYM1000"
    assert synthetic_bars(1000, 2).symbols[-1] == "SYM999"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_symbols": 0}, "n_symbols must be >= 1, got 0"),
    ({"n_bars": 2.5}, "n_bars must be an int, got 2.5"),
    ({"s0": -1.0}, "s0 must be > 0, got -1.0"),
    ({"volatility": float("nan")}, "volatility must be a finite number, got nan"),
    ({"gap_probability": 1.5}, "gap_probability must be <= 1, got 1.5"),
    ({"freq": "fortnightly"}, "freq='fortnightly'"),
    ({"freq": "8h"}, "freq='8h' is longer than the 6.5 h session"),
])
def test_synthetic_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        synthetic_bars(**kwargs)


# ------------------------------------------------------------------------- strategies
@settings(max_examples=60, deadline=None)
@given(st.booleans().flatmap(lambda holes: bar_panels(allow_missing=holes)))
def test_bar_panels_are_valid_and_round_trip(bars: Bars) -> None:
    validate_bars(bars)
    with warnings.catch_warnings():  # zero volume on most bars is allowed here
        warnings.simplefilter("ignore", DataWarning)
        assert_same_bars(load_bars(bars.to_frame()), bars)


@settings(max_examples=30, deadline=None)
@given(bar_panels(n_symbols=2, n_bars=st.integers(2, 12), min_price=5.0, max_price=6.0,
                  allow_gaps=False, allow_flat=False, allow_zero_volume=False))
def test_bar_panel_options(bars: Bars) -> None:
    o, h, lo, c, v = (bars.field(f) for f in FIELDS)
    assert bars.symbols == ("A", "B")
    assert (h > lo).all()
    assert (v >= 1).all()
    assert (lo >= 5.0).all()
    assert (h <= 6.0).all()
    np.testing.assert_array_equal(o[1:], c[:-1])


@settings(max_examples=30, deadline=None)
@given(bar_panels(n_symbols=3, n_bars=6, allow_missing=True))
def test_bar_panel_holes_are_whole_bars(bars: Bars) -> None:
    holes = np.isnan(bars.close)
    for name in FIELDS:
        np.testing.assert_array_equal(np.isnan(bars.field(name)), holes)
    assert not holes.all(axis=0).any()
    assert not holes.all(axis=1).any()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_symbols": 0}, "n_symbols=0 must be 1..26"),
    ({"n_symbols": 27}, "n_symbols=27 must be 1..26"),
    ({"n_bars": "3"}, "n_bars='3' must be an int or a strategy"),
    ({"min_price": -1.0}, "min_price=-1.0 must be a finite number > 0"),
    ({"min_price": 10.0, "max_price": 5.0}, "max_price=5.0 must exceed min_price=10.0"),
    ({"allow_gaps": "yes"}, "allow_gaps='yes' must be True or False"),
])
def test_bar_panels_reject_bad_arguments_at_once(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        bar_panels(**kwargs)


# ------------------------------------------------------------------------------ sample
def test_sample_data() -> None:
    bars = sample_bars()
    assert bars.symbols == ("AAPL", "FB", "GOOG", "IBM", "MSFT")
    assert len(bars) == 1300
    assert bars.interval == DAY
    assert str(bars.index[0].date()) == "2008-01-02"
    assert str(bars.index[-1].date()) == "2013-03-01"
    fb = bars.close[:, bars.symbol_index("FB")]
    first_fb = int(np.flatnonzero(~np.isnan(fb))[0])
    assert str(bars.index[first_fb].date()) == "2012-05-18"
    assert np.count_nonzero(~np.isnan(bars.close)) == 5396
    assert sample_bars() is bars  # loaded once


def test_sample_file_is_long_form_csv() -> None:
    assert SAMPLE_DATA_PATH == ROOT / "simbroker" / "sample_data" / "sample_daily.csv"
    with SAMPLE_DATA_PATH.open() as f:
        assert f.readline() == "timestamp,symbol,open,high,low,close,volume\n"
        assert f.readline() == ("2008-01-02T00:00:00Z,AAPL,199.27,200.26,192.55,194.84,"
                                "38542100\n")


def test_missing_sample_file_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data_module, "_SAMPLE_RESOURCE", ("simbroker", "sample_data/gone.csv"))
    data_module._sample_bars_cached.cache_clear()
    try:
        with pytest.raises(DataError, match=r"looked for sample_data/gone\.csv in the simbroker"):
            sample_bars()
    finally:
        data_module._sample_bars_cached.cache_clear()


@pytest.mark.sample_data
def test_make_sample_reproduces_the_file_byte_for_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("bokeh_sampledata", reason='pip install -e ".[sample]" to prove it')
    script = runpy.run_path(str(ROOT / "data" / "make_sample.py"), run_name="make_sample")
    out = tmp_path / "sample.csv"
    script["main"](["make_sample.py", str(out)])
    assert out.read_bytes() == SAMPLE_DATA_PATH.read_bytes()
    assert "5396 rows" in capsys.readouterr().out


# ------------------------------------ ambiguous columns in every format (issue 14)
@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet", "frame"])
@pytest.mark.parametrize(("first", "second", "field"), [
    ("Close", "close", "close"), ("close", " CLOSE ", "close"), ("close", "close", "close"),
    ("Date", "timestamp", "timestamp"), ("Ticker", "symbol", "symbol"),
    ("volume", "Volume", "volume"),
])
def test_duplicate_recognised_columns_are_refused_in_every_format(
        tmp_path: Path, fmt: str, first: str, second: str, field: str) -> None:
    frame = hand_frame(3)
    other = frame[field].copy()
    if field in FIELDS:
        other = other * 3  # a second close that disagrees: it must never be picked silently
    columns = [first if c == field else c for c in frame.columns]
    body = pd.DataFrame([list(r) for r in frame.itertuples(index=False)], columns=columns)
    body.insert(len(columns), second, other.to_numpy(), allow_duplicates=True)
    if fmt == "frame":
        source: Any = body
    elif fmt == "parquet":
        if first == second:
            pytest.skip("a Parquet file cannot hold two columns of the same name from pandas")
        source = tmp_path / "bars.parquet"
        body.to_parquet(source)
    else:
        source = tmp_path / f"bars.{fmt}"
        body.to_csv(source, index=False)
    with pytest.raises(DataError, match="ambiguous columns in") as exc:
        load_bars(source)
    assert f"{first!r} and {second!r} both mean {field!r}" in str(exc.value)
    if fmt != "frame":
        assert str(source) in str(exc.value)


def test_unparsable_timestamps_are_data_errors_not_pandas_warnings() -> None:
    # pandas warns "Could not infer format" and parses element by element; under
    # filterwarnings = error that warning escaped load_bars as an exception.
    frame = hand_frame(2, ("A",))
    frame["timestamp"] = pd.Series(["2024-02-01 09:30", "Z"], dtype=object)
    with pytest.raises(DataError, match="1 bad row") as exc:
        load_bars(frame, tz="UTC")
    assert exc.value.problems[0]["reason"] == "cannot parse timestamp 'Z'"


@pytest.mark.parametrize("number", [5, 1.5, True, np.int64(7), 2**70])
def test_a_number_among_timestamp_objects_is_a_bad_row(number: Any) -> None:
    # A numeric column is refused; a number inside an object column was read as
    # nanoseconds since 1970 (and pandas warns that this reading will change).
    frame = hand_frame(2, ("A",))
    frame["timestamp"] = pd.Series(["2024-02-01", number], dtype=object)
    with pytest.raises(DataError, match="1 bad row") as exc:
        load_bars(frame, tz="UTC")
    assert exc.value.problems[0]["row"] == 1
    assert exc.value.problems[0]["reason"].startswith("cannot parse timestamp")
