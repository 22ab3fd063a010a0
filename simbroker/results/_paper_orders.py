"""The orders table of a paper-broker run, read column by column from its order states.

``orders_frame(broker.get_orders())`` builds one ``OrderInfo`` dict of 21 keys per order
and then takes 14 of them apart again; at thousands of orders that was half of the
result's build time. This reads the 14 columns straight from the broker's order records
(``PaperBroker._orders``: ``order_id``, ``order``, ``submitted_at``, ``status``,
``filled_qty``, ``filled_notional``, ``reason``), giving the same frame bit for bit.
Only a trailing stop's current level (its stop price, derived from its extreme so far)
is asked of the order's own ``info()``, so that rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from simbroker.results.columns import order_column, orders_typed
from simbroker.types import OrderType

__all__ = ["paper_orders_frame"]


def paper_orders_frame(states: Iterable[Any]) -> pd.DataFrame:
    """The orders frame of :func:`~simbroker.results.orders_frame` from a paper broker's
    order states, in submission order, without building an ``OrderInfo`` per order."""
    rows = list(states)
    orders = [s.order for s in rows]
    # Column by column, each list dropped once typed: the lists of every column at once
    # were the build's peak after the round trips.
    typed: dict[str, Any] = {}

    def put(name: str, values: list[Any]) -> None:
        typed[name] = order_column(name, values)

    put("order_id", [s.order_id for s in rows])
    put("client_order_id", [o.client_order_id for o in orders])
    put("symbol", [o.symbol for o in orders])
    # An enum member's ``_value_`` is a plain attribute (``.value`` is a descriptor).
    put("side", [o.side._value_ for o in orders])
    put("qty", [o.qty for o in orders])
    kinds = [o.order_type._value_ for o in orders]
    # Most runs have no trailing stop: one C scan of the kinds instead of a Python loop
    # over every order (~1,500 instructions an order).
    trailing = OrderType.TRAILING_STOP._value_ in kinds
    put("order_type", kinds)
    del kinds
    put("limit_price", [o.limit_price for o in orders])
    stop: list[Any] = [o.stop_price for o in orders]
    if trailing:
        for i, (s, o) in enumerate(zip(rows, orders, strict=True)):
            if o.order_type is OrderType.TRAILING_STOP and s.trail_extreme is not None:
                stop[i] = s.info()["stop_price"]
    put("stop_price", stop)
    del stop
    put("tif", [o.tif._value_ for o in orders])
    put("status", [s.status._value_ for s in rows])
    put("filled_qty", [s.filled_qty for s in rows])
    put("avg_fill_price", [s.filled_notional / s.filled_qty if s.filled_qty else None
                           for s in rows])
    put("submitted_at", [s.submitted_at for s in rows])
    put("reason", [s.reason for s in rows])
    return orders_typed(typed)
