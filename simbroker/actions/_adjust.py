"""Adjusted prices for indicators, with no look-ahead; fills always use the bars' own.

Two views, both free of look-ahead:

* :func:`adjusted_bars` (what ``indicators(bars)`` receives when the bars were attached
  with ``adjust=``): **forward** adjustment. Each bar's price is multiplied by the
  factor of the actions up to it: the product of split ratios (``"splits"``), times
  ``1 / (1 - dividend / previous close)`` per dividend (``"all"``, a total-return
  price). The series is continuous through every ex-date and in the shares of the
  first bar; row ``t`` depends on no action after ``t``. Volume is divided by the split
  factor (shares of the first bar).
* ``History.adjusted(field)`` (see :class:`simbroker.History`): at bar ``t``, rows
  ``0..t`` in the shares of bar ``t``: the forward-adjusted prices divided by bar ``t``'s
  factor, so the last row is the raw price, as a data vendor would show the history
  on that day.

What back-adjustment implies: a vendor's adjusted history (Yahoo's ``Adj Close``) divides
the past by the factors of actions that happened *later*, up to the download date. Its
levels at bar ``t`` therefore encode the future (AAPL in 2000 "trades" at $0.90 because
of the splits of 2005, 2014 and 2020), so a rule on price levels ("buy under $50", a
position size of ``cash / price``) looks ahead. Rules on ratios (moving-average
crossovers, returns, z-scores, RSI) give the same signals on forward, point-in-time and
back-adjusted prices, because the three differ by one factor per symbol and bar window.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from simbroker.actions._schedule import schedule
from simbroker.actions._table import DIVIDEND, SPLIT
from simbroker.errors import DataError

if TYPE_CHECKING:
    from simbroker.bars import Bars

__all__ = ["adjusted_bars", "adjustment_factors"]


def adjustment_factors(bars: Bars, adjust: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Forward adjustment factors ``(price_factor, split_factor)``, each ``(T, N)``.

    ``adjusted = raw * price_factor`` for prices and ``raw / split_factor`` for volume.
    ``adjust`` defaults to the one the bars' actions were attached with; with
    ``prices="adjusted"`` the split factor is 1 (the splits are already in the prices).
    """
    acts = bars.actions
    how = adjust if adjust is not None else (acts.adjust if acts is not None else None)
    if how not in (None, "splits", "all"):
        raise DataError(f"adjust must be 'splits', 'all' or None, got {how!r}")
    shape = (len(bars), bars.n_symbols)
    ones = np.ones(shape)
    if acts is None or how is None or not len(acts):
        return ones, ones.copy()
    sched = schedule(bars, acts)
    step = np.ones(shape)
    m = sched.kind == SPLIT
    if acts.prices != "adjusted":
        step[sched.t[m], sched.col[m]] = sched.value[m]
    split_factor = np.cumprod(step, axis=0)
    if how == "splits":
        return split_factor, split_factor.copy()
    div = np.flatnonzero(sched.kind == DIVIDEND)
    for i in div.tolist():
        t, j = int(sched.t[i]), int(sched.col[i])
        prev = bars.close[:t, j]
        seen = np.flatnonzero(~np.isnan(prev))
        if not len(seen):
            continue
        # The previous close in the shares of the ex bar (a split on it divides it).
        before = float(prev[seen[-1]]) / step[t, j]
        keep = 1.0 - float(sched.value[i]) / before
        if not keep > 0:
            raise DataError(f"a dividend of {sched.value[i]:g} on {bars.symbols[j]} "
                            f"(ex-date {sched.ex_date[i]}) is not below the previous close "
                            f"{before:g}: cannot adjust for it")
        step[t, j] = step[t, j] / keep
    return np.cumprod(step, axis=0), split_factor


def adjusted_bars(bars: Bars, adjust: str | None = None) -> Bars:
    """``bars`` with forward-adjusted prices (see the module docstring), for indicators.

    The result carries no actions (its prices already hold them): never trade on it.
    ``adjust=None`` uses the bars' own setting; bars without one come back unchanged.
    """
    acts = bars.actions
    how = adjust if adjust is not None else (acts.adjust if acts is not None else None)
    if acts is None or how is None:
        return bars
    price, split = adjustment_factors(bars, how)
    return dataclasses.replace(
        bars, actions=None, open=bars.open * price, high=bars.high * price,
        low=bars.low * price, close=bars.close * price, volume=bars.volume / split)
