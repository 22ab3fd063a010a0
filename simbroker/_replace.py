"""What a ``replace_order`` may change, checked the same way by every simbroker broker,
and how the paper broker weighs the replacement against its venue and account rules."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from simbroker.errors import (
    InsufficientBuyingPower,
    InvalidOrder,
    OrderRejected,
    PatternDayTrading,
    PositionConflict,
    ReplaceRejected,
    ShortingNotAllowed,
)
from simbroker.types import Order, OrderClass, OrderType, Side, TakeProfit, TimeInForce

if TYPE_CHECKING:
    from simbroker.paper import PaperBroker

__all__ = ["replaced_order", "weigh_replacement"]


_REPLACEABLE = {
    "qty": None,
    "limit_price": (OrderType.LIMIT, OrderType.STOP_LIMIT),
    "stop_price": (OrderType.STOP, OrderType.STOP_LIMIT),
    "trail_amount": (OrderType.TRAILING_STOP,),
    "trail_percent": (OrderType.TRAILING_STOP,),
    "tif": None,
}


def replaced_order(order_id: str, order: Order, filled_qty: float, *, in_group: bool,
                   **changes: Any) -> Order:
    """``order`` with ``changes`` applied and checked, or ``ReplaceRejected`` naming why.

    A field the order type does not take, a value :meth:`Order.create` refuses, or a
    quantity below what already filled is refused; a grouped order keeps tif day/gtc.
    Switching a trailing stop between ``trail_amount`` and ``trail_percent`` is allowed
    (the one given replaces the other).
    """
    given = {k: v for k, v in changes.items() if v is not None}
    sym = order.symbol
    if not given:
        raise ReplaceRejected(order_id, "nothing to change (every field is None)",
                              symbol=sym, client_order_id=order.client_order_id)
    for name in given:
        types = _REPLACEABLE[name]
        if types is not None and order.order_type not in types:
            raise ReplaceRejected(
                order_id, f"a {order.order_type.value} order takes no {name}", field=name,
                symbol=sym, client_order_id=order.client_order_id)
    trail_a, trail_p = order.trail_amount, order.trail_percent
    if "trail_amount" in given and "trail_percent" in given:
        raise ReplaceRejected(order_id, "give trail_amount or trail_percent, not both",
                              field="trail_amount", symbol=sym,
                              client_order_id=order.client_order_id)
    if "trail_amount" in given:
        trail_a, trail_p = given["trail_amount"], None
    if "trail_percent" in given:
        trail_a, trail_p = None, given["trail_percent"]
    tif = given.get("tif", order.tif.value)
    try:
        check = Order.create(
            sym, order.side.value, given.get("qty", order.qty), order.order_type.value,
            limit_price=given.get("limit_price", order.limit_price),
            stop_price=given.get("stop_price", order.stop_price), tif=tif,
            client_order_id=order.client_order_id, trail_amount=trail_a,
            trail_percent=trail_p)
    except InvalidOrder as exc:
        raise ReplaceRejected(order_id, exc.reason, field=exc.field, symbol=sym,
                              client_order_id=order.client_order_id) from None
    if in_group and check.tif not in (TimeInForce.DAY, TimeInForce.GTC):
        raise ReplaceRejected(order_id, f"an order of a group must stay day or gtc, not "
                              f"{check.tif.value!r}", field="tif", symbol=sym,
                              client_order_id=order.client_order_id)
    auctions = {TimeInForce.OPG, TimeInForce.CLS}
    if check.tif is not order.tif and auctions & {check.tif, order.tif}:
        raise ReplaceRejected(order_id, "an order cannot move into or out of an auction "
                              "(tif opg/cls); cancel it and submit a new one", field="tif",
                              symbol=sym, client_order_id=order.client_order_id)
    if check.qty < filled_qty * (1 - 1e-12):
        raise ReplaceRejected(order_id, f"qty {check.qty:g} is below the {filled_qty:g} "
                              "already filled", field="qty", symbol=sym,
                              client_order_id=order.client_order_id)
    new = dataclasses.replace(
        order, qty=check.qty, limit_price=check.limit_price, stop_price=check.stop_price,
        tif=check.tif, trail_amount=check.trail_amount, trail_percent=check.trail_percent)
    if order.order_class is OrderClass.OCO and new.limit_price is not None:
        new = dataclasses.replace(new, take_profit=TakeProfit(new.limit_price))
    return new


def weigh_replacement(broker: PaperBroker, order_id: str, old: Order, filled: float,
                      new: Order, col: int) -> None:
    """Refuse the replace of working order ``old`` (``filled`` of it done) by ``new``
    where the paper broker would refuse ``new`` as a new order for what is left, the old
    one set aside: ``allow_short=False``, a hard-to-borrow short beyond its locate, and
    with ``venue="alpaca"`` Alpaca's one side at a time; then the account's buying power,
    settlement and PDT rules. Each raises ``ReplaceRejected`` caused by the error a
    submission gets (so ``rule`` names the rule); nothing changes.
    """
    left, old_left = new.qty - filled, old.qty - filled
    try:
        if new.side is Side.SELL and left > old_left:
            # held net of the other open sells: the old order's remainder set aside
            held = float(broker._pos[col]) - broker._open_sell_qty(col) + old_left
            if not broker.allow_short and left > held * (1 + 1e-12) + 1e-12:
                raise ShortingNotAllowed(new.symbol, position=held, qty=left)
            if broker._financing is not None:
                broker._financing.check_short(broker, dataclasses.replace(new, qty=left), col,
                                              set_aside=old_left)
        if broker.venue == "alpaca":
            broker._check_replace_sides(order_id, new, left, col)
        if broker._account is not None:
            broker._account.check_replace(order_id, dataclasses.replace(
                new, qty=left, client_order_id=None), col)
    except (ShortingNotAllowed, InsufficientBuyingPower, PatternDayTrading,
            PositionConflict) as exc:
        raise _refused(order_id, old, new, exc) from exc


def _refused(order_id: str, old: Order, new: Order, exc: OrderRejected) -> ReplaceRejected:
    field = "qty" if new.qty != old.qty else \
        "limit_price" if new.limit_price != old.limit_price else \
        "stop_price" if new.stop_price != old.stop_price else None
    return ReplaceRejected(order_id, exc.reason, field=field, symbol=new.symbol,
                           client_order_id=new.client_order_id)
