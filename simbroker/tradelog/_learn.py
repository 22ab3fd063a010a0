"""A fee model's running ledgers rebuilt from the fills a trade log holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from simbroker.accounts._state import time_ns
from simbroker.errors import TradeLogError
from simbroker.models.fees import FeeModel
from simbroker.tradelog._reader import parse_time

__all__ = ["learn_logged_fills"]


def learn_logged_fills(fees: FeeModel, fills: Sequence[dict[str, Any]],
                       path: str | None = None) -> None:
    """Start ``fees``'s ledgers again and count ``fills`` (``filled`` records: ``side``,
    ``qty``, ``price``, ``ts`` or ``timestamp``) in time order, so that a resumed run's
    next fill pays what the uninterrupted run's would (the tiered month's volume,
    Alpaca's daily totals: :meth:`FeeModel.learn`).

    Raises
    ------
    TradeLogError
        A record without a usable side, quantity, price or time (naming the field).
    """
    fees.reset()
    if not fills:
        return
    try:
        side = np.array([1.0 if str(f["side"]).lower() == "buy" else -1.0 for f in fills])
        qty = np.array([float(f["qty"]) for f in fills])
        price = np.array([float(f["price"]) for f in fills])
        when = np.array([time_ns(parse_time(f.get("timestamp", f.get("ts")), "timestamp"))
                         for f in fills], np.int64)
    except KeyError as exc:
        raise TradeLogError(f"a 'filled' record lacks {exc}", path=path) from None
    except (TypeError, ValueError) as exc:
        raise TradeLogError(f"a 'filled' record cannot be counted by the fee model: {exc}",
                            path=path) from None
    order = np.argsort(when, kind="stable")
    fees.learn(side[order], qty[order], price[order], when[order])
