"""Results: round trips, the added statistics, plots, the HTML report, save and load."""

from __future__ import annotations

import math
import re
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import simbroker
from simbroker import Bars, PaperBroker, results
from simbroker.errors import DataError
from simbroker.results import (
    BacktestResult,
    build_result,
    cash_after_bars,
    load_result,
    mark_to_market,
    round_trips,
)
from simbroker.testing import run_order_stream
from simbroker.testing.strategies import OrderSpec, bar_panels, order_streams

PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def flat_bars(prices: list[float], symbol: str = "AAA") -> Bars:
    """One symbol whose bars open, trade and close at one price each."""
    ts = pd.date_range("2024-01-01", periods=len(prices), freq="D", tz="UTC")
    p = np.asarray(prices, np.float64).reshape(-1, 1)
    return Bars.from_arrays(ts, [symbol], open=p, high=p, low=p, close=p,
                            volume=np.full_like(p, 1e6), interval="1D")


def run_orders(bars: Bars, orders: list[OrderSpec], **kw: object) -> BacktestResult:
    broker = PaperBroker(bars, **kw)  # type: ignore[arg-type]
    return build_result(run_order_stream(broker, orders))


def buy(bar: int, qty: float, symbol: str = "AAA") -> OrderSpec:
    return OrderSpec(bar=bar, symbol=symbol, side="buy", qty=qty, order_type="market")


def sell(bar: int, qty: float, symbol: str = "AAA") -> OrderSpec:
    return OrderSpec(bar=bar, symbol=symbol, side="sell", qty=qty, order_type="market")


# --------------------------------------------------------------------------- round trips
def test_one_long_round_trip_by_hand() -> None:
    bars = flat_bars([100, 100, 110, 120, 120])
    r = run_orders(bars, [buy(0, 10), sell(1, 10)], slippage=0, fees=10)  # 10 bps
    trips = r.trades
    assert len(trips) == 1
    t = trips.iloc[0]
    # buy 10 @100 on bar 1, sell 10 @110 on bar 2; fees 1.0 + 1.1.
    assert (t["symbol"], t["direction"], bool(t["is_open"])) == ("AAA", "long", False)
    assert t["qty"] == 10
    assert t["entry_notional"] == pytest.approx(1000.0)
    assert t["fees"] == pytest.approx(2.1)
    assert t["pnl"] == pytest.approx(100.0 - 2.1)
    assert t["return"] == pytest.approx((100.0 - 2.1) / 1000.0)
    assert t["opened"] == bars.index[1]
    assert t["closed"] == bars.index[2]
    assert t["holding"] == pd.Timedelta(days=1)
    assert t["bars_held"] == 1
    assert r.stats["round_trips"] == 1
    assert r.stats["win_rate"] == 1.0
    assert r.stats["profit_factor"] == math.inf


def test_a_flip_closes_one_trip_and_opens_the_next() -> None:
    bars = flat_bars([100, 100, 90, 80, 80])
    # Long 10 at 100, sell 30 at 90: closes the long (-100) and opens a short of 20,
    # bought back at 80 (+200). The flip's fee is split 10:20.
    r = run_orders(bars, [buy(0, 10), sell(1, 30), buy(2, 20)], slippage=0, fees=10)
    trips = r.trades
    assert trips["direction"].tolist() == ["long", "short"]
    assert trips["is_open"].tolist() == [False, False]
    long_, short = trips.iloc[0], trips.iloc[1]
    assert long_["fees"] == pytest.approx(1.0 + 0.9)            # buy 1000, 1/3 of 2.7
    assert long_["pnl"] == pytest.approx(-100.0 - 1.9)
    assert short["entry_notional"] == pytest.approx(1800.0)
    assert short["fees"] == pytest.approx(1.8 + 1.6)
    assert short["pnl"] == pytest.approx(200.0 - 3.4)
    assert short["qty"] == 20
    assert r.stats["win_rate"] == 0.5
    assert r.stats["profit_factor"] == pytest.approx((200.0 - 3.4) / (101.9))


def test_open_trip_is_marked_and_left_out_of_trip_stats() -> None:
    bars = flat_bars([100, 100, 105, 130])
    r = run_orders(bars, [buy(0, 5), buy(1, 5)], slippage=0, fees=0)
    trips = r.trades
    assert len(trips) == 1
    assert bool(trips.iloc[0]["is_open"])
    assert pd.isna(trips.iloc[0]["closed"])
    # 5 @100 + 5 @105 marked at 130.
    assert trips.iloc[0]["pnl"] == pytest.approx(5 * 30 + 5 * 25)
    assert trips.iloc[0]["entry_notional"] == pytest.approx(1025.0)
    assert r.stats["round_trips"] == 0
    assert math.isnan(r.stats["win_rate"])
    assert r.stats["avg_holding"] is pd.NaT


