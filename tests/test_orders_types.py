"""The order kinds of issue 18 as types: Order.create's validation, enums, protocol."""

from __future__ import annotations

import pytest

import simbroker
from simbroker.broker import Broker, OrderManagingBroker
from simbroker.errors import InvalidOrder, OrderRejected, ReplaceRejected
from simbroker.types import (
    Order,
    OrderClass,
    OrderInfo,
    OrderStatus,
    OrderType,
    Side,
    StopLoss,
    TakeProfit,
    TimeInForce,
)


def test_new_enum_values() -> None:
    assert OrderType.TRAILING_STOP == "trailing_stop"
    assert [t.value for t in TimeInForce] == ["day", "gtc", "opg", "cls", "ioc", "fok"]
    assert OrderStatus.HELD == "held"
    assert OrderStatus.HELD.is_open
    assert [c.value for c in OrderClass] == ["simple", "bracket", "oto", "oco"]


def test_orderinfo_has_the_new_keys() -> None:
    keys = set(OrderInfo.__annotations__)
    assert {"order_class", "parent_id", "legs", "trail_amount", "trail_percent",
            "extended_hours", "remaining_qty"} <= keys


def test_bracket_is_built_and_its_legs_are_opposite() -> None:
    o = Order.create("A", "buy", 10, "limit", limit_price=100, order_class="bracket",
                     take_profit={"limit_price": 110}, stop_loss={"stop_price": 95},
                     tif="gtc")
    assert o.order_class is OrderClass.BRACKET
    assert o.take_profit == TakeProfit(110.0)
    assert o.stop_loss == StopLoss(95.0)
    tp, sl = o.leg_orders()
    assert (tp.side, tp.order_type, tp.limit_price, tp.tif) == (
        Side.SELL, OrderType.LIMIT, 110.0, TimeInForce.GTC)
    assert (sl.side, sl.order_type, sl.stop_price, sl.qty) == (
        Side.SELL, OrderType.STOP, 95.0, 10.0)
    sl2 = Order.create("A", "buy", 10, order_class="bracket", take_profit={"limit_price": 110},
                       stop_loss={"stop_price": 95, "limit_price": 94}).leg_orders()[1]
    assert sl2.order_type is OrderType.STOP_LIMIT
    assert sl2.limit_price == 94.0


@pytest.mark.parametrize(("kwargs", "field"), [
    (dict(order_class="bracket", take_profit={"limit_price": 110}), "stop_loss"),
    (dict(order_class="bracket", stop_loss={"stop_price": 90}), "take_profit"),
    (dict(order_class="bracket", take_profit={"limit_price": 90},
          stop_loss={"stop_price": 95}), "take_profit.limit_price"),
    (dict(order_class="bracket", take_profit={"limit_price": 110},
          stop_loss={"stop_price": -1}), "stop_loss.stop_price"),
    (dict(order_class="bracket", take_profit={"limit": 110},
          stop_loss={"stop_price": 90}), "take_profit.limit"),
    (dict(order_class="bracket", take_profit=110, stop_loss={"stop_price": 90}),
     "take_profit"),
    (dict(order_class="bracket", take_profit={"limit_price": 110},
          stop_loss={"stop_price": 90}, tif="ioc"), "tif"),
    (dict(order_class="oto", take_profit={"limit_price": 110},
          stop_loss={"stop_price": 90}), "stop_loss"),
    (dict(order_class="oto"), "take_profit"),
    (dict(order_class="oco", take_profit={"limit_price": 110},
          stop_loss={"stop_price": 90}), "order_type"),
    (dict(take_profit={"limit_price": 110}), "take_profit"),
    (dict(order_class="triangle"), "order_class"),
    (dict(trail_amount=1.0), "trail_amount"),
    (dict(tif="opg", order_type="stop", stop_price=90), "tif"),
    (dict(tif="cls", order_type="trailing_stop", trail_amount=1), "tif"),
    (dict(order_type="trailing_stop"), "trail_percent"),
    (dict(order_type="trailing_stop", trail_amount=1, trail_percent=2), "trail_amount"),
    (dict(order_type="trailing_stop", trail_percent=100), "trail_percent"),
    (dict(order_type="trailing_stop", trail_percent=0), "trail_percent"),
    (dict(order_type="trailing_stop", trail_amount=1, stop_price=90), "stop_price"),
    (dict(order_type="trailing_stop", trail_amount=1, limit_price=90), "limit_price"),
    (dict(order_type="trailing_stop", trail_amount=1, order_class="bracket",
          take_profit={"limit_price": 110}, stop_loss={"stop_price": 90}), "order_type"),
])
def test_bad_kinds_name_the_field(kwargs: dict, field: str) -> None:
    args = {"order_type": "market", **kwargs}
    with pytest.raises(InvalidOrder) as exc:
        Order.create("A", "buy", 10, **args)
    assert exc.value.field == field, str(exc.value)
    assert "A" in str(exc.value)


