"""The paper broker's matching of trailing stops and auction orders, and replace checks.

Arrays in, arrays out, across all open orders of one kind at once: the broker calls these
only when such orders are open, so plain market/limit/stop runs never pay for them.

Book codes of the order kinds handled here (the plain ones are 0-3):
``4`` trailing stop by amount, ``5`` trailing stop by percent, ``6`` an opening-auction
order (``tif="opg"``), ``7`` a closing-auction order (``tif="cls"``); the auction codes
carry a limit (or NaN for market).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from simbroker.errors import InvalidOrder, ReplaceRejected
from simbroker.types import Order, OrderClass, OrderType, TakeProfit, TimeInForce

__all__ = ["AT_CLOSE", "AT_OPEN", "TRAIL_AMOUNT", "TRAIL_PERCENT", "auction_fill",
           "replaced_order", "trail_fill", "trail_levels", "trailed_extremes"]

TRAIL_AMOUNT = 4
TRAIL_PERCENT = 5
AT_OPEN = 6
AT_CLOSE = 7


def trail_levels(buy: np.ndarray, pct: np.ndarray, trail: np.ndarray,
                 extreme: np.ndarray) -> np.ndarray:
    """The stop level of trailing stops from their extreme (bars before this one).

    Sell: ``extreme - trail`` or ``extreme * (1 - trail / 100)``; buy mirrored
    (``extreme + trail``, ``extreme * (1 + trail / 100)``).
    """
    dist = np.where(pct, extreme * trail / 100.0, trail)
    return np.where(buy, extreme + dist, extreme - dist)


def trail_fill(buy: np.ndarray, level: np.ndarray, o: np.ndarray, h: np.ndarray,
               lo: np.ndarray, tradable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trigger mask and reference price of trailing stops on one bar.

    A sell triggers when ``low <= level`` and fills from ``min(open, level)`` (a gap
    through the level fills at the open); a buy mirrored.
    """
    hit = tradable & np.where(buy, h >= level, lo <= level)
    ref = np.where(buy, np.maximum(o, level), np.minimum(o, level))
    return hit, ref


def trailed_extremes(buy: np.ndarray, extreme: np.ndarray, h: np.ndarray, lo: np.ndarray,
                     tradable: np.ndarray) -> np.ndarray:
    """The extremes after a bar: the high folded in for a sell, the low for a buy.

    Bars where nothing traded (zero or no volume) leave the extreme as it was.
    """
    moved = np.where(buy, np.fmin(extreme, lo), np.fmax(extreme, h))
    return np.where(tradable, moved, extreme)


def auction_fill(otype: np.ndarray, buy: np.ndarray, lim: np.ndarray, o: np.ndarray,
                 c: np.ndarray, tradable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill mask and reference price of auction orders on their auction's bar.

    Opening auction: the open; closing auction: the close. A limit fills only if that
    price satisfies it (a buy at or below its limit, a sell at or above); a market
    (limit NaN) always, when the bar traded.
    """
    px = np.where(otype == AT_OPEN, o, c)
    ok = np.isnan(lim) | np.where(buy, px <= lim, px >= lim)
    return tradable & ok, px


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