def test_initial_positions_open_a_trip_at_the_first_close() -> None:
    bars = flat_bars([100, 100, 120])
    r = run_orders(bars, [sell(0, 10)], slippage=0, fees=0, positions={"AAA": 10})
    trips = r.trades
    assert len(trips) == 1
    assert trips.iloc[0]["entry_notional"] == pytest.approx(1000.0)
    assert trips.iloc[0]["pnl"] == pytest.approx(0.0)  # bought at the first close, sold at 100


@st.composite
def runs(draw: st.DrawFn) -> BacktestResult:
    bars = draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(2, 25)))
    orders = draw(order_streams(bars, max_size=30))
    slip = draw(st.floats(0, 20))
    fee = draw(st.floats(0, 20))
    init = draw(st.dictionaries(st.sampled_from(bars.symbols),
                                st.integers(-50, 50).map(float), max_size=2))
    return run_orders(bars, orders, slippage=slip, fees=fee, positions=init, cash=1e6)


@PROPS
@given(runs())
def test_round_trips_account_for_every_dollar(r: BacktestResult) -> None:
    """Trip P&L (open trips marked) sums to the equity change; trip fees to fees paid."""
    trips = r.trades
    pnl = float(trips["pnl"].sum())
    change = r.stats["final_equity"] - r.stats["start_equity"]
    scale = max(1.0, float(r.fills["notional"].sum()) if len(r.fills) else 1.0,
                abs(r.stats["start_equity"]))
    assert pnl == pytest.approx(change, abs=1e-9 * scale)
    assert float(trips["fees"].sum()) == pytest.approx(r.stats["fees_paid"], abs=1e-9 * scale)
    done = trips[~trips["is_open"]]
    assert (done["closed"] >= done["opened"]).all()
    assert (done["bars_held"] >= 0).all()
    assert (trips["qty"] > 0).all()
    assert (trips["entry_notional"] > 0).all()
    # At most one open trip per symbol, and only where a position is still held.
    open_syms = trips.loc[trips["is_open"], "symbol"].tolist()
    assert len(open_syms) == len(set(open_syms))
    held = r.final_positions
    assert set(open_syms) == {s for s, q in held.items() if abs(q) > 1e-9}


@PROPS
@given(runs())
def test_stats_are_consistent(r: BacktestResult) -> None:
    s = r.stats
    assert 0.0 <= s["exposure"] <= 1.0
    assert s["max_drawdown"] <= 0.0
    assert 0 <= s["max_drawdown_bars"] <= s["n_bars"]
    assert s["max_drawdown_duration"] >= pd.Timedelta(0)
    assert (s["max_drawdown_bars"] == 0) == (s["max_drawdown"] == 0.0)
    if s["round_trips"]:
        assert 0.0 <= s["win_rate"] <= 1.0
        assert s["profit_factor"] >= 0.0 or math.isnan(s["profit_factor"])
    held_bars = (r.positions.abs().sum(axis=1) > 0).mean()
    # Exposure counts bars whose held value is non-zero (a symbol with no close yet
    # may hold shares worth nothing known).
    assert s["exposure"] <= held_bars + 1e-12


def test_drawdown_duration_by_hand() -> None:
    # One share bought with all the cash at bar 0's open: equity 100 (start), then 100,
    # 110, 99, 105, 111, 90. Peak 110 at bar 1, back above at bar 4 (3 bars, 3 days);
    # peak 111 at bar 4, under until the end at bar 5 (1 bar).
    bars = flat_bars([100, 110, 99, 105, 111, 90])
    r = run_orders(bars, [buy(-1, 1)], slippage=0, fees=0, cash=100)
    assert r.stats["max_drawdown_bars"] == 3
    assert r.stats["max_drawdown_duration"] == pd.Timedelta(days=3)
    dd = r.drawdown
    assert dd.iloc[0] == pytest.approx(0.0)
    assert dd.min() == pytest.approx(90 / 111 - 1)


def test_sortino_and_calmar_by_hand() -> None:
    bars = flat_bars([100, 110, 99, 105, 111, 90])
    r = run_orders(bars, [buy(-1, 1)], slippage=0, fees=0, cash=100)
    eq = np.array([100, 100, 110, 99, 105, 111, 90.0])  # start equity, then each bar
    rets = eq[1:] / eq[:-1] - 1
    years = 6 / 365.25
    per_year = 6 / years
    downside = math.sqrt(np.mean(np.minimum(rets, 0) ** 2))
    assert r.stats["sortino"] == pytest.approx(rets.mean() / downside * math.sqrt(per_year))
    assert r.stats["calmar"] == pytest.approx(r.stats["cagr"] / (1 - 90 / 111))


