"""A replaced leg of a group (an OCO pair, a bracket's exits) is weighed as the venues
weigh it: without its sibling legs, since only one leg of a group can trade. Raising a
take-profit beside its stop-loss still closes the position; it opens nothing."""

from __future__ import annotations

import pytest
import test_replace_buying_power as same_account
from _live import ib_error_guard
from adapter_scenarios import wait_until
from test_accounts import daily

from simbroker import PaperBroker
from simbroker.errors import InsufficientBuyingPower, PositionConflict, ReplaceRejected


def long_with_exits(account: str, venue: str | None = None) -> tuple[PaperBroker, str, str]:
    """10,000 of cash all spent on 100 X at 100, then an OCO selling the 100 (take-profit
    at 110, stop at 90): the pair closes the long whichever leg fills."""
    b = PaperBroker(daily([100.0] * 6), cash=10_000, account=account, slippage=0, fees=0,
                    venue=venue)
    b.step()
    b.submit_order("X", "buy", 100)
    b.step()
    assert b.get_positions() == {"X": 100.0}
    assert b.get_cash() == pytest.approx(0.0)
    tp = b.submit_order("X", "sell", 100, "limit", order_class="oco", tif="gtc",
                        take_profit={"limit_price": 110.0}, stop_loss={"stop_price": 90.0})
    return b, tp["order_id"], tp["legs"][0]


@pytest.mark.parametrize("venue", [None, "ibkr", "alpaca"])
def test_raising_a_take_profit_beside_its_stop_loss_is_accepted(venue: str | None) -> None:
    b, tp, stop = long_with_exits("margin", venue)
    # counted with its sibling the sell would open a 100-share short at 200 (20,000 at
    # 50% against 5,000 of excess): refused before
    b.replace_order(tp, limit_price=200.0)
    assert b.get_order(tp)["limit_price"] == 200.0
    b.replace_order(stop, stop_price=80.0)  # the other leg likewise
    assert b.get_order(stop)["stop_price"] == 80.0


def test_a_replaced_leg_that_does_open_is_still_weighed() -> None:
    b, tp, _ = long_with_exits("margin")
    # 300 sold against a long of 100 opens a short of 200 at 110: 22,000 at 50% = 11,000
    # against an excess of 10,000 - 5,000: refused, and it names the amounts
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(tp, qty=300)
    assert isinstance(err.value.__cause__, InsufficientBuyingPower)
    assert "requires 22,000.00, available 10,000.00" in str(err.value)
    assert b.get_order(tp)["qty"] == 100.0  # unchanged
    b.replace_order(tp, qty=190)  # a short of 90 at 110: 9,900 fits 10,000
    assert b.get_order(tp)["qty"] == 190.0


def test_cash_account_leg_raised_within_the_position_is_accepted() -> None:
    b = PaperBroker(daily([100.0] * 6), cash=10_000, account="cash", slippage=0, fees=0)
    b.step()
    b.submit_order("X", "buy", 100)
    b.step()
    tp = b.submit_order("X", "sell", 50, "limit", order_class="oco", tif="gtc",
                        take_profit={"limit_price": 110.0}, stop_loss={"stop_price": 90.0})
    # the take-profit raised to the whole position: the stop beside it sells the same
    # shares (one of them trades), so it is no short; refused before
    b.replace_order(tp["order_id"], qty=100)
    assert b.get_order(tp["order_id"])["qty"] == 100.0
    with pytest.raises(ReplaceRejected):  # beyond the shares held: a short
        b.replace_order(tp["order_id"], qty=101)


def test_a_plain_order_beside_the_group_still_counts() -> None:
    """Only the replaced leg's own siblings are left out: another open sell counts."""
    b = PaperBroker(daily([100.0] * 6), cash=10_000, account="cash", slippage=0, fees=0)
    b.step()
    b.submit_order("X", "buy", 100)
    b.step()
    b.submit_order("X", "sell", 40, "limit", limit_price=120.0, tif="gtc")
    tp = b.submit_order("X", "sell", 50, "limit", order_class="oco", tif="gtc",
                        take_profit={"limit_price": 110.0}, stop_loss={"stop_price": 90.0})
    b.replace_order(tp["order_id"], qty=60)  # 40 + 60 = the 100 held
    with pytest.raises(ReplaceRejected):
        b.replace_order(tp["order_id"], qty=61)


# ------------------------------------------------- the same through the fakes
no_decoder_errors = ib_error_guard(starts=("Error 201",))
venues = same_account.venues  # the fixture: every installed venue on one Reg T account


def test_the_venues_take_a_raised_take_profit_beside_its_stop(
        venues: list[same_account.Venue]) -> None:
    """Paper, FakeTWS and FakeAlpaca (through the adapters) agree: raising the limit of
    a take-profit whose stop-loss sells the same long is taken, and a leg that would open
    a short beyond the buying power is refused."""
    for v in venues:
        v.broker.submit_order("AAA", "buy", 1_000, client_order_id="long")  # all the cash
        v.trade()
        wait_until(lambda v=v: v.broker.get_positions() == {"AAA": 1_000.0})
        tp = v.broker.submit_order("AAA", "sell", 1_000, "limit", order_class="oco",
                                   tif="gtc", take_profit={"limit_price": 110.0},
                                   stop_loss={"stop_price": 90.0}, client_order_id="tp")
        tp_id, stop_id = tp["order_id"], tp["legs"][0]
        # as one short of 1,000 at 300 (300,000 against 100,000): refused before
        assert v.broker.replace_order(tp_id, limit_price=300.0)["limit_price"] == 300.0, \
            v.name
        assert v.broker.replace_order(stop_id, stop_price=80.0)["stop_price"] == 80.0, \
            v.name
        with pytest.raises(ReplaceRejected) as err:  # 4,000 opens a short of 3,000
            v.broker.replace_order(tp_id, qty=4_000)
        # (Alpaca refuses first that one order crosses the position through zero)
        assert isinstance(err.value.__cause__, PositionConflict if v.name == "alpaca"
                          else InsufficientBuyingPower), v.name
        assert err.value.rule == ("qty_available" if v.name == "alpaca" else "buying_power")
        info = v.broker.get_order(tp_id)
        assert (info["status"], info["qty"], info["limit_price"]) == ("new", 1_000, 300.0)
