"""An order's bookkeeping in the paper broker and the dicts built from it.

:class:`OrderState` is the mutable record of one order; :meth:`OrderState.info` builds
the :class:`~simbroker.types.OrderInfo` handed out. :func:`order_fields` and
:func:`carried_fields` are an order as the trade log's ``submitted`` and ``start``
records hold it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from simbroker._paper_base import EPOCH
from simbroker._paper_carry import Carried
from simbroker._paper_kinds import trail_levels
from simbroker.types import (
    Order,
    OrderClass,
    OrderInfo,
    OrderStatus,
    OrderType,
    Side,
)

__all__ = ["OrderState", "carried_fields", "market_info", "market_template", "ns_datetime",
           "order_fields",
           "trail_level"]


def ns_datetime(ns: int) -> datetime:
    """A bar time (ns since the epoch) as a UTC datetime, to the microsecond."""
    return EPOCH + timedelta(microseconds=int(ns) // 1000)


@dataclass(slots=True)
class OrderState:
    """Mutable bookkeeping of one order (the dict handed out is built from it)."""

    order_id: str
    order: Order
    submitted_at: datetime
    status: OrderStatus = OrderStatus.NEW
    filled_qty: float = 0.0
    filled_notional: float = 0.0
    reason: str | None = None
    parent_id: str | None = None
    # A group key's legs; () for the rest, shared: an empty list per order was 56 bytes,
    # 36 MiB at 674,615 orders (10,000 symbols x 2,520 bars)
    legs: Sequence[str] = ()
    group_class: str | None = None  # a leg's group class (its own Order is simple)
    trail_extreme: float | None = None  # a trailing stop's extreme so far
    n_fills: int = 0  # fills so far: the next fill is "<order_id>-<n_fills + 1>"

    def info(self) -> OrderInfo:
        """The order now, as the :class:`~simbroker.types.OrderInfo` handed out."""
        # ``_value_`` is an enum member's value without the ``.value`` descriptor (several
        # times slower). Most orders are asked once (the submit_order answer), so nothing
        # is cached between calls.
        o = self.order
        stop = o.stop_price
        if self.trail_extreme is not None and o.order_type is OrderType.TRAILING_STOP:
            stop = trail_level(o, self.trail_extreme)
        filled = self.filled_qty
        return {
            "order_id": self.order_id,
            "client_order_id": o.client_order_id,
            "symbol": o.symbol,
            "side": o.side._value_,
            "qty": o.qty,
            "order_type": o.order_type._value_,
            "limit_price": o.limit_price,
            "stop_price": stop,
            "tif": o.tif._value_,
            "status": self.status._value_,
            "filled_qty": filled,
            "avg_fill_price": (self.filled_notional / filled) if filled else None,
            "submitted_at": self.submitted_at,
            "reason": self.reason,
            "order_class": self.group_class or o.order_class._value_,
            "parent_id": self.parent_id,
            "legs": [*self.legs],
            "trail_amount": o.trail_amount,
            "trail_percent": o.trail_percent,
            "extended_hours": bool(o.extended_hours),
            "remaining_qty": o.qty - filled,
        }


# What OrderState.info() gives for a new simple market order, less its own fields:
# copying it and storing those is about half of building the 21-key dict literal.
_MARKET_INFO: dict[str, Any] = {
    "order_id": None, "client_order_id": None, "symbol": None, "side": None, "qty": None,
    "order_type": "market", "limit_price": None, "stop_price": None, "tif": None,
    "status": "new", "filled_qty": 0.0, "avg_fill_price": None, "submitted_at": None,
    "reason": None, "order_class": "simple", "parent_id": None, "legs": None,
    "trail_amount": None, "trail_percent": None, "extended_hours": False,
    "remaining_qty": None}


def market_template(order: Order) -> dict[str, Any]:
    """What :meth:`OrderState.info` gives for the simple market ``order`` (day or gtc, no
    client order id) while it is new and unfilled, less the fields of its state (id,
    submission time, legs): kept with an order the broker reuses, so that each answer
    is a copy and three stores."""
    info = _MARKET_INFO.copy()
    qty = order.qty
    info["symbol"] = order.symbol
    info["side"] = order.side._value_
    info["qty"] = qty
    info["tif"] = order.tif._value_
    info["remaining_qty"] = qty - 0.0  # as info() computes it
    return info


def market_info(state: OrderState, template: dict[str, Any]) -> OrderInfo:
    """``state.info()`` of a simple market order just placed (status new, no fill), from
    its order's :func:`market_template`."""
    info = template.copy()
    info["order_id"] = state.order_id
    info["submitted_at"] = state.submitted_at
    info["legs"] = []
    return info  # type: ignore[return-value]


def order_fields(order: Order) -> dict[str, Any]:
    """An order's fields as the ``submitted`` record (and a carried-over order) holds them.

    The fields of the order kinds are there when set (a plain order's record is as before).
    """
    fields: dict[str, Any] = {
        "client_order_id": order.client_order_id, "symbol": order.symbol,
        "side": order.side.value, "qty": order.qty, "order_type": order.order_type.value,
        "limit_price": order.limit_price, "stop_price": order.stop_price,
        "tif": order.tif.value}
    if order.extended_hours:
        fields["extended_hours"] = True
    if order.order_class is not OrderClass.SIMPLE:
        fields["order_class"] = order.order_class.value
    if order.take_profit is not None:
        fields["take_profit"] = order.take_profit.to_dict()
    if order.stop_loss is not None:
        fields["stop_loss"] = order.stop_loss.to_dict()
    if order.trail_amount is not None:
        fields["trail_amount"] = order.trail_amount
    if order.trail_percent is not None:
        fields["trail_percent"] = order.trail_percent
    return fields


def carried_fields(c: Carried, ts: np.ndarray) -> dict[str, Any]:
    """A carried-over order as the ``start`` record lists it (new ids, links, state)."""
    fields: dict[str, Any] = {"order_id": c.new_id, **order_fields(c.order)}
    if c.trig is not None:
        fields["triggered_at"] = ns_datetime(int(ts[c.trig]))
    if c.group_class is not None:
        fields["order_class"] = c.group_class
    if c.parent_id is not None:
        fields["parent_id"] = c.parent_id
    if c.legs:
        fields["legs"] = list(c.legs)
    if c.held:
        fields["status"] = OrderStatus.HELD.value
    if c.extreme is not None:
        fields["trail_extreme"] = c.extreme
    return fields


def trail_level(order: Order, extreme: float) -> float:
    """A trailing stop's level from its extreme (see :func:`trail_levels`)."""
    pct = order.trail_percent is not None
    trail = order.trail_percent if pct else order.trail_amount
    return float(trail_levels(np.array([order.side is Side.BUY]), np.array([pct]),
                              np.array([float(trail or 0.0)]), np.array([extreme]))[0])
