"""The vectorized runner under ``max_volume_share``: partial fills, bit for bit.

The twin (:class:`~simbroker.vectorized.TargetPositions` on a
``PaperBroker(max_volume_share=s)``) orders ``target - position`` at a close; on the next
bar the order takes at most ``s * volume`` (whole shares for a whole-share order, see
:mod:`simbroker._paper_volume`). What the bar leaves does not carry on: at that bar's close
the day order has expired (its session ended: ``expired``, its part filled) or the twin
cancels it (``canceled``), and the target is decided again from the position reached. So
a target is approached over several bars, and each order has at most one fill
(``"<order_id>-1"``).

A fill's size depends on the position the previous bar left, so the run goes bar by bar,
with numpy across symbols, in the one loop of :func:`simbroker._vector_account.run_account`
(the account's check, when there is one, is a step of that loop): O(bars) Python steps of
O(symbols) array work, against the uncapped path's few whole-panel passes. This module
builds the result of such a run (:func:`capped_result`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simbroker.bars import Bars
from simbroker.results.build import assemble_result
from simbroker.results.result import BacktestResult
from simbroker.results.trips import trips_of

__all__ = ["capped_result"]

_PART_EXPIRED = "day order partially filled; the rest expired at the session end"


def capped_result(bars: Bars, ot: np.ndarray, oj: np.ndarray, sign: np.ndarray,
                  qty: np.ndarray, oq: np.ndarray, ft: np.ndarray, fj: np.ndarray,
                  fsign: np.ndarray, fqty: np.ndarray, price: np.ndarray, fee: np.ndarray,
                  fo: np.ndarray, *, positions: np.ndarray, cash_t: np.ndarray,
                  equity: np.ndarray, gross: np.ndarray, cash0: float,
                  config: dict[str, Any], session_tz: str,
                  financing: tuple[np.ndarray, np.ndarray] | None = None,
                  dividends: pd.DataFrame | None = None) -> BacktestResult:
    """The result of a bar-by-bar run whose orders have at most one fill each.

    Orders (close bar ``ot``, column ``oj``, ``sign``, ``qty``, quantity filled ``oq``)
    and fills (bar ``ft``, column ``fj``, ..., order number ``fo`` from 0), in
    submission and fill order; an order filled in part is ``expired`` or ``canceled``
    with its part. ``dividends`` is the result's table on bars with corporate actions.
    Shared with :mod:`simbroker._vector_account`.
    """
    from simbroker.vectorized import _fills_frame, _numbered, _orders_frame

    notional = fqty * price
    fills, fill_ns, names = _fills_frame(bars, ft, fj, fsign, fqty, price, fee, notional,
                                         _numbered(fo + 1), _numbered(fo + 1, suffix="-1"))

    whole = oq == qty
    wi = np.flatnonzero(whole)
    order_notional = np.zeros(len(ot))
    order_notional[fo] = notional
    orders = _orders_frame(bars, ot, oj, sign, qty, whole, wi, order_notional[wi],
                           _numbered(np.arange(1, len(ot) + 1)), session_tz)
    part = np.flatnonzero(~whole & (oq > 0))
    if len(part):
        filled_qty = orders["filled_qty"].to_numpy(copy=True)
        filled_qty[part] = oq[part]
        avg = orders["avg_fill_price"].to_numpy(copy=True)
        avg[part] = order_notional[part] / oq[part]
        orders["filled_qty"] = filled_qty
        orders["avg_fill_price"] = avg
        reason = orders["reason"].to_numpy(copy=True)
        expired = part[np.asarray(orders["status"].to_numpy()[part] == "expired")]
        reason[expired] = _PART_EXPIRED
        orders["reason"] = pd.Series(reason, dtype=object)
    trips = trips_of(fj, names, fsign, fqty, notional, fee, fill_ns, bars,
                     columns=np.arange(len(names)))
    return assemble_result(bars, fills=fills, orders=orders, equity=equity, cash=cash_t,
                           positions=positions, gross=gross, start_equity=cash0,
                           config=config, trips=trips, dividends=dividends,
                           financing=financing)