# --------------------------------------------------------------------------- dtypes
def test_orders_frame_has_fixed_dtypes_empty_or_not() -> None:
    bars = flat_bars([100, 100, 100])
    empty = run_orders(bars, [], slippage=0, fees=0).orders
    unfilled = run_orders(bars, [OrderSpec(bar=0, symbol="AAA", side="buy", qty=1,
                                           order_type="limit", limit_price=1.0)],
                          slippage=0, fees=0).orders
    filled = run_orders(bars, [buy(0, 1)], slippage=0, fees=0).orders
    assert list(empty.columns) == list(filled.columns) == list(unfilled.columns)
    assert empty.dtypes.equals(filled.dtypes)
    assert unfilled.dtypes.equals(filled.dtypes)
    assert filled["avg_fill_price"].dtype == np.float64
    assert str(filled["submitted_at"].dtype) == "datetime64[ns, UTC]"
    assert math.isnan(unfilled["avg_fill_price"].iloc[0])
    assert unfilled["limit_price"].iloc[0] == 1.0
    assert math.isnan(filled["limit_price"].iloc[0])


def test_trades_frame_has_fixed_dtypes_empty_or_not() -> None:
    empty = round_trips(run_orders(flat_bars([1, 1]), [], slippage=0, fees=0).fills)
    full = run_orders(flat_bars([100, 100, 110]), [buy(0, 1), sell(1, 1)], slippage=0,
                      fees=0).trades
    assert empty.dtypes.equals(full.dtypes)


