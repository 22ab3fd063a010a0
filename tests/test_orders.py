"""Issue 18's orders in the paper broker: hand-computed cases on named bars.

Bars are (open, high, low, close, volume). Unless said otherwise an order is submitted
after bar 0 closed (at 100), so it first trades on bar 1; slippage and fees are 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simbroker.bars import Bars
from simbroker.broker import OrderManagingBroker
from simbroker.errors import InvalidOrder, ReplaceRejected, ShortingNotAllowed, UnknownOrder
from simbroker.paper import PaperBroker
from simbroker.risk import RiskBroker, RiskLimits
from simbroker.testing.checks import PaperVenue, check_broker_conformance
from simbroker.tradelog import read_trade_log, replay_trade_log
from simbroker.tradelog._reader import parse_time

Row = tuple[float, float, float, float, float]
START: Row = (100.0, 101.0, 99.0, 100.0, 1e3)


def make_bars(*rows: Row, per_day: int = 1) -> Bars:
    """One symbol ``X``; ``per_day`` hourly bars per trading day (daily bars by default)."""
    a = np.array(rows, dtype=float)
    hour = np.timedelta64(3_600_000_000_000, "ns")
    day = np.arange(len(rows)) // per_day
    ts = np.datetime64("2024-01-02T14:00", "ns") + day * 24 * hour + (
        np.arange(len(rows)) % per_day) * hour
    return Bars.from_arrays(ts, ["X"], open=a[:, :1], high=a[:, 1:2], low=a[:, 2:3],
                            close=a[:, 3:4], volume=a[:, 4:5])


def broker(*rows: Row, per_day: int = 1, **kw: Any) -> PaperBroker:
    kw.setdefault("slippage", 0)
    kw.setdefault("fees", 0)
    b = PaperBroker(make_bars(START, *rows, per_day=per_day), cash=100_000, **kw)
    b.step()
    return b


def run(b: PaperBroker) -> None:
    while b.has_next:
        b.step()


def status(b: PaperBroker) -> dict[str, str]:
    return {o["order_id"]: o["status"] for o in b.get_orders()}


def fills(b: PaperBroker) -> list[tuple[str, str, float, float]]:
    return [(f["order_id"], f["side"], f["qty"], f["price"]) for f in b.get_fills()]


BRACKET = dict(order_class="bracket", take_profit={"limit_price": 110.0},
               stop_loss={"stop_price": 95.0}, tif="gtc")


# ---------------------------------------------------------------- brackets
def test_bracket_children_are_held_then_born_on_the_parent_fill() -> None:
    # Bar 1 reaches 115 after the entry fills at its open: the take-profit is not yet
    # born (the path inside bar 1 is unknown). Bar 2 reaches 111: it fills at 110.
    b = broker((100, 115, 99, 104, 1e3), (105, 111, 101, 108, 1e3))
    parent = b.submit_order("X", "buy", 10, **BRACKET)
    assert parent["legs"] == ["O2", "O3"]
    assert parent["order_class"] == "bracket"
    tp, sl = b.get_order("O2"), b.get_order("O3")
    assert (tp["status"], tp["side"], tp["order_type"], tp["limit_price"], tp["parent_id"]) == (
        "held", "sell", "limit", 110.0, "O1")
    assert (sl["status"], sl["order_type"], sl["stop_price"], sl["tif"]) == (
        "held", "stop", 95.0, "gtc")
    assert [o["order_id"] for o in b.get_orders(open_only=True)] == ["O1", "O2", "O3"]
    b.step()
    assert status(b) == {"O1": "filled", "O2": "new", "O3": "new"}
    assert fills(b) == [("O1", "buy", 10.0, 100.0)]
    b.step()
    assert fills(b)[1:] == [("O2", "sell", 10.0, 110.0)]
    assert status(b) == {"O1": "filled", "O2": "filled", "O3": "canceled"}
    assert b.get_order("O3")["reason"] == "sibling O2 filled"
    assert b.get_positions() == {}
    assert b.get_cash() == 100_000 + 100.0


def test_bracket_stop_gap_fills_at_the_open() -> None:
    b = broker((100, 102, 99, 101, 1e3), (90, 92, 85, 88, 1e3))
    b.submit_order("X", "buy", 10, **BRACKET)
    run(b)
    assert fills(b) == [("O1", "buy", 10.0, 100.0), ("O3", "sell", 10.0, 90.0)]
    assert status(b)["O2"] == "canceled"


@pytest.mark.parametrize(("both_legs", "winner", "price"),
                         [("stop", "O3", 95.0), ("take_profit", "O2", 110.0)])
def test_both_legs_on_one_bar(both_legs: str, winner: str, price: float) -> None:
    # Bar 2 opens at 100, between the legs, and reaches both 112 and 94.
    b = broker((100, 102, 99, 101, 1e3), (100, 112, 94, 100, 1e3), both_legs=both_legs)
    b.submit_order("X", "buy", 10, **BRACKET)
    run(b)
    assert fills(b)[1:] == [(winner, "sell", 10.0, price)]
    loser = "O2" if winner == "O3" else "O3"
    assert status(b)[loser] == "canceled"
    assert b.get_positions() == {}


def test_both_legs_bar_that_gaps_through_one_leg_fills_that_leg_at_the_open() -> None:
    # Bar 2 opens at 111, through the take-profit, then trades down to 90 through the stop:
    # the take-profit filled at the open, whatever both_legs says.
    b = broker((100, 102, 99, 101, 1e3), (111, 112, 90, 91, 1e3), both_legs="stop")
    b.submit_order("X", "buy", 10, **BRACKET)
    run(b)
    assert fills(b)[1:] == [("O2", "sell", 10.0, 111.0)]


def test_canceling_the_parent_cancels_its_held_children() -> None:
    b = broker((100, 102, 99, 101, 1e3))
    b.submit_order("X", "buy", 10, "limit", limit_price=50, **BRACKET)
    info = b.cancel_order("O1")
    assert info["status"] == "canceled"
    assert status(b) == {"O1": "canceled", "O2": "canceled", "O3": "canceled"}
    assert b.get_order("O2")["reason"] == "parent O1 canceled"
    assert b.get_orders(open_only=True) == []
    run(b)
    assert b.get_fills() == []


def test_an_expiring_parent_takes_its_children() -> None:
    b = broker((100, 102, 99, 101, 1e3), (100, 102, 99, 101, 1e3))
    b.submit_order("X", "buy", 10, "limit", limit_price=50, order_class="bracket",
                   take_profit={"limit_price": 110}, stop_loss={"stop_price": 40})
    b.step()
    assert status(b) == {"O1": "expired", "O2": "canceled", "O3": "canceled"}
    assert b.get_order("O3")["reason"] == "parent O1 expired"


def test_canceling_a_live_child_cancels_only_it() -> None:
    b = broker((100, 102, 99, 101, 1e3), (100, 112, 99, 111, 1e3))
    b.submit_order("X", "buy", 10, **BRACKET)
    b.step()
    b.cancel_order("O3")
    assert status(b) == {"O1": "filled", "O2": "new", "O3": "canceled"}
    assert b.get_order("O3")["reason"] is None
    b.step()
    assert fills(b)[1:] == [("O2", "sell", 10.0, 110.0)]


def test_oto_has_one_child() -> None:
    b = broker((100, 102, 99, 101, 1e3), (100, 102, 94, 96, 1e3))
    p = b.submit_order("X", "buy", 5, order_class="oto", stop_loss={"stop_price": 95},
                       tif="gtc")
    assert p["legs"] == ["O2"]
    run(b)
    assert fills(b) == [("O1", "buy", 5.0, 100.0), ("O2", "sell", 5.0, 95.0)]


def test_stop_limit_exit() -> None:
    b = broker((100, 102, 99, 101, 1e3), (100, 101, 94, 96, 1e3))
    b.submit_order("X", "buy", 5, order_class="bracket", take_profit={"limit_price": 110},
                   stop_loss={"stop_price": 95, "limit_price": 94.5}, tif="gtc")
    assert b.get_order("O3")["order_type"] == "stop_limit"
    run(b)
    assert fills(b)[1:] == [("O3", "sell", 5.0, 95.0)]


# ---------------------------------------------------------------------- OCO
def test_oco_legs_are_live_at_once_and_exactly_one_fills() -> None:
    b = broker((100, 111, 99, 109, 1e3), (100, 101, 80, 85, 1e3), positions={"X": 10})
    info = b.submit_order("X", "sell", 10, "limit", order_class="oco",
                          take_profit={"limit_price": 110}, stop_loss={"stop_price": 95},
                          tif="gtc")
    assert (info["limit_price"], info["legs"], info["order_class"]) == (110.0, ["O2"], "oco")
    stop = b.get_order("O2")
    assert (stop["status"], stop["side"], stop["stop_price"], stop["parent_id"]) == (
        "new", "sell", 95.0, "O1")
    run(b)
    assert fills(b) == [("O1", "sell", 10.0, 110.0)]
    assert status(b) == {"O1": "filled", "O2": "canceled"}
    assert b.get_positions() == {}


def test_oco_counts_once_against_allow_short() -> None:
    b = broker((100, 102, 99, 101, 1e3), allow_short=False, positions={"X": 10})
    b.submit_order("X", "sell", 10, "limit", order_class="oco",
                   take_profit={"limit_price": 110}, stop_loss={"stop_price": 95})
    with pytest.raises(ShortingNotAllowed):
        b.submit_order("X", "sell", 1)
    b2 = broker((100, 102, 99, 101, 1e3), allow_short=False)
    b2.submit_order("X", "buy", 10, **BRACKET)  # exits held: nothing sells yet
    with pytest.raises(ShortingNotAllowed):
        b2.submit_order("X", "sell", 10, order_class="bracket",
                        take_profit={"limit_price": 90}, stop_loss={"stop_price": 105})


# ------------------------------------------------------------ trailing stops
def test_trailing_stop_by_amount_ratchets_on_highs_and_fills_at_its_level() -> None:
    # extreme 100 (bar 0's close) -> level 95; bar 1's high 102 -> 97; bar 2's 112 -> 107;
    # bar 3 opens 111 and trades down to 94: fills at 107.
    b = broker((100, 102, 99, 101, 1e3), (101, 112, 100, 111, 1e3), (111, 111, 94, 95, 1e3))
    b.submit_order("X", "sell", 10, "trailing_stop", trail_amount=5, tif="gtc")
    levels = [b.get_order("O1")["stop_price"]]
    while b.has_next:
        b.step()
        levels.append(b.get_order("O1")["stop_price"])
    assert levels == [95.0, 97.0, 107.0, 107.0]
    assert fills(b) == [("O1", "sell", 10.0, 107.0)]


def test_trailing_stop_is_tested_before_the_bar_moves_it() -> None:
    # Bar 1 makes a high of 120 and a low of 96: the level it is tested at is 95 (from
    # bar 0), so it does not fill, although 120 - 5 = 115 > 96.
    b = broker((100, 120, 96, 118, 1e3), (118, 119, 80, 85, 1e3))
    b.submit_order("X", "sell", 1, "trailing_stop", trail_amount=5, tif="gtc")
    b.step()
    assert b.get_fills() == []
    assert b.get_order("O1")["stop_price"] == 115.0
    b.step()  # bar 2 opens at 118 and trades to 80: fills at 115
    assert fills(b) == [("O1", "sell", 1.0, 115.0)]


def test_trailing_stop_gap_fills_at_the_open() -> None:
    b = broker((90, 91, 85, 86, 1e3))
    b.submit_order("X", "sell", 1, "trailing_stop", trail_percent=2)
    run(b)
    assert fills(b) == [("O1", "sell", 1.0, 90.0)]  # level 98: the open gapped below it


def test_buy_trailing_stop_by_percent_mirrors() -> None:
    # extreme 100 -> level 110; bar 1's low 90 -> 99; bar 2 reaches 100: fills at 99... at
    # max(open 95, 99) = 99.
    b = broker((100, 101, 90, 92, 1e3), (95, 100, 94, 99, 1e3))
    b.submit_order("X", "buy", 2, "trailing_stop", trail_percent=10, tif="gtc")
    run(b)
    assert fills(b) == [("O1", "buy", 2.0, pytest.approx(99.0))]


# ------------------------------------------------------------------ auctions
DAY2 = [(100, 101, 99, 100, 1e3), (102, 103, 101, 102, 1e3), (103, 104, 102, 103, 1e3),
        (99, 106, 98, 105, 1e3), (105, 107, 104, 106, 1e3), (106, 108, 105, 107, 1e3)]


def intraday() -> PaperBroker:
    """Two days of three hourly bars: bars 0-2 on day 1 (bar 0 already closed), 3-5 day 2."""
    b = PaperBroker(make_bars(*DAY2, per_day=3), cash=100_000, slippage=0, fees=0)
    b.step()
    return b


def test_opg_fills_at_the_next_sessions_first_open() -> None:
    b = intraday()
    b.submit_order("X", "buy", 1, tif="opg")
    b.submit_order("X", "buy", 1, "limit", limit_price=100, tif="opg")  # 99 <= 100: fills
    b.submit_order("X", "buy", 1, "limit", limit_price=98, tif="opg")   # 99 > 98: canceled
    run(b)
    assert fills(b) == [("O1", "buy", 1.0, 99.0), ("O2", "buy", 1.0, 99.0)]
    o3 = b.get_order("O3")
    assert (o3["status"], o3["reason"]) == ("canceled",
                                           "opg order not filled in the opening auction")
    assert b.get_fills()[0]["timestamp"] == b.bars.index[3].to_pydatetime()


def test_cls_fills_at_the_sessions_last_close() -> None:
    b = intraday()
    b.submit_order("X", "sell", 1, tif="cls")
    b.submit_order("X", "sell", 1, "limit", limit_price=104, tif="cls")  # 103 < 104
    b.step()
    assert b.get_fills() == []  # bar 1 is not the session's last
    b.step()
    assert fills(b) == [("O1", "sell", 1.0, 103.0)]
    assert b.get_order("O2")["status"] == "canceled"
    b.submit_order("X", "buy", 1, tif="cls")  # after day 1's last bar: day 2's close
    run(b)
    assert fills(b)[-1] == ("O3", "buy", 1.0, 107.0)


def test_ioc_is_tested_on_the_next_bar_only() -> None:
    b = intraday()
    b.submit_order("X", "buy", 1, "limit", limit_price=101, tif="ioc")  # bar 1 low 101
    b.submit_order("X", "buy", 1, "limit", limit_price=100, tif="fok")  # never that low
    run(b)
    assert fills(b) == [("O1", "buy", 1.0, 101.0)]
    assert b.get_order("O2")["status"] == "canceled"
    assert b.get_order("O2")["reason"] == "fok order not filled on its bar"


# ------------------------------------------------------------------- replace
def test_replace_changes_an_open_order_from_the_next_bar() -> None:
    b = broker((100, 102, 97, 101, 1e3), (100, 102, 95, 101, 1e3))
    b.submit_order("X", "buy", 10, "limit", limit_price=90, tif="gtc")
    b.step()
    info = b.replace_order("O1", qty=4, limit_price=96)
    assert (info["order_id"], info["qty"], info["limit_price"], info["status"]) == (
        "O1", 4.0, 96.0, "new")
    b.step()
    assert fills(b) == [("O1", "buy", 4.0, 96.0)]
    with pytest.raises(ReplaceRejected) as exc:
        b.replace_order("O1", limit_price=97)
    assert exc.value.status == "filled"
    with pytest.raises(UnknownOrder):
        b.replace_order("O9", qty=1)


@pytest.mark.parametrize(("kw", "field"), [
    ({"stop_price": 90}, "stop_price"), ({"trail_amount": 1}, "trail_amount"),
    ({"qty": -1}, "qty"), ({"tif": "opg"}, "tif"), ({"limit_price": float("nan")},
                                                    "limit_price")])
def test_invalid_replace_changes_nothing(kw: dict[str, Any], field: str) -> None:
    b = broker((100, 102, 97, 101, 1e3))
    b.submit_order("X", "buy", 10, "limit", limit_price=90)
    before = b.get_order("O1")
    with pytest.raises(ReplaceRejected) as exc:
        b.replace_order("O1", **kw)
    assert exc.value.field == field
    assert b.get_order("O1") == before


def test_replace_a_trailing_stop_and_a_held_child() -> None:
    b = broker((100, 102, 99, 101, 1e3), (101, 102, 96, 97, 1e3))
    b.submit_order("X", "sell", 1, "trailing_stop", trail_amount=5, tif="gtc")
    b.submit_order("X", "buy", 10, "limit", limit_price=50, **BRACKET)
    b.replace_order("O1", trail_percent=1)  # from next bar: 100 * 0.99 = 99
    assert b.get_order("O1")["stop_price"] == 99.0
    child = b.replace_order("O4", stop_price=90)
    assert (child["status"], child["stop_price"]) == ("held", 90.0)
    b.replace_order("O2", qty=3)
    assert b.get_order("O3")["qty"] == 3.0  # held children follow their parent's qty
    b.step()
    assert fills(b) == [("O1", "sell", 1.0, 99.0)]


# -------------------------------------------------------------- validation
def test_submit_refuses_bad_kinds_and_logs_nothing_placed(tmp_path: Any) -> None:
    b = PaperBroker(make_bars(START), trade_log=tmp_path / "l.jsonl")
    with pytest.raises(InvalidOrder) as exc:
        b.submit_order("X", "buy", 1, order_class="bracket", take_profit={"limit_price": 1})
    assert exc.value.field == "stop_loss"
    assert b.get_orders() == []
    b.close()
    events = [r["event"] for r in read_trade_log(tmp_path / "l.jsonl")]
    assert events == ["start", "rejected"]


def test_orderinfo_has_every_new_key() -> None:
    b = broker()
    info = b.submit_order("X", "sell", 1, "trailing_stop", trail_percent=3)
    assert info["trail_percent"] == 3.0
    assert info["trail_amount"] is None
    assert info["remaining_qty"] == 1.0
    assert info["extended_hours"] is False
    assert info["parent_id"] is None
    assert info["legs"] == []
    assert info["order_class"] == "simple"


# --------------------------------------------------------- trade log and resume
ROWS = [(100, 102, 99, 101, 1e3), (101, 112, 100, 111, 1e3), (111, 111, 94, 95, 1e3),
        (95, 96, 90, 91, 1e3), (91, 99, 90, 98, 1e3), (98, 104, 97, 103, 1e3)]


def every_kind(b: PaperBroker) -> None:
    """Orders of every kind, submitted after bar 0."""
    b.submit_order("X", "buy", 10, **BRACKET)
    b.submit_order("X", "buy", 5, "limit", limit_price=50, order_class="bracket",
                   take_profit={"limit_price": 130}, stop_loss={"stop_price": 40}, tif="gtc")
    b.submit_order("X", "buy", 3, order_class="oto", take_profit={"limit_price": 200},
                   tif="gtc")
    b.submit_order("X", "sell", 2, "limit", order_class="oco",
                   take_profit={"limit_price": 150}, stop_loss={"stop_price": 60}, tif="gtc")
    b.submit_order("X", "sell", 1, "trailing_stop", trail_percent=3, tif="gtc")
    b.submit_order("X", "buy", 1, "trailing_stop", trail_amount=30, tif="gtc")
    b.submit_order("X", "buy", 1, tif="opg")
    b.submit_order("X", "sell", 1, "limit", limit_price=1, tif="cls")
    b.submit_order("X", "buy", 1, "limit", limit_price=1, tif="ioc")
    b.submit_order("X", "buy", 1, "stop_limit", stop_price=111.5, limit_price=111.6,
                   tif="gtc")
    b.submit_order("X", "buy", 2, "limit", limit_price=60, tif="gtc")
    b.replace_order("O16", limit_price=61, qty=3)


def final_state(b: PaperBroker) -> tuple[Any, ...]:
    return (b.get_cash(), b.get_positions(),
            [(o["order_id"], o["status"], o["qty"], o["limit_price"], o["stop_price"],
              o["parent_id"], o["legs"]) for o in b.get_orders()],
            fills(b))


def test_replay_of_every_kind_equals_the_broker(tmp_path: Any) -> None:
    log = tmp_path / "l.jsonl"
    b = PaperBroker(make_bars(START, *ROWS), cash=100_000, slippage=2, fees=1, trade_log=log)
    b.step()
    every_kind(b)
    for _ in range(3):
        b.step()
    b.close()
    state = replay_trade_log(log)
    assert state.cash == b.get_cash()
    assert state.positions == b.get_positions()
    open_now = {o["order_id"]: o for o in b.get_orders(open_only=True)}
    assert set(state.open_orders) == set(open_now)
    for oid, rec in state.open_orders.items():
        o = open_now[oid]
        assert float(rec["qty"]) == o["qty"]
        assert rec.get("parent_id") == o["parent_id"]
        assert (rec.get("status") == "held") == (o["status"] == "held")
        if o["order_type"] == "trailing_stop":
            assert rec["trail_extreme"] == b._orders[oid].trail_extreme
    events = {r["event"] for r in read_trade_log(log)}
    assert {"activated", "replaced", "trailed", "canceled", "triggered"} <= events


def test_resume_carries_groups_and_trails_over(tmp_path: Any) -> None:
    bars = make_bars(START, *ROWS)
    whole = PaperBroker(bars, cash=100_000, slippage=2, fees=1)
    whole.step()
    every_kind(whole)
    run(whole)

    log = tmp_path / "l.jsonl"
    first = PaperBroker(bars, cash=100_000, slippage=2, fees=1, trade_log=log)
    first.step()
    every_kind(first)
    first.step()
    first.step()
    first.close()
    state = replay_trade_log(log)
    carried = [{**rec, "qty": float(rec["qty"]) - state.filled_qty.get(oid, 0.0),
                "triggered_at": None if rec.get("triggered_at") is None
                else parse_time(rec["triggered_at"])}
               for oid, rec in state.open_orders.items()]
    second = PaperBroker(bars, cash=state.cash, positions=state.positions, slippage=2, fees=1,
                         start_at=first.now(), order_id_prefix="S2-O", open_orders=carried,
                         trade_log=log)
    run(second)
    second.close()
    prices = [(f["side"], f["qty"], f["price"]) for f in whole.get_fills()]
    resumed = [(f["side"], f["qty"], f["price"]) for f in first.get_fills() + second.get_fills()]
    assert resumed == prices
    assert second.get_cash() == pytest.approx(whole.get_cash(), abs=1e-9)
    assert second.get_positions() == whole.get_positions()
    again = replay_trade_log(log)
    assert again.cash == second.get_cash()
    assert set(again.open_orders) == {o["order_id"] for o in second.get_orders(open_only=True)}


# ---------------------------------------------------------------- conformance
class RiskVenue(PaperVenue):
    """The paper venue with its broker behind a RiskBroker."""

    def __init__(self, limits: RiskLimits, **kw: Any):
        super().__init__(**kw)
        self.paper = self.broker
        self.broker = RiskBroker(self.paper, limits)  # type: ignore[assignment]

    def step(self) -> None:
        self.paper.step()


def test_conformance_of_the_order_kinds() -> None:
    check_broker_conformance(lambda: PaperVenue(slippage=5, fees=1))
    check_broker_conformance(lambda: RiskVenue(RiskLimits(max_position=50, allow_short=False,
                                                          max_order_qty=100)))
    paper = PaperVenue().broker
    assert isinstance(paper, OrderManagingBroker)
    assert isinstance(RiskBroker(paper, RiskLimits()), OrderManagingBroker)


def test_conformance_catches_a_broker_without_the_extras() -> None:
    class SixOnly:
        def __init__(self, inner: PaperBroker):
            self.inner = inner

        def submit_order(self, *a: Any, **k: Any) -> Any:
            return self.inner.submit_order(*a, **k)

        def cancel_order(self, order_id: str) -> Any:
            return self.inner.cancel_order(order_id)

        def get_positions(self) -> Any:
            return self.inner.get_positions()

        def get_cash(self) -> float:
            return self.inner.get_cash()

        def get_fills(self, since: Any = None) -> Any:
            return self.inner.get_fills(since)

        def now(self) -> Any:
            return self.inner.now()

        @property
        def bar_index(self) -> int:  # what PaperVenue reads
            return self.inner.bar_index

        def close(self) -> None:
            self.inner.close()

    class Venue(PaperVenue):
        def __init__(self) -> None:
            super().__init__()
            self.paper = self.broker
            self.broker = SixOnly(self.paper)  # type: ignore[assignment]

        def step(self) -> None:
            self.paper.step()

    check_broker_conformance(Venue, order_kinds=False)
    with pytest.raises(AssertionError, match="OrderManagingBroker"):
        check_broker_conformance(Venue)
