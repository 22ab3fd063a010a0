"""Risk is worst case: no netting against opposite orders; notional at the highest fill price."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simbroker import Bars, PaperBroker, RiskRejected
from simbroker.risk import RiskBroker, RiskLimits, worst_fill_price
from simbroker.types import Order


def bars_of(rows: list[tuple[float, float, float, float]], symbols: int = 1) -> Bars:
    """Daily bars from (open, high, low, close) rows, the same for every symbol."""
    n = len(rows)
    ts = np.datetime64("2024-01-02", "ns") + np.arange(n) * np.timedelta64(1, "D")
    arr = np.asarray(rows, float)
    cols = [f"S{i}" for i in range(symbols)] if symbols > 1 else ["A"]
    f = [np.repeat(arr[:, k:k + 1], len(cols), axis=1) for k in range(4)]
    return Bars.from_arrays(ts, cols, open=f[0], high=f[1], low=f[2], close=f[3],
                            volume=np.full((n, len(cols)), 1e6))


def guarded(limits: RiskLimits, *, n_bars: int = 5, started: bool = True
            ) -> tuple[RiskBroker, PaperBroker]:
    inner = PaperBroker(bars_of([(100.0, 100.0, 100.0, 100.0)] * n_bars), slippage=0, fees=0,
                        cash=10_000_000)
    if started:
        inner.step()
    return RiskBroker(inner, limits), inner


# ------------------------------------------------------------------ no netting
def test_a_resting_sell_does_not_make_room_for_a_buy() -> None:
    broker, inner = guarded(RiskLimits(max_position=100))
    broker.submit_order("A", "sell", 100, "limit", limit_price=150, tif="gtc")
    with pytest.raises(RiskRejected, match=r"position would reach 200 \(held 0, open buy "
                       r"orders 0, this order 200\) > limit 100") as exc:
        broker.submit_order("A", "buy", 200)
    assert exc.value.rule == "max_position"
    inner.step()
    assert inner.get_positions() == {}
    broker.submit_order("A", "buy", 100)  # the long side has room for 100


def test_a_resting_buy_does_not_make_room_for_a_short() -> None:
    broker, inner = guarded(RiskLimits(max_position=100, allow_short=False))
    broker.submit_order("A", "buy", 50)
    inner.step()  # held 50
    broker.submit_order("A", "buy", 50, "limit", limit_price=1, tif="gtc")  # never fills
    with pytest.raises(RiskRejected) as exc:
        broker.submit_order("A", "sell", 60)  # 50 - 60 < 0 whatever the buy does
    assert exc.value.rule == "allow_short"
    broker.submit_order("A", "sell", 50)


def test_reducing_orders_pass_even_over_a_limit() -> None:
    inner = PaperBroker(bars_of([(100.0,) * 4] * 5), slippage=0, fees=0,
                        positions={"A": -150})
    inner.step()
    broker = RiskBroker(inner, RiskLimits(max_position=100, max_gross_exposure=1_000))
    broker.submit_order("A", "buy", 10)  # short 150 -> 140: less risk, accepted
    with pytest.raises(RiskRejected) as exc:
        broker.submit_order("A", "buy", 300)  # would flip to long 160 (10 + 300 - 150)
    assert exc.value.rule == "max_position"
    with pytest.raises(RiskRejected):
        broker.submit_order("A", "sell", 1)  # grows the short


def test_gross_exposure_counts_each_symbols_worse_side() -> None:
    inner = PaperBroker(bars_of([(100.0,) * 4] * 5, symbols=2), slippage=0, fees=0)
    inner.step()
    broker = RiskBroker(inner, RiskLimits(max_gross_exposure=10_000))
    broker.submit_order("S0", "buy", 40, "limit", limit_price=100, tif="gtc")
    broker.submit_order("S0", "sell", 40, "limit", limit_price=100, tif="gtc")  # 4,000 worst
    broker.submit_order("S1", "sell", 60)  # 4,000 + 6,000
    with pytest.raises(RiskRejected, match=r"gross exposure would reach 10,100\.00"):
        broker.submit_order("S1", "sell", 1)


# ------------------------------------------------------------------ notional
@pytest.mark.parametrize(("side", "kind", "prices", "expected"), [
    ("buy", "market", {}, 100.0),
    ("sell", "market", {}, 100.0),
    ("buy", "limit", {"limit_price": 0.01}, 0.01),  # never fills above its limit
    ("buy", "limit", {"limit_price": 120}, 120.0),  # marketable: could fill up to 120
    ("sell", "limit", {"limit_price": 0.01}, 100.0),  # marketable: fills at the market
    ("sell", "limit", {"limit_price": 130}, 130.0),
    ("buy", "stop", {"stop_price": 0.01}, 100.0),  # triggers at once, fills at the market
    ("buy", "stop", {"stop_price": 130}, 130.0),
    ("sell", "stop", {"stop_price": 90}, 90.0),  # fills at min(open, stop)
    ("sell", "stop", {"stop_price": 130}, 130.0),
    ("buy", "stop_limit", {"stop_price": 0.01, "limit_price": 110}, 110.0),
    ("sell", "stop_limit", {"stop_price": 0.02, "limit_price": 0.01}, 100.0),
    ("sell", "stop_limit", {"stop_price": 130, "limit_price": 125}, 125.0),
])
def test_worst_fill_price_table(side: str, kind: str, prices: dict[str, float],
                                expected: float) -> None:
    order = Order.create("A", side, 10, kind, **prices)
    assert worst_fill_price(order, 100.0) == expected


@pytest.mark.parametrize("kw", [
    {"side": "sell", "order_type": "limit", "limit_price": 0.01},
    {"side": "buy", "order_type": "stop", "stop_price": 0.01},
    {"side": "buy", "order_type": "market"},
    {"side": "sell", "order_type": "stop_limit", "stop_price": 0.02, "limit_price": 0.01},
])
def test_an_order_priced_far_from_the_market_is_refused_at_its_fill_price(
        kw: dict[str, Any]) -> None:
    broker, inner = guarded(RiskLimits(max_order_notional=10_000))
    with pytest.raises(RiskRejected, match=r"notional 100,000\.00 \(1000 x 100, the highest "
                       r"price it can fill at\)") as exc:
        broker.submit_order("A", qty=1000, **kw)
    assert exc.value.rule == "max_order_notional"
    assert exc.value.value == 100_000
    inner.step()
    assert inner.get_fills() == []
    assert inner.get_orders() == []


def test_position_notional_prices_open_orders_at_their_fill_price() -> None:
    broker, _ = guarded(RiskLimits(max_position_notional=15_000))
    broker.submit_order("A", "sell", 100, "limit", limit_price=0.01, tif="gtc")  # 10,000
    with pytest.raises(RiskRejected, match=r"position value would reach 15,100\.00"):
        broker.submit_order("A", "sell", 51, "limit", limit_price=0.01)
    broker.submit_order("A", "sell", 50, "limit", limit_price=0.01)


@pytest.mark.parametrize(("kw", "accepted"), [
    ({"side": "buy", "order_type": "market"}, False),
    ({"side": "sell", "order_type": "limit", "limit_price": 0.01}, False),
    ({"side": "buy", "order_type": "stop", "stop_price": 0.01}, False),
    ({"side": "buy", "order_type": "limit", "limit_price": 100}, True),  # its own ceiling
    ({"side": "sell", "order_type": "stop", "stop_price": 100}, True),
])
def test_no_last_price_refuses_orders_without_a_price_ceiling(kw: dict[str, Any],
                                                              accepted: bool) -> None:
    broker, inner = guarded(RiskLimits(max_order_notional=1e6), started=False)
    if accepted:
        broker.submit_order("A", qty=10, **kw)
        assert len(inner.get_orders()) == 1
        return
    with pytest.raises(RiskRejected, match="no price known for A") as exc:
        broker.submit_order("A", qty=10, **kw)
    assert exc.value.rule == "price_unknown"
    assert inner.get_orders() == []


def test_without_notional_rules_no_price_is_needed() -> None:
    broker, inner = guarded(RiskLimits(max_position=100), started=False)
    broker.submit_order("A", "buy", 10)
    assert len(inner.get_orders()) == 1


prices = st.floats(min_value=1.0, max_value=1_000.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(side=st.sampled_from(["buy", "sell"]),
       kind=st.sampled_from(["market", "limit", "stop", "stop_limit"]),
       last=prices, p1=prices, p2=prices, up=st.floats(0, 0.5), down=st.floats(0, 0.5))
def test_no_fill_is_above_the_worst_fill_price(side: str, kind: str, last: float, p1: float,
                                               p2: float, up: float, down: float) -> None:
    """With the next bar opening at the last price (no gap), every fill is within the bound."""
    kw: dict[str, float] = {}
    if kind in ("limit", "stop_limit"):
        kw["limit_price"] = p1
    if kind in ("stop", "stop_limit"):
        kw["stop_price"] = p2
    bars = bars_of([(last, last, last, last), (last, last * (1 + up), last * (1 - down), last),
                    (last, last * (1 + up), last * (1 - down), last)])
    inner = PaperBroker(bars, slippage=0, fees=0, cash=1e12)
    inner.step()
    order = Order.create("A", side, 1, kind, **kw)
    bound = worst_fill_price(order, last)
    assert bound is not None
    inner.submit_order("A", side, 1, kind, tif="day", **kw)
    inner.step()
    for f in inner.get_fills():
        assert f["price"] <= bound * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 80),
                          st.sampled_from(["market", "far_limit", "step"])),
                min_size=1, max_size=25))
def test_worst_case_position_never_passes_the_limit(steps: list[tuple[str, int, str]]) -> None:
    """Whatever is accepted, the position plus one side's open orders stays within it."""
    broker, inner = guarded(RiskLimits(max_position=100), n_bars=30)
    for side, qty, what in steps:
        if what == "step":
            if inner.has_next:
                inner.step()
            continue
        kw: dict[str, Any] = {}
        if what == "far_limit":
            kw = {"order_type": "limit", "tif": "gtc",
                  "limit_price": 50.0 if side == "buy" else 150.0}
        with contextlib.suppress(RiskRejected):
            broker.submit_order("A", side, qty, **kw)
        held = inner.get_positions().get("A", 0.0)
        opens = inner.get_orders(open_only=True)
        buys = sum(o["qty"] - o["filled_qty"] for o in opens if o["side"] == "buy")
        sells = sum(o["qty"] - o["filled_qty"] for o in opens if o["side"] == "sell")
        assert held + buys <= 100 + 1e-9
        assert held - sells >= -100 - 1e-9
