"""Borrow fees and interest in the vectorized runner, bit for bit with the paper broker.

The accruals depend on the cash balance, which they change, so the cash ledger is a
running sum cut at each trading day's end: the fills and dividend payments up to that
bar are added strictly left to right (``np.add.accumulate``, as in the broker's order:
a bar's dividend payments, then its fills), then the day's borrow fee and interest are
computed from the positions after that bar and the cash so far with the broker's own
functions (:mod:`simbroker.financing._accrue`) and subtracted, one rounding each.
O(trading days) small numpy steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from simbroker.financing._accrue import borrow_fees, interest_amount
from simbroker.financing._borrow import BorrowModel
from simbroker.financing._days import accrual_days
from simbroker.financing._interest import InterestModel

if TYPE_CHECKING:
    from simbroker.actions._vector import Dividends
    from simbroker.bars import Bars
    from simbroker.sessions import Sessions

__all__ = ["VectorFinancing"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class VectorFinancing:
    """A run's accrual schedule and models, for the vectorized runner."""

    def __init__(self, bars: Bars, sessions: Sessions, borrow: BorrowModel | None,
                 interest: InterestModel | None):
        from simbroker.results.build import marking_closes

        for name, model, kind in (("borrow", borrow, BorrowModel),
                                  ("interest", interest, InterestModel)):
            if model is not None and not isinstance(model, kind):
                raise TypeError(f"{name} must be a simbroker.financing.{kind.__name__}, got "
                                f"{type(model).__name__}")
        self.borrow = borrow
        self.interest = interest
        self.ends, self.days = accrual_days(sessions)
        self.end_k = {int(t): k for k, t in enumerate(self.ends.tolist())}
        self.rates = (borrow.rate_array(bars.symbols) if borrow is not None
                      else np.zeros(bars.n_symbols))
        self.charges_borrow = borrow is not None and bool(self.rates.any())
        self.close = marking_closes(bars.close) if self.charges_borrow else bars.close

    def accrue(self, k: int, pos: F64, cash: float) -> tuple[float, float, float]:
        """Day ``k``'s accrual on positions ``pos`` and ``cash``: ``(cash after, borrow
        fee, interest)``, with the broker's arithmetic in the broker's order."""
        t = int(self.ends[k])
        days = float(self.days[k])
        fee = 0.0
        if self.charges_borrow and self.borrow is not None:
            fee = float(np.sum(borrow_fees(pos, self.close[t], self.rates, days,
                                           self.borrow.day_count)))
            if fee != 0.0:
                cash = cash - fee
        paid = interest_amount(self.interest, cash, days)
        if paid != 0.0:
            cash = cash - paid
        return cash, fee, paid

    def at_close(self, t: int, pos: F64, cash: float) -> float:
        """Cash after bar ``t``'s accrual, if ``t`` ends a trading day (weights loops)."""
        k = self.end_k.get(t)
        return cash if k is None else self.accrue(k, pos, cash)[0]

    def ledger(self, cash0: float, fill_bar: I64, sign: F64, notional: F64, fee: F64,
               divs: Dividends | None, positions: F64) -> tuple[I64, F64, F64, F64]:
        """The cash ledger with accruals: ``(entry bars, cash after each entry, borrow fee
        per bar, interest per bar)``."""
        n_t = positions.shape[0]
        flow_bar, flows = _flows(fill_bar, sign, notional, fee, divs)
        ends = self.ends[self.ends < n_t]
        cut = np.searchsorted(flow_bar, ends, side="right")
        flow_cash = np.empty(len(flows))
        acc_cash = np.empty(len(ends))
        fees = np.zeros(n_t)
        paid = np.zeros(n_t)
        cur, lo = float(cash0), 0
        for k, t in enumerate(ends.tolist()):
            hi = int(cut[k])
            if hi > lo:
                run = np.add.accumulate(np.concatenate([[cur], flows[lo:hi]]))
                flow_cash[lo:hi] = run[1:]
                cur, lo = float(run[-1]), hi
            cur, fees[t], paid[t] = self.accrue(k, positions[t], cur)
            acc_cash[k] = cur
        if lo < len(flows):
            run = np.add.accumulate(np.concatenate([[cur], flows[lo:]]))
            flow_cash[lo:] = run[1:]
        bars = np.concatenate([flow_bar, ends.astype(np.int64)])
        phase = np.concatenate([np.zeros(len(flows), np.int64), np.ones(len(ends), np.int64)])
        order = np.lexsort((phase, bars))
        cash = np.concatenate([flow_cash, acc_cash])[order]
        return bars[order], cash, fees, paid


def _flows(fill_bar: I64, sign: F64, notional: F64, fee: F64,
           divs: Dividends | None) -> tuple[I64, F64]:
    """Each cash flow and its bar in the broker's order: a bar's dividend payments, then
    its fills (``-+notional``, then ``-fee``)."""
    fill_bar = np.asarray(fill_bar, np.int64)
    n_f = len(fill_bar)
    if divs is None:
        pay_bar = np.array([], np.int64)
        amount = np.array([], np.float64)
    else:
        pay_bar = divs.sched.pay_t[divs.pay_k].astype(np.int64)
        amount = divs.amount[divs.pay_k]
    n_d = len(pay_bar)
    bar = np.concatenate([pay_bar, fill_bar])
    phase = np.concatenate([np.zeros(n_d, np.int64), np.ones(n_f, np.int64)])
    seq = np.concatenate([np.arange(n_d), np.arange(n_f)])
    order = np.lexsort((seq, phase, bar))
    width = np.where(phase[order] == 1, 2, 1)
    first = np.cumsum(width) - width
    flows = np.empty(int(width.sum()))
    is_fill = phase[order] == 1
    fpos, fseq = first[is_fill], seq[order][is_fill]
    flows[fpos] = np.where(sign[fseq] > 0, -notional[fseq], notional[fseq])
    flows[fpos + 1] = -fee[fseq]
    flows[first[~is_fill]] = amount[seq[order][~is_fill]]
    flow_bar: I64 = np.repeat(bar[order], width)
    return flow_bar, flows
