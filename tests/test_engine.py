"""The backtest loop: what a strategy sees, when its orders fill, and what comes back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import simbroker
from simbroker import Bars, Broker, History


@pytest.fixture(scope="module")
def bars() -> Bars:
    return simbroker.synthetic_bars(n_symbols=3, n_bars=60, seed=11)


def test_history_reveals_bars_up_to_now_only(bars: Bars) -> None:
    seen: list[tuple[int, int, float, object]] = []

    def spy(broker: Broker, history: History) -> None:
        seen.append((history.t, len(history.close), float(history.last("close")[0]),
                     broker.now()))
        assert history.close.shape == (history.t + 1, 3)
        assert history.frame("close").index[-1] == bars.index[history.t]
        with pytest.raises(ValueError, match="read-only"):
            history.close[-1, 0] = 0.0

    simbroker.backtest(spy, bars)
    assert [s[0] for s in seen] == list(range(len(bars)))
    assert all(n == t + 1 for t, n, _, _ in seen)
    assert [s[2] for s in seen] == list(bars.close[:, 0])
    closes = pd.DatetimeIndex(bars.timestamps + bars.interval).tz_localize("UTC")
    assert [s[3] for s in seen] == list(closes.to_pydatetime())


def test_indicators_are_cut_at_now(bars: Bars) -> None:
    class Spy:
        def indicators(self, bars: Bars) -> dict[str, np.ndarray]:
            return {"idx": np.broadcast_to(np.arange(len(bars))[:, None], bars.close.shape)}

        def on_bar(self, broker: Broker, history: History) -> None:
            ind = history.indicator("idx")
            assert ind.shape[0] == history.t + 1
            assert ind.max() == history.t
            assert history["idx"].shape == ind.shape

    simbroker.backtest(Spy(), bars)


def test_bad_indicator_shape_is_a_clear_error(bars: Bars) -> None:
    class Bad:
        def indicators(self, bars: Bars) -> dict[str, np.ndarray]:
            return {"short": np.zeros((3, 3))}

        def on_bar(self, broker: Broker, history: History) -> None:
            pass

    with pytest.raises(simbroker.StrategyError,
                       match=r"indicator 'short' has shape \(3, 3\)") as info:
        simbroker.backtest(Bad(), bars)
    assert isinstance(info.value.__cause__, ValueError)


def test_not_a_strategy(bars: Bars) -> None:
    with pytest.raises(TypeError, match="on_bar"):
        simbroker.backtest(42, bars)  # type: ignore[arg-type]


def test_result_equity_is_cash_plus_marked_positions(bars: Bars) -> None:
    def trade(broker: Broker, history: History) -> None:
        if history.t % 7 == 0:
            broker.submit_order(history.symbols[history.t % 3], "buy", 10)
        if history.t % 11 == 5:
            broker.submit_order(history.symbols[0], "sell", 15)

    res = simbroker.backtest(trade, bars, cash=10_000, slippage=7, fees=2)
    marked = (res.positions.to_numpy() * bars.close).sum(axis=1)
    np.testing.assert_allclose(res.equity.to_numpy(), res.cash.to_numpy() + marked, rtol=1e-12)
    assert res.stats["n_fills"] == len(res.fills) > 0
    assert res.stats["fees_paid"] == pytest.approx(res.fills["fee"].sum())
    signed = np.where(res.fills["side"] == "buy", 1, -1)
    expected_cash = 10_000 - (signed * res.fills["notional"]).sum() - res.fills["fee"].sum()
    assert res.final_cash == pytest.approx(expected_cash, rel=1e-12)
    shares = pd.Series(signed * res.fills["qty"].to_numpy()).groupby(
        res.fills["symbol"].to_numpy()).sum()
    assert res.final_positions == {k: v for k, v in shares.items() if v != 0}
    assert list(res.fills.columns[:7]) == ["timestamp", "symbol", "side", "qty", "price", "fee",
                                           "notional"]
    assert str(res.fills["timestamp"].dt.tz) == "UTC"


def test_stats_of_a_flat_run(bars: Bars) -> None:
    res = simbroker.backtest(lambda broker, history: None, bars, cash=5_000)
    s = res.stats
    assert s["total_return"] == 0.0
    assert s["max_drawdown"] == 0.0
    assert s["n_fills"] == 0
    assert s["final_equity"] == 5_000
    assert "Total return" in res.format_summary()


def test_stats_against_hand_computation() -> None:
    # One symbol, closes 100 -> 110 -> 99 -> 121; buy 10 at bar 0's open (100), no costs.
    rows = np.array([[100, 100, 100, 100], [110, 110, 110, 110], [99, 99, 99, 99],
                     [121, 121, 121, 121]], float)
    ts = np.datetime64("2024-01-01", "ns") + np.arange(4) * np.timedelta64(1, "D")
    bars = Bars.from_arrays(ts, ["X"], open=rows[:, :1], high=rows[:, 1:2], low=rows[:, 2:3],
                            close=rows[:, 3:4], volume=np.ones((4, 1)))

    class BuyFirst:
        def on_bar(self, broker: Broker, history: History) -> None:
            pass

    broker = simbroker.PaperBroker(bars, cash=1000, slippage=0, fees=0)
    broker.submit_order("X", "buy", 10)
    for _ in range(4):
        broker.step()
    from simbroker.results import build_result

    res = build_result(broker)
    np.testing.assert_array_equal(res.equity.to_numpy(), [1000, 1100, 990, 1210])
    assert res.stats["total_return"] == pytest.approx(0.21)
    assert res.stats["max_drawdown"] == pytest.approx(990 / 1100 - 1)
    rets = np.array([0, 0.1, 990 / 1100 - 1, 1210 / 990 - 1])
    per_year = 4 / (4 / 365.25)
    assert res.stats["sharpe"] == pytest.approx(rets.mean() / rets.std(ddof=1) * per_year**0.5)
    assert res.stats["turnover"] == pytest.approx(1000 / np.mean([1000, 1100, 990, 1210]))


def test_backtest_accepts_frames_and_paths(tmp_path, bars: Bars) -> None:  # type: ignore[no-untyped-def]
    frame = bars.to_frame()
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    results = [simbroker.backtest(lambda b, h: None, src) for src in (bars, frame, path)]
    for res in results[1:]:
        pd.testing.assert_series_equal(res.equity, results[0].equity)


def test_trade_log_file_is_closed_after_backtest(tmp_path, bars: Bars) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "log.jsonl"

    def trade(broker: Broker, history: History) -> None:
        if history.t == 3:
            broker.submit_order("SYM001", "buy", 1)

    res = simbroker.backtest(trade, bars, trade_log=log)
    state = simbroker.replay_trade_log(log)
    assert state.cash == res.final_cash
    assert state.positions == res.final_positions


# --------------------------------------------------------------------------- strategy bugs
class _FailsAt:
    """Buys on bar 2, then raises on bar ``at``."""

    def __init__(self, at: int, exc: Exception):
        self.at, self.exc = at, exc

    def on_bar(self, broker: Any, history: Any) -> None:
        if history.t == 2:
            broker.submit_order(history.symbols[0], "buy", 5)
        if history.t == self.at:
            raise self.exc


@pytest.mark.parametrize("exc", [ValueError("could not convert string to float: 'abc'"),
                                 KeyError("missing"), ZeroDivisionError("division by zero")])
def test_a_strategy_bug_names_the_strategy_bar_time_and_line(exc: Exception,
                                                              tmp_path: Path) -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=30, seed=1)
    log = tmp_path / "run.jsonl"
    with pytest.raises(simbroker.StrategyError) as info:
        simbroker.backtest(_FailsAt(11, exc), bars, trade_log=log)
    err = info.value
    assert err.__cause__ is exc
    assert (err.strategy, err.bar) == ("_FailsAt", 11)
    when = pd.Timestamp(int(bars.ts_ns[11]), unit="ns", tz="UTC")
    assert err.timestamp == when.isoformat()
    assert err.where is not None
    assert err.where.startswith(f"{__file__}:")
    assert "(on_bar)" in err.where
    assert f"at bar 11 ({when.isoformat()})" in str(err)
    # The run so far is kept: bars 0..11, the buy of bar 2 filled on bar 3.
    assert err.result is not None
    assert len(err.result.equity) == 12
    assert len(err.result.fills) == 1
    assert err.result.config["stopped"]["bar"] == 11
    records = simbroker.read_trade_log(log)
    assert records[-1]["event"] == "strategy_error"
    assert records[-1]["bar"] == 11


def test_a_failing_indicators_method_is_a_strategy_error() -> None:
    class BadIndicators:
        def indicators(self, bars: Any) -> dict[str, Any]:
            return {"x": 1 / 0}

        def on_bar(self, broker: Any, history: Any) -> None:
            pass

    with pytest.raises(simbroker.StrategyError, match="before the first bar") as info:
        simbroker.backtest(BadIndicators(), simbroker.synthetic_bars(n_symbols=1, n_bars=5))
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert info.value.bar is None


def test_interrupts_are_not_strategy_errors() -> None:
    with pytest.raises(KeyboardInterrupt):
        simbroker.backtest(_FailsAt(3, KeyboardInterrupt()),  # type: ignore[arg-type]
                           simbroker.synthetic_bars(n_symbols=1, n_bars=5))