def test_sell_bracket_mirrors() -> None:
    Order.create("A", "sell", 1, order_class="bracket", take_profit={"limit_price": 90},
                 stop_loss={"stop_price": 110})
    with pytest.raises(InvalidOrder, match="below"):
        Order.create("A", "sell", 1, order_class="bracket", take_profit={"limit_price": 110},
                     stop_loss={"stop_price": 90})


def test_oco_is_its_limit_leg() -> None:
    o = Order.create("A", "sell", 5, "limit", order_class="oco",
                     take_profit={"limit_price": 110}, stop_loss={"stop_price": 90})
    assert o.limit_price == 110.0
    (stop,) = o.leg_orders()
    assert (stop.side, stop.order_type, stop.stop_price) == (Side.SELL, OrderType.STOP, 90.0)
    with pytest.raises(InvalidOrder) as exc:
        Order.create("A", "sell", 5, "limit", limit_price=111, order_class="oco",
                     take_profit={"limit_price": 110}, stop_loss={"stop_price": 90})
    assert exc.value.field == "limit_price"
    with pytest.raises(InvalidOrder) as exc:  # a buy OCO covers a short: tp below stop
        Order.create("A", "buy", 5, "limit", order_class="oco",
                     take_profit={"limit_price": 110}, stop_loss={"stop_price": 90})
    assert exc.value.field == "take_profit.limit_price"


def test_trailing_stop() -> None:
    o = Order.create("A", "sell", 5, "trailing_stop", trail_percent=2.5)
    assert (o.trail_amount, o.trail_percent) == (None, 2.5)
    o = Order.create("A", "sell", 5, "trailing_stop", trail_amount=3, tif="gtc")
    assert (o.trail_amount, o.trail_percent) == (3.0, None)
    assert o.leg_orders() == []


def test_auction_and_ioc_tifs() -> None:
    for tif in ("opg", "cls"):
        Order.create("A", "buy", 1, "market", tif=tif)
        Order.create("A", "buy", 1, "limit", limit_price=5, tif=tif)
    for tif in ("ioc", "fok"):
        Order.create("A", "buy", 1, "stop", stop_price=5, tif=tif)


def test_replace_rejected_is_an_order_rejected() -> None:
    exc = ReplaceRejected("O1", "the order is filled", status="filled")
    assert isinstance(exc, OrderRejected)
    assert exc.order_id == "O1"
    assert exc.status == "filled"
    assert "O1" in str(exc)
    assert simbroker.ReplaceRejected is ReplaceRejected


def test_order_managing_broker_extends_broker() -> None:
    assert issubclass(OrderManagingBroker, Broker)
    names = {"get_order", "get_orders", "replace_order"}
    assert names <= set(dir(OrderManagingBroker))

    class SixOnly:
        def submit_order(self, *a: object, **k: object) -> None: ...
        def cancel_order(self, order_id: str) -> None: ...
        def get_positions(self) -> None: ...
        def get_cash(self) -> None: ...
        def get_fills(self, since: object = None) -> None: ...
        def now(self) -> None: ...

    assert isinstance(SixOnly(), Broker)
    assert not isinstance(SixOnly(), OrderManagingBroker)
