"""A replace is checked as the venue checks it: the replaced order whole, against the
buying power net of the old order's reservation (hand-computed)."""

from __future__ import annotations

import pytest
from test_accounts import daily

from simbroker import PaperBroker
from simbroker.errors import InsufficientBuyingPower, ReplaceRejected


def margin_broker(cash: float = 10_000.0) -> PaperBroker:
    b = PaperBroker(daily([100.0] * 5), cash=cash, account="margin", slippage=0, fees=0)
    b.step()  # X marked at 100: buying power 2 x 10,000 = 20,000
    return b


def test_raising_a_buy_limit_beyond_buying_power_is_refused() -> None:
    b = margin_broker()
    o = b.submit_order("X", "buy", 150, "limit", limit_price=100.0, tif="gtc")  # 15,000
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(o["order_id"], limit_price=140.0)  # 150 x 140 = 21,000 > 20,000
    assert err.value.field == "limit_price"
    assert "requires 21,000.00, available 20,000.00" in str(err.value)
    assert isinstance(err.value.__cause__, InsufficientBuyingPower)
    assert err.value.rule == "buying_power"
    assert b.get_order(o["order_id"])["limit_price"] == 100.0  # unchanged
    b.replace_order(o["order_id"], limit_price=130.0)  # 19,500: fits
    assert b.get_account()["buying_power"] == pytest.approx(20_000 - 19_500)


def test_lower_limit_or_smaller_qty_always_passes() -> None:
    b = margin_broker()
    short = b.submit_order("X", "sell", 10, "limit", limit_price=100.0, tif="gtc")  # 1,000
    o = b.submit_order("X", "buy", 190, "limit", limit_price=100.0, tif="gtc")  # 19,000
    assert b.get_account()["buying_power"] == pytest.approx(0.0)  # all of it reserved
    b.replace_order(o["order_id"], limit_price=90.0)
    b.replace_order(o["order_id"], qty=150)
    b.replace_order(short["order_id"], qty=5)
    b.replace_order(short["order_id"], limit_price=100.0)  # the same price: no more


def test_growing_qty_is_checked_whole_net_of_the_old_order() -> None:
    b = margin_broker()
    o = b.submit_order("X", "buy", 100, "limit", limit_price=100.0, tif="gtc")  # 10,000
    b.replace_order(o["order_id"], qty=200)  # 20,000 against 20,000 net of the old: fits
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(o["order_id"], qty=201)  # 20,100 > 20,000
    assert err.value.field == "qty"
    assert "requires 20,100.00, available 20,000.00" in str(err.value)


def test_raising_a_stop_limit_limit_is_checked() -> None:
    b = margin_broker()
    o = b.submit_order("X", "buy", 150, "stop_limit", stop_price=105.0, limit_price=110.0,
                       tif="gtc")  # reserved at its limit: 16,500
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(o["order_id"], limit_price=135.0)  # 150 x 135 = 20,250
    assert err.value.field == "limit_price"
    assert "requires 20,250.00, available 20,000.00" in str(err.value)
    b.replace_order(o["order_id"], limit_price=133.0)  # 19,950


def test_a_replace_counts_the_other_open_orders() -> None:
    b = margin_broker()
    b.submit_order("X", "buy", 50, "limit", limit_price=100.0, tif="gtc")  # 5,000
    o = b.submit_order("X", "buy", 100, "limit", limit_price=100.0, tif="gtc")  # 10,000
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(o["order_id"], limit_price=151.0)  # 15,100 > 20,000 - 5,000
    assert "requires 15,100.00, available 15,000.00" in str(err.value)
    b.replace_order(o["order_id"], limit_price=150.0)


def test_cash_account_replace_raising_a_limit_is_checked_against_the_cash() -> None:
    b = PaperBroker(daily([100.0] * 5), cash=10_000, account="cash", slippage=0, fees=0)
    b.step()
    o = b.submit_order("X", "buy", 90, "limit", limit_price=100.0, tif="gtc")  # 9,000
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(o["order_id"], limit_price=112.0)  # 10,080 > 10,000
    assert "requires 10,080.00, available 10,000.00" in str(err.value)
    b.replace_order(o["order_id"], limit_price=110.0)  # 9,900
    b.replace_order(o["order_id"], limit_price=80.0)


def test_a_refusal_no_rule_made_has_no_rule() -> None:
    b = margin_broker()
    o = b.submit_order("X", "buy", 10, "limit", limit_price=100.0, tif="gtc")
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(o["order_id"], qty=-1)  # invalid, not refused by the account
    assert err.value.rule is None
    b.cancel_order(o["order_id"])
    with pytest.raises(ReplaceRejected) as err:
        b.replace_order(o["order_id"], qty=5)  # no longer open
    assert (err.value.rule, err.value.status) == (None, "canceled")
