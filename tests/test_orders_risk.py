"""RiskBroker and the new orders: passed through, counted honestly, replaces checked."""

from __future__ import annotations

from typing import Any

import pytest

from simbroker.errors import ReplaceRejected, RiskRejected
from simbroker.paper import PaperBroker
from simbroker.risk import RiskBroker, RiskLimits
from simbroker.risk._log_state import risk_state_from_log
from simbroker.tradelog import read_trade_log
from tests.test_orders import BRACKET, START, make_bars

FLAT = (100.0, 101.0, 99.0, 100.0, 1e3)


def wrapped(limits: RiskLimits, **kw: Any) -> tuple[PaperBroker, RiskBroker]:
    kw.setdefault("slippage", 0)
    kw.setdefault("fees", 0)
    paper = PaperBroker(make_bars(START, *[FLAT] * 6), cash=1e6, **kw)
    paper.step()
    return paper, RiskBroker(paper, limits)


def test_bracket_exits_add_no_exposure_until_live_and_then_count_once() -> None:
    paper, risk = wrapped(RiskLimits(allow_short=False, max_position=10))
    parent = risk.submit_order("X", "buy", 10, **BRACKET)  # held exits: nothing sells yet
    assert risk.get_order(parent["legs"][0])["status"] == "held"
    with pytest.raises(RiskRejected, match="max_position"):
        risk.submit_order("X", "buy", 1)  # the entry already reaches the limit
    paper.step()
    assert risk.get_positions() == {"X": 10.0}
    # The live exits sell the 10 once: one more sell would go short if both filled.
    with pytest.raises(RiskRejected, match="allow_short"):
        risk.submit_order("X", "sell", 1)
    risk.cancel_order(parent["legs"][1])  # the stop: the take-profit still sells 10
    with pytest.raises(RiskRejected, match="allow_short"):
        risk.submit_order("X", "sell", 1)
    risk.cancel_order(parent["legs"][0])
    risk.submit_order("X", "sell", 10)


def test_oco_counts_as_one_order() -> None:
    _, risk = wrapped(RiskLimits(allow_short=False), positions={"X": 10})
    risk.submit_order("X", "sell", 10, "limit", order_class="oco",
                      take_profit={"limit_price": 110}, stop_loss={"stop_price": 95})
    with pytest.raises(RiskRejected, match="allow_short"):
        risk.submit_order("X", "sell", 1)
    assert len(risk.get_orders(open_only=True)) == 2


def test_replace_is_checked_like_a_new_order() -> None:
    paper, risk = wrapped(RiskLimits(max_position=10, max_order_notional=900,
                                     price_collar=0.2))
    o = risk.submit_order("X", "buy", 5, "limit", limit_price=80, tif="gtc")
    with pytest.raises(RiskRejected, match="max_position"):
        risk.replace_order(o["order_id"], qty=11)
    assert paper.get_order(o["order_id"])["qty"] == 5.0  # unchanged at the broker
    with pytest.raises(RiskRejected, match="price_collar"):
        risk.replace_order(o["order_id"], limit_price=50)
    with pytest.raises(RiskRejected, match="max_order_notional"):
        risk.replace_order(o["order_id"], qty=10, limit_price=99)
    new = risk.replace_order(o["order_id"], qty=8, limit_price=96)
    assert (new["qty"], new["limit_price"]) == (8.0, 96.0)
    with pytest.raises(RiskRejected, match="max_position"):  # 8 reserved now
        risk.submit_order("X", "buy", 3)
    risk.cancel_order(o["order_id"])
    with pytest.raises(ReplaceRejected):
        risk.replace_order(o["order_id"], qty=1)


def test_collar_checks_the_legs() -> None:
    _, risk = wrapped(RiskLimits(price_collar=0.2))
    with pytest.raises(RiskRejected, match="take-profit"):
        risk.submit_order("X", "buy", 1, order_class="bracket",
                          take_profit={"limit_price": 150}, stop_loss={"stop_price": 95})


def test_trailing_stop_is_priced_at_the_last_price() -> None:
    _, risk = wrapped(RiskLimits(max_order_notional=999))
    with pytest.raises(RiskRejected, match="max_order_notional"):
        risk.submit_order("X", "buy", 10, "trailing_stop", trail_amount=1)
    risk.submit_order("X", "buy", 9, "trailing_stop", trail_amount=1)


def test_the_log_rebuilds_held_children(tmp_path: Any) -> None:
    paper = PaperBroker(make_bars(START, FLAT, FLAT), cash=1e6, slippage=0, fees=0,
                        trade_log=tmp_path / "l.jsonl")
    paper.step()
    p = paper.submit_order("X", "buy", 10, "limit", limit_price=50, **BRACKET)
    paper.replace_order(p["order_id"], qty=4)
    paper.close()
    state = risk_state_from_log(read_trade_log(tmp_path / "l.jsonl"))
    assert set(state.open_orders) == {"O1", "O2", "O3"}
    assert state.open_orders["O2"]["status"] == "held"
    assert state.open_orders["O1"]["qty"] == 4.0
