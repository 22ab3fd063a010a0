"""The vectorized runner equals the event-driven backtest, fill for fill."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import simbroker
from simbroker import (
    Bars,
    PerShare,
    VolumeShare,
    vectorized,
)
from simbroker.bars import FIELDS
from simbroker.results import BacktestResult
from simbroker.testing.strategies import bar_panels, fee_models, slippage_models, target_frames
from simbroker.vectorized import TargetPositions, _numbered, _pick, backtest_vectorized

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def assert_same(event: BacktestResult, fast: BacktestResult) -> None:
    """Identical fills and orders; cash, equity and positions equal (rtol 1e-9)."""
    pd.testing.assert_frame_equal(fast.fills, event.fills, check_exact=True)
    # Both frames have fixed columns and dtypes, empty or not.
    pd.testing.assert_frame_equal(fast.orders, event.orders, check_exact=True)
    pd.testing.assert_frame_equal(fast.trades, event.trades, check_exact=False, rtol=1e-9,
                                  atol=1e-6)
    for name in ("cash", "equity"):
        pd.testing.assert_series_equal(getattr(fast, name), getattr(event, name),
                                       check_exact=False, rtol=1e-9, atol=0.0)
    pd.testing.assert_frame_equal(fast.positions, event.positions, check_exact=False,
                                  rtol=1e-9, atol=0.0)
    assert list(fast.stats.keys()) == list(event.stats.keys())
    assert fast.config == event.config
    for key, value in event.stats.items():
        if isinstance(value, float):
            np.testing.assert_allclose(fast.stats[key], value, rtol=1e-9, atol=1e-12,
                                       err_msg=key)
        elif value is pd.NaT:
            assert fast.stats[key] is pd.NaT, key
        else:
            assert fast.stats[key] == value, key


def assert_exact(event: BacktestResult, fast: BacktestResult) -> None:
    """Bit-for-bit: what the runner promises when no summation order differs."""
    assert_same(event, fast)
    pd.testing.assert_series_equal(fast.cash, event.cash, check_exact=True)
    pd.testing.assert_series_equal(fast.equity, event.equity, check_exact=True)
    pd.testing.assert_frame_equal(fast.positions, event.positions, check_exact=True)
    pd.testing.assert_frame_equal(fast.trades, event.trades, check_exact=True)


def both(bars: Bars, targets: pd.DataFrame, **kw: Any) -> tuple[BacktestResult, BacktestResult]:
    event = simbroker.backtest(TargetPositions(targets), bars, **kw)
    fast = backtest_vectorized(bars, targets=targets, **kw)
    return event, fast


def intraday(bars: Bars) -> Bars:
    """The same panel as one-minute bars (several bars per trading day)."""
    minute = np.timedelta64(60_000_000_000, "ns")
    return Bars(timestamps=np.datetime64("2021-03-01T14:30", "ns") + minute * np.arange(len(bars)),
                symbols=bars.symbols, interval=minute,
                **{f: bars.field(f) for f in FIELDS})


@st.composite
def cases(draw: st.DrawFn) -> tuple[Bars, pd.DataFrame, dict[str, Any]]:
    bars = draw(bar_panels(n_symbols=st.integers(1, 4), n_bars=st.integers(1, 25),
                           allow_zero_volume=True, allow_missing=draw(st.booleans())))
    if draw(st.booleans()):
        bars = intraday(bars)
    targets = draw(target_frames(bars))
    kw = {"slippage": draw(slippage_models()), "fees": draw(fee_models()),
          "cash": draw(st.sampled_from([100_000.0, 1_234.5678])),
          "clip_to_bar": draw(st.booleans())}
    return bars, targets, kw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from([0.0, 2.0]), st.booleans())
def test_parity_with_event_driven_backtest(case: tuple[Bars, pd.DataFrame, dict[str, Any]],
                                           sparse_below: float, as_array: bool) -> None:
    # Both ways of reading the targets (whole-panel masks, or a list of the given cells),
    # from the frame (column-major) or a row-major array.
    bars, targets, kw = case
    event = simbroker.backtest(TargetPositions(targets), bars, **kw)
    values = targets.reindex(columns=list(bars.symbols)).to_numpy(copy=True)
    with mock.patch.object(vectorized, "_SPARSE_BELOW", sparse_below):
        fast = backtest_vectorized(bars, targets=np.ascontiguousarray(values) if as_array
                                   else targets, **kw)
    assert_exact(event, fast)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(1, 25), allow_missing=True),
       st.data())
def test_parity_for_weights(bars: Bars, data: st.DataObject) -> None:
    w = data.draw(hnp.arrays(np.float64, (len(bars), bars.n_symbols), elements=st.one_of(
        st.just(np.nan), st.floats(-0.5, 0.5, allow_nan=False, allow_subnormal=False))))
    weights = pd.DataFrame(w, index=bars.index, columns=list(bars.symbols))
    integer = data.draw(st.booleans())
    event = simbroker.backtest(TargetPositions(weights=weights, integer=integer), bars)
    fast = backtest_vectorized(bars, weights=weights, integer=integer)
    assert_exact(event, fast)


# ----------------------------------------------------------------- sample data
def _load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def sma_targets(bars: Bars, fast: int = 10, slow: int = 50, qty: float = 100) -> pd.DataFrame:
    close = bars.frame("close")
    f = close.rolling(fast, min_periods=fast).mean()
    s = close.rolling(slow, min_periods=slow).mean()
    valid = f.notna() & s.notna()
    above = (f > s) & valid
    prev_valid = valid.shift(1, fill_value=False)
    up = above & ~above.shift(1, fill_value=False) & valid & prev_valid
    down = ~above & above.shift(1, fill_value=False) & valid & prev_valid
    return pd.DataFrame(np.where(up, qty, np.where(down, 0.0, np.nan)), index=close.index,
                        columns=close.columns)


def test_sample_data_sma_example_matches_the_event_driven_example() -> None:
    bars = simbroker.sample_bars()
    sma = _load_example("sma_crossover")
    event = simbroker.backtest(sma.SmaCrossover(10, 50, qty=100), bars, cash=100_000)
    fast = backtest_vectorized(bars, targets=sma_targets(bars), cash=100_000)
    assert len(event.fills) > 20
    assert_exact(event, fast)
    # entries/exits say the same thing.
    t = sma_targets(bars)
    signals = backtest_vectorized(bars, entries=t.eq(100), exits=t.eq(0), size=100,
                                  cash=100_000)
    assert_exact(event, signals)


def test_sample_data_fractional_long_short_targets() -> None:
    bars = simbroker.sample_bars()
    rng = np.random.default_rng(7)
    grid = rng.normal(0, 40, (len(bars), bars.n_symbols)).round(3)
    grid[rng.random(grid.shape) < 0.6] = np.nan
    targets = pd.DataFrame(grid, index=bars.index, columns=list(bars.symbols))
    event, fast = both(bars, targets, slippage=VolumeShare(), fees=PerShare())
    assert len(event.fills) > 1000
    assert_exact(event, fast)


def test_sample_data_weights() -> None:
    bars = simbroker.sample_bars().select(start="2012-01-01")
    close = bars.frame("close")
    weights = (close.pct_change(20) > 0).astype(float) * 0.2
    weights = weights.where(close.notna())
    event = simbroker.backtest(TargetPositions(weights=weights, integer=True), bars)
    fast = backtest_vectorized(bars, weights=weights, integer=True)
    assert len(fast.fills) > 50
    assert_exact(event, fast)
    assert (fast.fills["qty"] % 1 == 0).all()


# -------------------------------------------------------------- hand-computed
def tiny_bars(volume: list[float] | None = None) -> Bars:
    ts = pd.date_range("2024-01-01", periods=4, freq="D")
    o = np.array([[10.0], [11.0], [12.0], [13.0]])
    return Bars.from_arrays(ts, ["X"], open=o, high=o + 1, low=o - 1, close=o + 0.5,
                            volume=np.array([volume or [100.0] * 4]).T)


def test_hand_computed_fills_cash_and_equity() -> None:
    bars = tiny_bars()
    targets = pd.DataFrame({"X": [10.0, np.nan, -5.0, 3.0]}, index=bars.index)
    r = backtest_vectorized(bars, targets=targets, slippage=100.0, fees=10.0, cash=1000.0)
    # Buy 10 at 11 * 1.01 = 11.11 on bar 1; sell 15 at 13 * 0.99 = 12.87 on bar 3.
    assert r.fills["qty"].tolist() == [10.0, 15.0]
    assert r.fills["side"].tolist() == ["buy", "sell"]
    np.testing.assert_allclose(r.fills["price"], [11.11, 12.87])
    np.testing.assert_allclose(r.fills["fee"], [0.1111, 0.19305])
    assert r.fills["order_id"].tolist() == ["O1", "O2"]
    assert r.fills["fill_id"].tolist() == ["O1-1", "O2-1"]
    assert r.orders["status"].tolist() == ["filled", "filled", "new"]  # O3 at the last close
    cash1 = 1000.0 - 111.1 - 0.1111
    cash3 = cash1 + 15 * 12.87 - 0.19305
    np.testing.assert_allclose(r.cash, [1000.0, cash1, cash1, cash3])
    np.testing.assert_allclose(r.equity, [1000.0, cash1 + 10 * 11.5, cash1 + 10 * 12.5,
                                          cash3 - 5 * 13.5])
    assert r.final_positions == {"X": -5.0}


def test_zero_volume_bar_does_not_fill_and_the_target_is_retried() -> None:
    bars = tiny_bars(volume=[100.0, 0.0, 100.0, 100.0])
    targets = pd.DataFrame({"X": [10.0, np.nan, np.nan, np.nan]}, index=bars.index)
    r = backtest_vectorized(bars, targets=targets, slippage=None, fees=None)
    assert r.fills.empty  # NaN after bar 0: the expired order is not re-decided
    assert r.orders["status"].tolist() == ["expired"]
    targets["X"] = [10.0, 10.0, np.nan, np.nan]
    r = backtest_vectorized(bars, targets=targets, slippage=None, fees=None)
    assert r.fills["timestamp"].tolist() == [bars.index[2]]
    assert r.fills["order_id"].tolist() == ["O2"]
    assert r.orders["status"].tolist() == ["expired", "filled"]


def test_no_targets_no_orders() -> None:
    bars = tiny_bars()
    r = backtest_vectorized(bars, targets=pd.DataFrame(index=bars.index))
    assert r.fills.empty
    assert r.orders.empty
    assert (r.equity == 100_000.0).all()
    event = simbroker.backtest(lambda broker, history: None, bars)
    pd.testing.assert_frame_equal(r.fills, event.fills)


def test_numpy_targets_and_a_subset_of_columns() -> None:
    bars = simbroker.synthetic_bars(n_symbols=3, n_bars=30, seed=4)
    grid = np.where(np.arange(30)[:, None] % 5 == 0, 7.0, np.nan) * np.ones((1, 3))
    full = backtest_vectorized(bars, targets=grid)
    frame = pd.DataFrame(grid, index=bars.index, columns=list(bars.symbols))
    reordered = frame[[bars.symbols[2], bars.symbols[0], bars.symbols[1]]]
    pd.testing.assert_frame_equal(backtest_vectorized(bars, targets=reordered).fills, full.fills)
    sub = backtest_vectorized(bars, targets=frame[[bars.symbols[1]]])
    assert set(sub.fills["symbol"]) == {bars.symbols[1]}
    # The frame's own (column-major) values and a Fortran-ordered array: the same run.
    for same in (frame, np.asfortranarray(grid)):
        other = backtest_vectorized(bars, targets=same)
        pd.testing.assert_frame_equal(other.fills, full.fills)
        pd.testing.assert_frame_equal(other.orders, full.orders)
        pd.testing.assert_frame_equal(other.positions, full.positions)


@given(st.lists(st.integers(1, 10**15), max_size=50).map(sorted),
       st.sampled_from(["", "O", "é-"]), st.sampled_from(["", "-1"]))
def test_numbered_strings_are_the_formatted_numbers(numbers: list[int], prefix: str,
                                                    suffix: str) -> None:
    built = _numbered(np.array(numbers, np.int64), prefix, suffix).to_pylist()
    assert built == [f"{prefix}{n}{suffix}" for n in numbers]


@given(st.lists(st.text(max_size=5), min_size=1, max_size=6), st.data())
def test_picked_strings_are_the_choices(choices: list[str], data: st.DataObject) -> None:
    codes = data.draw(st.lists(st.integers(0, len(choices) - 1), max_size=30))
    built = _pick(choices, np.array(codes, np.int64)).to_pylist()
    assert built == [choices[c] for c in codes]


# ----------------------------------------------------------------- bad inputs
def test_bad_inputs_name_what_is_wrong() -> None:
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=10, seed=1)
    ok = pd.DataFrame(1.0, index=bars.index, columns=list(bars.symbols))
    with pytest.raises(ValueError, match=r"exactly one of targets=.*got targets, entries"):
        backtest_vectorized(bars, targets=ok, entries=ok.astype(bool))
    with pytest.raises(ValueError, match="none of them"):
        backtest_vectorized(bars)
    with pytest.raises(ValueError, match="not in the bars: 'NOPE'"):
        backtest_vectorized(bars, targets=ok.assign(NOPE=1.0))
    with pytest.raises(ValueError, match="9 rows, the bars have 10"):
        backtest_vectorized(bars, targets=ok.iloc[1:])
    shifted = ok.set_axis(bars.index + pd.Timedelta(hours=1), axis=0)
    with pytest.raises(ValueError, match="row 0 is 2015-01-02 01:00:00"):
        backtest_vectorized(bars, targets=shifted)
    with pytest.raises(ValueError, match="indexed by the bars' timestamps"):
        backtest_vectorized(bars, targets=ok.reset_index(drop=True))
    with pytest.raises(ValueError, match=r"shape \(3, 2\); expected \(10, 2\)"):
        backtest_vectorized(bars, targets=np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"finite or NaN; targets\[.*'SYM001'\] is inf"):
        backtest_vectorized(bars, targets=ok.assign(SYM001=np.inf))
    with pytest.raises(TypeError, match="booleans"):
        backtest_vectorized(bars, entries=ok)
    with pytest.raises(TypeError, match="Series"):
        backtest_vectorized(bars, targets=ok["SYM000"])
    with pytest.raises(ValueError, match="size must be"):
        backtest_vectorized(bars, entries=ok.astype(bool), size=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="duplicate columns: SYM000"):
        backtest_vectorized(bars, targets=pd.concat([ok, ok[["SYM000"]]], axis=1))


def test_float_rounding_of_positions_is_reproduced() -> None:
    # 3 -> -0.1 lands on -0.10000000000000009, so the next -0.1 target orders the dust.
    bars = tiny_bars()
    targets = pd.DataFrame({"X": [3.0, -0.1, -0.1, np.nan]}, index=bars.index)
    event, fast = both(bars, targets)
    assert_exact(event, fast)
    assert fast.positions["X"].iloc[2] == 3.0 - 3.1
    assert len(fast.fills) == 3
    assert fast.fills["qty"].iloc[2] < 1e-15
