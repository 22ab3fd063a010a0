"""Partial fills by volume (``max_volume_share``): paper broker, fees, log, vectorized."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import simbroker
from simbroker import Bars, PaperBroker
from simbroker.models.fees import BpsOfNotional, NoFee, PerOrder, PerShare
from simbroker.testing.strategies import bar_panels, fee_models, slippage_models, target_frames
from simbroker.tradelog import cash_after_fill, position_after_fill, replay_trade_log
from simbroker.vectorized import TargetPositions, backtest_vectorized

DAY = np.timedelta64(86_400_000_000_000, "ns")
MINUTE = np.timedelta64(60_000_000_000, "ns")


def panel(volume: list[float], *, step: np.timedelta64 = DAY, opens: list[float] | None = None,
          lows: list[float] | None = None, highs: list[float] | None = None) -> Bars:
    """One symbol "A": opens 10, 11, 12, ... (unless given), a 1-wide range around it."""
    n = len(volume)
    o = np.array(opens if opens is not None else [10.0 + i for i in range(n)])
    lo = np.array(lows) if lows is not None else o - 1.0
    hi = np.array(highs) if highs is not None else o + 1.0
    start = np.datetime64("2024-01-02T14:30", "ns") if step == MINUTE else \
        np.datetime64("2024-01-02", "ns")
    return Bars(timestamps=start + step * np.arange(n), symbols=("A",), interval=step,
                open=o[:, None], high=hi[:, None], low=lo[:, None],
                close=(o + 0.5)[:, None], volume=np.array(volume, float)[:, None])


def relabel(bars: Bars, timestamps: np.ndarray, interval: np.timedelta64, *,
            volume_known: bool = True) -> Bars:
    """The same prices under other timestamps (or with the volume unknown)."""
    return Bars(timestamps=timestamps, symbols=bars.symbols, interval=interval,
                volume_known=volume_known, open=bars.open, high=bars.high, low=bars.low,
                close=bars.close, volume=bars.volume)


def broker(bars: Bars, **kw: Any) -> PaperBroker:
    kw.setdefault("slippage", 0.0)
    kw.setdefault("fees", None)
    return PaperBroker(bars, max_volume_share=0.025, **kw)


# ------------------------------------------------------------------ hand-computed
def test_a_partial_fill_across_three_bars_charges_the_per_order_minimum_once() -> None:
    # 250 shares at 2.5% of 4,000 a bar: 100, 100, then the last 50. IBKR-style $0.005 a
    # share with a $1 minimum for the whole order: F(100)=1.00, F(200)=1.00, F(250)=1.25.
    bars = panel([1000, 4000, 4000, 4000, 4000])
    b = broker(bars, fees=PerShare(0.005, minimum=1.0, maximum_fraction=None), cash=10_000)
    b.step()
    oid = b.submit_order("A", "buy", 250, tif="gtc")["order_id"]
    b.step()
    info = b.get_order(oid)
    assert (info["status"], info["filled_qty"], info["remaining_qty"]) == (
        "partially_filled", 100.0, 150.0)
    b.step()
    assert b.get_order(oid)["filled_qty"] == 200.0
    b.step()
    info = b.get_order(oid)
    assert (info["status"], info["filled_qty"], info["remaining_qty"]) == ("filled", 250.0, 0.0)
    fills = b.get_fills()
    assert [(f["fill_id"], f["qty"], f["price"], f["fee"]) for f in fills] == [
        ("O1-1", 100.0, 11.0, 1.0), ("O1-2", 100.0, 12.0, 0.0), ("O1-3", 50.0, 13.0, 0.25)]
    assert info["avg_fill_price"] == (1100 + 1200 + 650) / 250
    assert b.get_cash() == 10_000 - 1100 - 1 - 1200 - 0 - 650 - 0.25
    assert b.get_positions() == {"A": 250.0}
    b.step()
    assert len(b.get_fills()) == 3


def test_a_day_order_expires_with_what_remains_and_keeps_its_fills() -> None:
    bars = panel([4000, 4000, 4000])
    b = broker(bars)
    b.step()
    oid = b.submit_order("A", "sell", 300)["order_id"]  # daily bars: one bar to trade
    b.step()
    info = b.get_order(oid)
    assert (info["status"], info["filled_qty"], info["remaining_qty"]) == ("expired", 100.0,
                                                                           200.0)
    assert "partially filled" in str(info["reason"])
    assert b.get_positions() == {"A": -100.0}
    b.step()
    assert len(b.get_fills()) == 1


def test_an_intraday_day_order_fills_on_later_bars_of_its_session() -> None:
    bars = panel([4000, 400, 4000, 800], step=MINUTE)
    b = broker(bars)
    b.step()
    oid = b.submit_order("A", "buy", 150)["order_id"]
    for _ in range(3):
        b.step()
    # Whole shares of 2.5% of each bar: 10 of 400, 100 of 4,000, 20 of 800.
    assert [f["qty"] for f in b.get_fills()] == [10.0, 100.0, 20.0]
    info = b.get_order(oid)
    assert (info["status"], info["filled_qty"]) == ("expired", 130.0)  # the data's last bar


def test_cancel_of_a_partially_filled_order_keeps_its_fills() -> None:
    bars = panel([4000, 4000, 4000])
    b = broker(bars)
    b.step()
    oid = b.submit_order("A", "buy", 300, tif="gtc")["order_id"]
    b.step()
    info = b.cancel_order(oid)
    assert (info["status"], info["filled_qty"]) == ("canceled", 100.0)
    b.step()
    assert b.get_positions() == {"A": 100.0}
    assert len(b.get_fills()) == 1


def test_orders_of_one_symbol_share_the_bar_in_time_priority() -> None:
    bars = panel([4000, 4000, 4000])
    b = broker(bars)
    b.step()
    first = b.submit_order("A", "buy", 70, tif="gtc")["order_id"]
    second = b.submit_order("A", "sell", 70, tif="gtc")["order_id"]
    b.step()
    assert b.get_order(first)["status"] == "filled"
    assert b.get_order(second)["filled_qty"] == 30.0  # what the first left of the 100
    b.step()
    assert b.get_order(second)["status"] == "filled"
    assert [f["fill_id"] for f in b.get_fills()] == ["O1-1", "O2-1", "O2-2"]


def test_fractional_orders_take_the_exact_share_and_whole_ones_whole_shares() -> None:
    bars = panel([1, 50, 50])
    b = broker(bars)
    b.step()
    whole = b.submit_order("A", "buy", 10, tif="gtc")["order_id"]
    b.step()  # 2.5% of 50 = 1.25 -> 1 share
    assert b.get_order(whole)["filled_qty"] == 1.0
    b.cancel_order(whole)
    frac = b.submit_order("A", "buy", 10.5, tif="gtc")["order_id"]
    b.step()
    assert b.get_order(frac)["filled_qty"] == 1.25


def test_limit_parts_fill_at_their_own_bars_prices() -> None:
    bars = panel([4000, 4000, 4000, 4000], opens=[10.0, 12.0, 9.0, 8.0])
    b = broker(bars)
    b.step()
    b.submit_order("A", "buy", 250, "limit", limit_price=10.5, tif="gtc")
    for _ in range(3):
        b.step()
    # Bar 1 (low 11) misses; bar 2 opens below the limit: 9; bar 3: 8.
    assert [(f["qty"], f["price"]) for f in b.get_fills()] == [(100.0, 9.0), (100.0, 8.0)]


def test_a_stop_filled_in_part_rests_as_a_market_order() -> None:
    bars = panel([4000, 4000, 4000, 4000], opens=[10.0, 10.0, 20.0, 20.0],
                 lows=[9.0, 9.0, 19.5, 19.5], highs=[11.0, 10.8, 21.0, 21.0])
    b = broker(bars)
    b.step()
    oid = b.submit_order("A", "sell", 250, "stop", stop_price=9.5, tif="gtc")["order_id"]
    b.step()  # low 9 hits the stop: 100 at 9.5
    b.step()  # far above the stop now, but the rest is a market order: 100 at the open
    assert [(f["qty"], f["price"]) for f in b.get_fills()] == [(100.0, 9.5), (100.0, 20.0)]
    assert b.get_order(oid)["status"] == "partially_filled"


def test_fok_does_not_fill_in_part_and_ioc_cancels_the_rest() -> None:
    bars = panel([4000, 4000, 4000])
    b = broker(bars)
    b.step()
    fok = b.submit_order("A", "buy", 200, tif="fok")["order_id"]
    ioc = b.submit_order("A", "buy", 200, tif="ioc")["order_id"]
    b.step()
    assert b.get_order(fok)["status"] == "canceled"
    assert b.get_order(fok)["filled_qty"] == 0
    info = b.get_order(ioc)
    assert (info["status"], info["filled_qty"]) == ("canceled", 100.0)


def test_bracket_children_follow_the_parents_filled_quantity() -> None:
    bars = panel([4000] * 6)
    b = broker(bars)
    b.step()
    parent = b.submit_order("A", "buy", 250, tif="gtc", order_class="bracket",
                            take_profit={"limit_price": 1000.0},
                            stop_loss={"stop_price": 1.0})
    tp, sl = parent["legs"]
    b.step()
    assert b.get_order(tp)["status"] == "new"
    assert b.get_order(tp)["qty"] == 100.0
    assert b.get_order(sl)["qty"] == 100.0
    b.step()
    assert b.get_order(tp)["qty"] == 200.0
    assert b.get_order(sl)["qty"] == 200.0
    b.step()
    assert b.get_order(parent["order_id"])["status"] == "filled"
    assert b.get_order(tp)["qty"] == 250.0
    assert b.get_order(sl)["qty"] == 250.0


def test_an_oco_leg_filled_in_part_cancels_its_sibling() -> None:
    bars = panel([4000, 4000, 4000], opens=[10.0, 12.0, 12.0])
    b = broker(bars, positions={"A": 250.0})
    b.step()
    leg = b.submit_order("A", "sell", 250, "limit", limit_price=11.5, tif="gtc",
                         order_class="oco", take_profit={"limit_price": 11.5},
                         stop_loss={"stop_price": 5.0})
    b.step()
    assert b.get_order(leg["order_id"])["status"] == "partially_filled"
    assert b.get_order(leg["legs"][0])["status"] == "canceled"


def test_a_trailing_stop_filled_in_part_rests_as_a_market_order() -> None:
    bars = panel([4000, 4000, 4000, 4000], opens=[10.0, 10.0, 30.0, 30.0],
                 lows=[9.9, 8.0, 29.0, 29.0], highs=[10.5, 10.0, 31.0, 31.0])
    b = broker(bars, positions={"A": 300.0})
    b.step()
    b.submit_order("A", "sell", 250, "trailing_stop", trail_amount=1.0, tif="gtc")
    b.step()
    b.step()
    assert [f["qty"] for f in b.get_fills()] == [100.0, 100.0]
    assert b.get_fills()[1]["price"] == 30.0


def test_volume_unknown_bars_refuse_the_cap() -> None:
    bars = panel([1, 1])
    unknown = relabel(bars, bars.ts_ns.view("M8[ns]"), bars.interval, volume_known=False)
    with pytest.raises(ValueError, match="volume_known=False"):
        PaperBroker(unknown, max_volume_share=0.1)
    with pytest.raises(ValueError, match="volume_known=False"):
        backtest_vectorized(unknown, targets=np.zeros((2, 1)), max_volume_share=0.1)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan"), float("inf")])
def test_a_share_outside_zero_to_one_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="max_volume_share"):
        PaperBroker(panel([1, 1]), max_volume_share=bad)
    with pytest.raises(TypeError, match="max_volume_share"):
        PaperBroker(panel([1, 1]), max_volume_share="0.1")  # type: ignore[arg-type]


def test_the_trade_log_has_one_filled_record_per_part_and_replay_keeps_filled_qty(
        tmp_path: Any) -> None:
    bars = panel([4000] * 4)
    path = tmp_path / "log.jsonl"
    b = broker(bars, trade_log=path, fees=PerOrder(1.0), cash=10_000)
    b.step()
    oid = b.submit_order("A", "buy", 250, tif="gtc")["order_id"]
    b.step()
    b.step()
    b.close()
    state = replay_trade_log(path)
    assert [f["fill_id"] for f in state.fills] == ["O1-1", "O1-2"]
    assert [f["fee"] for f in state.fills] == [1.0, 0.0]
    assert state.filled_qty == {oid: 200.0}
    assert oid in state.open_orders
    assert state.cash == b.get_cash()
    assert state.positions == b.get_positions()


def test_replace_of_a_partially_filled_order_keeps_its_fills() -> None:
    bars = panel([4000] * 4)
    b = broker(bars)
    b.step()
    oid = b.submit_order("A", "buy", 250, "limit", limit_price=100.0, tif="gtc")["order_id"]
    b.step()
    b.replace_order(oid, qty=150)
    b.step()
    info = b.get_order(oid)
    assert (info["status"], info["filled_qty"]) == ("filled", 150.0)
    assert [f["qty"] for f in b.get_fills()] == [100.0, 50.0]


def test_default_path_is_unchanged() -> None:
    bars = panel([10, 10])
    b = PaperBroker(bars, slippage=0.0, fees=None)
    b.step()
    b.submit_order("A", "buy", 10_000)
    b.step()
    assert b.get_fills()[0]["qty"] == 10_000
    assert b.get_fills()[0]["fill_id"] == "O1-1"


# ------------------------------------------------------------------ fee models
@given(st.lists(st.floats(0.5, 1000.0), min_size=1, max_size=6),
       st.lists(st.floats(1.0, 500.0), min_size=6, max_size=6),
       st.sampled_from([PerShare(), PerShare(0.005, 1.0, None), PerOrder(0.35), NoFee(),
                        BpsOfNotional(1.0), BpsOfNotional(2.0) + PerShare(0.01, 2.0)]))
def test_order_fees_of_the_parts_add_up_to_the_whole_orders_fee(
        parts: list[float], prices: list[float], model: Any) -> None:
    q = np.array(parts)
    p = np.array(prices[: len(parts)])
    side = np.ones(len(q))
    done = np.concatenate([[0.0], np.cumsum(q)[:-1]])
    paid = np.concatenate([[0.0], np.cumsum(q * p)[:-1]])
    fees = model.order_fees(side, q, p, done, paid)
    assert (fees >= 0).all()
    assert fees[0] == model.fees(side[:1], q[:1], p[:1])[0]  # a first fill: as fees()
    if isinstance(model, (BpsOfNotional, NoFee)):
        np.testing.assert_array_equal(fees, model.fees(side, q, p))  # per fill
    else:
        whole = model.fees(side[:1], np.array([q.sum()]), np.array([(q * p).sum() / q.sum()]))
        np.testing.assert_allclose(fees.sum(), whole[0], rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------ properties
@st.composite
def order_runs(draw: st.DrawFn) -> tuple[Bars, float, list[list[tuple[str, str, float, str]]]]:
    bars = draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(2, 15),
                           allow_missing=draw(st.booleans())))
    if draw(st.booleans()):
        bars = relabel(bars, np.datetime64("2021-03-01T14:30", "ns")
                       + MINUTE * np.arange(len(bars)), MINUTE)
    share = draw(st.sampled_from([1e-6, 1e-5, 1e-4, 0.025, 1.0]))
    plan = draw(st.lists(st.lists(st.tuples(
        st.sampled_from(bars.symbols), st.sampled_from(["buy", "sell"]),
        st.one_of(st.integers(1, 500).map(float), st.floats(0.1, 300.0)),
        st.sampled_from(["day", "gtc", "ioc", "fok"])), max_size=3),
        min_size=len(bars), max_size=len(bars)))
    return bars, share, plan


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order_runs(), fee_models())
def test_parts_respect_the_cap_sum_to_the_order_and_conserve_cash(
        run: tuple[Bars, float, list[list[tuple[str, str, float, str]]]], fees: Any) -> None:
    bars, share, plan = run
    b = PaperBroker(bars, max_volume_share=share, fees=fees, slippage=5.0)
    for t in range(len(bars)):
        b.step()
        for sym, side, qty, tif in plan[t]:
            b.submit_order(sym, side, qty, tif=tif)
    fills = b.get_fills()
    taken: dict[tuple[Any, str], float] = defaultdict(float)
    per_order: dict[str, float] = defaultdict(float)
    cash = b.initial_cash
    pos: dict[str, float] = defaultdict(float)
    idx = {ts: i for i, ts in enumerate(bars.ts_ns // 1000 * 1000)}
    for f in fills:
        ns = int(pd.Timestamp(f["timestamp"]).value)
        bar = idx[ns]
        taken[(bar, f["symbol"])] += f["qty"]
        per_order[f["order_id"]] += f["qty"]
        cash = cash_after_fill(cash, f["side"], f["notional"], f["fee"])
        pos[f["symbol"]] = position_after_fill(pos[f["symbol"]], f["side"], f["qty"])
        assert f["fill_id"].startswith(f["order_id"] + "-")
    for (bar, sym), q in taken.items():
        vol = bars.volume[bar, bars.symbol_index(sym)]
        assert q <= share * vol * (1 + 1e-12) + 1e-9, (bar, sym)
    for o in b.get_orders():
        filled = per_order.get(o["order_id"], 0.0)
        assert o["filled_qty"] == pytest.approx(filled, rel=1e-12, abs=1e-12)
        assert o["remaining_qty"] == pytest.approx(o["qty"] - filled, rel=1e-12, abs=1e-9)
        if o["status"] == "filled":
            assert filled == pytest.approx(o["qty"], rel=1e-12)
        else:
            assert filled <= o["qty"] * (1 + 1e-12)
        if o["tif"] == "fok":
            assert filled in (0.0, o["qty"])
        n_parts = sum(1 for f in fills if f["order_id"] == o["order_id"])
        assert [f["fill_id"] for f in fills if f["order_id"] == o["order_id"]] == [
            f"{o['order_id']}-{k}" for k in range(1, n_parts + 1)]
    assert cash == b.get_cash()
    assert {k: v for k, v in pos.items() if v} == b.get_positions()


@st.composite
def capped_cases(draw: st.DrawFn) -> tuple[Bars, pd.DataFrame, dict[str, Any]]:
    bars = draw(bar_panels(n_symbols=st.integers(1, 4), n_bars=st.integers(1, 25),
                           allow_zero_volume=True, allow_missing=draw(st.booleans())))
    if draw(st.booleans()):
        bars = relabel(bars, np.datetime64("2021-03-01T14:30", "ns")
                       + MINUTE * np.arange(len(bars)), MINUTE)
    targets = draw(target_frames(bars))
    kw = {"slippage": draw(slippage_models()), "fees": draw(fee_models()),
          "cash": draw(st.sampled_from([100_000.0, 1_234.5678])),
          "clip_to_bar": draw(st.booleans()),
          "max_volume_share": draw(st.sampled_from([1e-6, 1e-5, 1e-4, 0.025, 1.0]))}
    return bars, targets, kw


def assert_identical(event: Any, fast: Any) -> None:
    pd.testing.assert_frame_equal(fast.fills, event.fills, check_exact=True)
    pd.testing.assert_frame_equal(fast.orders, event.orders, check_exact=True)
    pd.testing.assert_series_equal(fast.cash, event.cash, check_exact=True)
    pd.testing.assert_series_equal(fast.equity, event.equity, check_exact=True)
    pd.testing.assert_frame_equal(fast.positions, event.positions, check_exact=True)
    pd.testing.assert_frame_equal(fast.trades, event.trades, check_exact=True)
    assert fast.config == event.config


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capped_cases())
def test_event_driven_equals_vectorized_with_a_volume_cap(
        case: tuple[Bars, pd.DataFrame, dict[str, Any]]) -> None:
    bars, targets, kw = case
    event = simbroker.backtest(TargetPositions(targets), bars, **kw)
    fast = backtest_vectorized(bars, targets=targets, **kw)
    assert_identical(event, fast)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(1, 20), allow_missing=True),
       st.data())
def test_event_driven_equals_vectorized_for_weights_with_a_volume_cap(
        bars: Bars, data: st.DataObject) -> None:
    w = data.draw(hnp.arrays(np.float64, (len(bars), bars.n_symbols), elements=st.one_of(
        st.just(np.nan), st.floats(-0.5, 0.5, allow_nan=False, allow_subnormal=False))))
    weights = pd.DataFrame(w, index=bars.index, columns=list(bars.symbols))
    integer = data.draw(st.booleans())
    share = data.draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    event = simbroker.backtest(TargetPositions(weights=weights, integer=integer), bars,
                               max_volume_share=share, fees=PerShare())
    fast = backtest_vectorized(bars, weights=weights, integer=integer, max_volume_share=share,
                               fees=PerShare())
    assert_identical(event, fast)


def test_a_target_is_approached_over_several_bars_in_both_engines() -> None:
    bars = panel([4000] * 5)
    targets = pd.DataFrame([[250.0]] + [[np.nan]] * 4, index=bars.index, columns=["A"])
    targets.iloc[1:] = 250.0  # re-decided at every close
    event = simbroker.backtest(TargetPositions(targets), bars, max_volume_share=0.025,
                               slippage=0.0, fees=None)
    fast = backtest_vectorized(bars, targets=targets, max_volume_share=0.025, slippage=0.0,
                               fees=None)
    assert_identical(event, fast)
    assert fast.fills["qty"].tolist() == [100.0, 100.0, 50.0]
    assert fast.orders["status"].tolist() == ["expired", "expired", "filled"]
    assert fast.orders["filled_qty"].tolist() == [100.0, 100.0, 50.0]
    assert fast.config["max_volume_share"] == 0.025


def test_the_vectorized_cap_refuses_exits_and_actions() -> None:
    bars = panel([4000] * 3)
    with pytest.raises(ValueError, match="max_volume_share"):
        backtest_vectorized(bars, targets=np.full((3, 1), 10.0), stop_loss=0.05,
                            max_volume_share=0.1)


def test_the_command_line_takes_max_volume_share(tmp_path: Any,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    from simbroker.cli import main

    root = Path(__file__).resolve().parents[1]
    sma = f"{root / 'examples' / 'sma_crossover.py'}:SmaCrossover"
    data = str(root / "simbroker" / "sample_data" / "sample_daily.csv")
    assert main(["backtest", sma, "--data", data, "--max-volume-share", "0.5",
                 "--out", str(tmp_path / "res")]) == 0
    assert simbroker.load_result(tmp_path / "res").config["max_volume_share"] == 0.5
    with pytest.raises(SystemExit):
        main(["backtest", sma, "--data", data, "--max-volume-share", "2"])
    assert "must be in (0, 1]" in capsys.readouterr().err


def test_a_resumed_session_carries_the_rest_of_a_part_filled_stop_as_a_market_order(
        tmp_path: Any) -> None:
    from simbroker.tradelog._replay import order_fields

    bars = panel([4000] * 4, opens=[10.0, 10.0, 20.0, 20.0], lows=[9.0, 9.0, 19.5, 19.5],
                 highs=[11.0, 10.8, 21.0, 21.0])
    path = tmp_path / "log.jsonl"
    b = broker(bars, trade_log=path)
    b.step()
    oid = b.submit_order("A", "sell", 250, "stop", stop_price=9.5, tif="gtc")["order_id"]
    b.step()
    b.close()
    state = replay_trade_log(path)
    rec = state.open_orders[oid]
    carried = {**order_fields(rec), "qty": float(rec["qty"]) - state.filled_qty[oid],
               "triggered_at": rec["triggered_at"]}
    again = PaperBroker(bars, max_volume_share=0.025, slippage=0.0, fees=None,
                        cash=state.cash, positions=state.positions, start_at=b.now(),
                        open_orders=[carried], order_id_prefix="S2-O")
    info = again.get_orders()[0]
    assert (info["order_type"], info["qty"]) == ("market", 150.0)
    again.step()
    assert [(f["qty"], f["price"]) for f in again.get_fills()] == [(100.0, 20.0)]


def test_a_split_multiplies_what_a_partly_filled_order_has_left() -> None:
    from simbroker.actions import CorporateActions, attach_actions

    days = pd.date_range("2014-06-04", periods=5, freq="B", tz="UTC")  # split on bar 3
    o = np.array([[630.0], [631.0], [632.0], [90.0], [91.0]])
    plain = Bars.from_arrays(days, ["A"], open=o, high=o + 1, low=o - 1, close=o,
                             volume=np.full_like(o, 4000.0))
    bars = attach_actions(plain, CorporateActions.from_frame(pd.DataFrame(
        {"symbol": ["A"], "ex_date": ["2014-06-09"], "split": [7.0]})))
    b = broker(bars, cash=1e6)
    b.step()
    oid = b.submit_order("A", "buy", 250, tif="gtc")["order_id"]
    b.step()
    b.step()  # 200 filled before the split, 50 left
    b.step()  # 7:1: 1,400 filled, 350 left; this bar takes 100 of them
    info = b.get_order(oid)
    assert (info["qty"], info["filled_qty"], info["remaining_qty"]) == (1750.0, 1500.0, 250.0)
    assert b.get_positions() == {"A": 1500.0}
