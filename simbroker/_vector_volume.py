"""The vectorized runner under ``max_volume_share``: partial fills, bit for bit.

The twin (:class:`~simbroker.vectorized.TargetPositions` on a
``PaperBroker(max_volume_share=s)``) orders ``target - position`` at a close; on the next
bar the order takes at most ``s * volume`` (whole shares for a whole-share order, see
:mod:`simbroker._paper_volume`). What the bar leaves does not carry on: at that bar's close
the day order has expired (its session ended: ``expired``, its part filled) or the twin
cancels it (``canceled``), and the target is decided again from the position reached. So
a target is approached over several bars, and each order has at most one fill
(``"<order_id>-1"``).

A fill's size depends on the position the previous bar left, so this runs bar by bar,
with numpy across symbols: O(bars) Python steps of O(symbols) array work (roughly the
cost of the weights path, ~10-30 us a bar for 100 symbols), against the uncapped path's
few whole-panel passes. Weight targets work the same way (equity is known at each close).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simbroker._paper_volume import capped_quantities
from simbroker.bars import Bars
from simbroker.models.fees import FeeModel
from simbroker.models.schedules import order_fees_at
from simbroker.models.slippage import SlippageModel
from simbroker.results.build import (
    assemble_result,
    cash_after_bars,
    mark_to_market,
    marking_closes,
)
from simbroker.results.columns import _ffill
from simbroker.results.result import BacktestResult
from simbroker.results.trips import trips_of

__all__ = ["capped_result", "run_capped"]

_PART_EXPIRED = "day order partially filled; the rest expired at the session end"


def run_capped(bars: Bars, tgt: np.ndarray, weights: bool, integer: bool, cash0: float,
               slippage: SlippageModel, fees: FeeModel, clip_to_bar: bool, session_tz: str,
               share: float) -> BacktestResult:
    """The result of share targets (or, with ``weights``, equity weights) ``tgt`` when
    each bar fills at most ``share`` of its volume (see the module docstring)."""
    from simbroker.vectorized import (  # vectorized imports this module lazily
        _cash_ledger,
        _equity_row,
        _fill_prices,
        _tradable,
    )

    n_t, n = tgt.shape
    tradable = _tradable(bars)
    close = _ffill(bars.close.copy()) if weights else bars.close
    volume = bars.volume
    cols = np.arange(n)
    pos = np.zeros(n)
    positions = np.zeros((n_t, n))
    cash = cash0
    # Orders (bar of the close they were placed at, column, sign, qty, qty filled).
    o_t: list[np.ndarray] = []
    o_j: list[np.ndarray] = []
    o_sign: list[np.ndarray] = []
    o_qty: list[np.ndarray] = []
    o_fill: list[np.ndarray] = []
    f_t: list[np.ndarray] = []
    f_j: list[np.ndarray] = []
    f_sign: list[np.ndarray] = []
    f_qty: list[np.ndarray] = []
    f_px: list[np.ndarray] = []
    f_fee: list[np.ndarray] = []
    f_order: list[np.ndarray] = []
    n_orders = 0
    live_j = cols[:0]
    live_sign = np.zeros(0)
    live_qty = np.zeros(0)
    live_first = 0  # order number of the first live order
    for t in range(n_t):
        if len(live_j):
            filled = np.zeros(len(live_j))
            hit = np.flatnonzero(tradable[t, live_j])
            if len(hit):
                j = live_j[hit]
                q, _ = capped_quantities(j, live_qty[hit], volume[t, j], share)
                keep = np.flatnonzero(q > 0)
                hit, j, q = hit[keep], j[keep], q[keep]
                if len(hit):
                    sign = live_sign[hit]
                    price = _fill_prices(bars, np.full(len(j), t), j, sign, q, slippage,
                                         clip_to_bar)
                    zero = np.zeros(len(j))
                    fee = np.asarray(order_fees_at(fees, sign, q, price, zero, zero,
                                                   bars.ts_ns[t]), np.float64)
                    cash = float(_cash_ledger(cash, sign, q * price, fee)[-1])
                    old = pos[j]
                    new = old + sign * q
                    snap = np.abs(new) <= 1e-12 * np.maximum(np.abs(old), q)
                    pos[j] = np.where(snap, 0.0, new)
                    filled[hit] = q
                    f_t.append(np.full(len(j), t))
                    f_j.append(j)
                    f_sign.append(sign)
                    f_qty.append(q)
                    f_px.append(price)
                    f_fee.append(fee)
                    f_order.append(live_first + hit)
            o_fill.append(filled)
        positions[t] = pos
        row = tgt[t]
        if weights:
            worth = _equity_row(cash, pos, close[t])
            with np.errstate(invalid="ignore", divide="ignore"):
                row = row * worth / close[t]
            row = np.where(np.isfinite(row), row, np.nan)
            if integer:
                row = np.trunc(row)
        with np.errstate(invalid="ignore"):
            delta = row - pos
        js = np.flatnonzero(~np.isnan(row) & (delta != 0))
        d = delta[js]
        live_j, live_sign, live_qty = js, np.where(d > 0, 1.0, -1.0), np.abs(d)
        live_first = n_orders
        n_orders += len(js)
        o_t.append(np.full(len(js), t))
        o_j.append(js)
        o_sign.append(live_sign)
        o_qty.append(live_qty)
    o_fill.append(np.zeros(len(live_j)))  # placed at the last close: never reached a bar

    def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    ot, oj = cat(o_t, np.int64), cat(o_j, np.int64)
    sign, qty, oq = cat(o_sign, np.float64), cat(o_qty, np.float64), cat(o_fill, np.float64)
    ft, fj = cat(f_t, np.int64), cat(f_j, np.int64)
    fsign, fqty = cat(f_sign, np.float64), cat(f_qty, np.float64)
    price, fee, fo = cat(f_px, np.float64), cat(f_fee, np.float64), cat(f_order, np.int64)
    ledger = _cash_ledger(cash0, fsign, fqty * price, fee)
    cash_t = cash_after_bars(ft, ledger, n_t, cash0)
    equity, gross = mark_to_market(positions, marking_closes(bars.close))
    equity += cash_t
    config = {"cash": cash0, "slippage": repr(slippage), "fees": repr(fees),
              "allow_short": True, "max_volume_share": share}
    return capped_result(bars, ot, oj, sign, qty, oq, ft, fj, fsign, fqty, price, fee, fo,
                         positions=positions, cash_t=cash_t, equity=equity, gross=gross,
                         cash0=cash0, config=config, session_tz=session_tz)


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
