"""Hypothesis properties of the paper broker: conservation, slippage direction, no
look-ahead, and trade-log replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simbroker
from simbroker import Bars, PaperBroker
from simbroker.testing import run_order_stream
from simbroker.testing.strategies import OrderSpec, bar_panels, order_streams
from simbroker.tradelog import read_trade_log, replay_trade_log

PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def run(bars: Bars, orders: list[OrderSpec], **kw: object) -> PaperBroker:
    return run_order_stream(PaperBroker(bars, **kw), orders)  # type: ignore[arg-type]


@st.composite
def panels_and_orders(draw: st.DrawFn) -> tuple[Bars, list[OrderSpec]]:
    bars = draw(bar_panels(n_symbols=st.integers(1, 3), n_bars=st.integers(2, 25)))
    return bars, draw(order_streams(bars, max_size=25))


@PROPS
@given(panels_and_orders(), st.floats(0, 10), st.floats(0, 10))
def test_cash_and_shares_are_conserved(case, slip_bps, fee_bps) -> None:  # type: ignore[no-untyped-def]
    bars, orders = case
    broker = run(bars, orders, cash=1e6, slippage=slip_bps, fees=fee_bps)
    fills = broker.get_fills()
    sign = np.array([1.0 if f["side"] == "buy" else -1.0 for f in fills])
    notional = np.array([f["qty"] * f["price"] for f in fills])
    fees = np.array([f["fee"] for f in fills])
    expected = 1e6 - float(np.sum(sign * notional)) - float(np.sum(fees))
    assert broker.get_cash() == pytest.approx(expected, rel=1e-12, abs=1e-6)
    shares: dict[str, float] = {}
    for f, s in zip(fills, sign, strict=False):
        shares[f["symbol"]] = shares.get(f["symbol"], 0.0) + s * f["qty"]
    held = broker.get_positions()
    for sym in bars.symbols:
        assert held.get(sym, 0.0) == pytest.approx(shares.get(sym, 0.0), abs=1e-9)
    assert all(f["fee"] >= 0 for f in fills)
    assert all(f["notional"] == f["qty"] * f["price"] for f in fills)


@PROPS
@given(panels_and_orders(), st.floats(0.01, 10))
def test_slippage_is_always_against_the_trader(case, slip_bps) -> None:  # type: ignore[no-untyped-def]
    bars, orders = case
    clean = run(bars, orders, slippage=0, fees=0).get_fills()
    slipped = run(bars, orders, slippage=slip_bps, fees=0).get_fills()
    assert [f["fill_id"] for f in clean] == [f["fill_id"] for f in slipped]
    for c, s in zip(clean, slipped, strict=False):
        if s["side"] == "buy":
            assert s["price"] >= c["price"]
        else:
            assert s["price"] <= c["price"]


@PROPS
@given(panels_and_orders(), st.data())
def test_no_lookahead_bars_after_t_plus_one_change_nothing_before(case, data) -> None:  # type: ignore[no-untyped-def]
    bars, orders = case
    t = data.draw(st.integers(0, len(bars) - 2), label="t")
    other = data.draw(bar_panels(n_symbols=bars.n_symbols, n_bars=len(bars)), label="other")
    # Same history up to and including bar t + 1, anything afterwards.
    keep = t + 2
    spliced = Bars(
        timestamps=bars.timestamps, symbols=bars.symbols, interval=bars.interval,
        **{f: np.concatenate([bars.field(f)[:keep], other.field(f)[keep:]])
           for f in ("open", "high", "low", "close", "volume")},
    )
    early = [o for o in orders if o.bar <= t]
    cutoff = int(bars.ts_ns[t + 1])

    def early_fills(b: Bars) -> list[tuple[object, ...]]:
        fills = run(b, early, slippage=5, fees=1).get_fills()
        return [tuple(f.values()) for f in fills
                if int(f["timestamp"].timestamp() * 1e6) * 1000 <= cutoff]

    assert early_fills(bars) == early_fills(spliced)


@PROPS
@given(panels_and_orders(), st.integers(1, 200))
def test_trade_log_replay_equals_broker_even_after_a_torn_last_line(  # type: ignore[no-untyped-def]
        tmp_path_factory, case, cut) -> None:
    bars, orders = case
    path: Path = tmp_path_factory.mktemp("log") / "run.jsonl"
    broker = run(bars, orders, trade_log=path, slippage=5, fees=1)
    broker.close()
    state = replay_trade_log(path)
    assert state.cash == broker.get_cash()
    assert state.positions == broker.get_positions()
    records = read_trade_log(path)
    raw = path.read_bytes()
    last_line = raw[raw.rstrip(b"\n").rfind(b"\n") + 1:]
    torn = raw[: len(raw) - min(cut, len(last_line) - 1)]
    path.write_bytes(torn)
    assert read_trade_log(path) == records[:-1]
    assert replay_trade_log(path) == replay_trade_log(records[:-1])


class Momentum:
    """Decides from history only: buys after an up-close, sells after a down-close."""

    def on_bar(self, broker: simbroker.Broker, history: simbroker.History) -> None:
        if history.t < 1:
            return
        close = history.close
        for i, sym in enumerate(history.symbols):
            now, before = close[-1, i], close[-2, i]
            if now > before:
                broker.submit_order(sym, "buy", 1)
            elif now < before:
                broker.submit_order(sym, "sell", 1, "limit", limit_price=float(now))


@PROPS
@given(bar_panels(n_symbols=st.integers(1, 2), n_bars=st.integers(3, 25)), st.data())
def test_no_lookahead_through_history(bars, data) -> None:  # type: ignore[no-untyped-def]
    t = data.draw(st.integers(0, len(bars) - 2), label="t")
    other = data.draw(bar_panels(n_symbols=bars.n_symbols, n_bars=len(bars)), label="other")
    keep = t + 2
    spliced = Bars(
        timestamps=bars.timestamps, symbols=bars.symbols, interval=bars.interval,
        **{f: np.concatenate([bars.field(f)[:keep], other.field(f)[keep:]])
           for f in ("open", "high", "low", "close", "volume")},
    )
    a = simbroker.backtest(Momentum(), bars)
    b = simbroker.backtest(Momentum(), spliced)
    cut = bars.index[t + 1]
    fa = a.fills[a.fills["timestamp"] <= cut].reset_index(drop=True)
    fb = b.fills[b.fills["timestamp"] <= cut].reset_index(drop=True)
    assert fa.equals(fb)
    assert a.equity.iloc[: t + 2].equals(b.equity.iloc[: t + 2])
