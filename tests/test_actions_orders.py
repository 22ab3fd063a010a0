"""Splits reach every open order kind: held bracket legs, OCO legs and trailing stops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simbroker.actions import CorporateActions, attach_actions
from simbroker.bars import Bars
from simbroker.paper import PaperBroker
from simbroker.tradelog import replay_trade_log

DAYS = pd.date_range("2014-06-02", periods=10, freq="B", tz="UTC")


def _bars() -> Bars:
    """Ten daily bars around a 7:1 split on Monday 2014-06-09 (bar 5), quiet prices."""
    close = np.array([630.0, 637.0, 644.0, 647.0, 645.5, 92.2, 93.0, 94.0, 93.5, 92.5])
    open_ = np.array([628.0, 631.0, 637.0, 645.0, 647.0, 92.7, 92.0, 93.0, 94.0, 93.0])
    c, o = close.reshape(-1, 1), open_.reshape(-1, 1)
    bars = Bars.from_arrays(DAYS, ["AAPL"], open=o, high=np.maximum(o, c) + 1,
                            low=np.minimum(o, c) - 1, close=c, volume=np.full_like(c, 1e6))
    return attach_actions(bars, CorporateActions.from_frame(pd.DataFrame(
        {"symbol": ["AAPL"], "ex_date": ["2014-06-09"], "split": [7.0]})))


def test_a_split_adjusts_held_legs_and_trailing_stops_and_replay_agrees(
        tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    broker = PaperBroker(_bars(), cash=1_000_000, slippage=0, fees=0, trade_log=log)
    broker.submit_order("AAPL", "buy", 100)
    for _ in range(2):
        broker.step()
    # A bracket whose entry (a low limit) stays unfilled: its legs stay held over the split.
    bracket = broker.submit_order("AAPL", "buy", 10, "limit", limit_price=400.0, tif="gtc",
                                  order_class="bracket", take_profit={"limit_price": 800.0},
                                  stop_loss={"stop_price": 350.0})
    trail = broker.submit_order("AAPL", "sell", 20, "trailing_stop", trail_amount=70.0,
                                tif="gtc")
    for _ in range(3):
        broker.step()  # bars 2..4
    assert broker.get_order(trail["order_id"])["status"] == "new"
    broker.step()  # bar 5: the split, then the bar trades
    tp_id, sl_id = bracket["legs"]
    parent = broker.get_order(bracket["order_id"])
    assert (parent["qty"], parent["limit_price"]) == (70.0, pytest.approx(400 / 7))
    tp, sl = broker.get_order(tp_id), broker.get_order(sl_id)
    assert (tp["status"], sl["status"]) == ("held", "held")
    assert tp["qty"] == 70.0
    assert tp["limit_price"] == pytest.approx(800 / 7)
    assert sl["stop_price"] == pytest.approx(50.0)
    t = broker.get_order(trail["order_id"])
    # The trail and its extreme are in new shares: a 10-dollar trail under about 93,
    # so the stop did not fire on the first bar after the split (it would at 640 - 70).
    assert t["status"] == "new"
    assert t["qty"] == 140.0
    assert t["trail_amount"] == pytest.approx(10.0)
    assert t["stop_price"] is not None
    assert 80 < t["stop_price"] < 93
    assert broker.get_positions() == {"AAPL": 700.0}
    broker.close()
    state = replay_trade_log(log)
    assert state.positions == broker.get_positions()
    assert state.cash == broker.get_cash()
    for info in broker.get_orders(open_only=True):
        entry = state.open_orders[info["order_id"]]
        assert entry["qty"] == pytest.approx(info["qty"])
        assert entry.get("limit_price") == pytest.approx(info["limit_price"])
    entry = state.open_orders[bracket["order_id"]]
    assert entry["take_profit"]["limit_price"] == pytest.approx(800 / 7)
    assert entry["stop_loss"]["stop_price"] == pytest.approx(50.0)