# --------------------------------------------------------------------------- save / load
def test_save_and_load_round_trip(sma_result: BacktestResult, tmp_path: Path) -> None:
    r = sma_result
    out = r.save(tmp_path / "run")
    back = load_result(out)
    pd.testing.assert_series_equal(BacktestResult.load(out).stats, back.stats)
    assert list(back.stats.index) == list(r.stats.index)
    pd.testing.assert_frame_equal(back.fills, r.fills, check_exact=True)
    pd.testing.assert_frame_equal(back.orders, r.orders, check_exact=True)
    pd.testing.assert_frame_equal(back.trades, r.trades, check_exact=True)
    pd.testing.assert_frame_equal(back.positions, r.positions, check_exact=True)
    pd.testing.assert_series_equal(back.equity, r.equity, check_exact=True)
    pd.testing.assert_series_equal(back.cash, r.cash, check_exact=True)
    assert back.config == r.config
    for key, value in r.stats.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(back.stats[key]), key
        else:
            assert back.stats[key] == value, key
    assert back.bars.symbols == r.bars.symbols
    assert back.bars.interval == r.bars.interval
    for name in ("timestamps", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(back.bars, name), getattr(r.bars, name))
    assert back.format_summary() == r.format_summary()
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_load_names_what_is_missing(sma_result: BacktestResult, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no saved result"):
        load_result(tmp_path)
    out = sma_result.save(tmp_path / "run")
    (out / "trades.parquet").unlink()
    with pytest.raises(DataError, match=r"missing trades\.parquet"):
        load_result(out)
    (out / "result.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_result(out)


# --------------------------------------------------------------------------- progress
# (the plot and report tests are in test_report.py)
def test_progress_bar_is_off_in_ci_and_on_request(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tqdm")
    bars = flat_bars([100.0] * 30)
    monkeypatch.setenv("CI", "true")
    simbroker.backtest(lambda b, h: None, bars)
    assert capsys.readouterr().err == ""
    quiet = simbroker.backtest(lambda b, h: None, bars, progress=False)
    assert capsys.readouterr().err == ""
    shown = simbroker.backtest(lambda b, h: None, bars, progress=True)
    err = capsys.readouterr().err
    assert "backtest:" in err
    assert "/30" in err
    pd.testing.assert_series_equal(quiet.equity, shown.equity)


@given(st.integers(1, 70), st.integers(1, 5), st.data())
def test_mark_to_market_is_the_row_sum_of_what_is_held(n_t: int, n: int,
                                                        data: st.DataObject) -> None:
    # Blocks of rows, or the one-symbol shortcut, give the bits of a plain row sum.
    pos = data.draw(hnp.arrays(np.float64, (n_t, n), elements=st.sampled_from(
        [0.0, -0.0, 1.0, -3.0, 0.1, 1e6, -2.5e-7])))
    close = data.draw(hnp.arrays(np.float64, (n_t, n), elements=st.sampled_from(
        [np.nan, 1.0, 0.3, 99.99, 1e-3])))
    # Small blocks, so rows are summed across several block boundaries.
    with mock.patch.object(results.build, "_MARK_CELLS", data.draw(st.integers(1, 3 * n))):
        value, gross = mark_to_market(pos, close)
    with np.errstate(invalid="ignore"):
        held = np.where(pos != 0, pos * close, 0.0)
    np.testing.assert_array_equal(value, np.nansum(held, axis=1), strict=True)
    np.testing.assert_array_equal(gross, np.nansum(np.abs(held), axis=1), strict=True)
    assert not np.signbit(value[value == 0]).any()


@given(st.lists(st.integers(0, 30), max_size=20).map(sorted), st.integers(31, 40))
def test_cash_after_bars_carries_the_last_fill_of_each_bar(bars_of_fills: list[int],
                                                            n_bars: int) -> None:
    cash = np.arange(1.0, len(bars_of_fills) + 1)
    out = cash_after_bars(np.array(bars_of_fills, np.int64), cash, n_bars, 0.5)
    expected = [([0.5] + [c for b, c in zip(bars_of_fills, cash, strict=True) if b <= t])[-1]
                for t in range(n_bars)]
    assert out.tolist() == expected


# --------------------------------------------------------------------------- notebook
def test_stats_are_a_series_and_summary_returns_the_table(sma_result: BacktestResult,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    r = sma_result
    assert isinstance(r.stats, pd.Series)
    assert r.stats.dtype == object
    assert isinstance(r.stats["n_fills"], int)
    assert r.stats.to_dict()["n_fills"] == len(r.fills)
    table = r.summary()
    printed = capsys.readouterr().out
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["label", "value"]
    # Everything the table holds was printed, value for value.
    for label, value in zip(table["label"], table["value"], strict=True):
        assert re.search(rf"^{re.escape(label)} +{re.escape(value)}$", printed, re.M), label
    assert table.loc["n_fills", "value"] == f"{len(r.fills):,}"


def test_returns_compound_to_the_total_return(sma_result: BacktestResult) -> None:
    r = sma_result
    rets = r.returns
    assert rets.index.equals(r.equity.index)
    growth = float(np.prod(1.0 + rets.to_numpy()))
    assert growth - 1.0 == pytest.approx(r.stats["total_return"], rel=1e-9)


def test_annualization_is_measured_by_default_and_fixed_on_request(
        sma_result: BacktestResult) -> None:
    r = sma_result
    fixed = r.stats_for(periods_per_year=252)
    measured = r.stats_for()
    pd.testing.assert_series_equal(measured, r.stats)
    rets = r.returns.to_numpy()
    expected = rets.mean() / rets.std(ddof=1) * math.sqrt(252)
    assert fixed["sharpe"] == pytest.approx(expected, rel=1e-9)
    years = len(rets) / 252
    assert fixed["cagr"] == pytest.approx((1 + r.stats["total_return"]) ** (1 / years) - 1)
    assert fixed["sharpe"] != r.stats["sharpe"]
    with pytest.raises(ValueError, match="periods_per_year"):
        r.stats_for(periods_per_year=0)


def test_notebook_view_shows_headline_numbers_and_a_sparkline(sma_result: BacktestResult
                                                              ) -> None:
    page = sma_result._repr_html_()
    assert "<svg" in page
    assert "<polyline" in page
    assert f"{sma_result.stats['total_return']:.2%}" in page
    assert "Sharpe" in page
    assert "nan" not in page.lower().replace("n/a", "")


def test_times_and_durations_read_at_the_bars_resolution() -> None:
    from simbroker.results.format import _format_timedelta, format_timestamp

    assert format_timestamp(pd.Timestamp("2013-03-01", tz="UTC")) == "2013-03-01"
    assert format_timestamp(pd.Timestamp("2024-01-02 14:30", tz="UTC")) == \
        "2024-01-02 14:30 UTC"
    assert _format_timedelta(pd.Timedelta(days=71, hours=2, minutes=54)) == "71.1 days"
    assert _format_timedelta(pd.Timedelta(days=12)) == "12 days"
    assert _format_timedelta(pd.Timedelta(hours=3, minutes=25)) == "03:25"


def test_symbol_and_side_share_one_string_dtype_in_every_table(sma_result: BacktestResult
                                                               ) -> None:
    r = sma_result
    fast = simbroker.backtest_vectorized(r.bars, targets=r.positions)
    for result in (r, fast):
        dtypes = {result.fills["symbol"].dtype, result.orders["symbol"].dtype,
                  result.trades["symbol"].dtype, result.fills["side"].dtype,
                  result.orders["side"].dtype}
        assert len(dtypes) == 1, dtypes
        assert dtypes == {pd.Series(["a"]).dtype}  # what pandas infers for strings


def test_saved_files_take_the_umask_mode(sma_result: BacktestResult, tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        out = sma_result.save(tmp_path / "run")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes
    assert set(modes.values()) == {0o644}, modes
