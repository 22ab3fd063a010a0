"""Vectorized stop-loss / take-profit / trailing exits, and parity with their twin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import simbroker
from simbroker import Bars
from simbroker.bars import FIELDS
from simbroker.engine import History
from simbroker.financing import BorrowModel, InterestModel
from simbroker.results import BacktestResult
from simbroker.results.build import build_result
from simbroker.testing.strategies import bar_panels, fee_models, slippage_models, target_frames
from simbroker.vectorized import backtest_vectorized
from simbroker.vectorized_exits import TargetExits, exit_rules


def assert_exact(event: BacktestResult, fast: BacktestResult) -> None:
    """Bit for bit: fills, orders, cash, equity, positions, trades and statistics."""
    pd.testing.assert_frame_equal(fast.fills, event.fills, check_exact=True)
    pd.testing.assert_frame_equal(fast.orders, event.orders, check_exact=True)
    pd.testing.assert_series_equal(fast.cash, event.cash, check_exact=True)
    pd.testing.assert_series_equal(fast.equity, event.equity, check_exact=True)
    pd.testing.assert_frame_equal(fast.positions, event.positions, check_exact=True)
    pd.testing.assert_frame_equal(fast.trades, event.trades, check_exact=True)
    assert fast.config == event.config
    assert list(fast.stats.keys()) == list(event.stats.keys())
    for key, value in event.stats.items():
        if isinstance(value, float):
            np.testing.assert_array_equal(fast.stats[key], value, err_msg=key)
        elif value is pd.NaT:
            assert fast.stats[key] is pd.NaT, key
        else:
            assert fast.stats[key] == value, key


def named_bars(rows: list[tuple[float, float, float, float]],
               volume: list[float] | None = None) -> Bars:
    """One symbol ``X`` on daily bars from (open, high, low, close) rows."""
    a = np.array(rows, np.float64)
    ts = pd.date_range("2024-01-02", periods=len(rows), freq="D", tz="UTC")
    vol = np.array(volume if volume is not None else [1000.0] * len(rows))[:, None]
    return Bars.from_arrays(ts, ["X"], open=a[:, :1], high=a[:, 1:2], low=a[:, 2:3],
                            close=a[:, 3:], volume=vol)


def intraday(bars: Bars) -> Bars:
    """The same panel as one-minute bars (several bars per trading day)."""
    minute = np.timedelta64(60_000_000_000, "ns")
    return Bars(timestamps=np.datetime64("2021-03-01T14:30", "ns") + minute * np.arange(len(bars)),
                symbols=bars.symbols, interval=minute,
                **{f: bars.field(f) for f in FIELDS})


def signal(bars: Bars, at: list[int]) -> pd.DataFrame:
    e = np.zeros((len(bars), 1), np.bool_)
    e[at, 0] = True
    return pd.DataFrame(e, index=bars.index, columns=["X"])


def run(bars: Bars, entries: pd.DataFrame, exits: pd.DataFrame | None = None,
        **kw: Any) -> BacktestResult:
    """The vectorized result, checked against the twin when the broker can run it."""
    kw = {"slippage": None, "fees": None, "size": 10.0, **kw}
    fast = backtest_vectorized(bars, entries=entries, exits=exits, **kw)
    exit_kw = {k: kw.pop(k) for k in ("stop_loss", "take_profit", "trailing_stop")
               if k in kw}
    twin = TargetExits(entries=entries, exits=exits, size=kw.pop("size"), **exit_kw)
    assert_exact(simbroker.backtest(twin, bars, **kw), fast)
    return fast


# Bar 0: the entry signal at its close. Bar 1: the entry fills at its open (100) and the
# exits are placed at its close. Bar 2 on: the exits trade.
ENTRY = [(100.0, 101.0, 99.0, 100.0), (100.0, 102.0, 99.0, 101.0)]


def test_stop_hit_inside_the_bar_fills_at_the_stop() -> None:
    bars = named_bars([*ENTRY, (101.0, 101.0, 94.0, 95.0), (95.0, 96.0, 94.0, 95.0)])
    r = run(bars, signal(bars, [0]), stop_loss=0.05)
    assert r.fills["side"].tolist() == ["buy", "sell"]
    assert r.fills["price"].tolist() == [100.0, 100.0 * (1 - 0.05)]  # 95
    assert r.fills["timestamp"].tolist() == [bars.index[1], bars.index[2]]
    assert r.orders["order_type"].tolist() == ["market", "stop"]
    assert r.orders["tif"].tolist() == ["day", "gtc"]
    assert r.orders["stop_price"].iloc[1] == 95.0
    assert r.orders["submitted_at"].iloc[1] == bars.index[2]  # bar 1's close
    assert r.positions["X"].tolist() == [0.0, 10.0, 0.0, 0.0]


def test_gap_through_the_stop_fills_at_the_open() -> None:
    bars = named_bars([*ENTRY, (93.0, 94.0, 90.0, 91.0)])
    r = run(bars, signal(bars, [0]), stop_loss=0.05)
    assert r.fills["price"].tolist() == [100.0, 93.0]


def test_stop_is_not_live_on_the_entry_bar() -> None:
    # Bar 1 trades through the stop right after the entry fill: the exit waits for bar 2.
    bars = named_bars([ENTRY[0], (100.0, 102.0, 90.0, 101.0), (101.0, 103.0, 100.0, 102.0)])
    r = run(bars, signal(bars, [0]), stop_loss=0.05)
    assert r.fills["side"].tolist() == ["buy"]
    assert r.orders["status"].tolist() == ["filled", "new"]


def test_take_profit_fills_at_its_limit_and_slippage_is_capped_there() -> None:
    bars = named_bars([*ENTRY, (105.0, 112.0, 104.0, 108.0), (108.0, 108.0, 108.0, 108.0)])
    r = run(bars, signal(bars, [0]), take_profit=0.1, slippage=100.0)
    assert r.fills["price"].tolist() == [100.0 * 1.01, 101.0 * 1.1]  # the limit
    # A gap through the take-profit fills at the open, slipped but not below the limit.
    bars = named_bars([*ENTRY, (115.0, 116.0, 114.0, 115.0)])
    r = run(bars, signal(bars, [0]), take_profit=0.1, slippage=100.0)
    assert r.fills["price"].tolist() == [101.0, 115.0 * (1 - 0.01)]


def test_both_legs_on_one_bar() -> None:
    both = (100.0, 111.0, 94.0, 100.0)  # reaches the stop (95) and the take-profit (110)
    bars = named_bars([*ENTRY, both])
    kw: dict[str, Any] = dict(stop_loss=0.05, take_profit=0.1)
    r = run(bars, signal(bars, [0]), **kw)
    assert r.fills["price"].tolist() == [100.0, 95.0]  # the stop first, by default
    assert r.orders["order_type"].tolist() == ["market", "limit", "stop"]
    assert r.orders["status"].tolist() == ["filled", "canceled", "filled"]
    assert r.orders["reason"].iloc[1] is not None  # names the sibling's fill
    r = backtest_vectorized(bars, entries=signal(bars, [0]), size=10.0, slippage=None,
                            fees=None, both_legs="take_profit", stop_loss=0.05,
                            take_profit=0.1)
    twin = TargetExits(entries=signal(bars, [0]), size=10.0, stop_loss=0.05,
                       take_profit=0.1, both_legs="take_profit")
    assert_exact(run_on(simbroker.PaperBroker(bars, slippage=None, fees=None,
                                              both_legs="take_profit"), twin), r)
    assert r.fills["price"].tolist() == [100.0, 110.00000000000001]  # 100 * 1.1
    # The open gaps through the take-profit: that leg, whatever both_legs says.
    bars = named_bars([*ENTRY, (112.0, 113.0, 94.0, 100.0)])
    r = run(bars, signal(bars, [0]), **kw)
    assert r.fills["price"].tolist() == [100.0, 112.0]
    assert r.orders["status"].tolist() == ["filled", "filled", "canceled"]


def test_trailing_stop_ratchets_on_highs_then_triggers() -> None:
    bars = named_bars([
        *ENTRY,                         # exits placed at bar 1's close, 101: level 95.95
        (102.0, 110.0, 100.0, 109.0),   # low 100 > 95.95; the high 110 counts from bar 3
        (108.0, 109.0, 104.0, 105.0),   # level 110 * 0.95 = 104.5: low 104 triggers
        (105.0, 106.0, 104.0, 105.0),
    ])
    r = run(bars, signal(bars, [0]), trailing_stop=0.05)
    assert r.fills["price"].tolist() == [100.0, 110.0 - 110.0 * 5.0 / 100]
    assert r.orders["stop_price"].iloc[1] == 104.5  # the level it filled at
    assert r.fills["timestamp"].iloc[1] == bars.index[3]
    assert r.orders["order_type"].tolist() == ["market", "trailing_stop"]


def test_trailing_stop_for_a_short_ratchets_on_lows() -> None:
    bars = named_bars([*ENTRY, (100.0, 101.0, 90.0, 91.0), (92.0, 95.0, 91.0, 94.0)])
    targets = pd.DataFrame({"X": [-10.0, np.nan, np.nan, np.nan]}, index=bars.index)
    r = backtest_vectorized(bars, targets=targets, slippage=None, fees=None,
                            trailing_stop=0.04)
    assert_exact(simbroker.backtest(TargetExits(targets, trailing_stop=0.04), bars,
                                    slippage=None, fees=None), r)
    # Placed at 101; bar 2 tested at 105.04 (no), then the low 90 moves it to 93.6.
    assert r.fills["side"].tolist() == ["sell", "buy"]
    assert r.fills["price"].tolist() == [100.0, 90.0 + 90.0 * 4.0 / 100]


def test_exit_then_re_entry_on_the_next_signal() -> None:
    bars = named_bars([*ENTRY, (101.0, 101.0, 94.0, 95.0), (96.0, 97.0, 95.0, 96.0),
                       (96.0, 97.0, 95.0, 96.0)])
    # Entry signals on every close: after the stop fills on bar 2, the signal at bar 2's
    # close re-enters at bar 3's open; exits for the new position at bar 3's close.
    r = run(bars, signal(bars, [0, 1, 2, 3, 4]), stop_loss=0.05)
    assert r.fills["side"].tolist() == ["buy", "sell", "buy"]
    assert r.fills["price"].tolist() == [100.0, 95.0, 96.0]
    assert r.orders["order_id"].tolist() == ["O1", "O2", "O3", "O4"]
    assert r.orders["order_type"].tolist() == ["market", "stop", "market", "stop"]
    assert r.orders["stop_price"].iloc[3] == 96.0 * (1 - 0.05)
    assert r.orders["status"].tolist() == ["filled", "filled", "filled", "new"]
    # No signal after the exit: flat to the end.
    r = run(bars, signal(bars, [0]), stop_loss=0.05)
    assert r.fills["side"].tolist() == ["buy", "sell"]
    assert r.final_positions == {}


def test_a_new_target_cancels_resting_exits_and_a_reduction_keeps_the_entry_price() -> None:
    bars = named_bars([*ENTRY, (101.0, 102.0, 100.0, 101.0), (102.0, 103.0, 101.0, 102.0),
                       (100.0, 100.0, 94.0, 95.0), (95.0, 95.0, 95.0, 95.0)])
    targets = pd.DataFrame({"X": [10.0, np.nan, 4.0, np.nan, np.nan, np.nan]},
                           index=bars.index)
    fast = backtest_vectorized(bars, targets=targets, slippage=None, fees=None,
                               stop_loss=0.05)
    event = simbroker.backtest(TargetExits(targets, stop_loss=0.05), bars, slippage=None,
                               fees=None)
    assert_exact(event, fast)
    # O1 buys 10 at 100; O2 (stop 95) rests; the target 4 at bar 2's close cancels O2
    # and sells 6 at bar 3's open; O4 protects the 4 left at the entry price's stop.
    o = fast.orders
    assert o["order_type"].tolist() == ["market", "stop", "market", "stop"]
    assert o["status"].tolist() == ["filled", "canceled", "filled", "filled"]
    assert o["qty"].tolist() == [10.0, 10.0, 6.0, 4.0]
    assert o["stop_price"].tolist()[1::2] == [95.0, 95.0]
    assert fast.fills["price"].tolist() == [100.0, 102.0, 95.0]


def test_zero_volume_bar_fills_no_exit() -> None:
    bars = named_bars([*ENTRY, (101.0, 101.0, 90.0, 95.0), (94.0, 95.0, 93.0, 94.0)],
                      volume=[1000.0, 1000.0, 0.0, 1000.0])
    r = run(bars, signal(bars, [0]), stop_loss=0.05)
    assert r.fills["price"].tolist() == [100.0, 94.0]  # bar 3's open gaps below 95


def test_exit_rules_validate_and_name_the_symbol() -> None:
    syms = ("A", "B")
    rules = exit_rules(syms, stop_loss={"B": 0.1}, take_profit=[0.2, np.nan])
    assert rules is not None
    np.testing.assert_array_equal(rules.stop_loss, [np.nan, 0.1])
    np.testing.assert_array_equal(rules.take_profit, [0.2, np.nan])
    assert exit_rules(syms) is None
    with pytest.raises(ValueError, match=r"stop_loss .* for 'A' it is 1.5"):
        exit_rules(syms, stop_loss=1.5)
    with pytest.raises(ValueError, match="'C'"):
        exit_rules(syms, take_profit={"C": 0.1})
    with pytest.raises(ValueError, match="one per symbol"):
        exit_rules(syms, stop_loss=[0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="'B' has a trailing_stop and a stop_loss"):
        exit_rules(syms, trailing_stop=0.05, stop_loss={"B": 0.1})
    with pytest.raises(ValueError, match="both_legs"):
        exit_rules(syms, stop_loss=0.1, both_legs="limit")
    bars = simbroker.synthetic_bars(n_symbols=2, n_bars=5, seed=1)
    weights = pd.DataFrame(0.1, index=bars.index, columns=list(bars.symbols))
    with pytest.raises(ValueError, match="not weights"):
        backtest_vectorized(bars, weights=weights, stop_loss=0.05)


# ----------------------------------------------------------------- properties
@st.composite
def exit_kwargs(draw: st.DrawFn, n: int) -> dict[str, Any]:
    fraction = st.sampled_from([0.005, 0.01, 0.03, 0.07, 0.15])
    per_symbol = st.one_of(fraction, st.lists(st.one_of(st.just(np.nan), fraction),
                                              min_size=n, max_size=n))
    kind = draw(st.sampled_from(["stop_loss", "take_profit", "oco", "trailing_stop"]))
    if kind == "oco":
        out = {"stop_loss": draw(fraction), "take_profit": draw(fraction)}
        if draw(st.booleans()):
            out["both_legs"] = "take_profit"
        return out
    return {kind: draw(per_symbol)}


@st.composite
def cases(draw: st.DrawFn) -> tuple[Bars, dict[str, Any], dict[str, Any], dict[str, Any]]:
    bars = draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(1, 30),
                           allow_zero_volume=True, allow_missing=draw(st.booleans())))
    if draw(st.booleans()):
        bars = intraday(bars)  # unfilled target orders are canceled, not expired
    shape = (len(bars), bars.n_symbols)
    if draw(st.booleans()):
        frame = draw(target_frames(bars))
        inputs: dict[str, Any] = {"targets": frame}
    else:
        ent = draw(hnp.arrays(np.bool_, shape))
        ext = draw(hnp.arrays(np.bool_, shape))
        inputs = {"entries": pd.DataFrame(ent, index=bars.index, columns=list(bars.symbols)),
                  "exits": pd.DataFrame(ext, index=bars.index, columns=list(bars.symbols)),
                  "size": draw(st.sampled_from([10.0, 0.3, 3.0000000001]))}
    kw = {"slippage": draw(slippage_models()), "fees": draw(fee_models()),
          "cash": draw(st.sampled_from([100_000.0, 1_234.5678])),
          "clip_to_bar": draw(st.booleans())}
    return bars, inputs, draw(exit_kwargs(bars.n_symbols)), kw


FINANCING: list[dict[str, Any]] = [
    {}, {}, {"borrow": BorrowModel(rate=0.5)},
    {"interest": InterestModel(debit=0.08, credit=0.02)},
    {"borrow": BorrowModel(rate=0.03, rates={"SYM000": 0.9}),
     "interest": InterestModel(debit=0.2)}]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from(FINANCING))
def test_event_driven_equals_vectorized_bit_for_bit(
        case: tuple[Bars, dict[str, Any], dict[str, Any], dict[str, Any]],
        financing: dict[str, Any]) -> None:
    # Borrow fees and interest (accrued at each day's end) move only the cash.
    bars, inputs, exits, kw = case
    kw = {**kw, **financing}
    fast = backtest_vectorized(bars, **inputs, **exits, **kw)
    twin = TargetExits(**inputs, **exits)
    if "both_legs" in exits:  # simbroker.backtest runs the broker's default
        event = run_on(simbroker.PaperBroker(bars, both_legs=exits["both_legs"], **kw), twin)
    else:
        event = simbroker.backtest(twin, bars, **kw)
    assert_exact(event, fast)
    if financing:
        for name in ("borrow_fees", "interest"):
            pd.testing.assert_series_equal(getattr(fast, name), getattr(event, name),
                                           check_exact=True)


def run_on(broker: simbroker.PaperBroker, strategy: TargetExits) -> BacktestResult:
    """What ``simbroker.backtest`` does, on a broker built by the caller."""
    history = History(broker.bars, strategy.indicators(broker.bars))
    for t in range(len(broker.bars)):
        broker.step()
        history.t = t
        strategy.on_bar(broker, history)
    return build_result(broker)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_exits_never_go_short_and_conserve_cash_and_shares(
        case: tuple[Bars, dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    bars, inputs, exits, kw = case
    r = backtest_vectorized(bars, **inputs, **exits, **kw)
    f, o = r.fills, r.orders
    if f.empty:
        assert (r.cash == kw["cash"]).all()
        return
    kinds = o.set_index("order_id")["order_type"]
    is_exit = f["order_id"].map(kinds).ne("market").to_numpy()
    signed = np.where(f["side"] == "buy", 1.0, -1.0) * f["qty"].to_numpy()
    # Position before each fill, per symbol, in fill order.
    before = pd.Series(signed).groupby(f["symbol"].to_numpy()).cumsum().to_numpy() - signed
    after = before + signed
    # An exit closes exactly the position it protects, never past flat.
    # (``before`` is a running sum of fills, so it carries the sum's rounding; the broker
    # snaps float dust, so the tolerance is the sum's scale, not the exit's.)
    scale = 1e-9 * max(1.0, np.abs(before).max() if len(before) else 1)
    np.testing.assert_allclose(np.abs(signed[is_exit]), np.abs(before[is_exit]), rtol=1e-12,
                               atol=scale)
    assert (np.sign(signed[is_exit]) == -np.sign(before[is_exit])).all()
    np.testing.assert_allclose(after[is_exit], 0.0, atol=scale)
    if "entries" in inputs:  # long-only signals: exits never leave a short
        assert (r.positions.to_numpy() >= 0).all()
    # At most one exit per entry: every exit follows a market fill of the same symbol.
    last_kind: dict[str, bool] = {}
    for sym, ex in zip(f["symbol"].tolist(), is_exit.tolist(), strict=True):
        if ex:
            assert last_kind.get(sym) is False
        last_kind[sym] = ex
    # Cash: start - signed notional - fees, fill by fill.
    flows = -(np.where(f["side"] == "buy", 1.0, -1.0) * f["notional"]).sum() - f["fee"].sum()
    np.testing.assert_allclose(r.cash.iloc[-1], kw["cash"] + flows, rtol=1e-9, atol=1e-6)
    # Shares: the final positions are the sums of the signed fills.
    sums = pd.Series(signed).groupby(f["symbol"].to_numpy()).sum()
    for sym in bars.symbols:
        np.testing.assert_allclose(r.positions[sym].iloc[-1], sums.get(sym, 0.0),
                                   atol=1e-9 * max(1.0, float(np.abs(signed).max())
                                                   if len(signed) else 1.0))
    # Exits trade only after the close they were placed at.
    placed = o.set_index("order_id")["submitted_at"]
    assert (f["timestamp"] >= f["order_id"].map(placed)).all()
