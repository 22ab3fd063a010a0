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

from simbroker.results.columns import orders_table
from simbroker.types import OrderType

__all__ = ["paper_orders_frame"]


def paper_orders_frame(states: Iterable[Any]) -> pd.DataFrame:
    """The orders frame of :func:`~simbroker.results.orders_frame` from a paper broker's
    order states, in submission order, without building an ``OrderInfo`` per order."""
    rows = list(states)
    orders = [s.order for s in rows]
    filled = [s.filled_qty for s in rows]
    stop: list[Any] = [o.stop_price for o in orders]
    for i, (s, o) in enumerate(zip(rows, orders, strict=True)):
        if o.order_type is OrderType.TRAILING_STOP and s.trail_extreme is not None:
            stop[i] = s.info()["stop_price"]
    # An enum member's ``_value_`` is a plain attribute (``.value`` is a descriptor).
    return orders_table({
        "order_id": [s.order_id for s in rows],
        "client_order_id": [o.client_order_id for o in orders],
        "symbol": [o.symbol for o in orders],
        "side": [o.side._value_ for o in orders],
        "qty": [o.qty for o in orders],
        "order_type": [o.order_type._value_ for o in orders],
        "limit_price": [o.limit_price for o in orders],
        "stop_price": stop,
        "tif": [o.tif._value_ for o in orders],
        "status": [s.status._value_ for s in rows],
        "filled_qty": filled,
        "avg_fill_price": [s.filled_notional / q if q else None
                           for s, q in zip(rows, filled, strict=True)],
        "submitted_at": [s.submitted_at for s in rows],
        "reason": [s.reason for s in rows],
    })
