"""When each corporate action takes effect on a panel of bars: bar indices per action.

The rule (one for the paper broker, the vectorized runner and the adjusted prices): an
action dated ``D`` (a calendar date in the table's ``tz``) takes effect at the **ex bar**,
the symbol's first bar whose open falls on ``D`` or later, *before that bar trades*:

* a split multiplies the position and the open orders' quantities by the ratio, and
  divides their limit and stop prices by it;
* a dividend's entitlement is the position held into the ex bar (after a split sharing
  its ex-date); its cash is credited (debited, for a short) at the **pay bar**, the first
  bar of the panel whose open falls on the pay date or later (never before the ex bar),
  again before that bar trades. A pay date after the last bar is never credited.

An action with no bar of its symbol before the ex bar, or with no ex bar (dated before
the symbol's first bar or after its last), does nothing: no position can be held into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simbroker.actions._table import DIVIDEND, SPLIT, CorporateActions, _ns_to_dates

if TYPE_CHECKING:
    from simbroker.bars import Bars

__all__ = ["Schedule", "schedule"]


@dataclass(frozen=True)
class Schedule:
    """The actions that take effect inside a panel, sorted by ``(t, kind, col)``.

    Attributes
    ----------
    t : ndarray of int64
        Ex bar of each action.
    col : ndarray of int64
        The symbol's column in the bars.
    kind : ndarray of int8
        0 split, 1 dividend.
    value : ndarray of float64
        Ratio or cash per share.
    pay_t : ndarray of int64
        Pay bar (``len(bars)`` when after the last bar; the ex bar for splits).
    ex_date, pay_date : ndarray of datetime64[D]
    """

    t: np.ndarray
    col: np.ndarray
    kind: np.ndarray
    value: np.ndarray
    pay_t: np.ndarray
    ex_date: np.ndarray
    pay_date: np.ndarray

    def __len__(self) -> int:
        return len(self.t)

    @property
    def split_mask(self) -> np.ndarray:
        """True for splits."""
        out: np.ndarray = self.kind == SPLIT
        return out

    def split_ratios(self, n_bars: int, n_symbols: int) -> np.ndarray:
        """``(T, N)`` ratio applied before each bar (1.0 where none)."""
        out = np.ones((n_bars, n_symbols))
        m = self.split_mask
        out[self.t[m], self.col[m]] = self.value[m]
        return out


def schedule(bars: Bars, actions: CorporateActions | None) -> Schedule:
    """The actions of ``actions`` that take effect on ``bars`` (see the module docstring)."""
    empty = Schedule(*(np.array([], np.int64),) * 2, np.array([], np.int8),
                     np.array([], np.float64), np.array([], np.int64),
                     np.array([], "datetime64[D]"), np.array([], "datetime64[D]"))
    if actions is None or not len(actions) or not len(bars):
        return empty
    n_t = len(bars)
    dates = _ns_to_dates(bars.ts_ns, actions.tz)
    cols = np.array([bars._index.get(s, -1) for s in actions.symbol.tolist()], np.int64)
    known = cols >= 0
    sym_cols, ex_d = cols[known], actions.ex_date[known]
    kind, value, pay_d = actions.kind[known], actions.value[known], actions.pay_date[known]
    # The symbol's first bar on or after the ex-date (a bar = a close is present).
    t = np.full(len(sym_cols), n_t, np.int64)
    inside = np.zeros(len(sym_cols), np.bool_)
    present = ~np.isnan(bars.close)
    for j in np.unique(sym_cols).tolist():
        rows = np.flatnonzero(present[:, j])
        sel = np.flatnonzero(sym_cols == j)
        k = np.searchsorted(dates[rows], ex_d[sel], side="left")
        if len(rows):
            t[sel] = np.where(k < len(rows), rows[np.minimum(k, len(rows) - 1)], n_t)
        inside[sel] = (k >= 1) & (k < len(rows))  # a bar of the symbol before it
    pay_t = np.searchsorted(dates, pay_d, side="left").astype(np.int64)
    pay_t = np.where(kind == DIVIDEND, np.maximum(pay_t, t), t)
    live = inside
    order = np.lexsort((sym_cols[live], kind[live], t[live]))
    return Schedule(t=t[live][order], col=sym_cols[live][order], kind=kind[live][order],
                    value=value[live][order], pay_t=pay_t[live][order],
                    ex_date=ex_d[live][order], pay_date=pay_d[live][order])
