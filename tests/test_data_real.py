"""Real files as users bring them (issue 17): tiny fixtures shaped like the real exports.

The files under ``tests/data/`` are written by hand in the shapes of a Yahoo Finance
export, a NinjaTrader minute export (``;``, no header, close-stamped), CME futures minutes
in exchange-local time across the Sunday 17:00 CT open, an S&P 500 index minute file
with an odd column order, ``timestamp_utc`` and zero volume, ``dd/mm`` dates, a file
mixing naive and aware times, a MetaStock ``<DATE>,<TIME>`` export and a header alone.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_vectorized import assert_exact, cases

import simbroker
from simbroker import Bars, DataError, DataWarning, load_bars
from simbroker.config import PaperConfig
from simbroker.errors import ConfigError
from simbroker.vectorized import TargetPositions, backtest_vectorized

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
MINUTE = np.timedelta64(60_000_000_000, "ns")
DAY = np.timedelta64(86_400_000_000_000, "ns")


def utc(*stamps: str) -> np.ndarray:
    return np.array(stamps, dtype="datetime64[ns]")


def quiet_load(source: Any, **kw: Any) -> Bars:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return load_bars(source, **kw)


# ------------------------------------------------------------------------ Yahoo export
def test_yahoo_export_needs_a_symbol_and_says_how_on_both_sides() -> None:
    with pytest.raises(DataError) as info:
        load_bars(DATA / "yahoo_daily.csv", tz="America/New_York")
    msg = str(info.value)
    assert "missing required column symbol" in msg
    assert "--symbol XYZ on the command line" in msg
    assert "symbol='XYZ' in Python" in msg
    # the whole header, each column with what it was read as
    assert ("its header: Date (timestamp), Open (open), High (high), Low (low), "
            "Close (close), Adj Close (adj_close), Volume (volume)") in msg


def test_yahoo_dates_need_a_zone() -> None:
    with pytest.raises(DataError, match=r"naive \(no time zone\), e\.g\. row 0 '2024-01-02'"):
        load_bars(DATA / "yahoo_daily.csv", symbol="AAPL")


def test_yahoo_adj_close_is_never_dropped_unseen() -> None:
    with pytest.warns(DataWarning, match=r"adjusted close \('Adj Close'\); the bars use the "
                                         r"raw close"):
        raw = load_bars(DATA / "yahoo_daily.csv", symbol="AAPL", tz="America/New_York")
    assert raw.close[:, 0].tolist() == [185.639999, 184.25, 181.910004, 181.179993, 185.559998]
    # a date in New York is the day from its midnight there: 05:00 UTC in January
    assert raw.timestamps[0] == np.datetime64("2024-01-02T05:00", "ns")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        said = load_bars(DATA / "yahoo_daily.csv", symbol="AAPL", tz="America/New_York",
                         close="close")
    np.testing.assert_array_equal(said.close, raw.close)


def test_yahoo_adjusted_prices_scale_open_high_low_with_the_close() -> None:
    bars = load_bars(DATA / "yahoo_daily.csv", symbol="AAPL", tz="America/New_York",
                     close="adj_close")
    factor = 184.938217 / 185.639999
    assert bars.close[0, 0] == 184.938217
    assert bars.open[0, 0] == 187.149994 * factor
    assert bars.high[0, 0] == 188.440002 * factor
    assert bars.low[0, 0] == 183.889999 * factor
    assert bars.volume[0, 0] == 82488700  # volume is not rescaled
    simbroker.validate_bars(bars)


def test_adj_close_asked_for_but_absent() -> None:
    with pytest.raises(DataError, match=r"close='adj_close' but .* has no adjusted close"):
        load_bars(DATA / "cme_6e_sunday_open.csv", symbol="6E", tz="America/Chicago",
                  close="adj_close")


# --------------------------------------------------------------------- NinjaTrader file
def test_ninjatrader_semicolon_file_without_header_stamped_at_the_close() -> None:
    bars = load_bars(DATA / "ninjatrader_es_minute.txt", symbol="ES", tz="America/Chicago",
                     bar_time="close")
    # 09:31 CT closes the bar that opened 09:30 CT = 15:30 UTC
    np.testing.assert_array_equal(bars.timestamps, utc(
        "2024-01-02T15:30", "2024-01-02T15:31", "2024-01-02T15:32", "2024-01-02T15:33"))
    assert bars.interval == MINUTE
    assert bars.close[:, 0].tolist() == [4750.5, 4752.0, 4751.25, 4750.25]
    assert bars.volume[:, 0].tolist() == [1520, 1874, 1102, 987]
    stamped_open = load_bars(DATA / "ninjatrader_es_minute.txt", symbol="ES",
                             tz="America/Chicago")
    np.testing.assert_array_equal(stamped_open.timestamps, bars.timestamps + MINUTE)


def test_a_headerless_file_of_another_width_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("20240102,1,2,3\n20240103,1,2,3\n")
    with pytest.raises(DataError, match="has no header row and 4 fields a row"):
        load_bars(path, symbol="X", tz="UTC")


# -------------------------------------------------------------- futures across Sunday
def test_cme_minutes_in_exchange_time_across_the_sunday_open() -> None:
    with pytest.raises(DataError) as info:
        load_bars(DATA / "cme_6e_sunday_open.csv", symbol="6E")
    msg = str(info.value)
    assert "row 0 '2024-01-05 15:57:00'" in msg
    assert "tz='America/New_York'" in msg
    assert "--tz" in msg
    assert "tz='UTC' if they are UTC" in msg
    bars = load_bars(DATA / "cme_6e_sunday_open.csv", symbol="6E", tz="America/Chicago")
    np.testing.assert_array_equal(bars.timestamps, utc(
        "2024-01-05T21:57", "2024-01-05T21:58", "2024-01-05T21:59",  # Friday, CST = UTC-6
        "2024-01-07T23:00", "2024-01-07T23:01", "2024-01-07T23:02"))  # Sunday 17:00 CT
    assert bars.interval == MINUTE


def test_summer_time_and_the_hours_that_do_not_exist_or_repeat() -> None:
    frame = pd.DataFrame({"timestamp": ["2024-07-07 17:00", "2024-03-10 02:30",
                                        "2024-11-03 01:30"],
                          "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1})
    with pytest.raises(DataError, match="2 bad rows") as info:
        load_bars(frame, symbol="6E", tz="America/Chicago")
    reasons = {p["row"]: p["reason"] for p in info.value.problems}
    assert "does not exist (clocks go forward)" in reasons[1]
    assert "occurs twice (clocks go back)" in reasons[2]
    ok = load_bars(frame.iloc[:1], symbol="6E", tz="America/Chicago")
    assert ok.timestamps[0] == np.datetime64("2024-07-07T22:00", "ns")  # CDT = UTC-5


def test_the_fall_back_hour_written_twice_in_order_is_read_in_order() -> None:
    stamps = ["2024-11-03 00:30", "2024-11-03 01:00", "2024-11-03 01:30", "2024-11-03 01:00",
              "2024-11-03 01:30", "2024-11-03 02:00"]
    frame = pd.DataFrame({"timestamp": stamps, "open": 1.0, "high": 1.0, "low": 1.0,
                          "close": 1.0, "volume": 1})
    bars = load_bars(frame, symbol="ES", tz="America/Chicago")
    np.testing.assert_array_equal(np.diff(bars.ts_ns), [30 * 60 * 10**9] * 5)


# ------------------------------------------------------------ S&P index, odd columns
def test_sp500_file_with_timestamp_utc_shows_the_column_to_rename() -> None:
    with pytest.raises(DataError) as info:
        load_bars(DATA / "sp500_minute_odd_order.csv")
    msg = str(info.value)
    assert "timestamp_utc (not used; did you mean 'timestamp'?)" in msg
    assert "columns={'timestamp_utc': 'timestamp'}" in msg
    assert "--column timestamp_utc=timestamp" in msg
    assert "Name (not used)" in msg


def test_sp500_index_with_zero_volume_warns_then_trades_with_volume_unknown() -> None:
    path = DATA / "sp500_minute_odd_order.csv"
    renames = {"timestamp_utc": "timestamp", "Name": "symbol"}
    with pytest.warns(DataWarning, match=r"zero volume on most bars of SPX \(3 of 3 bars\).*"
                                         r"volume='unknown'"):
        reported = load_bars(path, columns=renames, tz="UTC")
    assert reported.volume_known
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bars = load_bars(path, columns=renames, tz="UTC", volume="unknown")
    assert not bars.volume_known
    assert bars.close[:, 0].tolist() == [4742.83, 4744.5, 4743.1]
    assert bars.open[:, 0].tolist() == [4745.2, 4742.83, 4744.5]  # odd column order kept
    assert "volume unknown" in repr(bars)

    def buy_once(broker: Any, history: Any) -> None:
        if len(history) == 1:
            broker.submit_order("SPX", "buy", 1)

    none = simbroker.backtest(buy_once, reported)
    assert none.stats["n_fills"] == 0
    some = simbroker.backtest(buy_once, bars)
    assert some.stats["n_fills"] == 1
    assert some.fills["price"].iloc[0] == pytest.approx(4742.83 * (1 + 5e-4))
    assert "fills assumed every bar with a close was tradable" in some.format_summary()
    assert "volume unknown" not in none.format_summary()


def test_volume_unknown_allows_a_file_without_volume() -> None:
    frame = pd.DataFrame({"timestamp": ["2024-01-02", "2024-01-03"], "open": [1.0, 2.0],
                          "high": [2.0, 2.0], "low": [1.0, 1.0], "close": [2.0, 1.5]})
    with pytest.raises(DataError, match="volume='unknown', --volume unknown"):
        load_bars(frame, symbol="SPX", tz="UTC")
    bars = load_bars(frame, symbol="SPX", tz="UTC", volume="unknown")
    assert bars.volume[:, 0].tolist() == [0.0, 0.0]
    assert not bars.volume_known
    assert not load_bars(bars).volume_known
    assert not load_bars(bars, symbols=["SPX"], start="2024-01-03").volume_known
    assert not load_bars(synth := simbroker.synthetic_bars(1, 3), volume="unknown").volume_known
    assert synth.volume_known


def test_index_file_zero_volume_warning_names_the_symbol() -> None:
    with pytest.warns(DataWarning, match="SPX"):
        load_bars(DATA / "index_zero_volume.csv", tz="America/New_York")


# -------------------------------------------------------- volume unknown: both runners
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_volume_unknown_event_driven_equals_vectorized_bit_for_bit(
        case: tuple[Bars, pd.DataFrame, dict[str, Any]]) -> None:
    bars, targets, kw = case
    unknown = Bars.from_arrays(bars.timestamps, bars.symbols, open=bars.open, high=bars.high,
                               low=bars.low, close=bars.close, volume=bars.volume * 0,
                               interval=bars.interval, volume_known=False)
    event = simbroker.backtest(TargetPositions(targets), unknown, **kw)
    fast = backtest_vectorized(unknown, targets=targets, **kw)
    assert_exact(event, fast)
    # every bar with a close is tradable: the same fills as with volume everywhere
    known = Bars.from_arrays(bars.timestamps, bars.symbols, open=bars.open, high=bars.high,
                             low=bars.low, close=bars.close,
                             volume=np.where(np.isnan(bars.close), np.nan, 1e12),
                             interval=bars.interval)
    full = backtest_vectorized(known, targets=targets, **{**kw, "slippage": 0.0})
    none_slip = backtest_vectorized(unknown, targets=targets, **{**kw, "slippage": 0.0})
    pd.testing.assert_frame_equal(full.fills, none_slip.fills)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_volume_unknown_weights_event_driven_equals_vectorized(
        case: tuple[Bars, pd.DataFrame, dict[str, Any]]) -> None:
    bars, _, _ = case
    unknown = Bars.from_arrays(bars.timestamps, bars.symbols, open=bars.open, high=bars.high,
                               low=bars.low, close=bars.close, volume=bars.volume * 0,
                               interval=bars.interval, volume_known=False)
    weights = pd.DataFrame(0.3, index=unknown.index, columns=list(unknown.symbols))
    event = simbroker.backtest(TargetPositions(weights=weights), unknown)
    fast = backtest_vectorized(unknown, weights=weights)
    assert_exact(event, fast)


def test_volume_known_survives_select_rows_and_a_saved_result(tmp_path: Path) -> None:
    bars = load_bars(simbroker.synthetic_bars(2, 10, seed=1), volume="unknown")
    assert not bars.select(["SYM000"]).volume_known
    assert not bars.rows(2, 5).volume_known
    result = simbroker.backtest(lambda broker, history: None, bars)
    result.save(tmp_path / "r")
    assert not simbroker.load_result(tmp_path / "r").bars.volume_known


# ------------------------------------------------------------------------- dd/mm dates
def test_day_first_dates_are_refused_until_told() -> None:
    path = DATA / "ddmm_daily.csv"
    with pytest.raises(DataError) as info:
        load_bars(path, symbol="X", tz="UTC")
    msg = str(info.value)
    assert "rows such as row 4 '15/01/2024' only parse as dd/mm" in msg
    assert "dayfirst=True (--dayfirst on the command line)" in msg
    bars = load_bars(path, symbol="X", tz="UTC", dayfirst=True)
    np.testing.assert_array_equal(bars.timestamps, utc(
        "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-12", "2024-01-15"))
    with pytest.raises(DataError, match="1 bad row") as bad:
        load_bars(path, symbol="X", tz="UTC", dayfirst=False)
    assert bad.value.problems[0]["row"] == 4


@pytest.mark.parametrize(("stamps", "message"), [
    (["01/02/2024", "02/02/2024"], "every row parses both ways"),
    (["01/13/2024", "01/14/2024"], "only parse as mm/dd; pass dayfirst=False"),
    (["13/01/2024", "01/14/2024"], "the file mixes both orders"),
])
def test_ambiguous_day_month_files(stamps: list[str], message: str) -> None:
    frame = pd.DataFrame({"Date": stamps, "Open": 1.0, "High": 1.0, "Low": 1.0, "Close": 1.0,
                          "Volume": 1})
    with pytest.raises(DataError, match=message):
        load_bars(frame, symbol="X", tz="UTC")


def test_month_first_when_told() -> None:
    frame = pd.DataFrame({"Date": ["01/02/2024", "01/13/2024"], "Open": 1.0, "High": 1.0,
                          "Low": 1.0, "Close": 1.0, "Volume": 1})
    bars = load_bars(frame, symbol="X", tz="UTC", dayfirst=False)
    np.testing.assert_array_equal(bars.timestamps, utc("2024-01-02", "2024-01-13"))


# -------------------------------------------------------------- naive and aware mixed
def test_mixed_naive_and_aware_timestamps_are_refused_naming_rows() -> None:
    with pytest.raises(DataError) as info:
        load_bars(DATA / "mixed_naive_aware.csv", tz="America/New_York")
    msg = str(info.value)
    assert "mix naive and aware values: 2 naive (row 0 '2024-01-02 16:00:00', row 1" in msg
    assert "2 with an offset (row 2 '2024-01-04 21:00:00+00:00', row 3" in msg
    mixed = pd.DataFrame({"timestamp": [pd.Timestamp("2024-01-02"),
                                        pd.Timestamp("2024-01-03", tz="UTC")],
                          "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1})
    with pytest.raises(DataError, match="mix naive and aware"):
        load_bars(mixed, symbol="X", tz="UTC")


def test_aware_values_ignore_tz() -> None:
    path = DATA / "yahoo_close_stamped.csv"
    a = load_bars(path, symbol="AAPL")
    b = load_bars(path, symbol="AAPL", tz="Asia/Tokyo")
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert a.timestamps[0] == np.datetime64("2024-01-02T21:00", "ns")


def test_unknown_zone_and_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="unknown time zone tz='Mars/Olympus'"):
        load_bars(DATA / "yahoo_daily.csv", symbol="A", tz="Mars/Olympus")
    with pytest.raises(ValueError, match="bar_time must be 'open' or 'close'"):
        load_bars(DATA / "yahoo_daily.csv", symbol="A", tz="UTC", bar_time="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="volume must be"):
        load_bars(DATA / "yahoo_daily.csv", symbol="A", tz="UTC", volume="none")  # type: ignore[arg-type]


# ------------------------------------------------------------------------- bar_time
def test_close_stamped_daily_bars_open_one_interval_earlier() -> None:
    path = DATA / "yahoo_close_stamped.csv"
    bars = load_bars(path, symbol="AAPL", bar_time="close")
    np.testing.assert_array_equal(bars.timestamps, utc(
        "2024-01-01T21:00", "2024-01-02T21:00", "2024-01-03T21:00"))
    np.testing.assert_array_equal(bars.close_ns, load_bars(path, symbol="AAPL").ts_ns)


def test_a_date_names_its_day_under_either_bar_time() -> None:
    opened = quiet_load(DATA / "yahoo_daily.csv", symbol="AAPL", tz="UTC")
    closed = quiet_load(DATA / "yahoo_daily.csv", symbol="AAPL", tz="UTC", bar_time="close")
    np.testing.assert_array_equal(opened.timestamps, closed.timestamps)
    assert closed.timestamps[0] == np.datetime64("2024-01-02", "ns")  # never 2024-01-01
    assert closed.interval == DAY


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=2, max_size=30, unique=True),
       st.sampled_from(["1min", "5min", "1h"]))
def test_close_stamps_are_the_open_stamps_moved_by_one_interval(
        offsets: list[int], step: str) -> None:
    width = pd.Timedelta(step)
    closes = pd.DatetimeIndex([pd.Timestamp("2024-03-01 09:31") + k * width
                               for k in sorted(offsets)])
    frame = pd.DataFrame({"timestamp": closes.strftime("%Y-%m-%d %H:%M:%S"), "open": 1.0,
                          "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1})
    by_close = load_bars(frame, symbol="X", tz="UTC", bar_time="close", interval=step)
    opens = frame.assign(timestamp=(closes - width).strftime("%Y-%m-%d %H:%M:%S"))
    by_open = load_bars(opens, symbol="X", tz="UTC", interval=step)
    np.testing.assert_array_equal(by_close.timestamps, by_open.timestamps)


# ----------------------------------------------------------------- tz round trip
ZONES = ["UTC", "America/New_York", "America/Chicago", "Europe/London", "Asia/Kolkata",
         "Australia/Sydney"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.datetimes(min_value=dt.datetime(1990, 1, 1),
                             max_value=dt.datetime(2040, 1, 1)),
                min_size=1, max_size=20, unique=True),
       st.sampled_from(ZONES))
def test_naive_local_with_tz_equals_aware_utc(stamps: list[dt.datetime], zone: str) -> None:
    naive = pd.DatetimeIndex(stamps).floor("s")
    assume(len(set(naive)) == len(naive))
    try:
        aware = naive.tz_localize(zone, ambiguous="raise", nonexistent="raise")
    except Exception:
        assume(False)
        raise
    fields = {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1}
    local = pd.DataFrame({"timestamp": naive.strftime("%Y-%m-%d %H:%M:%S"), **fields})
    iso = pd.DataFrame({"timestamp": [t.isoformat() for t in aware], **fields})
    frame_aware = pd.DataFrame({"timestamp": aware, **fields})
    a = load_bars(local, symbol="X", tz=zone)
    b = load_bars(iso, symbol="X")
    c = load_bars(frame_aware, symbol="X")
    expected = np.sort(aware.tz_convert("UTC").tz_localize(None).as_unit("ns").values)
    for bars in (a, b, c):
        np.testing.assert_array_equal(bars.timestamps, expected)


# --------------------------------------------------------------- other real shapes
def test_metastock_date_and_time_columns_are_joined() -> None:
    with pytest.warns(DataWarning, match="column '<PER>' not used"):
        bars = load_bars(DATA / "metastock_date_time.csv", tz="Europe/London")
    assert bars.symbols == ("EURUSD",)
    np.testing.assert_array_equal(bars.timestamps, utc(
        "2024-01-02T09:30", "2024-01-02T09:31", "2024-01-02T09:32"))


def test_unused_columns_are_reported_and_can_be_mapped() -> None:
    frame = pd.DataFrame({"ts": ["2024-01-02T00:00Z"], "open": 1.0, "high": 1.0, "low": 1.0,
                          "close": 1.0, "volume": 1, "vwap": 1.0})
    with pytest.raises(DataError, match=r"ts \(not used\)"):
        load_bars(frame, symbol="X")
    with pytest.warns(DataWarning, match="'vwap' not used"):
        load_bars(frame, symbol="X", columns={"ts": "timestamp"})
    with pytest.raises(DataError, match="columns= renames 'nope'"):
        load_bars(frame, symbol="X", columns={"nope": "timestamp"})


def test_corporate_action_columns_are_never_dropped() -> None:
    frame = pd.DataFrame({"Date": ["2024-01-02", "2024-01-03"], "Open": 10.0, "High": 10.0,
                          "Low": 10.0, "Close": 10.0, "Volume": 5, "Dividends": [0.0, 0.25],
                          "Stock Splits": [0.0, 0.0]})
    try:
        import simbroker.actions  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"no corporate actions .* simbroker.actions"):
            load_bars(frame, symbol="KO", tz="America/New_York")
        return
    bars = load_bars(frame, symbol="KO", tz="America/New_York")
    assert getattr(bars, "actions", None) is not None


# -------------------------------------------------------------------------- header only
def test_header_only_file_is_an_error_not_an_empty_panel() -> None:
    with pytest.raises(DataError, match="has no rows"):
        load_bars(DATA / "header_only.csv")


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simbroker.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_cli_reads_real_files_and_validates_saved_results(tmp_path: Path) -> None:
    out = run_cli("data", "validate", str(DATA / "header_only.csv"))
    assert out.returncode == 2
    assert "has no rows" in out.stderr
    out = run_cli("data", "validate", str(DATA / "yahoo_daily.csv"))
    assert out.returncode == 2
    assert "--symbol XYZ on the command line" in out.stderr
    ok = run_cli("data", "validate", str(DATA / "ninjatrader_es_minute.txt"), "--symbol",
                 "ES", "--tz", "America/Chicago", "--bar-time", "close")
    assert ok.returncode == 0, ok.stderr
    assert "2024-01-02T15:30:00 .. 2024-01-02T15:33:00 UTC" in ok.stdout
    warned = run_cli("data", "validate", str(DATA / "index_zero_volume.csv"), "--tz",
                     "America/New_York")
    assert warned.returncode == 0
    assert warned.stderr.startswith("simbroker: warning: ")
    assert "--volume unknown" in warned.stderr
    quiet = run_cli("data", "validate", str(DATA / "index_zero_volume.csv"), "--tz",
                    "America/New_York", "--volume", "unknown")
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert "volume unknown" in quiet.stdout
    dd = run_cli("data", "validate", str(DATA / "ddmm_daily.csv"), "--symbol", "X", "--tz",
                 "UTC", "--dayfirst", "--start", "2024-01-04")
    assert dd.returncode == 0, dd.stderr
    assert "3 bars" in dd.stdout
    renamed = run_cli("data", "validate", str(DATA / "sp500_minute_odd_order.csv"),
                      "--column", "timestamp_utc=timestamp", "--column", "Name=symbol",
                      "--tz", "UTC", "--volume", "unknown")
    assert renamed.returncode == 0, renamed.stderr
    # a saved result's bars (NaN cells where FB had not listed yet) validate
    res = tmp_path / "res"
    bt = run_cli("backtest", "examples/sma_crossover.py:SmaCrossover", "--data", "sample",
                 "--out", str(res))
    assert bt.returncode == 0, bt.stderr
    for target in (res, res / "bars.parquet"):
        saved = run_cli("data", "validate", str(target))
        assert saved.returncode == 0, saved.stderr
        assert "5 symbols" in saved.stdout


def test_config_data_tz_is_checked() -> None:
    assert PaperConfig.from_dict({"data_tz": "America/Chicago"}).data_tz == "America/Chicago"
    with pytest.raises(ConfigError, match=r"data_tz.*unknown time zone"):
        PaperConfig.from_dict({"data_tz": "Nowhere/Land"})


# -------------------------------------------------------------- the sample in the package
def test_the_sample_ships_inside_the_package() -> None:
    resource = resources.files("simbroker").joinpath("sample_data/sample_daily.csv")
    assert resource.is_file()
    with resource.open("r", encoding="utf-8") as fh:
        assert fh.readline() == "timestamp,symbol,open,high,low,close,volume\n"
        assert fh.readline().startswith("2008-01-02T00:00:00Z,AAPL,")  # its zone written in
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # tomllib is 3.11+
    package_data = pyproject.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^simbroker = \[.*"sample_data/\*\.csv".*\]$', package_data, re.M)
    assert not (ROOT / "data" / "sample_daily.csv").exists()  # one copy, in the package


def test_the_sample_bars_fixture(sample_bars: Bars) -> None:
    assert sample_bars.symbols == ("AAPL", "FB", "GOOG", "IBM", "MSFT")
    assert sample_bars is simbroker.sample_bars()


# ------------------------------------------------------------------ calendar= wiring
def test_calendar_is_attached_by_the_loader() -> None:
    pytest.importorskip("exchange_calendars")
    bars = load_bars(DATA / "cme_6e_sunday_open.csv", symbol="6E", tz="America/Chicago",
                     calendar="CMES")
    assert bars.sessions is not None
    assert bars.sessions.regular.shape == (6, 1)
    # Sunday 17:00 CT opens the Monday session: one trading day with the bars after it
    assert bars.sessions.day[3, 0] == bars.sessions.day[5, 0] != bars.sessions.day[0, 0]
    again = load_bars(bars, symbols=["6E"], start="2024-01-07")
    assert again.sessions is not None
    assert len(again) == 3
