"""A margin call cancels the open orders that would add to the deficit (``cancel_on_call``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from simbroker import Bars, PaperBroker
from simbroker.accounts import MarginAccount
from simbroker.accounts._reserve import opening_orders
from simbroker.errors import OrderRejected
from simbroker.tradelog import read_trade_log


def daily(closes: Sequence[float], symbols: Sequence[str] = ("X", "Y")) -> Bars:
    ts = np.array([np.datetime64("2024-01-01T21:00", "ns") + np.timedelta64(i, "D")
                   for i in range(len(closes))])
    c = np.array(closes, float).reshape(-1, 1).repeat(len(symbols), axis=1)
    return Bars.from_arrays(ts, list(symbols), open=c, high=c, low=c, close=c,
                            volume=np.full(c.shape, 1e6))


def test_the_call_cancels_opening_orders_and_keeps_closing_ones(tmp_path: Path) -> None:
    # 700 X with 45,000: at 45 equity 6,500 < maintenance 7,875.
    b = PaperBroker(daily([100, 100, 80, 45, 45]), cash=45_000, slippage=0, fees=0,
                    account=MarginAccount(cancel_on_call=True),
                    trade_log=tmp_path / "log.jsonl")
    b.step()
    b.submit_order("X", "buy", 700)
    b.step()
    grow = b.submit_order("X", "buy", 5, "limit", limit_price=1.0, tif="gtc")
    close = b.submit_order("X", "sell", 100, "limit", limit_price=101.0, tif="gtc")
    flip = b.submit_order("X", "sell", 750, "limit", limit_price=101.0, tif="gtc")  # 150 short
    other = b.submit_order("Y", "sell", 5, "limit", limit_price=101.0, tif="gtc")  # a short
    b.step()
    mine = [grow, close, flip, other]
    assert all(b.get_order(o["order_id"])["status"] == "new" for o in mine)
    b.step()  # bar 3 closes at 45: the call
    status = {o["order_id"]: o["status"] for o in b.get_orders()}
    assert status[grow["order_id"]] == status[flip["order_id"]] == "canceled"
    assert status[other["order_id"]] == "canceled"
    assert status[close["order_id"]] == "new"  # it only closes: it stays
    assert opening_orders(b) == []
    b.close()
    records = read_trade_log(tmp_path / "log.jsonl")
    call = next(r for r in records if r["event"] == "margin_call")
    assert call["canceled"] == [grow["order_id"], flip["order_id"], other["order_id"]]
    assert all(records.index(call) < records.index(r) for r in records
               if r["event"] == "canceled")


@pytest.mark.parametrize(("liquidate", "cancel", "left"), [
    (False, None, 2), (True, None, 0), (True, False, 2), (False, True, 0)])
def test_cancel_on_call_follows_liquidate_unless_given(liquidate: bool, cancel: bool | None,
                                                       left: int) -> None:
    acct = MarginAccount(liquidate=liquidate, cancel_on_call=cancel)
    assert acct.cancel_on_call is (liquidate if cancel is None else cancel)
    b = PaperBroker(daily([100, 100, 80, 56, 56]), cash=40_000, slippage=0, fees=0,
                    account=acct)
    b.step()
    b.submit_order("X", "buy", 700)
    b.step()
    b.submit_order("X", "buy", 5, "limit", limit_price=1.0, tif="gtc")
    b.submit_order("Y", "buy", 5, "limit", limit_price=1.0, tif="gtc")
    b.step()
    b.step()
    assert len(acct.calls) == 1
    assert len(opening_orders(b)) == left
    assert "cancel_on_call" in repr(acct)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from([-0.3, -0.1, 0.0, 0.05]), min_size=8, max_size=8),
       st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["X", "Y"]),
                          st.sampled_from(["buy", "sell"]), st.sampled_from([5, 50, 400]),
                          st.sampled_from([None, 0.5, 1.5])), max_size=12),
       st.booleans())
def test_after_a_call_no_opening_order_stays_open(
        moves: list[float], orders: list[tuple[int, str, str, int, float | None]],
        liquidate: bool) -> None:
    closes = 100.0 * np.cumprod(1 + np.array(moves))
    acct = MarginAccount(liquidate=liquidate, cancel_on_call=True, pdt_check=False)
    # 30,000 of X on a 12,000 debit: equity 18,000, 3,000 of excess; a call under 53.33
    b = PaperBroker(daily(list(closes)), cash=-12_000, slippage=0, fees=0, account=acct,
                    positions={"X": 300.0})
    seen = 0
    for t in range(len(closes)):
        for when, sym, side, qty, rel in orders:
            if when != t:
                continue
            px = float(closes[max(t - 1, 0)])
            try:
                if rel is None:
                    b.submit_order(sym, side, qty)
                else:
                    b.submit_order(sym, side, qty, "limit", limit_price=px * rel, tif="gtc")
            except OrderRejected:
                pass
        calls = len(acct.calls)
        b.step()
        if len(acct.calls) > calls:
            assert opening_orders(b) == []
            seen += 1
    event(f"margin calls: {min(seen, 2)}")
